//! A KFP-like install, `mlpipeline` and an ML-Metadata `metadb`, dumped in parts and restored
//! with its views and triggers; its schema replays through the stock `mysql` client.

use super::*;

const MLPIPELINE: &str = r"
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
";

const METADB: &str = r"
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
";

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
                .map(|(i, n)| (n.to_string(), Some("0.0.1"), i32::from(i >= 2), None::<String>).into_params()),
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
                        (k == 1).then_some(f64::from(a) / 3.0),
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
    let mut my = Db::mysql();
    let (mlp, meta) = (my.mysql_name("mlpipeline"), my.mysql_name("metadb"));
    let (mlp2, meta2, cli) = (
        my.mysql_name("mlpipeline_copy"),
        my.mysql_name("metadb_copy"),
        my.mysql_name("mlpipeline_cli"),
    );
    let (rt, c) = my.mysql_parts();
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
