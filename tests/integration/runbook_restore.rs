//! The shipped `restore-cluster` runbook: a demo-like Kubeflow (a KFP-like database on MariaDB,
//! an artifact bucket on the S3 server, a stand-in cluster) backed up, wiped and restored in
//! order; its refusal to write onto non-empty targets; and a run resumed after an S3 fault.

use std::path::Path;

use serde_json::Value;

use crate::common;
use common::runbook::step;

use common::db::{mysql_exec, mysql_rows, Db};
use common::kube::standin;
use common::proxy::{Faults, Proxy};
use common::{code, s3_endpoint, stderr, Kf};

/// The state of a KFP-like cluster kfguard backs up: CRDs, a profile, a config and an enabled
/// schedule.
const STATE: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: profiles.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Cluster
  names: {plural: profiles, singular: profile, kind: Profile, listKind: ProfileList}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scheduledworkflows.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: scheduledworkflows, singular: scheduledworkflow, kind: ScheduledWorkflow, listKind: ScheduledWorkflowList}
  versions:
  - {name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow-user-alice, labels: {app.kubernetes.io/part-of: kubeflow-profile}}
---
apiVersion: kubeflow.org/v1
kind: Profile
metadata: {name: kubeflow-user-alice}
spec: {owner: {kind: User, name: alice@example.com}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pipeline-install-config, namespace: kubeflow}
data: {appVersion: 2.5.0, bucketName: mlpipeline}
---
apiVersion: kubeflow.org/v1beta1
kind: ScheduledWorkflow
metadata: {name: nightly-train, namespace: kubeflow-user-alice}
spec:
  enabled: true
  maxConcurrency: 1
  trigger: {cronSchedule: {cron: "0 0 2 * * *"}}
"#;

/// What installing Kubeflow from its manifests makes, and kfguard does not back up: the
/// namespace and the controllers restore-cluster scales down.
const INSTALL: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ml-pipeline-scheduledworkflow, namespace: kubeflow}
spec:
  replicas: 1
  selector: {matchLabels: {app: ml-pipeline-scheduledworkflow}}
  template:
    metadata: {labels: {app: ml-pipeline-scheduledworkflow}}
    spec: {containers: [{name: main, image: "gcr.io/ml-pipeline/scheduledworkflow:2.5.0"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ml-pipeline-persistenceagent, namespace: kubeflow}
spec:
  replicas: 2
  selector: {matchLabels: {app: ml-pipeline-persistenceagent}}
  template:
    metadata: {labels: {app: ml-pipeline-persistenceagent}}
    spec: {containers: [{name: main, image: "gcr.io/ml-pipeline/persistenceagent:2.5.0"}]}
"#;

/// The fixture: a workspace with its config, the database and the bucket, seeded.
struct Seed {
    kf: Kf,
    db: String,
    bucket: String,
    s3: S3,
    _fx: Db,
}

/// A workspace holding the shipped runbook, configured for the database `db` and the bucket
/// `bucket` at `endpoint`, with the Kubernetes part on.
fn configure(kf: &Kf, db: &str, bucket: &str, endpoint: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n\n\
             [[buckets]]\nname = \"art\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n\n\
             [kubernetes]\nenabled = true\n",
            common::db::mysql_url()
        ),
    );
}

fn seed(tag: &str) -> Seed {
    let mut fx = Db::cli();
    let db = fx.mysql_name(tag);
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(&db),
        &[
            "CREATE TABLE pipelines (UUID varchar(64) PRIMARY KEY, Name varchar(128) NOT NULL, CreatedAtInSec bigint NOT NULL)",
            "CREATE TABLE pipeline_versions (UUID varchar(64) PRIMARY KEY, PipelineId varchar(64) NOT NULL, PipelineSpecURI text NOT NULL)",
            "CREATE TABLE run_details (UUID varchar(64) PRIMARY KEY, State varchar(32), PipelineSpecManifest longtext)",
            "INSERT INTO pipelines VALUES ('p1', 'train', 1700000000), ('p2', 'evaluate', 1700000100)",
            "INSERT INTO pipeline_versions VALUES ('v1', 'p1', 'pipelines/p1.yaml'), ('v2', 'p2', 'pipelines/p2.yaml')",
            "INSERT INTO run_details VALUES ('r1', 'SUCCEEDED', 'spec one'), ('r2', 'FAILED', NULL), ('r3', 'RUNNING', 'spec three')",
        ],
    );
    let s3 = S3::new();
    let bucket = common::unique_bucket(tag);
    common::create_bucket(&bucket);
    s3.put(&bucket, "pipelines/p1.yaml", b"spec: one\n");
    s3.put(&bucket, "pipelines/p2.yaml", b"spec: two, longer\n");
    s3.put(&bucket, "v2/artifacts/r1/model.bin", &[0u8, 1, 2, 255, 254]);
    let kf = Kf::local()
        .env("AWS_ACCESS_KEY_ID", "kfguard-restore-key")
        .env("AWS_SECRET_ACCESS_KEY", "a-secret-the-s3-server-ignores");
    configure(&kf, &db, &bucket, &s3_endpoint());
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/restore-cluster.rhai");
    std::fs::create_dir_all(kf.path().join("runbooks")).unwrap();
    std::fs::copy(&runbook, kf.path().join("runbooks/restore-cluster.rhai")).unwrap();
    Seed {
        kf,
        db,
        bucket,
        s3,
        _fx: fx,
    }
}

