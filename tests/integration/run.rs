//! `slackctl run` against the emulator: requests as Slack expects them, validation before
//! sending, errors, retries, pagination and output formats.

use crate::support::*;
use serde_json::{Value, json};

fn general(emu: &Emu) -> String {
    let out = emu.run(&["run", "conversations.list", "--all"]);
    out.assert_code(0);
    let j = out.json();
    j["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .expect("seeded #general")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn post_message_sends_json_with_bearer_and_returns_slack_json() {
    let emu = Emu::start();
    let ch = general(&emu);
    emu.clear_requests();
    let ch_arg = format!("channel={ch}");
    let out = emu.run(&[
        "run",
        "slack.chat.postMessage",
        &ch_arg,
        "text=hello *world*",
        "unfurl_links=false",
    ]);
    out.assert_code(0).assert_no_panic();
    let j = out.json();
    assert_eq!(j["ok"], true);
    let ts = j["ts"].as_str().expect("ts is a string");
    assert!(
        out.stdout.trim_end().lines().count() == 1,
        "compact when piped"
    );
    let reqs = emu.requests_to("chat.postMessage");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["auth"], "bearer");
    assert_eq!(r["content_type"], "application/json; charset=utf-8");
    assert_eq!(r["args"]["unfurl_links"], false);
    assert!(
        r["args"].get("token").is_none()
            && r["args"].get("end_point").is_none()
            && r["args"].get("http_method").is_none()
    );
    assert!(r["rejected"].is_null(), "{r}");
    // A later read sees the message, with the exact ts.
    let hist = emu.run(&["run", "conversations.history", &ch_arg]).json();
    assert_eq!(hist["messages"][0]["ts"], ts);
    assert_eq!(hist["messages"][0]["text"], "hello *world*");
}

#[test]
fn user_agent_names_slackctl_and_its_version() {
    let emu = Emu::start();
    emu.run(&["run", "auth.test"]).assert_code(0);
    let ua = emu.requests_to("auth.test")[0]["user_agent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ua.starts_with(&format!("slackctl/{}", env!("CARGO_PKG_VERSION"))),
        "{ua}"
    );
}

#[test]
fn get_methods_use_the_query_string_without_the_token() {
    let emu = Emu::start();
    let out = emu.run(&["run", "users.info", "user=U0000001"]);
    out.assert_code(0);
    let r = &emu.requests_to("users.info")[0];
    assert_eq!(r["http_method"], "GET");
    assert_eq!(r["auth"], "bearer");
    let raw = serde_json::to_string(r).unwrap();
    assert!(
        !raw.contains(&emu.token("bot")),
        "token must never be in the query: {raw}"
    );
}

