//! Issue 13: secrets never printed, hostile numbers and files never abort, nothing invalid
//! is sent, and the Events API receiver survives a connection flood.

use crate::support::{Emu, Out, bare_cmd, slackctl, tempdir};
use std::process::Stdio;

/// Neither stream holds `secret`, and no panic text reached the user.
#[track_caller]
fn assert_hidden(out: &crate::support::Out, secret: &str) {
    out.assert_no_panic();
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "secret leaked\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn secret_parameters_never_appear_in_any_error_path() {
    let emu = Emu::start();
    let secret = "plainSecretValue99"; // does not look like a token
    // A validation error about the secret itself (wrong type), nothing sent.
    let json = format!(r#"{{"channel": "C1", "text": "hi", "token": ["{secret}"]}}"#);
    let out = emu.run(&["run", "chat.postMessage", "--parameters", &json]);
    out.assert_code(2);
    assert!(out.stderr.contains("token"), "{}", out.stderr);
    assert_hidden(&out, secret);
    // A validation error elsewhere while the secret is given.
    let tok = format!("token={secret}");
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=C1",
        "text=hi",
        "unfurl_links=maybe",
        &tok,
    ]);
    out.assert_code(2);
    assert_hidden(&out, secret);
    assert!(
        emu.requests().is_empty(),
        "nothing may be sent after exit 2"
    );
    // A failing call, verbose, and in st2 framing (the error goes to stdout there).
    let out = emu.run(&[
        "-v",
        "run",
        "-o",
        "st2",
        "chat.postMessage",
        "channel=C1",
        "text=hi",
        &tok,
    ]);
    out.assert_code(1);
    assert!(out.stdout.contains("invalid_auth"), "{}", out.stdout);
    assert!(out.stderr.contains("debug"), "-v logs: {}", out.stderr);
    assert_hidden(&out, secret);
    // OAuth secrets by role: client_secret, code, refresh_token.
    let out = emu.run(&[
        "-v",
        "run",
        "-o",
        "st2",
        "oauth.v2.access",
        "client_id=1.2",
        "client_secret=clientSecretABC",
        "code=oneTimeCodeXYZ",
        "refresh_token=refreshTokenQRS",
        "http_method=maybe",
    ]);
    out.assert_code(2);
    for s in ["clientSecretABC", "oneTimeCodeXYZ", "refreshTokenQRS"] {
        assert_hidden(&out, s);
    }
    // A webhook URL given as a parameter, to a host that refuses: the error names no path.
    let out = emu.run(&[
        "--retries",
        "0",
        "run",
        "post_message",
        "message=hi",
        "webhook_url=http://127.0.0.1:1/services/T0/B0/hookSecret123",
    ]);
    out.assert_code(1);
    assert_hidden(&out, "hookSecret123");
}

