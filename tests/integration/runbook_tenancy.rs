//! The shipped `audit-tenancy` and `diagnose-pipeline` runbooks on the stand-in: clean profiles
//! give no finding, and each seeded fault (a binding across profiles, a missing policy, a run
//! hanging on an unbound claim, a pipeline service without endpoints, data or bucket) raises
//! its own code on its own object.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common;
use common::runbook::{all_findings, crd, findings};

use common::db::{mysql_exec, mysql_url, Db};
use common::kube::standin;
use common::{code, s3_endpoint, stderr, Kf};

/// The cluster-wide part of a Kubeflow: its namespace, CRDs (Istio's when `istio`) and the
/// ClusterRoles profiles bind, with the ml-pipeline service and a Ready workflow-controller.
fn platform(istio: bool) -> String {
    let mut s = String::from(
        r#"apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-edit}
rules:
- {apiGroups: [""], resources: [pods, secrets, persistentvolumeclaims], verbs: [get, list, watch, create, patch, delete]}
- {apiGroups: [argoproj.io], resources: [workflows, workflowtaskresults], verbs: [get, list, create, patch, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-view}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-admin}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: v1
kind: Service
metadata: {name: ml-pipeline, namespace: kubeflow}
spec: {ports: [{port: 8888}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ml-pipeline, namespace: kubeflow}
subsets: [{addresses: [{ip: 10.0.0.12}], ports: [{port: 8888}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: workflow-controller-7c9b, namespace: kubeflow, labels: {app: workflow-controller}}
spec: {containers: [{name: main, image: "quay.io/argoproj/workflow-controller:v3.5"}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
---
"#,
    );
    s.push_str(&crd("kubeflow.org", "profiles", "Profile", "v1", "Cluster"));
    s.push_str(&crd(
        "argoproj.io",
        "workflows",
        "Workflow",
        "v1alpha1",
        "Namespaced",
    ));
    if istio {
        s.push_str(&crd(
            "security.istio.io",
            "authorizationpolicies",
            "AuthorizationPolicy",
            "v1",
            "Namespaced",
        ));
    }
    s
}

/// A profile as the profile controller makes it: namespace, service accounts, the owner's and
/// the service accounts' bindings, a quota, a NetworkPolicy and (with `istio`) the owner's
/// AuthorizationPolicy.
fn profile(name: &str, owner: &str, istio: bool) -> String {
    let mut s = format!(
        r"apiVersion: v1
kind: Namespace
metadata: {{name: {name}, labels: {{app.kubernetes.io/part-of: kubeflow-profile}}}}
---
apiVersion: kubeflow.org/v1
kind: Profile
metadata: {{name: {name}}}
spec: {{owner: {{kind: User, name: {owner}}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: default-editor, namespace: {name}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: default-viewer, namespace: {name}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: namespaceAdmin, namespace: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-admin}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {owner}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: default-editor, namespace: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}}
subjects: [{{kind: ServiceAccount, name: default-editor, namespace: {name}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: default-viewer, namespace: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-view}}
subjects: [{{kind: ServiceAccount, name: default-viewer, namespace: {name}}}]
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: kf-resource-quota, namespace: {name}}}
spec: {{hard: {{cpu: '16', pods: '10'}}}}
status: {{hard: {{cpu: '16', pods: '10'}}, used: {{cpu: 500m, pods: '1'}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-same-namespace, namespace: {name}}}
spec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{}}}}]}}]}}
---
"
    );
    if istio {
        s.push_str(&format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: ns-owner-access-istio, namespace: {name}}}\nspec:\n  rules:\n  - when: [{{key: \"request.headers[kubeflow-userid]\", values: [\"{owner}\"]}}]\n---\n"
        ));
    }
    s
}

/// Two clean profiles, team-a (alice) and team-b (bob).
fn two_profiles(istio: bool) -> String {
    [
        platform(istio),
        profile("team-a", "alice@example.com", istio),
        profile("team-b", "bob@example.com", istio),
    ]
    .concat()
}

/// Removes the document of `kind` named `name` in `namespace` from `yaml`.
fn without(yaml: &str, kind: &str, name: &str, namespace: &str) -> String {
    let docs: Vec<&str> = yaml.split("---\n").collect();
    let before = docs.len();
    let kept: Vec<&str> = docs
        .into_iter()
        .filter(|d| {
            !(d.contains(&format!("kind: {kind}\n"))
                && d.contains(&format!("name: {name},"))
                && d.contains(&format!("namespace: {namespace}}}")))
        })
        .collect();
    assert_eq!(
        kept.len() + 1,
        before,
        "no {kind} {namespace}/{name} to remove"
    );
    kept.join("---\n")
}

