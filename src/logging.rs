//! Logging: `tracing` to stderr, human-readable on a terminal and JSON lines otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable that overrides `-v`/`-q` with an `EnvFilter` directive.
pub const LOG_ENV: &str = "KFGUARD_LOG";

/// A `KFGUARD_LOG` that does not parse: refused rather than silently replaced by the default.
/// The cause is part of the message, which is printed on its own (before logging exists).
#[derive(Debug, thiserror::Error)]
#[error("invalid {LOG_ENV} filter `{value}`: {source}; use a level (error, warn, info, debug, trace) or directives such as kfguard=debug,rustic_core=info")]
pub struct LogFilterError {
    pub value: String,
    #[source]
    pub source: tracing_subscriber::filter::ParseError,
}

/// Sets up the global subscriber. `KFGUARD_LOG` (an `EnvFilter` directive) overrides `-v`/`-q`;
/// an empty one counts as unset.
pub fn init(verbose: u8, quiet: bool) -> Result<(), LogFilterError> {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        // rustic_core narrates every step at info; only show that when asked.
        (false, 0) => "info,rustic_core=warn",
        (false, 1) => "debug,rustic_core=info,aws=warn,hyper=warn,h2=warn,rustls=warn",
        (false, _) => "trace",
    };
    let filter = match std::env::var(LOG_ENV) {
        Ok(value) if !value.trim().is_empty() => filter_from(&value)?,
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Ignore a second init (tests call run() more than once in one process).
    let _ = if std::io::stderr().is_terminal() {
        builder.with_target(false).without_time().try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    Ok(())
}

fn filter_from(value: &str) -> Result<EnvFilter, LogFilterError> {
    EnvFilter::builder()
        .parse(value)
        .map_err(|source| LogFilterError {
            value: value.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_name_the_problem() {
        assert!(filter_from("debug").is_ok());
        assert!(filter_from("kfguard=debug,rustic_core=info").is_ok());
        let err = filter_from("kfguard=loud").unwrap_err().to_string();
        assert!(
            err.contains("`kfguard=loud`") && err.contains(LOG_ENV),
            "{err}"
        );
    }
}
