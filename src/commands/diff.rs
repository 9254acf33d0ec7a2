//! `kfguard diff`: the live cluster against a snapshot's Kubernetes objects.

use super::Context;
use crate::cli::DiffArgs;
use crate::Outcome;

pub fn run(_ctx: &Context, _args: &DiffArgs) -> anyhow::Result<Outcome> {
    Err(super::UsageError("kfguard diff is not built yet".into()).into())
}