#[test]
fn forms_carry_json_text_and_sdk_booleans() {
    let emu = Emu::start();
    let ch = format!("channel={}", general(&emu));
    emu.clear_requests();
    // Forcing GET turns the JSON-capable method into a query: structured values become JSON text.
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "http_method=GET",
        &ch,
        "text=t",
        "mrkdwn=true",
        r#"blocks=[{"type":"divider"}]"#,
    ]);
    out.assert_code(0);
    let r = &emu.requests_to("chat.postMessage")[0];
    assert_eq!(r["http_method"], "GET");
    // slack_sdk writes booleans in forms and queries as 1/0.
    assert_eq!(r["args"]["mrkdwn"], "1");
    let blocks: Value = serde_json::from_str(r["args"]["blocks"].as_str().unwrap()).unwrap();
    assert_eq!(blocks, json!([{"type": "divider"}]));
    // A form POST (files.getUploadURLExternal takes no JSON): no charset on the content type.
    let out = emu.run(&[
        "run",
        "files.getUploadURLExternal",
        "filename=a.txt",
        "length=5",
    ]);
    out.assert_code(0);
    let r = &emu.requests_to("files.getUploadURLExternal")[0];
    assert_eq!(r["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(r["args"]["length"], "5");
}

#[test]
fn validation_errors_exit_2_and_send_nothing() {
    let emu = Emu::start();
    let cases: &[&[&str]] = &[
        &["run", "chat.postMessage", "text=no channel"],
        &["run", "chat.postMessage", "channel=C1"],
        &[
            "run",
            "chat.postMessage",
            "channel=C1",
            "text=x",
            "unfurl_links=yesplease",
        ],
        &[
            "run",
            "chat.postMessage",
            "channel=C1",
            "text=x",
            "blocks=[{\"type\":",
        ],
        &["run", "chat.postMessage", "channel=C1", "txt=x"],
        &[
            "run",
            "chat.postMessage",
            "channel=C1",
            "text=x",
            "end_point=chat.delete",
        ],
        &["run", "conversations.list", "limit=ten"],
        &["run", "chat.postMessage", "channel=C1", "text"],
        &["run", "chat.postMessage", "--parameters", "{not json"],
        &[
            "run",
            "chat.postMessage",
            "channel=C1",
            "text=x",
            "http_method=PUT",
        ],
        &["run", "chat.postMessage", "@text=/nonexistent/file"],
        &["run", "chat.postMessage", "--bogus-flag"],
    ];
    for args in cases {
        let out = emu.run(args);
        assert_eq!(out.code, 2, "{args:?}\n{}", out.stderr);
        out.assert_no_panic();
        assert!(
            out.stderr.starts_with("slackctl: error:") || out.stderr.contains("error:"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(
        emu.requests().is_empty(),
        "nothing may be sent: {:?}",
        emu.requests()
    );
    let out = emu.run(&["run", "chat.postMessage", "channel=C1", "txt=x"]);
    assert!(out.stderr.contains("did you mean `text`"), "{}", out.stderr);
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=C1",
        "text=x",
        "end_point=chat.delete",
    ]);
    assert!(out.stderr.contains("immutable"), "{}", out.stderr);
}

#[test]
fn unknown_params_pass_with_the_explicit_flag() {
    let emu = Emu::start();
    let ch = format!("channel={}", general(&emu));
    emu.clear_requests();
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "--allow-unknown-params",
        &ch,
        "text=x",
        "brand_new_arg=1",
    ]);
    out.assert_code(0);
    assert_eq!(
        emu.requests_to("chat.postMessage")[0]["args"]["brand_new_arg"],
        "1"
    );
}

