//! Turns validated parameters into the body Slack expects for a method:
//!
//! * GET: a query string; POST: a JSON body (`application/json; charset=utf-8`) only when the
//!   method accepts one, else a form (`application/x-www-form-urlencoded`, no charset: Slack
//!   warns `superfluous_charset` otherwise).
//! * Verb, body kind and field encodings follow Slack's Python SDK (`slack_sdk`), which the
//!   importer reads: in forms and queries booleans are `1`/`0` (as slack_sdk sends them),
//!   numbers their decimal text, lists of IDs comma-joined without spaces, structured values
//!   (blocks, attachments, view…) and the `json_text` fields JSON text.
//! * Methods only Node's SDK knows (tag `sdk: node`) are encoded as Node does: a form with
//!   every list and object as JSON text and booleans as `true`/`false`.
//! * In JSON bodies values stay native, except lists Slack takes as one comma string.
//! * Unset parameters are absent; st2's bookkeeping parameters (`end_point`, `http_method`,
//!   `token`) are never sent; the token travels only in the `Authorization` header.

use crate::catalog::{Action, Verb};
use serde_json::{Map, Value};

/// Parameters that steer slackctl itself and are never sent to Slack.
pub const LOCAL_PARAMS: &[&str] = &["end_point", "http_method", "token"];

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// GET: arguments in the query string.
    Query(Vec<(String, String)>),
    /// POST `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// POST `application/json; charset=utf-8`.
    Json(Map<String, Value>),
    /// POST form with `client_id`/`client_secret` as HTTP Basic credentials instead of form
    /// fields, as slack_sdk sends its OAuth exchanges (tag `client_auth: basic`).
    BasicForm(Vec<(String, String)>, BasicCredentials),
}

/// The `Authorization: Basic` value; its `Debug` never shows the secret.
#[derive(Clone, PartialEq)]
pub struct BasicCredentials(String);

impl BasicCredentials {
    /// The header value, `Basic <base64(id:secret)>`.
    pub fn header(&self) -> String {
        format!("Basic {}", self.0)
    }
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicCredentials(<redacted>)")
    }
}

impl Body {
    /// Size of the encoded body, for logs.
    pub fn describe(&self) -> String {
        match self {
            Body::Query(p) => format!("query, {} argument(s)", p.len()),
            Body::Form(p) => format!("form, {} argument(s)", p.len()),
            Body::Json(m) => format!("json, {} argument(s)", m.len()),
            Body::BasicForm(p, _) => format!("form + basic auth, {} argument(s)", p.len()),
        }
    }
}

/// The verb to use: the `http_method` parameter when given, else Slack's preferred one.
pub fn verb_for(action: &Action, params: &Map<String, Value>) -> Verb {
    match params.get("http_method").and_then(Value::as_str) {
        Some(v) if v.eq_ignore_ascii_case("GET") => Verb::Get,
        Some(v) if v.eq_ignore_ascii_case("POST") => Verb::Post,
        _ => action.http_verb,
    }
}

fn tag_list(action: &Action, tag: &str) -> Vec<&'static str> {
    action
        .tag(tag)
        .map(|s| s.split(',').collect())
        .unwrap_or_default()
}

fn comma_lists(action: &Action) -> Vec<&'static str> {
    tag_list(action, "comma_lists")
}

/// Encodes the parameters of a Web API call.
pub fn encode(action: &Action, params: &Map<String, Value>, verb: Verb) -> Body {
    let lists = comma_lists(action);
    let sendable = params
        .iter()
        .filter(|(k, _)| !LOCAL_PARAMS.contains(&k.as_str()));
    if verb == Verb::Post && action.json_body {
        let mut m = Map::new();
        for (k, v) in sendable {
            let v = match v {
                Value::Array(items) if lists.contains(&k.as_str()) => {
                    Value::String(join_scalars(items))
                }
                other => other.clone(),
            };
            m.insert(k.clone(), v);
        }
        return Body::Json(m);
    }
    let node = action.tag("sdk") == Some("node");
    let json_text = tag_list(action, "json_text");
    let pairs: Vec<(String, String)> = sendable
        .map(|(k, v)| {
            let text = match v {
                Value::Bool(b) if node => b.to_string(),
                Value::Array(items) if lists.contains(&k.as_str()) => join_scalars(items),
                Value::Array(_) | Value::Object(_) if node || json_text.contains(&k.as_str()) => {
                    v.to_string()
                }
                other => form_value(other),
            };
            (k.clone(), text)
        })
        .collect();
    match verb {
        Verb::Get => Body::Query(pairs),
        Verb::Post => basic_auth(action, pairs).unwrap_or_else(Body::Form),
    }
}

