//! The Web API pipeline: `/api/<method>` requests go through the same checks Slack makes, in
//! a fixed order, before a method handler (in `methods.rs` and `files.rs`) sees them:
//!
//! 1. injected faults (they stand in for the network and Slack's front end);
//! 2. a token in the query string (`invalid_auth`; Slack refuses it for modern apps);
//! 3. an unreadable body (`missing_post_type`, `invalid_post_type`, `invalid_json`, ...);
//! 4. unknown (`unknown_method`) and retired (`method_deprecated`) methods;
//! 5. a JSON body on a method that only takes forms (`invalid_arguments`);
//! 6. the token: missing, unknown, wrong kind, missing scope;
//! 7. argument spelling against the catalog (`invalid_arguments`, `invalid_blocks`, ...).
//!
//! Every answer is HTTP 200 with `application/json; charset=utf-8`, except injected faults.

use super::control::{self, Record, Surface};
use super::request::{self, ApiError, Args, AuthSource, BodyKind, Parsed, TokenKind};
use super::state::{BOT_USER_ID, OWNER_ID, Workspace};
use super::{Shared, json_response, methods};
use crate::catalog::{self, Action, Status};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::{Arc, MutexGuard, OnceLock};

/// What a method handler gets: the checked request and the server state.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub args: Args,
    pub token: Option<TokenKind>,
    /// Slack warnings to add to the answer (`warning` and `response_metadata.warnings`).
    pub warnings: Vec<&'static str>,
    /// Remarks for the request log.
    pub notes: Vec<String>,
}

/// A method handler: the fields of an `ok: true` answer, or an error.
pub type Handler = fn(&mut Ctx) -> Result<Map<String, Value>, ApiError>;

impl<'a> Ctx<'a> {
    /// The user id behind the token.
    pub fn caller(&self) -> &'static str {
        match self.token {
            Some(TokenKind::User) => OWNER_ID,
            Some(TokenKind::Bot | TokenKind::LimitedBot) => BOT_USER_ID,
            _ => "",
        }
    }

    pub fn is_bot(&self) -> bool {
        self.token.is_some_and(TokenKind::is_bot)
    }

    pub fn lock(&self) -> MutexGuard<'a, Workspace> {
        self.shared.lock()
    }

    pub fn base_url(&self) -> &'a str {
        &self.shared.base_url
    }

    /// Whether the token holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.token
            .is_some_and(|k| granted_scopes(k).split(',').any(|s| s == scope))
    }

    /// Registers a single-use WebSocket ticket handed out by `apps.connections.open` or
    /// `rtm.connect`.
    pub fn issue_ticket(&self, ticket: &str, kind: super::socket::Kind) {
        self.shared.sockets.issue_ticket(ticket, kind);
    }

    /// The page size: `limit` when given and positive, else the default; never more than
    /// the server's cap (1,000 unless `--max-page-size` lowers it).
    pub fn limit(&self) -> usize {
        let n = match self.args.int("limit") {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => self.shared.page_size,
        };
        n.min(self.shared.max_page_size)
    }

    /// The offset a list cursor points at (`kind:offset`, base64), 0 without a cursor.
    pub fn offset(&self, kind: &str, len: usize) -> Result<usize, ApiError> {
        match self.args.text("cursor") {
            None => Ok(0),
            Some(c) => decode_cursor(&c, kind)
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&n| n <= len)
                .ok_or_else(|| ApiError::new("invalid_cursor")),
        }
    }

    /// One page of `items` plus its `next_cursor` ("" on the last page).
    pub fn page<T: Clone>(&self, kind: &str, items: &[T]) -> Result<(Vec<T>, String), ApiError> {
        let start = self.offset(kind, items.len())?;
        let end = (start + self.limit()).min(items.len());
        let next = if end < items.len() {
            encode_cursor(kind, &end.to_string())
        } else {
            String::new()
        };
        Ok((items[start..end].to_vec(), next))
    }
}

