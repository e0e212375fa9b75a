//! A built-in fake Slack: a loopback HTTP server that answers the Web API and an incoming
//! webhook the way Slack does, for integration tests and for trying slackctl without a
//! workspace.
//!
//! It is deliberately as strict as Slack about the things clients get wrong (where the token
//! travels, body encodings and charsets, boolean and JSON argument spelling, exact `ts`
//! strings), and it records every request so a test can assert on what a client really sent.
//!
//! # Endpoints
//!
//! * `GET|POST /api/<method>`: the Web API. Methods come from [`crate::catalog`]; a few dozen
//!   have real, stateful handlers (see `web_api.rs`), the rest answer a plausible `ok: true`.
//! * `POST /services/T0EMULATOR/B0EMULATOR/<secret>`: the incoming webhook
//!   ([`Running::webhook_url`]); it posts into `#general`.
//! * `POST /upload/v1/<file id>`: the upload URL handed out by `files.getUploadURLExternal`.
//!
//! # Test controls (no token needed)
//!
//! * `GET /_emulator/requests[?since=<seq>]`: every recorded request (Web API, webhook,
//!   upload), oldest first, as `{seq, path, http_method, content_type, auth, token_kind, args,
//!   raw_body, rejected, status, error, fault, notes}`. `auth` is `bearer`, `body`, `query` or
//!   `none`; `token_kind` is `bot`, `user`, `app`, `unknown` or null; token values are
//!   replaced by `[redacted]` everywhere. `rejected` says why a request was refused as sent
//!   (e.g. `token in query string`). The newest 50,000 entries are kept.
//! * `DELETE /_emulator/requests`: clears the log.
//! * `POST /_emulator/faults`: queues one fault (a JSON object) or several (an array):
//!   `{"path": "/api/chat.postMessage" | "/services/…" | "/api/*" | "*", "status": 429,
//!   "retry_after": 3, "body": "<html>…", "content_type": "text/html", "error": "ratelimited",
//!   "times": 1, "delay_ms": 0}`. Only `path` is required. The first queued fault matching a
//!   request is used, `times` times. A 429 gets `{"ok":false,"error":"ratelimited"}` and
//!   `Retry-After: 1` unless told otherwise (`"retry_after": null` sends no header); `error`
//!   alone answers `ok: false` with HTTP 200 on the Web API and the matching status on the
//!   webhook (`action_prohibited` 403, `channel_not_found` 404, `channel_is_archived` 410,
//!   `rollup_error` 500); other statuses default to an HTML error page; `delay_ms` alone
//!   just slows the request down.
//! * `GET /_emulator/faults`, `DELETE /_emulator/faults`: list or clear the queue.
//! * `GET /_emulator/messages?channel=<id|name>`: the stored messages of a channel, oldest
//!   first, thread replies included.
//! * `POST /_emulator/sockets/flood {"count": N}`: N synthetic message envelopes straight onto
//!   the Socket Mode connections (for benchmarks).
//! * `POST /_emulator/rate_limits` (`{}` for Slack's floors, or `{"tiers": [1,20,50,100],
//!   "per_channel": 1, "channel_burst": 3, "webhook": 1, "methods": {…}, "enabled": true}`),
//!   `DELETE` to stop: answer 429 with `Retry-After` when a client exceeds the limits, token
//!   buckets that allow Slack's short bursts, per channel id (see `limits.rs`).
//!
//! * `POST /_emulator/reactions`: a person adds (or, with `"remove": true`, takes back) a
//!   reaction, with its `reaction_added` / `reaction_removed` event; see
//!   `slack_events::post_reaction`.
//! * `POST /_emulator/messages`: posts messages as anyone (`user`, `as: "bot" | "webhook"`,
//!   `subtype`, `thread_ts`, `count` for a same-second batch, DMs via a `U…` channel); see
//!   `control::post_messages`.
//!
//! # Event delivery
//!
//! * `GET /link/?ticket=…` (Socket Mode) and `GET /websocket/?ticket=…` (RTM): WebSocket
//!   upgrades on this port, with the single-use tickets that `apps.connections.open` and
//!   `rtm.connect` hand out (`socket.rs`).
//! * `GET /_emulator/sockets`: connections, unacked/queued envelopes, delivery counters, config.
//! * `POST /_emulator/sockets/<action>`: `disconnect` (`{"reason": "warning" |
//!   "refresh_requested" | "too_many_websockets" | "link_disabled", "target": "newest" | "all" |
//!   id}`), `goodbye` (RTM), `drop` (no close frame), `silent` (stop reading, writing, ponging;
//!   both take `"kind": "rtm" | "socket_mode"` besides `target`),
//!   `redeliver` (`{"count": n, "same_envelope": false}`), `config` (`{"ack_timeout_ms",
//!   "ack_delay_ms", "ping_interval_ms", "max_attempts", "disconnect_grace_ms", "spread"}`;
//!   `spread: true` spreads envelopes over the connections in turn and redelivers an
//!   unacknowledged one on another connection, as Slack does for an app with several).
//!   Slow acks: `ack_delay_ms` makes acks count only that much later, so envelopes are
//!   redelivered after `ack_timeout_ms` although the client acknowledged them (and again to
//!   a new connection when the old one closes). Slow lookups: a fault with only `delay_ms`
//!   and `times` on `/api/users.info`. An RTM gap: a `delay_ms` fault on `/api/rtm.connect`,
//!   then `drop` with `"kind": "rtm"`; messages posted meanwhile reach no RTM socket.
//! * `POST|DELETE /_emulator/events/subscribe`, `POST /_emulator/events/redeliver`,
//!   `GET /_emulator/events`: signed Events API deliveries (`events.rs`).
//!
//! New messages are also published on a broadcast channel ([`Running::subscribe_messages`]);
//! edits and deletions as `message_changed` / `message_deleted` events. Other events travel
//! the same way (`slack_events.rs`): `app_mention` after a message that mentions the bot user,
//! `reaction_added` / `reaction_removed`, `member_joined_channel` with its `channel_join`
//! message. Messages injected as a person carry `client_msg_id` and a rich-text block; file
//! shares are `file_share` messages. Block Kit arguments are validated (`blocks.rs`).

