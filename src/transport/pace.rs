//! Proactive pacing: wait before sending rather than collect 429s.
//!
//! Every call takes a slot from a sliding window keyed by workspace and method (and, for
//! `chat.postMessage`, by channel; for webhooks, by URL). The windows live in one JSON state
//! file guarded by an exclusive file lock, so concurrent slackctl processes on one machine
//! share one budget: each process reserves the next free start time under the lock, then
//! sleeps outside it. A 429 that still happens feeds back as a block on that key until its
//! `Retry-After` has passed, for every process.
//!
//! Defaults are Slack's documented floors: Tier 1: 1/min, Tier 2: 20/min, Tier 3: 50/min,
//! Tier 4: 100/min, unknown tiers as Tier 2, `chat.postMessage` 1/s per channel, incoming
//! webhooks 1/s, `auth.test` and `chat.getPermalink` 600/min. All can be overridden.

use crate::catalog::{Action, Tier};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most `max` calls per `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn per_minute(n: u32) -> Limit {
        Limit {
            max: n,
            window: Duration::from_secs(60),
        }
    }
    pub const fn per_second(n: u32) -> Limit {
        Limit {
            max: n,
            window: Duration::from_secs(1),
        }
    }
}

/// The limits in force (config `rate_limits`, else Slack's floors).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub tiers: [u32; 4],
    /// `chat.postMessage` per channel, per second.
    pub per_channel: u32,
    /// Incoming webhooks, per second.
    pub webhook: u32,
    /// Per-method overrides, per minute.
    pub methods: BTreeMap<String, u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tiers: [1, 20, 50, 100],
            per_channel: 1,
            webhook: 1,
            methods: BTreeMap::new(),
        }
    }
}

impl Limits {
    /// The window for one call of `action` (optionally to `channel`).
    pub fn for_call(&self, action: &Action, method: &str) -> Limit {
        if let Some(n) = self.methods.get(method) {
            return Limit::per_minute((*n).max(1));
        }
        match (method, action.tier) {
            ("chat.postMessage", _) => Limit::per_second(self.per_channel.max(1)),
            ("auth.test" | "chat.getPermalink", _) => Limit::per_minute(600),
            (_, Tier::T1) => Limit::per_minute(self.tiers[0].max(1)),
            (_, Tier::T3) => Limit::per_minute(self.tiers[2].max(1)),
            (_, Tier::T4) => Limit::per_minute(self.tiers[3].max(1)),
            _ => Limit::per_minute(self.tiers[1].max(1)),
        }
    }

    pub fn for_webhook(&self) -> Limit {
        Limit::per_second(self.webhook.max(1))
    }
}

/// A slot to take before sending: the window key and its limit.
#[derive(Debug, Clone)]
pub struct Slot {
    pub key: String,
    pub limit: Limit,
    /// What to call it in a waiting message.
    pub label: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    keys: BTreeMap<String, KeyState>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyState {
    /// Start times (Unix seconds) of recent calls, oldest first.
    #[serde(default)]
    log: Vec<f64>,
    /// No call may start before this (set by a 429's Retry-After).
    #[serde(default)]
    blocked_until: f64,
}

/// The shared pacer. `None` state path means pacing is off (`--no-rate-limit`).
#[derive(Debug, Clone)]
pub struct Pacer {
    path: PathBuf,
    /// Longest wait accepted before failing instead.
    pub max_wait: Duration,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A short, stable, non-reversible tag for a secret (FNV-1a), for state keys.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

impl Pacer {
    pub fn new(path: PathBuf, max_wait: Duration) -> Pacer {
        Pacer { path, max_wait }
    }

    /// Reserves the next start time for `slot` and returns how long to wait for it.
    fn reserve(&self, slot: &Slot) -> Result<Duration> {
        self.with_state(|state| {
            let t = now();
            let ks = state.keys.entry(slot.key.clone()).or_default();
            let window = slot.limit.window.as_secs_f64();
            ks.log.retain(|s| *s > t - window);
            let mut start = t.max(ks.blocked_until);
            let max = slot.limit.max.max(1) as usize;
            if ks.log.len() >= max {
                // The call `max` places back must have left the window before this one starts.
                start = start.max(ks.log[ks.log.len() - max] + window);
            }
            ks.log.push(start);
            ks.log.sort_by(f64::total_cmp);
            // Forget keys nobody used for a while, so the file stays small.
            state.keys.retain(|_, k| {
                k.log.last().is_some_and(|l| *l > t - 3600.0) || k.blocked_until > t
            });
            // A damaged state file can hold any number; never abort on it (security hook).
            crate::limits::retry_after(start - t, Duration::MAX)
        })
    }

    /// Waits for a slot, telling the user when the wait is noticeable; fails when it would
    /// exceed `max_wait`.
    pub async fn wait(&self, slot: &Slot) -> Result<()> {
        let wait = self.reserve(slot)?;
        if wait > self.max_wait {
            return Err(Error::failed(format!(
                "{}: the rate limit would need a wait of {:.0}s, more than the {:.0}s allowed",
                slot.label,
                wait.as_secs_f64(),
                self.max_wait.as_secs_f64()
            ))
            .hint("raise --max-wait, lower the request rate, or raise rate_limits in the config if your workspace allows more"));
        }
        if wait >= Duration::from_millis(500) {
            crate::log::warn(&format!(
                "waiting {:.1}s for the {} rate limit",
                wait.as_secs_f64(),
                slot.label
            ));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Records a 429: nobody starts `slot` again before `retry_after` has passed.
    pub fn penalize(&self, slot: &Slot, retry_after: Duration) {
        let _ = self.with_state(|state| {
            let ks = state.keys.entry(slot.key.clone()).or_default();
            ks.blocked_until = ks.blocked_until.max(now() + retry_after.as_secs_f64());
        });
    }

    /// Runs `f` on the state under an exclusive lock, then writes it back.
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T> {
        let io = |e: std::io::Error| {
            Error::config(format!(
                "rate-limit state file {}: {e}",
                self.path.display()
            ))
            .hint("set rate_limits.state_file to a writable path, or use --no-rate-limit")
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        // A damaged file only costs the remembered windows, never the call.
        let mut state: State = serde_json::from_str(&text).unwrap_or_default();
        let out = f(&mut state);
        let data = serde_json::to_vec(&state).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(&data).map_err(io)?;
        let _ = file.unlock();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(tag: &str) -> Pacer {
        let p =
            std::env::temp_dir().join(format!("slackctl-pace-{}-{tag}.json", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Pacer::new(p, Duration::from_secs(600))
    }

    #[test]
    fn slots_spread_over_the_window() {
        let p = pacer("spread");
        let slot = Slot {
            key: "k".into(),
            limit: Limit::per_minute(2),
            label: "t".into(),
        };
        assert!(p.reserve(&slot).unwrap() < Duration::from_millis(50));
        assert!(p.reserve(&slot).unwrap() < Duration::from_millis(50));
        let third = p.reserve(&slot).unwrap();
        assert!(
            third > Duration::from_secs(59) && third <= Duration::from_secs(60),
            "{third:?}"
        );
        let fourth = p.reserve(&slot).unwrap();
        assert!(fourth > Duration::from_secs(59), "{fourth:?}");
    }

    #[test]
    fn a_429_blocks_the_key() {
        let p = pacer("block");
        let slot = Slot {
            key: "k".into(),
            limit: Limit::per_second(100),
            label: "t".into(),
        };
        p.penalize(&slot, Duration::from_secs(5));
        let w = p.reserve(&slot).unwrap();
        assert!(w > Duration::from_secs(4), "{w:?}");
    }

    #[test]
    fn fingerprint_hides_the_token() {
        let f = fingerprint(&["https://slack.com/api/", "xoxb-secret"]);
        assert_eq!(f.len(), 16);
        assert!(!f.contains("xoxb"));
    }
}
