//! The WebSocket transports: Socket Mode (`apps.connections.open`, envelopes, acks) and the
//! legacy RTM API (`rtm.connect`, top-level events). One manager loop owns the connections;
//! each connection runs in its own task that reads frames, sends acks and pings, and notices
//! a dead or deaf socket.
//!
//! Lifecycle rules (slack-platform.md §4, §5):
//! * every envelope is acknowledged, after its line was written and flushed (filtered ones and
//!   repeats at once);
//! * `disconnect` (`warning`, `refresh_requested`) and RTM `goodbye`: open a new connection
//!   first, close the old one once the new one said `hello`, so nothing is lost;
//! * `too_many_websockets`: close this one, reconnect after a backoff;
//! * `link_disabled`: stop with an error;
//! * a dropped socket, a missing pong or no traffic at all: reconnect with backoff and jitter.

use super::event::{self, Event, EventEnvelope, Frame};
use super::pipeline::{Incoming, Pipeline};
use super::{Ending, Stop};
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::store::seen::SyncJob;
use crate::transport::{Body, Client, Request};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Which protocol the sockets speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    SocketMode,
    Rtm,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::SocketMode => "Socket Mode",
            Protocol::Rtm => "RTM",
        }
    }
}

/// Keepalive settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How often the client pings.
    pub ping_interval: Duration,
    /// A ping unanswered this long means the socket is dead.
    pub pong_timeout: Duration,
    /// No frame at all for this long means the socket is dead.
    pub idle_timeout: Duration,
    /// Limit for the URL call, the WebSocket handshake and the `hello`, together.
    pub connect_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// How a connection gets its URL.
#[derive(Clone)]
pub struct Opener {
    pub protocol: Protocol,
    pub client: Client,
    pub token: Secret,
}

impl Opener {
    async fn url(&self) -> std::result::Result<String, (Error, bool)> {
        let (method, body) = match self.protocol {
            Protocol::SocketMode => ("apps.connections.open", Body::Form(Vec::new())),
            Protocol::Rtm => ("rtm.connect", Body::Query(Vec::new())),
        };
        let req = Request {
            method,
            body,
            token: Some(&self.token),
            idempotent: true,
            pace: None,
        };
        match self.client.call(&req).await {
            Ok(r) => r.body["url"]
                .as_str()
                .filter(|u| u.starts_with("ws://") || u.starts_with("wss://"))
                .map(str::to_string)
                .ok_or_else(|| {
                    (
                        Error::failed(format!("{method} answered without a WebSocket url")),
                        false,
                    )
                }),
            Err(e) => {
                let code = e.slack_code().map(str::to_string);
                let fatal = matches!(
                    code.as_deref(),
                    Some(
                        "not_authed"
                            | "invalid_auth"
                            | "not_allowed_token_type"
                            | "account_inactive"
                            | "token_revoked"
                            | "token_expired"
                            | "missing_scope"
                            | "forbidden_team"
                            | "legacy_custom_bots_deprecated"
                    )
                );
                Err((explain(self.protocol, code.as_deref(), e), fatal))
            }
        }
    }
}

/// Adds transport-specific advice to a failed URL call.
fn explain(protocol: Protocol, code: Option<&str>, e: Error) -> Error {
    match (protocol, code) {
        (Protocol::Rtm, Some("not_allowed_token_type" | "legacy_custom_bots_deprecated")) => {
            let mut e = e;
            e.hints.clear();
            e.message = format!(
                "{}: Slack refuses RTM for this token (only classic apps may use RTM)",
                e.message
            );
            e.hint("use Socket Mode instead: in the app's settings turn on Socket Mode, create an app-level token with the connections:write scope (Basic Information > App-Level Tokens), and set SLACK_APP_TOKEN=xapp-… (or sensor.app_token); `slackctl sensor` then uses it automatically")
        }
        (Protocol::SocketMode, Some("invalid_auth" | "not_authed" | "not_allowed_token_type")) => e
            .hint("Socket Mode needs an app-level token (xapp-…) with connections:write in SLACK_APP_TOKEN or sensor.app_token"),
        _ => e,
    }
}

