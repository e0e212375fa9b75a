//! Configuration: where the file is found, what it may contain, and the one function that
//! resolves flags > environment > file > StackStorm schema defaults > built-in defaults.
//!
//! The file uses the st2 slack pack's format (`post_message_action`, `sensor`,
//! `action_token`, `admin`) plus slackctl's additions. Unknown keys and wrong types are errors
//! that name the file, the key and the line: a typo must never silently drop a setting.

pub mod env;
pub mod perms;

use crate::error::{Error, Result};
use crate::redact::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use env::Env;

/// Default Web API base URL; `SLACK_API_URL` or `api_url` replace the whole prefix.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";
/// StackStorm's location for the pack config.
pub const ST2_CONFIG_PATH: &str = "/opt/stackstorm/configs/slack.yaml";

/// `post_message_action`: defaults for the webhook actions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessageAction {
    pub webhook_url: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
}

/// `sensor`: st2's keys plus ours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct SensorConfig {
    /// RTM token (st2); also used for enrichment when no action token is set.
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub strip_formatting: bool,
    #[serde(default)]
    pub allow_bot_messages: bool,
    /// Socket Mode app-level token (`xapp-…`). slackctl addition.
    pub app_token: Option<String>,
    /// `auto`, `socket`, `rtm` or `events`. slackctl addition.
    pub mode: Option<String>,
    /// Events API signing secret. slackctl addition.
    pub signing_secret: Option<String>,
    /// Events API receiver address (`--mode events`). slackctl addition.
    pub listen: Option<String>,
    /// Message subtypes to emit besides plain messages. slackctl addition.
    #[serde(default)]
    pub subtypes: Vec<String>,
    /// Emit direct messages and group DMs (`slackctl sensor`: yes unless false; the st2
    /// sensor shim: only when true). slackctl addition.
    pub direct_messages: Option<bool>,
}

/// `admin`: settings of the legacy `users.admin.invite` action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default)]
    pub admin_token: String,
    /// Workspace subdomain for `https://<organization>.slack.com/api/users.admin.invite`.
    pub organization: Option<String>,
    #[serde(default = "yes")]
    pub set_active: bool,
    #[serde(default = "one")]
    pub attempts: i64,
    #[serde(default)]
    pub auto_join_channels: Vec<String>,
}

fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            admin_token: String::new(),
            organization: None,
            set_active: true,
            attempts: 1,
            auto_join_channels: Vec::new(),
        }
    }
}

/// A named workspace/bot: overrides the top-level credentials when chosen with `--profile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub action_token: Option<String>,
    pub app_token: Option<String>,
    pub webhook_url: Option<String>,
    pub signing_secret: Option<String>,
    pub api_url: Option<String>,
}

/// `rate_limits`: proactive pacing (slackctl addition). Numbers are calls per minute unless
/// said otherwise; absent values keep Slack's documented floors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub tier1: Option<u32>,
    pub tier2: Option<u32>,
    pub tier3: Option<u32>,
    pub tier4: Option<u32>,
    /// `chat.postMessage` per channel, per second.
    pub per_channel: Option<u32>,
    /// `chat.postMessage` per channel: how many may go at once after a quiet spell.
    pub channel_burst: Option<u32>,
    /// Incoming webhook posts per second.
    pub webhook: Option<u32>,
    /// Per-method overrides, calls per minute.
    #[serde(default)]
    pub methods: BTreeMap<String, u32>,
    /// Longest wait for a slot, in seconds, before failing instead (default 300).
    pub max_wait: Option<f64>,
    /// Where the budget shared by concurrent processes is kept.
    pub state_file: Option<PathBuf>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            tier1: None,
            tier2: None,
            tier3: None,
            tier4: None,
            per_channel: None,
            channel_burst: None,
            webhook: None,
            methods: BTreeMap::new(),
            max_wait: None,
            state_file: None,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub post_message_action: PostMessageAction,
    #[serde(default)]
    pub sensor: SensorConfig,
    pub action_token: Option<String>,
    #[serde(default)]
    pub admin: AdminConfig,
    /// Web API base URL. slackctl addition.
    pub api_url: Option<String>,
    /// Seconds before one HTTP request gives up. slackctl addition.
    pub timeout: Option<f64>,
    /// Retries after 429s and transient failures. slackctl addition.
    pub retries: Option<u32>,
    /// Profile used when `--profile` is not given. slackctl addition.
    pub default_profile: Option<String>,
    /// Named workspaces/bots. slackctl addition.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Proactive pacing. slackctl addition.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Where state shared by processes lives: absent for local files, `redis://…` for one
    /// Redis shared by several hosts. slackctl addition.
    pub state_backend: Option<String>,
    /// Where the st2 pack's Python entry points look for the binary last (they read it;
    /// slackctl itself does not). slackctl addition.
    pub slackctl_path: Option<String>,
}

