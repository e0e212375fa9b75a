//! `action list`, `action get`, `run --help`, the importer check, completions and man page.

use crate::support::*;
use serde_json::Value;

fn st2_names() -> Option<Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/st2-actions.json");
    std::fs::read_to_string(path)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap())
}

#[test]
fn list_is_sorted_like_st2_and_plain_when_piped() {
    let out = slackctl(&["action", "list"]);
    out.assert_code(0);
    let refs: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(refs.len() >= 395, "{}", refs.len());
    let mut sorted = refs.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(refs, sorted, "byte order, as st2's API sorts");
    let pos = |r: &str| {
        refs.iter()
            .position(|x| *x == r)
            .unwrap_or_else(|| panic!("{r} missing"))
    };
    assert!(pos("slack.pins.remove") < pos("slack.post_attachment"));
    assert!(pos("slack.post_message") < pos("slack.reactions.add"));
    assert!(pos("slack.users.setPresence") < pos("slack.users_filter_by"));
    assert!(pos("slack.users_filter_by") < pos("slack.views.open"));
    for line in out.stdout.lines().take(5) {
        assert_eq!(line.split('\t').nth(1), Some("slack"));
    }
    let retired = out
        .stdout
        .lines()
        .find(|l| l.starts_with("slack.channels.history\t"))
        .unwrap();
    assert!(retired.contains("[retired]"), "{retired}");
}

#[test]
fn list_filter_json_and_yaml() {
    let out = slackctl(&["action", "list", "chat.post"]);
    out.assert_code(0);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    let out = slackctl(&["action", "list", "--json"]);
    let all = out.json();
    assert!(all.as_array().unwrap().len() >= 395);
    assert_eq!(all[0]["ref"], "slack.admin.analytics.getFile");
    let y = slackctl(&["action", "list", "reactions.add", "--yaml"]);
    y.assert_code(0);
    assert!(
        y.stdout.contains("ref: slack.reactions.add"),
        "{}",
        y.stdout
    );
    slackctl(&["action", "list", "-p", "core"]).assert_code(2);
}

#[test]
fn every_st2_action_is_listed_with_its_parameters() {
    let Some(st2) = st2_names() else {
        eprintln!("skipped: ../shared/data/st2-actions.json not present");
        return;
    };
    let out = slackctl(&["action", "list", "--json"]);
    let all = out.json();
    let by_name: std::collections::HashMap<&str, &Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a))
        .collect();
    for (name, act) in st2.as_object().unwrap() {
        let ours = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        for (pname, p) in act["parameters"].as_object().unwrap() {
            let op = &ours["parameters"][pname];
            assert!(op.is_object(), "{name}.{pname} missing");
            // Required flags come from Slack's table and the SDKs, never from the pack (a
            // dropped flag only widens what st2 accepts); the type stays the pack's.
            assert_eq!(op["type"], p["type"], "{name}.{pname} keeps st2's type");
            if p["immutable"] == true {
                assert_eq!(op["immutable"], true, "{name}.{pname}");
                assert_eq!(op["default"], p["default"], "{name}.{pname}");
            }
        }
    }
}

#[test]
fn get_shows_property_value_and_json_parameters() {
    let out = slackctl(&["action", "get", "slack.chat.postMessage"]);
    out.assert_code(0);
    snapshot("action_get_chat.postMessage.txt", &out.stdout);
    let j = slackctl(&["action", "get", "chat.postMessage", "--json"]).json();
    assert_eq!(j["uid"], "action:slack:chat.postMessage");
    assert_eq!(j["ref"], "slack.chat.postMessage");
    assert_eq!(j["parameters"]["end_point"]["immutable"], true);
    assert_eq!(j["parameters"]["end_point"]["default"], "chat.postMessage");
    assert_eq!(j["parameters"]["channel"]["required"], true);
    // st2's declared types are the original pack's, so st2 accepts what it always accepted.
    assert_eq!(j["parameters"]["thread_ts"]["type"], "string");
    assert_eq!(j["parameters"]["blocks"]["type"], "string");
    assert_eq!(j["parameters"]["metadata"]["type"], "object");
    assert_eq!(j["parameters"]["token"]["secret"], true);
    assert!(
        j["parameters"]["mrkdwn"]["default"].is_null(),
        "documentation defaults are never real defaults"
    );
    assert_eq!(
        j["slackctl"]["docs"],
        "https://api.slack.com/methods/chat.postMessage"
    );
    assert_eq!(j["slackctl"]["json_body"], true);
    assert_eq!(j["slackctl"]["scopes"]["bot"][0], "chat:write");
}

