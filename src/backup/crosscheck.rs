//! Cross-check: resolve every artifact reference held by the dumped databases against the
//! objects of the buckets in the same snapshot.
//!
//! **Where the values come from.** Not from the live databases: the check reads exactly the
//! bytes that go into the snapshot. [`Collector`] taps the snapshot files on their way to the
//! archiver: each database's `schema.sql` (column positions from its `CREATE TABLE`), the data
//! parts of the tables below (MySQL `LOAD DATA` text or PostgreSQL `COPY` text: tab-separated,
//! `\N` for NULL, backslash escapes), and each bucket's `index.jsonl`. The report is computed
//! when the manifest is finalized, so it is stored in `kfguard.json` (`crosscheck`).
//!
//! **References**, in any dumped database:
//! - MLMD `Artifact.uri`: `minio://BUCKET/KEY`, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`;
//! - KFP `pipeline_versions.PipelineSpecURI`: the same schemes, or a bare key;
//! - KFP `run_details.WorkflowRuntimeManifest`: the Argo workflow JSON is scanned, without a
//!   regex, for `"key": "..."` string values (as in `"s3": {"key": "..."}`). Only values that
//!   contain a `/` count: artifact keys are paths, while secret and config-map selectors
//!   (`"key": "accesskey"`) are single words.
//!
//! BUCKET is matched by name against the configured bucket sources. A bare key belongs to the
//! default bucket: the only configured bucket name, or else `mlpipeline` when configured. A
//! reference is **resolved** when the key is an object of the snapshot, or a folder of objects
//! (`KEY/...`; KFP v2 artifacts are often folders). It is **unresolvable** when its bucket is
//! not configured, its scheme is another one, or its key lies outside every backed-up prefix;
//! otherwise it is **dangling**. An object that no resolved reference names (itself or a folder
//! above it) is an **orphan**: reported, but normal (KFP keeps logs and caches).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};

use crate::config::BucketSource;
use crate::engines::{mysql, table_from_stem};
use crate::snapshot::layout::{
    bucket_dir, IndexLine, BUCKET_INDEX as INDEX, DATABASES_ROOT as DB_ROOT,
};
use crate::snapshot::manifest::{BucketEntry, CrossCheck, Reference};
use crate::snapshot::tree::{FileStream, VirtualFile};

/// How many examples of each kind the report keeps.
pub const EXAMPLES: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `scheme://BUCKET/KEY`.
    Uri,
    /// A URI, or a key in the default bucket.
    UriOrKey,
    /// Argo workflow JSON holding `"key": "..."` values.
    Manifest,
}

/// Tables and columns that hold references.
const TARGETS: [(&str, &str, Kind); 3] = [
    ("Artifact", "uri", Kind::Uri),
    ("pipeline_versions", "PipelineSpecURI", Kind::UriOrKey),
    ("run_details", "WorkflowRuntimeManifest", Kind::Manifest),
];

/// One value found in a table: where, and what it refers to.
#[derive(Debug, Clone)]
struct Found {
    /// `<source>/<db>/<table>.<column>`.
    column: String,
    kind: Kind,
    value: String,
}

struct BucketInfo {
    name: String,
    prefixes: Vec<String>,
    keys: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    /// Database folder -> table -> position of the reference column in a data row.
    positions: HashMap<String, HashMap<String, usize>>,
    found: Vec<Found>,
    /// Bucket folder -> its bucket and objects.
    buckets: BTreeMap<String, BucketInfo>,
    /// Tables whose data parts were scanned, `<source>/<db>/<table>`.
    tables: BTreeSet<String>,
}

/// Gathers references and object keys from the files of a backup; cheap to clone.
#[derive(Clone)]
pub struct Collector(Arc<Mutex<State>>);

impl Collector {
    pub fn new(sources: &[BucketSource]) -> Self {
        let mut state = State::default();
        for s in sources {
            state.buckets.insert(
                bucket_dir(&s.name, &s.bucket),
                BucketInfo {
                    name: s.bucket.clone(),
                    prefixes: s.prefixes.clone(),
                    keys: BTreeSet::new(),
                },
            );
        }
        Self(Arc::new(Mutex::new(state)))
    }

