//! Reading a Web API request the way Slack does: where the token came from, which body
//! encoding was used, and whether each argument is spelled the way Slack accepts it.
//!
//! Nothing here touches the workspace; it turns raw HTTP parts into a [`Parsed`] request, and
//! [`validate`] checks the arguments against the action catalog. Problems become an
//! [`ApiError`] whose `rejected` reason ends up in the request log, so tests can tell *why* a
//! client's request was refused.

use crate::catalog::{Action, GroupKind, ParamType};
use axum::http::{HeaderMap, Method, Uri, header};
use serde_json::{Map, Value, json};

/// The emulator's tokens and what each one may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Bot,
    /// A bot token that was only granted `chat:write`.
    LimitedBot,
    User,
    App,
}

impl TokenKind {
    pub fn classify(token: &str) -> Option<TokenKind> {
        use super::tokens;
        match token {
            tokens::BOT => Some(TokenKind::Bot),
            tokens::LIMITED_BOT => Some(TokenKind::LimitedBot),
            tokens::USER => Some(TokenKind::User),
            tokens::APP => Some(TokenKind::App),
            _ => None,
        }
    }

    /// The kind as the request log reports it.
    pub fn log_name(self) -> &'static str {
        match self {
            TokenKind::Bot | TokenKind::LimitedBot => "bot",
            TokenKind::User => "user",
            TokenKind::App => "app",
        }
    }

    pub fn is_bot(self) -> bool {
        matches!(self, TokenKind::Bot | TokenKind::LimitedBot)
    }
}

/// Where the token travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSource {
    Bearer,
    Body,
    Query,
    None,
}

impl AuthSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthSource::Bearer => "bearer",
            AuthSource::Body => "body",
            AuthSource::Query => "query",
            AuthSource::None => "none",
        }
    }
}

/// How the arguments were encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A GET, or a POST without a body.
    None,
    Form,
    Json,
    Multipart,
}

/// A Slack error answer: `{"ok": false, "error": code, ...extra}`. `rejected` is set when the
/// request itself was malformed or not allowed (as opposed to, say, an unknown message ts),
/// and says why in the request log.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: String,
    pub extra: Map<String, Value>,
    pub rejected: Option<String>,
}

impl ApiError {
    /// A plain error caused by the workspace state.
    pub fn new(code: &str) -> ApiError {
        ApiError {
            code: code.into(),
            extra: Map::new(),
            rejected: None,
        }
    }

    /// A refusal of the request as sent; `reason` goes to the request log.
    pub fn reject(code: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            code: code.into(),
            extra: Map::new(),
            rejected: Some(reason.into()),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.into(), value);
        self
    }

    /// Adds Slack's human-readable `response_metadata.messages` line.
    pub fn with_message(self, line: String) -> ApiError {
        self.with("response_metadata", json!({ "messages": [line] }))
    }
}

/// The parts of a Web API request the pipeline needs.
pub struct Parsed {
    /// Query arguments overlaid with body arguments (the body wins).
    pub args: Map<String, Value>,
    pub body_kind: BodyKind,
    pub header_token: Option<String>,
    /// An `Authorization` header that is not `Bearer <token>`.
    pub header_malformed: bool,
    pub query_token: Option<String>,
    /// A `token` field in a form or multipart body.
    pub body_token: Option<String>,
    /// A `token` member of a JSON body, which Slack does not read.
    pub json_token: Option<String>,
    pub warnings: Vec<&'static str>,
    /// A body Slack could not read at all.
    pub error: Option<ApiError>,
}

impl Parsed {
    /// Every token value seen anywhere in the request, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        [
            &self.header_token,
            &self.query_token,
            &self.body_token,
            &self.json_token,
        ]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .cloned()
        .collect()
    }
}

/// The `Content-Type` split into its lower-cased media type and parameters.
pub struct ContentType {
    pub mime: String,
    pub charset: Option<String>,
    pub boundary: Option<String>,
}

pub fn content_type(headers: &HeaderMap) -> Option<ContentType> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = raw.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut ct = ContentType {
        mime,
        charset: None,
        boundary: None,
    };
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "charset" => ct.charset = Some(v.to_ascii_lowercase()),
                "boundary" => ct.boundary = Some(v),
                _ => {}
            }
        }
    }
    Some(ct)
}

