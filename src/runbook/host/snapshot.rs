//! `snapshot::`: the repository's snapshots, through the code `kfguard snapshots`, `show` and
//! `check` run.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module};

use super::{func, known_options, opt_bool, opt_str, to_map, Host, Res};
use crate::config::KeepPolicy;
use crate::repo::check::{self, ReadData};
use crate::runbook::steps::error;
use crate::snapshot::retention;
use crate::snapshot::select::{self, Latest, SelectError};
use crate::snapshot::show;
use crate::snapshot::summary::Summary;

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "list",
        &["Array"],
        "The complete snapshots of the repository, oldest first, as `kfguard snapshots` lists \
         them: maps of `id`, `short_id`, `time`, `cluster`, `tags`, `scope`, `parts` (e.g. \
         `[\"buckets\", \"databases\"]`), `files` and `bytes`.",
        r"let n = snapshot::list().len(); info(`${n} snapshots`);",
    )
    .set_into_module(&mut m, move || list(&h));
    let h = host.clone();
    func(
        "latest",
        &["Dynamic"],
        "The newest complete snapshot of the configured cluster, as `snapshot::list` describes \
         it, or `()` when there is none.",
        r#"let last = snapshot::latest(); ensure(last != (), "no backup of this cluster yet");"#,
    )
    .set_into_module(&mut m, move || latest(&h));
    let h = host.clone();
    func(
        "show",
        &["id: &str", "Map"],
        "One snapshot, by id, unique prefix or `latest`, as `kfguard show ID --output json` \
         prints it: `snapshot` (its summary), `manifest` (databases with their tables, \
         buckets, Kubernetes kinds, the cross-check, warnings) and `files`.",
        r#"let m = snapshot::show("latest").manifest; info(`${m.databases.len()} databases`);"#,
    )
    .set_into_module(&mut m, move |id: &str| show_one(&h, id));
    let h = host.clone();
    func(
        "objects",
        &["id: &str", "kinds: Array", "Array"],
        "The Kubernetes objects a snapshot holds (by id, unique prefix or `latest`), of the \
         kinds named (`Kind` or `group/Kind`; an empty array: every kind), as they were \
         captured, sanitised. A Secret's values are hidden from the journal like any other.",
        r#"let pinned = snapshot::objects("latest", ["CustomResourceDefinition"]); let d = crds::diff(pinned);"#,
    )
    .set_into_module(&mut m, move |id: &str, kinds: Array| objects(&h, id, &kinds));
    let h = host.clone();
    func(
        "check",
        &["Map"],
        "Checks the repository's structure, as `kfguard check` does: `repository`, \
         `read_data`, `errors`, `warnings`, and `ok` when there is no error. Problems are in \
         the result; the step decides what they mean.",
        r"let c = snapshot::check(); ensure(c.ok, `repository errors: ${c.errors}`);",
    )
    .set_into_module(&mut m, move || check_repo(&h, &Map::new()));
    let h = host.clone();
    func(
        "check",
        &["options: Map", "Map"],
        "A check that also reads data back: `read_data` is `\"all\"`, or `\"N/M\"` for the \
         N-th of M parts of the data packs (as `--read-data-subset`).",
        r#"let c = snapshot::check(#{ read_data: "1/7" });"#,
    )
    .set_into_module(&mut m, move |o: Map| check_repo(&h, &o));
    let h = host.clone();
    func(
        "forget",
        &["options: Map", "Map"],
        "Applies a retention policy, as `kfguard forget` does: options `keep_last`, \
         `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly` (given, they replace \
         `[retention]` of the config as a whole; none given, `[retention]` applies) and `prune` \
         (also remove the data only forgotten snapshots held). Returns `keep`, `remove` and \
         `remove_incomplete` (snapshot summaries) and `prune` (`packs_removed`, \
         `packs_repacked`, `bytes_removed`). A policy that keeps nothing is refused. A dry run \
         removes nothing, returns what it would remove, and plans it.",
        r"let f = snapshot::forget(#{ keep_daily: 7, keep_weekly: 4, prune: true });",
    )
    .set_into_module(&mut m, move |o: Map| forget(&h, &o));
    m
}

/// A summary map, with the parts of its scope.
fn summary(s: &rustic_core::repofile::SnapshotFile) -> Res<Dynamic> {
    let summary = Summary::of(s);
    let mut m = to_map(&summary)?;
    m.insert(
        "parts".into(),
        summary
            .parts()
            .into_iter()
            .map(Dynamic::from)
            .collect::<Array>()
            .into(),
    );
    Ok(Dynamic::from_map(m))
}

fn list(h: &Host) -> Res<Array> {
    let (repo, location) = h.repo()?;
    select::complete(&repo, &location.display)
        .map_err(|e| error(e.to_string()))?
        .iter()
        .map(summary)
        .collect()
}

