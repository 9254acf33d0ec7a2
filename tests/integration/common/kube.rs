//! A Kubeflow-like cluster for the stand-in API server: profiles with their namespaces, service
//! accounts, bindings and Istio policies; KFP, Argo, Katib and Istio CRDs (one over 256 KiB);
//! custom resources, schedules and workflows; and objects a backup must leave out. Also what a
//! backup of it must hold, and smaller fixtures: a Secret, kinds that refer to others.

use std::collections::BTreeSet;
use std::path::PathBuf;

use kube_standin::{Options, Server};
use serde_json::Value;

use super::Kf;

/// A started stand-in with its kubeconfig written into the workspace.
pub(crate) fn standin(kf: &Kf, name: &str) -> (Server, PathBuf) {
    let server = Server::start(Options::default());
    let path = kf.path().join(format!("{name}.kubeconfig"));
    server.write_kubeconfig(&path).unwrap();
    (server, path)
}

fn crd(group: &str, plural: &str, kind: &str, version: &str, scope: &str, schema: &str) -> String {
    format!(
        r"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: {scope}
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
  - name: {version}
    served: true
    storage: true
    schema:
      openAPIV3Schema:
{schema}
---
",
        singular = kind.to_lowercase(),
    )
}

fn open_schema() -> String {
    "        type: object\n        x-kubernetes-preserve-unknown-fields: true".into()
}

/// A schema of about 300 KiB, like Katib's or KServe's real CRDs: too big for the
/// last-applied annotation of client-side apply.
fn huge_schema() -> String {
    let mut s = String::from("        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n");
    for i in 0..1500 {
        s.push_str(&format!(
            "              field{i:04}:\n                type: string\n                description: \"{}\"\n",
            "Describes one tunable of a trial template, as long as the real descriptions are. ".repeat(2)
        ));
    }
    s
}

/// One profile: the Profile, its namespace and what the profile controller would create in it.
fn profile(name: &str, owner: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {name}
  labels: {{app.kubernetes.io/part-of: kubeflow-profile, katib.kubeflow.org/metrics-collector-injection: enabled}}
---
apiVersion: kubeflow.org/v1
kind: Profile
metadata: {{name: {name}}}
spec:
  owner: {{kind: User, name: {owner}}}
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
metadata:
  name: namespaceAdmin
  namespace: {name}
  annotations: {{role: admin, user: {owner}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-admin}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {owner}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: default-editor, namespace: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}}
subjects:
- {{kind: ServiceAccount, name: default-editor, namespace: {name}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ns-owner-access-istio, namespace: {name}}}
spec:
  rules:
  - from:
    - source: {{principals: ["cluster.local/ns/{name}/sa/default-editor"]}}
    when:
    - {{key: "request.headers[kubeflow-userid]", values: ["{owner}"]}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: kf-resource-quota, namespace: {name}}}
spec:
  hard: {{cpu: "8", memory: 16Gi}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: default-install-config, namespace: {name}}}
data: {{profile: "{name}", note: "kept"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: workspace
  namespace: {name}
  annotations: {{pv.kubernetes.io/bind-completed: "yes"}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 5Gi}}}}
  volumeName: pvc-0a1b2c
---
apiVersion: kubeflow.org/v1
kind: Notebook
metadata: {{name: nb, namespace: {name}, labels: {{app: nb}}}}
spec:
  template: {{spec: {{containers: [{{name: nb, image: "kubeflownotebookswg/jupyter-scipy:v1.9.0"}}]}}}}
---
apiVersion: kubeflow.org/v1beta1
kind: ScheduledWorkflow
metadata: {{name: nightly-train, namespace: {name}}}
spec:
  enabled: true
  maxConcurrency: 1
  trigger: {{cronSchedule: {{cron: "0 0 2 * * *"}}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: nightly-train-001
  namespace: {name}
  ownerReferences:
  - {{apiVersion: kubeflow.org/v1beta1, kind: ScheduledWorkflow, name: nightly-train, uid: 00000000-0000-0000-0000-00000000dead, controller: true}}
spec: {{entrypoint: main}}
status: {{phase: Running}}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: finished-run
  namespace: {name}
  labels: {{workflows.argoproj.io/completed: "true"}}
spec: {{entrypoint: main}}
status: {{phase: Succeeded}}
---
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: tune, namespace: {name}}}
spec: {{field0001: "lr", field0002: "batch"}}
---
"#
    )
}