/// Settings given on the command line (the highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub profile: Option<String>,
    pub api_url: Option<String>,
    pub timeout: Option<f64>,
    pub retries: Option<u32>,
    /// `--no-rate-limit`: send without pacing.
    pub no_rate_limit: bool,
    /// `--max-wait SECS`: the longest wait for a rate-limit slot.
    pub max_wait: Option<f64>,
    /// `sensor --mode`.
    pub sensor_mode: Option<String>,
    /// `sensor --strip-formatting` (only ever `Some(true)`: a flag cannot say false).
    pub strip_formatting: Option<bool>,
    /// `sensor --allow-bot-messages`.
    pub allow_bot_messages: Option<bool>,
}

/// How `slackctl sensor` receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorMode {
    /// Socket Mode when an app token is configured, else RTM when an RTM token is.
    Auto,
    Socket,
    Rtm,
    Events,
}

impl SensorMode {
    pub fn parse(s: &str) -> Option<SensorMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(SensorMode::Auto),
            "socket" | "socket_mode" | "socket-mode" => Some(SensorMode::Socket),
            "rtm" => Some(SensorMode::Rtm),
            "events" | "events_api" | "http" => Some(SensorMode::Events),
            _ => None,
        }
    }
}

/// The sensor's resolved settings (its secrets live in [`Settings`] with the others).
#[derive(Debug, Clone)]
pub struct SensorSettings {
    pub mode: SensorMode,
    pub strip_formatting: bool,
    pub allow_bot_messages: bool,
    /// RTM token: `SLACK_RTM_TOKEN`, else `sensor.token`.
    pub rtm_token: Option<Secret>,
}

impl Default for SensorSettings {
    fn default() -> Self {
        SensorSettings {
            mode: SensorMode::Auto,
            strip_formatting: false,
            allow_bot_messages: false,
            rtm_token: None,
        }
    }
}

/// A boolean from the environment: true/false, yes/no, on/off, 1/0.
fn env_bool(env: &Env, name: &str) -> Result<Option<bool>> {
    let Some(v) = env.get(name) else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(Error::config(format!("{name}={v} is not a boolean")).hint("use true or false")),
    }
}

/// Everything resolved, ready to use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_url: String,
    /// Web API token: `SLACK_TOKEN`, else the profile's or file's `action_token`.
    pub token: Option<Secret>,
    pub app_token: Option<Secret>,
    pub webhook_url: Option<Secret>,
    pub signing_secret: Option<Secret>,
    pub sensor: SensorSettings,
    pub timeout: Duration,
    pub retries: u32,
    /// Whether `api_url` came from an explicit setting (changes `users.admin.invite`'s host).
    pub api_url_explicit: bool,
    pub file: FileConfig,
    /// The file the config came from, if any.
    pub source: Option<PathBuf>,
    /// The profile in use (`--profile` or `default_profile`), with its values.
    pub profile: Option<(String, Profile)>,
    /// Where a config file was looked for (for "no config file" messages).
    pub searched: Vec<PathBuf>,
    /// Pacing limits, and the shared state file (None when pacing is off).
    pub limits: crate::transport::pace::Limits,
    pub pace_state: Option<PathBuf>,
    pub max_wait: Duration,
    /// Where shared state lives (`state_backend`): local files or one Redis.
    pub backend: crate::store::Backend,
}

