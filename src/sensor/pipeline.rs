//! What happens to every received message event, whatever the transport: filter, drop
//! repeats, look up names, build the payload and queue the line. Only after
//! [`Pipeline::flush`] returns may the transport acknowledge the events handled so far, so a
//! crash can never lose a message. Transports flush once per batch of events (not once per
//! line), which is what lets the sensor keep up with a flood.
//!
//! With a dedupe record (`--state`, or the Redis backend), each batch follows the write-ahead
//! protocol of [`crate::store::seen`]: its keys are claimed in the record before any of its
//! lines reaches stdout, and committed (locally one fdatasync) after the lines are flushed and
//! before any acknowledgement. So
//! everything acknowledged is recorded, and a redelivery after a restart is dropped.

use super::dedupe::{self, Seen};
use super::enrich::{self, Enricher, Known};
use super::event::Event;
use super::payload::{self, Delivery, Filter};
use super::strip;
use crate::store::seen::{self, MessageKeys, SeenStore, SyncJob};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where trigger lines go. Lines may be buffered by `emit`; `flush` makes them durable for
/// the reader (and must succeed before anything is acknowledged).
pub trait Sink: Send {
    /// One line (JSON text, without the newline).
    fn emit(&mut self, line: &[u8]) -> std::io::Result<()>;
    /// Several lines at once, each ending with a newline.
    fn emit_all(&mut self, lines: &[u8]) -> std::io::Result<()> {
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.emit(line)?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's stdout: one line per trigger. Batches are written straight through, in
/// pieces of whole lines of at most [`ATOMIC_WRITE`] bytes: a pipe takes such a write whole or
/// not at all, so a sensor killed mid-batch never leaves half a line for its reader (a single
/// line longer than that is written alone and could still be cut).
pub struct StdoutSink {
    out: std::io::Stdout,
    /// `emit` collects lines here until `flush`.
    buf: Vec<u8>,
}

/// POSIX guarantees atomic pipe writes up to `PIPE_BUF`, which is 4096 bytes on Linux (and at
/// least 512 anywhere); larger pieces would save system calls but could be split.
pub const ATOMIC_WRITE: usize = 4096;

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: std::io::stdout(),
            buf: Vec::new(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

/// Where to cut `rest` for the next write: after the last newline within `ATOMIC_WRITE`
/// bytes, else after the first newline (one long line), else at the end.
pub fn next_piece(rest: &[u8]) -> usize {
    if rest.len() <= ATOMIC_WRITE {
        return rest.len();
    }
    match rest[..ATOMIC_WRITE].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1),
    }
}

impl Sink for StdoutSink {
    fn emit(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        Ok(())
    }
    fn emit_all(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.flush()?;
        let mut out = self.out.lock();
        let mut rest = lines;
        while !rest.is_empty() {
            let cut = next_piece(rest);
            out.write_all(&rest[..cut])?;
            rest = &rest[cut..];
        }
        out.flush()
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let r = self.emit_all(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

/// A sink that hands lines to a closure (the in-process demo, tests).
pub struct FnSink<F: FnMut(&str) -> std::io::Result<()> + Send>(pub F);

impl<F: FnMut(&str) -> std::io::Result<()> + Send> Sink for FnSink<F> {
    fn emit(&mut self, line: &[u8]) -> std::io::Result<()> {
        (self.0)(&String::from_utf8_lossy(line))
    }
}

/// stdout went away: the sensor stops, and what it could not write stays unacknowledged.
#[derive(Debug)]
pub struct SinkClosed(pub std::io::Error);

/// One received event and what its transport knows about it.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub event: Event<'a>,
    pub event_id: Option<&'a str>,
    pub envelope_id: Option<&'a str>,
    pub team: Option<&'a str>,
    /// `retry_attempt` (Socket Mode) or `X-Slack-Retry-Num` (HTTP); 0 on first delivery.
    pub retry: u64,
    /// When the event came off the wire: its name lookups may last until
    /// [`enrich::LOOKUP_BUDGET`] after this.
    pub received: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Emitted,
    Filtered(String),
    Duplicate,
}

/// Lines queued beyond this many bytes are written out (claimed first) without waiting for the
/// end of the batch; acknowledgements still wait for [`Pipeline::flush`].
const WRITE_AT: usize = 192 * 1024;

pub struct Pipeline {
    filter: Filter,
    strip: bool,
    seen: Seen,
    enrich: Enricher,
    sink: Box<dyn Sink>,
    /// The line being written, reused from event to event.
    line: Vec<u8>,
    /// Lines handled and not yet written to the sink, each ending with a newline.
    batch: Vec<u8>,
    /// The keys of each line in `batch`, in order.
    batch_keys: Vec<MessageKeys>,
    store: Option<Box<dyn SeenStore>>,
    /// Keys a killed run claimed without committing: their lines may have been written.
    uncertain: HashSet<u64>,
    /// A failing store is reported once, not per batch.
    store_warned: bool,
    /// A shared record could not be reached: the batch was held back, and its envelopes must
    /// not be acknowledged (see [`Pipeline::take_held`]).
    held: bool,
    /// The shared record is unreachable (said once per outage).
    store_down: bool,
    emitted: u64,
    max: Option<u64>,
    verbose: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pipeline {
    pub fn new(
        filter: Filter,
        strip: bool,
        enrich: Enricher,
        sink: Box<dyn Sink>,
        max: Option<u64>,
        verbose: bool,
    ) -> Pipeline {
        Pipeline {
            filter,
            strip,
            seen: Seen::new(dedupe::DEFAULT_TTL_SECS, dedupe::DEFAULT_CAPACITY),
            enrich,
            sink,
            line: Vec::with_capacity(1024),
            batch: Vec::with_capacity(WRITE_AT + 64 * 1024),
            batch_keys: Vec::with_capacity(1024),
            store: None,
            uncertain: HashSet::new(),
            store_warned: false,
            held: false,
            store_down: false,
            emitted: 0,
            max,
            verbose,
        }
    }

    /// Keeps the dedupe record in `dir` (the local-file backend); loads what is there.
    pub fn with_state(self, dir: PathBuf) -> crate::error::Result<Pipeline> {
        let backend = crate::store::Backend::Local { dir: dir.clone() };
        let store = seen::open(&backend, dedupe::DEFAULT_TTL_SECS).map_err(|e| {
            crate::error::Error::config(format!(
                "cannot use the state directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut p = self.with_store(store)?;
        p.migrate_legacy(&dir);
        Ok(p)
    }

    /// Keeps the dedupe record in `store`; loads what it remembers.
    pub fn with_store(mut self, mut store: Box<dyn SeenStore>) -> crate::error::Result<Pipeline> {
        let now = unix_now();
        let loaded = store.load(now).map_err(|e| {
            crate::error::Error::config(format!(
                "cannot read or rewrite the dedupe record {}: {e}",
                store.describe()
            ))
        })?;
        let n = self.seen.load(loaded.live, now);
        if self.verbose {
            crate::log::debug(&format!(
                "loaded {n} recent message keys from {}",
                store.describe()
            ));
        }
        if !loaded.uncertain.is_empty() {
            // Keys come two per message at most; say how many messages, roughly.
            crate::log::warn(&format!(
                "the previous run stopped while writing a batch of messages ({} keys in {}); \
                 if Slack delivers them again they are emitted again, since they may not have \
                 reached the reader",
                loaded.uncertain.len(),
                store.describe()
            ));
            self.uncertain = loaded.uncertain.into_iter().collect();
        }
        self.store = Some(store);
        Ok(self)
    }

    /// Brings the keys of an earlier version's JSON state file into the record, once.
    fn migrate_legacy(&mut self, dir: &std::path::Path) {
        let file = dedupe::legacy_state_file(dir);
        let Ok(text) = std::fs::read_to_string(&file) else {
            return;
        };
        let now = unix_now();
        let mut old = Seen::new(dedupe::DEFAULT_TTL_SECS, dedupe::DEFAULT_CAPACITY);
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            old.load_json(&v, now);
        }
        let entries: Vec<(u64, u64)> = old.entries().collect();
        let keys: Vec<MessageKeys> = entries.iter().map(|(k, _)| [Some(*k), None]).collect();
        if let Some(store) = self.store.as_mut()
            && store.claim(&keys, now).and_then(|_| store.commit()).is_ok()
        {
            self.seen.load(entries, now);
            let _ = std::fs::remove_file(&file);
        }
    }

    /// Whether a batch was held back since the last call: its envelopes (and any others
    /// waiting with them) must not be acknowledged.
    pub fn take_held(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }

    /// How many lines were emitted.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// True once `--max-messages` lines were emitted.
    pub fn done(&self) -> bool {
        self.max.is_some_and(|m| self.emitted >= m)
    }

    /// Handles one event. `Ok` means it is dealt with (queued, filtered or a repeat) and may be
    /// acknowledged after the next [`Pipeline::flush`]; `Err` means stdout is gone and nothing
    /// more can be emitted.
    pub async fn handle(&mut self, inc: Incoming<'_>) -> Result<Outcome, SinkClosed> {
        let m = match self.filter.check(inc.event) {
            Ok(m) => m,
            Err(why) => {
                if self.verbose {
                    crate::log::debug(&format!("skipped: {why}"));
                }
                return Ok(Outcome::Filtered(why));
            }
        };
        let keys = m.keys(inc.event_id, inc.envelope_id);
        let now = unix_now();
        if self.seen.contains_any(keys.into_iter().flatten(), now) {
            if self.verbose {
                crate::log::debug(&format!(
                    "dropped a repeat of {} {} (retry {})",
                    m.channel(),
                    m.event_ts(),
                    inc.retry
                ));
            }
            return Ok(Outcome::Duplicate);
        }

        let text = m.text();
        let mut known = Known::All;
        if self.enrich.enabled() {
            let (users, channels) = if self.strip {
                strip::mentions(text)
            } else {
                (Vec::new(), Vec::new())
            };
            let users = m
                .user_id()
                .into_iter()
                .chain(users.iter().map(String::as_str));
            let channels = std::iter::once(m.channel()).chain(channels.iter().map(String::as_str));
            let deadline = inc.received + enrich::LOOKUP_BUDGET;
            known = self.enrich.warm(users, channels, deadline).await;
        }
        let text = if self.strip {
            Cow::Owned(strip::strip(text, &self.enrich.names()))
        } else {
            Cow::Borrowed(text)
        };
        let user = m.user_id().and_then(|u| self.enrich.user(u));
        let channel = self.enrich.channel(m.channel());
        let p = payload::payload(
            &m,
            user,
            channel,
            &text,
            Delivery {
                event_id: inc.event_id,
                team: inc.team,
                enrichment: (known == Known::Partial).then_some("partial"),
            },
        );
        if let Err(e) = payload::write_line(&p, &mut self.line) {
            // Not expected (every part is JSON already); skipped rather than half written.
            crate::log::warn(&format!(
                "cannot write the trigger for {} {}: {e}",
                m.channel(),
                m.event_ts()
            ));
            return Ok(Outcome::Filtered(format!("unwritable: {e}")));
        }
        if !self.uncertain.is_empty()
            && keys
                .into_iter()
                .flatten()
                .fold(false, |hit, k| self.uncertain.remove(&k) | hit)
        {
            crate::log::warn(&format!(
                "emitting {} {} again: the previous run was stopped while writing it, so the \
                 reader may already have it",
                m.channel(),
                m.event_ts()
            ));
        }
        self.batch.extend_from_slice(&self.line);
        self.batch.push(b'\n');
        self.batch_keys.push(keys);
        self.emitted += 1;
        self.seen.insert(keys.into_iter().flatten(), now);
        if self.batch.len() >= WRITE_AT {
            self.write_batch()?;
        }
        Ok(Outcome::Emitted)
    }

    /// Claims the queued lines in the dedupe record, then writes and flushes them to the sink.
    fn write_batch(&mut self) -> Result<(), SinkClosed> {
        if self.batch_keys.is_empty() {
            return self.sink.flush().map_err(SinkClosed);
        }
        let mut mine = None;
        if let Some(store) = self.store.as_mut() {
            match store.claim(&self.batch_keys, unix_now()) {
                Ok(m) => {
                    if std::mem::take(&mut self.store_down) {
                        crate::log::info(&format!(
                            "{} answers again; emitting and acknowledging",
                            store.describe()
                        ));
                    }
                    mine = Some(m);
                }
                Err(e) if store.required() => {
                    // A record shared with other sensors: emitting alone could repeat what
                    // they emit. Hold the batch back unacknowledged; Slack delivers it again.
                    if !std::mem::replace(&mut self.store_down, true) {
                        crate::log::warn(&format!(
                            "{e}; not emitting or acknowledging messages until it answers (Slack delivers them again)"
                        ));
                    }
                    let keys = std::mem::take(&mut self.batch_keys);
                    self.emitted = self.emitted.saturating_sub(keys.len() as u64);
                    self.seen.forget(keys.into_iter().flatten().flatten());
                    self.batch.clear();
                    self.held = true;
                    return self.sink.flush().map_err(SinkClosed);
                }
                Err(e) => {
                    if !self.store_warned {
                        self.store_warned = true;
                        crate::log::warn(&format!(
                            "cannot write the dedupe record {} ({e}); messages are still \
                             emitted, but a restart may emit some of them again",
                            store.describe()
                        ));
                    }
                }
            }
        }
        let result = match mine {
            Some(m) if m.iter().any(|ours| !ours) => {
                // Another sensor sharing the record emitted some of these: skip those lines.
                let mut r = Ok(());
                for (line, ours) in self.batch.split_inclusive(|&b| b == b'\n').zip(m) {
                    if !ours {
                        self.emitted = self.emitted.saturating_sub(1);
                    } else if r.is_ok() {
                        r = self.sink.emit_all(line);
                    }
                }
                r
            }
            _ => self.sink.emit_all(&self.batch),
        }
        .and_then(|_| self.sink.flush());
        if let Err(e) = result {
            // Not written, not acknowledged: Slack sends these again, so they are not repeats.
            let keys = std::mem::take(&mut self.batch_keys);
            self.emitted = self.emitted.saturating_sub(keys.len() as u64);
            self.seen.forget(keys.into_iter().flatten().flatten());
            self.batch.clear();
            return Err(SinkClosed(e));
        }
        self.batch.clear();
        self.batch_keys.clear();
        Ok(())
    }

    /// Writes every queued line and makes the batch's dedupe record durable. Acknowledge only
    /// after this.
    pub fn flush(&mut self) -> Result<(), SinkClosed> {
        if let Some(job) = self.flush_lines()? {
            let result = job();
            self.sync_done(result);
        }
        Ok(())
    }

    /// Writes every queued line and seals the batch in the dedupe record; returns the work
    /// that makes it durable (none without a record). The batch's acknowledgements wait for
    /// that work, which the caller may run off the event loop (Socket Mode does, so that one
    /// batch syncs while the next is handled).
    pub fn flush_lines(&mut self) -> Result<Option<SyncJob>, SinkClosed> {
        self.write_batch()?;
        let Some(store) = self.store.as_mut() else {
            return Ok(None);
        };
        match store.seal() {
            Ok(job) => Ok(Some(job)),
            Err(e) => {
                self.sync_done(Err(e));
                Ok(None)
            }
        }
    }

    /// Reports a failed sync once (the sensor goes on: memory still drops repeats).
    pub fn sync_done(&mut self, result: std::io::Result<()>) {
        if let Err(e) = result
            && !self.store_warned
        {
            self.store_warned = true;
            let name = self
                .store
                .as_ref()
                .map(|s| s.describe())
                .unwrap_or_default();
            crate::log::warn(&format!(
                "cannot sync the dedupe record {name} ({e}); a restart may emit some messages again"
            ));
        }
    }

    /// Periodic housekeeping between batches (the transports call it about once a second and
    /// on exit): lets the record drop what expired.
    pub fn tidy(&mut self) {
        // Memory already holds the keys of queued lines; a rewrite now would record them as
        // committed before their lines were written. Wait for the batch to go out.
        if !self.batch_keys.is_empty() {
            return;
        }
        let now = unix_now();
        self.seen.expire(now);
        let count = self.seen.len();
        if let Some(store) = self.store.as_mut()
            && let Err(e) = store.tidy(&mut self.seen.entries(), count)
        {
            crate::log::warn(&format!(
                "cannot compact the dedupe record {}: {e}",
                store.describe()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    fn pipeline(lines: Arc<Mutex<Vec<String>>>, filter: Filter, strip: bool) -> Pipeline {
        let sink = FnSink(move |l: &str| {
            lines.lock().unwrap().push(l.to_string());
            Ok(())
        });
        Pipeline::new(
            filter,
            strip,
            Enricher::new(None),
            Box::new(sink),
            None,
            false,
        )
    }

    fn ev(ts: &str, text: &str) -> String {
        json!({"type": "message", "channel": "C1", "user": "U1", "text": text, "ts": ts})
            .to_string()
    }

    fn inc<'a>(e: &'a str, event_id: Option<&'a str>, envelope: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            event: Event::parse(e).unwrap(),
            event_id,
            envelope_id: envelope,
            team: None,
            retry: 0,
            received: Instant::now(),
        }
    }

    #[tokio::test]
    async fn emits_once_per_message_and_strips() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut p = pipeline(lines.clone(), Filter::default(), true);
        let a = ev(
            "1700000000.000100",
            "see <https://x.example|docs> &amp; <@U9>",
        );
        let b = ev("1700000000.000200", "same second");
        assert_eq!(
            p.handle(inc(&a, Some("Ev1"), Some("e1"))).await.unwrap(),
            Outcome::Emitted
        );
        // A redelivery: new envelope, same event id.
        assert_eq!(
            p.handle(inc(&a, Some("Ev1"), Some("e2"))).await.unwrap(),
            Outcome::Duplicate
        );
        // The same frame twice.
        assert_eq!(
            p.handle(inc(&a, None, Some("e1"))).await.unwrap(),
            Outcome::Duplicate
        );
        assert_eq!(
            p.handle(inc(&a, None, None)).await.unwrap(),
            Outcome::Duplicate
        );
        assert_eq!(
            p.handle(inc(&b, Some("Ev2"), Some("e3"))).await.unwrap(),
            Outcome::Emitted
        );
        let bot =
            json!({"type": "message", "channel": "C1", "bot_id": "B1", "text": "x", "ts": "1.1"})
                .to_string();
        assert!(matches!(
            p.handle(inc(&bot, None, None)).await.unwrap(),
            Outcome::Filtered(_)
        ));
        assert!(
            lines.lock().unwrap().is_empty(),
            "nothing written before a flush"
        );
        p.flush().unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["trigger"], "slack.message");
        assert_eq!(first["payload"]["text"], "see docs & @U9");
        assert_eq!(first["payload"]["event_id"], "Ev1");
        assert_eq!(p.emitted(), 2);
    }

    #[tokio::test]
    async fn a_closed_sink_is_reported_and_nothing_is_remembered() {
        // Fails once (stdout went away), then works, to see what the failure left behind.
        let mut calls = 0;
        let sink = FnSink(move |_: &str| {
            calls += 1;
            if calls == 1 {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            } else {
                Ok(())
            }
        });
        let mut p = Pipeline::new(
            Filter::default(),
            false,
            Enricher::new(None),
            Box::new(sink),
            None,
            false,
        );
        let a = ev("1700000000.000100", "hi");
        assert_eq!(
            p.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Emitted
        );
        assert!(p.flush().is_err());
        assert_eq!(p.emitted(), 0);
        assert_eq!(
            p.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Emitted,
            "a message never written is not a repeat"
        );
        assert!(p.flush().is_ok());
        assert_eq!(p.emitted(), 1);
    }

    #[tokio::test]
    async fn state_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("slackctl-pipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut p = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        let a = ev("1700000000.000100", "hi");
        p.handle(inc(&a, Some("Ev1"), None)).await.unwrap();
        p.flush().unwrap();
        drop(p);
        let mut q = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        assert_eq!(
            q.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Duplicate
        );
        q.flush().unwrap();
        assert_eq!(lines.lock().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_batch_killed_before_its_commit_is_emitted_again_not_lost() {
        let dir = std::env::temp_dir().join(format!("slackctl-pipe-kill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut p = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        let (a, b) = (ev("1700000000.000100", "a"), ev("1700000000.000200", "b"));
        p.handle(inc(&a, Some("Ev1"), None)).await.unwrap();
        p.flush().unwrap(); // committed: acknowledged
        p.handle(inc(&b, Some("Ev2"), None)).await.unwrap();
        p.write_batch().unwrap(); // claimed and written, then "killed" before the commit
        drop(p);
        assert_eq!(lines.lock().unwrap().len(), 2);
        let mut q = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        assert!(!q.uncertain.is_empty());
        assert_eq!(
            q.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Duplicate
        );
        assert_eq!(
            q.handle(inc(&b, Some("Ev2"), None)).await.unwrap(),
            Outcome::Emitted,
            "uncertain: emitted again rather than risk losing it"
        );
        assert!(q.uncertain.is_empty());
        q.flush().unwrap();
        assert_eq!(lines.lock().unwrap().len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_json_state_of_earlier_versions_is_carried_over() {
        let dir = std::env::temp_dir().join(format!("slackctl-pipe-json-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dedupe::message_key("C1", "1700000000.000100");
        let legacy = dedupe::legacy_state_file(&dir);
        std::fs::write(
            &legacy,
            json!({"version": 2, "keys": [[key, unix_now()]]}).to_string(),
        )
        .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut p = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        assert!(!legacy.exists(), "read once, then removed");
        let a = ev("1700000000.000100", "a");
        assert_eq!(
            p.handle(inc(&a, None, None)).await.unwrap(),
            Outcome::Duplicate
        );
        drop(p);
        let mut q = pipeline(lines, Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        assert_eq!(
            q.handle(inc(&a, None, None)).await.unwrap(),
            Outcome::Duplicate,
            "now in the new record"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stdout_pieces_are_whole_lines_within_an_atomic_write() {
        let line = |n: usize| {
            let mut l = vec![b'x'; n - 1];
            l.push(b'\n');
            l
        };
        let mut batch = Vec::new();
        for _ in 0..20 {
            batch.extend(line(700));
        }
        batch.extend(line(9000));
        batch.extend(line(10));
        let mut rest = &batch[..];
        let mut pieces = Vec::new();
        while !rest.is_empty() {
            let cut = next_piece(rest);
            pieces.push(cut);
            rest = &rest[cut..];
        }
        assert_eq!(
            pieces[0],
            5 * 700,
            "as many whole lines as fit in 4096 bytes"
        );
        assert!(pieces.contains(&9000), "a long line goes alone, whole");
        assert_eq!(pieces.iter().sum::<usize>(), batch.len());
    }
}
