//! `backup::run`: a backup into the repository through `backup::run`, as `kfguard backup`
//! takes it; a dry run reads every source and writes no snapshot.

use std::sync::Arc;

use clap::ValueEnum;
use rhai::{Map, Module};

use super::{func, known_options, opt_count, opt_strings, to_map, Host, Res};
use crate::backup::{self, Plan, DEFAULT_JOBS, DEFAULT_TRANSFERS};
use crate::runbook::steps::error;
use crate::runbook::Ran;
use crate::snapshot::Component;

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "run",
        &["Map"],
        "Backs up every configured part (databases, buckets, and Kubernetes objects when \
         `[kubernetes] enabled`) into one snapshot, as `kfguard backup` does, and returns its \
         report: `id`, `parents`, `files`, `bytes_processed`, `bytes_added` and the \
         `manifest`. A dry run reads every source, writes no snapshot (`id` is `()`), and is \
         in the plan. The step's timeout is checked when it returns, not during it.",
        r"let b = backup::run(); info(`snapshot ${b.id}`);",
    )
    .set_into_module(&mut m, move || run(&h, &Map::new()));
    let h = host.clone();
    func(
        "run",
        &["options: Map", "Map"],
        "A backup with options: `only` (parts: \"databases\", \"buckets\", \"kubernetes\"), \
         `tags`, `jobs` (connections per database, 4) and `transfers` (bucket requests at \
         once, 8), as the flags of `kfguard backup`.",
        r#"let b = backup::run(#{ only: ["databases"], tags: ["before-upgrade"] });"#,
    )
    .set_into_module(&mut m, move |o: Map| run(&h, &o));
    m
}

/// `only` as parts, each named as `--only` names it.
pub(super) fn parts(call: &str, o: &Map) -> Res<Vec<Component>> {
    super::opt_strings(o, "only")?
        .iter()
        .map(|p| {
            Component::from_str(p, true).map_err(|_| {
                error(format!(
                    "{call}: `only` takes databases, buckets and kubernetes, not `{p}`"
                ))
            })
        })
        .collect()
}

fn run(h: &Host, o: &Map) -> Res<Map> {
    known_options("backup::run", o, &["only", "tags", "jobs", "transfers"])?;
    let only = parts("backup::run", o)?;
    let tags = opt_strings(o, "tags")?;
    let cfg = h.config();
    let what: Vec<&str> = if only.is_empty() {
        let mut all = Vec::new();
        if !cfg.databases.is_empty() {
            all.push("databases");
        }
        if !cfg.buckets.is_empty() {
            all.push("buckets");
        }
        if cfg.kubernetes.enabled {
            all.push("kubernetes");
        }
        all
    } else {
        only.iter().map(|c| c.part()).collect()
    };
    let mut text = format!("back up {} into a new snapshot", what.join("+"));
    if !tags.is_empty() {
        text.push_str(&format!(" tagged {}", tags.join(",")));
    }
    let dry_run = h.change("backup::run", &text)?;
    let plan = Plan {
        config: cfg,
        only,
        tags,
        jobs: opt_count(o, "jobs")?.unwrap_or(DEFAULT_JOBS),
        transfers: opt_count(o, "transfers")?.unwrap_or(DEFAULT_TRANSFERS),
        dry_run,
        from_dir: Vec::new(),
        from_command: Vec::new(),
        shard: None,
        merge: None,
        quiet: h.ctx.quiet,
        rt: h.rt()?,
    };
    let report = h
        .operation(dry_run, Ran::Backup, || backup::run(plan))
        .map_err(|e| error(format!("backup::run: {e:#}")))?;
    for w in report.warnings() {
        h.warn(&format!("backup: {w}"));
    }
    to_map(&*report)
}
