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
    match (&result, kfguard::interrupt::requested()) {
        (Ok(_), Some(sig)) => {
            // The work was done before the stop request could cut it short.
            eprintln!("kfguard: interrupted by {sig}, after the command had finished: its result is complete");
        }
        (Err(err), _) => eprintln!("kfguard: error: {err:#}"),
        (Ok(_), None) => {}
    }
    // An error after a stop request is most likely its consequence: the signal's code.
    let code = kfguard::result_code(&result);
    to_exit_code(code)
}

/// Every code kfguard uses (0-3, 130, 143) fits a process exit status.
fn to_exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
