//! Sharded bucket backups: the stable partition of bucket keys, the tags that mark a partial
//! (shard) snapshot and its run, and finding one run's complete set of shards.
//!
//! **The partition is part of the snapshot format and fixed forever:** key `k` belongs to
//! shard `u64::from_be_bytes(SHA-256(k)[0..8]) mod N`, over the key's UTF-8 bytes. A key
//! therefore stays in the same shard night after night, so that last night's shard I is a
//! full parent for tonight's shard I.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rustic_core::repofile::SnapshotFile;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tag of a partial snapshot: `kfguard-shard=I/N`. Such snapshots are never `latest`, never a
/// full backup's parent, and have their own retention (see `retention`).
pub const SHARD_TAG_PREFIX: &str = "kfguard-shard=";
/// Tag of the run a shard belongs to, `kfguard-shard-run=ID`; a merged snapshot has it too.
pub const RUN_TAG_PREFIX: &str = "kfguard-shard-run=";

/// Shard I of N (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The shard of `key` among `count`: see the module docs; never change it.
    pub fn of(key: &str, count: u32) -> u32 {
        let digest = Sha256::digest(key.as_bytes());
        let head: [u8; 8] = digest[..8].try_into().expect("SHA-256 has 32 bytes");
        u32::try_from(u64::from_be_bytes(head) % u64::from(count)).expect("below a u32")
    }

    /// Whether `key` falls in this shard.
    pub fn contains(&self, key: &str) -> bool {
        Self::of(key, self.count) == self.index
    }

    pub fn tag(&self) -> String {
        format!("{SHARD_TAG_PREFIX}{self}")
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: give I/N, e.g. 0/4 (I from 0 to N-1)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// Checks a run id: it becomes a tag value, so it must not hold a comma or whitespace.
pub fn check_run(run: &str) -> Result<(), String> {
    if run.is_empty() || run.len() > 200 || run.chars().any(|c| c == ',' || c.is_whitespace()) {
        return Err(format!(
            "`{run}` is not a shard run id: give 1 to 200 characters without commas or spaces, e.g. the Job's uid"
        ));
    }
    Ok(())
}

pub fn run_tag(run: &str) -> String {
    format!("{RUN_TAG_PREFIX}{run}")
}

/// The shard a snapshot covers, if it is a partial one.
pub fn shard_of(s: &SnapshotFile) -> Option<Shard> {
    s.tags
        .iter()
        .find_map(|t| t.strip_prefix(SHARD_TAG_PREFIX))
        .and_then(|v| v.parse().ok())
}

/// Whether a snapshot is a partial (shard) one.
pub fn is_partial(s: &SnapshotFile) -> bool {
    s.tags.iter().any(|t| t.starts_with(SHARD_TAG_PREFIX))
}

/// The shard run a snapshot belongs to (a shard) or was merged from (a merged snapshot).
pub fn run_of(s: &SnapshotFile) -> Option<String> {
    s.tags
        .iter()
        .find_map(|t| t.strip_prefix(RUN_TAG_PREFIX))
        .map(str::to_string)
}

/// What a shard snapshot records in its manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardRecord {
    pub index: u32,
    pub count: u32,
    pub run: String,
}

/// What a merged snapshot records in its manifest: the run and the shard snapshots it joined.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MergedRecord {
    pub run: String,
    pub count: u32,
    /// The shard snapshots' ids, by shard index.
    pub snapshots: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardSetError {
    #[error("shard run `{run}` is incomplete: missing shard {missing} of {count} (found {found}); rerun the missing shard(s) with `kfguard backup --only buckets --shard I/{count} --shard-run {run}`")]
    Incomplete {
        run: String,
        count: u32,
        missing: String,
        found: String,
    },
    #[error("shard run `{run}` mixes shard counts ({counts}): its shards must all be I/N of one N; rerun it under a new run id")]
    MixedCounts { run: String, counts: String },
    #[error("no shard snapshot of run `{run}` for cluster `{cluster}`; run the shards first (`kfguard backup --only buckets --shard I/N --shard-run {run}`)")]
    NoSuchRun { run: String, cluster: String },
    #[error("no shard run of cluster `{cluster}` is waiting to be merged; run the shards first, or name a run with --shard-run ID")]
    NothingToMerge { cluster: String },
}