/// Checksums of every table, by table.
fn checksums(db: &str) -> Vec<Vec<Option<Vec<u8>>>> {
    mysql_rows(
        db,
        "CHECKSUM TABLE pipelines, pipeline_versions, run_details",
    )
    .into_iter()
    .map(|mut r| {
        // The table's name carries the database's; the checksum is what must match.
        r.remove(0);
        r
    })
    .collect()
}

/// Every object of the bucket with its bytes, by key.
fn objects(s3: &S3, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let mut keys = s3.keys(bucket);
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let body = s3.get(bucket, &k);
            (k, body)
        })
        .collect()
}

/// Backs up the seeded cluster, then the disaster: the database dropped, the bucket emptied.
fn backup_then_wipe(seed: &Seed, kubeconfig: &Path) {
    seed.kf.ok(&["init"]);
    seed.kf
        .ok(&["--kubeconfig", kubeconfig.to_str().unwrap(), "backup"]);
    mysql_exec(None, &[&format!("DROP DATABASE `{}`", seed.db)]);
    for key in seed.s3.keys(&seed.bucket) {
        seed.s3.delete(&seed.bucket, &key);
    }
}

fn restore(seed: &Seed, kubeconfig: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output",
        "json",
        "runbook",
        "run",
        "restore-cluster",
        "--yes",
    ];
    all.extend_from_slice(args);
    let out = seed.kf.run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, stderr(&out))
}

fn replicas(server: &kube_standin::Server, name: &str) -> Value {
    server
        .get("apps/v1", "Deployment", Some("kubeflow"), name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))["spec"]["replicas"]
        .clone()
}

#[test]
fn restore_cluster_brings_a_wiped_kubeflow_back_with_equal_data_and_schedules_suspended() {
    let seed = seed("rcrt");
    let (src, src_cfg) = standin(&seed.kf, "src");
    src.seed_yaml(INSTALL).unwrap();
    src.seed_yaml(STATE).unwrap();
    let sums = checksums(&seed.db);
    let rows = mysql_rows(&seed.db, "SELECT * FROM run_details ORDER BY UUID");
    let objs = objects(&seed.s3, &seed.bucket);
    backup_then_wipe(&seed, &src_cfg);
    drop(src);

    // A new cluster with Kubeflow installed from its manifests, and none of its state.
    let (dst, dst_cfg) = standin(&seed.kf, "dst");
    dst.seed_yaml(INSTALL).unwrap();
    let (code, report, err) = restore(&seed, &dst_cfg, &["--report-html", "drill.html"]);
    assert_eq!(code, 0, "{err}\n{report:#}");

    assert_eq!(checksums(&seed.db), sums, "checksums equal");
    assert_eq!(
        mysql_rows(&seed.db, "SELECT * FROM run_details ORDER BY UUID"),
        rows
    );
    assert_eq!(objects(&seed.s3, &seed.bucket), objs, "objects byte-equal");
    for (api, kind, ns, name) in [
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "scheduledworkflows.kubeflow.org",
        ),
        ("v1", "Namespace", None, "kubeflow-user-alice"),
        ("kubeflow.org/v1", "Profile", None, "kubeflow-user-alice"),
        (
            "v1",
            "ConfigMap",
            Some("kubeflow"),
            "pipeline-install-config",
        ),
    ] {
        assert!(dst.get(api, kind, ns, name).is_some(), "{kind} {name}");
    }
    // Scaled to 0 before the data came back, then back to what they had.
    let scales: Vec<String> = dst
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("scale") && r.method != "GET")
        .map(|r| r.path)
        .collect();
    assert_eq!(scales.len(), 4, "{scales:#?}");
    assert_eq!(
        step(&report, "controllers")["output"],
        serde_json::json!({"ml-pipeline-scheduledworkflow": 1, "ml-pipeline-persistenceagent": 2})
    );
    assert_eq!(replicas(&dst, "ml-pipeline-scheduledworkflow"), 1);
    assert_eq!(replicas(&dst, "ml-pipeline-persistenceagent"), 2);
    let swf = dst
        .get(
            "kubeflow.org/v1beta1",
            "ScheduledWorkflow",
            Some("kubeflow-user-alice"),
            "nightly-train",
        )
        .expect("the schedule is restored");
    assert_eq!(swf["spec"]["enabled"], false, "restored suspended");

    // What each step verified, for the drill report.
    assert_eq!(
        step(&report, "databases")["output"]["verified"],
        serde_json::json!({"tables": 3, "rows": 7})
    );
    assert_eq!(step(&report, "bucket")["output"]["verified"]["objects"], 3);
    assert_eq!(
        step(&report, "cross-check")["output"]["verified"]["schedules_suspended"],
        1
    );
    let html = std::fs::read_to_string(seed.kf.path().join("drill.html")).unwrap();
    assert!(html.contains("<svg"), "the timeline");
    assert!(html.contains("schedules_suspended"), "the verified counts");
}

