//! The command line's own surface: help text, tables on a terminal, TSV when piped, and the
//! emulator's warning off loopback.

use crate::support::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn every_usage_line_starts_with_slackctl() {
    for args in [
        vec!["--help"],
        vec!["action", "--help"],
        vec!["action", "list", "--help"],
        vec!["action", "get", "--help"],
        vec!["run", "--help"],
        vec!["sensor", "--help"],
        vec!["emulator", "--help"],
        vec!["demo", "--help"],
        vec!["completions", "--help"],
        vec!["man", "--help"],
    ] {
        let out = slackctl(&args);
        out.assert_code(0);
        let usage: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("Usage:"))
            .collect();
        assert_eq!(usage.len(), 1, "{args:?}:\n{}", out.stdout);
        assert!(
            usage[0].starts_with("Usage: slackctl"),
            "{args:?}: {}",
            usage[0]
        );
    }
    // `run` with no action prints the same help and exits 2.
    let out = slackctl(&["run"]);
    out.assert_code(2);
    assert!(out.stdout.contains("Usage: slackctl run"), "{}", out.stdout);
}

#[test]
fn client_flags_show_only_where_they_apply() {
    let client = ["--profile", "--api-url", "--timeout", "--no-rate-limit"];
    for args in [vec!["run", "--help"], vec!["sensor", "--help"]] {
        let out = slackctl(&args);
        for flag in client {
            assert!(out.stdout.contains(flag), "{args:?} lacks {flag}");
        }
    }
    for args in [
        vec!["emulator", "--help"],
        vec!["demo", "--help"],
        vec!["action", "list", "--help"],
        vec!["action", "get", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = slackctl(&args);
        out.assert_code(0);
        for flag in client {
            assert!(!out.stdout.contains(flag), "{args:?} shows {flag}");
        }
        assert!(out.stdout.contains("--quiet"), "{args:?}");
    }
    // Hidden is not removed: a client flag before any command still parses.
    let out = slackctl(&["--profile", "x", "action", "list", "chat.postMessage"]);
    out.assert_code(0);
}

/// Runs slackctl with stdout on a pseudo-terminal `cols` wide (util-linux `script`).
fn on_terminal(cols: usize, args: &str) -> String {
    let home = tempdir("tty");
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("stty cols {cols} rows 50; exec {BIN} {args}"),
            "/dev/null",
        ])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs slackctl on a terminal");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn action_list_on_a_terminal_fits_its_width() {
    for cols in [80, 120] {
        let text = on_terminal(cols, "action list chat.");
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines.len() > 10, "{text}");
        for l in &lines {
            assert!(
                l.chars().count() <= cols,
                "{} columns on a {cols}-column terminal: {l}",
                l.chars().count()
            );
        }
        assert!(
            lines.iter().any(|l| l.contains("slack.chat.postMessage")),
            "{text}"
        );
        // Long descriptions are cut short, not dropped: rows stay one line each.
        assert!(lines.iter().any(|l| l.contains('…')), "{text}");
        let rows = lines.iter().filter(|l| l.starts_with("| slack.")).count();
        let piped = slackctl(&["action", "list", "chat."]);
        assert_eq!(rows, piped.stdout.lines().count(), "{text}");
    }
}

#[test]
fn action_get_on_a_terminal_wraps_to_its_width() {
    let text = on_terminal(80, "action get chat.postMessage");
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "{l}");
    }
    assert!(text.contains("parameters.channel"), "{text}");
    assert!(!text.contains('{'), "JSON in the table:\n{text}");
}

#[test]
fn action_get_piped_is_one_record_per_line_without_json() {
    let out = slackctl(&["action", "get", "chat.postMessage"]);
    out.assert_code(0);
    for l in out.stdout.lines() {
        assert_eq!(l.matches('\t').count(), 1, "not a two-column record: {l:?}");
        assert!(!l.starts_with(['\t', ' ', '{', '}']), "{l:?}");
    }
    let params: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("parameters."))
        .collect();
    let channel = params
        .iter()
        .find(|l| l.starts_with("parameters.channel\t"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(channel.contains("string, required"), "{channel}");
    // Every parameter has its row, the same set --json shows.
    let json = slackctl(&["action", "get", "chat.postMessage", "--json"]);
    let n = json.json()["parameters"].as_object().unwrap().len();
    assert_eq!(params.len(), n);
}

/// Starts the emulator on `listen`, waits for its ready line, stops it, returns its stderr.
fn emulator_stderr(listen: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("api_url"), "{line}");
    child.kill().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    err
}

#[test]
fn the_emulator_warns_when_it_listens_beyond_loopback() {
    let err = emulator_stderr("0.0.0.0:0");
    assert!(
        err.contains("warning") && err.contains("no real authentication"),
        "{err}"
    );
    let err = emulator_stderr("127.0.0.1:0");
    assert!(!err.contains("warning"), "{err}");
}

/// A bulk run whose pacing warns (three posts to one channel, one per second).
fn paced_bulk(_emu: &Emu, dir: &std::path::Path) -> String {
    let records = dir.join("r.jsonl");
    std::fs::write(
        &records,
        // One channel at 1/s with a burst of 3: the fourth and fifth posts wait, and say so.
        "{\"t\": \"one\"}\n{\"t\": \"two\"}\n{\"t\": \"three\"}\n{\"t\": \"four\"}\n{\"t\": \"five\"}\n",
    )
    .unwrap();
    format!(
        "{BIN} run chat.postMessage --each {} channel=C0000003 text='{{{{ t }}}}' >/dev/null",
        records.display()
    )
}

#[test]
fn bulk_progress_is_one_line_on_a_terminal_with_warnings_above_it() {
    let emu = Emu::start();
    let dir = tempdir("progress");
    let cmd = paced_bulk(&emu, &dir);
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_clear()
        .env("HOME", &emu.home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLACK_API_URL", emu.api_url())
        .env("SLACK_TOKEN", emu.token("bot"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let tty = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(
        tty.contains("4 record(s) done") || tty.contains("3 record(s) done"),
        "{tty:?}"
    );
    let warnings = tty.matches("slackctl: warning:").count();
    assert!(warnings >= 2, "pacing should have warned: {tty:?}");
    // Each warning starts on a cleared line: never glued to the progress text.
    assert_eq!(
        tty.matches("\r\x1b[2Kslackctl: warning:").count(),
        warnings,
        "{tty:?}"
    );
    for line in tty.split(['\n', '\r']) {
        assert!(
            !(line.contains("record(s) done") && line.contains("warning")),
            "{line:?}"
        );
    }
    assert_eq!(emu.messages("C0000003").len(), 5);

    // Not a terminal: no progress line, no control characters; warnings and the summary stay.
    let piped = Command::new("bash")
        .args(["-c", &cmd])
        .env_clear()
        .env("HOME", &emu.home)
        .env("SLACK_API_URL", emu.api_url())
        .env("SLACK_TOKEN", emu.token("bot"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&piped.stderr);
    assert_eq!(piped.status.code(), Some(0), "{text}");
    assert!(!text.contains(['\r', '\x1b']), "{text:?}");
    assert!(!text.contains("record(s) done"), "{text}");
    assert!(text.contains("slackctl: warning:"), "{text}");
    assert!(text.contains("sent"), "the summary: {text}");
}
