//! The emulator's WebSockets: Socket Mode (`/link/`) and RTM (`/websocket/`), served on the
//! emulator's own port. `apps.connections.open` and `rtm.connect` hand out single-use tickets
//! for these paths; the upgrade is accepted here (hyper's upgrade on the axum request, wrapped
//! with tokio-tungstenite) and each socket gets a task.
//!
//! Every new message event (the workspace's broadcast) becomes:
//! * a Socket Mode envelope (`events_api`, with an `event_callback` payload and an `event_id`)
//!   sent to exactly one connection — the newest one that was not told to go, or with `spread`
//!   each open one in turn (a redelivery to another than the last) — and tracked until
//!   acknowledged. Unacknowledged envelopes are sent again after the ack timeout with
//!   `retry_attempt` + 1 and `retry_reason: "timeout"`; envelopes of a closed socket at once.
//!   The deadline (3 s, Slack's) runs once the client reads: the emulator pings on connect,
//!   and a connection counts as read after its first pong or text frame;
//!   With no connection at all they wait (bounded) for the next one;
//! * an RTM event frame for every RTM connection (no `channel_type`, as RTM has none);
//! * an Events API delivery when a URL is subscribed (see `events.rs`).
//!
//! Scripted faults (`POST /_emulator/sockets/<action>`): `disconnect` (with a `reason`),
//! `goodbye` (RTM), `drop` (close the TCP connection without a close frame), `silent` (stop
//! reading, writing and answering pings), `redeliver` (send recent envelopes again), and
//! `config` (ack timeout, ack processing delay, server ping interval, retry limit, grace before
//! a told-to-go socket is closed).

use super::Shared;
use super::json_response;
use crate::fnv::FnvMap;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Which protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Socket,
    Rtm,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Socket => "socket_mode",
            Kind::Rtm => "rtm",
        }
    }
}

/// Tunables, changed with `POST /_emulator/sockets/config`.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// An envelope not acknowledged within this time is sent again.
    pub ack_timeout: Duration,
    /// Acks are taken into account only after this delay (to provoke redeliveries).
    pub ack_delay: Duration,
    /// How often the server pings Socket Mode clients.
    pub ping_interval: Duration,
    /// Deliveries per envelope before it is given up.
    pub max_attempts: u64,
    /// How long a socket told to go (`disconnect`, `goodbye`) stays open if the client keeps it.
    pub disconnect_grace: Duration,
    /// Spread envelopes over every open connection in turn (as Slack does for an app with
    /// several), and send an unacknowledged one again on another connection when there is
    /// one. Off: everything goes to the newest connection.
    pub spread: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // Slack's ack deadline; clients that take a moment after a reconnect rely on it.
            ack_timeout: Duration::from_millis(3000),
            ack_delay: Duration::ZERO,
            ping_interval: Duration::from_secs(10),
            max_attempts: 6,
            disconnect_grace: Duration::from_secs(10),
            spread: false,
        }
    }
}

/// Slack allows this many Socket Mode connections per app.
pub const MAX_SOCKETS: usize = 10;
/// Envelopes waiting for a connection beyond this are dropped (oldest first).
const QUEUE_LIMIT: usize = 10_000;
/// Envelopes remembered for forced redelivery.
const RECENT_LIMIT: usize = 100;

