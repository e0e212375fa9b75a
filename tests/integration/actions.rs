//! The hand-written actions against the emulator: webhooks, users_filter_by, the legacy
//! invite, file uploads, lookups by name or e-mail, DMs, broadcast, join/leave and mention
//! linking, bad input included.

use crate::support::*;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

// ---- helpers ------------------------------------------------------------------------------

/// Runs with extra environment variables.
fn run_env(emu: &Emu, env: &[(&str, &str)], args: &[&str]) -> Out {
    let mut c = emu.cmd();
    for (k, v) in env {
        c.env(k, v);
    }
    Out::from(c.args(args).output().expect("run slackctl"))
}

/// Runs with the user token (admin methods need one).
fn run_user(emu: &Emu, args: &[&str]) -> Out {
    run_env(emu, &[("SLACK_TOKEN", &emu.token("user"))], args)
}

fn write_config(text: &str) -> PathBuf {
    let dir = tempdir("actions-cfg");
    let p = dir.join("slack.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs with a config file and no SLACK_WEBHOOK_URL.
fn run_cfg(emu: &Emu, cfg: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    emu.run(&all)
}

fn webhook_path(emu: &Emu) -> String {
    emu.webhook_url()
        .trim_start_matches(&emu.base_url())
        .to_string()
}

fn webhook_requests(emu: &Emu) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or("").starts_with("/services/"))
        .collect()
}

fn upload_requests(emu: &Emu) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or("").starts_with("/upload/"))
        .collect()
}

/// The API methods called, in order.
fn methods_called(emu: &Emu) -> Vec<String> {
    emu.requests()
        .iter()
        .filter_map(|r| r["path"].as_str()?.strip_prefix("/api/").map(String::from))
        .collect()
}

/// How many passes over a paginated list were made (requests without a cursor).
fn passes(emu: &Emu, method: &str) -> usize {
    emu.requests_to(method)
        .iter()
        .filter(|r| r["args"].get("cursor").is_none())
        .count()
}

/// Nothing reached the emulator.
#[track_caller]
fn assert_nothing_sent(emu: &Emu) {
    let reqs = emu.requests();
    assert!(reqs.is_empty(), "expected no requests, got {reqs:?}");
}

fn with_stdin(emu: &Emu, args: &[&str], input: &[u8]) -> Out {
    let mut child = emu
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    Out::from(child.wait_with_output().unwrap())
}

// ---- catalog ------------------------------------------------------------------------------

#[test]
fn new_actions_are_listed_shown_and_documented() {
    let list = slackctl(&["action", "list"]);
    list.assert_code(0);
    for name in [
        "broadcast",
        "channel_by_name",
        "join_channel",
        "leave_channel",
        "send_dm",
        "team_id",
        "user_by_email",
    ] {
        assert!(
            list.stdout.contains(&format!("slack.{name}\t")),
            "{name} not listed"
        );
        let get = slackctl(&["action", "get", name, "--json"]);
        get.assert_code(0);
        let j = get.json();
        assert_eq!(j["runner_type"], "python-script", "{name}");
        assert!(
            j["entry_point"].as_str().unwrap().ends_with(".py"),
            "{name}"
        );
        let help = slackctl(&["run", name, "--help"]);
        help.assert_code(0);
    }
    let help = slackctl(&["run", "send_dm", "--help"]).stdout;
    assert!(
        help.contains("    email\n") && help.contains("#channel and @here"),
        "{help}"
    );
}

// ---- post_message / post_attachment --------------------------------------------------------

#[test]
fn post_message_via_env_webhook_posts_json_and_prints_true() {
    let emu = Emu::start();
    let out = run_env(
        &emu,
        &[("SLACK_WEBHOOK_URL", &emu.webhook_url())],
        &["run", "post_message", "message=deploy *done*"],
    );
    out.assert_code(0).assert_no_panic();
    assert_eq!(out.stdout.trim(), "true");
    assert!(
        !out.stderr.contains("warning"),
        "no overrides, no warning: {}",
        out.stderr
    );
    let reqs = webhook_requests(&emu);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["content_type"], "application/json; charset=utf-8");
    assert_eq!(reqs[0]["args"], json!({"text": "deploy *done*"}));
    let msgs = emu.messages("general");
    assert_eq!(msgs.last().unwrap()["text"], "deploy *done*");
}

