//! The command line: clap definitions and one module per command. House rules: command
//! modules convert arguments, call one library function, and render; anything about Slack
//! semantics lives below `cli`. Data goes to stdout, everything else to stderr.

pub mod action;
pub mod args;
pub mod emulator;
pub mod run;
pub mod sensor;

use crate::config::{Env, Flags};
use crate::error::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "slackctl",
    version,
    about = "Run Slack's Web API the StackStorm way: every method as an st2 action, a sensor, and a built-in Slack emulator",
    after_help = "Environment: SLACK_TOKEN, SLACK_APP_TOKEN, SLACK_WEBHOOK_URL, SLACK_SIGNING_SECRET, SLACK_RTM_TOKEN, SLACK_API_URL, SLACKCTL_CONFIG.\nExit codes: 0 success, 1 the action failed, 2 usage/validation/config error (nothing sent)."
)]
pub struct Cli {
    /// Config file (st2's slack.yaml format). Default: $SLACKCTL_CONFIG, ~/.config/slackctl/slack.yaml, /opt/stackstorm/configs/slack.yaml
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Named workspace profile from the config file
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Web API base URL (overrides SLACK_API_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Seconds before one HTTP request gives up (default 30)
    #[arg(long, global = true, value_name = "SECS", value_parser = args::timeout)]
    pub timeout: Option<f64>,
    /// Retries after rate limits and transient failures (default 3)
    #[arg(long, global = true, value_name = "N")]
    pub retries: Option<u32>,
    /// Send without proactive rate-limit pacing
    #[arg(long, global = true)]
    pub no_rate_limit: bool,
    /// Longest wait for a rate-limit slot, in seconds (default 300), before failing
    #[arg(long, global = true, value_name = "SECS", value_parser = args::max_wait)]
    pub max_wait: Option<f64>,
    /// Log requests and responses to stderr (secrets redacted)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print no warnings
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Browse the action catalog (like `st2 action`)
    #[command(subcommand)]
    Action(action::ActionCommand),
    /// Run an action: `slackctl run chat.postMessage channel=C123 text=hi`
    Run(run::RunArgs),
    /// Receive Slack messages and print one st2 `slack.message` trigger per line (Socket Mode, RTM or Events API)
    Sensor(sensor::SensorArgs),
    /// Run the built-in Slack emulator on loopback
    Emulator(emulator::EmulatorArgs),
    /// Start the emulator in-process and run a few actions against it through the real client
    Demo,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

impl Cli {
    pub fn flags(&self) -> Flags {
        Flags {
            config: self.config.clone(),
            profile: self.profile.clone(),
            api_url: self.api_url.clone(),
            timeout: self.timeout,
            retries: self.retries,
            no_rate_limit: self.no_rate_limit,
            max_wait: self.max_wait,
            ..Flags::default()
        }
    }
}

/// Runs the parsed command line; returns the exit code.
pub fn dispatch(cli: Cli, env: Env) -> Result<u8> {
    crate::log::set_quiet(cli.quiet);
    let flags = cli.flags();
    match cli.command {
        Command::Action(cmd) => action::run(cmd),
        Command::Run(args) => run::run(args, &flags, &env, cli.verbose),
        Command::Sensor(args) => sensor::run(args, &flags, &env, cli.verbose),
        Command::Emulator(args) => emulator::run(args),
        Command::Demo => emulator::demo(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Through `Out`, so a closed pipe (`| head -1`) is a normal end, not a panic.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "slackctl", &mut buf);
            crate::output::Out::new().write_str(&String::from_utf8_lossy(&buf));
            Ok(crate::exit::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            let man = clap_mangen::Man::new(Cli::command());
            let mut buf = Vec::new();
            man.render(&mut buf)
                .map_err(|e| crate::error::Error::failed(e.to_string()))?;
            let mut out = crate::output::Out::new();
            out.write_str(&String::from_utf8_lossy(&buf));
            Ok(crate::exit::SUCCESS)
        }
    }
}

/// A current-thread tokio runtime: enough for a CLI, and cheap to start.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::failed(format!("cannot start the async runtime: {e}")))
}
