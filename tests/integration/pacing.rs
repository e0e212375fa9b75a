//! Pacing: parallel processes share one budget, so the emulator (enforcing Slack's limits)
//! answers no 429; without pacing the same load trips them.

use crate::support::*;
use serde_json::json;

fn spawn_posts(emu: &Emu, n: usize, extra: &[&str]) -> Vec<Out> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            let text = format!("text=parallel {i}");
            emu.paced_cmd()
                .args(extra)
                .args([
                    "--retries",
                    "0",
                    "run",
                    "chat.postMessage",
                    "channel=C0000002",
                    &text,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| Out::from(c.wait_with_output().unwrap()))
        .collect()
}

fn count_429(emu: &Emu) -> usize {
    emu.requests_to("chat.postMessage")
        .iter()
        .filter(|r| r["status"] == 429)
        .count()
}

#[test]
fn parallel_runs_share_one_budget_and_get_no_429() {
    let emu = Emu::start();
    // Slack allows ~1 post per second per channel; scale it up (both sides) so the test stays short.
    crate::support::http(
        "POST",
        &emu.base_url(),
        "/_emulator/rate_limits",
        Some(r#"{"per_channel": 4}"#),
    );
    let dir = tempdir("pace");
    let cfg = dir.join("slack.yaml");
    std::fs::write(&cfg, "rate_limits:\n  per_channel: 4\n").unwrap();
    let outs = spawn_posts(&emu, 12, &["--config", cfg.to_str().unwrap()]);
    for o in &outs {
        o.assert_code(0);
    }
    assert_eq!(count_429(&emu), 0, "paced runs must not be rate limited");
    assert_eq!(emu.requests_to("chat.postMessage").len(), 12);
    assert!(
        outs.iter().any(|o| o.stderr.contains("waiting")),
        "waiting is visible"
    );
}

#[test]
fn without_pacing_the_same_load_is_rate_limited() {
    let emu = Emu::start();
    crate::support::http(
        "POST",
        &emu.base_url(),
        "/_emulator/rate_limits",
        Some(r#"{"per_channel": 4}"#),
    );
    let outs = spawn_posts(&emu, 12, &["--no-rate-limit"]);
    assert!(count_429(&emu) > 0, "the emulator must enforce limits");
    assert!(outs.iter().any(|o| o.code == 1 && o.stderr.contains("429")));
}

#[test]
fn waits_are_bounded_by_max_wait() {
    let emu = Emu::start();
    let dir = tempdir("pace");
    let cfg = dir.join("slack.yaml");
    std::fs::write(&cfg, "rate_limits:\n  methods:\n    users.info: 1\n").unwrap();
    let c = cfg.to_str().unwrap();
    let paced = |args: &[&str]| Out::from(emu.paced_cmd().args(args).output().unwrap());
    paced(&["--config", c, "run", "users.info", "user=U0000001"]).assert_code(0);
    let out = paced(&[
        "--config",
        c,
        "--max-wait",
        "2",
        "run",
        "users.info",
        "user=U0000001",
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("max-wait"), "{}", out.stderr);
    assert_eq!(
        emu.requests_to("users.info").len(),
        1,
        "nothing sent past the deadline"
    );
}

#[test]
fn a_429_feeds_back_into_the_shared_budget() {
    let emu = Emu::start();
    emu.fault(json!({"path": "/api/users.info", "status": 429, "retry_after": 2, "times": 1}));
    let started = std::time::Instant::now();
    let first = emu
        .paced_cmd()
        .args(["--retries", "0", "run", "users.info", "user=U0000001"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(1));
    // Another process, right after, waits out the Retry-After instead of hammering.
    let out = Out::from(
        emu.paced_cmd()
            .args(["run", "users.info", "user=U0000001"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(
        started.elapsed().as_secs_f64() >= 1.5,
        "{:?}",
        started.elapsed()
    );
}
