//! `kfguard discover`: a ready kfguard.toml read off a live KFP install.

use serde::Serialize;

use super::Context;
use crate::cli::DiscoverArgs;
use crate::discover::{self, DiscoverError, Discovered, RepoSettings};
use crate::kube::Cluster;
use crate::output::emit;
use crate::{Outcome, Usage};

#[derive(Serialize)]
struct Report {
    /// The generated kfguard.toml.
    config: String,
    sources: Discovered,
}

pub(super) fn run(ctx: &Context, args: &DiscoverArgs) -> anyhow::Result<Outcome> {
    let kcfg = &ctx.config.kubernetes;
    let (found, server) = ctx
        .rt
        .block_on(async {
            let cluster = Cluster::connect(kcfg).await?;
            let found = discover::fetch(&cluster, &args.namespace).await?;
            Ok::<_, DiscoverError>((found, cluster.server))
        })
        .map_err(|e| match e {
            // Pointing at a namespace without KFP is fixed by the command line (-n), not by
            // the cluster: a usage error, exit 2.
            DiscoverError::NoInstallConfig { .. } => Usage::new(e).into(),
            other => anyhow::Error::new(other),
        })?;
    tracing::debug!(server = %server, "read the KFP install");
    // The context names the cluster when one was chosen; the printed kubectl commands use
    // the same kubeconfig and context as this run.
    let cluster = kcfg
        .context
        .clone()
        .or_else(|| current_context(kcfg.kubeconfig.as_deref()))
        .unwrap_or_else(|| "kubeflow".into());
    let mut kube_args = String::new();
    if let Some(k) = &kcfg.kubeconfig {
        kube_args.push_str(&format!(
            " --kubeconfig {}",
            shell_word(&k.display().to_string())
        ));
    }
    if let Some(c) = &kcfg.context {
        kube_args.push_str(&format!(" --context {}", shell_word(c)));
    }
    let sources = discover::plan(&found, &args.namespace, &cluster, &kube_args)?;
    let repo = &ctx.config.repository;
    let config = discover::render(
        &sources,
        &RepoSettings {
            url: repo.url.clone(),
            password_env: repo.password_env.clone(),
            password_file: repo.password_file.as_ref().map(|p| p.display().to_string()),
        },
    );
    for n in &sources.notes {
        tracing::warn!("discover: {n}");
    }
    emit(ctx.global.output, &Report { config, sources }, |r| {
        r.config.clone()
    });
    Ok(Outcome::Ok)
}

/// The kubeconfig's current context, if there is a kubeconfig (none in-cluster).
fn current_context(path: Option<&std::path::Path>) -> Option<String> {
    use kube::config::Kubeconfig;
    let kc = match path {
        Some(p) => Kubeconfig::read_from(p).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    kc.current_context.filter(|c| !c.is_empty())
}

/// A word safe to paste into a POSIX shell.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