/// The standard base64 alphabet, for decoding cursors (encoding is `transport::encode::base64`).
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Cursors look like Slack's: base64 of `kind:position` (e.g. `dXNlcjoxMA==` is `user:10`).
pub fn encode_cursor(kind: &str, position: &str) -> String {
    crate::transport::encode::base64(format!("{kind}:{position}").as_bytes())
}

/// The position inside a cursor of the given kind; `None` for anything else.
pub fn decode_cursor(cursor: &str, kind: &str) -> Option<String> {
    let raw = String::from_utf8(unbase64(cursor)?).ok()?;
    let (k, pos) = raw.split_once(':')?;
    (k == kind).then(|| pos.to_string())
}

/// All scopes any catalogued method asks of a bot / user token: what BOT and USER hold.
fn all_scopes() -> &'static (String, String) {
    static SCOPES: OnceLock<(String, String)> = OnceLock::new();
    SCOPES.get_or_init(|| {
        let collect = |f: fn(&Action) -> &'static [&'static str], extra: &[&'static str]| {
            let mut v: Vec<&str> = catalog::all().iter().flat_map(f).copied().collect();
            v.extend_from_slice(extra);
            v.sort_unstable();
            v.dedup();
            v.join(",")
        };
        // Scopes no method requires but that widen what a method may do: posting into public
        // channels the bot has not joined.
        (
            collect(|a| a.scopes_bot, &["chat:write.public"]),
            collect(|a| a.scopes_user, &[]),
        )
    })
}

fn granted_scopes(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Bot => &all_scopes().0,
        TokenKind::User => &all_scopes().1,
        TokenKind::LimitedBot => "chat:write",
        TokenKind::App => "connections:write",
    }
}

/// The methods the Web API serves: catalog actions named after the Slack method they call
/// (hand-written actions such as `post_message` have other names).
fn find_method(name: &str) -> Option<&'static Action> {
    catalog::find(name).filter(|a| a.method == name)
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&shared, &name, &method, &uri, &headers, &body).await
}

/// `/api` or `/api/` with no method name.
pub async fn handle_no_method(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&shared, "", &method, &uri, &headers, &body).await
}

/// The token that counts, where it came from, and where the log should say it came from
/// (a token in the query string is always what the log reports, since it is the problem).
fn pick_token(p: &Parsed) -> (AuthSource, Option<&str>) {
    let used = if let Some(t) = &p.header_token {
        (AuthSource::Bearer, Some(t.as_str()))
    } else if let Some(t) = &p.body_token {
        (AuthSource::Body, Some(t.as_str()))
    } else if let Some(t) = &p.json_token {
        (AuthSource::Body, Some(t.as_str()))
    } else {
        (AuthSource::None, None)
    };
    match (&p.query_token, used) {
        (Some(q), (AuthSource::None, _)) => (AuthSource::Query, Some(q.as_str())),
        (Some(_), (_, t)) => (AuthSource::Query, t),
        (None, used) => used,
    }
}

/// The arguments as the log shows them: the `token` field and every string holding a token
/// value replaced, however deeply nested.
fn redact_args(args: &Map<String, Value>, secrets: &[String]) -> Map<String, Value> {
    fn scrub(v: &mut Value, secrets: &[String]) {
        match v {
            Value::String(s) if secrets.iter().any(|t| s.contains(t.as_str())) => {
                *s = request::redact(s, secrets);
            }
            Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, secrets)),
            Value::Object(m) => m.values_mut().for_each(|x| scrub(x, secrets)),
            _ => {}
        }
    }
    let mut out = args.clone();
    if !secrets.is_empty() {
        out.values_mut().for_each(|v| scrub(v, secrets));
    }
    if out.contains_key("token") {
        out.insert("token".into(), json!("[redacted]"));
    }
    out
}

