//! The Events API over HTTP: a small receiver for Slack's POSTs. Every request is verified
//! (v0 signature, constant-time, 300-second replay window) before its body is parsed; a
//! forged, unsigned or stale one gets 401 and emits nothing. `url_verification` is answered
//! with its challenge; `event_callback` goes through the pipeline and is answered 200 once its
//! line is written (well inside Slack's 3 seconds, since lookups have their own budget).
//! Requests are accepted on any path (`/`, `/slack/events`, …).
//!
//! The port is open to anyone who can reach it, so the receiver also defends itself before
//! any signature can be checked: request headers must arrive within [`HEADER_TIMEOUT`] and the
//! body within [`BODY_TIMEOUT`], bodies over [`BODY_LIMIT`] get 413, and at most
//! [`MAX_CONNECTIONS`] connections are kept. When a new connection would exceed that, the
//! oldest connection that is not in the middle of a request is closed, so a flood of idle or
//! half-open connections can never keep Slack's deliveries out.

use super::event::{self, Callback, Event};
use super::pipeline::{Incoming, Pipeline};
use super::signature;
use super::{Ending, Stop};
use crate::error::{Error, Result};
use crate::redact::Secret;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Slack sends a request's headers at once; a client that trickles them is not Slack.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole body must arrive within this (Slack sends it with the headers).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections kept open at once; beyond this the oldest idle one is closed.
pub const MAX_CONNECTIONS: usize = 256;

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
    let mut server = tokio::spawn(serve(listener, rx.clone(), shutdown));
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

/// One open connection, as the accept loop tracks it.
struct Conn {
    abort: tokio::task::AbortHandle,
    /// True while a request whose body is in is being answered (never closed to make room).
    busy: Arc<AtomicBool>,
}

/// The accept loop: HTTP/1.1 with header and body deadlines and a bounded number of
/// connections, until `shutdown` completes; then connections finish their current request.
async fn serve(
    listener: tokio::net::TcpListener,
    rx: Arc<Receiver>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let http = Arc::new(http);
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // Keyed by an increasing number, so the first entry is the oldest connection.
    let mut conns: BTreeMap<u64, Conn> = BTreeMap::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done {
                    conns.remove(&id);
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        crate::log::warn(&format!("Events API receiver cannot accept a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if conns.len() >= MAX_CONNECTIONS && !make_room(&mut conns) {
                    drop(stream); // every connection is mid-request: refuse this one
                    continue;
                }
                let id = next_id;
                next_id += 1;
                let busy = Arc::new(AtomicBool::new(false));
                let abort = tasks.spawn(connection(
                    id,
                    stream,
                    http.clone(),
                    rx.clone(),
                    busy.clone(),
                    closing_rx.clone(),
                ));
                conns.insert(id, Conn { abort, busy });
            }
        }
    }
    // Stop accepting; let each connection finish the request it is answering.
    drop(listener);
    let _ = closing_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Closes the oldest connection that is not answering a request; false when all are busy.
fn make_room(conns: &mut BTreeMap<u64, Conn>) -> bool {
    let idle = conns
        .iter()
        .find(|(_, c)| !c.busy.load(Ordering::Acquire))
        .map(|(id, _)| *id);
    match idle.and_then(|id| conns.remove(&id)) {
        Some(c) => {
            c.abort.abort();
            true
        }
        None => false,
    }
}

/// Serves one connection; returns its id so the accept loop can forget it.
async fn connection(
    id: u64,
    stream: tokio::net::TcpStream,
    http: Arc<hyper::server::conn::http1::Builder>,
    rx: Arc<Receiver>,
    busy: Arc<AtomicBool>,
    mut closing: watch::Receiver<bool>,
) -> u64 {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let rx = rx.clone();
        let busy = busy.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(rx, req, &busy).await) }
    });
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return id,
        _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
    id
}

/// Reads the body (bounded in size and time), then answers the request. Only once the body
/// is in is the connection marked busy: one still sending its body may be closed to make room.
async fn handle(
    rx: Arc<Receiver>,
    req: Request<hyper::body::Incoming>,
    busy: &AtomicBool,
) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let read = async {
        let mut stream = Body::new(body).into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            if buf.len() + chunk.len() > BODY_LIMIT {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        Ok(Err(code)) => return text(code, "cannot read the request body\n"),
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "the request body came too slowly\n",
            );
        }
    };
    busy.store(true, Ordering::Release);
    let answer = receive(rx, parts.method, parts.headers, body).await;
    busy.store(false, Ordering::Release);
    answer
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

async fn receive(rx: Arc<Receiver>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
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
                // The shared dedupe record is unreachable: not accepted, so Slack retries.
                Ok(_) if p.take_held() => text(StatusCode::SERVICE_UNAVAILABLE, "retry later\n"),
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