/// Finds the config file: `--config`, `SLACKCTL_CONFIG`, the user's config dir, then st2's.
/// Returns the path and whether it was named explicitly (a missing explicit file is an error).
pub fn locate(flags: &Flags, env: &Env) -> Option<(PathBuf, bool)> {
    if let Some(p) = &flags.config {
        return Some((p.clone(), true));
    }
    if let Some(p) = env.get(env::SLACKCTL_CONFIG) {
        return Some((PathBuf::from(p), true));
    }
    let user_dir = env
        .get(env::XDG_CONFIG_HOME)
        .map(PathBuf::from)
        .or_else(|| env.get(env::HOME).map(|h| Path::new(h).join(".config")));
    if let Some(dir) = user_dir {
        let p = dir.join("slackctl").join("slack.yaml");
        if p.is_file() {
            return Some((p, false));
        }
    }
    let st2 = PathBuf::from(ST2_CONFIG_PATH);
    st2.is_file().then_some((st2, false))
}

/// Every place [`locate`] considers, in order (for messages when none exists).
pub fn search_path(flags: &Flags, env: &Env) -> Vec<PathBuf> {
    if let Some(p) = &flags.config {
        return vec![p.clone()];
    }
    if let Some(p) = env.get(env::SLACKCTL_CONFIG) {
        return vec![PathBuf::from(p)];
    }
    let user_dir = env
        .get(env::XDG_CONFIG_HOME)
        .map(PathBuf::from)
        .or_else(|| env.get(env::HOME).map(|h| Path::new(h).join(".config")));
    let mut v: Vec<PathBuf> = user_dir
        .map(|d| d.join("slackctl").join("slack.yaml"))
        .into_iter()
        .collect();
    v.push(PathBuf::from(ST2_CONFIG_PATH));
    v
}

/// A secret or URL that comes from one of several places; see [`Settings::looked_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The Web API token.
    Token,
    /// The Socket Mode app-level token.
    AppToken,
    /// The incoming webhook URL.
    WebhookUrl,
    /// The Events API signing secret.
    SigningSecret,
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<FileConfig> {
    // Bounded, regular files only (security hook: `--config /dev/zero` must not hang).
    let text = crate::limits::read_text_file("config file", path).map_err(|e| Error {
        kind: crate::error::Kind::Config,
        ..e
    })?;
    parse(&text, path)
}

/// Parses config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<FileConfig> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let cfg: FileConfig = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let first = first_line(&msg);
        let key = line_number(&first).and_then(|n| key_at(text, n));
        let at_key = key.map(|k| format!(" (key `{k}`)")).unwrap_or_default();
        let mut err = Error::config(format!(
            "invalid config file {}, {first}{at_key}",
            path.display()
        ));
        if let Some(hint) = unknown_key_hint(&msg) {
            err = err.hint(hint);
        }
        err.hint("the keys are described in slack.yaml.example")
    })?;
    check_st2kv(text, path)?;
    Ok(cfg)
}

/// The parser's first line ("line L column C: what"), without its "error: " prefix.
fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s);
    line.trim().trim_start_matches("error: ").to_string()
}