#[test]
fn webhook_url_parameter_and_config_defaults_with_override_warning() {
    let emu = Emu::start();
    // The parameter alone is enough.
    let url = format!("webhook_url={}", emu.webhook_url());
    let out = emu.run(&["run", "post_message", &url, "message=from param"]);
    out.assert_code(0);
    assert_eq!(webhook_requests(&emu)[0]["args"]["text"], "from param");
    assert!(
        webhook_requests(&emu)[0]["args"]
            .get("webhook_url")
            .is_none(),
        "the URL is never part of the payload"
    );

    // Config defaults fill the sender fields; parameters beat them.
    let cfg = write_config(&format!(
        "post_message_action:\n  webhook_url: {}\n  channel: \"#ops\"\n  username: deploy-bot\n  icon_emoji: \":robot_face:\"\n",
        emu.webhook_url()
    ));
    emu.clear_requests();
    let out = run_cfg(&emu, &cfg, &["run", "post_message", "message=hi"]);
    out.assert_code(0);
    let args = &webhook_requests(&emu)[0]["args"];
    assert_eq!(
        *args,
        json!({"text": "hi", "channel": "#ops", "username": "deploy-bot", "icon_emoji": ":robot_face:"})
    );
    assert!(
        out.stderr.contains("warning")
            && out.stderr.contains("channel, username, icon_emoji")
            && out.stderr.contains("ignore"),
        "{}",
        out.stderr
    );
    emu.clear_requests();
    let out = run_cfg(
        &emu,
        &cfg,
        &[
            "run",
            "post_message",
            "message=hi",
            "channel=#dev",
            "icon_url=https://example.com/i.png",
        ],
    );
    out.assert_code(0);
    let args = &webhook_requests(&emu)[0]["args"];
    assert_eq!(args["channel"], "#dev");
    assert_eq!(args["icon_url"], "https://example.com/i.png");
    assert_eq!(args["username"], "deploy-bot");
}

#[test]
fn disable_formatting_and_post_attachment() {
    let emu = Emu::start();
    let env = [("SLACK_WEBHOOK_URL", emu.webhook_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_env(
        &emu,
        &env,
        &[
            "run",
            "post_message",
            "message=<https://x.io|x>",
            "disable_formatting=true",
        ],
    );
    out.assert_code(0);
    assert_eq!(webhook_requests(&emu)[0]["args"]["parse"], "none");
    emu.clear_requests();
    let out = run_env(
        &emu,
        &env,
        &[
            "run",
            "post_attachment",
            r#"attachment={"text": "build 42 passed", "color": "good"}"#,
        ],
    );
    out.assert_code(0);
    let args = &webhook_requests(&emu)[0]["args"];
    assert_eq!(
        args["attachments"],
        json!([{"text": "build 42 passed", "color": "good"}])
    );
    assert!(args.get("parse").is_none() && args.get("text").is_none());
    // Bad input exits 2 before anything is sent.
    emu.clear_requests();
    for bad in [
        vec!["run", "post_attachment", "attachment=[1,2"],
        vec!["run", "post_message"],
        vec![
            "run",
            "post_message",
            "message=x",
            "disable_formatting=maybe",
        ],
        vec!["run", "post_message", "message=x", "webhook_url=ftp://x"],
    ] {
        let out = run_env(&emu, &env, &bad);
        out.assert_code(2).assert_no_panic();
    }
    assert_nothing_sent(&emu);
}

#[test]
fn every_webhook_error_exits_1_naming_it_and_its_status() {
    let emu = Emu::start();
    let env = [("SLACK_WEBHOOK_URL", emu.webhook_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = webhook_path(&emu);
    for (error, status) in [
        ("invalid_payload", 400),
        ("user_not_found", 400),
        ("no_text", 400),
        ("action_prohibited", 403),
        ("posting_to_general_channel_denied", 403),
        ("invalid_token", 403),
        ("channel_not_found", 404),
        ("no_service", 404),
        ("no_team", 404),
        ("channel_is_archived", 410),
        ("rollup_error", 500),
    ] {
        emu.clear_requests();
        emu.fault(json!({"path": path, "error": error}));
        let out = run_env(&emu, &env, &["run", "post_message", "message=x"]);
        out.assert_code(1).assert_no_panic();
        assert!(
            out.stderr.contains(error) && out.stderr.contains(&format!("HTTP {status}")),
            "{error}: {}",
            out.stderr
        );
        // Never resent: a webhook post is a write.
        assert_eq!(webhook_requests(&emu).len(), 1, "{error}");
    }
    // st2 output still carries the failure.
    emu.fault(json!({"path": path, "error": "channel_is_archived"}));
    let out = run_env(
        &emu,
        &env,
        &["run", "-o", "st2", "post_message", "message=x"],
    );
    out.assert_code(1);
    assert!(
        out.stdout.contains("channel_is_archived") && out.stdout.contains("\"status\": false"),
        "{}",
        out.stdout
    );
}

#[test]
fn webhook_429_waits_and_retries() {
    let emu = Emu::start();
    emu.fault(json!({"path": webhook_path(&emu), "status": 429, "retry_after": 0}));
    let out = run_env(
        &emu,
        &[("SLACK_WEBHOOK_URL", &emu.webhook_url())],
        &["run", "post_message", "message=after a wait"],
    );
    out.assert_code(0);
    assert_eq!(webhook_requests(&emu).len(), 2);
    assert!(out.stderr.contains("429"), "{}", out.stderr);
}

#[test]
fn webhook_url_is_never_printed_even_verbose() {
    let emu = Emu::start();
    let url = emu.webhook_url();
    let secret = url.rsplit('/').next().unwrap().to_string();
    let check = |out: &Out| {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(&url) && !text.contains(&secret),
                "webhook URL leaked: {text}"
            );
        }
    };
    let env = [("SLACK_WEBHOOK_URL", url.as_str())];
    let out = run_env(&emu, &env, &["-v", "run", "post_message", "message=x"]);
    out.assert_code(0);
    check(&out);
    emu.fault(json!({"path": webhook_path(&emu), "error": "no_service"}));
    let out = run_env(&emu, &env, &["-v", "run", "post_message", "message=x"]);
    out.assert_code(1);
    check(&out);
    // As a parameter, and when the host does not answer at all.
    let param = format!("webhook_url={url}");
    let out = emu.run(&[
        "-v",
        "run",
        "-o",
        "st2",
        "post_message",
        "message=x",
        &param,
    ]);
    out.assert_code(0);
    check(&out);
    let dead = "http://127.0.0.1:9/services/T1/B1/DeadSecretValue123";
    let out = run_env(
        &emu,
        &[("SLACK_WEBHOOK_URL", dead)],
        &["-v", "--retries", "0", "run", "post_message", "message=x"],
    );
    out.assert_code(1);
    assert!(!out.stderr.contains("DeadSecretValue123"), "{}", out.stderr);
}

#[test]
fn missing_webhook_url_exits_2_and_sends_nothing() {
    let emu = Emu::start();
    let out = emu.run(&["run", "post_message", "message=x"]);
    out.assert_code(2).assert_no_panic();
    assert!(
        out.stderr.contains("SLACK_WEBHOOK_URL") && out.stderr.contains("webhook_url"),
        "{}",
        out.stderr
    );
    let out = emu.run(&["run", "post_attachment", "attachment=text=x"]);
    out.assert_code(2);
    assert_nothing_sent(&emu);
}

#[test]
fn a_profiles_webhook_url_is_used_by_post_message() {
    let emu = Emu::start();
    let wrong = format!(
        "{}/services/T0EMULATOR/B0EMULATOR/NotTheRightSecret1",
        emu.base_url()
    );
    let cfg = write_config(&format!(
        "post_message_action:\n  webhook_url: {wrong}\nprofiles:\n  ops:\n    webhook_url: {}\n",
        emu.webhook_url()
    ));
    // Without the profile, the file's (wrong) URL is used and Slack says no_service.
    let out = run_cfg(&emu, &cfg, &["run", "post_message", "message=x"]);
    out.assert_code(1);
    assert!(out.stderr.contains("no_service"), "{}", out.stderr);
    emu.clear_requests();
    let out = run_cfg(
        &emu,
        &cfg,
        &[
            "--profile",
            "ops",
            "run",
            "post_message",
            "message=via profile",
        ],
    );
    out.assert_code(0);
    let reqs = webhook_requests(&emu);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], webhook_path(&emu).as_str());
    assert_eq!(
        emu.messages("general").last().unwrap()["text"],
        "via profile"
    );
}

