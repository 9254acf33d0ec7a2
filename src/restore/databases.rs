//! Restoring databases from a snapshot: select them, read their files from the repository,
//! and hand them to the engine, which loads, then verifies every table against the manifest.

use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;
use rustic_core::LsOptions;

use crate::config::{Config, Engine};
use crate::engines::{
    file_stem, table_from_stem, Connection, DbError, Fetch, RestoreReport, RestoreRequest,
    RestoreTable,
};
use crate::engines::{mysql, postgres};
use crate::snapshot::layout;
use crate::snapshot::manifest::{DatabaseEntry, Manifest};
use crate::snapshot::read::{self, IndexedRepo};
use crate::Usage;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("`--database {0}` matches nothing in the snapshot; it holds: {1}")]
    NoMatch(String, String),
    #[error("--into needs exactly one database, but {0} are selected; add --database SRC/DB")]
    IntoNeedsOne(usize),
    #[error("the snapshot's database source `{0}` is not in the config: add a [[databases]] entry named `{0}` that points at the server to restore into")]
    SourceNotConfigured(String),
    #[error("the snapshot holds no databases")]
    NoDatabases,
    #[error("refusing to restore into `{0}`: it is a system database of the server; choose another name with --into NAME")]
    SystemTarget(String),
}

/// What to restore, from `--database`, `--into`, `--jobs`, `--force` and `--dry-run`.
pub struct Selection<'a> {
    pub databases: &'a [String],
    pub into: Option<&'a str>,
    pub jobs: usize,
    pub force: bool,
    pub dry_run: bool,
}

/// The manifest entries that `--database` selects (all when none is given).
pub fn select<'m>(
    manifest: &'m Manifest,
    sel: &Selection,
) -> Result<Vec<&'m DatabaseEntry>, SelectError> {
    if manifest.databases.is_empty() {
        return Err(SelectError::NoDatabases);
    }
    let chosen = super::pick(&manifest.databases, sel.databases, |e| {
        (&e.source, &e.database)
    })
    .map_err(|(want, all)| SelectError::NoMatch(want, all))?;
    if sel.into.is_some() && chosen.len() != 1 {
        return Err(SelectError::IntoNeedsOne(chosen.len()));
    }
    for entry in &chosen {
        let target = sel.into.unwrap_or(&entry.database);
        if crate::engines::is_system_database(target) {
            return Err(SelectError::SystemTarget(target.to_string()));
        }
    }
    Ok(chosen)
}

/// Restores each selected database in turn; the engine parallelises within one.
pub fn restore(
    rt: &tokio::runtime::Handle,
    config: &Config,
    repo: Arc<IndexedRepo>,
    snap: &SnapshotFile,
    entries: &[&DatabaseEntry],
    sel: &Selection,
) -> anyhow::Result<Vec<RestoreReport>> {
    let mut reports = Vec::new();
    for entry in entries {
        let src = config
            .databases
            .iter()
            .find(|d| d.name == entry.source)
            .ok_or_else(|| Usage::new(SelectError::SourceNotConfigured(entry.source.clone())))?;
        let conn = Connection::from_config(src).map_err(Usage::new)?;
        let dir = layout::database_dir(&entry.source, &file_stem(&entry.database));
        let fetch = fetcher(repo.clone(), snap.clone(), dir.clone());
        let read = |name: &str| -> Result<Option<String>, DbError> {
            match fetch(name) {
                Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(DbError::Fetch {
                    path: format!("{dir}/{name}"),
                    detail: e.to_string(),
                }),
            }
        };
        let schema_sql = read("schema.sql")?.ok_or_else(|| DbError::Fetch {
            path: format!("{dir}/schema.sql"),
            detail: "missing from the snapshot".into(),
        })?;
        let post_sql = read("post.sql")?;
        let tables = list_tables(&repo, snap, &dir)?;
        let req = RestoreRequest {
            source: entry.source.clone(),
            database: entry.database.clone(),
            target: sel.into.unwrap_or(&entry.database).to_string(),
            schema_sql,
            post_sql,
            tables,
            expected: entry.tables.clone(),
            fetch,
            jobs: sel.jobs,
            force: sel.force,
            dry_run: sel.dry_run,
        };
        tracing::info!(source = %entry.source, database = %entry.database, into = %req.target, dry_run = sel.dry_run, "restoring database");
        let report = rt.block_on(async {
            match src.engine {
                Engine::Mysql => mysql::restore(&conn, req).await,
                Engine::Postgres => postgres::restore(&conn, req).await,
            }
        })?;
        reports.push(report);
    }
    Ok(reports)
}

/// Reads a file below `dir` of the snapshot. Blocking; `NotFound` when it is absent.
fn fetcher(repo: Arc<IndexedRepo>, snap: SnapshotFile, dir: String) -> Fetch {
    Arc::new(move |rel: &str| {
        let path = format!("{dir}/{rel}");
        read::read(&repo, &snap, &path, "the repository").map_err(|e| match e {
            read::ReadError::NoSuchPath { .. } => {
                std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
            }
            other => std::io::Error::other(other.to_string()),
        })
    })
}

/// The tables of a database dump and their parts, from the `data/` folder's file names.
fn list_tables(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    dir: &str,
) -> Result<Vec<RestoreTable>, DbError> {
    let fetch_err = |detail: String| DbError::Fetch {
        path: format!("{dir}/data"),
        detail,
    };
    let Ok(node) = repo.node_from_snapshot_and_path(snap, &format!("{dir}/data")) else {
        return Ok(Vec::new());
    };
    let mut tables: std::collections::BTreeMap<String, Vec<(u64, String)>> = Default::default();
    for item in repo
        .ls(&node, &LsOptions::default())
        .map_err(|e| fetch_err(e.display_log()))?
    {
        let (path, node) = item.map_err(|e| fetch_err(e.display_log()))?;
        if node.is_dir() {
            continue;
        }
        let name = path.to_string_lossy().into_owned();
        let mut it = name.rsplitn(3, '.');
        let (Some(_ext), Some(n), Some(stem)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Ok(n), Some(table)) = (n.parse::<u64>(), table_from_stem(stem)) else {
            continue;
        };
        tables
            .entry(table)
            .or_default()
            .push((n, format!("data/{name}")));
    }
    Ok(tables
        .into_iter()
        .map(|(name, mut parts)| {
            parts.sort();
            RestoreTable {
                name,
                parts: parts.into_iter().map(|(_, p)| p).collect(),
            }
        })
        .collect())
}
