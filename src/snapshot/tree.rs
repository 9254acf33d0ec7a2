//! The virtual snapshot tree: files whose content streams from a source, fed to rustic_core's archiver.
//!
//! rustic_core logs and skips an entry whose open or read fails, then saves the snapshot anyway,
//! and it cannot tell a short stream from a complete one. So every failure is also recorded here,
//! in [`Ledger`], and the writer refuses to publish a snapshot when any is present.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};
use rustic_core::repofile::{Metadata, Node, NodeType};

/// Opens one file's content. Called at most once per backup, on an archiver thread.
pub type Opener = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

/// What happened to every stream of a backup: failures, and the byte count of each finished stream.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<LedgerInner>>);

#[derive(Debug, Default)]
struct LedgerInner {
    failures: Vec<String>,
    finished: std::collections::BTreeMap<String, u64>,
}

impl Ledger {
    pub fn record(&self, message: String) {
        tracing::error!(detail = %message, "source failed");
        self.0.lock().expect("ledger lock").failures.push(message);
    }
    pub fn failures(&self) -> Vec<String> {
        self.0.lock().expect("ledger lock").failures.clone()
    }
    fn finished(&self, path: &str, bytes: u64) {
        self.0.lock().expect("ledger lock").finished.insert(path.to_string(), bytes);
    }
    /// Bytes read from a stream that ended cleanly.
    pub fn bytes_of(&self, path: &str) -> Option<u64> {
        self.0.lock().expect("ledger lock").finished.get(path).copied()
    }
}

/// One file of the snapshot.
pub struct VirtualFile {
    /// Relative, `/`-separated path inside the snapshot, e.g. `databases/kfp/mlpipeline/schema.sql`.
    pub path: String,
    /// Metadata that decides parent reuse: a file is reused from the parent snapshot when type,
    /// size and mtime (and inode/ctime when set) match. Streams whose content is only known by
    /// reading them must carry an mtime that never matches, e.g. the backup's start time.
    pub meta: Metadata,
    /// Exact size when known up front; a stream of another length then fails the backup.
    pub expected_size: Option<u64>,
    /// Runs after every other file of the tree has been read or reused (for the manifest).
    pub last: bool,
    pub open: Opener,
}

impl std::fmt::Debug for VirtualFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualFile")
            .field("path", &self.path)
            .field("expected_size", &self.expected_size)
            .finish_non_exhaustive()
    }
}

/// Counts files not yet finished, so that a `last` file can wait for them.
#[derive(Debug, Default)]
struct Pending {
    count: Mutex<usize>,
    done: Condvar,
}

impl Pending {
    fn finish_one(&self) {
        let mut n = self.count.lock().expect("pending lock");
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.done.notify_all();
        }
    }
    fn wait(&self) {
        let mut n = self.count.lock().expect("pending lock");
        while *n > 0 {
            n = self.done.wait(n).expect("pending lock");
        }
    }
}

/// A set of virtual files, handed to `Repository::archive`.
#[derive(Debug)]
pub struct VirtualTree {
    // `entries()` takes `&self` but the openers are `FnOnce`: move them out exactly once.
    files: Mutex<Vec<VirtualFile>>,
    size: u64,
    ledger: Ledger,
    pending: Arc<Pending>,
}

impl VirtualTree {
    pub fn new(mut files: Vec<VirtualFile>, ledger: Ledger) -> Self {
        // The archiver needs entries in path order, component by component.
        files.sort_by(|a, b| PathBuf::from(&a.path).cmp(&PathBuf::from(&b.path)));
        let size = files.iter().map(|f| f.meta.size).sum();
        let pending = Arc::new(Pending {
            count: Mutex::new(files.iter().filter(|f| !f.last).count()),
            done: Condvar::new(),
        });
        Self {
            files: Mutex::new(files),
            size,
            ledger,
            pending,
        }
    }
}

