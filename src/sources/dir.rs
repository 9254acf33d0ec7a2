//! A local folder as a source, stored under `/files/<folder name>/`, with real file metadata.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustic_core::jiff::Timestamp;
use rustic_core::repofile::Metadata;

use super::{SourceError, FILES_ROOT};
use crate::snapshot::tree::VirtualFile;

/// Lists every regular file below `root`. Real mtime, ctime and inode let unchanged files be
/// reused from the parent snapshot, as a file backup would.
pub fn files(root: &Path, warnings: &mut Vec<String>) -> Result<Vec<VirtualFile>, SourceError> {
    let name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "root".into());
    let mut out = Vec::new();
    walk(root, &format!("{FILES_ROOT}/{name}"), &mut out, warnings)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<VirtualFile>,
    warnings: &mut Vec<String>,
) -> Result<(), SourceError> {
    let err = |source| SourceError::Dir {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            warnings.push(format!("skipped {}: the name is not UTF-8", path.display()));
            continue;
        };
        let meta = fs::symlink_metadata(&path).map_err(|source| SourceError::Dir {
            path: path.clone(),
            source,
        })?;
        let rel = format!("{prefix}/{name}");
        if meta.is_dir() {
            walk(&path, &rel, out, warnings)?;
        } else if meta.is_file() {
            let size = meta.len();
            let opened = path.clone();
            out.push(VirtualFile {
                path: rel,
                meta: Metadata {
                    mode: Some(meta.mode() & 0o777),
                    mtime: Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32).ok(),
                    ctime: Timestamp::new(meta.ctime(), meta.ctime_nsec() as i32).ok(),
                    inode: meta.ino(),
                    device_id: meta.dev(),
                    size,
                    ..Metadata::default()
                },
                size: Some(size),
                open: Box::new(move || {
                    Ok(Box::new(fs::File::open(&opened)?) as Box<dyn std::io::Read + Send>)
                }),
            });
        } else {
            warnings.push(format!(
                "skipped {}: not a regular file or folder",
                path.display()
            ));
        }
    }
    Ok(())
}