#[derive(Debug)]
enum Out {
    Text(String),
    Drop,
    Silent,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State_ {
    Open,
    /// Told to go; receives nothing new.
    Draining,
    Silent,
}

struct Conn {
    id: u64,
    kind: Kind,
    tx: mpsc::UnboundedSender<Out>,
    state: State_,
    since: Instant,
    /// Envelopes sent to this connection.
    delivered: u64,
    /// Whether the client has sent anything yet (a pong to the greeting ping, an ack).
    heard: bool,
}

/// One event callback on its way to a Socket Mode client. The payload is kept as JSON text,
/// shared between deliveries: a redelivery or the `recent` list costs no copy.
#[derive(Clone)]
struct Envelope {
    /// The envelope's number; its id is [`envelope_id`] of it.
    n: u64,
    payload: Arc<str>,
    attempt: u64,
    reason: &'static str,
    /// The connection it last went to (0: none yet), so a redelivery can go elsewhere.
    via: u64,
}

impl Envelope {
    /// The envelope's frame. Written by hand around the payload text: the id is our own
    /// hexadecimal, the reason a fixed word, so nothing here needs escaping.
    fn frame(&self) -> String {
        let mut f = String::with_capacity(self.payload.len() + 160);
        f.push_str(r#"{"envelope_id":""#);
        f.push_str(&envelope_id(self.n));
        f.push_str(r#"","payload":"#);
        f.push_str(&self.payload);
        f.push_str(r#","type":"events_api","accepts_response_payload":false,"retry_attempt":"#);
        f.push_str(&self.attempt.to_string());
        f.push_str(r#","retry_reason":""#);
        f.push_str(self.reason);
        f.push_str(r#""}"#);
        f
    }
}

/// What the emulator reads from a Socket Mode client: only the acknowledged envelope matters.
#[derive(serde::Deserialize)]
struct AckFrame<'a> {
    #[serde(borrow)]
    envelope_id: Option<std::borrow::Cow<'a, str>>,
}

struct Sent {
    env: Envelope,
    conn: u64,
    at: Instant,
}

#[derive(Default)]
struct Stats {
    delivered: u64,
    acked: u64,
    redelivered: u64,
    late_acks: u64,
    given_up: u64,
}

#[derive(Default)]
struct HubState {
    config: Config,
    tickets: HashMap<String, Kind>,
    conns: Vec<Conn>,
    next_conn: u64,
    next_envelope: u64,
    /// By envelope number.
    unacked: FnvMap<u64, Sent>,
    /// Envelope numbers in the order they were sent, for cheap expiry.
    sent_order: VecDeque<(Instant, u64)>,
    queue: VecDeque<Envelope>,
    recent: VecDeque<Envelope>,
    stats: Stats,
    /// Deliveries so far with `spread` on: the next connection in turn.
    turn: usize,
}

/// The sockets' shared state. Its lock is never held across an await.
pub struct Hub {
    state: Mutex<HubState>,
    stop: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            state: Mutex::new(HubState::default()),
            stop: watch::channel(false).0,
        }
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe_stop(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops every socket task (emulator shutdown).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Registers a single-use ticket for a WebSocket URL handed out by the Web API.
    pub fn issue_ticket(&self, ticket: &str, kind: Kind) {
        let mut h = self.lock();
        if h.tickets.len() > 10_000 {
            h.tickets.clear();
        }
        h.tickets.insert(ticket.to_string(), kind);
    }

    fn take_ticket(&self, ticket: &str, kind: Kind) -> bool {
        let mut h = self.lock();
        match h.tickets.get(ticket) {
            Some(k) if *k == kind => {
                h.tickets.remove(ticket);
                true
            }
            _ => false,
        }
    }

    fn config(&self) -> Config {
        self.lock().config
    }

    /// A new event callback (its JSON text) for Socket Mode clients.
    pub fn publish(&self, payload: String) {
        let mut h = self.lock();
        h.next_envelope += 1;
        let env = Envelope {
            n: h.next_envelope,
            payload: payload.into(),
            attempt: 0,
            reason: "",
            via: 0,
        };
        route(&mut h, env);
    }

    /// An event for every open RTM connection.
    pub fn publish_rtm(&self, event: &Value) {
        let mut e = event.clone();
        if let Value::Object(m) = &mut e {
            m.remove("channel_type");
        }
        let text = e.to_string();
        let h = self.lock();
        for c in h
            .conns
            .iter()
            .filter(|c| c.kind == Kind::Rtm && c.state == State_::Open)
        {
            let _ = c.tx.send(Out::Text(text.clone()));
        }
    }

    fn register(&self, kind: Kind, tx: mpsc::UnboundedSender<Out>) -> (u64, usize) {
        let mut h = self.lock();
        h.next_conn += 1;
        let id = h.next_conn;
        h.conns.push(Conn {
            id,
            kind,
            tx,
            state: State_::Open,
            since: Instant::now(),
            delivered: 0,
            heard: false,
        });
        let n = h.conns.iter().filter(|c| c.kind == kind).count();
        (id, n)
    }

    /// After `hello`: hands the waiting envelopes to the new connection.
    fn ready(&self, id: u64) {
        let mut h = self.lock();
        let waiting: Vec<Envelope> = h.queue.drain(..).collect();
        for env in waiting {
            route(&mut h, env);
        }
        let _ = id;
    }

    /// The client has been heard on connection `id`: it reads, so ack deadlines run.
    fn heard(&self, id: u64) {
        if let Some(c) = self.lock().conns.iter_mut().find(|c| c.id == id) {
            c.heard = true;
        }
    }

    fn unregister(&self, id: u64) {
        let mut h = self.lock();
        h.conns.retain(|c| c.id != id);
        // Whatever that socket did not acknowledge goes out again now.
        let orphans: Vec<u64> = h
            .unacked
            .iter()
            .filter(|(_, s)| s.conn == id)
            .map(|(k, _)| *k)
            .collect();
        for k in orphans {
            if let Some(s) = h.unacked.remove(&k) {
                retry(&mut h, s.env);
            }
        }
    }

    /// Takes an acknowledgement now, or returns the configured delay to take it after.
    fn ack_or_delay(&self, envelope_id: &str) -> Option<Duration> {
        let mut h = self.lock();
        let delay = h.config.ack_delay;
        if !delay.is_zero() {
            return Some(delay);
        }
        h.take_ack(envelope_id);
        None
    }

    fn ack(&self, envelope_id: &str) {
        self.lock().take_ack(envelope_id);
    }
}

impl HubState {
    fn take_ack(&mut self, envelope_id: &str) {
        let n = envelope_number(envelope_id);
        if n.is_some_and(|n| self.unacked.remove(&n).is_some()) {
            self.stats.acked += 1;
        } else {
            self.stats.late_acks += 1;
        }
    }
}

impl Hub {
    /// Sends again what was not acknowledged in time (called by the ticker). Deliveries are
    /// checked oldest first and the scan stops at the first one still in time, so a tick
    /// costs only what has expired, however many envelopes are outstanding.
    fn expire(&self) {
        let mut h = self.lock();
        let timeout = h.config.ack_timeout;
        let mut late = Vec::new();
        while let Some((at, _)) = h.sent_order.front() {
            if at.elapsed() < timeout {
                break;
            }
            let (at, k) = h.sent_order.pop_front().expect("checked above");
            // Skip entries already acknowledged, or sent again since (a newer entry exists).
            if h.unacked.get(&k).is_some_and(|s| s.at == at) {
                late.push(k);
            }
        }
        for k in late {
            // A connection whose client has not read anything yet (Python's builtin client
            // reads a replacement connection only once the old one is closed, seconds later)
            // gets a fresh deadline instead of a duplicate.
            let conn = h.unacked.get(&k).map(|s| s.conn);
            let unread = conn.is_some_and(|c| h.conns.iter().any(|x| x.id == c && !x.heard));
            if unread {
                let now = Instant::now();
                if let Some(s) = h.unacked.get_mut(&k) {
                    s.at = now;
                }
                h.sent_order.push_back((now, k));
                continue;
            }
            if let Some(s) = h.unacked.remove(&k) {
                retry(&mut h, s.env);
            }
        }
    }

    /// Tells sockets to go. Returns how many were told.
    fn tell(&self, target: &Value, kind: Kind, frame: Value, shared: &Arc<Shared>) -> usize {
        let ids = self.pick(target, Some(kind));
        let text = frame.to_string();
        let grace = self.config().disconnect_grace;
        let mut h = self.lock();
        for c in h.conns.iter_mut().filter(|c| ids.contains(&c.id)) {
            let _ = c.tx.send(Out::Text(text.clone()));
            c.state = State_::Draining;
        }
        drop(h);
        for id in &ids {
            let shared = shared.clone();
            let id = *id;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                shared.sockets.command(id, Out::Close);
            });
        }
        ids.len()
    }

    fn command(&self, id: u64, out: Out) {
        let mut h = self.lock();
        if let Some(c) = h.conns.iter_mut().find(|c| c.id == id) {
            if matches!(out, Out::Silent) {
                c.state = State_::Silent;
            }
            let _ = c.tx.send(out);
        }
    }

    /// Connection ids for a target: `"newest"` (default), `"all"`, or a number.
    fn pick(&self, target: &Value, kind: Option<Kind>) -> Vec<u64> {
        let h = self.lock();
        let mut live: Vec<&Conn> = h
            .conns
            .iter()
            .filter(|c| kind.is_none_or(|k| c.kind == k) && c.state != State_::Silent)
            .collect();
        live.sort_by_key(|c| c.id);
        match target {
            Value::String(s) if s == "all" => live.iter().map(|c| c.id).collect(),
            Value::Number(n) => n
                .as_u64()
                .filter(|id| live.iter().any(|c| c.id == *id))
                .into_iter()
                .collect(),
            _ => live.last().map(|c| c.id).into_iter().collect(),
        }
    }

    /// Sends recent envelopes again as redeliveries.
    fn redeliver(&self, count: usize, same_envelope: bool) -> usize {
        let mut h = self.lock();
        let n = count.min(h.recent.len());
        let picked: Vec<Envelope> = h.recent.iter().rev().take(n).rev().cloned().collect();
        for mut env in picked {
            h.unacked.remove(&env.n);
            env.attempt += 1;
            env.reason = "timeout";
            if !same_envelope {
                h.next_envelope += 1;
                env.n = h.next_envelope;
            }
            h.stats.redelivered += 1;
            route(&mut h, env);
        }
        n
    }

    fn status(&self) -> Value {
        let h = self.lock();
        let conns: Vec<Value> = h
            .conns
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "kind": c.kind.name(),
                    "state": match c.state {
                        State_::Open => "open",
                        State_::Draining => "draining",
                        State_::Silent => "silent",
                    },
                    "age_ms": c.since.elapsed().as_millis() as u64,
                    "delivered": c.delivered,
                })
            })
            .collect();
        let c = h.config;
        json!({
            "connections": conns,
            "unacked": h.unacked.len(),
            "queued": h.queue.len(),
            "delivered": h.stats.delivered,
            "acked": h.stats.acked,
            "redelivered": h.stats.redelivered,
            "late_acks": h.stats.late_acks,
            "given_up": h.stats.given_up,
            "config": {
                "ack_timeout_ms": c.ack_timeout.as_millis() as u64,
                "ack_delay_ms": c.ack_delay.as_millis() as u64,
                "ping_interval_ms": c.ping_interval.as_millis() as u64,
                "max_attempts": c.max_attempts,
                "disconnect_grace_ms": c.disconnect_grace.as_millis() as u64,
                "spread": c.spread,
            },
        })
    }
}

