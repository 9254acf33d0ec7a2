//! The sandbox: a raw rhai engine with only the packages runbooks need, limits, no `eval`,
//! strict variables, and `import` confined to the runbook's folder.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::module_resolvers::ModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, EvalAltResult, Module, Position, Scope, Shared, AST};

pub use crate::config::RunbookLimits as Limits;

use super::RunbookError;

/// A runbook compiled once, with what the journal needs to recognise it again.
pub(super) struct Compiled {
    pub ast: AST,
    pub path: PathBuf,
}

/// Wall-clock deadlines, checked by `on_progress` between operations and by blocking host calls.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    run: Mutex<Option<Instant>>,
    step: Mutex<Option<Instant>>,
}

impl Deadlines {
    pub(super) fn new(run: Option<Instant>) -> Self {
        Self {
            run: Mutex::new(run),
            step: Mutex::new(None),
        }
    }

    pub(super) fn set_step(&self, at: Option<Instant>) {
        *self
            .step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }

    /// After the run's deadline, `finally` steps still run, each on its own timeout.
    pub(super) fn clear_run(&self) {
        *self
            .run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    pub(super) fn run_passed(&self) -> bool {
        self.run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| Instant::now() >= t)
    }

    /// The nearer of the two deadlines, and which one it is.
    pub(super) fn next(&self) -> Option<(Instant, &'static str)> {
        let step = self.step.lock().ok().and_then(|s| *s).map(|t| (t, "step"));
        let run = self.run.lock().ok().and_then(|s| *s).map(|t| (t, "run"));
        match (step, run) {
            (Some(s), Some(r)) => Some(if s.0 <= r.0 { s } else { r }),
            (s, r) => s.or(r),
        }
    }

    /// An error when a deadline has passed.
    pub(super) fn check(&self) -> Result<(), String> {
        match self.next() {
            Some((at, which)) if Instant::now() >= at => Err(timeout_message(which)),
            _ => Ok(()),
        }
    }
}

pub(super) fn timeout_message(which: &str) -> String {
    match which {
        "step" => "the step's timeout passed; raise `timeout` in the step's options".into(),
        _ => {
            "the runbook's --timeout passed; raise --timeout or resume the run with --resume".into()
        }
    }
}

/// An engine with the limits, the confinement and nothing else: no host functions yet.
pub(super) fn engine(root: &Path, limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    // The standard package is pure computation (strings, arrays, maps, maths); it has no
    // file, process or network access. Time comes from the host's `now()`.
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_variables(limits.max_variables)
        .set_max_functions(limits.max_functions)
        .set_max_modules(limits.max_modules)
        .set_strict_variables(true)
        .disable_symbol("eval")
        .set_module_resolver(Confined::new(root));
    engine
}

/// Reads nothing: compiles `source` with the sandbox's rules, so that a syntax error names its
/// `file:line:col` before anything runs.
pub(super) fn compile(
    path: &Path,
    source: &str,
    limits: &Limits,
) -> Result<Compiled, RunbookError> {
    let mut engine = engine(&folder_of(path), limits);
    super::host::declare(&mut engine);
    let mut ast = engine.compile(source).map_err(|e| {
        RunbookError::Compile(format!(
            "{}: {}; fix the script, then check it with `kfguard runbook check`",
            at(path, e.position()),
            e.err_type()
        ))
    })?;
    ast.set_source(path.display().to_string());
    Ok(Compiled {
        ast,
        path: path.to_path_buf(),
    })
}

/// The folder imports resolve in.
pub(super) fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// `file:line:col`, or just the file when rhai has no position.
pub(super) fn at(path: &Path, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// Resolves `import "x"` to `x.rhai` inside the runbook's folder, and nowhere else: rhai's own
/// `FileModuleResolver` lets absolute paths and `..` through.
struct Confined {
    root: PathBuf,
    /// The canonical root, once it could be resolved.
    canonical: Arc<Mutex<Option<PathBuf>>>,
}

impl Confined {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            canonical: Arc::new(Mutex::new(None)),
        }
    }

    fn locate(&self, path: &str) -> Result<PathBuf, String> {
        let rel = Path::new(path);
        if rel.is_absolute() {
            return Err(format!(
                "import \"{path}\": absolute paths are refused; import a module of the runbook's folder by its relative name"
            ));
        }
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "import \"{path}\": `..` is refused; modules must sit inside the runbook's folder"
            ));
        }
        let root = {
            let mut cached = self.canonical.lock().map_err(|e| e.to_string())?;
            if let Some(r) = &*cached {
                r.clone()
            } else {
                let r = self
                    .root
                    .canonicalize()
                    .map_err(|e| format!("the runbook folder {}: {e}", self.root.display()))?;
                *cached = Some(r.clone());
                r
            }
        };
        let mut file = root.join(rel);
        if file.extension().is_none() {
            file.set_extension("rhai");
        }
        // Canonicalising follows symlinks, so a link that points outside is caught here.
        let real = file
            .canonicalize()
            .map_err(|e| format!("import \"{path}\": {}: {e}", file.display()))?;
        if !real.starts_with(&root) {
            return Err(format!(
                "import \"{path}\": it resolves outside the runbook's folder (a symlink?); refused"
            ));
        }
        Ok(real)
    }
}

impl ModuleResolver for Confined {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let fail = |msg: String| -> Box<EvalAltResult> {
            EvalAltResult::ErrorInModule(path.into(), Box::new(msg.into()), pos).into()
        };
        let file = self.locate(path).map_err(fail)?;
        let text = std::fs::read_to_string(&file).map_err(|e| fail(e.to_string()))?;
        let mut ast = engine
            .compile(&text)
            .map_err(|e| fail(format!("{}: {}", at(&file, e.position()), e.err_type())))?;
        ast.set_source(file.display().to_string());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)?;
        Ok(module.into())
    }
}

/// A value the sandbox hands back to the script when a limit stops it.
pub(super) fn terminated(message: String) -> Dynamic {
    Dynamic::from(message)
}
