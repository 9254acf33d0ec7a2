//! The `kfguard` binary: parse the command line, set up logging, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    kfguard::cli::GlobalArgs::prepare_env();
    let cli = kfguard::cli::Cli::parse();
    if let Err(err) = kfguard::logging::init(cli.global.verbose, cli.global.quiet) {
        eprintln!("kfguard: error: {err}");
        return to_exit_code(kfguard::exit::USAGE);
    }
    let result = kfguard::run(cli);
    let code = match (&result, kfguard::interrupt::requested()) {
        (Ok(_), Some(sig)) => {
            // The work was done before the stop request could cut it short.
            eprintln!("kfguard: interrupted by {sig}, after the command had finished: its result is complete");
            sig.exit_code()
        }
        (Ok(kfguard::Outcome::Ok), None) => kfguard::exit::OK,
        (Ok(kfguard::Outcome::Warnings(_)), None) => kfguard::exit::WARNINGS,
        (Err(err), sig) => {
            eprintln!("kfguard: error: {err:#}");
            // An error after a stop request is most likely its consequence.
            sig.map_or_else(
                || kfguard::exit_code(err),
                kfguard::interrupt::Signal::exit_code,
            )
        }
    };
    to_exit_code(code)
}

/// Every code kfguard uses (0-3, 130, 143) fits a process exit status.
fn to_exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