/// Envelope ids look like Slack's UUIDs.
/// Frames written per flush at most; reading (acknowledgements) gets a turn between batches.
const WRITE_BATCH: usize = 128;

fn envelope_id(n: u64) -> String {
    format!(
        "e0e0{:04x}-{:04x}-4000-8000-{:012x}",
        (n >> 48) & 0xffff,
        (n >> 32) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// The number behind an id made by [`envelope_id`]; `None` for any other text.
fn envelope_number(id: &str) -> Option<u64> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let rest = id.strip_prefix("e0e0")?;
    let (a, rest) = (rest.get(..4)?, rest.get(4..)?);
    let (b, rest) = rest.strip_prefix('-')?.split_at_checked(4)?;
    let c = rest.strip_prefix("-4000-8000-")?;
    if c.len() != 12 || !id.bytes().all(|x| x == b'-' || x.is_ascii_hexdigit()) {
        return None;
    }
    Some(hex(a)? << 48 | hex(b)? << 32 | hex(c)?)
}

/// Sends an envelope to the newest Socket Mode connection that may receive (with `spread`:
/// to each in turn, and a redelivery to another than the last one, when there is another),
/// or queues it.
fn route(h: &mut HubState, mut env: Envelope) {
    let eligible = |c: &Conn| c.kind == Kind::Socket && c.state != State_::Draining;
    let open: Vec<usize> = (0..h.conns.len())
        .filter(|i| eligible(&h.conns[*i]))
        .collect();
    let target = if h.config.spread {
        let others: Vec<usize> = open
            .iter()
            .copied()
            .filter(|i| h.conns[*i].id != env.via)
            .collect();
        let pool = if others.is_empty() { open } else { others };
        h.turn = h.turn.wrapping_add(1);
        pool.get(h.turn % pool.len().max(1)).copied()
    } else {
        open.into_iter().max_by_key(|i| h.conns[*i].id)
    };
    match target.map(|i| &mut h.conns[i]) {
        Some(c) => {
            let (id, tx) = (c.id, c.tx.clone());
            c.delivered += 1;
            env.via = id;
            let _ = tx.send(Out::Text(env.frame()));
            h.stats.delivered += 1;
            h.recent.push_back(env.clone());
            if h.recent.len() > RECENT_LIMIT {
                h.recent.pop_front();
            }
            let at = Instant::now();
            h.sent_order.push_back((at, env.n));
            h.unacked.insert(env.n, Sent { env, conn: id, at });
        }
        None => {
            h.queue.push_back(env);
            if h.queue.len() > QUEUE_LIMIT {
                h.queue.pop_front();
                h.stats.given_up += 1;
            }
        }
    }
}

/// A timed-out or orphaned envelope goes out again as a retry, unless it ran out of attempts.
fn retry(h: &mut HubState, mut env: Envelope) {
    if env.attempt + 1 >= h.config.max_attempts {
        h.stats.given_up += 1;
        return;
    }
    env.attempt += 1;
    env.reason = "timeout";
    h.stats.redelivered += 1;
    route(h, env);
}

/// Background work: expiring unacknowledged envelopes. Ends with the emulator.
pub fn spawn_ticker(shared: Arc<Shared>) {
    let mut stop = shared.sockets.stop.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => shared.sockets.expire(),
                _ = stop.changed() => break,
            }
        }
    });
}

