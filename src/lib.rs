//! slackctl: a StackStorm-compatible Slack action runner. See docs/architecture.md.
pub mod catalog;
pub mod config;
pub mod error;
pub mod exit;
pub mod redact;
pub mod params;