impl ReadSource for VirtualTree {
    type Open = LazyOpen;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<LazyOpen>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Self::Iter {
        let files = std::mem::take(&mut *self.files.lock().expect("files lock"));
        files
            .into_iter()
            .map(|f| {
                let path = PathBuf::from(&f.path);
                let name = path.file_name().ok_or_else(|| {
                    RusticError::new(ErrorKind::InvalidInput, "virtual file `{path}` has no name")
                        .attach_context("path", f.path.clone())
                })?;
                let node = Node::new_node(name, NodeType::File, f.meta.clone());
                let open = LazyOpen {
                    path: f.path,
                    opener: Some(f.open),
                    expected: f.expected_size,
                    last: f.last,
                    ledger: self.ledger.clone(),
                    pending: self.pending.clone(),
                };
                Ok(ReadSourceEntry {
                    path,
                    node,
                    open: Some(open),
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// Opens a file when the archiver asks; dropped unopened when the parent snapshot is reused.
pub struct LazyOpen {
    path: String,
    opener: Option<Opener>,
    expected: Option<u64>,
    last: bool,
    ledger: Ledger,
    pending: Arc<Pending>,
}

impl std::fmt::Debug for LazyOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyOpen").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for LazyOpen {
    fn drop(&mut self) {
        // Unopened: its content came from the parent snapshot, so it is finished.
        if self.opener.is_some() && !self.last {
            self.pending.finish_one();
        }
    }
}

impl ReadSourceOpen for LazyOpen {
    type Reader = CheckedReader;

    fn open(mut self) -> RusticResult<CheckedReader> {
        let opener = self.opener.take().expect("opened once");
        if self.last {
            self.pending.wait();
        }
        match opener() {
            Ok(inner) => Ok(CheckedReader {
                inner,
                path: std::mem::take(&mut self.path),
                read: 0,
                expected: self.expected,
                ledger: self.ledger.clone(),
                pending: (!self.last).then(|| self.pending.clone()),
                failed: false,
            }),
            Err(err) => {
                self.ledger.record(format!("{}: {err}", self.path));
                if !self.last {
                    self.pending.finish_one();
                }
                Err(RusticError::with_source(
                    ErrorKind::InputOutput,
                    "cannot open source `{path}`",
                    err,
                )
                .attach_context("path", self.path.clone()))
            }
        }
    }
}

/// Passes bytes through, turning a short or failed stream into an error that is also recorded.
pub struct CheckedReader {
    inner: Box<dyn Read + Send>,
    path: String,
    read: u64,
    expected: Option<u64>,
    ledger: Ledger,
    pending: Option<Arc<Pending>>,
    failed: bool,
}

impl CheckedReader {
    fn fail(&mut self, err: io::Error) -> io::Error {
        if !self.failed {
            self.failed = true;
            self.ledger
                .record(format!("{}: {err} (after {} bytes)", self.path, self.read));
        }
        err
    }
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => match self.expected {
                Some(expected) if expected != self.read => Err(self.fail(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended at {} of {expected} bytes", self.read),
                ))),
                _ => {
                    self.ledger.finished(&self.path, self.read);
                    Ok(0)
                }
            },
            Ok(n) => {
                self.read += n as u64;
                if self.expected.is_some_and(|e| self.read > e) {
                    return Err(self.fail(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("stream is longer than the expected {} bytes", self.expected.unwrap_or(0)),
                    )));
                }
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => Err(self.fail(err)),
        }
    }
}

impl Drop for CheckedReader {
    fn drop(&mut self) {
        if let Some(p) = &self.pending {
            p.finish_one();
        }
    }
}

/// Metadata for a stream whose content is only known by reading it: an mtime of `now` never
/// matches the parent snapshot, so the archiver always reads it (see the module docs of writer).
pub fn stream_meta(now: rustic_core::jiff::Timestamp, size_hint: u64) -> Metadata {
    Metadata {
        // Go's os.FileMode, as restic stores it: a regular file, rw-r--r--.
        mode: Some(0o644),
        mtime: Some(now),
        size: size_hint,
        ..Metadata::default()
    }
}
