//! The emulator's Events API side: signed HTTP deliveries of every new message event to a
//! subscribed Request URL, the way Slack delivers them.
//!
//! * `POST /_emulator/events/subscribe {"url": "http://127.0.0.1:PORT/…", "signing_secret":
//!   "…", "retry_delay_ms": 200}` first sends a signed `url_verification` (as Slack does when a
//!   Request URL is saved) and subscribes only if the challenge comes back.
//! * Each delivery is a signed `event_callback` (`X-Slack-Request-Timestamp`,
//!   `X-Slack-Signature: v0=…`). A non-2xx answer or no answer within 3 seconds is retried up
//!   to 3 times with `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`, `retry_delay_ms` apart
//!   (Slack waits about 1 and 5 minutes; the emulator is quicker).
//! * `POST /_emulator/events/redeliver {"count": 1}` sends recent callbacks again as retries;
//!   `GET /_emulator/events` lists the subscription and every delivery attempt;
//!   `DELETE /_emulator/events/subscribe` ends the subscription.
//!
//! Plain `http://` only: the emulator talks to receivers on loopback. The signing code is the
//! emulator's own (ring's HMAC), independent of the sensor's verifier.

use super::{Shared, json_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Slack gives a receiver this long to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Retries after the first attempt.
const MAX_RETRIES: u64 = 3;
const LOG_LIMIT: usize = 10_000;
const RECENT_LIMIT: usize = 100;

#[derive(Clone)]
struct Subscription {
    url: String,
    secret: String,
    retry_delay: Duration,
}

#[derive(Default)]
struct Inner {
    sub: Option<Subscription>,
    log: VecDeque<Value>,
    /// Recent callbacks and the retry number they were last sent with.
    recent: VecDeque<(Value, u64)>,
}

#[derive(Default)]
pub struct Events {
    inner: Mutex<Inner>,
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subscription(&self) -> Option<Subscription> {
        self.lock().sub.clone()
    }

    fn record(&self, entry: Value) {
        let mut g = self.lock();
        g.log.push_back(entry);
        if g.log.len() > LOG_LIMIT {
            g.log.pop_front();
        }
    }
}

/// Delivers one event callback if a URL is subscribed (called by the dispatcher).
pub fn publish(shared: &Arc<Shared>, callback: Value) {
    let Some(sub) = shared.events_api.subscription() else {
        return;
    };
    {
        let mut g = shared.events_api.lock();
        g.recent.push_back((callback.clone(), 0));
        if g.recent.len() > RECENT_LIMIT {
            g.recent.pop_front();
        }
    }
    let shared = shared.clone();
    tokio::spawn(async move { deliver(&shared, &sub, callback, 0).await });
}

/// Sends a callback, retrying as Slack does until a 2xx or the retries run out.
async fn deliver(shared: &Arc<Shared>, sub: &Subscription, callback: Value, first_retry: u64) {
    let body = callback.to_string();
    let mut retry = first_retry;
    let mut reason = "";
    loop {
        let (status, error) = match post_signed(sub, &body, retry, reason).await {
            Ok((s, _)) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        shared.events_api.record(json!({
            "event_id": callback["event_id"],
            "retry_num": retry,
            "status": status,
            "error": error,
        }));
        {
            let mut g = shared.events_api.lock();
            if let Some(r) = g
                .recent
                .iter_mut()
                .find(|(c, _)| c["event_id"] == callback["event_id"])
            {
                r.1 = r.1.max(retry);
            }
        }
        if status.is_some_and(|s| (200..300).contains(&s)) || retry >= first_retry + MAX_RETRIES {
            return;
        }
        reason = match (&status, &error) {
            (Some(_), _) => "http_error",
            (None, Some(e)) if e.contains("timed out") => "http_timeout",
            _ => "connection_failed",
        };
        retry += 1;
        tokio::time::sleep(sub.retry_delay).await;
    }
}

/// The emulator's own v0 signature: `v0=` + hex HMAC-SHA256 of `v0:<ts>:<body>`.
fn sign(secret: &str, ts: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

async fn post_signed(
    sub: &Subscription,
    body: &str,
    retry: u64,
    reason: &str,
) -> Result<(u16, String), String> {
    let ts = super::state::now_secs().to_string();
    let mut headers = vec![
        ("X-Slack-Request-Timestamp".to_string(), ts.clone()),
        (
            "X-Slack-Signature".to_string(),
            sign(&sub.secret, &ts, body),
        ),
    ];
    if retry > 0 {
        headers.push(("X-Slack-Retry-Num".into(), retry.to_string()));
        headers.push(("X-Slack-Retry-Reason".into(), reason.to_string()));
    }
    http_post(&sub.url, &headers, body).await
}

/// A minimal HTTP/1.1 POST for loopback receivers: returns the status and body.
async fn http_post(
    url: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connection failed: {e}"))?;
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: Slackbot 1.0 (+https://api.slack.com/robots)\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or("no HTTP status line in the answer")?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        // Receivers such as Node's http server answer in chunks.
        let chunked = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
            })
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .map_err(|_| "timed out (no answer within 3 s)".to_string())?
}

/// The body of a chunked answer: each chunk is a hex length line, the bytes, and CRLF.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let hex = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(hex, 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(after.get(..n).unwrap_or(""));
        rest = after.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}

fn bad(detail: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"ok": false, "error": "invalid_request", "detail": detail}),
    )
}

