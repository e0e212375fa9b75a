//! `slackctl emulator` (a fake Slack workspace on loopback) and `slackctl demo` (the
//! emulator in-process, driven through the real client).

use crate::catalog;
use crate::config::Settings;
use crate::emulator::{self, Options};
use crate::error::{Error, Result};
use crate::output::Out;
use crate::params::{self, ValidateOpts};
use crate::run::{RunOptions, call_method};
use serde_json::Value;

/// The seeded workspace, for `slackctl emulator --help` (the README lists the same; the
/// README test checks every id here against a running emulator).
pub const SEED_HELP: &str = "\
Seed data (the same on every start; counts for the default --users 25):
  Tokens:
    xoxb-emulator-bot-token      bot user U0BOT (emulator-bot), every bot scope
    xoxp-emulator-user-token     user U0000001 (primary owner, admin), every user scope
    xapp-emulator-app-token      app-level: only apps.connections.open (Socket Mode)
    xoxb-emulator-limited-token  bot with only chat:write (to see missing_scope)
    anything else gets invalid_auth
  Users: U0000001 ... U0000025, named user01 ... user25, e-mail user01@example.com ...
    U0000001 user01 Ada Rossum (primary owner, admin)
    U0000002 user02 Grace Wirth (admin)
    U0000003 user03 Alan Diffie
    U0000025 user25 (deleted)
    U0BOT emulator-bot, USLACKBOT slackbot
  Channels (the bot is a member of those marked *):
    C0000001 #general*   C0000002 #random*   C0000003 #ops*   C0000009 #engineering*
    C0000013 #incidents*   C0000026 #leadership* (private)   C0000025 #old-project (archived)
    C0000004 ... C0000024: #announcements #backend #data #design #docs #engineering #finance
    #frontend #hr #incidents #infra #legal #marketing #mobile #oncall #product #qa #releases
    #sales #security #support
  Team T0EMULATOR (Emulator Workspace). Incoming webhook (posts into #general):
    <base URL>/services/T0EMULATOR/B0EMULATOR/EmulatorWebhookSecret0001
  The first stdout line is JSON with the URLs and tokens; the emulator has no real
  authentication, so keep it on loopback.";

#[derive(Debug, clap::Args)]
#[command(after_long_help = SEED_HELP, after_help = "Seed users, channels and tokens: --help")]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free one); anything but loopback gets a warning
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: std::net::SocketAddr,
    /// Number of seeded users (4 to 10000)
    #[arg(long, default_value_t = 25, value_parser = super::args::emulator_users)]
    pub users: usize,
    /// Page size for list methods when a request gives no limit (1 to 1000)
    #[arg(long, default_value_t = 10, value_parser = super::args::emulator_page)]
    pub page_size: usize,
    /// Enforce Slack's rate limits (429 with Retry-After), as a real workspace does
    #[arg(long)]
    pub rate_limits: bool,
    /// Largest page a list method returns, whatever `limit` asks for (1 to 1000; tests use a
    /// small one)
    #[arg(long, default_value_t = 1000, value_parser = super::args::emulator_page)]
    pub max_page_size: usize,
}

/// Runs until SIGINT/SIGTERM. The first stdout line is a JSON object with the URLs and tokens
/// (tests and scripts read it); a human summary goes to stderr.
pub fn run(args: EmulatorArgs) -> Result<u8> {
    if !args.listen.ip().is_loopback() {
        crate::log::warn(&format!(
            "listening on {}: the emulator has no real authentication (its tokens are published \
             in its --help), so anyone who can reach this address can read and post; keep it \
             on loopback or a trusted network",
            args.listen
        ));
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let shutdown = shutdown_signals();
        let opts = Options {
            listen: args.listen,
            users: args.users,
            page_size: args.page_size,
            rate_limits: args.rate_limits,
            max_page_size: args.max_page_size,
        };
        let running = emulator::start(opts)
            .await
            .map_err(|e| Error::usage(format!("cannot listen on {}: {e}", args.listen)).hint("pick another port with --listen 127.0.0.1:PORT (0 = any free port)"))?;
        let mut out = Out::new();
        out.write_str(&format!("{}\n", running.ready_line()));
        out.flush();
        eprintln!(
            "slackctl emulator: fake Slack workspace at {}\n  export SLACK_API_URL={}\n  export SLACK_TOKEN={}\n  webhook: {}\nSeeded users, channels and tokens: slackctl emulator --help. Ctrl-C stops it.",
            running.base_url(),
            running.api_url(),
            emulator::tokens::BOT,
            running.webhook_url()
        );
        shutdown.wait().await;
        running.shutdown().await;
        Ok(crate::exit::SUCCESS)
    })
}

