//! Artifact buckets on S3 endpoints: the client and its settings, and one-line errors that
//! name the bucket source, the bucket and the endpoint. Listing, key escaping, downloads and
//! uploads each have their own file; backup and restore only orchestrate them.

mod downloads;
mod keys;
mod listing;
mod uploads;

use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use crate::config::{self, BucketSource};
use crate::repo::s3::{self, S3Settings};
use crate::Usage;

pub use downloads::{Downloads, Fetcher, Limits, Stats};
pub use keys::{escape_key, etag_time, unescape, LEAF_SUFFIX, MAX_SEGMENT};
pub use listing::{Head, Listed};
pub use uploads::{multipart_threshold, part_size, upload_all, UploadError};

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
                Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "Forbidden")
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
    .map_err(Usage::new)?
    .map(Into::into);
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