impl ShardSetError {
    /// A set the user must fix (mixed counts) rather than one that is not finished yet.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::MixedCounts { .. })
    }
}

/// The run to merge: `run` if given, else the newest run with shards and no merged snapshot.
/// `snaps` are the cluster's complete snapshots, oldest first.
pub fn pick_run(
    snaps: &[SnapshotFile],
    cluster: &str,
    run: Option<&str>,
) -> Result<String, ShardSetError> {
    if let Some(r) = run {
        return Ok(r.to_string());
    }
    let merged: std::collections::BTreeSet<String> = snaps
        .iter()
        .filter(|s| !is_partial(s))
        .filter_map(run_of)
        .collect();
    snaps
        .iter()
        .rev()
        .filter(|s| is_partial(s))
        .filter_map(run_of)
        .find(|r| !merged.contains(r))
        .ok_or_else(|| ShardSetError::NothingToMerge {
            cluster: cluster.into(),
        })
}

/// The complete set of one run, by shard index; a shard saved twice (a retried pod) counts
/// once, by its newest snapshot. `snaps` are the cluster's complete snapshots, oldest first.
pub fn set_of(
    snaps: &[SnapshotFile],
    cluster: &str,
    run: &str,
) -> Result<Vec<SnapshotFile>, ShardSetError> {
    let mut by_shard: BTreeMap<Shard, SnapshotFile> = BTreeMap::new();
    for s in snaps {
        if let (Some(shard), Some(r)) = (shard_of(s), run_of(s)) {
            if r == run {
                by_shard.insert(shard, s.clone());
            }
        }
    }
    let counts: std::collections::BTreeSet<u32> = by_shard.keys().map(|s| s.count).collect();
    let Some(&count) = counts.iter().next() else {
        return Err(ShardSetError::NoSuchRun {
            run: run.into(),
            cluster: cluster.into(),
        });
    };
    let list = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(", ");
    if counts.len() > 1 {
        return Err(ShardSetError::MixedCounts {
            run: run.into(),
            counts: list(&mut by_shard.keys().map(ToString::to_string)),
        });
    }
    let missing: Vec<String> = (0..count)
        .filter(|&index| !by_shard.contains_key(&Shard { index, count }))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ShardSetError::Incomplete {
            run: run.into(),
            count,
            missing: missing.join(", "),
            found: list(&mut by_shard.keys().map(ToString::to_string)),
        });
    }
    Ok(by_shard.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_is_fixed_forever() {
        // These values are part of the snapshot format: a change would move keys between
        // shards and break every sharded repository's parents.
        let got: Vec<u32> = ["a", "artifacts/run-1/model.bin", ""]
            .iter()
            .map(|k| Shard::of(k, 7))
            .collect();
        let expect: Vec<u32> = ["a", "artifacts/run-1/model.bin", ""]
            .iter()
            .map(|k| {
                let d = Sha256::digest(k.as_bytes());
                u32::try_from(u64::from_be_bytes(d[..8].try_into().unwrap()) % 7).unwrap()
            })
            .collect();
        assert_eq!(got, expect);
        // SHA-256("a") starts ca978112ca1bbdca.
        assert_eq!(Shard::of("a", 1 << 16), 0xbdca);
    }

    #[test]
    fn every_key_falls_in_exactly_one_shard() {
        for k in ["x", "y/z", "ü"] {
            let n = (0..5)
                .filter(|&i| Shard { index: i, count: 5 }.contains(k))
                .count();
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn shard_specs_parse_and_refuse() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(check_run("job-uid-1").is_ok());
        assert!(check_run("a,b").is_err());
        assert!(check_run("").is_err());
    }
}
