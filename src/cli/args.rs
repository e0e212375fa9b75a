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

/// A whole number in `range`, or what is wrong in words.
fn whole(text: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from {} to {}, got `{text}`",
            range.start(),
            range.end()
        )),
    }
}

/// `--concurrency N`: 1 to [`MAX_CONCURRENCY`].
pub fn concurrency(text: &str) -> Result<usize, String> {
    whole(text, 1..=MAX_CONCURRENCY)
}

/// Seeded users the emulator accepts: the seed names the first three and deletes the last,
/// so fewer than 4 cannot be honoured; more than this only makes start-up slow and large.
pub const EMULATOR_USERS: std::ops::RangeInclusive<usize> = 4..=10_000;
/// Page sizes the emulator accepts: Slack's list methods return at most 1,000 per page.
pub const EMULATOR_PAGE: std::ops::RangeInclusive<usize> = 1..=1000;

/// The emulator's `--users N`.
pub fn emulator_users(text: &str) -> Result<usize, String> {
    whole(text, EMULATOR_USERS)
}

/// The emulator's `--page-size N` and `--max-page-size N`.
pub fn emulator_page(text: &str) -> Result<usize, String> {
    whole(text, EMULATOR_PAGE)
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
        assert_eq!(emulator_users("4"), Ok(4));
        for bad in ["3", "0", "10001", "-1", "1e3", "18446744073709551616"] {
            assert!(
                emulator_users(bad).unwrap_err().contains("from 4 to 10000"),
                "{bad}"
            );
        }
        assert_eq!(emulator_page("1000"), Ok(1000));
        assert!(emulator_page("0").unwrap_err().contains("from 1 to 1000"));
        assert!(emulator_page("1001").is_err());
        assert_eq!(status("Retired"), Ok("retired".into()));
        assert!(
            status("bogus")
                .unwrap_err()
                .contains("current, deprecated, retired, undocumented, sdk_only")
        );
    }
}
