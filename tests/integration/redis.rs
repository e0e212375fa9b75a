//! The Redis state backend (`state_backend: redis://…`), against a real `redis-server`
//! started per test on a free loopback port (temp dir, no persistence) and the emulator.
//! Separate HOME/XDG directories per process stand in for separate hosts: nothing on disk is
//! shared between them, only the Redis.
//!
//! Without `redis-server` on PATH these tests skip with a message, except under `CI=true`,
//! where a missing server fails them (`.ci/run` installs it).

use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A `redis-server` of our own; stopped on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    /// TLS only (`rediss://`), with the certificates in `dir`.
    tls: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one, or returns None (after saying so) when redis-server is not installed.
    fn start(password: Option<&str>) -> Option<RedisServer> {
        Self::start_with(password, false)
    }

    fn start_with(password: Option<&str>, tls: bool) -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "redis-server is not installed; .ci/run installs it (apt-get install redis-server)"
                );
            }
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            dir: tempdir("redis"),
            password: password.map(str::to_string),
            tls,
        };
        if tls && !s.make_certificates() {
            return None;
        }
        s.restart();
        Some(s)
    }

    fn restart(&mut self) {
        let mut c = Command::new("redis-server");
        c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if self.tls {
            let f = |n: &str| self.dir.join(n);
            c.args(["--port", "0", "--tls-auth-clients", "no", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(f("server.pem"))
                .arg("--tls-key-file")
                .arg(f("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(f("ca.pem"));
        } else {
            c.arg("--port").arg(self.port.to_string());
        }
        c.arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            c.args(["--requirepass", p]);
        }
        self.child = Some(c.spawn().expect("start redis-server"));
        let deadline = Instant::now() + WAIT;
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A private CA and a server certificate for 127.0.0.1 (false, said, without openssl).
    fn make_certificates(&self) -> bool {
        let sh = format!(
            "cd '{}' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=slackctl-test-ca \
             && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost \
             && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext \
             && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext",
            self.dir.display()
        );
        let ok = Command::new("sh")
            .args(["-c", &sh])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("openssl could not make the test certificates");
            }
            eprintln!("SKIPPED: openssl could not make the test certificates");
        }
        ok
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// One command through `redis-cli` (raw output).
    fn cli(&self, args: &[&str]) -> String {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw"]);
        if self.tls {
            c.arg("--tls").arg("--cacert").arg(self.dir.join("ca.pem"));
        }
        if let Some(p) = &self.password {
            c.args(["--no-auth-warning", "-a", p]);
        }
        let out = c.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `slackctl` as one host: its own HOME and XDG directories, pointed at the emulator and at
/// the Redis (when given).
fn host(emu: &Emu, redis: Option<&RedisServer>, name: &str) -> Command {
    let home = tempdir(name);
    let mut c = bare_cmd(&home);
    c.env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("SLACK_API_URL", emu.api_url())
        .env("SLACK_TOKEN", emu.token("bot"));
    if let Some(r) = redis {
        c.env("SLACKCTL_STATE_BACKEND", r.url());
    }
    c
}

fn posts(emu: &Emu) -> Vec<Value> {
    emu.requests_to("chat.postMessage")
}

fn count_429(emu: &Emu) -> usize {
    posts(emu).iter().filter(|r| r["status"] == 429).count()
}

/// The texts Slack stored in a channel, but for the emulator's seed messages.
fn texts(emu: &Emu, channel: &str) -> Vec<String> {
    emu.messages(channel)
        .iter()
        .filter(|m| m["user"] == "U0BOT")
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

fn records(dir: &Path, tag: &str, n: usize) -> PathBuf {
    let p = dir.join(format!("{tag}.jsonl"));
    let body: String = (0..n)
        .map(|i| format!("{{\"id\": \"{tag}{i}\", \"text\": \"{tag} {i}\"}}\n"))
        .collect();
    std::fs::write(&p, body).unwrap();
    p
}

fn bulk_args(file: &Path, channel: &str) -> Vec<String> {
    vec![
        "--retries".into(),
        "0".into(),
        "run".into(),
        "chat.postMessage".into(),
        format!("channel={channel}"),
        "text={{ text }}".into(),
        "--each".into(),
        file.to_string_lossy().into_owned(),
        "--id-field".into(),
        "id".into(),
    ]
}

fn result_lines(out: &Out) -> Vec<Value> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn three_hosts_posting_20_each_share_one_channel_bucket_with_no_429() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    // Slack's own numbers: one post a second per channel, a burst of three.
    enforce(&emu, r#"{"per_channel": 1, "channel_burst": 3}"#);
    let dir = tempdir("hosts");
    let started = Instant::now();
    let hosts: Vec<Child> = (0..3)
        .map(|h| {
            let file = records(&dir, &format!("h{h}"), 20);
            host(&emu, Some(&redis), &format!("host{h}"))
                .args(bulk_args(&file, "C0000002"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in hosts {
        let o = Out::from(c.wait_with_output().unwrap());
        o.assert_code(0).assert_no_panic();
        assert!(o.stderr.contains("20 sent"), "{}", o.stderr);
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!("three hosts, 60 posts: {took:.2}s");
    assert_eq!(count_429(&emu), 0, "together they stayed within the limit");
    assert_eq!(texts(&emu, "C0000002").len(), 60);
    // One process would send 3 at once, then one a second: the 60th at 57 s.
    let ideal = 57.0;
    assert!(
        (took - ideal).abs() <= ideal * 0.10,
        "took {took:.1}s against the ideal {ideal}s"
    );
}

#[test]
fn without_the_shared_backend_three_hosts_overrun_the_channel() {
    // The control for the test above: the same hosts with only their own files are not
    // coordinated, so the server enforcing the limit answers 429.
    let emu = Emu::start();
    enforce(&emu, r#"{"per_channel": 1, "channel_burst": 3}"#);
    let dir = tempdir("hosts");
    let hosts: Vec<Child> = (0..3)
        .map(|h| {
            let file = records(&dir, &format!("h{h}"), 4);
            host(&emu, None, &format!("alone{h}"))
                .args(bulk_args(&file, "C0000002"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in hosts {
        c.wait_with_output().unwrap();
    }
    assert!(count_429(&emu) > 0, "separate hosts must trip the limit");
}

/// Host `name` sending `file` once to C0000002 with the journal `state`, four at a time,
/// pacing off (these tests are about send-once, not pacing).
fn send_once_host(
    emu: &Emu,
    redis: &RedisServer,
    file: &Path,
    state: &str,
    name: &str,
) -> std::process::Child {
    let mut args = bulk_args(file, "C0000002");
    args.extend([
        "--state".into(),
        state.into(),
        "--concurrency".into(),
        "4".into(),
    ]);
    host(emu, Some(redis), name)
        .arg("--no-rate-limit")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_hosts_given_the_same_input_send_each_record_once() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    // Posts take 30 ms, so the two runs overlap rather than one finishing first.
    emu.fault(serde_json::json!({"path": "/api/chat.postMessage", "delay_ms": 30, "times": 1000}));
    let dir = tempdir("once");
    let file = records(&dir, "r", 30);
    let state = format!("{}/newsletter", redis.url());
    let run = |name: &str, state: &str| send_once_host(&emu, &redis, &file, state, name);
    // One names the journal by its whole address, the other on the configured backend.
    let a = run("a", &state);
    let b = run("b", "redis:newsletter");
    let outs = [a, b].map(|c| Out::from(c.wait_with_output().unwrap()));
    for o in &outs {
        o.assert_code(0).assert_no_panic();
    }
    let mut t = texts(&emu, "C0000002");
    t.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("r {i}")).collect();
    want.sort();
    assert_eq!(t, want, "every record exactly once between the two hosts");
    let sent: usize = outs
        .iter()
        .map(|o| {
            result_lines(o)
                .iter()
                .filter(|l| l["success"] == true && l["outcome"] == "sent")
                .count()
        })
        .sum();
    assert_eq!(sent, 30);
    // Both were busy at once or one after the other; either way a re-run sends nothing.
    let again = Out::from(run("c", &state).wait_with_output().unwrap());
    again.assert_code(0);
    assert!(again.stderr.contains("0 sent"), "{}", again.stderr);
    assert_eq!(texts(&emu, "C0000002").len(), 30);
    assert_eq!(
        redis
            .cli(&["HLEN", "slackctl:journal:{newsletter}:sent"])
            .trim(),
        "30"
    );
}

/// Lines read from a child's stdout on a thread, so a test can wait for them.
struct Lines {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Lines {
    fn follow(child: &mut Child) -> Lines {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let s = seen.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&l) {
                    s.lock().unwrap().push(v);
                }
            }
        });
        Lines { seen }
    }

    fn all(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    #[track_caller]
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "only {} lines: {all:?}",
                all.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn kill_9_of_one_host_leaves_only_its_in_flight_records_uncertain() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    // Every post takes 200 ms, so four are in flight whenever the kill lands.
    emu.fault(serde_json::json!({"path": "/api/chat.postMessage", "delay_ms": 200, "times": 1000}));
    let dir = tempdir("kill");
    let file = records(&dir, "k", 40);
    let state = format!("{}/killed", redis.url());
    let run = |name: &str| send_once_host(&emu, &redis, &file, &state, name);
    let mut victim = run("victim");
    let victim_lines = Lines::follow(&mut victim);
    let survivor = run("survivor");
    // Killed once it has sent some and holds claims of records now in flight (their posts
    // take 200 ms, so they are still in flight when the kill lands a moment later).
    let marker = format!(":{}:", victim.id());
    let deadline = Instant::now() + WAIT;
    loop {
        let sent = victim_lines
            .all()
            .iter()
            .filter(|l| l["success"] == true && l["outcome"] == "sent")
            .count();
        let claims = redis.cli(&["HVALS", "slackctl:journal:{killed}:claims"]);
        if sent >= 1 && claims.lines().any(|h| h.contains(&marker)) {
            break;
        }
        assert!(Instant::now() < deadline, "the victim never held a claim");
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let survivor = Out::from(survivor.wait_with_output().unwrap());
    survivor.assert_code(0).assert_no_panic();
    // The victim's lease lapses (it refreshed it every second while alive).
    let deadline = Instant::now() + WAIT;
    loop {
        let holders = redis.cli(&["HGETALL", "slackctl:journal:{killed}:holders"]);
        let now_ms: u64 = {
            let t = redis.cli(&["TIME"]);
            let mut p = t.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            p.next().unwrap() * 1000 + p.next().unwrap() / 1000
        };
        let live = holders
            .lines()
            .skip(1)
            .step_by(2)
            .any(|exp| exp.trim().parse::<u64>().unwrap_or(0) > now_ms);
        if !live {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed holder's lease never lapsed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = Out::from(run("after").wait_with_output().unwrap());
    after.assert_code(0).assert_no_panic();
    // The victim's in-flight records are named as uncertain exactly once: by the survivor,
    // when it reached one after the victim's lease lapsed and took it over, or else by the
    // next run, which adopts the claims the dead run left.
    let mut named: Vec<String> = survivor
        .stderr
        .lines()
        .filter(|l| l.contains("was in flight at"))
        .filter_map(|l| l.split("record ").nth(1)?.split_whitespace().next())
        .map(|id| format!("k {}", id.trim_start_matches('k')))
        .collect();
    if let Some(warning) = after.stderr.lines().find(|l| l.contains("were in flight")) {
        named.extend(
            warning
                .rsplit(": ")
                .next()
                .unwrap()
                .split(", ")
                .map(|id| format!("k {}", id.trim_start_matches('k'))),
        );
    }
    let uncertain = named.len();
    assert!(
        (1..=4).contains(&uncertain),
        "{named:?}\nsurvivor: {}\nafter: {}",
        survivor.stderr,
        after.stderr
    );
    let posted = texts(&emu, "C0000002");
    for i in 0..40 {
        let t = format!("k {i}");
        let n = posted.iter().filter(|x| **x == t).count();
        assert!(
            n == 1 || (n == 2 && named.contains(&t)),
            "{t} posted {n} times; uncertain: {named:?}"
        );
    }
    assert!(posted.len() <= 40 + uncertain, "{} posts", posted.len());
    assert_eq!(
        redis
            .cli(&["HLEN", "slackctl:journal:{killed}:sent"])
            .trim(),
        "40"
    );
    assert_eq!(
        redis
            .cli(&["HLEN", "slackctl:journal:{killed}:claims"])
            .trim(),
        "0",
        "no claim left behind"
    );
}

#[test]
fn an_unreachable_redis_fails_the_send_naming_it_and_recovery_is_automatic() {
    let password = "s3cret-redis-pw";
    let Some(mut redis) = RedisServer::start(Some(password)) else {
        return;
    };
    let emu = Emu::start();
    let shown = format!("redis://[redacted]@127.0.0.1:{}/0", redis.port);
    // Records fed one at a time on stdin, so the test decides what happens between them.
    let mut child = host(&emu, Some(&redis), "feeder")
        .args([
            "--retries",
            "0",
            "run",
            "chat.postMessage",
            "channel=general",
            "text={{ text }}",
            "--each",
            "-",
            "--id-field",
            "id",
            "--state",
            "redis:feed",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let lines = Lines::follow(&mut child);
    let mut feed = |i: usize| {
        writeln!(input, "{{\"id\": \"f{i}\", \"text\": \"f {i}\"}}").unwrap();
        input.flush().unwrap();
        lines.wait_for(i + 1)[i].clone()
    };
    for i in 0..3 {
        assert_eq!(feed(i)["success"], true);
    }
    redis.stop();
    let down = feed(3);
    assert_eq!(down["success"], false, "{down}");
    let err = down["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("the Redis state backend {shown} is unreachable")),
        "{err}"
    );
    assert!(!err.contains(password));
    redis.restart();
    // No restart of slackctl: the next record reconnects.
    let back = feed(4);
    assert_eq!(back["success"], true, "{back}");
    drop(input);
    let out = Out::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 1, "a record failed: {}", out.stderr);
    out.assert_no_panic();
    assert!(!out.stderr.contains(password), "{}", out.stderr);
    let t = texts(&emu, "general");
    for i in [0, 1, 2, 4] {
        assert!(t.contains(&format!("f {i}")), "f {i} missing: {t:?}");
    }
    assert!(!t.contains(&"f 3".to_string()), "nothing sent while down");

    // A single send while Redis is down: exit 1, one error naming the backend, nothing sent;
    // --no-rate-limit is the explicit way out.
    redis.stop();
    let before = posts(&emu).len();
    let one = Out::from(
        host(&emu, Some(&redis), "single")
            .args(["run", "chat.postMessage", "channel=C0000002", "text=down"])
            .output()
            .unwrap(),
    );
    one.assert_code(1).assert_no_panic();
    let errors: Vec<&str> = one
        .stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", one.stderr);
    assert!(errors[0].contains(&shown), "{}", one.stderr);
    assert!(one.stderr.contains("--no-rate-limit"), "{}", one.stderr);
    assert!(!one.stderr.contains(password));
    assert_eq!(posts(&emu).len(), before, "nothing sent unpaced");
    let unpaced = Out::from(
        host(&emu, Some(&redis), "single")
            .args([
                "--no-rate-limit",
                "run",
                "chat.postMessage",
                "channel=C0000002",
                "text=unpaced",
            ])
            .output()
            .unwrap(),
    );
    unpaced.assert_code(0);
    assert!(texts(&emu, "C0000002").contains(&"unpaced".to_string()));
}

#[test]
fn a_malformed_backend_is_refused_before_anything_is_sent() {
    let emu = Emu::start();
    let out = Out::from(
        host(&emu, None, "bad")
            .env(
                "SLACKCTL_STATE_BACKEND",
                "redis://:pw-secret-1@127.0.0.1:notaport/0",
            )
            .args(["run", "chat.postMessage", "channel=C0000002", "text=x"])
            .output()
            .unwrap(),
    );
    out.assert_code(2).assert_no_panic();
    assert!(
        out.stderr.contains("SLACKCTL_STATE_BACKEND"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pw-secret-1"), "{}", out.stderr);
    let out = Out::from(
        host(&emu, None, "bad")
            .args([
                "run",
                "chat.postMessage",
                "channel=C0000002",
                "text={{ text }}",
            ])
            .args([
                "--each",
                "/dev/null",
                "--id-field",
                "id",
                "--state",
                "redis:x",
            ])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("no Redis state backend"),
        "{}",
        out.stderr
    );
    assert!(posts(&emu).is_empty());
}

#[test]
fn rediss_verifies_the_server_and_keeps_the_password_out_of_every_output() {
    let password = "tls-redis-pw-77";
    let Some(redis) = RedisServer::start_with(Some(password), true) else {
        return;
    };
    let emu = Emu::start();
    let send = |ca: Option<&Path>| {
        let mut c = host(&emu, Some(&redis), "tls");
        if let Some(ca) = ca {
            // The system trust store, as rustls-native-certs reads it.
            c.env("SSL_CERT_FILE", ca);
        }
        Out::from(
            c.args([
                "-v",
                "run",
                "chat.postMessage",
                "channel=C0000002",
                "text=over tls",
            ])
            .output()
            .unwrap(),
        )
    };
    // A server whose CA is not trusted is refused, and nothing is sent.
    let untrusted = send(None);
    untrusted.assert_code(1).assert_no_panic();
    assert!(
        untrusted.stderr.contains(&format!(
            "rediss://[redacted]@127.0.0.1:{}/0 is unreachable",
            redis.port
        )),
        "{}",
        untrusted.stderr
    );
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert!(texts(&emu, "C0000002").is_empty());
    let trusted = send(Some(&redis.dir.join("ca.pem")));
    trusted.assert_code(0).assert_no_panic();
    assert_eq!(texts(&emu, "C0000002"), ["over tls"]);
    for o in [&untrusted, &trusted] {
        assert!(!o.stderr.contains(password) && !o.stdout.contains(password));
    }
    // The bucket is in the TLS server.
    let keys = redis.cli(&["KEYS", "slackctl:pace:*"]);
    assert!(keys.contains("chat.postMessage|C0000002"), "{keys}");
}

// ---- sensors sharing one dedupe record -------------------------------------------------------

/// A running `slackctl sensor` on its own "host"; its stdout lines are collected by a thread.
struct GroupSensor {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl GroupSensor {
    fn start(emu: &Emu, redis: &RedisServer, name: &str) -> GroupSensor {
        let before = connections(emu);
        let mut child = host(emu, Some(redis), name)
            .env("SLACK_APP_TOKEN", emu.token("app"))
            .arg("sensor")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::follow(&mut child).seen;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        // Connected: the emulator counts one more Socket Mode connection.
        let deadline = Instant::now() + WAIT;
        while connections(emu) <= before {
            assert!(Instant::now() < deadline, "{name} never connected");
            std::thread::sleep(Duration::from_millis(20));
        }
        GroupSensor {
            child,
            lines,
            stderr,
        }
    }

    fn texts(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l["payload"]["text"].as_str().map(str::to_string))
            .collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for GroupSensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connections(emu: &Emu) -> usize {
    sockets(emu)["connections"].as_array().map_or(0, |c| {
        c.iter().filter(|c| c["kind"] == "socket_mode").count()
    })
}

fn post_messages(emu: &Emu, text: &str, count: usize) {
    http(
        "POST",
        &emu.base_url(),
        "/_emulator/messages",
        Some(&serde_json::json!({"channel": "C0000001", "user": "U0000001", "text": text, "count": count}).to_string()),
    );
}

/// Every text of the group, with how many times it came out.
fn group_counts(sensors: &[&GroupSensor]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for s in sensors {
        for t in s.texts() {
            *m.entry(t).or_insert(0) += 1;
        }
    }
    m
}

#[track_caller]
fn wait_group(sensors: &[&GroupSensor], distinct: usize) {
    let deadline = Instant::now() + WAIT;
    while group_counts(sensors).len() < distinct {
        assert!(
            Instant::now() < deadline,
            "only {:?}; stderr: {:?}",
            group_counts(sensors),
            sensors.iter().map(|s| s.stderr()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_sensors_emit_each_message_once_in_the_group_whichever_connection_gets_it() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    socket_action(&emu, "config", serde_json::json!({"spread": true}));
    let sensors: Vec<GroupSensor> = (0..3)
        .map(|i| GroupSensor::start(&emu, &redis, &format!("sensor{i}")))
        .collect();
    let all: Vec<&GroupSensor> = sensors.iter().collect();
    post_messages(&emu, "hello", 30);
    wait_group(&all, 30);
    wait_all_acked(&emu, WAIT);
    // Slack sends them all again, each to another connection than the first time.
    socket_action(&emu, "redeliver", serde_json::json!({"count": 30}));
    wait_all_acked(&emu, WAIT);
    let counts = group_counts(&all);
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let busy = sensors.iter().filter(|s| !s.texts().is_empty()).count();
    assert!(busy >= 2, "the envelopes were spread over the sensors");
    let status = sockets(&emu);
    assert!(status["redelivered"].as_u64().unwrap() >= 30, "{status}");
    let keys = redis.cli(&["KEYS", "slackctl:seen:*"]);
    assert!(keys.lines().count() >= 30, "{keys}");
    let ttl: i64 = redis
        .cli(&["TTL", keys.lines().next().unwrap()])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "dedupe keys expire");
}

#[test]
fn kill_9_of_one_sensor_loses_nothing_and_repeats_nothing() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    socket_action(
        &emu,
        "config",
        serde_json::json!({"spread": true, "ack_timeout_ms": 1000, "max_attempts": 20}),
    );
    let mut victim = GroupSensor::start(&emu, &redis, "victim");
    let others: Vec<GroupSensor> = (0..2)
        .map(|i| GroupSensor::start(&emu, &redis, &format!("other{i}")))
        .collect();
    // The victim stops reading (its envelopes stay unacknowledged), then is killed.
    let victim_conn = sockets(&emu)["connections"][0]["id"].clone();
    socket_action(&emu, "silent", serde_json::json!({"target": victim_conn}));
    post_messages(&emu, "during", 30);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let all: Vec<&GroupSensor> = others.iter().chain([&victim]).collect();
    wait_group(&all, 30);
    wait_all_acked(&emu, WAIT);
    post_messages(&emu, "after", 10);
    wait_group(&all, 40);
    wait_all_acked(&emu, WAIT);
    let counts = group_counts(&all);
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[test]
fn sensors_stop_acknowledging_while_redis_is_down_and_catch_up_when_it_returns() {
    let Some(mut redis) = RedisServer::start(None) else {
        return;
    };
    let emu = Emu::start();
    socket_action(
        &emu,
        "config",
        serde_json::json!({"spread": true, "ack_timeout_ms": 500, "max_attempts": 100}),
    );
    let sensors: Vec<GroupSensor> = (0..2)
        .map(|i| GroupSensor::start(&emu, &redis, &format!("sensor{i}")))
        .collect();
    let all: Vec<&GroupSensor> = sensors.iter().collect();
    post_messages(&emu, "before", 5);
    wait_group(&all, 5);
    wait_all_acked(&emu, WAIT);
    redis.stop();
    post_messages(&emu, "down", 10);
    // Slack redelivers what nobody acknowledges; nothing comes out meanwhile.
    let deadline = Instant::now() + WAIT;
    while sockets(&emu)["redelivered"].as_u64().unwrap() < 10 {
        assert!(Instant::now() < deadline, "{}", sockets(&emu));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        group_counts(&all).len(),
        5,
        "nothing emitted without the dedupe record"
    );
    let warned = sensors.iter().any(|s| {
        s.stderr().contains(&format!(
            "the Redis state backend redis://127.0.0.1:{}/0",
            redis.port
        ))
    });
    assert!(
        warned,
        "{:?}",
        sensors.iter().map(|s| s.stderr()).collect::<Vec<_>>()
    );
    redis.restart();
    wait_group(&all, 15);
    wait_all_acked(&emu, WAIT);
    let counts = group_counts(&all);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}
