//! The HTTP front: routing Kubernetes API paths onto the store, the discovery documents and the
//! subresources, fault injection and the request log.

use crate::discovery::{core_versions, group_doc, group_list, resource_list, version};
use crate::errors::ApiError;
use crate::logs;
use crate::rbac::{review, Identity};
use crate::resources::{Res, AUTHZ_GROUP};
use crate::scale::{self, ScaleRequest};
use crate::store::{Ctx, ListQuery, PatchKind, State};
use crate::table::table;
use crate::util::parse_query;
use crate::Request;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Shared by the server task and the `Server` handle.
pub struct App {
    pub state: Mutex<State>,
    pub addr: SocketAddr,
}

impl App {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not take the whole stand-in down with it.
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.tick();
        g
    }
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(app)
}

/// A parsed query string, parameters in order.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

pub enum Reply {
    Json(u16, Value),
    Text(&'static str),
    /// A `text/plain` body (pod logs).
    Plain(Vec<u8>),
    Watch(mpsc::Receiver<Bytes>),
}

/// A streaming response body fed one watch event line at a time.
struct WatchBody(mpsc::Receiver<Bytes>);

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

fn event_line(kind: &str, obj: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": obj}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Streams changes to a collection: with no `resourceVersion` (or "0"), every current object as
/// ADDED first; with one, objects changed since then as MODIFIED (deletions before the watch
/// began are not replayed); then live events until `timeoutSeconds`.
fn watch(app: &Arc<App>, res: Res, ns: Option<String>, q: ListQuery, rv: &str, timeout: u64) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let ns = ns.filter(|n| res.namespaced && !n.is_empty());
    let since: Option<u64> = rv.parse().ok().filter(|r| *r > 0);
    let st = app.lock();
    // Subscribing under the lock means no change falls between the catch-up and the stream.
    let mut events = st.events.subscribe();
    let list = st.list(&res, ns.as_deref(), &q);
    drop(st);
    let mut initial = Vec::new();
    for item in list["items"].as_array().cloned().unwrap_or_default() {
        let item_rv: u64 = item["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        match since {
            None => initial.push(event_line("ADDED", item)),
            Some(s) if item_rv > s => initial.push(event_line("MODIFIED", item)),
            _ => {}
        }
    }
    let app = Arc::clone(app);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(timeout));
        tokio::pin!(deadline);
        // CRDs become Established lazily, on an access (see `State::tick`); a watcher makes
        // none while it waits, so the watch itself ticks, as a real server's time passes.
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = ticks.tick() => drop(app.lock()),
                ev = events.recv() => {
                    // Lagging or a closed channel ends the watch; clients re-list and re-watch.
                    let Ok(ev) = ev else { return };
                    let k = &ev.key;
                    if k.0 != res.group || k.1 != res.plural || ns.as_deref().is_some_and(|n| k.2 != n) || !q.matches(&ev.object) {
                        continue;
                    }
                    if tx.send(event_line(ev.kind, State::present(&res, &ev.object))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

fn json_response(code: u16, v: &Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), v.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(s));
    }
    r
}

async fn handle(
    AxState(app): AxState<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = app.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    let query = Query(parse_query(&raw_query));
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = header("content-type");
    let dry_run = query.all("dryRun").any(|v| v == "All")
        || (method == Method::DELETE && body_dry_run(&body).iter().any(|v| v == "All"));
    let field_manager = query.get("fieldManager").map(str::to_string);

    let fault = {
        let mut st = app.lock();
        let m = method.as_str();
        st.faults
            .iter_mut()
            .find(|f| {
                f.times > 0
                    && f.method.as_deref().is_none_or(|fm| fm.eq_ignore_ascii_case(m))
                    && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
            })
            .map(|f| {
                f.times -= 1;
                ApiError::for_status(f.status, f.retry_after_secs)
            })
    };
    let response = match fault {
        Some(e) => error_response(&e),
        None => match route(&app, &method, &path, &query, &headers, &body) {
            Ok(Reply::Json(code, v)) => json_response(code, &v),
            Ok(Reply::Text(t)) => t.into_response(),
            Ok(Reply::Plain(b)) => {
                let mut r = b.into_response();
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("text/plain"));
                r
            }
            Ok(Reply::Watch(rx)) => {
                let mut r = axum::body::Body::new(WatchBody(rx)).into_response();
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                r
            }
            Err(e) => error_response(&e),
        },
    };
    let status = response.status().as_u16();
    let mut st = app.lock();
    if st.log_stderr {
        let q = if raw_query.is_empty() {
            String::new()
        } else {
            format!("?{raw_query}")
        };
        eprintln!("{} {path}{q} -> {status}", method.as_str());
    }
    st.requests.push(Request {
        method: method.as_str().to_string(),
        subresource: subresource_of(&path),
        path,
        query: raw_query,
        status,
        dry_run,
        field_manager,
        content_type,
    });
    response
}

