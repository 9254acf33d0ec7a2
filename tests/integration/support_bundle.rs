//! `kfguard support-bundle` against the stand-in: the bundle holds each namespace's pods,
//! descriptions, logs, events, claims, workflows and ConfigMaps, the CRD versions, kfguard's
//! runs, verify-health findings and config; no seeded secret value, plain or base64, is in any
//! of its files; what cannot be read is recorded in the index, not a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube_standin::Fault;
use serde_json::Value;

use crate::common;
use common::kube::standin;
use common::runbook::crd;
use common::{code, stderr, Kf};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Seeded where a bundle could pick it up; none may be in it.
const ENV_SECRET: &str = "env-db-pass-7731"; // KFP_DB_PASSWORD, which the config names
const CONFIG_URL_SECRET: &str = "url-pass-in-config-9921"; // inside a database URL
const SECRET_VALUE: &str = "k8s-secret-pass-2718"; // a Secret's data
const SECRET_USER: &str = "mlpipeline-dbuser"; // the same Secret's other key
const CM_SECRET: &str = "cm-password-3141"; // a ConfigMap key named as a password
const POD_ENV_SECRET: &str = "literal-env-pass-5521"; // a pod's literal MYSQL_PASSWORD
const REPO_PASSWORD: &str = common::PASSWORD; // the repository password file

fn seeded_secrets() -> Vec<&'static str> {
    vec![
        ENV_SECRET,
        CONFIG_URL_SECRET,
        SECRET_VALUE,
        SECRET_USER,
        CM_SECRET,
        POD_ENV_SECRET,
        REPO_PASSWORD,
    ]
}

/// A small Kubeflow whose objects, logs and events carry the seeded secrets.
fn cluster() -> String {
    let mut s = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: kubeflow}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-a, labels: {{app.kubernetes.io/part-of: kubeflow-profile}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: default}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ml-pipeline-0, namespace: kubeflow, labels: {{app: ml-pipeline}}}}
spec:
  nodeName: node-a
  containers:
  - name: api-server
    image: gcr.io/ml-pipeline/api-server:2.5.0
    env:
    - {{name: MYSQL_PASSWORD, value: {POD_ENV_SECRET}}}
    - {{name: DB_USER_PASSWORD, valueFrom: {{secretKeyRef: {{name: mysql-secret, key: password}}}}}}
    - {{name: LOG_LEVEL, value: debug}}
