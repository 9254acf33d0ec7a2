//! `kfguard config show`: the effective configuration, secrets redacted.

use super::Context;
use crate::cli::ConfigCommand;
use crate::output::OutputFormat;
use crate::Outcome;

pub(super) fn run(ctx: &Context, cmd: &ConfigCommand) -> anyhow::Result<Outcome> {
    match cmd {
        ConfigCommand::Show => {
            let value = ctx.config.redacted();
            match ctx.global.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&value)?),
                OutputFormat::Text | OutputFormat::Markdown => {
                    print!("{}", toml::to_string_pretty(&value)?);
                }
            }
        }
    }
    Ok(Outcome::Ok)
}
