//! Drift: `kfguard diff` of a live cluster (the stand-in API server) against a Kubernetes
//! backup, and `kfguard crds diff` of its CRDs against pinned files.

use crate::common;

use std::path::{Path, PathBuf};

use common::{code, stderr, Kf};
use kube_standin::{Options, Server};
use serde_json::{json, Value};

/// A small Kubeflow-like cluster: the kubeflow namespace, one profile namespace, two CRDs
/// with custom resources, config maps and RBAC, plus objects outside the selection.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Namespace
metadata:
  name: kubeflow-user-alice
  labels: {app.kubernetes.io/part-of: kubeflow-profile}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: profiles.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Cluster
  names: {plural: profiles, singular: profile, kind: Profile, listKind: ProfileList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: notebooks.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: notebooks, singular: notebook, kind: Notebook, listKind: NotebookList}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              template:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      containers:
                        type: array
                        items:
                          type: object
                          required: [name]
                          properties:
                            name: {type: string}
                            image: {type: string}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {plural: certificates, singular: certificate, kind: Certificate}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: kubeflow.org/v1
kind: Profile
metadata: {name: kubeflow-user-alice}
spec:
  owner: {kind: User, name: alice@example.com}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pipeline-install-config, namespace: kubeflow}
data: {appVersion: 2.5.0, bucketName: mlpipeline, dbHost: mysql, dbPort: "3306"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kfp-launcher, namespace: kubeflow-user-alice}
data: {defaultPipelineRoot: "minio://mlpipeline/v2/artifacts"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated, namespace: default}
data: {a: b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-edit}
rules:
- {apiGroups: [kubeflow.org], resources: [notebooks], verbs: [get, list, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: namespaceAdmin
  namespace: kubeflow-user-alice
  annotations: {role: admin, user: alice@example.com}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice@example.com}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-editor, namespace: kubeflow-user-alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}
subjects:
- {kind: ServiceAccount, name: default-editor, namespace: kubeflow-user-alice}
---
apiVersion: kubeflow.org/v1
kind: Notebook
metadata: {name: nb, namespace: kubeflow-user-alice}
spec:
  template: {spec: {containers: [{name: nb, image: "jupyter-scipy:v1.9.0"}]}}
"#;

/// A stand-in seeded with `CLUSTER`, its kubeconfig written into the workspace.
fn cluster(kf: &Kf) -> (Server, PathBuf) {
    let server = Server::start(Options::default());
    server.seed_yaml(CLUSTER).expect("seed the cluster");
    let path = kf.path().join("standin.kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    (server, path)
}

/// Runs kfguard with `--output json`, whatever the exit code; returns the code and stdout.
fn json_run(kf: &Kf, kubeconfig: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--output",
        "json",
    ];
    all.extend(args);
    let out = kf.run(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "kfguard {all:?} exited {:?}; stdout is not one JSON document ({e}):\n{stdout}\nstderr: {}",
            out.status.code(),
            stderr(&out)
        )
    });
    (code(&out), v)
}

/// One request to the stand-in's HTTP API, as `kubectl` would send it; expects a 2xx.
fn api(server: &Server, method: &str, path: &str, merge_patch: Option<Value>) {
    let status = common::kube::api(server, method, path, merge_patch.as_ref());
    assert!(
        (200..300).contains(&status),
        "{method} {path} answered HTTP {status}"
    );
}

/// `group/Kind ns/name` of a serialised object key.
fn key(k: &Value) -> String {
    let group = match k["group"].as_str().unwrap() {
        "" => "core",
        g => g,
    };
    match k["namespace"].as_str() {
        Some(ns) => format!(
            "{group}/{} {ns}/{}",
            k["kind"].as_str().unwrap(),
            k["name"].as_str().unwrap()
        ),
        None => format!(
            "{group}/{} {}",
            k["kind"].as_str().unwrap(),
            k["name"].as_str().unwrap()
        ),
    }
}

fn keys(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(key).collect()
}

