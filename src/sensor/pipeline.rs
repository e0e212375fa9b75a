//! What happens to every received message event, whatever the transport: filter, drop
//! repeats, look up names, build the payload and write the line. Only after
//! [`Pipeline::flush`] returns may the transport acknowledge the events handled so far, so a
//! crash can repeat a message but never lose one. Transports flush once per batch of
//! events (not once per line), which is what lets the sensor keep up with a flood.

use super::dedupe::{self, Seen};
use super::enrich::Enricher;
use super::event::Event;
use super::payload::{self, Delivery, Filter};
use super::strip;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where trigger lines go. Lines may be buffered by `emit`; `flush` makes them durable for
/// the reader (and must succeed before anything is acknowledged).
pub trait Sink: Send {
    /// One line (JSON text, without the newline).
    fn emit(&mut self, line: &[u8]) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's stdout: one line per trigger, buffered until the batch is flushed.
pub struct StdoutSink {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn emit(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Emitted,
    Filtered(String),
    Duplicate,
}

pub struct Pipeline {
    filter: Filter,
    strip: bool,
    seen: Seen,
    enrich: Enricher,
    sink: Box<dyn Sink>,
    /// The line being written, reused from event to event.
    line: Vec<u8>,
    state: Option<PathBuf>,
    last_save: Instant,
    emitted: u64,
    max: Option<u64>,
    verbose: bool,
}

/// Saves are spaced at least this far apart; a final save happens on exit.
const SAVE_EVERY: Duration = Duration::from_secs(1);

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
            state: None,
            last_save: Instant::now(),
            emitted: 0,
            max,
            verbose,
        }
    }

    /// Uses `dir` to remember emitted messages across restarts; loads what is there.
    pub fn with_state(mut self, dir: PathBuf) -> crate::error::Result<Pipeline> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            crate::error::Error::config(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        let file = dedupe::state_file(&dir);
        match std::fs::read_to_string(&file) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => {
                    let n = self.seen.load_json(&v, unix_now());
                    if self.verbose {
                        crate::log::debug(&format!(
                            "loaded {n} recent message keys from {}",
                            file.display()
                        ));
                    }
                }
                Err(e) => crate::log::warn(&format!(
                    "ignoring the unreadable state file {} ({e}); starting afresh",
                    file.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => crate::log::warn(&format!("cannot read {}: {e}", file.display())),
        }
        self.state = Some(file);
        Ok(self)
    }

    /// How many lines were written.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// True once `--max-messages` lines were written.
    pub fn done(&self) -> bool {
        self.max.is_some_and(|m| self.emitted >= m)
    }

    /// Handles one event. `Ok` means it is dealt with (emitted, filtered or a repeat) and may
    /// be acknowledged; `Err` means stdout is gone and nothing more can be emitted.
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
        let keys = m.keys(inc.event_id, inc.envelope_id).into_iter().flatten();
        let now = unix_now();
        if self.seen.contains_any(keys.clone(), now) {
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
            self.enrich.warm(users, channels).await;
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
        self.sink.emit(&self.line).map_err(SinkClosed)?;
        self.emitted += 1;
        self.seen.insert(keys, now);
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.save();
        }
        Ok(Outcome::Emitted)
    }

    /// Makes every line emitted so far visible to the reader. Acknowledge only after this.
    pub fn flush(&mut self) -> Result<(), SinkClosed> {
        self.sink.flush().map_err(SinkClosed)
    }

    /// Writes the state file if anything changed (called periodically and on exit). Lines
    /// are flushed first: a key must never be saved for a line the reader has not got.
    pub fn save(&mut self) {
        self.last_save = Instant::now();
        if self.flush().is_err() {
            return;
        }
        let Some(file) = &self.state else {
            return;
        };
        if !self.seen.is_dirty() {
            return;
        }
        self.seen.expire(unix_now());
        match dedupe::write_atomically(file, &self.seen.to_json().to_string()) {
            Ok(()) => self.seen.mark_clean(),
            Err(e) => crate::log::warn(&format!("cannot save {}: {e}", file.display())),
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
        assert!(p.handle(inc(&a, Some("Ev1"), None)).await.is_err());
        assert_eq!(
            p.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Emitted,
            "a message never written is not a repeat"
        );
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
        p.save();
        let mut q = pipeline(lines.clone(), Filter::default(), false)
            .with_state(dir.clone())
            .unwrap();
        assert_eq!(
            q.handle(inc(&a, Some("Ev1"), None)).await.unwrap(),
            Outcome::Duplicate
        );
        assert_eq!(lines.lock().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
