//! The host modules: all that a runbook reaches outside the sandbox (`kube::`, `crds::`,
//! `argo::`, …). Each function binds the library code the CLI runs; none is a second
//! implementation. Async calls run on the command's runtime, from the runbook's own thread,
//! cut short when the step's or the run's deadline passes.

mod argo;
mod backup;
mod bucket;
mod certs;
mod crds;
mod db;
mod kube;
mod restore;
mod snapshot;

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module};
use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Handle;

use super::steps::{error, lock, Shared};
use crate::config::Config;
use crate::kube::catalog::{Kind, Served};
use crate::kube::Cluster;
use crate::repo::{self, Location, Repo};

pub(super) type Res<T> = Result<T, Box<EvalAltResult>>;

/// What host calls reach: the effective config, and the runtime the clients run on.
#[derive(Debug, Clone, Default)]
pub struct HostContext {
    pub config: Arc<Config>,
    /// `None` where nothing may run: the API reference and `runbook check`.
    pub rt: Option<Handle>,
    /// Hide the repository's progress in backup and restore calls.
    pub quiet: bool,
}

/// One run's connection to the world: the context, the run state, and the cluster client,
/// connected on first use.
pub(super) struct Host {
    pub ctx: HostContext,
    state: Shared,
    cluster: Mutex<Option<Cluster>>,
    served: Mutex<Option<Arc<Served>>>,
}

impl Host {
    pub(super) fn new(ctx: HostContext, state: Shared) -> Arc<Self> {
        Arc::new(Self {
            ctx,
            state,
            cluster: Mutex::new(None),
            served: Mutex::new(None),
        })
    }

    pub(super) fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Runs `fut` to its end on the runtime, or until the nearer deadline passes.
    pub(super) fn block<T, E: Display>(&self, fut: impl Future<Output = Result<T, E>>) -> Res<T> {
        let rt = self.rt()?;
        let deadline = lock(&self.state).deadlines.next();
        let out = rt.block_on(async move {
            match deadline {
                Some((at, which)) => tokio::time::timeout_at(at.into(), fut)
                    .await
                    .map_err(|_| which),
                None => Ok(fut.await),
            }
        });
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(error(e.to_string())),
            Err(which) => Err(error(super::sandbox::timeout_message(which))),
        }
    }

    /// Runs blocking library code (backup, restore, the repository) on this thread.
    pub(super) fn rt(&self) -> Res<&Handle> {
        self.ctx
            .rt
            .as_ref()
            .ok_or_else(|| error("host calls cannot run here".into()))
    }

    /// The cluster client, connected on first use.
    pub(super) fn cluster(&self) -> Res<Cluster> {
        if let Some(c) = &*self.cluster.lock().map_err(|e| error(e.to_string()))? {
            return Ok(c.clone());
        }
        let cfg = self.ctx.config.kubernetes.clone();
        let c = self.block(async move { Cluster::connect(&cfg).await })?;
        *self.cluster.lock().map_err(|e| error(e.to_string()))? = Some(c.clone());
        Ok(c)
    }

    /// The served kinds, discovered on first use and again after CRDs were applied.
    pub(super) fn served(&self) -> Res<Arc<Served>> {
        if let Some(s) = &*self.served.lock().map_err(|e| error(e.to_string()))? {
            return Ok(s.clone());
        }
        let cluster = self.cluster()?;
        let s = Arc::new(self.block(async move { Served::discover(&cluster).await })?);
        *self.served.lock().map_err(|e| error(e.to_string()))? = Some(s.clone());
        Ok(s)
    }

    pub(super) fn rediscover(&self) {
        if let Ok(mut s) = self.served.lock() {
            *s = None;
        }
    }

    /// A kind by the name a runbook gives it.
    pub(super) fn kind(&self, name: &str) -> Res<Kind> {
        self.served()?.find(name).cloned().map_err(error)
    }

    /// Makes the redactor hide the values of any Secret among `objects`: the script may use
    /// them, the journal and the report never show them.
    pub(super) fn learn_secrets(&self, objects: &[Value]) {
        let values = crate::redact::Redactor::secret_values(objects);
        if !values.is_empty() {
            lock(&self.state).redactor.learn(values);
        }
    }

    /// A path a runbook names, relative to the runbook's folder.
    pub(super) fn relative(&self, path: &str) -> std::path::PathBuf {
        let file = lock(&self.state).plan.file.clone();
        super::sandbox::folder_of(&file).join(path)
    }

    /// Whether this is a dry run.
    pub(super) fn dry_run(&self) -> bool {
        lock(&self.state).plan.dry_run
    }

    /// Announces a change about to be made: refused outside a step, where it would not be
    /// journaled; on a dry run, recorded in the step's plan. Returns whether it is a dry run.
    pub(super) fn change(&self, call: &str, what: &str) -> Res<bool> {
        let mut st = lock(&self.state);
        let dry = st.plan.dry_run;
        let redacted = st.redactor.text(what);
        match st.current.as_mut() {
            None => Err(error(format!(
                "{call} is outside a step; put changes inside step(\"...\", || ...) so that they are journaled and resumable"
            ))),
            Some(c) => {
                if dry {
                    c.planned.push(redacted);
                } else {
                    c.messages.push(format!("changed: {redacted}"));
                }
                Ok(dry)
            }
        }
    }

    /// Adds a message to the current step's journal.
    pub(super) fn note(&self, text: String) {
        super::api::message(&self.state, text);
    }

    /// Adds a warning to the current step, which then ends with outcome warning.
    pub(super) fn warn(&self, text: &str) {
        super::api::warning(&self.state, text);
    }

    /// Runs a backup or restore (`call`) and keeps what it returned, or that it failed, for the
    /// run's metrics. A dry run is not one: it is only planned.
    pub(super) fn operation<R>(
        &self,
        dry_run: bool,
        wrap: fn(Option<Arc<R>>) -> super::Ran,
        call: impl FnOnce() -> anyhow::Result<R>,
    ) -> anyhow::Result<Arc<R>> {
        let started = std::time::Instant::now();
        let result = call().map(Arc::new);
        if !dry_run {
            lock(&self.state).operations.push(super::HostOperation {
                ended: std::time::SystemTime::now(),
                duration: started.elapsed(),
                result: wrap(result.as_ref().ok().cloned()),
            });
        }
        result
    }

    /// Opens the configured repository, as every command that reads it does.
    pub(super) fn repo(&self) -> Res<(Repo, Location)> {
        repo::open(&self.ctx.config.repository, self.rt()?, self.ctx.quiet)
            .map_err(|e| error(e.to_string()))
    }

    /// Notes, on a dry run, a step of the plan that is not a change (a wait).
    pub(super) fn plan_only(&self, what: &str) {
        let mut st = lock(&self.state);
        if st.plan.dry_run {
            let what = st.redactor.text(what);
            if let Some(c) = st.current.as_mut() {
                c.planned.push(what);
            }
        }
    }
}