// ---- the upgrade ---------------------------------------------------------------------------

fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = (status, text.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn link(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    upgrade(shared, req, Kind::Socket)
}

pub async fn rtm(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    upgrade(shared, req, Kind::Rtm)
}

fn upgrade(shared: Arc<Shared>, mut req: Request, kind: Kind) -> Response {
    let ticket = req
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "ticket")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let h = req.headers();
    let is_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = h
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    };
    if !is_ws {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    }
    // Slack's socket URLs are single-use.
    if !shared.sockets.take_ticket(&ticket, kind) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "invalid or used ticket: call apps.connections.open / rtm.connect again\n",
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        serve(shared, kind, ws).await;
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let hs = resp.headers_mut();
    hs.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hs.insert("sec-websocket-accept", v);
    }
    resp
}

/// How long a silent socket is kept before the emulator lets it go.
const SILENT_LINGER: Duration = Duration::from_secs(60);

async fn serve<S>(shared: Arc<Shared>, kind: Kind, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hub = &shared.sockets;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, count) = hub.register(kind, tx);
    let mut stop = hub.stop.subscribe();
    let hello = match kind {
        Kind::Socket => json!({
            "type": "hello",
            "num_connections": count,
            "debug_info": {"host": "emulator", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": super::state::APP_ID},
        }),
        Kind::Rtm => json!({"type": "hello"}),
    };
    if ws
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        hub.unregister(id);
        return;
    }
    if kind == Kind::Socket && count > MAX_SOCKETS {
        let bye = json!({"type": "disconnect", "reason": "too_many_websockets",
                         "debug_info": {"host": "emulator"}});
        let _ = ws.send(Message::Text(bye.to_string().into())).await;
        hub.command(id, Out::Close);
    } else {
        hub.ready(id);
    }
    // A ping right away: a client that reads answers it, which tells the emulator so.
    if kind == Kind::Socket {
        let _ = ws
            .send(Message::Ping(Bytes::from_static(b"emulator")))
            .await;
    }
    // Reading and writing run side by side: the emulator must keep reading acknowledgements
    // while a flood of envelopes waits for the client to read (a single loop that blocks in a
    // write would stop reading, and both ends could end up waiting on each other).
    let (mut sink, mut stream) = ws.split();
    let (silent_tx, mut silent_rx) = tokio::sync::watch::channel(false);
    // Set when the client sent a close frame, which the emulator then answers (see below).
    let mut client_closed = false;
    let mut heard = false;
    let reader = async {
        loop {
            let frame = tokio::select! {
                f = stream.next() => f,
                // A silent socket reads nothing more (so it answers no pings either).
                _ = async { let _ = silent_rx.wait_for(|s| *s).await; } => std::future::pending().await,
            };
            // A pong (to the emulator's ping) or an ack shows the client reads; its own pings
            // do not (Python's builtin client pings a connection it is not reading yet).
            if !heard && matches!(frame, Some(Ok(Message::Pong(_) | Message::Text(_)))) {
                heard = true;
                hub.heard(id);
            }
            match frame {
                Some(Ok(Message::Close(_))) => {
                    client_closed = true;
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(Message::Text(t))) => {
                    match kind {
                        Kind::Socket => {
                            let Ok(AckFrame {
                                envelope_id: Some(env),
                            }) = serde_json::from_str(t.as_str())
                            else {
                                continue;
                            };
                            // With an ack delay configured the ack counts only later.
                            if let Some(delay) = hub.ack_or_delay(&env) {
                                let shared = shared.clone();
                                let env = env.into_owned();
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    shared.sockets.ack(&env);
                                });
                            }
                        }
                        Kind::Rtm => {
                            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                                continue;
                            };
                            if v["type"] != "ping" {
                                continue;
                            }
                            let mut pong = v.clone();
                            pong["type"] = json!("pong");
                            pong["reply_to"] = v["id"].clone();
                            if let Value::Object(m) = &mut pong {
                                m.remove("id");
                            }
                            hub.command(id, Out::Text(pong.to_string()));
                        }
                    }
                }
                // Pings are answered by the library while reading.
                Some(Ok(_)) => {}
            }
        }
    };
    let writer = async {
        let mut ping = tokio::time::interval(hub.config().ping_interval);
        ping.tick().await;
        let mut silent_since: Option<Instant> = None;
        loop {
            let silent = silent_since.is_some();
            let linger = async {
                match silent_since {
                    Some(at) => tokio::time::sleep_until((at + SILENT_LINGER).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = rx.recv() => match out {
                    None | Some(Out::Close) => {
                        if !silent {
                            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                        }
                        break;
                    }
                    // Gone without a close frame: the TCP connection just ends.
                    Some(Out::Drop) => break,
                    Some(Out::Silent) => {
                        silent_since = Some(Instant::now());
                        let _ = silent_tx.send(true);
                    }
                    Some(Out::Text(t)) => {
                        if silent {
                            continue;
                        }
                        // Write the frames already queued (up to a batch), then flush once:
                        // a flood must not cost one syscall per envelope.
                        let mut next = Some(t);
                        let mut later = None;
                        let mut ok = true;
                        let mut batch = 0;
                        while let Some(t) = next.take() {
                            if sink.feed(Message::Text(t.into())).await.is_err() {
                                ok = false;
                                break;
                            }
                            batch += 1;
                            if batch >= WRITE_BATCH {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(Out::Text(t)) => next = Some(t),
                                Ok(other) => later = Some(other),
                                Err(_) => {}
                            }
                        }
                        if !ok || sink.flush().await.is_err() {
                            break;
                        }
                        match later {
                            Some(Out::Close) => {
                                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                                break;
                            }
                            Some(Out::Drop) => break,
                            Some(Out::Silent) => {
                                silent_since = Some(Instant::now());
                                let _ = silent_tx.send(true);
                            }
                            _ => {}
                        }
                    }
                },
                _ = ping.tick(), if !silent && kind == Kind::Socket => {
                    if sink.send(Message::Ping(Bytes::from_static(b"emulator"))).await.is_err() {
                        break;
                    }
                }
                _ = linger => break,
                _ = stop.changed() => break,
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    // The close handshake: tungstenite queued the answering close frame when it read the
    // client's; flushing sends it, so clients see a clean 1000 instead of 1006.
    if client_closed {
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }
    hub.unregister(id);
}

// ---- control endpoints ---------------------------------------------------------------------

pub async fn get_sockets(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &shared.sockets.status())
}

fn bad(detail: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"ok": false, "error": "invalid_request", "detail": detail}),
    )
}

