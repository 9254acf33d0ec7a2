//! A stand-in Kubernetes API server for kfguard's tests: real HTTP on 127.0.0.1, in-memory state.
//!
//! The real `kube::Client` and `kubectl` talk to it through a kubeconfig pointing at it. It serves
//! discovery, get/list/watch/create/update/patch/delete (merge, strategic-merge treated as merge, JSON
//! patch and an approximation of server-side apply), `dryRun=All`, label/field selectors,
//! pagination, CustomResourceDefinitions (served once Established, after a configurable delay),
//! `/status` subresources, SubjectAccessReview/SelfSubjectAccessReview evaluated against the
//! stored RBAC objects, Table output for `kubectl get`, fault injection and a request log.
//! It is test tooling: a dev-dependency of kfguard, never part of the shipped binary.
//!
//! Besides the workloads, RBAC, config and storage kinds it serves Endpoints (`ep`) and
//! `discovery.k8s.io/v1` EndpointSlices as plain stored objects (nothing derives them from
//! Services or Pods: seed them).
//!
//! # Subresources
//!
//! - `…/{kind}/{name}/status` for the kinds that have one: writes change only `.status`, and
//!   main-resource writes keep the live status.
//! - `pods/{name}/log` answers, as `text/plain`, whatever the test stored with
//!   [`Server::set_pod_log`], picked and trimmed as the API server and the kubelet do:
//!   `container` (defaulted when the pod has one container; 400 `a container name must be
//!   specified for pod P, choose one of: [a b]` when it has several, 400 `container X is not
//!   valid for pod P` for an unknown one), `previous` (400 `previous terminated container "c" in
//!   pod "p" not found` unless a previous log was stored or the status has
//!   `lastState.terminated`), `tailLines` and `limitBytes` (422 for a negative `tailLines` or a
//!   `limitBytes` below 1, as `ValidatePodLogOptions` has it). With no stored log the body is
//!   empty, except that a container whose status is waiting answers as the kubelet does: after
//!   a crash (`lastState.terminated`) with the previous log, before its first start with 400
//!   `container "c" in pod "p" is waiting to start: REASON`. A stored current log always wins. `timestamps`, `sinceSeconds` and `sinceTime`
//!   are ignored; `follow` is answered as if false (the whole log at once, then the body ends);
//!   the pod need not be scheduled (`spec.nodeName`).
//! - `deployments|statefulsets|replicasets/{name}/scale` serve an `autoscaling/v1` Scale built
//!   from the parent (its name, namespace, uid, resourceVersion and creationTimestamp,
//!   `spec.replicas` defaulted to 1 and omitted at 0 as `omitempty` makes the real server do,
//!   `status.replicas`, and `status.selector` printed from `spec.selector`). PUT and PATCH (merge,
//!   strategic merge as merge, JSON patch; apply approximated as a merge) set the parent's
//!   `spec.replicas` through the parent's write pipeline: new resourceVersion and generation, a
//!   `managedFields` entry with `subresource: scale`, a MODIFIED watch event, `dryRun=All`
//!   honoured, a Scale resourceVersion checked as a precondition, and 422 for negative replicas.
//!   Nothing reconciles `status.replicas`: set it by seeding or through `/status`.
//!
//! Discovery lists `pods/log`, `*/scale` (group `autoscaling`, version `v1`, kind `Scale`) and
//! `*/status`, as a real server does; each request log entry names its subresource.
//!
//! Discovery lists each group's versions in Kubernetes version priority and prefers the first,
//! as a real API server does: GA over beta over alpha, then the higher number (`v1` over
//! `v2beta1` over `v1beta1` over `v1alpha1`), whatever the order of the CRDs that serve them.
//!
//! # In tests
//!
//! ```no_run
//! use kube_standin::{Fault, Options, Server};
//! let server = Server::start(Options::default());
//! server.seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubeflow\n").unwrap();
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig")).unwrap();
//! server.inject(Fault { status: 429, times: 2, retry_after_secs: Some(1), ..Fault::default() });
//! server.set_pod_log("kubeflow", "ml-pipeline-0", "api-server", false, "connection refused\n");
//! // … run kfguard against it, then assert on server.all(), server.get(..), server.requests()
//! ```
//!
//! `Server::start` runs its own tokio runtime on its own thread, so it works from plain `#[test]`s
//! and from inside `#[tokio::test]`. The server stops when the `Server` is dropped.
//!
//! # Standalone
//!
//! ```text
//! cargo run -p kube-standin -- --fixtures tests/standin/fixtures \
//!     [--port 6443] [--kubeconfig FILE] [--established-delay-ms N]
//! KUBECONFIG=FILE kubectl get crds
//! ```
//!
//! It seeds every `*.yaml`/`*.yml` under the fixtures folder (Namespaces and CRDs first), writes
//! the kubeconfig to FILE (or prints it to stdout), logs one line per request to stderr and serves
//! until SIGTERM or ctrl-c.
//!
//! # Identity
//!
//! Requests carry a bearer token. `admin` (what the generated kubeconfig uses) is user `admin` in
//! group `system:masters`. `user:<name>[:<group>,<group>…]` is that user with those groups; the name
//! may be a service account (`user:system:serviceaccount:<ns>:<sa>`) or another `system:<x>`
//! user. A request without a token is treated like the old insecure port: user `admin` in
//! `system:masters` (kubectl never sends tokens to an `http://` server). Identity only matters to SelfSubjectAccessReview: every
//! caller may read and write everything. `system:masters` callers may impersonate with
//! `Impersonate-User` / `Impersonate-Group` (so `kubectl auth can-i --as …` works).
//!
//! # Approximations
//!
//! Watches stream live events but replay no deletions from before they began; protobuf request
//! bodies are decoded only for access reviews (so typed `kubectl create …` fails; `kubectl apply
//! --validate=false` works, as /openapi/v2 and /openapi/v3 are 404), no schema validation or version conversion for custom
//! resources, no admission, no garbage collection by owner references (deleting a namespace or a
//! CRD removes its objects at once), `managedFields.fieldsV1` lists the keys a manager sent, and
//! apply conflicts are reported only when another manager listed a field whose value changes.
//! No controllers run: scaling a Deployment changes its `spec.replicas` and nothing else (no
//! ReplicaSets or Pods appear or go), and pod logs, endpoints and statuses are what the test
//! stored. No other pod subresources (exec, attach, port-forward, eviction) are served.

