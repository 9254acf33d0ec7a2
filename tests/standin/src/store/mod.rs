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

mod meta;
mod validate;
mod write;

use meta::{content, crd_status, managed_entry, md, md_mut, name_of, record_manager, spec_part};

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
    /// Container logs the test stored, for `pods/log`.
    pub logs: BTreeMap<crate::logs::LogKey, String>,
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
    /// `Some("status")` for writes to the status subresource, `Some("scale")` to the scale one.
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
            logs: BTreeMap::new(),
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
                if k.0.is_empty() && k.1 == "pods" {
                    self.logs.retain(|l, _| l.0 != k.2 || l.1 != k.3);
                }
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
}
