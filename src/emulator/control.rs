//! Test controls: the request log, fault injection, and a view of stored messages.
//!
//! These live under `/_emulator/` and need no token; see the module documentation of
//! [`crate::emulator`] for the endpoint list. Both the log and the fault queue sit behind
//! their own short-lived mutexes, separate from the workspace lock.

use super::Shared;
use super::json_response;
use super::request::AuthSource;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The log keeps the newest entries only, so a long benchmark cannot grow it without bound.
pub const LOG_CAPACITY: usize = 50_000;
/// Raw bodies are logged up to this many bytes.
const RAW_BODY_LIMIT: usize = 64 * 1024;

/// What the log says about one request. Never holds a token: the caller redacts first.
pub struct Record {
    pub path: String,
    pub http_method: String,
    pub content_type: Option<String>,
    pub auth: AuthSource,
    /// `None` when no token was sent; `Some("unknown")` for a token the emulator did not issue.
    pub token_kind: Option<&'static str>,
    pub args: Map<String, Value>,
    pub raw_body: String,
    pub rejected: Option<String>,
    pub status: u16,
    /// The Slack error code answered, if any (`ok: false` or a webhook error body).
    pub error: Option<String>,
    /// Set when an injected fault produced the answer.
    pub fault: bool,
    /// Soft problems Slack would not refuse but a careful client should avoid.
    pub notes: Vec<String>,
    /// The client's `User-Agent` header.
    pub user_agent: Option<String>,
}

impl Record {
    pub fn new(path: &str, http_method: &str, content_type: Option<&str>) -> Record {
        Record {
            path: path.to_string(),
            http_method: http_method.to_string(),
            content_type: content_type.map(String::from),
            auth: AuthSource::None,
            token_kind: None,
            args: Map::new(),
            raw_body: String::new(),
            rejected: None,
            status: 200,
            error: None,
            fault: false,
            notes: Vec::new(),
            user_agent: None,
        }
    }

    /// Stores a body for the log, as text, shortened when large.
    pub fn set_raw_body(&mut self, body: &[u8], redact: impl Fn(&str) -> String) {
        let shown = &body[..body.len().min(RAW_BODY_LIMIT)];
        let mut text = redact(&String::from_utf8_lossy(shown));
        if body.len() > RAW_BODY_LIMIT {
            text.push_str(&format!("...[{} more bytes]", body.len() - RAW_BODY_LIMIT));
        }
        self.raw_body = text;
    }
}

#[derive(Default)]
pub struct RequestLog {
    inner: Mutex<(u64, VecDeque<Value>)>,
}

impl RequestLog {
    pub fn push(&self, r: Record) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let entry = json!({
            "seq": g.0,
            "path": r.path,
            "http_method": r.http_method,
            "content_type": r.content_type,
            "auth": r.auth.as_str(),
            "token_kind": r.token_kind,
            "args": r.args,
            "raw_body": r.raw_body,
            "rejected": r.rejected,
            "status": r.status,
            "error": r.error,
            "fault": r.fault,
            "notes": r.notes,
            "user_agent": r.user_agent,
        });
        g.1.push_back(entry);
        if g.1.len() > LOG_CAPACITY {
            g.1.pop_front();
        }
    }

    fn snapshot(&self, since: u64) -> Vec<Value> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter()
            .filter(|e| e["seq"].as_u64().unwrap_or(0) > since)
            .cloned()
            .collect()
    }

    fn clear(&self) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.1.len();
        g.1.clear();
        n
    }
}

/// What to send as `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryAfter {
    /// Not given: 1 second on a 429, nothing otherwise.
    Default,
    /// Given as `null`: send no header at all (to test clients' fallbacks).
    Omit,
    Secs(u64),
}

/// One queued fault. See the module documentation of [`crate::emulator`] for the JSON shape.
#[derive(Debug, Clone)]
pub struct Fault {
    path: String,
    status: Option<u16>,
    retry_after: RetryAfter,
    body: Option<String>,
    content_type: Option<String>,
    error: Option<String>,
    times: u64,
    pub delay_ms: u64,
}

