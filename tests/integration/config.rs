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
