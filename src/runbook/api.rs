//! The host API: every function a runbook can call, registered with its parameter names and
//! its documentation, so that `kfguard runbook api` prints the reference from the registry.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, FuncRegistration, Map, NativeCallContext};
use serde::Deserialize;

use super::prompt;
use super::sandbox;
use super::steps::{self, error, lock, Finding, Severity, Shared};
use super::Limits;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Registers the host API into `engine`, bound to one run's state.
pub(super) fn register(engine: &mut Engine, state: &Shared) {
    let printed = state.clone();
    engine.on_print(move |s| message(&printed, s.to_string()));
    let debugged = state.clone();
    engine.on_debug(move |s, _, pos| message(&debugged, format!("debug {pos}: {s}")));

    let s = state.clone();
    FuncRegistration::new("step")
        .with_params_info(["name: &str", "body: FnPtr", "Dynamic"])
        .with_comments([doc(
            "Runs `body` as a named step: timed, journaled, skipped on `--resume` when it already \
             succeeded (its recorded output is returned instead). A step that throws fails the run.",
            r#"let pods = step("list pods", || kube::pods("kubeflow"));"#,
        )])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, f: FnPtr| {
            steps::step(&ctx, &s, name, &Map::new(), &f)
        });
    let s = state.clone();
    FuncRegistration::new("step")
        .with_params_info(["name: &str", "options: Map", "body: FnPtr", "Dynamic"])
        .with_comments([doc(
            "A step with options: `retries` (a number), `backoff` and `timeout` (durations such \
             as \"10s\" or \"15m\"), and `rerun` (true: run it again on `--resume` although it \
             ended ok, for a step whose effect a `finally` undoes). A failed attempt is retried \
             after `backoff`.",
            r#"step("restore dbs", #{ retries: 3, backoff: "10s", timeout: "15m" }, || { ... });"#,
        )])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, name: &str, o: Map, f: FnPtr| {
                steps::step(&ctx, &s, name, &o, &f)
            },
        );
    let s = state.clone();
    FuncRegistration::new("finally")
        .with_params_info(["name: &str", "body: FnPtr"])
        .with_comments([doc(
            "Declares a step that runs after the script has ended, whatever happened before: \
             after a failed step and after `--timeout`.",
            r#"finally("scale controllers back", || kube::scale("Deployment", "kubeflow", "ml-pipeline-persistenceagent", 1));"#,
        )])
        .register_into_engine(engine, move |name: &str, f: FnPtr| {
            steps::finally(&s, name, &Map::new(), f)
        });
    let s = state.clone();
    FuncRegistration::new("finally")
        .with_params_info(["name: &str", "options: Map", "body: FnPtr"])
        .with_comments([doc(
            "A `finally` step with options (`retries`, `backoff`, `timeout`).",
            r#"finally("scale back", #{ timeout: "2m" }, || { ... });"#,
        )])
        .register_into_engine(engine, move |name: &str, o: Map, f: FnPtr| {
            steps::finally(&s, name, &o, f)
        });

    let s = state.clone();
    FuncRegistration::new("param")
        .with_params_info(["name: &str", "default: Dynamic", "Dynamic"])
        .with_comments([doc(
            "Declares a parameter with its default; `--set name=value` overrides it. The value \
             takes the default's type (number, bool or string).",
            r#"let ns = param("namespace", "kubeflow");"#,
        )])
        .register_into_engine(engine, move |name: &str, default: Dynamic| {
            param(&s, name, default)
        });
    let s = state.clone();
    FuncRegistration::new("info")
        .with_params_info(["message: &str"])
        .with_comments([doc(
            "Adds a message to the current step's journal.",
            r#"info("3 PVCs checked");"#,
        )])
        .register_into_engine(engine, move |m: &str| message(&s, m.to_string()));
    let s = state.clone();
    FuncRegistration::new("warn")
        .with_params_info(["message: &str"])
        .with_comments([doc(
            "Adds a warning: the step ends with outcome warning, and the run exits 3.",
            r#"warn("the persistence agent has restarted 4 times");"#,
        )])
        .register_into_engine(engine, move |m: &str| warning(&s, m));
    FuncRegistration::new("fail")
        .with_params_info(["message: &str"])
        .with_comments([doc(
            "Fails the current step with `message`.",
            r#"fail("no ready ml-pipeline pod");"#,
        )])
        .register_into_engine(engine, |m: &str| -> Res<()> { Err(error(m.to_string())) });
    FuncRegistration::new("ensure")
        .with_params_info(["condition: bool", "message: &str"])
        .with_comments([doc(
            "Fails the current step with `message` unless `condition` holds.",
            r#"ensure(pods.len() > 0, "no pods in kubeflow");"#,
        )])
        .register_into_engine(engine, |c: bool, m: &str| -> Res<()> {
            if c {
                Ok(())
            } else {
                Err(error(m.to_string()))
            }
        });
    let s = state.clone();
    FuncRegistration::new("confirm")
        .with_params_info(["message: &str"])
        .with_comments([doc(
            "Shows the step's planned changes and asks on the terminal; passes with `--yes`; \
             fails the step in a non-interactive run without `--yes`.",
            r#"confirm("apply 3 CRDs to the cluster?");"#,
        )])
        .register_into_engine(engine, move |m: &str| confirm(&s, m));
    let s = state.clone();
    FuncRegistration::new("dry_run")
        .with_params_info(["bool"])
        .with_comments([doc(
            "True in a `--dry-run`: mutating host calls plan their change instead of making it.",
            r#"if dry_run() { info("planning only"); }"#,
        )])
        .register_into_engine(engine, move || lock(&s).plan.dry_run);
    let s = state.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: i64"])
        .with_comments([doc(
            "Waits `seconds`, cut short with an error when the step's or the run's deadline passes.",
            "sleep(5);",
        )])
        .register_into_engine(engine, move |secs: i64| {
            sleep(&s, Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
        });
    let s = state.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: f64"])
        .with_comments([doc("Waits a fraction of a second or more.", "sleep(0.5);")])
        .register_into_engine(engine, move |secs: f64| {
            sleep(
                &s,
                Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or_default(),
            )
        });
    FuncRegistration::new("now")
        .with_params_info(["String"])
        .with_comments([doc(
            "The current time, RFC 3339 in UTC.",
            r"info(`checked at ${now()}`);",
        )])
        .register_into_engine(engine, || rustic_core::jiff::Timestamp::now().to_string());
    let s = state.clone();
    FuncRegistration::new("finding")
        .with_params_info([
            "code: &str",
            "severity: &str",
            "object: &str",
            "message: &str",
            "hint: &str",
        ])
        .with_comments([doc(
            "Reports a finding of the current step: a stable code, a severity (info, warning or \
             error), the object, what is wrong and what to try. Findings make the run exit 3.",
            r#"finding("KF-PVC-PENDING", "error", "kubeflow/minio-pvc", "claim is Pending", "check the StorageClass");"#,
        )])
        .register_into_engine(
            engine,
            move |code: &str, severity: &str, object: &str, message: &str, hint: &str| {
                finding(&s, code, severity, object, message, hint)
            },
        );
}

