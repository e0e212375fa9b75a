//! The StackStorm pack: its Python entry points run the way st2's python runner runs them
//! (tests/pack/test_pack.py, with a stub of st2's Action class) against the emulator.

use crate::support::*;

fn python() -> Option<&'static str> {
    ["python3", "python"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn python_entry_points_work_like_st2s_runner() {
    let Some(py) = python() else {
        eprintln!("skipped: no python3 on this machine");
        return;
    };
    let emu = Emu::start();
    let out = std::process::Command::new(py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/pack/test_pack.py"
        ))
        .env("SLACKCTL_BIN", BIN)
        .env("EMU_API_URL", emu.api_url())
        .env("EMU_BASE_URL", emu.base_url())
        .env("EMU_WEBHOOK_URL", emu.webhook_url())
        .env("EMU_BOT_TOKEN", emu.token("bot"))
        .env("HOME", &emu.home)
        .env_remove("SLACK_TOKEN")
        .env_remove("SLACK_API_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Ran 6 tests") && stderr.contains("OK"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&emu.token("bot")),
        "token leaked into logs: {stderr}"
    );
}

#[test]
fn pack_metadata_is_consistent() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pack = std::fs::read_to_string(root.join("pack.yaml")).unwrap();
    assert!(pack.contains("ref: slack"));
    // Every entry point named by an action file exists.
    let all = slackctl(&["action", "list", "--json"]).json();
    for a in all.as_array().unwrap() {
        let ep = a["entry_point"].as_str().unwrap();
        assert!(
            root.join("actions").join(ep).is_file(),
            "{} names missing entry point {ep}",
            a["name"]
        );
        assert_eq!(a["runner_type"], "python-script");
        if let Some(t) = a["parameters"].get("token") {
            assert_eq!(t["secret"], true, "{}: token must be secret", a["name"]);
        }
    }
    // The config schema knows every top-level key of the example config.
    let schema = std::fs::read_to_string(root.join("config.schema.yaml")).unwrap();
    let example = std::fs::read_to_string(root.join("slack.yaml.example")).unwrap();
    for line in example.lines() {
        if let Some((key, _)) = line.split_once(':')
            && !key.starts_with([' ', '#'])
            && !key.is_empty()
        {
            assert!(
                schema.contains(&format!("\n{key}:")),
                "config.schema.yaml lacks {key}"
            );
        }
    }
}