/// The line number in the parser's "line L column C" prefix.
fn line_number(msg: &str) -> Option<usize> {
    msg.strip_prefix("line ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The dotted key path of the mapping entry on 1-based line `n` (parents found by indentation).
fn key_at(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let entry = |l: &str| -> Option<(usize, String)> {
        let indent = l.len() - l.trim_start().len();
        let body = l.trim_start().trim_start_matches("- ");
        let (k, _) = body.split_once(':')?;
        let k = k.trim().trim_matches(['"', '\'']);
        (!k.is_empty() && !k.starts_with('#')).then(|| (indent, k.to_string()))
    };
    let (mut indent, key) = entry(lines.get(n.checked_sub(1)?)?)?;
    let mut path = vec![key];
    for l in lines[..n - 1].iter().rev() {
        if let Some((i, k)) = entry(l)
            && i < indent
        {
            path.push(k);
            indent = i;
        }
    }
    path.reverse();
    Some(path.join("."))
}

/// Turns serde's "unknown field `x`, expected one of …" into a "did you mean" hint.
fn unknown_key_hint(msg: &str) -> Option<String> {
    let start = msg.find("unknown field `")? + "unknown field `".len();
    let key = &msg[start..start + msg[start..].find('`')?];
    let list = msg[start..]
        .split("expected one of ")
        .nth(1)?
        .lines()
        .next()?;
    let expected = list.split(',').map(|k| k.trim().trim_matches('`'));
    let best = crate::catalog::suggest_from(key, expected, 1);
    best.first()
        .map(|b| format!("did you mean `{b}` instead of `{key}`?"))
}

/// `{{ st2kv.… }}` values only resolve inside StackStorm; say so instead of sending them.
fn check_st2kv(text: &str, path: &Path) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(pos) = line.find("st2kv.")
            && line[..pos].contains("{{")
        {
            let key = line.split(':').next().unwrap_or("").trim();
            return Err(Error::config(format!(
                "{}:{}: `{key}` uses a StackStorm datastore reference ({{{{ st2kv.… }}}}), which \
                     only resolves inside StackStorm",
                path.display(),
                i + 1
            ))
            .hint(
                "outside st2, put the value in the file or use the environment (e.g. SLACK_TOKEN)",
            ));
        }
    }
    Ok(())
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

/// The one place where precedence is decided: flags > environment > file (profile first) >
/// st2 schema defaults (filled by the file types) > built-in defaults.
pub fn resolve(flags: &Flags, env: &Env) -> Result<Settings> {
    let (file, source) = match locate(flags, env) {
        Some((path, explicit)) => {
            if !path.exists() {
                if explicit {
                    return Err(Error::config(format!("config file {} does not exist", path.display()))
                        .hint("pass an existing file with --config or SLACKCTL_CONFIG, or leave both unset"));
                }
                (FileConfig::default(), None)
            } else {
                let file = load_file(&path)?;
                perms::warn_if_exposed(&path, &file); // security hook
                (file, Some(path))
            }
        }
        None => (FileConfig::default(), None),
    };
    let profile_name = flags
        .profile
        .clone()
        .or_else(|| file.default_profile.clone());
    let profile = match &profile_name {
        Some(name) if source.is_none() => {
            let looked: Vec<String> = search_path(flags, env)
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(Error::config(format!(
                "profile `{name}` was asked for, but there is no config file (looked at {})",
                looked.join(", ")
            ))
            .hint("profiles live under `profiles:` in a config file; pass one with --config PATH or SLACKCTL_CONFIG (slack.yaml.example shows the format)"));
        }
        Some(name) => Some(file.profiles.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            let path = source.as_deref().map(|p| p.display().to_string());
            let mut e = Error::config(format!(
                "profile `{name}` is not defined in the config file {}",
                path.unwrap_or_default()
            ));
            if names.is_empty() {
                e = e.hint("define it under `profiles:` in the config file");
            } else {
                e = e.hint(format!("defined profiles: {}", names.join(", ")));
            }
            e
        })?),
        None => None,
    };
    let p = profile.clone().unwrap_or_default();

    // Each source in turn; an empty value means "not set" at every level, so a profile
    // inherits what it leaves empty from the top level.
    let secret = |v: Option<&str>| nonempty(v).map(Secret::new);
    let token = secret(
        env.get(env::SLACK_TOKEN)
            .or(nonempty(p.action_token.as_deref()))
            .or(nonempty(file.action_token.as_deref())),
    );
    let app_token = secret(
        env.get(env::SLACK_APP_TOKEN)
            .or(nonempty(p.app_token.as_deref()))
            .or(nonempty(file.sensor.app_token.as_deref())),
    );
    let webhook_url = secret(
        env.get(env::SLACK_WEBHOOK_URL)
            .or(nonempty(p.webhook_url.as_deref()))
            .or(nonempty(file.post_message_action.webhook_url.as_deref())),
    );
    let signing_secret = secret(
        env.get(env::SLACK_SIGNING_SECRET)
            .or(nonempty(p.signing_secret.as_deref()))
            .or(nonempty(file.sensor.signing_secret.as_deref())),
    );
    // Register the remaining secrets of the file too, so they are scrubbed from any output.
    for s in [file.sensor.token.as_str(), file.admin.admin_token.as_str()] {
        crate::redact::register(s);
    }
    for pr in file.profiles.values() {
        for s in [
            &pr.action_token,
            &pr.app_token,
            &pr.webhook_url,
            &pr.signing_secret,
        ]
        .into_iter()
        .flatten()
        {
            crate::redact::register(s);
        }
    }

    let api_choice = nonempty(flags.api_url.as_deref())
        .or(env.get(env::SLACK_API_URL))
        .or(nonempty(p.api_url.as_deref()))
        .or(nonempty(file.api_url.as_deref()));
    let api_url_explicit = nonempty(api_choice).is_some();
    let mut api_url = nonempty(api_choice).unwrap_or(DEFAULT_API_URL).to_string();
    if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
        return Err(Error::config(format!(
            "API URL `{api_url}` must start with http:// or https://"
        ))
        .hint("SLACK_API_URL replaces the whole prefix, e.g. https://slack.com/api/"));
    }
    if !api_url.ends_with('/') {
        api_url.push('/');
    }
    let rtm_token = secret(
        env.get(env::SLACK_RTM_TOKEN)
            .or(Some(file.sensor.token.as_str())),
    );
    let mode_text = flags
        .sensor_mode
        .as_deref()
        .map(|m| (m, "--mode"))
        .or(env
            .get(env::SLACKCTL_SENSOR_MODE)
            .map(|m| (m, env::SLACKCTL_SENSOR_MODE)))
        .or(file.sensor.mode.as_deref().map(|m| (m, "sensor.mode")));
    let mode = match mode_text {
        None => SensorMode::Auto,
        Some((m, from)) => SensorMode::parse(m).ok_or_else(|| {
            Error::config(format!("{from}: unknown sensor mode `{m}`"))
                .hint("use auto, socket, rtm or events")
        })?,
    };
    let sensor = SensorSettings {
        mode,
        strip_formatting: flags
            .strip_formatting
            .or(env_bool(env, env::SLACKCTL_STRIP_FORMATTING)?)
            .unwrap_or(file.sensor.strip_formatting),
        allow_bot_messages: flags
            .allow_bot_messages
            .or(env_bool(env, env::SLACKCTL_ALLOW_BOT_MESSAGES)?)
            .unwrap_or(file.sensor.allow_bot_messages),
        rtm_token,
    };
    let timeout = flags.timeout.or(file.timeout).unwrap_or(30.0);
    let timeout = crate::limits::seconds(
        &setting_name("--timeout", "timeout", flags.timeout.is_some(), &source),
        timeout,
        crate::limits::TIMEOUT,
    )?;
    let rl = &file.rate_limits;
    let defaults = crate::transport::pace::Limits::default();
    let limits = crate::transport::pace::Limits {
        tiers: [
            rl.tier1.unwrap_or(defaults.tiers[0]),
            rl.tier2.unwrap_or(defaults.tiers[1]),
            rl.tier3.unwrap_or(defaults.tiers[2]),
            rl.tier4.unwrap_or(defaults.tiers[3]),
        ],
        per_channel: rl.per_channel.unwrap_or(defaults.per_channel),
        channel_burst: rl.channel_burst.unwrap_or(defaults.channel_burst),
        webhook: rl.webhook.unwrap_or(defaults.webhook),
        methods: rl.methods.clone(),
    };
    let pace_state = (!flags.no_rate_limit && rl.enabled).then(|| {
        rl.state_file
            .clone()
            .unwrap_or_else(|| default_state_path(env))
    });
    let backend = match env.get(env::SLACKCTL_STATE_BACKEND) {
        Some(v) => crate::store::Backend::choose(Some(v), env, env::SLACKCTL_STATE_BACKEND)?,
        None => crate::store::Backend::choose(file.state_backend.as_deref(), env, "state_backend")?,
    };
    let max_wait = flags.max_wait.or(rl.max_wait).unwrap_or(300.0);
    let max_wait = crate::limits::seconds(
        &setting_name(
            "--max-wait",
            "rate_limits.max_wait",
            flags.max_wait.is_some(),
            &source,
        ),
        max_wait,
        crate::limits::MAX_WAIT,
    )?;
    Ok(Settings {
        backend,
        limits,
        pace_state,
        max_wait,
        api_url,
        token,
        app_token,
        webhook_url,
        signing_secret,
        sensor,
        timeout,
        retries: flags.retries.or(file.retries).unwrap_or(3),
        api_url_explicit,
        file,
        profile: profile_name.zip(profile),
        searched: if source.is_none() {
            search_path(flags, env)
        } else {
            Vec::new()
        },
        source,
    })
}