    /// Reads `schema.sql` and `index.jsonl` files in passing; other files are returned as is.
    pub fn tap_file(&self, f: VirtualFile) -> VirtualFile {
        let schema = f.path.starts_with(&format!("{DB_ROOT}/")) && f.path.ends_with("/schema.sql");
        let index = f.path.ends_with(&format!("/{INDEX}"))
            && self
                .lock()
                .buckets
                .contains_key(f.path.trim_end_matches(&format!("/{INDEX}")));
        if !schema && !index {
            return f;
        }
        let (f, bytes) = contents(f);
        let Some(bytes) = bytes else {
            return f;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut st = self.lock();
        if schema {
            let dir = f.path.trim_end_matches("/schema.sql").to_string();
            let mut positions = HashMap::new();
            for (table, columns) in create_tables(&text) {
                if let Some((_, col, _)) = TARGETS.iter().find(|t| t.0 == table) {
                    if let Some(i) = columns.iter().position(|c| c == col) {
                        positions.insert(table, i);
                    }
                }
            }
            st.positions.insert(dir, positions);
        } else {
            let dir = f.path.trim_end_matches(&format!("/{INDEX}")).to_string();
            if let Some(b) = st.buckets.get_mut(&dir) {
                b.keys.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<IndexLine>(l).ok())
                        .map(|l| l.key),
                );
            }
        }
        drop(st);
        f
    }

    /// Scans the data parts of the reference tables as the archiver reads them.
    pub fn tap_stream(&self, stream: FileStream) -> FileStream {
        let this = self.clone();
        Box::new(stream.map(move |item| item.map(|f| this.scan_part(f))))
    }

    fn scan_part(&self, f: VirtualFile) -> VirtualFile {
        let Some((dir, table, ext)) = part_table(&f.path) else {
            return f;
        };
        let Some((_, col, kind)) = TARGETS.iter().find(|t| t.0 == table) else {
            return f;
        };
        let Some(pos) = self
            .lock()
            .positions
            .get(&dir)
            .and_then(|p| p.get(&table))
            .copied()
        else {
            return f;
        };
        let (f, bytes) = contents(f);
        let Some(bytes) = bytes else {
            return f;
        };
        let rel = dir.strip_prefix(&format!("{DB_ROOT}/")).unwrap_or(&dir);
        let column = format!("{rel}/{table}.{col}");
        let mut found = Vec::new();
        for row in bytes.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
            let Some(field) = row.split(|&b| b == b'\t').nth(pos) else {
                continue;
            };
            // Each engine's parts are decoded by the inverse of its own encoder.
            let value = if ext == mysql::PART_EXT {
                mysql::decode_field(field)
            } else {
                unescape_field(field)
            };
            let Some(value) = value else {
                continue;
            };
            let value = String::from_utf8_lossy(&value).into_owned();
            if *kind == Kind::Manifest {
                for key in manifest_keys(&value) {
                    found.push(Found {
                        column: column.clone(),
                        kind: *kind,
                        value: key,
                    });
                }
            } else if !value.is_empty() {
                found.push(Found {
                    column: column.clone(),
                    kind: *kind,
                    value,
                });
            }
        }
        let mut st = self.lock();
        st.tables.insert(format!("{rel}/{table}"));
        st.found.append(&mut found);
        drop(st);
        f
    }

    /// The report, once every file has been read. `buckets` are the manifest's entries: their
    /// vanished objects are not in the snapshot.
    pub fn report(&self, buckets: &[BucketEntry]) -> CrossCheck {
        let mut st = self.lock();
        for e in buckets {
            if let Some(b) = st.buckets.get_mut(&bucket_dir(&e.source, &e.bucket)) {
                for k in &e.vanished {
                    b.keys.remove(k);
                }
            }
        }
        resolve(&st)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("cross-check lock")
    }
}