// ---- users_filter_by ----------------------------------------------------------------------

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn users_filter_by_reads_every_page_with_wildcards_equality_and_dotted_paths() {
    let emu = Emu::start_with(&["--max-page-size", "7"]);
    let out = emu.run(&["run", "users_filter_by", r#"attributes={"name": "user0*"}"#]);
    out.assert_code(0).assert_no_panic();
    let expected: Vec<String> = (1..=9).map(|i| format!("user{i:02}")).collect();
    assert_eq!(names(&out.json()), expected);
    // 25 people + the bot + Slackbot, 7 per page.
    let pages = emu.requests_to("users.list");
    assert_eq!(pages.len(), 4, "{pages:?}");
    assert!(pages.iter().all(|r| r["http_method"] == "GET"));
    assert!(pages[1..].iter().all(|r| r["args"]["cursor"].is_string()));

    let out = emu.run(&[
        "run",
        "users_filter_by",
        r#"attributes={"profile.email": "user1?@example.com"}"#,
    ]);
    out.assert_code(0);
    let expected: Vec<String> = (10..=19).map(|i| format!("user{i}")).collect();
    assert_eq!(names(&out.json()), expected);

    let out = emu.run(&[
        "run",
        "users_filter_by",
        r#"attributes={"is_admin": true, "profile.email": "*@example.com"}"#,
    ]);
    out.assert_code(0);
    assert_eq!(names(&out.json()), ["user01", "user02"]);

    let out = emu.run(&["run", "users_filter_by", r#"attributes={"deleted": true}"#]);
    assert_eq!(names(&out.json()), ["user25"]);
    // k=v form: strings only.
    let out = emu.run(&[
        "run",
        "users_filter_by",
        "attributes=profile.title=Engineer,name=user0*",
    ]);
    out.assert_code(0);
    assert!(!names(&out.json()).is_empty());
    // No match is success with an empty list.
    let out = emu.run(&[
        "run",
        "users_filter_by",
        r#"attributes={"name": "nobody*"}"#,
    ]);
    out.assert_code(0);
    assert_eq!(out.json(), json!([]));
}

#[test]
fn users_filter_by_streams_jsonl_and_rejects_bad_input() {
    let emu = Emu::start_with(&["--max-page-size", "7"]);
    let out = emu.run(&[
        "run",
        "-o",
        "jsonl",
        "users_filter_by",
        r#"attributes={"name": "user*"}"#,
    ]);
    out.assert_code(0);
    let items = lines(&out);
    assert_eq!(items.len(), 25);
    assert!(
        items
            .iter()
            .all(|u| u["id"].as_str().unwrap().starts_with('U'))
    );
    emu.clear_requests();
    for bad in [
        "attributes=[1]",
        "attributes={\"name\": ",
        "attributes=nonsense",
        "http_method=PUT",
        "colour=red",
    ] {
        emu.run(&["run", "users_filter_by", bad])
            .assert_code(2)
            .assert_no_panic();
    }
    emu.run(&["run", "users_filter_by", "--all"]).assert_code(2);
    assert_nothing_sent(&emu);
}

// ---- users.admin.invite / admin.users.invite ---------------------------------------------

#[test]
fn legacy_invite_posts_a_form_with_the_token_in_the_header() {
    let emu = Emu::start();
    let out = run_user(
        &emu,
        &[
            "run",
            "users.admin.invite",
            "email=new1@example.com",
            "channels=C0000001, C0000002",
            "set_active=false",
            "attempts=3",
            "first_name=Neo",
        ],
    );
    out.assert_code(0).assert_no_panic();
    assert_eq!(out.json(), json!({"ok": true}), "Slack's JSON, not prose");
    assert!(
        out.stderr.contains("legacy") && out.stderr.contains("admin.users.invite"),
        "{}",
        out.stderr
    );
    let reqs = emu.requests_to("users.admin.invite");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["http_method"], "POST");
    assert_eq!(r["auth"], "bearer");
    assert_eq!(r["token_kind"], "user");
    assert_eq!(r["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(
        r["args"],
        json!({"email": "new1@example.com", "channels": "C0000001,C0000002", "first_name": "Neo", "set_active": "false", "_attempts": "3"})
    );
    assert!(r["rejected"].is_null(), "{r}");
    assert!(!r["raw_body"].as_str().unwrap().contains("token"));
    // Inviting the same address again is Slack's error, exit 1.
    let out = run_user(
        &emu,
        &["run", "users.admin.invite", "email=new1@example.com"],
    );
    out.assert_code(1);
    assert!(out.stderr.contains("already_invited"), "{}", out.stderr);
}

#[test]
fn legacy_invite_falls_back_to_the_admin_config() {
    let emu = Emu::start();
    let cfg = write_config(&format!(
        "admin:\n  admin_token: {}\n  set_active: false\n  attempts: 2\n  auto_join_channels:\n    - C0000003\n",
        emu.token("user")
    ));
    // SLACK_TOKEN is the bot token: admin.admin_token wins for this action.
    let out = run_cfg(
        &emu,
        &cfg,
        &["run", "users.admin.invite", "email=new2@example.com"],
    );
    out.assert_code(0);
    let r = &emu.requests_to("users.admin.invite")[0];
    assert_eq!(r["token_kind"], "user");
    assert_eq!(
        r["args"],
        json!({"email": "new2@example.com", "channels": "C0000003", "set_active": "false", "_attempts": "2"})
    );
    // Parameters beat the config, JSON lists work, and token= beats admin_token.
    emu.clear_requests();
    let tok = format!("token={}", emu.token("bot"));
    let out = run_cfg(
        &emu,
        &cfg,
        &[
            "run",
            "users.admin.invite",
            "email=new3@example.com",
            r#"channels=["C0000001"]"#,
            "set_active=true",
            &tok,
        ],
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("not_allowed_token_type") && out.stderr.contains("admin.users.invite"),
        "{}",
        out.stderr
    );
    let r = &emu.requests_to("users.admin.invite")[0];
    assert_eq!(r["token_kind"], "bot");
    assert_eq!(r["args"]["channels"], "C0000001");
    assert_eq!(r["args"]["set_active"], "true");
}

#[test]
fn legacy_invite_needs_an_organization_without_an_explicit_api_url() {
    let home = tempdir("invite");
    let out = Out::from(
        bare_cmd(&home)
            .env("SLACK_TOKEN", "xoxp-emulator-user-token")
            .args(["run", "users.admin.invite", "email=a@example.com"])
            .output()
            .unwrap(),
    );
    out.assert_code(2).assert_no_panic();
    assert!(out.stderr.contains("admin.organization"), "{}", out.stderr);
    // Bad input is refused before anything is sent.
    let emu = Emu::start();
    for bad in [
        vec!["run", "users.admin.invite"],
        vec![
            "run",
            "users.admin.invite",
            "email=a@example.com",
            "set_active=perhaps",
        ],
        vec![
            "run",
            "users.admin.invite",
            "email=a@example.com",
            "attempts=many",
        ],
    ] {
        run_user(&emu, &bad).assert_code(2).assert_no_panic();
    }
    assert_nothing_sent(&emu);
}

#[test]
fn admin_users_invite_takes_channel_lists_as_commas_or_json() {
    let emu = Emu::start();
    let cases = [
        ("a1@example.com", "channel_ids=C0000001,C0000002"),
        ("a2@example.com", r#"channel_ids=["C0000001", "C0000002"]"#),
    ];
    for (email, ids) in cases {
        let email = format!("email={email}");
        let out = run_user(
            &emu,
            &[
                "run",
                "admin.users.invite",
                "team_id=T0EMULATOR",
                &email,
                ids,
            ],
        );
        out.assert_code(0).assert_no_panic();
    }
    let out = run_user(
        &emu,
        &[
            "run",
            "admin.users.invite",
            "--parameters",
            r#"{"team_id": "T0EMULATOR", "email": "a3@example.com", "channel_ids": ["C0000003"]}"#,
        ],
    );
    out.assert_code(0);
    let reqs = emu.requests_to("admin.users.invite");
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0]["args"]["channel_ids"], "C0000001,C0000002");
    assert_eq!(reqs[1]["args"]["channel_ids"], "C0000001,C0000002");
    assert_eq!(reqs[2]["args"]["channel_ids"], "C0000003");
    assert!(reqs.iter().all(|r| r["rejected"].is_null()));
}

// ---- files.upload -------------------------------------------------------------------------

#[test]
fn upload_content_in_three_steps_and_share_it() {
    let emu = Emu::start();
    let out = emu.run(&[
        "run",
        "files.upload",
        "content=hello world",
        "channels=C0000001,C0000002",
        "title=Greeting",
        "initial_comment=see this",
        "filetype=python",
    ]);
    out.assert_code(0).assert_no_panic();
    let j = out.json();
    assert_eq!(j["ok"], true);
    let file = &j["files"][0];
    assert_eq!(file["title"], "Greeting");
    assert_eq!(file["name"], "snippet.txt");
    let id = file["id"].as_str().unwrap();
    assert_eq!(
        methods_called(&emu),
        ["files.getUploadURLExternal", "files.completeUploadExternal"]
    );
    let step1 = &emu.requests_to("files.getUploadURLExternal")[0];
    assert_eq!(
        step1["args"],
        json!({"filename": "snippet.txt", "length": "11", "snippet_type": "python"})
    );
    let up = upload_requests(&emu);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["path"], format!("/upload/v1/{id}").as_str());
    assert_eq!(up[0]["auth"], "none", "no token to the upload URL");
    assert_eq!(up[0]["args"]["bytes"], 11);
    assert!(up[0]["notes"].as_array().unwrap().is_empty(), "{up:?}");
    let step3 = &emu.requests_to("files.completeUploadExternal")[0];
    // A form with `files` as JSON text, as slack_sdk sends it.
    assert_eq!(step3["content_type"], "application/x-www-form-urlencoded");
    let files: Value = serde_json::from_str(step3["args"]["files"].as_str().unwrap()).unwrap();
    assert_eq!(files, json!([{"id": id, "title": "Greeting"}]));
    assert_eq!(step3["args"]["channels"], "C0000001,C0000002");
    assert_eq!(step3["args"]["initial_comment"], "see this");
    assert_eq!(step3["args"].as_object().unwrap().len(), 3);
    for ch in ["C0000001", "C0000002"] {
        let last = emu.messages(ch).pop().unwrap();
        assert_eq!(last["text"], "see this");
        assert_eq!(last["files"][0]["id"], id);
    }
}

#[test]
fn upload_streams_a_large_file_with_its_exact_length() {
    let emu = Emu::start();
    let dir = tempdir("upload");
    let path = dir.join("big.bin");
    let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let fp = format!("file_path={}", path.display());
    let out = emu.run(&["run", "files.upload", &fp, "channels=C0000003"]);
    out.assert_code(0);
    assert_eq!(out.json()["files"][0]["name"], "big.bin");
    let step1 = &emu.requests_to("files.getUploadURLExternal")[0];
    assert_eq!(step1["args"]["length"], "3000001");
    assert_eq!(step1["args"]["filename"], "big.bin");
    let up = upload_requests(&emu);
    assert_eq!(up[0]["args"]["bytes"], 3_000_001);
    assert!(up[0]["notes"].as_array().unwrap().is_empty(), "{up:?}");
    // st2's `file` parameter is a path too; filename overrides the base name.
    emu.clear_requests();
    let f = format!("file={}", path.display());
    let out = emu.run(&["run", "files.upload", &f, "filename=data.bin"]);
    out.assert_code(0);
    assert_eq!(
        emu.requests_to("files.getUploadURLExternal")[0]["args"]["filename"],
        "data.bin"
    );
    // Not shared anywhere: no channels in the complete call.
    assert!(
        emu.requests_to("files.completeUploadExternal")[0]["args"]
            .get("channels")
            .is_none()
    );
}

#[test]
fn upload_reads_stdin_and_replies_in_a_thread() {
    let emu = Emu::start();
    let parent = emu
        .run(&["run", "chat.postMessage", "channel=C0000001", "text=parent"])
        .json();
    let ts = parent["ts"].as_str().unwrap();
    let thread = format!("thread_ts={ts}");
    let out = with_stdin(
        &emu,
        &[
            "run",
            "files.upload",
            "file_path=-",
            "channels=C0000001",
            &thread,
        ],
        b"line 1\nline 2\n",
    );
    out.assert_code(0).assert_no_panic();
    assert_eq!(upload_requests(&emu)[0]["args"]["bytes"], 14);
    let step3 = &emu.requests_to("files.completeUploadExternal")[0];
    assert_eq!(step3["args"]["thread_ts"], ts, "the exact ts string");
    let last = emu.messages("C0000001").pop().unwrap();
    assert_eq!(last["thread_ts"], ts);
}

#[test]
fn upload_retries_the_upload_url_and_reports_its_failures() {
    let emu = Emu::start();
    emu.fault(json!({"path": "/upload/*", "status": 503}));
    let out = emu.run(&["run", "files.upload", "content=abc"]);
    out.assert_code(0);
    assert_eq!(upload_requests(&emu).len(), 2);
    emu.clear_requests();
    emu.fault(json!({"path": "/upload/*", "status": 403, "body": "forbidden"}));
    let out = emu.run(&["run", "files.upload", "content=abc"]);
    out.assert_code(1);
    assert!(out.stderr.contains("HTTP 403"), "{}", out.stderr);
    assert!(emu.requests_to("files.completeUploadExternal").is_empty());
    // Slack refusing step 1 stops everything.
    emu.clear_requests();
    emu.fault(json!({"path": "/api/files.getUploadURLExternal", "error": "file_uploads_disabled"}));
    let out = emu.run(&["run", "files.upload", "content=abc"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("file_uploads_disabled"),
        "{}",
        out.stderr
    );
    assert!(upload_requests(&emu).is_empty());
}

#[test]
fn upload_bad_input_exits_2_before_sending() {
    let emu = Emu::start();
    let dir = tempdir("upload-bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let missing = format!("file_path={}", dir.join("missing.txt").display());
    let a_dir = format!("file_path={}", dir.display());
    let empty = format!("file_path={}", empty.display());
    for bad in [
        vec!["run", "files.upload"],
        vec![
            "run",
            "files.upload",
            "content=x",
            "file_path=/etc/hostname",
        ],
        vec!["run", "files.upload", "content=x", "file=/etc/hostname"],
        vec!["run", "files.upload", &missing],
        vec!["run", "files.upload", &a_dir],
        vec!["run", "files.upload", &empty],
        vec!["run", "files.upload", "content="],
        vec![
            "run",
            "files.upload",
            "content=x",
            "channels=C1,C2",
            "thread_ts=1.2",
        ],
        vec!["run", "files.upload", "content=x", "thread_ts=1.2"],
        vec!["run", "files.upload", "content=x", "colour=red"],
    ] {
        let out = emu.run(&bad);
        out.assert_code(2).assert_no_panic();
    }
    let out = emu.run(&["run", "files.upload", &missing]);
    assert!(out.stderr.contains("missing.txt"), "{}", out.stderr);
    assert_nothing_sent(&emu);
}

// ---- lookups --------------------------------------------------------------------------------

#[test]
fn channel_by_name_walks_every_page_of_public_and_private_channels() {
    let emu = Emu::start_with(&["--max-page-size", "7"]);
    for name in ["ops", "#ops"] {
        let arg = format!("name={name}");
        let out = emu.run(&["run", "channel_by_name", &arg]);
        out.assert_code(0).assert_no_panic();
        let j = out.json();
        assert_eq!(j["id"], "C0000003");
        assert_eq!(j["name"], "ops");
    }
    let reqs = emu.requests_to("conversations.list");
    assert!(reqs.len() > 2, "several pages: {}", reqs.len());
    assert_eq!(reqs[0]["args"]["types"], "public_channel,private_channel");
    // The last channels come from the last page; private ones are found when visible.
    let out = emu.run(&["run", "channel_by_name", "name=leadership"]);
    out.assert_code(0);
    assert_eq!(out.json()["is_private"], true);
    let out = emu.run(&["run", "channel_by_name", "name=#no-such-channel"]);
    out.assert_code(1);
    assert!(out.stderr.contains("#no-such-channel"), "{}", out.stderr);
    emu.clear_requests();
    emu.run(&["run", "channel_by_name"]).assert_code(2);
    emu.run(&["run", "channel_by_name", "name=#"])
        .assert_code(2);
    assert_nothing_sent(&emu);
}

#[test]
fn user_by_email_and_team_id() {
    let emu = Emu::start();
    let out = emu.run(&["run", "user_by_email", "email=user03@example.com"]);
    out.assert_code(0).assert_no_panic();
    let j = out.json();
    assert_eq!(j["id"], "U0000003");
    assert_eq!(j["profile"]["email"], "user03@example.com");
    assert_eq!(
        emu.requests_to("users.lookupByEmail")[0]["http_method"],
        "GET"
    );
    let out = emu.run(&["run", "user_by_email", "email=nobody@example.com"]);
    out.assert_code(1);
    assert!(out.stderr.contains("users_not_found"), "{}", out.stderr);
    let out = emu.run(&["run", "team_id"]);
    out.assert_code(0);
    let j = out.json();
    assert_eq!(j["team_id"], "T0EMULATOR");
    assert_eq!(j["team"], "Emulator Workspace");
    // Bad input and a missing token exit 2 with nothing sent.
    emu.clear_requests();
    emu.run(&["run", "user_by_email", "email=not-an-address"])
        .assert_code(2);
    emu.run(&["run", "user_by_email"]).assert_code(2);
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_API_URL", emu.api_url())
            .args(["run", "team_id"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(out.stderr.contains("SLACK_TOKEN"), "{}", out.stderr);
    assert_nothing_sent(&emu);
}

// ---- send_dm, broadcast, join/leave ----------------------------------------------------------

#[test]
fn send_dm_looks_up_opens_and_posts() {
    let emu = Emu::start();
    let out = emu.run(&[
        "run",
        "send_dm",
        "email=user03@example.com",
        "text=your build is green",
    ]);
    out.assert_code(0).assert_no_panic();
    let j = out.json();
    assert_eq!(j["ok"], true);
    let channel = j["channel"].as_str().unwrap();
    assert!(channel.starts_with('D'), "{channel}");
    assert_eq!(
        methods_called(&emu),
        [
            "users.lookupByEmail",
            "conversations.open",
            "chat.postMessage"
        ]
    );
    assert_eq!(
        emu.requests_to("conversations.open")[0]["args"]["users"],
        "U0000003"
    );
    assert_eq!(
        emu.messages(channel).last().unwrap()["text"],
        "your build is green"
    );
    // Blocks alone are fine.
    let out = emu.run(&[
        "run",
        "send_dm",
        "email=user03@example.com",
        r#"blocks=[{"type": "divider"}]"#,
    ]);
    out.assert_code(0);
    assert_eq!(out.json()["channel"], channel, "the same DM");
    // Unknown address: exit 1, nothing posted.
    emu.clear_requests();
    let out = emu.run(&["run", "send_dm", "email=ghost@example.com", "text=x"]);
    out.assert_code(1);
    assert!(out.stderr.contains("users_not_found"), "{}", out.stderr);
    assert_eq!(methods_called(&emu), ["users.lookupByEmail"]);
    // Bad input.
    emu.clear_requests();
    emu.run(&["run", "send_dm", "email=user03@example.com"])
        .assert_code(2);
    emu.run(&["run", "send_dm", "text=x"]).assert_code(2);
    emu.run(&["run", "send_dm", "email=nope", "text=x"])
        .assert_code(2);
    emu.run(&["run", "send_dm", "email=a@b.co", "blocks=[{"])
        .assert_code(2);
    assert_nothing_sent(&emu);
}

/// The channels the emulator's bot is a member of.
const BOT_CHANNELS: [&str; 6] = [
    "C0000001", "C0000002", "C0000003", "C0000009", "C0000013", "C0000026",
];

#[test]
fn broadcast_posts_to_every_member_channel() {
    let emu = Emu::start_with(&["--max-page-size", "4"]);
    let out = emu.run(&["run", "broadcast", "dry_run=true", "text=x"]);
    out.assert_code(0);
    let listed = out.json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BOT_CHANNELS);
    assert!(emu.requests_to("chat.postMessage").is_empty());
    assert!(emu.requests_to("users.conversations").len() > 1, "pages");
    assert_eq!(
        emu.requests_to("users.conversations")[0]["args"]["types"],
        "public_channel,private_channel"
    );

    let out = emu.run(&["run", "broadcast", "text=maintenance at 5"]);
    out.assert_code(0).assert_no_panic();
    let results = out.json();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6);
    for (r, id) in results.iter().zip(BOT_CHANNELS) {
        assert_eq!(r["channel"], id);
        assert_eq!(r["ok"], true);
        let ts = r["ts"].as_str().unwrap();
        let last = emu.messages(id).pop().unwrap();
        assert_eq!(last["ts"], ts);
        assert_eq!(last["text"], "maintenance at 5");
    }
}

#[test]
fn broadcast_reports_each_failure_and_exits_1() {
    let emu = Emu::start();
    emu.fault(json!({"path": "/api/chat.postMessage", "error": "is_archived"}));
    let out = emu.run(&["run", "broadcast", "text=hello"]);
    out.assert_code(1).assert_no_panic();
    let results = out.json();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6, "every channel was tried");
    assert_eq!(
        results[0],
        json!({"channel": "C0000001", "name": "general", "ok": false, "error": "is_archived"})
    );
    assert!(results[1..].iter().all(|r| r["ok"] == true));
    assert!(out.stderr.contains("1 of 6"), "{}", out.stderr);
    // Streamed, one line per channel, as they happen.
    emu.fault(json!({"path": "/api/chat.postMessage", "error": "not_in_channel"}));
    let out = emu.run(&["run", "-o", "jsonl", "broadcast", "text=hello"]);
    out.assert_code(1);
    let items = lines(&out);
    assert_eq!(items.len(), 6);
    assert_eq!(items[0]["error"], "not_in_channel");
    // st2 framing carries the per-channel results.
    emu.fault(json!({"path": "/api/chat.postMessage", "error": "is_archived"}));
    let out = emu.run(&["run", "-o", "st2", "broadcast", "text=hello"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("\"error\": \"is_archived\"")
            && out.stdout.contains("\"status\": false"),
        "{}",
        out.stdout
    );
    // Bad input.
    emu.clear_requests();
    emu.run(&["run", "broadcast"]).assert_code(2);
    emu.run(&["run", "broadcast", "text=x", "dry_run=perhaps"])
        .assert_code(2);
    assert_nothing_sent(&emu);
}

#[test]
fn join_and_leave_by_id_or_name() {
    let emu = Emu::start();
    let out = emu.run(&["run", "join_channel", "channel=#backend"]);
    out.assert_code(0).assert_no_panic();
    assert_eq!(out.json()["channel"]["is_member"], true);
    assert_eq!(
        emu.requests_to("conversations.join")[0]["args"]["channel"],
        "C0000005"
    );
    let out = emu.run(&["run", "leave_channel", "channel=backend"]);
    out.assert_code(0);
    assert_eq!(out.json(), json!({"ok": true}));
    let out = emu.run(&["run", "leave_channel", "channel=C0000005"]);
    out.assert_code(0);
    assert_eq!(out.json()["not_in_channel"], true);
    assert!(out.stderr.contains("not a member"), "{}", out.stderr);
    // An ID needs no lookup.
    emu.clear_requests();
    emu.run(&["run", "join_channel", "channel=C0000005"])
        .assert_code(0);
    assert_eq!(methods_called(&emu), ["conversations.join"]);
    // Slack's refusals and unknown names exit 1.
    let out = emu.run(&["run", "leave_channel", "channel=general"]);
    out.assert_code(1);
    assert!(out.stderr.contains("cant_leave_general"), "{}", out.stderr);
    emu.clear_requests();
    let out = emu.run(&["run", "join_channel", "channel=#nowhere"]);
    out.assert_code(1);
    assert!(emu.requests_to("conversations.join").is_empty());
    emu.clear_requests();
    emu.run(&["run", "join_channel"]).assert_code(2);
    emu.run(&["run", "leave_channel", "channel=#"])
        .assert_code(2);
    assert_nothing_sent(&emu);
}

// ---- mention linking -------------------------------------------------------------------------

#[test]
fn link_mentions_resolves_names_once_per_run() {
    let emu = Emu::start_with(&["--max-page-size", "7"]);
    let out = emu.run(&[
        "run",
        "--link-mentions",
        "chat.postMessage",
        "channel=C0000001",
        "text=@user02 and @user03: see #ops and #random, @here. mail user04@example.com, `@user05`, https://x.io/#ops @nobody",
    ]);
    out.assert_code(0).assert_no_panic();
    let expected = "<@U0000002> and <@U0000003>: see <#C0000003> and <#C0000002>, <!here>. mail user04@example.com, `@user05`, https://x.io/#ops @nobody";
    assert_eq!(out.json()["message"]["text"], expected);
    assert_eq!(emu.messages("C0000001").pop().unwrap()["text"], expected);
    assert!(out.stderr.contains("@nobody"), "{}", out.stderr);
    // One pass over each directory, every page of it.
    assert_eq!(passes(&emu, "users.list"), 1);
    assert_eq!(emu.requests_to("users.list").len(), 4);
    assert_eq!(passes(&emu, "conversations.list"), 1);
    assert!(emu.requests_to("conversations.list").len() > 1);

    // Only what the text names is loaded; broadcasts need nothing.
    emu.clear_requests();
    let out = emu.run(&[
        "run",
        "--link-mentions",
        "chat.postMessage",
        "channel=C0000001",
        "text=@channel heads up",
    ]);
    out.assert_code(0);
    assert_eq!(methods_called(&emu), ["chat.postMessage"]);
    assert_eq!(
        emu.messages("C0000001").pop().unwrap()["text"],
        "<!channel> heads up"
    );
    // Without the flag the text is sent as typed.
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=C0000001",
        "text=@user02",
    ]);
    assert_eq!(out.json()["message"]["text"], "@user02");

    // send_dm and broadcast take it as a parameter (or the flag).
    let out = emu.run(&[
        "run",
        "send_dm",
        "email=user03@example.com",
        "text=ping @user02 in #ops",
        "link_mentions=true",
    ]);
    out.assert_code(0);
    assert_eq!(
        out.json()["message"]["text"],
        "ping <@U0000002> in <#C0000003>"
    );
    let out = emu.run(&[
        "run",
        "--link-mentions",
        "broadcast",
        "text=@here #ops is live",
    ]);
    out.assert_code(0);
    assert_eq!(
        emu.messages("C0000009").pop().unwrap()["text"],
        "<!here> <#C0000003> is live"
    );

    // Not for actions that send no message text.
    emu.clear_requests();
    let out = emu.run(&["run", "--link-mentions", "users.list"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--link-mentions"), "{}", out.stderr);
    emu.run(&["run", "--link-mentions", "join_channel", "channel=C0000005"])
        .assert_code(2);
    assert_nothing_sent(&emu);
}
