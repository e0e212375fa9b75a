//! A config file others can change, or read while it holds a credential, is a leak waiting to
//! happen: say so once, naming the file and the fix.

use super::FileConfig;
use std::path::Path;
use std::sync::Mutex;

/// What is wrong with a config file's permissions, in words; None when nothing is.
pub fn problem(mode: u32, holds_secret: bool) -> Option<&'static str> {
    let others_write = mode & 0o022 != 0;
    let others_read = mode & 0o044 != 0;
    match (others_write, others_read && holds_secret) {
        (true, true) => Some("can be changed by other users and holds a token they can read"),
        (true, false) => Some("can be changed by other users"),
        (false, true) => Some("holds a token that other users can read"),
        (false, false) => None,
    }
}

/// Whether the file holds any credential (a token, a signing secret, a webhook URL, or a
/// `state_backend` address with a password in it).
pub fn holds_secret(cfg: &FileConfig) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let with_password = |v: &Option<String>| {
        v.as_deref()
            .and_then(|u| u.split_once("://"))
            .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'))
    };
    with_password(&cfg.state_backend)
        || set(&cfg.action_token)
        || set(&cfg.post_message_action.webhook_url)
        || !cfg.sensor.token.trim().is_empty()
        || set(&cfg.sensor.app_token)
        || set(&cfg.sensor.signing_secret)
        || !cfg.admin.admin_token.trim().is_empty()
        || cfg.profiles.values().any(|p| {
            set(&p.action_token)
                || set(&p.app_token)
                || set(&p.webhook_url)
                || set(&p.signing_secret)
        })
}

/// Warns (once per file and process) when `path`'s permissions expose it.
pub fn warn_if_exposed(path: &Path, cfg: &FileConfig) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        static WARNED: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let Some(what) = problem(meta.permissions().mode(), holds_secret(cfg)) else {
            return;
        };
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if warned.iter().any(|p| p == path) {
            return;
        }
        warned.push(path.to_path_buf());
        crate::log::warn(&format!(
            "config file {} {what}; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    #[cfg(not(unix))]
    let _ = (path, cfg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_that_expose_the_file() {
        assert_eq!(problem(0o100600, true), None);
        assert_eq!(problem(0o100644, false), None);
        assert!(
            problem(0o100644, true)
                .unwrap()
                .contains("other users can read")
        );
        assert!(problem(0o100640, true).is_some());
        assert!(problem(0o100620, false).unwrap().contains("changed"));
        assert!(problem(0o100666, true).unwrap().contains("changed"));
        let cfg = super::super::parse("profiles:\n  a:\n    app_token: xapp-1\n", Path::new("x"))
            .unwrap();
        assert!(holds_secret(&cfg));
        assert!(!holds_secret(&FileConfig::default()));
        let redis = |url: &str| {
            let text = format!("state_backend: \"{url}\"\n");
            holds_secret(&super::super::parse(&text, Path::new("x")).unwrap())
        };
        assert!(redis("redis://:pw-123@redis.internal:6379/2"));
        assert!(redis("rediss://user:pw@r:6380/0"));
        assert!(
            !redis("redis://redis.internal:6379/2"),
            "no password, nothing to hide"
        );
    }
}
