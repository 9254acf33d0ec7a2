//! The shipped operations runbooks, run as an operator runs them: `nightly` on a real MariaDB,
//! an S3 bucket and a repository; `reconcile-crds` and `restore-workflows` on the stand-in.

use std::path::Path;

use serde_json::{json, Value};

use crate::common;
use crate::restic_interop::{restic_cmd, restic_ok};
use common::runbook::{crd, output, planned, sources, step, workspace};

use common::db::{self, mysql_exec, mysql_rows, Db};
use common::kube::standin;
use common::{code, stderr, Kf};

const NIGHTLY: &str = include_str!("../../runbooks/nightly.rhai");
const RECONCILE_CRDS: &str = include_str!("../../runbooks/reconcile-crds.rhai");
const RESTORE_WORKFLOWS: &str = include_str!("../../runbooks/restore-workflows.rhai");

/// Runs the shipped runbook `script` as `rb/NAME.rhai` with `--output json`, after `global`
/// flags: the exit code, the report, stderr.
fn run(kf: &Kf, global: &[&str], name: &str, script: &str, args: &[&str]) -> (i32, Value, String) {
    let file = format!("rb/{name}.rhai");
    kf.write(&file, script);
    let mut all = global.to_vec();
    all.extend(["--output", "json", "runbook", "run", file.as_str()]);
    all.extend_from_slice(args);
    let out = kf.run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, stderr(&out))
}

/// A config with the MariaDB source `kfp` holding `database`, and the bucket source `art`
/// when given.
fn config(kf: &Kf, database: &str, bucket: Option<&str>) {
    sources(kf, Some(database), None, bucket);
}

/// A small `runs` table: three rows, one of them `Failed`.
fn seed_mysql(database: &str) {
    mysql_exec(None, &[&format!("CREATE DATABASE `{database}`")]);
    mysql_exec(
        Some(database),
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, state varchar(32) NOT NULL, score double)",
            "INSERT INTO runs VALUES (1, 'Succeeded', 0.5), (2, 'Failed', NULL), (3, 'Running', 2)",
        ],
    );
}

/// A bucket with three objects, put through the client settings kfguard uses.
fn seed_bucket(bucket: &str) {
    common::create_bucket(bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = common::s3_client().await;
        for (key, body) in [
            ("pipelines/p1.yaml", &b"spec: one\n"[..]),
            ("pipelines/p2.yaml", b"spec: two, longer\n"),
            ("v2/artifacts/model.bin", &[0u8, 1, 2, 255]),
        ] {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.to_vec().into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        }
    });
}

/// Whether MariaDB has a database named `name`.
fn mysql_has(any_db: &str, name: &str) -> bool {
    !mysql_rows(
        any_db,
        &format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
        ),
    )
    .is_empty()
}

