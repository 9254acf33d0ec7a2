//! Object downloads of a backup: at most `--transfers` GETs in flight across every bucket
//! source, new and changed small objects fetched ahead of the archiver, and large objects read
//! with ranged GETs, in order, with bounded memory.
//!
//! rustic_core's archiver reads files on a few synchronous threads (one per core), opening
//! each file only when it reaches it. Left alone it would download one object per thread, and
//! many small objects would then cost a round trip each. So:
//! - **Prefetch.** Objects up to [`Limits::prefetch_max`] that are new or changed since the
//!   parent snapshot's index are fetched whole, in archiver order, by a task started at the
//!   bucket's first open; their bytes wait (at most [`Limits::prefetch_budget`] in all) until
//!   the archiver opens them. An object the archiver reuses from the parent drops its slot,
//!   and is then skipped.
//! - **Ranged reads.** Objects over [`Limits::ranged_threshold`] are read as `Range` GETs of
//!   [`Limits::part_size`], [`Limits::parts_ahead`] at a time, each with `If-Match` on the
//!   listed ETag, handed over in order through a channel of one part: memory holds a few parts
//!   per large object, whatever its size, and [`Limits::ranged_objects`] objects at most. A part
//!   refused because the object was rewritten or deleted meanwhile makes the object
//!   [`Vanished`], as a refused first GET does.
//! - **One limit.** Every GET, prefetched, streamed or ranged, holds one of `--transfers`
//!   permits while it is in flight.
//! - **Fail fast.** After one request to a bucket fails (the endpoint went away, credentials
//!   were revoked), its other objects are not requested: each fails at once, naming that first
//!   error, so a dead endpoint ends the backup in seconds rather than retrying every object.
//!
//! The archiver's threads are not tokio workers: they wait on the runtime explicitly
//! (`Handle::block_on`, `blocking_recv`), never the other way round.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{Bucket, BucketError, Listed};
use crate::snapshot::tree::{Opener, Vanished};

const MIB: u64 = 1024 * 1024;
/// Body chunks read ahead of the archiver per streamed object (hyper's chunks are at most a
/// few hundred KiB).
const STREAM_CHUNKS_AHEAD: usize = 16;

/// Sizes and counts that bound the downloads of one backup.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// GETs in flight at once, over every bucket source (`--transfers`).
    pub transfers: usize,
    /// Objects larger than this are read with ranged GETs (`KFGUARD_RANGED_THRESHOLD`, bytes).
    pub ranged_threshold: u64,
    /// Bytes per ranged GET (`KFGUARD_RANGE_PART_SIZE`, bytes).
    pub part_size: u64,
    /// Ranged GETs of one object in flight at once.
    pub parts_ahead: usize,
    /// Objects read in ranges at once: each holds up to `parts_ahead + 2` parts in memory, and
    /// the archiver has a thread per core.
    pub ranged_objects: usize,
    /// Largest object fetched ahead of the archiver.
    pub prefetch_max: u64,
    /// Bytes fetched ahead and not yet read, over every bucket source.
    pub prefetch_budget: u64,
}

impl Limits {
    /// The defaults for `transfers` GETs at once; two hidden variables lower the ranged-read
    /// sizes, for tests.
    pub fn new(transfers: usize) -> Self {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v > 0)
        };
        Self {
            transfers: transfers.max(1),
            ranged_threshold: env("KFGUARD_RANGED_THRESHOLD").unwrap_or(64 * MIB),
            part_size: env("KFGUARD_RANGE_PART_SIZE").unwrap_or(8 * MIB),
            parts_ahead: 2,
            ranged_objects: 2,
            prefetch_max: 4 * MIB,
            prefetch_budget: 32 * MIB,
        }
    }
}

/// What every bucket's downloads share: the GET permits and the prefetch budget.
pub struct Downloads {
    rt: Handle,
    limits: Limits,
    gets: Arc<Semaphore>,
    ranged: Arc<Semaphore>,
    /// In KiB, so that a budget of any size fits the semaphore's permit count.
    budget: Arc<Semaphore>,
}