/// Connection task → manager.
enum Report {
    Ready {
        id: u64,
    },
    Frame {
        id: u64,
        /// The frame's text, parsed by the manager (borrowing from it).
        text: Utf8Bytes,
        /// When it came off the socket (the lookup budget counts from here).
        received: std::time::Instant,
        /// Held until the frame is handled: bounds how many parsed frames wait in memory.
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
    Closed {
        id: u64,
        why: String,
        /// Set when the URL call failed in a way retrying cannot fix.
        fatal: Option<Error>,
    },
}

/// Manager → connection task.
enum Command {
    Send(String),
    StopReading,
    Close,
}

struct Conn {
    cmd: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
    ready_at: Option<Instant>,
    /// Asked to go away (disconnect / goodbye): kept only until its replacement is ready.
    draining: bool,
    /// Closed on our initiative: its end is not a failure.
    closing: bool,
    /// Slack told it to go for having too many sockets: its end counts as a failure.
    penalize: bool,
}

/// A small xorshift generator for backoff jitter (no need for a crypto-quality source).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Jitter(seed | 1)
    }
    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before the next connection attempt after `failures` consecutive failures:
/// up to a quarter second after a planned or first loss, then 0.5 s doubling up to 30 s,
/// each with ±25 % jitter so that many sensors do not reconnect in step.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    if failures == 0 {
        return Duration::from_secs_f64(0.25 * jitter);
    }
    let base = (0.5 * f64::from(1u32 << (failures - 1).min(6))).min(30.0);
    Duration::from_secs_f64(base * (0.75 + 0.5 * jitter))
}

