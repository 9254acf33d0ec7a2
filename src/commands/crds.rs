//! `kfguard crds diff`: live CustomResourceDefinitions against pinned manifests.

use super::Context;
use crate::cli::CrdsCommand;
use crate::Outcome;

pub fn run(_ctx: &Context, _cmd: &CrdsCommand) -> anyhow::Result<Outcome> {
    Err(super::UsageError("kfguard crds diff is not built yet".into()).into())
}