/// The whole cluster as multi-document YAML.
pub(crate) fn cluster_yaml() -> String {
    let mut y = String::new();
    y.push_str(&crd(
        "kubeflow.org",
        "profiles",
        "Profile",
        "v1",
        "Cluster",
        &open_schema(),
    ));
    y.push_str(&crd(
        "kubeflow.org",
        "notebooks",
        "Notebook",
        "v1",
        "Namespaced",
        &open_schema(),
    ));
    y.push_str(&crd(
        "kubeflow.org",
        "scheduledworkflows",
        "ScheduledWorkflow",
        "v1beta1",
        "Namespaced",
        &open_schema(),
    ));
    y.push_str(&crd(
        "kubeflow.org",
        "experiments",
        "Experiment",
        "v1beta1",
        "Namespaced",
        &huge_schema(),
    ));
    y.push_str(&crd(
        "argoproj.io",
        "workflows",
        "Workflow",
        "v1alpha1",
        "Namespaced",
        &open_schema(),
    ));
    y.push_str(&crd(
        "security.istio.io",
        "authorizationpolicies",
        "AuthorizationPolicy",
        "v1",
        "Namespaced",
        &open_schema(),
    ));
    y.push_str(
        r#"apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pipeline-install-config, namespace: kubeflow}
data: {appVersion: 2.5.0, bucketName: mlpipeline, dbHost: mysql, dbPort: "3306", pipelineDb: mlpipeline, mlmdDb: metadb, cacheDb: cachedb}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-root-ca.crt, namespace: kubeflow}
data: {ca.crt: "minted by the cluster"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated, namespace: default}
data: {a: b}
---
apiVersion: v1
kind: Secret
metadata: {name: mysql-secret, namespace: kubeflow}
type: Opaque
data: {username: cm9vdA==, password: c2VjcmV0}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ml-pipeline, namespace: kubeflow}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kubeflow-admin
  labels: {rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin: "true"}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-edit}
rules:
- {apiGroups: [kubeflow.org], resources: [notebooks], verbs: [get, list, create, update, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ml-pipeline}
rules:
- {apiGroups: [argoproj.io], resources: [workflows], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ml-pipeline}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ml-pipeline}
subjects:
- {kind: ServiceAccount, name: ml-pipeline, namespace: kubeflow}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: unrelated-operator}
rules: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: metadata-grpc, namespace: kubeflow}
spec:
  podSelector: {matchLabels: {app: metadata-grpc}}
  policyTypes: [Ingress]
---
"#,
    );
    y.push_str(&profile("kubeflow-user-alice", "alice@example.com"));
    y.push_str(&profile("bob", "bob@example.com"));
    y
}

/// What a backup of `cluster_yaml()` must hold, as `group/Kind ns/name` (`core` for v1).
pub(crate) fn expected_keys() -> BTreeSet<String> {
    let mut k: BTreeSet<String> = [
        "apiextensions.k8s.io/CustomResourceDefinition profiles.kubeflow.org",
        "apiextensions.k8s.io/CustomResourceDefinition notebooks.kubeflow.org",
        "apiextensions.k8s.io/CustomResourceDefinition scheduledworkflows.kubeflow.org",
        "apiextensions.k8s.io/CustomResourceDefinition experiments.kubeflow.org",
        "apiextensions.k8s.io/CustomResourceDefinition workflows.argoproj.io",
        "core/Namespace kubeflow",
        "core/Namespace kubeflow-user-alice",
        "core/Namespace bob",
        "kubeflow.org/Profile kubeflow-user-alice",
        "kubeflow.org/Profile bob",
        "rbac.authorization.k8s.io/ClusterRole kubeflow-admin",
        "rbac.authorization.k8s.io/ClusterRole kubeflow-edit",
        "rbac.authorization.k8s.io/ClusterRole ml-pipeline",
        "rbac.authorization.k8s.io/ClusterRoleBinding ml-pipeline",
        "core/ConfigMap kubeflow/pipeline-install-config",
        "core/ServiceAccount kubeflow/ml-pipeline",
        "networking.k8s.io/NetworkPolicy kubeflow/metadata-grpc",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for ns in ["kubeflow-user-alice", "bob"] {
        for obj in [
            "core/ServiceAccount default-editor",
            "core/ServiceAccount default-viewer",
            "rbac.authorization.k8s.io/RoleBinding namespaceAdmin",
            "rbac.authorization.k8s.io/RoleBinding default-editor",
            "security.istio.io/AuthorizationPolicy ns-owner-access-istio",
            "core/ResourceQuota kf-resource-quota",
            "core/ConfigMap default-install-config",
            "core/PersistentVolumeClaim workspace",
            "kubeflow.org/Notebook nb",
            "kubeflow.org/ScheduledWorkflow nightly-train",
            "argoproj.io/Workflow nightly-train-001",
            "kubeflow.org/Experiment tune",
        ] {
            let (kind, name) = obj.split_once(' ').unwrap();
            k.insert(format!("{kind} {ns}/{name}"));
        }
    }
    k
}

/// `group/Kind ns/name` of an object (`core` for v1).
pub(crate) fn key_of(o: &Value) -> String {
    let av = o["apiVersion"].as_str().unwrap();
    let group = av.rsplit_once('/').map_or("core", |(g, _)| g);
    let kind = o["kind"].as_str().unwrap();
    let name = o["metadata"]["name"].as_str().unwrap();
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{group}/{kind} {ns}/{name}"),
        None => format!("{group}/{kind} {name}"),
    }
}

