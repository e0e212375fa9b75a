//! The sensor's dedupe record: which messages were already emitted, remembered for a time to
//! live, so that a restarted sensor (or, with a shared backend, another sensor of the same app)
//! never emits one twice.
//!
//! Every batch of trigger lines follows one write-ahead protocol:
//! 1. [`SeenStore::claim`] the batch's keys, before any of its lines reaches stdout;
//! 2. write and flush the lines;
//! 3. [`SeenStore::seal`]: the claims become final, and the returned job (run wherever the
//!    caller likes, e.g. beside the next batch) makes them durable; [`SeenStore::commit`] does
//!    both at once;
//! 4. only after that job: acknowledge the batch's envelopes.
//!
//! A claim that was never sealed (a kill between 1 and 3) is reported by
//! [`SeenStore::load`] as *uncertain*: those lines may or may not have reached the reader, and
//! the restarted sensor says so instead of pretending to know. Everything acknowledged is
//! committed, so a redelivery of it (Slack had not registered the ack) is dropped.
//!
//! The shape fits a shared backend: `claim` is `SET key NX EX ttl` per key (answering which
//! messages somebody else already claimed), `seal` a no-op job (or a second write), `load`
//! nothing (the server holds the keys) and `tidy` nothing (keys expire by themselves).
//!
//! # The local file
//!
//! `DIR/sensor-seen.log`, mode 0600: a 16-byte header (`slkseen1` and 8 zero bytes), then
//! 16-byte records, each a key hash and the Unix second it was stored (little-endian). A
//! record whose key is `u64::MAX` is a commit marker (its second field counts the keys since
//! the previous one). Claims are one `write` per batch, seals one `write` and one `fdatasync`.
//! When the file holds far more records than live keys it is rewritten: a new file created
//! beside it (never through an existing name or a symlink), synced, renamed over the old one.
//! `sensor-seen.lock` beside it is held locked by the one process using the directory.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The keys of one message (see `sensor::payload::Message::keys`); `None` entries are absent.
pub type MessageKeys = [Option<u64>; 2];

/// Blocking work that makes sealed claims durable (see [`SeenStore::seal`]).
pub type SyncJob = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// What a store remembered at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Committed keys still within the TTL, with the second they were stored, oldest first.
    pub live: Vec<(u64, u64)>,
    /// Keys claimed by a run that stopped before committing them: their lines may or may not
    /// have been written.
    pub uncertain: Vec<u64>,
}

/// A durable record of emitted messages. See the module documentation for the protocol.
pub trait SeenStore: Send {
    /// Where the record lives, for messages (never a secret).
    fn describe(&self) -> String;
    /// Reads what earlier runs recorded (committed and within the TTL).
    fn load(&mut self, now: u64) -> std::io::Result<Loaded>;
    /// Records the messages of a batch as about to be emitted, before their lines are written.
    /// Returns, per message, whether it is this process's to emit (`false`: another sensor
    /// sharing the record claimed it first).
    fn claim(&mut self, messages: &[MessageKeys], now: u64) -> std::io::Result<Vec<bool>>;
    /// Ends the batch of claims and returns the blocking work that makes every claim so far
    /// durable (for the file: one `fdatasync`), so that the caller can run it off its event
    /// loop while it handles the next batch. A batch's acknowledgements wait for that work.
    fn seal(&mut self) -> std::io::Result<SyncJob>;
    /// Makes every claim so far durable, here and now.
    fn commit(&mut self) -> std::io::Result<()> {
        (self.seal()?)()
    }
    /// Housekeeping between batches, given every key the caller still remembers (`count` of
    /// them). Backends whose keys expire by themselves do nothing.
    fn tidy(
        &mut self,
        live: &mut dyn Iterator<Item = (u64, u64)>,
        count: usize,
    ) -> std::io::Result<()>;
    /// Whether a failing claim must hold messages back (neither emitted nor acknowledged, so
    /// Slack delivers them again) rather than let them out undeduplicated: true for a record
    /// shared by several sensors, where emitting alone would repeat what the others emit.
    fn required(&self) -> bool {
        false
    }
}