/// Where a resource path points.
enum Target {
    Collection {
        res: Res,
        ns: Option<String>,
    },
    Item {
        res: Res,
        ns: String,
        name: String,
        sub: Option<String>,
    },
}

fn resolve_target(st: &State, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let lookup = |plural: &str| st.resolve(group, version, plural).ok_or_else(ApiError::no_route);
    // `namespaces/<ns>/<resource>…` addresses namespaced resources, unless <resource> is a
    // subresource of the Namespace itself (namespaces/x/status).
    if rest.len() >= 3 && rest[0] == "namespaces" {
        if let Some(res) = st.resolve(group, version, rest[2]).filter(|r| r.namespaced) {
            let ns = rest[1].to_string();
            return match rest.len() {
                3 => Ok(Target::Collection { res, ns: Some(ns) }),
                4 | 5 => Ok(Target::Item {
                    res,
                    ns,
                    name: rest[3].to_string(),
                    sub: rest.get(4).map(|s| s.to_string()),
                }),
                _ => Err(ApiError::no_route()),
            };
        }
    }
    let res = lookup(rest[0])?;
    match rest.len() {
        1 => Ok(Target::Collection { res, ns: None }),
        2 | 3 if !res.namespaced => Ok(Target::Item {
            res,
            ns: String::new(),
            name: rest[1].to_string(),
            sub: rest.get(2).map(|s| s.to_string()),
        }),
        _ => Err(ApiError::no_route()),
    }
}

/// The subresource a resource path names (`status`, `scale`, `log`…), from its shape alone:
/// `…/namespaces/{ns}/{plural}/{name}/{sub}`, `…/{plural}/{name}/{sub}` for cluster-scoped
/// kinds, and `/api/v1/namespaces/{name}/{status|finalize}`.
fn subresource_of(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (core, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => (true, rest),
        ["apis", _, _, rest @ ..] => (false, rest),
        _ => return None,
    };
    let sub = match rest {
        ["namespaces", _, _, _, sub] => sub,
        ["namespaces", _, sub @ ("status" | "finalize")] if core => sub,
        [first, _, sub] if *first != "namespaces" => sub,
        _ => return None,
    };
    Some((*sub).to_string())
}

/// `dryRun` from a DeleteOptions body (kube and client-go send delete options there).
fn body_dry_run(body: &Bytes) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["dryRun"].as_array().cloned())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The caller, after impersonation (honoured for `system:masters` callers only).
fn caller(headers: &HeaderMap) -> Identity {
    let me = Identity::from_token(bearer(headers));
    let Some(user) = headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
        return me;
    };
    if !me.groups.iter().any(|g| g == "system:masters") {
        return me;
    }
    let groups = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    Identity {
        user: user.to_string(),
        groups,
    }
}

pub fn parse_body(headers: &HeaderMap, body: &Bytes, yaml: bool) -> Result<Value, ApiError> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if yaml || ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        yaml_serde::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))
    }
}

/// How a PATCH body is to be applied, from its content type.
pub enum PatchFormat {
    /// Merge patch; strategic merge is treated as one.
    Merge,
    Json,
    /// Server-side apply by this field manager.
    Apply(String),
}

