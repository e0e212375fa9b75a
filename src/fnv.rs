//! 64-bit FNV-1a: the hash of the sensor's dedupe keys (stable across runs, since state files
//! store it) and a `HashMap` hasher for hot lookups by short ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// The hash of the key made of `parts` joined together (FNV runs byte by byte, so hashing
/// the parts in turn equals hashing their concatenation, with no string built).
pub fn hash_parts(parts: &[&str]) -> u64 {
    let mut h = Fnv::default();
    for p in parts {
        h.write(p.as_bytes());
    }
    h.0
}

/// FNV-1a as a `HashMap` hasher. The maps using it hold short ids from Slack or from the
/// emulator itself (or hashes already), for which std's SipHash, built to resist keys chosen
/// by an attacker, costs several times more. The sensor's Events API receiver checks request
/// signatures before any key from a request is stored.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(OFFSET)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` hashed with [`Fnv`].
pub type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_hash_like_their_concatenation() {
        assert_eq!(
            hash_parts(&["a"]),
            0xaf63_dc4c_8601_ec8c,
            "64-bit FNV-1a of `a`"
        );
        assert_eq!(
            hash_parts(&["msg:", "C1", ":", "1.2"]),
            hash_parts(&["msg:C1:1.2"])
        );
        let mut m: FnvMap<String, u8> = FnvMap::default();
        m.insert("U1".into(), 1);
        assert_eq!(m.get("U1"), Some(&1));
    }
}
