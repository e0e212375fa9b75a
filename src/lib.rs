//! slackctl: a StackStorm-compatible Slack action runner. See docs/architecture.md.
pub mod actions;
pub mod bulk;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod error;
pub mod exit;
pub mod fnv;
pub mod log;
pub mod output;
pub mod params;
pub mod redact;
pub mod run;
pub mod sensor;
pub mod store;
pub mod transport;