#[test]
fn diff_reports_exactly_what_changed_since_the_backup() {
    let kf = Kf::local();
    let (server, kubeconfig) = cluster(&kf);
    let kc = kubeconfig.to_str().unwrap();
    kf.ok(&["init"]);
    kf.ok(&["--kubeconfig", kc, "backup", "--only", "kubernetes"]);

    // Right after the backup nothing has drifted.
    let (status, report) = json_run(&kf, &kubeconfig, &["diff", "latest"]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["added"], json!([]));
    assert_eq!(report["removed"], json!([]));
    assert_eq!(report["changed"], json!([]));
    assert_eq!(report["server"], server.url());
    assert_eq!(report["snapshot"].as_str().unwrap().len(), 64);
    let text = kf.ok(&["--kubeconfig", kc, "diff", "latest"]);
    assert!(text.contains("no drift"), "{text}");

    // One field edited, one object deleted, one added; and a change outside the selection.
    api(
        &server,
        "PATCH",
        "/api/v1/namespaces/kubeflow/configmaps/pipeline-install-config",
        Some(json!({"data": {"bucketName": "artifacts"}})),
    );
    api(
        &server,
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kubeflow-user-alice/rolebindings/namespaceAdmin",
        None,
    );
    server
        .seed_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: added-later, namespace: kubeflow-user-alice}\ndata: {x: y}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: also-unrelated, namespace: default}\n",
        )
        .unwrap();

    let (status, report) = json_run(&kf, &kubeconfig, &["diff", "latest"]);
    assert_eq!(status, 3, "drift exits 3: {report:#}");
    assert_eq!(
        keys(&report["added"]),
        ["core/ConfigMap kubeflow-user-alice/added-later"]
    );
    assert_eq!(
        keys(&report["removed"]),
        ["rbac.authorization.k8s.io/RoleBinding kubeflow-user-alice/namespaceAdmin"]
    );
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report:#}");
    assert_eq!(
        key(&changed[0]["object"]),
        "core/ConfigMap kubeflow/pipeline-install-config"
    );
    assert_eq!(
        changed[0]["changes"],
        json!([{"path": "data.bucketName", "before": "mlpipeline", "after": "artifacts"}])
    );

    // The text names each object once, with the field under the changed one.
    let out = kf.run(&["--kubeconfig", kc, "diff", "latest"]);
    assert_eq!(code(&out), 3);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "+ core/ConfigMap kubeflow-user-alice/added-later",
            "- rbac.authorization.k8s.io/RoleBinding kubeflow-user-alice/namespaceAdmin",
            "~ core/ConfigMap kubeflow/pipeline-install-config",
            r#"    ~ data.bucketName: "mlpipeline" -> "artifacts""#,
        ],
        "{text}"
    );
    assert!(lines[4].contains("1 added, 1 removed, 1 changed"), "{text}");
}

#[test]
fn diff_of_an_unknown_snapshot_or_unreachable_cluster_fails() {
    let kf = Kf::local();
    let (server, kubeconfig) = cluster(&kf);
    kf.ok(&["init"]);
    let kc = kubeconfig.to_str().unwrap();
    let out = kf.run(&["--kubeconfig", kc, "diff", "latest"]);
    assert_ne!(code(&out), 0);
    assert_ne!(code(&out), 3);
    kf.ok(&["--kubeconfig", kc, "backup", "--only", "kubernetes"]);
    drop(server);
    let out = kf.run(&["--kubeconfig", kc, "diff", "latest"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        common::error_line(&out).contains("127.0.0.1"),
        "{}",
        stderr(&out)
    );
}

/// The live CRDs of `CLUSTER` in the configured groups, pinned as they are.
const PINNED_EQUAL: &str = r"
apiVersion: v1
kind: List
items:
- apiVersion: apiextensions.k8s.io/v1
  kind: CustomResourceDefinition
  metadata: {name: profiles.kubeflow.org}
  spec:
    group: kubeflow.org
    scope: Cluster
    names: {plural: profiles, kind: Profile}
    versions:
    - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: notebooks.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: notebooks, kind: Notebook}
  versions:
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              template:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      containers:
                        type: array
                        items:
                          type: object
                          required: [name]
                          properties:
                            name: {type: string}
                            image: {type: string}