/// Moves `client_id`/`client_secret` into HTTP Basic credentials where slack_sdk does so.
fn basic_auth(
    action: &Action,
    pairs: Vec<(String, String)>,
) -> Result<Body, Vec<(String, String)>> {
    if action.tag("client_auth") != Some("basic") {
        return Err(pairs);
    }
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return Err(pairs);
    };
    let rest = pairs
        .into_iter()
        .filter(|(k, _)| k != "client_id" && k != "client_secret")
        .collect();
    let creds = BasicCredentials(base64(format!("{id}:{secret}").as_bytes()));
    Ok(Body::BasicForm(rest, creds))
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Encodes one value as a form/query field.
pub fn form_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) if items.iter().all(is_scalar) => join_scalars(items),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn join_scalars(items: &[Value]) -> String {
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => s.trim().to_string(),
            other => form_value(other),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn json_for_json_methods_without_local_params() {
        let a = find("chat.postMessage").unwrap();
        let p = obj(
            json!({"channel": "C1", "text": "hi", "unfurl_links": true, "token": "xoxb-x",
            "end_point": "chat.postMessage", "http_method": "POST", "blocks": [{"type": "divider"}]}),
        );
        let Body::Json(m) = encode(a, &p, verb_for(a, &p)) else {
            panic!()
        };
        assert_eq!(
            Value::Object(m),
            json!({"channel": "C1", "text": "hi", "unfurl_links": true, "blocks": [{"type": "divider"}]})
        );
    }

    #[test]
    fn forms_encode_booleans_lists_and_structures_as_slack_expects() {
        let a = find("users.admin.invite").unwrap();
        let p = obj(json!({"email": "a@b.c", "channels": ["C1", " C2"], "set_active": false}));
        assert_eq!(
            encode(a, &p, Verb::Post),
            Body::Form(vec![
                ("email".into(), "a@b.c".into()),
                ("channels".into(), "C1,C2".into()),
                ("set_active".into(), "0".into())
            ])
        );
        assert_eq!(form_value(&json!([{"a": 1}])), r#"[{"a":1}]"#);
        assert_eq!(form_value(&json!({"k": "v"})), r#"{"k":"v"}"#);
    }

    #[test]
    fn oauth_client_credentials_go_as_basic_auth() {
        assert_eq!(base64(b"1.2:s3cret"), "MS4yOnMzY3JldA==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        let a = find("oauth.v2.access").unwrap();
        let p = obj(json!({"client_id": "1.2", "client_secret": "s3cret", "code": "c"}));
        let Body::BasicForm(pairs, creds) = encode(a, &p, Verb::Post) else {
            panic!("expected basic auth")
        };
        assert_eq!(pairs, vec![("code".to_string(), "c".to_string())]);
        assert_eq!(creds.header(), "Basic MS4yOnMzY3JldA==");
        assert!(!format!("{creds:?}").contains("MS4y"));
    }

    #[test]
    fn comma_lists_stay_strings_in_json_and_get_uses_query() {
        let a = find("conversations.invite").unwrap();
        let p = obj(json!({"channel": "C1", "users": ["U1", "U2"]}));
        if let Body::Json(m) = encode(a, &p, Verb::Post) {
            assert_eq!(m["users"], "U1,U2");
        }
        let a = find("conversations.list").unwrap();
        let p = obj(json!({"types": ["public_channel", "private_channel"], "limit": 5}));
        assert_eq!(
            encode(a, &p, verb_for(a, &p)),
            Body::Query(vec![
                ("types".into(), "public_channel,private_channel".into()),
                ("limit".into(), "5".into())
            ])
        );
    }
}