#[test]
fn nightly_backs_up_checks_restores_into_scratch_forgets_and_reports_its_numbers() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("nightly");
    seed_mysql(&my);
    let bucket = common::unique_bucket("nightly");
    seed_bucket(&bucket);
    let kf = workspace();
    config(&kf, &my, Some(&bucket));
    kf.ok(&["init"]);
    // Yesterday's snapshot, which keep_last=1 lets go.
    kf.ok(&["backup"]);
    let (code, report, err) = run(&kf, &[], "nightly", NIGHTLY, &["--set", "keep_last=1"]);
    assert_eq!(code, 0, "{err}\n{report:#}");

    let backup = output(&report, "backup");
    let id = backup["id"].as_str().expect("a snapshot id").to_string();
    let check = output(&report, "check");
    let subset = check["read_data"].as_str().unwrap();
    assert!(subset.ends_with("/7"), "{check}");
    assert_eq!(check["errors"], 0);
    let restored = output(&report, "restore test");
    assert_eq!(restored["databases"], json!([format!("kfp/{my}")]));
    assert_eq!(restored["verified"], json!({"tables": 1, "rows": 3}));
    // The scratch database is gone again, and the source untouched.
    let scratch = format!("kfguard_restore_test_{my}");
    assert!(!mysql_has(&my, &scratch), "{scratch} was left behind");
    assert_eq!(
        mysql_rows(&my, "SELECT COUNT(*) FROM runs")[0][0].as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        output(&report, "retention"),
        &json!({"kept": 1, "removed": 1, "bytes_pruned": output(&report, "retention")["bytes_pruned"]})
    );
    let listed = kf.json(&["snapshots"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["id"], id.as_str());

    let metrics = output(&report, "metrics");
    assert_eq!(metrics["snapshot"], id.as_str());
    assert_eq!(metrics["databases"], 1);
    assert_eq!(metrics["tables"], 1);
    assert_eq!(metrics["rows"], 3);
    assert_eq!(metrics["objects"], 3);
    assert_eq!(metrics["bucket_bytes"], 32);
    assert_eq!(metrics["snapshots_removed"], 1);
    assert_eq!(metrics["check_read_data"], subset);
    assert!(
        metrics["bytes_processed"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert!(metrics["bytes_added"].is_u64(), "{metrics}");
    assert!(metrics["duration_seconds"].is_u64(), "{metrics}");
}

#[test]
fn a_dry_run_of_nightly_plans_the_backup_and_the_retention_and_writes_nothing() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("nightly_dry");
    seed_mysql(&my);
    let kf = workspace();
    config(&kf, &my, None);
    kf.ok(&["init"]);
    kf.ok(&["backup"]);
    let (code, report, err) = run(
        &kf,
        &[],
        "nightly",
        NIGHTLY,
        &["--dry-run", "--set", "keep_last=1"],
    );
    assert_eq!(code, 0, "{err}\n{report:#}");
    let plan = planned(&report);
    assert_eq!(
        plan[0], "back up databases into a new snapshot",
        "{plan:#?}"
    );
    assert!(
        plan.contains(&"forget snapshots by the retention policy, and prune".to_string()),
        "{plan:#?}"
    );
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 1);
    assert!(!mysql_has(&my, &format!("kfguard_restore_test_{my}")));
}

/// Rewrites the latest snapshot as an attacker or a bad disk would, through stock restic: the
/// same manifest, a table's data file changed. The new snapshot is the latest.
fn tamper_latest(kf: &Kf, table_file_prefix: &str) {
    let repo = kf.repo.clone();
    let snaps: Value =
        serde_json::from_slice(&restic_ok(kf, &repo, &["snapshots", "--json"])).unwrap();
    let latest = snaps.as_array().unwrap().last().unwrap().clone();
    let tree = kf.path().join("tampered");
    restic_ok(
        kf,
        &repo,
        &[
            "restore",
            latest["id"].as_str().unwrap(),
            "--target",
            tree.to_str().unwrap(),
        ],
    );
    let data = find(&tree, table_file_prefix).expect("the table's data file in the snapshot");
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(text.contains("Failed"), "{text}");
    std::fs::write(&data, text.replace("Failed", "Passed")).unwrap();
    let mut backup = restic_cmd(kf, &repo);
    backup
        .current_dir(&tree)
        .args(["backup", "--host", latest["hostname"].as_str().unwrap()]);
    for tag in latest["tags"].as_array().unwrap() {
        backup.args(["--tag", tag.as_str().unwrap()]);
    }
    let out = backup.arg(".").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find(dir: &Path, prefix: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(p) = find(&path, prefix) {
                return Some(p);
            }
        } else if path.file_name()?.to_str()?.starts_with(prefix) {
            return Some(path);
        }
    }
    None
}

#[test]
fn nightlys_restore_test_fails_loudly_and_names_the_table_tampered_with_in_the_repository() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("nightly_bad");
    seed_mysql(&my);
    let kf = workspace();
    config(&kf, &my, None);
    kf.ok(&["init"]);
    kf.ok(&["backup"]);
    tamper_latest(&kf, "runs.");
    // backup=false: the nightly tests the latest snapshot, the tampered one.
    let (code, report, err) = run(
        &kf,
        &[],
        "nightly",
        NIGHTLY,
        &["--set", "backup=false", "--set", "keep_last=5"],
    );
    assert_eq!(code, 1, "{err}\n{report:#}");
    let failed = step(&report, "restore test");
    assert_eq!(failed["outcome"], "failed", "{report:#}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("`runs` does not match the snapshot"),
        "{error}"
    );
    assert_eq!(step(&report, "retention")["outcome"], "skipped");
    // The half-restored scratch database was dropped, and the source left as it was.
    assert!(!mysql_has(&my, &format!("kfguard_restore_test_{my}")));
    assert_eq!(
        mysql_rows(&my, "SELECT state FROM runs WHERE id = 2")[0][0].as_deref(),
        Some(&b"Failed"[..])
    );
}

