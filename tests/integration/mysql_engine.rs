//! The MySQL/MariaDB engine against the real server on loopback (`KFGUARD_TEST_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306`): dump through the library API, consume the table
//! streams as the archiver does (a plain thread, outside the runtime), restore `--into` a new
//! name, then compare source and copy row by row with independent SQL and `CHECKSUM TABLE`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfguard::engines::mysql;
use kfguard::engines::{
    Connection, DbError, DumpOptions, Fetch, RestoreReport, RestoreRequest, RestoreTable,
};
use kfguard::snapshot::manifest::TableEntry;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row, Value};
use tokio::runtime::Runtime;

use crate::common::db::{mysql_connection, mysql_url, MysqlFixture};

fn exec(rt: &Runtime, c: &mut Conn, sql: &str) {
    rt.block_on(c.query_drop(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

trait IntoParams {
    fn into_params(self) -> mysql_async::Params;
}

impl<T: Into<mysql_async::Params>> IntoParams for T {
    fn into_params(self) -> mysql_async::Params {
        self.into()
    }
}

/// One database of a finished dump, held in memory like a snapshot.
#[derive(Clone)]
struct DbFiles {
    files: HashMap<String, Vec<u8>>,
    tables: Vec<RestoreTable>,
    expected: Vec<TableEntry>,
}

struct Dumped {
    warnings: Vec<String>,
    consistency: BTreeMap<String, String>,
    server_version: String,
    dbs: BTreeMap<String, DbFiles>,
}

/// Runs a dump and consumes it from this thread, in order, as the archiver does.
fn dump_all(rt: &Runtime, conn: &Connection, opts: &DumpOptions) -> Result<Dumped, DbError> {
    let mut session = rt.block_on(mysql::dump(conn, opts))?;
    let mut dbs = BTreeMap::new();
    let mut order = Vec::new();
    for d in session.databases.iter_mut() {
        let mut files: HashMap<String, Vec<u8>> = d
            .files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        let mut tables = Vec::new();
        for t in d.tables.iter_mut() {
            let mut parts = Vec::new();
            while let Some(item) = t.parts.blocking_recv() {
                let f = item?;
                parts.push(f.path.clone());
                assert!(files.insert(f.path, f.bytes).is_none(), "duplicate part");
            }
            tables.push(RestoreTable {
                name: t.name.clone(),
                parts,
            });
        }
        order.push(d.database.clone());
        dbs.insert(
            d.database.clone(),
            DbFiles {
                files,
                tables,
                expected: Vec::new(),
            },
        );
    }
    let results = session.results.lock().unwrap().clone();
    for (db, files) in dbs.iter_mut() {
        let r = results.get(db).cloned().unwrap_or_default();
        for t in &files.tables {
            assert!(r.contains_key(&t.name), "no result for {db}.{}", t.name);
        }
        files.expected = r.into_values().collect();
    }
    Ok(Dumped {
        warnings: session.warnings.clone(),
        consistency: session.consistency.clone(),
        server_version: session.server_version.clone(),
        dbs,
    })
}

fn restore_db(
    rt: &Runtime,
    dump: &DbFiles,
    source_db: &str,
    target: &str,
    jobs: usize,
    force: bool,
    dry_run: bool,
) -> Result<RestoreReport, DbError> {
    let files = Arc::new(dump.files.clone());
    let fetch: Fetch = Arc::new(move |p: &str| {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, p.to_string()))
    });
    let req = RestoreRequest {
        database: source_db.into(),
        target: target.into(),
        schema_sql: String::from_utf8(dump.files["schema.sql"].clone()).unwrap(),
        post_sql: None,
        tables: dump.tables.clone(),
        expected: dump.expected.clone(),
        fetch,
        jobs,
        force,
        dry_run,
    };
    rt.block_on(mysql::restore(&mysql_connection(), req))
}

fn opts(databases: &[&str], jobs: usize, part_bytes: usize) -> DumpOptions {
    DumpOptions {
        jobs,
        part_bytes,
        databases: databases.iter().map(|s| s.to_string()).collect(),
        ..DumpOptions::default()
    }
}

fn strings(rt: &Runtime, c: &mut Conn, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<Row> = rt
        .block_on(c.query(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(false)),
                })
                .collect()
        })
        .collect()
}

