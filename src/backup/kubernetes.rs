//! Kubernetes objects into the snapshot: one sanitised YAML file per object.

use std::collections::BTreeMap;

use rustic_core::jiff::Timestamp;

use crate::config::KubernetesConfig;
use crate::kube::catalog;
use crate::kube::object;
use crate::kube::{Cluster, KubeError};
use crate::snapshot::tree::{stream_meta, VirtualFile};

/// The captured objects as snapshot files, and what the manifest says of them.
pub struct Kubernetes {
    pub files: Vec<VirtualFile>,
    /// Objects per `<group>/<Kind>`.
    pub counts: BTreeMap<String, u64>,
    /// Objects left out on purpose, per reason.
    pub skipped: BTreeMap<String, u64>,
    pub versions: BTreeMap<String, String>,
    pub namespaces: Vec<String>,
}

pub async fn capture(cfg: KubernetesConfig, started: Timestamp) -> Result<Kubernetes, KubeError> {
    let cluster = Cluster::connect(&cfg).await?;
    let cap = catalog::capture(&cluster, &cfg).await?;
    let mut counts = BTreeMap::new();
    let mut files = Vec::with_capacity(cap.objects.len());
    for (key, obj) in &cap.objects {
        *counts.entry(key.group_kind()).or_default() += 1;
        // The mtime is the backup's start: an object is always re-read, never taken from the
        // parent by its metadata, so an edit that keeps the size is not missed.
        files.push(VirtualFile::bytes(
            key.path(),
            stream_meta(started),
            object::to_yaml(obj)?.into_bytes(),
        ));
    }
    Ok(Kubernetes {
        files,
        counts,
        skipped: cap.skipped,
        versions: cap.versions,
        namespaces: cap.namespaces.into_iter().collect(),
    })
}
