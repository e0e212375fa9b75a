//! The only place that turns outcomes into process exit codes (StackStorm's convention).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success, including "nothing matched" |
//! | 1    | the action ran and failed: Slack `ok: false`, HTTP or network failure |
//! | 2    | usage, validation or config error: nothing was sent |
//! | 220  | reserved for st2's python-runner "invalid status" (never produced by slackctl) |

use crate::error::{Error, Kind};

pub const SUCCESS: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

/// Exit code for an error.
pub fn code(err: &Error) -> u8 {
    match err.kind {
        Kind::Failed => FAILED,
        Kind::Usage | Kind::Config => USAGE,
    }
}

/// Prints an error and its hints to stderr in the house style, secrets scrubbed.
pub fn report(err: &Error) {
    use std::io::Write;
    let mut out = String::new();
    out.push_str("slackctl: error: ");
    out.push_str(&err.message);
    out.push('\n');
    for h in &err.hints {
        out.push_str("  hint: ");
        out.push_str(h);
        out.push('\n');
    }
    let _ = std::io::stderr().write_all(crate::redact::scrub(&out).as_bytes());
}