/// A Secret `kfp-token` in `kubeflow` holding one value.
pub(crate) fn secret_yaml(value: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: kfp-token, namespace: kubeflow}}\ntype: Opaque\ndata: {{token: {value}}}\n")
}

/// Kinds that others refer to (Argo's templates, KServe's runtimes, Katib's Experiments) and
/// the kinds that refer to them, four objects of each.
pub(crate) fn referencing_cluster() -> String {
    let crd = |group: &str, plural: &str, kind: &str, version: &str, scope: &str| {
        format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.{group}}}\nspec:\n  group: {group}\n  scope: {scope}\n  names: {{plural: {plural}, singular: {}, kind: {kind}}}\n  versions:\n  - {{name: {version}, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}\n---\n", kind.to_lowercase())
    };
    let mut y = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n---\n");
    for (group, plural, kind, version, scope) in [
        (
            "argoproj.io",
            "workflowtemplates",
            "WorkflowTemplate",
            "v1alpha1",
            "Namespaced",
        ),
        (
            "argoproj.io",
            "clusterworkflowtemplates",
            "ClusterWorkflowTemplate",
            "v1alpha1",
            "Cluster",
        ),
        (
            "argoproj.io",
            "workflows",
            "Workflow",
            "v1alpha1",
            "Namespaced",
        ),
        (
            "argoproj.io",
            "cronworkflows",
            "CronWorkflow",
            "v1alpha1",
            "Namespaced",
        ),
        (
            "kubeflow.org",
            "scheduledworkflows",
            "ScheduledWorkflow",
            "v1beta1",
            "Namespaced",
        ),
        (
            "serving.kserve.io",
            "servingruntimes",
            "ServingRuntime",
            "v1alpha1",
            "Namespaced",
        ),
        (
            "serving.kserve.io",
            "clusterservingruntimes",
            "ClusterServingRuntime",
            "v1alpha1",
            "Cluster",
        ),
        (
            "serving.kserve.io",
            "inferenceservices",
            "InferenceService",
            "v1beta1",
            "Namespaced",
        ),
        (
            "kubeflow.org",
            "experiments",
            "Experiment",
            "v1beta1",
            "Namespaced",
        ),
        ("kubeflow.org", "trials", "Trial", "v1beta1", "Namespaced"),
        (
            "kubeflow.org",
            "suggestions",
            "Suggestion",
            "v1beta1",
            "Namespaced",
        ),
    ] {
        y.push_str(&crd(group, plural, kind, version, scope));
        let ns = if scope == "Namespaced" {
            ", namespace: kubeflow"
        } else {
            ""
        };
        for i in 0..4 {
            y.push_str(&format!(
                "apiVersion: {group}/{version}\nkind: {kind}\nmetadata: {{name: {}-{i}{ns}}}\nspec: {{n: {i}}}\nstatus: {{phase: Running}}\n---\n",
                kind.to_lowercase()
            ));
        }
    }
    y
}

/// Kubeflow's Profile CRD as it is served: at v1beta1 and v1, stored at v1.
pub(crate) fn profiles_crd_v1beta1_and_v1() -> String {
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: profiles.kubeflow.org}\nspec:\n  group: kubeflow.org\n  scope: Cluster\n  names: {plural: profiles, singular: profile, kind: Profile}\n  versions:\n  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}\n  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}\n".into()
}

/// One request to the stand-in over plain HTTP, as a user's `kubectl patch` or `kubectl delete`
/// would send it: a live change that kfguard did not make. A body is sent as a JSON merge
/// patch. Returns the HTTP status.
pub(crate) fn api(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> u16 {
    use std::io::{Read, Write};
    let url = server.url();
    let addr = url.trim_start_matches("http://");
    let body = body
        .map(std::string::ToString::to_string)
        .unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer admin\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
