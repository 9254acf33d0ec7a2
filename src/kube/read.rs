//! The Kubernetes objects of a snapshot, read back from its `/kubernetes/` folder.
//!
//! This lives with the objects rather than in `snapshot`: the snapshot layer stores files and
//! knows nothing of YAML or object identity, while the layout of `/kubernetes/` (see
//! [`ObjectKey::path`]) is written and read here, in one place.

use std::collections::BTreeMap;

use rustic_core::repofile::SnapshotFile;
use rustic_core::LsOptions;
use serde_json::Value;

use super::object::{self, ObjectKey, ROOT};
use crate::repo::RepoError;
use crate::snapshot::read::{IndexedRepo, ReadError};

/// Every object below `/kubernetes/`, by key. A snapshot without Kubernetes objects gives none.
pub fn objects(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    location: &str,
) -> Result<BTreeMap<ObjectKey, Value>, ReadError> {
    let mut out = BTreeMap::new();
    let Ok(root) = repo.node_from_snapshot_and_path(snap, ROOT) else {
        return Ok(out);
    };
    let failed = |e: Box<rustic_core::RusticError>| {
        ReadError::Repo(RepoError::rustic(
            "reading Kubernetes objects",
            location,
            &e,
        ))
    };
    for item in repo.ls(&root, &LsOptions::default()).map_err(failed)? {
        let (path, node) = item.map_err(failed)?;
        if node.is_dir() {
            continue;
        }
        let path = format!("{ROOT}/{}", path.display());
        let mut buf = Vec::with_capacity(node.meta.size as usize);
        repo.dump(&node, &mut buf).map_err(failed)?;
        let bad = |detail: String| ReadError::BadFile {
            path: path.clone(),
            snapshot: crate::snapshot::full_id(&snap.id),
            detail,
        };
        let text = String::from_utf8(buf).map_err(|_| bad("not UTF-8".into()))?;
        for o in object::from_yaml(&text, &path).map_err(|e| bad(e.to_string()))? {
            let key = ObjectKey::of(&o)
                .ok_or_else(|| bad("no apiVersion, kind or metadata.name".into()))?;
            out.insert(key, o);
        }
    }
    Ok(out)
}
