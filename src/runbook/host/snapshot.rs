//! `snapshot::`: the repository's snapshots, through the code `kfguard snapshots`, `show` and
//! `check` run.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module};

use super::{func, known_options, opt_str, to_map, Host, Res};
use crate::repo::check::{self, ReadData};
use crate::runbook::steps::error;
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