mod discovery;
mod errors;
mod http;
mod logs;
mod patch;
mod proto;
mod rbac;
mod resources;
mod scale;
mod select;
mod store;
mod table;
mod util;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use errors::ApiError;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a created CRD stays un-Established (its resources 404 until then).
    pub established_delay: Duration,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            established_delay: Duration::ZERO,
            port: 0,
        }
    }
}

/// One logged HTTP request, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The subresource addressed (`status`, `scale`, `log`…), if any.
    pub subresource: Option<String>,
    /// The raw query string, without `?`.
    pub query: String,
    pub status: u16,
    /// `dryRun=All` was present.
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub content_type: Option<String>,
}

/// An injected failure: the next `times` requests matching `method` (any if None) and
/// `path_contains` (any if None) get `status` (429 carries `Retry-After` when set).
#[derive(Debug, Clone, Default)]
pub struct Fault {
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub status: u16,
    pub times: usize,
    pub retry_after_secs: Option<u64>,
}

/// A running stand-in API server; it shuts down on drop.
pub struct Server {
    app: Arc<http::App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds 127.0.0.1, starts serving on a thread with its own runtime, and returns once listening.
    pub fn start(opts: Options) -> Server {
        Self::try_start(opts).expect("start the stand-in API server")
    }

