//! Runbooks against the cluster: `kube::`, `crds::` and `argo::` on the stand-in API server,
//! over real HTTP, and what a dry run of them sends.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;
use common::runbook::all_text;

use common::kube::standin;
use common::{code, error_line, stderr, Kf};

/// Runs `script` as `rb/NAME.rhai` against the cluster of `kubeconfig`, with `--output json`.
fn run(
    kf: &Kf,
    kubeconfig: &Path,
    name: &str,
    script: &str,
    args: &[&str],
) -> (i32, Value, String) {
    let file = format!("rb/{name}.rhai");
    kf.write(&file, script);
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

const CLUSTER: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Pod
metadata: {name: ml-pipeline-7d9c, namespace: kubeflow, labels: {app: ml-pipeline}}
spec: {containers: [{name: main, image: ml-pipeline:2.5.0}]}
status:
  phase: Running
  conditions: [{type: Ready, status: "False"}]
  containerStatuses:
  - name: main
    ready: false
    restartCount: 7
    state: {waiting: {reason: CrashLoopBackOff}}
    lastState: {terminated: {reason: Error, exitCode: 1}}
---
apiVersion: v1
kind: Pod
metadata: {name: ml-pipeline-ui-1, namespace: kubeflow, labels: {app: ml-pipeline-ui}}
spec: {containers: [{name: main, image: ui:2.5.0}]}
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: minio-pvc, namespace: kubeflow}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 20Gi}}, storageClassName: fast}
status: {phase: Pending}
---
apiVersion: v1
kind: Event
metadata: {name: minio-pvc.1, namespace: kubeflow}
involvedObject: {kind: PersistentVolumeClaim, name: minio-pvc, namespace: kubeflow}
reason: ProvisioningFailed
message: storageclass.storage.k8s.io "fast" not found
type: Warning
---
apiVersion: v1
kind: Event
metadata: {name: other.1, namespace: kubeflow}
involvedObject: {kind: Pod, name: ml-pipeline-ui-1, namespace: kubeflow}
reason: Pulled
message: image pulled
type: Normal
"#;

#[test]
fn a_health_check_reads_pods_claims_and_their_events_and_reports_findings() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(CLUSTER).unwrap();
    let script = r#"
let ns = param("namespace", "kubeflow");
step("pods ready", || {
    for p in kube::pods(ns) {
        let ready = p.status.conditions.filter(|c| c.type == "Ready" && c.status == "True");
        if ready.is_empty() {
            let why = p.status.containerStatuses[0].state.waiting.reason;
            finding("KF-POD-NOT-READY", "error", `${ns}/${p.metadata.name}`, why, "read its previous log");
        }
    }
});
step("claims bound", || {
    for c in kube::pvcs(ns) {
        if c.status.phase != "Bound" {
            let events = kube::events(ns, c.metadata.name);
            finding("KF-PVC-PENDING", "error", `${ns}/${c.metadata.name}`, events[0].message, "create the StorageClass");
        }
    }
});
let ui = step("ui by label", || kube::list("pods", ns, #{ labels: "app=ml-pipeline-ui" }).len());
step("gone is unit", || ensure(kube::get("Pod", ns, "nope") == (), "a missing pod must read as ()"));
step("namespace is cluster-scoped", || kube::get("Namespace", ns).metadata.name);
"#;
    let (code, report, err) = run(&kf, &cfg, "health", script, &[]);
    assert_eq!(code, 3, "{err}\n{report:#}");
    let findings: Vec<(String, String, String)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            (
                "KF-POD-NOT-READY".to_string(),
                "kubeflow/ml-pipeline-7d9c".to_string(),
                "CrashLoopBackOff".to_string()
            ),
            (
                "KF-PVC-PENDING".to_string(),
                "kubeflow/minio-pvc".to_string(),
                "storageclass.storage.k8s.io \"fast\" not found".to_string()
            ),
        ]
    );
    assert_eq!(report["steps"][2]["output"], 1, "{report:#}");
    assert_eq!(report["steps"][3]["outcome"], "ok", "{report:#}");
    assert_eq!(report["steps"][4]["output"], "kubeflow");
    // Reads only: the health check sent no write.
    assert!(server
        .requests()
        .iter()
        .all(|r| r.method == "GET" || r.path.contains("accessreviews")));
}

