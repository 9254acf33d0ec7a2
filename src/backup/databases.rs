//! Database sources in a backup: start every configured dump at its consistent point, and turn
//! each dump into snapshot files under `databases/<source>/<db>/`.

use crate::snapshot::layout;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rustic_core::jiff::Timestamp;

use crate::config::{DatabaseSource, Engine};
use crate::engines::{file_stem, Connection, DumpOptions, DumpSession, TableStream};
use crate::engines::{mysql, postgres};
use crate::snapshot::manifest::{DatabaseEntry, TableEntry};
use crate::snapshot::tree::{stream_meta, FileStream, VirtualFile};
use crate::Usage;

/// The dumps of all database sources, ready to archive.
pub struct DatabaseFiles {
    pub files: Vec<VirtualFile>,
    pub streams: Vec<(String, FileStream)>,
    pub warnings: Vec<String>,
    sessions: Vec<SessionInfo>,
}

struct SessionInfo {
    source: String,
    engine: Engine,
    server_version: String,
    consistency: BTreeMap<String, String>,
    databases: Vec<String>,
    results: Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>,
}

/// Connects to every source and starts its dump. Fails on the first source that cannot start:
/// a backup that silently lacks a database is worse than none.
pub fn start(
    rt: &tokio::runtime::Handle,
    sources: &[DatabaseSource],
    jobs: usize,
    started: Timestamp,
) -> anyhow::Result<DatabaseFiles> {
    let mut out = DatabaseFiles {
        files: Vec::new(),
        streams: Vec::new(),
        warnings: Vec::new(),
        sessions: Vec::new(),
    };
    for src in sources {
        let conn = Connection::from_config(src).map_err(Usage::new)?;
        let opts = DumpOptions {
            jobs: jobs.max(1),
            databases: src.databases.clone(),
            tables: src.tables.clone(),
            ..DumpOptions::default()
        };
        let session: DumpSession = rt.block_on(async {
            match src.engine {
                Engine::Mysql => mysql::dump(&conn, &opts).await,
                Engine::Postgres => postgres::dump(&conn, &opts).await,
            }
        })?;
        tracing::info!(source = %src.name, databases = session.databases.len(), server = %session.server_version, "database dump started");
        out.warnings.extend(
            session
                .warnings
                .iter()
                .map(|w| format!("databases/{}: {w}", src.name)),
        );
        let mut names = Vec::new();
        for db in session.databases {
            let dir = layout::database_dir(&src.name, &file_stem(&db.database));
            for f in db.files {
                out.files.push(VirtualFile::bytes(
                    format!("{dir}/{}", f.path),
                    stream_meta(started),
                    f.bytes,
                ));
            }
            let stream = parts_stream(
                dir.clone(),
                db.database.clone(),
                db.tables,
                session.results.clone(),
                started,
            );
            out.streams.push((format!("{dir}/data"), stream));
            names.push(db.database);
        }
        out.sessions.push(SessionInfo {
            source: src.name.clone(),
            engine: src.engine,
            server_version: session.server_version,
            consistency: session.consistency,
            databases: names,
            results: session.results,
        });
    }
    Ok(out)
}

type Results = Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>;

/// The parts of every table of one database, in order. Runs on an archiver thread, outside
/// the tokio runtime, so it may block on the dump workers.
fn parts_stream(
    dir: String,
    database: String,
    tables: Vec<TableStream>,
    results: Results,
    started: Timestamp,
) -> FileStream {
    Box::new(tables.into_iter().flat_map(move |mut table| {
        let (dir, database, results) = (dir.clone(), database.clone(), results.clone());
        let (mut failed, mut closed) = (false, false);
        std::iter::from_fn(move || {
            if closed {
                return None;
            }
            match table.parts.blocking_recv() {
                Some(Ok(f)) => Some(Ok(VirtualFile::bytes(
                    format!("{dir}/{}", f.path),
                    stream_meta(started),
                    f.bytes,
                ))),
                Some(Err(e)) => {
                    failed = true;
                    Some(Err(format!("{dir}: {e}")))
                }
                None => {
                    closed = true;
                    // A table whose channel closed without its result did not finish.
                    let finished = results
                        .lock()
                        .expect("results lock")
                        .get(&database)
                        .is_some_and(|t| t.contains_key(&table.name));
                    (!finished && !failed).then(|| {
                        Err(format!(
                            "{dir}: table `{}` ended before its last row",
                            table.name
                        ))
                    })
                }
            }
        })
    }))
}

impl DatabaseFiles {
    /// Manifest entries, once every stream has been consumed.
    pub fn manifest_entries(&self) -> Vec<DatabaseEntry> {
        let mut entries = Vec::new();
        for s in &self.sessions {
            let results = s.results.lock().expect("results lock");
            for db in &s.databases {
                entries.push(DatabaseEntry {
                    source: s.source.clone(),
                    database: db.clone(),
                    engine: s.engine.name().into(),
                    server_version: s.server_version.clone(),
                    consistency: s.consistency.clone(),
                    tables: results
                        .get(db)
                        .map(|t| t.values().cloned().collect())
                        .unwrap_or_default(),
                });
            }
        }
        entries
    }
}
