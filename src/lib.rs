//! slackctl: a StackStorm-compatible Slack action runner. See docs/architecture.md.
pub mod catalog;
pub mod emulator;
