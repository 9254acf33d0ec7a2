//! S3 repository backend: `rustic_core`'s `ReadBackend`/`WriteBackend` on `aws-sdk-s3`; the
//! client it shares with the artifact buckets is built in `client.rs`.
//!
//! Objects use restic's S3 layout (`<prefix>/config`, `<prefix>/keys/<id>`,
//! `<prefix>/data/<id[..2]>/<id>`, ...) so that stock `restic` can read the repository.

use std::{
    error::Error as StdError,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    Client,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use tokio::runtime::Handle;
use tracing::{debug, trace, warn};

mod client;
pub use client::{client, S3Settings};

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

// The probe runs before anything else, so it gets a much tighter budget than
// regular operations: a dead or blackholed endpoint must be reported in seconds.
const PROBE_MAX_ATTEMPTS: u32 = 2;
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
const PROBE_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors with one-line messages that name the problem, the place, and what to try.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("invalid S3 repository URL `{url}`: expected s3://BUCKET[/PREFIX]")]
    InvalidUrl { url: String },
    #[error(
        "bucket `{bucket}` does not exist at {endpoint}: create it first or fix repository.url"
    )]
    BucketMissing { bucket: String, endpoint: String },
    #[error("cannot reach S3 endpoint {endpoint}: {detail}; check repository.s3.endpoint and that the server is running")]
    Unreachable { endpoint: String, detail: String },
    #[error("access denied to bucket `{bucket}`: check the S3 credentials (repository.s3.access_key_id_env / secret_access_key_env)")]
    AccessDenied { bucket: String },
    #[error("S3 {op} of `{key}` failed: {detail}")]
    Request {
        op: &'static str,
        key: String,
        detail: String,
    },
}

/// Parse `s3://bucket/some/prefix` (prefix may be empty; strip leading/trailing '/').
///
/// # Errors
///
/// [`S3Error::InvalidUrl`] if `url` is not of the form `s3://BUCKET[/PREFIX]`.
pub fn parse_url(url: &str) -> Result<(String, String), S3Error> {
    let invalid = || S3Error::InvalidUrl {
        url: crate::config::redact_url(url),
    };
    let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !bucket_ok {
        return Err(invalid());
    }
    // Like restic, tolerate doubled slashes; refuse relative segments.
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| matches!(*s, "." | "..")) {
        return Err(invalid());
    }
    Ok((bucket.to_string(), segments.join("/")))
}

/// `rel` below `prefix`, without a leading slash when the prefix is empty.
fn join_key(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// Object key of a repository file in restic's S3 layout.
fn object_key(prefix: &str, tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    let rel = match tpe {
        FileType::Config => "config".to_string(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], &*hex),
        _ => format!("{}/{}", tpe.dirname(), &*hex),
    };
    join_key(prefix, &rel)
}

/// A restic repository stored in an S3 bucket under a prefix.
#[derive(Clone, Debug)]
pub struct S3Backend {
    client: Client,
    bucket: String,
    prefix: String,
    handle: Handle,
    /// Scheme and authority of the endpoint actually used, recorded from the
    /// first request (the client does not expose its endpoint), for messages.
    endpoint: Arc<OnceLock<String>>,
}

impl S3Backend {
    /// `handle` must belong to a multi-threaded tokio runtime that outlives the backend.
    #[must_use]
    pub fn new(client: Client, bucket: String, prefix: String, handle: Handle) -> Self {
        Self {
            client,
            bucket,
            prefix: prefix.trim_matches('/').to_string(),
            handle,
            endpoint: Arc::default(),
        }
    }

