//! `bucket::`: the configured `[[buckets]]` sources, listed and probed through the same
//! `buckets::Bucket` client a backup lists them with.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module};

use super::{func, known_options, opt_count, Host, Res};
use crate::buckets::{self, Bucket};
use crate::runbook::steps::error;

/// The objects a listing returns unless told otherwise.
const DEFAULT_LIMIT: usize = 1000;

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "list",
        &["source: &str", "prefix: &str", "Array"],
        "The objects under `prefix` (empty: the whole bucket) of a `[[buckets]]` source's \
         bucket, by key: maps of `key`, `size`, `etag` (without quotes) and `last_modified`. At \
         most 1000 are returned; when there were more, the step's journal says so.",
        r#"for o in bucket::list("kfp", "pipelines/") { info(`${o.key}: ${o.size} bytes`); }"#,
    )
    .set_into_module(&mut m, move |source: &str, prefix: &str| {
        list(&h, source, prefix, &Map::new())
    });
    let h = host.clone();
    func(
        "list",
        &["source: &str", "prefix: &str", "options: Map", "Array"],
        "A listing with options: `limit`, the most objects to return (1000 by default).",
        r#"let first = bucket::list("kfp", "v2/artifacts/", #{ limit: 10 });"#,
    )
    .set_into_module(&mut m, move |source: &str, prefix: &str, o: Map| {
        list(&h, source, prefix, &o)
    });
    let h = host.clone();
    func(
        "exists",
        &["source: &str", "key: &str", "bool"],
        "Whether the object `key` is in a `[[buckets]]` source's bucket. A missing bucket or \
         refused credentials fail the step rather than read as false.",
        r#"ensure(bucket::exists("kfp", "pipelines/p1"), "the pipeline's spec is gone");"#,
    )
    .set_into_module(&mut m, move |source: &str, key: &str| {
        exists(&h, source, key)
    });
    m
}

/// A client for a configured source's bucket, with its credentials read as a backup reads them.
fn bucket(h: &Host, call: &str, source: &str) -> Res<Bucket> {
    let sources = &h.config().buckets;
    let src = sources.iter().find(|b| b.name == source).ok_or_else(|| {
        let names: Vec<&str> = sources.iter().map(|b| b.name.as_str()).collect();
        error(format!(
            "{call}: no [[buckets]] source `{source}` in the config; it has: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    buckets::connect(h.rt()?, src, &src.bucket).map_err(|e| error(format!("{call}: {e:#}")))
}

fn list(h: &Host, source: &str, prefix: &str, o: &Map) -> Res<Array> {
    known_options("bucket::list", o, &["limit"])?;
    let limit = opt_count(o, "limit")?.unwrap_or(DEFAULT_LIMIT);
    let b = bucket(h, "bucket::list", source)?;
    let (objects, more) = h.block(async { b.list_first(prefix, limit).await })?;
    if more {
        h.note(format!(
            "bucket::list on {source}/{prefix}: there are more than {limit} objects; only the first {limit} are returned (raise `limit` in its options)"
        ));
    }
    Ok(objects
        .into_iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("key".into(), o.key.into());
            m.insert(
                "size".into(),
                Dynamic::from(i64::try_from(o.size).unwrap_or(i64::MAX)),
            );
            m.insert("etag".into(), o.etag.trim_matches('"').into());
            m.insert("last_modified".into(), o.last_modified.to_string().into());
            Dynamic::from_map(m)
        })
        .collect())
}

fn exists(h: &Host, source: &str, key: &str) -> Res<bool> {
    let b = bucket(h, "bucket::exists", source)?;
    h.block(async { b.exists(key).await })
}