/// Connections that die sooner than this after `hello` count as failures for the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Runs the sensor over WebSockets until stopped, done, stdout closes, or a fatal error.
pub async fn run(
    opener: Opener,
    timing: Timing,
    pipeline: &mut Pipeline,
    mut stop: Stop,
) -> Result<Ending> {
    crate::transport::install_crypto_provider();
    let protocol = opener.protocol;
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    let permits = Arc::new(tokio::sync::Semaphore::new(FRAMES_IN_FLIGHT));
    let mut pending: Vec<(u64, String)> = Vec::new();
    let mut syncs = Syncs::default();
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next_id = 0u64;
    let mut failures = 0u32;
    let mut jitter = Jitter::new();
    let mut connect_at: Option<Instant> = Some(Instant::now());
    let mut connecting: Option<u64> = None;
    let mut save_tick = tokio::time::interval(Duration::from_secs(1));
    save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the oldest acknowledgement still pending was received.
    let mut oldest: Option<std::time::Instant> = None;
    let mut rtm = RtmGap::default();

    let mut unflushed = false;
    let ending = loop {
        if pending.is_empty() {
            oldest = None;
        }
        // Lines go out (flushed) before their acknowledgements, once per batch of frames.
        if unflushed && rx.is_empty() {
            unflushed = false;
            if !flush_acks(pipeline, &conns, &mut pending, &mut syncs) {
                break Ending::StdoutClosed;
            }
        }
        if pipeline.done() {
            break Ending::Done;
        }
        // Nothing alive and nothing planned: plan a reconnect.
        if connecting.is_none()
            && connect_at.is_none()
            && !conns.values().any(|c| c.ready_at.is_some() && !c.draining)
        {
            let wait = backoff(failures, jitter.next());
            if failures > 0 {
                crate::log::warn(&format!(
                    "reconnecting ({}) in {:.1}s",
                    protocol.name(),
                    wait.as_secs_f64()
                ));
            }
            connect_at = Some(Instant::now() + wait);
        }
        let connect_due = async {
            match connect_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let synced = async {
            match syncs.running.as_mut() {
                Some((job, _)) => job.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break Ending::Stopped,
            result = synced => syncs.finished(result, pipeline, &conns),
            report = rx.recv() => {
                let Some(report) = report else { break Ending::Stopped };
                match report {
                    Report::Ready { id } => {
                        if connecting == Some(id) {
                            connecting = None;
                        }
                        if let Some(c) = conns.get_mut(&id) {
                            c.ready_at = Some(Instant::now());
                        }
                        let live = conns.values().filter(|c| c.ready_at.is_some()).count();
                        crate::log::info(&format!("sensor connected ({}, {live} connection(s))", protocol.name()));
                        // RTM does not replay what was posted while no socket was up: fetch it.
                        if protocol == Protocol::Rtm
                            && let Some(since) = rtm.lost_at.take()
                            && !rtm.backfill(&opener, pipeline, since.elapsed()).await
                        {
                            break Ending::StdoutClosed;
                        }
                        // The replacement is up: let the old connections go.
                        for (other, c) in conns.iter_mut() {
                            if *other != id && c.draining && !c.closing {
                                c.closing = true;
                                let _ = c.cmd.send(Command::Close);
                            }
                        }
                    }
                    Report::Frame { id, text, received, _permit } => {
                        let result = on_frame(protocol, id, &text, received, &mut conns, pipeline, &mut pending, &mut rtm).await?;
                        drop(_permit);
                        unflushed = true;
                        if !pending.is_empty() {
                            oldest.get_or_insert(received);
                        }
                        // A large batch, or one whose first envelope has waited long (slow
                        // lookups), is flushed and acknowledged at once; smaller ones at the
                        // top of the loop, as soon as nothing else is waiting.
                        if (pending.len() >= ACK_BATCH || oldest.is_some_and(|t| t.elapsed() >= ACK_WITHIN))
                            && !matches!(result, FrameResult::SinkClosed)
                        {
                            oldest = None;
                            if !flush_acks(pipeline, &conns, &mut pending, &mut syncs) {
                                break Ending::StdoutClosed;
                            }
                        }
                        match result {
                            FrameResult::Continue => {}
                            FrameResult::SinkClosed => break Ending::StdoutClosed,
                            FrameResult::Replace => {
                                if connecting.is_none() {
                                    connect_at = Some(Instant::now());
                                }
                            }
                            FrameResult::Backoff => {
                                if let Some(c) = conns.get_mut(&id) {
                                    c.penalize = true;
                                }
                            }
                        }
                    }
                    Report::Closed { id, why, fatal } => {
                        let conn = conns.remove(&id);
                        if connecting == Some(id) {
                            connecting = None;
                        }
                        if let Some(e) = fatal {
                            // A bad token fails at once; later (revoked while running) too.
                            break_all(&mut conns).await;
                            return Err(e);
                        }
                        let Some(conn) = conn else { continue };
                        if protocol == Protocol::Rtm
                            && conn.ready_at.is_some()
                            && !conns.values().any(|c| c.ready_at.is_some())
                            && rtm.lost_at.is_none()
                        {
                            rtm.lost_at = Some(std::time::Instant::now());
                        }
                        match conn.ready_at {
                            None => {
                                failures = failures.saturating_add(1);
                                crate::log::warn(&format!("cannot connect ({}): {why}", protocol.name()));
                            }
                            Some(at) => {
                                let stable = at.elapsed() >= STABLE_AFTER;
                                if conn.penalize || (!stable && !conn.closing) {
                                    failures = failures.saturating_add(1);
                                } else if stable {
                                    failures = 0;
                                }
                                if !conn.closing {
                                    crate::log::warn(&format!("connection lost ({}): {why}", protocol.name()));
                                }
                            }
                        }
                    }
                }
            }
            _ = connect_due => {
                connect_at = None;
                if connecting.is_none() {
                    next_id += 1;
                    let id = next_id;
                    let (cmd, cmd_rx) = mpsc::unbounded_channel();
                    let task = tokio::spawn(connection(id, opener.clone(), timing, tx.clone(), cmd_rx, permits.clone()));
                    conns.insert(id, Conn { cmd, task, ready_at: None, draining: false, closing: false, penalize: false });
                    connecting = Some(id);
                }
            }
            _ = save_tick.tick() => pipeline.tidy(),
        }
    };

    if ending == Ending::Stopped {
        // Stop reading, then finish what was already read (emit and acknowledge it).
        for c in conns.values() {
            let _ = c.cmd.send(Command::StopReading);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(report) = rx.try_recv() {
            if let Report::Frame {
                id, text, received, ..
            } = report
                && matches!(
                    on_frame(
                        protocol,
                        id,
                        &text,
                        received,
                        &mut conns,
                        pipeline,
                        &mut pending,
                        &mut rtm
                    )
                    .await?,
                    FrameResult::SinkClosed
                )
            {
                break;
            }
        }
    }
    if ending != Ending::StdoutClosed {
        flush_acks(pipeline, &conns, &mut pending, &mut syncs);
    }
    // Acknowledgements still waiting for the record's sync go out once it is done.
    while let Some((job, _)) = syncs.running.as_mut() {
        let result = job.await;
        syncs.finished(result, pipeline, &conns);
    }
    pipeline.tidy();
    close_all(&mut conns).await;
    Ok(ending)
}

/// Parsed frames allowed to wait for the pipeline; beyond this, reading pauses and TCP
/// pushes back on Slack. Keeps memory flat under a flood.
const FRAMES_IN_FLIGHT: usize = 256;
/// Acknowledgements sent in one go at most (lines are flushed first).
const ACK_BATCH: usize = 512;
/// A batch is acknowledged once its first envelope has waited this long, whatever follows:
/// with lookups bounded by `enrich::LOOKUP_BUDGET`, every envelope is acknowledged within
/// about this plus the budget (2 s), inside Slack's 3.
const ACK_WITHIN: Duration = Duration::from_millis(500);

/// Acknowledgements whose lines are out, waiting for the dedupe record's sync: the sync runs
/// on the blocking pool while the manager handles the next batch, and one sync covers every
/// batch sealed before it started.
#[derive(Default)]
struct Syncs {
    /// Sealed since the running sync started: they need the next one.
    sealed: Vec<(u64, String)>,
    next: Option<SyncJob>,
    running: Option<RunningSync>,
}

/// A sync on the blocking pool, and the acknowledgements waiting for it.
type RunningSync = (
    tokio::task::JoinHandle<std::io::Result<()>>,
    Vec<(u64, String)>,
);

impl Syncs {
    fn start(&mut self) {
        if self.running.is_none()
            && let Some(job) = self.next.take()
        {
            let acks = std::mem::take(&mut self.sealed);
            self.running = Some((tokio::task::spawn_blocking(job), acks));
        }
    }

    /// The running sync ended: its acknowledgements go out, and the next sync starts.
    fn finished(
        &mut self,
        result: std::result::Result<std::io::Result<()>, tokio::task::JoinError>,
        pipeline: &mut Pipeline,
        conns: &HashMap<u64, Conn>,
    ) {
        let Some((_, acks)) = self.running.take() else {
            return;
        };
        pipeline.sync_done(result.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))));
        send_acks(conns, acks);
        self.start();
    }
}