fn base_tables(rt: &Runtime, c: &mut Conn, db: &str) -> Vec<String> {
    strings(
        rt,
        c,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// Values equal, doubles and floats bit for bit (so -0.0 differs from 0.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// All rows of a table through the binary protocol, in a canonical order of our own.
fn rows_of(rt: &Runtime, c: &mut Conn, db: &str, table: &str) -> Vec<Vec<Value>> {
    let sql = format!("SELECT * FROM `{db}`.`{}`", table.replace('`', "``"));
    let rows: Vec<Row> = rt
        .block_on(c.exec(sql.as_str(), ()))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows: Vec<Vec<Value>> = rows.into_iter().map(|r| r.unwrap()).collect();
    rows.sort_by_cached_key(|r| r.iter().map(|v| v.as_sql(false)).collect::<Vec<_>>());
    rows
}

/// Compares every base table of two databases: definitions, every row and value, and the
/// server's own CHECKSUM TABLE. Returns the number of rows compared.
fn assert_same_databases(rt: &Runtime, c: &mut Conn, a: &str, b: &str) -> usize {
    let tables = base_tables(rt, c, a);
    assert_eq!(tables, base_tables(rt, c, b), "tables of {a} and {b}");
    let mut total = 0;
    for t in &tables {
        let q = t.replace('`', "``");
        let show = |db: &str, c: &mut Conn| {
            strings(rt, c, &format!("SHOW CREATE TABLE `{db}`.`{q}`"))[0][1].clone()
        };
        assert_eq!(show(a, c), show(b, c), "definition of {t}");
        let ra = rows_of(rt, c, a, t);
        let rb = rows_of(rt, c, b, t);
        assert_eq!(ra.len(), rb.len(), "row count of {t}");
        for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
            assert_eq!(x.len(), y.len());
            for (j, (u, v)) in x.iter().zip(y).enumerate() {
                assert!(same(u, v), "{t} row {i} column {j}: {u:?} != {v:?}");
            }
        }
        total += ra.len();
        let sum = |db: &str, c: &mut Conn| {
            strings(rt, c, &format!("CHECKSUM TABLE `{db}`.`{q}`"))[0][1].clone()
        };
        assert_eq!(sum(a, c), sum(b, c), "CHECKSUM TABLE {t}");
    }
    total
}

fn auto_increment(rt: &Runtime, c: &mut Conn, db: &str, table: &str) -> Option<String> {
    strings(
        rt,
        c,
        &format!(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"
        ),
    )[0][0]
        .clone()
}

// ---------------------------------------------------------------------------------------------
// A KFP-like install: `mlpipeline` and an ML-Metadata `metadb`

const MLPIPELINE: &str = r#"
CREATE TABLE experiments (
  UUID varchar(255) NOT NULL, Name varchar(255) NOT NULL, Description longtext NOT NULL,
  CreatedAtInSec bigint(20) NOT NULL, Namespace varchar(255) NOT NULL DEFAULT '',
  StorageState varchar(255) NOT NULL, LastRunCreatedAtInSec bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (UUID), UNIQUE KEY idx_name_namespace (Name, Namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE pipelines (
  UUID varchar(255) NOT NULL, CreatedAtInSec bigint(20) NOT NULL, Name varchar(128) NOT NULL,
  DisplayName varchar(128) NOT NULL, Description longtext NOT NULL, Status varchar(255),
  Namespace varchar(63) DEFAULT '',
  PRIMARY KEY (UUID), UNIQUE KEY name_namespace_index (Name, Namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE pipeline_versions (
  UUID varchar(255) NOT NULL, CreatedAtInSec bigint(20) NOT NULL, Name varchar(127) NOT NULL,
  DisplayName varchar(127) NOT NULL, Parameters longtext NOT NULL, PipelineId varchar(255) NOT NULL,
  Status varchar(255), CodeSourceUrl varchar(255), Description longtext NOT NULL,
  PipelineSpec longtext NOT NULL, PipelineSpecURI longtext NOT NULL,
  PRIMARY KEY (UUID), UNIQUE KEY idx_pipelineid_name (PipelineId, Name),
  CONSTRAINT fk_pipeline_versions_pipelines FOREIGN KEY (PipelineId) REFERENCES pipelines (UUID)
    ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE run_details (
  UUID varchar(255) NOT NULL, ExperimentUUID varchar(255) NOT NULL, DisplayName varchar(255) NOT NULL,
  Name varchar(255) NOT NULL, StorageState varchar(255) NOT NULL, Namespace varchar(255) NOT NULL,
  ServiceAccount varchar(255) NOT NULL, Description longtext NOT NULL,
  CreatedAtInSec bigint(20) NOT NULL, ScheduledAtInSec bigint(20) DEFAULT 0,
  FinishedAtInSec bigint(20) DEFAULT 0, Conditions varchar(125) NOT NULL,
  PipelineId varchar(255) NOT NULL, PipelineVersionId varchar(255) DEFAULT NULL,
  PipelineSpecManifest longtext, WorkflowSpecManifest longtext NOT NULL,
  WorkflowRuntimeManifest longtext NOT NULL, PipelineRuntimeManifest longtext NOT NULL,
  StateHistory longtext, RuntimeConfig json DEFAULT NULL,
  PRIMARY KEY (UUID), KEY experimentuuid_createatinsec (ExperimentUUID, CreatedAtInSec),
  CONSTRAINT fk_run_details_experiments FOREIGN KEY (ExperimentUUID) REFERENCES experiments (UUID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE jobs (
  UUID varchar(255) NOT NULL, DisplayName varchar(255) NOT NULL, Name varchar(255) NOT NULL,
  Namespace varchar(255) NOT NULL, ServiceAccount varchar(255) NOT NULL, Description longtext NOT NULL,
  MaxConcurrency bigint(20) NOT NULL, NoCatchup tinyint(1) NOT NULL, CreatedAtInSec bigint(20) NOT NULL,
  UpdatedAtInSec bigint(20) NOT NULL, Enabled tinyint(1) NOT NULL,
  CronScheduleStartTimeInSec bigint(20) DEFAULT NULL, Schedule varchar(255) DEFAULT NULL,
  IntervalSecond bigint(20) DEFAULT NULL, PipelineId varchar(255) NOT NULL,
  ExperimentUUID varchar(255) NOT NULL, Conditions varchar(125) NOT NULL,
  WorkflowSpecManifest longtext NOT NULL, PipelineSpecManifest longtext NOT NULL,
  PRIMARY KEY (UUID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE tasks (
  UUID varchar(255) NOT NULL, Namespace varchar(255) NOT NULL, PipelineName varchar(128) NOT NULL,
  RunUUID varchar(255) NOT NULL, PodName varchar(255) NOT NULL, MLMDExecutionID varchar(255) NOT NULL,
  CreatedTimestamp bigint(20) NOT NULL, StartedTimestamp bigint(20) DEFAULT 0,
  FinishedTimestamp bigint(20) DEFAULT NULL, Fingerprint varchar(255) NOT NULL,
  Name varchar(255) DEFAULT NULL, State varchar(255) DEFAULT NULL, StateHistory longtext,
  MLMDInputs longtext, MLMDOutputs longtext, ChildrenPods longtext,
  PRIMARY KEY (UUID), KEY tasks_RunUUID (RunUUID),
  CONSTRAINT fk_tasks_run_details FOREIGN KEY (RunUUID) REFERENCES run_details (UUID)
    ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE VIEW run_summary AS
  SELECT r.UUID, r.DisplayName, e.Name AS Experiment, LENGTH(r.WorkflowRuntimeManifest) AS ManifestBytes
  FROM run_details r JOIN experiments e ON e.UUID = r.ExperimentUUID;
CREATE VIEW big_runs AS SELECT UUID, ManifestBytes FROM run_summary WHERE ManifestBytes > 1000;
CREATE TRIGGER tasks_stamp BEFORE INSERT ON tasks FOR EACH ROW
BEGIN
  -- a body with semicolons, a string with one, and a comment
  IF NEW.State IS NULL THEN SET NEW.State = 'PENDING;'; END IF;
  SET NEW.Fingerprint = CONCAT(NEW.Fingerprint, '#');
END
"#;

const METADB: &str = r#"
CREATE TABLE `Type` (
  id int(11) NOT NULL AUTO_INCREMENT, name varchar(255) NOT NULL, version varchar(255) DEFAULT NULL,
  type_kind tinyint(1) NOT NULL, description text, input_type text, output_type text,
  external_id varchar(255) DEFAULT NULL,
  PRIMARY KEY (id), UNIQUE KEY external_id (external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE Artifact (
  id int(11) NOT NULL AUTO_INCREMENT, type_id int(11) NOT NULL, uri text, state int(11) DEFAULT NULL,
  name varchar(255) DEFAULT NULL, external_id varchar(255) DEFAULT NULL,
  create_time_since_epoch bigint(20) NOT NULL DEFAULT 0,
  last_update_time_since_epoch bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (id), UNIQUE KEY UniqueArtifactTypeName (type_id, name), UNIQUE KEY external_id (external_id),
  CONSTRAINT fk_artifact_type FOREIGN KEY (type_id) REFERENCES `Type` (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE ArtifactProperty (
  artifact_id int(11) NOT NULL, name varchar(255) NOT NULL, is_custom_property tinyint(1) NOT NULL,
  int_value int(11) DEFAULT NULL, double_value double DEFAULT NULL, string_value mediumtext,
  byte_value mediumblob, proto_value mediumblob, bool_value tinyint(1) DEFAULT NULL,
  PRIMARY KEY (artifact_id, name, is_custom_property),
  CONSTRAINT fk_property_artifact FOREIGN KEY (artifact_id) REFERENCES Artifact (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE Execution (
  id int(11) NOT NULL AUTO_INCREMENT, type_id int(11) NOT NULL, last_known_state int(11) DEFAULT NULL,
  name varchar(255) DEFAULT NULL, external_id varchar(255) DEFAULT NULL,
  create_time_since_epoch bigint(20) NOT NULL DEFAULT 0,
  last_update_time_since_epoch bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (id), UNIQUE KEY UniqueExecutionTypeName (type_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE Event (
  id int(11) NOT NULL AUTO_INCREMENT, artifact_id int(11) NOT NULL, execution_id int(11) NOT NULL,
  type int(11) NOT NULL, milliseconds_since_epoch bigint(20) DEFAULT NULL,
  PRIMARY KEY (id), UNIQUE KEY UniqueEvent (artifact_id, execution_id, type),
  KEY idx_event_execution_id (execution_id),
  CONSTRAINT fk_event_artifact FOREIGN KEY (artifact_id) REFERENCES Artifact (id),
  CONSTRAINT fk_event_execution FOREIGN KEY (execution_id) REFERENCES Execution (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"#;

/// Runs `;`-separated DDL; the trigger (last in MLPIPELINE) is sent whole.
fn run_ddl(rt: &Runtime, c: &mut Conn, db: &str, ddl: &str) {
    exec(rt, c, &format!("CREATE DATABASE `{db}`"));
    exec(rt, c, &format!("USE `{db}`"));
    let (plain, trigger) = match ddl.find("CREATE TRIGGER") {
        Some(i) => (&ddl[..i], Some(&ddl[i..])),
        None => (ddl, None),
    };
    for stmt in plain.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        exec(rt, c, stmt);
    }
    if let Some(t) = trigger {
        exec(rt, c, t.trim());
    }
}

fn seed_kfp(rt: &Runtime, c: &mut Conn, mlp: &str, meta: &str) {
    run_ddl(rt, c, mlp, MLPIPELINE);
    run_ddl(rt, c, meta, METADB);
    rt.block_on(async {
        exec_batch(
            c,
            &format!("INSERT INTO `{mlp}`.experiments VALUES (?, ?, ?, ?, ?, 'AVAILABLE', ?)"),
            (0..5).map(|i| {
                (
                    format!("exp-{i}"),
                    format!("Experiment {i} ✨"),
                    format!("desc\twith\ttabs\nand lines {i}"),
                    1_700_000_000 + i,
                    if i % 2 == 0 { "kubeflow-user" } else { "" },
                    1_700_000_500 + i,
                )
                    .into_params()
            }),
        )
        .await;
        exec_batch(
            c,
            &format!("INSERT INTO `{mlp}`.pipelines VALUES (?, ?, ?, ?, ?, 'READY', ?)"),
            (0..3).map(|i| {
                (
                    format!("pl-{i}"),
                    1_700_000_000 + i,
                    format!("pipeline-{i}"),
                    format!("Pipeline {i}"),
                    "",
                    "kubeflow",
                )
                    .into_params()
            }),
        )
        .await;
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{mlp}`.pipeline_versions VALUES (?, ?, ?, ?, '[]', ?, 'READY', NULL, '', ?, ?)"
            ),
            (0..6).map(|i| {
                (
                    format!("pv-{i}"),
                    1_700_000_000 + i,
                    format!("v{i}"),
                    format!("Version {i}"),
                    format!("pl-{}", i % 3),
                    format!("pipelineInfo:\n  name: p{i}\nroot:\n  dag: {{}}\n"),
                    format!("minio://mlpipeline/pipelines/pv-{i}.yaml"),
                )
                    .into_params()
            }),
        )
        .await;
        // One run carries a ~5 MiB WorkflowRuntimeManifest, as big KFP runs do.
        let big: String = "{\"status\":{\"nodes\":{\"n\":\"ünïcode ✅ \\\\ \\t\"}}}\n"
            .repeat(5 * 1024 * 1024 / 44);
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{mlp}`.run_details (UUID, ExperimentUUID, DisplayName, Name, StorageState, \
                 Namespace, ServiceAccount, Description, CreatedAtInSec, ScheduledAtInSec, FinishedAtInSec, \
                 Conditions, PipelineId, PipelineVersionId, PipelineSpecManifest, WorkflowSpecManifest, \
                 WorkflowRuntimeManifest, PipelineRuntimeManifest, StateHistory, RuntimeConfig) \
                 VALUES (?, ?, ?, ?, 'AVAILABLE', 'kubeflow', 'pipeline-runner', '', ?, ?, 0, 'Succeeded', \
                 ?, ?, NULL, ?, ?, '', ?, ?)"
            ),
            (0..8).map(|i| {
                let manifest = if i == 3 { big.clone() } else { format!("{{\"run\":{i}}}") };
                (
                    format!("run-{i}"),
                    format!("exp-{}", i % 5),
                    format!("Run {i}"),
                    format!("run-{i}"),
                    1_700_001_000 + i,
                    1_700_001_000 + i,
                    format!("pl-{}", i % 3),
                    format!("pv-{}", i % 6),
                    "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n",
                    manifest,
                    "[{\"State\":\"SUCCEEDED\"}]",
                    format!("{{\"parameters\": {{\"lr\": 0.{i}, \"name\": \"run {i} 🚀\"}}}}"),
                )
                    .into_params()
            }),
        )
        .await;
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{mlp}`.jobs VALUES (?, ?, ?, 'kubeflow', 'pipeline-runner', '', 10, 1, ?, ?, 1, \
                 ?, ?, NULL, 'pl-0', 'exp-0', 'READY', '{{}}', '')"
            ),
            (0..3).map(|i| {
                (
                    format!("job-{i}"),
                    format!("Job {i}"),
                    format!("job-{i}"),
                    1_700_002_000 + i,
                    1_700_002_100 + i,
                    if i == 0 { None } else { Some(1_700_000_000 + i) },
                    if i == 1 { None } else { Some("0 0 * * * *") },
                )
                    .into_params()
            }),
        )
        .await;
        // Enough small rows to span several 64 KiB parts.
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{mlp}`.tasks (UUID, Namespace, PipelineName, RunUUID, PodName, MLMDExecutionID, \
                 CreatedTimestamp, FinishedTimestamp, Fingerprint, Name, State, StateHistory, MLMDInputs, \
                 MLMDOutputs, ChildrenPods) VALUES (?, 'kubeflow', 'pipeline/p', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]')"
            ),
            (0..2000).map(|i| {
                (
                    format!("task-{i:05}"),
                    format!("run-{}", i % 8),
                    format!("pod-{i}"),
                    format!("{i}"),
                    1_700_003_000 + i,
                    if i % 3 == 0 { None } else { Some(1_700_003_100 + i) },
                    format!("fp{i:040}"),
                    format!("task {i}"),
                    if i % 5 == 0 { None } else { Some("SUCCEEDED") },
                    "[{\"state\":\"RUNNING\"},{\"state\":\"SUCCEEDED\"}]",
                    format!("{{\"artifacts\":[{}]}}", i % 7),
                    format!("{{\"parameters\":{{\"out\":\"{}\"}}}}", "x".repeat(i as usize % 50)),
                )
                    .into_params()
            }),
        )
        .await;

        exec_batch(
            c,
            &format!("INSERT INTO `{meta}`.`Type` (name, version, type_kind, description) VALUES (?, ?, ?, ?)"),
            ["system.Artifact", "system.Model", "system.ContainerExecution", "system.DAGExecution"]
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), Some("0.0.1"), (i >= 2) as i32, None::<String>).into_params()),
        )
        .await;
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{meta}`.Artifact (type_id, uri, state, name, create_time_since_epoch, \
                 last_update_time_since_epoch) VALUES (?, ?, 2, ?, ?, ?)"
            ),
            (0..60).map(|i| {
                (
                    1 + i % 2,
                    format!("minio://mlpipeline/v2/artifacts/run-{}/{i}", i % 8),
                    format!("artifact-{i}"),
                    1_700_000_000_000i64 + i,
                    1_700_000_000_500i64 + i,
                )
                    .into_params()
            }),
        )
        .await;
        // The counter is ahead of the rows: a restore must keep it, not recompute max(id)+1.
        c.query_drop(format!("DELETE FROM `{meta}`.Artifact WHERE id > 50")).await.unwrap();
        let every_byte: Vec<u8> = (0..=255u8).collect();
        exec_batch(
            c,
            &format!("INSERT INTO `{meta}`.ArtifactProperty VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (1..=50).flat_map(|a| {
                let every_byte = every_byte.clone();
                (0..3).map(move |k| {
                    let mut proto = every_byte.clone();
                    proto.rotate_left((a * 7 + k) as usize % 256);
                    (
                        a,
                        ["display_name", "metrics", "store_session_info"][k as usize].to_string(),
                        k % 2,
                        (k == 0).then_some(a * 1000),
                        (k == 1).then_some(a as f64 / 3.0),
                        (k == 2).then(|| format!("{{\"provider\":\"minio\",\"n\":{a}}}")),
                        (k != 0).then(|| every_byte.clone()),
                        (k == 1).then_some(proto),
                        (k == 2).then_some(a % 2 == 0),
                    )
                        .into_params()
                })
            }),
        )
        .await;
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{meta}`.Execution (type_id, last_known_state, name, create_time_since_epoch) \
                 VALUES (?, ?, ?, ?)"
            ),
            (0..20).map(|i| (3 + i % 2, 3, format!("exec-{i}"), 1_700_000_000_000i64 + i).into_params()),
        )
        .await;
        exec_batch(
            c,
            &format!(
                "INSERT INTO `{meta}`.Event (artifact_id, execution_id, type, milliseconds_since_epoch) \
                 VALUES (?, ?, ?, ?)"
            ),
            (0..40).map(|i| (1 + i % 50, 1 + i % 20, 1 + i % 4, 1_700_000_000_000i64 + i).into_params()),
        )
        .await;
    });
}

async fn exec_batch<I>(c: &mut Conn, sql: &str, params: I)
where
    I: IntoIterator<Item = mysql_async::Params> + Send,
    I::IntoIter: Send,
{
    c.exec_batch(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[test]
fn kfp_round_trip_with_views_triggers_and_parts() {
    let mut my = MysqlFixture::new();
    let (mlp, meta) = (my.database("mlpipeline"), my.database("metadb"));
    let (mlp2, meta2, cli) = (
        my.database("mlpipeline_copy"),
        my.database("metadb_copy"),
        my.database("mlpipeline_cli"),
    );
    let (rt, c) = my.parts();
    seed_kfp(rt, c, &mlp, &meta);

    let t0 = Instant::now();
    let dumped =
        dump_all(rt, &mysql_connection(), &opts(&[&mlp, &meta], 3, 64 * 1024)).expect("dump");
    eprintln!("dump: {:?}", t0.elapsed());
    assert!(dumped.server_version.contains("MariaDB") || !dumped.server_version.is_empty());
    assert_eq!(
        dumped.consistency.get("mode").map(String::as_str),
        Some("ftwrl")
    );
    assert!(
        !dumped
            .warnings
            .iter()
            .any(|w| w.contains(&mlp) || w.contains(&meta)),
        "unexpected warnings: {:?}",
        dumped.warnings
    );

    // Parts: cut at row boundaries, at most 64 KiB unless one row is larger, numbered from 1.
    let m = &dumped.dbs[&mlp];
    for t in &m.tables {
        assert!(!t.parts.is_empty());
        for (n, p) in t.parts.iter().enumerate() {
            assert_eq!(p, &format!("data/{}.{:06}.tsv", t.name, n + 1));
            let bytes = &m.files[p];
            assert!(
                bytes.is_empty() || bytes.ends_with(b"\n"),
                "{p} ends mid-row"
            );
            let rows = bytes.iter().filter(|&&b| b == b'\n').count();
            assert!(
                bytes.len() <= 64 * 1024 || rows == 1,
                "{p}: {} bytes",
                bytes.len()
            );
        }
    }
    let parts = |name: &str| {
        m.tables
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .parts
            .len()
    };
    assert!(parts("tasks") > 3, "tasks in {} parts", parts("tasks"));
    assert!(
        parts("run_details") >= 3,
        "the big manifest is a part of its own"
    );
    let tasks = m.expected.iter().find(|e| e.name == "tasks").unwrap();
    assert_eq!(tasks.rows, 2000);

    // schema.sql is plain SQL for the stock client (the acceptance check for `restic dump`).
    let schema = String::from_utf8(m.files["schema.sql"].clone()).unwrap();
    assert!(schema.contains("CREATE TABLE `run_details`"));
    assert!(schema.contains("DELIMITER ;;"));
    assert!(!schema.contains("DEFINER=`"), "definers are stripped");
    replay_with_mysql_client(rt, c, &schema, &cli, &mlp);

    let t0 = Instant::now();
    for (src, dst) in [(&mlp, &mlp2), (&meta, &meta2)] {
        let report = restore_db(rt, &dumped.dbs[src], src, dst, 2, false, false).expect("restore");
        assert_eq!(report.tables.len(), dumped.dbs[src].tables.len());
        assert!(report.plan.iter().any(|p| p.starts_with("create table ")));
    }
    eprintln!("restore: {:?}", t0.elapsed());
    let rows =
        assert_same_databases(rt, c, &mlp, &mlp2) + assert_same_databases(rt, c, &meta, &meta2);
    assert!(rows > 2000);

    // The auto-increment counter survived (it is ahead of max(id) + 1).
    assert_eq!(
        auto_increment(rt, c, &meta, "Artifact").as_deref(),
        Some("61")
    );
    assert_eq!(
        auto_increment(rt, c, &meta2, "Artifact").as_deref(),
        Some("61")
    );

    // Views are restored and work; a view of a view too.
    let view = |db: &str, c: &mut Conn| {
        strings(
            rt,
            c,
            &format!("SELECT * FROM `{db}`.big_runs ORDER BY UUID"),
        )
    };
    let v = view(&mlp2, c);
    assert_eq!(v, view(&mlp, c));
    assert_eq!(v.len(), 1);
    // The trigger did not fire during the load (rows compared equal above) and fires now.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{mlp2}`.tasks (UUID, Namespace, PipelineName, RunUUID, PodName, \
             MLMDExecutionID, CreatedTimestamp, Fingerprint) VALUES ('t-new', 'k', 'p', 'run-0', 'pod', '1', 1, 'fp')"
        ),
    );
    let got = strings(
        rt,
        c,
        &format!("SELECT State, Fingerprint FROM `{mlp2}`.tasks WHERE UUID = 't-new'"),
    );
    assert_eq!(got, vec![vec![Some("PENDING;".into()), Some("fp#".into())]]);
    // Foreign keys are in force again for ordinary sessions.
    let fk = rt.block_on(c.query_drop(format!(
        "INSERT INTO `{meta2}`.Event (artifact_id, execution_id, type) VALUES (9999, 1, 1)"
    )));
    assert!(fk.is_err(), "the foreign key was not restored");
}

/// Pipes schema.sql through the stock `mysql` client into an empty database, as
/// `restic dump … | mysql` would, and checks the tables match the source's definitions.
fn replay_with_mysql_client(rt: &Runtime, c: &mut Conn, schema: &str, into: &str, like: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some(client) = ["mariadb", "mysql"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("no mysql client: skipping the schema.sql replay");
        return;
    };
    exec(rt, c, &format!("CREATE DATABASE `{into}`"));
    let o = Opts::from_url(&mysql_url()).unwrap();
    let mut child = Command::new(client)
        .args([
            "--protocol=tcp",
            "-h",
            o.ip_or_hostname(),
            "-P",
            &o.tcp_port().to_string(),
            "-u",
            o.user().unwrap_or("root"),
            into,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(schema.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mysql client rejected schema.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = base_tables(rt, c, like);
    assert_eq!(tables, base_tables(rt, c, into));
    for t in &tables {
        let show = |db: &str, c: &mut Conn| {
            let s = strings(rt, c, &format!("SHOW CREATE TABLE `{db}`.`{t}`"))[0][1].clone();
            // The empty copy has the definition, and only the counter differs.
            s.map(|s| {
                s.split(' ')
                    .filter(|w| !w.starts_with("AUTO_INCREMENT="))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        assert_eq!(
            show(like, c),
            show(into, c),
            "definition of {t} via the mysql client"
        );
    }
    let triggers = strings(
        rt,
        c,
        &format!(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{into}'"
        ),
    );
    assert_eq!(triggers.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Fidelity

const FIDELITY: &str = r#"
CREATE TABLE fidelity (
  id int NOT NULL PRIMARY KEY,
  txt text NULL,
  emoji varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  latin varchar(64) CHARACTER SET latin1 NULL,
  bin_blob longblob NULL,
  vbin varbinary(16) NULL,
  long_text longtext NULL,
  doc json NULL,
  dt datetime(6) NULL,
  ts timestamp(6) NULL DEFAULT NULL,
  ts0 timestamp NULL DEFAULT NULL,
  d date NULL,
  t time(3) NULL,
  y year NULL,
  dbl double NULL,
  flt float NULL,
  dec30 decimal(30,10) NULL,
  ubig bigint unsigned NULL,
  sbig bigint NULL,
  tiny tinyint NULL,
  bits bit(5) NULL,
  bits64 bit(64) NULL,
  e enum('a','b c','') NULL,
  s set('x','y','z') NULL,
  gen_virtual int AS (id * 2) VIRTUAL,
  gen_stored varchar(80) AS (CONCAT('#', id)) PERSISTENT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE no_pk (a int NULL, b varchar(20) NULL) ENGINE=InnoDB;
CREATE TABLE unique_not_null (code varchar(10) NOT NULL, v int NULL, UNIQUE KEY (code)) ENGINE=InnoDB;
CREATE TABLE empty_table (id int PRIMARY KEY, v text) ENGINE=InnoDB;
CREATE TABLE `select` (`from` int PRIMARY KEY, `my col` varchar(10), `back``tick` int) ENGINE=InnoDB;
CREATE TABLE `my table` (`key` varchar(20) PRIMARY KEY, `where` text) ENGINE=InnoDB;
CREATE TABLE one_col (s varchar(10) NULL) ENGINE=InnoDB;
"#;

#[test]
fn fidelity_round_trip() {
    let mut my = MysqlFixture::new();
    let (src, dst) = (my.database("fidelity"), my.database("fidelity_copy"));
    let (rt, c) = my.parts();
    run_ddl(rt, c, &src, FIDELITY);

    let every_byte: Vec<u8> = (0..=255u8).collect();
    let long_text: String = "line\twith\ttabs\\ and \r\n\\N — ünïcode 🦀\n".repeat(30_000);
    let doubles = [
        0.1 + 0.2,
        1e-300,
        -0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -1.0 / 3.0,
        std::f64::consts::PI,
        123456789.12345678,
        1e16,
        0.0,
    ];
    let floats = [
        0.1f32,
        f32::MAX,
        f32::MIN_POSITIVE,
        -16777217.0,
        std::f32::consts::PI,
        -0.0,
    ];
    let texts: [Option<&str>; 8] = [
        None,
        Some(""),
        Some("\\N"),
        Some("N"),
        Some("a\tb\nc\rd\\e"),
        Some("\\"),
        Some("tail\\"),
        Some("NULL"),
    ];
    rt.block_on(async {
        for (i, &dbl) in doubles.iter().enumerate() {
            let i = i as i64;
            let txt = texts[i as usize % texts.len()];
            let params: Vec<Value> = vec![
                i.into(),
                txt.map(str::to_string).into(),
                Some(["😀 emoji 🎉", "", "ß", "\u{1F9EA}\u{200D}"][i as usize % 4]).into(),
                Some("café naïve").into(),
                match i % 3 {
                    0 => Some(every_byte.clone()),
                    1 => Some(Vec::new()),
                    _ => None,
                }
                .into(),
                Some(vec![0u8, b'\t', b'\n', b'\\', 0xff]).into(),
                (i == 1).then(|| long_text.clone()).into(),
                Some(format!("{{\"k\": [1, 2.5, \"v{i}\\t\\n\"], \"e\": \"🎉\"}}")).into(),
                Value::Date(2024, 2, 29, 23, 59, 58, 123_456 + i as u32),
                Value::Date(2038, 1, 19, 3, 14, 7, 999_999 - i as u32),
                Value::Date(2001, 9, 9, 7, 16, 40, 0),
                Value::Date(1000 + i as u16, 1, 1, 0, 0, 0, 0),
                Value::Time(i % 2 == 1, 1, 2, 3, 4, 567_000),
                Value::Int(if i == 0 { 0 } else { 1901 + i }),
                Value::Double(dbl),
                Value::Float(floats[i as usize % floats.len()]),
                Value::Bytes(
                    ["12345678901234567890.0123456789", "-0.0000000001", "0E-10"][i as usize % 3]
                        .as_bytes()
                        .to_vec(),
                ),
                Value::UInt(if i == 0 { u64::MAX } else { i as u64 }),
                Value::Int(if i == 0 { i64::MIN } else { -i }),
                Value::Int(if i == 0 { -128 } else { 127 }),
                Value::Bytes(vec![(i as u8) & 0x1f]),
                Value::Bytes(vec![0xff, 0, 0x80, b'\t', b'\n', b'\\', 0, i as u8]),
                Value::Bytes(["a", "b c", ""][i as usize % 3].as_bytes().to_vec()),
                Value::Bytes(["x,z", "", "y"][i as usize % 3].as_bytes().to_vec()),
            ];
            c.exec_drop(
                format!(
                    "INSERT INTO `{src}`.fidelity (id, txt, emoji, latin, bin_blob, vbin, long_text, doc, \
                     dt, ts, ts0, d, t, y, dbl, flt, dec30, ubig, sbig, tiny, bits, bits64, e, s) \
                     VALUES ({})",
                    vec!["?"; params.len()].join(", ")
                ),
                params,
            )
            .await
            .unwrap();
        }
        // A NULL in every nullable column.
        c.exec_drop(format!("INSERT INTO `{src}`.fidelity (id) VALUES (100)"), ())
            .await
            .unwrap();
        for (a, b) in [(Some(1), Some("x")), (Some(1), Some("x")), (None, None), (Some(0), Some(""))] {
            c.exec_drop(format!("INSERT INTO `{src}`.no_pk VALUES (?, ?)"), (a, b))
                .await
                .unwrap();
        }
        c.query_drop(format!(
            "INSERT INTO `{src}`.unique_not_null VALUES ('b', 2), ('a', NULL), ('c', 3)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{src}`.`select` VALUES (1, 'x y', 2), (2, NULL, NULL)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{src}`.`my table` VALUES ('k 1', 'where\\tclause'), ('', '')"
        ))
        .await
        .unwrap();
        // A one-column table whose only value is '': an empty line in the data.
        c.query_drop(format!("INSERT INTO `{src}`.one_col VALUES (''), (NULL), ('\\\\N')"))
            .await
            .unwrap();
    });
    // The double -0.0 is stored as such (otherwise the comparison below proves nothing about it).
    let neg_zero = rows_of(rt, c, &src, "fidelity")
        .iter()
        .any(|r| matches!(r[14], Value::Double(d) if d == 0.0 && d.is_sign_negative()));

    let t0 = Instant::now();
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 2, 1024 * 1024)).expect("dump");
    let d = &dumped.dbs[&src];
    restore_db(rt, d, &src, &dst, 1, false, false).expect("restore");
    eprintln!("fidelity dump + restore: {:?}", t0.elapsed());
    assert_same_databases(rt, c, &src, &dst);
    eprintln!("-0.0 stored as negative zero by the server: {neg_zero}");

    // Warnings: the table without a primary key, not the one with a unique NOT NULL key.
    let no_pk = |t: &str| {
        dumped.warnings.contains(&format!(
            "table `{src}`.`{t}` has no primary key: row order is not guaranteed stable"
        ))
    };
    assert!(no_pk("no_pk") && no_pk("one_col"), "{:?}", dumped.warnings);
    assert!(
        !no_pk("unique_not_null") && !no_pk("fidelity"),
        "{:?}",
        dumped.warnings
    );

    // The empty table is one empty part; quoting-hungry names have readable, safe stems.
    let empty = d.tables.iter().find(|t| t.name == "empty_table").unwrap();
    assert_eq!(empty.parts, vec!["data/empty_table.000001.tsv".to_string()]);
    assert!(d.files[&empty.parts[0]].is_empty());
    assert!(d.files.contains_key("data/my%20table.000001.tsv"));
    let exp = |n: &str| d.expected.iter().find(|e| e.name == n).unwrap().rows;
    assert_eq!(exp("empty_table"), 0);
    assert_eq!(exp("fidelity"), doubles.len() as u64 + 1);
    assert_eq!(exp("one_col"), 3);

    // The data format, spelled out: NULL, '', and the literal \N differ; doubles exact.
    let one_col = &d.files["data/one_col.000001.tsv"];
    let mut lines: Vec<&[u8]> = one_col.split(|&b| b == b'\n').collect();
    lines.sort();
    assert_eq!(lines, vec![&b""[..], b"", b"\\N", b"\\\\N"]);
    let fidelity = d.tables.iter().find(|t| t.name == "fidelity").unwrap();
    assert!(
        fidelity.parts.len() >= 2,
        "the ~1.3 MiB row makes a part of its own"
    );
    let fid: String = fidelity
        .parts
        .iter()
        .map(|p| String::from_utf8_lossy(&d.files[p]).into_owned())
        .collect();
    assert!(
        fid.contains("\t1e-300\t"),
        "doubles in shortest round-trip form"
    );
    assert!(fid.contains("\t0.30000000000000004\t"));
    assert!(fid.contains("\t18446744073709551615\t"));
    assert!(fid.contains("2024-02-29 23:59:58.123456"));
}

// ---------------------------------------------------------------------------------------------
// Refusals, dry run, force

#[test]
fn restore_refuses_non_empty_database_and_dry_run_changes_nothing() {
    let mut my = MysqlFixture::new();
    let (src, dst) = (my.database("notempty"), my.database("notempty_copy"));
    let (rt, c) = my.parts();
    run_ddl(
        rt,
        c,
        &src,
        "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(20)) DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci;\n\
         CREATE TABLE u (id int PRIMARY KEY)",
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{src}`.t (v) VALUES ('a'), ('b'), ('c')"),
    );
    exec(
        rt,
        c,
        &format!("ALTER DATABASE `{src}` CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 1, 1 << 20)).expect("dump");
    let d = &dumped.dbs[&src];

    // Dry run into a missing database: a plan, and nothing created.
    let report = restore_db(rt, d, &src, &dst, 2, false, true).expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.plan[0], format!("create database {dst}"));
    for p in [
        "create table t",
        "create table u",
        "load 1 parts into t",
        "verify t: 3 rows",
    ] {
        assert!(
            report.plan.iter().any(|x| x == p),
            "{p} not in {:?}",
            report.plan
        );
    }
    let exists = strings(
        rt,
        c,
        &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{dst}'"),
    );
    assert!(exists.is_empty(), "dry run created the database");

    // A real restore creates it with the original charset and collation.
    restore_db(rt, d, &src, &dst, 2, false, false).expect("restore");
    let cs = strings(
        rt,
        c,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = '{dst}'"
        ),
    );
    assert_eq!(
        cs,
        vec![vec![
            Some("latin1".into()),
            Some("latin1_swedish_ci".into())
        ]]
    );

    // Again without --force: refused, and the data is untouched.
    exec(
        rt,
        c,
        &format!("INSERT INTO `{dst}`.t (v) VALUES ('extra')"),
    );
    match restore_db(rt, d, &src, &dst, 2, false, false) {
        Err(e @ DbError::NotEmpty { tables: 2, .. }) => {
            assert!(e.to_string().contains("--force"), "{e}");
        }
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    // Dry run on a non-empty database without force is refused too; with force it plans a drop.
    assert!(matches!(
        restore_db(rt, d, &src, &dst, 2, false, true),
        Err(DbError::NotEmpty { .. })
    ));
    let plan = restore_db(rt, d, &src, &dst, 2, true, true)
        .expect("dry run with force")
        .plan;
    assert_eq!(plan[0], format!("drop 2 tables and views in {dst}"));
    assert_eq!(
        rows_of(rt, c, &dst, "t").len(),
        4,
        "dry run changed the data"
    );

    // --force replaces the tables.
    restore_db(rt, d, &src, &dst, 2, true, false).expect("forced restore");
    assert_same_databases(rt, c, &src, &dst);
}

#[test]
fn checksum_mismatch_fails_loudly_and_drops_only_the_database_the_restore_created() {
    let mut my = MysqlFixture::new();
    let (src, dst) = (my.database("verify"), my.database("verify_copy"));
    let (rt, c) = my.parts();
    run_ddl(
        rt,
        c,
        &src,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))",
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{src}`.t VALUES (1, 'a'), (2, 'b')"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 1, 1 << 20)).expect("dump");
    let mut d = dumped.dbs[&src].clone();
    // A part altered after the manifest was written.
    let part = d.tables[0].parts[0].clone();
    d.files.insert(part, b"1\ta\n2\tB\n".to_vec());
    let exists = |c: &mut Conn| {
        !strings(
            rt,
            c,
            &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{dst}'"),
        )
        .is_empty()
    };
    let err = restore_db(rt, &d, &src, &dst, 1, false, false).expect_err("tampered");
    match &err {
        DbError::Abandoned { cause, .. } => match &**cause {
            DbError::Verify {
                table,
                rows: 2,
                expected_rows: 2,
                ..
            } => assert_eq!(table, "t"),
            other => panic!("expected Verify, got {other:?}"),
        },
        other => panic!("expected Abandoned, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "`{dst}`, which this restore had created, was dropped"
        )),
        "{msg}"
    );
    assert!(!exists(c), "the half-restored database is gone");

    // A database that existed before is never dropped: it is named as left behind.
    exec(rt, c, &format!("CREATE DATABASE `{dst}`"));
    let err = restore_db(rt, &d, &src, &dst, 1, false, false).expect_err("tampered");
    let msg = err.to_string();
    assert!(
        msg.contains("which existed before, partly restored") && msg.contains("--force"),
        "{msg}"
    );
    assert!(exists(c));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn unreachable_server_is_a_connect_error_quickly() {
    let my = MysqlFixture::new();
    let rt = my.rt();
    let conn = Connection {
        url: "mysql://root@127.0.0.1:1".into(),
        ..mysql_connection()
    };
    let t0 = Instant::now();
    let err = rt
        .block_on(mysql::dump(&conn, &DumpOptions::default()))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && !msg.contains('\n'), "{msg}");
}

#[test]
fn wrong_password_is_an_auth_error() {
    let my = MysqlFixture::new();
    let rt = my.rt();
    let conn = Connection {
        password: Some("definitely-not-the-password".into()),
        ..mysql_connection()
    };
    let err = rt
        .block_on(mysql::dump(&conn, &DumpOptions::default()))
        .unwrap_err();
    assert!(matches!(err, DbError::Auth { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("definitely-not"),
        "password leaked: {err}"
    );
}

#[test]
fn missing_database_is_reported() {
    let mut my = MysqlFixture::new();
    let missing = my.database("does_not_exist");
    let rt = my.rt();
    let err = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&missing], 1, 1 << 20),
        ))
        .unwrap_err();
    match err {
        DbError::NoDatabase { database, .. } => assert_eq!(database, missing),
        other => panic!("expected NoDatabase, got {other:?}"),
    }
}

#[test]
fn killed_connection_mid_dump_is_an_error_not_a_short_table() {
    let mut my = MysqlFixture::new();
    let db = my.database("kill");
    let (rt, c) = my.parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, payload text)",
    );
    // ~32 MiB: more than the socket buffers can hold, so the server is still sending.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 4096) FROM seq_1_to_8000"
        ),
    );
    let mut session = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&db], 1, 64 * 1024),
        ))
        .expect("dump starts");
    let stream = &mut session.databases[0].tables[0];
    let first = stream
        .parts
        .blocking_recv()
        .expect("a first part")
        .expect("ok");
    assert_eq!(first.path, "data/big.000001.tsv");

    let ids = strings(
        rt,
        c,
        &format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND (DB = '{db}' OR INFO LIKE '%`{db}`%')"
        ),
    );
    assert!(
        !ids.is_empty(),
        "the dump's connection is not in the process list"
    );
    for id in ids {
        let _ = rt.block_on(c.query_drop(format!("KILL {}", id[0].clone().unwrap())));
    }

    let mut received = first.bytes.len();
    let err = loop {
        match stream.parts.blocking_recv() {
            Some(Ok(part)) => received += part.bytes.len(),
            Some(Err(e)) => break e,
            None => panic!("the table ended without an error after {received} bytes"),
        }
    };
    assert!(matches!(err, DbError::Query { .. }), "{err:?}");
    assert!(err.to_string().contains("big"), "{err}");
    assert!(
        stream.parts.blocking_recv().is_none(),
        "the channel closes after the error"
    );
    assert!(received < 8000 * 4096, "all data arrived despite the kill");
    assert!(
        session.results.lock().unwrap().is_empty(),
        "a failed table has no result"
    );
}

/// The concatenation of a table's parts, in order.
fn table_bytes(d: &DbFiles, table: &str) -> Vec<u8> {
    let t = d
        .tables
        .iter()
        .find(|t| t.name == table)
        .expect("table dumped");
    t.parts.iter().flat_map(|p| d.files[p].clone()).collect()
}

#[test]
fn large_tables_split_into_key_ranges_dump_like_one_stream() {
    let mut my = MysqlFixture::new();
    let (db, copy) = (my.database("split"), my.database("split_copy"));
    let (rt, c) = my.parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE a_small (id int PRIMARY KEY, v varchar(10));\n\
         CREATE TABLE big (id int PRIMARY KEY, note text, d double, t datetime(3));\n\
         CREATE TABLE huge_keys (id bigint unsigned PRIMARY KEY, payload varchar(2000));\n\
         CREATE TABLE z_after (id int PRIMARY KEY, v varchar(10))",
    );
    // ~5 MiB over sparse, negative and positive keys, with escapes, NULLs and doubles.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT CAST(seq AS SIGNED) * 7 - 20000, \
             IF(seq % 13 = 0, NULL, CONCAT(REPEAT(CHAR(65 + seq % 26), 600 + seq % 300), '\\t\\n\\\\', seq)), \
             seq / 3.0e0, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_6000"
        ),
    );
    // Keys spread over the whole unsigned 64-bit range, up to its maximum.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.huge_keys SELECT seq * 6148914691236517, REPEAT('x', 1000 + seq % 7) \
             FROM seq_1_to_2999 UNION ALL SELECT 18446744073709551615, 'max' \
             UNION ALL SELECT 0, 'zero'"
        ),
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{db}`.a_small VALUES (1, 'a'), (2, NULL)"),
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{db}`.z_after VALUES (3, 'z')"),
    );
    // The split decision uses the server's size estimate: make it current.
    exec(
        rt,
        c,
        &format!("ANALYZE TABLE `{db}`.big, `{db}`.huge_keys"),
    );

    let part_bytes = 64 * 1024;
    let one = dump_all(rt, &mysql_connection(), &opts(&[&db], 1, part_bytes)).expect("jobs=1 dump");
    let split =
        dump_all(rt, &mysql_connection(), &opts(&[&db], 4, part_bytes)).expect("jobs=4 dump");
    let (one, split) = (&one.dbs[&db], &split.dbs[&db]);
    let names = |d: &DbFiles| d.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(one), ["a_small", "big", "huge_keys", "z_after"]);
    assert_eq!(names(split), names(one));
    for t in &split.tables {
        let bytes = table_bytes(split, &t.name);
        assert_eq!(bytes, table_bytes(one, &t.name), "bytes of {}", t.name);
        for (i, p) in t.parts.iter().enumerate() {
            assert_eq!(p, &format!("data/{}.{:06}.tsv", t.name, i + 1));
            let part = &split.files[p];
            assert!(
                part.len() <= part_bytes || part.iter().filter(|&&b| b == b'\n').count() == 1,
                "{p} is {} bytes",
                part.len()
            );
            assert!(
                part.is_empty() || part.ends_with(b"\n"),
                "{p} ends inside a row"
            );
        }
    }
    assert!(split.tables[1].parts.len() > 20, "big has many parts");
    let entries = |d: &DbFiles| {
        d.expected
            .iter()
            .map(|e| (e.name.clone(), e.rows, e.checksum.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(entries(split), entries(one));
    assert!(entries(split).contains(&("big".to_string(), 6000, entries(one)[1].2.clone())));
    assert!(entries(split)
        .iter()
        .any(|e| e.0 == "huge_keys" && e.1 == 3001));

    let report = restore_db(rt, split, &db, &copy, 4, false, false).expect("restore");
    assert_eq!(report.tables.len(), 4);
    assert_eq!(assert_same_databases(rt, c, &db, &copy), 6000 + 3001 + 3);
}

#[test]
fn killed_connection_in_a_key_range_is_an_error_not_a_short_table() {
    let mut my = MysqlFixture::new();
    let db = my.database("killsplit");
    let (rt, c) = my.parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, payload text)",
    );
    // ~32 MiB in 4 ranges of ~8 MiB: each more than the socket buffers and channels can hold.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 4096) FROM seq_1_to_8000"
        ),
    );
    exec(rt, c, &format!("ANALYZE TABLE `{db}`.big"));
    let mut session = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&db], 4, 64 * 1024),
        ))
        .expect("dump starts");
    let stream = &mut session.databases[0].tables[0];
    let first = stream
        .parts
        .blocking_recv()
        .expect("a first part")
        .expect("ok");
    assert_eq!(first.path, "data/big.000001.tsv");

    // The ranges are read concurrently: give the later ones time to start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let ids = strings(
            rt,
            c,
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND INFO LIKE '%`{db}`.`big` WHERE%'"
            ),
        );
        if ids.len() >= 4 || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ids.len(), 4, "the table is read as 4 concurrent key ranges");
    // Kill the last range only: the first ranges complete, and the table must still fail.
    let last = ids
        .iter()
        .map(|r| r[0].clone().unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    let _ = rt.block_on(c.query_drop(format!("KILL {last}")));

    let mut received = first.bytes.len();
    let err = loop {
        match stream.parts.blocking_recv() {
            Some(Ok(part)) => received += part.bytes.len(),
            Some(Err(e)) => break e,
            None => panic!("the table ended without an error after {received} bytes"),
        }
    };
    assert!(matches!(err, DbError::Query { .. }), "{err:?}");
    assert!(err.to_string().contains("big"), "{err}");
    assert!(
        stream.parts.blocking_recv().is_none(),
        "the channel closes after the error"
    );
    assert!(received < 8000 * 4096, "all data arrived despite the kill");
    assert!(
        session.results.lock().unwrap().is_empty(),
        "a failed table has no result"
    );
}