impl Fault {
    fn from_json(v: &Value) -> Result<Fault, String> {
        let o = v.as_object().ok_or("a fault must be a JSON object")?;
        let text = |k: &str| -> Result<Option<String>, String> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{k}` must be a string")),
            }
        };
        let num = |k: &str| -> Result<Option<u64>, String> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or(format!("`{k}` must be a non-negative integer")),
            }
        };
        let path = text("path")?.ok_or("`path` is required")?;
        let status = match num("status")? {
            None => None,
            Some(s) => Some(
                StatusCode::from_u16(u16::try_from(s).map_err(|_| "bad status")?)
                    .map_err(|_| "`status` is not an HTTP status")?
                    .as_u16(),
            ),
        };
        let retry_after = match o.get("retry_after") {
            None => RetryAfter::Default,
            Some(Value::Null) => RetryAfter::Omit,
            Some(_) => RetryAfter::Secs(num("retry_after")?.unwrap_or(1)),
        };
        Ok(Fault {
            path,
            status,
            retry_after,
            body: text("body")?,
            content_type: text("content_type")?,
            error: text("error")?,
            times: num("times")?.unwrap_or(1),
            delay_ms: num("delay_ms")?.unwrap_or(0),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "status": self.status,
            "retry_after": match self.retry_after {
                RetryAfter::Secs(s) => json!(s),
                _ => Value::Null,
            },
            "body": self.body,
            "content_type": self.content_type,
            "error": self.error,
            "times": self.times,
            "delay_ms": self.delay_ms,
        })
    }

    /// `*` matches everything, a trailing `*` matches a prefix, anything else the exact path.
    fn matches(&self, path: &str) -> bool {
        match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        }
    }

    /// Whether the fault answers by itself; a fault with only `delay_ms` just slows the
    /// request down and lets it proceed.
    pub fn answers(&self) -> bool {
        self.status.is_some() || self.error.is_some() || self.body.is_some()
    }
}

#[derive(Default)]
pub struct FaultQueue {
    queue: Mutex<VecDeque<Fault>>,
    /// Lets the common case (no faults queued) skip the lock.
    len: AtomicUsize,
}

impl FaultQueue {
    /// Consumes one use of the first queued fault that matches `path`.
    pub fn take(&self, path: &str) -> Option<Fault> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let i = q.iter().position(|f| f.matches(path))?;
        let f = q[i].clone();
        if q[i].times <= 1 {
            q.remove(i);
        } else {
            q[i].times -= 1;
        }
        self.len.store(q.len(), Ordering::Release);
        Some(f)
    }

    fn push(&self, faults: Vec<Fault>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(faults.into_iter().filter(|f| f.times > 0));
        self.len.store(q.len(), Ordering::Release);
    }

    fn list(&self) -> Vec<Value> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().map(Fault::to_json).collect()
    }

    fn clear(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        self.len.store(0, Ordering::Release);
    }
}

/// Applies the first queued fault for `path`, if any: waits its delay, then either answers
/// for it (the request is logged and `Err` carries the answer) or lets the request go on
/// (`Ok`, with a note in the log record). One place for every surface that takes faults.
pub async fn injected(
    shared: &Shared,
    path: &str,
    mut rec: Record,
    surface: Surface,
) -> Result<Record, Response> {
    let Some(fault) = shared.faults.take(path) else {
        return Ok(rec);
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(fault.delay_ms)).await;
    }
    if fault.answers() {
        let (resp, error) = fault_response(&fault, surface);
        rec.status = resp.status().as_u16();
        rec.error = error;
        rec.fault = true;
        shared.log.push(rec);
        return Err(resp);
    }
    rec.notes.push(format!(
        "delayed {} ms by an injected fault",
        fault.delay_ms
    ));
    Ok(rec)
}

/// Which kind of endpoint a fault hits; it decides the default body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api/...`: JSON envelopes.
    Api,
    /// Incoming webhooks and the upload URL: plain-text bodies.
    Text,
}

/// The HTTP status Slack uses for a webhook error body.
pub fn webhook_status(error: &str) -> u16 {
    match error {
        "action_prohibited" | "invalid_token" | "posting_to_general_channel_denied" => 403,
        "channel_not_found" | "no_service" | "no_team" | "no_service_id" => 404,
        "channel_is_archived" => 410,
        "rollup_error" => 500,
        _ => 400,
    }
}

fn html_page(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>The emulator was asked to fail this request.</p></body></html>\n"
    )
}

