//! S3 buckets as a backup source: reversible key escaping to snapshot paths, listing, GETs,
//! and one-line errors that name the source, the bucket and the endpoint.
//!
//! **Key escaping.** An S3 key is any UTF-8 string, but a snapshot path is a tree of named
//! segments. [`escape_key`] maps every key to a safe, unique, `/`-separated path and
//! [`unescape`] maps it back to the exact key. The key is split on `/` and each segment becomes:
//! - the empty segment (`a//b`, a leading `/`, the directory marker `a/`): `%-`;
//! - `.` and `..`: `%2E` and `%2E%2E`;
//! - otherwise the segment with `%`, control bytes and `\` percent-encoded (`%25`, `%0A`, …);
//!   spaces and non-ASCII characters stay as they are, so paths remain readable;
//! - a segment longer than [`MAX_SEGMENT`] bytes once escaped is split into several path
//!   segments, each but the last ending in the marker `%+` ("continues in the next segment").
//!
//! Since a literal `%` is always escaped, `%-`, `%+` and the collision marker `%!` (see
//! [`LEAF_SUFFIX`]) cannot come from a key. S3 allows both `a` and `a/b` as keys, which a tree
//! cannot hold as a file and a folder of the same name; the backup then appends `%!` to the
//! file's name, which [`unescape`] drops. The exact key is also stored in `index.jsonl`.

use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use rustic_core::jiff::Timestamp;

use crate::config::{self, BucketSource};
use crate::repo::s3::{self, S3Settings};
use crate::Usage;

/// Longest path segment produced, in bytes (file systems allow 255).
pub const MAX_SEGMENT: usize = 240;
/// Appended to an object's file name when a folder of the same name is needed.
pub const LEAF_SUFFIX: &str = "%!";
const EMPTY: &str = "%-";
const CONTINUES: &str = "%+";

/// The snapshot path (relative, `/`-separated) for an object key.
pub fn escape_key(key: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for seg in key.split('/') {
        let escaped = match seg {
            "" => EMPTY.to_string(),
            "." => "%2E".to_string(),
            ".." => "%2E%2E".to_string(),
            s => {
                let mut e = String::with_capacity(s.len());
                for c in s.chars() {
                    if c == '%' || c == '\\' || c.is_control() {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            e.push_str(&format!("%{b:02X}"));
                        }
                    } else {
                        e.push(c);
                    }
                }
                e
            }
        };
        split_long(&escaped, &mut out);
    }
    out.join("/")
}

/// Splits an escaped segment into pieces of at most [`MAX_SEGMENT`] bytes, never inside a
/// character or a `%XX` escape.
fn split_long(seg: &str, out: &mut Vec<String>) {
    if seg.len() <= MAX_SEGMENT {
        out.push(seg.to_string());
        return;
    }
    let limit = MAX_SEGMENT - CONTINUES.len();
    let mut rest = seg;
    while rest.len() > MAX_SEGMENT {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Do not cut a `%XX` escape: back up to its `%` when it straddles the cut.
        if let Some(p) = rest[..cut].rfind('%') {
            if p + 3 > cut {
                cut = p;
            }
        }
        out.push(format!("{}{CONTINUES}", &rest[..cut]));
        rest = &rest[cut..];
    }
    out.push(rest.to_string());
}

/// The object key for a snapshot path made by [`escape_key`]; `None` if it is not one.
pub fn unescape(path: &str) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut pending = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    let last = parts.len() - 1;
    for (i, raw) in parts.into_iter().enumerate() {
        let raw = if i == last {
            raw.strip_suffix(LEAF_SUFFIX).unwrap_or(raw)
        } else {
            raw
        };
        if let Some(piece) = raw.strip_suffix(CONTINUES) {
            pending.push_str(piece);
            continue;
        }
        pending.push_str(raw);
        let seg = std::mem::take(&mut pending);
        segments.push(if seg == EMPTY {
            String::new()
        } else {
            decode_segment(&seg)?
        });
    }
    if !pending.is_empty() {
        return None;
    }
    Some(segments.join("/"))
}

