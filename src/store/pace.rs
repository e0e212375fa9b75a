//! Pacing state shared by every slackctl process of a workspace: one token bucket per key
//! (workspace + method, or workspace + `chat.postMessage` + channel), the `Retry-After` block a
//! 429 put on a key, and a small cache of facts that cost a call to learn (the workspace of a
//! token, the id of a channel name).
//!
//! The contract ([`PaceStore`]) is one atomic step per call: `take` refills the bucket, takes
//! a token and returns when the call may start, all at once, so two processes can never
//! both take the last token. A shared backend runs the same arithmetic ([`take_from`]) as a
//! server-side script.
//!
//! The bucket is kept as one number per key, the time at which it would be full again
//! (the "theoretical arrival time" of GCRA): a call may start at `tat - (burst-1)/rate`, and
//! moves `tat` on by `1/rate`. A call that must wait still takes its token now, so waiting
//! processes queue in order instead of racing.
//!
//! The local store ([`LocalPace`]) is a JSON file guarded by an exclusive lock on
//! `<file>.lock` and replaced atomically on each change; a damaged file is rebuilt (with one
//! warning). [`MemoryPace`] is the in-process store the pacer falls back to when the file
//! cannot be used at all.

use super::{LockFile, replace_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The default file name in the state directory.
pub const FILE: &str = "ratelimit.json";

/// A token bucket: `rate` calls per second sustained, up to `burst` at once after a quiet
/// spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub rate: f64,
    pub burst: u32,
}