mod blocks;
mod control;
mod events;
mod files;
mod limits;
mod membership;
mod methods;
mod request;
mod responses;
mod slack_events;
mod socket;
mod state;
mod web_api;
mod webhook;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_apps;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How many human accounts to seed (`U0000001`…; the first is the primary owner, the
    /// second an admin, the last one deleted). `users.list` also returns the bot user and
    /// Slackbot, so it lists `users + 2` members. At least 4 are seeded.
    pub users: usize,
    /// Page size of list methods when a request gives no `limit`.
    pub page_size: usize,
    /// Enforce Slack's rate limits (answer 429 with Retry-After when exceeded).
    pub rate_limits: bool,
    /// The largest page a list method returns whatever `limit` asks for (Slack caps at
    /// 1,000); a small value makes clients walk many pages.
    pub max_page_size: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: 25,
            page_size: 10,
            rate_limits: false,
            max_page_size: 1000,
        }
    }
}

/// The tokens the emulator accepts. Anything else is `invalid_auth`.
pub mod tokens {
    /// A bot token with every bot scope.
    pub const BOT: &str = "xoxb-emulator-bot-token";
    /// A user token (the workspace's primary owner, an admin) with every user scope.
    pub const USER: &str = "xoxp-emulator-user-token";
    /// An app-level token, good only for `apps.connections.open`.
    pub const APP: &str = "xapp-emulator-app-token";
    /// A bot token with only `chat:write`, to provoke `missing_scope`.
    pub const LIMITED_BOT: &str = "xoxb-emulator-limited-token";
}