    /// Fail fast with a typed, one-line error if the bucket cannot be listed.
    ///
    /// Uses `ListObjectsV2` (max 1 key) under the prefix rather than `HeadBucket`:
    /// it needs exactly the permission the repository needs, which also works
    /// with prefix-scoped bucket policies. Same calling rules as the trait methods.
    ///
    /// # Errors
    ///
    /// [`S3Error::BucketMissing`], [`S3Error::AccessDenied`], [`S3Error::Unreachable`]
    /// or, for anything else, [`S3Error::Request`].
    pub fn probe(&self) -> Result<(), S3Error> {
        let configured = self.client.config().timeout_config();
        let connect = configured
            .and_then(TimeoutConfig::connect_timeout)
            .map_or(PROBE_CONNECT_TIMEOUT, |t| t.min(PROBE_CONNECT_TIMEOUT));
        let budget = aws_sdk_s3::config::Builder::default()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(PROBE_MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect)
                    .operation_attempt_timeout(PROBE_ATTEMPT_TIMEOUT)
                    .operation_timeout(PROBE_OPERATION_TIMEOUT)
                    .build(),
            );
        let prefix = self.dir_prefix("");
        let result = self.block_on(
            self.client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_prefix((!prefix.is_empty()).then(|| prefix.clone()))
                .max_keys(1)
                .customize()
                .config_override(budget)
                .mutate_request(self.endpoint_recorder())
                .send(),
        );
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                debug!(bucket = %self.bucket, error = %DisplayErrorContext(&err), "S3 probe failed");
                Err(self.classify("list", &self.location(), &err))
            }
        }
    }

    /// Writes a file kfguard keeps beside the repository, at `<prefix>/<rel>`; stock restic
    /// lists only its own folders, so it never sees it.
    pub fn put_side_file(&self, rel: &str, body: Vec<u8>) -> Result<(), S3Error> {
        let key = join_key(&self.prefix, rel);
        self.put(&key, ByteStream::from(body), |err| {
            self.classify("put", &key, err)
        })
    }

    /// Reads a file beside the repository; `None` when there is none.
    pub fn get_side_file(&self, rel: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let key = join_key(&self.prefix, rel);
        let out = self.block_on(async {
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .customize()
                .mutate_request(self.endpoint_recorder())
                .send()
                .await
            {
                Ok(o) => o
                    .body
                    .collect()
                    .await
                    .map(|b| Some(b.into_bytes().to_vec()))
                    .map_err(|e| S3Error::Request {
                        op: "get",
                        key: key.clone(),
                        detail: one_line(&e.to_string()),
                    }),
                Err(SdkError::ServiceError(ctx)) if ctx.err().is_no_such_key() => Ok(None),
                Err(err) => Err(self.classify("get", &key, &err)),
            }
        });
        out
    }

    /// The files beside the repository under `<prefix>/<rel_dir>`, as paths relative to the
    /// prefix, following continuation tokens.
    pub fn list_side_files(&self, rel_dir: &str) -> Result<Vec<String>, S3Error> {
        let dir = self.dir_prefix(rel_dir);
        let strip = self.dir_prefix("");
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&dir)
                        .set_continuation_token(token.take())
                        .customize()
                        .mutate_request(self.endpoint_recorder())
                        .send(),
                )
                .map_err(|err| self.classify("list", &dir, &err))?;
            out.extend(page.contents().iter().filter_map(|o| {
                o.key()
                    .map(|k| k.strip_prefix(strip.as_str()).unwrap_or(k).to_string())
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => {
                    token = Some(next.to_string());
                }
                _ => return Ok(out),
            }
        }
    }

    /// One PUT of a whole object; `fail` turns the SDK's (large) error into the caller's.
    fn put<E>(
        &self,
        key: &str,
        body: ByteStream,
        fail: impl FnOnce(&SdkError<PutObjectError, HttpResponse>) -> E,
    ) -> Result<(), E> {
        self.block_on(
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body)
                .customize()
                .mutate_request(self.endpoint_recorder())
                .send(),
        )
        .map(|_| ())
        .map_err(|err| fail(&err))
    }

    /// Runs `fut` on the runtime and waits for it.
    ///
    /// `rustic_core`'s backend traits are synchronous and are called from plain
    /// threads (the main thread and rayon workers), so blocking is fine there.
    /// Callers must NOT call any backend method from inside a tokio worker
    /// thread (or any async context): `Handle::block_on` panics there.
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.handle.block_on(fut)
    }

    fn key(&self, tpe: FileType, id: &Id) -> String {
        object_key(&self.prefix, tpe, id)
    }

    /// `<prefix>/<dir>/` (or `<prefix>/` for an empty dir, or "" at the bucket root).
    fn dir_prefix(&self, dir: &str) -> String {
        let rel = join_key(&self.prefix, dir);
        if rel.is_empty() {
            rel
        } else {
            format!("{}/", rel.trim_end_matches('/'))
        }
    }

    fn endpoint_recorder(&self) -> impl Fn(&mut HttpRequest) + Send + Sync + 'static {
        let cell = Arc::clone(&self.endpoint);
        move |req: &mut HttpRequest| {
            if cell.get().is_none() {
                let _ = cell.set(origin(req.uri()));
            }
        }
    }

    fn endpoint_label(&self) -> String {
        self.endpoint.get().cloned().unwrap_or_else(|| {
            let region = self.client.config().region().map(ToString::to_string);
            format!("S3 (region {})", region.as_deref().unwrap_or("unset"))
        })
    }

    /// Maps an SDK error to the typed, one-line [`S3Error`].
    fn classify<E>(&self, op: &'static str, key: &str, err: &SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        match err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                let code = ctx.err().code();
                if code == Some("NoSuchBucket") || (status == 404 && op == "list") {
                    S3Error::BucketMissing {
                        bucket: self.bucket.clone(),
                        endpoint: self.endpoint_label(),
                    }
                } else if status == 403 && code != Some("RequestTimeTooSkewed") {
                    S3Error::AccessDenied {
                        bucket: self.bucket.clone(),
                    }
                } else {
                    S3Error::Request {
                        op,
                        key: key.to_string(),
                        detail: detail(err),
                    }
                }
            }
            SdkError::TimeoutError(_) => S3Error::Unreachable {
                endpoint: self.endpoint_label(),
                detail: detail(err),
            },
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                S3Error::Unreachable {
                    endpoint: self.endpoint_label(),
                    detail: detail(err),
                }
            }
            _ => S3Error::Request {
                op,
                key: key.to_string(),
                detail: detail(err),
            },
        }
    }

    /// Wraps a failed request as the `RusticError` the backend traits return.
    fn rustic_error<E>(
        &self,
        op: &'static str,
        key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> Box<RusticError>
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        debug!(op, key, error = %DisplayErrorContext(err), "S3 request failed");
        let source = self.classify(op, key, err);
        RusticError::with_source(
            ErrorKind::Backend,
            "S3 {op} of `{key}` in bucket `{bucket}` failed.",
            source,
        )
        .attach_context("op", op)
        .attach_context("key", key)
        .attach_context("bucket", self.bucket.clone())
    }

    async fn get(&self, key: &str, range: Option<String>) -> RusticResult<Bytes> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .customize()
            .mutate_request(self.endpoint_recorder())
            .send()
            .await
            .map_err(|err| self.rustic_error("get", key, &err))?;
        let body = output.body.collect().await.map_err(|err| {
            RusticError::with_source(
                ErrorKind::Backend,
                "Reading the body of S3 object `{key}` in bucket `{bucket}` failed.",
                err,
            )
            .attach_context("key", key)
            .attach_context("bucket", self.bucket.clone())
        })?;
        Ok(body.into_bytes())
    }

    /// Size of `key`, or `None` if it does not exist.
    async fn head(&self, key: &str) -> RusticResult<Option<i64>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .mutate_request(self.endpoint_recorder())
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.content_length().unwrap_or_default())),
            Err(SdkError::ServiceError(ctx)) if ctx.err().is_not_found() => Ok(None),
            Err(err) => Err(self.rustic_error("head", key, &err)),
        }
    }

    /// All `(key, size)` below `prefix`, following continuation tokens.
    async fn list_objects(&self, prefix: &str) -> RusticResult<Vec<(String, i64)>> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .customize()
                .mutate_request(self.endpoint_recorder())
                .send()
                .await;
            let page = page.map_err(|err| self.rustic_error("list", prefix, &err))?;
            objects.extend(
                page.contents().iter().filter_map(|obj| {
                    Some((obj.key()?.to_string(), obj.size().unwrap_or_default()))
                }),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => {
                    token = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(objects)
    }
}