    /// `start`, reporting bind failures instead of panicking.
    pub fn try_start(opts: Options) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = Arc::new(http::App {
            state: std::sync::Mutex::new(store::State::new(opts.established_delay)),
            addr,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = http::router(app.clone());
        let thread = std::thread::Builder::new().name("kube-standin".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build the stand-in's tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("adopt the listener");
                let serve = std::future::IntoFuture::into_future(axum::serve(listener, router));
                tokio::select! {
                    r = serve => if let Err(e) = r { eprintln!("kube-standin: server error: {e}") },
                    _ = rx => {}
                }
            });
            // Dropping the runtime cancels open connections (kube clients keep them alive).
            rt.shutdown_timeout(Duration::from_millis(200));
        })?;
        Ok(Server {
            app,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    pub fn port(&self) -> u16 {
        self.app.addr.port()
    }

    /// A kubeconfig: cluster `standin`, user `admin` with token `admin`, current context `standin`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: {}
users:
- name: admin
  user:
    token: admin
contexts:
- name: standin
  context:
    cluster: standin
    user: admin
current-context: standin
preferences: {{}}
",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Stores every object of a multi-document YAML (`kind: List` expanded), Namespaces and CRDs
    /// first; seeded CRDs are Established at once. A namespaced object whose namespace does not
    /// exist is an error. Returns how many objects were stored.
    pub fn seed_yaml(&self, yaml: &str) -> anyhow::Result<usize> {
        let objs = parse_yaml_objects(yaml)?;
        self.seed_all(objs)
    }

    /// `seed_yaml` over every `*.yaml`/`*.yml` under `dir`, recursively, as one batch.
    pub fn seed_dir(&self, dir: &Path) -> anyhow::Result<usize> {
        let mut files = Vec::new();
        collect_yaml(dir, &mut files)?;
        files.sort();
        let mut objs = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).with_context(|| format!("read {}", f.display()))?;
            objs.extend(parse_yaml_objects(&text).with_context(|| format!("parse {}", f.display()))?);
        }
        self.seed_all(objs)
    }

    fn seed_all(&self, mut objs: Vec<Value>) -> anyhow::Result<usize> {
        let rank = |o: &Value| match (o["apiVersion"].as_str(), o["kind"].as_str()) {
            (Some("v1"), Some("Namespace")) => 0,
            (_, Some("CustomResourceDefinition")) => 1,
            _ => 2,
        };
        objs.sort_by_key(rank);
        let n = objs.len();
        let mut st = self.app.lock();
        for o in objs {
            st.seed(o)?;
        }
        Ok(n)
    }

    /// Stores one object as given (status included).
    pub fn seed(&self, obj: Value) -> anyhow::Result<()> {
        self.app.lock().seed(obj)
    }

    /// The stored object, presented at `api_version`.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let st = self.app.lock();
        let res = st.resolve_kind(api_version, kind)?;
        st.get(&res, namespace.unwrap_or(""), name).ok()
    }

    /// Every object of a kind across namespaces, sorted by (namespace, name).
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let st = self.app.lock();
        let Some(res) = st.resolve_kind(api_version, kind) else {
            return Vec::new();
        };
        let list = st.list(&res, None, &store::ListQuery::default());
        match list.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// Every stored object, ordered by (group, resource, namespace, name).
    pub fn all(&self) -> Vec<Value> {
        self.app.lock().objects.values().cloned().collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.app.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.app.lock().requests.clear();
    }

    /// Sets what `GET /api/v1/namespaces/{namespace}/pods/{pod}/log?container={container}` answers;
    /// `previous` sets the log of the container's previous, terminated run (`previous=true`).
    /// The pod need not exist yet; deleting it drops its logs, as a real cluster does.
    pub fn set_pod_log(&self, namespace: &str, pod: &str, container: &str, previous: bool, text: &str) {
        let key = (namespace.to_string(), pod.to_string(), container.to_string(), previous);
        self.app.lock().logs.insert(key, text.to_string());
    }

    /// Adds a fault; faults are consulted in the order they were injected.
    pub fn inject(&self, fault: Fault) {
        self.app.lock().faults.push(fault);
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        self.app.lock().faults.clear();
    }

    /// Delay added before every response.
    pub fn set_latency(&self, d: Duration) {
        self.app.lock().latency = d;
    }

    /// Delay before CRDs created from now on become Established.
    pub fn set_established_delay(&self, d: Duration) {
        self.app.lock().established_delay = d;
    }

    /// Logs one line per request to stderr (the standalone binary turns this on).
    pub fn log_requests_to_stderr(&self, on: bool) {
        self.app.lock().log_stderr = on;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses multi-document YAML into objects, expanding `kind: List` (and `*List` with items).
pub fn parse_yaml_objects(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc).context("invalid YAML document")?;
        expand(v, &mut out);
    }
    Ok(out)
}

fn expand(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Null => {}
        Value::Object(ref m)
            if m.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && m.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = m.get("items") {
                for i in items {
                    expand(i.clone(), out);
                }
            }
        }
        v => out.push(v),
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}