/// How an error names a setting: the flag, or the key and the file it came from.
fn setting_name(flag: &str, key: &str, from_flag: bool, file: &Option<PathBuf>) -> String {
    match (from_flag, file) {
        (true, _) => flag.to_string(),
        (false, Some(f)) => format!("{key} in {}", f.display()),
        (false, None) => key.to_string(),
    }
}

/// The per-user directory for state that outlives a process (pacing, caches):
/// `$XDG_STATE_HOME/slackctl`, else `~/.local/state/slackctl`, else (no home, e.g. a service
/// account) `slackctl-<uid>` under the temp dir. The temp dir is shared by every user, so that
/// last name is per user, and `store::create_private_dir` refuses it unless this user owns it
/// and nobody else can write to it (someone could create it first to plant state).
pub fn state_dir(env: &Env) -> PathBuf {
    env.get(env::XDG_STATE_HOME)
        .filter(|d| Path::new(d).is_absolute())
        .map(|d| Path::new(d).join("slackctl"))
        .or_else(|| {
            env.get(env::HOME)
                .map(|h| Path::new(h).join(".local/state/slackctl"))
        })
        .unwrap_or_else(|| {
            let user =
                crate::store::current_uid().map_or_else(|| "user".to_string(), |u| u.to_string());
            std::env::temp_dir().join(format!("slackctl-{user}"))
        })
}