/// The dedupe record of the chosen backend, keeping keys `ttl_secs`: a Redis shared by every
/// sensor of the app, or the local file.
pub fn open(backend: &super::Backend, ttl_secs: u64) -> std::io::Result<Box<dyn SeenStore>> {
    match backend {
        super::Backend::Local { dir } => Ok(Box::new(LocalSeen::open(dir, ttl_secs)?)),
        super::Backend::Redis { url } => {
            let redis = super::redis::connect(url).map_err(|e| std::io::Error::other(e.message))?;
            Ok(Box::new(super::redis::RedisSeen::new(redis, ttl_secs)))
        }
    }
}

const MAGIC: &[u8; 8] = b"slkseen1";
const RECORD: usize = 16;
const COMMIT: u64 = u64::MAX;
/// Rewrite the file once it holds this many records more than twice the live keys.
const COMPACT_SLACK: u64 = 100_000;

/// The local-file record, in a state directory.
pub struct LocalSeen {
    path: PathBuf,
    ttl: u64,
    /// Held (locked) while this process uses the directory.
    _lock: super::LockFile,
    file: Option<File>,
    /// Records in the file (for the compaction decision).
    records: u64,
    /// Keys claimed since the last commit.
    claimed: u64,
    buf: Vec<u8>,
}

impl LocalSeen {
    /// The record in `dir` (created, mode 0700, when missing), keeping keys `ttl_secs`.
    pub fn open(dir: &Path, ttl_secs: u64) -> std::io::Result<LocalSeen> {
        super::create_private_dir(dir)?;
        let lock = Self::lock(dir)?;
        Ok(LocalSeen {
            path: Self::file_in(dir),
            ttl: ttl_secs,
            _lock: lock,
            file: None,
            records: 0,
            claimed: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Takes the directory for this process: a second sensor rewriting the same record would
    /// leave the first appending to a file no longer there.
    fn lock(dir: &Path) -> std::io::Result<super::LockFile> {
        match super::LockFile::try_take(&dir.join("sensor-seen.lock")) {
            Ok(l) => Ok(l),
            Err(super::Busy::Held(pid)) => {
                let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                Err(std::io::Error::other(format!(
                    "another slackctl sensor{holder} is using this state directory; give each sensor its own"
                )))
            }
            Err(super::Busy::Io(e)) => Err(e),
        }
    }

    /// The file's path in a state directory.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join("sensor-seen.log")
    }

    /// Replaces the file with one holding exactly `live` (committed), and keeps it open for
    /// appending. The new file is created under a fresh name (`create_new`: never through an
    /// existing file or symlink) and renamed over the old path, so a reader or a crash sees the
    /// old file or the new one, whole.
    fn rewrite(&mut self, live: &mut dyn Iterator<Item = (u64, u64)>) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".sensor-seen.log.{}.{}.tmp",
            std::process::id(),
            self.records
        ));
        let result = (|| {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            // A leftover of a run that died mid-rewrite (same pid, reused) is removed, never
            // opened: removing a symlink removes the link, not what it points to.
            let mut f = match opts.open(&tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::remove_file(&tmp)?;
                    opts.open(&tmp)?
                }
                other => other?,
            };
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, &mut f);
            out.write_all(MAGIC)?;
            out.write_all(&[0u8; 8])?;
            let mut n = 0u64;
            for (k, at) in live {
                if k == COMMIT {
                    continue;
                }
                out.write_all(&k.to_le_bytes())?;
                out.write_all(&at.to_le_bytes())?;
                n += 1;
            }
            out.write_all(&COMMIT.to_le_bytes())?;
            out.write_all(&n.to_le_bytes())?;
            out.flush()?;
            drop(out);
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok((f, n + 1))
        })();
        match result {
            Ok((f, records)) => {
                self.file = Some(f);
                self.records = records;
                self.claimed = 0;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the dedupe record was not loaded"))
    }
}

