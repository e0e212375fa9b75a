//! Issue 15: every value the original st2 pack accepted is still accepted, by st2's own
//! casting and schema validation of our action YAML and by `slackctl run` (which must send it
//! in Slack's wire form). The work is done by tests/pack/test_original_values.py.

use crate::support::*;

#[test]
fn every_value_the_original_pack_accepted_is_still_accepted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let st2 = root.join("../shared/data/st2-actions.json");
    if !st2.is_file() {
        eprintln!("skipped: {} not present", st2.display());
        return;
    }
    let Some(py) = crate::pack::pack_python(&["jsonschema", "yaml"]) else {
        return;
    };
    let emu = Emu::start();
    let out = std::process::Command::new(&py)
        .arg(root.join("tests/pack/test_original_values.py"))
        .env("SLACKCTL_BIN", BIN)
        .env("EMU_API_URL", emu.api_url())
        .env("EMU_BASE_URL", emu.base_url())
        .env("EMU_BOT_TOKEN", emu.token("bot"))
        .env("ST2_ACTIONS", &st2)
        .env("HOME", &emu.home)
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
        .find(|l| l.ends_with("values checked, 0 rejections"))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    let n: usize = line.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1000, "{line}");
    assert!(stdout.contains(", 0 refused"), "{stdout}");
    assert!(stdout.contains("wire form: 0 problems"), "{stdout}");
}
