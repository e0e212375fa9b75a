//! What the sensor already emitted: a bounded memory of keys (`event_id`, Socket Mode
//! `envelope_id`, and channel + exact `ts`) with a time to live, optionally saved to a state
//! directory so that a restarted sensor does not emit the same message twice.
//!
//! The memory is pure (the caller passes the clock, in Unix seconds); saving writes a small
//! JSON file atomically (temporary file, fsync, rename).

use crate::fnv::{FnvMap, hash_parts};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Keys are remembered at least this long: Slack's last HTTP retry comes about 5 minutes
/// after the first attempt, and Socket Mode retries sooner.
pub const DEFAULT_TTL_SECS: u64 = 15 * 60;
/// At most this many keys are kept (oldest dropped first), so memory stays bounded: about
/// 100,000 messages (two keys each) in roughly 10 MB.
pub const DEFAULT_CAPACITY: usize = 200_000;

// Keys are kept as 64-bit FNV-1a hashes: a tenth of the memory of the strings, and stable
// across runs (the state file stores them). A collision needs about 2^32 keys at once.

/// The hash of a key written out in full; the `*_key` functions below hash the same text
/// piece by piece, without building it.
pub fn hash(key: &str) -> u64 {
    hash_parts(&[key])
}

/// The identity of a message on every transport: channel plus the exact ts string
/// (the hash of `msg:<channel>:<ts>`).
pub fn message_key(channel: &str, ts: &str) -> u64 {
    hash_parts(&["msg:", channel, ":", ts])
}

/// The hash of `ev:<event_id>`.
pub fn event_key(event_id: &str) -> u64 {
    hash_parts(&["ev:", event_id])
}

/// The hash of `env:<envelope_id>`.
pub fn envelope_key(envelope_id: &str) -> u64 {
    hash_parts(&["env:", envelope_id])
}

#[derive(Debug)]
pub struct Seen {
    ttl: u64,
    capacity: usize,
    /// key hash → when it was stored (Unix seconds).
    keys: FnvMap<u64, u64>,
    /// Insertion order, for expiry and eviction. May hold keys already removed.
    order: VecDeque<(u64, u64)>,
    dirty: bool,
}

impl Seen {
    pub fn new(ttl_secs: u64, capacity: usize) -> Seen {
        Seen {
            ttl: ttl_secs,
            capacity: capacity.max(1),
            keys: FnvMap::default(),
            order: VecDeque::new(),
            dirty: false,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether any of `keys` was stored and has not expired.
    pub fn contains_any(&self, keys: impl IntoIterator<Item = u64>, now: u64) -> bool {
        keys.into_iter().any(|k| {
            self.keys
                .get(&k)
                .is_some_and(|&at| now.saturating_sub(at) < self.ttl)
        })
    }

    /// Stores keys as seen at `now`.
    pub fn insert(&mut self, keys: impl IntoIterator<Item = u64>, now: u64) {
        for h in keys {
            self.keys.insert(h, now);
            self.order.push_back((h, now));
            self.dirty = true;
        }
        self.expire(now);
    }

    /// Drops expired keys, then the oldest ones beyond the capacity.
    pub fn expire(&mut self, now: u64) {
        while let Some((k, at)) = self.order.front() {
            let expired = now.saturating_sub(*at) >= self.ttl;
            let over = self.keys.len() > self.capacity;
            // A stale queue entry (the key was stored again later) only needs popping.
            let current = self.keys.get(k) == Some(at);
            if !(expired || over || !current) {
                break;
            }
            if current {
                self.keys.remove(k);
                self.dirty = true;
            }
            self.order.pop_front();
        }
    }

    /// The state file's JSON: `{"version": 2, "keys": [[key_hash, unix_secs], …]}`, oldest
    /// first.
    pub fn to_json(&self) -> Value {
        let keys: Vec<Value> = self
            .order
            .iter()
            .filter(|(k, at)| self.keys.get(k) == Some(at))
            .map(|(k, at)| json!([k, at]))
            .collect();
        json!({"version": 2, "keys": keys})
    }

    /// Loads keys from a state file's JSON; unknown shapes load nothing.
    pub fn load_json(&mut self, v: &Value, now: u64) -> usize {
        let mut n = 0;
        for item in v["keys"].as_array().into_iter().flatten() {
            // Version 2 stores hashes; version 1 stored the keys themselves.
            let h = item[0].as_u64().or_else(|| item[0].as_str().map(hash));
            if let (Some(h), Some(at)) = (h, item[1].as_u64())
                && now.saturating_sub(at) < self.ttl
            {
                self.keys.insert(h, at);
                self.order.push_back((h, at));
                n += 1;
            }
        }
        self.expire(now);
        self.dirty = false;
        n
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_clean(&mut self) {
        self.dirty = false;
    }
}

/// The state file inside `--state DIR`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("sensor-state.json")
}

/// Writes `text` to `path` so that a reader (or a crash) sees either the old or the new
/// content, never half of it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable where the platform allows it.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(names: &[&str]) -> Vec<u64> {
        names.iter().map(|n| hash(n)).collect()
    }

