//! Runbooks against the data: `db::` on the real MariaDB and PostgreSQL, `bucket::` on the S3
//! server, `snapshot::`, `backup::` and `restore::` on a real repository, and what a dry run of
//! data and cluster changes sends and writes (nothing but `dryRun` requests).

use serde_json::{json, Value};

use crate::common;
use common::runbook::{output, planned, sources, step, workspace};

use common::db::{mysql_exec, mysql_rows, pg_exec, Db};
use common::kube::standin;
use common::{code, stderr, Kf};

/// Runs `script` as `rb/NAME.rhai` with `--output json`: the exit code, the report, stderr.
fn run(kf: &Kf, name: &str, script: &str, args: &[&str]) -> (i32, Value, String) {
    let file = format!("rb/{name}.rhai");
    kf.write(&file, script);
    let mut all = vec!["--output", "json", "runbook", "run", file.as_str()];
    all.extend_from_slice(args);
    let out = kf.run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, stderr(&out))
}

/// A small `runs` table on MariaDB: id, state, score, a NULL.
fn seed_mysql(db: &str) {
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(db),
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, state varchar(32) NOT NULL, score double, cost decimal(10,2), note text, day date)",
            "INSERT INTO runs VALUES (1, 'Succeeded', 0.5, 1.25, NULL, '2026-01-02'), (2, 'Failed', NULL, 0.10, 'oom', NULL), (3, 'Running', 2, 3.00, '', '2026-12-31')",
        ],
    );
}

/// The same `runs` table on PostgreSQL, with a boolean.
fn seed_pg(db: &str) {
    pg_exec(
        db,
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL, done boolean, score float8, cost numeric(10,2))",
            "INSERT INTO runs VALUES (1, 'Succeeded', true, 0.5, 1.25), (2, 'Failed', false, NULL, 0.10), (3, 'Running', NULL, 2, 3.00)",
        ],
    );
}

