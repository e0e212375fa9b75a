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
    /// Run the built-in Slack emulator: a fake workspace with seeded users and channels
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

/// Global flags that only change commands which talk to Slack (`run`, `sensor`).
const CLIENT_FLAGS: &[&str] = &[
    "config",
    "profile",
    "api_url",
    "timeout",
    "retries",
    "no_rate_limit",
    "max_wait",
    "verbose",
];

/// Commands the client flags do not affect: their help leaves them out.
const NO_CLIENT: &[&str] = &["action", "emulator", "demo", "completions", "man"];

/// The command line as it is parsed and printed: the client flags hidden from the help of
/// commands they do not affect, and built, so every usage line starts with `slackctl`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| CLIENT_FLAGS.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    for name in NO_CLIENT {
        cmd = cmd.mut_subcommand(name, |sub| with_hidden(sub, &hidden));
    }
    cmd.build();
    cmd
}

/// Gives `sub` (and its subcommands) hidden copies of `args`, which clap then does not
/// propagate from the top level: they still parse, but the help leaves them out.
fn with_hidden(mut sub: clap::Command, args: &[clap::Arg]) -> clap::Command {
    let names: Vec<String> = sub
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for n in names {
        sub = sub.mut_subcommand(n, |c| with_hidden(c, args));
    }
    sub.args(args.iter().cloned())
}

/// Parses the process arguments with [`command`].
pub fn parse() -> std::result::Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// The long help of one subcommand, exactly as `slackctl <name> --help` prints it.
pub fn subcommand_help(name: &str) -> String {
    let mut cmd = command();
    cmd.find_subcommand_mut(name)
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default()
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
            let mut cmd = command();
            // Through `Out`, so a closed pipe (`| head -1`) is a normal end, not a panic.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "slackctl", &mut buf);
            crate::output::Out::new().write_str(&String::from_utf8_lossy(&buf));
            Ok(crate::exit::SUCCESS)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(command());
            let mut buf = Vec::new();
            man.render(&mut buf)
                .map_err(|e| crate::error::Error::failed(e.to_string()))?;
            let mut out = crate::output::Out::new();
            out.write_str(&String::from_utf8_lossy(&buf));
            Ok(crate::exit::SUCCESS)
        }
    }
}

/// How to run this same binary from the user's shell: `slackctl` when that is what `PATH`
/// finds, else its path (relative when it is below the current directory), so that printed
/// commands work when pasted.
pub fn self_command() -> String {
    let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
    else {
        return "slackctl".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("slackctl"))
            .find(|c| c.is_file())
            .and_then(|c| c.canonicalize().ok())
            .is_some_and(|c| c == exe)
    });
    if on_path {
        return "slackctl".into();
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|d| d.canonicalize().ok())
        .and_then(|d| exe.strip_prefix(&d).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| exe.clone());
    let text = shown.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A current-thread tokio runtime: enough for a CLI, and cheap to start.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::failed(format!("cannot start the async runtime: {e}")))
}
