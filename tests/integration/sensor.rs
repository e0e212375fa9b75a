//! `slackctl sensor`, the real binary against the emulator's Socket Mode / RTM sockets and
//! its Events API deliveries. Every test counts lines: each posted message must come out
//! exactly once, whatever the emulator does to the connection in between.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(8);

/// A running `slackctl sensor`; stdout lines and stderr are collected by threads.
struct Sensor {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The stderr reader; joined once the process has exited, so nothing is missed.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Sensor {
    /// Socket Mode (app token) plus the bot token for lookups, unless `env` says otherwise.
    fn start(emu: &Emu, args: &[&str], env: &[(&str, &str)]) -> Sensor {
        Self::start_bounded(emu, args, env, None)
    }

    /// As [`Sensor::start`]; with `bound`, at most that many lines wait unread, so a reader
    /// that stops taking lines holds the sensor up (its stdout pipe fills).
    fn start_bounded(
        emu: &Emu,
        args: &[&str],
        env: &[(&str, &str)],
        bound: Option<usize>,
    ) -> Sensor {
        let mut c = emu.cmd();
        c.env("SLACK_APP_TOKEN", emu.token("app"));
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .arg("sensor")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sensor");
        type Send = Box<dyn Fn(String) -> bool + std::marker::Send>;
        let (send, lines): (Send, mpsc::Receiver<String>) = match bound {
            Some(b) => {
                let (tx, rx) = mpsc::sync_channel(b);
                (Box::new(move |l| tx.send(l).is_ok()), rx)
            }
            None => {
                let (tx, rx) = mpsc::channel();
                (Box::new(move |l| tx.send(l).is_ok()), rx)
            }
        };
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !send(line) {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut buf = String::new();
            while let Ok(n) = r.read_line(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&buf);
                buf.clear();
            }
        });
        Sensor {
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to WAIT) until stderr contains `needle`: the reader thread may lag behind
    /// the process under load. Returns all of stderr either way.
    fn stderr_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.stderr();
            if text.contains(needle) || Instant::now() >= deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next `n` trigger lines, parsed; fails the test with stderr after WAIT.
    #[track_caller]
    fn take(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(
                    serde_json::from_str::<Value>(&l)
                        .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")),
                ),
                Err(_) => panic!(
                    "expected {n} lines, got {}: {got:#?}\nstderr:\n{}",
                    got.len(),
                    self.stderr()
                ),
            }
        }
        got
    }

    /// Asserts that no further line arrives within `d`.
    #[track_caller]
    fn assert_no_more(&self, d: Duration) {
        if let Ok(l) = self.lines.recv_timeout(d) {
            panic!("unexpected extra line: {l}\nstderr:\n{}", self.stderr());
        }
    }

    #[track_caller]
    fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("stderr never said {needle:?}:\n{}", self.stderr());
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
    }

    /// Waits for the exit code (killing the process after WAIT).
    #[track_caller]
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                if let Some(r) = self.stderr_reader.take() {
                    let _ = r.join();
                }
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sensor did not exit\nstderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything left on stdout after the process ended.
    fn rest(&self) -> Vec<Value> {
        let mut v = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
            v.push(serde_json::from_str(&l).unwrap());
        }
        v
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(emu: &Emu, body: Value) -> Vec<Value> {
    let answer = http(
        "POST",
        &emu.base_url(),
        "/_emulator/messages",
        Some(&body.to_string()),
    );
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v["messages"].as_array().unwrap().clone()
}