/// Reads a record file's bytes: committed keys within the TTL, and the claims after the last
/// commit. A torn last record (a kill mid-write) is ignored; a wrong header reads as nothing.
pub fn parse(bytes: &[u8], ttl: u64, now: u64) -> Result<Loaded, String> {
    if bytes.len() < RECORD || &bytes[..8] != MAGIC {
        return Err("not a slackctl dedupe record".into());
    }
    let mut live = Vec::new();
    let mut pending: Vec<(u64, u64)> = Vec::new();
    for rec in bytes[RECORD..].chunks_exact(RECORD) {
        let k = u64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
        let at = u64::from_le_bytes(rec[8..].try_into().unwrap_or_default());
        if k == COMMIT {
            live.extend(
                pending
                    .drain(..)
                    .filter(|&(_, at)| now.saturating_sub(at) < ttl),
            );
        } else {
            pending.push((k, at));
        }
    }
    // A key stored twice (a redelivery within the TTL) counts once, at its latest time.
    let mut seen = HashSet::with_capacity(live.len());
    let mut deduped: Vec<(u64, u64)> = live
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(*k))
        .collect();
    deduped.reverse();
    Ok(Loaded {
        live: deduped,
        uncertain: pending.into_iter().map(|(k, _)| k).collect(),
    })
}

