//! The in-memory object store: the write pipeline (validation, server-set metadata, one global
//! resourceVersion counter), lists with selectors and pagination, and CRD establishment.

use crate::errors::ApiError;
use crate::patch::{fields_v1, json_patch, leaf_paths, merge_patch, value_at};
use crate::resources::{builtins, crd_resources, split_api_version, Res, CRD_GROUP, CRD_RESOURCE};
use crate::select::{FieldSelector, LabelSelector};
use crate::util::{hex_decode, hex_encode, name_suffix, now_rfc3339, uuid4};
use crate::{Fault, Request};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

/// (group, resource, namespace or "", name): one entry per object whatever the version.
pub type Key = (String, String, String, String);

/// Everything the server knows; guarded by one mutex.
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    pub established_delay: Duration,
    /// CRDs (by name) waiting to become Established, and when.
    pub pending: Vec<(String, Instant)>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    pub requests: Vec<Request>,
    pub log_stderr: bool,
    /// Committed changes, for watches.
    pub events: tokio::sync::broadcast::Sender<Event>,
}

/// One committed change: `ADDED`, `MODIFIED` or `DELETED` of a stored object.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
}

/// How a write was asked for.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub dry_run: bool,
    pub manager: String,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<String>,
    /// Fixture seeding: keep given status and metadata, establish CRDs at once.
    pub seeding: bool,
}

impl Ctx {
    fn on_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

pub enum PatchKind {
    Merge,
    Json,
}

/// Parsed list parameters.
#[derive(Default)]
pub struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub after: Option<(String, String)>,
}

impl ListQuery {
    pub fn parse(
        label: Option<&str>,
        field: Option<&str>,
        limit: Option<&str>,
        cont: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(label.unwrap_or("")).map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(field.unwrap_or("")).map_err(ApiError::bad_request)?;
        let limit = match limit {
            Some(l) if !l.is_empty() => {
                let n: i64 = l
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?;
                (n > 0).then_some(n as usize)
            }
            _ => None,
        };
        let after = match cont {
            Some(c) if !c.is_empty() => {
                let raw = hex_decode(c)
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
                let (ns, name) = raw
                    .split_once('\u{0}')
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                Some((ns.to_string(), name.to_string()))
            }
            _ => None,
        };
        Ok(ListQuery {
            labels,
            fields,
            limit,
            after,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn md(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn md_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

fn name_of(obj: &Value) -> &str {
    md(obj)["name"].as_str().unwrap_or("")
}

/// The object without server-managed or identity parts: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// The object minus bookkeeping that changes on every write, to spot no-op updates.
fn content(obj: &Value) -> Value {
    let mut v = obj.clone();
    let m = md_mut(&mut v);
    m.remove("resourceVersion");
    m.remove("managedFields");
    m.remove("generation");
    v
}

fn crd_status(crd: &Value, established: bool) -> Value {
    let now = now_rfc3339();
    let names = &crd["spec"]["names"];
    let mut accepted = names.clone();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_ascii_lowercase());
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let established_cond = if established {
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now})
    } else {
        json!({"type": "Established", "status": "False", "reason": "Installing", "message": "the resource is being installed", "lastTransitionTime": now})
    };
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            established_cond,
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}

fn managed_entry(manager: &str, operation: &str, api_version: &str, fields: Value, subresource: Option<&str>) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// Replaces (or adds) this manager's entry for this operation.
fn record_manager(obj: &mut Value, entry: Value) {
    let m = md_mut(obj);
    let mut list: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let same = |e: &Value| {
        e["manager"] == entry["manager"]
            && e["operation"] == entry["operation"]
            && e.get("subresource") == entry.get("subresource")
    };
    match list.iter_mut().find(|e| same(e)) {
        Some(e) if e["fieldsV1"] == entry["fieldsV1"] => {}
        Some(e) => *e = entry,
        None => list.push(entry),
    }
    m.insert("managedFields".into(), Value::Array(list));
}

impl State {
    pub fn new(established_delay: Duration) -> Self {
        State {
            objects: BTreeMap::new(),
            rv: 0,
            established_delay,
            pending: Vec::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            requests: Vec::new(),
            log_stderr: false,
            events: tokio::sync::broadcast::channel(8192).0,
        }
    }

    fn emit(&self, kind: &'static str, key: &Key, object: &Value) {
        // No receivers is the normal case: nobody is watching.
        let _ = self.events.send(Event {
            kind,
            key: key.clone(),
            object: object.clone(),
        });
    }

    /// Stores an object, telling watchers.
    fn put(&mut self, key: Key, obj: Value, kind: &'static str) {
        self.emit(kind, &key, &obj);
        self.objects.insert(key, obj);
    }

    /// Removes every object matching `pred`, telling watchers.
    fn remove_where(&mut self, pred: impl Fn(&Key) -> bool) {
        let keys: Vec<Key> = self.objects.keys().filter(|k| pred(k)).cloned().collect();
        for k in keys {
            if let Some(mut o) = self.objects.remove(&k) {
                self.rv += 1;
                md_mut(&mut o).insert("resourceVersion".into(), json!(self.rv.to_string()));
                self.emit("DELETED", &k, &o);
            }
        }
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// Marks CRDs Established once their delay has passed (checked lazily on every access).
    pub fn tick(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, wait): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(_, t)| *t <= now);
        self.pending = wait;
        for (name, _) in due {
            let key = (CRD_GROUP.to_string(), CRD_RESOURCE.to_string(), String::new(), name);
            let Some(mut crd) = self.objects.get(&key).cloned() else {
                continue;
            };
            crd["status"] = crd_status(&crd, true);
            md_mut(&mut crd).insert("resourceVersion".into(), json!(self.next_rv()));
            self.put(key, crd, "MODIFIED");
        }
    }

    fn range<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
        after: Option<(String, String)>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = match after {
            Some((n, name)) => Bound::Excluded((group.to_string(), resource.to_string(), n, name)),
            None => Bound::Included((
                group.to_string(),
                resource.to_string(),
                ns.unwrap_or("").to_string(),
                String::new(),
            )),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.0 == group && k.1 == resource && ns.is_none_or(|n| k.2 == n))
    }