/// Ids of open (not draining, not silent) connections of a kind.
fn open_conns(emu: &Emu, kind: &str) -> Vec<u64> {
    sockets(emu)["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind && c["state"] == "open")
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

/// Waits until exactly one open connection of `kind` exists and it is not in `old`.
#[track_caller]
fn wait_fresh_conn(emu: &Emu, kind: &str, old: &[u64]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let open = open_conns(emu, kind);
        if open.len() == 1 && !old.contains(&open[0]) {
            return open[0];
        }
        assert!(
            Instant::now() < deadline,
            "no fresh {kind} connection: {}",
            sockets(emu)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line's `timestamp_raw`, checked unique, in order.
#[track_caller]
fn unique_ts(lines: &[Value]) -> Vec<String> {
    let ts: Vec<String> = lines
        .iter()
        .map(|l| l["payload"]["timestamp_raw"].as_str().unwrap().to_string())
        .collect();
    let set: HashSet<&String> = ts.iter().collect();
    assert_eq!(set.len(), ts.len(), "duplicate lines: {ts:?}");
    ts
}

fn posted_ts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["ts"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_same_set(got: &[String], want: &[String]) {
    let g: HashSet<&String> = got.iter().collect();
    let w: HashSet<&String> = want.iter().collect();
    assert_eq!(g, w, "emitted and posted messages differ");
    assert_eq!(got.len(), want.len());
}

#[test]
fn socket_mode_emits_each_message_once_in_st2_shape() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    // Same-second messages: one batch shares its second and differs only after the dot.
    let posted = post(
        &emu,
        json!({"channel": "general", "text": "deploy", "count": 20}),
    );
    let lines = s.take(20);
    let ts = unique_ts(&lines);
    assert_same_set(&ts, &posted_ts(&posted));
    let seconds: HashSet<i64> = lines
        .iter()
        .map(|l| l["payload"]["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(seconds.len(), 1, "the batch shares one second");
    let l = &lines[0];
    assert_eq!(
        l.as_object().unwrap().len(),
        2,
        "only trigger and payload: {l}"
    );
    assert_eq!(l["trigger"], "slack.message");
    let p = &l["payload"];
    assert_eq!(
        p["user"],
        json!({"id": "U0000001", "name": "user01", "first_name": "Ada", "last_name": "Rossum",
               "real_name": "Ada Rossum", "is_admin": true, "is_owner": true, "is_bot": false,
               "email": "user01@example.com", "title": "Designer"})
    );
    assert_eq!(
        p["channel"],
        json!({"id": "C0000001", "name": "general", "topic": "", "is_group": false})
    );
    assert_eq!(
        p["timestamp"],
        json!(
            p["timestamp_raw"]
                .as_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        )
    );
    assert_eq!(p["channel_type"], "channel");
    assert_eq!(p["team"], "T0EMULATOR");
    assert!(p["event_id"].as_str().unwrap().starts_with("Ev"));
    assert!(p.get("subtype").is_none() && p.get("thread_ts").is_none());
    s.assert_no_more(Duration::from_millis(300));
    // Every envelope acknowledged; names looked up once, not per message.
    let st = sockets(&emu);
    assert_eq!(st["delivered"], 20, "{st}");
    assert_eq!(st["acked"], 20, "{st}");
    assert!(emu.requests_to("users.info").len() <= 2, "cached lookups");
    assert!(
        emu.requests_to("conversations.info").len() <= 2,
        "cached lookups"
    );
    let open = emu.requests_to("apps.connections.open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["auth"], "bearer");
    assert_eq!(open[0]["token_kind"], "app");
}

#[test]
fn reconnects_after_every_disconnect_reason_without_losing_messages() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    let mut want = posted_ts(&post(&emu, json!({"channel": "general", "text": "first"})));
    let mut got = s.take(1);
    let mut old = vec![wait_fresh_conn(&emu, "socket_mode", &[])];
    for reason in ["warning", "refresh_requested", "too_many_websockets"] {
        let r = socket_action(&emu, "disconnect", json!({"reason": reason}));
        assert_eq!(r["affected"], 1, "{r}");
        // Posted while the client is switching sockets: must still arrive, once.
        want.extend(posted_ts(&post(
            &emu,
            json!({"channel": "general", "text": reason, "count": 2}),
        )));
        got.extend(s.take(2));
        let fresh = wait_fresh_conn(&emu, "socket_mode", &old);
        old.push(fresh);
        want.extend(posted_ts(&post(
            &emu,
            json!({"channel": "random", "text": reason}),
        )));
        got.extend(s.take(1));
    }
    assert_same_set(&unique_ts(&got), &want);
    s.assert_no_more(Duration::from_millis(300));
    assert!(emu.requests_to("apps.connections.open").len() >= 4);
}

#[test]
fn link_disabled_stops_with_a_clear_error() {
    let emu = Emu::start();
    let mut s = Sensor::start(&emu, &[], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    socket_action(&emu, "disconnect", json!({"reason": "link_disabled"}));
    assert_eq!(s.wait(), 1);
    let err = s.stderr();
    assert!(
        err.contains("link_disabled") && err.contains("Socket Mode"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn dropped_socket_reconnects_and_redelivers_unacknowledged_events() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    let mut want = posted_ts(&post(&emu, json!({"channel": "general", "count": 3})));
    let mut got = s.take(3);
    let first = wait_fresh_conn(&emu, "socket_mode", &[]);
    socket_action(&emu, "drop", json!({}));
    want.extend(posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "after drop", "count": 3}),
    )));
    got.extend(s.take(3));
    wait_fresh_conn(&emu, "socket_mode", &[first]);
    assert_same_set(&unique_ts(&got), &want);
    s.assert_no_more(Duration::from_millis(300));
    let err = s.stderr_with("connection lost");
    assert!(err.contains("connection lost"), "{err}");
}

#[test]
fn silent_socket_is_noticed_by_the_pong_timeout() {
    let emu = Emu::start();
    // Until the client notices, redeliveries still go to the deaf socket: allow many.
    socket_action(
        &emu,
        "config",
        json!({"ack_timeout_ms": 400, "max_attempts": 100}),
    );
    let s = Sensor::start(
        &emu,
        &["--ping-interval", "0.2", "--pong-timeout", "0.6"],
        &[],
    );
    let mut want = posted_ts(&post(&emu, json!({"channel": "general"})));
    let mut got = s.take(1);
    let first = wait_fresh_conn(&emu, "socket_mode", &[]);
    socket_action(&emu, "silent", json!({}));
    // Sent into the silent socket: lost there, redelivered once the client reconnects.
    want.extend(posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "into the void", "count": 2}),
    )));
    got.extend(s.take(2));
    wait_fresh_conn(&emu, "socket_mode", &[first]);
    assert_same_set(&unique_ts(&got), &want);
    let err = s.stderr_with("no pong");
    assert!(err.contains("no pong"), "{err}");
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn idle_watchdog_reconnects_a_socket_with_no_traffic() {
    let emu = Emu::start();
    // The server pings often (traffic); the client pings rarely, so only the no-traffic rule
    // can notice the silence.
    socket_action(&emu, "config", json!({"ping_interval_ms": 100}));
    let s = Sensor::start(
        &emu,
        &["--ping-interval", "30", "--idle-timeout", "0.6"],
        &[],
    );
    let first = wait_fresh_conn(&emu, "socket_mode", &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        open_conns(&emu, "socket_mode"),
        [first],
        "server pings keep it alive"
    );
    socket_action(&emu, "silent", json!({}));
    s.wait_stderr("nothing received");
    wait_fresh_conn(&emu, "socket_mode", &[first]);
    let want = posted_ts(&post(&emu, json!({"channel": "general"})));
    assert_same_set(&unique_ts(&s.take(1)), &want);
}

#[test]
fn redeliveries_are_acknowledged_but_emitted_once() {
    let emu = Emu::start();
    // Acks arrive after the timeout: every envelope is sent again at least once.
    socket_action(
        &emu,
        "config",
        json!({"ack_timeout_ms": 150, "ack_delay_ms": 500}),
    );
    let s = Sensor::start(&emu, &[], &[]);
    let want = posted_ts(&post(&emu, json!({"channel": "general", "count": 5})));
    let got = s.take(5);
    s.assert_no_more(Duration::from_millis(1200));
    socket_action(
        &emu,
        "config",
        json!({"ack_timeout_ms": 2000, "ack_delay_ms": 0}),
    );
    // Forced redeliveries: a new envelope id, and the very same envelope again.
    socket_action(&emu, "redeliver", json!({"count": 3}));
    socket_action(
        &emu,
        "redeliver",
        json!({"count": 2, "same_envelope": true}),
    );
    s.assert_no_more(Duration::from_millis(500));
    assert_same_set(&unique_ts(&got), &want);
    let st = sockets(&emu);
    assert!(st["redelivered"].as_u64().unwrap() >= 10, "{st}");
    assert_eq!(st["unacked"], 0, "repeats are acknowledged too: {st}");
}

#[test]
fn direct_messages_private_channels_group_dms_and_threads_are_emitted() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    let parent = post(&emu, json!({"channel": "general", "text": "parent"}));
    let parent_ts = parent[0]["ts"].as_str().unwrap().to_string();
    post(
        &emu,
        json!({"channel": "D0000001", "user": "U0000002", "text": "dm"}),
    );
    post(&emu, json!({"channel": "leadership", "text": "private"}));
    post(&emu, json!({"channel": "G0000002", "text": "group dm"}));
    post(
        &emu,
        json!({"channel": "general", "user": "U0000003", "text": "reply", "thread_ts": parent_ts}),
    );
    let lines = s.take(5);
    unique_ts(&lines);
    let by_text = |t: &str| -> Value {
        lines
            .iter()
            .find(|l| l["payload"]["text"] == t)
            .unwrap_or_else(|| panic!("no line for {t}: {lines:#?}"))["payload"]
            .clone()
    };
    let dm = by_text("dm");
    assert_eq!(dm["channel_type"], "im");
    assert_eq!(dm["channel"]["id"], "D0000001");
    assert_eq!(dm["user"]["name"], "user02");
    let private = by_text("private");
    assert_eq!(private["channel_type"], "group");
    assert_eq!(private["channel"]["name"], "leadership");
    assert_eq!(private["channel"]["is_group"], true);
    assert_eq!(by_text("group dm")["channel_type"], "mpim");
    let reply = by_text("reply");
    assert_eq!(reply["thread_ts"], parent_ts.as_str());
    assert_eq!(reply["user"]["id"], "U0000003");
}

#[test]
fn bot_messages_are_filtered_by_default() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    post(
        &emu,
        json!({"channel": "general", "as": "bot", "text": "from the app"}),
    );
    post(
        &emu,
        json!({"channel": "general", "as": "webhook", "text": "from a webhook"}),
    );
    post(
        &emu,
        json!({"channel": "general", "subtype": "channel_join", "text": "joined"}),
    );
    post(&emu, json!({"channel": "general", "text": "human"}));
    let lines = s.take(1);
    assert_eq!(lines[0]["payload"]["text"], "human");
    s.assert_no_more(Duration::from_millis(300));
    assert_eq!(
        sockets(&emu)["acked"],
        4,
        "filtered envelopes are acknowledged too"
    );
}

