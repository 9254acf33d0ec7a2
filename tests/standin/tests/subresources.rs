//! Pod logs and the scale subresource, read and written over HTTP by the real `kube::Client` and
//! by `kubectl`, as kfguard's runbooks will.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_standin::{Options, Server};
use serde_json::{json, Value};

mod common;
use common::{client, code, Kubectl};

const PIPELINES: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Pod
metadata: {name: ml-pipeline-7d9f, namespace: kubeflow, labels: {app: ml-pipeline}}
spec:
  containers:
  - {name: ml-pipeline-api-server, image: ghcr.io/kubeflow/kfp-api-server:2.5.0}
  - {name: istio-proxy, image: docker.io/istio/proxyv2:1.22.0}
status:
  phase: Running
  containerStatuses:
  - name: ml-pipeline-api-server
    image: ghcr.io/kubeflow/kfp-api-server:2.5.0
    ready: false
    restartCount: 4
    state: {waiting: {reason: CrashLoopBackOff, message: back-off 1m20s restarting failed container}}
    lastState: {terminated: {reason: Error, exitCode: 1}}
  - name: istio-proxy
    image: docker.io/istio/proxyv2:1.22.0
    ready: true
    restartCount: 0
    state: {running: {startedAt: '2025-01-01T00:00:00Z'}}
---
apiVersion: v1
kind: Pod
metadata: {name: minio-0, namespace: kubeflow}
spec:
  containers: [{name: minio, image: minio/minio}]
---
apiVersion: v1
kind: Pod
metadata: {name: mysql-0, namespace: kubeflow}
spec:
  containers: [{name: mysql, image: mysql:8.0}]
status:
  phase: Pending
  containerStatuses:
  - {name: mysql, image: mysql:8.0, ready: false, restartCount: 0, state: {waiting: {reason: ImagePullBackOff}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ml-pipeline, namespace: kubeflow}
spec:
  replicas: 2
  selector:
    matchLabels: {app: ml-pipeline}
    matchExpressions: [{key: tier, operator: In, values: [api, backend]}]
  template:
    metadata: {labels: {app: ml-pipeline, tier: api}}
    spec: {containers: [{name: ml-pipeline-api-server, image: ghcr.io/kubeflow/kfp-api-server:2.5.0}]}
status: {replicas: 2, readyReplicas: 2}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: metadata-db, namespace: kubeflow}
spec:
  replicas: 1
  serviceName: metadata-db
  selector: {matchLabels: {app: metadata-db}}
  template:
    metadata: {labels: {app: metadata-db}}
    spec: {containers: [{name: mysql, image: mysql:8.0}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: ml-pipeline-ui-5c8b, namespace: kubeflow}
spec:
  replicas: 3
  selector: {matchLabels: {app: ml-pipeline-ui}}
  template:
    metadata: {labels: {app: ml-pipeline-ui}}
    spec: {containers: [{name: ui, image: ghcr.io/kubeflow/kfp-frontend:2.5.0}]}
";

const API_SERVER_LOG: &str = "starting api server\nconnecting to mysql:3306\nfailed: connection refused\n";
const API_SERVER_LAST_RUN: &str = "starting api server\npanic: mysql unreachable after 30s\n";

fn pipelines() -> Server {
    let server = Server::start(Options::default());
    server.seed_yaml(PIPELINES).unwrap();
    server
}

fn logs_of(container: &str) -> LogParams {
    LogParams {
        container: Some(container.into()),
        ..LogParams::default()
    }
}

#[tokio::test]
async fn a_runbook_reads_a_crashing_containers_logs_by_tail_and_previous_run() {
    let server = pipelines();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        false,
        API_SERVER_LOG,
    );
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        true,
        API_SERVER_LAST_RUN,
    );
    let pods: Api<Pod> = Api::namespaced(client(&server).await, "kubeflow");
    let api = "ml-pipeline-api-server";

    assert_eq!(
        pods.logs("ml-pipeline-7d9f", &logs_of(api)).await.unwrap(),
        API_SERVER_LOG
    );
    let tail = LogParams {
        tail_lines: Some(2),
        ..logs_of(api)
    };
    assert_eq!(
        pods.logs("ml-pipeline-7d9f", &tail).await.unwrap(),
        "connecting to mysql:3306\nfailed: connection refused\n"
    );
    let previous = LogParams {
        previous: true,
        ..logs_of(api)
    };
    assert_eq!(
        pods.logs("ml-pipeline-7d9f", &previous).await.unwrap(),
        API_SERVER_LAST_RUN
    );
    let first_bytes = LogParams {
        limit_bytes: Some(8),
        ..logs_of(api)
    };
    assert_eq!(pods.logs("ml-pipeline-7d9f", &first_bytes).await.unwrap(), "starting");
    // follow is answered as if false, timestamps are ignored: the whole log, then the end.
    let followed = LogParams {
        follow: true,
        timestamps: true,
        ..logs_of(api)
    };
    assert_eq!(pods.logs("ml-pipeline-7d9f", &followed).await.unwrap(), API_SERVER_LOG);

    // A pod with one container needs none named; with nothing stored its log is empty.
    assert_eq!(pods.logs("minio-0", &LogParams::default()).await.unwrap(), "");
    // The running sidecar never restarted: no previous run to read.
    let (c, reason, msg) = code(
        pods.logs(
            "ml-pipeline-7d9f",
            &LogParams {
                previous: true,
                ..logs_of("istio-proxy")
            },
        )
        .await,
    );
    assert_eq!(
        (c, reason.as_str(), msg.as_str()),
        (
            400,
            "BadRequest",
            "previous terminated container \"istio-proxy\" in pod \"ml-pipeline-7d9f\" not found"
        )
    );

    let log = server.requests();
    let last = log.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.subresource.as_deref(), last.status),
        ("GET", Some("log"), 400)
    );
    assert!(last.query.contains("previous=true"), "{}", last.query);
}