#[test]
fn missing_token_exits_2_and_token_less_methods_work() {
    let emu = Emu::start();
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_API_URL", emu.api_url())
            .args(["run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(out.stderr.contains("SLACK_TOKEN"), "{}", out.stderr);
    assert!(emu.requests().is_empty());
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_API_URL", emu.api_url())
            .args(["run", "api.test", "foo=bar"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(out.json()["args"]["foo"], "bar");
    assert_eq!(emu.requests_to("api.test")[0]["auth"], "none");
}

#[test]
fn slack_errors_exit_1_naming_the_error() {
    let emu = Emu::start();
    let out = emu.run(&["run", "chat.postMessage", "channel=C_NOPE", "text=x"]);
    out.assert_code(1).assert_no_panic();
    assert!(out.stderr.contains("channel_not_found"), "{}", out.stderr);
    let out = emu.run(&["run", "api.test", "error=my_error"]);
    out.assert_code(1);
    assert!(out.stderr.contains("my_error"), "{}", out.stderr);
    // missing_scope shows needed and provided.
    let limited = format!("token={}", emu.token("limited_bot"));
    let out = emu.run(&["run", "users.list", &limited]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("missing_scope") && out.stderr.contains("needed users:read"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("provided chat:write"), "{}", out.stderr);
    // invalid_auth says what to check; the bad token itself is never printed.
    let out = emu.run(&["run", "auth.test", "token=xoxb-not-a-real-token-123"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("invalid_auth") && out.stderr.contains("SLACK_TOKEN"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("xoxb-not-a-real-token-123"));
    // Wrong token kind.
    let out = emu.run(&["run", "rtm.connect"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("not_allowed_token_type"),
        "{}",
        out.stderr
    );
}

#[test]
fn rate_limits_wait_retry_after_then_succeed() {
    let emu = Emu::start();
    emu.fault(json!({"path": "/api/auth.test", "status": 429, "retry_after": 1, "times": 2}));
    let started = std::time::Instant::now();
    let out = emu.run(&["run", "auth.test"]);
    out.assert_code(0);
    assert!(
        started.elapsed().as_secs_f64() >= 2.0,
        "must wait Retry-After each time"
    );
    assert_eq!(emu.requests_to("auth.test").len(), 3);
    assert!(out.stderr.contains("rate limited"), "{}", out.stderr);
    // Retries are bounded.
    emu.fault(json!({"path": "/api/auth.test", "status": 429, "retry_after": 0, "times": 5}));
    let out = emu.run(&["--retries", "1", "run", "auth.test"]);
    out.assert_code(1);
    assert!(out.stderr.contains("429"), "{}", out.stderr);
}

#[test]
fn html_error_pages_are_clear_errors_and_writes_are_not_resent() {
    let emu = Emu::start();
    let ch = format!("channel={}", general(&emu));
    emu.clear_requests();
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    emu.fault(json!({"path": "/api/chat.postMessage", "status": 502, "body": html, "content_type": "text/html", "times": 3}));
    let out = emu.run(&["run", "chat.postMessage", &ch, "text=x"]);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.stderr.contains("502") && out.stderr.contains("instead of JSON"),
        "{}",
        out.stderr
    );
    assert_eq!(
        emu.requests_to("chat.postMessage").len(),
        1,
        "a write is not resent after a 5xx"
    );
    // A read is retried and then succeeds.
    emu.fault(json!({"path": "/api/users.info", "status": 503, "body": html, "content_type": "text/html", "times": 1}));
    let out = emu.run(&["run", "users.info", "user=U0000001"]);
    out.assert_code(0);
    assert_eq!(emu.requests_to("users.info").len(), 2);
    // Opting in resends writes.
    emu.fault(json!({"path": "/api/chat.postMessage", "status": 500, "body": html, "content_type": "text/html", "times": 1}));
    let out = emu.run(&["run", "chat.postMessage", "--retry-writes", &ch, "text=y"]);
    out.assert_code(0);
}

#[test]
fn timeouts_are_bounded() {
    let emu = Emu::start();
    emu.fault(
        json!({"path": "/api/chat.postMessage", "status": 200, "delay_ms": 3000, "times": 1}),
    );
    let started = std::time::Instant::now();
    let out = emu.run(&[
        "--timeout",
        "0.5",
        "run",
        "chat.postMessage",
        "channel=C1",
        "text=x",
    ]);
    out.assert_code(1).assert_no_panic();
    assert!(started.elapsed().as_secs_f64() < 2.5);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
}

#[test]
fn all_pages_are_followed_and_merged_or_streamed() {
    let emu = Emu::start();
    let one = emu.run(&["run", "users.list", "limit=7"]).json();
    assert_eq!(one["members"].as_array().unwrap().len(), 7);
    assert!(
        !one["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    emu.clear_requests();
    let all = emu.run(&["run", "users.list", "--all", "limit=7"]).json();
    let members = all["members"].as_array().unwrap();
    let pages = emu.requests_to("users.list");
    assert!(pages.len() >= 4, "{}", pages.len());
    assert!(members.len() > 25, "every page merged: {}", members.len());
    assert_eq!(all["response_metadata"]["next_cursor"], "");
    // Every page re-sends the original arguments.
    assert!(pages.iter().all(|p| p["args"]["limit"] == "7"));
    let ids: std::collections::HashSet<&str> =
        members.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), members.len(), "no duplicates across pages");
    let out = emu.run(&["run", "users.list", "--all", "--output", "jsonl", "limit=5"]);
    out.assert_code(0);
    assert_eq!(out.stdout.lines().count(), members.len());
    for line in out.stdout.lines() {
        assert!(serde_json::from_str::<Value>(line).unwrap()["id"].is_string());
    }
    let out = emu.run(&["run", "chat.postMessage", "--all", "channel=C1", "text=x"]);
    out.assert_code(2);
}

#[test]
fn st2_output_is_framed_like_the_python_wrapper() {
    let emu = Emu::start();
    let out = emu.run(&["run", "api.test", "--output", "st2", "foo=bär"]);
    out.assert_code(0);
    let d = "%%%%%~=~=~=************=~=~=~%%%%";
    assert!(
        out.stdout.starts_with(d) && out.stdout.ends_with(d),
        "{}",
        out.stdout
    );
    let inner = &out.stdout[d.len()..out.stdout.len() - d.len()];
    assert!(inner.ends_with('\n'));
    assert!(inner.starts_with("{\"result\": {\"ok\": true"), "{inner}");
    assert!(
        inner.contains("\"b\\u00e4r\""),
        "ASCII-escaped like json.dumps: {inner}"
    );
    let v: Value = serde_json::from_str(inner).unwrap();
    assert_eq!(v["result"]["args"]["foo"], "bär");
    assert!(v["status"].is_null());
    let out = emu.run(&["run", "api.test", "--output", "st2", "error=boom"]);
    out.assert_code(1);
    let inner = &out.stdout[d.len()..out.stdout.len() - d.len()];
    let v: Value = serde_json::from_str(inner).unwrap();
    assert_eq!(v["status"], false);
    assert_eq!(v["result"]["error"], "boom");
}

#[test]
fn yaml_output_and_parameters_from_json_and_stdin() {
    let emu = Emu::start();
    let out = emu.run(&["run", "api.test", "-o", "yaml", "foo=yes"]);
    out.assert_code(0);
    let v: Value = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(v["args"]["foo"], "yes");
    let out = emu.run(&[
        "run",
        "api.test",
        "--parameters",
        r#"{"foo": "from-json", "error": null}"#,
    ]);
    out.assert_code(0);
    assert_eq!(out.json()["args"]["foo"], "from-json");
    let mut child = emu
        .cmd()
        .args(["run", "api.test", "--parameters", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"parameters": {"foo": "stdin"}}"#)
        .unwrap();
    let out = Out::from(child.wait_with_output().unwrap());
    out.assert_code(0);
    assert_eq!(out.json()["args"]["foo"], "stdin");
}

#[test]
fn file_arguments_and_large_values() {
    let emu = Emu::start();
    let ch = format!("channel={}", general(&emu));
    let dir = tempdir("args");
    let big: String = "x".repeat(200_000);
    let f = dir.join("big.txt");
    std::fs::write(&f, &big).unwrap();
    let at = format!("@text={}", f.display());
    let out = emu.run(&["run", "chat.postMessage", &ch, &at]);
    out.assert_code(0).assert_no_panic();
    let r = &emu.requests_to("chat.postMessage")[0];
    assert_eq!(r["args"]["text"].as_str().unwrap().len(), 200_000);
}

#[test]
fn timestamps_keep_their_exact_text() {
    let emu = Emu::start();
    let ch = general(&emu);
    let chan = format!("channel={ch}");
    let posted = emu
        .run(&["run", "chat.postMessage", &chan, "text=to delete"])
        .json();
    let ts = posted["ts"].as_str().unwrap().to_string();
    // Given as a JSON number, as old st2 workflows do, the ts keeps its digits.
    let params = format!(r#"{{"channel": "{ch}", "ts": {ts}}}"#);
    let out = emu.run(&["run", "chat.delete", "--parameters", &params]);
    out.assert_code(0);
    assert_eq!(emu.requests_to("chat.delete")[0]["args"]["ts"], ts.as_str());
}

#[test]
fn secrets_never_appear_in_any_output() {
    let emu = Emu::start();
    let bot = emu.token("bot");
    for args in [
        vec!["-v", "run", "auth.test"],
        vec!["-v", "run", "chat.postMessage", "channel=C_NOPE", "text=x"],
        vec![
            "-v",
            "--api-url",
            "http://127.0.0.1:9/api/",
            "--retries",
            "0",
            "run",
            "auth.test",
        ],
    ] {
        let out = emu.run(&args);
        assert!(
            !out.stdout.contains(&bot) && !out.stderr.contains(&bot),
            "{args:?} leaked the token"
        );
    }
    let tok = format!("token={bot}");
    let out = emu.run(&[
        "-v",
        "run",
        "chat.postMessage",
        "channel=C_NOPE",
        "text=x",
        &tok,
        "--output",
        "st2",
    ]);
    assert!(!out.stdout.contains(&bot) && !out.stderr.contains(&bot));
}

#[test]
fn retired_methods_warn_and_name_the_replacement() {
    let emu = Emu::start();
    let out = emu.run(&["run", "channels.list"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("retired") && out.stderr.contains("conversations.list"),
        "{}",
        out.stderr
    );
}

#[test]
fn closed_stdout_is_not_a_crash() {
    let emu = Emu::start();
    let mut child = emu
        .cmd()
        .args(["run", "users.list", "--all", "-o", "jsonl", "limit=2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = Out::from(child.wait_with_output().unwrap());
    out.assert_no_panic();
    assert!(out.code == 0 || out.code == 1, "{}", out.code);
}