/// A doc comment in rhai's `///` form, with an example.
pub(super) fn doc(text: &str, example: &str) -> String {
    format!("/// {text}\n///\n/// ```rhai\n/// {example}\n/// ```")
}

/// Adds a warning: the current step ends with outcome warning.
pub(super) fn warning(state: &Shared, m: &str) {
    let mut st = lock(state);
    let text = st.redactor.text(&format!("warning: {m}"));
    match st.current.as_mut() {
        Some(c) => {
            c.warned = true;
            c.messages.push(text);
        }
        None => st.top_messages.push(text),
    }
}

/// Adds a message to the current step, or to the run's when no step runs; redacted.
pub(super) fn message(state: &Shared, text: String) {
    let mut st = lock(state);
    let text = st.redactor.text(&text);
    match st.current.as_mut() {
        Some(c) => c.messages.push(text),
        None => st.top_messages.push(text),
    }
}

fn param(state: &Shared, name: &str, default: Dynamic) -> Res<Dynamic> {
    let Some(given) = lock(state).journal.params.get(name).cloned() else {
        return Ok(default);
    };
    let bad = |kind: &str| error(format!("--set {name}={given}: the parameter takes {kind}"));
    if default.is_int() {
        given
            .parse::<i64>()
            .map(Dynamic::from)
            .map_err(|_| bad("a whole number"))
    } else if default.is_float() {
        given
            .parse::<f64>()
            .map(Dynamic::from)
            .map_err(|_| bad("a number"))
    } else if default.is_bool() {
        given
            .parse::<bool>()
            .map(Dynamic::from)
            .map_err(|_| bad("true or false"))
    } else {
        Ok(Dynamic::from(given))
    }
}

