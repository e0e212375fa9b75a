//! Issue 14: every request exactly as slack_sdk sends it. tests/sdk/differential.py makes each
//! call with slack_sdk's WebClient and with `slackctl run` against a loopback capture server
//! and compares the decoded requests; differences the importer records as deliberate
//! deviations (`slackctl-import --print-deviations`) are the only ones allowed.

use crate::support::*;

#[test]
fn slackctl_sends_what_slack_sdk_sends() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk_dir = root.join("../shared/data/sdk");
    let Some(sig) = std::fs::read_dir(&sdk_dir).ok().and_then(|d| {
        d.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("slack_sdk-"))
        })
    }) else {
        eprintln!("skipped: no SDK signatures in {}", sdk_dir.display());
        return;
    };
    let devs = std::process::Command::new(env!("CARGO_BIN_EXE_slackctl-import"))
        .arg("--print-deviations")
        .output()
        .unwrap();
    assert!(devs.status.success());
    let Some(py) = crate::pack::pack_python(&["yaml", "slack_sdk"]) else {
        return;
    };
    let dir = tempdir("sdk-diff");
    let devs_path = dir.join("deviations.json");
    std::fs::write(&devs_path, &devs.stdout).unwrap();
    let out = std::process::Command::new(&py)
        .arg(root.join("tests/sdk/differential.py"))
        .env("SLACKCTL_BIN", BIN)
        .env("SDK_SIGNATURES", &sig)
        .env("DEVIATIONS", &devs_path)
        .env("HOME", &dir)
        .env_remove("SLACK_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {py}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    if stdout.starts_with("SKIP:") {
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.ends_with("methods compared, 0 differences"))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    let n: usize = line.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 300, "{line}");
}
