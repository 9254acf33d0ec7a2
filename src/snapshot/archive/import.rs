//! `import`: a kfguard archive read as a stream into the repository as a new snapshot.
//!
//! One thread reads the tar in order, hashes each file while it hands the file's bytes to
//! rustic_core's archiver through a small channel, and checks every digest against
//! `SHA256SUMS` at the end. The archiver saves the data as a snapshot tagged
//! `kfguard-incomplete`; only when the whole archive verified is it saved again with the
//! source's time, cluster, tags and paths, and the incomplete one deleted. Packs written for a
//! failed import are unreferenced data, which `forget --prune` removes.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use rustic_core::jiff::Zoned;
use rustic_core::repofile::SnapshotId;
use rustic_core::{BackupOptions, ParentOptions, SnapshotOptions, StringList};
use sha2::{Digest, Sha256};

use super::{
    sums_line, ArchiveError, Header, Next, Source, FORMAT, HEADER_PATH, SUMS_PATH, VERSION,
};
use crate::repo::{Repo, RepoError};
use crate::snapshot::manifest::{Manifest, MANIFEST_PATH};
use crate::snapshot::tree::{FileStream, Ledger, Opener, VirtualFile, VirtualTree};
use crate::snapshot::{select, INCOMPLETE_TAG, KFGUARD_TAG};

/// Bytes handed to the archiver at once, and how many such chunks may wait per file: memory
/// stays bounded whatever the file sizes, and a file that fits moves the reader on to the
/// next one while the archiver still chunks it, so that two files are archived in parallel.
const CHUNK: usize = 1024 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;
/// Files announced or handed over ahead of the archiver.
const FILES_IN_FLIGHT: usize = 4;
/// Header entries (`ARCHIVE.json`) larger than this are not kfguard's.
const MAX_HEADER: u64 = 1024 * 1024;
/// The manifest is parsed as a check only up to this size.
const MAX_MANIFEST: usize = 64 * 1024 * 1024;

/// What was imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    /// The new snapshot in this repository.
    pub id: String,
    /// The exported snapshot, as its repository recorded it.
    pub source: Source,
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    pub bytes_added_packed: u64,
}