/// SIGINT/SIGTERM handlers, registered before anything starts: a signal that arrives early
/// then still means "stop cleanly", never the default kill.
struct Shutdown {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

fn shutdown_signals() -> Shutdown {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Shutdown {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }
    #[cfg(not(unix))]
    Shutdown {}
}

impl Shutdown {
    async fn wait(mut self) {
        #[cfg(unix)]
        if let (Some(term), Some(int)) = (self.term.as_mut(), self.int.as_mut()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the emulator in-process and runs a short tour through the real client.
pub fn demo() -> Result<u8> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let running = emulator::start(Options::default())
            .await
            .map_err(|e| Error::failed(format!("cannot start the emulator: {e}")))?;
        let settings = Settings::for_api(&running.api_url(), emulator::tokens::BOT);
        let client = crate::run::client(&settings, false)?;
        let mut out = Out::new();
        let bin = super::self_command();
        out.write_str(&format!(
            "slackctl demo: a fake Slack workspace is running at {}\nEach step is a real HTTP call through slackctl's client.\n",
            running.base_url()
        ));
        let step = |title: &str, cmd: &str| format!("\n== {title}\n$ {bin} run {cmd}\n");

        out.write_str(&step("Who am I?", "auth.test"));
        let who = demo_call(&client, &settings, "auth.test", &[], false).await?;
        out.write_str(&format!("team {} as user {}\n", who["team"], who["user"]));

        out.write_str(&step("Every channel, following cursors", "conversations.list --all"));
        let list = demo_call(&client, &settings, "conversations.list", &[], true).await?;
        let chans = list["channels"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = chans.iter().filter_map(|c| c["name"].as_str()).map(|n| format!("#{n}")).collect();
        out.write_str(&format!("{} channels: {}\n", chans.len(), names.join(" ")));
        let general = chans
            .iter()
            .find(|c| c["name"] == "general")
            .and_then(|c| c["id"].as_str())
            .unwrap_or("C0000001")
            .to_string();

        let ch = format!("channel={general}");
        out.write_str(&step("Post a message", &format!("chat.postMessage {ch} text='Hello from slackctl'")));
        let posted =
            demo_call(&client, &settings, "chat.postMessage", &[&ch, "text=Hello from slackctl"], false).await?;
        out.write_str(&format!("posted, ts {}\n", posted["ts"]));

        out.write_str(&step("Read it back", &format!("conversations.history {ch} limit=1")));
        let hist = demo_call(&client, &settings, "conversations.history", &[&ch, "limit=1"], false).await?;
        out.write_str(&format!(
            "latest message: {} (ts {})\n",
            hist["messages"][0]["text"], hist["messages"][0]["ts"]
        ));

        out.write_str(&format!(
            "\n== The posted message comes back as a StackStorm trigger\n$ SLACK_APP_TOKEN={} {bin} sensor --allow-bot-messages --max-messages 1\n",
            emulator::tokens::APP
        ));
        out.flush();
        let line = demo_sensor(&settings).await?;
        out.write_str(&format!("{line}\n(the body st2's webhook takes: {bin} sensor | while read -r l; do curl -sS -X POST https://st2/api/v1/webhooks/st2 -H \"St2-Api-Key: $KEY\" -H 'Content-Type: application/json' -d \"$l\"; done)\n"));

        out.write_str(&step("Bad input is caught before anything is sent", "chat.postMessage text=oops"));
        let action = catalog::find("chat.postMessage").expect("catalogued");
        let raw = params::parse_cli(&["text=oops".to_string()])?;
        match params::validate(action, raw, ValidateOpts::default()) {
            Err(e) => out.write_str(&format!("exit 2: {}\n", e.message)),
            Ok(_) => out.write_str("unexpectedly valid\n"),
        }

        out.write_str(&format!(
            "\nTry it yourself (the seeded users, channels and tokens: {bin} emulator --help):\n  \
             {bin} emulator --listen 127.0.0.1:8089 >/dev/null &\n  \
             export SLACK_API_URL=http://127.0.0.1:8089/api/ SLACK_TOKEN={}\n  \
             {bin} run chat.postMessage channel={general} text=hi\n  \
             {bin} run conversations.history channel={general} limit=2 -o yaml\n  \
             {bin} run user_by_email email=user02@example.com\n  \
             kill %1    # stops the emulator\n",
            emulator::tokens::BOT
        ));
        out.flush();
        running.shutdown().await;
        Ok(crate::exit::SUCCESS)
    })
}

/// Runs the sensor in-process over Socket Mode until it has written one trigger line, and
/// returns that line. The emulator kept the earlier post for the first socket to connect.
async fn demo_sensor(base: &Settings) -> Result<String> {
    use crate::sensor::{self, Filter, Options, Timing, pipeline::FnSink};
    use std::sync::{Arc, Mutex};
    let mut settings = base.clone();
    settings.app_token = Some(crate::redact::Secret::new(emulator::tokens::APP));
    settings.sensor.mode = crate::config::SensorMode::Socket;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = {
        let lines = lines.clone();
        FnSink(move |l: &str| {
            lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(l.to_string());
            Ok(())
        })
    };
    let opts = Options {
        // The demo posts with the bot token, so let bot messages through.
        filter: Filter::new(true, Vec::new(), false, false),
        strip_formatting: false,
        listen: None,
        state_dir: None,
        max_messages: Some(1),
        timing: Timing::default(),
        verbose: false,
    };
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = sensor::run(&settings, opts, Box::new(sink), stop_rx);
    tokio::time::timeout(std::time::Duration::from_secs(10), run)
        .await
        .map_err(|_| Error::failed("the demo sensor received nothing within 10 seconds"))??;
    let first = lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first()
        .cloned();
    first.ok_or_else(|| Error::failed("the demo sensor wrote no line"))
}

async fn demo_call(
    client: &crate::transport::Client,
    settings: &Settings,
    name: &str,
    args: &[&str],
    all: bool,
) -> Result<Value> {
    let action = catalog::find(name).expect("catalogued action");
    let raw = params::parse_cli(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let values = params::validate(action, raw, ValidateOpts::default())?;
    call_method(
        client,
        action,
        values,
        settings,
        RunOptions {
            all,
            retry_writes: false,
        },
        None,
    )
    .await
}