#[test]
fn url_passwords_are_masked_in_verbose_logs_and_errors() {
    let out = slackctl(&[
        "--api-url",
        "http://user:apiPassw0rd@127.0.0.1:1/api/",
        "--retries",
        "0",
        "-v",
        "run",
        "auth.test",
        "token=xoxb-1-2-abc",
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("user:[redacted]@"), "{}", out.stderr);
    assert_hidden(&out, "apiPassw0rd");
}

#[test]
fn out_of_range_numbers_exit_2_naming_the_range() {
    let emu = Emu::start();
    for args in [
        &["--timeout", "1e300", "run", "auth.test"][..],
        &["--timeout=-1", "run", "auth.test"],
        &["--timeout", "NaN", "run", "auth.test"],
        &["--max-wait", "18446744073709551616", "run", "auth.test"],
        &["sensor", "--ping-interval", "1e300"],
        &["sensor", "--idle-timeout", "inf"],
    ] {
        let out = emu.run(args);
        out.assert_code(2).assert_no_panic();
        assert!(out.stderr.contains("from 0"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("86400 seconds"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // The same numbers in the config file.
    let dir = tempdir("range");
    for (text, key) in [
        ("timeout: 1e300\n", "timeout in"),
        ("timeout: .nan\n", "timeout in"),
        (
            "rate_limits:\n  max_wait: 18446744073709551616\n",
            "rate_limits.max_wait in",
        ),
        ("rate_limits:\n  max_wait: -3\n", "rate_limits.max_wait in"),
    ] {
        let f = dir.join("slack.yaml");
        std::fs::write(&f, text).unwrap();
        let out = emu.run(&["--config", f.to_str().unwrap(), "run", "auth.test"]);
        out.assert_code(2).assert_no_panic();
        assert!(out.stderr.contains(key), "{text}: {}", out.stderr);
        assert!(
            out.stderr.contains("slack.yaml must be from 0"),
            "{}",
            out.stderr
        );
    }
    assert!(emu.requests().is_empty(), "nothing may be sent");
}

#[test]
fn param_files_are_bounded_and_regular() {
    let emu = Emu::start();
    let started = std::time::Instant::now();
    let out = emu.run(&["run", "chat.postMessage", "channel=C1", "@text=/dev/zero"]);
    out.assert_code(2).assert_no_panic();
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let dir = tempdir("files");
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let arg = format!("@text={}", fifo.display());
        let out = emu.run(&["run", "chat.postMessage", "channel=C1", &arg]);
        out.assert_code(2);
        assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    }
    // Over the configured limit: refused, naming the limit; under it: sent.
    let big = dir.join("big.txt");
    std::fs::write(&big, "x".repeat(2000)).unwrap();
    let arg = format!("@text={}", big.display());
    let out = Out::from(
        emu.cmd()
            .env("SLACKCTL_MAX_FILE_SIZE", "1K")
            .args(["run", "chat.postMessage", "channel=general", &arg])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("larger than 1024 bytes"),
        "{}",
        out.stderr
    );
    assert!(emu.requests().is_empty(), "nothing may be sent");
    let out = emu.run(&["run", "chat.postMessage", "channel=general", &arg]);
    out.assert_code(0);
    assert_eq!(emu.requests_to("chat.postMessage").len(), 1);
}

/// Runs slackctl with stdout a pipe whose reader is already gone.
fn run_into_closed_pipe(args: &[&str]) -> crate::support::Out {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let home = tempdir("pipe");
    let out = bare_cmd(&home)
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Out::from(out)
}

#[test]
fn a_closed_stdout_is_a_normal_end() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["man"],
        &["action", "list"],
        &["action", "get", "chat.postMessage"],
        &["run", "chat.postMessage", "--help"],
    ] {
        let out = run_into_closed_pipe(args);
        out.assert_code(0).assert_no_panic();
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_template_over_a_bound_fails_its_record_and_the_run_goes_on() {
    let emu = Emu::start();
    let dir = tempdir("tmpl");
    let recs = dir.join("r.jsonl");
    std::fs::write(
        &recs,
        "{\"id\": \"a\", \"n\": 3}\n{\"id\": \"b\", \"n\": 90000000}\n{\"id\": \"c\", \"n\": 2}\n{\"id\": \"d\"}\n",
    )
    .unwrap();
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=general",
        "text={{ 'ab' * n }}",
        "--each",
        recs.to_str().unwrap(),
        "--id-field",
        "id",
    ]);
    out.assert_code(1).assert_no_panic();
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    let by_id = |id: &str| lines.iter().find(|l| l["identifier"] == id).unwrap();
    assert_eq!(by_id("a")["success"], true);
    assert_eq!(by_id("c")["success"], true);
    let b = by_id("b");
    assert_eq!(b["success"], false);
    assert!(
        b["error"].as_str().unwrap().contains("too much work"),
        "{b}"
    );
    let d = by_id("d")["error"].as_str().unwrap().to_string();
    assert!(d.contains("no field `n`"), "{d}");
    // Only the two good records reached Slack.
    let sent: Vec<String> = emu
        .requests_to("chat.postMessage")
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().all(|r| !r.contains("abababababababab")),
        "{sent:?}"
    );
}

#[test]
fn empty_required_values_exit_2_naming_the_parameter() {
    let emu = Emu::start();
    for (args, want) in [
        (
            &["channel=", "text=hi"][..],
            "required parameter channel of chat.postMessage is empty",
        ),
        (&["channel=  ", "text=hi"], "parameter channel"),
        (&["channel=general", "text="], "(text given empty)"),
        (&["channel=general", "blocks=[]"], "(blocks given empty)"),
        (
            &["channel=general", "blocks=[]", "text="],
            "(blocks, text given empty)",
        ),
        (
            &["--parameters", r#"{"channel": "general", "text": ""}"#],
            "(text given empty)",
        ),
    ] {
        let mut all = vec!["run", "chat.postMessage"];
        all.extend_from_slice(args);
        let out = emu.run(&all);
        out.assert_code(2).assert_no_panic();
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    let out = emu.run(&[
        "run",
        "post_message",
        "message=",
        "webhook_url=http://127.0.0.1:1/x",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("required parameter message of post_message is empty"),
        "{}",
        out.stderr
    );
    assert!(emu.requests().is_empty(), "nothing may be sent");
}

/// `slackctl sensor --mode events` on a free port: the child, its base URL, its stdout lines.
fn events_receiver(
    emu: &Emu,
    secret: &str,
) -> (
    crate::support::KillOnDrop,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = emu
        .cmd()
        .env("SLACK_SIGNING_SECRET", secret)
        .args(["sensor", "--mode", "events", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(u) = line
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"))
            {
                let _ = url_tx.send(u.trim_end_matches('/').to_string());
            }
        }
    });
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = url_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the receiver says where it listens");
    (crate::support::KillOnDrop(child), url, lines)
}

fn signed_request(secret: &str, host: &str, body: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes());
    let sig: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "POST /slack/events HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: v0={sig}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends raw bytes and returns the status code of the answer.
fn exchange(host: &str, request: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn events_receiver_answers_signed_deliveries_through_a_connection_flood() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let emu = Emu::start();
    let secret = "flood-signing-secret-1";
    let (_child, url, lines) = events_receiver(&emu, secret);
    let host = url.trim_start_matches("http://").to_string();

    // 1,100 half-open connections: some send nothing, some half a request head, some a
    // whole head and half a body.
    let mut idle = Vec::new();
    for i in 0..1100 {
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        match i % 3 {
            0 => s
                .write_all(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
                .unwrap(),
            1 => s
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
                .unwrap(),
            _ => {}
        }
        idle.push(s);
    }
    // A signed delivery is answered at once, and its line comes out.
    let event = serde_json::json!({"type": "event_callback", "team_id": "T0EMULATOR",
        "event_id": "EvFLOOD1", "event": {"type": "message", "channel": "C0000001",
        "user": "U0000001", "text": "through the flood", "ts": "1700000000.000300"}})
    .to_string();
    let started = Instant::now();
    assert_eq!(exchange(&host, &signed_request(secret, &host, &event)), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let line = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("a trigger line");
    assert!(
        line.contains("EvFLOOD1") && line.contains("through the flood"),
        "{line}"
    );

    // A body that trickles (among the newest connections, so not closed to make room): 408
    // once the body deadline passes.
    let slow = {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(&host).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let head =
                format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n{{\"a\"");
            s.write_all(head.as_bytes()).unwrap();
            let started = Instant::now();
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            (resp, started.elapsed())
        })
    };
    // Oversized bodies stay refused with 413.
    let big = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    assert_eq!(exchange(&host, &big), 413);

    // Every idle connection is closed by the receiver (made room for, or timed out).
    let deadline = Instant::now() + Duration::from_secs(12);
    for mut s in idle {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // an error answer to a half-sent head
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break false;
                }
                Err(_) => break true, // reset by the receiver
            }
        };
        assert!(closed, "an idle connection was left open");
    }
    let (resp, took) = slow.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[cfg(unix)]
#[test]
fn exposed_config_files_get_one_warning_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let emu = Emu::start();
    let dir = tempdir("perms");
    let f = dir.join("slack.yaml");
    let path = f.to_str().unwrap();
    let set =
        |mode: u32| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    let warnings = |out: &Out| out.stderr.matches("warning: config file").count();
    // A token others can read.
    std::fs::write(&f, format!("action_token: {}\n", emu.token("bot"))).unwrap();
    set(0o644);
    let out = emu.run(&["--config", path, "run", "auth.test"]);
    out.assert_code(0);
    assert_eq!(warnings(&out), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "config file {path} holds a token that other users can read; run `chmod 600 {path}`"
        )),
        "{}",
        out.stderr
    );
    // Others can write it (even without a token).
    std::fs::write(&f, "timeout: 10\n").unwrap();
    set(0o666);
    let out = emu.run(&["--config", path, "run", "auth.test"]);
    assert_eq!(warnings(&out), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("can be changed by other users"),
        "{}",
        out.stderr
    );
    // Private, or public without secrets: no warning.
    std::fs::write(&f, format!("action_token: {}\n", emu.token("bot"))).unwrap();
    set(0o600);
    let out = emu.run(&["--config", path, "run", "auth.test"]);
    assert_eq!(warnings(&out), 0, "{}", out.stderr);
    std::fs::write(&f, "timeout: 10\n").unwrap();
    set(0o644);
    let out = emu.run(&["--config", path, "run", "auth.test"]);
    assert_eq!(warnings(&out), 0, "{}", out.stderr);
}

