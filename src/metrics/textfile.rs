//! The textfile for node-exporter's textfile collector: replaced atomically (a temporary file
//! in the same folder, renamed over it), so that a scrape never reads half a file.

use std::io::Write;
use std::path::Path;

use super::{encode, previous, Export, MetricsError};

pub(super) fn write(path: &Path, export: &Export) -> Result<(), MetricsError> {
    let err = |source| MetricsError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    // What no run of this export replaces is kept: the last success of a run that failed now.
    let earlier = match std::fs::read_to_string(path) {
        Ok(text) => previous::read(&text, |_| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read the previous metrics file {}: {e}; its last success is not kept",
                path.display()
            );
            Vec::new()
        }
    };
    let last_success = previous::merge(export, earlier);
    let text = encode(export, &last_success);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kfguard-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    // node-exporter runs as another user: the file must be readable by all, as a file
    // created by `>` would be (a temporary file is 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