fn send_acks(conns: &HashMap<u64, Conn>, acks: impl IntoIterator<Item = (u64, String)>) {
    for (id, ack) in acks {
        if let Some(c) = conns.get(&id) {
            let _ = c.cmd.send(Command::Send(ack));
        }
    }
}

/// Flushes the emitted lines and seals them in the dedupe record, then sends the
/// acknowledgements waiting for them (once the record is synced, when there is one). Returns
/// false when stdout is closed: then nothing is acknowledged, and Slack redelivers to the next
/// run.
fn flush_acks(
    pipeline: &mut Pipeline,
    conns: &HashMap<u64, Conn>,
    pending: &mut Vec<(u64, String)>,
    syncs: &mut Syncs,
) -> bool {
    match pipeline.flush_lines() {
        Err(e) => {
            crate::log::warn(&format!(
                "stdout is closed ({}); stopping without acknowledging",
                e.0
            ));
            pending.clear();
            false
        }
        Ok(_) if pipeline.take_held() => {
            // The shared dedupe record is unreachable: nothing acknowledged, so Slack
            // delivers these again (to this sensor or another) once it answers.
            pending.clear();
            true
        }
        Ok(None) => {
            send_acks(conns, pending.drain(..));
            true
        }
        Ok(Some(job)) => {
            syncs.sealed.append(pending);
            syncs.next = Some(job);
            syncs.start();
            true
        }
    }
}

enum FrameResult {
    Continue,
    /// Open a replacement connection now (planned refresh).
    Replace,
    /// This connection was told to go; reconnect after a backoff.
    Backoff,
    SinkClosed,
}