fn decode_segment(seg: &str) -> Option<String> {
    if seg.is_empty() || seg == "." || seg == ".." {
        return None;
    }
    super::percent_decode(seg)
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Timestamp,
}

/// A failed bucket request; every message names the source, the bucket and the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("bucket source `{source_name}`: bucket `{bucket}` does not exist at {endpoint}")]
    Missing {
        source_name: String,
        bucket: String,
        endpoint: String,
    },
    #[error("bucket source `{source_name}`: access to bucket `{bucket}` at {endpoint} was denied: check the source's credentials ({detail})")]
    Denied {
        source_name: String,
        bucket: String,
        endpoint: String,
        detail: String,
    },
    #[error("bucket source `{source_name}`: S3 {op} of `{key}` in bucket `{bucket}` at {endpoint} failed: {detail}")]
    Request {
        source_name: String,
        op: &'static str,
        bucket: String,
        key: String,
        endpoint: String,
        detail: String,
    },
    #[error("bucket source `{source_name}`: reading `{key}` from bucket `{bucket}` at {endpoint} failed after {after} bytes: {detail}")]
    Read {
        source_name: String,
        bucket: String,
        key: String,
        endpoint: String,
        after: u64,
        detail: String,
    },
    /// Later objects of a bucket after one request failed: not requested at all.
    #[error("bucket source `{source_name}`: not requested, after an earlier request to bucket `{bucket}` at {endpoint} failed ({first})")]
    Abandoned {
        source_name: String,
        bucket: String,
        endpoint: String,
        first: String,
    },
}

/// A bucket on one endpoint, with the client to reach it.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub client: Client,
    /// The bucket source's name in the config, for messages.
    pub source: String,
    pub bucket: String,
    /// For messages: the endpoint URL, or "AWS".
    pub endpoint: String,
}

impl Bucket {
    pub fn error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        op: &'static str,
        key: &str,
        err: &SdkError<E, R>,
    ) -> BucketError {
        let detail = one_line_detail(err);
        if let SdkError::ServiceError(ctx) = err {
            let code = ctx.err().code();
            if code == Some("NoSuchBucket") {
                return BucketError::Missing {
                    source_name: self.source.clone(),
                    bucket: self.bucket.clone(),
                    endpoint: self.endpoint.clone(),
                };
            }
            if matches!(
                code,
                Some("AccessDenied")
                    | Some("InvalidAccessKeyId")
                    | Some("SignatureDoesNotMatch")
                    | Some("Forbidden")
            ) {
                return BucketError::Denied {
                    source_name: self.source.clone(),
                    bucket: self.bucket.clone(),
                    endpoint: self.endpoint.clone(),
                    detail,
                };
            }
        }
        BucketError::Request {
            source_name: self.source.clone(),
            op,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    /// A GET body that broke off after `after` bytes.
    pub fn read_error(&self, key: &str, after: u64, err: &dyn std::error::Error) -> BucketError {
        let mut detail = err.to_string();
        let mut src = err.source();
        while let Some(e) = src {
            detail = format!("{detail}: {e}");
            src = e.source();
        }
        BucketError::Read {
            source_name: self.source.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            endpoint: self.endpoint.clone(),
            after,
            detail: detail.replace('\n', " "),
        }
    }

    /// Every object under the prefixes (empty: the whole bucket), sorted by key, without duplicates.
    pub async fn list(&self, prefixes: &[String]) -> Result<Vec<Listed>, BucketError> {
        let all = [String::new()];
        let prefixes = if prefixes.is_empty() {
            &all[..]
        } else {
            prefixes
        };
        let mut out = std::collections::BTreeMap::new();
        for prefix in prefixes {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.error("list", prefix, &e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let last_modified = o
                        .last_modified()
                        .and_then(|d| Timestamp::new(d.secs(), d.subsec_nanos() as i32).ok())
                        .unwrap_or(Timestamp::UNIX_EPOCH);
                    out.insert(
                        key.to_string(),
                        Listed {
                            key: key.to_string(),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            etag: o.e_tag().unwrap_or_default().to_string(),
                            last_modified,
                        },
                    );
                }
            }
        }
        Ok(out.into_values().collect())
    }

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

/// A one-line description of a failed request.
pub fn one_line_detail<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => "service error".to_string(),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".into(),
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s = format!("{s}: {e}");
                src = e.source();
            }
            s.replace('\n', " ")
        }
    }
}

