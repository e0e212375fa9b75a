//! Issue 13: secrets never printed, hostile numbers and files never abort, nothing invalid
//! is sent, and the Events API receiver survives a connection flood.

use crate::support::{Emu, bare_cmd, slackctl, tempdir};
use std::process::Stdio;

/// Neither stream holds `secret`, and no panic text reached the user.
#[track_caller]
fn assert_hidden(out: &crate::support::Out, secret: &str) {
    out.assert_no_panic();
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "secret leaked\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn secret_parameters_never_appear_in_any_error_path() {
    let emu = Emu::start();
    let secret = "plainSecretValue99"; // does not look like a token
    // A validation error about the secret itself (wrong type), nothing sent.
    let json = format!(r#"{{"channel": "C1", "text": "hi", "token": ["{secret}"]}}"#);
    let out = emu.run(&["run", "chat.postMessage", "--parameters", &json]);
    out.assert_code(2);
    assert!(out.stderr.contains("token"), "{}", out.stderr);
    assert_hidden(&out, secret);
    // A validation error elsewhere while the secret is given.
    let tok = format!("token={secret}");
    let out = emu.run(&[
        "run",
        "chat.postMessage",
        "channel=C1",
        "text=hi",
        "unfurl_links=maybe",
        &tok,
    ]);
    out.assert_code(2);
    assert_hidden(&out, secret);
    assert!(
        emu.requests().is_empty(),
        "nothing may be sent after exit 2"
    );
    // A failing call, verbose, and in st2 framing (the error goes to stdout there).
    let out = emu.run(&[
        "-v",
        "run",
        "-o",
        "st2",
        "chat.postMessage",
        "channel=C1",
        "text=hi",
        &tok,
    ]);
    out.assert_code(1);
    assert!(out.stdout.contains("invalid_auth"), "{}", out.stdout);
    assert!(out.stderr.contains("debug"), "-v logs: {}", out.stderr);
    assert_hidden(&out, secret);
    // OAuth secrets by role: client_secret, code, refresh_token.
    let out = emu.run(&[
        "-v",
        "run",
        "-o",
        "st2",
        "oauth.v2.access",
        "client_id=1.2",
        "client_secret=clientSecretABC",
        "code=oneTimeCodeXYZ",
        "refresh_token=refreshTokenQRS",
        "http_method=maybe",
    ]);
    out.assert_code(2);
    for s in ["clientSecretABC", "oneTimeCodeXYZ", "refreshTokenQRS"] {
        assert_hidden(&out, s);
    }
    // A webhook URL given as a parameter, to a host that refuses: the error names no path.
    let out = emu.run(&[
        "--retries",
        "0",
        "run",
        "post_message",
        "message=hi",
        "webhook_url=http://127.0.0.1:1/services/T0/B0/hookSecret123",
    ]);
    out.assert_code(1);
    assert_hidden(&out, "hookSecret123");
}

#[test]
fn url_passwords_are_masked_in_verbose_logs_and_errors() {
    let out = slackctl(&[
        "--api-url",
        "http://user:apiPassw0rd@127.0.0.1:1/api/",
        "--retries",
        "0",
        "-v",
        "run",
        "auth.test",
        "token=xoxb-1-2-abc",
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("user:[redacted]@"), "{}", out.stderr);
    assert_hidden(&out, "apiPassw0rd");
}
