//! Keeps secrets out of every output. Secrets are recognised two ways:
//!
//! * **by role**: every value of a parameter the catalog marks `secret: true` (and, so that a
//!   catalog without the mark is still safe, every parameter whose name says it is a
//!   credential) is registered by [`register_params`] before validation, and configured
//!   tokens, webhook URLs and signing secrets are registered as soon as they are read;
//! * **by look**: token-shaped strings (`xoxb-…`, `xapp-…`), the secret path of Slack
//!   webhook URLs (every host and kind) and the password in a URL's userinfo are masked even
//!   when they were never registered, so a secret inside a Slack answer or a URL cannot slip
//!   through either.
//!
//! Everything printed to stderr (errors, warnings, verbose logs) and every error text that
//! goes to stdout (st2 framing, bulk result lines) passes through [`scrub`].

use crate::catalog::{Action, Param};
use serde_json::Value;
use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<Vec<String>> {
    static R: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Shortest value registered from a secret parameter. Shorter text is not a credential, and
/// masking it everywhere would mangle ordinary words.
const MIN_ROLE_SECRET: usize = 4;

/// Remembers a secret so that [`scrub`] removes it wherever it appears.
pub fn register(secret: &str) {
    if secret.len() < 6 {
        return; // too short to be a real secret; masking it would mangle ordinary text
    }
    add(secret);
}

fn add(secret: &str) {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if !r.iter().any(|s| s == secret) {
        r.push(secret.to_string());
        // Longest first, so a secret that contains another is masked whole.
        r.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Parameter names that hold credentials whatever the catalog says: a catalog that has not
/// marked them yet must not make them printable.
const SECRET_NAMES: &[&str] = &[
    "token",
    "client_secret",
    "refresh_token",
    "code_verifier",
    "webhook_url",
    "signing_secret",
    "action_token",
    "admin_token",
    "app_token",
    "password",
];

/// Whether a parameter's values are secrets: the catalog's `secret: true`, a credential
/// name, or the one-time `code` of the OAuth/OpenID exchanges.
pub fn is_secret_param(action: &Action, p: &Param) -> bool {
    p.secret
        || SECRET_NAMES.contains(&p.name)
        || (p.name == "code"
            && (action.name.starts_with("oauth.") || action.name.starts_with("openid.")))
}

/// Registers every value given for a secret parameter of `action`: `key=value` texts and
/// `--parameters` values, nested strings included. Called before validation, so no error
/// about such a value can echo it.
pub fn register_params<'a>(
    action: &Action,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    json: &serde_json::Map<String, Value>,
) {
    let secret = |name: &str| {
        action
            .param(name)
            .is_some_and(|p| is_secret_param(action, p))
            || SECRET_NAMES.contains(&name)
    };
    for (k, v) in pairs {
        if secret(k) {
            register_role(v);
        }
    }
    for (k, v) in json {
        if secret(k) {
            register_value(v);
        }
    }
}

fn register_role(v: &str) {
    let t = v.trim();
    if t.len() >= MIN_ROLE_SECRET {
        add(t);
    }
    if v.len() >= MIN_ROLE_SECRET && v != t {
        add(v);
    }
}

fn register_value(v: &Value) {
    match v {
        Value::String(s) => register_role(s),
        Value::Array(a) => a.iter().for_each(register_value),
        Value::Object(m) => m.values().for_each(register_value),
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => register_role(&n.to_string()),
    }
    if matches!(v, Value::Array(_) | Value::Object(_)) {
        register_role(&v.to_string());
    }
}

/// Replaces registered secrets and anything secret-shaped with `[redacted]`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    {
        let r = registry().lock().unwrap_or_else(|e| e.into_inner());
        for s in r.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
    }
    mask_userinfo(&mask_token_shapes(&out))
}

/// Hosts whose URL paths are credentials (incoming webhooks, workflow triggers, GovSlack).
const WEBHOOK_HOSTS: &[&str] = &["hooks.slack.com/", "hooks.slack-gov.com/"];