#[test]
fn db_drop_scratch_refuses_a_database_without_the_scratch_prefix() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("keep");
    seed_mysql(&my);
    let kf = workspace();
    config(&kf, &my, None);
    let script = format!(r#"step("drop", || db::drop_scratch("kfp", "{my}"));"#);
    let (code, report, err) = run(&kf, &[], "drop", &script, &[]);
    assert_eq!(code, 1, "{err}\n{report:#}");
    let error = step(&report, "drop")["error"].as_str().unwrap();
    assert!(error.contains("only scratch databases"), "{error}");
    assert!(mysql_has(&my, &my));
}

/// A live cluster whose notebooks CRD is a version behind and whose profiles CRD is gone,
/// and the pinned file that says how they should be.
fn drifted(kf: &Kf) -> (kube_standin::Server, std::path::PathBuf) {
    let (server, cfg) = standin(kf, "c");
    server
        .seed_yaml(
            &[
                crd(
                    "argoproj.io",
                    "workflows",
                    "Workflow",
                    "v1alpha1",
                    "Namespaced",
                ),
                crd(
                    "kubeflow.org",
                    "notebooks",
                    "Notebook",
                    "v1beta1",
                    "Namespaced",
                ),
            ]
            .concat(),
        )
        .unwrap();
    kf.write(
        "rb/pinned/crds.yaml",
        &[
            crd("kubeflow.org", "profiles", "Profile", "v1", "Cluster"),
            crd(
                "argoproj.io",
                "workflows",
                "Workflow",
                "v1alpha1",
                "Namespaced",
            ),
            crd("kubeflow.org", "notebooks", "Notebook", "v1", "Namespaced"),
        ]
        .concat(),
    );
    (server, cfg)
}

fn crd_versions(server: &kube_standin::Server) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = server
        .list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                c["spec"]["versions"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_dry_run_of_reconcile_crds_shows_the_diff_plans_each_crd_and_changes_nothing() {
    let kf = Kf::local();
    let (server, cfg) = drifted(&kf);
    let before = crd_versions(&server);
    server.clear_requests();
    let global = ["--kubeconfig", cfg.to_str().unwrap()];
    let set = ["--dry-run", "--set", "crds=pinned/crds.yaml"];
    let (code, report, err) = run(&kf, &global, "reconcile-crds", RECONCILE_CRDS, &set);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let diff = output(&report, "diff");
    assert_eq!(diff["missing"], json!(["profiles.kubeflow.org"]));
    assert_eq!(diff["changed"], json!(["notebooks.kubeflow.org"]));
    assert!(
        diff["text"]
            .as_str()
            .unwrap()
            .contains("notebooks.kubeflow.org"),
        "{diff}"
    );
    assert_eq!(
        planned(&report),
        [
            "apply CustomResourceDefinition notebooks.kubeflow.org",
            "apply CustomResourceDefinition profiles.kubeflow.org",
            "wait for CustomResourceDefinition profiles.kubeflow.org to be Established",
            "wait for CustomResourceDefinition notebooks.kubeflow.org to be Established",
        ]
    );
    assert_eq!(crd_versions(&server), before);
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .collect();
    assert!(writes.iter().all(|r| r.dry_run), "{writes:#?}");
}

#[test]
fn reconcile_crds_with_yes_applies_the_pinned_crds_and_a_second_diff_is_empty() {
    let kf = Kf::local();
    let (server, cfg) = drifted(&kf);
    let global = ["--kubeconfig", cfg.to_str().unwrap()];
    let set = ["--yes", "--set", "crds=pinned/crds.yaml"];
    let (code, report, err) = run(&kf, &global, "reconcile-crds", RECONCILE_CRDS, &set);
    assert_eq!(code, 0, "{err}\n{report:#}");
    assert_eq!(output(&report, "established"), &json!({"applied": 2}));
    assert_eq!(
        crd_versions(&server),
        [
            ("notebooks.kubeflow.org".to_string(), "v1".to_string()),
            ("profiles.kubeflow.org".to_string(), "v1".to_string()),
            ("workflows.argoproj.io".to_string(), "v1alpha1".to_string()),
        ]
    );
    let (code, again, err) = run(&kf, &global, "reconcile-crds", RECONCILE_CRDS, &set);
    assert_eq!(code, 0, "{err}\n{again:#}");
    let diff = output(&again, "diff");
    assert_eq!(diff["missing"], json!([]), "{diff}");
    assert_eq!(diff["changed"], json!([]), "{diff}");
    assert_eq!(output(&again, "apply"), &json!([]));
}

#[test]
fn reconcile_crds_without_yes_in_a_non_interactive_run_fails_at_the_confirm_and_applies_nothing() {
    let kf = Kf::local();
    let (server, cfg) = drifted(&kf);
    let before = crd_versions(&server);
    let global = ["--kubeconfig", cfg.to_str().unwrap()];
    let set = ["--set", "crds=pinned/crds.yaml"];
    let (code, report, err) = run(&kf, &global, "reconcile-crds", RECONCILE_CRDS, &set);
    assert_eq!(code, 1, "{err}\n{report:#}");
    let apply = step(&report, "apply");
    assert_eq!(apply["outcome"], "failed");
    assert!(
        apply["error"].as_str().unwrap().contains("pass --yes"),
        "{apply}"
    );
    assert_eq!(crd_versions(&server), before);
}

const WORKFLOWS: &str = r#"apiVersion: kubeflow.org/v1beta1
kind: ScheduledWorkflow
metadata: {name: nightly-train, namespace: kubeflow-user-alice}
spec:
  enabled: true
  maxConcurrency: 1
  trigger: {cronSchedule: {cron: "0 0 2 * * *"}}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: train-step, namespace: kubeflow-user-alice}