fn confirm(state: &Shared, msg: &str) -> Res<()> {
    let (yes, interactive, planned, redactor, spinner) = {
        let st = lock(state);
        let planned = st
            .current
            .as_ref()
            .map(|c| c.planned.clone())
            .unwrap_or_default();
        let spinner = st.current.as_ref().and_then(|c| c.spinner.clone());
        (
            st.plan.yes,
            st.plan.interactive,
            planned,
            st.redactor.clone(),
            spinner,
        )
    };
    let note = |text: String| message(state, text);
    if yes {
        note(format!("confirmed by --yes: {msg}"));
        return Ok(());
    }
    if !(interactive && std::io::stdin().is_terminal()) {
        return Err(error(format!(
            "confirm(\"{msg}\") needs an answer: pass --yes in a non-interactive run, after reading the plan of a --dry-run"
        )));
    }
    let planned: Vec<String> = planned.iter().map(|p| redactor.text(p)).collect();
    let question = redactor.text(msg);
    let ask = || {
        prompt::ask(
            &planned,
            &question,
            std::io::stdin().lock(),
            std::io::stderr(),
        )
    };
    // The step's spinner would draw over the question: it waits until the answer is in.
    let confirmed = match spinner {
        Some(s) => s.suspend(ask),
        None => ask(),
    }
    .map_err(|e| error(format!("confirm: cannot ask on the terminal: {e}")))?;
    if confirmed {
        note(format!("confirmed on the terminal: {msg}"));
        Ok(())
    } else {
        Err(error(format!("not confirmed: {msg}")))
    }
}

/// Sleeps in short slices so that the deadlines still apply inside the call.
fn sleep(state: &Shared, d: Duration) -> Res<()> {
    let deadlines = lock(state).deadlines.clone();
    let until = Instant::now() + d;
    loop {
        deadlines.check().map_err(error)?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

fn finding(
    state: &Shared,
    code: &str,
    severity: &str,
    object: &str,
    msg: &str,
    hint: &str,
) -> Res<()> {
    let severity = Severity::parse(severity).ok_or_else(|| {
        error(format!(
            "finding {code}: severity {severity:?} is not info, warning or error"
        ))
    })?;
    let mut st = lock(state);
    let redactor = st.redactor.clone();
    let f = Finding {
        code: redactor.text(code),
        severity,
        object: redactor.text(object),
        message: redactor.text(msg),
        hint: redactor.text(hint),
    };
    match st.current.as_mut() {
        Some(c) => {
            c.findings.push(f);
            Ok(())
        }
        None => Err(error(format!(
            "finding {code} is outside a step; report it inside step(...)"
        ))),
    }
}

/// How `kfguard runbook api` prints the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFormat {
    Json,
    Markdown,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    functions: Vec<Function>,
    #[serde(default)]
    modules: std::collections::BTreeMap<String, Metadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Function {
    name: String,
    signature: String,
    #[serde(default)]
    doc_comments: Vec<String>,
}

/// An engine with the host API registered against an idle run, for the reference and the lint.
fn registry(limits: &Limits) -> Engine {
    let mut engine = sandbox::engine(std::path::Path::new("."), limits);
    let idle = steps::idle(limits);
    register(&mut engine, &idle);
    super::host::register(
        &mut engine,
        &super::host::Host::new(super::HostContext::default(), idle),
    );
    engine
}

/// The language's own functions, which no package registers (closures compile to `curry`).
const INTRINSICS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "is_def_var",
    "is_def_fn",
    "is_shared",
];

/// The names a runbook may call: the host API, rhai's standard package and its intrinsics.
pub(super) fn known_functions(limits: &Limits) -> BTreeSet<String> {
    registry(limits)
        .gen_fn_signatures(true)
        .into_iter()
        .filter_map(|sig| sig.split('(').next().map(|n| n.trim().to_string()))
        .chain(INTRINSICS.iter().map(|s| (*s).to_string()))
        .collect()
}

/// The host API reference, generated from the engine's own registry.
pub fn reference(format: ApiFormat, limits: &Limits) -> String {
    let json = registry(limits)
        .gen_fn_metadata_to_json(false)
        .unwrap_or_default();
    if format == ApiFormat::Json {
        return json;
    }
    let meta: Metadata = serde_json::from_str(&json).unwrap_or_default();
    let mut out = String::from("## Host API reference\n\n<!-- generated by `kfguard runbook api --output markdown`; do not edit -->\n");
    out.push_str("\n### Utilities\n");
    functions(&mut out, "", meta.functions);
    for (name, module) in meta.modules {
        out.push_str(&format!("\n### `{name}::`\n"));
        functions(&mut out, &format!("{name}::"), module.functions);
    }
    out
}

/// One markdown section per function, sorted by name and signature.
fn functions(out: &mut String, prefix: &str, mut fns: Vec<Function>) {
    fns.sort_by(|a, b| (&a.name, &a.signature).cmp(&(&b.name, &b.signature)));
    for f in &fns {
        out.push_str(&format!("\n#### `{prefix}{}`\n\n", f.signature));
        for c in &f.doc_comments {
            for line in c.lines() {
                let line = line.trim_start().strip_prefix("///").unwrap_or(line);
                out.push_str(line.strip_prefix(' ').unwrap_or(line));
                out.push('\n');
            }
        }
    }
}
