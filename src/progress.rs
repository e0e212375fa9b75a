//! One progress line on stderr, redrawn in place while a long run goes on.
//!
//! Drawn only when stderr is a terminal: piped or logged stderr gets no carriage returns or
//! escape codes. Every other stderr line (warnings, status) goes through [`above`], which
//! clears the progress line, writes the message and draws the line again below it, so the
//! two never share a line.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The line being shown, if any.
static ACTIVE: Mutex<Option<Line>> = Mutex::new(None);

/// Redraws at most this often; counts that change faster are drawn on the next update.
const REDRAW: Duration = Duration::from_millis(100);

struct Line {
    text: String,
    drawn: Option<Instant>,
}

/// A progress line; dropping it clears the line.
pub struct Progress {
    start: Instant,
}

impl Progress {
    /// Starts a progress line, or returns None when stderr is not a terminal.
    pub fn start() -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        *lock() = Some(Line {
            text: String::new(),
            drawn: None,
        });
        Some(Progress {
            start: Instant::now(),
        })
    }

    /// Shows `done` records of which `failed` failed, with the rate so far.
    pub fn records(&self, done: u64, failed: u64) {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            format!(", {:.1}/s", done as f64 / secs)
        } else {
            String::new()
        };
        self.set(format!(
            "slackctl: {done} record(s) done, {failed} failed{rate}"
        ));
    }

    fn set(&self, text: String) {
        let mut guard = lock();
        let Some(line) = guard.as_mut() else { return };
        line.text = text;
        if line.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        line.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", fit(&line.text));
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if lock().take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Writes `text` (whole lines) to stderr above the progress line, if one is shown.
pub fn above(text: &str) {
    let guard = lock();
    let mut err = std::io::stderr().lock();
    match guard.as_ref() {
        Some(line) if line.drawn.is_some() => {
            let _ = write!(err, "\r\x1b[2K{text}{}", fit(&line.text));
        }
        _ => {
            let _ = err.write_all(text.as_bytes());
        }
    }
    let _ = err.flush();
}

/// Cut to the terminal's width: a wrapped line could not be redrawn in place.
fn fit(text: &str) -> String {
    let width = terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| w.0 as usize)
        .unwrap_or(80)
        .saturating_sub(1);
    text.chars().take(width).collect()
}

fn lock() -> std::sync::MutexGuard<'static, Option<Line>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}