";

/// Pinned CRDs the live cluster has drifted from: notebooks pinned without v1beta1, with an
/// older storage version and a `resources` property the live schema lost; a pinned CRD the
/// cluster lacks; profiles not pinned at all.
const PINNED_DRIFTED: &str = r"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: notebooks.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: notebooks, kind: Notebook}
  versions:
  - {name: v1alpha1, served: true, storage: true}
  - name: v1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              template:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      containers:
                        type: array
                        items:
                          type: object
                          required: [name]
                          properties:
                            name: {type: string}
                            image: {type: string}
                            resources: {type: object}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: tensorboards.tensorboard.kubeflow.org}
spec:
  group: tensorboard.kubeflow.org
  scope: Namespaced
  names: {plural: tensorboards, kind: Tensorboard}
  versions:
  - {name: v1alpha1, served: true, storage: true}
";

#[test]
fn crds_diff_against_pinned_files() {
    let kf = Kf::local();
    let (_server, kubeconfig) = cluster(&kf);

    let equal = kf.write("crds.yaml", PINNED_EQUAL);
    let (status, report) = json_run(
        &kf,
        &kubeconfig,
        &["crds", "diff", "--against", equal.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["missing"], json!([]));
    assert_eq!(
        report["extra"],
        json!([]),
        "cert-manager is not a configured group"
    );
    assert_eq!(report["changed"], json!([]));
    assert_eq!(
        report["identical"],
        json!(["notebooks.kubeflow.org", "profiles.kubeflow.org"])
    );

    let drifted = kf.write("old-crds.yaml", PINNED_DRIFTED);
    let (status, report) = json_run(
        &kf,
        &kubeconfig,
        &["crds", "diff", "--against", drifted.to_str().unwrap()],
    );
    assert_eq!(status, 3, "{report:#}");
    assert_eq!(
        report["missing"],
        json!(["tensorboards.tensorboard.kubeflow.org"])
    );
    assert_eq!(report["extra"], json!(["profiles.kubeflow.org"]));
    assert_eq!(report["changed"][0]["name"], "notebooks.kubeflow.org");
    assert_eq!(
        report["changed"][0]["changes"],
        json!([
            {"change": "served_version_added", "version": "v1beta1"},
            {"change": "served_version_removed", "version": "v1alpha1"},
            {"change": "storage_version", "before": "v1alpha1", "after": "v1"},
            {"change": "property_removed", "version": "v1", "path": "spec.template.spec.containers[].resources"},
        ])
    );

    let out = kf.run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "crds",
        "diff",
        "--against",
        drifted.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3);
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "- tensorboards.tensorboard.kubeflow.org (pinned, not live)",
        "+ profiles.kubeflow.org (live, not pinned)",
        "~ notebooks.kubeflow.org",
        "    ~ storage version: v1alpha1 -> v1",
        "    - v1 schema spec.template.spec.containers[].resources",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains("1 missing, 1 extra, 1 changed, 0 identical"),
        "{text}"
    );
}

