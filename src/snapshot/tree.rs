//! The virtual snapshot tree: files whose content streams from a source, fed to rustic_core's archiver.
//!
//! Three properties of rustic_core's archiver shape this module:
//! - It logs and skips an entry whose open or read fails, then saves the snapshot anyway, and it
//!   cannot tell a short stream from a complete one. Every failure is therefore also recorded
//!   in the [`Ledger`], and the writer refuses to publish a snapshot when it holds any.
//! - It stores the node's size as given, not as read, and restic restores a file of recorded
//!   size 0 as empty. A file whose size is not known up front is therefore spooled (to memory,
//!   then to a temporary file) when the archiver reaches it, so that its node carries the exact size.
//! - It reuses the parent snapshot's content when type, size and mtime match (see
//!   [`stream_meta`]).

use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};

/// Opens one file's content. Called at most once per backup, on an archiver thread.
pub type Opener = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

/// Streams up to this size are spooled in memory; larger ones spill to a temporary file.
const SPOOL_IN_MEMORY: usize = 16 * 1024 * 1024;

/// What happened to every stream of a backup: failures, and the byte count of each finished stream.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<LedgerInner>>);

#[derive(Debug, Default)]
struct LedgerInner {
    failures: Vec<String>,
    finished: std::collections::BTreeMap<String, u64>,
    vanished: Vec<String>,
}

/// An opener's error for a source entry that no longer exists (e.g. an object deleted between
/// listing and reading): recorded as vanished, not as a failure, and the file is left out.
#[derive(Debug, thiserror::Error)]
#[error("{0} vanished before it could be read")]
pub struct Vanished(pub String);

impl Ledger {
    pub fn record(&self, message: String) {
        tracing::error!(detail = %message, "source failed");
        self.0.lock().expect("ledger lock").failures.push(message);
    }
    pub fn failures(&self) -> Vec<String> {
        self.0.lock().expect("ledger lock").failures.clone()
    }
    fn finished(&self, path: &str, bytes: u64) {
        self.0
            .lock()
            .expect("ledger lock")
            .finished
            .insert(path.to_string(), bytes);
    }
    /// Records an entry that vanished before it was read; this does not fail the backup.
    pub fn vanished(&self, what: String) {
        tracing::warn!(entry = %what, "source entry vanished before it was read");
        self.0.lock().expect("ledger lock").vanished.push(what);
    }
    /// Entries that vanished before they were read, in the order seen.
    pub fn vanished_entries(&self) -> Vec<String> {
        self.0.lock().expect("ledger lock").vanished.clone()
    }
    /// Bytes read from a stream that ended cleanly.
    pub fn bytes_of(&self, path: &str) -> Option<u64> {
        self.0
            .lock()
            .expect("ledger lock")
            .finished
            .get(path)
            .copied()
    }
}

/// One file of the snapshot.
pub struct VirtualFile {
    /// Relative, `/`-separated path inside the snapshot, e.g. `databases/kfp/mlpipeline/schema.sql`.
    pub path: String,
    /// Metadata that decides parent reuse; its size is replaced by the real one for spooled files.
    pub meta: Metadata,
    /// Exact size when known up front: the file streams, and a stream of another length fails
    /// the backup. `None`: the file is spooled first to learn its size.
    pub size: Option<u64>,
    pub open: Opener,
}

impl VirtualFile {
    /// A file whose content is already in memory.
    pub fn bytes(path: impl Into<String>, meta: Metadata, content: Vec<u8>) -> Self {
        let len = content.len() as u64;
        Self {
            path: path.into(),
            meta: Metadata { size: len, ..meta },
            size: Some(len),
            open: Box::new(move || Ok(Box::new(io::Cursor::new(content)) as Box<dyn Read + Send>)),
        }
    }
}

impl std::fmt::Debug for VirtualFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Files produced while the backup runs, all below one folder, in path order: e.g. the
/// data parts of one database. An `Err` is a source failure; the stream may go on after it.
pub type FileStream = Box<dyn Iterator<Item = Result<VirtualFile, String>> + Send>;

enum Item {
    File(Box<VirtualFile>),
    /// Sorted by its folder; its files are yielded in place.
    Stream {
        dir: String,
        files: FileStream,
    },
}

