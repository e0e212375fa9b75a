//! Proactive pacing: wait before sending rather than collect 429s.
//!
//! Every call takes a token from a bucket keyed by workspace and method (and, for
//! `chat.postMessage`, by channel; for webhooks, by URL). The workspace is the `team_id` that
//! `auth.test` reports for the token (so two tokens of one workspace share its limits) and
//! the channel is its id (so `general`, `#general` and `C…` are one channel); both are
//! learned once and cached in the shared store. The buckets live in a [`PaceStore`] shared
//! by every slackctl process (a locked file by default): each process takes its token in one
//! atomic step, then sleeps outside the lock until its start time. A 429 that still happens
//! blocks that key until its `Retry-After` has passed, for every process.
//!
//! Buckets model Slack's behaviour, which allows short bursts: `chat.postMessage` 1/s per
//! channel with a burst of 3, the tiers per minute (Tier 1: 1, Tier 2: 20, Tier 3: 50,
//! Tier 4: 100; unknown tiers as Tier 2) with a burst of a quarter of that, incoming webhooks
//! 1/s, `auth.test` and `chat.getPermalink` 600/min. All can be overridden.
//!
//! When the local state file cannot be used (unwritable, a link, a full disk), pacing goes on
//! within this process only, after one warning: a send is never refused for a local file. A
//! Redis backend is different ([`PaceStore::required`]): its hosts are coordinated only through
//! it, so while it cannot be reached the call fails (unless `--no-rate-limit`).

use crate::catalog::{Action, Tier};
use crate::error::{Error, Result};
use crate::store::pace::{Bucket, MemoryPace, PaceStore};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A token bucket: `rate` calls per second sustained, `burst` at once.
pub type Limit = Bucket;

/// `n` calls per minute, with a quarter of them allowed at once.
pub fn per_minute(n: u32) -> Limit {
    let n = n.max(1);
    Bucket {
        rate: n as f64 / 60.0,
        burst: (n / 4).max(1),
    }
}

/// `n` calls per second, `burst` at once.
pub fn per_second(n: u32, burst: u32) -> Limit {
    Bucket {
        rate: n.max(1) as f64,
        burst: burst.max(1),
    }
}

/// The limits in force (config `rate_limits`, else Slack's floors).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub tiers: [u32; 4],
    /// `chat.postMessage` per channel, per second.
    pub per_channel: u32,
    /// `chat.postMessage` per channel, at once after a quiet spell.
    pub channel_burst: u32,
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
            channel_burst: 3,
            webhook: 1,
            methods: BTreeMap::new(),
        }
    }
}

impl Limits {
    /// The bucket for one call of `action`.
    pub fn for_call(&self, action: &Action, method: &str) -> Limit {
        if let Some(n) = self.methods.get(method) {
            return per_minute(*n);
        }
        match (method, action.tier) {
            ("chat.postMessage", _) => per_second(self.per_channel, self.channel_burst),
            ("auth.test" | "chat.getPermalink", _) => per_minute(600),
            (_, Tier::T1) => per_minute(self.tiers[0]),
            (_, Tier::T3) => per_minute(self.tiers[2]),
            (_, Tier::T4) => per_minute(self.tiers[3]),
            _ => per_minute(self.tiers[1]),
        }
    }

    pub fn for_webhook(&self) -> Limit {
        per_second(self.webhook, 1)
    }
}

/// A token to take before sending.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The bucket's key. With a `scope`, a stand-in until the client resolves it.
    pub key: String,
    pub limit: Limit,
    /// What to call it in a waiting message.
    pub label: String,
    /// Set when the key still names a token and a channel as given, not the workspace and
    /// the channel id.
    pub scope: Option<Scope>,
}

/// What a Web API call's key is made of before resolution.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Fingerprint of the API URL and token (the workspace until `auth.test` says which).
    pub who: String,
    pub method: String,
    /// `chat.postMessage`'s channel as given (`general`, `#general`, `C…`).
    pub channel: Option<String>,
}

