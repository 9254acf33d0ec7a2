//! `kfguard check`: verify the repository's structure and, on request, its data.

use super::Context;
use crate::cli::CheckArgs;
use crate::output::emit;
use crate::repo::check::{self, ReadData};
use crate::Outcome;

#[derive(Debug, thiserror::Error)]
#[error("check found {count} error(s) in the repository at {location}: {first}")]
pub(super) struct CheckFailed {
    count: usize,
    location: String,
    first: String,
}

pub(super) fn run(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let read = match (args.read_data, args.read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some((n, m))) => ReadData::Subset(n, m),
        (false, None) => ReadData::None,
    };
    let checked = check::check(&repo, &location.display, read)?;
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