/// Where concurrent processes share their rate-limit budget.
pub fn default_state_path(env: &Env) -> PathBuf {
    state_dir(env).join(crate::store::pace::FILE)
}

impl Settings {
    /// Where `what` was looked for, and what was found there, for the error when it is
    /// missing: "SLACK_WEBHOOK_URL (not set), profile `staging` webhook_url in slack.yaml
    /// (empty), post_message_action.webhook_url in slack.yaml (empty)".
    pub fn looked_for(&self, what: Credential) -> String {
        let (var, key, top, top_value) = match what {
            Credential::Token => (
                env::SLACK_TOKEN,
                "action_token",
                "action_token",
                self.file.action_token.as_deref(),
            ),
            Credential::AppToken => (
                env::SLACK_APP_TOKEN,
                "app_token",
                "sensor.app_token",
                self.file.sensor.app_token.as_deref(),
            ),
            Credential::WebhookUrl => (
                env::SLACK_WEBHOOK_URL,
                "webhook_url",
                "post_message_action.webhook_url",
                self.file.post_message_action.webhook_url.as_deref(),
            ),
            Credential::SigningSecret => (
                env::SLACK_SIGNING_SECRET,
                "signing_secret",
                "sensor.signing_secret",
                self.file.sensor.signing_secret.as_deref(),
            ),
        };
        let state = |v: Option<&str>| match v {
            None => "not set",
            Some(_) => "empty",
        };
        let mut places = vec![format!("{var} (not set)")];
        match &self.source {
            None => {
                let looked: Vec<String> = self
                    .searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                places.push(format!("no config file (looked at {})", looked.join(", ")));
            }
            Some(path) => {
                let path = path.display();
                if let Some((name, p)) = &self.profile {
                    let v = match what {
                        Credential::Token => p.action_token.as_deref(),
                        Credential::AppToken => p.app_token.as_deref(),
                        Credential::WebhookUrl => p.webhook_url.as_deref(),
                        Credential::SigningSecret => p.signing_secret.as_deref(),
                    };
                    places.push(format!("profiles.{name}.{key} in {path} ({})", state(v)));
                }
                places.push(format!("{top} in {path} ({})", state(top_value)));
            }
        }
        format!("looked for it in: {}", places.join("; "))
    }

