//! Optional rate-limit enforcement, so tests can prove that slackctl's pacing avoids 429s
//! (and that `--no-rate-limit` does not). Off by default; turned on with
//! `slackctl emulator --rate-limits` or `POST /_emulator/rate_limits` (`{"enabled": false}`
//! or `DELETE` turns it off). Limits are Slack's documented floors unless given: Tier 1-4 at
//! 1/20/50/100 per minute, `chat.postMessage` per channel per second, webhooks per second.
//! A small grace (10 % of the window) absorbs network jitter between client and server.

use crate::catalog::{self, Tier};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    /// Calls per minute for tiers 1..4.
    pub tiers: [u32; 4],
    /// `chat.postMessage` per channel, per second.
    pub per_channel: u32,
    /// Webhook posts per second.
    pub webhook: u32,
    /// Per-method overrides, per minute.
    pub methods: HashMap<String, u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            tiers: [1, 20, 50, 100],
            per_channel: 1,
            webhook: 1,
            methods: HashMap::new(),
        }
    }
}

#[derive(Default)]
pub struct Enforcer {
    config: Mutex<Option<Config>>,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Enforcer {
    pub fn set(&self, config: Option<Config>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config.filter(|c| c.enabled);
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Counts a Web API call; returns the seconds to send as `Retry-After` when over the limit.
    pub fn check_api(&self, method: &str, channel: Option<&str>) -> Option<u64> {
        let cfg = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let (key, max, window) = if let Some(n) = cfg.methods.get(method) {
            (method.to_string(), *n, Duration::from_secs(60))
        } else if method == "chat.postMessage" {
            (
                format!("{method}|{}", channel.unwrap_or("")),
                cfg.per_channel,
                Duration::from_secs(1),
            )
        } else {
            let tier = catalog::find(method)
                .map(|a| a.tier)
                .unwrap_or(Tier::Unknown);
            let n = match tier {
                Tier::T1 => cfg.tiers[0],
                Tier::T3 => cfg.tiers[2],
                Tier::T4 => cfg.tiers[3],
                Tier::Special if matches!(method, "auth.test" | "chat.getPermalink") => 600,
                _ => cfg.tiers[1],
            };
            (method.to_string(), n, Duration::from_secs(60))
        };
        self.hit(key, max, window)
    }

    pub fn check_webhook(&self, path: &str) -> Option<u64> {
        let cfg = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        self.hit(
            format!("webhook|{path}"),
            cfg.webhook,
            Duration::from_secs(1),
        )
    }

    fn hit(&self, key: String, max: u32, window: Duration) -> Option<u64> {
        let now = Instant::now();
        let effective = window.mul_f64(0.9);
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let log = w.entry(key).or_default();
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= effective)
        {
            log.pop_front();
        }
        if log.len() >= max.max(1) as usize {
            let oldest = *log.front()?;
            let left = effective.saturating_sub(now.duration_since(oldest));
            return Some(left.as_secs().max(1));
        }
        log.push_back(now);
        None
    }
}
