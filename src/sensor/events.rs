//! The Events API over HTTP: a small receiver for Slack's POSTs. Every request is verified
//! (v0 signature, constant-time, 300-second replay window) before its body is parsed; a
//! forged, unsigned or stale one gets 401 and emits nothing. `url_verification` is answered
//! with its challenge; `event_callback` goes through the pipeline and is answered 200 once its
//! line is written (well inside Slack's 3 seconds, since lookups have their own budget).
//! Requests are accepted on any path (`/`, `/slack/events`, …).

use super::event::{self, Callback, Event};
use super::pipeline::{Incoming, Pipeline};
use super::signature;
use super::{Ending, Stop};
use crate::error::{Error, Result};
use crate::redact::Secret;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

struct Receiver {
    secret: Secret,
    pipeline: Mutex<Pipeline>,
    /// Set when the receiver must end by itself (stdout closed, --max-messages reached).
    end: watch::Sender<Option<Ending>>,
}

/// How long in-flight requests may take to finish after a stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Slack's payloads are small; anything this large is not from Slack.
const BODY_LIMIT: usize = 1024 * 1024;

/// Binds `listen` and serves until stopped; returns how it ended.
pub async fn run(
    listen: SocketAddr,
    secret: Secret,
    pipeline: Pipeline,
    mut stop: Stop,
) -> Result<Ending> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::usage(format!("cannot listen on {listen}: {e}"))
            .hint("pick another address with --listen HOST:PORT (port 0 = any free port)")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::failed(format!("cannot read the listening address: {e}")))?;
    crate::log::info(&format!(
        "sensor listening for Slack Events API requests on http://{addr}/ (any path)"
    ));
    let (end_tx, mut end_rx) = watch::channel(None);
    let rx = Arc::new(Receiver {
        secret,
        pipeline: Mutex::new(pipeline),
        end: end_tx,
    });
    let app = axum::Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(rx.clone());
    let (decided_tx, mut decided_rx) = watch::channel(None::<Ending>);
    let shutdown = async move {
        let ending = tokio::select! {
            _ = stop.changed() => Ending::Stopped,
            e = end_rx.wait_for(Option::is_some) => e.ok().and_then(|e| *e).unwrap_or(Ending::Stopped),
        };
        let _ = decided_tx.send(Some(ending));
    };
    let saver = {
        let rx = rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                rx.pipeline.lock().await.tidy();
            }
        })
    };
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    let decided_peek = decided_rx.clone();
    let mut server_done = false;
    let outcome = tokio::select! {
        // A clean end means the shutdown future ran (its decision is set); anything else is
        // an I/O failure.
        r = &mut server => {
            server_done = true;
            match r {
                Ok(Ok(())) => Ok(decided_peek.borrow().unwrap_or(Ending::Stopped)),
                Ok(Err(e)) => Err(Error::failed(format!("the Events API receiver failed: {e}"))),
                Err(_) => Err(Error::failed("the Events API receiver stopped unexpectedly")),
            }
        }
        e = decided_rx.wait_for(Option::is_some) => {
            Ok(e.ok().and_then(|e| *e).unwrap_or(Ending::Stopped))
        }
    };
    if !server_done {
        // Requests already being handled finish (their lines are written); a client that
        // keeps its connection open cannot hold the exit back for long.
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
    saver.abort();
    rx.pipeline.lock().await.tidy();
    outcome
}

fn text(status: StatusCode, body: &str) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = std::time::Instant::now();
    if method == Method::GET || method == Method::HEAD {
        return text(StatusCode::OK, "slackctl sensor: POST Slack events here\n");
    }
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Err(why) = signature::verify(
        rx.secret.expose(),
        header_str(&headers, "x-slack-request-timestamp"),
        header_str(&headers, "x-slack-signature"),
        &body,
        now,
    ) {
        crate::log::warn(&format!("refused an Events API request: {why}"));
        return text(StatusCode::UNAUTHORIZED, "invalid request signature\n");
    }
    let Some(v) = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| event::read::<Callback>(t).ok())
    else {
        return text(StatusCode::BAD_REQUEST, "expected a JSON body\n");
    };
    match v.kind.get().unwrap_or("") {
        "url_verification" => text(StatusCode::OK, v.challenge.get().unwrap_or("")),
        "event_callback" => {
            let retry = header_str(&headers, "x-slack-retry-num")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let event = match v.event.map(|e| Event::parse(e.text())) {
                Some(Ok(e)) => e,
                // Retrying would not make it readable; take it and say so.
                Some(Err(e)) => {
                    crate::log::warn(&format!(
                        "accepting an unreadable event without emitting it ({e})"
                    ));
                    return text(StatusCode::OK, "");
                }
                None => Event::default(),
            };
            let inc = Incoming {
                event,
                event_id: v.event_id.get(),
                envelope_id: None,
                team: v.team_id.get(),
                retry,
                received,
            };
            let mut p = rx.pipeline.lock().await;
            if p.done() {
                // Past --max-messages: let Slack deliver it to whoever runs next.
                return text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n");
            }
            // The line must reach the reader before Slack hears 2xx.
            match p.handle(inc).await.and_then(|o| p.flush().map(|_| o)) {
                Ok(_) => {
                    if p.done() {
                        let _ = rx.end.send(Some(Ending::Done));
                    }
                    text(StatusCode::OK, "")
                }
                Err(e) => {
                    crate::log::warn(&format!(
                        "stdout is closed ({}); stopping without accepting the event",
                        e.0
                    ));
                    let _ = rx.end.send(Some(Ending::StdoutClosed));
                    text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
                }
            }
        }
        "app_rate_limited" => {
            crate::log::warn(&format!(
                "Slack is dropping events: this app went over the Events API delivery limit (minute {})",
                v.minute_rate_limited.map_or("?", |m| m.text())
            ));
            text(StatusCode::OK, "")
        }
        _ => text(StatusCode::OK, ""),
    }
}
