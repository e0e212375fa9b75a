//! Slack's own clients against `slackctl emulator`: runs `tests/conformance/run.py`
//! (`slack_sdk`, `slack_bolt`) with the interpreter named by `SLACKCTL_TEST_PYTHON`, and
//! `tests/conformance/node/run.js` (`@slack/web-api`, `@slack/bolt`) with the modules in
//! `SLACKCTL_TEST_NODE_MODULES`; `.ci/run` sets both. Without them a suite is skipped with a
//! message, except under `CI=true`, where a missing client is a failure.

use crate::support::BIN;
use std::path::Path;
use std::process::Command;

/// Exit status of both suites when the client libraries cannot be loaded.
const CLIENTS_MISSING: i32 = 3;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn skip(why: &str) {
    assert!(!in_ci(), "conformance suite cannot run under CI: {why}");
    eprintln!("skipped: Slack client conformance suite: {why}");
}

/// Runs one suite; checks its exit status and its `N of M client checks passed` tally.
fn run_suite(mut cmd: Command, label: &str, at_least: u32) {
    let out = match cmd
        .env("SLACKCTL_BIN", BIN)
        .env_remove("SLACK_API_URL")
        .output()
    {
        Ok(o) => o,
        Err(e) => return skip(&format!("cannot start the {label} suite: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(CLIENTS_MISSING) {
        return skip(stdout.trim());
    }
    // The per-check lines and the tally show with --nocapture (and in .ci/run's own run).
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{label} conformance failures:\n{stdout}\n{stderr}"
    );
    // `conformance: 19 of 19 client checks passed` (Node: `conformance (node): …`).
    let tally = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" client checks passed"))
        .find_map(|l| l.rsplit_once(": ").map(|(_, counts)| counts))
        .expect("a tally line");
    let (passed, total) = tally.split_once(" of ").expect("`N of M`");
    assert_eq!(passed, total, "{stdout}");
    assert!(total.parse::<u32>().unwrap() >= at_least, "{stdout}");
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn slacks_python_clients_pass_against_the_emulator() {
    let Ok(python) = std::env::var("SLACKCTL_TEST_PYTHON") else {
        return skip(
            "SLACKCTL_TEST_PYTHON is not set (.ci/run sets it to a virtualenv with slack_sdk and slack_bolt)",
        );
    };
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/conformance/run.py"));
    run_suite(cmd, "Python", 19);
}

#[test]
fn slacks_node_clients_pass_against_the_emulator() {
    let Ok(modules) = std::env::var("SLACKCTL_TEST_NODE_MODULES") else {
        return skip(
            "SLACKCTL_TEST_NODE_MODULES is not set (.ci/run installs @slack/web-api and @slack/bolt and sets it)",
        );
    };
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/conformance/node/run.js"))
        .env("NODE_PATH", modules);
    run_suite(cmd, "Node", 12);
}

/// The README's Bolt example is the file the suite runs, character for character.
#[test]
fn the_readme_bolt_example_is_the_file_the_suite_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("tests/conformance/example_app.py")).unwrap();
    assert!(
        readme.contains(&format!("```python\n{example}```\n")),
        "README.md's Bolt example differs from tests/conformance/example_app.py"
    );
}
