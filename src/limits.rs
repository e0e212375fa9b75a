//! Bounds on what users and servers hand us, so hostile or clumsy input ends in a clear
//! error (exit 2) instead of an abort: seconds that `Duration` cannot hold, files that never
//! end (`/dev/zero`, FIFOs), and `Retry-After` values that are not numbers.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A closed range of seconds a setting accepts.
#[derive(Debug, Clone, Copy)]
pub struct Seconds {
    pub min: f64,
    pub max: f64,
    /// Whether 0 is allowed (a wait may be zero; a timeout may not).
    pub zero: bool,
}

/// One day: longer than any wait or timeout slackctl has a use for.
pub const DAY: f64 = 86_400.0;
/// `--timeout` / `timeout:`: one HTTP request.
pub const TIMEOUT: Seconds = Seconds {
    min: 0.001,
    max: DAY,
    zero: false,
};
/// `--max-wait` / `rate_limits.max_wait`: the longest wait for a rate-limit slot.
pub const MAX_WAIT: Seconds = Seconds {
    min: 0.0,
    max: DAY,
    zero: true,
};
/// The sensor's `--ping-interval`, `--pong-timeout`, `--idle-timeout`.
pub const SENSOR_TIMING: Seconds = Seconds {
    min: 0.001,
    max: DAY,
    zero: false,
};

impl Seconds {
    /// The range in words, for error messages.
    pub fn describe(&self) -> String {
        if self.zero {
            format!("from 0 to {} seconds", self.max)
        } else {
            format!("from {} to {} seconds", self.min, self.max)
        }
    }

    /// `v` as a duration when it is inside the range; otherwise what is wrong, in words.
    pub fn check(&self, v: f64) -> std::result::Result<Duration, String> {
        let ok = v.is_finite() && ((self.zero && v == 0.0) || (v >= self.min && v <= self.max));
        if ok {
            // Inside the range, so `Duration` can hold it.
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("must be {}, got {}", self.describe(), show(v)))
        }
    }

    /// Parses text (a command-line value) and checks it.
    pub fn parse(&self, text: &str) -> std::result::Result<f64, String> {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number of seconds"))?;
        self.check(v)
            .map(|_| v)
            .map_err(|_| format!("must be {}, got {}", self.describe(), text.trim()))
    }
}

/// A number as a person reads it: `1e300`, not three hundred digits.
fn show(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e9 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Checks a setting in seconds; `what` names it (`--timeout`, `timeout in /etc/x.yaml`).
pub fn seconds(what: &str, v: f64, range: Seconds) -> Result<Duration> {
    range
        .check(v)
        .map_err(|why| Error::config(format!("{what} {why}")))
}

/// A server's `Retry-After` in seconds as a wait no longer than `cap`: a missing, negative,
/// NaN or absurd value never aborts (a NaN means "now", anything huge means `cap`).
pub fn retry_after(secs: f64, cap: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    if secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::from_secs_f64(secs)
}

/// Default most bytes an `@key=path` file may hold: well above anything Slack accepts in one
/// argument (a message is at most 40,000 characters, blocks a few hundred KB).
pub const DEFAULT_MAX_FILE: u64 = 8 * 1024 * 1024;

static MAX_FILE: AtomicU64 = AtomicU64::new(DEFAULT_MAX_FILE);

/// The most bytes [`read_text_file`] reads.
pub fn max_file() -> u64 {
    MAX_FILE.load(Ordering::Relaxed)
}

/// Sets the size limit from `SLACKCTL_MAX_FILE_SIZE` (bytes, or with a K/M/G suffix).
pub fn configure_max_file(value: Option<&str>) -> Result<()> {
    let Some(text) = value else { return Ok(()) };
    let n = parse_size(text).ok_or_else(|| {
        Error::config(format!(
            "{}={text} is not a size",
            crate::config::env::SLACKCTL_MAX_FILE_SIZE
        ))
        .hint("give bytes, or a number with K, M or G, e.g. 16M")
    })?;
    MAX_FILE.store(n, Ordering::Relaxed);
    Ok(())
}

/// `123`, `64K`, `16M`, `1G` (binary units) as bytes; at least 1 byte, at most 1 TiB.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mul: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul).filter(|&b| (1..=1 << 40).contains(&b))
}