/// Reads a kfguard archive from `input` and saves it as a new snapshot.
pub fn import(
    repo: Repo,
    location: &str,
    input: impl Read + Send + 'static,
) -> Result<Imported, ArchiveError> {
    let rustic = |op: &'static str| {
        move |e: Box<rustic_core::RusticError>| {
            ArchiveError::from(RepoError::rustic(op, location, &e))
        }
    };
    let (first_tx, first_rx) = mpsc::sync_channel(1);
    let (nexts_tx, nexts_rx) = mpsc::sync_channel(FILES_IN_FLIGHT);
    let handoff = Arc::new(Handoff::default());
    let feeder_handoff = Arc::clone(&handoff);
    let feeder = std::thread::Builder::new()
        .name("kfguard-import".into())
        .spawn(move || {
            let fed = feed(input, &first_tx, &nexts_tx, &feeder_handoff);
            feeder_handoff.finish();
            fed
        })
        .map_err(|e| ArchiveError::Read {
            entry: HEADER_PATH.into(),
            source: e,
        })?;
    let Ok((header, first)) = first_rx.recv() else {
        return Err(feeder
            .join()
            .expect("import reader")
            .err()
            .unwrap_or_else(|| ArchiveError::BadHeader {
                detail: "it has no header".into(),
            }));
    };
    let source = header.snapshot;
    let time: Zoned = source.time.parse().map_err(|e| ArchiveError::BadHeader {
        detail: format!("its snapshot time `{}` cannot be read ({e})", source.time),
    })?;

    let template = SnapshotOptions::default()
        .host(source.hostname.clone())
        .add_tags(&format!("{KFGUARD_TAG},{INCOMPLETE_TAG}"))
        .and_then(|o| o.to_snapshot())
        .map_err(rustic("preparing the snapshot"))?;
    let repo = repo.to_indexed_ids().map_err(rustic("reading the index"))?;
    let ledger = Ledger::default();
    let stream: FileStream = Box::new(Files {
        first: Some(first),
        nexts: nexts_rx,
        contents: Arc::clone(&handoff),
        index: 0,
    });
    let tree = VirtualTree::with_streams(Vec::new(), vec![(String::new(), stream)], ledger.clone());
    let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
    let archived = repo.archive(&opts, &tree, template, &[PathBuf::from("/")]);
    // Closes the channels and drops the contents no one opened, so that a reader still
    // waiting on the archiver ends.
    drop(tree);
    handoff.close();
    let fed = feeder.join().expect("import reader");
    let failures = ledger.failures();
    let data = match (archived, fed) {
        (Ok(data), Ok(verified)) if failures.is_empty() => (data, verified),
        (Ok(data), fed) => {
            discard(&repo, &[data.id]);
            return Err(fed.err().unwrap_or(ArchiveError::Load(failures)));
        }
        (Err(_), Err(e)) => return Err(e),
        (Err(_), Ok(_)) if !failures.is_empty() => return Err(ArchiveError::Load(failures)),
        (Err(e), Ok(_)) => return Err(rustic("importing")(e)),
    };
    let (data, verified) = data;
    if let Err(e) = check_manifest(verified.manifest.as_deref(), &source) {
        discard(&repo, &[data.id]);
        return Err(e);
    }

    // Everything verified: the snapshot is saved again as the source recorded it.
    let mut snap = data.clone();
    snap.time = time;
    snap.hostname.clone_from(&source.hostname);
    snap.tags = list(source.tags.iter().filter(|t| *t != INCOMPLETE_TAG));
    snap.paths = list(source.paths.iter());
    snap.label.clone_from(&source.label);
    snap.description.clone_from(&source.description);
    snap.parent = None;
    snap.parents = Vec::new();
    // restic's field for a snapshot copied from another repository.
    snap.original = source
        .id
        .parse::<rustic_core::Id>()
        .ok()
        .map(SnapshotId::from);
    let before: HashSet<SnapshotId> = select::all(&repo, location)?.iter().map(|s| s.id).collect();
    let saved = repo.save_snapshots(vec![snap]);
    if let Err(e) = saved {
        discard(&repo, &[data.id]);
        return Err(rustic("saving the snapshot")(e));
    }
    discard(&repo, &[data.id]);
    let id = select::all(&repo, location)?
        .into_iter()
        .find(|s| !before.contains(&s.id) && s.tree == data.tree && select::is_complete(s))
        .map(|s| crate::snapshot::full_id(&s.id))
        .unwrap_or_default();
    let summary = data.summary.unwrap_or_default();
    Ok(Imported {
        id,
        source,
        files: verified.files,
        bytes: verified.bytes,
        bytes_added: summary.data_added,
        bytes_added_packed: summary.data_added_packed,
    })
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> StringList {
    let mut l = StringList::default();
    for s in items {
        l.add(s.clone());
    }
    l
}

/// The manifest must be one, of the cluster the archive says: `restore` and `show` read it.
fn check_manifest(bytes: Option<&[u8]>, source: &Source) -> Result<(), ArchiveError> {
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let altered = |detail: String| ArchiveError::Altered {
        entry: MANIFEST_PATH.into(),
        detail,
    };
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| altered(format!("it is not a kfguard manifest ({e})")))?;
    if m.cluster != source.hostname {
        return Err(altered(format!(
            "it names cluster `{}`, and the archive's header `{}`",
            m.cluster, source.hostname
        )));
    }
    Ok(())
}

/// Removes the incomplete snapshot of a failed or superseded import; one left behind stays
/// hidden and is removed by `forget`.
fn discard<S: rustic_core::Open>(repo: &rustic_core::Repository<S>, ids: &[SnapshotId]) {
    if let Err(e) = repo.delete_snapshots(ids) {
        tracing::warn!(error = %e.display_log(), "could not delete an incomplete snapshot; `forget` will remove it");
    }
}

/// One file's bytes on their way from the reader to the archiver.
type Chunked = Receiver<io::Result<Vec<u8>>>;

/// Hands each file's content to the archiver worker that opens that file. The archiver opens
/// files on several threads in any order, so a content waits here under its index until its
/// own worker takes it (taking them off one channel in order deadlocked, or lost a file, when
/// a later file's worker came first).
#[derive(Default)]
struct Handoff {
    state: Mutex<HandoffState>,
    ready: Condvar,
}