/// The content of an in-memory file, and the file rebuilt around it. A file that cannot be
/// read is handed on with its error, for the archiver to report; it is not scanned.
fn contents(f: VirtualFile) -> (VirtualFile, Option<Vec<u8>>) {
    let mut bytes = Vec::new();
    let read = (f.open)().and_then(|mut r| r.read_to_end(&mut bytes));
    match read {
        Ok(_) => (
            VirtualFile::bytes(f.path, f.meta, bytes.clone()),
            Some(bytes),
        ),
        Err(e) => {
            let kind = e.kind();
            let msg = e.to_string();
            let file = VirtualFile {
                path: f.path,
                meta: f.meta,
                size: f.size,
                open: Box::new(move || Err(std::io::Error::new(kind, msg))),
            };
            (file, None)
        }
    }
}

/// `databases/<source>/<db>/data/<stem>.<n>.<ext>` -> (`databases/<source>/<db>`, table, ext).
fn part_table(path: &str) -> Option<(String, String, String)> {
    let (dir, name) = path.rsplit_once("/data/")?;
    let mut it = name.rsplitn(3, '.');
    let (ext, _n, stem) = (it.next()?, it.next()?, it.next()?);
    Some((dir.to_string(), table_from_stem(stem)?, ext.to_string()))
}

/// Every `CREATE TABLE` of a schema file: the table name (without schema or quotes) and its
/// column names in order, generated columns left out (they are not in the data parts).
fn create_tables(sql: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in sql.lines() {
        if let Some((_, cols)) = current.as_mut() {
            let t = line.trim_start();
            if t.starts_with(')') {
                out.extend(current.take());
                continue;
            }
            let first = t.split_whitespace().next().unwrap_or("");
            let keyword = [
                "PRIMARY",
                "KEY",
                "UNIQUE",
                "CONSTRAINT",
                "INDEX",
                "FULLTEXT",
                "SPATIAL",
                "FOREIGN",
                "CHECK",
                "EXCLUDE",
                "PERIOD",
            ]
            .contains(&first.to_ascii_uppercase().as_str());
            let generated = t.contains(" GENERATED ALWAYS AS (")
                || (t.contains(" AS (")
                    && ["VIRTUAL", "STORED", "PERSISTENT"]
                        .iter()
                        .any(|k| t.contains(k)));
            if !first.is_empty() && !keyword && !generated {
                cols.push(unquote(first.trim_end_matches(',')));
            }
            continue;
        }
        let Some(pos) = line.find("TABLE ") else {
            continue;
        };
        if !line.starts_with("CREATE ") || !line.trim_end().ends_with('(') {
            continue;
        }
        let name = line[pos + 6..].trim_end().trim_end_matches('(').trim();
        let name = name.strip_prefix("IF NOT EXISTS ").unwrap_or(name);
        // `schema.table`, named in files like the dump does: without `public.`.
        let (schema, table) = split_last_dot(name);
        let table = unquote(table);
        let name = match schema.map(unquote) {
            Some(s) if s != "public" => format!("{s}.{table}"),
            _ => table,
        };
        current = Some((name, Vec::new()));
    }
    out
}

/// `schema.table` -> (`Some(schema)`, `table`), respecting quotes.
fn split_last_dot(name: &str) -> (Option<&str>, &str) {
    let mut quote = None;
    let mut last = 0;
    for (i, c) in name.char_indices() {
        match (quote, c) {
            (None, '"' | '`') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => last = i + 1,
            _ => {}
        }
    }
    match last {
        0 => (None, name),
        i => (Some(&name[..i - 1]), &name[i..]),
    }
}

fn unquote(s: &str) -> String {
    for q in ['`', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            let doubled = format!("{q}{q}");
            return s[1..s.len() - 1].replace(&doubled, &q.to_string());
        }
    }
    s.to_string()
}