/// `scheme://authority` of a request URI.
fn origin(uri: &str) -> String {
    let after_scheme = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[after_scheme..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| after_scheme + i);
    uri[..end].to_string()
}

/// A short, single-line description of a failed request (full context goes to the debug log).
fn detail<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            match (ctx.err().code(), ctx.err().message()) {
                (Some(code), Some(message)) => format!("HTTP {status} {code}: {message}"),
                (Some(code), None) => format!("HTTP {status} {code}"),
                _ => format!("HTTP {status}"),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".to_string(),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            "connection timed out".to_string()
        }
        _ => io_detail(err).unwrap_or_else(|| error_chain(err)),
    }
}

/// Names the underlying I/O failure (e.g. "connection refused"), if there is one.
fn io_detail(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return Some(match io.kind() {
                K::ConnectionRefused => "connection refused".to_string(),
                K::ConnectionReset => "connection reset".to_string(),
                K::ConnectionAborted => "connection aborted".to_string(),
                K::TimedOut => "connection timed out".to_string(),
                _ => one_line(&io.to_string()),
            });
        }
        current = e.source();
    }
    None
}

/// The error and its sources joined with ": ", skipping repeated messages.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = one_line(&e.to_string());
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3:{}", self.bucket)
        } else {
            format!("s3:{}/{}", self.bucket, self.prefix)
        }
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        trace!(?tpe, "listing");
        if tpe == FileType::Config {
            // Like rustic's local backend: the config "id" is the zero Id.
            let key = self.key(tpe, &Id::default());
            return Ok(match self.block_on(self.head(&key))? {
                Some(size) => vec![(Id::default(), u32::try_from(size).unwrap_or_default())],
                None => Vec::new(),
            });
        }
        let objects = self.block_on(self.list_objects(&self.dir_prefix(tpe.dirname())))?;
        Ok(objects
            .into_iter()
            .filter_map(|(key, size)| {
                let name = key.rsplit('/').next().unwrap_or_default();
                let id = Id::parse_some(name, tpe)?;
                let size = u32::try_from(size)
                    .inspect_err(|_| warn!(key, size, "skipping S3 object larger than 4 GiB"))
                    .ok()?;
                Some((id, size))
            })
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let key = self.key(tpe, id);
        trace!(key, "reading");
        self.block_on(self.get(&key, None))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let key = self.key(tpe, id);
        trace!(key, offset, length, "reading range");
        if length == 0 {
            return Ok(Bytes::new());
        }
        let last = u64::from(offset) + u64::from(length) - 1;
        let bytes = self.block_on(self.get(&key, Some(format!("bytes={offset}-{last}"))))?;
        // A server that ignores or clips the range would silently hand us wrong data.
        if bytes.len() != length as usize {
            return Err(RusticError::new(
                ErrorKind::Backend,
                "S3 ranged read of `{key}` returned {got} bytes instead of {length}.",
            )
            .attach_context("key", key)
            .attach_context("got", bytes.len().to_string())
            .attach_context("length", length.to_string()));
        }
        Ok(bytes)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.key(tpe, id)
    }
}