#[derive(Default)]
struct HandoffState {
    waiting: HashMap<u64, Chunked>,
    closed: bool,
}

impl Handoff {
    /// The reader's side: file `index`'s chunks come through `chunks`.
    fn put(&self, index: u64, chunks: Chunked) {
        let mut state = self.state.lock().expect("handoff lock");
        if !state.closed {
            state.waiting.insert(index, chunks);
        }
        self.ready.notify_all();
    }

    /// The reader is done: the contents handed over stay until taken, and a worker waiting for
    /// a file the archive did not hold sees the archive's end.
    fn finish(&self) {
        let mut state = self.state.lock().expect("handoff lock");
        state.closed = true;
        self.ready.notify_all();
    }

    /// The archiver is done: the contents no one took are dropped, which stops a reader still
    /// handing one over.
    fn close(&self) {
        let mut state = self.state.lock().expect("handoff lock");
        state.closed = true;
        state.waiting.clear();
        self.ready.notify_all();
    }

    /// A worker's side: file `index`'s chunks, once the reader has got to it.
    fn take(&self, index: u64) -> Option<Chunked> {
        let mut state = self.state.lock().expect("handoff lock");
        loop {
            if let Some(chunks) = state.waiting.remove(&index) {
                return Some(chunks);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).expect("handoff lock");
        }
    }
}

/// What the reader verified.
struct Verified {
    files: u64,
    bytes: u64,
    /// `kfguard.json`, when small enough to check.
    manifest: Option<Vec<u8>>,
}

/// The archive's files, for the archiver: each built from the previous entry's announcement,
/// so that the archiver can look one entry ahead before the current one's content is read.
struct Files {
    // Outer None: the header's announcement was taken; Some(None): the archive holds no file.
    #[allow(clippy::option_option)]
    first: Option<Option<Next>>,
    nexts: Receiver<Option<Next>>,
    contents: Arc<Handoff>,
    index: u64,
}

impl Iterator for Files {
    type Item = Result<VirtualFile, String>;

    fn next(&mut self) -> Option<Self::Item> {
        // A closed channel means the reader stopped; its error is reported after the archiver.
        let next = match self.first.take() {
            Some(first) => first,
            None => self.nexts.recv().ok().flatten(),
        }?;
        let index = self.index;
        self.index += 1;
        let size = next.node.meta.size;
        let contents = Arc::clone(&self.contents);
        let path = next.path.clone();
        let open: Opener = Box::new(move || open_content(&contents, index, &path));
        Some(Ok(VirtualFile {
            path: next.path,
            meta: next.node.meta,
            size: Some(size),
            open,
        }))
    }
}

fn open_content(contents: &Handoff, index: u64, path: &str) -> io::Result<Box<dyn Read + Send>> {
    let rx = contents.take(index).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the archive ended before `{path}`"),
        )
    })?;
    Ok(Box::new(Chunks {
        rx,
        buf: Vec::new(),
        pos: 0,
    }))
}

