//! The send-once journal of `run --each … --state`: what a bulk run has sent, so the next run
//! sends only new records (send once) or brings Slack in step with them (mirror).
//!
//! The contract ([`Journal`]) is claim, then send, then mark: a record is *claimed* durably
//! before its call is made and *marked sent* after Slack accepts it. A claim without a mark
//! is a record in flight; after a crash (even `kill -9`) it is reported as uncertain and is
//! the only kind of record that can be posted twice. A shared backend implements `claim` as
//! one atomic set-if-absent per record, so two hosts never both send it.
//!
//! The local file ([`LocalJournal`]) is append-only JSON Lines: a `start` line (synced)
//! before the call, a `sent` line (synced: channel, ts, content hash) after. One run at a
//! time owns it: an exclusive lock on `<file>.lock`, held for the whole run, so a second run
//! on the same file refuses (naming the holder's pid) instead of appending beside it, and
//! the journal is only ever compacted by the run that holds the lock.

use super::{Busy, LockFile, open_private, replace_file, state_error};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// What the journal remembers about a sent record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_identifier: Option<String>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The record is ours to send; the claim is durable.
    Claimed,
    /// Already sent (by an earlier run, or another holder of a shared journal).
    Sent(Entry),
    /// Another live holder of a shared journal is sending it now.
    Elsewhere,
}

/// The send-once record. Every write is durable before it returns.
pub trait Journal: Send {
    /// The entry of a record already sent.
    fn get(&self, id: &str) -> Result<Option<Entry>>;
    /// Every sent record (mirror mode deletes those that vanished from the input).
    fn all_sent(&self) -> Result<Vec<(String, Entry)>>;
    /// Records claimed by an earlier run that never marked them: posted or not, unknown.
    fn interrupted(&self) -> &[String];
    /// Claims `id` before it is sent.
    fn claim(&mut self, id: &str) -> Result<Claim>;
    /// Slack accepted the record (or its update).
    fn mark_sent(&mut self, id: &str, entry: Entry) -> Result<()>;
    /// The record was definitely not posted: the claim is dropped and a later run retries it.
    fn release(&mut self, id: &str) -> Result<()>;
    /// The record's message was deleted (mirror mode).
    fn forget(&mut self, id: &str) -> Result<()>;
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    id: String,
    event: String,
    #[serde(flatten)]
    entry: Entry,
}

/// Opens the journal named by `--state`: the one place a backend is chosen for it. A
/// `redis://…/[db/]name` address (or `redis:name`, on the configured `state_backend`) is a
/// journal shared by every host; anything else is a local file.
pub fn open(state: &Path, backend: &super::Backend) -> Result<Box<dyn Journal>> {
    let text = state.to_string_lossy();
    if super::redis::is_url(&text) {
        super::redis::register_secrets(&text);
        let (url, name) = super::redis::journal_address(&text)?;
        let redis = super::redis::connect(&url)?;
        return Ok(Box::new(super::redis::RedisJournal::open(redis, &name)?));
    }
    if let Some(name) = text.strip_prefix("redis:") {
        let super::Backend::Redis { url } = backend else {
            return Err(Error::usage(format!(
                "--state {text}: no Redis state backend is configured"
            ))
            .hint("set state_backend (or SLACKCTL_STATE_BACKEND) to redis://host:6379/0, or give the whole address"));
        };
        let redis = super::redis::connect(url)?;
        return Ok(Box::new(super::redis::RedisJournal::open(redis, name)?));
    }
    Ok(Box::new(LocalJournal::open(state)?))
}

/// The journal as a local JSON Lines file, owned by one run at a time.
pub struct LocalJournal {
    path: PathBuf,
    file: std::fs::File,
    sent: HashMap<String, Entry>,
    interrupted: Vec<String>,
    _lock: LockFile,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    state_error("state file", path, e)
}

/// `<file>.lock`, next to the journal.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