/// Masks `xox?-…`, `xapp-…` tokens and the secret path of Slack webhook URLs, keeping the
/// host and the kind (`services`, `triggers`, `workflows`) so the message stays useful.
fn mask_token_shapes(text: &str) -> String {
    const PREFIXES: &[&str] = &[
        "xoxb-", "xoxp-", "xoxa-", "xoxe.", "xoxe-", "xoxs-", "xoxc-", "xapp-", "xoxr-", "xoxd-",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (i, _) in rest.char_indices() {
            let tail = &rest[i..];
            // A bare prefix (`xoxb-` in a hint about token kinds) holds no secret.
            let token = PREFIXES.iter().any(|p| {
                tail.starts_with(p)
                    && tail[p.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            });
            let hook = WEBHOOK_HOSTS
                .iter()
                .find(|h| {
                    tail.starts_with(*h)
                        && tail[h.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
                })
                .copied();
            if token || hook.is_some() {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "-._/~%".contains(c)))
                    .unwrap_or(tail.len());
                out.push_str(&rest[..i]);
                match hook {
                    Some(host) => {
                        let path = &tail[host.len()..end];
                        out.push_str(host);
                        // Keep the kind (`services/`), never what follows it.
                        if let Some((kind, _)) = path.split_once('/')
                            && kind.chars().all(|c| c.is_ascii_alphabetic())
                        {
                            out.push_str(kind);
                            out.push('/');
                        }
                        out.push_str("[redacted]");
                    }
                    None => out.push_str("[redacted]"),
                }
                rest = &tail[end..];
                continue 'outer;
            }
        }
        out.push_str(rest);
        break;
    }
    out
}

/// Masks the password of any `scheme://user:password@host` (API URLs, proxies).
fn mask_userinfo(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let start = pos + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        // The authority ends at the first character a URL host part cannot hold.
        let auth_end = after
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'`<>)]".contains(c)
            })
            .unwrap_or(after.len());
        let authority = &after[..auth_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":[redacted]");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[auth_end..];
    }
    out.push_str(rest);
    out
}

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers the value.
    pub fn new(value: impl Into<String>) -> Self {
        let v = value.into();
        register(&v);
        Secret(v)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_and_token_shaped_values() {
        register("s3cr3t-value-123");
        let s =
            scrub("a s3cr3t-value-123 b xoxb-1-2-abc c https://hooks.slack.com/services/T/B/X d");
        assert_eq!(
            s,
            "a [redacted] b [redacted] c https://hooks.slack.com/services/[redacted] d"
        );
        assert_eq!(scrub("bot: xoxb-, user: xoxp-"), "bot: xoxb-, user: xoxp-");
        assert_eq!(
            format!("{:?}", Secret::new("xoxp-zzz-yyy")),
            "Secret([redacted])"
        );
    }

    #[test]
    fn masks_every_webhook_host_and_kind() {
        for (url, kept) in [
            (
                "https://hooks.slack.com/services/T0/B0/abcdef",
                "hooks.slack.com/services/[redacted]",
            ),
            (
                "https://hooks.slack.com/triggers/T0/123/abc",
                "hooks.slack.com/triggers/[redacted]",
            ),
            (
                "https://hooks.slack.com/workflows/T0/A0/1/xyz",
                "hooks.slack.com/workflows/[redacted]",
            ),
            (
                "https://hooks.slack-gov.com/services/T0/B0/abc",
                "hooks.slack-gov.com/services/[redacted]",
            ),
        ] {
            let s = scrub(&format!("posting to {url} failed"));
            assert_eq!(s, format!("posting to https://{kept} failed"));
        }
        // Without a path there is nothing secret to hide.
        assert_eq!(scrub("see hooks.slack.com/"), "see hooks.slack.com/");
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            scrub("-> http://u:pass1234@127.0.0.1:1/auth.test"),
            "-> http://u:[redacted]@127.0.0.1:1/auth.test"
        );
        assert_eq!(
            scrub("proxy socks5://bob:pw@proxy:1080 and https://x.example/a@b"),
            "proxy socks5://bob:[redacted]@proxy:1080 and https://x.example/a@b"
        );
        assert_eq!(scrub("http://user@host/"), "http://user@host/");
    }

    #[test]
    fn registers_secret_parameters_by_role() {
        let a = crate::catalog::find("oauth.v2.access").unwrap();
        let mut json = serde_json::Map::new();
        json.insert("client_secret".into(), serde_json::json!(["nested-cs-9"]));
        register_params(
            a,
            [("code", "one-time-code-77"), ("client_id", "public-id-1")],
            &json,
        );
        let s = scrub("one-time-code-77 nested-cs-9 public-id-1");
        assert_eq!(s, "[redacted] [redacted] public-id-1");
    }
}
