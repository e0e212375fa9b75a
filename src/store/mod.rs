//! What must outlive one process, behind one small storage interface: the bulk send-once
//! journal (`journal`), the sensor's dedupe record (`seen`) and the pacing state shared by
//! every slackctl process of a workspace (`pace`).
//!
//! Each submodule defines its trait next to the local-file implementation, which is the
//! default and needs nothing installed. A shared backend for several hosts (Redis, for
//! StackStorm clusters) implements the same traits; callers only ever hold the trait, so
//! choosing a backend is one decision made in `Backend`. The traits are shaped so that a
//! networked store can keep every promise with single atomic operations: the journal *claims*
//! a record before it is sent (set-if-absent), the pacer *takes* from a bucket in one step
//! (a server-side script), and a 429's `Retry-After` is a value every process reads.
//!
//! The local files follow three rules (the helpers below): created `0600` in a `0700`
//! directory, never written through a symlink, and replaced atomically (a temporary file in
//! the same directory, synced, then renamed over the old one).

pub mod journal;
pub mod pace;
pub mod redis;
pub mod seen;

use crate::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where durable state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// Files under one directory on this host (the default).
    Local { dir: PathBuf },
    /// One Redis shared by every host (`state_backend: redis://…`). `url` may hold a
    /// password: print [`Backend::describe`], never the field.
    Redis { url: String },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Backend {
    /// The local default: the per-user state directory.
    pub fn local(env: &crate::config::Env) -> Backend {
        Backend::Local {
            dir: crate::config::state_dir(env),
        }
    }

    /// The backend named by `state_backend` / `SLACKCTL_STATE_BACKEND`, else local files.
    pub fn choose(
        setting: Option<&str>,
        env: &crate::config::Env,
        from: &str,
    ) -> crate::error::Result<Backend> {
        match setting.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Backend::local(env)),
            Some(url) if redis::is_url(url) => {
                redis::check_url(url, from)?;
                Ok(Backend::Redis { url: url.to_string() })
            }
            Some(other) => Err(crate::error::Error::config(format!(
                "{from}: unknown state backend `{}`",
                redis::redacted(other)
            ))
            .hint("use redis://host:6379/0 (or rediss://… for TLS), or leave it unset for local files")),
        }
    }

    /// Where the state lives, for messages (passwords redacted).
    pub fn describe(&self) -> String {
        match self {
            Backend::Local { dir } => dir.display().to_string(),
            Backend::Redis { url } => redis::redacted(url),
        }
    }
}

/// Creates `dir` (and its parents) readable by this user only.
///
/// An existing directory directly under the shared temp dir (where state goes without a home,
/// e.g. `slackctl-<uid>`) is used only if it is a real directory, owned by this user and
/// writable by nobody else: anyone can create a name there first, and state read from a
/// directory someone else controls could hide messages (a planted dedupe record) or replay
/// sends. Directories elsewhere are the user's own choice and are used as they are.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if dir.parent() == Some(std::env::temp_dir().as_path()) {
            return check_private_dir(dir, &meta);
        }
        if meta.is_dir() {
            return Ok(());
        }
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir)
}

/// The user this process runs as (the owner of `/proc/self` on Linux); `None` where that
/// cannot be read, and then ownership is not checked (the mode still is).
pub fn current_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg_attr(not(unix), allow(unused_variables))]
fn check_private_dir(dir: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let refuse = |why: &str| {
        Err(std::io::Error::other(format!(
            "state directory {} {why}; remove it or point slackctl elsewhere (XDG_STATE_HOME)",
            dir.display()
        )))
    };
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link");
    }
    if !meta.is_dir() {
        return refuse("is not a directory");
    }
    #[cfg(unix)]
    {
        if let Some(uid) = current_uid()
            && meta.uid() != uid
        {
            return refuse(&format!("belongs to another user (uid {})", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return refuse(&format!(
                "can be written by other users (mode {:o})",
                meta.mode() & 0o777
            ));
        }
    }
    Ok(())
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

/// Refuses a path that is a symlink: state is never written through one (it could point at
/// a file of someone else's choosing).
pub fn refuse_symlink(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::other(
            "is a symbolic link; slackctl does not write state through links",
        )),
        _ => Ok(()),
    }
}

/// Opens (creating `0600` if absent) a file for reading and writing in place, refusing
/// symlinks: the opened file must be the very inode the path names.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    if let Some(d) = parent(path) {
        create_private_dir(d)?;
    }
    refuse_symlink(path)?;
    let mut o = OpenOptions::new();
    o.read(true).create(true);
    #[cfg(unix)]
    o.mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(false);
    }
    let f = o.open(path)?;
    // A link swapped in between the check and the open would show as a different inode.
    let (opened, named) = (f.metadata()?, std::fs::symlink_metadata(path)?);
    if named.file_type().is_symlink() || opened.ino() != named.ino() || opened.dev() != named.dev()
    {
        return Err(std::io::Error::other(
            "changed while being opened (a link?)",
        ));
    }
    Ok(f)
}

/// Replaces `path` with `data` atomically: readers see the old or the new content, never a
/// mix, and a crash leaves one of the two. `sync` also makes it durable (slower).
pub fn replace_file(path: &Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = parent(path).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    refuse_symlink(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        // create_new: never follows a link planted at the temporary name.
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        o.mode(0o600);
        let mut f = o.open(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        // rename replaces a link itself, never its target.
        std::fs::rename(&tmp, path)?;
        if sync && let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// An exclusive lock on a small `.lock` file that is never replaced (so the lock cannot be
/// lost by renaming the state it guards). Holds the holder's pid for messages. Released when
/// dropped, and by the kernel when the process dies (even by `kill -9`).
pub struct LockFile {
    file: File,
}

/// Why a lock was not taken.
pub enum Busy {
    /// Another process holds it; its pid when it wrote one.
    Held(Option<u32>),
    Io(std::io::Error),
}

impl LockFile {
    /// Takes the lock without waiting, writing our pid into it.
    pub fn try_take(path: &Path) -> std::result::Result<LockFile, Busy> {
        let mut file = open_private(path, false).map_err(Busy::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(Busy::Held(s.trim().parse().ok()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Busy::Io(e)),
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(std::process::id().to_string().as_bytes());
        Ok(LockFile { file })
    }

    /// Waits for the lock (short critical sections only).
    pub fn take(path: &Path) -> std::io::Result<LockFile> {
        let file = open_private(path, false)?;
        file.lock()?;
        Ok(LockFile { file })
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The error for a state file that cannot be used.
pub fn state_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config(format!("{what} {}: {e}", path.display()))
}
