//! `slackctl sensor`: Slack messages in, StackStorm `slack.message` trigger lines out.
//!
//! Pure parts, unit-tested with plain values: [`event`] (frames read as typed structs that
//! borrow from the received text), [`payload`] (filter, keys, the st2 payload),
//! [`strip`] (§8.3 strip formatting), [`dedupe`] (what was emitted, and its state file),
//! [`signature`] (v0 request signatures). Parts with I/O: [`enrich`] (cached `users.info` /
//! `conversations.info`), [`pipeline`] (the per-event steps and the stdout sink), [`socket`]
//! (Socket Mode and RTM over WebSockets) and [`events`] (the Events API receiver).
//!
//! The one rule every transport follows: a line is written and flushed before its event is
//! acknowledged, and repeats are dropped by key, so a crash can repeat a message but never
//! lose one.

pub mod dedupe;
pub mod enrich;
pub mod event;
pub mod events;
pub mod payload;
pub mod pipeline;
pub mod signature;
pub mod socket;
pub mod strip;

use crate::config::{SensorMode, Settings};
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::transport::{Client, ClientOptions};
use pipeline::{Pipeline, Sink};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use payload::Filter;
pub use socket::Timing;

/// Flips to `true` (or is dropped) when the sensor should stop: SIGTERM, SIGINT.
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// How a sensor run ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Asked to stop (signal).
    Stopped,
    /// `--max-messages` lines were written.
    Done,
    /// stdout was closed by its reader.
    StdoutClosed,
}

/// Everything about a run that is not a credential.
#[derive(Debug, Clone)]
pub struct Options {
    pub filter: Filter,
    pub strip_formatting: bool,
    /// Events API receiver address.
    pub listen: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub max_messages: Option<u64>,
    pub timing: Timing,
    pub verbose: bool,
}

/// The address the Events API receiver uses when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// The transport chosen, with its credential.
#[derive(Debug)]
pub enum Plan {
    Socket(Secret),
    Rtm(Secret),
    Events(SocketAddr, Secret),
}

/// Decides the transport from the settings. Missing credentials are config errors (exit 2).
pub fn plan(settings: &Settings, listen: Option<SocketAddr>) -> Result<Plan> {
    let s = &settings.sensor;
    let app = settings.app_token.clone();
    let rtm = s.rtm_token.clone();
    let socket_hint = "for Socket Mode: create an app-level token with the connections:write scope (app settings > Basic Information > App-Level Tokens), turn Socket Mode on, and set SLACK_APP_TOKEN=xapp-… (or sensor.app_token)";
    match s.mode {
        SensorMode::Socket => app.map(Plan::Socket).ok_or_else(|| {
            Error::config("Socket Mode needs an app-level token and none is configured")
                .hint(settings.looked_for(crate::config::Credential::AppToken))
                .hint(socket_hint)
        }),
        SensorMode::Rtm => rtm
            .or_else(|| settings.token.clone())
            .map(Plan::Rtm)
            .ok_or_else(|| {
                Error::config("RTM needs a token (sensor.token, SLACK_RTM_TOKEN or SLACK_TOKEN)")
                    .hint("RTM works only with classic apps' tokens; modern apps use Socket Mode")
                    .hint(socket_hint)
            }),
        SensorMode::Events => events_plan(settings, listen),
        SensorMode::Auto => {
            if let Some(a) = app {
                Ok(Plan::Socket(a))
            } else if let Some(t) = rtm {
                Ok(Plan::Rtm(t))
            } else if listen.is_some() && settings.signing_secret.is_some() {
                events_plan(settings, listen)
            } else {
                Err(Error::config(
                    "the sensor has no way to receive events: no app token, RTM token or signing secret is configured",
                )
                .hint(socket_hint)
                .hint("or run the Events API receiver: --mode events --listen HOST:PORT with SLACK_SIGNING_SECRET")
                .hint("or, for a classic app, put its RTM token in sensor.token (or SLACK_RTM_TOKEN)"))
            }
        }
    }
}

fn events_plan(settings: &Settings, listen: Option<SocketAddr>) -> Result<Plan> {
    let secret = settings.signing_secret.clone().ok_or_else(|| {
        Error::config("the Events API receiver needs the app's signing secret, and none is configured")
            .hint(settings.looked_for(crate::config::Credential::SigningSecret))
            .hint("set SLACK_SIGNING_SECRET (app settings > Basic Information > Signing Secret) or sensor.signing_secret")
    })?;
    let addr = match listen {
        Some(a) => a,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| Error::usage("bad default address"))?,
    };
    Ok(Plan::Events(addr, secret))
}

/// The Web API token used for lookups: `SLACK_TOKEN`/`action_token`, else the RTM token.
fn lookup_token(settings: &Settings) -> Option<Secret> {
    settings
        .token
        .clone()
        .or_else(|| settings.sensor.rtm_token.clone())
}