#[tokio::test]
async fn a_container_waiting_after_a_crash_shows_its_last_run_and_one_not_started_has_no_log() {
    let server = pipelines();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        true,
        API_SERVER_LAST_RUN,
    );
    let pods: Api<Pod> = Api::namespaced(client(&server).await, "kubeflow");
    assert_eq!(
        pods.logs("ml-pipeline-7d9f", &logs_of("ml-pipeline-api-server"))
            .await
            .unwrap(),
        API_SERVER_LAST_RUN,
        "the kubelet shows a CrashLoopBackOff container's last run"
    );
    let (c, _, msg) = code(pods.logs("mysql-0", &LogParams::default()).await);
    assert_eq!(
        (c, msg.as_str()),
        (
            400,
            "container \"mysql\" in pod \"mysql-0\" is waiting to start: trying and failing to pull image"
        )
    );
}

#[tokio::test]
async fn a_pod_with_several_containers_needs_one_named_and_known() {
    let server = pipelines();
    let client = client(&server).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kubeflow");
    let (c, reason, msg) = code(pods.logs("ml-pipeline-7d9f", &LogParams::default()).await);
    assert_eq!(
        (c, reason.as_str(), msg.as_str()),
        (
            400,
            "BadRequest",
            "a container name must be specified for pod ml-pipeline-7d9f, choose one of: [ml-pipeline-api-server istio-proxy]"
        )
    );
    let (c, _, msg) = code(pods.logs("ml-pipeline-7d9f", &logs_of("sidecar")).await);
    assert_eq!(
        (c, msg.as_str()),
        (400, "container sidecar is not valid for pod ml-pipeline-7d9f")
    );
    let (c, reason, msg) = code(pods.logs("gone", &LogParams::default()).await);
    assert_eq!(
        (c, reason.as_str(), msg.as_str()),
        (404, "NotFound", "pods \"gone\" not found")
    );
    let negative = LogParams {
        tail_lines: Some(-1),
        ..LogParams::default()
    };
    let (c, reason, msg) = code(pods.logs("minio-0", &negative).await);
    assert_eq!((c, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "PodLogOptions \"minio-0\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
    );

    let core = client.list_core_api_resources("v1").await.unwrap();
    let log = core.resources.iter().find(|r| r.name == "pods/log").unwrap();
    assert_eq!((log.kind.as_str(), log.verbs.clone()), ("Pod", vec!["get".to_string()]));
}

#[test]
fn kubectl_logs_reads_what_the_test_stored() {
    let server = pipelines();
    server.set_pod_log(
        "kubeflow",
        "minio-0",
        "minio",
        false,
        "API: http://10.0.0.7:9000\nready\n",
    );
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        false,
        API_SERVER_LOG,
    );
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        true,
        API_SERVER_LAST_RUN,
    );
    let kubectl = Kubectl::new(&server);
    assert_eq!(
        kubectl.ok(&["logs", "minio-0", "-n", "kubeflow"]),
        "API: http://10.0.0.7:9000\nready\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "logs",
            "ml-pipeline-7d9f",
            "-n",
            "kubeflow",
            "-c",
            "ml-pipeline-api-server",
            "--tail=1"
        ]),
        "failed: connection refused\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "logs",
            "ml-pipeline-7d9f",
            "-n",
            "kubeflow",
            "-c",
            "ml-pipeline-api-server",
            "-p"
        ]),
        API_SERVER_LAST_RUN
    );
    let r = kubectl.run(&[
        "logs",
        "ml-pipeline-7d9f",
        "-n",
        "kubeflow",
        "-c",
        "istio-proxy",
        "--previous",
    ]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains(
            "Error from server (BadRequest): previous terminated container \"istio-proxy\" in pod \"ml-pipeline-7d9f\" not found"
        ),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn the_scale_of_a_deployment_is_an_autoscaling_v1_view_of_it() {
    let server = pipelines();
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kubeflow");
    let scale = deploys.get_scale("ml-pipeline").await.unwrap();
    let parent = deploys.get("ml-pipeline").await.unwrap();
    assert_eq!(scale.metadata.name, parent.metadata.name);
    assert_eq!(scale.metadata.namespace.as_deref(), Some("kubeflow"));
    assert_eq!(scale.metadata.uid, parent.metadata.uid);
    assert_eq!(scale.metadata.resource_version, parent.metadata.resource_version);
    assert_eq!(scale.metadata.creation_timestamp, parent.metadata.creation_timestamp);
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    let status = scale.status.unwrap();
    assert_eq!(
        (status.replicas, status.selector.as_deref()),
        (2, Some("app=ml-pipeline,tier in (api,backend)"))
    );
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "kubeflow");
    let scale = sts.get_scale("metadata-db").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(
        scale.status.map(|s| (s.replicas, s.selector)),
        Some((0, Some("app=metadata-db".into())))
    );

    let apps = client.list_api_group_resources("apps/v1").await.unwrap();
    for parent in ["deployments", "statefulsets", "replicasets"] {
        let name = format!("{parent}/scale");
        let sub = apps.resources.iter().find(|r| r.name == name).unwrap();
        assert_eq!(
            (sub.group.as_deref(), sub.version.as_deref(), sub.kind.as_str()),
            (Some("autoscaling"), Some("v1"), "Scale"),
            "{name}"
        );
        assert_eq!(sub.verbs, ["get", "patch", "update"]);
    }
    assert!(apps.resources.iter().all(|r| r.name != "daemonsets/scale"));
}

