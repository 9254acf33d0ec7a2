//! The shipped `verify-health` runbook on the stand-in: a healthy Kubeflow gives no finding,
//! and each seeded fault raises its own code on its own object.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

use crate::common;
use common::runbook::{crd, findings};

use common::kube::standin;
use common::{code, stderr, Kf};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A CA, as the PEM a caBundle holds and the issuer that signs serving certificates.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = p.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(p, key))
}

/// A serving certificate for `service.namespace.svc`, valid until `days` from now.
fn serving(issuer: &Issuer<'_, KeyPair>, dns: &str, days: i64) -> String {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![dns.to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(400);
    p.not_after = now + time::Duration::days(days);
    p.signed_by(&key, issuer).unwrap().pem()
}

/// A webhook served by `service` in kubeflow with `cert`, vouched for by `bundle`.
fn webhook(name: &str, service: &str, cert: &str, bundle: &str) -> String {
    format!(
        r"apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: kubeflow}}
spec: {{ports: [{{port: 443}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {service}-tls, namespace: kubeflow}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: {name}.kubeflow.org
  clientConfig:
    service: {{name: {service}, namespace: kubeflow, path: /mutate}}
    caBundle: {bundle}
  admissionReviewVersions: [v1]
  sideEffects: None
---
",
        crt = b64(cert),
        key = b64("-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"),
        bundle = b64(bundle),
    )
}

fn pod(namespace: &str, name: &str, labels: &str, status: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{{labels}}}}}\nspec: {{containers: [{{name: main, image: \"gcr.io/ml-pipeline/{name}:2.5.0\"}}]}}\nstatus: {status}\n---\n"
    )
}

const READY: &str = "{phase: Running, conditions: [{type: Ready, status: \"True\"}], containerStatuses: [{name: main, ready: true, restartCount: 0, state: {running: {}}}]}";

/// A profile's namespace, service accounts and the bindings the profile controller makes;
/// without the owner's binding when `owner_bound` is false.
fn profile(name: &str, owner: &str, owner_bound: bool) -> String {
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
status: {{hard: {{cpu: '16', pods: '10'}}, used: {{cpu: 1500m, pods: '3'}}}}
---
"
    );
    if owner_bound {
        s.push_str(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: namespaceAdmin, namespace: {name}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-admin}}\nsubjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {owner}}}]\n---\n"
        ));
    }
    s
}

/// A small healthy Kubeflow: every check of verify-health passes on it.
fn healthy(ca_pem: &str, issuer: &Issuer<'_, KeyPair>) -> String {
    let mut s = String::from(
        r#"apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: rancher.io/local-path
volumeBindingMode: Immediate
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-edit}
rules:
- {apiGroups: [""], resources: [pods, persistentvolumeclaims], verbs: [get, list, create, delete]}
- {apiGroups: [argoproj.io], resources: [workflows], verbs: [get, list, create, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-view}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {apiGroups: [argoproj.io], resources: [workflows], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-admin}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: minio-pvc, namespace: kubeflow}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 20Gi}}}
status: {phase: Bound}
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
"#,
    );
    for c in [
        crd("kubeflow.org", "profiles", "Profile", "v1", "Cluster"),
        crd(
            "argoproj.io",
            "workflows",
            "Workflow",
            "v1alpha1",
            "Namespaced",
        ),
        crd("kubeflow.org", "notebooks", "Notebook", "v1", "Namespaced"),
    ] {
        s.push_str(&c);
    }
    s.push_str(&pod(
        "kubeflow",
        "ml-pipeline-5d8f",
        "app: ml-pipeline",
        READY,
    ));
    s.push_str(&pod(
        "kubeflow",
        "workflow-controller-7c9b",
        "app: workflow-controller",
        READY,
    ));
    for d in [
        "ml-pipeline-persistenceagent",
        "ml-pipeline-scheduledworkflow",
    ] {
        s.push_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {d}, namespace: kubeflow}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {d}}}}}\n  template: {{metadata: {{labels: {{app: {d}}}}}, spec: {{containers: [{{name: main, image: x}}]}}}}\nstatus: {{replicas: 1, readyReplicas: 1, availableReplicas: 1}}\n---\n"
        ));
    }
    s.push_str(&profile("team-a", "alice@example.com", true));
    s.push_str(&webhook(
        "cache-webhook-kubeflow",
        "cache-server",
        &serving(issuer, "cache-server.kubeflow.svc", 300),
        ca_pem,
    ));
    s
}

