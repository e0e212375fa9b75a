//! `slackctl emulator` and `slackctl demo` (filled in when the emulator lands).
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {}

pub fn run(_args: EmulatorArgs) -> Result<u8> {
    Ok(0)
}

pub fn demo() -> Result<u8> {
    Ok(0)
}
