//! Status lines on stderr (stdout is reserved for results). Everything is scrubbed of
//! secrets before it is written.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences warnings (`--quiet`); errors are still printed.
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

pub fn warn(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        line(&format!("slackctl: warning: {msg}"));
    }
}

/// A status line (e.g. the sensor's connection state); silenced by `--quiet`.
pub fn info(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        line(&format!("slackctl: {msg}"));
    }
}

pub fn debug(msg: &str) {
    line(&format!("slackctl: debug: {msg}"));
}

fn line(s: &str) {
    let mut text = crate::redact::scrub(s);
    text.push('\n');
    let _ = std::io::stderr().write_all(text.as_bytes());
}