status:
  phase: Running
  conditions: [{{type: Ready, status: "False", reason: ContainersNotReady}}]
  containerStatuses:
  - name: api-server
    ready: false
    restartCount: 4
    image: gcr.io/ml-pipeline/api-server:2.5.0
    state: {{waiting: {{reason: CrashLoopBackOff, message: back-off 2m40s restarting failed container}}}}
    lastState: {{terminated: {{reason: OOMKilled, exitCode: 137, finishedAt: "2026-01-01T00:10:00Z"}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: workflow-controller-7c9b, namespace: kubeflow}}
spec:
  nodeName: node-b
  initContainers: [{{name: setup, image: busybox}}]
  containers:
  - {{name: controller, image: quay.io/argoproj/workflow-controller:v3.4}}
  - {{name: metrics, image: quay.io/argoproj/metrics:v3.4}}
status:
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
  initContainerStatuses: [{{name: setup, ready: true, restartCount: 0, state: {{terminated: {{reason: Completed, exitCode: 0}}}}}}]
  containerStatuses:
  - {{name: controller, ready: true, restartCount: 0, state: {{running: {{startedAt: "2026-01-01T00:00:00Z"}}}}}}
  - {{name: metrics, ready: true, restartCount: 0, state: {{running: {{startedAt: "2026-01-01T00:00:00Z"}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: notebook-0, namespace: team-a}}
spec: {{containers: [{{name: notebook, image: kubeflownotebookswg/jupyter:v1.8}}]}}
status: {{phase: Pending, conditions: [{{type: PodScheduled, status: "False", reason: Unschedulable}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: unrelated, namespace: default}}
spec: {{containers: [{{name: c, image: nginx}}]}}
status: {{phase: Running}}
---
apiVersion: v1
kind: Secret
metadata: {{name: mysql-secret, namespace: kubeflow}}
type: Opaque
data: {{password: {secret_b64}, username: {user_b64}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: pipeline-install-config, namespace: kubeflow}}
data:
  appVersion: 2.5.0
  dbPassword: {CM_SECRET}
  dbUrl: "mysql://root:{SECRET_VALUE}@mysql.kubeflow:3306/mlpipeline"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: minio-pvc, namespace: kubeflow}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: standard, volumeName: pv-minio, resources: {{requests: {{storage: 20Gi}}}}}}
status: {{phase: Bound, capacity: {{storage: 20Gi}}, accessModes: [ReadWriteOnce]}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: workspace-notebook, namespace: team-a}}
spec: {{accessModes: [ReadWriteMany], storageClassName: nfs, resources: {{requests: {{storage: 5Gi}}}}}}
status: {{phase: Pending}}
---
apiVersion: v1
kind: Event
metadata: {{name: ev-late, namespace: kubeflow}}
involvedObject: {{kind: Pod, name: ml-pipeline-0, namespace: kubeflow}}
reason: BackOff
type: Warning
message: Back-off restarting failed container api-server
count: 12
lastTimestamp: "2026-01-01T00:30:00Z"
---
apiVersion: v1
kind: Event
metadata: {{name: ev-early, namespace: kubeflow}}
involvedObject: {{kind: Pod, name: ml-pipeline-0, namespace: kubeflow}}
reason: Pulled
type: Normal
message: "Successfully pulled image, login {SECRET_USER} with {SECRET_VALUE}"
lastTimestamp: "2026-01-01T00:01:00Z"
---
apiVersion: v1
kind: Event
metadata: {{name: ev-middle, namespace: kubeflow}}
involvedObject: {{kind: Pod, name: ml-pipeline-0, namespace: kubeflow}}
reason: OOMKilling
type: Warning
message: Memory cgroup out of memory
eventTime: "2026-01-01T00:10:00.000000Z"
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: train-xgboost-abc12, namespace: team-a, creationTimestamp: "2026-01-01T00:00:00Z"}}
status: {{phase: Failed, startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:05:00Z", message: "child train-xgboost-abc12-1 failed"}}
---
"#,
        secret_b64 = b64(SECRET_VALUE),
        user_b64 = b64(SECRET_USER),
    );
    s.push_str(&crd(
        "argoproj.io",
        "workflows",
        "Workflow",
        "v1alpha1",
        "Namespaced",
    ));
    s.push_str(&crd(
        "kubeflow.org",
        "notebooks",
        "Notebook",
        "v1",
        "Namespaced",
    ));
    s.push_str(&crd("example.com", "widgets", "Widget", "v1", "Namespaced"));
    s
}

/// A workspace whose config names a database password in the environment and one inside a
/// URL, with a verify-health runbook of its own that reports one finding.
fn workspace() -> Kf {
    let kf = Kf::local().env("KFP_DB_PASSWORD", ENV_SECRET);
    kf.write(
        "kfguard.toml",
        &format!(
            r#"cluster = "prod"

[[databases]]
name = "kfp"
engine = "mysql"
url = "mysql://kfp:{CONFIG_URL_SECRET}@mysql.kubeflow:3306"
password_env = "KFP_DB_PASSWORD"

[kubernetes]
namespaces = ["kubeflow"]

[runbooks]
dir = "runbooks"
state_dir = "state"
"#
        ),
    );
    kf.write(
        "runbooks/verify-health.rhai",
        "// verify-health: a stand-in with one finding.\nstep(\"pods\", || {\n    finding(\"KF-POD-CRASHLOOP\", \"error\", \"kubeflow/ml-pipeline-0\", \"api-server restarted 4 times\", \"read its previous log\");\n});\n",
    );
    kf
}

