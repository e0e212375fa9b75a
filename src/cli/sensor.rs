//! `slackctl sensor`: receive Slack messages and print one st2 trigger per line on stdout.

use crate::config::{Env, Flags};
use crate::error::{Error, Result};
use crate::sensor::{self, Ending, Filter, Options, Timing, pipeline::StdoutSink};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Socket Mode when an app token is configured, else RTM with sensor.token
    Auto,
    /// Socket Mode (app-level token, SLACK_APP_TOKEN)
    Socket,
    /// Legacy RTM (classic apps only)
    Rtm,
    /// Events API over HTTP (--listen, SLACK_SIGNING_SECRET)
    Events,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "stdout: one JSON object per message, {\"trigger\": \"slack.message\", \"payload\": {…}}, the body st2's generic webhook (/api/v1/webhooks/st2) accepts. Everything else goes to stderr.\nEnvironment: SLACK_APP_TOKEN (Socket Mode), SLACK_TOKEN (name lookups), SLACK_RTM_TOKEN, SLACK_SIGNING_SECRET (Events API), SLACKCTL_SENSOR_MODE, SLACKCTL_STRIP_FORMATTING, SLACKCTL_ALLOW_BOT_MESSAGES, SLACKCTL_STATE_BACKEND (a shared dedupe record in Redis; --state is then not used).\nSIGTERM/SIGINT: stop reading, finish what was read, exit 0."
)]
pub struct SensorArgs {
    /// How to receive events (default: sensor.mode, else auto)
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Address of the Events API receiver (--mode events); port 0 picks a free port [default: 127.0.0.1:3000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Turn Slack markup into plain text (links, mentions, <!here>, entities)
    #[arg(long)]
    pub strip_formatting: bool,
    /// Also emit messages from bots and apps (subtype bot_message, or a bot_id)
    #[arg(long)]
    pub allow_bot_messages: bool,
    /// Also emit these message subtypes, comma-separated (e.g. thread_broadcast,file_share,me_message)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub subtypes: Vec<String>,
    /// Also emit edits (message_changed), with the new text and `previous_text`
    #[arg(long)]
    pub include_edits: bool,
    /// Also emit deletions (message_deleted), with the deleted message's text
    #[arg(long)]
    pub include_deletes: bool,
    /// Drop direct messages and group DMs (default: emit them unless sensor.direct_messages is false)
    #[arg(long)]
    pub no_direct_messages: bool,
    /// Stop as on SIGTERM when stdin reaches end of file: a parent that holds a pipe to our stdin takes the sensor down when it dies
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
    /// Remember emitted messages in DIR, so a restarted sensor does not emit them again
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Exit 0 after writing N trigger lines
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Seconds between client pings on a WebSocket
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        value_parser = super::args::sensor_secs,
        help_heading = "Connection"
    )]
    pub ping_interval: f64,
    /// Seconds to wait for a pong before reconnecting
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        value_parser = super::args::sensor_secs,
        help_heading = "Connection"
    )]
    pub pong_timeout: f64,
    /// Seconds without any frame before reconnecting
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        value_parser = super::args::sensor_secs,
        help_heading = "Connection"
    )]
    pub idle_timeout: f64,
}

fn seconds(name: &str, v: f64) -> Result<Duration> {
    crate::limits::seconds(&format!("--{name}"), v, crate::limits::SENSOR_TIMING)
        .map_err(|e| Error::usage(e.message))
}

pub fn run(args: SensorArgs, flags: &Flags, env: &Env, verbose: bool) -> Result<u8> {
    let mut flags = flags.clone();
    flags.sensor_mode = args.mode.map(|m| {
        match m {
            ModeArg::Auto => "auto",
            ModeArg::Socket => "socket",
            ModeArg::Rtm => "rtm",
            ModeArg::Events => "events",
        }
        .to_string()
    });
    flags.strip_formatting = args.strip_formatting.then_some(true);
    flags.allow_bot_messages = args.allow_bot_messages.then_some(true);
    let settings = crate::config::resolve(&flags, env)?;
    // Flags beat the config file's sensor.subtypes / sensor.listen.
    let subtypes_src = if args.subtypes.is_empty() {
        &settings.file.sensor.subtypes
    } else {
        &args.subtypes
    };
    let listen = match (args.listen, settings.file.sensor.listen.as_deref()) {
        (Some(l), _) => Some(l),
        (None, Some(text)) => Some(text.parse::<SocketAddr>().map_err(|e| {
            crate::error::Error::config(format!("sensor.listen `{text}` is not an address: {e}"))
                .hint("e.g. 127.0.0.1:3000 or 0.0.0.0:3000")
        })?),
        (None, None) => None,
    };
    let subtypes: Vec<String> = subtypes_src
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let timing = Timing {
        ping_interval: seconds("ping-interval", args.ping_interval)?,
        pong_timeout: seconds("pong-timeout", args.pong_timeout)?,
        idle_timeout: seconds("idle-timeout", args.idle_timeout)?,
        ..Timing::default()
    };
    let mut filter = Filter::new(
        settings.sensor.allow_bot_messages,
        subtypes,
        args.include_edits,
        args.include_deletes,
    );
    if args.no_direct_messages || settings.file.sensor.direct_messages == Some(false) {
        filter = filter.without_direct_messages();
    }
    let opts = Options {
        filter,
        strip_formatting: settings.sensor.strip_formatting,
        listen,
        state_dir: args.state,
        max_messages: args.max_messages,
        timing,
        verbose,
    };
    // Decide the transport before starting anything, so config errors exit 2 at once.
    sensor::plan(&settings, opts.listen)?;
    let rt = super::runtime()?;
    let ending = rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = std::sync::Arc::new(stop_tx);
        if args.stop_on_stdin_eof {
            watch_stdin(stop_tx.clone());
        }
        // Registered before anything starts, so an early SIGTERM is never the default kill.
        let signals = Signals::register();
        tokio::spawn(async move {
            signals.wait().await;
            crate::log::info("sensor stopping: finishing what was already received");
            let _ = stop_tx.send(true);
            // Keep the sender alive: dropping it would look like a second stop.
            std::future::pending::<()>().await;
        });
        sensor::run(&settings, opts, Box::new(StdoutSink::new()), stop_rx).await
    })?;
    if ending == Ending::StdoutClosed {
        crate::log::info("sensor stopped: stdout was closed");
    }
    Ok(crate::exit::SUCCESS)
}

/// Reads (and discards) stdin on a plain thread until end of file, then asks the sensor to
/// stop. The st2 shim gives the sensor a pipe it never writes to: end of file means the shim's
/// process is gone, even when it was killed without a chance to send SIGTERM. A plain thread,
/// not tokio's stdin, so the blocked read never holds up the runtime's shutdown.
fn watch_stdin(stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>) {
    use std::io::Read;
    let spawned = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let mut buf = [0u8; 512];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            crate::log::info("sensor stopping: stdin was closed (the parent process is gone)");
            let _ = stop.send(true);
        });
    if let Err(e) = spawned {
        crate::log::warn(&format!("--stop-on-stdin-eof: cannot watch stdin: {e}"));
    }
}

/// SIGTERM and SIGINT, registered at once (a handler registered lazily would let a signal
/// that arrives early kill the process the default way).
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = signal(SignalKind::terminate())
                .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
                .ok();
            Signals { unix }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.unix {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