const RBAC: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default-editor, namespace: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pipelines-edit, namespace: team-a}
rules:
- apiGroups: [argoproj.io]
  resources: [workflows]
  verbs: [create, list]
- apiGroups: [""]
  resources: [pods]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-editor, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pipelines-edit}
subjects: [{kind: ServiceAccount, name: default-editor, namespace: team-a}]
"#;

#[test]
fn can_i_asks_the_authorizer_for_a_profiles_service_account() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(RBAC).unwrap();
    let script = r#"
let sa = "system:serviceaccount:team-a:default-editor";
step("editor", || #{
    workflows: kube::can_i("create", "workflows.argoproj.io", "team-a", sa),
    pods: kube::can_i("create", "pods", "team-a", sa),
    pvcs: kube::can_i("create", "persistentvolumeclaims", "team-a", sa),
    elsewhere: kube::can_i("create", "pods", "kubeflow", sa),
    me: kube::can_i("delete", "pods", "kubeflow"),
});
"#;
    let (code, report, err) = run(&kf, &cfg, "rbac", script, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        report["steps"][0]["output"],
        serde_json::json!({"workflows": true, "pods": true, "pvcs": false, "elsewhere": false, "me": true})
    );
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: kubeflow}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: main, image: x}}]}}\n---\n"
    )
}

const CHANGES: &str = r#"
step("scale down", || kube::scale("Deployment", "kubeflow", "ml-pipeline-scheduledworkflow", 0));
step("apply", || kube::apply(#{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "kfguard-note", namespace: "kubeflow" }, data: #{ restored: "yes" } }));
step("delete", || kube::delete("ConfigMap", "kubeflow", "stale"));
"#;

#[test]
fn a_dry_run_sends_every_change_as_a_dry_run_and_plans_it() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: kubeflow}}\n---\n{}apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: stale, namespace: kubeflow}}\n",
            deployment("ml-pipeline-scheduledworkflow", 1)
        ))
        .unwrap();
    server.clear_requests();
    let (code, report, err) = run(&kf, &cfg, "changes", CHANGES, &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter(|r| !r.path.contains("accessreviews"))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert!(writes.iter().all(|r| r.dry_run), "{writes:#?}");
    let planned: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["planned"].as_array().cloned().unwrap_or_default())
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        planned,
        [
            "scale Deployment kubeflow/ml-pipeline-scheduledworkflow to 0",
            "apply ConfigMap kubeflow/kfguard-note (new)",
            "delete ConfigMap kubeflow/stale",
        ]
    );
    let deploy = server
        .get(
            "apps/v1",
            "Deployment",
            Some("kubeflow"),
            "ml-pipeline-scheduledworkflow",
        )
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert!(server
        .get("v1", "ConfigMap", Some("kubeflow"), "stale")
        .is_some());
    assert!(server
        .get("v1", "ConfigMap", Some("kubeflow"), "kfguard-note")
        .is_none());

    // For real: the same runbook changes the cluster, and scale returns the count it had.
    let (code, report, err) = run(&kf, &cfg, "changes", CHANGES, &[]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    assert_eq!(report["steps"][0]["output"], 1);
    let deploy = server
        .get(
            "apps/v1",
            "Deployment",
            Some("kubeflow"),
            "ml-pipeline-scheduledworkflow",
        )
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 0);
    assert!(server
        .get("v1", "ConfigMap", Some("kubeflow"), "stale")
        .is_none());
    assert_eq!(
        server
            .get("v1", "ConfigMap", Some("kubeflow"), "kfguard-note")
            .unwrap()["data"]["restored"],
        "yes"
    );

    // A second dry run of the apply shows the field diff against the live object.
    let (code, report, err) = run(
        &kf,
        &cfg,
        "again",
        "step(\"apply\", || kube::apply(#{ apiVersion: \"v1\", kind: \"ConfigMap\", metadata: #{ name: \"kfguard-note\", namespace: \"kubeflow\" }, data: #{ restored: \"twice\" } }));",
        &["--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        report["steps"][0]["planned"][0],
        "apply ConfigMap kubeflow/kfguard-note: ~ data.restored: \"yes\" -> \"twice\""
    );
}