/// A value derived from the ETag, stored as the node's ctime: the archiver reuses a parent's
/// content only when size, mtime and ctime all match, so a same-size rewrite within the same
/// second (same last-modified) is still read again.
pub fn etag_time(etag: &str) -> Timestamp {
    use sha2::Digest;
    let h = sha2::Sha256::digest(etag.as_bytes());
    let a = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let b = u32::from_be_bytes(h[8..12].try_into().expect("4 bytes"));
    // Seconds within about 190 years after the epoch: always a valid timestamp.
    let secs = (a % 6_000_000_000) as i64;
    let nanos = (b % 1_000_000_000) as i32;
    Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Shared handle for opener closures.
pub type SharedBucket = Arc<Bucket>;

/// Resolves a bucket source's connection settings.
pub fn settings(src: &BucketSource) -> anyhow::Result<S3Settings> {
    let access_key_id = config::read_secret(
        &format!("buckets.{}.access_key_id", src.name),
        src.access_key_id_env.as_deref(),
        src.access_key_id_file.as_deref(),
    )
    .map_err(Usage::new)?;
    let secret_access_key = config::read_secret(
        &format!("buckets.{}.secret_access_key", src.name),
        src.secret_access_key_env.as_deref(),
        src.secret_access_key_file.as_deref(),
    )
    .map_err(Usage::new)?;
    Ok(S3Settings {
        endpoint: src.endpoint.clone(),
        region: src.region.clone(),
        path_style: src.path_style.unwrap_or(src.endpoint.is_some()),
        access_key_id,
        secret_access_key,
        ..S3Settings::default()
    })
}

/// A client for a bucket source's bucket (or another bucket on the same endpoint).
pub fn connect(
    rt: &tokio::runtime::Handle,
    src: &BucketSource,
    bucket: &str,
) -> anyhow::Result<Bucket> {
    let settings = settings(src)?;
    let client = rt.block_on(s3::client(&settings));
    Ok(Bucket {
        client,
        source: src.name.clone(),
        bucket: bucket.to_string(),
        // Messages show the endpoint; never with credentials in it.
        endpoint: src
            .endpoint
            .as_deref()
            .map_or_else(|| "AWS".into(), crate::config::redact_url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let long = "x".repeat(700);
        let long_pct = "%".repeat(300);
        let long_uni = "é".repeat(400);
        for key in [
            "a",
            "a/b/c.json",
            "a//b",
            "../x",
            "./y",
            "dir/",
            "/lead",
            "",
            "/",
            "//",
            ".",
            "..",
            "a/./b/../c",
            "with space/and %25 percent%",
            "ünïcødé/日本語",
            "back\\slash",
            "tab\tnew\nline",
            "%-",
            "%+",
            "%!",
            long.as_str(),
            long_pct.as_str(),
            long_uni.as_str(),
        ] {
            let p = escape_key(key);
            for seg in p.split('/') {
                assert!(
                    !seg.is_empty() && seg != "." && seg != "..",
                    "{key:?} -> {p:?}"
                );
                assert!(seg.len() <= 255, "{key:?} -> {p:?}");
            }
            assert_eq!(unescape(&p).as_deref(), Some(key), "{key:?} -> {p:?}");
            assert_eq!(
                unescape(&format!("{p}{LEAF_SUFFIX}")).as_deref(),
                Some(key),
                "{key:?}"
            );
        }
        assert_ne!(escape_key("a//b"), escape_key("a/b"));
        assert_ne!(escape_key("a/"), escape_key("a"));
    }

    #[test]
    fn etag_time_is_stable_and_distinct() {
        assert_eq!(etag_time("\"abc\""), etag_time("\"abc\""));
        assert_ne!(etag_time("\"abc\""), etag_time("\"abd\""));
    }
}
