//! Restore: bring parts of a snapshot back, in dependency order, with a plan shown first on `--dry-run`.

pub mod buckets;
pub mod databases;
pub mod kubernetes;
mod plan;
mod report;
mod run;
mod stop;

pub use plan::{Plan, DEFAULT_JOBS, DEFAULT_TRANSFERS};
pub use report::Report;
pub use run::run;

/// `restore --existing`: what to do with an object that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Existing {
    /// Keep the live object, restore nothing over it
    Skip,
    /// Replace it with the snapshot's (for Kubernetes objects: apply the snapshot's fields)
    Overwrite,
    /// Stop before changing anything
    Fail,
}

/// The entries that `SRC/NAME` or `SRC` selectors pick, each once, in selector order; all of
/// them when there is no selector. `Err((selector, available))` names one that matches nothing.
pub fn pick<'m, T>(
    entries: &'m [T],
    wanted: &[String],
    name: impl Fn(&T) -> (&str, &str),
) -> Result<Vec<&'m T>, (String, String)> {
    if wanted.is_empty() {
        return Ok(entries.iter().collect());
    }
    let mut chosen: Vec<&T> = Vec::new();
    for want in wanted {
        let matched: Vec<&T> = entries
            .iter()
            .filter(|e| {
                let (src, item) = name(e);
                match want.split_once('/') {
                    Some((s, i)) => src == s && item == i,
                    None => src == want,
                }
            })
            .collect();
        if matched.is_empty() {
            let all: Vec<String> = entries
                .iter()
                .map(|e| {
                    let (src, item) = name(e);
                    format!("{src}/{item}")
                })
                .collect();
            return Err((want.clone(), all.join(", ")));
        }
        for m in matched {
            if !chosen.iter().any(|c| std::ptr::eq(*c, m)) {
                chosen.push(m);
            }
        }
    }
    Ok(chosen)
}