#[test]
fn crds_diff_refuses_a_bad_pinned_file() {
    let kf = Kf::local();
    let (server, kubeconfig) = cluster(&kf);
    let kc = kubeconfig.to_str().unwrap();

    let out = kf.run(&[
        "--kubeconfig",
        kc,
        "crds",
        "diff",
        "--against",
        "nowhere/crds.yaml",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        common::error_line(&out).contains("nowhere/crds.yaml"),
        "{}",
        stderr(&out)
    );

    let mixed = kf.write(
        "mixed.yaml",
        &format!("{PINNED_EQUAL}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: stray}}\n"),
    );
    server.clear_requests();
    let out = kf.run(&[
        "--kubeconfig",
        kc,
        "crds",
        "diff",
        "--against",
        mixed.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = common::error_line(&out);
    assert!(
        err.contains("mixed.yaml")
            && err.contains("document 3")
            && err.contains("ConfigMap (stray)"),
        "{err}"
    );
    assert!(
        server.requests().is_empty(),
        "a bad file is refused before asking the cluster"
    );
}

#[test]
fn crds_diff_refuses_an_empty_pinned_file_as_a_usage_error() {
    let kf = Kf::local();
    let (server, kubeconfig) = cluster(&kf);
    let kc = kubeconfig.to_str().unwrap();
    for (name, text) in [
        ("empty.yaml", ""),
        ("comments.yaml", "# pinned CRDs go here\n---\n"),
        ("list.yaml", "apiVersion: v1\nkind: List\nitems: []\n"),
    ] {
        let file = kf.write(name, text);
        server.clear_requests();
        let out = kf.run(&[
            "--kubeconfig",
            kc,
            "crds",
            "diff",
            "--against",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 2, "{name}: {}", stderr(&out));
        let err = common::error_line(&out);
        assert!(
            err.contains(name) && err.contains("holds no CustomResourceDefinition"),
            "{err}"
        );
        assert!(
            server.requests().is_empty(),
            "{name}: refused before asking the cluster"
        );
    }
}

/// A Secret's values as the cluster holds them (base64) and as they read (plain): none of
/// these, nor the prefix they share, may ever be printed.
const SECRET_OLD: &str = "a2YtdG9rZW4tT0xELTdmM2E="; // kf-token-OLD-7f3a
const SECRET_NEW: &str = "a2YtdG9rZW4tTkVXLTljMWU="; // kf-token-NEW-9c1e
const SECRET_SHOWN: [&str; 4] = ["a2YtdG9rZW4", "kf-token", "7f3a", "9c1e"];

fn assert_no_secret(out: &std::process::Output) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for s in SECRET_SHOWN {
        assert!(!all.contains(s), "{s} printed:\n{all}");
    }
}

#[test]
fn diff_says_a_secret_changed_without_showing_its_values() {
    let kf = Kf::local();
    kf.write("kfguard.toml", "[kubernetes]\ninclude_secrets = true\n");
    let (server, kubeconfig) = cluster(&kf);
    server
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: kfp-token, namespace: kubeflow}}\ntype: Opaque\ndata: {{token: {SECRET_OLD}, gone: {SECRET_OLD}}}\n"
        ))
        .unwrap();
    let kc = kubeconfig.to_str().unwrap();
    kf.ok(&["init"]);
    kf.ok(&["--kubeconfig", kc, "backup", "--only", "kubernetes"]);
    api(
        &server,
        "PATCH",
        "/api/v1/namespaces/kubeflow/secrets/kfp-token",
        Some(
            json!({"data": {"token": SECRET_NEW, "gone": null, "added": SECRET_NEW}, "type": "kfp/token"}),
        ),
    );

    let out = kf.run(&["--kubeconfig", kc, "diff", "latest"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_no_secret(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "~ core/Secret kubeflow/kfp-token",
        "    ~ data.token: changed (value hidden)",
        "    + data.added: added (value hidden)",
        "    - data.gone: removed (value hidden)",
        r#"    ~ type: "Opaque" -> "kfp/token""#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }

    let out = kf.run(&["--kubeconfig", kc, "--output", "json", "diff", "latest"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_no_secret(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = &report["changed"][0]["changes"];
    let token = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "data.token")
        .unwrap();
    assert_eq!(
        token,
        &json!({"path": "data.token", "before": "(value hidden)", "after": "(value hidden)", "redacted": true})
    );
}

/// Katib's kinds: an Experiment owns its Trial and Suggestion.
const KATIB: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: experiments.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: experiments, singular: experiment, kind: Experiment}
  versions:
  - {name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: trials.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: trials, singular: trial, kind: Trial}
  versions:
  - {name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: suggestions.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: suggestions, singular: suggestion, kind: Suggestion}
  versions:
  - {name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: tune, namespace: kubeflow-user-alice}
spec: {maxTrialCount: 3}
---
apiVersion: kubeflow.org/v1beta1
kind: Trial
metadata:
  name: tune-abc
  namespace: kubeflow-user-alice
  ownerReferences:
  - {apiVersion: kubeflow.org/v1beta1, kind: Experiment, name: tune, uid: 11111111-0000-0000-0000-000000000001, controller: true, blockOwnerDeletion: true}
spec: {parameterAssignments: [{name: lr, value: "0.01"}]}
---
apiVersion: kubeflow.org/v1beta1
kind: Suggestion
metadata:
  name: tune
  namespace: kubeflow-user-alice
  ownerReferences:
  - {apiVersion: kubeflow.org/v1beta1, kind: Experiment, name: tune, uid: 11111111-0000-0000-0000-000000000001, controller: true, blockOwnerDeletion: true}
spec: {algorithm: {algorithmName: random}, requests: 3}
"#;

#[test]
fn no_drift_right_after_a_restore_that_relinked_owners_but_a_changed_owner_is_drift() {
    let kf = Kf::local();
    let (source, src_cfg) = cluster(&kf);
    source.seed_yaml(KATIB).unwrap();
    kf.ok(&["init"]);
    kf.ok(&[
        "--kubeconfig",
        src_cfg.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ]);

    // Restored into an empty cluster, the owners get new UIDs and the owned objects follow.
    let target = Server::start(Options::default());
    let dst_cfg = kf.path().join("target.kubeconfig");
    target.write_kubeconfig(&dst_cfg).unwrap();
    let dst = dst_cfg.to_str().unwrap();
    kf.ok(&[
        "--kubeconfig",
        dst,
        "restore",
        "latest",
        "--only",
        "kubernetes",
    ]);
    let exp = target
        .get(
            "kubeflow.org/v1beta1",
            "Experiment",
            Some("kubeflow-user-alice"),
            "tune",
        )
        .unwrap();
    let uid = exp["metadata"]["uid"].as_str().unwrap();
    let source_exp = source
        .get(
            "kubeflow.org/v1beta1",
            "Experiment",
            Some("kubeflow-user-alice"),
            "tune",
        )
        .unwrap();
    assert_ne!(json!(uid), source_exp["metadata"]["uid"]);
    assert_ne!(uid, "11111111-0000-0000-0000-000000000001");
    for (kind, name) in [("Trial", "tune-abc"), ("Suggestion", "tune")] {
        let o = target
            .get(
                "kubeflow.org/v1beta1",
                kind,
                Some("kubeflow-user-alice"),
                name,
            )
            .unwrap();
        assert_eq!(o["metadata"]["ownerReferences"][0]["uid"], uid, "{kind}");
    }

    let (status, report) = json_run(&kf, &dst_cfg, &["diff", "latest"]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["changed"], json!([]));

    // Another owner is drift, named by what changed, never by UID.
    api(
        &target,
        "PATCH",
        "/apis/kubeflow.org/v1beta1/namespaces/kubeflow-user-alice/trials/tune-abc",
        Some(
            json!({"metadata": {"ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "tune-2", "uid": uid, "controller": true, "blockOwnerDeletion": true}]}}),
        ),
    );
    let (status, report) = json_run(&kf, &dst_cfg, &["diff", "latest"]);
    assert_eq!(status, 3, "{report:#}");
    assert_eq!(
        key(&report["changed"][0]["object"]),
        "kubeflow.org/Trial kubeflow-user-alice/tune-abc"
    );
    assert_eq!(
        report["changed"][0]["changes"],
        json!([{"path": "metadata.ownerReferences[0].name", "before": "tune", "after": "tune-2"}]),
        "{report:#}"
    );
}