#[test]
fn restore_cluster_refuses_non_empty_targets_names_them_and_changes_nothing() {
    let seed = seed("rcne");
    let (src, src_cfg) = standin(&seed.kf, "src");
    src.seed_yaml(INSTALL).unwrap();
    src.seed_yaml(STATE).unwrap();
    seed.kf.ok(&["init"]);
    seed.kf
        .ok(&["--kubeconfig", src_cfg.to_str().unwrap(), "backup"]);
    // The live data moved on since the backup: a restore over it would lose that.
    mysql_exec(
        Some(&seed.db),
        &["UPDATE run_details SET State = 'after-backup' WHERE UUID = 'r1'"],
    );
    let sums = checksums(&seed.db);
    let objs = objects(&seed.s3, &seed.bucket);
    src.clear_requests();

    let (code, report, err) = restore(&seed, &src_cfg, &[]);
    assert_eq!(code, 1, "{err}\n{report:#}");
    let error = step(&report, "targets")["error"]
        .as_str()
        .unwrap()
        .to_string();
    for named in [
        format!("database kfp/{} has 3 table(s)", seed.db),
        format!("bucket art/{} holds objects", seed.bucket),
        "namespace kubeflow-user-alice exists".to_string(),
        "force=true".to_string(),
    ] {
        assert!(error.contains(&named), "{named}: {error}");
    }
    assert_eq!(step(&report, "databases")["outcome"], "skipped");
    assert_eq!(checksums(&seed.db), sums);
    assert_eq!(objects(&seed.s3, &seed.bucket), objs);
    let writes: Vec<_> = src
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter(|r| !r.dry_run)
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
    assert_eq!(replicas(&src, "ml-pipeline-persistenceagent"), 2);
}