pub fn patch_format(headers: &HeaderMap, query: &Query) -> Result<PatchFormat, ApiError> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    match ct.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(PatchFormat::Merge),
        "application/json-patch+json" => Ok(PatchFormat::Json),
        "application/apply-patch+yaml" => match query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => Ok(PatchFormat::Apply(m.to_string())),
            None => Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            )),
        },
        other => Err(ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"))),
    }
}

fn manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    // The real server's default: the User-Agent's first word, up to the first '/'.
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split_whitespace().next())
        .map(|w| w.split('/').next().unwrap_or(w).to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = method == Method::GET;
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] if get => return Ok(Reply::Text("ok")),
        ["version"] if get => return Ok(Reply::Json(200, version())),
        [] if get => {
            return Ok(Reply::Json(
                200,
                json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/readyz", "/version"]}),
            ))
        }
        _ => {}
    }
    let st = app.lock();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api"] if get => return Ok(Reply::Json(200, core_versions(app.addr))),
        ["apis"] if get => return Ok(Reply::Json(200, group_list(&st))),
        ["apis", g] if get => return group_doc(&st, g).map(|v| Reply::Json(200, v)),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return if get {
            resource_list(&st, group, version).map(|v| Reply::Json(200, v))
        } else {
            Err(ApiError::method_not_allowed())
        };
    }
    let target = resolve_target(&st, group, version, rest)?;
    drop(st);
    let mut dry = false;
    let from_body = if *method == Method::DELETE {
        body_dry_run(body)
    } else {
        Vec::new()
    };
    for v in query.all("dryRun").chain(from_body.iter().map(String::as_str)) {
        if v != "All" {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value {v:?}: supported values: \"All\""
            )));
        }
        dry = true;
    }
    let ctx = |sub: Option<String>| Ctx {
        dry_run: dry,
        manager: manager(query, headers),
        subresource: sub,
        seeding: false,
    };
    let verb_ok = |res: &Res, verb: &str| {
        if res.verbs.contains(&verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    let as_table = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let list_query = || {
        ListQuery::parse(
            query.get("labelSelector"),
            query.get("fieldSelector"),
            query.get("limit"),
            query.get("continue"),
        )
    };
    match target {
        Target::Collection { res, ns } => {
            if res.group == AUTHZ_GROUP {
                if *method != Method::POST {
                    return Err(ApiError::method_not_allowed());
                }
                return access_review(app, &res, headers, body).map(|v| Reply::Json(201, v));
            }
            match *method {
                Method::GET => {
                    if query.flag("watch") {
                        verb_ok(&res, "watch")?;
                        let mut q = list_query()?;
                        q.limit = None;
                        q.after = None;
                        let rv = query.get("resourceVersion").unwrap_or("");
                        let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800);
                        return Ok(Reply::Watch(watch(app, res, ns, q, rv, timeout)));
                    }
                    verb_ok(&res, "list")?;
                    let q = list_query()?;
                    let list = app.lock().list(&res, ns.as_deref(), &q);
                    Ok(Reply::Json(
                        200,
                        if as_table {
                            table(&res, &list, query.get("includeObject").unwrap_or("Metadata"))
                        } else {
                            list
                        },
                    ))
                }
                Method::POST => {
                    verb_ok(&res, "create")?;
                    let obj = parse_body(headers, body, false)?;
                    let ns = ns.unwrap_or_default();
                    if res.namespaced && ns.is_empty() {
                        return Err(ApiError::no_route());
                    }
                    app.lock()
                        .create(&res, &ns, obj, &ctx(None), "Update")
                        .map(|v| Reply::Json(201, v))
                }
                Method::DELETE => {
                    verb_ok(&res, "deletecollection")?;
                    let q = list_query()?;
                    app.lock()
                        .delete_collection(&res, ns.as_deref(), &q, dry)
                        .map(|v| Reply::Json(200, v))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Item { res, ns, name, sub } => {
            match sub.as_deref() {
                None => {}
                Some("log") if logs::serves(&res) => {
                    if *method != Method::GET {
                        return Err(ApiError::method_not_allowed());
                    }
                    return logs::read(&app.lock(), &res, &ns, &name, query).map(Reply::Plain);
                }
                Some("scale") if scale::serves(&res) => {
                    let req = ScaleRequest {
                        method,
                        res: &res,
                        ns: &ns,
                        name: &name,
                        query,
                        headers,
                        body,
                        as_table,
                    };
                    return scale::handle(&mut app.lock(), &req, &ctx(Some("scale".into())));
                }
                // The status subresource is read and written, never created or deleted.
                Some("status") if res.status && !matches!(*method, Method::GET | Method::PUT | Method::PATCH) => {
                    return Err(ApiError::method_not_allowed());
                }
                Some("status") if res.status => {}
                Some(_) => return Err(ApiError::no_route()),
            }
            match *method {
                Method::GET => {
                    verb_ok(&res, "get")?;
                    let obj = app.lock().get(&res, &ns, &name)?;
                    if as_table {
                        let list = json!({"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "items": [obj]});
                        return Ok(Reply::Json(
                            200,
                            table(&res, &list, query.get("includeObject").unwrap_or("Metadata")),
                        ));
                    }
                    Ok(Reply::Json(200, obj))
                }
                Method::PUT => {
                    verb_ok(&res, "update")?;
                    let obj = parse_body(headers, body, false)?;
                    app.lock()
                        .replace(&res, &ns, &name, obj, &ctx(sub))
                        .map(|v| Reply::Json(200, v))
                }
                Method::PATCH => {
                    verb_ok(&res, "patch")?;
                    let kind = match patch_format(headers, query)? {
                        PatchFormat::Merge => PatchKind::Merge,
                        PatchFormat::Json => PatchKind::Json,
                        PatchFormat::Apply(mgr) => {
                            let obj = parse_body(headers, body, true)?;
                            let mut c = ctx(sub);
                            c.manager = mgr;
                            let force = query.flag("force");
                            let mut st = app.lock();
                            let existed = st.get(&res, &ns, &name).is_ok();
                            let out = st.apply(&res, &ns, &name, obj, &c, force)?;
                            return Ok(Reply::Json(if existed { 200 } else { 201 }, out));
                        }
                    };
                    let patch = parse_body(headers, body, false)?;
                    app.lock()
                        .patch(&res, &ns, &name, kind, patch, &ctx(sub))
                        .map(|v| Reply::Json(200, v))
                }
                Method::DELETE => {
                    verb_ok(&res, "delete")?;
                    app.lock().delete(&res, &ns, &name, dry).map(|v| Reply::Json(200, v))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

fn access_review(app: &App, res: &Res, headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut obj = if ct.starts_with("application/vnd.kubernetes.protobuf") {
        crate::proto::decode_access_review(body)
            .ok_or_else(|| ApiError::bad_request("could not decode the protobuf access review"))?
    } else {
        parse_body(headers, body, false)?
    };
    if obj["kind"].as_str().is_some_and(|k| k != res.kind) {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            "",
            "kind",
            "FieldValueInvalid",
            &format!("Invalid value: {}: must be {}", obj["kind"], res.kind),
        ));
    }
    let spec = obj["spec"].clone();
    if spec.get("resourceAttributes").is_none() && spec.get("nonResourceAttributes").is_none() {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            "",
            "spec.resourceAttributes",
            "FieldValueRequired",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let who = if res.plural == "selfsubjectaccessreviews" {
        caller(headers)
    } else {
        let user = spec["user"].as_str().unwrap_or("").to_string();
        let groups = spec["groups"]
            .as_array()
            .map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if user.is_empty() && spec["groups"].as_array().is_none_or(Vec::is_empty) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                "",
                "spec.user",
                "FieldValueRequired",
                "Required value: at least one of user or group must be specified",
            ));
        }
        Identity { user, groups }
    };
    let (allowed, reason) = review(&app.lock(), &who, &spec);
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    let mut status = json!({ "allowed": allowed });
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    obj["status"] = status;
    Ok(obj)
}
