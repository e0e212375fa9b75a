//! The Web API client: one request, done right. Bearer header only; a timeout on every
//! request; HTTP 429 waits `Retry-After` and retries (bounded); transient failures are retried
//! with backoff only where a retry cannot post twice.
//!
//! Retry policy, explicitly:
//! * 429: always retried after `Retry-After` (Slack did not process the call).
//! * Connection refused / DNS / TLS set-up failures: always retried (nothing was sent).
//! * Timeouts, dropped connections, HTTP 5xx: retried only for reads (methods Slack prefers as
//!   GET, plus `api.test`/`auth.test`), or for writes when the caller opts in
//!   (`--retry-writes`): Slack has no idempotency key, so a resent `chat.postMessage` after an
//!   ambiguous failure can post twice.

use super::encode::Body;
use super::pace::{self, Pacer, Slot};
use crate::error::{Error, Result};
use crate::redact::Secret;
use serde_json::Value;
use std::time::Duration;

/// How long a token's workspace is remembered (tokens rarely change workspace; a revoked
/// one fails its own call anyway).
const WORKSPACE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long channel ids by name are remembered (a renamed channel keeps its id; a new name
/// is looked up after this).
const CHANNEL_TTL: Duration = Duration::from_secs(3600);
/// At most this many `conversations.list` pages (of 1000) to resolve a channel name.
const LIST_PAGES: usize = 10;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL ending in `/`, e.g. `https://slack.com/api/`.
    pub api_url: String,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Longest single `Retry-After` wait slackctl accepts before giving up.
    pub max_retry_after: Duration,
    /// Log requests and responses (redacted) to stderr.
    pub verbose: bool,
    /// Proactive pacing shared across processes; None sends at once.
    pub pacer: Option<super::pace::Pacer>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            api_url: crate::config::DEFAULT_API_URL.into(),
            timeout: Duration::from_secs(30),
            retries: 3,
            max_retry_after: Duration::from_secs(120),
            verbose: false,
            pacer: None,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    /// For the API base URL. When that is plain `http://` (the emulator, a local proxy) it is
    /// built without TLS roots: loading the system's CA store costs a few milliseconds of every
    /// run, and nothing there needs it.
    http: reqwest::Client,
    /// With TLS roots, built on first use when `http` has none and an `https://` URL comes up
    /// (a webhook, an upload URL).
    tls: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
    plain_only: bool,
    opts: ClientOptions,
}

/// One Web API call.
pub struct Request<'a> {
    pub method: &'a str,
    pub body: Body,
    pub token: Option<&'a Secret>,
    /// Safe to resend after an ambiguous failure.
    pub idempotent: bool,
    /// The rate-limit window this call takes a slot from.
    pub pace: Option<super::pace::Slot>,
}

/// Slack's answer to a successful (`ok: true`) call.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    /// `X-OAuth-Scopes`: the scopes the token has.
    pub scopes: Option<String>,
}