#[test]
fn bot_messages_and_chosen_subtypes_pass_with_flags() {
    let emu = Emu::start();
    let s = Sensor::start(
        &emu,
        &[
            "--allow-bot-messages",
            "--subtypes",
            "thread_broadcast,me_message",
        ],
        &[],
    );
    post(
        &emu,
        json!({"channel": "general", "as": "bot", "text": "from the app"}),
    );
    post(
        &emu,
        json!({"channel": "general", "as": "webhook", "text": "from a webhook"}),
    );
    post(
        &emu,
        json!({"channel": "general", "subtype": "me_message", "text": "waves"}),
    );
    post(
        &emu,
        json!({"channel": "general", "subtype": "channel_join", "text": "joined"}),
    );
    let lines = s.take(3);
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["from the app", "from a webhook", "waves"]);
    assert_eq!(lines[0]["payload"]["user"]["is_bot"], true);
    assert_eq!(lines[0]["payload"]["bot_id"], "B0EMULATOR");
    assert_eq!(lines[1]["payload"]["subtype"], "bot_message");
    assert_eq!(lines[1]["payload"]["user"]["is_bot"], true);
    assert_eq!(lines[2]["payload"]["subtype"], "me_message");
    s.assert_no_more(Duration::from_millis(300));
}

/// Posts as the owner, then edits and deletes it through the Web API (user token).
fn edit_and_delete(emu: &Emu) -> String {
    let m = post(emu, json!({"channel": "general", "text": "original"}));
    let ts = m[0]["ts"].as_str().unwrap().to_string();
    let user = emu.token("user");
    let ts_arg = format!("ts={ts}");
    let out = Out::from(
        emu.cmd()
            .env("SLACK_TOKEN", &user)
            .args([
                "run",
                "chat.update",
                "channel=C0000001",
                &ts_arg,
                "text=edited",
            ])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    let out = Out::from(
        emu.cmd()
            .env("SLACK_TOKEN", &user)
            .args(["run", "chat.delete", "channel=C0000001", &ts_arg])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    post(emu, json!({"channel": "general", "text": "after"}));
    ts
}

#[test]
fn edits_and_deletions_are_not_new_messages() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &[], &[]);
    edit_and_delete(&emu);
    let lines = s.take(2);
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["original", "after"]);
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn edits_and_deletions_on_request() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &["--include-edits", "--include-deletes"], &[]);
    let ts = edit_and_delete(&emu);
    let lines = s.take(4);
    let p: Vec<&Value> = lines.iter().map(|l| &l["payload"]).collect();
    assert_eq!(p[0]["text"], "original");
    assert_eq!(p[1]["subtype"], "message_changed");
    assert_eq!(p[1]["text"], "edited");
    assert_eq!(p[1]["previous_text"], "original");
    assert_eq!(p[1]["timestamp_raw"], ts.as_str());
    assert_eq!(p[2]["subtype"], "message_deleted");
    assert_eq!(p[2]["timestamp_raw"], ts.as_str());
    assert_eq!(p[3]["text"], "after");
}

