//! The `--state` journal: what a bulk run has sent, so the next run sends only new records
//! (send once) or brings Slack in step with the records (mirror).
//!
//! It is an append-only JSON Lines file. Before a record is sent, a `start` line is written
//! and synced; after Slack accepts it, a `sent` line (channel, ts, content hash). After a
//! crash (even `kill -9`) the next run sees every `sent` record and resends only those whose
//! `start` has no `sent`: the ones in flight at the crash, which may therefore be posted
//! twice, and no record is lost. Loading compacts the file (written aside, then renamed).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

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

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    id: String,
    event: String,
    #[serde(flatten)]
    entry: Entry,
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// Records Slack has accepted, by identifier.
    pub sent: HashMap<String, Entry>,
    /// Identifiers that were in flight when the last run stopped.
    pub interrupted: Vec<String>,
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::config(format!("state file {}: {e}", path.display()))
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        let mut sent: HashMap<String, Entry> = HashMap::new();
        let mut started: HashMap<String, ()> = HashMap::new();
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line (crash mid-write) is ignored.
                let Ok(l) = serde_json::from_str::<Line>(&line) else {
                    continue;
                };
                match l.event.as_str() {
                    "start" => {
                        started.insert(l.id, ());
                    }
                    "sent" => {
                        started.remove(&l.id);
                        sent.insert(l.id, l.entry);
                    }
                    "failed" => {
                        started.remove(&l.id);
                    }
                    "deleted" => {
                        started.remove(&l.id);
                        sent.remove(&l.id);
                    }
                    _ => {}
                }
            }
        }
        let interrupted: Vec<String> = started.into_keys().collect();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err(path, e))?;
        }
        // Compact: rewrite only what matters, then swap it in atomically.
        let tmp = path.with_extension("compact.tmp");
        {
            let mut w =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| io_err(path, e))?);
            for (id, entry) in &sent {
                let line = Line {
                    id: id.clone(),
                    event: "sent".into(),
                    entry: entry.clone(),
                };
                writeln!(w, "{}", serde_json::to_string(&line).unwrap_or_default())
                    .map_err(|e| io_err(path, e))?;
            }
            let f = w.into_inner().map_err(|e| io_err(path, e.into_error()))?;
            f.sync_all().map_err(|e| io_err(path, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            sent,
            interrupted,
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
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        self.file.sync_data().map_err(|e| io_err(&self.path, e))
    }

    /// Written (and synced) before the record is sent.
    pub fn start(&mut self, id: &str) -> Result<()> {
        self.append(id, "start", Entry::default())
    }

    pub fn sent(&mut self, id: &str, entry: Entry) -> Result<()> {
        self.append(id, "sent", entry.clone())?;
        self.sent.insert(id.to_string(), entry);
        Ok(())
    }

    /// The record was definitely not posted (Slack refused it, or it never left): it is no
    /// longer in flight, and the next run tries it again.
    pub fn failed(&mut self, id: &str) -> Result<()> {
        self.append(id, "failed", Entry::default())
    }

    pub fn deleted(&mut self, id: &str) -> Result<()> {
        self.append(id, "deleted", Entry::default())?;
        self.sent.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_crash_between_start_and_sent() {
        let p = std::env::temp_dir().join(format!("slackctl-journal-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        {
            let mut j = Journal::open(&p).unwrap();
            j.start("a").unwrap();
            j.sent(
                "a",
                Entry {
                    ts: Some("1.000100".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            j.start("b").unwrap(); // crash here
        }
        // A torn line at the end is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"id\": \"c\", \"ev")
            .unwrap();
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.sent["a"].ts.as_deref(), Some("1.000100"));
        assert_eq!(j.interrupted, vec!["b".to_string()]);
        assert!(!j.sent.contains_key("b"));
        let _ = std::fs::remove_file(&p);
    }
}