impl WriteBackend for S3Backend {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let key = self.key(tpe, id);
        trace!(key, size = content.size(), "writing");
        let body = match content.slice() {
            [single] => single.clone(),
            parts => {
                let mut buf = BytesMut::with_capacity(content.size());
                for part in parts {
                    buf.extend_from_slice(part);
                }
                buf.freeze()
            }
        };
        self.put(&key, ByteStream::from(body), |err| {
            self.rustic_error("put", &key, err)
        })?;
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let key = self.key(tpe, id);
        trace!(key, "removing");
        self.block_on(
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .customize()
                .mutate_request(self.endpoint_recorder())
                .send(),
        )
        .map_err(|err| self.rustic_error("delete", &key, &err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> Id {
        hex.parse().unwrap()
    }

    const HEX: &str = "ab34567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn parse_url_accepts_bucket_and_prefix() {
        let ok = |url: &str| parse_url(url).unwrap();
        assert_eq!(ok("s3://bucket"), ("bucket".into(), String::new()));
        assert_eq!(ok("s3://bucket/"), ("bucket".into(), String::new()));
        assert_eq!(ok("s3://bucket/a/b"), ("bucket".into(), "a/b".into()));
        assert_eq!(ok("s3://bucket//a/b/"), ("bucket".into(), "a/b".into()));
        assert_eq!(
            ok("s3://my.bucket-1/kf"),
            ("my.bucket-1".into(), "kf".into())
        );
    }

    #[test]
    fn parse_url_rejects_garbage() {
        for url in [
            "",
            "bucket/prefix",
            "s3:bucket/prefix",
            "http://bucket/prefix",
            "s3://",
            "s3:///prefix",
            "s3://bu cket/x",
            "s3://bucket/../x",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(matches!(err, S3Error::InvalidUrl { .. }), "{url}");
            assert!(err.to_string().contains("expected s3://BUCKET[/PREFIX]"));
        }
    }

    #[test]
    fn key_layout_matches_restic() {
        let id = id(HEX);
        assert_eq!(object_key("kf", FileType::Config, &id), "kf/config");
        assert_eq!(
            object_key("kf", FileType::Key, &id),
            format!("kf/keys/{HEX}")
        );
        assert_eq!(
            object_key("a/b", FileType::Snapshot, &id),
            format!("a/b/snapshots/{HEX}")
        );
        assert_eq!(
            object_key("kf", FileType::Index, &id),
            format!("kf/index/{HEX}")
        );
        assert_eq!(
            object_key("kf", FileType::Pack, &id),
            format!("kf/data/ab/{HEX}")
        );
        // No leading slash at the bucket root.
        assert_eq!(object_key("", FileType::Config, &id), "config");
        assert_eq!(
            object_key("", FileType::Pack, &id),
            format!("data/ab/{HEX}")
        );
    }

    #[test]
    fn helpers_produce_single_lines() {
        assert_eq!(
            origin("http://127.0.0.1:9000/bucket/key?x=1"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            origin("https://b.s3.amazonaws.com?list-type=2"),
            "https://b.s3.amazonaws.com"
        );
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        let err = S3Error::Unreachable {
            endpoint: "http://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        };
        assert!(!err.to_string().contains('\n'));
    }
}