spec: {entrypoint: main, templates: [{name: main, container: {image: trainer:1}}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-workflow, namespace: kubeflow-user-alice}
data: {kept: "out"}
"#;

/// The workflow CRDs, for a cluster that serves the kinds.
fn workflow_crds() -> String {
    [
        crd(
            "kubeflow.org",
            "scheduledworkflows",
            "ScheduledWorkflow",
            "v1beta1",
            "Namespaced",
        ),
        crd(
            "argoproj.io",
            "workflowtemplates",
            "WorkflowTemplate",
            "v1alpha1",
            "Namespaced",
        ),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow-user-alice}\n---\n".to_string(),
    ]
    .concat()
}

/// A KFP-like `run_details`, with runs around now and one long before.
fn seed_runs(database: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (hour_ago, two_ago, ten_days_ago) = (now - 3600, now - 7200, now - 10 * 86400);
    mysql_exec(None, &[&format!("CREATE DATABASE `{database}`")]);
    mysql_exec(
        Some(database),
        &[
            "CREATE TABLE run_details (UUID varchar(255) NOT NULL, DisplayName varchar(255) NOT NULL, StorageState varchar(255) NOT NULL, Namespace varchar(255) NOT NULL, CreatedAtInSec bigint NOT NULL, ScheduledAtInSec bigint DEFAULT 0, FinishedAtInSec bigint DEFAULT 0, Conditions varchar(125) NOT NULL, PipelineId varchar(255) NOT NULL, PRIMARY KEY (UUID))",
            &format!("INSERT INTO run_details VALUES ('run-failed', 'train v3', 'STORAGESTATE_AVAILABLE', 'kubeflow-user-alice', {two_ago}, 0, {hour_ago}, 'Failed', 'pipe-train')"),
            &format!("INSERT INTO run_details VALUES ('run-running', 'eval', 'STORAGESTATE_AVAILABLE', 'kubeflow-user-alice', {hour_ago}, 0, 0, 'Running', 'pipe-eval')"),
            &format!("INSERT INTO run_details VALUES ('run-ok', 'train v2', 'STORAGESTATE_AVAILABLE', 'kubeflow-user-alice', {two_ago}, 0, {hour_ago}, 'Succeeded', 'pipe-train')"),
            &format!("INSERT INTO run_details VALUES ('run-old', 'train v1', 'STORAGESTATE_AVAILABLE', 'kubeflow-user-alice', {ten_days_ago}, 0, {}, 'Failed', 'pipe-train')", ten_days_ago + 60),
        ],
    );
}