/// Pacing state, shared by every process that uses the same store.
pub trait PaceStore: Send + Sync {
    /// Takes one token from `key`'s bucket in one atomic step and returns when (Unix seconds)
    /// the call may start: `now` if a token was left, else when its token comes due, and
    /// never before a `Retry-After` block on the key.
    fn take(&self, key: &str, bucket: Bucket, now: f64) -> std::io::Result<f64>;
    /// Nobody starts a call on `key` before `until` (a 429's `Retry-After`, for everyone).
    fn block(&self, key: &str, until: f64) -> std::io::Result<()>;
    /// A cached fact, if present and not expired.
    fn cache_get(&self, key: &str, now: f64) -> std::io::Result<Option<String>>;
    /// Caches facts for `ttl` seconds from `now`.
    fn cache_put(&self, entries: &[(String, String)], now: f64, ttl: f64) -> std::io::Result<()>;
    /// Where the state lives, for messages.
    fn describe(&self) -> String;
    /// Whether pacing must stop rather than fall back to this process alone when the store
    /// fails: true for a shared backend, whose processes on other hosts would otherwise be
    /// overrun (`--no-rate-limit` is the explicit way to send unpaced).
    fn required(&self) -> bool {
        false
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct KeyState {
    /// When the bucket is full again (Unix seconds).
    #[serde(default)]
    pub tat: f64,
    /// No call starts before this (a 429's `Retry-After`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blocked_until: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The bucket arithmetic, shared by every backend: takes a token, returns the start time.
pub fn take_from(ks: &mut KeyState, bucket: Bucket, now: f64) -> f64 {
    let interval = 1.0 / bucket.rate.max(1e-6);
    let tolerance = interval * (bucket.burst.max(1) - 1) as f64;
    let start = now.max(ks.tat - tolerance).max(ks.blocked_until);
    ks.tat = ks.tat.max(start) + interval;
    start
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Buckets {
    #[serde(default)]
    keys: BTreeMap<String, KeyState>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    #[serde(default)]
    entries: BTreeMap<String, (String, f64)>,
}

impl Buckets {
    /// Forgets keys that are full and unblocked: they hold nothing a new key would not.
    fn prune(&mut self, now: f64) {
        self.keys
            .retain(|_, k| k.tat > now - 60.0 || k.blocked_until > now);
    }
}

/// Opens the pacing store: the one place a backend is chosen for it. A Redis backend is
/// shared by every host pointed at it; otherwise the local file `file`.
pub fn open(
    backend: &super::Backend,
    file: PathBuf,
) -> crate::error::Result<std::sync::Arc<dyn PaceStore>> {
    Ok(match backend {
        super::Backend::Redis { url } => {
            std::sync::Arc::new(super::redis::RedisPace::new(super::redis::connect(url)?))
        }
        super::Backend::Local { .. } => std::sync::Arc::new(LocalPace::new(file)),
    })
}

/// The local file store.
pub struct LocalPace {
    path: PathBuf,
    cache_path: PathBuf,
    lock_path: PathBuf,
    rebuilt: AtomicBool,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl LocalPace {
    pub fn new(path: PathBuf) -> LocalPace {
        LocalPace {
            cache_path: with_suffix(&path, ".cache"),
            lock_path: with_suffix(&path, ".lock"),
            path,
            rebuilt: AtomicBool::new(false),
        }
    }

    /// Reads a JSON file; a missing file is empty, a damaged one is rebuilt (said once).
    fn read<T: Default + for<'de> Deserialize<'de>>(&self, path: &Path) -> std::io::Result<T> {
        super::refuse_symlink(path)?;
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice(&text) {
            Ok(v) => Ok(v),
            Err(_) => {
                if !self.rebuilt.swap(true, Ordering::Relaxed) {
                    crate::log::warn(&format!(
                        "the rate-limit state {} was damaged; rebuilt it (pacing starts afresh)",
                        path.display()
                    ));
                }
                Ok(T::default())
            }
        }
    }

    fn with<T: Default + Serialize + for<'de> Deserialize<'de>, R>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut T) -> R,
    ) -> std::io::Result<R> {
        let _lock = LockFile::take(&self.lock_path)?;
        let mut state: T = self.read(path)?;
        let out = f(&mut state);
        // Not synced: losing the last moments of pacing state in a power cut costs nothing
        // but a possible early call; the rename still makes each change all-or-nothing.
        replace_file(path, &serde_json::to_vec(&state).unwrap_or_default(), false)?;
        Ok(out)
    }
}

impl PaceStore for LocalPace {
    fn take(&self, key: &str, bucket: Bucket, now: f64) -> std::io::Result<f64> {
        self.with(&self.path.clone(), |s: &mut Buckets| {
            let start = take_from(s.keys.entry(key.to_string()).or_default(), bucket, now);
            s.prune(now);
            start
        })
    }

    fn block(&self, key: &str, until: f64) -> std::io::Result<()> {
        self.with(&self.path.clone(), |s: &mut Buckets| {
            let k = s.keys.entry(key.to_string()).or_default();
            k.blocked_until = k.blocked_until.max(until);
        })
    }

    fn cache_get(&self, key: &str, now: f64) -> std::io::Result<Option<String>> {
        let c: Cache = self.read(&self.cache_path)?;
        Ok(c.entries
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone()))
    }

    fn cache_put(&self, entries: &[(String, String)], now: f64, ttl: f64) -> std::io::Result<()> {
        let expires = now + ttl;
        self.with(&self.cache_path.clone(), |c: &mut Cache| {
            c.entries.retain(|_, (_, exp)| *exp > now);
            for (k, v) in entries {
                c.entries.insert(k.clone(), (v.clone(), expires));
            }
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Pacing within this process only.
#[derive(Default)]
pub struct MemoryPace {
    buckets: Mutex<Buckets>,
    cache: Mutex<Cache>,
}

impl PaceStore for MemoryPace {
    fn take(&self, key: &str, bucket: Bucket, now: f64) -> std::io::Result<f64> {
        let mut s = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Ok(take_from(
            s.keys.entry(key.to_string()).or_default(),
            bucket,
            now,
        ))
    }

    fn block(&self, key: &str, until: f64) -> std::io::Result<()> {
        let mut s = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let k = s.keys.entry(key.to_string()).or_default();
        k.blocked_until = k.blocked_until.max(until);
        Ok(())
    }

    fn cache_get(&self, key: &str, now: f64) -> std::io::Result<Option<String>> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(c.entries
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone()))
    }

    fn cache_put(&self, entries: &[(String, String)], now: f64, ttl: f64) -> std::io::Result<()> {
        let expires = now + ttl;
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in entries {
            c.entries.insert(k.clone(), (v.clone(), expires));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "this process".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANNEL: Bucket = Bucket {
        rate: 1.0,
        burst: 3,
    };

    #[test]
    fn a_quiet_bucket_allows_a_burst_then_one_per_interval() {
        let mut ks = KeyState::default();
        let starts: Vec<f64> = (0..6).map(|_| take_from(&mut ks, CHANNEL, 100.0)).collect();
        assert_eq!(starts, vec![100.0, 100.0, 100.0, 101.0, 102.0, 103.0]);
        // After a quiet spell the burst is back.
        let later = take_from(&mut ks, CHANNEL, 200.0);
        assert_eq!(later, 200.0);
    }

    #[test]
    fn a_block_holds_every_call_until_it_ends() {
        let mut ks = KeyState {
            blocked_until: 105.0,
            ..Default::default()
        };
        assert_eq!(take_from(&mut ks, CHANNEL, 100.0), 105.0);
    }

    #[test]
    fn the_local_file_is_shared_rebuilt_when_damaged_and_private() {
        let dir = std::env::temp_dir().join(format!("slackctl-pace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(FILE);
        let a = LocalPace::new(path.clone());
        let b = LocalPace::new(path.clone());
        let t: Vec<f64> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { &a } else { &b };
                s.take("k", CHANNEL, 50.0).unwrap()
            })
            .collect();
        assert_eq!(t, vec![50.0, 50.0, 50.0, 51.0]);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(a.take("k", CHANNEL, 50.0).unwrap(), 50.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        a.cache_put(&[("team|x".into(), "T1".into())], 0.0, 1e12)
            .unwrap();
        assert_eq!(b.cache_get("team|x", 1.0).unwrap().as_deref(), Some("T1"));
        assert_eq!(b.cache_get("team|x", 2e12).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