/// Builds one host module bound to a run's host.
type ModuleFn = fn(&Arc<Host>) -> Module;

/// The host modules, by name.
const MODULES: &[(&str, ModuleFn)] = &[
    ("kube", kube::module),
    ("crds", crds::module),
    ("argo", argo::module),
    ("db", db::module),
    ("bucket", bucket::module),
    ("snapshot", snapshot::module),
    ("backup", backup::module),
    ("restore", restore::module),
    ("certs", certs::module),
];

/// Registers every host module into `engine`.
pub(super) fn register(engine: &mut Engine, host: &Arc<Host>) {
    for (name, module) in MODULES {
        engine.register_static_module(*name, module(host).into());
    }
}

/// Declares the modules' names, empty, to an engine that only compiles: with strict
/// variables, rhai checks at compile time that `kube::` names a module.
pub(super) fn declare(engine: &mut Engine) {
    for (name, _) in MODULES {
        engine.register_static_module(*name, Module::new().into());
    }
}

/// The host functions that change something: a lint refuses them outside a step.
pub(super) const MUTATING: &[&str] = &[
    "kube::apply",
    "kube::delete",
    "kube::scale",
    "crds::apply",
    "backup::run",
    "restore::databases",
    "restore::buckets",
    "restore::kubernetes",
    "db::drop_scratch",
    "snapshot::forget",
];

/// A registration with its parameter names and a doc comment with an example.
pub(super) fn func(name: &str, params: &[&str], text: &str, example: &str) -> FuncRegistration {
    FuncRegistration::new(name)
        .with_params_info(params)
        .with_comments([super::api::doc(text, example)])
}

pub(super) fn to_dynamic(v: &Value) -> Res<Dynamic> {
    rhai::serde::to_dynamic(v)
}

pub(super) fn to_json(d: &Dynamic) -> Res<Value> {
    rhai::serde::from_dynamic(d)
}

/// A library result as a map, through its JSON form.
pub(super) fn to_map(v: &impl Serialize) -> Res<Map> {
    let json = serde_json::to_value(v).map_err(|e| error(e.to_string()))?;
    to_dynamic(&json)?
        .try_cast::<Map>()
        .ok_or_else(|| error("a host result is not a map".into()))
}

/// `""` means "no namespace": cluster-scoped, or all namespaces for a list.
pub(super) fn ns(namespace: &str) -> Option<&str> {
    (!namespace.is_empty()).then_some(namespace)
}

/// A string option of an options map.
pub(super) fn opt_str(m: &rhai::Map, key: &str) -> Res<Option<String>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v
            .clone()
            .into_string()
            .map(Some)
            .map_err(|t| error(format!("option `{key}` must be a string, not {t}"))),
    }
}

/// Refuses option keys a function does not take, so that a typo is not silently ignored.
pub(super) fn known_options(call: &str, m: &rhai::Map, keys: &[&str]) -> Res<()> {
    match m.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(error(format!(
            "{call}: unknown option `{k}`; it takes {}",
            keys.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A list option: an array of strings, or one string.
pub(super) fn opt_strings(m: &Map, key: &str) -> Res<Vec<String>> {
    let bad = || {
        error(format!(
            "option `{key}` must be a string or an array of strings"
        ))
    };
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(v) if v.is_unit() => Ok(Vec::new()),
        Some(v) if v.is_string() => Ok(vec![v.clone().into_string().map_err(|_| bad())?]),
        Some(v) => v
            .clone()
            .into_typed_array::<rhai::ImmutableString>()
            .map(|a| a.into_iter().map(|s| s.to_string()).collect())
            .map_err(|_| bad()),
    }
}

/// A whole-number option of at least 1.
pub(super) fn opt_count(m: &Map, key: &str) -> Res<Option<usize>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                error(format!(
                    "option `{key}` must be a whole number of at least 1"
                ))
            }),
    }
}

/// A true-or-false option.
pub(super) fn opt_bool(m: &Map, key: &str) -> Res<bool> {
    match m.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| error(format!("option `{key}` must be true or false"))),
    }
}