#[allow(clippy::too_many_arguments)]
async fn on_frame(
    protocol: Protocol,
    id: u64,
    text: &str,
    received: std::time::Instant,
    conns: &mut HashMap<u64, Conn>,
    pipeline: &mut Pipeline,
    pending: &mut Vec<(u64, String)>,
    rtm: &mut RtmGap,
) -> Result<FrameResult> {
    match protocol {
        Protocol::SocketMode => {
            // One pass reads the envelope and its event; should that fail, the envelope alone
            // is read again so that it can still be acknowledged.
            let (frame, unreadable) = match event::read::<EventEnvelope>(text) {
                Ok(f) => (f, None),
                Err(e) => match event::read::<Frame>(text) {
                    Ok(f) => (f.without_payload(), Some(e)),
                    Err(_) => {
                        crate::log::warn("ignoring a Socket Mode frame that is not a JSON object");
                        return Ok(FrameResult::Continue);
                    }
                },
            };
            on_envelope(id, frame, unreadable, received, conns, pipeline, pending).await
        }
        Protocol::Rtm => {
            let Ok(event) = Event::parse(text) else {
                return Ok(FrameResult::Continue);
            };
            match event.kind.get().unwrap_or("") {
                "goodbye" => {
                    crate::log::info("Slack said goodbye (RTM); opening a new connection first");
                    if let Some(c) = conns.get_mut(&id) {
                        c.draining = true;
                    }
                    Ok(FrameResult::Replace)
                }
                "error" => {
                    let detail = serde_json::from_str::<Value>(text)
                        .map(|v| v["error"].to_string())
                        .unwrap_or_default();
                    crate::log::warn(&format!("RTM error frame: {detail}"));
                    Ok(FrameResult::Continue)
                }
                "message" => {
                    rtm.saw(event.channel.get(), event.ts.get());
                    let inc = Incoming {
                        event,
                        event_id: None,
                        envelope_id: None,
                        team: None,
                        retry: 0,
                        received,
                    };
                    match pipeline.handle(inc).await {
                        Ok(_) => Ok(FrameResult::Continue),
                        Err(e) => {
                            crate::log::warn(&format!("stdout is closed ({}); stopping", e.0));
                            Ok(FrameResult::SinkClosed)
                        }
                    }
                }
                // hello, pong, reconnect_url and other event types.
                _ => Ok(FrameResult::Continue),
            }
        }
    }
}

/// What RTM needs to make up for a gap: RTM does not replay what was posted while no socket
/// was connected, so after a loss the sensor asks `conversations.history` for each channel it
/// has seen, from the newest `ts` it saw there; the dedupe drops what arrives twice.
#[derive(Default)]
struct RtmGap {
    /// Channel id → the newest message ts seen in it.
    last_ts: HashMap<String, String>,
    /// Set when the last live RTM socket was lost.
    lost_at: Option<std::time::Instant>,
}

/// Pages of history fetched per channel after a gap at most (200 messages each).
const BACKFILL_PAGES: usize = 10;

/// A ts as a comparable pair (seconds, fraction as written, right-padded).
fn ts_order(ts: &str) -> (u64, u64) {
    let (s, f) = ts.split_once('.').unwrap_or((ts, ""));
    let mut frac = f.chars().take(6).collect::<String>();
    while frac.len() < 6 {
        frac.push('0');
    }
    (s.parse().unwrap_or(0), frac.parse().unwrap_or(0))
}

impl RtmGap {
    fn saw(&mut self, channel: Option<&str>, ts: Option<&str>) {
        let (Some(c), Some(ts)) = (channel, ts) else {
            return;
        };
        match self.last_ts.get_mut(c) {
            Some(t) if ts_order(ts) > ts_order(t) => *t = ts.to_string(),
            Some(_) => {}
            None => {
                self.last_ts.insert(c.to_string(), ts.to_string());
            }
        }
    }