impl Item {
    fn key(&self) -> PathBuf {
        match self {
            Item::File(f) => PathBuf::from(&f.path),
            Item::Stream { dir, .. } => PathBuf::from(dir),
        }
    }
}

/// A set of virtual files, handed to `Repository::archive`.
pub struct VirtualTree {
    // `entries()` takes `&self` but the openers are `FnOnce`: move them out exactly once.
    items: Mutex<Vec<Item>>,
    size: u64,
    ledger: Ledger,
}

impl std::fmt::Debug for VirtualTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualTree")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl VirtualTree {
    pub fn new(files: Vec<VirtualFile>, ledger: Ledger) -> Self {
        Self::with_streams(files, Vec::new(), ledger)
    }

    /// Files known up front plus streams of files, each stream below its own folder `dir`
    /// (no fixed file may live inside a stream's folder).
    pub fn with_streams(
        files: Vec<VirtualFile>,
        streams: Vec<(String, FileStream)>,
        ledger: Ledger,
    ) -> Self {
        let size = files.iter().filter_map(|f| f.size).sum();
        let mut items: Vec<Item> = files.into_iter().map(|f| Item::File(Box::new(f))).collect();
        items.extend(
            streams
                .into_iter()
                .map(|(dir, files)| Item::Stream { dir, files }),
        );
        // The archiver needs entries in path order, component by component.
        items.sort_by_key(Item::key);
        Self {
            items: Mutex::new(items),
            size,
            ledger,
        }
    }
}

impl ReadSource for VirtualTree {
    type Open = LazyOpen;
    type Iter = Entries;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Entries {
        let items = std::mem::take(&mut *self.items.lock().expect("items lock"));
        Entries {
            items: items.into_iter(),
            current: None,
            ledger: self.ledger.clone(),
            stopped: false,
        }
    }
}

/// Yields entries lazily, so that a file is spooled, or received from a stream, only when the
/// archiver reaches it.
pub struct Entries {
    items: std::vec::IntoIter<Item>,
    current: Option<FileStream>,
    ledger: Ledger,
    stopped: bool,
}

impl Iterator for Entries {
    type Item = RusticResult<ReadSourceEntry<LazyOpen>>;

    fn next(&mut self) -> Option<Self::Item> {
        // A stop request ends the tree here: the archiver finishes what it has, and the
        // recorded failure keeps the snapshot from being published.
        if let Some(sig) = crate::interrupt::requested() {
            if !std::mem::replace(&mut self.stopped, true) {
                self.ledger.record(format!("interrupted by {sig}"));
            }
            return None;
        }
        loop {
            if let Some(stream) = &mut self.current {
                match stream.next() {
                    Some(Ok(f)) => return Some(self.entry(f)),
                    Some(Err(message)) => {
                        self.ledger.record(message.clone());
                        return Some(Err(RusticError::new(
                            ErrorKind::InputOutput,
                            "source failed: {message}",
                        )
                        .attach_context("message", message)));
                    }
                    None => self.current = None,
                }
            }
            match self.items.next()? {
                Item::File(f) => return Some(self.entry(*f)),
                Item::Stream { files, .. } => self.current = Some(files),
            }
        }
    }
}

impl Entries {
    fn entry(&self, f: VirtualFile) -> RusticResult<ReadSourceEntry<LazyOpen>> {
        let path = PathBuf::from(&f.path);
        let name = path
            .file_name()
            .ok_or_else(|| {
                RusticError::new(ErrorKind::InvalidInput, "virtual file `{path}` has no name")
                    .attach_context("path", f.path.clone())
            })?
            .to_owned();
        let (meta, size, opener) = match f.size {
            Some(size) => (Metadata { size, ..f.meta }, size, f.open),
            None => match spool(&f.path, f.open) {
                Ok((spooled, size)) => (Metadata { size, ..f.meta }, size, spooled),
                Err(err) => {
                    self.ledger.record(format!("{}: {err}", f.path));
                    return Err(RusticError::with_source(
                        ErrorKind::InputOutput,
                        "cannot read source `{path}`",
                        err,
                    )
                    .attach_context("path", f.path));
                }
            },
        };
        let node = Node::new_node(&name, NodeType::File, meta);
        Ok(ReadSourceEntry {
            path,
            node,
            open: Some(LazyOpen {
                path: f.path,
                opener: Some(opener),
                expected: size,
                ledger: self.ledger.clone(),
            }),
        })
    }
}