/// A duration in milliseconds from a control request, at most a day: the timers add it to
/// `Instant`s, and an absurd value (`u64::MAX`) would overflow that sum and panic the socket.
fn millis(v: &Value) -> Option<Duration> {
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    v.as_u64().map(|ms| Duration::from_millis(ms.min(DAY_MS)))
}

/// `POST /_emulator/sockets/{action}`; see the module documentation.
pub async fn post_action(
    State(shared): State<Arc<Shared>>,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(&format!("body is not JSON: {e}")),
        }
    };
    let hub = &shared.sockets;
    let target = v.get("target").cloned().unwrap_or(Value::Null);
    let kind = match v["kind"].as_str() {
        Some("socket_mode" | "socket") => Some(Kind::Socket),
        Some("rtm") => Some(Kind::Rtm),
        _ => None,
    };
    let affected = match action.as_str() {
        "disconnect" => {
            let reason = v["reason"].as_str().unwrap_or("refresh_requested");
            let frame = json!({"type": "disconnect", "reason": reason,
                               "debug_info": {"host": "emulator"}});
            hub.tell(&target, Kind::Socket, frame, &shared)
        }
        "goodbye" => hub.tell(&target, Kind::Rtm, json!({"type": "goodbye"}), &shared),
        "drop" | "silent" => {
            let ids = hub.pick(&target, kind);
            for id in &ids {
                hub.command(
                    *id,
                    if action == "drop" {
                        Out::Drop
                    } else {
                        Out::Silent
                    },
                );
            }
            ids.len()
        }
        "redeliver" => {
            let count = v["count"].as_u64().unwrap_or(1) as usize;
            hub.redeliver(count, v["same_envelope"].as_bool().unwrap_or(false))
        }
        "config" => {
            let mut h = hub.lock();
            let c = &mut h.config;
            if let Some(d) = millis(&v["ack_timeout_ms"]) {
                c.ack_timeout = d.max(Duration::from_millis(10));
            }
            if let Some(d) = millis(&v["ack_delay_ms"]) {
                c.ack_delay = d;
            }
            if let Some(d) = millis(&v["ping_interval_ms"]) {
                c.ping_interval = d.max(Duration::from_millis(10));
            }
            if let Some(n) = v["max_attempts"].as_u64() {
                c.max_attempts = n.max(1);
            }
            if let Some(d) = millis(&v["disconnect_grace_ms"]) {
                c.disconnect_grace = d;
            }
            if let Some(b) = v["spread"].as_bool() {
                c.spread = b;
            }
            drop(h);
            return json_response(StatusCode::OK, &json!({"ok": true, "status": hub.status()}));
        }
        "flood" => flood(&shared, &v).await,
        other => return bad(&format!("unknown action `{other}`")),
    };
    json_response(StatusCode::OK, &json!({"ok": true, "affected": affected}))
}