struct Chunks {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // Ended; the archiver's length check tells a short file from a whole one.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the archive in order: the header, each announced file, then the checksum list.
fn feed(
    input: impl Read,
    first: &SyncSender<(Header, Option<Next>)>,
    nexts: &SyncSender<Option<Next>>,
    contents: &Handoff,
) -> Result<Verified, ArchiveError> {
    let stopped = || {
        ArchiveError::Load(vec![
            "the repository writer stopped reading the archive".into()
        ])
    };
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(|e| ArchiveError::BadHeader {
        detail: format!("it cannot be read as tar ({e})"),
    })?;
    let mut e = match entries.next() {
        None => {
            return Err(ArchiveError::BadHeader {
                detail: "it is empty".into(),
            })
        }
        // The tar error quotes the bytes it could not parse, unreadable for a file that is no tar.
        Some(Err(_)) => {
            return Err(ArchiveError::BadHeader {
                detail: "its first 512 bytes are not a tar header".into(),
            })
        }
        Some(Ok(e)) => e,
    };
    let path = entry_path(&e);
    if path != HEADER_PATH {
        return Err(ArchiveError::NotKfguard { first: path });
    }
    let mut announced = next_of(&mut e, HEADER_PATH)?;
    let header = read_header(&mut e)?;
    first
        .send((header, announced.clone()))
        .map_err(|_| stopped())?;

    let mut sums: Vec<(String, [u8; 32])> = Vec::new();
    let mut verified = Verified {
        files: 0,
        bytes: 0,
        manifest: None,
    };
    let mut last = HEADER_PATH.to_string();
    let mut last_path = PathBuf::new();
    loop {
        let mut e = match entries.next() {
            None => {
                return Err(ArchiveError::Truncated {
                    at: format!("after `{last}`, before `{SUMS_PATH}`"),
                })
            }
            Some(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ArchiveError::Truncated {
                    at: format!("inside the header after `{last}`"),
                })
            }
            Some(Err(err)) => {
                return Err(ArchiveError::Altered {
                    entry: format!("after {last}"),
                    detail: format!("its header cannot be read ({err})"),
                })
            }
            Some(Ok(e)) => e,
        };
        let path = entry_path(&e);
        let Some(expected) = announced.take() else {
            if path != SUMS_PATH {
                return Err(ArchiveError::Altered {
                    entry: path,
                    detail: format!("no entry announced it, and `{SUMS_PATH}` was expected"),
                });
            }
            check_sums(&mut e, &sums)?;
            if let Some(extra) = entries.next() {
                let entry = extra.map_or_else(|_| "?".into(), |x| entry_path(&x));
                return Err(ArchiveError::Altered {
                    entry,
                    detail: format!("it follows `{SUMS_PATH}`, which ends an archive"),
                });
            }
            return Ok(verified);
        };
        let size = e.size();
        if path != expected.path || size != expected.node.meta.size {
            return Err(ArchiveError::Altered {
                entry: path,
                detail: format!(
                    "the entry before it announced `{}` of {} bytes, and this one has {size}",
                    expected.path, expected.node.meta.size
                ),
            });
        }
        // The archiver needs its files in tree order; export writes them so.
        if Path::new(&path) <= last_path.as_path() {
            return Err(ArchiveError::Altered {
                entry: path,
                detail: format!("it comes after `{last}` out of order"),
            });
        }
        let following = next_of(&mut e, &path)?;
        nexts.send(following.clone()).map_err(|_| stopped())?;
        let (tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        contents.put(verified.files, rx);
        let tee = path == MANIFEST_PATH && usize::try_from(size).is_ok_and(|s| s <= MAX_MANIFEST);
        let (digest, kept) = pump(&mut e, &path, size, &tx, tee)?;
        if tee {
            verified.manifest = Some(kept);
        }
        sums.push((path.clone(), digest));
        verified.files += 1;
        verified.bytes += size;
        last_path = PathBuf::from(&path);
        last = path;
        announced = following;
    }
}

fn entry_path<R: Read>(e: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&e.path_bytes()).into_owned()
}

/// The file the entry's PAX `comment` announces, if any.
fn next_of<R: Read>(e: &mut tar::Entry<'_, R>, path: &str) -> Result<Option<Next>, ArchiveError> {
    let altered = |detail: String| ArchiveError::Altered {
        entry: path.into(),
        detail,
    };
    let Some(pax) = e
        .pax_extensions()
        .map_err(|err| altered(format!("its PAX header cannot be read ({err})")))?
    else {
        return Ok(None);
    };
    for ext in pax {
        let ext = ext.map_err(|err| altered(format!("its PAX header cannot be read ({err})")))?;
        if ext.key() != Ok("comment") {
            continue;
        }
        let Ok(value) = ext.value() else { continue };
        if let Some(next) = Next::parse(value) {
            return next.map(Some).map_err(|err| {
                altered(format!(
                    "its announcement of the next file cannot be read ({err})"
                ))
            });
        }
    }
    Ok(None)
}

