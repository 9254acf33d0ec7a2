//! A Kubeflow-like cluster for the stand-in API server: profiles with their namespaces, service
//! accounts, bindings and Istio policies; KFP, Argo, Katib and Istio CRDs (one over 256 KiB);
//! custom resources, schedules and workflows; and objects a backup must leave out.

use std::path::PathBuf;

use kube_standin::{Options, Server};

use super::Kf;

/// A started stand-in with its kubeconfig written into the workspace.
pub fn standin(kf: &Kf, name: &str) -> (Server, PathBuf) {
    let server = Server::start(Options::default());
    let path = kf.path().join(format!("{name}.kubeconfig"));
    server.write_kubeconfig(&path).unwrap();
    (server, path)
}

fn crd(group: &str, plural: &str, kind: &str, version: &str, scope: &str, schema: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
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
"#,
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
pub fn cluster_yaml() -> String {
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

/// One request to the stand-in over plain HTTP, as a user's `kubectl patch` or `kubectl delete`
/// would send it: a live change that kfguard did not make. A body is sent as a JSON merge
/// patch. Returns the HTTP status.
pub fn api(server: &Server, method: &str, path: &str, body: Option<&serde_json::Value>) -> u16 {
    use std::io::{Read, Write};
    let url = server.url();
    let addr = url.trim_start_matches("http://");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
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