fn form_pairs(bytes: &[u8], into: &mut Map<String, Value>) {
    for (k, v) in form_urlencoded::parse(bytes) {
        into.insert(k.into_owned(), Value::String(v.into_owned()));
    }
}

/// Reads a Web API request. Never fails: body problems land in [`Parsed::error`] so the
/// caller can still log what arrived.
/// `base64(id:secret)` from a Basic `Authorization` header.
fn basic_credentials(b64: &str) -> Option<(String, String)> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub fn parse(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Parsed {
    let mut p = Parsed {
        args: Map::new(),
        body_kind: BodyKind::None,
        header_token: None,
        header_malformed: false,
        query_token: None,
        body_token: None,
        json_token: None,
        warnings: Vec::new(),
        error: None,
    };
    if let Some(q) = uri.query() {
        form_pairs(q.as_bytes(), &mut p.args);
        p.query_token = p
            .args
            .get("token")
            .and_then(Value::as_str)
            .map(String::from);
    }
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let h = h.to_str().unwrap_or("");
        match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                p.header_token = Some(t.trim().to_string())
            }
            // OAuth exchanges may carry the app's client credentials as HTTP Basic auth (as
            // slack_sdk sends them); Slack reads them like the form fields.
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("basic") => {
                match basic_credentials(t.trim()) {
                    Some((id, secret)) => {
                        p.args.insert("client_id".into(), Value::String(id));
                        p.args.insert("client_secret".into(), Value::String(secret));
                    }
                    None => p.header_malformed = true,
                }
            }
            _ => p.header_malformed = true,
        }
    }
    // Slack reads the body of a POST only; a GET's arguments are its query string.
    if *method != Method::POST || body.is_empty() {
        return p;
    }
    let Some(ct) = content_type(headers) else {
        p.error = Some(ApiError::reject(
            "missing_post_type",
            "POST body sent without a Content-Type",
        ));
        return p;
    };
    if let Some(cs) = &ct.charset
        && cs != "utf-8"
        && cs != "utf8"
        && cs != "iso-8859-1"
    {
        p.error = Some(ApiError::reject(
            "invalid_charset",
            format!("unsupported charset `{cs}`"),
        ));
        return p;
    }
    match ct.mime.as_str() {
        // Slack also takes text/plain; it reads such a body as form fields.
        "application/x-www-form-urlencoded" | "text/plain" => {
            p.body_kind = BodyKind::Form;
            if ct.charset.is_some() {
                p.warnings.push("superfluous_charset");
            }
            let mut fields = Map::new();
            form_pairs(body, &mut fields);
            p.body_token = fields
                .get("token")
                .and_then(Value::as_str)
                .map(String::from);
            p.args.extend(fields);
        }
        "application/json" => {
            p.body_kind = BodyKind::Json;
            if ct.charset.is_none() {
                p.warnings.push("missing_charset");
            }
            match serde_json::from_slice::<Value>(body) {
                Err(e) => {
                    p.error = Some(ApiError::reject(
                        "invalid_json",
                        format!("body is not valid JSON: {e}"),
                    ))
                }
                Ok(Value::Object(m)) => {
                    p.json_token = m.get("token").and_then(Value::as_str).map(String::from);
                    for (k, v) in m {
                        p.args.insert(k, v);
                    }
                }
                Ok(_) => {
                    p.error = Some(ApiError::reject(
                        "json_not_object",
                        "JSON body is not an object",
                    ))
                }
            }
        }
        "multipart/form-data" => {
            p.body_kind = BodyKind::Multipart;
            let parts = ct
                .boundary
                .as_deref()
                .and_then(|b| multipart_parts(body, b));
            match parts {
                None => {
                    p.error = Some(ApiError::reject(
                        "invalid_form_data",
                        "multipart body could not be read (missing or wrong boundary)",
                    ))
                }
                Some(parts) => {
                    for part in parts {
                        let Some(name) = part.name else { continue };
                        let value = match part.filename {
                            Some(f) => json!(format!("[file {f}: {} bytes]", part.data.len())),
                            None => json!(String::from_utf8_lossy(part.data)),
                        };
                        if name == "token" {
                            p.body_token = value.as_str().map(String::from);
                        }
                        p.args.insert(name, value);
                    }
                }
            }
        }
        other => {
            p.error = Some(ApiError::reject(
                "invalid_post_type",
                format!("unsupported Content-Type `{other}`"),
            ))
        }
    }
    p
}

