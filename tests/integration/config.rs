//! Config file discovery, validation and precedence, seen from the command line.

use crate::support::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn unknown_key_names_file_key_and_line_and_sends_nothing() {
    let emu = Emu::start();
    let dir = tempdir("cfg");
    let f = write(
        &dir,
        "slack.yaml",
        "action_token: xoxb-x\nsensor:\n  strip_formating: true\n",
    );
    let out = emu.run(&["--config", f.to_str().unwrap(), "run", "auth.test"]);
    out.assert_code(2).assert_no_panic();
    assert!(out.stderr.contains("slack.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("strip_formating"), "{}", out.stderr);
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert!(
        out.stderr.contains("strip_formatting"),
        "suggestion: {}",
        out.stderr
    );
    assert!(emu.requests().is_empty());
}

#[test]
fn wrong_type_and_st2kv_are_config_errors() {
    let dir = tempdir("cfg");
    let f = write(&dir, "a.yaml", "admin:\n  set_active: maybe-not\n");
    let out = slackctl(&["--config", f.to_str().unwrap(), "run", "api.test"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("a.yaml") && out.stderr.contains("set_active"),
        "{}",
        out.stderr
    );
    let f = write(
        &dir,
        "b.yaml",
        "action_token: \"{{ st2kv.system.slack_token }}\"\n",
    );
    let out = slackctl(&["--config", f.to_str().unwrap(), "run", "api.test"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("StackStorm") && out.stderr.contains("SLACK_TOKEN"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_explicit_config_is_an_error() {
    let out = slackctl(&["--config", "/nonexistent/slack.yaml", "run", "api.test"]);
    out.assert_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

#[test]
fn token_and_url_from_file_env_overrides_file_flag_overrides_env() {
    let emu = Emu::start();
    let dir = tempdir("cfg");
    let f = write(
        &dir,
        "slack.yaml",
        &format!(
            "action_token: {}\napi_url: {}\n",
            emu.token("user"),
            emu.api_url()
        ),
    );
    // From the file alone.
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--config", f.to_str().unwrap(), "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(emu.requests_to("auth.test")[0]["token_kind"], "user");
    emu.clear_requests();
    // SLACK_TOKEN beats action_token.
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_TOKEN", emu.token("bot"))
            .args(["--config", f.to_str().unwrap(), "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(emu.requests_to("auth.test")[0]["token_kind"], "bot");
    // The token= parameter beats both.
    emu.clear_requests();
    let user = format!("token={}", emu.token("user"));
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_TOKEN", emu.token("bot"))
            .args(["--config", f.to_str().unwrap(), "run", "auth.test", &user])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(emu.requests_to("auth.test")[0]["token_kind"], "user");
    // --api-url beats SLACK_API_URL and the file.
    let out = Out::from(
        bare_cmd(&emu.home)
            .env("SLACK_API_URL", "http://127.0.0.1:9/api/")
            .args([
                "--config",
                f.to_str().unwrap(),
                "--api-url",
                &emu.api_url(),
                "run",
                "auth.test",
            ])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
}

#[test]
fn user_config_dir_and_profiles() {
    let emu = Emu::start();
    let cfgdir = emu.home.join(".config/slackctl");
    std::fs::create_dir_all(&cfgdir).unwrap();
    write(
        &cfgdir,
        "slack.yaml",
        &format!(
            "action_token: xoxb-wrong-token\nprofiles:\n  emu:\n    action_token: {}\n    api_url: {}\n",
            emu.token("bot"),
            emu.api_url()
        ),
    );
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--profile", "emu", "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--profile", "nope", "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("emu"),
        "lists defined profiles: {}",
        out.stderr
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("slack.yaml.example");
    // `run` validates the config before the token check; api.test needs no token.
    let out = slackctl(&[
        "--config",
        example.to_str().unwrap(),
        "--api-url",
        "http://127.0.0.1:9/api/",
        "--retries",
        "0",
        "run",
        "api.test",
    ]);
    assert_eq!(
        out.code, 1,
        "config must parse (the call itself fails: nothing listens): {}",
        out.stderr
    );
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("XXXXXXXX"),
        "webhook secret leaked: {}",
        out.stderr
    );
}

/// A config whose `staging` profile leaves the token and webhook empty and sets nothing else.
fn inheriting_config(emu: &Emu, top_token: &str, top_webhook: &str) -> std::path::PathBuf {
    let dir = tempdir("cfg-inherit");
    write(
        &dir,
        "slack.yaml",
        &format!(
            "api_url: {}\naction_token: \"{top_token}\"\npost_message_action:\n  webhook_url: \"{top_webhook}\"\nprofiles:\n  staging:\n    action_token: \"\"\n    webhook_url: \"\"\n    api_url: \"\"\n  limited:\n    action_token: {}\n",
            emu.api_url(),
            emu.token("limited_bot")
        ),
    )
}

#[test]
fn a_profile_inherits_what_it_leaves_empty_or_out() {
    let emu = Emu::start();
    let f = inheriting_config(&emu, &emu.token("user"), &emu.webhook_url());
    let cfg = f.to_str().unwrap();
    // Empty action_token and api_url in the profile: the top level's are used.
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--config", cfg, "--profile", "staging", "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(emu.requests_to("auth.test")[0]["token_kind"], "user");
    // Empty webhook_url in the profile: the top level's webhook gets the post.
    let out = Out::from(
        bare_cmd(&emu.home)
            .args([
                "--config",
                cfg,
                "--profile",
                "staging",
                "run",
                "post_message",
                "message=inherited webhook",
            ])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "true");
    let texts: Vec<String> = emu
        .messages("C0000001")
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        texts.iter().filter(|t| *t == "inherited webhook").count(),
        1,
        "{texts:?}"
    );
    // A value the profile does set wins over the top level (the limited token lacks
    // users:read), and the profile still inherits api_url.
    emu.clear_requests();
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--config", cfg, "--profile", "limited", "run", "users.list"])
            .output()
            .unwrap(),
    );
    out.assert_code(1);
    assert!(out.stderr.contains("missing_scope"), "{}", out.stderr);
    assert_eq!(emu.requests_to("users.list").len(), 1);
}

#[test]
fn a_missing_value_names_every_place_looked_and_which_were_empty() {
    let emu = Emu::start();
    let f = inheriting_config(&emu, "", "");
    let cfg = f.to_str().unwrap();
    let out = Out::from(
        bare_cmd(&emu.home)
            .args([
                "--config",
                cfg,
                "--profile",
                "staging",
                "run",
                "post_message",
                "message=hi",
            ])
            .output()
            .unwrap(),
    );
    out.assert_code(2).assert_no_panic();
    for place in [
        "SLACK_WEBHOOK_URL (not set)",
        "profiles.staging.webhook_url in",
        "post_message_action.webhook_url in",
    ] {
        assert!(out.stderr.contains(place), "{place}: {}", out.stderr);
    }
    assert_eq!(out.stderr.matches("(empty)").count(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("slack.yaml"), "{}", out.stderr);
    let out = Out::from(
        bare_cmd(&emu.home)
            .args(["--config", cfg, "--profile", "staging", "run", "auth.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("profiles.staging.action_token in")
            && out.stderr.contains("SLACK_TOKEN (not set)"),
        "{}",
        out.stderr
    );
    assert!(emu.requests().is_empty(), "something was sent");
}

#[test]
fn a_profile_without_a_config_file_says_there_is_no_file_and_where_it_looked() {
    let home = tempdir("no-config");
    let out = Out::from(
        bare_cmd(&home)
            .args(["--profile", "staging", "run", "api.test"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("there is no config file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("is not defined"), "{}", out.stderr);
    let looked = home.join(".config/slackctl/slack.yaml");
    assert!(
        out.stderr.contains(looked.to_str().unwrap())
            && out.stderr.contains("/opt/stackstorm/configs/slack.yaml"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_example_config_copied_as_is_gives_no_warning() {
    let emu = Emu::start();
    let dir = tempdir("cfg-example");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("slack.yaml.example");
    let f = dir.join("slack.yaml");
    std::fs::copy(example, &f).unwrap();
    let cfg = f.to_str().unwrap();
    for args in [
        vec!["run", "post_message", "message=from the example config"],
        vec![
            "--profile",
            "staging",
            "run",
            "post_message",
            "message=staging",
        ],
        vec!["--profile", "staging", "run", "auth.test"],
    ] {
        let out = Out::from(
            emu.cmd()
                .env("SLACK_WEBHOOK_URL", emu.webhook_url())
                .args(["--config", cfg])
                .args(&args)
                .output()
                .unwrap(),
        );
        out.assert_code(0);
        assert!(out.stderr.is_empty(), "{args:?} printed: {}", out.stderr);
    }
    // The webhook body carried no sender overrides from the example.
    let hooks: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or("").starts_with("/services/"))
        .collect();
    assert_eq!(hooks.len(), 2);
    for h in hooks {
        let body = h["raw_body"].as_str().unwrap_or_default();
        assert!(
            !body.contains("channel") && !body.contains("username"),
            "{body}"
        );
    }
}
