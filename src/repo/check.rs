//! Checking the repository's structure and, on request, its data: what `kfguard check` and
//! runbooks' `snapshot::check` run.

use rustic_core::{CheckOptions, ReadSubsetOption};
use serde::Serialize;

use super::{Repo, RepoError};

/// How much of the data to read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadData {
    None,
    All,
    /// The N-th of M parts of the data packs.
    Subset(u32, u32),
}

impl ReadData {
    /// `none`, `all` or `N/M`.
    pub fn label(self) -> String {
        match self {
            Self::None => "none".into(),
            Self::All => "all".into(),
            Self::Subset(n, m) => format!("{n}/{m}"),
        }
    }
}

/// `N/M` with `1 <= N <= M`: the part of `--read-data-subset`.
pub fn parse_subset(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("`{s}` is not N/M with 1 <= N <= M, e.g. 1/7");
    let (n, m) = s.split_once('/').ok_or_else(err)?;
    let (n, m): (u32, u32) = (
        n.trim().parse().map_err(|_| err())?,
        m.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || m == 0 || n > m {
        return Err(err());
    }
    Ok((n, m))
}

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub repository: String,
    pub read_data: String,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks the repository at `location`; its findings are in the result, not the error.
pub fn check(repo: &Repo, location: &str, read: ReadData) -> Result<Checked, RepoError> {
    let opts = match read {
        ReadData::None => CheckOptions::default(),
        ReadData::All => CheckOptions::default()
            .read_data(true)
            .read_data_subset(ReadSubsetOption::All),
        ReadData::Subset(n, m) => CheckOptions::default()
            .read_data(true)
            .read_data_subset(ReadSubsetOption::IdSubSet((n, m))),
    };
    let results = repo
        .check(opts)
        .map_err(|e| RepoError::rustic("check", location, &e))?;
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for (level, err) in &results.0 {
        // rustic_core does not export the level type; its Debug names it.
        if format!("{level:?}") == "Warn" {
            warnings.push(err.to_string());
        } else {
            errors.push(err.to_string());
        }
    }
    Ok(Checked {
        repository: location.to_string(),
        read_data: read.label(),
        errors,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parsing() {
        assert_eq!(parse_subset("1/7"), Ok((1, 7)));
        assert!(parse_subset("0/7").is_err());
        assert!(parse_subset("8/7").is_err());
        assert!(parse_subset("x").is_err());
    }
}