enum Attempt {
    Done(Result<Response>),
    Retry { wait: Duration, why: String },
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client> {
        super::install_crypto_provider();
        let plain_only = opts.api_url.starts_with("http://");
        let http = build(&opts, !plain_only)?;
        Ok(Client {
            http,
            tls: Default::default(),
            plain_only,
            opts,
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// An HTTP client for `url`, for calls that are not Web API methods (webhooks, uploads).
    pub fn http_for(&self, url: &str) -> Result<reqwest::Client> {
        if !self.plain_only || !url.starts_with("https://") {
            return Ok(self.http.clone());
        }
        if let Some(c) = self.tls.get() {
            return Ok(c.clone());
        }
        let c = build(&self.opts, true)?;
        Ok(self.tls.get_or_init(|| c).clone())
    }

    /// Calls a Web API method; `ok: false` becomes an error carrying Slack's answer.
    pub async fn call(&self, req: &Request<'_>) -> Result<Response> {
        let mut attempt = 0u32;
        let pace = match (&self.opts.pacer, &req.pace) {
            (Some(p), Some(slot)) => Some(self.resolve(p, slot, req.token).await),
            _ => None,
        };
        loop {
            if let (Some(p), Some(slot)) = (&self.opts.pacer, &pace) {
                p.wait(slot).await?;
            }
            match self.attempt(req).await {
                Attempt::Done(r) => return r,
                Attempt::Retry { wait, why } => {
                    if let (Some(p), Some(slot), true) =
                        (&self.opts.pacer, &pace, why.contains("429"))
                    {
                        // Feed the 429 back so every process holds off this key.
                        p.penalize(slot, wait);
                    }
                    if attempt >= self.opts.retries {
                        return Err(Error::failed(format!(
                            "{}: {why}; gave up after {} attempt(s)",
                            req.method,
                            attempt + 1
                        ))
                        .hint("raise --retries or try again later"));
                    }
                    attempt += 1;
                    crate::log::warn(&format!(
                        "{}: {why}; retrying in {:.1}s (retry {attempt} of {})",
                        req.method,
                        wait.as_secs_f64(),
                        self.opts.retries
                    ));
                    // With pacing, the penalty above makes the next slot wait instead.
                    if self.opts.pacer.is_none() || pace.is_none() || !why.contains("429") {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    /// Turns a slot's key from token + channel-as-given into workspace + channel id, so
    /// every token of a workspace and every spelling of a channel share one bucket. Both
    /// facts are learned once (`auth.test`; `conversations.list` for a channel name) and
    /// cached for every process; when a lookup fails the slot keeps its stand-in key.
    async fn resolve(&self, p: &Pacer, slot: &Slot, token: Option<&Secret>) -> Slot {
        let Some(scope) = &slot.scope else {
            return slot.clone();
        };
        let _one_at_a_time = p.resolving().await;
        let team_key = format!("team|{}", scope.who);
        let team = match p.lookup(&team_key) {
            Some(t) => Some(t),
            None => {
                let body = self.lookup_call("auth.test", Vec::new(), token).await;
                let t = body.and_then(|b| b["team_id"].as_str().map(str::to_string));
                if let Some(t) = &t {
                    p.remember(&[(team_key, t.clone())], WORKSPACE_TTL);
                }
                t
            }
        };
        let Some(team) = team else {
            return slot.clone();
        };
        let mut key = format!("{team}|{}", scope.method);
        if let Some(ch) = &scope.channel {
            key.push('|');
            key.push_str(&self.channel_id(p, &team, ch, token).await);
        }
        Slot {
            key,
            scope: None,
            ..slot.clone()
        }
    }

    /// The id of a channel given by name (or the name, when no listing has it).
    async fn channel_id(&self, p: &Pacer, team: &str, ch: &str, token: Option<&Secret>) -> String {
        if pace::is_conversation_id(ch.trim()) {
            return ch.trim().to_string();
        }
        let name = pace::channel_name(ch);
        let key = |n: &str| format!("channel|{team}|{n}");
        if let Some(id) = p.lookup(&key(&name)) {
            return id;
        }
        let listed = format!("channels-listed|{team}");
        if p.lookup(&listed).is_none() {
            // One listing caches every name of the workspace for every process.
            let mut found: Vec<(String, String)> = Vec::new();
            let mut cursor = String::new();
            let slot = Slot {
                key: format!("{team}|conversations.list"),
                limit: p.limits.for_call(
                    crate::catalog::find("conversations.list").expect("catalogued"),
                    "conversations.list",
                ),
                label: "conversations.list".into(),
                scope: None,
            };
            for _ in 0..LIST_PAGES {
                if p.wait(&slot).await.is_err() {
                    break;
                }
                let mut args = vec![
                    (
                        "types".to_string(),
                        "public_channel,private_channel".to_string(),
                    ),
                    ("exclude_archived".into(), "true".into()),
                    ("limit".into(), "1000".into()),
                ];
                if !cursor.is_empty() {
                    args.push(("cursor".into(), cursor.clone()));
                }
                let Some(page) = self.lookup_call("conversations.list", args, token).await else {
                    break;
                };
                for c in page["channels"].as_array().into_iter().flatten() {
                    if let (Some(n), Some(id)) = (c["name"].as_str(), c["id"].as_str()) {
                        found.push((key(n), id.to_string()));
                    }
                }
                cursor = super::paginate::next_cursor(&page).unwrap_or_default();
                if cursor.is_empty() {
                    found.push((listed.clone(), "1".into()));
                    break;
                }
            }
            p.remember(&found, CHANNEL_TTL);
            if let Some(id) = p.lookup(&key(&name)) {
                return id;
            }
        }
        // Not listed (a DM name, a channel the token cannot see): key it by its name, and do
        // not look again in this process.
        let fallback = format!("#{name}");
        p.note(&key(&name), &fallback);
        fallback
    }

    /// One unpaced, unretried form POST for a lookup the pacer needs; `None` on any failure.
    async fn lookup_call(
        &self,
        method: &str,
        args: Vec<(String, String)>,
        token: Option<&Secret>,
    ) -> Option<Value> {
        let req = Request {
            method,
            body: Body::Form(args),
            token,
            idempotent: true,
            pace: None,
        };
        match self.attempt(&req).await {
            Attempt::Done(Ok(r)) => Some(r.body),
            _ => None,
        }
    }

    fn backoff(&self, attempt_hint: u32) -> Duration {
        // 0.5 s, 1 s, 2 s … with up to 25 % jitter so parallel runs do not retry in step.
        let base = 500u64 << attempt_hint.min(6);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        Duration::from_millis(base + nanos % (base / 4 + 1))
    }

    async fn attempt(&self, req: &Request<'_>) -> Attempt {
        let url = format!("{}{}", self.opts.api_url, req.method);
        let mut builder = match &req.body {
            Body::Query(pairs) => {
                let q = encode_pairs(pairs);
                let full = if q.is_empty() {
                    url.clone()
                } else {
                    format!("{url}?{q}")
                };
                self.http.get(full)
            }
            Body::Form(pairs) => self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_pairs(pairs)),
            Body::BasicForm(pairs, creds) => self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", creds.header())
                .body(encode_pairs(pairs)),
            Body::Json(map) => self
                .http
                .post(&url)
                .header("content-type", "application/json; charset=utf-8")
                .body(serde_json::to_vec(map).unwrap_or_default()),
        };
        if let Some(t) = req
            .token
            .filter(|_| !matches!(req.body, Body::BasicForm(..)))
        {
            builder = builder.header("authorization", format!("Bearer {}", t.expose()));
        }
        if self.opts.verbose {
            crate::log::debug(&format!("-> {url} ({})", req.body.describe()));
        }
        let resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => return self.classify_send_error(req, e),
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let scopes = header("x-oauth-scopes");
        let retry_after = header("retry-after");
        if self.opts.verbose {
            crate::log::debug(&format!("<- HTTP {status} {content_type}"));
        }
        if status == 429 {
            let secs = retry_after
                .as_deref()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            // A NaN or absurd Retry-After must not abort (security hook).
            let wait = crate::limits::retry_after(secs, Duration::MAX);
            if wait > self.opts.max_retry_after {
                return Attempt::Done(Err(Error::failed(format!(
                    "{}: rate limited by Slack (HTTP 429, Retry-After {secs}s)",
                    req.method
                ))
                .hint("the wait is longer than slackctl accepts; try again later or lower the request rate")));
            }
            return Attempt::Retry {
                wait,
                why: format!("rate limited (HTTP 429, Retry-After {secs}s)"),
            };
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return self.classify_send_error(req, e),
        };
        if status >= 500 && req.idempotent {
            return Attempt::Retry {
                wait: self.backoff(0),
                why: format!("Slack answered HTTP {status}"),
            };
        }
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(v) if content_type.contains("json") || status == 200 => v,
            _ => {
                let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                let excerpt = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
                let mut e = Error::failed(format!(
                    "{}: Slack answered HTTP {status} ({}) instead of JSON: {excerpt}",
                    req.method,
                    if content_type.is_empty() {
                        "no content type"
                    } else {
                        &content_type
                    }
                ));
                if status >= 500 {
                    e = e.hint("Slack had trouble; for writes slackctl does not resend (it could post twice); check the channel, then retry or use --retry-writes");
                }
                return Attempt::Done(Err(e));
            }
        };
        let ok = body
            .get("ok")
            .and_then(Value::as_bool)
            .unwrap_or(status == 200);
        warn_slack_warnings(req.method, &body);
        if ok {
            return Attempt::Done(Ok(Response {
                status,
                body,
                scopes,
            }));
        }
        Attempt::Done(Err(slack_error(req.method, status, body)))
    }

    fn classify_send_error(&self, req: &Request<'_>, e: reqwest::Error) -> Attempt {
        let detail = crate::redact::scrub(&error_chain(&e));
        if e.is_connect() {
            return Attempt::Retry {
                wait: self.backoff(0),
                why: format!("cannot connect ({detail})"),
            };
        }
        if req.idempotent {
            return Attempt::Retry {
                wait: self.backoff(1),
                why: format!("request failed ({detail})"),
            };
        }
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        Attempt::Done(Err(Error::failed(format!("{}: request {what} ({detail})", req.method)).hint(
            "not resent automatically: the message may or may not have been posted; check, then retry (or use --retry-writes)",
        )))
    }
}

/// Builds a reqwest client; `tls_roots: false` leaves out the system CA store (plain HTTP only).
fn build(opts: &ClientOptions, tls_roots: bool) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .user_agent(super::user_agent())
        .tcp_nodelay(true);
    if !tls_roots {
        b = b.tls_certs_only(Vec::new());
    }
    b.build()
        .map_err(|e| Error::config(format!("cannot set up the HTTP client: {e}")))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Form-encodes pairs (also used for query strings).
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// Prints Slack's `warning` / `response_metadata.warnings` / `messages` to stderr.
pub fn warn_slack_warnings(method: &str, body: &Value) {
    let mut seen: Vec<String> = Vec::new();
    if let Some(w) = body.get("warning").and_then(Value::as_str) {
        seen.extend(w.split(',').map(|s| s.trim().to_string()));
    }
    if let Some(meta) = body.get("response_metadata") {
        for key in ["warnings", "messages"] {
            for w in meta
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = w.as_str()
                    && !seen.iter().any(|x| x == s)
                {
                    seen.push(s.to_string());
                }
            }
        }
    }
    for w in seen.iter().filter(|w| !w.is_empty()) {
        crate::log::warn(&format!("Slack warning from {method}: {w}"));
    }
}

/// Builds the error for `ok: false`, naming Slack's error and what to do about it.
pub fn slack_error(method: &str, status: u16, body: Value) -> Error {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    let mut e = Error::failed(format!("{method} failed: {code} (HTTP {status})"));
    let action = crate::catalog::find(method);
    match code.as_str() {
        "missing_scope" => {
            let needed = body.get("needed").and_then(Value::as_str).unwrap_or("?");
            let provided = body.get("provided").and_then(Value::as_str).unwrap_or("?");
            e.message.push_str(&format!(": needed {needed}, provided {provided}"));
            e = e.hint(format!(
                "add the scope `{needed}` to the app (OAuth & Permissions), reinstall it, and use the new token"
            ));
        }
        "not_authed" => e = e.hint("no token was sent: set SLACK_TOKEN, action_token in the config, or pass token=…"),
        "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" => {
            e = e.hint("the token is invalid, revoked, expired or for another workspace: check SLACK_TOKEN / action_token")
        }
        "not_allowed_token_type" => {
            let tokens = action.map(|a| a.tokens).unwrap_or_default();
            e = e.hint(if tokens.is_empty() || tokens.contains(&"any") {
                "this method does not accept that kind of token".to_string()
            } else {
                // Name only the kinds that fit (security/messages hook, issue 13).
                format!("{method} needs {}", crate::run::token_kinds(tokens))
            });
        }
        "channel_not_found" | "not_in_channel" => {
            e = e.hint("pass a conversation ID (C…/G…/D…) and make sure the bot is a member (/invite @your-bot)")
        }
        "method_deprecated" | "deprecated_endpoint" | "unknown_method" => {
            if let Some(r) = action.and_then(|a| a.replacement) {
                e = e.hint(format!("Slack retired {method}; use {r}"));
            }
        }
        "invalid_blocks" => {
            for err in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = err.as_str() {
                    e = e.hint(s.to_string());
                }
            }
        }
        _ => {}
    }
    e.with_response(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_clients_build_with_the_crypto_provider() {
        // A provider regression (no process-level CryptoProvider) would fail here, not at a
        // user's first https call.
        let https = Client::new(ClientOptions::default()).unwrap();
        assert!(!https.plain_only);
        let local = Client::new(ClientOptions {
            api_url: "http://127.0.0.1:9/api/".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(local.plain_only);
        // A webhook or upload URL on https gets a client with roots, built once.
        local
            .http_for("https://hooks.slack.com/services/T/B/X")
            .unwrap();
        assert!(local.tls.get().is_some());
        local.http_for("http://127.0.0.1:9/x").unwrap();
    }
}
