//! `kfguard check`: verify the repository's structure and, on request, its data.

use rustic_core::{CheckOptions, ReadSubsetOption};
use serde::Serialize;

use super::Context;
use crate::cli::CheckArgs;
use crate::output::emit;
use crate::repo::RepoError;
use crate::Outcome;

#[derive(Serialize)]
struct Checked {
    repository: String,
    read_data: String,
    errors: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("check found {count} error(s) in the repository at {location}: {first}")]
pub(super) struct CheckFailed {
    count: usize,
    location: String,
    first: String,
}

pub(super) fn run(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let mut opts = CheckOptions::default();
    let read_data = match (args.read_data, args.read_data_subset) {
        (true, _) => {
            opts = opts.read_data(true).read_data_subset(ReadSubsetOption::All);
            "all".to_string()
        }
        (false, Some((n, m))) => {
            opts = opts
                .read_data(true)
                .read_data_subset(ReadSubsetOption::IdSubSet((n, m)));
            format!("{n}/{m}")
        }
        (false, None) => "none".to_string(),
    };
    let results = repo
        .check(opts)
        .map_err(|e| RepoError::rustic("check", &location.display, &e))?;
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for (level, err) in &results.0 {
        // rustic_core does not export the level type; its Debug names it.
        if format!("{level:?}") == "Warn" {
            warnings.push(err.to_string());
        } else {
            errors.push(err.to_string());
        }
    }
    let checked = Checked {
        repository: location.display.clone(),
        read_data,
        errors,
        warnings,
    };
    emit(ctx.global.output, &checked, |c| {
        let mut s = format!("checked {} (data read: {})", c.repository, c.read_data);
        for e in &c.errors {
            s.push_str(&format!("\n  error: {e}"));
        }
        for w in &c.warnings {
            s.push_str(&format!("\n  warning: {w}"));
        }
        if c.errors.is_empty() {
            s.push_str("\nno errors found");
        }
        s
    });
    if let Some(first) = checked.errors.first() {
        return Err(CheckFailed {
            count: checked.errors.len(),
            location: checked.repository.clone(),
            first: first.clone(),
        }
        .into());
    }
    Ok(if checked.warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warnings(checked.warnings)
    })
}