pub async fn subscribe(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad("body must be a JSON object");
    };
    let (Some(url), Some(secret)) = (v["url"].as_str(), v["signing_secret"].as_str()) else {
        return bad("`url` and `signing_secret` are required");
    };
    let sub = Subscription {
        url: url.to_string(),
        secret: secret.to_string(),
        retry_delay: Duration::from_millis(v["retry_delay_ms"].as_u64().unwrap_or(200)),
    };
    let challenge = format!("challenge-{}", super::state::now_secs());
    let check = json!({"token": "EmulatorVerificationToken", "challenge": challenge,
                       "type": "url_verification"});
    let answer = post_signed(&sub, &check.to_string(), 0, "").await;
    let verified = match &answer {
        Ok((200, body)) => {
            body.trim() == challenge
                || serde_json::from_str::<Value>(body)
                    .is_ok_and(|j| j["challenge"].as_str() == Some(challenge.as_str()))
        }
        _ => false,
    };
    if !verified {
        let detail = match answer {
            Ok((s, b)) => format!("HTTP {s}: {}", b.chars().take(200).collect::<String>()),
            Err(e) => e,
        };
        return json_response(
            StatusCode::OK,
            &json!({"ok": false, "error": "url_verification_failed", "detail": detail}),
        );
    }
    shared.events_api.lock().sub = Some(sub);
    json_response(StatusCode::OK, &json!({"ok": true, "verified": true}))
}

pub async fn unsubscribe(State(shared): State<Arc<Shared>>) -> Response {
    shared.events_api.lock().sub = None;
    json_response(StatusCode::OK, &json!({"ok": true}))
}

pub async fn get_events(State(shared): State<Arc<Shared>>) -> Response {
    let g = shared.events_api.lock();
    json_response(
        StatusCode::OK,
        &json!({
            "subscribed": g.sub.as_ref().map(|s| s.url.clone()),
            "deliveries": g.log.iter().cloned().collect::<Vec<_>>(),
        }),
    )
}

pub async fn redeliver(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let count = v["count"].as_u64().unwrap_or(1) as usize;
    let Some(sub) = shared.events_api.subscription() else {
        return bad("no URL is subscribed");
    };
    let picked: Vec<(Value, u64)> = {
        let g = shared.events_api.lock();
        let n = count.min(g.recent.len());
        g.recent.iter().rev().take(n).rev().cloned().collect()
    };
    let n = picked.len();
    for (callback, last) in picked {
        let shared2 = shared.clone();
        let sub = sub.clone();
        tokio::spawn(async move { deliver(&shared2, &sub, callback, last + 1).await });
    }
    json_response(StatusCode::OK, &json!({"ok": true, "affected": n}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_chunked_answers() {
        assert_eq!(
            super::dechunk("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
            "hello, world"
        );
        assert_eq!(super::dechunk("0\r\n\r\n"), "");
    }

    #[test]
    fn signs_like_slacks_documented_example() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            super::sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }
}