/// Runs the shipped runbook `name` against the cluster of `kubeconfig`, with `args`.
fn run(kf: &Kf, kubeconfig: &Path, name: &str, args: &[&str]) -> (i32, Value, String) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("runbooks/{name}.rhai"));
    let file = format!("rb/{name}.rhai");
    kf.write(&file, &std::fs::read_to_string(shipped).unwrap());
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output",
        "json",
        "runbook",
        "run",
        file.as_str(),
    ];
    all.extend_from_slice(args);
    let out = kf.run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, stderr(&out))
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(c, o)| ((*c).to_string(), (*o).to_string()))
        .collect()
}

fn message(report: &Value, code: &str) -> String {
    all_findings(report)
        .iter()
        .find(|f| f["code"] == code)
        .and_then(|f| f["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no finding {code} in {report:#}"))
}

// ------------------------------------------------------------------ audit-tenancy

#[test]
fn two_clean_profiles_give_no_tenancy_finding() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(&two_profiles(true)).unwrap();
    let (code, report, err) = run(&kf, &cfg, "audit-tenancy", &[]);
    assert_eq!(code, 0, "{err}\n{:#?}", findings(&report));
    assert!(findings(&report).is_empty());
}

#[test]
fn a_profiles_editor_bound_in_another_profile_is_flagged() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let mut yaml = two_profiles(true);
    yaml.push_str("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: share-with-team-a, namespace: team-b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}\nsubjects: [{kind: ServiceAccount, name: default-editor, namespace: team-a}]\n---\n");
    server.seed_yaml(&yaml).unwrap();
    let (code, report, err) = run(&kf, &cfg, "audit-tenancy", &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        findings(&report),
        set(&[
            ("KF-TENANCY-CROSS-BINDING", "team-b/share-with-team-a"),
            ("KF-TENANCY-CROSS-ACCESS", "team-a/default-editor"),
        ]),
        "{err}"
    );
    let access = message(&report, "KF-TENANCY-CROSS-ACCESS");
    assert!(
        access.contains("get pods") && access.contains("get secrets") && access.contains("team-b"),
        "{access}"
    );
    assert!(message(&report, "KF-TENANCY-CROSS-BINDING").contains("of profile team-a"));
}

#[test]
fn each_missing_piece_of_a_tenant_raises_its_own_code() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let mut yaml = two_profiles(true);
    yaml = without(&yaml, "RoleBinding", "namespaceAdmin", "team-a");
    yaml = without(&yaml, "ResourceQuota", "kf-resource-quota", "team-a");
    yaml = without(&yaml, "NetworkPolicy", "allow-same-namespace", "team-b");
    yaml = without(
        &yaml,
        "AuthorizationPolicy",
        "ns-owner-access-istio",
        "team-b",
    );
    // team-b's editor bound cluster-wide: it now reads team-a's pods and secrets too.
    yaml.push_str("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-b-editor-everywhere}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}\nsubjects: [{kind: ServiceAccount, name: default-editor, namespace: team-b}]\n---\n");
    server.seed_yaml(&yaml).unwrap();
    let (code, report, err) = run(&kf, &cfg, "audit-tenancy", &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        findings(&report),
        set(&[
            ("KF-TENANCY-OWNER", "team-a"),
            ("KF-TENANCY-NO-QUOTA", "team-a"),
            ("KF-TENANCY-NO-NETWORKPOLICY", "team-b"),
            ("KF-TENANCY-NO-AUTHZ", "team-b"),
            (
                "KF-TENANCY-EDITOR-CLUSTER-WIDE",
                "ClusterRoleBinding/team-b-editor-everywhere"
            ),
            ("KF-TENANCY-CROSS-ACCESS", "team-b/default-editor"),
        ]),
        "{err}"
    );
    assert!(message(&report, "KF-TENANCY-OWNER").contains("alice@example.com"));
}

#[test]
fn without_istio_the_authorization_policy_check_is_skipped_and_profiles_narrow_the_audit() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let yaml = without(
        &two_profiles(false),
        "NetworkPolicy",
        "allow-same-namespace",
        "team-b",
    );
    server.seed_yaml(&yaml).unwrap();
    let (code, report, err) = run(&kf, &cfg, "audit-tenancy", &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        findings(&report),
        set(&[("KF-TENANCY-NO-NETWORKPOLICY", "team-b")])
    );
    let (code, report, err) = run(
        &kf,
        &cfg,
        "audit-tenancy",
        &["--set", "profiles=team-a", "--set", "cross_check=false"],
    );
    assert_eq!(code, 0, "{err}\n{:#?}", findings(&report));
}

// ------------------------------------------------------------------ diagnose-pipeline