/// One field of a PostgreSQL `COPY` text row; `None` for NULL (`\N`). (MySQL parts are
/// decoded by [`mysql::decode_field`], next to their encoder.)
fn unescape_field(field: &[u8]) -> Option<Vec<u8>> {
    if field == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = field[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'Z' => out.push(26),
            b'0'..=b'7' => {
                // MySQL `\0`; PostgreSQL octal `\NNN`.
                let mut v = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex: Vec<u8> = field[i..]
                    .iter()
                    .take(2)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .copied()
                    .collect();
                match u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or(""), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += hex.len();
                    }
                    Err(_) => out.push(b'x'),
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// The `"key": "..."` string values of a JSON text that look like object keys (contain `/`),
/// in document order. A text that is not JSON keeps the keys read before the error.
fn manifest_keys(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    let _ = serde::de::DeserializeSeed::deserialize(
        KeyScan {
            out: &mut out,
            is_key: false,
        },
        &mut de,
    );
    out
}

/// Walks a JSON value without building it, collecting the string values of `"key"` members.
struct KeyScan<'a> {
    out: &'a mut Vec<String>,
    /// The value is that of a `"key"` member.
    is_key: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyScan<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if self.is_key && v.contains('/') {
            self.out.push(v.to_string());
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            map.next_value_seed(KeyScan {
                out: &mut *self.out,
                is_key: name == "key",
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(KeyScan {
                out: &mut *self.out,
                is_key: false,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `scheme://BUCKET/KEY` for the object-store schemes.
fn parse_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = ["minio://", "s3://", "gs://"]
        .iter()
        .find_map(|s| uri.strip_prefix(s))?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

enum Status {
    Resolved { bucket: String, key: String },
    Dangling,
    Unresolvable,
}

fn resolve(st: &State) -> CrossCheck {
    let mut by_name: BTreeMap<&str, Vec<&BucketInfo>> = BTreeMap::new();
    for b in st.buckets.values() {
        by_name.entry(b.name.as_str()).or_default().push(b);
    }
    let default_bucket = if by_name.len() == 1 {
        by_name.keys().next().copied()
    } else {
        by_name.get_key_value("mlpipeline").map(|(k, _)| *k)
    };
    let status = |f: &Found| -> Status {
        let (bucket, key) = match (f.kind, parse_uri(&f.value)) {
            (_, Some(bk)) => bk,
            (Kind::Uri, None) => return Status::Unresolvable,
            (_, None) if f.value.contains("://") => return Status::Unresolvable,
            (_, None) => match default_bucket {
                Some(b) => (b, f.value.as_str()),
                None => return Status::Unresolvable,
            },
        };
        let Some(infos) = by_name.get(bucket) else {
            return Status::Unresolvable;
        };
        let key = key.trim_end_matches('/');
        let folder = format!("{key}/");
        let present = infos.iter().any(|b| {
            b.keys.contains(key)
                || b.keys
                    .range(folder.clone()..)
                    .next()
                    .is_some_and(|k| k.starts_with(&folder))
        });
        if present {
            return Status::Resolved {
                bucket: bucket.to_string(),
                key: key.to_string(),
            };
        }
        let in_scope = infos.iter().any(|b| {
            b.prefixes.is_empty()
                || b.prefixes
                    .iter()
                    .any(|p| key.starts_with(p.as_str()) || folder.starts_with(p.as_str()))
        });
        if in_scope {
            Status::Dangling
        } else {
            Status::Unresolvable
        }
    };

    let mut report = CrossCheck {
        tables: st.tables.iter().cloned().collect(),
        references: st.found.len() as u64,
        ..CrossCheck::default()
    };
    let mut referenced: BTreeSet<(String, String)> = BTreeSet::new();
    for f in &st.found {
        let example = || Reference {
            column: f.column.clone(),
            reference: f.value.clone(),
        };
        match status(f) {
            Status::Resolved { bucket, key } => {
                report.resolved += 1;
                referenced.insert((bucket, key));
            }
            Status::Dangling => {
                report.dangling += 1;
                if report.dangling_examples.len() < EXAMPLES {
                    report.dangling_examples.push(example());
                }
            }
            Status::Unresolvable => {
                report.unresolvable += 1;
                if report.unresolvable_examples.len() < EXAMPLES {
                    report.unresolvable_examples.push(example());
                }
            }
        }
    }
    for b in st.buckets.values() {
        report.objects += b.keys.len() as u64;
        for key in &b.keys {
            let named = |k: &str| referenced.contains(&(b.name.clone(), k.to_string()));
            let mut hit = named(key);
            let mut rest = key.as_str();
            while !hit {
                let Some((parent, _)) = rest.rsplit_once('/') else {
                    break;
                };
                hit = named(parent);
                rest = parent;
            }
            if !hit {
                report.orphans += 1;
                if report.orphan_examples.len() < EXAMPLES {
                    report.orphan_examples.push(format!("{}/{key}", b.name));
                }
            }
        }
    }
    report
}

impl CrossCheck {
    /// The warning for dangling references, if any.
    pub fn warning(&self) -> Option<String> {
        (self.dangling > 0).then(|| {
            let examples: Vec<String> = self
                .dangling_examples
                .iter()
                .map(|r| format!("{} `{}`", r.column, r.reference))
                .collect();
            format!(
                "cross-check: {} artifact reference(s) point to objects missing from the snapshot's buckets, e.g. {}",
                self.dangling,
                examples.join(", ")
            )
        })
    }

    /// Human summary lines, each prefixed by `indent`.
    pub fn text(&self, indent: &str) -> String {
        let mut s = format!(
            "{indent}cross-check: {} references ({} resolved, {} dangling, {} unresolvable), {} objects ({} orphans)\n",
            self.references, self.resolved, self.dangling, self.unresolvable, self.objects, self.orphans
        );
        for r in &self.dangling_examples {
            s.push_str(&format!(
                "{indent}  dangling: {} `{}`\n",
                r.column, r.reference
            ));
        }
        for r in &self.unresolvable_examples {
            s.push_str(&format!(
                "{indent}  unresolvable: {} `{}`\n",
                r.column, r.reference
            ));
        }
        for o in &self.orphan_examples {
            s.push_str(&format!("{indent}  orphan: {o}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mysql_and_postgres_create_table() {
        let my = "CREATE TABLE `Artifact` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `type_id` int(11) NOT NULL,\n  `uri` text DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n";
        assert_eq!(
            create_tables(my),
            vec![(
                "Artifact".into(),
                vec!["id".into(), "type_id".into(), "uri".into()]
            )]
        );
        let pg = "CREATE TABLE public.pipeline_versions (\n    \"UUID\" character varying(64) NOT NULL,\n    \"PipelineSpecURI\" text NOT NULL\n);\n";
        assert_eq!(
            create_tables(pg),
            vec![(
                "pipeline_versions".into(),
                vec!["UUID".into(), "PipelineSpecURI".into()]
            )]
        );
        let other = "CREATE TABLE \"my.schema\".\"Artifact\" (\n    id integer,\n    dbl integer GENERATED ALWAYS AS ((id * 2)) STORED,\n    uri text\n);\n";
        assert_eq!(
            create_tables(other),
            vec![("my.schema.Artifact".into(), vec!["id".into(), "uri".into()])]
        );
    }

    #[test]
    fn unescapes_fields_and_scans_manifests() {
        assert_eq!(unescape_field(b"\\N"), None);
        assert_eq!(unescape_field(b"a\\tb\\\\c\\n").unwrap(), b"a\tb\\c\n");
        let m = r#"{"s3":{"key":"artifacts/wf/pod/out.tgz"},"secretKeyRef":{"key": "accesskey"},"x":{"key" : "a\/b\"c"}}"#;
        assert_eq!(manifest_keys(m), vec!["artifacts/wf/pod/out.tgz", "a/b\"c"]);
    }

    #[test]
    fn manifest_keys_with_control_and_non_bmp_characters_are_read_as_written() {
        // JSON escapes the parser must undo: `\r`, `\b`, `\f`, and a surrogate pair (U+1F600).
        let m = r#"{"s3":{"key":"art\rifacts/a\bb/c\fd/\ud83d\ude00.tgz"},"x":[{"key":"plain/\u00e9"}]}"#;
        assert_eq!(
            manifest_keys(m),
            vec![
                "art\rifacts/a\u{8}b/c\u{c}d/\u{1F600}.tgz".to_string(),
                "plain/é".to_string()
            ]
        );
        // A text cut short keeps the keys read before the cut, as before.
        assert_eq!(
            manifest_keys(r#"{"a":{"key":"one/x"},"b":{"key":"two/"#),
            vec!["one/x"]
        );
    }

    #[test]
    fn part_paths_name_their_table() {
        assert_eq!(
            part_table("databases/kfp/metadb/data/Artifact.000001.tsv"),
            Some((
                "databases/kfp/metadb".into(),
                "Artifact".into(),
                "tsv".into()
            ))
        );
    }
}