async fn run(
    shared: &Shared,
    name: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut rec = Record::new(uri.path(), method.as_str(), ct);
    rec.user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed = request::parse(method, uri, headers, body);
    let secrets = parsed.secrets();
    let (auth, token) = pick_token(&parsed);
    rec.auth = auth;
    rec.token_kind = token.map(|t| TokenKind::classify(t).map_or("unknown", TokenKind::log_name));
    rec.args = redact_args(&parsed.args, &secrets);
    rec.set_raw_body(body, |s| request::redact(s, &secrets));

    let mut rec = match control::injected(shared, uri.path(), rec, Surface::Api).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };

    // Slack limits a channel however it is spelled: count by the resolved id.
    let channel = parsed.args.get("channel").and_then(Value::as_str);
    let channel = match channel {
        Some(c) if shared.limits.active() && name == "chat.postMessage" => {
            let ws = shared.lock();
            let found = ws
                .channel_index(c)
                .or_else(|| ws.channel_by_name(c.trim_start_matches('#')));
            Some(found.map_or_else(|| c.to_string(), |i| ws.channels[i].id.clone()))
        }
        other => other.map(str::to_string),
    };
    if let Some(retry) = shared.limits.check_api(name, channel.as_deref()) {
        let mut resp = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"ok": false, "error": "ratelimited"}),
        );
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        rec.status = 429;
        rec.error = Some("ratelimited".into());
        shared.log.push(rec);
        return resp;
    }

    let mut warnings = parsed.warnings.clone();
    let (result, kind, action) = process(shared, name, parsed, &mut warnings, &mut rec.notes);

    let mut out = Map::new();
    match result {
        Ok(fields) => {
            out.insert("ok".into(), json!(true));
            out.extend(fields);
        }
        Err(e) => {
            out.insert("ok".into(), json!(false));
            out.insert("error".into(), json!(e.code));
            out.extend(e.extra);
            rec.error = Some(e.code);
            rec.rejected = e.rejected;
        }
    }
    if !warnings.is_empty() {
        warnings.dedup();
        out.insert("warning".into(), json!(warnings.join(",")));
        let meta = out.entry("response_metadata").or_insert_with(|| json!({}));
        if let Value::Object(m) = meta {
            m.insert("warnings".into(), json!(warnings));
        }
    }
    let mut resp = json_response(StatusCode::OK, &Value::Object(out));
    if let Some(k) = kind
        && let Ok(v) = HeaderValue::from_str(granted_scopes(k))
    {
        resp.headers_mut().insert("x-oauth-scopes", v);
    }
    if let Some(a) = action {
        // Without a usable token (invalid_auth, not_authed) every scope the method accepts
        // is named, whichever kind of token would carry it.
        let candidates: Vec<&str> = match kind {
            Some(TokenKind::User) => a.scopes_user.to_vec(),
            Some(_) => a.scopes_bot.to_vec(),
            None => a.scopes_bot.iter().chain(a.scopes_user).copied().collect(),
        };
        let mut accepted: Vec<&str> = Vec::with_capacity(candidates.len());
        for s in candidates {
            if !accepted.contains(&s) {
                accepted.push(s);
            }
        }
        if !accepted.is_empty()
            && let Ok(v) = HeaderValue::from_str(&accepted.join(","))
        {
            resp.headers_mut().insert("x-accepted-oauth-scopes", v);
        }
    }
    shared.log.push(rec);
    resp
}

type Outcome = (
    Result<Map<String, Value>, ApiError>,
    Option<TokenKind>,
    Option<&'static Action>,
);

