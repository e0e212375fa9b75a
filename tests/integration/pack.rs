//! The StackStorm pack: its Python entry points run the way st2's python runner runs them
//! (tests/pack/test_pack.py, with a stub of st2's Action class) against the emulator, and
//! installed the way `st2 pack install` installs them (requirements.txt into a fresh
//! virtualenv, the binary from our wheel).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The interpreter for the Python tests: `$SLACKCTL_TEST_PYTHON` (the throwaway
/// virtualenv `.ci/run` makes, with eventlet), else `python3`. `None` (the caller skips, saying
/// so) when it or one of `modules` is missing; under `CI=true`, or when
/// `$SLACKCTL_TEST_PYTHON` is set, that is a failure instead, so CI never passes by skipping.
pub fn pack_python(modules: &[&str]) -> Option<String> {
    let chosen = std::env::var("SLACKCTL_TEST_PYTHON").ok();
    let strict = chosen.is_some() || std::env::var("CI").as_deref() == Ok("true");
    let py = chosen.unwrap_or_else(|| "python3".into());
    let mut check = Command::new(&py);
    check.arg("-c").arg(format!(
        "import sys{}",
        modules.iter().map(|m| format!(", {m}")).collect::<String>()
    ));
    let ok = check.output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let what = format!("{py} with {modules:?}");
    assert!(
        !strict,
        "{what} is not usable (CI=true or SLACKCTL_TEST_PYTHON set): run .ci/run, or point SLACKCTL_TEST_PYTHON at an interpreter that has them"
    );
    eprintln!("skipped: {what} not usable (.ci/run sets SLACKCTL_TEST_PYTHON up)");
    None
}

/// Runs a Python test process to completion, killing its process group after `limit` (a
/// process frozen by a blocking read would otherwise hang the suite), and asserts unittest's
/// summary: exactly `tests` tests, all passing, none skipped.
pub fn run_unittest(cmd: &mut Command, tests: usize, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let dir = tempdir("python");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start python");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read(&out_path).unwrap();
    let stderr = std::fs::read(&err_path).unwrap();
    let text = String::from_utf8_lossy(&stderr).into_owned();
    let Some(status) = status else {
        panic!("python tests still running after {limit:?} (frozen?):\n{text}");
    };
    let ran = format!("Ran {tests} test{}", if tests == 1 { "" } else { "s" });
    assert!(status.success(), "{text}");
    assert!(
        text.contains(&ran) && text.contains("\nOK"),
        "expected {ran}, all OK:\n{text}"
    );
    assert!(
        !text.contains("skipped"),
        "a Python test was skipped:\n{text}"
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

fn pack_test(py: &str, emu: &Emu) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(Path::new(ROOT).join("tests/pack/test_pack.py"))
        .env("EMU_API_URL", emu.api_url())
        .env("EMU_BASE_URL", emu.base_url())
        .env("EMU_WEBHOOK_URL", emu.webhook_url())
        .env("EMU_BOT_TOKEN", emu.token("bot"))
        .env("HOME", &emu.home)
        .env_remove("SLACK_TOKEN")
        .env_remove("SLACK_API_URL")
        .env_remove("SLACKCTL_CONFIG");
    cmd
}

#[test]
fn python_entry_points_work_like_st2s_runner() {
    let Some(py) = pack_python(&[]) else { return };
    let emu = Emu::start();
    let out = run_unittest(
        pack_test(&py, &emu)
            .arg("PackTest")
            .env("SLACKCTL_BIN", BIN),
        10,
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&emu.token("bot")),
        "token leaked into logs: {stderr}"
    );
}

/// The wheel `.ci/run` built (`$SLACKCTL_TEST_WHEEL`), else one built here from the test
/// binary by the same script, uncompressed for speed.
fn wheel_dir(py: &str) -> PathBuf {
    if let Ok(wheel) = std::env::var("SLACKCTL_TEST_WHEEL") {
        let dir = tempdir("wheels");
        let name = Path::new(&wheel).file_name().unwrap();
        std::fs::copy(&wheel, dir.join(name)).unwrap();
        return dir;
    }
    let dir = tempdir("wheels");
    let out = Command::new(py)
        .arg(Path::new(ROOT).join("python/build_wheel.py"))
        .args(["--binary", BIN, "--store", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn requirements_install_the_wheel_into_a_fresh_virtualenv_and_actions_find_it() {
    let Some(py) = pack_python(&["venv", "ensurepip"]) else {
        return;
    };
    let wheels = wheel_dir(&py);
    let venv = tempdir("venv").join("slack");
    let made = Command::new(&py)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // What `st2 pack install` runs in the pack's virtualenv, offline: pip_opts
    // --no-index --find-links <dir> (st2.conf [actionrunner] pip_opts).
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--no-index", "--find-links"])
        .arg(&wheels)
        .arg("-r")
        .arg(Path::new(ROOT).join("requirements.txt"))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .unwrap();
    let pip_out = String::from_utf8_lossy(&pip.stdout);
    assert!(
        pip.status.success(),
        "{pip_out}\n{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert!(
        pip_out.contains(&format!(
            "Successfully installed slackctl-bin-{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{pip_out}"
    );
    let installed = venv.join("bin/slackctl");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("slackctl {}", env!("CARGO_PKG_VERSION"))
    );
    // The entry point with the virtualenv's python, no SLACKCTL_BIN, nothing on PATH.
    let emu = Emu::start();
    let empty = tempdir("empty-path");
    run_unittest(
        pack_test(venv.join("bin/python").to_str().unwrap(), &emu)
            .arg("WheelInstallTest")
            .env_remove("SLACKCTL_BIN")
            .env("PATH", &empty),
        1,
        Duration::from_secs(120),
    );
    let posted = emu.messages("general");
    let texts: Vec<_> = posted
        .iter()
        .filter(|m| m["text"] == "from the wheel")
        .collect();
    assert_eq!(texts.len(), 1, "{posted:?}");
}

#[test]
fn requirements_pin_only_our_wheel_at_the_crate_version() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("requirements.txt")).unwrap();
    let reqs: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        reqs,
        [format!("slackctl-bin=={}", env!("CARGO_PKG_VERSION"))],
        "requirements.txt must pin exactly our wheel at Cargo.toml's version"
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
