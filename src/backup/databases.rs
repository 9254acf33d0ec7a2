//! Database sources in a backup: start every configured dump at its consistent point, and turn
//! each dump into snapshot files under `databases/<source>/<db>/`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rustic_core::jiff::Timestamp;

use crate::config::{DatabaseSource, Engine};
use crate::snapshot::manifest::{DatabaseEntry, TableEntry};
use crate::snapshot::tree::{stream_meta, FileStream, VirtualFile};
use crate::sources::database::{file_stem, Connection, DumpOptions, DumpSession, TableStream};
use crate::sources::{mysql, postgres};

/// Root of database dumps inside a snapshot.
pub const ROOT: &str = "databases";

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

pub fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
    }
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
        let conn = Connection::from_config(src)?;
        let opts = DumpOptions {
            jobs: jobs.max(1),
            databases: src.databases.clone(),
            include_tables: src.include_tables.clone(),
            exclude_tables: src.exclude_tables.clone(),
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
            let dir = format!("{ROOT}/{}/{}", src.name, file_stem(&db.database));
            for f in db.files {
                out.files.push(VirtualFile::bytes(
                    format!("{dir}/{}", f.path),
                    stream_meta(started),
                    f.bytes,
                ));
            }
            out.streams
                .push((format!("{dir}/data"), parts_stream(dir, db.tables, started)));
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

/// The parts of every table of one database, in order. Runs on an archiver thread, outside
/// the tokio runtime, so it may block on the dump workers.
fn parts_stream(dir: String, tables: Vec<TableStream>, started: Timestamp) -> FileStream {
    Box::new(tables.into_iter().flat_map(move |mut table| {
        let dir = dir.clone();
        std::iter::from_fn(move || table.parts.blocking_recv()).map(move |part| match part {
            Ok(f) => Ok(VirtualFile::bytes(
                format!("{dir}/{}", f.path),
                stream_meta(started),
                f.bytes,
            )),
            Err(e) => Err(format!("{dir}: {e}")),
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
                    engine: engine_name(s.engine).into(),
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