fn process(
    shared: &Shared,
    name: &str,
    p: Parsed,
    warnings: &mut Vec<&'static str>,
    notes: &mut Vec<String>,
) -> Outcome {
    if p.query_token.is_some() {
        return (
            Err(ApiError::reject("invalid_auth", "token in query string")),
            None,
            None,
        );
    }
    if let Some(e) = p.error {
        return (Err(e), None, None);
    }
    let Some(action) = find_method(name) else {
        let hint = catalog::suggest(name, 1);
        let reason = match hint.first() {
            Some(h) => format!("unknown method `{name}` (did you mean `{h}`?)"),
            None => format!("unknown method `{name}`"),
        };
        return (Err(ApiError::reject("unknown_method", reason)), None, None);
    };
    let fail = |e: ApiError, kind: Option<TokenKind>| (Err(e), kind, Some(action));
    if action.status == Status::Retired {
        let mut reason = format!("{name} is retired");
        if let Some(r) = action.replacement {
            reason.push_str(&format!("; use {r}"));
        }
        return fail(ApiError::reject("method_deprecated", reason), None);
    }
    if p.body_kind == BodyKind::Json && !action.json_body {
        return fail(
            ApiError::reject(
                "invalid_arguments",
                format!("json body not accepted by {name}"),
            ),
            None,
        );
    }
    if p.header_malformed && p.body_token.is_none() {
        return fail(
            ApiError::reject(
                "invalid_auth",
                "Authorization header is not `Bearer <token>`",
            ),
            None,
        );
    }
    let token = p.header_token.as_deref().or(p.body_token.as_deref());
    let kind = match token {
        None if p.json_token.is_some() && action.needs_token() => {
            return fail(
                ApiError::reject(
                    "not_authed",
                    "token in JSON body; Slack reads it only from the Authorization header",
                ),
                None,
            );
        }
        None if action.needs_token() => {
            return fail(ApiError::reject("not_authed", "no token"), None);
        }
        None => None,
        Some(t) => match TokenKind::classify(t) {
            Some(k) => Some(k),
            None if action.needs_token() => {
                return fail(
                    ApiError::reject("invalid_auth", "token not issued by the emulator"),
                    None,
                );
            }
            // Token-less methods ignore whatever token comes along.
            None => None,
        },
    };
    if let Some(k) = kind
        && let Err(e) = check_token_kind(action, k)
    {
        return fail(e, kind);
    }
    if action.status == Status::Deprecated {
        warnings.push("method_deprecated");
    }
    if p.body_kind != BodyKind::Json
        && let Err(e) = request::check_arg_names(&p.args)
    {
        return fail(e, kind);
    }
    let args = Args(p.args);
    if let Err(e) = request::validate(action, &args) {
        return fail(e, kind);
    }
    let mut ctx = Ctx {
        shared,
        args,
        token: kind,
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let result = match methods::handler(name) {
        Some(h) => h(&mut ctx),
        None => {
            let mut m = Map::new();
            if action.is_cursor_paginated() {
                m.insert("response_metadata".into(), json!({"next_cursor": ""}));
            }
            Ok(m)
        }
    };
    warnings.extend(ctx.warnings);
    notes.extend(ctx.notes);
    (result, kind, Some(action))
}

/// Token kinds and scopes, as Slack checks them before looking at arguments.
fn check_token_kind(action: &Action, kind: TokenKind) -> Result<(), ApiError> {
    let name = action.name;
    let wrong = |why: String| Err(ApiError::reject("not_allowed_token_type", why));
    if kind == TokenKind::App && name != "apps.connections.open" {
        return wrong(format!(
            "app-level token used for {name}; it is only good for apps.connections.open"
        ));
    }
    if name == "apps.connections.open" && kind != TokenKind::App {
        return wrong("apps.connections.open needs an app-level (xapp-) token".into());
    }
    if kind.is_bot() && action.tokens == ["user"] {
        return wrong(format!("{name} needs a user token"));
    }
    if kind.is_bot() && matches!(name, "rtm.connect" | "rtm.start") {
        return wrong("granular bot tokens cannot use RTM; use Socket Mode".into());
    }
    if kind == TokenKind::LimitedBot
        && !action.scopes_bot.is_empty()
        && !action.scopes_bot.contains(&"chat:write")
    {
        // Slack names every scope that would do, as a comma list.
        let needed = action.scopes_bot.join(",");
        return Err(ApiError::reject(
            "missing_scope",
            format!("{name} needs one of the scopes {needed}"),
        )
        .with("needed", json!(needed))
        .with("provided", json!("chat:write")));
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::transport::encode::base64;

    #[test]
    fn base64_round_trips_and_matches_slack_style() {
        assert_eq!(encode_cursor("user", "10"), "dXNlcjoxMA==");
        for s in ["", "a", "ab", "abc", "next_ts:1700000000000100"] {
            assert_eq!(unbase64(&base64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(decode_cursor("dXNlcjoxMA==", "user").as_deref(), Some("10"));
        assert_eq!(decode_cursor("dXNlcjoxMA==", "channel"), None);
        assert_eq!(decode_cursor("!!", "user"), None);
    }
}
