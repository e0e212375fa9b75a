//! Incoming webhooks: `POST /services/<team>/<bot>/<secret>`.
//!
//! Like an app-created Slack webhook, the emulator's one valid URL always posts into the same
//! channel (`#general`) as the app's bot, and ignores the legacy `channel`, `username` and
//! icon overrides. Answers are plain text: `ok`, or an error word with Slack's status code.

use super::control::{self, Record, Surface};
use super::request::content_type;
use super::state::{Author, GENERAL_ID, NewMessage};
use super::{Shared, text_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Reads the payload: a JSON body, or a form with a `payload` field holding JSON. Other
/// content types are tried both ways, as Slack is lenient here.
fn payload(headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let from_form = || {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok())
    };
    match content_type(headers).map(|c| c.mime).as_deref() {
        Some("application/json") => serde_json::from_slice(body).ok(),
        Some("application/x-www-form-urlencoded") => from_form(),
        _ => serde_json::from_slice(body).ok().or_else(from_form),
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// Handles a webhook post and returns (status, body text, what the log should say).
fn deliver(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    rec: &mut Record,
) -> (u16, &'static str) {
    if path != Shared::webhook_path() {
        rec.rejected = Some("unknown webhook URL".into());
        return (404, "no_service");
    }
    let Some(p) = payload(headers, body) else {
        rec.rejected = Some("body is neither JSON nor a form with a JSON `payload` field".into());
        return (400, "invalid_payload");
    };
    let Value::Object(mut p) = p else {
        rec.rejected = Some("payload is not a JSON object".into());
        return (400, "invalid_payload");
    };
    rec.args = p.clone();
    if !["text", "blocks", "attachments"]
        .iter()
        .any(|k| non_empty(p.get(*k)))
    {
        rec.rejected = Some("payload has no text, blocks or attachments".into());
        return (400, "no_text");
    }
    for k in ["channel", "username", "icon_emoji", "icon_url"] {
        if p.contains_key(k) {
            rec.notes.push(format!(
                "`{k}` is ignored by webhooks of Slack apps (only legacy webhooks honour it)"
            ));
        }
    }
    let blocks = p.remove("blocks").filter(|b| !b.is_null());
    if let Some(b) = &blocks
        && !b.as_array().is_some_and(|a| {
            a.iter()
                .all(|x| x.get("type").and_then(Value::as_str).is_some())
        })
    {
        rec.rejected = Some("blocks must be an array of objects with a type".into());
        return (400, "invalid_blocks");
    }
    let mut extra = Map::new();
    if let Some(b) = blocks {
        extra.insert("blocks".into(), b);
    }
    if let Some(a) = p.remove("attachments").filter(|a| !a.is_null()) {
        extra.insert("attachments".into(), a);
    }
    let text = match p.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let thread_ts = p.get("thread_ts").and_then(Value::as_str).map(String::from);
    let mut ws = shared.lock();
    let Some(idx) = ws.channel_index(GENERAL_ID) else {
        return (404, "channel_not_found");
    };
    if ws.channels[idx].archived {
        return (410, "channel_is_archived");
    }
    ws.post_message(
        idx,
        NewMessage {
            author: Author::Bot {
                user: None,
                username: None,
            },
            text,
            extra,
            thread_ts,
            broadcast: false,
        },
    );
    (200, "ok")
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut rec = Record::new(uri.path(), "POST", ct);
    rec.set_raw_body(&body, str::to_string);
    let mut rec = match control::injected(&shared, uri.path(), rec, Surface::Text).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Some(retry) = shared.limits.check_webhook(uri.path()) {
        rec.status = 429;
        rec.error = Some("rate_limited".into());
        shared.log.push(rec);
        let mut resp = text_response(429, "rate_limited".to_string());
        if let Ok(v) = axum::http::HeaderValue::from_str(&retry.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    let (status, text) = deliver(&shared, uri.path(), &headers, &body, &mut rec);
    rec.status = status;
    if status != 200 {
        rec.error = Some(text.to_string());
    }
    shared.log.push(rec);
    text_response(status, text.to_string())
}
