//! What must outlive one process, behind one small storage interface: the bulk send-once
//! journal (`journal`), the sensor's dedupe record (`seen`) and the pacing state shared by
//! every slackctl process of a workspace (`pace`).
//!
//! Each submodule defines its trait next to the local-file implementation, which is the
//! default and needs nothing installed. A shared backend for several hosts (Redis, for
//! StackStorm clusters) implements the same traits; callers only ever hold the trait, so
//! choosing a backend is one decision made in `Backend`.

pub mod journal;
pub mod pace;
pub mod seen;

use std::path::PathBuf;

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Files under one directory on this host (the default).
    Local { dir: PathBuf },
}