#[test]
fn strip_formatting_uses_labels_lookups_and_ids() {
    let emu = Emu::start();
    let s = Sensor::start(&emu, &["--strip-formatting"], &[]);
    post(
        &emu,
        json!({"channel": "general",
               "text": "<!here> see <https://a.example|docs> and <https://b.example>, ask <@U0000002> in <#C0000003> &amp; <@U9999999> <mailto:x@y.z>"}),
    );
    let l = s.take(1);
    assert_eq!(
        l[0]["payload"]["text"],
        "@here see docs and https://b.example, ask @user02 in #ops & @U9999999 x@y.z"
    );
    // The unknown user is still emitted, with its id; the failed lookup is logged once.
    let err = s.stderr_with("U9999999");
    assert!(err.contains("U9999999"), "{err}");
}

#[test]
fn rtm_mode_receives_pings_and_reconnects_after_goodbye() {
    let emu = Emu::start();
    let user = emu.token("user");
    let s = Sensor::start(
        &emu,
        &["--mode", "rtm", "--ping-interval", "0.2"],
        &[("SLACK_RTM_TOKEN", &user), ("SLACK_APP_TOKEN", "")],
    );
    let first = wait_fresh_conn(&emu, "rtm", &[]);
    let mut want = posted_ts(&post(&emu, json!({"channel": "general", "text": "one"})));
    let mut got = s.take(1);
    assert_eq!(
        got[0]["payload"]["channel_type"], "channel",
        "derived from conversations.info"
    );
    socket_action(&emu, "goodbye", json!({}));
    wait_fresh_conn(&emu, "rtm", &[first]);
    want.extend(posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "two"}),
    )));
    got.extend(s.take(1));
    assert_same_set(&unique_ts(&got), &want);
    assert!(got[0]["payload"].get("event_id").is_none());
    let reqs = emu.requests_to("rtm.connect");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["auth"], "bearer");
    // Pings were answered (otherwise the pong timeout would have fired).
    assert!(!s.stderr().contains("no pong"), "{}", s.stderr());
}

#[test]
fn rtm_refused_token_fails_fast_recommending_socket_mode() {
    let emu = Emu::start();
    let bot = emu.token("bot");
    let mut s = Sensor::start(
        &emu,
        &["--mode", "rtm"],
        &[("SLACK_RTM_TOKEN", &bot), ("SLACK_APP_TOKEN", "")],
    );
    assert_eq!(s.wait(), 1);
    let err = s.stderr();
    for needle in [
        "not_allowed_token_type",
        "Socket Mode",
        "connections:write",
        "SLACK_APP_TOKEN",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains(&bot), "token leaked:\n{err}");
}