/// The CRDs as pinned: notebooks at v1, as the healthy cluster serves them.
fn pinned() -> String {
    [
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
    .concat()
}

/// Runs verify-health against the cluster of `kubeconfig`; its exit code and report.
fn verify(kf: &Kf, kubeconfig: &Path) -> (i32, Value, String) {
    verify_with(kf, kubeconfig, &[])
}

fn verify_with(kf: &Kf, kubeconfig: &Path, extra: &[&str]) -> (i32, Value, String) {
    kf.write("pinned/crds.yaml", &pinned());
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/verify-health.rhai");
    std::fs::copy(&runbook, kf.path().join("pinned/verify-health.rhai")).unwrap();
    let out = kf.run(
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--output",
            "json",
            "runbook",
            "run",
            "pinned/verify-health.rhai",
            "--set",
            "crds=crds.yaml",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, stderr(&out))
}

#[test]
fn a_healthy_kubeflow_gives_no_finding_and_grade_a() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let (ca_pem, issuer) = ca("kubeflow-webhook-ca");
    server.seed_yaml(&healthy(&ca_pem, &issuer)).unwrap();
    let (code, report, err) = verify(&kf, &cfg);
    assert_eq!(code, 0, "{err}\n{:#?}", findings(&report));
    assert!(findings(&report).is_empty());
    let summary = report["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(summary["name"], "summary");
    assert_eq!(summary["output"]["grade"], "A", "{summary:#}");
    assert_eq!(summary["output"]["overall"], 100);
}

#[test]
fn each_seeded_fault_raises_its_code_on_its_object() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let (ca_pem, issuer) = ca("kubeflow-webhook-ca");
    let (_, other_issuer) = ca("someone-elses-ca");
    let mut yaml = healthy(&ca_pem, &issuer);
    // A crash-looping UI, with the log of its last run.
    yaml.push_str(&pod(
        "kubeflow",
        "ml-pipeline-ui-6b7c",
        "app: ml-pipeline-ui",
        "{phase: Running, conditions: [{type: Ready, status: \"False\"}], containerStatuses: [{name: main, ready: false, restartCount: 9, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {reason: Error, exitCode: 1}}}]}",
    ));
    // A claim whose StorageClass does not exist.
    yaml.push_str("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: team-a}\nspec: {accessModes: [ReadWriteOnce], storageClassName: fast-ssd, resources: {requests: {storage: 5Gi}}}\nstatus: {phase: Pending}\n---\n");
    // A claim whose class binds on first use, and no pod uses it yet.
    yaml.push_str("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: local-wait}\nprovisioner: rancher.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: scratch, namespace: team-a}\nspec: {accessModes: [ReadWriteOnce], storageClassName: local-wait, resources: {requests: {storage: 1Gi}}}\nstatus: {phase: Pending}\n---\n");
    // A workflow Running since 2020.
    yaml.push_str("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: train-hung, namespace: team-a}\nspec: {entrypoint: main}\nstatus: {phase: Running, startedAt: \"2020-01-01T00:00:00Z\"}\n---\n");
    // A profile whose owner has no RoleBinding, with its pod quota used up.
    yaml.push_str(&profile("team-b", "bob@example.com", false).replace("pods: '3'", "pods: '10'"));
    // Webhook certificates: expired, expiring in 10 days, and one the caBundle did not sign.
    yaml.push_str(&webhook(
        "poddefaults-webhook",
        "admission-webhook-service",
        &serving(&issuer, "admission-webhook-service.kubeflow.svc", -3),
        &ca_pem,
    ));
    yaml.push_str(&webhook(
        "kserve-webhook",
        "kserve-webhook-server-service",
        &serving(&issuer, "kserve-webhook-server-service.kubeflow.svc", 10),
        &ca_pem,
    ));
    yaml.push_str(&webhook(
        "katib-webhook",
        "katib-controller",
        &serving(&other_issuer, "katib-controller.kubeflow.svc", 300),
        &ca_pem,
    ));
    // The metadata service has no ready endpoint.
    yaml.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: metadata-grpc-service, namespace: kubeflow}\nspec: {ports: [{port: 8080}]}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: metadata-grpc-service, namespace: kubeflow}\nsubsets: []\n---\n");
    // Notebooks served at v1beta1 where v1 is pinned.
    let yaml = yaml.replace(
        &crd("kubeflow.org", "notebooks", "Notebook", "v1", "Namespaced"),
        &crd(
            "kubeflow.org",
            "notebooks",
            "Notebook",
            "v1beta1",
            "Namespaced",
        ),
    );
    server.seed_yaml(&yaml).unwrap();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-ui-6b7c",
        "main",
        true,
        "listening on :3000\nError: connect ECONNREFUSED ml-pipeline:8888\n",
    );

    // The metadata database's source points at a port where nothing listens.
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"mysql://root@127.0.0.1:1\"\n",
    );
    let (code, report, err) = verify_with(&kf, &cfg, &["--set", "db=kfp"]);
    assert_eq!(code, 3, "{err}");
    let expected: BTreeSet<(String, String)> = [
        ("KF-POD-CRASHLOOP", "kubeflow/ml-pipeline-ui-6b7c"),
        ("KF-PVC-PENDING", "team-a/data"),
        ("KF-PVC-PENDING", "team-a/scratch"),
        ("KF-WF-STUCK", "team-a/train-hung"),
        ("KF-CRD-DRIFT", "notebooks.kubeflow.org"),
        ("KF-RBAC-OWNER", "team-b"),
        ("KF-QUOTA-EXHAUSTED", "team-b/kf-resource-quota"),
        ("KF-CERT-EXPIRED", "kubeflow/admission-webhook-service-tls"),
        (
            "KF-CERT-EXPIRING",
            "kubeflow/kserve-webhook-server-service-tls",
        ),
        (
            "KF-WEBHOOK-CABUNDLE",
            "MutatingWebhookConfiguration/katib-webhook",
        ),
        ("KF-SVC-NO-ENDPOINTS", "kubeflow/metadata-grpc-service"),
        ("KF-DB-UNREACHABLE", "kfp"),
    ]
    .into_iter()
    .map(|(c, o)| (c.to_string(), o.to_string()))
    .collect();
    assert_eq!(findings(&report), expected, "{err}");

    let all: Vec<Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .collect();
    let message = |code: &str| {
        all.iter()
            .find(|f| f["code"] == code)
            .map(|f| f["message"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        message("KF-POD-CRASHLOOP").contains("ECONNREFUSED ml-pipeline:8888"),
        "{}",
        message("KF-POD-CRASHLOOP")
    );
    let claim = |object: &str| {
        all.iter()
            .find(|f| f["object"] == object)
            .map(|f| f["message"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(claim("team-a/data").contains("fast-ssd does not exist"));
    assert!(claim("team-a/scratch").contains("WaitForFirstConsumer"));
    assert!(message("KF-QUOTA-EXHAUSTED").contains("pods is at its limit: 10 of 10"));
    let summary = report["steps"].as_array().unwrap().last().unwrap();
    assert_ne!(summary["output"]["grade"], "A");
}

#[test]
fn an_mlmd_schema_the_metadata_server_does_not_expect_is_a_warning() {
    let kf = Kf::local();
    let (server, cfg) = standin(&kf, "c");
    let (ca_pem, issuer) = ca("kubeflow-webhook-ca");
    server.seed_yaml(&healthy(&ca_pem, &issuer)).unwrap();
    let mut db = common::db::Db::mysql();
    let metadb = db.mysql_name("mlmd");
    common::db::mysql_exec(
        None,
        &[
            &format!("CREATE DATABASE {metadb}"),
            &format!("CREATE TABLE {metadb}.MLMDEnv (schema_version INT PRIMARY KEY)"),
            &format!("INSERT INTO {metadb}.MLMDEnv VALUES (8)"),
        ],
    );
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\n",
            common::db::mysql_url()
        ),
    );
    let mlmd = format!("mlmd_database={metadb}");
    let (code, report, err) = verify_with(&kf, &cfg, &["--set", "db=kfp", "--set", &mlmd]);
    assert_eq!(code, 3, "{err}");
    let expected: BTreeSet<(String, String)> =
        [("KF-MLMD-SCHEMA".to_string(), format!("kfp/{metadb}"))].into();
    assert_eq!(findings(&report), expected);

    // At the version the server expects, the database is healthy.
    let (code, report, err) = verify_with(
        &kf,
        &cfg,
        &["--set", "db=kfp", "--set", &mlmd, "--set", "mlmd_schema=8"],
    );
    assert_eq!(code, 0, "{err}\n{:#?}", findings(&report));
}

#[test]
fn crds_that_moved_since_the_latest_snapshot_are_drift() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let (server, cfg) = standin(&kf, "c");
    let (ca_pem, issuer) = ca("kubeflow-webhook-ca");
    server.seed_yaml(&healthy(&ca_pem, &issuer)).unwrap();
    kf.ok(&[
        "--kubeconfig",
        cfg.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ]);
    let (code, report, err) = verify_with(&kf, &cfg, &["--set", "crds=latest"]);
    assert_eq!(code, 0, "{err}\n{:#?}", findings(&report));

    // The cluster as it is now: Notebooks served at v1beta1 since the snapshot.
    let (now, now_cfg) = standin(&kf, "now");
    now.seed_yaml(&healthy(&ca_pem, &issuer).replace(
        &crd("kubeflow.org", "notebooks", "Notebook", "v1", "Namespaced"),
        &crd(
            "kubeflow.org",
            "notebooks",
            "Notebook",
            "v1beta1",
            "Namespaced",
        ),
    ))
    .unwrap();
    let (code, report, err) = verify_with(&kf, &now_cfg, &["--set", "crds=latest"]);
    assert_eq!(code, 3, "{err}");
    let expected: BTreeSet<(String, String)> = [(
        "KF-CRD-DRIFT".to_string(),
        "notebooks.kubeflow.org".to_string(),
    )]
    .into();
    assert_eq!(findings(&report), expected);
}
