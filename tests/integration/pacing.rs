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

fn post(emu: &Emu, token: &str, channel: &str, text: &str) -> Out {
    let ch = format!("channel={channel}");
    let t = format!("text={text}");
    Out::from(
        emu.paced_cmd()
            .env("SLACK_TOKEN", token)
            .args(["--retries", "0", "run", "chat.postMessage", &ch, &t])
            .output()
            .unwrap(),
    )
}

/// The id of #general, as the emulator reports it.
fn general_id(emu: &Emu) -> String {
    let out = emu.run(&["run", "conversations.list", "limit=1000"]);
    out.json()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn three_spellings_from_three_processes_burst_then_share_one_channel_bucket() {
    // Slack's channel limit: 1 per second with a burst of 3.
    let emu = Emu::start();
    let id = general_id(&emu);
    enforce(&emu, "{}");
    // The first process learns the workspace and the channel id (and caches them).
    let warm = post(&emu, &emu.token("bot"), "random", "warm-up");
    warm.assert_code(0);
    emu.clear_requests();
    let started = std::time::Instant::now();
    for (i, spelling) in ["general", "#general", id.as_str()].iter().enumerate() {
        post(&emu, &emu.token("bot"), spelling, &format!("burst {i}")).assert_code(0);
    }
    let burst = started.elapsed();
    // Three posts to a quiet channel go at once (pacing each to 1/s took 2 s).
    assert!(burst.as_secs_f64() < 1.5, "three posts took {burst:?}");
    // A fourth, with the other token of the same workspace, waits for the shared bucket.
    let fourth = post(&emu, &emu.token("user"), "#general", "fourth");
    fourth.assert_code(0);
    assert!(
        fourth.stderr.contains("waiting"),
        "the fourth post shares the bucket: {}",
        fourth.stderr
    );
    assert_eq!(count_429(&emu), 0);
    assert_eq!(emu.requests_to("chat.postMessage").len(), 4);
    // The workspace and channel were learned once and cached for every process.
    assert!(
        emu.requests_to("auth.test").len() <= 1,
        "{:?}",
        emu.requests_to("auth.test")
    );
    assert!(emu.requests_to("conversations.list").is_empty());
}

#[test]
fn a_flood_from_several_processes_in_several_spellings_gets_no_429() {
    let emu = Emu::start();
    let id = general_id(&emu);
    // Scaled up on both sides (5/s, burst 3) to keep the test short.
    enforce(&emu, r#"{"per_channel": 5, "channel_burst": 3}"#);
    let dir = tempdir("pace");
    let cfg = dir.join("slack.yaml");
    std::fs::write(&cfg, "rate_limits:\n  per_channel: 5\n  channel_burst: 3\n").unwrap();
    let recs = dir.join("r.jsonl");
    std::fs::write(
        &recs,
        (0..5)
            .map(|i| format!("{{\"n\": {i}}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let spellings = ["general", "#general", id.as_str(), "#general"];
    let children: Vec<_> = spellings
        .iter()
        .enumerate()
        .map(|(p, ch)| {
            let ch = format!("channel={ch}");
            let text = format!("text=flood {p}.{{{{ n }}}}");
            emu.paced_cmd()
                .args(["--config", cfg.to_str().unwrap(), "--retries", "0"])
                .args(["run", "chat.postMessage", &ch, &text, "--each"])
                .arg(&recs)
                .args(["--concurrency", "3"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        Out::from(c.wait_with_output().unwrap()).assert_code(0);
    }
    assert_eq!(count_429(&emu), 0, "a paced flood is never refused");
    let floods = emu
        .messages(&id)
        .iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("flood ")))
        .count();
    assert_eq!(floods, 20);
}

#[test]
fn a_damaged_state_file_is_rebuilt_and_the_send_goes_out() {
    let emu = Emu::start();
    let state = emu.home.join(".local/state/slackctl/ratelimit.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "\u{0}\u{1}garbage{{{").unwrap();
    let out = post(&emu, &emu.token("bot"), "general", "after garbage");
    out.assert_code(0).assert_no_panic();
    assert!(out.stderr.contains("damaged; rebuilt"), "{}", out.stderr);
    let text = std::fs::read_to_string(&state).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).expect("valid again");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Deleted between runs: simply started afresh.
    std::fs::remove_file(&state).unwrap();
    post(&emu, &emu.token("bot"), "general", "after delete").assert_code(0);
    assert!(state.exists());
    assert_eq!(emu.requests_to("chat.postMessage").len(), 2);
}

#[test]
fn an_unusable_state_falls_back_to_in_process_pacing_with_one_warning() {
    let emu = Emu::start();
    enforce(&emu, r#"{"per_channel": 5}"#);
    // Where the state directory should be there is a file: nothing can be written there.
    let base = emu.home.join(".local/state");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("slackctl"), "not a directory").unwrap();
    let dir = tempdir("pace");
    let recs = dir.join("r.jsonl");
    std::fs::write(
        &recs,
        (0..6)
            .map(|i| format!("{{\"n\": {i}}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let cfg = dir.join("slack.yaml");
    std::fs::write(&cfg, "rate_limits:\n  per_channel: 5\n").unwrap();
    let out = Out::from(
        emu.paced_cmd()
            .args(["--config", cfg.to_str().unwrap(), "--retries", "0"])
            .args([
                "run",
                "chat.postMessage",
                "channel=general",
                "text=n{{ n }}",
                "--each",
            ])
            .arg(&recs)
            .args(["--concurrency", "3"])
            .output()
            .unwrap(),
    );
    out.assert_code(0).assert_no_panic();
    assert_eq!(
        out.stderr
            .matches("pacing within this process only")
            .count(),
        1,
        "{}",
        out.stderr
    );
    // Still paced: six posts against a burst of three, and no 429.
    assert_eq!(count_429(&emu), 0);
    assert_eq!(emu.requests_to("chat.postMessage").len(), 6);
    // Three records in flight at once looked the workspace and the channel up once.
    assert_eq!(emu.requests_to("auth.test").len(), 1);
    assert_eq!(emu.requests_to("conversations.list").len(), 1);
}

#[test]
fn a_state_file_that_is_a_link_is_never_written_through() {
    let emu = Emu::start();
    let dir = emu.home.join(".local/state/slackctl");
    std::fs::create_dir_all(&dir).unwrap();
    let victim = tempdir("victim").join("precious");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("ratelimit.json")).unwrap();
    let out = post(&emu, &emu.token("bot"), "general", "via link");
    out.assert_code(0);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_429_on_one_spelling_holds_every_process_posting_to_that_channel() {
    let emu = Emu::start();
    emu.fault(
        json!({"path": "/api/chat.postMessage", "status": 429, "retry_after": 2, "times": 1}),
    );
    let started = std::time::Instant::now();
    post(&emu, &emu.token("bot"), "general", "refused").assert_code(1);
    // Another process, another spelling, the other token: it waits out the Retry-After.
    let second = post(&emu, &emu.token("user"), "#general", "after the 429");
    second.assert_code(0);
    assert!(second.stderr.contains("waiting"), "{}", second.stderr);
    assert!(
        started.elapsed().as_secs_f64() >= 1.5,
        "{:?}",
        started.elapsed()
    );
    // Another channel was never blocked.
    let other = post(&emu, &emu.token("bot"), "random", "elsewhere");
    other.assert_code(0);
    assert!(!other.stderr.contains("waiting"), "{}", other.stderr);
    let sent: Vec<_> = emu
        .requests_to("chat.postMessage")
        .into_iter()
        .filter(|r| r["status"] == 200)
        .collect();
    assert_eq!(sent.len(), 2);
}

#[test]
fn kill_9_mid_flood_leaves_a_usable_state_and_no_429() {
    let emu = Emu::start();
    enforce(&emu, r#"{"per_channel": 5, "channel_burst": 3}"#);
    let dir = tempdir("pace");
    let cfg = dir.join("slack.yaml");
    std::fs::write(&cfg, "rate_limits:\n  per_channel: 5\n  channel_burst: 3\n").unwrap();
    let recs = |n: usize, tag: &str| {
        let p = dir.join(format!("{tag}.jsonl"));
        std::fs::write(
            &p,
            (0..n)
                .map(|i| format!("{{\"n\": \"{tag}{i}\"}}\n"))
                .collect::<String>(),
        )
        .unwrap();
        p
    };
    let flood = |file: &std::path::Path| {
        emu.paced_cmd()
            .args(["--config", cfg.to_str().unwrap(), "--retries", "0"])
            .args([
                "run",
                "chat.postMessage",
                "channel=general",
                "text={{ n }}",
                "--each",
            ])
            .arg(file)
            .args(["--concurrency", "4"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut victim = flood(&recs(30, "v"));
    // Kill it once it is well into the flood (its posts are visible at the emulator).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while emu.requests_to("chat.postMessage").len() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let others: Vec<_> = ["a", "b"].iter().map(|t| flood(&recs(4, t))).collect();
    for c in others {
        let o = Out::from(c.wait_with_output().unwrap());
        o.assert_code(0).assert_no_panic();
        assert!(!o.stderr.contains("damaged"), "{}", o.stderr);
        assert!(!o.stderr.contains("within this process"), "{}", o.stderr);
    }
    assert_eq!(
        count_429(&emu),
        0,
        "the state the killed process left still paces"
    );
    let state = emu.home.join(".local/state/slackctl/ratelimit.json");
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(state).unwrap())
        .expect("never torn");
}

/// Without a home, state goes to a per-user directory under the temp dir, created private;
/// one that someone else could have planted there is refused (pacing then stays within the
/// process, with one warning) and the send still goes out.
#[test]
fn without_a_home_state_lives_in_a_private_per_user_temp_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let emu = Emu::start();
    let tmp = tempdir("tmpdir");
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let dir = tmp.join(format!("slackctl-{uid}"));
    let post_homeless = |text: &str| {
        Out::from(
            emu.paced_cmd()
                .env_remove("HOME")
                .env("TMPDIR", &tmp)
                .args(["run", "chat.postMessage", "channel=general"])
                .arg(format!("text={text}"))
                .output()
                .unwrap(),
        )
    };
    let out = post_homeless("first");
    out.assert_code(0).assert_no_panic();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(dir.join("ratelimit.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );

    // Writable by others (as if someone else had made it): refused, named, and the post goes out.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = post_homeless("second");
    out.assert_code(0).assert_no_panic();
    assert!(
        out.stderr.contains("can be written by other users")
            && out.stderr.contains(&dir.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches("pacing within this process only")
            .count(),
        1
    );

    // Owned by another user (only root can arrange that here).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if uid == 0 {
        let chown = std::process::Command::new("chown")
            .args(["65534", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let out = post_homeless("third");
        out.assert_code(0).assert_no_panic();
        assert!(
            out.stderr.contains("belongs to another user"),
            "{}",
            out.stderr
        );
    }
    let posted = emu.messages(&general_id(&emu));
    for t in ["first", "second"] {
        assert_eq!(posted.iter().filter(|m| m["text"] == t).count(), 1, "{t}");
    }
}
