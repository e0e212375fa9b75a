//! The one error type the library returns. Its [`Kind`] decides the exit code (see
//! `exit.rs`); `hints` tell the user what to do next. Messages never contain secrets: they are
//! scrubbed again by `redact` before printing, as a second line of defence.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad command line, parameters or input, found before anything was sent.
    Usage,
    /// A config file or environment problem, found before anything was sent.
    Config,
    /// The action ran and failed: Slack said `ok: false`, or HTTP/network trouble.
    Failed,
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hints: Vec<String>,
    /// Slack's whole answer when it said `ok: false`, so `--output st2` can still return it.
    pub response: Option<Box<Value>>,
    /// A result worth printing on stdout although the action failed (e.g. `broadcast`'s
    /// per-channel outcomes when some channels failed).
    pub output: Option<Box<Value>>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hints: Vec::new(),
            response: None,
            output: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
    /// Slack's error code (`channel_not_found`, …) when Slack answered `ok: false`.
    pub fn slack_code(&self) -> Option<&str> {
        self.response
            .as_deref()
            .and_then(|r| r.get("error"))
            .and_then(Value::as_str)
    }

    /// Several problems found at once, as one error that prints each message with its own
    /// hints right under it (the last one's hints are printed by `exit::report`). Hints
    /// already shown under an earlier message are not repeated.
    pub fn combine(mut problems: Vec<Error>) -> Option<Error> {
        if problems.len() <= 1 {
            return problems.pop();
        }
        let last = problems.pop()?;
        let mut first = problems.remove(0);
        let mut shown: Vec<String> = Vec::new();
        let mut hints = std::mem::take(&mut first.hints);
        for next in problems.into_iter().chain(std::iter::once(last)) {
            for h in hints.drain(..) {
                if !shown.contains(&h) {
                    first.message.push_str("\n  hint: ");
                    first.message.push_str(&h);
                    shown.push(h);
                }
            }
            first.message.push_str("\nslackctl: error: ");
            first.message.push_str(&next.message);
            hints = next.hints;
        }
        first.hints = hints.into_iter().filter(|h| !shown.contains(h)).collect();
        Some(first)
    }

    pub fn with_response(mut self, response: Value) -> Self {
        self.response = Some(Box::new(response));
        self
    }
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = Some(Box::new(output));
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_errors_keep_each_hint_under_its_own_message() {
        let e = Error::combine(vec![
            Error::usage("one").hint("fix one"),
            Error::usage("two"),
            Error::usage("three").hint("fix three").hint("fix one"),
        ])
        .unwrap();
        assert_eq!(
            e.message,
            "one\n  hint: fix one\nslackctl: error: two\nslackctl: error: three"
        );
        assert_eq!(e.hints, vec!["fix three".to_string()]);
        assert!(Error::combine(Vec::new()).is_none());
        assert_eq!(
            Error::combine(vec![Error::usage("x").hint("h")])
                .unwrap()
                .hints,
            ["h"]
        );
    }
}