    /// Settings for one base URL and token with everything else at its default (the demo).
    pub fn for_api(api_url: &str, token: &str) -> Settings {
        Settings {
            api_url: api_url.to_string(),
            token: Some(Secret::new(token)),
            app_token: None,
            webhook_url: None,
            signing_secret: None,
            sensor: SensorSettings::default(),
            timeout: Duration::from_secs(30),
            retries: 3,
            api_url_explicit: true,
            file: FileConfig::default(),
            source: None,
            profile: None,
            searched: Vec::new(),
            limits: crate::transport::pace::Limits::default(),
            pace_state: None,
            max_wait: Duration::from_secs(300),
            backend: crate::store::Backend::Local {
                dir: std::env::temp_dir().join("slackctl"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn empty_file_gets_st2_schema_defaults() {
        let c = parse("", Path::new("x")).unwrap();
        assert!(c.admin.set_active);
        assert_eq!(c.admin.attempts, 1);
        assert!(!c.sensor.strip_formatting);
        assert!(c.action_token.is_none());
        let c = parse("admin:\n  organization: acme\n", Path::new("x")).unwrap();
        assert!(c.admin.set_active);
    }

    #[test]
    fn unknown_key_names_key_line_and_suggestion() {
        let err = parse(
            "action_token: x\npost_message_action:\n  chanel: '#a'\n",
            Path::new("/tmp/s.yaml"),
        )
        .unwrap_err();
        assert!(err.message.contains("/tmp/s.yaml"), "{}", err.message);
        assert!(err.message.contains("chanel"), "{}", err.message);
        assert!(
            err.message.contains('3'),
            "line number missing: {}",
            err.message
        );
        assert!(
            err.hints.iter().any(|h| h.contains("`channel`")),
            "{:?}",
            err.hints
        );
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("sensor:\n  strip_formatting: [1]\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.message.contains("c.yaml"));
    }

    #[test]
    fn st2kv_reference_is_explained() {
        let err = parse(
            "action_token: \"{{ st2kv.system.slack_token }}\"\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert!(err.message.contains("c.yaml:1"), "{}", err.message);
        assert!(err.message.contains("StackStorm"));
    }

    #[test]
    fn environment_beats_file_and_flags_beat_environment() {
        let dir = std::env::temp_dir().join(format!("slackctl-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("slack.yaml");
        std::fs::write(
            &f,
            "action_token: xoxb-from-file\napi_url: http://file.example/api\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f.clone()),
            ..Default::default()
        };
        let s = resolve(&flags, &env(&[])).unwrap();
        assert_eq!(s.token.unwrap().expose(), "xoxb-from-file");
        assert_eq!(s.api_url, "http://file.example/api/");
        let e = env(&[
            ("SLACK_TOKEN", "xoxb-from-env"),
            ("SLACK_API_URL", "http://env.example/api/"),
        ]);
        let s = resolve(&flags, &e).unwrap();
        assert_eq!(s.token.unwrap().expose(), "xoxb-from-env");
        assert_eq!(s.api_url, "http://env.example/api/");
        let flags = Flags {
            api_url: Some("http://flag.example/".into()),
            ..flags
        };
        assert_eq!(resolve(&flags, &e).unwrap().api_url, "http://flag.example/");
    }

    #[test]
    fn sensor_settings_follow_the_same_precedence() {
        let dir = std::env::temp_dir().join(format!("slackctl-cfg-sensor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("slack.yaml");
        std::fs::write(
            &f,
            "sensor:\n  token: xoxp-rtm-from-file\n  mode: rtm\n  strip_formatting: true\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f),
            ..Default::default()
        };
        let s = resolve(&flags, &env(&[])).unwrap().sensor;
        assert_eq!(s.mode, SensorMode::Rtm);
        assert!(s.strip_formatting && !s.allow_bot_messages);
        assert_eq!(s.rtm_token.unwrap().expose(), "xoxp-rtm-from-file");
        let e = env(&[
            ("SLACKCTL_SENSOR_MODE", "socket"),
            ("SLACKCTL_STRIP_FORMATTING", "false"),
            ("SLACKCTL_ALLOW_BOT_MESSAGES", "yes"),
            ("SLACK_RTM_TOKEN", "xoxp-rtm-from-env"),
        ]);
        let s = resolve(&flags, &e).unwrap().sensor;
        assert_eq!(s.mode, SensorMode::Socket);
        assert!(!s.strip_formatting && s.allow_bot_messages);
        assert_eq!(s.rtm_token.unwrap().expose(), "xoxp-rtm-from-env");
        let flags = Flags {
            sensor_mode: Some("events".into()),
            strip_formatting: Some(true),
            ..flags
        };
        let s = resolve(&flags, &e).unwrap().sensor;
        assert_eq!(s.mode, SensorMode::Events);
        assert!(s.strip_formatting);
        let bad = env(&[("SLACKCTL_SENSOR_MODE", "carrier-pigeon")]);
        assert!(resolve(&flags_without_mode(&flags), &bad).is_err());
        let bad = env(&[("SLACKCTL_STRIP_FORMATTING", "maybe")]);
        assert!(resolve(&flags, &bad).is_err());
    }

    fn flags_without_mode(f: &Flags) -> Flags {
        Flags {
            sensor_mode: None,
            ..f.clone()
        }
    }

    #[test]
    fn state_backend_from_the_file_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("slackctl-cfg-backend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("slack.yaml");
        let flags = Flags {
            config: Some(f.clone()),
            ..Default::default()
        };
        std::fs::write(&f, "action_token: xoxb-x\n").unwrap();
        let s = resolve(&flags, &env(&[("HOME", "/home/u")])).unwrap();
        assert!(matches!(s.backend, crate::store::Backend::Local { .. }));
        std::fs::write(
            &f,
            "state_backend: rediss://:file-pw-123@redis.example:6380/2\n",
        )
        .unwrap();
        let s = resolve(&flags, &env(&[])).unwrap();
        assert_eq!(
            s.backend,
            crate::store::Backend::Redis {
                url: "rediss://:file-pw-123@redis.example:6380/2".into()
            }
        );
        assert!(!format!("{:?}", s.backend).contains("file-pw-123"));
        let e = env(&[("SLACKCTL_STATE_BACKEND", "redis://10.0.0.5:6379/0")]);
        let s = resolve(&flags, &e).unwrap();
        assert_eq!(s.backend.describe(), "redis://10.0.0.5:6379/0");
        let bad = env(&[("SLACKCTL_STATE_BACKEND", "etcd://x")]);
        let err = resolve(&flags, &bad).unwrap_err();
        assert!(
            err.message.contains("SLACKCTL_STATE_BACKEND"),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let flags = Flags {
            config: Some("/nonexistent/slack.yaml".into()),
            ..Default::default()
        };
        assert!(resolve(&flags, &env(&[])).is_err());
    }
}