#[test]
fn messages_read_as_sentences() {
    let out = slackctl(&["run", "auth.test"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .starts_with("slackctl: error: auth.test needs a token and none is configured\n"),
        "{}",
        out.stderr
    );
    let out = slackctl(&["run", "apps.connections.open"]);
    assert!(
        out.stderr.contains("needs an app-level token (xapp-…)"),
        "{}",
        out.stderr
    );
    let out = slackctl(&["run", "admin.users.list", "team_id=T1"]);
    assert!(
        out.stderr.contains("needs a user token (xoxp-…)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("xoxb"),
        "only the kind that fits: {}",
        out.stderr
    );
    // Each hint stands under its own error.
    let out = slackctl(&["run", "chat.postMessage", "txt=1", "unfurl_links=maybe"]);
    out.assert_code(2);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {}", out.stderr))
    };
    assert_eq!(at("did you mean `text`"), at("has no parameter `txt`") + 1);
    assert_eq!(
        at("see `slackctl run chat.postMessage --help`"),
        at("missing required parameter") + 1
    );
    assert!(at("has no parameter") < at("invalid value for boolean"));
    assert!(at("did you mean") < at("invalid value for boolean"));
    // Unknown statuses are refused with the allowed values.
    let out = slackctl(&["action", "list", "--status", "bogus"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("current, deprecated, retired, undocumented, sdk_only"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn not_allowed_token_type_names_only_the_kind_that_fits() {
    let emu = Emu::start();
    emu.fault(serde_json::json!({"method": "admin.users.list", "error": "not_allowed_token_type"}));
    let out = emu.run(&["run", "admin.users.list", "team_id=T1"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("not_allowed_token_type"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("admin.users.list needs a user token (xoxp-…)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("xapp-") && !out.stderr.contains("xoxb-"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_absurd_retry_after_is_an_error_not_an_abort() {
    let emu = Emu::start();
    emu.fault(
        serde_json::json!({"path": "/api/auth.test", "status": 429, "retry_after": u64::MAX}),
    );
    let out = emu.run(&["run", "auth.test"]);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.stderr.contains("rate limited by Slack (HTTP 429"),
        "{}",
        out.stderr
    );
    assert_eq!(
        emu.requests_to("auth.test").len(),
        1,
        "no retry after an absurd wait"
    );
}

#[test]
fn emulator_numbers_out_of_range_exit_2_naming_the_range() {
    for (args, range) in [
        (&["--users", "3"][..], "from 4 to 10000"),
        (&["--users", "18446744073709551616"], "from 4 to 10000"),
        (&["--users", "1e300"], "from 4 to 10000"),
        (&["--page-size", "0"], "from 1 to 1000"),
        (&["--page-size=-5"], "from 1 to 1000"),
        (&["--max-page-size", "1001"], "from 1 to 1000"),
    ] {
        // A bad number must stop it before it listens: with a valid one it would run until
        // killed, and the bounded wait below would fail.
        let home = tempdir("emu-range");
        let mut child = crate::support::bare_cmd(&home)
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?}: the emulator started");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = Out::from(child.wait_with_output().unwrap());
        out.assert_code(2).assert_no_panic();
        assert!(out.stderr.contains(range), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
    // The ends of the ranges are accepted: 4 users (plus the bot and Slackbot), pages of 1.
    let emu = Emu::start_with(&[
        "--users",
        "4",
        "--page-size",
        "1",
        "--max-page-size",
        "1000",
    ]);
    let out = emu.run(&["run", "users.list"]);
    out.assert_code(0);
    assert_eq!(out.json()["members"].as_array().unwrap().len(), 1);
    let out = emu.run(&["run", "users.list", "--all"]);
    out.assert_code(0);
    assert_eq!(out.json()["members"].as_array().unwrap().len(), 6);
}