/// The shared pacer. Absent from the client when pacing is off (`--no-rate-limit`).
#[derive(Clone)]
pub struct Pacer {
    store: Arc<dyn PaceStore>,
    /// Set, once, when the shared store failed: pacing within this process from then on.
    fallback: Arc<OnceLock<MemoryPace>>,
    /// Facts already looked up by this process (workspace of a token, channel ids).
    memo: Arc<Mutex<HashMap<String, String>>>,
    /// Held while a key is resolved, so concurrent calls of one process (a bulk run) look a
    /// workspace or channel up once between them, not once each.
    resolving: Arc<tokio::sync::Mutex<()>>,
    /// Longest wait accepted before failing instead.
    pub max_wait: Duration,
    pub limits: Limits,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("store", &self.store.describe())
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

pub fn now() -> f64 {
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
    pub fn new(store: Arc<dyn PaceStore>, max_wait: Duration, limits: Limits) -> Pacer {
        Pacer {
            store,
            fallback: Arc::default(),
            memo: Arc::default(),
            resolving: Arc::default(),
            max_wait,
            limits,
        }
    }

    /// Runs `op` on the shared store, or on the in-process one once the shared one failed
    /// (said once, with the reason). A store that must not be bypassed (a shared backend)
    /// gives a default instead; [`Pacer::reserve`] turns its failure into an error.
    fn on_store<T>(&self, op: impl Fn(&dyn PaceStore) -> std::io::Result<T>) -> T
    where
        T: Default,
    {
        self.try_on_store(op).unwrap_or_default()
    }

    fn try_on_store<T>(
        &self,
        op: impl Fn(&dyn PaceStore) -> std::io::Result<T>,
    ) -> std::io::Result<T>
    where
        T: Default,
    {
        if let Some(m) = self.fallback.get() {
            return Ok(op(m).unwrap_or_default());
        }
        match op(self.store.as_ref()) {
            Ok(v) => Ok(v),
            Err(e) if self.store.required() => Err(e),
            Err(e) => Ok({
                let m = self.fallback.get_or_init(|| {
                    crate::log::warn(&format!(
                        "cannot use the shared rate-limit state {}: {e}; pacing within this process only (other slackctl processes are not coordinated with it)",
                        self.store.describe()
                    ));
                    MemoryPace::default()
                });
                op(m).unwrap_or_default()
            }),
        }
    }

    /// A cached fact (this process first, then the shared store).
    pub fn lookup(&self, key: &str) -> Option<String> {
        if let Some(v) = self.memo.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Some(v.clone());
        }
        let t = now();
        let v = self.on_store(|s| s.cache_get(key, t))?;
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), v.clone());
        Some(v)
    }

    /// Serialises key resolution within this process (see `resolving`).
    pub async fn resolving(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.resolving.lock().await
    }

    /// Remembers a fact for this process only (e.g. that a name is not in the listing).
    pub fn note(&self, key: &str, value: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), value.to_string());
    }

    /// Caches facts for every process, for `ttl`.
    pub fn remember(&self, entries: &[(String, String)], ttl: Duration) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(entries.iter().cloned());
        let t = now();
        self.on_store(|s| s.cache_put(entries, t, ttl.as_secs_f64()));
    }

    /// Takes a token for `slot` and returns how long to wait for its start. Fails only when
    /// a shared backend cannot be reached: sending unpaced would overrun the other hosts.
    fn reserve(&self, slot: &Slot) -> Result<Duration> {
        let t = now();
        let start = self
            .try_on_store(|s| s.take(&slot.key, slot.limit, t))
            .map_err(|e| {
                Error::failed(format!("{}: not sent: {e}", slot.label)).hint(
                    "slackctl does not send past a shared rate limit it cannot read: run again when the backend is reachable, or pass --no-rate-limit to send unpaced",
                )
            })?;
        // A damaged state file can hold any number; never abort on it.
        Ok(crate::limits::retry_after(start - t, Duration::MAX))
    }

    /// Waits for a token, telling the user when the wait is noticeable; fails when it would
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

    /// Records a 429: no process starts `slot` again before `retry_after` has passed.
    pub fn penalize(&self, slot: &Slot, retry_after: Duration) {
        let until = now() + retry_after.as_secs_f64();
        self.on_store(|s| s.block(&slot.key, until));
    }
}

/// Whether a `chat.postMessage` channel is already an id (`C…`, `G…`, `D…`, or a user id
/// that Slack turns into a DM), not a name.
pub fn is_conversation_id(ch: &str) -> bool {
    let mut chars = ch.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D' | 'U' | 'W'))
        && ch.len() >= 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A channel name as Slack compares them: no leading `#`, lower case.
pub fn channel_name(ch: &str) -> String {
    ch.trim().trim_start_matches('#').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer() -> Pacer {
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Duration::from_secs(600),
            Limits::default(),
        )
    }

    fn slot(limit: Limit) -> Slot {
        Slot {
            key: "k".into(),
            limit,
            label: "t".into(),
            scope: None,
        }
    }

    #[test]
    fn a_tier_allows_a_quarter_at_once_then_spreads_the_rest() {
        let p = pacer();
        let s = slot(per_minute(8));
        assert!(p.reserve(&s).unwrap() < Duration::from_millis(50));
        assert!(p.reserve(&s).unwrap() < Duration::from_millis(50));
        let third = p.reserve(&s).unwrap();
        assert!(
            third > Duration::from_secs(6) && third <= Duration::from_millis(7600),
            "{third:?}"
        );
    }

    #[test]
    fn a_429_blocks_the_key() {
        let p = pacer();
        let s = slot(per_second(100, 3));
        p.penalize(&s, Duration::from_secs(5));
        let w = p.reserve(&s).unwrap();
        assert!(w > Duration::from_secs(4), "{w:?}");
    }

    #[test]
    fn an_unusable_store_falls_back_to_this_process() {
        let dir = std::env::temp_dir().join(format!("slackctl-pace-fb-{}", std::process::id()));
        std::fs::write(&dir, "a file where a directory should be").unwrap();
        let store = crate::store::pace::LocalPace::new(dir.join("ratelimit.json"));
        let p = Pacer::new(Arc::new(store), Duration::from_secs(600), Limits::default());
        let s = slot(per_second(1, 2));
        assert!(p.reserve(&s).unwrap().is_zero());
        assert!(p.reserve(&s).unwrap().is_zero());
        assert!(
            p.reserve(&s).unwrap() > Duration::from_millis(900),
            "still paced"
        );
        assert!(p.fallback.get().is_some());
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn channel_spellings() {
        assert!(is_conversation_id("C0000002"));
        assert!(is_conversation_id("D012AB"));
        assert!(!is_conversation_id("general"));
        assert_eq!(channel_name("#General"), "general");
    }

    #[test]
    fn fingerprint_hides_the_token() {
        let f = fingerprint(&["https://slack.com/api/", "xoxb-secret"]);
        assert_eq!(f.len(), 16);
        assert!(!f.contains("xoxb"));
    }
}