fn latest(h: &Host) -> Res<Dynamic> {
    let (repo, location) = h.repo()?;
    let latest = Latest::of(&h.config().cluster, &[]);
    match select::one(&repo, &location.display, "latest", &latest) {
        Ok(s) => summary(&s),
        Err(
            SelectError::Empty { .. }
            | SelectError::OtherClusters { .. }
            | SelectError::NoPart { .. },
        ) => Ok(Dynamic::UNIT),
        Err(e) => Err(error(e.to_string())),
    }
}

fn show_one(h: &Host, id: &str) -> Res<Map> {
    let (repo, location) = h.repo()?;
    let latest = Latest::of(&h.config().cluster, &[]);
    let (repo, snap) = select::open_one(repo, &location.display, id, &latest)
        .map_err(|e| error(format!("snapshot::show: {e}")))?;
    let shown = show::show(&repo, &snap, &location.display).map_err(|e| error(e.to_string()))?;
    to_map(&shown)
}

fn objects(h: &Host, id: &str, kinds: &Array) -> Res<Array> {
    let kinds: Vec<String> = kinds
        .iter()
        .map(|k| k.clone().into_string().map(|s| s.to_ascii_lowercase()))
        .collect::<Result<_, _>>()
        .map_err(|t| error(format!("snapshot::objects: kinds are strings, not {t}")))?;
    let (repo, location) = h.repo()?;
    let latest = Latest::of(&h.config().cluster, &[]);
    let (repo, snap) = select::open_one(repo, &location.display, id, &latest)
        .map_err(|e| error(format!("snapshot::objects: {e}")))?;
    let all = crate::kube::read::objects(&repo, &snap, &location.display)
        .map_err(|e| error(e.to_string()))?;
    let wanted: Vec<serde_json::Value> = all
        .into_iter()
        .filter(|(key, _)| {
            kinds.is_empty()
                || kinds.contains(&key.kind.to_ascii_lowercase())
                || kinds.contains(&format!("{}/{}", key.group, key.kind).to_ascii_lowercase())
        })
        .map(|(_, o)| o)
        .collect();
    h.learn_secrets(&wanted);
    wanted.iter().map(super::to_dynamic).collect()
}

fn check_repo(h: &Host, o: &Map) -> Res<Map> {
    known_options("snapshot::check", o, &["read_data"])?;
    let read = match opt_str(o, "read_data")?.as_deref() {
        None | Some("none") => ReadData::None,
        Some("all") => ReadData::All,
        Some(subset) => {
            let (n, m) = check::parse_subset(subset)
                .map_err(|e| error(format!("snapshot::check: read_data {e}, or \"all\"")))?;
            ReadData::Subset(n, m)
        }
    };
    let (repo, location) = h.repo()?;
    let checked = check::check(&repo, &location.display, read).map_err(|e| error(e.to_string()))?;
    let mut m = to_map(&checked)?;
    m.insert("ok".into(), Dynamic::from(checked.errors.is_empty()));
    Ok(m)
}

const KEEP: &[&str] = &[
    "keep_last",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

fn forget(h: &Host, o: &Map) -> Res<Map> {
    let mut keys = KEEP.to_vec();
    keys.push("prune");
    known_options("snapshot::forget", o, &keys)?;
    let count = |key: &str| -> Res<Option<u32>> {
        match o.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    error(format!(
                        "snapshot::forget: option `{key}` must be a whole number of at least 0"
                    ))
                }),
        }
    };
    let given = KeepPolicy {
        keep_last: count("keep_last")?,
        keep_daily: count("keep_daily")?,
        keep_weekly: count("keep_weekly")?,
        keep_monthly: count("keep_monthly")?,
        keep_yearly: count("keep_yearly")?,
    };
    // As `kfguard forget`: given options replace `[retention]` as a whole.
    let policy = if given.is_empty() {
        h.config().retention.clone()
    } else {
        given
    };
    if policy.is_empty() {
        return Err(error(
            "snapshot::forget: no retention policy: give keep_daily (or another keep_*) in its options, or set [retention] in kfguard.toml".into(),
        ));
    }
    if policy.keeps_nothing() {
        return Err(error(
            "snapshot::forget: the retention policy keeps no snapshot (every keep_* is 0): give at least one positive keep_*".into(),
        ));
    }
    let prune = opt_bool(o, "prune")?;
    let what = format!(
        "forget snapshots by the retention policy{}",
        if prune { ", and prune" } else { "" }
    );
    let dry_run = h.change("snapshot::forget", &what)?;
    let (repo, location) = h.repo()?;
    let done = retention::forget(&repo, &location.display, &policy, prune, dry_run)
        .map_err(|e| error(format!("snapshot::forget: {e}")))?;
    if dry_run {
        for s in done.remove.iter().chain(&done.remove_incomplete) {
            h.plan_only(&format!("forget snapshot {} of {}", s.short_id, s.time));
        }
    }
    to_map(&done)
}