#[test]
fn a_restore_stopped_by_an_s3_fault_resumes_without_restoring_the_database_again() {
    let seed = seed("rcrs");
    let (src, src_cfg) = standin(&seed.kf, "src");
    src.seed_yaml(INSTALL).unwrap();
    src.seed_yaml(STATE).unwrap();
    let sums = checksums(&seed.db);
    let objs = objects(&seed.s3, &seed.bucket);
    backup_then_wipe(&seed, &src_cfg);
    drop(src);
    let (dst, dst_cfg) = standin(&seed.kf, "dst");
    dst.seed_yaml(INSTALL).unwrap();

    // How many response bytes the targets step's listing of the empty bucket takes: the
    // faulty endpoint lets that through, then goes away when the bucket step starts.
    let probe = Proxy::start(&s3_endpoint(), Faults::default());
    seed.kf.write(
        "rb/list.rhai",
        "step(\"list\", || bucket::list(\"art\", \"\", #{ limit: 1 }).len());",
    );
    configure(&seed.kf, &seed.db, &seed.bucket, &probe.endpoint);
    seed.kf.ok(&["runbook", "run", "rb/list.rhai"]);
    let listing = probe.response_bytes();
    drop(probe);
    let faulty = Proxy::start(
        &s3_endpoint(),
        Faults {
            die_after_bytes: Some(listing + 1),
            ..Faults::default()
        },
    );
    configure(&seed.kf, &seed.db, &seed.bucket, &faulty.endpoint);
    let (code, first, err) = restore(&seed, &dst_cfg, &[]);
    assert_eq!(code, 1, "{err}\n{first:#}");
    assert_eq!(step(&first, "databases")["outcome"], "ok", "{first:#}");
    assert_eq!(step(&first, "bucket")["outcome"], "failed", "{first:#}");
    assert_eq!(step(&first, "objects")["outcome"], "skipped");
    assert!(faulty.is_dead());
    let run_id = first["run_id"].as_str().unwrap().to_string();
    // Between the runs the database moves on: a second restore of it would undo this.
    mysql_exec(
        Some(&seed.db),
        &["CREATE TABLE kfguard_marker (id int PRIMARY KEY)"],
    );

    // The S3 endpoint is back.
    configure(&seed.kf, &seed.db, &seed.bucket, &s3_endpoint());
    let (code, second, err) = restore(&seed, &dst_cfg, &["--resume", &run_id]);
    assert_eq!(code, 0, "{err}\n{second:#}");
    assert_eq!(second["run_id"], run_id.as_str());
    for done in ["snapshot", "targets", "crds", "namespaces", "databases"] {
        assert_eq!(step(&second, done)["resumed"], true, "{done}: {second:#}");
    }
    assert_eq!(step(&second, "bucket")["outcome"], "ok");
    assert_eq!(step(&second, "bucket")["resumed"], Value::Null);
    // The failed run's `finally` scaled the controllers back: the resume stops them again.
    assert_eq!(step(&second, "controllers")["outcome"], "ok");
    assert_eq!(step(&second, "controllers")["resumed"], Value::Null);
    // The database was not restored again: the table made since is still there.
    assert_eq!(
        mysql_rows(&seed.db, "SHOW TABLES LIKE 'kfguard_marker'").len(),
        1
    );
    mysql_exec(Some(&seed.db), &["DROP TABLE kfguard_marker"]);
    assert_eq!(checksums(&seed.db), sums);
    assert_eq!(objects(&seed.s3, &seed.bucket), objs);
    let swf = dst
        .get(
            "kubeflow.org/v1beta1",
            "ScheduledWorkflow",
            Some("kubeflow-user-alice"),
            "nightly-train",
        )
        .expect("the schedule is restored");
    assert_eq!(swf["spec"]["enabled"], false);
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

    fn delete(&self, bucket: &str, key: &str) {
        self.rt
            .block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
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

/// The README's first command, `scripts/demo.sh`, on the debug build and a smaller seed: the
/// drill exits 0, prints its RTO, and its report counts what was restored and verified.
#[test]
fn the_demo_drill_restores_a_wiped_kubeflow_and_its_report_has_the_counts() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kfguard")).parent().unwrap();
    assert!(
        bin.join("kube-standin").is_file(),
        "build the stand-in first: cargo test --workspace --all-targets --no-run"
    );
    let name = common::db::unique_db("drill");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .current_dir(dir.path())
        .env("KFGUARD_DEMO_BIN_DIR", bin)
        .env("KFGUARD_DEMO_RUNS", "20")
        .env("KFGUARD_DEMO_NAME", &name)
        .env_remove("KFGUARD_CONFIG")
        .env_remove("KFGUARD_REPO")
        .output()
        .unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    let dbs = ["mlpipeline", "metadb", "cachedb"].map(|d| format!("{name}_{d}"));
    for db in &dbs {
        mysql_exec(None, &[&format!("DROP DATABASE IF EXISTS `{db}`")]);
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    // 10 tables: 5 of mlpipeline (2+2+2+1+20 rows), 4 of metadb (1+3+2+20), 1 of cachedb (5).
    assert!(
        stdout.contains(
            "checked by the drill: 10 tables and 58 rows with checksums equal, 4 objects byte-equal"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("RTO: "), "{stdout}");
    // Every object is back as it was, but the schedule, restored disabled.
    assert!(
        stdout.contains("0 added, 0 removed, 1 changed")
            && stdout.contains("spec.enabled: true -> false"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(dir.path().join("kfguard-demo/drill.html")).unwrap();
    assert!(
        html.contains("class=\"card rto reached\""),
        "the RTO was reached"
    );
    for (what, count) in [
        ("tables", "10"),
        ("rows", "58"),
        ("objects", "4"),
        ("schedules_suspended", "1"),
        ("kubernetes", "26"),
    ] {
        let row = format!("<td class=\"what\">{what}</td><td class=\"num total\">{count}</td>");
        assert!(html.contains(&row), "{row} in the drill report");
    }
}