    #[test]
    fn remembers_until_ttl_and_within_capacity() {
        let mut s = Seen::new(600, 3);
        s.insert(k(&["a", "b"]), 1000);
        assert!(s.contains_any(k(&["x", "a"]), 1001));
        assert!(!s.contains_any(k(&["x"]), 1001));
        assert!(s.contains_any(k(&["b"]), 1599));
        assert!(!s.contains_any(k(&["b"]), 1600), "expired after the ttl");
        s.insert(k(&["c", "d"]), 1100);
        assert_eq!(s.len(), 3, "oldest dropped beyond capacity");
        assert!(!s.contains_any(k(&["a"]), 1100));
        s.insert(k(&["e"]), 1800);
        assert_eq!(s.len(), 1, "expired keys dropped on insert");
    }

    #[test]
    fn reinserted_key_is_not_dropped_by_its_old_entry() {
        let mut s = Seen::new(100, 10);
        s.insert(k(&["a"]), 0);
        s.insert(k(&["a"]), 90);
        s.expire(150);
        assert!(s.contains_any(k(&["a"]), 150));
    }

    #[test]
    fn keys_hash_like_the_strings_they_stand_for() {
        // Saved state files hold these hashes: they must not change between versions.
        assert_eq!(message_key("C1", "1.2"), hash("msg:C1:1.2"));
        assert_eq!(event_key("Ev1"), hash("ev:Ev1"));
        assert_eq!(envelope_key("e-1"), hash("env:e-1"));
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c, "64-bit FNV-1a");
    }

    #[test]
    fn same_second_messages_have_distinct_keys() {
        assert_ne!(
            message_key("C1", "1700000000.000100"),
            message_key("C1", "1700000000.000200")
        );
        assert_ne!(
            message_key("C1", "1700000000.0001"),
            message_key("C1", "1700000000.000100")
        );
    }

    #[test]
    fn state_round_trips_and_skips_expired() {
        let mut s = Seen::new(600, 100);
        s.insert(k(&["old"]), 100);
        s.insert(k(&["new"]), 500);
        assert!(s.is_dirty());
        let text = s.to_json().to_string();
        let mut t = Seen::new(600, 100);
        assert_eq!(t.load_json(&serde_json::from_str(&text).unwrap(), 800), 1);
        assert!(t.contains_any(k(&["new"]), 800) && !t.contains_any(k(&["old"]), 800));
        assert!(!t.is_dirty());
        assert_eq!(t.load_json(&json!({"nonsense": true}), 800), 0);
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("slackctl-dedupe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = state_file(&dir);
        write_atomically(&p, "one").unwrap();
        write_atomically(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
