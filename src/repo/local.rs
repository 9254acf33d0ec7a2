//! The local-folder backend: rustic's `LocalBackend`, with restic's file modes. Folders are
//! 0700 and files 0400, so that other local users cannot copy the key files and guess the
//! password offline.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rustic_backend::local::LocalBackend;
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};

/// restic's modes for a local repository.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o400;

#[derive(Debug)]
pub(super) struct PrivateLocal {
    inner: LocalBackend,
    root: PathBuf,
}

impl PrivateLocal {
    pub(super) fn new(path: &str) -> RusticResult<Self> {
        Ok(Self {
            inner: LocalBackend::new(path, Vec::<(String, String)>::new())?,
            root: PathBuf::from(path),
        })
    }

    /// Where `LocalBackend` puts a file: restic's layout.
    fn file_path(&self, tpe: FileType, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        match tpe {
            FileType::Config => self.root.join("config"),
            FileType::Pack => self.root.join("data").join(&hex[0..2]).join(&*hex),
            _ => self.root.join(tpe.dirname()).join(&*hex),
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn io_error(what: &'static str, path: &Path, err: std::io::Error) -> Box<rustic_core::RusticError> {
    rustic_core::RusticError::with_source(
        rustic_core::ErrorKind::InputOutput,
        "Failed to set the permissions of {what} `{path}`.",
        err,
    )
    .attach_context("what", what)
    .attach_context("path", path.display().to_string())
}

impl ReadBackend for PrivateLocal {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }
}

impl WriteBackend for PrivateLocal {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()?;
        // The root first: from then on no other user can look inside while the rest follows.
        set_mode(&self.root, DIR_MODE).map_err(|e| io_error("folder", &self.root, e))?;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| io_error("folder", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_error("folder", &dir, e))?;
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    set_mode(&path, DIR_MODE).map_err(|e| io_error("folder", &path, e))?;
                    dirs.push(path);
                }
            }
        }
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        buf: BytesList,
    ) -> RusticResult<()> {
        self.inner.write_bytes(tpe, id, cacheable, buf)?;
        let path = self.file_path(tpe, id);
        set_mode(&path, FILE_MODE).map_err(|e| io_error("file", &path, e))
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.inner.remove(tpe, id, cacheable)
    }
}
