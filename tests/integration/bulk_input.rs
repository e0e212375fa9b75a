//! `--each` input and output: mentions from lookups, the `outcome` of every result line, and
//! records that are bounded in size whatever the input (files, FIFOs, stdin, `/dev/zero`).

use crate::support::*;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn texts(emu: &Emu, channel: &str) -> Vec<String> {
    emu.messages(channel)
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

#[test]
fn looked_up_ids_render_as_mentions_and_every_line_has_an_outcome() {
    let emu = Emu::start();
    let dir = tempdir("mention");
    let recs = write(
        &dir,
        "r.jsonl",
        "{\"id\": \"a\", \"name\": \"Ada\", \"email\": \"user01@example.com\", \"team\": \"ops\"}\n\
         {\"id\": \"b\", \"name\": \"Bob\", \"email\": \"nobody@example.com\", \"team\": \"ops\"}\n\
         {\"id\": \"c\", \"name\": \"Cy\", \"email\": \"User02@example.com\", \"team\": \"#engineering\"}\n",
    );
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "--each",
        &recs,
        "--id-field",
        "id",
        "channel={{ team | slack_channel_by_name }}",
        "text=New sign-up: {{ name }} ({{ email | slack_user_by_email | slack_mention }}) in {{ team | slack_channel_by_name | slack_mention }}",
    ]);
    out.assert_code(1).assert_no_panic();
    let ls = lines(&out);
    assert_eq!(ls.len(), 3, "{}", out.stdout);
    let by_id = |id: &str| ls.iter().find(|l| l["identifier"] == id).unwrap();
    assert_eq!(by_id("a")["outcome"], "sent");
    assert_eq!(by_id("c")["outcome"], "sent");
    assert_eq!(by_id("b")["outcome"], "failed");
    assert_eq!(by_id("b")["success"], false);
    assert!(
        by_id("b")["error"]
            .as_str()
            .unwrap()
            .contains("nobody@example.com"),
        "{}",
        by_id("b")
    );
    assert_eq!(
        texts(&emu, "C0000003"),
        vec!["New sign-up: Ada (<@U0000001>) in <#C0000003>".to_string()]
    );
    assert_eq!(
        texts(&emu, "C0000009"),
        vec!["New sign-up: Cy (<@U0000002>) in <#C0000009>".to_string()]
    );
    // Nothing was sent for the failed record; one lookup per address.
    assert_eq!(emu.requests_to("chat.postMessage").len(), 2);
    assert_eq!(emu.requests_to("users.lookupByEmail").len(), 3);

    // An address given straight to slack_mention fails its record, saying what to do.
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "--each",
        &recs,
        "channel=C0000003",
        "text=hi {{ email | slack_mention }}",
    ]);
    out.assert_code(1);
    let ls = lines(&out);
    assert_eq!(ls.len(), 3);
    for l in &ls {
        assert_eq!(l["outcome"], "failed");
        assert!(
            l["error"].as_str().unwrap().contains("slack_user_by_email"),
            "{l}"
        );
    }
    assert_eq!(emu.requests_to("chat.postMessage").len(), 2);

    // A misspelt field: the result line carries the hints that explain it.
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "--each",
        &recs,
        "channel=C0000003",
        "text=hi {{ nmae }}",
    ]);
    out.assert_code(1);
    for l in lines(&out) {
        let hints: Vec<&str> = l["hints"]
            .as_array()
            .unwrap_or_else(|| panic!("no hints: {l}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(hints.contains(&"did you mean `name`?"), "{l}");
        assert!(
            hints.contains(&"the record's fields are: id, name, email, team"),
            "{l}"
        );
    }
    assert_eq!(emu.requests_to("chat.postMessage").len(), 2);
}

#[test]
fn each_from_dev_zero_ends_at_the_record_limit() {
    let emu = Emu::start();
    for (limit, bytes) in [(Some("64K"), "65536"), (None, "8388608")] {
        let started = Instant::now();
        let mut cmd = emu.cmd();
        if let Some(l) = limit {
            cmd.env("SLACKCTL_MAX_FILE_SIZE", l);
        }
        let out = Out::from(
            cmd.args([
                "run",
                "chat.postMessage",
                "channel=C0000001",
                "text={{ t }}",
                "--each",
                "/dev/zero",
            ])
            .output()
            .unwrap(),
        );
        out.assert_code(1).assert_no_panic();
        assert!(started.elapsed() < Duration::from_secs(30));
        let ls = lines(&out);
        assert_eq!(ls.len(), 1, "{}", out.stdout);
        assert_eq!(ls[0]["outcome"], "failed");
        let err = ls[0]["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("record 1: longer than {bytes} bytes"))
                && err.contains("SLACKCTL_MAX_FILE_SIZE"),
            "{err}"
        );
    }
    assert!(emu.requests_to("chat.postMessage").is_empty());
}

#[test]
fn an_overlong_record_fails_and_nothing_after_it_is_read() {
    let emu = Emu::start();
    let dir = tempdir("long");
    let long = format!("{{\"t\": \"{}\"}}", "x".repeat(3000));
    let jsonl = write(
        &dir,
        "r.jsonl",
        &format!("{{\"t\": \"first\"}}\n{long}\n{{\"t\": \"third\"}}\n"),
    );
    let csv = write(
        &dir,
        "r.csv",
        &format!("t\nfirst\n\"{}\"\nthird\n", "line\n".repeat(600)),
    );
    for (input, line) in [(&jsonl, 2), (&csv, 3)] {
        let out = Out::from(
            emu.cmd()
                .env("SLACKCTL_MAX_FILE_SIZE", "2K")
                .args([
                    "run",
                    "chat.postMessage",
                    "channel=C0000002",
                    "text={{ t }}",
                    "--each",
                    input,
                ])
                .output()
                .unwrap(),
        );
        out.assert_code(1).assert_no_panic();
        let ls = lines(&out);
        assert_eq!(ls.len(), 2, "{input}: {}", out.stdout);
        let failed: Vec<&Value> = ls.iter().filter(|l| l["outcome"] == "failed").collect();
        assert_eq!(failed.len(), 1, "{}", out.stdout);
        let err = failed[0]["error"].as_str().unwrap();
        assert!(
            err.starts_with(&format!("record {line}: longer than 2048 bytes")),
            "{err}"
        );
    }
    // Each input sent its first record and nothing after the long one.
    assert_eq!(
        texts(&emu, "C0000002")
            .iter()
            .filter(|t| *t == "first")
            .count(),
        2
    );
    assert!(!texts(&emu, "C0000002").contains(&"third".to_string()));
    assert_eq!(emu.requests_to("chat.postMessage").len(), 2);
}

#[test]
fn each_reads_fifos_and_stdin_as_streams() {
    let emu = Emu::start();
    let dir = tempdir("fifo");
    let fifo = dir.join("records");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = emu
        .cmd()
        .args([
            "run",
            "chat.postMessage",
            "channel=C0000001",
            "text=fifo {{ n }}",
            "--each",
            fifo.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening the FIFO for writing waits for a reader, so the writer has its own thread; if
    // slackctl ends without reading, the test opens the other end itself to release it.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = w.write_all(b"{\"n\": 1}\n{\"n\": 2}\n");
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    if !writer.is_finished() {
        let _ = std::fs::File::open(&fifo);
    }
    writer.join().unwrap();
    let out = Out::from(child.wait_with_output().unwrap());
    out.assert_code(0);
    assert_eq!(lines(&out).len(), 2);

    let mut child = emu
        .cmd()
        .args([
            "run",
            "chat.postMessage",
            "channel=C0000001",
            "text=stdin {{ n }}",
            "--each",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"n\": 3}\n")
        .unwrap();
    let out = Out::from(child.wait_with_output().unwrap());
    out.assert_code(0);
    let mut got = texts(&emu, "C0000001");
    got.retain(|t| t.starts_with("fifo") || t.starts_with("stdin"));
    got.sort();
    assert_eq!(got, vec!["fifo 1", "fifo 2", "stdin 3"]);

    // A directory is refused before anything is read or sent.
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=C0000001",
        "text=x",
        "--each",
        dir.to_str().unwrap(),
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
    assert_eq!(emu.requests_to("chat.postMessage").len(), 3);
}

#[test]
fn mirror_deletes_nothing_when_a_record_could_not_be_read() {
    let emu = Emu::start();
    let dir = tempdir("mirror-unread");
    let state = dir.join("state").to_string_lossy().into_owned();
    let mirror = |recs: &str| {
        emu.run(&[
            "run",
            "chat.postMessage",
            "channel=C0000001",
            "text={{ t }}",
            "--each",
            recs,
            "--id-field",
            "id",
            "--state",
            &state,
            "--mode",
            "mirror",
        ])
    };
    let first = write(
        &dir,
        "1.jsonl",
        "{\"id\": \"i1\", \"t\": \"one\"}\n{\"id\": \"i2\", \"t\": \"two\"}\n",
    );
    mirror(&first).assert_code(0);
    // i2's line is broken: it may be the record that was meant to stay, so it is not deleted.
    let second = write(
        &dir,
        "2.jsonl",
        "{\"id\": \"i1\", \"t\": \"one\"}\n{\"id\": \"i2\", \"t\": \"two\"\n",
    );
    let out = mirror(&second);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.stderr.contains("no message was deleted"),
        "{}",
        out.stderr
    );
    assert!(emu.requests_to("chat.delete").is_empty());
    let ls = lines(&out);
    assert_eq!(ls.len(), 2, "{}", out.stdout);
    assert!(ls.iter().any(|l| l["outcome"] == "skipped"));
    assert!(ls.iter().any(|l| l["outcome"] == "failed"));
    // Once the input reads cleanly, a record that really vanished is deleted.
    let third = write(&dir, "3.jsonl", "{\"id\": \"i1\", \"t\": \"one\"}\n");
    let out = mirror(&third);
    out.assert_code(0);
    assert_eq!(
        lines(&out)
            .iter()
            .filter(|l| l["outcome"] == "deleted")
            .count(),
        1
    );
    assert_eq!(emu.requests_to("chat.delete").len(), 1);
}
