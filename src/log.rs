//! Status lines on stderr (stdout is reserved for results). Everything is scrubbed of
//! secrets before it is written.

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

/// A status line (summaries); silenced by `--quiet` like warnings.
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
    // Above the bulk progress line when one is shown, so the two never share a line.
    crate::progress::above(&text);
}
