//! The `kfguard` binary: parse the command line, set up logging, run, map the result to an exit code.

use clap::Parser;

fn main() {
    kfguard::cli::GlobalArgs::prepare_env();
    let cli = kfguard::cli::Cli::parse();
    if let Err(err) = kfguard::logging::init(cli.global.verbose, cli.global.quiet) {
        eprintln!("kfguard: error: {err}");
        std::process::exit(kfguard::exit::USAGE);
    }
    let code = match kfguard::run(cli) {
        Ok(kfguard::Outcome::Ok) => kfguard::exit::OK,
        Ok(kfguard::Outcome::Warnings(_)) => kfguard::exit::WARNINGS,
        Err(err) => {
            eprintln!("kfguard: error: {err:#}");
            kfguard::exit_code(&err)
        }
    };
    std::process::exit(code);
}