/// One part of a `multipart/form-data` body.
pub struct Part<'a> {
    pub name: Option<String>,
    pub filename: Option<String>,
    pub data: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Splits a multipart body; `None` when the boundary never appears.
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut pos = find(body, delim, 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Some(parts);
        }
        // Skip the line break after the delimiter.
        let start = find(body, b"\r\n", pos)? + 2;
        let head_end = find(body, b"\r\n\r\n", start)?;
        let next = find(body, delim, head_end + 4)?;
        let mut data_end = next;
        if data_end >= 2 && &body[data_end - 2..data_end] == b"\r\n" {
            data_end -= 2;
        }
        let head = String::from_utf8_lossy(&body[start..head_end]);
        let mut part = Part {
            name: None,
            filename: None,
            data: &body[(head_end + 4).min(data_end)..data_end],
        };
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for attr in v.split(';') {
                if let Some((ak, av)) = attr.split_once('=') {
                    let av = av.trim().trim_matches('"').to_string();
                    match ak.trim() {
                        "name" => part.name = Some(av),
                        "filename" => part.filename = Some(av),
                        _ => {}
                    }
                }
            }
        }
        parts.push(part);
        pos = next + delim.len();
    }
}

/// Replaces every secret, raw or percent-encoded, with `[redacted]`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "[redacted]");
        let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
        if encoded != *s {
            out = out.replace(&encoded, "[redacted]");
        }
    }
    out
}

/// Arguments with Slack's lenient readers: form strings and JSON values both work.
pub struct Args(pub Map<String, Value>);

impl Args {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// The argument as text (numbers and booleans as written, JSON values re-serialised).
    pub fn str(&self, k: &str) -> Option<String> {
        match self.get(k)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Like [`Args::str`], treating an empty string as absent.
    pub fn text(&self, k: &str) -> Option<String> {
        self.str(k).filter(|s| !s.is_empty())
    }

    pub fn bool(&self, k: &str) -> Option<bool> {
        match self.get(k)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_i64() != Some(0)),
            Value::String(s) => match s.as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn int(&self, k: &str) -> Option<i64> {
        match self.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A structured argument: JSON text in a form, or a native JSON value.
    pub fn json(&self, k: &str) -> Option<Value> {
        match self.get(k)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }

    /// A list of IDs: a JSON array, a JSON array as text, or a comma list. Elements are kept
    /// as sent (a stray space stays and then fails the lookup, as on Slack).
    pub fn list(&self, k: &str) -> Vec<String> {
        let as_strings = |a: &Vec<Value>| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect()
        };
        match self.get(k) {
            None => Vec::new(),
            Some(Value::Array(a)) => as_strings(a),
            Some(Value::String(s)) if s.starts_with('[') => match serde_json::from_str(s) {
                Ok(Value::Array(a)) => as_strings(&a),
                _ => vec![s.clone()],
            },
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(String::from).collect(),
            Some(other) => vec![other.to_string()],
        }
    }
}

/// Form and query argument names must be plain words: Slack refuses PHP-style `a[0]` arrays
/// (`invalid_array_arg`) and other odd names (`invalid_arg_name`).
pub fn check_arg_names(args: &Map<String, Value>) -> Result<(), ApiError> {
    for name in args.keys() {
        if name.contains('[') {
            return Err(ApiError::reject(
                "invalid_array_arg",
                format!("argument name `{}` uses PHP-style array syntax", clip(name)),
            ));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::reject(
                "invalid_arg_name",
                format!("malformed argument name `{}`", clip(name)),
            ));
        }
    }
    Ok(())
}

/// st2 plumbing parameters that are never Slack arguments.
fn is_plumbing(name: &str) -> bool {
    matches!(name, "end_point" | "http_method" | "token")
}

/// Array parameters that Slack also takes as a comma list of IDs (`C1,C2`).
fn takes_id_list(name: &str) -> bool {
    name.ends_with("_ids")
        || matches!(
            name,
            "ids" | "channels" | "users" | "emails" | "scopes" | "usergroups" | "types"
        )
}

fn is_id_list(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@+:".contains(&b))
        })
}

