//! The README's examples and the demo's "try it yourself" commands, run as written against a
//! real emulator: a new user's next command must work.
//!
//! A README code block is tested when the line before its fence (blank lines aside) is
//! `<!-- readme-test: emulator -->`. Every command line in it runs through `bash -o pipefail`
//! in a scratch directory, with `slackctl` on `PATH` and `SLACK_API_URL` / `SLACK_TOKEN` set
//! as the README's start-up block sets them; `127.0.0.1:8089` (the README's emulator address)
//! is replaced by the test emulator's. A line must exit 0 unless its comment says `# exit N`.
//! `export` lines change the environment of the lines after them; a line ending in `&` runs in
//! the background and must have exited 0 when its block ends; a line that starts an emulator
//! is left out (the test provides one).

use crate::support::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MARK: &str = "<!-- readme-test: emulator -->";
const README_ADDR: &str = "127.0.0.1:8089";

/// One command of a tested block, with the exit code its comment announces.
#[derive(Debug)]
struct Example {
    line: String,
    expect: i32,
}

/// The tested code blocks of `text`, each as its command lines (continuations joined).
fn tested_blocks(text: &str) -> Vec<Vec<Example>> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() != MARK {
            continue;
        }
        let fence = lines.by_ref().find(|l| !l.trim().is_empty());
        assert!(
            fence.is_some_and(|f| f.trim_start().starts_with("```")),
            "{MARK} must be followed by a code block"
        );
        let mut block = Vec::new();
        let mut pending = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            if let Some(head) = l.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            pending.push_str(l);
            let line = std::mem::take(&mut pending).trim().to_string();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let expect = announced_exit(&line);
            block.push(Example { line, expect });
        }
        blocks.push(block);
    }
    blocks
}

/// `# exit N` in a line's comment, else 0.
fn announced_exit(line: &str) -> i32 {
    line.split("# exit ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Runs command lines the way a user would paste them, one after the other.
struct Shell {
    env: BTreeMap<String, String>,
    dir: std::path::PathBuf,
    addr: String,
    background: Vec<(String, Child)>,
    failures: Vec<String>,
    ran: usize,
}

impl Shell {
    fn new(emu: &Emu) -> Shell {
        let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
        let mut env = BTreeMap::new();
        let path = std::env::var("PATH").unwrap_or_default();
        env.insert("PATH".into(), format!("{bin_dir}:{path}"));
        env.insert("HOME".into(), emu.home.display().to_string());
        env.insert("SLACK_API_URL".into(), emu.api_url());
        env.insert("SLACK_TOKEN".into(), emu.token("bot"));
        let addr = emu
            .base_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Shell {
            env,
            dir: tempdir("readme"),
            addr,
            background: Vec::new(),
            failures: Vec::new(),
            ran: 0,
        }
    }

    fn bash(&self, script: &str) -> Command {
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", script])
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    fn run(&mut self, ex: &Example) {
        let line = ex.line.replace(README_ADDR, &self.addr);
        // The command without its comment (` # …`; `#ops` in a quoted text is not one).
        let command = line.split(" # ").next().unwrap_or(&line).trim().to_string();
        if command.contains("slackctl emulator") {
            return;
        }
        if command.contains("| jq") && !on_path("jq") {
            eprintln!("readme test: jq is not installed, skipped: {line}");
            return;
        }
        self.ran += 1;
        if let Some(bg) = command.strip_suffix('&') {
            let child = self
                .bash(bg)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("bash");
            self.background.push((line, child));
            return;
        }
        if command.starts_with("export ") {
            let out = self
                .bash(&format!("{command} && env -0"))
                .output()
                .expect("bash");
            assert!(out.status.success(), "{line} failed");
            self.env = String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            return;
        }
        let mut child = self
            .bash(&command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        let code = wait_bounded(&mut child, Duration::from_secs(60));
        let out = child.wait_with_output().expect("output");
        self.check(&line, ex.expect, code, &out.stdout, &out.stderr);
    }

    fn check(&mut self, line: &str, expect: i32, code: Option<i32>, stdout: &[u8], stderr: &[u8]) {
        let stderr = String::from_utf8_lossy(stderr);
        if code != Some(expect) || stderr.contains("panicked") {
            self.failures.push(format!(
                "`{line}`: exit {code:?}, the README says {expect}\n  stdout: {}\n  stderr: {stderr}",
                String::from_utf8_lossy(stdout)
                    .chars()
                    .take(400)
                    .collect::<String>()
            ));
        }
    }

    /// Ends a block: every background command must have finished, successfully.
    fn finish_block(&mut self) {
        for (line, mut child) in std::mem::take(&mut self.background) {
            let code = wait_bounded(&mut child, Duration::from_secs(15));
            let out = child.wait_with_output().expect("output");
            self.check(&line, 0, code, &out.stdout, &out.stderr);
        }
    }
}

/// The exit code, or None (after killing it) when the command outlives `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn readme_examples_run_as_written_against_the_emulator() {
    let text = readme();
    let blocks = tested_blocks(&text);
    assert!(blocks.len() >= 3, "tested README blocks: {}", blocks.len());
    let emu = Emu::start();
    let mut sh = Shell::new(&emu);
    for block in &blocks {
        for ex in block {
            sh.run(ex);
        }
        sh.finish_block();
    }
    assert!(
        sh.failures.is_empty(),
        "README examples that do not run as written:\n{}",
        sh.failures.join("\n")
    );
    assert!(sh.ran >= 40, "only {} README lines ran", sh.ran);
    // They really reached the emulator: the README's posts are in #general, and the
    // announced failures were refused before or by Slack, as the README says.
    let general = emu.messages("C0000001");
    assert!(
        general
            .iter()
            .any(|m| m["text"] == "Deploy finished :rocket:"),
        "{general:?}"
    );
    // The bulk example: looked-up users as mentions in the looked-up channels, and the
    // send-once pair of runs posted each welcome once.
    let texts = |ch: &str| -> Vec<String> {
        emu.messages(ch)
            .iter()
            .filter_map(|m| m["text"].as_str().map(String::from))
            .collect()
    };
    let ops = texts("C0000003");
    assert!(
        ops.contains(&"New sign-up: Ada (<@U0000001>)".to_string()),
        "{ops:?}"
    );
    assert!(
        texts("C0000009").contains(&"New sign-up: Grace (<@U0000002>)".to_string()),
        "{:?}",
        texts("C0000009")
    );
    for name in ["Ada", "Grace"] {
        let welcome = format!("Welcome, {name}");
        assert_eq!(ops.iter().filter(|t| **t == welcome).count(), 1, "{ops:?}");
    }
    let posts = emu.requests_to("chat.postMessage");
    assert!(
        !posts.iter().any(|r| r["args"]["text"] == "oops"),
        "an invalid call was sent"
    );
}

#[test]
fn announced_exit_codes_are_read_from_the_comment() {
    let blocks = tested_blocks(&format!(
        "{MARK}\n```sh\n# a comment\nslackctl run a \\\n  b=1   # exit 2: bad\nslackctl x\n```\n"
    ));
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].len(), 2);
    assert_eq!(blocks[0][0].line, "slackctl run a   b=1   # exit 2: bad");
    assert_eq!(blocks[0][0].expect, 2);
    assert_eq!(blocks[0][1].expect, 0);
}

#[test]
fn a_failing_example_is_reported() {
    // The checker itself must catch an unannounced failure and a wrong announcement.
    let emu = Emu::start();
    let mut sh = Shell::new(&emu);
    for (line, expect) in [
        ("slackctl run conversations.info channel=C0999999", 0),
        ("slackctl run auth.test   # exit 1", 1),
        ("slackctl run auth.test", 0),
    ] {
        sh.run(&Example {
            line: line.into(),
            expect,
        });
    }
    assert_eq!(sh.failures.len(), 2, "{:?}", sh.failures);
    assert!(
        sh.failures[0].contains("channel_not_found"),
        "{}",
        sh.failures[0]
    );
}

#[test]
fn demo_try_it_yourself_commands_run_as_printed() {
    let dir = tempdir("demo");
    let out = bare_cmd(&dir)
        .arg("demo")
        .current_dir(&dir)
        .output()
        .expect("demo");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let tail = text
        .split("Try it yourself")
        .nth(1)
        .unwrap_or_else(|| panic!("no try-it-yourself part:\n{text}"));
    let lines: Vec<&str> = tail
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("kill "))
        .collect();
    assert!(lines.len() >= 4, "{tail}");
    // Run from another directory than the demo's, with no slackctl on PATH: the printed
    // binary path must work on its own.
    let emu = Emu::start();
    let mut sh = Shell::new(&emu);
    sh.env
        .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    sh.dir = dir.clone();
    for l in &lines {
        assert!(
            l.contains(BIN) || l.starts_with("export "),
            "not the binary's path: {l}"
        );
        sh.run(&Example {
            line: l.to_string(),
            expect: 0,
        });
    }
    assert!(sh.failures.is_empty(), "{}", sh.failures.join("\n"));
    assert!(
        emu.messages("C0000001").iter().any(|m| m["text"] == "hi"),
        "the demo's post did not arrive"
    );
}