/// Runs the sensor until `stop`, `--max-messages`, a closed stdout or a fatal error.
pub async fn run(
    settings: &Settings,
    opts: Options,
    sink: Box<dyn Sink>,
    stop: Stop,
) -> Result<Ending> {
    let plan = plan(settings, opts.listen)?;
    crate::transport::install_crypto_provider();
    let client = Client::new(ClientOptions {
        api_url: settings.api_url.clone(),
        timeout: settings.timeout.min(Duration::from_secs(15)),
        retries: settings.retries,
        verbose: opts.verbose,
        ..ClientOptions::default()
    })?;
    // Lookups must not hold up acknowledgements: short timeouts, one retry at most.
    let lookups = match lookup_token(settings) {
        Some(token) => {
            let c = Client::new(ClientOptions {
                api_url: settings.api_url.clone(),
                timeout: settings.timeout.min(enrich::LOOKUP_TIMEOUT),
                retries: 1,
                max_retry_after: Duration::from_secs(1),
                verbose: opts.verbose,
                pacer: None,
            })?;
            Some((c, token))
        }
        None => {
            crate::log::warn(
                "no Web API token (SLACK_TOKEN or action_token): payloads carry user and channel ids without names",
            );
            None
        }
    };
    let mut pipeline = Pipeline::new(
        opts.filter.clone(),
        opts.strip_formatting,
        enrich::Enricher::new(lookups),
        sink,
        opts.max_messages,
        opts.verbose,
    );
    if let crate::store::Backend::Redis { .. } = &settings.backend {
        // One record for every sensor of the app, whichever host it runs on.
        if let Some(dir) = &opts.state_dir {
            crate::log::warn(&format!(
                "--state {} is not used: the dedupe record is shared in {}",
                dir.display(),
                settings.backend.describe()
            ));
        }
        let store = crate::store::seen::open(&settings.backend, dedupe::DEFAULT_TTL_SECS)
            .map_err(|e| crate::error::Error::config(e.to_string()))?;
        pipeline = pipeline.with_store(store)?;
    } else if let Some(dir) = &opts.state_dir {
        pipeline = pipeline.with_state(dir.clone())?;
    }
    match plan {
        Plan::Socket(token) => {
            let opener = socket::Opener {
                protocol: socket::Protocol::SocketMode,
                client,
                token,
            };
            socket::run(opener, opts.timing, &mut pipeline, stop).await
        }
        Plan::Rtm(token) => {
            let opener = socket::Opener {
                protocol: socket::Protocol::Rtm,
                client,
                token,
            };
            socket::run(opener, opts.timing, &mut pipeline, stop).await
        }
        Plan::Events(addr, secret) => events::run(addr, secret, pipeline, stop).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SensorSettings;

    fn settings(
        app: Option<&str>,
        rtm: Option<&str>,
        secret: Option<&str>,
        mode: SensorMode,
    ) -> Settings {
        let mut s = Settings::for_api("http://127.0.0.1:1/api/", "xoxb-test-token-1");
        s.app_token = app.map(Secret::new);
        s.signing_secret = secret.map(Secret::new);
        s.sensor = SensorSettings {
            mode,
            rtm_token: rtm.map(Secret::new),
            ..SensorSettings::default()
        };
        s
    }

    #[test]
    fn auto_prefers_socket_mode_then_rtm() {
        let s = settings(
            Some("xapp-1-aaaa"),
            Some("xoxp-rtm-1"),
            None,
            SensorMode::Auto,
        );
        assert!(matches!(plan(&s, None), Ok(Plan::Socket(_))));
        let s = settings(None, Some("xoxp-rtm-1"), None, SensorMode::Auto);
        assert!(matches!(plan(&s, None), Ok(Plan::Rtm(_))));
        let s = settings(None, None, Some("secret-123"), SensorMode::Auto);
        assert!(plan(&s, None).is_err());
        let addr = "127.0.0.1:0".parse().ok();
        assert!(matches!(plan(&s, addr), Ok(Plan::Events(..))));
        let s = settings(None, None, None, SensorMode::Auto);
        let e = plan(&s, None).unwrap_err();
        assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
    }

    #[test]
    fn explicit_modes_need_their_credentials() {
        let s = settings(None, None, None, SensorMode::Socket);
        let e = plan(&s, None).unwrap_err();
        assert!(e.hints.iter().any(|h| h.contains("connections:write")));
        let s = settings(None, None, None, SensorMode::Events);
        let e = plan(&s, None).unwrap_err();
        assert_eq!(crate::exit::code(&e), crate::exit::USAGE);
        assert!(e.hints.iter().any(|h| h.contains("SLACK_SIGNING_SECRET")));
        // RTM falls back to the Web API token.
        let s = settings(None, None, None, SensorMode::Rtm);
        assert!(matches!(plan(&s, None), Ok(Plan::Rtm(_))));
    }
}