#[test]
fn missing_credentials_are_config_errors() {
    let emu = Emu::start();
    let mut s = Sensor::start(&emu, &[], &[("SLACK_APP_TOKEN", "")]);
    assert_eq!(s.wait(), 2);
    assert!(s.stderr().contains("hint:"), "{}", s.stderr());
    let mut s = Sensor::start(&emu, &["--mode", "events", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(s.wait(), 2);
    assert!(
        s.stderr().contains("SLACK_SIGNING_SECRET"),
        "{}",
        s.stderr()
    );
    let mut s = Sensor::start(&emu, &["--mode", "socket"], &[("SLACK_APP_TOKEN", "")]);
    assert_eq!(s.wait(), 2);
}

/// Starts an Events API receiver and returns its base URL (read from stderr).
fn events_sensor(emu: &Emu, secret: &str) -> (Sensor, String) {
    let s = Sensor::start(
        emu,
        &["--mode", "events", "--listen", "127.0.0.1:0"],
        &[("SLACK_SIGNING_SECRET", secret), ("SLACK_APP_TOKEN", "")],
    );
    s.wait_stderr("listening");
    let err = s.stderr();
    let url = err
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    (s, url)
}

/// A raw POST to the receiver; returns the status and body.
fn raw_post(base: &str, body: &str, headers: &[(&str, String)]) -> (u16, String) {
    use std::io::Write;
    let hostport = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    let mut req = format!(
        "POST /slack/events HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn sign(secret: &str, ts: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn events_api_verifies_signatures_answers_challenges_and_dedupes_retries() {
    let emu = Emu::start();
    let secret = "emulator-signing-secret-1";
    let (s, url) = events_sensor(&emu, secret);
    // Subscribing makes the emulator send a signed url_verification first.
    let sub = http(
        "POST",
        &emu.base_url(),
        "/_emulator/events/subscribe",
        Some(&json!({"url": format!("{url}/slack/events"), "signing_secret": secret, "retry_delay_ms": 100}).to_string()),
    );
    assert!(sub.contains("\"verified\":true"), "{sub}");
    let want = posted_ts(&post(&emu, json!({"channel": "general", "count": 3})));
    let got = s.take(3);
    assert_same_set(&unique_ts(&got), &want);
    assert!(
        got[0]["payload"]["event_id"]
            .as_str()
            .unwrap()
            .starts_with("Ev")
    );
    // Redeliveries (X-Slack-Retry-Num) are answered 2xx and emitted once.
    http(
        "POST",
        &emu.base_url(),
        "/_emulator/events/redeliver",
        Some(r#"{"count": 3}"#),
    );
    s.assert_no_more(Duration::from_millis(500));
    let log: Value =
        serde_json::from_str(&http("GET", &emu.base_url(), "/_emulator/events", None)).unwrap();
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 6, "{log}");
    assert!(deliveries.iter().all(|d| d["status"] == 200), "{log}");
    assert_eq!(deliveries.iter().filter(|d| d["retry_num"] == 1).count(), 3);

    // A direct url_verification, signed.
    let body = json!({"token": "x", "challenge": "c-42", "type": "url_verification"}).to_string();
    let ts = now().to_string();
    let (code, answer) = raw_post(
        &url,
        &body,
        &[
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", sign(secret, &ts, &body)),
        ],
    );
    assert_eq!((code, answer.as_str()), (200, "c-42"));

    // Forged, unsigned and stale requests: 401, nothing emitted.
    let event = json!({"type": "event_callback", "team_id": "T0EMULATOR", "event_id": "EvFORGED1",
        "event": {"type": "message", "channel": "C0000001", "user": "U0000001", "text": "forged",
                  "ts": "1700000000.000100"}})
    .to_string();
    let forged = raw_post(
        &url,
        &event,
        &[
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", sign("not-the-secret", &ts, &event)),
        ],
    );
    assert_eq!(forged.0, 401);
    assert_eq!(raw_post(&url, &event, &[]).0, 401);
    let old = (now() - 600).to_string();
    let stale = raw_post(
        &url,
        &event,
        &[
            ("X-Slack-Request-Timestamp", old.clone()),
            ("X-Slack-Signature", sign(secret, &old, &event)),
        ],
    );
    assert_eq!(stale.0, 401);
    let tampered = event.replace("forged", "f0rged");
    let bad = raw_post(
        &url,
        &tampered,
        &[
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", sign(secret, &ts, &event)),
        ],
    );
    assert_eq!(bad.0, 401);
    s.assert_no_more(Duration::from_millis(300));
    assert!(!s.stderr().contains(secret), "secret leaked");
    // The same event, properly signed, is accepted, and its retry is not emitted twice.
    let ok = raw_post(
        &url,
        &event,
        &[
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", sign(secret, &ts, &event)),
        ],
    );
    assert_eq!(ok.0, 200);
    let retry = raw_post(
        &url,
        &event,
        &[
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", sign(secret, &ts, &event)),
            ("X-Slack-Retry-Num", "1".into()),
            ("X-Slack-Retry-Reason", "http_timeout".into()),
        ],
    );
    assert_eq!(retry.0, 200);
    let l = s.take(1);
    assert_eq!(l[0]["payload"]["event_id"], "EvFORGED1");
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let emu = Emu::start();
    let mut s = Sensor::start(&emu, &[], &[]);
    let want = posted_ts(&post(&emu, json!({"channel": "general", "count": 5})));
    let got = s.take(5);
    s.terminate();
    assert_eq!(s.wait(), 0, "{}", s.stderr());
    assert!(s.rest().is_empty());
    assert_same_set(&unique_ts(&got), &want);
    assert_eq!(sockets(&emu)["acked"], 5);
    assert!(!s.stderr().contains("panicked"));
}

#[test]
fn events_receiver_sigterm_exits_zero() {
    let emu = Emu::start();
    let (mut s, _) = events_sensor(&emu, "emulator-signing-secret-1");
    s.terminate();
    assert_eq!(s.wait(), 0, "{}", s.stderr());
}

#[test]
fn closed_stdout_ends_the_sensor_without_acknowledging() {
    let emu = Emu::start();
    let mut c = emu.cmd();
    c.env("SLACK_APP_TOKEN", emu.token("app"));
    let mut child = c
        .arg("sensor")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away
    wait_fresh_conn(&emu, "socket_mode", &[]);
    post(&emu, json!({"channel": "general"}));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "sensor kept running with a closed stdout"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?} {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    let st = sockets(&emu);
    assert_eq!(
        st["acked"], 0,
        "what could not be written is not acknowledged: {st}"
    );
}

#[test]
fn state_dir_remembers_what_was_emitted_across_restarts() {
    let emu = Emu::start();
    let dir = tempdir("sensor-state");
    let state = dir.to_str().unwrap();
    let mut s = Sensor::start(&emu, &["--state", state], &[]);
    post(
        &emu,
        json!({"channel": "general", "text": "before restart"}),
    );
    s.take(1);
    s.terminate();
    assert_eq!(s.wait(), 0);
    assert!(dir.join("sensor-seen.log").is_file());
    let s = Sensor::start(&emu, &["--state", state], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    // Slack sends the already-emitted event again: the new process knows it.
    socket_action(&emu, "redeliver", json!({"count": 1}));
    post(&emu, json!({"channel": "general", "text": "after restart"}));
    let l = s.take(1);
    assert_eq!(l[0]["payload"]["text"], "after restart");
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn max_messages_exits_after_n_lines() {
    let emu = Emu::start();
    let mut s = Sensor::start(&emu, &["--max-messages", "2"], &[]);
    post(&emu, json!({"channel": "general", "count": 2}));
    s.take(2);
    assert_eq!(s.wait(), 0);
}

/// sensors/test_slack_sensor.py: the st2 shim against the emulator (latency of single
/// messages, a 2,000-event flood acked and dispatched once, DMs off by default, cleanup,
/// SIGTERM and SIGKILL of a process shaped like st2's sensor wrapper).
fn st2_python_sensor(modules: &[&str], args: &[&str]) {
    let Some(py) = crate::pack::pack_python(modules) else {
        return;
    };
    let test =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sensors/test_slack_sensor.py");
    crate::pack::run_unittest(
        std::process::Command::new(py)
            .arg("-W")
            .arg("ignore::DeprecationWarning")
            .arg(&test)
            .args(args)
            .env("SLACKCTL_BIN", BIN)
            .env_remove("SLACK_TOKEN")
            .env_remove("SLACK_APP_TOKEN")
            .env_remove("SLACK_API_URL"),
        16,
        Duration::from_secs(180),
    );
}

#[test]
fn st2_python_sensor_with_plain_threads() {
    st2_python_sensor(&[], &[]);
}

/// As st2's sensor container runs it: eventlet.monkey_patch() before anything is loaded.
#[test]
fn st2_python_sensor_under_eventlet_like_st2s_sensor_container() {
    st2_python_sensor(&["eventlet"], &["--eventlet"]);
}

#[test]
fn demo_shows_a_posted_message_coming_back_as_a_trigger() {
    let out = slackctl(&["demo"]);
    out.assert_code(0).assert_no_panic();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(r#"{"trigger":"slack.message""#))
        .unwrap_or_else(|| panic!("no trigger line in the demo:\n{}", out.stdout));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["payload"]["text"], "Hello from slackctl");
}

// ---- guarantees under faults (issue 12) -----------------------------------------------------

/// Sends SIGKILL: no chance to flush, save or acknowledge anything.
fn kill9(s: &mut Sensor) {
    let _ = s.child.kill();
    let _ = s.child.wait();
    if let Some(r) = s.stderr_reader.take() {
        let _ = r.join();
    }
}

/// The `ts` a restarted sensor said it emits again (the previous run was killed while
/// writing them): the only repeats the guarantee allows.
fn announced_repeats(stderr: &str) -> HashSet<String> {
    stderr
        .lines()
        .filter(|l| l.contains(" again: the previous run was stopped while writing it"))
        .filter_map(|l| l.split("emitting ").nth(1))
        .filter_map(|rest| rest.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// Lines until `want` distinct ts were seen (or the deadline passes), counting repeats.
fn collect_until(s: &Sensor, seen: &mut Vec<String>, want: usize, within: Duration) {
    let deadline = Instant::now() + within;
    let mut distinct: HashSet<String> = seen.iter().cloned().collect();
    while distinct.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(l) = s.lines.recv_timeout(left) else {
            panic!(
                "only {} of {want} messages came out\nstderr:\n{}",
                distinct.len(),
                s.stderr()
            );
        };
        let v: Value = serde_json::from_str(&l).unwrap();
        let ts = v["payload"]["timestamp_raw"].as_str().unwrap().to_string();
        distinct.insert(ts.clone());
        seen.push(ts);
    }
}

/// Keys claimed in the sensor's dedupe record after its last commit: the batch it was writing.
/// Reads the file format of `store::seen` (16-byte header, 16-byte records, commit marker
/// `u64::MAX`).
fn uncommitted_claims(dir: &std::path::Path) -> usize {
    let b = std::fs::read(dir.join("sensor-seen.log")).unwrap_or_default();
    b.get(16..)
        .unwrap_or_default()
        .chunks_exact(16)
        .rev()
        .take_while(|r| r[..8] != [0xff; 8])
        .count()
}

/// Floods a `--state` sensor with `n` envelopes, kills it with SIGKILL when `kill_when` says
/// so, restarts it on the same state and checks that every message came out, and that the only
/// repeats are the ones the restarted sensor announced. Returns (lines in the first run,
/// repeats, announced).
fn kill_mid_flood(
    n: usize,
    reader_bound: usize,
    kill_when: impl FnOnce(&Sensor, &std::path::Path) -> Vec<String>,
) -> (usize, usize, usize) {
    let emu = Emu::start();
    // No timeout redeliveries to muddy the count: only the kill makes Slack send again.
    socket_action(
        &emu,
        "config",
        json!({"ack_timeout_ms": 60000, "max_attempts": 100}),
    );
    let dir = tempdir("sensor-kill");
    let state = dir.to_str().unwrap();
    let mut s = Sensor::start_bounded(&emu, &["--state", state], &[], Some(reader_bound));
    wait_fresh_conn(&emu, "socket_mode", &[]);
    let flood = socket_action(&emu, "flood", json!({"count": n}));
    assert_eq!(flood["affected"], n as u64);
    let mut seen = kill_when(&s, &dir);
    kill9(&mut s);
    // What the killed run had already written is still in the pipe.
    seen.extend(
        s.rest()
            .iter()
            .map(|l| l["payload"]["timestamp_raw"].as_str().unwrap().to_string()),
    );
    let first_run = seen.len();
    assert!(first_run < n, "the kill came after the flood: {first_run}");
    let s = Sensor::start(&emu, &["--state", state], &[]);
    collect_until(&s, &mut seen, n, Duration::from_secs(60));
    wait_all_acked(&emu, Duration::from_secs(20));
    s.assert_no_more(Duration::from_millis(500));
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for ts in &seen {
        *count.entry(ts).or_default() += 1;
    }
    assert_eq!(count.len(), n, "every message came out");
    let allowed = announced_repeats(&s.stderr());
    let repeated: Vec<&&str> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(ts, _)| ts)
        .collect();
    for ts in &repeated {
        assert!(
            allowed.contains(**ts),
            "{ts} came out twice without warning ({first_run} lines in run 1, {} in total)\nstderr:\n{}",
            seen.len(),
            s.stderr()
        );
    }
    assert!(count.values().all(|&n| n <= 2));
    (first_run, repeated.len(), allowed.len())
}

fn ts_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["payload"]["timestamp_raw"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kill_9_mid_flood_then_restart_emits_every_message_exactly_once() {
    // The reader takes 1,500 lines and the kill follows at once: the sensor cannot run ahead
    // of it by more than a pipe's worth, so the kill lands mid-flood, wherever the sensor is.
    let (first, repeated, announced) = kill_mid_flood(6000, 16, |s, _| ts_of(&s.take(1500)));
    assert!(repeated <= announced, "{first} {repeated} {announced}");
}

#[test]
fn kill_9_mid_write_repeats_only_the_announced_batch() {
    // The reader takes nothing: the sensor fills its stdout pipe and blocks in the middle of
    // writing a batch it has claimed but not committed. Killed there, its lines may or may not
    // have been read, and the restarted sensor must say so and emit them again, not drop them.
    let (first, repeated, announced) = kill_mid_flood(3000, 1, |_, dir| {
        let deadline = Instant::now() + WAIT;
        let mut last = (0, 0);
        loop {
            let now = (
                uncommitted_claims(dir),
                std::fs::metadata(dir.join("sensor-seen.log")).map_or(0, |m| m.len()),
            );
            // A claimed batch that stays uncommitted while nothing is read: stuck mid-write.
            if now.0 > 0 && now == last {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sensor never blocked: {now:?}"
            );
            last = now;
            std::thread::sleep(Duration::from_millis(200));
        }
        Vec::new()
    });
    assert!(
        announced > 0,
        "no repeat announced ({first} lines in run 1)"
    );
    assert!(repeated <= announced);
}

#[test]
fn slow_acks_kill_9_and_redelivery_emit_nothing_twice() {
    let emu = Emu::start();
    // Slack takes our acks but registers them only much later, and redelivers meanwhile.
    socket_action(
        &emu,
        "config",
        json!({"ack_delay_ms": 600000, "ack_timeout_ms": 300, "max_attempts": 1000}),
    );
    let dir = tempdir("sensor-slow-acks");
    let state = dir.to_str().unwrap();
    let mut s = Sensor::start(&emu, &["--state", state], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    let want = posted_ts(&post(&emu, json!({"channel": "general", "count": 20})));
    let got = s.take(20);
    assert_same_set(&unique_ts(&got), &want);
    // Slack redelivers (the acks were not registered); the running sensor drops the repeats.
    let deadline = Instant::now() + WAIT;
    while sockets(&emu)["redelivered"].as_u64().unwrap() < 20 {
        assert!(
            Instant::now() < deadline,
            "no redelivery: {}",
            sockets(&emu)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut s);
    assert!(s.rest().is_empty(), "repeats were emitted before the kill");
    let delivered = sockets(&emu)["delivered"].as_u64().unwrap();
    let s = Sensor::start(&emu, &["--state", state], &[]);
    // Every one of the 20 reaches the new process again...
    let deadline = Instant::now() + WAIT;
    while sockets(&emu)["delivered"].as_u64().unwrap() < delivered + 20 {
        assert!(
            Instant::now() < deadline,
            "no redelivery: {}",
            sockets(&emu)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and none comes out; a new message does.
    let fresh = posted_ts(&post(&emu, json!({"channel": "general", "text": "new"})));
    let l = s.take(1);
    assert_eq!(unique_ts(&l), fresh);
    s.assert_no_more(Duration::from_millis(800));
    assert!(
        !s.stderr().contains("stopped while writing"),
        "{}",
        s.stderr()
    );
}

#[test]
fn slow_lookups_do_not_hold_up_acks() {
    let emu = Emu::start();
    // Slack's own deadline: an envelope not acknowledged within 3 s is sent again.
    socket_action(&emu, "config", json!({"ack_timeout_ms": 3000}));
    emu.fault(json!({"path": "/api/users.info", "delay_ms": 2000, "times": 1000}));
    let s = Sensor::start(&emu, &[], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    let start = Instant::now();
    let mut want = Vec::new();
    for i in 1..=20 {
        let user = format!("U{i:07}");
        want.extend(posted_ts(&post(
            &emu,
            json!({"channel": "general", "user": user, "text": format!("from {user}")}),
        )));
    }
    let got = s.take(20);
    assert_same_set(&unique_ts(&got), &want);
    // All acknowledged inside the deadline, nothing redelivered.
    let st = wait_all_acked(&emu, Duration::from_secs(3).saturating_sub(start.elapsed()));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(st["acked"], 20, "{st}");
    assert_eq!(st["redelivered"], 0, "{st}");
    for l in &got {
        assert_eq!(l["payload"]["enrichment"], "partial", "{l}");
        assert!(
            l["payload"]["user"]["id"]
                .as_str()
                .unwrap()
                .starts_with('U')
        );
    }
    // The lookups go on in the background; once answered, that user's next message carries
    // the name, unmarked.
    let deadline = Instant::now() + WAIT;
    loop {
        post(
            &emu,
            json!({"channel": "general", "user": "U0000003", "text": "again"}),
        );
        let l = s.take(1);
        if l[0]["payload"].get("enrichment").is_none() {
            assert!(l[0]["payload"]["user"]["name"].is_string(), "{}", l[0]);
            break;
        }
        assert!(Instant::now() < deadline, "the lookup never finished");
    }
    // They ran side by side (one after another, 20 would take 40 s), one per user.
    let deadline = Instant::now() + WAIT;
    while emu.requests_to("users.info").len() < 20 {
        assert!(Instant::now() < deadline, "lookups still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "lookups ran one after another: {:?}",
        start.elapsed()
    );
    assert_eq!(
        emu.requests_to("users.info").len(),
        20,
        "one lookup per user"
    );
}

/// An RTM sensor that has seen one message in #general.
fn rtm_sensor_with_history(emu: &Emu) -> (Sensor, u64, Vec<String>) {
    let user = emu.token("user");
    let s = Sensor::start(
        emu,
        &["--mode", "rtm"],
        &[("SLACK_RTM_TOKEN", &user), ("SLACK_APP_TOKEN", "")],
    );
    let conn = wait_fresh_conn(emu, "rtm", &[]);
    let want = posted_ts(&post(emu, json!({"channel": "general", "text": "before"})));
    let got = s.take(1);
    assert_same_set(&unique_ts(&got), &want);
    (s, conn, want)
}

/// Drops the RTM socket and keeps the sensor from reconnecting for a while (its next
/// `rtm.connect` answers late), then waits until the socket is gone.
fn drop_rtm(emu: &Emu, hold_ms: u64) {
    emu.fault(json!({"path": "/api/rtm.connect", "delay_ms": hold_ms, "times": 1}));
    socket_action(emu, "drop", json!({"kind": "rtm"}));
    let deadline = Instant::now() + WAIT;
    while !open_conns(emu, "rtm").is_empty() {
        assert!(Instant::now() < deadline, "the RTM socket was not dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn rtm_fetches_back_what_was_posted_while_the_socket_was_down() {
    let emu = Emu::start();
    let (s, first, before) = rtm_sensor_with_history(&emu);
    drop_rtm(&emu, 2000);
    // Posted while no RTM socket is connected: RTM itself never delivers these.
    let gap = posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "during the gap", "count": 3}),
    ));
    assert!(
        open_conns(&emu, "rtm").is_empty(),
        "posted after the reconnect"
    );
    let got = s.take(3);
    assert_same_set(&unique_ts(&got), &gap);
    wait_fresh_conn(&emu, "rtm", &[first]);
    let after = posted_ts(&post(&emu, json!({"channel": "general", "text": "after"})));
    let l = s.take(1);
    assert_same_set(&unique_ts(&l), &after);
    s.assert_no_more(Duration::from_millis(500));
    let history = emu.requests_to("conversations.history");
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0]["args"]["oldest"], before[0].as_str());
    let err = s.stderr_with("fetched back");
    assert!(
        err.contains("RTM was disconnected for") && err.contains("3 message(s)"),
        "{err}"
    );
}

#[test]
fn rtm_gap_that_cannot_be_fetched_is_reported_with_its_length() {
    let emu = Emu::start();
    let (s, first, _) = rtm_sensor_with_history(&emu);
    emu.fault(json!({"path": "/api/conversations.history", "error": "missing_scope", "times": 1}));
    drop_rtm(&emu, 1000);
    post(
        &emu,
        json!({"channel": "general", "text": "lost in the gap"}),
    );
    wait_fresh_conn(&emu, "rtm", &[first]);
    let err = s.stderr_with("could not fetch");
    assert!(err.contains("missing_scope"), "{err}");
    assert!(err.contains("RTM was disconnected for"), "{err}");
    let after = posted_ts(&post(&emu, json!({"channel": "general", "text": "after"})));
    assert_same_set(&unique_ts(&s.take(1)), &after);
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn a_garbage_state_file_is_replaced_with_a_warning() {
    let emu = Emu::start();
    let dir = tempdir("sensor-garbage");
    let file = dir.join("sensor-seen.log");
    std::fs::write(&file, b"\x00\x01 this is not a dedupe record \xff").unwrap();
    let state = dir.to_str().unwrap();
    let s = Sensor::start(&emu, &["--state", state], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    let want = posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "still works"}),
    ));
    assert_same_set(&unique_ts(&s.take(1)), &want);
    let err = s.stderr_with("ignoring");
    assert!(err.contains("not a slackctl dedupe record"), "{err}");
    assert_eq!(&std::fs::read(&file).unwrap()[..8], b"slkseen1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn events_api_answers_within_3_seconds_when_lookups_are_slow() {
    let emu = Emu::start();
    emu.fault(json!({"path": "/api/users.info", "delay_ms": 2000, "times": 1000}));
    let secret = "emulator-signing-secret-2";
    let (s, url) = events_sensor(&emu, secret);
    let sub = http(
        "POST",
        &emu.base_url(),
        "/_emulator/events/subscribe",
        Some(&json!({"url": format!("{url}/slack/events"), "signing_secret": secret, "retry_delay_ms": 100}).to_string()),
    );
    assert!(sub.contains("\"verified\":true"), "{sub}");
    let mut want = Vec::new();
    for i in 1..=20 {
        let user = format!("U{i:07}");
        want.extend(posted_ts(&post(
            &emu,
            json!({"channel": "general", "user": user, "text": format!("from {user}")}),
        )));
    }
    let got = s.take(20);
    assert_same_set(&unique_ts(&got), &want);
    assert!(got.iter().all(|l| l["payload"]["enrichment"] == "partial"));
    // Every delivery was answered 200 on its first attempt (the emulator gives up on an
    // attempt after 3 s, as Slack does, and would retry).
    let deadline = Instant::now() + WAIT;
    let deliveries = loop {
        let ev: Value =
            serde_json::from_str(&http("GET", &emu.base_url(), "/_emulator/events", None)).unwrap();
        let d = ev["deliveries"].as_array().unwrap().clone();
        if d.len() >= 20 || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(deliveries.len(), 20, "{deliveries:#?}");
    for d in &deliveries {
        assert_eq!(d["status"], 200, "{d}");
        assert_eq!(d["retry_num"], 0, "{d}");
    }
    s.assert_no_more(Duration::from_millis(300));
}

#[test]
fn two_sensors_cannot_share_a_state_directory() {
    let emu = Emu::start();
    let dir = tempdir("sensor-shared");
    let state = dir.to_str().unwrap();
    let first = Sensor::start(&emu, &["--state", state], &[]);
    wait_fresh_conn(&emu, "socket_mode", &[]);
    let mut second = Sensor::start(&emu, &["--state", state], &[]);
    assert_eq!(second.wait(), 2, "{}", second.stderr());
    let err = second.stderr();
    assert!(err.contains("another slackctl sensor"), "{err}");
    assert!(err.contains(state), "names the directory: {err}");
    let holder = format!("pid {}", first.child.id());
    assert!(err.contains(&holder), "names the sensor holding it: {err}");
    // The first one is unharmed.
    let want = posted_ts(&post(
        &emu,
        json!({"channel": "general", "text": "still mine"}),
    ));
    assert_same_set(&unique_ts(&first.take(1)), &want);
}