impl Downloads {
    pub fn new(rt: Handle, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            rt,
            limits,
            gets: Arc::new(Semaphore::new(limits.transfers)),
            ranged: Arc::new(Semaphore::new(limits.ranged_objects.max(1))),
            budget: Arc::new(Semaphore::new(kib(limits.prefetch_budget) as usize)),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Counters of one bucket's downloads, for its manifest entry.
#[derive(Debug, Default)]
pub struct Stats {
    /// Objects read by this backup (not reused from the parent).
    pub fetched: AtomicU64,
    /// Ranged GETs sent.
    pub ranged_gets: AtomicU64,
}

/// An object fetched ahead, with its share of the budget.
struct Prefetched {
    bytes: Bytes,
    _budget: OwnedSemaphorePermit,
}

type Slot = oneshot::Receiver<Result<Option<Prefetched>, BucketError>>;

struct Queued {
    object: Listed,
    path: String,
    tx: oneshot::Sender<Result<Option<Prefetched>, BucketError>>,
}

/// The downloads of one bucket source.
pub struct Fetcher {
    downloads: Arc<Downloads>,
    bucket: Arc<Bucket>,
    pub stats: Arc<Stats>,
    /// The first failed request: later objects are not requested.
    failed: OnceLock<String>,
    /// Objects to fetch ahead, in archiver order; taken by the first open.
    queue: Mutex<Option<Vec<Queued>>>,
}

impl Fetcher {
    pub fn new(downloads: Arc<Downloads>, bucket: Arc<Bucket>) -> Arc<Self> {
        Arc::new(Self {
            downloads,
            bucket,
            stats: Arc::default(),
            failed: OnceLock::new(),
            queue: Mutex::new(Some(Vec::new())),
        })
    }

    /// The opener of one object at snapshot path `path`. `prefetch`: the object is new or
    /// changed since the parent snapshot, so the archiver will read it, and it may be fetched
    /// ahead.
    pub fn opener(self: &Arc<Self>, object: Listed, path: String, prefetch: bool) -> Opener {
        let slot = (prefetch && object.size <= self.downloads.limits.prefetch_max)
            .then(|| {
                let (tx, rx) = oneshot::channel();
                let mut queue = self.queue.lock().expect("queue lock");
                let queue = queue.as_mut()?;
                queue.push(Queued {
                    object: object.clone(),
                    path: path.clone(),
                    tx,
                });
                Some(rx)
            })
            .flatten();
        let this = self.clone();
        Box::new(move || this.open(object, path, slot))
    }

    fn open(
        self: Arc<Self>,
        object: Listed,
        path: String,
        slot: Option<Slot>,
    ) -> io::Result<Box<dyn Read + Send>> {
        self.start_prefetch();
        self.stats.fetched.fetch_add(1, Ordering::Relaxed);
        if let Some(rx) = slot {
            match rx.blocking_recv() {
                Ok(Ok(Some(p))) => return Ok(Box::new(PrefetchedReader { p, at: 0 })),
                Ok(Ok(None)) => return Err(io::Error::other(Vanished(path))),
                Ok(Err(e)) => return Err(io::Error::other(e)),
                // The prefetch task is gone (the runtime shuts down): fetch it now.
                Err(_) => {}
            }
        }
        if let Some(e) = self.abandoned() {
            return Err(io::Error::other(e));
        }
        if object.size > self.downloads.limits.ranged_threshold {
            return self.open_ranged(object, path);
        }
        let rt = self.downloads.rt.clone();
        let permit = rt
            .block_on(self.downloads.gets.clone().acquire_owned())
            .expect("the GET semaphore is never closed");
        // If-Match: bytes rewritten after LIST would not match the listed size and ETag.
        let body = match rt.block_on(self.bucket.get(&object.key, Some(&object.etag))) {
            Ok(Some((_, body))) => body,
            Ok(None) => return Err(io::Error::other(Vanished(path))),
            Err(e) => return Err(io::Error::other(self.failure(e))),
        };
        // A task reads the body ahead of the archiver, a few chunks at most, so that the
        // download goes on while the archiver chunks and compresses; it holds the permit
        // until the body ends.
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(STREAM_CHUNKS_AHEAD);
        let this = self.clone();
        let task = rt.spawn(async move {
            let _permit = permit;
            let mut body = body;
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                let item = match chunk {
                    Ok(c) => {
                        read += c.len() as u64;
                        Ok(c)
                    }
                    Err(e) => Err(io::Error::other(this.failure(this.bucket.read_error(
                        &object.key,
                        read,
                        &e,
                    )))),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
            if read < object.size {
                let err = this.failure(this.short(&object.key, read, object.size));
                let _ = tx.send(Err(io::Error::other(err))).await;
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            chunk: Bytes::new(),
            task,
            _slot: None,
        }))
    }

    /// Records the first failure of this bucket and passes the error on.
    fn failure(&self, e: BucketError) -> BucketError {
        let _ = self.failed.set(e.to_string());
        e
    }

    /// The error for a request not sent because an earlier request to this bucket failed.
    fn abandoned(&self) -> Option<BucketError> {
        self.failed.get().map(|first| BucketError::Abandoned {
            source_name: self.bucket.source.clone(),
            bucket: self.bucket.bucket.clone(),
            endpoint: self.bucket.endpoint.clone(),
            first: first.clone(),
        })
    }

    /// Starts fetching the queued objects ahead, once; later opens find the queue taken.
    fn start_prefetch(self: &Arc<Self>) {
        let Some(mut queue) = self.queue.lock().expect("queue lock").take() else {
            return;
        };
        // The archiver reads files in path order, component by component.
        queue.sort_by(|a, b| std::path::Path::new(&a.path).cmp(std::path::Path::new(&b.path)));
        if queue.is_empty() {
            return;
        }
        let this = self.clone();
        let ahead = self.downloads.limits.transfers;
        self.downloads.rt.spawn(async move {
            futures::stream::iter(queue)
                .for_each_concurrent(ahead, |q| {
                    let this = this.clone();
                    async move {
                        if q.tx.is_closed() {
                            return; // reused from the parent snapshot
                        }
                        let budget = this
                            .downloads
                            .budget
                            .clone()
                            .acquire_many_owned(kib(q.object.size))
                            .await
                            .expect("the budget semaphore is never closed");
                        if q.tx.is_closed() {
                            return;
                        }
                        let got = this.get_whole(&q.object).await.map(|b| {
                            b.map(|bytes| Prefetched {
                                bytes,
                                _budget: budget,
                            })
                        });
                        if let Err(e) = &got {
                            tracing::debug!(path = %q.path, error = %e, "prefetch failed");
                        }
                        let _ = q.tx.send(got);
                    }
                })
                .await;
        });
    }

    /// One whole object into memory; `None` when it vanished or was rewritten.
    async fn get_whole(&self, o: &Listed) -> Result<Option<Bytes>, BucketError> {
        if let Some(e) = self.abandoned() {
            return Err(e);
        }
        let _permit = self.downloads.gets.acquire().await.expect("never closed");
        if let Some(e) = self.abandoned() {
            return Err(e);
        }
        let Some((_, body)) = self
            .bucket
            .get(&o.key, Some(&o.etag))
            .await
            .map_err(|e| self.failure(e))?
        else {
            return Ok(None);
        };
        let bytes = collect(body, &self.bucket, &o.key)
            .await
            .map_err(|e| self.failure(e))?;
        if bytes.len() as u64 != o.size {
            return Err(self.failure(self.short(&o.key, bytes.len() as u64, o.size)));
        }
        Ok(Some(bytes))
    }

    fn short(&self, key: &str, got: u64, want: u64) -> BucketError {
        BucketError::Request {
            source_name: self.bucket.source.clone(),
            op: "get",
            bucket: self.bucket.bucket.clone(),
            key: key.to_string(),
            endpoint: self.bucket.endpoint.clone(),
            detail: format!("received {got} of {want} bytes"),
        }
    }

    /// One part of an object, `first..=last`; `None` when the object vanished or was rewritten.
    async fn get_part(
        &self,
        o: &Listed,
        first: u64,
        last: u64,
    ) -> Result<Option<Bytes>, BucketError> {
        if let Some(e) = self.abandoned() {
            return Err(e);
        }
        let _permit = self.downloads.gets.acquire().await.expect("never closed");
        if let Some(e) = self.abandoned() {
            return Err(e);
        }
        self.stats.ranged_gets.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .bucket
            .client
            .get_object()
            .bucket(&self.bucket.bucket)
            .key(&o.key)
            .range(format!("bytes={first}-{last}"));
        if !o.etag.is_empty() {
            req = req.if_match(&o.etag);
        }
        let body = match req.send().await {
            Ok(out) => out.body,
            Err(SdkError::ServiceError(ctx))
                if ctx.err().is_no_such_key()
                    || matches!(ctx.raw().status().as_u16(), 404 | 412) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.failure(self.bucket.error("get", &o.key, &e))),
        };
        let bytes = collect(body, &self.bucket, &o.key)
            .await
            .map_err(|e| self.failure(e))?;
        let want = last - first + 1;
        if bytes.len() as u64 != want {
            return Err(self.failure(self.short(&o.key, bytes.len() as u64, want)));
        }
        Ok(Some(bytes))
    }

    /// Starts the ranged GETs of a large object and waits for its first part, so that an
    /// object that is gone is reported as vanished before the archiver reads anything.
    fn open_ranged(
        self: Arc<Self>,
        object: Listed,
        path: String,
    ) -> io::Result<Box<dyn Read + Send>> {
        let limits = self.downloads.limits;
        // Held by the reader: the archiver thread waits here while enough large objects are
        // being read; each of those progresses on its own thread, so the wait ends.
        let slot = self
            .downloads
            .rt
            .block_on(self.downloads.ranged.clone().acquire_owned())
            .expect("the ranged semaphore is never closed");
        let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(1);
        let this = self.clone();
        let o = object.clone();
        let vanished_path = path.clone();
        let task = self.downloads.rt.spawn(async move {
            let part = limits.part_size;
            let ranges = (0..o.size.div_ceil(part))
                .map(|i| (i * part, ((i + 1) * part).min(o.size) - 1))
                .collect::<Vec<_>>();
            let mut parts = futures::stream::iter(ranges)
                .map(|(first, last)| {
                    let this = this.clone();
                    let o = o.clone();
                    async move { this.get_part(&o, first, last).await }
                })
                .buffered(limits.parts_ahead.max(1));
            while let Some(part) = parts.next().await {
                let item = match part {
                    Ok(Some(bytes)) => Ok(bytes),
                    // Rewritten or deleted while it was read: the next backup takes it.
                    Ok(None) => Err(io::Error::other(Vanished(vanished_path.clone()))),
                    Err(e) => Err(io::Error::other(e)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let first = match rx.blocking_recv() {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Err(e),
            None => return Err(io::Error::other(self.short(&object.key, 0, object.size))),
        };
        Ok(Box::new(ChannelReader {
            rx,
            chunk: first,
            task,
            _slot: Some(slot),
        }))
    }
}

impl Bucket {
    /// Starts a GET of one object; `Ok(None)` when it no longer exists, or, with `if_match`,
    /// when it was rewritten since it was listed (its listed size and ETag would be wrong).
    pub async fn get(
        &self,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<Option<(u64, ByteStream)>, BucketError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(etag) = if_match.filter(|e| !e.is_empty()) {
            req = req.if_match(etag);
        }
        match req.send().await {
            Ok(out) => Ok(Some((
                out.content_length().unwrap_or(0).max(0) as u64,
                out.body,
            ))),
            Err(SdkError::ServiceError(ctx))
                if ctx.err().is_no_such_key()
                    || matches!(ctx.raw().status().as_u16(), 404 | 412) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("get", key, &e)),
        }
    }
}

/// A whole GET body into memory.
async fn collect(mut body: ByteStream, bucket: &Bucket, key: &str) -> Result<Bytes, BucketError> {
    let mut parts: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| bucket.read_error(key, len as u64, &e))?;
        len += chunk.len();
        parts.push(chunk);
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => {
            let mut all = Vec::with_capacity(len);
            for p in parts {
                all.extend_from_slice(&p);
            }
            Bytes::from(all)
        }
    })
}

struct PrefetchedReader {
    p: Prefetched,
    at: usize,
}

impl Read for PrefetchedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.p.bytes[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// A sync [`Read`] for archiver threads over bytes that a task sends in order (the chunks of
/// a GET body, or the parts of a ranged read); stops the task when dropped.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
    task: tokio::task::JoinHandle<()>,
    /// A ranged read's place among the large objects read at once.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(part)) => self.chunk = part,
                Some(Err(e)) => return Err(e),
                // All handed over; the checked reader compares the length.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}
