//! Integration tests: the real `slackctl` binary against the real emulator on a random
//! loopback port. One test binary (modules per area) so the build links once.

mod support;

mod actions;
mod bulk;
mod catalog;
mod config;
mod pacing;
mod pack;
mod redis;
mod run;
mod sensor;
