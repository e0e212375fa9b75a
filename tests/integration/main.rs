//! Integration tests: the real `slackctl` binary against the real emulator on a random
//! loopback port. One test binary (modules per area) so the build links once.

mod support;

mod catalog;
mod config;
mod run;
mod sensor;