/// Reads a text file named by the user, refusing anything that is not a regular file (a
/// device or FIFO could block or never end) and anything larger than [`max_file`]. `what`
/// starts the error message (`@text`, `--config`).
pub fn read_text_file(what: &str, path: &Path) -> Result<String> {
    let bytes = read_file_bytes(what, path, max_file())?;
    String::from_utf8(bytes)
        .map_err(|_| Error::usage(format!("{what}: {} is not UTF-8 text", path.display())))
}

/// Like [`read_text_file`] with an explicit limit, as bytes.
pub fn read_file_bytes(what: &str, path: &Path, max: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let cannot = |e: std::io::Error| Error::usage(format!("{what}: cannot read {shown}: {e}"));
    let not_regular = || {
        Error::usage(format!(
            "{what}: {shown} is not a regular file (devices, FIFOs and directories are refused)"
        ))
    };
    // Check before opening: opening a FIFO for reading blocks until someone writes to it.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    // And again on what was opened, in case the path was swapped in between.
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut buf = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(cannot)?;
    if buf.len() as u64 > max {
        return Err(
            Error::usage(format!("{what}: {shown} is larger than {max} bytes")).hint(format!(
                "raise the limit with {}=<bytes> if you really mean to send that much",
                crate::config::env::SLACKCTL_MAX_FILE_SIZE
            )),
        );
    }
    Ok(buf)
}

/// Reads stdin up to `max` bytes (for `--parameters -`).
pub fn read_stdin(what: &str, max: u64) -> Result<String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::usage(format!("{what}: cannot read stdin: {e}")))?;
    if buf.len() as u64 > max {
        return Err(Error::usage(format!(
            "{what}: stdin holds more than {max} bytes"
        )));
    }
    String::from_utf8(buf).map_err(|_| Error::usage(format!("{what}: stdin is not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_out_of_range_are_errors_not_aborts() {
        for v in [
            1e300,
            f64::NAN,
            f64::INFINITY,
            -1.0,
            18446744073709551616.0,
            0.0,
        ] {
            let e = seconds("--timeout", v, TIMEOUT).unwrap_err();
            assert!(e.message.contains("0.001 to 86400"), "{}", e.message);
        }
        assert_eq!(seconds("x", 0.0, MAX_WAIT).unwrap(), Duration::ZERO);
        assert_eq!(
            seconds("x", 2.5, TIMEOUT).unwrap(),
            Duration::from_millis(2500)
        );
        assert!(TIMEOUT.parse("abc").unwrap_err().contains("not a number"));
    }

    #[test]
    fn retry_after_never_aborts() {
        let cap = Duration::from_secs(120);
        assert_eq!(retry_after(f64::NAN, cap), Duration::ZERO);
        assert_eq!(retry_after(f64::INFINITY, cap), cap);
        assert_eq!(retry_after(1e300, cap), cap);
        assert_eq!(retry_after(-5.0, cap), Duration::ZERO);
        assert_eq!(retry_after(1.5, cap), Duration::from_millis(1500));
    }

    #[test]
    fn sizes_and_special_files() {
        assert_eq!(parse_size("16M"), Some(16 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size("5X"), None);
        let e = read_file_bytes("@text", Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{}", e.message);
        let dir = std::env::temp_dir().join(format!("slackctl-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big");
        std::fs::write(&f, "x".repeat(11)).unwrap();
        assert!(
            read_file_bytes("@text", &f, 10)
                .unwrap_err()
                .message
                .contains("larger than 10")
        );
        assert_eq!(read_file_bytes("@text", &f, 11).unwrap().len(), 11);
    }
}