/// Reads a stream to its end to learn its size; returns an opener for the spooled bytes.
fn spool(path: &str, open: Opener) -> io::Result<(Opener, u64)> {
    let mut reader = open()?;
    let mut mem = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut file: Option<std::fs::File> = None;
    let mut total = 0u64;
    loop {
        if let Some(sig) = crate::interrupt::requested() {
            return Err(crate::interrupt::io_error(sig));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        match &mut file {
            Some(f) => f.write_all(&buf[..n])?,
            None if mem.len() + n > SPOOL_IN_MEMORY => {
                let mut f = tempfile::tempfile()?;
                f.write_all(&mem)?;
                f.write_all(&buf[..n])?;
                mem = Vec::new();
                file = Some(f);
            }
            None => mem.extend_from_slice(&buf[..n]),
        }
    }
    tracing::debug!(
        path,
        bytes = total,
        spilled = file.is_some(),
        "spooled stream"
    );
    let opener: Opener = match file {
        Some(mut f) => {
            f.rewind()?;
            Box::new(move || Ok(Box::new(io::BufReader::new(f)) as Box<dyn Read + Send>))
        }
        None => Box::new(move || Ok(Box::new(io::Cursor::new(mem)) as Box<dyn Read + Send>)),
    };
    Ok((opener, total))
}

/// Opens a file when the archiver asks; dropped unopened when the parent snapshot is reused.
pub struct LazyOpen {
    path: String,
    opener: Option<Opener>,
    expected: u64,
    ledger: Ledger,
}

impl std::fmt::Debug for LazyOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyOpen")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReadSourceOpen for LazyOpen {
    type Reader = CheckedReader;

    fn open(mut self) -> RusticResult<CheckedReader> {
        let opener = self.opener.take().expect("opened once");
        match opener() {
            Ok(inner) => Ok(CheckedReader {
                inner,
                path: std::mem::take(&mut self.path),
                read: 0,
                expected: self.expected,
                ledger: self.ledger.clone(),
                failed: false,
            }),
            Err(err) => {
                match err.get_ref().and_then(|e| e.downcast_ref::<Vanished>()) {
                    Some(v) => self.ledger.vanished(v.0.clone()),
                    None => self.ledger.record(format!("{}: {err}", self.path)),
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

/// Passes bytes through, turning a failed stream, or one of another length than its node
/// records, into an error that is also recorded in the ledger.
pub struct CheckedReader {
    inner: Box<dyn Read + Send>,
    path: String,
    read: u64,
    expected: u64,
    ledger: Ledger,
    failed: bool,
}

impl CheckedReader {
    fn fail(&mut self, err: io::Error) -> io::Error {
        if !self.failed {
            self.failed = true;
            // A source that finds its entry gone part-way (an object rewritten while it was
            // read in parts) leaves it out, as if it had vanished before the open.
            match err.get_ref().and_then(|e| e.downcast_ref::<Vanished>()) {
                Some(v) => self.ledger.vanished(v.0.clone()),
                None => self
                    .ledger
                    .record(format!("{}: {err} (after {} bytes)", self.path, self.read)),
            }
        }
        err
    }
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(sig) = crate::interrupt::requested() {
            return Err(self.fail(crate::interrupt::io_error(sig)));
        }
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                if self.read != self.expected {
                    let msg = format!("stream ended at {} of {} bytes", self.read, self.expected);
                    return Err(self.fail(io::Error::new(io::ErrorKind::UnexpectedEof, msg)));
                }
                self.ledger.finished(&self.path, self.read);
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                if self.read > self.expected {
                    let msg = format!("stream is longer than the expected {} bytes", self.expected);
                    return Err(self.fail(io::Error::new(io::ErrorKind::InvalidData, msg)));
                }
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => Err(self.fail(err)),
        }
    }
}

/// Metadata for a stream whose content is only known by reading it: an mtime of the backup's
/// start never matches the parent snapshot, so the archiver always reads it.
pub fn stream_meta(now: rustic_core::jiff::Timestamp) -> Metadata {
    Metadata {
        // Go's os.FileMode, as restic stores it: a regular file, rw-r--r--.
        mode: Some(0o644),
        mtime: Some(now),
        ..Metadata::default()
    }
}