    /// Fetches and handles what was posted during a gap of `gap` in the channels seen so far.
    /// Returns false when stdout is closed.
    async fn backfill(&mut self, opener: &Opener, pipeline: &mut Pipeline, gap: Duration) -> bool {
        let secs = gap.as_secs_f64();
        if self.last_ts.is_empty() {
            crate::log::warn(&format!(
                "RTM was disconnected for {secs:.1}s; no message had been seen yet, so nothing \
                 posted during the gap can be fetched back (RTM does not replay it)"
            ));
            return true;
        }
        let channels: Vec<(String, String)> = self
            .last_ts
            .iter()
            .map(|(c, t)| (c.clone(), t.clone()))
            .collect();
        let (mut fetched, mut failed) = (0usize, Vec::new());
        for (channel, oldest) in channels {
            match history_since(opener, &channel, &oldest).await {
                Ok(texts) => {
                    for text in texts.iter().rev() {
                        let Ok(event) = Event::parse(text) else {
                            continue;
                        };
                        self.saw(event.channel.get(), event.ts.get());
                        let inc = Incoming {
                            event,
                            event_id: None,
                            envelope_id: None,
                            team: None,
                            retry: 0,
                            received: std::time::Instant::now(),
                        };
                        match pipeline.handle(inc).await {
                            Ok(super::pipeline::Outcome::Emitted) => fetched += 1,
                            Ok(_) => {}
                            Err(e) => {
                                crate::log::warn(&format!("stdout is closed ({}); stopping", e.0));
                                return false;
                            }
                        }
                    }
                }
                Err(e) => failed.push(format!("{channel} ({})", e.message)),
            }
        }
        if pipeline.flush().is_err() {
            return false;
        }
        let seen = self.last_ts.len();
        crate::log::warn(&format!(
            "RTM was disconnected for {secs:.1}s: {fetched} message(s) posted meanwhile were \
             fetched back from the {seen} channel(s) seen so far; messages in other channels \
             and thread replies posted during the gap are not recovered"
        ));
        if !failed.is_empty() {
            crate::log::warn(&format!(
                "could not fetch what was posted during the {secs:.1}s gap in {}: those \
                 messages are missing",
                failed.join(", ")
            ));
        }
        true
    }
}

/// The messages of `channel` newer than `oldest` (newest first, as Slack lists them), each as
/// an RTM-shaped event text (history items lack `channel`).
async fn history_since(
    opener: &Opener,
    channel: &str,
    oldest: &str,
) -> std::result::Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..BACKFILL_PAGES {
        let mut args = vec![
            ("channel".to_string(), channel.to_string()),
            ("oldest".to_string(), oldest.to_string()),
            ("inclusive".to_string(), "false".to_string()),
            ("limit".to_string(), "200".to_string()),
        ];
        if let Some(c) = &cursor {
            args.push(("cursor".to_string(), c.clone()));
        }
        let req = Request {
            method: "conversations.history",
            body: Body::Query(args),
            token: Some(&opener.token),
            idempotent: true,
            pace: None,
        };
        let r = opener.client.call(&req).await?;
        for m in r.body["messages"].as_array().into_iter().flatten() {
            let mut m = m.clone();
            if let Value::Object(o) = &mut m {
                o.insert("channel".into(), json!(channel));
                o.entry("type").or_insert(json!("message"));
            }
            out.push(m.to_string());
        }
        cursor = r.body["response_metadata"]["next_cursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        if cursor.is_none() || r.body["has_more"] == json!(false) {
            return Ok(out);
        }
    }
    crate::log::warn(&format!(
        "more than {} messages were posted in {channel} during the gap; only the newest {} were fetched",
        BACKFILL_PAGES * 200,
        BACKFILL_PAGES * 200
    ));
    Ok(out)
}

/// The acknowledgement of one envelope.
fn ack_text(envelope_id: &str) -> String {
    #[derive(serde::Serialize)]
    struct Ack<'a> {
        envelope_id: &'a str,
    }
    serde_json::to_string(&Ack { envelope_id }).unwrap_or_default()
}

