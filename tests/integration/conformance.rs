//! Slack's own Python clients (`slack_sdk`, `slack_bolt`) against `slackctl emulator`: runs
//! `tests/conformance/run.py` with the interpreter named by `SLACKCTL_TEST_PYTHON` (`.ci/run`
//! sets it to its virtualenv). Without that interpreter or those packages the test is skipped
//! with a message, except under `CI=true`, where a missing client is a failure.

use crate::support::BIN;
use std::path::Path;
use std::process::Command;

/// Exit status of `run.py` when the client libraries cannot be imported.
const CLIENTS_MISSING: i32 = 3;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn skip(why: &str) {
    assert!(!in_ci(), "conformance suite cannot run under CI: {why}");
    eprintln!("skipped: Slack client conformance suite: {why}");
}

#[test]
fn slacks_python_clients_pass_against_the_emulator() {
    let Ok(python) = std::env::var("SLACKCTL_TEST_PYTHON") else {
        skip(
            "SLACKCTL_TEST_PYTHON is not set (.ci/run sets it to a virtualenv with slack_sdk and slack_bolt)",
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/run.py");
    let out = Command::new(&python)
        .arg(&script)
        .env("SLACKCTL_BIN", BIN)
        .env_remove("SLACK_API_URL")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("cannot start {python}: {e}"));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(CLIENTS_MISSING) {
        skip(stdout.trim());
        return;
    }
    // The per-check lines and the tally show in the test log (and in .ci/run's output).
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "conformance failures:\n{stdout}\n{stderr}"
    );
    let tally = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("conformance: ")?
                .split_once(" client checks passed")
        })
        .map(|(counts, _)| counts.to_string())
        .expect("a tally line");
    let (passed, total) = tally.split_once(" of ").expect("`N of M`");
    assert_eq!(passed, total, "{stdout}");
    assert!(total.parse::<u32>().unwrap() >= 19, "{stdout}");
}

/// The README's Bolt example is the file the suite runs, character for character.
#[test]
fn the_readme_bolt_example_is_the_file_the_suite_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("tests/conformance/example_app.py")).unwrap();
    assert!(
        readme.contains(&format!("```python\n{example}```\n")),
        "README.md's Bolt example differs from tests/conformance/example_app.py"
    );
}