/// The secret part of the emulator's incoming-webhook URL.
const WEBHOOK_SECRET: &str = "EmulatorWebhookSecret0001";

/// Server-wide state shared by all handlers.
pub(crate) struct Shared {
    ws: Mutex<state::Workspace>,
    log: control::RequestLog,
    faults: control::FaultQueue,
    events: broadcast::Sender<Value>,
    base_url: String,
    page_size: usize,
    limits: limits::Enforcer,
    max_page_size: usize,
    /// Socket Mode and RTM connections.
    sockets: socket::Hub,
    /// The Events API subscription and its deliveries.
    events_api: events::Events,
}

impl Shared {
    /// The workspace lock. Handlers take it in synchronous code only, never across an await.
    fn lock(&self) -> MutexGuard<'_, state::Workspace> {
        self.ws.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn webhook_path() -> String {
        format!(
            "/services/{}/{}/{WEBHOOK_SECRET}",
            state::TEAM_ID,
            state::BOT_ID
        )
    }
}

/// A JSON answer with the content type Slack sends.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn text_response(status: u16, body: String) -> Response {
    let sc = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (sc, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A running emulator. Dropping it stops the server too; [`Running::shutdown`] also waits
/// for open requests to finish.
pub struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The Web API prefix, trailing slash included, to use in place of `https://slack.com/api/`.
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.shared.base_url)
    }

    /// A valid incoming-webhook URL on this server; it posts into `#general`.
    pub fn webhook_url(&self) -> String {
        format!("{}{}", self.shared.base_url, Shared::webhook_path())
    }

    /// What `slackctl emulator` prints once it listens: URLs and tokens.
    pub fn ready_line(&self) -> Value {
        json!({
            "api_url": self.api_url(),
            "webhook_url": self.webhook_url(),
            "base_url": self.base_url(),
            "tokens": {
                "bot": tokens::BOT,
                "user": tokens::USER,
                "app": tokens::APP,
                "limited_bot": tokens::LIMITED_BOT,
            },
        })
    }

    /// Every message stored from now on, as a message event (`type`, `channel`,
    /// `channel_type`, `ts`, `event_ts`, `user` and/or `bot_id`, `text`, ...), and the other
    /// events (`app_mention`, `reaction_added`, `member_joined_channel`, ...).
    pub fn subscribe_messages(&self) -> broadcast::Receiver<Value> {
        self.shared.events.subscribe()
    }

    /// Stops accepting connections, lets open requests finish (up to 5 seconds), and returns.
    pub async fn shutdown(mut self) {
        self.shared.sockets.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.sockets.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The largest body accepted (uploads included).
const BODY_LIMIT: usize = 100 * 1024 * 1024;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/{method}", any(web_api::handle))
        .route("/api", any(web_api::handle_no_method))
        .route("/api/", any(web_api::handle_no_method))
        .route("/services/{*rest}", post(webhook::handle))
        .route("/upload/v1/{id}", post(files::upload))
        .route(
            "/_emulator/requests",
            get(control::get_requests).delete(control::delete_requests),
        )
        .route(
            "/_emulator/faults",
            get(control::get_faults)
                .post(control::post_faults)
                .delete(control::delete_faults),
        )
        .route(
            "/_emulator/messages",
            get(control::get_messages).post(control::post_messages),
        )
        .route("/_emulator/reactions", post(slack_events::post_reaction))
        .route("/link/", get(socket::link))
        .route("/websocket/", get(socket::rtm))
        .route("/_emulator/sockets", get(socket::get_sockets))
        .route("/_emulator/sockets/{action}", post(socket::post_action))
        .route("/_emulator/events", get(events::get_events))
        .route(
            "/_emulator/events/subscribe",
            post(events::subscribe).delete(events::unsubscribe),
        )
        .route("/_emulator/events/redeliver", post(events::redeliver))
        .route(
            "/_emulator/rate_limits",
            post(control::post_rate_limits).delete(control::delete_rate_limits),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// The Events API wrapper (`event_callback`) around an event, in Slack's field order. One
/// definition serves both the dispatcher (as a `Value`) and the socket flood (serialised
/// straight to text, so a benchmark measures the client rather than the emulator).
#[derive(serde::Serialize)]
struct Callback<'a, E: serde::Serialize> {
    token: &'static str,
    team_id: &'static str,
    context_team_id: &'static str,
    api_app_id: &'static str,
    event: &'a E,
    #[serde(rename = "type")]
    kind: &'static str,
    event_id: String,
    event_time: u64,
    authorizations: [Authorization; 1],
    is_ext_shared_channel: bool,
    event_context: String,
}

#[derive(serde::Serialize)]
struct Authorization {
    enterprise_id: Option<&'static str>,
    team_id: &'static str,
    user_id: &'static str,
    is_bot: bool,
    is_enterprise_install: bool,
}

impl<'a, E: serde::Serialize> Callback<'a, E> {
    /// Callback number `n` around `event`, dated `time` (Unix seconds).
    fn new(event: &'a E, n: u64, time: u64) -> Self {
        Callback {
            token: "EmulatorVerificationToken",
            team_id: state::TEAM_ID,
            context_team_id: state::TEAM_ID,
            api_app_id: state::APP_ID,
            event,
            kind: "event_callback",
            event_id: format!("Ev0E{n:08}"),
            event_time: time,
            authorizations: [Authorization {
                enterprise_id: None,
                team_id: state::TEAM_ID,
                user_id: state::BOT_USER_ID,
                is_bot: true,
                is_enterprise_install: false,
            }],
            is_ext_shared_channel: false,
            event_context: format!("4-emulator-{n}"),
        }
    }
}

/// The Events API wrapper (`event_callback`) around a message event, numbered `n`.
fn event_callback(event: &Value, n: u64) -> Value {
    let time = event["event_ts"]
        .as_str()
        .or(event["ts"].as_str())
        .and_then(|t| t.split('.').next())
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or_else(state::now_secs);
    serde_json::to_value(Callback::new(event, n, time)).unwrap_or(Value::Null)
}

/// Turns every new message event into Socket Mode envelopes, RTM frames and Events API
/// deliveries. Subscribed before the server starts, so no event is missed.
fn spawn_dispatcher(shared: Arc<Shared>) {
    let mut rx = shared.events.subscribe();
    let mut stop = shared.sockets.subscribe_stop();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = stop.changed() => break,
            };
            let event = match event {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            n += 1;
            let callback = event_callback(&event, n);
            shared.sockets.publish(callback.to_string());
            shared.sockets.publish_rtm(&event);
            events::publish(&shared, callback);
        }
    });
}

/// Binds `opts.listen`, seeds the workspace and serves it on the current tokio runtime.
/// Returns as soon as the socket is bound.
pub async fn start(opts: Options) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    // Large enough that a flood of posts (benchmarks post 1,000 per call) never lags the
    // dispatcher: a lagged receiver would drop events, and the emulator must lose none.
    let (events, _) = broadcast::channel(1 << 17);
    let ws = state::Workspace::seed(opts.users, base_url.clone(), events.clone());
    let shared = Arc::new(Shared {
        ws: Mutex::new(ws),
        log: control::RequestLog::default(),
        faults: control::FaultQueue::default(),
        events,
        base_url,
        page_size: opts.page_size.max(1),
        limits: limits::Enforcer::default(),
        max_page_size: opts.max_page_size.max(1),
        sockets: socket::Hub::default(),
        events_api: events::Events::default(),
    });
    if opts.rate_limits {
        shared.limits.set(Some(limits::Config::default()));
    }
    spawn_dispatcher(shared.clone());
    socket::spawn_ticker(shared.clone());
    responses::spawn_scheduler(shared.clone());
    // Without TCP_NODELAY, small answers wait on Nagle's algorithm and benchmarks measure
    // the emulator instead of the client.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(shared.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Running {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}