/// Team-a's run `run-42`: workflow train-42, Running, whose first step's pod is Pending on a
/// claim that names no StorageClass, on a cluster without a default class.
fn hanging_run() -> String {
    two_profiles(false)
        + r#"apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: train-42, namespace: team-a, labels: {pipeline/runid: run-42}}
spec: {entrypoint: main, serviceAccountName: default-editor}
status: {phase: Running, startedAt: "2026-11-30T08:00:00Z"}
---
apiVersion: v1
kind: Pod
metadata: {name: train-42-step-1, namespace: team-a, labels: {workflows.argoproj.io/workflow: train-42}}
spec:
  containers: [{name: main, image: "python:3.11"}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: train-42-data}}]
status: {phase: Pending, conditions: [{type: PodScheduled, status: "False", reason: Unschedulable}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: train-42-data, namespace: team-a}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}
status: {phase: Pending}
---
apiVersion: v1
kind: Event
metadata: {name: train-42-step-1.1, namespace: team-a}
involvedObject: {kind: Pod, name: train-42-step-1, namespace: team-a}
reason: FailedScheduling
type: Warning
message: "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
---
"#
}

#[test]
fn a_run_hanging_on_a_claim_without_storage_class_names_the_pod_the_claim_and_the_cause() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(&hanging_run()).unwrap();
    for args in [
        &["--set", "run=run-42"][..],
        &["--set", "workflow=train-42", "--set", "namespace=team-a"][..],
        &["--set", "workflow=train-42"][..],
    ] {
        let (code, report, err) = run(&kf, &cfg, "diagnose-pipeline", args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert_eq!(
            findings(&report),
            set(&[("KF-DIAG-PVC-UNBOUND", "team-a/train-42-data")]),
            "{args:?}: {err}"
        );
        let why = message(&report, "KF-DIAG-PVC-UNBOUND");
        for part in ["train-42-step-1", "train-42-data", "no default class"] {
            assert!(why.contains(part), "{args:?}: {why}");
        }
    }
}

#[test]
fn a_run_blocked_by_rbac_and_quota_says_so() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let yaml = hanging_run()
        .replace(
            "serviceAccountName: default-editor",
            "serviceAccountName: default-viewer",
        )
        .replace("pods: '1'", "pods: '10'");
    server.seed_yaml(&yaml).unwrap();
    let (code, report, err) = run(&kf, &cfg, "diagnose-pipeline", &["--set", "run=run-42"]);
    assert_eq!(code, 3, "{err}");
    let found = findings(&report);
    for expected in [
        ("KF-DIAG-PVC-UNBOUND", "team-a/train-42-data"),
        ("KF-DIAG-RBAC-DENIED", "team-a/default-viewer"),
        ("KF-DIAG-QUOTA-EXHAUSTED", "team-a/kf-resource-quota"),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not in {found:#?}"
        );
    }
    assert!(message(&report, "KF-DIAG-QUOTA-EXHAUSTED").contains("pods is at its limit"));
}

#[test]
fn a_ui_without_pipelines_is_traced_to_the_service_the_table_and_the_bucket() {
    let mut fx = Db::mysql();
    let my = fx.mysql_name("diag");
    mysql_exec(None, &[&format!("CREATE DATABASE `{my}`")]);
    mysql_exec(
        Some(&my),
        &["CREATE TABLE pipelines (UUID varchar(64) PRIMARY KEY, Name varchar(128))"],
    );
    let kf = Kf::local()
        .env("AWS_ACCESS_KEY_ID", "kfguard-diagnose-key")
        .env("AWS_SECRET_ACCESS_KEY", "a-secret-the-s3-server-ignores");
    let missing = common::unique_bucket("diag-gone");
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{my}\"]\n\n[[buckets]]\nname = \"art\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{missing}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
            mysql_url(),
            s3_endpoint()
        ),
    );
    let (server, cfg) = standin(&kf, "c");
    let yaml = two_profiles(false).replace(
        "subsets: [{addresses: [{ip: 10.0.0.12}], ports: [{port: 8888}]}]",
        "subsets: []",
    );
    server.seed_yaml(&yaml).unwrap();
    let database = format!("database={my}");
    let (code, report, err) = run(
        &kf,
        &cfg,
        "diagnose-pipeline",
        &[
            "--set",
            "run=no-such-run",
            "--set",
            "db=kfp",
            "--set",
            database.as_str(),
            "--set",
            "bucket=art",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        findings(&report),
        set(&[
            ("KF-DIAG-WF-NOT-FOUND", "run no-such-run"),
            ("KF-DIAG-API-NO-ENDPOINTS", "kubeflow/ml-pipeline"),
            ("KF-DIAG-NO-PIPELINES", &format!("{my}.pipelines")),
            ("KF-DIAG-BUCKET-UNREACHABLE", "bucket art"),
        ]),
        "{err}"
    );
}