/// Checks arguments against the catalog the way Slack's own parser would: booleans spelled
/// `true`/`false`/`1`/`0`, structured values as real JSON (never a Python or Ruby repr), ID
/// lists without spaces, required parameters present, and the one-of groups.
pub fn validate(action: &Action, args: &Args) -> Result<(), ApiError> {
    for p in action.params.iter().filter(|p| !is_plumbing(p.name)) {
        let Some(v) = args.get(p.name) else {
            if p.required {
                return Err(ApiError::reject(
                    "invalid_arguments",
                    format!("missing required argument `{}`", p.name),
                )
                .with_message(format!("[ERROR] missing required field: {}", p.name)));
            }
            continue;
        };
        if let Err(why) = check_type(p.name, p.ty, v) {
            let code = match p.ty {
                _ if p.name == "blocks" => "invalid_blocks",
                ParamType::Array if p.name.contains("channel") => "channel_not_found",
                _ => "invalid_arguments",
            };
            return Err(
                ApiError::reject(code, format!("argument `{}`: {why}", p.name))
                    .with_message(format!("[ERROR] {why} [json-pointer:/{}]", p.name)),
            );
        }
    }
    for g in action.arg_groups {
        let set: Vec<&str> = g
            .args
            .iter()
            .copied()
            .filter(|a| args.text(a).is_some())
            .collect();
        let names = g.args.join(", ");
        let failed = match g.kind {
            GroupKind::OneOf => set.is_empty().then(|| {
                let code = if g.args.contains(&"text") {
                    "no_text"
                } else {
                    "invalid_arguments"
                };
                (code, format!("needs one of: {names}"))
            }),
            GroupKind::AtMostOne => (set.len() > 1).then(|| {
                let code = if g.args.contains(&"markdown_text") {
                    "markdown_text_conflict"
                } else {
                    "invalid_arguments"
                };
                (code, format!("only one of {names} may be set"))
            }),
            GroupKind::ExactlyOne => (set.len() != 1).then(|| {
                (
                    "invalid_arguments",
                    format!("needs exactly one of: {names}"),
                )
            }),
        };
        if let Some((code, why)) = failed {
            return Err(ApiError::reject(code, why));
        }
    }
    Ok(())
}

fn check_type(name: &str, ty: ParamType, v: &Value) -> Result<(), String> {
    let s = match v {
        Value::String(s) => s.as_str(),
        Value::Bool(_) if ty == ParamType::Boolean => return Ok(()),
        Value::Number(n) => {
            return match ty {
                ParamType::Boolean if n.as_i64() == Some(0) || n.as_i64() == Some(1) => Ok(()),
                ParamType::Integer if n.is_i64() || n.is_u64() => Ok(()),
                ParamType::Number | ParamType::String => Ok(()),
                _ => Err(format!("expected {}, got the number {n}", ty.as_str())),
            };
        }
        Value::Array(_) if ty == ParamType::Array => return Ok(()),
        Value::Object(_) if ty == ParamType::Object => return Ok(()),
        // JSON strings for string parameters are fine; other shapes are taken as given.
        _ => return Ok(()),
    };
    match ty {
        ParamType::String => Ok(()),
        ParamType::Boolean => match s {
            "true" | "false" | "1" | "0" => Ok(()),
            _ => Err(format!(
                "boolean must be true, false, 1 or 0, got `{}`",
                clip(s)
            )),
        },
        ParamType::Integer => s
            .parse::<i64>()
            .map(drop)
            .map_err(|_| format!("expected an integer, got `{}`", clip(s))),
        ParamType::Number => s
            .parse::<f64>()
            .map(drop)
            .map_err(|_| format!("expected a number, got `{}`", clip(s))),
        ParamType::Array => {
            if takes_id_list(name) && is_id_list(s) {
                return Ok(());
            }
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(_)) => Ok(()),
                Ok(_) => Err(format!("expected a JSON array, got `{}`", clip(s))),
                Err(_) if takes_id_list(name) => Err(format!(
                    "expected a comma-separated list of IDs without spaces or a JSON array, got `{}`",
                    clip(s)
                )),
                Err(e) => Err(format!("not valid JSON ({e}): `{}`", clip(s))),
            }
        }
        ParamType::Object => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(_)) => Ok(()),
            Ok(_) => Err(format!("expected a JSON object, got `{}`", clip(s))),
            Err(e) => Err(format!("not valid JSON ({e}): `{}`", clip(s))),
        },
    }
}

/// Keeps log reasons short.
fn clip(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    }
}
