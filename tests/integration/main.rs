//! Integration tests: the real `slackctl` binary against the real emulator on a random
//! loopback port. One test binary (modules per area) so the build links once.

mod support;

mod actions;
mod bulk;
mod bulk_input;
mod catalog;
mod cli;
mod config;
mod conformance;
mod pacing;
mod pack;
mod props;
mod readme;
mod redis;
mod run;
mod sdk_diff;
mod security;
mod sensor;
mod st2_values;
