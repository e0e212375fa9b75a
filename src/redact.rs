//! Keeps secrets out of every output. Tokens, webhook URLs and signing secrets are
//! registered here as soon as they are read; everything printed to stderr (errors, warnings,
//! verbose logs) passes through [`scrub`]. Token-shaped strings are masked even when they were
//! never registered, so a token inside a Slack answer or a URL cannot slip through either.

use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<Vec<String>> {
    static R: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers a secret so that [`scrub`] removes it wherever it appears.
pub fn register(secret: &str) {
    if secret.len() < 6 {
        return; // too short to be a real secret; masking it would mangle ordinary text
    }
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if !r.iter().any(|s| s == secret) {
        r.push(secret.to_string());
    }
}

/// Replaces registered secrets and anything token-shaped with `[redacted]`.
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
    mask_token_shapes(&out)
}

/// Masks `xox?-…`, `xapp-…` tokens and the secret path of `hooks.slack.com` URLs.
fn mask_token_shapes(text: &str) -> String {
    const PREFIXES: &[&str] = &[
        "xoxb-", "xoxp-", "xoxa-", "xoxe.", "xoxe-", "xoxs-", "xoxc-", "xapp-", "xoxr-",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (i, _) in rest.char_indices() {
            let tail = &rest[i..];
            // A bare prefix (`xoxb-` in a hint about token kinds) holds no secret.
            let hit = PREFIXES.iter().any(|p| {
                tail.starts_with(p)
                    && tail[p.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            }) || tail.starts_with("hooks.slack.com/services/");
            if hit {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "-._/".contains(c)))
                    .unwrap_or(tail.len());
                out.push_str(&rest[..i]);
                if tail.starts_with("hooks.slack.com") {
                    out.push_str("hooks.slack.com/services/[redacted]");
                } else {
                    out.push_str("[redacted]");
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
}
