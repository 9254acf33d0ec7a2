//! `restore::`: parts of a snapshot brought back through `restore::run`, as `kfguard restore`
//! takes them; a dry run plans instead, and the step's plan names each change.

use std::sync::Arc;

use clap::ValueEnum;
use rhai::{Map, Module};

use super::{func, known_options, opt_bool, opt_count, opt_str, opt_strings, to_map, Host, Res};
use crate::restore::{self, Existing, Plan, DEFAULT_JOBS, DEFAULT_TRANSFERS};
use crate::runbook::steps::error;
use crate::runbook::Ran;
use crate::snapshot::Component;

/// The options of every restore call, as the flags of `kfguard restore`.
const OPTIONS: &[&str] = &[
    "snapshot",
    "databases",
    "into",
    "buckets",
    "prefix",
    "existing",
    "namespace_map",
    "include_kinds",
    "resume_schedules",
    "force",
    "jobs",
    "transfers",
];

const OPTIONS_DOC: &str = "Options, as the flags of `kfguard restore`: `snapshot` (an id, a \
     unique prefix or \"latest\", the default), `databases` and `buckets` (`SRC/NAME` or `SRC` \
     selectors), `into` (the new database's name, or the bucket to upload into), `prefix` (bucket \
     keys), `existing` (\"skip\", \"overwrite\" or \"fail\"), `namespace_map` (a map FROM: TO), \
     `include_kinds` (`Kind` or `group/Kind`), `resume_schedules`, `force`, `jobs` and \
     `transfers`. Unknown options are refused.";

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "plan",
        &["options: Map", "Map"],
        &format!(
            "What a restore would do, changing nothing (`kfguard restore --dry-run`): \
             `databases` (each with its `plan`), `buckets` (objects to upload, skip and \
             overwrite), `kubernetes` (each object's action, in restore order), and `changes`, \
             one line per change. `only` narrows it to parts, as `--only`. {OPTIONS_DOC}"
        ),
        r#"let p = restore::plan(#{ only: ["databases"], databases: ["kfp/mlpipeline"], into: "mlpipeline_check" });"#,
    )
    .set_into_module(&mut m, move |o: Map| plan(&h, &o));
    for (name, part, label, example) in [
        (
            "databases",
            Component::Databases,
            "databases",
            r#"restore::databases(#{ databases: ["kfp/mlpipeline"], into: "mlpipeline_restored" });"#,
        ),
        (
            "buckets",
            Component::Buckets,
            "buckets",
            r#"restore::buckets(#{ buckets: ["kfp/mlpipeline"], existing: "skip" });"#,
        ),
        (
            "kubernetes",
            Component::Kubernetes,
            "Kubernetes objects",
            r#"restore::kubernetes(#{ namespace_map: #{ "kubeflow-user-alice": "alice-restored" } });"#,
        ),
    ] {
        let h = host.clone();
        func(
            name,
            &["options: Map", "Map"],
            &format!(
                "Restores the {label} of a snapshot, and only those, as `kfguard restore --only \
                 {}`, and returns the report, as `restore::plan` does. A dry run plans instead, \
                 and the step's plan lists each change. The options are those of \
                 `restore::plan`, without `only`. The step's timeout is checked when the call \
                 returns, not during it.",
                part.part()
            ),
            example,
        )
        .set_into_module(&mut m, move |o: Map| restore_part(&h, part, &o));
    }
    m
}

fn plan(h: &Host, o: &Map) -> Res<Map> {
    let mut keys = OPTIONS.to_vec();
    keys.push("only");
    known_options("restore::plan", o, &keys)?;
    let only = super::backup::parts("restore::plan", o)?;
    run(h, "restore::plan", o, only, true)
}

fn restore_part(h: &Host, part: Component, o: &Map) -> Res<Map> {
    let call = format!("restore::{}", part.part());
    known_options(&call, o, OPTIONS)?;
    let snapshot = opt_str(o, "snapshot")?.unwrap_or_else(|| "latest".into());
    let mut what = format!("restore {} from snapshot {snapshot}", part.part());
    for key in ["databases", "buckets", "include_kinds"] {
        let picked = opt_strings(o, key)?;
        if !picked.is_empty() {
            what.push_str(&format!(", {key} {}", picked.join(",")));
        }
    }
    if let Some(into) = opt_str(o, "into")? {
        what.push_str(&format!(", into {into}"));
    }
    let dry_run = h.change(&call, &what)?;
    let out = run(h, &call, o, vec![part], dry_run)?;
    Ok(out)
}

/// Builds the restore's plan from the options and runs it; on a dry run, every change it
/// would make goes into the step's plan.
fn run(h: &Host, call: &str, o: &Map, only: Vec<Component>, dry_run: bool) -> Res<Map> {
    let bad = |key: &str, e: String| error(format!("{call}: option `{key}`: {e}"));
    let existing = match opt_str(o, "existing")? {
        None => None,
        Some(e) => Some(
            Existing::from_str(&e, true)
                .map_err(|_| bad("existing", format!("`{e}` is not skip, overwrite or fail")))?,
        ),
    };
    let namespace_map = match o.get("namespace_map") {
        None => Vec::new(),
        Some(v) => v
            .clone()
            .try_cast::<Map>()
            .ok_or_else(|| bad("namespace_map", "it is a map FROM: TO".into()))?
            .into_iter()
            .map(|(from, to)| {
                to.into_string()
                    .map(|to| (from.to_string(), to))
                    .map_err(|_| bad("namespace_map", format!("`{from}` must map to a string")))
            })
            .collect::<Res<Vec<_>>>()?,
    };
    let cfg = h.config();
    let plan = Plan {
        config: cfg,
        snapshot: opt_str(o, "snapshot")?.unwrap_or_else(|| "latest".into()),
        only,
        databases: opt_strings(o, "databases")?,
        into: opt_str(o, "into")?,
        buckets: opt_strings(o, "buckets")?,
        prefix: opt_str(o, "prefix")?,
        existing,
        namespace_map,
        include_kinds: opt_strings(o, "include_kinds")?,
        resume_schedules: opt_bool(o, "resume_schedules")?,
        jobs: opt_count(o, "jobs")?.unwrap_or(DEFAULT_JOBS),
        transfers: opt_count(o, "transfers")?.unwrap_or(DEFAULT_TRANSFERS),
        force: opt_bool(o, "force")?,
        dry_run,
        quiet: h.ctx.quiet,
        rt: h.rt()?,
    };
    // `restore::plan` changes nothing: it is no restore the metrics count.
    let planned = dry_run || call == "restore::plan";
    let report = h
        .operation(planned, Ran::Restore, || restore::run(plan))
        .map_err(|e| error(format!("{call}: {e:#}")))?;
    let changes = report.changes();
    if dry_run && call != "restore::plan" {
        for c in &changes {
            h.plan_only(c);
        }
    }
    for w in &report.warnings {
        h.warn(&format!("{call}: {w}"));
    }
    let mut out = to_map(&*report)?;
    out.insert(
        "changes".into(),
        changes
            .into_iter()
            .map(rhai::Dynamic::from)
            .collect::<rhai::Array>()
            .into(),
    );
    Ok(out)
}