async fn on_envelope(
    id: u64,
    frame: EventEnvelope<'_>,
    unreadable: Option<serde_json::Error>,
    received: std::time::Instant,
    conns: &mut HashMap<u64, Conn>,
    pipeline: &mut Pipeline,
    pending: &mut Vec<(u64, String)>,
) -> Result<FrameResult> {
    let kind = frame.kind.get().unwrap_or("");
    match kind {
        "hello" => return Ok(FrameResult::Continue),
        "disconnect" => {
            let reason = frame.reason.get().unwrap_or("unknown");
            return match reason {
                "link_disabled" => Err(Error::failed(
                    "Slack turned Socket Mode off for this app (disconnect: link_disabled)",
                )
                .hint("turn Socket Mode back on in the app's settings, or run `slackctl sensor --mode events`")),
                "too_many_websockets" => {
                    crate::log::warn("Slack says this app has too many WebSocket connections; closing this one and reconnecting after a pause");
                    if let Some(c) = conns.get_mut(&id) {
                        c.closing = true;
                        c.draining = true;
                        let _ = c.cmd.send(Command::Close);
                    }
                    Ok(FrameResult::Backoff)
                }
                other => {
                    crate::log::info(&format!(
                        "Slack asked to reconnect ({other}); opening a new connection first"
                    ));
                    if let Some(c) = conns.get_mut(&id) {
                        c.draining = true;
                    }
                    Ok(FrameResult::Replace)
                }
            };
        }
        _ => {}
    }
    let Some(envelope_id) = frame.envelope_id.get() else {
        return Ok(FrameResult::Continue);
    };
    // Acknowledgements wait in `pending` until the lines are flushed (see flush_acks).
    let ack = ack_text(envelope_id);
    if kind != "events_api" {
        // Slash commands and interactivity are not messages; acknowledge and move on.
        pending.push((id, ack));
        return Ok(FrameResult::Continue);
    }
    if let Some(e) = unreadable {
        // Sending it again would not make it readable: acknowledge, and say so.
        crate::log::warn(&format!(
            "acknowledging envelope {envelope_id} without emitting it: its payload is unreadable ({e})"
        ));
        pending.push((id, ack));
        return Ok(FrameResult::Continue);
    }
    let callback = frame.payload.unwrap_or_default();
    let event = callback.event.unwrap_or_default();
    let inc = Incoming {
        event,
        event_id: callback.event_id.get(),
        envelope_id: Some(envelope_id),
        team: callback.team_id.get(),
        retry: frame.retry_attempt.0,
        received,
    };
    match pipeline.handle(inc).await {
        Ok(_) => {
            pending.push((id, ack));
            Ok(FrameResult::Continue)
        }
        Err(e) => {
            crate::log::warn(&format!(
                "stdout is closed ({}); stopping without acknowledging",
                e.0
            ));
            Ok(FrameResult::SinkClosed)
        }
    }
}

