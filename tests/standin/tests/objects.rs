//! Objects a runbook checks or removes: Endpoints and EndpointSlices, pods with a status worth
//! reading, and deletes that must store nothing when they are dry runs.

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, LogParams};
use kube_standin::{Options, Server};
use serde_json::Value;

mod common;
use common::{client, Kubectl};

const SERVICE_ENDPOINTS: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ml-pipeline, namespace: kubeflow, labels: {app: ml-pipeline}}
subsets:
- addresses: [{ip: 10.0.0.11, targetRef: {kind: Pod, name: ml-pipeline-7d9f, namespace: kubeflow}}]
  notReadyAddresses: [{ip: 10.0.0.12}]
  ports: [{name: http, port: 8888, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: minio-service, namespace: kubeflow}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ml-pipeline-x7k2p
  namespace: kubeflow
  labels: {kubernetes.io/service-name: ml-pipeline}
addressType: IPv4
endpoints:
- addresses: [10.0.0.11]
  conditions: {ready: true}
- addresses: [10.0.0.12]
  conditions: {ready: false}
ports: [{name: http, port: 8888, protocol: TCP}]
";

#[tokio::test]
async fn a_service_with_no_ready_endpoints_is_visible_to_kube_and_kubectl() {
    let server = Server::start(Options::default());
    assert_eq!(server.seed_yaml(SERVICE_ENDPOINTS).unwrap(), 4);
    let client = client(&server).await;

    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "kubeflow");
    let listed = eps.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = listed.items.iter().map(|e| e.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["minio-service", "ml-pipeline"]);
    let empty = &listed.items[0];
    assert!(empty.subsets.is_none(), "minio-service has no endpoints at all");
    let subset = &listed.items[1].subsets.as_ref().unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "10.0.0.11");
    assert_eq!(subset.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.12");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kubeflow");
    let by_service = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=ml-pipeline"))
        .await
        .unwrap();
    let ready: Vec<Option<bool>> = by_service.items[0]
        .endpoints
        .iter()
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
        .collect();
    assert_eq!(ready, [Some(true), Some(false)]);
    assert_eq!(by_service.items[0].address_type, "IPv4");

    let core = client.list_core_api_resources("v1").await.unwrap();
    let ep = core.resources.iter().find(|r| r.name == "endpoints").unwrap();
    assert_eq!((ep.kind.as_str(), ep.namespaced), ("Endpoints", true));
    assert_eq!(ep.short_names.as_deref(), Some(&["ep".to_string()][..]));
    let discovery = client.list_api_group_resources("discovery.k8s.io/v1").await.unwrap();
    assert_eq!(discovery.resources[0].kind, "EndpointSlice");

    let kubectl = Kubectl::new(&server);
    let out = kubectl.ok(&["get", "ep", "-n", "kubeflow"]);
    assert!(out.contains("ml-pipeline") && out.contains("minio-service"), "{out}");
    let out = kubectl.ok(&["get", "endpointslices", "-n", "kubeflow", "-o", "name"]);
    assert_eq!(out.trim(), "endpointslice.discovery.k8s.io/ml-pipeline-x7k2p");
}

const CRASHING_POD: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Pod
metadata: {name: ml-pipeline-7d9f, namespace: kubeflow}
spec:
  containers: [{name: ml-pipeline-api-server, image: ghcr.io/kubeflow/kfp-api-server:2.5.0}]
status:
  phase: Running
  conditions:
  - {type: Ready, status: 'False', reason: ContainersNotReady, lastTransitionTime: '2025-01-01T00:00:00Z'}
  - {type: PodScheduled, status: 'True', lastTransitionTime: '2025-01-01T00:00:00Z'}
  containerStatuses:
  - name: ml-pipeline-api-server
    image: ghcr.io/kubeflow/kfp-api-server:2.5.0
    imageID: ''
    ready: false
    restartCount: 7
    state:
      waiting: {reason: CrashLoopBackOff, message: back-off 5m0s restarting failed container}
    lastState:
      terminated: {reason: Error, exitCode: 1, startedAt: '2025-01-01T00:10:00Z', finishedAt: '2025-01-01T00:10:31Z'}
";

#[tokio::test]
async fn a_seeded_crash_loop_status_reads_back_unchanged() {
    let server = Server::start(Options::default());
    server.seed_yaml(CRASHING_POD).unwrap();
    let seeded = &kube_standin::parse_yaml_objects(CRASHING_POD).unwrap()[1]["status"];
    let client = client(&server).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kubeflow");

    let pod = pods.get("ml-pipeline-7d9f").await.unwrap();
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    let cs = &status.container_statuses.unwrap()[0];
    assert_eq!(cs.restart_count, 7);
    assert_eq!(
        cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
        Some("CrashLoopBackOff")
    );
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("Error"), 1));

    let listed = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].status, pod.status, "list and get agree");
    let raw: Value = client
        .request(
            http::Request::get("/api/v1/namespaces/kubeflow/pods/ml-pipeline-7d9f")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(&raw["status"], seeded, "the status is served as it was seeded");
}

#[tokio::test]
async fn a_dry_run_delete_stores_nothing_whether_asked_in_the_query_or_the_body() {
    let server = Server::start(Options::default());
    server.seed_yaml(CRASHING_POD).unwrap();
    server.set_pod_log(
        "kubeflow",
        "ml-pipeline-7d9f",
        "ml-pipeline-api-server",
        false,
        "failed\n",
    );
    let client = client(&server).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kubeflow");
    let stored = || server.get("v1", "Pod", Some("kubeflow"), "ml-pipeline-7d9f");
    let before = stored().unwrap();
    server.clear_requests();

    // kube sends DeleteOptions in the body.
    let in_body = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    pods.delete("ml-pipeline-7d9f", &in_body).await.unwrap();
    let in_query = http::Request::delete("/api/v1/namespaces/kubeflow/pods/ml-pipeline-7d9f?dryRun=All")
        .body(vec![])
        .unwrap();
    let answered: Value = client.request(in_query).await.unwrap();
    assert_eq!(answered["metadata"]["name"], "ml-pipeline-7d9f");
    let kubectl = Kubectl::new(&server);
    let out = kubectl.ok(&[
        "delete",
        "pod",
        "ml-pipeline-7d9f",
        "-n",
        "kubeflow",
        "--dry-run=server",
    ]);
    assert!(
        out.contains("pod \"ml-pipeline-7d9f\" deleted (server dry run)"),
        "{out}"
    );
    let namespace = http::Request::delete("/api/v1/namespaces/kubeflow?dryRun=All")
        .body(vec![])
        .unwrap();
    let ns: Value = client.request(namespace).await.unwrap();
    assert_eq!(
        ns["status"]["phase"], "Terminating",
        "the answer shows what would happen"
    );

    assert_eq!(stored().unwrap(), before, "dry runs deleted nothing");
    assert!(server.get("v1", "Namespace", None, "kubeflow").is_some());
    let deletes: Vec<(bool, u16)> = server
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| (r.dry_run, r.status))
        .collect();
    assert_eq!(deletes, [(true, 200); 4]);

    // A real delete takes the pod's logs with it; a pod of the same name starts with none.
    pods.delete("ml-pipeline-7d9f", &DeleteParams::default()).await.unwrap();
    assert!(stored().is_none());
    server.seed(before).unwrap();
    let logs = pods.logs("ml-pipeline-7d9f", &LogParams::default()).await.unwrap();
    assert_eq!(logs, "", "CrashLoopBackOff with no previous log stored");
}
