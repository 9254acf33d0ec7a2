//! `kfguard discover`: a ready kfguard.toml read off a live KFP install.

use super::Context;
use crate::cli::DiscoverArgs;
use crate::Outcome;

pub fn run(_ctx: &Context, _args: &DiscoverArgs) -> anyhow::Result<Outcome> {
    Err(super::UsageError("kfguard discover is not built yet".into()).into())
}