#[test]
fn without_reload_privilege_falls_back_to_one_connection() {
    let mut my = MysqlFixture::new();
    let db = my.database("noreload");
    let user = my.user("noreload");
    let (rt, c) = my.parts();
    run_ddl(rt, c, &db, "CREATE TABLE t (id int PRIMARY KEY)");
    exec(rt, c, &format!("INSERT INTO `{db}`.t VALUES (1), (2)"));
    let _ = rt.block_on(c.query_drop(format!("DROP USER IF EXISTS '{user}'@'%'")));
    exec(
        rt,
        c,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'kfg-pw'"),
    );
    exec(rt, c, &format!("GRANT ALL ON `{db}`.* TO '{user}'@'%'"));

    let o = Opts::from_url(&mysql_url()).unwrap();
    let conn = Connection {
        url: format!("mysql://{user}@{}:{}", o.ip_or_hostname(), o.tcp_port()),
        password: Some("kfg-pw".into()),
        ..mysql_connection()
    };
    let dumped = dump_all(rt, &conn, &opts(&[&db], 4, 1 << 20)).expect("dump");
    assert_eq!(
        dumped.consistency.get("mode").map(String::as_str),
        Some("single-connection")
    );
    assert!(
        dumped
            .warnings
            .iter()
            .any(|w| w.contains("FLUSH TABLES WITH READ LOCK")),
        "{:?}",
        dumped.warnings
    );
    assert_eq!(dumped.dbs[&db].expected[0].rows, 2);

    // A wrong password for an account that has one.
    let bad = Connection {
        password: Some("wrong".into()),
        ..conn
    };
    assert!(matches!(
        rt.block_on(mysql::dump(&bad, &DumpOptions::default())),
        Err(DbError::Auth { .. })
    ));
}

#[test]
fn routines_and_events_are_warned_about() {
    let mut my = MysqlFixture::new();
    let db = my.database("routines");
    let (rt, c) = my.parts();
    run_ddl(rt, c, &db, "CREATE TABLE t (id int PRIMARY KEY)");
    exec(
        rt,
        c,
        &format!("CREATE PROCEDURE `{db}`.cleanup() BEGIN DELETE FROM t; END"),
    );
    exec(
        rt,
        c,
        &format!("CREATE FUNCTION `{db}`.two() RETURNS int DETERMINISTIC RETURN 2"),
    );
    exec(
        rt,
        c,
        &format!("CREATE EVENT `{db}`.nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&db], 1, 1 << 20)).expect("dump");
    let mine: BTreeSet<&String> = dumped.warnings.iter().filter(|w| w.contains(&db)).collect();
    let expect = [
        format!("stored procedure `{db}`.`cleanup` not captured"),
        format!("stored function `{db}`.`two` not captured"),
        format!("event `{db}`.`nightly` not captured"),
    ];
    for e in &expect {
        assert!(mine.contains(e), "{e} not in {mine:?}");
    }
}