fn read_header<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Header, ArchiveError> {
    if e.size() > MAX_HEADER {
        return Err(ArchiveError::BadHeader {
            detail: format!("its `{HEADER_PATH}` has {} bytes", e.size()),
        });
    }
    let mut bytes = Vec::new();
    e.read_to_end(&mut bytes)
        .map_err(|err| ArchiveError::Truncated {
            at: format!("inside `{HEADER_PATH}` ({err})"),
        })?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|err| ArchiveError::BadHeader {
        detail: format!("its `{HEADER_PATH}` cannot be read ({err})"),
    })?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(ArchiveError::Version {
            format: header.format,
            version: header.version,
        });
    }
    Ok(header)
}

/// Hands one file's bytes to the archiver, hashing them; keeps a copy when `keep`.
fn pump<R: Read>(
    e: &mut tar::Entry<'_, R>,
    path: &str,
    size: u64,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    keep: bool,
) -> Result<([u8; 32], Vec<u8>), ArchiveError> {
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut done = 0u64;
    let mut handed = true;
    while done < size {
        if let Some(sig) = crate::interrupt::requested() {
            let _ = tx.send(Err(crate::interrupt::io_error(sig)));
            return Err(ArchiveError::Load(vec![format!("interrupted by {sig}")]));
        }
        let want = usize::try_from(size - done).map_or(CHUNK, |left| left.min(CHUNK));
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match e.read(&mut buf[filled..]) {
                Ok(0) => {
                    let at = done + filled as u64;
                    let _ = tx.send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the archive ends inside `{path}`"),
                    )));
                    return Err(ArchiveError::Truncated {
                        at: format!("inside `{path}`, after {at} of its {size} bytes"),
                    });
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let _ = tx.send(Err(io::Error::new(err.kind(), err.to_string())));
                    return Err(ArchiveError::Read {
                        entry: path.into(),
                        source: err,
                    });
                }
            }
        }
        hasher.update(&buf);
        if keep {
            kept.extend_from_slice(&buf);
        }
        done += want as u64;
        // A receiver gone means the archiver left this file; the stream must still be read on.
        if handed && tx.send(Ok(buf)).is_err() {
            handed = false;
        }
    }
    if !handed {
        return Err(ArchiveError::Load(vec![format!(
            "{path}: the repository writer did not take it"
        )]));
    }
    Ok((hasher.finalize().into(), kept))
}

/// Compares `SHA256SUMS`, line by line, with the digests of the files as they were read.
fn check_sums<R: Read>(
    e: &mut tar::Entry<'_, R>,
    sums: &[(String, [u8; 32])],
) -> Result<(), ArchiveError> {
    let size = e.size();
    let mut reader = io::BufReader::new(e);
    let mut line = String::new();
    let mut read = 0u64;
    for (i, (path, digest)) in sums.iter().enumerate() {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|err| ArchiveError::Read {
                entry: SUMS_PATH.into(),
                source: err,
            })?;
        read += n as u64;
        if n == 0 {
            return Err(if read < size {
                ArchiveError::Truncated {
                    at: format!("inside `{SUMS_PATH}`, after {i} of {} lines", sums.len()),
                }
            } else {
                ArchiveError::Altered {
                    entry: SUMS_PATH.into(),
                    detail: format!("it lists {i} files, and the archive holds {}", sums.len()),
                }
            });
        }
        if line != sums_line(digest, path) {
            let (listed, listed_path) = line.trim_end().split_once("  ").unwrap_or(("?", "?"));
            if listed_path != path {
                return Err(ArchiveError::Altered {
                    entry: SUMS_PATH.into(),
                    detail: format!(
                        "line {} names `{listed_path}`, where the archive holds `{path}`",
                        i + 1
                    ),
                });
            }
            return Err(ArchiveError::Altered {
                entry: path.clone(),
                detail: format!(
                    "its SHA-256 is {}, and `{SUMS_PATH}` lists {listed}",
                    hex::encode(digest)
                ),
            });
        }
    }
    line.clear();
    let n = reader
        .read_line(&mut line)
        .map_err(|err| ArchiveError::Read {
            entry: SUMS_PATH.into(),
            source: err,
        })?;
    if n > 0 {
        return Err(ArchiveError::Altered {
            entry: SUMS_PATH.into(),
            detail: format!(
                "it lists more than the {} files the archive holds",
                sums.len()
            ),
        });
    }
    Ok(())
}
