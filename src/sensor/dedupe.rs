//! What the sensor already emitted: a bounded memory of keys (`event_id`, Socket Mode
//! `envelope_id`, and channel + exact `ts`) with a time to live. With `--state` (or a Redis
//! `state_backend`) the same keys are also written ahead to a durable record
//! (`crate::store::seen`), so that a restarted sensor, or another sensor sharing the Redis
//! record, does not emit the same message twice.
//!
//! The memory is pure (the caller passes the clock, in Unix seconds).

use crate::fnv::{FnvMap, hash_parts};
use serde_json::Value;
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
}

impl Seen {
    pub fn new(ttl_secs: u64, capacity: usize) -> Seen {
        Seen {
            ttl: ttl_secs,
            capacity: capacity.max(1),
            keys: FnvMap::default(),
            order: VecDeque::new(),
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
            }
            self.order.pop_front();
        }
    }

    /// Every key still remembered, with the second it was stored, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.order
            .iter()
            .filter(|(k, at)| self.keys.get(k) == Some(at))
            .copied()
    }

    /// Remembers keys stored earlier (loaded from the record), skipping expired ones.
    pub fn load(&mut self, entries: impl IntoIterator<Item = (u64, u64)>, now: u64) -> usize {
        let mut n = 0;
        for (h, at) in entries {
            if now.saturating_sub(at) < self.ttl {
                self.keys.insert(h, at);
                self.order.push_back((h, at));
                n += 1;
            }
        }
        self.expire(now);
        n
    }

    /// Forgets keys (a batch that never reached the reader). Their queue entries go stale.
    pub fn forget(&mut self, keys: impl IntoIterator<Item = u64>) {
        for k in keys {
            self.keys.remove(&k);
        }
    }

    /// Reads the JSON state file of earlier versions (`{"version": 2, "keys": [[hash, secs],
    /// …]}`; version 1 stored the key strings), so an upgrade does not forget what was emitted.
    pub fn load_json(&mut self, v: &Value, now: u64) -> usize {
        let entries = v["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let h = item[0].as_u64().or_else(|| item[0].as_str().map(hash))?;
                Some((h, item[1].as_u64()?))
            });
        self.load(entries, now)
    }
}

/// The JSON state file of earlier versions inside `--state DIR` (read once, then removed).
pub fn legacy_state_file(dir: &Path) -> PathBuf {
    dir.join("sensor-state.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn entries_load_forget_and_legacy_json() {
        let mut s = Seen::new(600, 100);
        s.insert(k(&["old"]), 100);
        s.insert(k(&["new"]), 500);
        s.insert(k(&["gone"]), 500);
        s.forget(k(&["gone"]));
        let saved: Vec<(u64, u64)> = s.entries().collect();
        assert_eq!(saved, vec![(hash("old"), 100), (hash("new"), 500)]);
        let mut t = Seen::new(600, 100);
        assert_eq!(t.load(saved, 800), 1);
        assert!(t.contains_any(k(&["new"]), 800) && !t.contains_any(k(&["old"]), 800));
        let mut u = Seen::new(600, 100);
        let v = json!({"version": 2, "keys": [[hash("a"), 700], ["b", 700], [1, 10]]});
        assert_eq!(u.load_json(&v, 800), 2);
        assert!(u.contains_any(k(&["b"]), 800));
        assert_eq!(u.load_json(&json!({"nonsense": true}), 800), 0);
    }
}
