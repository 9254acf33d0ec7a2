//! `export`: one snapshot as a tar stream, file by file in tree order, each file's content
//! read from the repository while it is written, so memory stays bounded by a few blobs.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use rustic_core::repofile::{NodeType, SnapshotFile};
use rustic_core::{LsOptions, Progress};
use sha2::{Digest, Sha256};

use super::{
    sums_line, ArchiveError, Header, Next, Source, FORMAT, HEADER_PATH, SUMS_PATH, VERSION,
};
use crate::repo::RepoError;
use crate::snapshot::read::IndexedRepo;

/// Blobs in flight between the repository reader and the tar writer, per file.
const BLOBS_IN_FLIGHT: usize = 4;

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub snapshot: String,
    pub files: u64,
    /// Content bytes of the snapshot's files (the tar adds headers and padding).
    pub bytes: u64,
}

/// Writes `snap` as a kfguard archive to `out`.
pub fn export(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    location: &str,
    out: impl Write,
    progress: &Progress,
) -> Result<Exported, ArchiveError> {
    let snapshot = crate::snapshot::full_id(&snap.id);
    let listing = |e: Box<rustic_core::RusticError>| {
        ArchiveError::from(RepoError::rustic("listing the snapshot", location, &e))
    };
    let root = repo
        .node_from_snapshot_and_path(snap, "")
        .map_err(listing)?;
    let mut files = repo
        .ls(&root, &LsOptions::default().recursive(true))
        .map_err(listing)?
        .filter_map(|item| match item {
            Ok((_, node)) if node.is_dir() => None,
            Ok((path, node)) => Some(Ok((path.to_string_lossy().into_owned(), node))),
            Err(e) => Some(Err(listing(e))),
        })
        .peekable();
    if let Some(total) = snap.summary.as_ref().map(|s| s.total_bytes_processed) {
        progress.set_length(total);
    }

    let mut tar = tar::Builder::new(out);
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        kfguard_version: env!("CARGO_PKG_VERSION").into(),
        snapshot: Source {
            id: snapshot.clone(),
            time: snap.time.to_string(),
            hostname: snap.hostname.clone(),
            tags: snap.tags.iter().cloned().collect(),
            paths: snap.paths.iter().cloned().collect(),
            label: snap.label.clone(),
            description: snap.description.clone(),
        },
    };
    let header = serde_json::to_vec_pretty(&header).expect("header serialises");
    let first = announce(files.peek(), &snapshot)?;
    append(
        &mut tar,
        HEADER_PATH,
        first.as_ref(),
        0o644,
        header.as_slice(),
    )?;

    let mut sums = String::new();
    let mut done = Exported {
        snapshot: snapshot.clone(),
        files: 0,
        bytes: 0,
    };
    while let Some(item) = files.next() {
        if let Some(sig) = crate::interrupt::requested() {
            return Err(ArchiveError::Write(crate::interrupt::io_error(sig)));
        }
        let (path, node) = item?;
        let next = announce(files.peek(), &snapshot)?;
        let size = node.meta.size;
        let mode = node.meta.mode.unwrap_or(0o644) & 0o7777;
        write_next(&mut tar, next.as_ref())?;
        let mut content = Hashed::default();
        std::thread::scope(|s| -> Result<(), ArchiveError> {
            // rustic_core's dump reads a file's blobs in parallel into a writer; the pipe turns
            // that into the reader the tar builder takes, holding a few blobs at most.
            let (tx, rx) = mpsc::sync_channel(BLOBS_IN_FLIGHT);
            let reader = s.spawn(|| repo.dump(&node, &mut PipeWriter(tx)));
            content.pipe = Some(PipeReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            });
            let mut header = tar_header(size, mode, &node);
            let wrote = tar.append_data(&mut header, &path, &mut content);
            content.pipe = None; // ends a dump still running after a write error
            let dumped = reader.join().expect("dump thread");
            dumped.map_err(|e| ArchiveError::Content {
                path: path.clone(),
                snapshot: snapshot.clone(),
                detail: e.display_log(),
            })?;
            wrote.map_err(ArchiveError::Write)?;
            Ok(())
        })?;
        if content.read != size {
            return Err(ArchiveError::Content {
                path,
                snapshot,
                detail: format!("read {} bytes of the {size} its node records", content.read),
            });
        }
        sums.push_str(&sums_line(&content.hasher.finalize(), &path));
        done.files += 1;
        done.bytes += size;
        progress.inc(size);
    }
    append(&mut tar, SUMS_PATH, None, 0o644, sums.as_bytes())?;
    let mut out = tar.into_inner().map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)?;
    progress.finish();
    Ok(done)
}

/// The PAX record announcing the next file; only plain files can be announced.
fn announce(
    next: Option<&Result<(String, rustic_core::repofile::Node), ArchiveError>>,
    snapshot: &str,
) -> Result<Option<Next>, ArchiveError> {
    let Some(Ok((path, node))) = next else {
        return Ok(None);
    };
    if node.node_type != NodeType::File {
        return Err(ArchiveError::Unsupported {
            path: path.clone(),
            snapshot: snapshot.into(),
            kind: node.node_type.to_string(),
        });
    }
    let mut node = node.clone();
    node.content = None;
    Ok(Some(Next {
        path: path.clone(),
        node,
    }))
}

fn tar_header(size: u64, mode: u32, node: &rustic_core::repofile::Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    let secs = node
        .meta
        .mtime
        .map_or(0, rustic_core::jiff::Timestamp::as_second);
    h.set_mtime(u64::try_from(secs).unwrap_or(0));
    h
}

/// Appends one small entry held in memory, after its announcement of the next file.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    next: Option<&Next>,
    mode: u32,
    data: &[u8],
) -> Result<(), ArchiveError> {
    write_next(tar, next)?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(u64::try_from(rustic_core::jiff::Timestamp::now().as_second()).unwrap_or(0));
    tar.append_data(&mut h, path, data)
        .map_err(ArchiveError::Write)
}

fn write_next<W: Write>(
    tar: &mut tar::Builder<W>,
    next: Option<&Next>,
) -> Result<(), ArchiveError> {
    if let Some(comment) = Next::comment(next) {
        tar.append_pax_extensions([("comment", comment.as_bytes())])
            .map_err(ArchiveError::Write)?;
    }
    Ok(())
}

/// Counts and hashes what the tar builder reads.
#[derive(Default)]
struct Hashed {
    pipe: Option<PipeReader>,
    hasher: Sha256,
    read: u64,
}

impl Read for Hashed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(pipe) = &mut self.pipe else {
            return Ok(0);
        };
        let n = pipe.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

struct PipeWriter(mpsc::SyncSender<Vec<u8>>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archive writer stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct PipeReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                // The dump ended (its result says whether it finished).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