/// Closes every connection politely and waits (briefly) for their tasks.
async fn close_all(conns: &mut HashMap<u64, Conn>) {
    for c in conns.values() {
        let _ = c.cmd.send(Command::Close);
    }
    for (_, c) in conns.drain() {
        let mut task = c.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

async fn break_all(conns: &mut HashMap<u64, Conn>) {
    for (_, c) in conns.drain() {
        c.task.abort();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection: get a URL, connect, wait for `hello`, then relay frames and commands and
/// keep the socket honest with pings.
async fn connection(
    id: u64,
    opener: Opener,
    timing: Timing,
    tx: mpsc::UnboundedSender<Report>,
    mut cmd: mpsc::UnboundedReceiver<Command>,
    permits: Arc<tokio::sync::Semaphore>,
) {
    let closed = |why: String, fatal: Option<Error>| {
        let _ = tx.send(Report::Closed { id, why, fatal });
    };
    let deadline = Instant::now() + timing.connect_timeout;
    let url = match tokio::time::timeout_at(deadline, opener.url()).await {
        Ok(Ok(u)) => u,
        Ok(Err((e, fatal))) => {
            let why = e.message.clone();
            return closed(why, fatal.then_some(e));
        }
        Err(_) => return closed("timed out getting a WebSocket URL".into(), None),
    };
    let mut ws: Ws =
        match tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url.as_str()))
            .await
        {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                return closed(
                    format!(
                        "WebSocket handshake failed: {}",
                        crate::redact::scrub(&e.to_string())
                    ),
                    None,
                );
            }
            Err(_) => return closed("WebSocket handshake timed out".into(), None),
        };
    // Wait for hello; frames before it are relayed after Ready.
    let mut early = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return closed("no hello from Slack in time".into(), None),
            Ok(None) => return closed("closed before hello".into(), None),
            Ok(Some(Err(e))) => return closed(format!("socket error before hello: {e}"), None),
            Ok(Some(Ok(Message::Text(t)))) => {
                if event::is_frame(&t, "hello") {
                    break;
                }
                early.push(t);
            }
            Ok(Some(Ok(Message::Close(_)))) => return closed("closed before hello".into(), None),
            Ok(Some(Ok(_))) => {}
        }
    }
    let _ = tx.send(Report::Ready { id });
    for text in early {
        let Ok(_permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let received = std::time::Instant::now();
        let _ = tx.send(Report::Frame {
            id,
            text,
            received,
            _permit,
        });
    }

    let tick_every = (timing.ping_interval / 4)
        .min(timing.pong_timeout / 4)
        .min(timing.idle_timeout / 4)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(20));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut last_ping = Instant::now();
    let mut awaiting_pong: Option<Instant> = None;
    let mut ping_seq = 0u64;
    let mut reading = true;

    let why = loop {
        tokio::select! {
            frame = ws.next(), if reading => {
                last_rx = Instant::now();
                match frame {
                    None => break "the connection ended".to_string(),
                    Some(Err(e)) => break format!("socket error: {e}"),
                    Some(Ok(Message::Text(t))) => {
                        // RTM answers pings with a frame: handled here, where the ping went out.
                        if opener.protocol == Protocol::Rtm
                            && t.as_str().contains("pong")
                            && event::is_frame(&t, "pong")
                        {
                            awaiting_pong = None;
                            continue;
                        }
                        // Waits while the pipeline is behind (bounded memory). The manager
                        // never waits on this task, so this cannot deadlock.
                        let received = std::time::Instant::now();
                        let Ok(_permit) = permits.clone().acquire_owned().await else { break "shutting down".to_string() };
                        let _ = tx.send(Report::Frame { id, text: t, received, _permit });
                    }
                    Some(Ok(Message::Pong(_))) => awaiting_pong = None,
                    Some(Ok(Message::Close(f))) => {
                        break match f {
                            Some(f) => format!("closed by Slack ({} {})", u16::from(f.code), f.reason),
                            None => "closed by Slack".to_string(),
                        };
                    }
                    // Pings are answered by the library as it reads.
                    Some(Ok(_)) => {}
                }
            }
            c = cmd.recv() => match c {
                Some(Command::Send(text)) => {
                    // Send every acknowledgement already queued with one flush.
                    let mut next = Some(text);
                    let mut later = None;
                    let mut failed = None;
                    while let Some(t) = next.take() {
                        if let Err(e) = ws.feed(Message::Text(t.into())).await {
                            failed = Some(e);
                            break;
                        }
                        match cmd.try_recv() {
                            Ok(Command::Send(t)) => next = Some(t),
                            Ok(other) => later = Some(other),
                            Err(_) => {}
                        }
                    }
                    if let Some(e) = failed.or(ws.flush().await.err()) {
                        break format!("cannot send: {e}");
                    }
                    match later {
                        Some(Command::StopReading) => reading = false,
                        Some(Command::Close) => {
                            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                            break "closed by slackctl".to_string();
                        }
                        _ => {}
                    }
                }
                Some(Command::StopReading) => reading = false,
                Some(Command::Close) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    break "closed by slackctl".to_string();
                }
            },
            _ = tick.tick() => {
                if !reading {
                    continue;
                }
                if let Some(since) = awaiting_pong
                    && since.elapsed() >= timing.pong_timeout
                {
                    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                    break format!("no pong within {:.1}s", timing.pong_timeout.as_secs_f64());
                }
                if last_rx.elapsed() >= timing.idle_timeout {
                    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                    break format!("nothing received for {:.1}s", timing.idle_timeout.as_secs_f64());
                }
                if last_ping.elapsed() >= timing.ping_interval {
                    last_ping = Instant::now();
                    ping_seq += 1;
                    let msg = match opener.protocol {
                        Protocol::SocketMode => Message::Ping(ping_seq.to_string().into_bytes().into()),
                        Protocol::Rtm => Message::Text(json!({"id": ping_seq, "type": "ping"}).to_string().into()),
                    };
                    if awaiting_pong.is_none() {
                        awaiting_pong = Some(Instant::now());
                    }
                    if let Err(e) = ws.send(msg).await {
                        break format!("cannot send a ping: {e}");
                    }
                }
            }
        }
    };
    closed(why, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        assert!(backoff(0, 0.99) <= Duration::from_millis(250));
        assert_eq!(backoff(1, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert!(backoff(3, 0.0) >= Duration::from_millis(1500));
        assert!(backoff(3, 0.999) < Duration::from_millis(2500));
        assert!(backoff(30, 0.999) <= Duration::from_secs_f64(30.0 * 1.25));
        let mut j = Jitter::new();
        for _ in 0..1000 {
            let x = j.next();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn tls_client_config_builds_with_the_ring_provider() {
        // tokio-tungstenite builds a rustls ClientConfig for wss:// URLs; without a process
        // crypto provider that panics. This is the no-network check that the wiring holds.
        crate::transport::install_crypto_provider();
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        assert!(cfg.alpn_protocols.is_empty());
    }
}