#[test]
fn a_change_outside_a_step_is_refused_by_the_lint_and_at_run_time() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n")
        .unwrap();
    let script = "step(\"read\", || kube::pods(\"kubeflow\"));\nkube::delete(\"Pod\", \"kubeflow\", \"x\");\n";
    kf.write("rb/outside.rhai", script);
    let out = kf.run(&["runbook", "check", "rb/outside.rhai"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("outside.rhai:2:") && text.contains("kube::delete is outside a step"),
        "{text}"
    );
    let (code, report, err) = run(&kf, &cfg, "outside", script, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("kube::delete is outside a step"),
        "{report:#}"
    );
    assert!(server.requests().iter().all(|r| r.method != "DELETE"));
}

#[test]
fn a_wait_is_cut_short_by_the_runs_deadline() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n")
        .unwrap();
    let started = Instant::now();
    let (code, report, err) = run(
        &kf,
        &cfg,
        "wait",
        "step(\"wait\", || kube::wait(\"Deployment\", \"kubeflow\", \"never\", \"Available\"));",
        &["--timeout", "2s"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        report["steps"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--timeout"),
        "{report:#}"
    );
}

/// A namespaced kubeflow.org CRD at v1.
fn crd(plural: &str, kind: &str) -> String {
    common::runbook::crd("kubeflow.org", plural, kind, "v1", "Namespaced")
}

#[test]
fn reconciling_crds_applies_the_missing_one_and_the_diff_is_then_empty() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(&crd("profiles", "Profile")).unwrap();
    kf.write(
        "rb/crds.yaml",
        &format!(
            "{}{}",
            crd("profiles", "Profile"),
            crd("poddefaults", "PodDefault")
        ),
    );
    let script = r#"
let pinned = crds::load("crds.yaml");
let before = step("diff", || crds::diff(pinned));
step("apply", || { confirm(`apply ${before.missing.len()} CRDs?`); crds::apply(pinned) });
step("after", || {
    let d = crds::diff(pinned);
    ensure(d.empty, d.text);
    kube::list("PodDefault", "").len()
});
"#;
    let (code, report, err) = run(&kf, &cfg, "reconcile", script, &["--dry-run", "--yes"]);
    // A dry run plans both CRDs and changes nothing, so the last step's diff still differs.
    assert_eq!(code, 1, "{err}\n{report:#}");
    assert_eq!(
        report["steps"][0]["output"]["missing"],
        serde_json::json!(["poddefaults.kubeflow.org"])
    );
    assert_eq!(
        report["steps"][1]["planned"],
        serde_json::json!([
            "apply CustomResourceDefinition poddefaults.kubeflow.org",
            "apply CustomResourceDefinition profiles.kubeflow.org"
        ])
    );
    assert!(server
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "poddefaults.kubeflow.org"
        )
        .is_none());

    server.clear_requests();
    let (code, report, err) = run(&kf, &cfg, "reconcile", script, &["--yes"]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    assert_eq!(report["steps"][1]["output"], 2);
    assert_eq!(report["steps"][2]["output"], 0);
    let applied: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("customresourcedefinitions"))
        .collect();
    assert_eq!(applied.len(), 2, "{applied:#?}");
    assert!(applied
        .iter()
        .all(|r| r.field_manager.as_deref() == Some("kfguard")));
}

const WORKFLOW_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: workflows.argoproj.io}\nspec:\n  group: argoproj.io\n  scope: Namespaced\n  names: {plural: workflows, singular: workflow, kind: Workflow, listKind: WorkflowList, shortNames: [wf]}\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n---\n";

#[test]
fn stuck_workflows_are_the_old_running_one_and_the_failed_one_with_its_step() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let wf = |name: &str, status: &str| {
        format!("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}, namespace: team-a}}\nspec: {{entrypoint: main}}\nstatus: {status}\n---\n")
    };
    server
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a}}\n---\n{WORKFLOW_CRD}{}{}{}",
            wf("hung", "{phase: Running, startedAt: \"2020-01-01T00:00:00Z\"}"),
            wf("broke", "{phase: Failed, startedAt: \"2020-01-01T00:00:00Z\", nodes: {broke-1: {type: Pod, phase: Failed, displayName: train, message: OOMKilled}}}"),
            wf("ok", "{phase: Succeeded}"),
        ))
        .unwrap();
    let script = r#"