#[test]
fn restore_workflows_brings_schedules_back_disabled_and_lists_the_runs_to_resubmit() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("mlpipeline");
    seed_runs(&my);
    let kf = workspace();
    config(&kf, &my, None);
    kf.ok(&["init"]);
    let (src, src_cfg) = standin(&kf, "src");
    src.seed_yaml(&format!("{}{WORKFLOWS}", workflow_crds()))
        .unwrap();
    kf.ok(&[
        "--kubeconfig",
        src_cfg.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ]);

    let (dst, dst_cfg) = standin(&kf, "dst");
    dst.seed_yaml(&workflow_crds()).unwrap();
    let global = ["--kubeconfig", dst_cfg.to_str().unwrap()];
    let set = ["--set", &format!("database={my}")];
    // A dry run plans the two objects and creates neither.
    let mut dry = set.to_vec();
    dry.push("--dry-run");
    let (code, report, err) = run(&kf, &global, "restore-workflows", RESTORE_WORKFLOWS, &dry);
    assert_eq!(code, 3, "{err}\n{report:#}");
    assert!(dst
        .list("kubeflow.org/v1beta1", "ScheduledWorkflow")
        .is_empty());
    assert_eq!(planned(&report).len(), 3, "{:#?}", planned(&report));

    let (code, report, err) = run(&kf, &global, "restore-workflows", RESTORE_WORKFLOWS, &set);
    assert_eq!(code, 3, "findings: the runs to resubmit\n{err}\n{report:#}");
    let swf = dst
        .get(
            "kubeflow.org/v1beta1",
            "ScheduledWorkflow",
            Some("kubeflow-user-alice"),
            "nightly-train",
        )
        .expect("the schedule is restored");
    assert_eq!(swf["spec"]["enabled"], false, "{swf:#}");
    assert!(dst
        .get(
            "argoproj.io/v1alpha1",
            "WorkflowTemplate",
            Some("kubeflow-user-alice"),
            "train-step"
        )
        .is_some());
    assert!(dst
        .get(
            "v1",
            "ConfigMap",
            Some("kubeflow-user-alice"),
            "not-a-workflow"
        )
        .is_none());
    let runs = output(&report, "runs to resubmit");
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run-failed", "run-running"], "{runs:#}");
    assert_eq!(runs[0]["pipeline"], "pipe-train");
    assert_eq!(runs[0]["state"], "Failed");
    let findings: Vec<&str> = step(&report, "runs to resubmit")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    assert_eq!(findings, ["run run-failed", "run run-running"]);

    // --set enable=true keeps the schedule on.
    let (dst2, dst2_cfg) = standin(&kf, "dst2");
    dst2.seed_yaml(&workflow_crds()).unwrap();
    let global = ["--kubeconfig", dst2_cfg.to_str().unwrap()];
    let mut on = set.to_vec();
    on.extend(["--set", "enable=true"]);
    let (code, report, err) = run(&kf, &global, "restore-workflows", RESTORE_WORKFLOWS, &on);
    assert_eq!(code, 3, "{err}\n{report:#}");
    let swf = dst2
        .get(
            "kubeflow.org/v1beta1",
            "ScheduledWorkflow",
            Some("kubeflow-user-alice"),
            "nightly-train",
        )
        .unwrap();
    assert_eq!(swf["spec"]["enabled"], true, "{swf:#}");
}

#[test]
fn nightlys_restore_test_restores_a_postgresql_database_into_scratch_and_drops_it() {
    let fx = Db::cli();
    let pg = fx.pg_database("nightly");
    common::db::pg_exec(
        &pg,
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL, done boolean)",
            "INSERT INTO runs VALUES (1, 'Succeeded', true), (2, 'Failed', false)",
        ],
    );
    let kf = workspace();
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"pg\"\nengine = \"postgres\"\nurl = \"{}\"\ndatabases = [\"{pg}\"]\n\n[retention]\nkeep_last = 3\n",
            db::pg_url()
        ),
    );
    kf.ok(&["init"]);
    let (code, report, err) = run(&kf, &[], "nightly", NIGHTLY, &["--set", "check_cycle=0"]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    assert_eq!(output(&report, "check")["read_data"], "none");
    assert_eq!(
        output(&report, "restore test")["verified"],
        json!({"tables": 1, "rows": 2})
    );
    let scratch = format!("kfguard_restore_test_{pg}");
    let left = fx.pg_sql(
        &pg,
        &format!("SELECT datname FROM pg_database WHERE datname = '{scratch}'"),
    );
    assert!(left.is_empty(), "{scratch} was left behind");
    assert_eq!(output(&report, "retention")["kept"], 1);
}