#[test]
fn list_snapshot_of_a_family() {
    let out = slackctl(&["action", "list", "reactions."]);
    out.assert_code(0);
    snapshot("action_list_reactions.txt", &out.stdout);
}

#[test]
fn retired_actions_are_marked_with_their_replacement() {
    let j = slackctl(&["action", "get", "channels.history", "--json"]).json();
    assert_eq!(j["slackctl"]["status"], "retired");
    assert_eq!(j["slackctl"]["replacement"], "conversations.history");
    let text = slackctl(&["action", "get", "users.admin.invite"]).stdout;
    assert!(
        text.contains("undocumented") && text.contains("admin.users.invite"),
        "{text}"
    );
}

#[test]
fn unknown_action_exits_2_with_suggestions() {
    let out = slackctl(&["action", "get", "chat.postMesage"]);
    out.assert_code(2).assert_no_panic();
    assert!(out.stderr.contains("chat.postMessage"), "{}", out.stderr);
    let out = slackctl(&["run", "slack.chat.postMesage", "channel=C1"]);
    out.assert_code(2);
    assert!(out.stderr.contains("did you mean"), "{}", out.stderr);
}

#[test]
fn run_help_lists_required_and_optional_parameters() {
    let out = slackctl(&["run", "chat.postMessage", "--help"]);
    out.assert_code(0);
    let req = out
        .stdout
        .find("Required Parameters:")
        .expect("required section");
    let opt = out
        .stdout
        .find("Optional Parameters:")
        .expect("optional section");
    assert!(req < opt);
    assert!(out.stdout[req..opt].contains("    channel\n"));
    assert!(out.stdout[opt..].contains("    thread_ts\n"));
    assert!(
        !out.stdout.contains("end_point"),
        "immutable parameters are hidden"
    );
    snapshot(
        "run_help_reactions.add.txt",
        &slackctl(&["run", "reactions.add", "-h"]).stdout,
    );
}