/// Builds the answer of an answering fault; returns the response and the error it stands for.
pub fn fault_response(f: &Fault, surface: Surface) -> (Response, Option<String>) {
    let json_ct = "application/json; charset=utf-8";
    let (status, body, ct, error) = match (&f.error, surface) {
        (Some(e), Surface::Api) => (
            f.status.unwrap_or(200),
            f.body
                .clone()
                .unwrap_or_else(|| json!({"ok": false, "error": e}).to_string()),
            json_ct,
            Some(e.clone()),
        ),
        (Some(e), Surface::Text) => (
            f.status.unwrap_or_else(|| webhook_status(e)),
            f.body.clone().unwrap_or_else(|| e.clone()),
            "text/plain; charset=utf-8",
            Some(e.clone()),
        ),
        (None, _) => {
            let status = f.status.unwrap_or(500);
            let sc = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (body, ct, error) = match (status, surface) {
                (429, Surface::Api) => (
                    json!({"ok": false, "error": "ratelimited"}).to_string(),
                    json_ct,
                    Some("ratelimited"),
                ),
                (429, Surface::Text) => (
                    "rate_limited".to_string(),
                    "text/plain; charset=utf-8",
                    Some("rate_limited"),
                ),
                (500, Surface::Text) => (
                    "rollup_error".to_string(),
                    "text/plain; charset=utf-8",
                    Some("rollup_error"),
                ),
                _ => (html_page(sc), "text/html; charset=utf-8", None),
            };
            (
                status,
                f.body.clone().unwrap_or(body),
                ct,
                error.map(String::from),
            )
        }
    };
    let ct = match (&f.content_type, &f.body) {
        (Some(c), _) => c.clone(),
        (None, Some(b)) if f.error.is_none() || surface == Surface::Text => guess_type(b).into(),
        _ => ct.to_string(),
    };
    let sc = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (sc, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    let retry = match f.retry_after {
        RetryAfter::Secs(s) => Some(s),
        RetryAfter::Default if status == 429 => Some(1),
        _ => None,
    };
    if let Some(s) = retry {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    (resp, error)
}

fn guess_type(body: &str) -> &'static str {
    match body.trim_start().as_bytes().first() {
        Some(b'{') | Some(b'[') => "application/json; charset=utf-8",
        Some(b'<') => "text/html; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

// ---- endpoints ---------------------------------------------------------------------------

pub async fn get_requests(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    json_response(StatusCode::OK, &Value::Array(shared.log.snapshot(since)))
}

pub async fn delete_requests(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.log.clear();
    json_response(StatusCode::OK, &json!({"ok": true, "cleared": n}))
}

pub async fn post_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed: Result<Vec<Fault>, String> = match serde_json::from_slice::<Value>(&body) {
        Err(e) => Err(format!("body is not JSON: {e}")),
        Ok(Value::Array(items)) => items.iter().map(Fault::from_json).collect(),
        Ok(v) => Fault::from_json(&v).map(|f| vec![f]),
    };
    match parsed {
        Ok(faults) => {
            let n = faults.len();
            shared.faults.push(faults);
            json_response(StatusCode::OK, &json!({"ok": true, "queued": n}))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"ok": false, "error": "invalid_fault", "detail": e}),
        ),
    }
}

pub async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &Value::Array(shared.faults.list()))
}

pub async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

/// Stored messages of one channel, oldest first, thread replies included. The channel may be
/// given by id, `name` or `#name`.
pub async fn get_messages(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(channel) = q.get("channel") else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"ok": false, "error": "channel parameter required"}),
        );
    };
    let ws = shared.lock();
    let idx = ws
        .channel_index(channel)
        .or_else(|| ws.channel_by_name(channel.trim_start_matches('#')));
    match idx {
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "channel_not_found"}),
        ),
        Some(i) => {
            let msgs: Vec<Value> = ws.channels[i]
                .messages
                .iter()
                .map(|m| m.to_json())
                .collect();
            drop(ws);
            json_response(StatusCode::OK, &Value::Array(msgs))
        }
    }
}

