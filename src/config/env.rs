//! Every environment variable slackctl reads, declared once. The process environment is
//! read in one place ([`Env::capture`]); the rest of the code gets this snapshot, so tests can
//! pass their own.

use std::collections::HashMap;

/// Web API token (bot `xoxb-` or user `xoxp-`); beats `action_token` in the config file.
pub const SLACK_TOKEN: &str = "SLACK_TOKEN";
/// Socket Mode app-level token (`xapp-`); beats `sensor.app_token`.
pub const SLACK_APP_TOKEN: &str = "SLACK_APP_TOKEN";
/// Incoming webhook URL; beats `post_message_action.webhook_url`.
pub const SLACK_WEBHOOK_URL: &str = "SLACK_WEBHOOK_URL";
/// Events API signing secret; beats `sensor.signing_secret`.
pub const SLACK_SIGNING_SECRET: &str = "SLACK_SIGNING_SECRET";
/// Legacy RTM token (classic apps); beats `sensor.token`.
pub const SLACK_RTM_TOKEN: &str = "SLACK_RTM_TOKEN";
/// Sensor transport: `auto`, `socket`, `rtm` or `events`; beats `sensor.mode`.
pub const SLACKCTL_SENSOR_MODE: &str = "SLACKCTL_SENSOR_MODE";
/// `true`/`false`: strip Slack markup in trigger text; beats `sensor.strip_formatting`.
pub const SLACKCTL_STRIP_FORMATTING: &str = "SLACKCTL_STRIP_FORMATTING";
/// `true`/`false`: emit bot and app messages; beats `sensor.allow_bot_messages`.
pub const SLACKCTL_ALLOW_BOT_MESSAGES: &str = "SLACKCTL_ALLOW_BOT_MESSAGES";
/// Web API base URL, replacing `https://slack.com/api/` (e.g. the emulator's).
pub const SLACK_API_URL: &str = "SLACK_API_URL";
/// Shared state for several hosts (`redis://host:6379/0`); beats `state_backend`.
pub const SLACKCTL_STATE_BACKEND: &str = "SLACKCTL_STATE_BACKEND";
/// Most bytes an `@key=path` file (or `--parameters -`) may hold: bytes or K/M/G.
pub const SLACKCTL_MAX_FILE_SIZE: &str = "SLACKCTL_MAX_FILE_SIZE";
/// Path of the config file.
pub const SLACKCTL_CONFIG: &str = "SLACKCTL_CONFIG";
/// Standard locations for the user's config directory.
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub const HOME: &str = "HOME";
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// Disables colour in terminal output.
pub const NO_COLOR: &str = "NO_COLOR";

/// The documented variables, for the README and `--help`.
pub const DOCUMENTED: &[(&str, &str)] = &[
    (
        SLACK_TOKEN,
        "Web API token; beats action_token in the config file",
    ),
    (
        SLACK_APP_TOKEN,
        "Socket Mode app-level token (xapp-); beats sensor.app_token",
    ),
    (
        SLACK_WEBHOOK_URL,
        "incoming webhook URL; beats post_message_action.webhook_url",
    ),
    (
        SLACK_SIGNING_SECRET,
        "Events API signing secret; beats sensor.signing_secret",
    ),
    (
        SLACK_RTM_TOKEN,
        "legacy RTM token for `sensor --mode rtm`; beats sensor.token",
    ),
    (
        SLACK_API_URL,
        "Web API base URL (default https://slack.com/api/)",
    ),
    (
        SLACKCTL_SENSOR_MODE,
        "sensor transport: auto, socket, rtm or events; beats sensor.mode",
    ),
    (
        SLACKCTL_STRIP_FORMATTING,
        "true/false; beats sensor.strip_formatting",
    ),
    (
        SLACKCTL_ALLOW_BOT_MESSAGES,
        "true/false; beats sensor.allow_bot_messages",
    ),
    (
        SLACKCTL_STATE_BACKEND,
        "redis://host:6379/0 (rediss:// for TLS): pacing, send-once and sensor dedupe shared by several hosts; beats state_backend",
    ),
    (
        SLACKCTL_MAX_FILE_SIZE,
        "most bytes an @key=path file may hold (default 8M; bytes or K/M/G)",
    ),
    (
        SLACKCTL_CONFIG,
        "config file path (else ~/.config/slackctl/slack.yaml, then /opt/stackstorm/configs/slack.yaml)",
    ),
];

/// A snapshot of the variables above.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads the process environment: the only place that does.
    #[allow(clippy::disallowed_methods)]
    pub fn capture() -> Self {
        let names = [
            SLACK_TOKEN,
            SLACK_APP_TOKEN,
            SLACK_WEBHOOK_URL,
            SLACK_SIGNING_SECRET,
            SLACK_RTM_TOKEN,
            SLACK_API_URL,
            SLACKCTL_CONFIG,
            SLACKCTL_MAX_FILE_SIZE,
            SLACKCTL_SENSOR_MODE,
            SLACKCTL_STRIP_FORMATTING,
            SLACKCTL_ALLOW_BOT_MESSAGES,
            SLACKCTL_STATE_BACKEND,
            XDG_CONFIG_HOME,
            HOME,
            XDG_STATE_HOME,
            NO_COLOR,
        ];
        Env::from_pairs(
            names
                .iter()
                .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v))),
        )
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Env {
            vars: pairs.into_iter().collect(),
        }
    }

    /// The value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