impl SeenStore for LocalSeen {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&mut self, now: u64) -> std::io::Result<Loaded> {
        let loaded = match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::default(),
            Err(e) => return Err(e),
            Ok(m) if !m.file_type().is_file() => {
                crate::log::warn(&format!(
                    "{} is not a regular file (a symlink?); it is not read and will be replaced",
                    self.path.display()
                ));
                Loaded::default()
            }
            Ok(_) => {
                let mut bytes = Vec::new();
                File::open(&self.path)?.read_to_end(&mut bytes)?;
                parse(&bytes, self.ttl, now).unwrap_or_else(|why| {
                    crate::log::warn(&format!(
                        "ignoring {} ({why}); starting with an empty dedupe record",
                        self.path.display()
                    ));
                    Loaded::default()
                })
            }
        };
        // Start from a clean file: no torn tail, no expired keys, our permissions.
        self.rewrite(&mut loaded.live.iter().copied())?;
        Ok(loaded)
    }

    fn claim(&mut self, messages: &[MessageKeys], now: u64) -> std::io::Result<Vec<bool>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut n = 0;
        for k in messages.iter().flatten().flatten() {
            buf.extend_from_slice(&k.to_le_bytes());
            buf.extend_from_slice(&now.to_le_bytes());
            n += 1;
        }
        let result = self.file().and_then(|f| f.write_all(&buf));
        self.buf = buf;
        result?;
        self.records += n;
        self.claimed += n;
        // One process owns a local record: every message it decided to emit is its own.
        Ok(vec![true; messages.len()])
    }

    fn seal(&mut self) -> std::io::Result<SyncJob> {
        if self.claimed == 0 {
            return Ok(Box::new(|| Ok(())));
        }
        let mut rec = [0u8; RECORD];
        rec[..8].copy_from_slice(&COMMIT.to_le_bytes());
        rec[8..].copy_from_slice(&self.claimed.to_le_bytes());
        let f = self.file()?;
        f.write_all(&rec)?;
        // A second handle on the same open file: syncing it syncs what was written above.
        let handle = f.try_clone()?;
        self.records += 1;
        self.claimed = 0;
        Ok(Box::new(move || handle.sync_data()))
    }

    fn tidy(
        &mut self,
        live: &mut dyn Iterator<Item = (u64, u64)>,
        count: usize,
    ) -> std::io::Result<()> {
        if self.claimed > 0 || self.records < 2 * count as u64 + COMPACT_SLACK {
            return Ok(());
        }
        self.rewrite(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("slackctl-seen-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn committed_claims_survive_and_uncommitted_ones_are_uncertain() {
        let d = dir("commit");
        let mut s = LocalSeen::open(&d, 600).unwrap();
        assert!(s.load(1000).unwrap().live.is_empty());
        assert_eq!(
            s.claim(&[[Some(1), Some(2)], [Some(3), None]], 1000)
                .unwrap(),
            vec![true, true]
        );
        s.commit().unwrap();
        s.claim(&[[Some(4), None]], 1001).unwrap();
        drop(s); // as if killed before the commit
        let mut t = LocalSeen::open(&d, 600).unwrap();
        let l = t.load(1002).unwrap();
        assert_eq!(l.live, vec![(1, 1000), (2, 1000), (3, 1000)]);
        assert_eq!(l.uncertain, vec![4]);
        // The load rewrote the file: the uncertain claim is not carried further.
        drop(t);
        let l = LocalSeen::open(&d, 600).unwrap().load(1003).unwrap();
        assert_eq!(l.live.len(), 3);
        assert!(l.uncertain.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn expired_torn_and_foreign_content_is_dropped() {
        let d = dir("torn");
        let mut s = LocalSeen::open(&d, 600).unwrap();
        s.load(1000).unwrap();
        s.claim(&[[Some(7), None]], 100).unwrap();
        s.claim(&[[Some(8), None]], 1000).unwrap();
        s.commit().unwrap();
        drop(s);
        let p = LocalSeen::file_in(&d);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]); // a torn record
        let l = parse(&bytes, 600, 1000).unwrap();
        assert_eq!(l.live, vec![(8, 1000)], "7 expired");
        assert!(l.uncertain.is_empty());
        assert!(parse(b"garbage garbage garbage", 600, 1000).is_err());
        std::fs::write(&p, b"{\"not\": \"ours\"}").unwrap();
        let mut s = LocalSeen::open(&d, 600).unwrap();
        assert!(s.load(1000).unwrap().live.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_a_symlink_is_replaced_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("perm");
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("elsewhere");
        std::fs::write(&target, b"precious").unwrap();
        std::os::unix::fs::symlink(&target, LocalSeen::file_in(&d)).unwrap();
        let mut s = LocalSeen::open(&d, 600).unwrap();
        s.load(1000).unwrap();
        s.claim(&[[Some(1), None]], 1000).unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let p = LocalSeen::file_in(&d);
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn tidy_compacts_only_when_the_file_is_mostly_stale() {
        let d = dir("tidy");
        let mut s = LocalSeen::open(&d, 600).unwrap();
        s.load(1000).unwrap();
        let batch: Vec<MessageKeys> = (0..1000).map(|i| [Some(i), None]).collect();
        for _ in 0..110 {
            s.claim(&batch, 1000).unwrap();
            s.commit().unwrap();
        }
        let before = s.records;
        s.tidy(&mut std::iter::empty(), 10).unwrap();
        assert_eq!(s.records, 1, "rewritten with no live keys");
        assert!(before > COMPACT_SLACK);
        s.tidy(&mut std::iter::empty(), 10).unwrap();
        assert_eq!(s.records, 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn one_process_per_directory() {
        let d = dir("lock");
        let first = LocalSeen::open(&d, 600).unwrap();
        let e = LocalSeen::open(&d, 600)
            .err()
            .expect("a second user is refused");
        assert!(e.to_string().contains("another slackctl sensor"), "{e}");
        let pid = format!("pid {}", std::process::id());
        assert!(e.to_string().contains(&pid), "names the holder: {e}");
        drop(first);
        assert!(
            LocalSeen::open(&d, 600).is_ok(),
            "free again once the first is gone"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
