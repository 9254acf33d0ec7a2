//! What a runbook declares, read off its AST without running it: parameters, steps, and the
//! mistakes `kfguard runbook check` reports (unknown functions, unnamed or duplicate steps,
//! changes outside a step).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rhai::{ASTNode, Expr, FnCallExpr, Position, Stmt, AST};
use serde::Serialize;

use super::{api, host, sandbox, Limits, RunbookError};

/// `param("name", default)` calls with a literal name, and their defaults as written.
pub(super) fn params(ast: &AST) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    calls(ast, |name, args| {
        if name == "param" {
            if let Some(key) = args.first().and_then(literal_string) {
                let default = args
                    .get(1)
                    .and_then(|d| d.get_literal_value(None))
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                out.insert(key, default);
            }
        }
    });
    out
}

/// The literal names of `step(...)` calls, in the order they are written.
pub(super) fn step_names(ast: &AST) -> Vec<String> {
    let mut out = Vec::new();
    calls(ast, |name, args| {
        if name == "step" {
            if let Some(n) = args.first().and_then(literal_string) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    });
    out
}

fn literal_string(e: &Expr) -> Option<String> {
    match e {
        Expr::StringConstant(s, _) => Some(s.to_string()),
        _ => None,
    }
}

/// Every plain function call (not an operator) in the script, including function bodies.
fn calls(ast: &AST, mut each: impl FnMut(&str, &[Expr])) {
    each_call(ast, |name, call, _| each(name, &call.args));
}

/// A call is an expression, or a statement of its own (`step(...);`): both are visited, with
/// the name as written: `kube::get` for a module's function.
fn each_call(ast: &AST, mut each: impl FnMut(&str, &FnCallExpr, Position)) {
    ast.walk(&mut |path: &[ASTNode]| visit(path, &mut each));
}

/// Like `each_call`, for the script's top level only: not inside any function or closure,
/// so not inside a step.
fn each_top_level_call(ast: &AST, mut each: impl FnMut(&str, &FnCallExpr, Position)) {
    for stmt in ast.statements() {
        stmt.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
            visit(path, &mut each)
        });
    }
}

fn visit(path: &[ASTNode], each: &mut impl FnMut(&str, &FnCallExpr, Position)) -> bool {
    if let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos))) =
        path.last()
    {
        if call.op_token.is_none() {
            if call.namespace.is_empty() {
                each(call.name.as_str(), call, *pos);
            } else {
                each(&format!("{}::{}", call.namespace, call.name), call, *pos);
            }
        }
    }
    true
}

/// What `kfguard runbook check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub runbook: String,
    pub params: BTreeMap<String, String>,
    pub steps: Vec<String>,
    pub problems: Vec<String>,
}

/// Compiles and lints a runbook without running it.
pub fn check(path: &Path, limits: &Limits) -> Result<CheckReport, RunbookError> {
    let source = super::read(path)?;
    let compiled = sandbox::compile(path, &source, limits)?;
    let ast = &compiled.ast;
    let known = api::known_functions(limits);
    let script_fns: BTreeSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    each_call(ast, |name, call, pos| {
        let at = sandbox::at(path, pos);
        if !known.contains(name) && !script_fns.contains(name) && unknown.insert(name.to_string()) {
            problems.push(format!(
                "{at}: unknown function `{name}`; `kfguard runbook api` lists the host functions"
            ));
        }
        if name == "step" || name == "finally" {
            match call.args.first().and_then(literal_string) {
                None => problems.push(format!(
                    "{at}: a {name} needs a literal name: {name}(\"pvcs bound\", || {{ ... }})"
                )),
                Some(n) if n.trim().is_empty() => {
                    problems.push(format!("{at}: a {name} has an empty name"));
                }
                Some(n) if !seen.insert(n.clone()) => problems.push(format!(
                    "{at}: step `{n}` is declared twice; give each step its own name"
                )),
                Some(_) => {}
            }
        }
    });
    each_top_level_call(ast, |name, _, pos| {
        if host::MUTATING.contains(&name) {
            problems.push(format!(
                "{}: {name} is outside a step; put it inside step(\"...\", || ...) so that it is journaled and resumable",
                sandbox::at(path, pos)
            ));
        }
    });
    Ok(CheckReport {
        runbook: path.display().to_string(),
        params: params(ast),
        steps: step_names(ast),
        problems,
    })
}
