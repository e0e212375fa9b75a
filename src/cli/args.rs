//! Range-checked value parsers for numeric options, so an out-of-range number is a usage
//! error (exit 2) naming the allowed range, never an abort later on.

use crate::limits::{MAX_WAIT, SENSOR_TIMING, TIMEOUT};

/// `--timeout SECS`.
pub fn timeout(text: &str) -> Result<f64, String> {
    TIMEOUT.parse(text)
}

/// `--max-wait SECS`.
pub fn max_wait(text: &str) -> Result<f64, String> {
    MAX_WAIT.parse(text)
}

/// The sensor's `--ping-interval`, `--pong-timeout` and `--idle-timeout`.
pub fn sensor_secs(text: &str) -> Result<f64, String> {
    SENSOR_TIMING.parse(text)
}

/// Most calls in flight at once for `--concurrency`.
pub const MAX_CONCURRENCY: usize = 1024;

/// `--concurrency N`: 1 to [`MAX_CONCURRENCY`].
pub fn concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {MAX_CONCURRENCY}, got `{text}`"
        )),
    }
}

/// Every status an action can have, as `action list --status` takes them.
pub const STATUSES: [crate::catalog::Status; 5] = [
    crate::catalog::Status::Current,
    crate::catalog::Status::Deprecated,
    crate::catalog::Status::Retired,
    crate::catalog::Status::Undocumented,
    crate::catalog::Status::SdkOnly,
];

/// `action list --status S`: one of [`STATUSES`].
pub fn status(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    if STATUSES.iter().any(|s| s.as_str() == t) {
        Ok(t)
    } else {
        let names: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
        Err(format!("expected one of {}", names.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_numbers_name_the_range() {
        for bad in [
            "1e300",
            "-1",
            "NaN",
            "inf",
            "0",
            "18446744073709551616",
            "x",
        ] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
        assert!(
            timeout("1e300")
                .unwrap_err()
                .contains("from 0.001 to 86400")
        );
        assert_eq!(max_wait("0"), Ok(0.0));
        assert!(max_wait("18446744073709551616").is_err());
        assert!(sensor_secs("1e300").is_err());
        assert_eq!(concurrency("8"), Ok(8));
        assert!(concurrency("0").is_err() && concurrency("99999999999999999999").is_err());
        assert_eq!(status("Retired"), Ok("retired".into()));
        assert!(
            status("bogus")
                .unwrap_err()
                .contains("current, deprecated, retired, undocumented, sdk_only")
        );
    }
}
