//! Listing a bucket, and the HEAD that reads an object's content-type and user metadata.

use std::collections::BTreeMap;

use rustic_core::jiff::Timestamp;

use super::{Bucket, BucketError};

/// What a HEAD tells beyond the listing.
#[derive(Debug, Clone)]
pub struct Head {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Timestamp,
}

impl Bucket {
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
                    out.insert(key.to_string(), listed(key, o));
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// The first `max` objects under `prefix`, in key order, and whether there were more:
    /// the pages stop once `max` are in, so a huge bucket is not listed whole.
    pub async fn list_first(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<(Vec<Listed>, bool), BucketError> {
        let page_size = i32::try_from(max.saturating_add(1).min(1000)).unwrap_or(1000);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("list", prefix, &e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(listed(key, o));
            }
        }
        Ok((out, false))
    }

    /// Whether an object exists; a missing bucket is an error, not `false`.
    pub async fn exists(&self, key: &str) -> Result<bool, BucketError> {
        match self.head(key).await {
            Some(r) => r.map(|_| true),
            // A HEAD's 404 does not say whether the object or the bucket is missing.
            None => self.probe().await.map(|()| false),
        }
    }

    /// One LIST of at most one key: fails clearly, before anything is uploaded, when the
    /// bucket does not exist or cannot be read.
    pub async fn probe(&self) -> Result<(), BucketError> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("list", "", &e))?;
        Ok(())
    }

    /// HEAD of one object; `None` when it no longer exists.
    pub async fn head(&self, key: &str) -> Option<Result<Head, BucketError>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Some(Ok(Head {
                content_type: h.content_type().map(str::to_string),
                metadata: h
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(aws_sdk_s3::error::SdkError::ServiceError(ctx))
                if ctx.raw().status().as_u16() == 404 =>
            {
                None
            }
            Err(e) => Some(Err(self.error("head", key, &e))),
        }
    }
}

fn listed(key: &str, o: &aws_sdk_s3::types::Object) -> Listed {
    let last_modified = o
        .last_modified()
        .and_then(|d| Timestamp::new(d.secs(), d.subsec_nanos() as i32).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Listed {
        key: key.to_string(),
        size: o.size().unwrap_or(0).max(0) as u64,
        etag: o.e_tag().unwrap_or_default().to_string(),
        last_modified,
    }
}