#[test]
fn emulator_help_lists_seed_data_that_exists() {
    let out = slackctl(&["emulator", "--help"]);
    out.assert_code(0);
    let help = &out.stdout;
    for token in [
        "xoxb-emulator-bot-token",
        "xoxp-emulator-user-token",
        "xapp-emulator-app-token",
        "xoxb-emulator-limited-token",
    ] {
        assert!(help.contains(token), "{token} missing:\n{help}");
        assert!(readme().contains(token), "{token} missing from the README");
    }
    assert!(
        !help.contains("--profile") && !help.contains("--api-url"),
        "client flags in emulator --help:\n{help}"
    );
    let emu = Emu::start();
    let words: Vec<&str> = help.split_whitespace().collect();
    let mut checked = 0;
    for pair in words.windows(2) {
        let (id, name) = (pair[0], pair[1].trim_end_matches('*'));
        let (method, key, field, want) = if id.len() == 8 && id.starts_with('C') {
            (
                "conversations.info",
                "channel",
                "channel",
                name.trim_start_matches('#'),
            )
        } else if id.len() == 8 && id.starts_with("U0") && name.starts_with("user") {
            ("users.info", "user", "user", name)
        } else {
            continue;
        };
        if !(name.starts_with('#') || name.starts_with("user")) {
            continue;
        }
        let out = emu.run(&["run", method, &format!("{key}={id}")]);
        out.assert_code(0);
        assert_eq!(out.json()[field]["name"], want, "{id} {name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} seed ids checked:\n{help}");
}

#[test]
fn demo_says_plain_slackctl_when_path_finds_this_binary() {
    let dir = tempdir("demo-path");
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let out = bare_cmd(&dir)
        .env("PATH", path)
        .arg("demo")
        .current_dir(&dir)
        .output()
        .expect("demo");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\n  slackctl run chat.postMessage channel=C0000001 text=hi\n"),
        "{text}"
    );
    assert!(!text.contains(BIN), "{text}");
}
