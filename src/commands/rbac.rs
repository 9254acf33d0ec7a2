//! `kfguard rbac backup|restore`: the ClusterRole a backup or a restore needs, as YAML (or JSON).

use super::Context;
use crate::cli::{RbacArgs, RbacRole};
use crate::kube::rbac::{self, Role};
use crate::output::OutputFormat;
use crate::Outcome;

pub(super) fn run(ctx: &Context, args: &RbacArgs) -> anyhow::Result<Outcome> {
    let role = match args.role {
        RbacRole::Backup => Role::Backup,
        RbacRole::Restore => Role::Restore,
    };
    let cfg = &ctx.config.kubernetes;
    match ctx.global.output {
        OutputFormat::Json => {
            let (cr, notes) = rbac::cluster_role(role, cfg);
            for n in notes {
                tracing::warn!("{n}");
            }
            println!("{}", serde_json::to_string_pretty(&cr)?);
        }
        OutputFormat::Text | OutputFormat::Markdown => print!("{}", rbac::render_yaml(role, cfg)?),
    }
    Ok(Outcome::Ok)
}