step("stuck", || {
    ensure(argo::workflows("team-a").len() == 3, "three workflows");
    argo::stuck("team-a", "1h").map(|w| `${w.name} ${w.phase} ${w.failed_step}`)
});
"#;
    let (code, report, err) = run(&kf, &cfg, "argo", script, &[]);
    assert_eq!(code, 0, "{err}\n{report:#}");
    let mut got: Vec<String> = report["steps"][0]["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["broke Failed train", "hung Running "]);
}

#[test]
fn an_unknown_kind_fails_the_step_with_what_to_write() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n")
        .unwrap();
    let (code, _, err) = run(
        &kf,
        &cfg,
        "kind",
        "step(\"list\", || kube::list(\"Pods2\", \"kubeflow\"));",
        &[],
    );
    assert_eq!(code, 1);
    let out = kf.run(&[
        "--kubeconfig",
        cfg.to_str().unwrap(),
        "runbook",
        "run",
        "rb/kind.rhai",
    ]);
    let line = error_line(&out);
    assert!(line.contains("step `list` failed"), "{line}\n{err}");
    assert!(err.contains("the cluster serves no kind `Pods2`"), "{err}");
}

#[test]
fn a_crashing_pods_previous_log_and_a_services_endpoints_are_read() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server.seed_yaml(CLUSTER).unwrap();
    server
        .seed_yaml("apiVersion: v1\nkind: Endpoints\nmetadata: {name: ml-pipeline, namespace: kubeflow}\nsubsets: []\n")
        .unwrap();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9c",
        "main",
        true,
        "starting\nconnecting to mysql\nF1201 cannot reach mysql:3306: connection refused\n",
    );
    let script = r#"
step("why it crashed", || kube::logs("kubeflow", "ml-pipeline-7d9c", #{ previous: true, tail: 1 }));
step("endpoints", || {
    let ep = kube::get("Endpoints", "kubeflow", "ml-pipeline");
    ep.subsets.len()
});
step("no such option", || kube::logs("kubeflow", "ml-pipeline-7d9c", #{ tial: 1 }));
"#;
    let (code, report, err) = run(&kf, &cfg, "logs", script, &[]);
    assert_eq!(code, 1, "{err}\n{report:#}");
    assert_eq!(
        report["steps"][0]["output"],
        "F1201 cannot reach mysql:3306: connection refused\n"
    );
    assert_eq!(report["steps"][1]["output"], 0);
    assert!(
        report["steps"][2]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown option `tial`"),
        "{report:#}"
    );
}

#[test]
fn a_secret_a_runbook_reads_is_usable_but_never_journaled() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    // "mysql-root-pw-7731" in base64.
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: mysql-secret, namespace: kubeflow}\ndata: {password: bXlzcWwtcm9vdC1wdy03NzMx}\nstringData: {}\n")
        .unwrap();
    let script = r#"
step("read", || {
    let s = kube::get("Secret", "kubeflow", "mysql-secret");
    ensure(s.data.password.len() > 0, "the script sees the value");
    info(`password is ${s.data.password}`);
    s.data
});
"#;
    let (code, report, err) = run(&kf, &cfg, "secret", script, &[]);
    assert_eq!(code, 0, "{err}");
    let journals: String = all_text(&kf.path().join(".kfguard"));
    for text in [report.to_string(), err, journals] {
        assert!(!text.contains("bXlzcWwtcm9vdC1wdy03NzMx"), "{text}");
        assert!(!text.contains("mysql-root-pw-7731"), "{text}");
    }
    assert_eq!(report["steps"][0]["output"]["password"], "<redacted>");
    assert_eq!(report["steps"][0]["messages"][0], "password is <redacted>");
}

#[test]
fn confirm_on_a_terminal_shows_the_blast_radius_of_the_step_first() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    server
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: kubeflow}}\n---\n{}",
            deployment("ml-pipeline-persistenceagent", 1)
        ))
        .unwrap();
    kf.write(
        "rb/radius.rhai",
        "step(\"quiesce\", || {\n  kube::scale(\"Deployment\", \"kubeflow\", \"ml-pipeline-persistenceagent\", 0);\n  confirm(\"go on?\");\n});\n",
    );
    let (code, screen) = crate::runbooks::run_on_a_terminal(
        &kf,
        "rb/radius.rhai",
        &["--dry-run", "--kubeconfig", cfg.to_str().unwrap()],
        "go on? [y/N]",
        "y",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("  will: scale Deployment kubeflow/ml-pipeline-persistenceagent to 0"),
        "{screen}"
    );
}
