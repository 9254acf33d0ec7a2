//! Artifact buckets on the local S3 server: round trip with awkward keys, incremental backups
//! that download only changed objects, and clear failures.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::noise;
use common::proxy::{Faults, Proxy};
use common::{code, create_bucket, error_line, s3_endpoint, unique_bucket, Kf};
use sha2::{Digest, Sha256};

mod failures;
mod incremental;
mod races;
mod round_trip;
mod transfers;
struct S3 {
    rt: tokio::runtime::Runtime,
    client: Client,
}

struct Obj {
    body: Vec<u8>,
    content_type: Option<String>,
    metadata: HashMap<String, String>,
}

impl S3 {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(common::s3_client());
        Self { rt, client }
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8], ct: Option<&str>, meta: &[(&str, &str)]) {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        if let Some(ct) = ct {
            req = req.content_type(ct);
        }
        for (k, v) in meta {
            req = req.metadata(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                for o in p.unwrap().contents() {
                    keys.push(o.key().unwrap().to_string());
                }
            }
            keys
        })
    }

    fn get(&self, bucket: &str, key: &str) -> Obj {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
            let content_type = out.content_type().map(str::to_string);
            let metadata = out.metadata().cloned().unwrap_or_default();
            let body = out.body.collect().await.unwrap().into_bytes().to_vec();
            Obj {
                body,
                content_type,
                metadata,
            }
        })
    }

    /// Uploads a file from disk, streamed: large objects never sit in test memory.
    fn put_file(&self, bucket: &str, key: &str, file: &std::path::Path, meta: &[(&str, &str)]) {
        self.rt.block_on(async {
            let mut req = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_path(file).await.unwrap());
            for (k, v) in meta {
                req = req.metadata(*k, *v);
            }
            req.send()
                .await
                .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
        });
    }

    /// Size, SHA-256 and user metadata of an object, read as a stream.
    fn digest(&self, bucket: &str, key: &str) -> (u64, [u8; 32], HashMap<String, String>) {
        self.rt.block_on(async {
            let mut out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
            let metadata = out.metadata().cloned().unwrap_or_default();
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(chunk) = out.body.next().await {
                let chunk = chunk.unwrap();
                n += chunk.len() as u64;
                h.update(&chunk);
            }
            (n, h.finalize().into(), metadata)
        })
    }

    fn all(&self, bucket: &str) -> BTreeMap<String, Obj> {
        self.all_but(bucket, &[])
    }

    /// Every object but the `skip` keys, read into memory.
    fn all_but(&self, bucket: &str, skip: &[&str]) -> BTreeMap<String, Obj> {
        self.keys(bucket)
            .into_iter()
            .filter(|k| !skip.contains(&k.as_str()))
            .map(|k| {
                let o = self.get(bucket, &k);
                (k, o)
            })
            .collect()
    }
}

fn bucket_config(kf: &Kf, bucket: &str) {
    bucket_config_at(kf, bucket, &s3_endpoint(), "AWS_ACCESS_KEY_ID");
}

/// A bucket source `kfp` at `endpoint`, whose access key id is read from the variable `key_env`.
fn bucket_config_at(kf: &Kf, bucket: &str, endpoint: &str, key_env: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "[[buckets]]\nname = \"kfp\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"{key_env}\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
        ),
    );
}

/// Writes `len` pseudo-random bytes to a file, 1 MiB at a time; returns their SHA-256.
fn pseudo_random_file(path: &std::path::Path, len: u64, seed: u64) -> [u8; 32] {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut x = seed | 1;
    let mut left = len;
    let mut buf = vec![0u8; 1024 * 1024];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for word in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    h.finalize().into()
}

fn weird_keys() -> Vec<String> {
    vec![
        "a//b".into(),
        "../x".into(),
        "./y".into(),
        "dir/".into(),
        "dir/inside.txt".into(),
        "plain".into(),
        "plain/child".into(),
        format!("long/{}", "s".repeat(300)),
        format!("long/{}/tail", "ü".repeat(200)),
        "with space/and %20 percent%.txt".into(),
        "ünïcødé/日本語.json".into(),
        "a/./b/../c".into(),
        "trailing dot./x".into(),
    ]
}

fn bucket_manifest(v: &serde_json::Value) -> &serde_json::Value {
    &v["manifest"]["buckets"][0]
}