    fn crds(&self) -> impl Iterator<Item = &Value> {
        self.range(CRD_GROUP, CRD_RESOURCE, None, None).map(|(_, v)| v)
    }

    /// Built-ins plus the resources of every Established CRD.
    pub fn all_resources(&self) -> Vec<Res> {
        let mut out = builtins().to_vec();
        for crd in self.crds() {
            out.extend(crd_resources(crd, false));
        }
        out
    }

    /// The served resource at `group/version/plural`, if any.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Res> {
        if let Some(r) = builtins()
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
        {
            return Some(r.clone());
        }
        self.crds()
            .filter(|c| c["spec"]["group"] == group && c["spec"]["names"]["plural"] == plural)
            .flat_map(|c| crd_resources(c, false))
            .find(|r| r.version == version)
    }

    /// The resource for an apiVersion/kind, CRDs counted whether Established or not.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Res> {
        let (group, version) = split_api_version(api_version);
        if let Some(r) = builtins().iter().find(|r| r.group == group && r.kind == kind) {
            let mut r = r.clone();
            r.version = version.to_string();
            return Some(r);
        }
        let rs: Vec<Res> = self
            .crds()
            .filter(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)
            .flat_map(|c| crd_resources(c, true))
            .collect();
        rs.iter().find(|r| r.version == version).or(rs.first()).cloned()
    }

    fn key(res: &Res, ns: &str, name: &str) -> Key {
        let ns = if res.namespaced { ns } else { "" };
        (res.group.clone(), res.plural.clone(), ns.to_string(), name.to_string())
    }

    /// The stored object as seen through `res`'s version.
    pub fn present(res: &Res, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(res.api_version());
        o["kind"] = json!(res.kind);
        o
    }

    pub fn get(&self, res: &Res, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(res, ns, name))
            .map(|o| Self::present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    pub fn list(&self, res: &Res, ns: Option<&str>, q: &ListQuery) -> Value {
        let ns = ns.filter(|n| res.namespaced && !n.is_empty());
        let mut items = Vec::new();
        let mut it = self
            .range(&res.group, &res.plural, ns, q.after.clone())
            .filter(|(_, v)| q.matches(v));
        let mut last: Option<&Key> = None;
        for (k, v) in it.by_ref() {
            items.push(Self::present(res, v));
            last = Some(k);
            if q.limit.is_some_and(|l| items.len() >= l) {
                break;
            }
        }
        let mut meta = json!({ "resourceVersion": self.rv.to_string() });
        if q.limit.is_some_and(|l| items.len() >= l) {
            let remaining = it.count();
            if remaining > 0 {
                let k = last.expect("limit > 0 so an item was taken");
                meta["continue"] = json!(hex_encode(&format!("{}\u{0}{}", k.2, k.3)));
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": meta,
            "items": items,
        })
    }

    /// Checks and fills apiVersion, kind, namespace and (when given) name of a request body.
    fn check_identity(res: &Res, body: &mut Value, ns: &str, url_name: Option<&str>) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"));
        }
        let name = name_of(body).to_string();
        let shown = url_name.unwrap_or(&name).to_string();
        match body["apiVersion"].as_str() {
            None => body["apiVersion"] = json!(res.api_version()),
            Some(av) if av == res.api_version() => {}
            Some(av) => {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    &shown,
                    "apiVersion",
                    "FieldValueInvalid",
                    &format!("Invalid value: {av:?}: must be {}", res.api_version()),
                ))
            }
        }
        match body["kind"].as_str() {
            None => body["kind"] = json!(res.kind),
            Some(k) if k == res.kind => {}
            Some(k) => {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    &shown,
                    "kind",
                    "FieldValueInvalid",
                    &format!("Invalid value: {k:?}: must be {}", res.kind),
                ))
            }
        }
        let m = md_mut(body);
        if res.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        if let Some(u) = url_name {
            match m.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != u => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({u})"
                    )))
                }
                _ => {
                    m.insert("name".into(), json!(u));
                }
            }
        }
        Ok(())
    }

    fn validate(res: &Res, obj: &Value) -> Result<(), ApiError> {
        let name = name_of(obj);
        let invalid = |field: &str, reason: &str, detail: String| {
            Err(ApiError::invalid(&res.group, &res.kind, name, field, reason, &detail))
        };
        if name.is_empty() {
            return invalid(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required".into(),
            );
        }
        if res.group == "rbac.authorization.k8s.io" {
            // RBAC names are path segments ("system:controller:x" is fine).
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: may not contain '/' or '%'"),
                );
            }
        } else if res.is_namespace() {
            if !is_dns1123_label(name) {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: {LABEL_MSG}"),
                );
            }
        } else if !is_dns1123_subdomain(name) {
            return invalid(
                "metadata.name",
                "FieldValueInvalid",
                format!("Invalid value: {name:?}: {SUBDOMAIN_MSG}"),
            );
        }
        if res.is_crd() {
            let spec = &obj["spec"];
            for (field, v) in [
                ("spec.group", &spec["group"]),
                ("spec.names.plural", &spec["names"]["plural"]),
                ("spec.names.kind", &spec["names"]["kind"]),
                ("spec.scope", &spec["scope"]),
            ] {
                if v.as_str().is_none_or(str::is_empty) {
                    return invalid(field, "FieldValueRequired", "Required value".into());
                }
            }
            if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
                return invalid(
                    "spec.scope",
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                        spec["scope"]
                    ),
                );
            }
            if spec["versions"].as_array().is_none_or(Vec::is_empty) {
                return invalid(
                    "spec.versions",
                    "FieldValueRequired",
                    "Required value: must have exactly one version marked as storage version".into(),
                );
            }
            let want = format!(
                "{}.{}",
                spec["names"]["plural"].as_str().unwrap_or(""),
                spec["group"].as_str().unwrap_or("")
            );
            if name != want {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                );
            }
        }
        Ok(())
    }

    fn require_namespace(&self, res: &Res, ns: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        let key = (String::new(), "namespaces".to_string(), String::new(), ns.to_string());
        if self.objects.contains_key(&key) {
            Ok(())
        } else {
            Err(ApiError::not_found("", "namespaces", ns))
        }
    }

    /// POST, apply-create and seeding.
    pub fn create(
        &mut self,
        res: &Res,
        ns: &str,
        mut body: Value,
        ctx: &Ctx,
        operation: &str,
    ) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, None)?;
        let sent = body.clone();
        {
            let m = md_mut(&mut body);
            let has_name = m.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
            if !has_name {
                if let Some(g) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                    let n = format!("{g}{}", name_suffix());
                    m.insert("name".into(), json!(n));
                }
            }
        }
        Self::validate(res, &body)?;
        self.require_namespace(res, ns)?;
        let name = name_of(&body).to_string();
        let key = Self::key(res, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.group, &res.plural, &name));
        }
        let now = now_rfc3339();
        {
            let m = md_mut(&mut body);
            for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(k);
            }
            if !ctx.seeding || !m.contains_key("uid") {
                m.insert("uid".into(), json!(uuid4()));
            }
            if !ctx.seeding || !m.contains_key("creationTimestamp") {
                m.insert("creationTimestamp".into(), json!(now));
            }
            m.insert("generation".into(), json!(1));
            if !ctx.seeding {
                m.remove("managedFields");
            }
            m.remove("resourceVersion");
        }
        if res.status && !ctx.seeding {
            if let Some(o) = body.as_object_mut() {
                o.remove("status");
            }
        }
        if res.is_namespace() {
            if body["spec"]["finalizers"].is_null() {
                body["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            if body["status"]["phase"].is_null() {
                body["status"] = json!({"phase": "Active"});
            }
        }
        let mut pending = None;
        if res.is_crd() {
            let now_established = ctx.seeding || self.established_delay.is_zero();
            body["status"] = crd_status(&body, now_established);
            if !now_established {
                pending = Some((name.clone(), Instant::now() + self.established_delay));
            }
        }
        if !ctx.seeding {
            let entry = managed_entry(
                &ctx.manager,
                operation,
                &res.api_version(),
                fields_v1(&sent, false),
                None,
            );
            record_manager(&mut body, entry);
        }
        if ctx.dry_run {
            return Ok(Self::present(res, &body));
        }
        let rv = self.next_rv();
        md_mut(&mut body).insert("resourceVersion".into(), json!(rv));
        if let Some(p) = pending {
            self.pending.push(p);
        }
        let out = Self::present(res, &body);
        self.put(key, body, "ADDED");
        Ok(out)
    }

    /// The shared tail of PUT, PATCH and apply on an existing object.
    fn commit_update(
        &mut self,
        res: &Res,
        live: &Value,
        mut new: Value,
        ctx: &Ctx,
        operation: &str,
        sent: &Value,
    ) -> Result<Value, ApiError> {
        let name = name_of(live).to_string();
        let ns = md(live)["namespace"].as_str().unwrap_or("").to_string();
        if md(&new)["name"].as_str() != Some(name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        if let Some(rv) = md(&new)["resourceVersion"].as_str().filter(|r| !r.is_empty()) {
            if Some(rv) != md(live)["resourceVersion"].as_str() {
                return Err(ApiError::conflict(&res.group, &res.plural, &name));
            }
        }
        if new["kind"] != json!(res.kind) || new["apiVersion"] != json!(res.api_version()) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                &name,
                "kind",
                "FieldValueInvalid",
                "Invalid value: kind and apiVersion may not change",
            ));
        }
        let on_status = ctx.on_status();
        if on_status {
            // The status subresource changes only .status.
            let status = new.get("status").cloned();
            new = live.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        } else if res.status {
            // Main-resource writes keep the server-managed status.
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        {
            let lm = md(live).clone();
            let m = md_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
            ] {
                match lm.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.insert("namespace".into(), json!(ns));
            if ns.is_empty() {
                m.remove("namespace");
            }
        }
        Self::validate(res, &new)?;
        if res.is_crd() && !on_status {
            let established = crate::resources::is_established(live);
            let conds = live["status"]["conditions"].clone();
            new["status"] = crd_status(&new, established);
            new["status"]["conditions"] = conds;
        }
        if spec_part(&new) != spec_part(live) {
            let g = md(live)["generation"].as_i64().unwrap_or(1);
            md_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let sub = ctx.subresource.as_deref();
        let entry = managed_entry(
            &ctx.manager,
            operation,
            &res.api_version(),
            fields_v1(sent, on_status),
            sub,
        );
        record_manager(&mut new, entry);
        // A write that changes nothing keeps the resourceVersion, as the real server does.
        if content(&new) == content(live) && md(&new)["managedFields"] == md(live)["managedFields"] {
            return Ok(Self::present(res, live));
        }
        if ctx.dry_run {
            return Ok(Self::present(res, &new));
        }
        let rv = self.next_rv();
        md_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        let out = Self::present(res, &new);
        self.put(Self::key(res, &ns, &name), new, "MODIFIED");
        Ok(out)
    }

    fn live(&self, res: &Res, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(res, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// PUT.
    pub fn replace(&mut self, res: &Res, ns: &str, name: &str, mut body: Value, ctx: &Ctx) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, Some(name))?;
        let live = self.live(res, ns, name)?;
        let sent = body.clone();
        self.commit_update(res, &Self::present(res, &live), body, ctx, "Update", &sent)
    }

    /// PATCH with a merge, strategic-merge (treated as merge) or JSON patch.
    pub fn patch(
        &mut self,
        res: &Res,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let live = Self::present(res, &self.live(res, ns, name)?);
        let (new, sent) = match kind {
            PatchKind::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the body of the merge patch must be a JSON object",
                    ));
                }
                let mut t = live.clone();
                merge_patch(&mut t, &body);
                (t, body)
            }
            PatchKind::Json => {
                let t = json_patch(&live, &body).map_err(|e| ApiError::new(422, "Invalid", e))?;
                let sent = t.clone();
                (t, sent)
            }
        };
        self.commit_update(res, &live, new, ctx, "Update", &sent)
    }

    /// Server-side apply, approximated: create if absent, else merge the applied object into the
    /// live one. Without `force`, a changed field listed in another manager's entry is a conflict.
    pub fn apply(
        &mut self,
        res: &Res,
        ns: &str,
        name: &str,
        mut body: Value,
        ctx: &Ctx,
        force: bool,
    ) -> Result<Value, ApiError> {
        Self::check_identity(res, &mut body, ns, Some(name))?;
        let live = self
            .objects
            .get(&Self::key(res, ns, name))
            .map(|l| Self::present(res, l));
        let rv = md(&body)["resourceVersion"].as_str().map(str::to_string);
        {
            let m = md_mut(&mut body);
            for k in [
                "uid",
                "creationTimestamp",
                "managedFields",
                "generation",
                "resourceVersion",
            ] {
                m.remove(k);
            }
        }
        let Some(live) = live else {
            if ctx.on_status() {
                return Err(ApiError::not_found(&res.group, &res.plural, name));
            }
            return self.create(res, ns, body, ctx, "Apply");
        };
        if rv.is_some_and(|rv| Some(rv.as_str()) != md(&live)["resourceVersion"].as_str()) {
            return Err(ApiError::conflict(&res.group, &res.plural, name));
        }
        if !force {
            Self::apply_conflicts(res, &live, &body, ctx)?;
        }
        let mut new = live.clone();
        merge_patch(&mut new, &body);
        self.commit_update(res, &live, new, ctx, "Apply", &body)
    }

    fn apply_conflicts(res: &Res, live: &Value, body: &Value, ctx: &Ctx) -> Result<(), ApiError> {
        let mut mine = Vec::new();
        leaf_paths(&fields_v1(body, ctx.on_status()), "", &mut mine);
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for entry in md(live)["managedFields"].as_array().into_iter().flatten() {
            let mgr = entry["manager"].as_str().unwrap_or_default();
            if mgr == ctx.manager {
                continue;
            }
            let mut theirs = Vec::new();
            leaf_paths(&entry["fieldsV1"], "", &mut theirs);
            for p in mine.iter().filter(|p| !p.is_empty() && theirs.contains(p)) {
                if value_at(body, p) != value_at(live, p) {
                    conflicts.push((mgr.to_string(), p.clone()));
                }
            }
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        let n = conflicts.len();
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, p)| format!("conflict with {m:?}: {p}"))
            .collect();
        let plural = if n == 1 { "" } else { "s" };
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!("Apply failed with {n} conflict{plural}: {}", list.join(", ")),
        );
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?}"), "field": p}))
            .collect();
        e.details = Some(json!({"name": name_of(live), "group": res.group, "kind": res.plural, "causes": causes}));
        Err(e)
    }

    /// DELETE of one object; namespaces take their objects with them, CRDs their custom resources.
    pub fn delete(&mut self, res: &Res, ns: &str, name: &str, dry_run: bool) -> Result<Value, ApiError> {
        let key = Self::key(res, ns, name);
        let mut live = self
            .objects
            .get(&key)
            .map(|o| Self::present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        if res.is_namespace() {
            md_mut(&mut live).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            live["status"] = json!({"phase": "Terminating"});
        }
        if dry_run {
            return Ok(live);
        }
        let name = name.to_string();
        let group = live["spec"]["group"].as_str().unwrap_or_default().to_string();
        let plural = live["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string();
        let (is_ns, is_crd) = (res.is_namespace(), res.is_crd());
        self.remove_where(|k| *k == key || (is_ns && k.2 == name) || (is_crd && k.0 == group && k.1 == plural));
        if is_crd {
            self.pending.retain(|(n, _)| *n != name);
        }
        Ok(live)
    }

    /// DELETE on a collection: every matching object, returned as a list.
    pub fn delete_collection(
        &mut self,
        res: &Res,
        ns: Option<&str>,
        q: &ListQuery,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let list = self.list(res, ns, q);
        for item in list["items"].as_array().into_iter().flatten() {
            let ns = md(item)["namespace"].as_str().unwrap_or("");
            self.delete(res, ns, name_of(item), dry_run)?;
        }
        Ok(list)
    }

    /// Stores a fixture object as given (status and all), through the same validation.
    pub fn seed(&mut self, obj: Value) -> anyhow::Result<()> {
        let av = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = name_of(&obj).to_string();
        let res = self.resolve_kind(&av, &kind).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot seed {kind} {name:?}: unknown kind {av}/{kind} (seed its CustomResourceDefinition first)"
            )
        })?;
        let ns = md(&obj)["namespace"].as_str().unwrap_or("").to_string();
        if res.namespaced && ns.is_empty() {
            anyhow::bail!("cannot seed {kind} {name:?}: it is namespaced but has no metadata.namespace");
        }
        let ctx = Ctx {
            seeding: true,
            manager: "seed".into(),
            ..Ctx::default()
        };
        self.create(&res, &ns, obj, &ctx, "Update")
            .map_err(|e| anyhow::anyhow!("cannot seed {kind} {name:?}: {}", e.message))?;
        Ok(())
    }
}
