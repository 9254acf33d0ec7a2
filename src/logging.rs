//! Logging: `tracing` to stderr, human-readable on a terminal and JSON lines otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber. `KFGUARD_LOG` (an `EnvFilter` directive) overrides `-v`/`-q`.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        // rustic_core narrates every step at info; only show that when asked.
        (false, 0) => "info,rustic_core=warn",
        (false, 1) => "debug,rustic_core=info,aws=warn,hyper=warn,h2=warn,rustls=warn",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("KFGUARD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Ignore a second init (tests call run() more than once in one process).
    let _ = if std::io::stderr().is_terminal() {
        builder.with_target(false).without_time().try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
