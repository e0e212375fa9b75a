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