/// The test S3 server, through the same client settings kfguard uses.
struct S3 {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

impl S3 {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(common::s3_client());
        Self { rt, client }
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body.to_vec().into())
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self
            .rt
            .block_on(self.client.list_objects_v2().bucket(bucket).send())
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

/// A bucket with two pipeline specs and an artifact.
fn seed_bucket(s3: &S3, bucket: &str) {
    common::create_bucket(bucket);
    s3.put(bucket, "pipelines/p1.yaml", b"spec: one\n");
    s3.put(bucket, "pipelines/p2.yaml", b"spec: two, longer\n");
    s3.put(bucket, "v2/artifacts/model.bin", &[0u8, 1, 2, 255]);
}

#[test]
fn db_ping_and_query_read_both_engines_with_typed_cells_and_a_row_limit() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbq");
    let pg = fx.pg_database("rbq");
    seed_mysql(&my);
    seed_pg(&pg);
    let kf = workspace();
    sources(&kf, Some(&my), Some(&pg), None);
    let script = format!(
        r#"
step("ping", || #{{ kfp: db::ping("kfp"), pg: db::ping("pg") }});
step("mysql", || db::query("kfp", "{my}", "SELECT id, state, score, cost, note, day FROM runs ORDER BY id"));
step("postgres", || db::query("pg", "{pg}", "-- the runs\nSELECT id, state, done, score, cost FROM runs ORDER BY id"));
step("limited", || db::query("pg", "{pg}", "SELECT id FROM runs ORDER BY id", #{{ limit: 2 }}).map(|r| r.id));
step("show", || db::query("kfp", "{my}", "SHOW TABLES").len());
"#
    );
    let (code, report, err) = run(&kf, "query", &script, &[]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let ping = output(&report, "ping");
    assert_eq!(ping["kfp"]["engine"], "MySQL");
    assert!(
        ping["kfp"]["server_version"]
            .as_str()
            .unwrap()
            .contains("MariaDB"),
        "{ping}"
    );
    assert_eq!(ping["pg"]["engine"], "PostgreSQL");
    assert!(ping["pg"]["latency_ms"].is_u64(), "{ping}");
    assert_eq!(
        output(&report, "mysql"),
        &json!([
            {"id": 1, "state": "Succeeded", "score": 0.5, "cost": "1.25", "note": null, "day": "2026-01-02"},
            {"id": 2, "state": "Failed", "score": null, "cost": "0.10", "note": "oom", "day": null},
            {"id": 3, "state": "Running", "score": 2.0, "cost": "3.00", "note": "", "day": "2026-12-31"},
        ])
    );
    assert_eq!(
        output(&report, "postgres"),
        &json!([
            {"id": 1, "state": "Succeeded", "done": true, "score": 0.5, "cost": "1.25"},
            {"id": 2, "state": "Failed", "done": false, "score": null, "cost": "0.10"},
            {"id": 3, "state": "Running", "done": null, "score": 2.0, "cost": "3.00"},
        ])
    );
    // Cut at the limit, and the journal says so.
    assert_eq!(output(&report, "limited"), &json!([1, 2]));
    let said = step(&report, "limited")["messages"].to_string();
    assert!(said.contains("more than 2 rows"), "{said}");
    assert_eq!(output(&report, "show"), 1);
}

#[test]
fn db_query_refuses_writes_and_the_rows_stay_as_they_were() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbw");
    let pg = fx.pg_database("rbw");
    seed_mysql(&my);
    seed_pg(&pg);
    // A function that writes: only the server's read-only transaction can stop it.
    mysql_exec(
        Some(&my),
        &["CREATE FUNCTION bump() RETURNS int MODIFIES SQL DATA BEGIN UPDATE runs SET state = 'bumped'; RETURN 1; END"],
    );
    let kf = workspace();
    sources(&kf, Some(&my), Some(&pg), None);
    let before_my = mysql_rows(&my, "SELECT * FROM runs ORDER BY id");
    let before_pg = fx.pg_sql(&pg, "SELECT * FROM runs ORDER BY id");
    for (name, source, database, sql, expect) in [
        (
            "update",
            "kfp",
            my.as_str(),
            "UPDATE runs SET state = 'x'",
            "`UPDATE` does not read",
        ),
        (
            "function",
            "kfp",
            my.as_str(),
            "SELECT bump()",
            "the server refused it in the read-only transaction",
        ),
        (
            "insert",
            "pg",
            pg.as_str(),
            "INSERT INTO runs VALUES (9, 'x', true, 1, 1)",
            "`INSERT` does not read",
        ),
        (
            "cte",
            "pg",
            pg.as_str(),
            "WITH gone AS (DELETE FROM runs RETURNING id) SELECT * FROM gone",
            "the server refused it in the read-only transaction",
        ),
        (
            "ddl",
            "kfp",
            my.as_str(),
            "DROP TABLE runs",
            "`DROP` does not read",
        ),
    ] {
        let script =
            format!("step(\"write\", || db::query(\"{source}\", \"{database}\", \"{sql}\"));");
        let (code, report, err) = run(&kf, name, &script, &[]);
        assert_eq!(code, 1, "{name}: {err}\n{report:#}");
        let error = step(&report, "write")["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(expect), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: one line: {error}");
    }
    assert_eq!(mysql_rows(&my, "SELECT * FROM runs ORDER BY id"), before_my);
    assert_eq!(fx.pg_sql(&pg, "SELECT * FROM runs ORDER BY id"), before_pg);
}

#[test]
fn db_query_refuses_a_second_statement_and_the_table_is_still_there() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbm");
    let pg = fx.pg_database("rbm");
    seed_mysql(&my);
    seed_pg(&pg);
    let kf = workspace();
    sources(&kf, Some(&my), Some(&pg), None);
    for (name, source, database) in [("my", "kfp", my.as_str()), ("pg", "pg", pg.as_str())] {
        let script = format!(
            "step(\"two\", || db::query(\"{source}\", \"{database}\", \"SELECT 1; DROP TABLE runs\"));"
        );
        let (code, report, err) = run(&kf, name, &script, &[]);
        assert_eq!(code, 1, "{name}: {err}");
        let error = step(&report, "two")["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("it holds 2 statements") && error.contains("one statement per query"),
            "{name}: {error}"
        );
    }
    // MariaDB runs the inside of an executable comment, which the splitter reads as a comment.
    let script = format!(
        "step(\"hidden\", || db::query(\"kfp\", \"{my}\", \"SELECT 1 /*M!100000 ; DROP TABLE runs */\"));"
    );
    let (code, report, err) = run(&kf, "hidden", &script, &[]);
    assert_eq!(code, 1, "{err}");
    let error = step(&report, "hidden")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("executable comment"), "{error}");
    assert_eq!(
        mysql_rows(&my, "SELECT COUNT(*) FROM runs")[0][0],
        Some(b"3".to_vec())
    );
    assert_eq!(
        fx.pg_sql(&pg, "SELECT COUNT(*) FROM runs")[0][0].as_deref(),
        Some("3")
    );
}

#[test]
fn bucket_list_and_exists_see_the_seeded_objects() {
    let s3 = S3::new();
    let bucket = common::unique_bucket("rbb");
    seed_bucket(&s3, &bucket);
    let kf = workspace();
    sources(&kf, None, None, Some(&bucket));
    let script = r#"
step("specs", || bucket::list("art", "pipelines/"));
step("first", || bucket::list("art", "", #{ limit: 2 }).map(|o| o.key));
step("exists", || [bucket::exists("art", "v2/artifacts/model.bin"), bucket::exists("art", "pipelines/p3.yaml")]);
step("unknown", || bucket::list("nope", ""));
"#;
    let (code, report, err) = run(&kf, "buckets", script, &[]);
    assert_eq!(code, 1, "{err}\n{report:#}");
    let specs = output(&report, "specs").as_array().unwrap().clone();
    let keys: Vec<(&str, u64)> = specs
        .iter()
        .map(|o| (o["key"].as_str().unwrap(), o["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys, [("pipelines/p1.yaml", 10), ("pipelines/p2.yaml", 18)]);
    let etag = specs[0]["etag"].as_str().unwrap();
    assert!(etag.len() == 32 && !etag.contains('"'), "{etag}");
    assert_eq!(
        output(&report, "first"),
        &json!(["pipelines/p1.yaml", "pipelines/p2.yaml"])
    );
    assert!(step(&report, "first")["messages"]
        .to_string()
        .contains("more than 2 objects"));
    assert_eq!(output(&report, "exists"), &json!([true, false]));
    let unknown = step(&report, "unknown")["error"].as_str().unwrap();
    assert!(
        unknown.contains("no [[buckets]] source `nope`") && unknown.contains("art"),
        "{unknown}"
    );
}

#[test]
fn snapshot_functions_see_the_backup_kfguard_took() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbs");
    seed_mysql(&my);
    let kf = workspace();
    sources(&kf, Some(&my), None, None);
    kf.ok(&["init"]);
    let script = r#"
step("snapshots", || #{ list: snapshot::list(), latest: snapshot::latest() });
step("show", || snapshot::show("latest"));
step("check", || snapshot::check());
step("check data", || snapshot::check(#{ read_data: "all" }).ok);
"#;
    // Before any backup there is no latest.
    let (code, report, err) = run(
        &kf,
        "empty",
        "step(\"latest\", || snapshot::latest());",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(output(&report, "latest"), &Value::Null);

    kf.ok(&["backup", "--only", "databases", "--tag", "nightly"]);
    let listed = kf.json(&["snapshots"]);
    let (code, report, err) = run(&kf, "snaps", script, &[]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let snaps = output(&report, "snapshots");
    assert_eq!(snaps["list"].as_array().unwrap().len(), 1, "{snaps:#}");
    let id = listed[0]["id"].as_str().unwrap();
    assert_eq!(snaps["list"][0]["id"], id);
    assert_eq!(snaps["list"][0]["tags"], json!(["nightly"]));
    assert_eq!(snaps["list"][0]["parts"], json!(["databases"]));
    assert_eq!(snaps["latest"]["id"], id);
    let shown = output(&report, "show");
    let cli = kf.json(&["show", "latest"]);
    assert_eq!(
        shown, &cli,
        "snapshot::show is `kfguard show --output json`"
    );
    assert_eq!(shown["manifest"]["databases"][0]["database"], my.as_str());
    let check = output(&report, "check");
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["read_data"], "none");
    assert_eq!(check["errors"], json!([]));
    assert_eq!(output(&report, "check data"), true);
}

#[test]
fn a_runbooks_backup_is_a_snapshot_that_kfguard_lists() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbk");
    seed_mysql(&my);
    let kf = workspace();
    sources(&kf, Some(&my), None, None);
    kf.ok(&["init"]);
    let script = r#"
step("backup", || {
    let b = backup::run(#{ only: ["databases"], tags: ["from-runbook"] });
    #{ id: b.id, tables: b.manifest.databases[0].tables.len() }
});
"#;
    // A dry run reads the database and writes no snapshot.
    let (code, report, err) = run(&kf, "backup", script, &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    assert_eq!(output(&report, "backup"), &json!({"id": null, "tables": 1}));
    assert_eq!(
        planned(&report),
        ["back up databases into a new snapshot tagged from-runbook"]
    );
    assert_eq!(kf.json(&["snapshots"]), json!([]));

    let (code, report, err) = run(&kf, "backup", script, &[]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let id = output(&report, "backup")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = kf.json(&["snapshots"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["tags"], json!(["from-runbook"]));
    assert_eq!(listed[0]["scope"], "databases");
}

const CLUSTER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ml-pipeline-scheduledworkflow, namespace: kubeflow}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: swf}}\n  template:\n    metadata: {labels: {app: swf}}\n    spec: {containers: [{name: main, image: x}]}\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stale, namespace: kubeflow}\n";

#[test]
fn a_dry_run_of_cluster_database_and_bucket_changes_plans_each_and_makes_none() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbd");
    seed_mysql(&my);
    let s3 = S3::new();
    let bucket = common::unique_bucket("rbd");
    seed_bucket(&s3, &bucket);
    let kf = workspace();
    sources(&kf, Some(&my), None, Some(&bucket));
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases,buckets"]);
    // After the backup the live data moves on: a restore over it would change it back.
    mysql_exec(
        Some(&my),
        &["UPDATE runs SET state = 'after-backup' WHERE id = 1"],
    );
    s3.put(&bucket, "pipelines/p1.yaml", b"spec: changed since\n");
    let rows = mysql_rows(&my, "SELECT * FROM runs ORDER BY id");
    let checksum = mysql_rows(&my, "CHECKSUM TABLE runs");
    let objects: Vec<(String, Vec<u8>)> = s3
        .keys(&bucket)
        .into_iter()
        .map(|k| {
            let body = s3.get(&bucket, &k);
            (k, body)
        })
        .collect();

    let (server, kubeconfig) = standin(&kf, "c");
    server.seed_yaml(CLUSTER).unwrap();
    server.clear_requests();
    let script = r#"
step("scale down", || kube::scale("Deployment", "kubeflow", "ml-pipeline-scheduledworkflow", 0));
step("apply", || kube::apply(#{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "kfguard-note", namespace: "kubeflow" }, data: #{ restored: "yes" } }));
step("delete", || kube::delete("ConfigMap", "kubeflow", "stale"));
step("restore dbs", || restore::databases(#{ databases: ["kfp"], force: true }).changes);
step("restore buckets", || restore::buckets(#{ existing: "overwrite" }).changes);
"#;
    let (code, report, err) = run(
        &kf,
        "everything",
        script,
        &["--kubeconfig", kubeconfig.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, 0, "{err}\n{report:#}");

    // The cluster: every write went as a dry run.
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter(|r| !r.path.contains("accessreviews"))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert!(writes.iter().all(|r| r.dry_run), "{writes:#?}");
    // The database and the bucket: unchanged.
    assert_eq!(mysql_rows(&my, "SELECT * FROM runs ORDER BY id"), rows);
    assert_eq!(mysql_rows(&my, "CHECKSUM TABLE runs"), checksum);
    for (key, body) in &objects {
        assert_eq!(&s3.get(&bucket, key), body, "{key}");
    }
    assert_eq!(s3.keys(&bucket).len(), objects.len());
    // The plan names each change, grouped by step.
    assert_eq!(
        planned(&report),
        [
            "scale Deployment kubeflow/ml-pipeline-scheduledworkflow to 0".to_string(),
            "apply ConfigMap kubeflow/kfguard-note (new)".to_string(),
            "delete ConfigMap kubeflow/stale".to_string(),
            "restore databases from snapshot latest, databases kfp".to_string(),
            format!("restore database {my} into {my}"),
            "restore buckets from snapshot latest".to_string(),
            format!("restore bucket art/{bucket} into {bucket}: upload 3 objects (32 bytes), skip 0, overwrite 3"),
        ]
    );
    assert_eq!(
        step(&report, "restore dbs")["planned"][1],
        format!("restore database {my} into {my}").as_str()
    );
}

#[test]
fn a_runbook_restores_a_database_and_a_bucket_under_new_names_and_they_match() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("rbr");
    let into = fx.mysql_name("rbr_new");
    seed_mysql(&my);
    let s3 = S3::new();
    let bucket = common::unique_bucket("rbr");
    let restored = common::unique_bucket("rbr-new");
    seed_bucket(&s3, &bucket);
    common::create_bucket(&restored);
    let kf = workspace();
    sources(&kf, Some(&my), None, Some(&bucket));
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases,buckets"]);
    let script = format!(
        r#"
let plan = restore::plan(#{{ only: ["databases"], databases: ["kfp/{my}"], into: "{into}" }});
step("restore db", || restore::databases(#{{ databases: ["kfp/{my}"], into: "{into}" }}).databases[0].target);
step("restore bucket", || restore::buckets(#{{ buckets: ["art"], into: "{restored}" }}).buckets[0].objects);
step("plan", || plan.changes);
step("unknown option", || restore::databases(#{{ databse: "x" }}));
"#
    );
    let (code, report, err) = run(&kf, "restore", &script, &[]);
    assert_eq!(code, 1, "{err}\n{report:#}");
    assert_eq!(output(&report, "restore db"), into.as_str());
    assert_eq!(output(&report, "restore bucket"), 3);
    assert_eq!(
        output(&report, "plan"),
        &json!([format!("restore database {my} into {into}")])
    );
    let unknown = step(&report, "unknown option")["error"].as_str().unwrap();
    assert!(
        unknown.contains("restore::databases: unknown option `databse`"),
        "{unknown}"
    );
    for sql in ["SELECT * FROM runs ORDER BY id", "CHECKSUM TABLE runs"] {
        let (a, b) = (mysql_rows(&my, sql), mysql_rows(&into, sql));
        if sql.starts_with("CHECKSUM") {
            assert_eq!(a[0][1], b[0][1], "{sql}");
        } else {
            assert_eq!(a, b, "{sql}");
        }
    }
    let mut keys = s3.keys(&restored);
    keys.sort();
    assert_eq!(keys, s3.keys(&bucket));
    for key in &keys {
        assert_eq!(s3.get(&restored, key), s3.get(&bucket, key), "{key}");
    }
}
