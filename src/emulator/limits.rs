//! Optional rate-limit enforcement, so tests can prove that slackctl's pacing avoids 429s
//! (and that `--no-rate-limit` does not). Off by default; turned on with
//! `slackctl emulator --rate-limits` or `POST /_emulator/rate_limits` (`{"enabled": false}`
//! or `DELETE` turns it off). Limits are Slack's documented floors unless given: Tier 1-4 at
//! 1/20/50/100 per minute, `chat.postMessage` 1 per second per channel, webhooks 1 per
//! second.
//!
//! Like Slack, the limits allow short bursts: each key is a token bucket (GCRA), refilled at
//! the sustained rate and holding `channel_burst` posts per channel (default 3) or a quarter
//! of a tier's per-minute count. The channel is the resolved channel id, so `general`,
//! `#general` and `C…` count as one, as they do on Slack. A grace of 250 ms absorbs the
//! jitter between the moment a client scheduled a call and the moment it arrives.

use crate::catalog::{self, Tier};
use serde::Deserialize;
use std::collections::HashMap;
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
    /// `chat.postMessage` per channel, at once after a quiet spell.
    pub channel_burst: u32,
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
            channel_burst: 3,
            webhook: 1,
            methods: HashMap::new(),
        }
    }
}

/// A bucket: `rate` per second, `burst` at once.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    burst: u32,
}

fn per_minute(n: u32) -> Bucket {
    Bucket {
        rate: n.max(1) as f64 / 60.0,
        burst: (n / 4).max(1),
    }
}

/// Arrivals this much earlier than the bucket allows are still accepted. A paced client that
/// sends one call late (a busy host) makes its next, punctual call look early to a strict
/// bucket; Slack's own limits are not that exact, and an unpaced burst still overshoots this
/// by far (at 5/s with a burst of 3, the fifth call of a simultaneous burst is refused).
const GRACE: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Enforcer {
    config: Mutex<Option<Config>>,
    /// Per key: when the bucket is full again.
    buckets: Mutex<HashMap<String, Instant>>,
}

impl Enforcer {
    pub fn set(&self, config: Option<Config>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config.filter(|c| c.enabled);
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether limits are enforced (callers skip work, such as resolving a channel, if not).
    pub fn active(&self) -> bool {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Counts a Web API call; returns the seconds to send as `Retry-After` when over the limit.
    /// `channel` is the resolved channel id for `chat.postMessage`.
    pub fn check_api(&self, method: &str, channel: Option<&str>) -> Option<u64> {
        let cfg = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let (key, bucket) = if let Some(n) = cfg.methods.get(method) {
            (method.to_string(), per_minute(*n))
        } else if method == "chat.postMessage" {
            (
                format!("{method}|{}", channel.unwrap_or("")),
                Bucket {
                    rate: cfg.per_channel.max(1) as f64,
                    burst: cfg.channel_burst.max(1),
                },
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
            (method.to_string(), per_minute(n))
        };
        self.hit(key, bucket)
    }

    pub fn check_webhook(&self, path: &str) -> Option<u64> {
        let cfg = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        self.hit(
            format!("webhook|{path}"),
            Bucket {
                rate: cfg.webhook.max(1) as f64,
                burst: 1,
            },
        )
    }

    /// GCRA: a call is allowed unless it comes earlier than `full - (burst-1)/rate`; an
    /// allowed call moves `full` on by one interval. A refused one changes nothing.
    fn hit(&self, key: String, b: Bucket) -> Option<u64> {
        let now = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / b.rate);
        let tolerance = interval * (b.burst - 1);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let full = buckets.entry(key).or_insert(now);
        let allowed_at = full.checked_sub(tolerance + GRACE).unwrap_or(now);
        if now < allowed_at {
            let left = allowed_at - now + GRACE;
            return Some(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        *full = (*full).max(now) + interval;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_allows_a_burst_of_three_then_refuses() {
        let e = Enforcer::default();
        e.set(Some(Config::default()));
        for _ in 0..3 {
            assert_eq!(e.check_api("chat.postMessage", Some("C1")), None);
        }
        assert_eq!(e.check_api("chat.postMessage", Some("C1")), Some(1));
        // Another channel has its own bucket.
        assert_eq!(e.check_api("chat.postMessage", Some("C2")), None);
    }
}
