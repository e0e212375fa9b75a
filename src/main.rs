//! slackctl's entry point: parse, dispatch, exit. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug; say so plainly instead of printing Rust's panic message.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "slackctl: internal error{place}; this is a bug, please report it with the command you ran"
        );
    }));
    let cli = match slackctl::cli::parse() {
        Ok(c) => c,
        Err(e) => {
            // clap's own usage errors exit 2, help and version exit 0, as st2 does.
            let code = if e.use_stderr() {
                slackctl::exit::USAGE
            } else {
                slackctl::exit::SUCCESS
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let env = slackctl::config::Env::capture();
    match slackctl::cli::dispatch(cli, env) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            slackctl::exit::report(&err);
            ExitCode::from(slackctl::exit::code(&err))
        }
    }
}