impl LocalJournal {
    /// Opens the journal for this run: takes its lock (refusing, exit 2, when another run
    /// holds it), reads it, and compacts it.
    pub fn open(path: &Path) -> Result<LocalJournal> {
        let lock = match LockFile::try_take(&lock_path(path)) {
            Ok(l) => l,
            Err(Busy::Held(pid)) => {
                let holder = pid
                    .map(|p| format!("slackctl (pid {p})"))
                    .unwrap_or_else(|| "another slackctl process".into());
                return Err(Error::config(format!(
                    "state file {} is in use by {holder}; nothing was sent",
                    path.display()
                ))
                .hint("wait for that run to finish and run again (records it sent are skipped), or give this run its own --state"));
            }
            Err(Busy::Io(e)) => return Err(io_err(&lock_path(path), e)),
        };
        super::refuse_symlink(path).map_err(|e| io_err(path, e))?;
        let mut sent: HashMap<String, Entry> = HashMap::new();
        let mut started: Vec<String> = Vec::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).lines() {
                    let Ok(line) = line else { break };
                    // A torn last line (crash mid-write) is ignored.
                    let Ok(l) = serde_json::from_str::<Line>(&line) else {
                        continue;
                    };
                    let unstart = |s: &mut Vec<String>| s.retain(|x| *x != l.id);
                    match l.event.as_str() {
                        "start" if !started.contains(&l.id) => started.push(l.id),
                        "sent" => {
                            unstart(&mut started);
                            sent.insert(l.id, l.entry);
                        }
                        "failed" => unstart(&mut started),
                        "deleted" => {
                            unstart(&mut started);
                            sent.remove(&l.id);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        // Compact: only what matters, swapped in atomically. Safe because we hold the lock:
        // nobody else appends to this file while we run.
        let mut data = Vec::new();
        for (id, entry) in &sent {
            let line = Line {
                id: id.clone(),
                event: "sent".into(),
                entry: entry.clone(),
            };
            data.extend_from_slice(serde_json::to_string(&line).unwrap_or_default().as_bytes());
            data.push(b'\n');
        }
        replace_file(path, &data, true).map_err(|e| io_err(path, e))?;
        let file = open_private(path, true).map_err(|e| io_err(path, e))?;
        Ok(LocalJournal {
            path: path.to_path_buf(),
            file,
            sent,
            interrupted: started,
            _lock: lock,
        })
    }

    fn append(&mut self, id: &str, event: &str, entry: Entry) -> Result<()> {
        let line = Line {
            id: id.to_string(),
            event: event.into(),
            entry,
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        // One write per line (O_APPEND): a crash tears at most the last line.
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        self.file.sync_data().map_err(|e| io_err(&self.path, e))
    }
}

impl Journal for LocalJournal {
    fn get(&self, id: &str) -> Result<Option<Entry>> {
        Ok(self.sent.get(id).cloned())
    }

    fn all_sent(&self) -> Result<Vec<(String, Entry)>> {
        Ok(self
            .sent
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn interrupted(&self) -> &[String] {
        &self.interrupted
    }

    fn claim(&mut self, id: &str) -> Result<Claim> {
        if let Some(e) = self.sent.get(id) {
            return Ok(Claim::Sent(e.clone()));
        }
        self.append(id, "start", Entry::default())?;
        Ok(Claim::Claimed)
    }

    fn mark_sent(&mut self, id: &str, entry: Entry) -> Result<()> {
        self.append(id, "sent", entry.clone())?;
        self.sent.insert(id.to_string(), entry);
        Ok(())
    }

    fn release(&mut self, id: &str) -> Result<()> {
        self.append(id, "failed", Entry::default())
    }

    fn forget(&mut self, id: &str) -> Result<()> {
        self.append(id, "deleted", Entry::default())?;
        self.sent.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "slackctl-journal-{}-{tag}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn survives_a_crash_between_start_and_sent() {
        let p = temp("crash");
        {
            let mut j = LocalJournal::open(&p).unwrap();
            assert_eq!(j.claim("a").unwrap(), Claim::Claimed);
            j.mark_sent(
                "a",
                Entry {
                    ts: Some("1.000100".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            j.claim("b").unwrap(); // crash here
        }
        // A torn line at the end is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"id\": \"c\", \"ev")
            .unwrap();
        let mut j = LocalJournal::open(&p).unwrap();
        assert_eq!(j.get("a").unwrap().unwrap().ts.as_deref(), Some("1.000100"));
        assert_eq!(j.interrupted(), ["b".to_string()]);
        assert!(matches!(j.claim("a").unwrap(), Claim::Sent(_)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_second_owner_is_refused_while_the_first_holds_it() {
        let p = temp("owner");
        let first = LocalJournal::open(&p).unwrap();
        let e = LocalJournal::open(&p).err().expect("refused");
        assert!(
            e.message.contains("in use by slackctl (pid"),
            "{}",
            e.message
        );
        drop(first);
        LocalJournal::open(&p).unwrap();
    }

    #[test]
    fn a_symlinked_journal_is_refused() {
        let p = temp("link");
        let target = temp("target");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = LocalJournal::open(&p).err().expect("refused");
        assert!(e.message.contains("symbolic link"), "{}", e.message);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&target);
    }
}