/// `POST /_emulator/sockets/flood {"count": N, "channel": "C…"}`: sends N synthetic message
/// envelopes straight to the Socket Mode connections, bypassing the workspace store, so a
/// benchmark measures the client rather than the emulator. Event ids and ts are unique. The
/// answer comes once all N are queued.
async fn flood(shared: &Shared, v: &Value) -> usize {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Far above the ids the message dispatcher hands out, so dedupe never confuses them.
    static NEXT: AtomicU64 = AtomicU64::new(500_000_000);
    let count = v["count"].as_u64().unwrap_or(1).min(10_000_000);
    let channel = v["channel"].as_str().unwrap_or("C0000001");
    let user = v["user"].as_str().unwrap_or("U0000001");
    let secs = super::state::now_secs();
    for i in 0..count {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let time = secs + i / 1_000_000;
        let ts = format!("{time}.{:06}", i % 1_000_000);
        let event = FloodEvent {
            kind: "message",
            channel,
            user,
            text: format!("flood {i}"),
            ts: &ts,
            event_ts: &ts,
            channel_type: "channel",
            team: super::state::TEAM_ID,
        };
        let callback = super::Callback::new(&event, n, time);
        shared
            .sockets
            .publish(serde_json::to_string(&callback).unwrap_or_default());
        // Let the sockets write what is queued while the rest is made, as a workspace
        // streams events rather than queueing them all first.
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
    count as usize
}

/// A flood's message event, in the field order of a real one.
#[derive(serde::Serialize)]
struct FloodEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'a str,
    user: &'a str,
    text: String,
    ts: &'a str,
    event_ts: &'a str,
    channel_type: &'static str,
    team: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_ids_read_back_as_their_numbers() {
        for n in [1, 0xffff, 0x1_0000_0000_0001, u64::MAX] {
            assert_eq!(envelope_number(&envelope_id(n)), Some(n));
        }
        for odd in [
            "",
            "e0e0",
            "e0e00000-0000-4000-8000-00000000000g",
            "x0e00000-0000-4000-8000-000000000001",
            "e0e00000-0000-4000-8000-0000000000011",
            "e0e00000-0000-5000-8000-000000000001",
        ] {
            assert_eq!(envelope_number(odd), None, "{odd}");
        }
    }

    #[test]
    fn spread_sends_in_turn_and_redelivers_elsewhere() {
        let hub = Hub::default();
        let mut rx: Vec<_> = (0..3)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                hub.register(Kind::Socket, tx);
                rx
            })
            .collect();
        hub.lock().config.spread = true;
        for _ in 0..6 {
            hub.publish("{}".into());
        }
        let got: Vec<usize> = rx
            .iter_mut()
            .map(|r| std::iter::from_fn(|| r.try_recv().ok()).count())
            .collect();
        assert_eq!(got, vec![2, 2, 2]);
        // The first connection goes away: what it did not acknowledge goes to the others.
        hub.unregister(1);
        let again: usize = rx[1..]
            .iter_mut()
            .map(|r| std::iter::from_fn(|| r.try_recv().ok()).count())
            .sum();
        assert_eq!(again, 2);
        // A timed-out envelope goes to another connection than the one that kept it.
        let mut h = hub.lock();
        let (n, via) = h.unacked.iter().map(|(n, s)| (*n, s.conn)).next().unwrap();
        let s = h.unacked.remove(&n).unwrap();
        retry(&mut h, s.env);
        assert_ne!(h.unacked[&n].conn, via);
    }
}
