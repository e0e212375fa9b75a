//! Test support: start `slackctl emulator` on 127.0.0.1:0, run the binary with a clean
//! environment, and read the emulator's request log over plain HTTP.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_slackctl");

/// A running emulator process; killed on drop.
pub struct Emu {
    child: Child,
    pub ready: Value,
    pub home: PathBuf,
}

impl Emu {
    pub fn start() -> Emu {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Emu {
        let mut child = Command::new(BIN)
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        let home = tempdir("home");
        Emu { child, ready, home }
    }

    pub fn api_url(&self) -> String {
        self.ready["api_url"].as_str().unwrap().to_string()
    }
    pub fn base_url(&self) -> String {
        self.ready["base_url"].as_str().unwrap().to_string()
    }
    pub fn webhook_url(&self) -> String {
        self.ready["webhook_url"].as_str().unwrap().to_string()
    }
    pub fn token(&self, kind: &str) -> String {
        self.ready["tokens"][kind].as_str().unwrap().to_string()
    }

    /// `slackctl` with a clean environment pointed at this emulator, with the bot token.
    /// Pacing is off here (many tests make dozens of calls to one method in a second);
    /// [`Emu::paced_cmd`] keeps it on.
    pub fn cmd(&self) -> Command {
        let mut c = self.paced_cmd();
        c.arg("--no-rate-limit");
        c
    }

    /// `slackctl` as a user runs it, with proactive pacing on.
    pub fn paced_cmd(&self) -> Command {
        let mut c = bare_cmd(&self.home);
        c.env("SLACK_API_URL", self.api_url())
            .env("SLACK_TOKEN", self.token("bot"));
        c
    }

    /// Runs `slackctl args…` against the emulator.
    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd().args(args).output().expect("run slackctl"))
    }

    /// The emulator's log of received requests.
    pub fn requests(&self) -> Vec<Value> {
        let body = http("GET", &self.base_url(), "/_emulator/requests", None);
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Requests to one API method.
    pub fn requests_to(&self, method: &str) -> Vec<Value> {
        let path = format!("/api/{method}");
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path.as_str())
            .collect()
    }

    pub fn clear_requests(&self) {
        http("DELETE", &self.base_url(), "/_emulator/requests", None);
    }

    /// Queues a scripted fault (see the emulator's control endpoints).
    pub fn fault(&self, fault: Value) {
        http(
            "POST",
            &self.base_url(),
            "/_emulator/faults",
            Some(&fault.to_string()),
        );
    }

    pub fn messages(&self, channel: &str) -> Vec<Value> {
        let body = http(
            "GET",
            &self.base_url(),
            &format!("/_emulator/messages?channel={channel}"),
            None,
        );
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `slackctl` with no Slack variables and a private HOME (so no user config is found).
pub fn bare_cmd(home: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

pub fn slackctl(args: &[&str]) -> Out {
    let home = tempdir("bare");
    Out::from(bare_cmd(&home).args(args).output().expect("run slackctl"))
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    /// No Rust panic text, ever.
    #[track_caller]
    pub fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("internal error"),
            "{}",
            self.stderr
        );
        self
    }
}

/// A fresh temporary directory for one test.
pub fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "slackctl-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A minimal HTTP/1.1 client for the emulator's control endpoints.
pub fn http(method: &str, base: &str, path: &str, body: Option<&str>) -> String {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).expect("connect to emulator");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Compares text with a stored snapshot; `UPDATE_SNAPSHOTS=1` rewrites it.
#[track_caller]
pub fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() || (!path.exists() && std::env::var("CI").is_err())
    {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(
        expected == actual,
        "snapshot {name} differs; rerun with UPDATE_SNAPSHOTS=1 to accept\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every stdout line of `out` as JSON (bulk result lines, `-o jsonl` items).
pub fn lines(out: &Out) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Turns on (or changes) the emulator's rate-limit enforcement (`limits` is the JSON body).
pub fn enforce(emu: &Emu, limits: &str) {
    http(
        "POST",
        &emu.base_url(),
        "/_emulator/rate_limits",
        Some(limits),
    );
}

/// The emulator's Socket Mode state: connections, unacknowledged and queued envelopes.
pub fn sockets(emu: &Emu) -> Value {
    serde_json::from_str(&http("GET", &emu.base_url(), "/_emulator/sockets", None)).unwrap()
}

/// Scripts the emulator's sockets (`POST /_emulator/sockets/<action>`); returns its answer.
pub fn socket_action(emu: &Emu, action: &str, body: Value) -> Value {
    let path = format!("/_emulator/sockets/{action}");
    serde_json::from_str(&http(
        "POST",
        &emu.base_url(),
        &path,
        Some(&body.to_string()),
    ))
    .unwrap()
}

/// Waits until the emulator has nothing unacknowledged or queued (every envelope taken).
#[track_caller]
pub fn wait_all_acked(emu: &Emu, within: std::time::Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let st = sockets(emu);
        if st["unacked"] == 0 && st["queued"] == 0 {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "envelopes still unacknowledged: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