#[test]
fn completions_and_man_page() {
    let out = slackctl(&["completions", "bash"]);
    out.assert_code(0);
    assert!(out.stdout.contains("slackctl"));
    let man = slackctl(&["man"]);
    man.assert_code(0);
    assert!(
        man.stdout.contains(".TH slackctl"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[test]
fn importer_check_passes_on_the_committed_catalog() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.join("slack-methods.json").exists() {
        eprintln!("skipped: ../shared/data not present");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slackctl-import"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--check", "--methods"])
        .arg(data.join("slack-methods.json"))
        .arg("--st2")
        .arg(data.join("st2-actions.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The 50 methods slackctl documents fully: every parameter has a one-line description.
const MOST_USED: &[&str] = &[
    "chat.postMessage",
    "chat.update",
    "chat.delete",
    "chat.postEphemeral",
    "chat.scheduleMessage",
    "chat.getPermalink",
    "chat.unfurl",
    "chat.meMessage",
    "conversations.list",
    "conversations.history",
    "conversations.replies",
    "conversations.info",
    "conversations.members",
    "conversations.create",
    "conversations.invite",
    "conversations.join",
    "conversations.leave",
    "conversations.archive",
    "conversations.unarchive",
    "conversations.rename",
    "conversations.setTopic",
    "conversations.setPurpose",
    "conversations.open",
    "conversations.kick",
    "conversations.mark",
    "users.list",
    "users.info",
    "users.lookupByEmail",
    "users.conversations",
    "users.getPresence",
    "users.setPresence",
    "users.profile.get",
    "users.profile.set",
    "reactions.add",
    "reactions.remove",
    "reactions.get",
    "files.info",
    "files.list",
    "files.delete",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
    "pins.add",
    "pins.remove",
    "pins.list",
    "views.open",
    "views.publish",
    "views.update",
    "views.push",
    "auth.test",
    "team.info",
];

#[test]
fn most_used_methods_describe_every_parameter() {
    assert_eq!(MOST_USED.len(), 50);
    let mut missing = Vec::new();
    for m in MOST_USED {
        let j = slackctl(&["action", "get", m, "--json"]).json();
        for (name, p) in j["parameters"].as_object().unwrap() {
            if p["immutable"] != true && p["description"].as_str().unwrap_or("").is_empty() {
                missing.push(format!("{m}.{name}"));
            }
        }
    }
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn help_shows_what_must_be_given_and_one_of_groups() {
    let out = slackctl(&["run", "chat.postMessage", "--help"]);
    out.assert_code(0);
    let (req, opt) = out.stdout.split_once("Optional Parameters:").unwrap();
    assert!(req.contains("    channel\n"), "{req}");
    // http_method has a default, so it need not be given even though st2 marks it required.
    assert!(!req.contains("http_method"), "{req}");
    assert!(opt.contains("    http_method\n"), "{opt}");
    assert!(
        out.stdout
            .contains("one of: attachments, blocks, text, markdown_text"),
        "{}",
        out.stdout
    );
    let out = slackctl(&["run", "views.open", "--help"]);
    let (req, _) = out.stdout.split_once("Optional Parameters:").unwrap();
    assert!(
        req.contains("    view\n") && !req.contains("trigger_id"),
        "{req}"
    );
    assert!(
        out.stdout
            .contains("exactly one of: trigger_id, interactivity_pointer"),
        "{}",
        out.stdout
    );
}

/// Calls Slack's SDKs accept that the st2 pack's 2020 flags used to refuse (issue 14).
#[test]
fn calls_the_sdks_accept_are_not_refused() {
    let emu = Emu::start();
    let view = r#"view={"type":"modal","title":{"type":"plain_text","text":"t"},"blocks":[]}"#;
    let cases: &[&[&str]] = &[
        &["views.open", "interactivity_pointer=IP1", view],
        &["views.push", "interactivity_pointer=IP1", view],
        &[
            "chat.unfurl",
            "source=composer",
            "unfurl_id=U1",
            r#"unfurls={}"#,
        ],
        &[
            "oauth.v2.access",
            "client_id=1.2",
            "client_secret=s",
            "grant_type=refresh_token",
            "refresh_token=r",
        ],
        &[
            "admin.users.session.invalidate",
            "user_id=U1",
            "session_id=s-12345",
        ],
        &["admin.users.list"],
        &[
            "admin.users.setExpiration",
            "user_id=U1",
            "expiration_ts=1900000000",
        ],
        &[
            "chat.appendStream",
            "channel=C1",
            "ts=1.2",
            r#"chunks=[{"type":"markdown_text","text":"x"}]"#,
        ],
        &[
            "chat.stopStream",
            "channel=C1",
            "ts=1.2",
            "session_status=complete",
        ],
        &[
            "chat.unfurl",
            "channel=C1",
            "ts=1.2",
            r#"metadata={"entities":[]}"#,
        ],
        &[
            "chat.postMessage",
            "channel=C1",
            "text=x",
            "container_id=X1",
        ],
        &["team.info", "include_slackbot_availability=true"],
        &["admin.apps.uninstall", "app_id=A1", "team_id=T1"],
    ];
    for args in cases {
        let mut argv = vec!["run"];
        argv.extend_from_slice(args);
        let out = emu.run(&argv);
        assert_ne!(out.code, 2, "{args:?} refused:\n{}", out.stderr);
        out.assert_no_panic();
    }
    // The refresh's client credentials travel as HTTP Basic auth, as slack_sdk sends them.
    let r = emu.requests_to("oauth.v2.access");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["args"]["client_id"], "1.2");
    assert_eq!(r[0]["args"]["grant_type"], "refresh_token");
    let raw = r[0]["raw_body"].as_str().unwrap();
    assert!(!raw.contains("client_secret"), "{raw}");
    // session_id is a string (both SDKs), so an ID that is not all digits is accepted.
    let r = emu.requests_to("admin.users.session.invalidate");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["args"]["session_id"], "s-12345");
}