/// `POST /_emulator/rate_limits`: start enforcing limits (see `limits.rs`).
pub async fn post_rate_limits(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = if body.is_empty() {
        b"{}".as_slice()
    } else {
        &body[..]
    };
    match serde_json::from_slice::<super::limits::Config>(text) {
        Ok(cfg) => {
            shared.limits.set(Some(cfg));
            (StatusCode::OK, "ok").into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("bad rate-limit config: {e}"),
        )
            .into_response(),
    }
}

/// `DELETE /_emulator/rate_limits`: stop enforcing limits.
pub async fn delete_rate_limits(State(shared): State<Arc<Shared>>) -> Response {
    shared.limits.set(None);
    (StatusCode::OK, "ok").into_response()
}

/// `POST /_emulator/messages`: posts messages as anyone, the way tests need them.
///
/// `{"channel": "C…" | "name" | "#name" | "D…" | "U…" (the DM between `user` and that user),
///   "user": "U0000001", "as": "user" | "bot" | "webhook", "text": "…", "count": 1,
///   "subtype": "…", "thread_ts": "…", "reply_broadcast": false, "username": "…",
///   "extra": {…}}`
///
/// `as: "bot"` posts as the app's bot user (a `bot_id`, no subtype, like a modern app);
/// `as: "webhook"` posts like an incoming webhook (`subtype: bot_message`, no user). With
/// `count` > 1 the texts get ` 1`, ` 2`, … appended and the messages share one second.
/// Answers `{"ok": true, "channel": "C…", "messages": [stored messages]}`.
pub async fn post_messages(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    use super::state::{Author, BOT_USER_ID, NewMessage, OWNER_ID};
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"ok": false, "error": "invalid_request", "detail": "body must be a JSON object"}),
            );
        }
    };
    let Some(channel) = v["channel"].as_str() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"ok": false, "error": "invalid_request", "detail": "`channel` is required"}),
        );
    };
    let user = v["user"].as_str().unwrap_or(OWNER_ID).to_string();
    let username = v["username"].as_str().map(String::from);
    let author = match v["as"].as_str().unwrap_or("user") {
        "bot" => Author::Bot {
            user: Some(BOT_USER_ID.to_string()),
            username,
        },
        "webhook" => Author::Bot {
            user: None,
            username,
        },
        _ => Author::User(user.clone()),
    };
    let count = v["count"].as_u64().unwrap_or(1).clamp(1, 1000);
    let text = v["text"]
        .as_str()
        .unwrap_or("hello from the emulator")
        .to_string();
    let mut extra = v["extra"].as_object().cloned().unwrap_or_default();
    if let Some(sub) = v["subtype"].as_str() {
        extra.insert("subtype".into(), json!(sub));
    }
    let mut ws = shared.lock();
    let idx = if channel.starts_with('U') && ws.user(channel).is_some() {
        let id = ws.open_direct(&[user.clone(), channel.to_string()]);
        ws.channel_index(&id)
    } else {
        ws.channel_index(channel)
            .or_else(|| ws.channel_by_name(channel.trim_start_matches('#')))
    };
    let Some(idx) = idx else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "channel_not_found"}),
        );
    };
    if count > 1 {
        ws.same_second(count);
    }
    let mut stored = Vec::new();
    for i in 1..=count {
        let text = if count > 1 {
            format!("{text} {i}")
        } else {
            text.clone()
        };
        // Messages from people look like a Slack client's (client_msg_id, rich-text blocks).
        stored.push(super::slack_events::post_as_person(
            &mut ws,
            idx,
            NewMessage {
                author: author.clone(),
                text,
                extra: extra.clone(),
                thread_ts: v["thread_ts"].as_str().map(String::from),
                broadcast: v["reply_broadcast"].as_bool().unwrap_or(false),
            },
        ));
    }
    let id = ws.channels[idx].id.clone();
    drop(ws);
    json_response(
        StatusCode::OK,
        &json!({"ok": true, "channel": id, "messages": stored}),
    )
}