/// Unpacks a bundle with the system's tar; the folder it made.
fn unpack(kf: &Kf, bundle: &Path) -> PathBuf {
    let dest = kf.path().join("unpacked");
    std::fs::create_dir_all(&dest).unwrap();
    let out = std::process::Command::new("tar")
        .arg("xzf")
        .arg(bundle)
        .arg("-C")
        .arg(&dest)
        .output()
        .expect("tar is needed to unpack the bundle");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roots: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(roots.len(), 1, "one folder at the top: {roots:?}");
    roots[0].clone()
}

fn files(root: &Path) -> BTreeMap<String, String> {
    common::tree_bytes(root)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                String::from_utf8(v).expect("the bundle's files are text"),
            )
        })
        .collect()
}

fn file<'a>(files: &'a BTreeMap<String, String>, path: &str) -> &'a str {
    files
        .get(path)
        .unwrap_or_else(|| panic!("no {path} in the bundle: {:?}", files.keys()))
}

#[test]
fn a_bundle_holds_the_clusters_state_and_kfguards_runs_and_no_secret_value() {
    let kf = workspace();
    let (server, kubeconfig) = standin(&kf, "support");
    server.seed_yaml(&cluster()).unwrap();
    let many: String = (1..=80).map(|i| format!("api line {i}\n")).collect();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-0",
        "api-server",
        false,
        &format!("{many}connecting with password {SECRET_VALUE} as {SECRET_USER}\nenv pw {POD_ENV_SECRET}, encoded {}\n", b64(ENV_SECRET)),
    );
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-0",
        "api-server",
        true,
        &format!(
            "fatal: out of memory; config url password {CONFIG_URL_SECRET}, repo {REPO_PASSWORD}\n"
        ),
    );
    server.set_pod_log(
        "kubeflow",
        "workflow-controller-7c9b",
        "controller",
        false,
        "level=info msg=\"workflow started\"\n",
    );
    server.set_pod_log(
        "kubeflow",
        "workflow-controller-7c9b",
        "metrics",
        false,
        "serving metrics on :9090\n",
    );
    server.set_pod_log(
        "kubeflow",
        "workflow-controller-7c9b",
        "setup",
        false,
        "setup done\n",
    );
    let kc = kubeconfig.to_str().unwrap();

    // A finished run for the bundle to pick up: verify-health with one finding (exit 3).
    let run = kf.run(&["runbook", "run", "verify-health"]);
    assert_eq!(code(&run), 3, "{}", stderr(&run));

    let out = kf.run(&[
        "--kubeconfig",
        kc,
        "--output",
        "json",
        "support-bundle",
        "-o",
        "bundle.tar.gz",
        "--log-lines",
        "50",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["not_collected"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        report["namespaces"],
        serde_json::json!(["kubeflow", "team-a"])
    );
    assert!(
        stderr(&out).contains("support-bundle: kubeflow: 2 pods"),
        "{}",
        stderr(&out)
    );

    let root = unpack(&kf, &kf.path().join("bundle.tar.gz"));
    assert!(
        root.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kfguard-support-prod-"),
        "{root:?}"
    );
    let f = files(&root);

    // The index lists every file it sits beside.
    let index: Value = serde_json::from_str(file(&f, "index.json")).unwrap();
    let listed: Vec<&str> = index["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), f.len(), "{listed:?}");
    for path in f.keys() {
        assert!(
            listed.contains(&path.as_str()),
            "{path} is not in the index"
        );
    }
    assert!(file(&f, "README.txt").contains("index.json"));
    assert!(file(&f, "kfguard/version.txt").starts_with("kfguard "));
    assert!(file(&f, "kfguard/config.toml").contains("cluster = \"prod\""));
    assert!(file(&f, "cluster/version.txt").contains("namespaces kubeflow, team-a"));

    // Pods, one line each, and one described.
    let pods = file(&f, "namespaces/kubeflow/pods.txt");
    assert!(
        pods.contains("ml-pipeline-0") && pods.contains("CrashLoopBackOff"),
        "{pods}"
    );
    assert!(pods.contains("workflow-controller-7c9b   2/2"), "{pods}");
    assert!(file(&f, "namespaces/team-a/pods.txt").contains("notebook-0"));
    assert!(
        !f.contains_key("namespaces/default/pods.txt"),
        "default is no Kubeflow namespace"
    );
    let describe = file(&f, "namespaces/kubeflow/pods/ml-pipeline-0/describe.txt");
    for want in [
        "Node:        node-a",
        "Image:          gcr.io/ml-pipeline/api-server:2.5.0",
        "Restart count:  4",
        "Last state:     terminated: OOMKilled (exit 137)",
        "ContainersNotReady",
    ] {
        assert!(describe.contains(want), "{want} in {describe}");
    }
    let pod: Value =
        serde_json::from_str(file(&f, "namespaces/kubeflow/pods/ml-pipeline-0/pod.json")).unwrap();
    let env = &pod["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], "<redacted>");
    assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["name"], "mysql-secret");
    assert_eq!(env[2]["value"], "debug");

    // Logs per namespace, pod and container: the last 50 lines, the previous instance of the
    // container that restarted, the init container's.
    let log = file(
        &f,
        "namespaces/kubeflow/pods/ml-pipeline-0/logs/api-server.log",
    );
    assert_eq!(log.lines().count(), 50, "{log}");
    assert!(
        log.contains("api line 80") && !log.contains("api line 32\n"),
        "{log}"
    );
    assert!(
        log.contains("connecting with password <redacted> as <redacted>"),
        "{log}"
    );
    let previous = file(
        &f,
        "namespaces/kubeflow/pods/ml-pipeline-0/logs/api-server.previous.log",
    );
    assert!(previous.starts_with("fatal: out of memory"), "{previous}");
    for c in ["controller", "metrics", "setup"] {
        assert!(
            f.contains_key(&format!(
                "namespaces/kubeflow/pods/workflow-controller-7c9b/logs/{c}.log"
            )),
            "{c}: {:?}",
            f.keys()
        );
    }

    // Events oldest first, whatever time field each carries.
    let events = file(&f, "namespaces/kubeflow/events.txt");
    let reasons: Vec<&str> = events
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(reasons, ["Pulled", "OOMKilling", "BackOff"], "{events}");

    let pvcs = file(&f, "namespaces/kubeflow/pvcs.txt");
    for want in [
        "minio-pvc",
        "Bound",
        "20Gi",
        "standard",
        "ReadWriteOnce",
        "pv-minio",
    ] {
        assert!(pvcs.contains(want), "{want} in {pvcs}");
    }
    let team_pvcs = file(&f, "namespaces/team-a/pvcs.txt");
    assert!(
        team_pvcs.contains("Pending") && team_pvcs.contains("5Gi (requested)"),
        "{team_pvcs}"
    );

    let wfs = file(&f, "namespaces/team-a/workflows.txt");
    assert!(wfs.contains("train-xgboost-abc12   Failed"), "{wfs}");

    let crds = file(&f, "cluster/crds.txt");
    assert!(
        crds.contains("workflows.argoproj.io") && crds.contains("v1alpha1"),
        "{crds}"
    );
    assert!(crds.contains("notebooks.kubeflow.org"), "{crds}");
    assert!(
        !crds.contains("widgets.example.com"),
        "not a Kubeflow CRD: {crds}"
    );

    let cms: Value = serde_json::from_str(file(&f, "namespaces/kubeflow/configmaps.json")).unwrap();
    let cm = &cms.as_array().unwrap()[0];
    assert_eq!(cm["name"], "pipeline-install-config");
    assert_eq!(cm["data"]["appVersion"], "2.5.0");
    assert_eq!(cm["data"]["dbPassword"], "<redacted>");
    assert_eq!(
        cm["data"]["dbUrl"],
        "mysql://root:<redacted>@mysql.kubeflow:3306/mlpipeline"
    );

    let secrets = file(&f, "namespaces/kubeflow/secrets.txt");
    assert!(
        secrets.contains("mysql-secret") && secrets.contains("password,username"),
        "{secrets}"
    );

    // kfguard's own runs: the journal, its report and the verify-health findings.
    let health: Value = serde_json::from_str(file(&f, "kfguard/verify-health.json")).unwrap();
    assert_eq!(health["findings"][0]["code"], "KF-POD-CRASHLOOP");
    assert!(
        file(&f, "kfguard/verify-health.txt").contains("KF-POD-CRASHLOOP kubeflow/ml-pipeline-0")
    );
    let run_id = health["run_id"].as_str().unwrap();
    assert!(
        file(&f, &format!("kfguard/runs/{run_id}/journal.jsonl")).contains("\"event\":\"start\"")
    );
    assert!(file(&f, &format!("kfguard/runs/{run_id}/report.txt")).contains("pods"));
    assert!(file(&f, "kfguard/runs.txt").contains(run_id));

    // No seeded secret, in either form, in any file.
    for (path, text) in &f {
        for secret in seeded_secrets() {
            assert!(!text.contains(secret), "{secret} in {path}:\n{text}");
            assert!(
                !text.contains(&b64(secret)),
                "base64 of {secret} in {path}:\n{text}"
            );
        }
    }
}

#[test]
fn parts_the_role_may_not_read_are_recorded_in_the_index_and_the_rest_is_collected() {
    let kf = workspace();
    let (server, kubeconfig) = standin(&kf, "forbidden");
    server.seed_yaml(&cluster()).unwrap();
    server.inject(Fault {
        path_contains: Some("/secrets".into()),
        status: 403,
        times: usize::MAX,
        ..Fault::default()
    });
    let out = kf.run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output",
        "json",
        "support-bundle",
        "-o",
        "b.tgz",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing: Vec<String> = report["not_collected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m["what"].as_str().unwrap(),
                m["error"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("secrets in kubeflow: ") && m.contains("403")),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("the last verify-health findings: no verify-health run")),
        "{missing:?}"
    );
    let f = files(&unpack(&kf, &kf.path().join("b.tgz")));
    assert!(!f.contains_key("namespaces/kubeflow/secrets.txt"));
    assert!(file(&f, "namespaces/kubeflow/pods.txt").contains("ml-pipeline-0"));
    let index: Value = serde_json::from_str(file(&f, "index.json")).unwrap();
    assert_eq!(index["not_collected"], report["not_collected"]);
}

#[test]
fn an_unreachable_cluster_is_recorded_and_the_bundle_streams_to_stdout() {
    let kf = workspace();
    let (server, kubeconfig) = standin(&kf, "gone");
    drop(server);
    let out = kf.run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "support-bundle",
        "-o",
        "-",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not collected: the cluster: "), "{err}");
    let bundle = kf.write("piped.tar.gz", "");
    std::fs::write(&bundle, &out.stdout).unwrap();
    let f = files(&unpack(&kf, &bundle));
    let index: Value = serde_json::from_str(file(&f, "index.json")).unwrap();
    assert_eq!(
        index["not_collected"][0]["what"], "the cluster",
        "{index:#}"
    );
    assert!(f.contains_key("kfguard/config.toml"), "{:?}", f.keys());
    assert!(
        !f.keys().any(|k| k.starts_with("namespaces/")),
        "{:?}",
        f.keys()
    );
    for text in f.values() {
        assert!(!text.contains(CONFIG_URL_SECRET) && !text.contains(ENV_SECRET));
    }
}