#[tokio::test]
async fn scaling_to_zero_sets_spec_replicas_and_tells_watchers() {
    let server = pipelines();
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kubeflow");
    let before = deploys.get("ml-pipeline").await.unwrap();
    let mut events = deploys
        .watch(
            &WatchParams::default().timeout(10),
            before.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let scaled = deploys
        .patch_scale(
            "ml-pipeline",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    // `replicas` is omitempty in autoscaling/v1: zero is left out, as the real server does.
    assert_eq!(scaled.spec, Some(ScaleSpec { replicas: None }));
    let after = deploys.get("ml-pipeline").await.unwrap();
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(0));
    assert_ne!(after.metadata.resource_version, before.metadata.resource_version);
    assert_eq!(scaled.metadata.resource_version, after.metadata.resource_version);
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(
        after.status.as_ref().unwrap().replicas,
        Some(2),
        "no controller reconciles"
    );
    let entry = after.metadata.managed_fields.unwrap().pop().unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("scale"));

    match events.try_next().await.unwrap().unwrap() {
        WatchEvent::Modified(d) => assert_eq!(d.spec.unwrap().replicas, Some(0)),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    let mut scale = deploys.get_scale("ml-pipeline").await.unwrap();
    scale.spec = Some(ScaleSpec { replicas: Some(3) });
    let replaced = deploys
        .replace_scale("ml-pipeline", &PostParams::default(), &scale)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(3));
    match events.try_next().await.unwrap().unwrap() {
        WatchEvent::Modified(d) => assert_eq!(d.spec.unwrap().replicas, Some(3)),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // A JSON patch of a ReplicaSet's scale (kube's Patch::Json needs a feature the workspace
    // does not enable, so it goes raw).
    let json_patch = http::Request::patch("/apis/apps/v1/namespaces/kubeflow/replicasets/ml-pipeline-ui-5c8b/scale")
        .header("content-type", "application/json-patch+json")
        .body(br#"[{"op": "replace", "path": "/spec/replicas", "value": 1}]"#.to_vec())
        .unwrap();
    let patched: Value = client.request(json_patch).await.unwrap();
    assert_eq!(
        (patched["kind"].as_str(), patched["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(1))
    );
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "kubeflow");
    assert_eq!(
        rs.get("ml-pipeline-ui-5c8b").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );

    let writes: Vec<(String, Option<String>)> = server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH"))
        .map(|r| (r.method, r.subresource))
        .collect();
    let scale = Some("scale".to_string());
    assert_eq!(
        writes,
        [
            ("PATCH".into(), scale.clone()),
            ("PUT".into(), scale.clone()),
            ("PATCH".into(), scale)
        ]
    );
}

#[tokio::test]
async fn a_dry_run_scale_changes_nothing_and_the_request_log_says_so() {
    let server = pipelines();
    let client = client(&server).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kubeflow");
    let before = server
        .get("apps/v1", "Deployment", Some("kubeflow"), "ml-pipeline")
        .unwrap();
    server.clear_requests();

    let planned = deploys
        .patch_scale(
            "ml-pipeline",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(
        planned.spec,
        Some(ScaleSpec { replicas: None }),
        "the answer shows the change"
    );
    let mut scale = deploys.get_scale("ml-pipeline").await.unwrap();
    scale.spec = Some(ScaleSpec { replicas: Some(5) });
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    assert_eq!(
        deploys
            .replace_scale("ml-pipeline", &pp, &scale)
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(5)
    );
    assert_eq!(
        server
            .get("apps/v1", "Deployment", Some("kubeflow"), "ml-pipeline")
            .unwrap(),
        before,
        "dry runs stored nothing"
    );

    let log = server.requests();
    let writes: Vec<_> = log.iter().filter(|r| r.method != "GET").collect();
    assert_eq!(writes.len(), 2);
    assert!(
        writes
            .iter()
            .all(|r| r.dry_run && r.subresource.as_deref() == Some("scale") && r.status == 200),
        "{writes:?}"
    );
}

#[tokio::test]
async fn negative_replicas_and_stale_scales_are_refused() {
    let server = pipelines();
    let deploys: Api<Deployment> = Api::namespaced(client(&server).await, "kubeflow");
    let (c, reason, msg) = code(
        deploys
            .patch_scale(
                "ml-pipeline",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await,
    );
    assert_eq!((c, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "Scale.autoscaling \"ml-pipeline\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let stale = deploys.get_scale("ml-pipeline").await.unwrap();
    deploys
        .patch_scale(
            "ml-pipeline",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let (c, reason, _) = code(
        deploys
            .replace_scale("ml-pipeline", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((c, reason.as_str()), (409, "Conflict"));
    let missing = Scale {
        spec: Some(ScaleSpec { replicas: Some(1) }),
        ..Scale::default()
    };
    let (c, _, msg) = code(deploys.replace_scale("gone", &PostParams::default(), &missing).await);
    assert_eq!((c, msg.as_str()), (404, "deployments.apps \"gone\" not found"));
    assert_eq!(
        server
            .get("apps/v1", "Deployment", Some("kubeflow"), "ml-pipeline")
            .unwrap()["spec"]["replicas"],
        1
    );
}

#[test]
fn kubectl_scale_goes_through_the_scale_subresource() {
    let server = pipelines();
    let kubectl = Kubectl::new(&server);
    let replicas = || {
        server
            .get("apps/v1", "Deployment", Some("kubeflow"), "ml-pipeline")
            .unwrap()["spec"]["replicas"]
            .clone()
    };

    let table = kubectl.ok(&[
        "get",
        "deployment",
        "ml-pipeline",
        "-n",
        "kubeflow",
        "--subresource=scale",
    ]);
    assert!(table.contains("DESIRED") && table.contains("AVAILABLE"), "{table}");
    let desired = kubectl.ok(&[
        "get",
        "deployment",
        "ml-pipeline",
        "-n",
        "kubeflow",
        "--subresource=scale",
        "-o",
        "jsonpath={.kind} {.spec.replicas} {.status.selector}",
    ]);
    assert_eq!(desired, "Scale 2 app=ml-pipeline,tier in (api,backend)");

    let out = kubectl.ok(&[
        "scale",
        "deployment",
        "ml-pipeline",
        "-n",
        "kubeflow",
        "--replicas=0",
        "--dry-run=server",
    ]);
    assert!(
        out.contains("deployment.apps/ml-pipeline scaled (server dry run)"),
        "{out}"
    );
    assert_eq!(replicas(), 2);

    server.clear_requests();
    let out = kubectl.ok(&["scale", "deployment", "ml-pipeline", "-n", "kubeflow", "--replicas=0"]);
    assert_eq!(out.trim(), "deployment.apps/ml-pipeline scaled");
    assert_eq!(replicas(), 0);
    let scale_writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.path, r.subresource, r.dry_run))
        .collect();
    assert_eq!(
        scale_writes,
        [(
            "PATCH".to_string(),
            "/apis/apps/v1/namespaces/kubeflow/deployments/ml-pipeline/scale".to_string(),
            Some("scale".to_string()),
            false
        )]
    );

    kubectl.ok(&["scale", "statefulset", "metadata-db", "-n", "kubeflow", "--replicas=2"]);
    assert_eq!(
        server
            .get("apps/v1", "StatefulSet", Some("kubeflow"), "metadata-db")
            .unwrap()["spec"]["replicas"],
        2
    );
}
