//! The PostgreSQL engine against a real server (`KFGUARD_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432`, trust auth): dump through the library API, consume the
//! part channels from a plain thread as the archiver does, restore into a new database, and
//! compare source and copy row by row with SQL of their own, not kfguard's checksum alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfguard::engines::postgres;
use kfguard::engines::{
    Connection, DbError, DumpOptions, Fetch, RestoreReport, RestoreRequest, RestoreTable,
};
use kfguard::snapshot::manifest::TableEntry;

use crate::common::db::{pg_connection, pg_db_url, PgFixture};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A finished dump of one database, as the archiver would have stored it.
#[derive(Default, Clone)]
struct Dumped {
    files: HashMap<String, Vec<u8>>,
    /// Table -> part paths, in order.
    tables: BTreeMap<String, Vec<String>>,
    entries: BTreeMap<String, TableEntry>,
}

struct DumpResult {
    dbs: BTreeMap<String, Dumped>,
    warnings: Vec<String>,
    consistency: BTreeMap<String, String>,
    server_version: String,
    /// Database order and table order as handed to the consumer.
    order: Vec<(String, Vec<String>)>,
}

/// Dumps, then consumes every channel from this (non-runtime) thread with `blocking_recv`.
fn dump(pg: &PgFixture, opts: &DumpOptions) -> DumpResult {
    let session = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), opts))
        .unwrap_or_else(|e| panic!("dump: {e}"));
    let mut dbs = BTreeMap::new();
    let mut order = Vec::new();
    for db in session.databases {
        let mut d = Dumped::default();
        for f in db.files {
            d.files.insert(f.path, f.bytes);
        }
        let mut names = Vec::new();
        for mut t in db.tables {
            names.push(t.name.clone());
            let mut paths = Vec::new();
            while let Some(part) = t.parts.blocking_recv() {
                let part = part.unwrap_or_else(|e| panic!("table {}: {e}", t.name));
                paths.push(part.path.clone());
                d.files.insert(part.path, part.bytes);
            }
            d.tables.insert(t.name, paths);
        }
        order.push((db.database.clone(), names));
        dbs.insert(db.database, d);
    }
    let results = session.results.lock().expect("results").clone();
    for (db, tables) in results {
        if let Some(d) = dbs.get_mut(&db) {
            d.entries = tables;
        }
    }
    DumpResult {
        dbs,
        warnings: session.warnings,
        consistency: session.consistency,
        server_version: session.server_version,
        order,
    }
}

fn request(d: &Dumped, database: &str, target: &str) -> RestoreRequest {
    let files = Arc::new(d.files.clone());
    let fetch: Fetch = Arc::new(move |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, path.to_string()))
    });
    let text = |p: &str| String::from_utf8(d.files[p].clone()).expect("utf-8 script");
    RestoreRequest {
        database: database.into(),
        target: target.into(),
        schema_sql: text("schema.sql"),
        post_sql: Some(text("post.sql")),
        tables: d
            .tables
            .iter()
            .map(|(name, parts)| RestoreTable {
                name: name.clone(),
                parts: parts.clone(),
            })
            .collect(),
        expected: d.entries.values().cloned().collect(),
        fetch,
        jobs: 3,
        force: false,
        dry_run: false,
    }
}

fn entry(e: &TableEntry) -> (String, u64, String) {
    (e.name.clone(), e.rows, e.checksum.clone())
}

fn restore(pg: &PgFixture, req: RestoreRequest) -> Result<RestoreReport, DbError> {
    pg.rt().block_on(postgres::restore(&pg_connection(), req))
}

/// Compares every table of `src` with `dst` using plain SQL: row count, an md5 over all rows'
/// text, and the rows themselves, in one order computed by the server on each side.
fn assert_same_rows(pg: &PgFixture, src: &str, dst: &str, tables: &[&str]) {
    for t in tables {
        let q = format!(
            "SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text COLLATE \"C\"), '')) \
             FROM {t} AS r"
        );
        let a = pg.sql(src, &q);
        let b = pg.sql(dst, &q);
        assert_eq!(a, b, "count/md5 of {t}");
        let q = format!("SELECT r::text FROM {t} AS r ORDER BY r::text COLLATE \"C\"");
        let a = pg.sql(src, &q);
        let b = pg.sql(dst, &q);
        assert_eq!(a.len(), b.len(), "rows of {t}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x == y, "{t}: row {i} differs");
        }
    }
}

// ------------------------------------------------------------------------------------------

const KFP_SCHEMA: &str = r#"
CREATE TABLE pipelines (
    "UUID" varchar(64) PRIMARY KEY,
    "CreatedAtInSec" bigint NOT NULL,
    "Name" varchar(128) NOT NULL,
    "Description" text NOT NULL DEFAULT '',
    "Namespace" varchar(63) NOT NULL DEFAULT '',
    CONSTRAINT namespace_name UNIQUE ("Namespace", "Name")
);
CREATE TABLE pipeline_versions (
    "UUID" varchar(64) PRIMARY KEY,
    "Name" varchar(127) NOT NULL,
    "PipelineId" varchar(64) NOT NULL REFERENCES pipelines ("UUID") ON DELETE CASCADE,
    "PipelineSpec" text NOT NULL,
    "CreatedAtInSec" bigint NOT NULL
);
CREATE INDEX idx_pipeline_versions_created ON pipeline_versions ("CreatedAtInSec");
CREATE TABLE experiments (
    "UUID" varchar(64) PRIMARY KEY,
    "Name" varchar(128) NOT NULL,
    "Namespace" varchar(63) NOT NULL DEFAULT '',
    "StorageState" varchar(32) NOT NULL CHECK ("StorageState" IN ('AVAILABLE', 'ARCHIVED'))
);
CREATE TABLE run_details (
    "UUID" varchar(64) PRIMARY KEY,
    "ExperimentUUID" varchar(64) NOT NULL REFERENCES experiments ("UUID"),
    "DisplayName" varchar(128) NOT NULL,
    "WorkflowRuntimeManifest" text NOT NULL,
    "CreatedAtInSec" bigint NOT NULL,
    "FinishedAtInSec" bigint
);
CREATE TABLE jobs (
    "UUID" varchar(64) PRIMARY KEY,
    "DisplayName" varchar(128) NOT NULL,
    "Enabled" boolean NOT NULL,
    "CronScheduleCron" varchar(64)
);
CREATE TABLE tasks (
    "Id" bigserial PRIMARY KEY,
    "RunUUID" varchar(64) NOT NULL REFERENCES run_details ("UUID"),
    "Name" varchar(128) NOT NULL,
    "State" varchar(64) NOT NULL,
    "Payload" jsonb
);
CREATE VIEW finished_runs AS
    SELECT "UUID", "DisplayName" FROM run_details WHERE "FinishedAtInSec" IS NOT NULL;

INSERT INTO pipelines
    SELECT 'p-' || g, 1700000000 + g, 'pipeline ' || g, 'desc ' || g, 'ns' || (g % 3)
    FROM generate_series(1, 50) g;
INSERT INTO pipeline_versions
    SELECT 'v-' || g, 'version ' || g, 'p-' || (1 + g % 50), repeat('spec ' || g || E'\n', 200), g
    FROM generate_series(1, 120) g;
INSERT INTO experiments
    SELECT 'e-' || g, 'exp ' || g, 'ns', CASE WHEN g % 2 = 0 THEN 'AVAILABLE' ELSE 'ARCHIVED' END
    FROM generate_series(1, 10) g;
-- Multi-MiB Argo manifests, as KFP stores them.
INSERT INTO run_details
    SELECT 'r-' || g, 'e-' || (1 + g % 10), 'run ' || g,
        CASE WHEN g <= 2 THEN repeat('{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow"}' || E'\n\t', 50000)
             ELSE 'small manifest ' || g END,
        1700000000 + g, CASE WHEN g % 2 = 0 THEN 1700000100 + g END
    FROM generate_series(1, 40) g;
INSERT INTO jobs SELECT 'j-' || g, 'job ' || g, g % 2 = 0, CASE WHEN g % 3 = 0 THEN '0 * * * *' END
    FROM generate_series(1, 5) g;
INSERT INTO tasks ("RunUUID", "Name", "State", "Payload")
    SELECT 'r-' || (1 + g % 40), 'task ' || g, 'SUCCEEDED', jsonb_build_object('n', g, 'pod', 'pod-' || g)
    FROM generate_series(1, 3000) g;
"#;

const MLMD_SCHEMA: &str = r#"
CREATE TABLE "Type" (id serial PRIMARY KEY, name varchar(255) NOT NULL, type_kind smallint NOT NULL,
    CONSTRAINT type_name_kind UNIQUE (name, type_kind));
CREATE TABLE "Artifact" (
    id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    type_id integer NOT NULL REFERENCES "Type" (id),
    uri text,
    state integer,
    name varchar(255),
    create_time_since_epoch bigint NOT NULL DEFAULT 0
);
CREATE INDEX idx_artifact_uri ON "Artifact" (uri);
CREATE TABLE "ArtifactProperty" (
    artifact_id integer NOT NULL REFERENCES "Artifact" (id),
    name varchar(255) NOT NULL,
    is_custom_property boolean NOT NULL,
    int_value integer,
    double_value double precision,
    string_value text,
    byte_value bytea,
    proto_value bytea,
    bool_value boolean,
    PRIMARY KEY (artifact_id, name, is_custom_property)
);
CREATE TABLE "Event" (id serial PRIMARY KEY, artifact_id integer NOT NULL, execution_id integer NOT NULL,
    type integer NOT NULL, milliseconds_since_epoch bigint);
INSERT INTO "Type" (name, type_kind) VALUES ('system.Dataset', 1), ('system.Model', 1), ('Trainer', 0);
INSERT INTO "Artifact" (type_id, uri, state, name, create_time_since_epoch)
    SELECT 1 + g % 2, 's3://mlpipeline/artifacts/' || g, 2, 'artifact-' || g, 1700000000000 + g
    FROM generate_series(1, 100) g;
-- The sequence is ahead of the data: its value must survive, not be recomputed from max(id).
DELETE FROM "Artifact" WHERE id > 95;
INSERT INTO "ArtifactProperty" (artifact_id, name, is_custom_property, byte_value, proto_value, double_value)
    SELECT g, 'blob', true,
        decode(repeat(lpad(to_hex(g % 256), 2, '0') || '00ff5c0a0d09', 40), 'hex'),
        sha256(g::text::bytea) || '\x000a0d5c'::bytea, g / 7.0
    FROM generate_series(1, 95) g;
INSERT INTO "Event" (artifact_id, execution_id, type, milliseconds_since_epoch)
    SELECT g, g, 1, 1700000000000 + g FROM generate_series(1, 95) g;
"#;

#[test]
fn kfp_and_mlmd_round_trip_with_parts_sequences_and_schema() {
    let started = Instant::now();
    let pg = PgFixture::new();
    let kfp = pg.database("mlpipeline");
    let mlmd = pg.database("metadb");
    pg.sql(&kfp, KFP_SCHEMA);
    pg.sql(&mlmd, MLMD_SCHEMA);

    let opts = DumpOptions {
        jobs: 3,
        part_bytes: 64 * KIB,
        databases: vec![kfp.clone(), mlmd.clone()],
        ..DumpOptions::default()
    };
    let d = dump(&pg, &opts);
    assert!(
        d.server_version.starts_with(char::is_numeric),
        "{}",
        d.server_version
    );
    assert!(d.consistency.contains_key("snapshot") && d.consistency.contains_key("lsn"));
    assert!(d.consistency.contains_key(&format!("snapshot.{}", mlmd)));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    // Databases in the requested order, tables sorted by stem.
    assert_eq!(d.order[0].0, kfp);
    assert_eq!(
        d.order[0].1,
        [
            "experiments",
            "jobs",
            "pipeline_versions",
            "pipelines",
            "run_details",
            "tasks"
        ]
    );
    assert_eq!(
        d.order[1].1,
        ["Artifact", "ArtifactProperty", "Event", "Type"]
    );

    let k = &d.dbs[&kfp];
    // Parts: at most part_bytes, cut at rows; a multi-MiB row is a part of its own.
    let runs = &k.tables["run_details"];
    assert!(runs.len() >= 3, "{runs:?}");
    assert_eq!(runs[0], "data/run_details.000001.copy");
    for p in runs.iter().chain(&k.tables["tasks"]) {
        let bytes = &k.files[p];
        assert!(bytes.ends_with(b"\n"), "{p}");
        let rows = bytes.iter().filter(|&&b| b == b'\n').count();
        assert!(
            bytes.len() <= 64 * KIB || rows == 1,
            "{p}: {} bytes",
            bytes.len()
        );
    }
    assert!(k.files[&runs[0]].len() > 2 * MIB);
    assert!(k.tables["tasks"].len() >= 3);
    assert_eq!(k.entries["tasks"].rows, 3000);
    assert_eq!(k.entries["run_details"].rows, 40);

    // DDL: readable, complete, valid.
    let schema = String::from_utf8(k.files["schema.sql"].clone()).expect("utf-8");
    let post = String::from_utf8(k.files["post.sql"].clone()).expect("utf-8");
    assert!(
        schema.contains("CREATE TABLE public.run_details"),
        "{schema}"
    );
    assert!(
        schema.contains("CREATE VIEW public.finished_runs"),
        "{schema}"
    );
    assert!(post.contains("FOREIGN KEY"), "{post}");
    assert!(post.contains("idx_pipeline_versions_created"), "{post}");
    assert!(post.contains("setval"), "{post}");

    // Restore both under new names, then compare with independent SQL.
    let kfp2 = pg.target("mlpipeline_restored");
    let mlmd2 = pg.target("metadb_restored");
    let t0 = Instant::now();
    let report = restore(&pg, request(k, &kfp, &kfp2)).expect("restore kfp");
    let restore_took = t0.elapsed();
    assert_eq!(report.tables.len(), 6);
    assert_eq!(
        report.tables.iter().map(entry).collect::<Vec<_>>(),
        k.entries.values().map(entry).collect::<Vec<_>>()
    );
    restore(&pg, request(&d.dbs[&mlmd], &mlmd, &mlmd2)).expect("restore mlmd");

    assert_same_rows(
        &pg,
        &kfp,
        &kfp2,
        &[
            "pipelines",
            "pipeline_versions",
            "experiments",
            "run_details",
            "jobs",
            "tasks",
            "finished_runs",
        ],
    );
    assert_same_rows(
        &pg,
        &mlmd,
        &mlmd2,
        &[
            "\"Type\"",
            "\"Artifact\"",
            "\"ArtifactProperty\"",
            "\"Event\"",
        ],
    );
    let bytes_q = "SELECT md5(string_agg(byte_value || proto_value, '' ORDER BY artifact_id)) \
                   FROM \"ArtifactProperty\"";
    assert_eq!(pg.scalar(&mlmd, bytes_q), pg.scalar(&mlmd2, bytes_q));

    // Indexes, constraints and the view came back.
    let idx = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1";
    assert_eq!(pg.sql(&kfp, idx), pg.sql(&kfp2, idx));
    // CHECK expressions are re-parsed on restore and may print with different casts.
    let cons = "SELECT conrelid::regclass::text, conname, contype, \
                CASE WHEN contype <> 'c' THEN pg_get_constraintdef(oid) END \
                FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2";
    assert_eq!(pg.sql(&kfp, cons), pg.sql(&kfp2, cons));
    assert_eq!(pg.sql(&mlmd, cons), pg.sql(&mlmd2, cons));
    assert!(pg
        .sql(&kfp2, cons)
        .iter()
        .any(|r| r[1].as_deref() == Some("namespace_name") && r[2].as_deref() == Some("u")));
    let view = "SELECT pg_get_viewdef('finished_runs'::regclass)";
    assert_eq!(pg.scalar(&kfp, view), pg.scalar(&kfp2, view));

    // Sequence values survived: identity and serial columns continue where the source was.
    let next_artifact = "INSERT INTO \"Artifact\" (type_id) VALUES (1) RETURNING id";
    assert_eq!(pg.scalar(&mlmd2, next_artifact), "101");
    let next_task = "INSERT INTO tasks (\"RunUUID\", \"Name\", \"State\") VALUES ('r-1', 'x', 'y') RETURNING \"Id\"";
    assert_eq!(pg.scalar(&kfp2, next_task), "3001");
    // Foreign keys are enforced in the copy.
    let bad_fk = "DO $$ BEGIN \
        INSERT INTO tasks (\"RunUUID\", \"Name\", \"State\") VALUES ('nope', 'x', 'y'); \
        RAISE EXCEPTION 'fk not enforced'; EXCEPTION WHEN foreign_key_violation THEN NULL; END $$";
    pg.sql(&kfp2, bad_fk);
    eprintln!(
        "kfp/mlmd round trip: {:?} total, kfp restore {:?}",
        started.elapsed(),
        restore_took
    );
}

const FIDELITY_SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted''');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE fidelity (
    id integer PRIMARY KEY,
    t text,
    b bytea,
    j json,
    jb jsonb,
    ts timestamp(6),
    tz timestamptz,
    d double precision,
    r real,
    n40 numeric(40, 15),
    n numeric,
    big bigint,
    ia integer[],
    ta text[],
    iv interval,
    u uuid,
    m mood,
    p positive,
    g integer GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO fidelity (id, t) VALUES (1, NULL), (2, ''), (3, '\N'), (4, E'tab\there'),
    (5, E'new\nline'), (6, E'cr\rreturn'), (7, 'back\slash \\ \\N \t'), (8, 'emoji 🦀👍🏽 ü 中文'),
    (9, E'\\.'), (10, E'.\n\\.\n');
INSERT INTO fidelity (id, t) SELECT 11, repeat('five MiB of text 🙂 ' || E'\t\n\\', 5 * 1024 * 1024 / 24);
INSERT INTO fidelity (id, b) SELECT 12, decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex')
    FROM generate_series(0, 255) g;
INSERT INTO fidelity (id, b) VALUES (13, ''), (14, NULL);
INSERT INTO fidelity (id, j, jb) VALUES
    (20, '{"b": 1,   "a": [1, 2, {"x": "é\n"}], "a": "dup"}', '{"b": 1, "a": [1, 2, {"x": "é\n"}]}'),
    (21, 'null', 'null'), (22, '"\\u0000-free \"str\""', '[]');
INSERT INTO fidelity (id, ts, tz) VALUES
    (30, '2024-02-29 23:59:59.123456', '2024-06-01 12:00:00.654321+05:30'),
    (31, '1970-01-01 00:00:00.000001', '1999-12-31 23:59:59.999999-08'),
    (32, 'infinity', '-infinity'), (33, '0044-03-15 12:00:00 BC', '2262-04-11 23:47:16.854775+00');
INSERT INTO fidelity (id, d, r) VALUES
    (40, 0.1::float8 + 0.2::float8, 0.1), (41, 1e-300, 1e-38), (42, 'Infinity', '-Infinity'),
    (43, 'NaN', 'NaN'), (44, '-0', '-0'), (45, 4.9406564584124654e-324, 3.4028235e38),
    (46, 1.7976931348623157e308, 1.17549435e-38), (47, pi(), pi());
INSERT INTO fidelity (id, n40, n, big) VALUES
    (50, 1234567890123456789012345.123456789012345, 'NaN', -9223372036854775808),
    (51, -0.000000000000001, 1e-1000, 9223372036854775807),
    (52, 0, 123456789012345678901234567890.000000000000000000000000000001, 0),
    (53, NULL, '1.10', NULL);
INSERT INTO fidelity (id, ia, ta) VALUES
    (60, ARRAY[1, NULL, 3], ARRAY['a', NULL, 'quote"d', 'back\slash', 'comma,', '', 'NULL', '{}']),
    (61, '{{1,2},{3,4}}', '{}'), (62, '{}', ARRAY[E'tab\t', E'nl\n']);
INSERT INTO fidelity (id, iv, u, m, p) VALUES
    (70, '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy ''quoted''', 7),
    (71, '-00:00:00.000001', NULL, 'sad', NULL);

-- Identifiers that need quoting, a schema other than public.
CREATE TABLE "select" ("from" integer PRIMARY KEY, "where" text);
INSERT INTO "select" VALUES (1, 'reserved'), (2, NULL);
CREATE TABLE "My Table" ("a b" integer PRIMARY KEY, "Mixed""Quote" text UNIQUE);
INSERT INTO "My Table" VALUES (1, 'x'), (2, 'y');
CREATE SCHEMA "ml md";
CREATE TABLE "ml md"."Events" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
INSERT INTO "ml md"."Events" (note) SELECT 'event ' || g FROM generate_series(1, 10) g;
CREATE INDEX events_note ON "ml md"."Events" (lower(note)) WHERE note IS NOT NULL;

-- No primary key, with duplicate rows and a json column; an empty table.
CREATE TABLE nopk (a integer, b text, c json);
INSERT INTO nopk VALUES (2, 'b', '{}'), (1, 'a', '[1]'), (2, 'b', '{}'), (NULL, NULL, NULL), (1, 'A', 'null');
CREATE TABLE empty (id integer PRIMARY KEY, v text);

-- A trigger with its function, and a view on the schema-qualified table.
CREATE TABLE audit (id serial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION audit_select() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.audit (what) VALUES ('select row ' || NEW."from");
    RETURN NEW;
END $f$;
CREATE TRIGGER select_audit AFTER INSERT ON "select" FOR EACH ROW EXECUTE FUNCTION audit_select();
CREATE VIEW "event notes" AS SELECT id, upper(note) AS note FROM "ml md"."Events";
COMMENT ON TABLE fidelity IS 'every type; it''s here';
-- Not captured: must be reported.
CREATE AGGREGATE my_sum (integer) (SFUNC = int4pl, STYPE = integer);
"#;

const FIDELITY_TABLES: &[&str] = &[
    "fidelity",
    "\"select\"",
    "\"My Table\"",
    "\"ml md\".\"Events\"",
    "nopk",
    "empty",
    "audit",
    "\"event notes\"",
];

#[test]
fn fidelity_round_trip() {
    let started = Instant::now();
    let pg = PgFixture::new();
    let src = pg.database("fidelity");
    pg.sql(&src, FIDELITY_SCHEMA);
    let opts = DumpOptions {
        jobs: 2,
        part_bytes: 256 * KIB,
        databases: vec![src.clone()],
        ..DumpOptions::default()
    };
    let d = dump(&pg, &opts);
    let dd = &d.dbs[&src];
    assert_eq!(
        d.order[0].1,
        [
            "My Table",
            "audit",
            "empty",
            "fidelity",
            "ml md.Events",
            "nopk",
            "select"
        ]
    );
    assert!(
        d.warnings.iter().any(
            |w| w.contains("table nopk has no primary key: row order is not guaranteed stable")
        ),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("aggregate") && w.contains("my_sum") && w.contains("not captured")),
        "{:?}",
        d.warnings
    );
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    // An empty table has exactly one, empty, part.
    assert_eq!(dd.tables["empty"], ["data/empty.000001.copy"]);
    assert!(dd.files["data/empty.000001.copy"].is_empty());
    assert_eq!(dd.entries["empty"].rows, 0);
    assert_eq!(dd.tables["My Table"], ["data/My%20Table.000001.copy"]);
    assert_eq!(
        dd.entries["fidelity"].rows.to_string(),
        pg.scalar(&src, "SELECT count(*) FROM fidelity")
    );

    // A second dump of unchanged data is byte-identical (deterministic output, dedup-friendly).
    let again = dump(&pg, &opts);
    let ag = &again.dbs[&src];
    assert_eq!(
        ag.entries.values().map(entry).collect::<Vec<_>>(),
        dd.entries.values().map(entry).collect::<Vec<_>>()
    );
    for (p, bytes) in &dd.files {
        if p != "post.sql" {
            assert!(
                ag.files.get(p) == Some(bytes),
                "{p} changed between two dumps"
            );
        }
    }

    let dst = pg.target("fidelity_restored");
    let report = restore(&pg, request(dd, &src, &dst)).expect("restore");
    assert_eq!(report.tables.len(), 7);
    assert_same_rows(&pg, &src, &dst, FIDELITY_TABLES);

    // Column by column, with type-specific checks that do not go through text output.
    let checks = [
        "SELECT id, t IS NULL, t = '', t = '\\N', md5(t), length(t) FROM fidelity ORDER BY id",
        "SELECT id, encode(b, 'hex'), b IS NULL FROM fidelity ORDER BY id",
        "SELECT id, j::text, jb::text FROM fidelity ORDER BY id",
        "SELECT id, extract(epoch FROM ts), extract(epoch FROM tz), ts::text FROM fidelity ORDER BY id",
        "SELECT id, encode(float8send(d), 'hex'), encode(float4send(r), 'hex') FROM fidelity ORDER BY id",
        "SELECT id, n40::text, n::text, big FROM fidelity ORDER BY id",
        "SELECT id, ia::text, ta::text, array_length(ta, 1), ta[2] IS NULL FROM fidelity ORDER BY id",
        "SELECT id, iv::text, u, m::text, p, g FROM fidelity ORDER BY id",
        "SELECT format_type(atttypid, atttypmod), attname, attgenerated FROM pg_attribute \
         WHERE attrelid = 'fidelity'::regclass AND attnum > 0 ORDER BY attnum",
        "SELECT \"a b\", \"Mixed\"\"Quote\" FROM \"My Table\" ORDER BY 1",
        "SELECT obj_description('fidelity'::regclass, 'pg_class')",
        "SELECT enum_range(NULL::mood)::text",
    ];
    for q in checks {
        assert_eq!(pg.sql(&src, q), pg.sql(&dst, q), "{q}");
    }
    assert_eq!(
        pg.scalar(&dst, "SELECT length(t) FROM fidelity WHERE id = 11"),
        pg.scalar(&src, "SELECT length(t) FROM fidelity WHERE id = 11")
    );
    assert_eq!(
        pg.scalar(
            &dst,
            "SELECT encode(float8send(d), 'hex') FROM fidelity WHERE id = 40"
        ),
        "3fd3333333333334"
    );

    // Schema objects: indexes, unique constraints, the trigger, identity values.
    let idx = "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes \
               WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1, 2, 3";
    assert_eq!(pg.sql(&src, idx), pg.sql(&dst, idx));
    let cons = "SELECT conrelid::regclass::text, conname, \
                CASE WHEN contype <> 'c' THEN pg_get_constraintdef(oid) END FROM pg_constraint WHERE conrelid <> 0 AND connamespace <> 'pg_catalog'::regnamespace \
                ORDER BY 1, 2";
    assert_eq!(pg.sql(&src, cons), pg.sql(&dst, cons));
    pg.sql(
        &dst,
        "INSERT INTO \"select\" VALUES (3, 'fires the trigger')",
    );
    assert_eq!(
        pg.scalar(&dst, "SELECT what FROM audit ORDER BY id DESC LIMIT 1"),
        "select row 3"
    );
    assert_eq!(
        pg.scalar(
            &dst,
            "INSERT INTO \"ml md\".\"Events\" (note) VALUES ('n') RETURNING id"
        ),
        "11"
    );
    let domain_check = "DO $$ BEGIN INSERT INTO fidelity (id, p) VALUES (1000, -1); \
        RAISE EXCEPTION 'domain not enforced'; EXCEPTION WHEN check_violation THEN NULL; END $$";
    pg.sql(&dst, domain_check);

    // The files are plain SQL that psql runs as they are (what `restic dump` would print).
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_ok()
    {
        let via_psql = pg.database("fidelity_psql");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["schema.sql", "post.sql"] {
            let path = dir.path().join(f);
            std::fs::write(&path, &dd.files[f]).expect("write script");
            let out = std::process::Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &pg_db_url(&via_psql),
                    "-f",
                ])
                .arg(&path)
                .output()
                .expect("run psql");
            assert!(
                out.status.success(),
                "psql {f}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let q = "SELECT count(*) FROM pg_class WHERE relnamespace <> 'pg_catalog'::regnamespace \
                 AND relnamespace <> 'information_schema'::regnamespace AND relnamespace <> 'pg_toast'::regnamespace";
        assert_eq!(pg.scalar(&via_psql, q), pg.scalar(&dst, q));
    } else {
        eprintln!("psql not found: skipping the psql check of schema.sql/post.sql");
    }
    eprintln!("fidelity round trip: {:?}", started.elapsed());
}

#[test]
fn dump_is_one_consistent_snapshot_under_concurrent_writes() {
    let pg = PgFixture::new();
    let db = pg.database("consistency");
    pg.sql(&db,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE ledger (id bigserial PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL);
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) g;
         INSERT INTO ledger (account, amount) SELECT g, 1000 FROM generate_series(1, 100) g;",
    );
    let opts = DumpOptions {
        jobs: 1,
        part_bytes: 4 * KIB,
        databases: vec![db.clone()],
        ..DumpOptions::default()
    };
    let session = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), &opts))
        .expect("dump");
    // Writers commit after the snapshot, and before and while the tables are read.
    for i in 0..20 {
        pg.sql(
            &db,
            &format!(
                "BEGIN; UPDATE accounts SET balance = balance - 10 WHERE id = {a};
                 INSERT INTO ledger (account, amount) VALUES ({a}, -10); COMMIT;",
                a = 1 + i % 100
            ),
        );
    }
    let mut rows = HashMap::new();
    for d in session.databases {
        for mut t in d.tables {
            let mut data = Vec::new();
            let mut n = 0;
            while let Some(p) = t.parts.blocking_recv() {
                let p = p.expect("part");
                data.extend(p.bytes);
                n += 1;
                if n == 1 {
                    pg.sql(&db, "UPDATE accounts SET balance = 0 WHERE id = 100");
                }
            }
            rows.insert(t.name, String::from_utf8(data).expect("utf-8"));
        }
    }
    let sum = |text: &str, col: usize| -> i64 {
        text.lines()
            .map(|l| {
                l.split('\t')
                    .nth(col)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(rows["accounts"].lines().count(), 100);
    assert_eq!(
        rows["ledger"].lines().count(),
        100,
        "a ledger row written later was dumped"
    );
    assert_eq!(sum(&rows["accounts"], 1), 100_000);
    assert_eq!(sum(&rows["ledger"], 2), 100_000);
}

#[test]
fn bad_input_fails_with_typed_errors() {
    let pg = PgFixture::new();
    // Unreachable port: a connect error, quickly.
    let t0 = Instant::now();
    let err = pg
        .rt()
        .block_on(postgres::dump(
            &Connection {
                url: "postgres://postgres@127.0.0.1:1".into(),
                ..pg_connection()
            },
            &DumpOptions::default(),
        ))
        .expect_err("port 1");
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && !msg.contains('\n'), "{msg}");

    // Credentials: trust auth accepts any password, so use a role that does not exist.
    let err = pg
        .rt()
        .block_on(postgres::dump(
            &Connection {
                url: "postgres://kfg_no_such_role@127.0.0.1:5432".into(),
                ..pg_connection()
            },
            &DumpOptions::default(),
        ))
        .expect_err("unknown role");
    assert!(matches!(err, DbError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("kfg_no_such_role"), "{err}");

    // A database that does not exist.
    let opts = DumpOptions {
        databases: vec!["kfg_no_such_database".into()],
        ..DumpOptions::default()
    };
    let err = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), &opts))
        .expect_err("missing database");
    assert!(
        matches!(&err, DbError::NoDatabase { database, .. } if database == "kfg_no_such_database"),
        "{err:?}"
    );
    // …also as the maintenance database in the URL.
    let err = pg
        .rt()
        .block_on(postgres::dump(
            &Connection {
                url: pg_db_url("kfg_no_such_database"),
                ..pg_connection()
            },
            &DumpOptions::default(),
        ))
        .expect_err("missing maintenance database");
    assert!(matches!(err, DbError::NoDatabase { .. }), "{err:?}");
}

#[test]
fn killed_connection_mid_dump_is_an_error_on_the_table() {
    killed_mid_dump("killed", 1);
}

/// The same with the table read in key ranges by several connections at once.
#[test]
fn killed_connection_mid_split_dump_is_an_error_on_the_table() {
    killed_mid_dump("killed_split", 4);
}

fn killed_mid_dump(tag: &str, jobs: usize) {
    let pg = PgFixture::new();
    let db = pg.database(tag);
    pg.sql(
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL);
         INSERT INTO big SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 20000) g;",
    );
    let opts = DumpOptions {
        jobs,
        part_bytes: 64 * KIB,
        databases: vec![db.clone()],
        ..DumpOptions::default()
    };
    let session = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), &opts))
        .expect("dump");
    let mut dbs = session.databases;
    let mut table = dbs.remove(0).tables.remove(0);
    let first = table
        .parts
        .blocking_recv()
        .expect("a part")
        .expect("first part ok");
    assert!(!first.bytes.is_empty());
    let killed = pg.sql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db
        ),
    );
    assert!(!killed.is_empty(), "no dump sessions found");
    let mut parts = 1;
    let err = loop {
        match table.parts.blocking_recv() {
            Some(Ok(_)) => parts += 1,
            Some(Err(e)) => break e,
            None => panic!("the table ended without an error after {parts} parts"),
        }
    };
    assert!(
        parts < 20000 * 2112 / (64 * KIB),
        "read everything: {parts} parts"
    );
    assert!(
        matches!(&err, DbError::Query { table: Some(t), .. } if t == "big"),
        "{err:?}"
    );
    eprintln!("killed dump: {err}");
    assert!(
        table.parts.blocking_recv().is_none(),
        "the channel closes after the error"
    );
    let results = session.results.lock().expect("results");
    assert!(results.get(&db).is_none_or(|t| !t.contains_key("big")));
}

/// Concatenated part bytes of every table, with its part paths.
fn table_bytes(d: &Dumped) -> BTreeMap<String, Vec<u8>> {
    d.tables
        .iter()
        .map(|(name, parts)| {
            (
                name.clone(),
                parts.iter().flat_map(|p| d.files[p].clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn large_tables_are_read_in_key_ranges_with_identical_output() {
    let pg = PgFixture::new();
    let db = pg.database("split");
    // A bigint key with gaps and negative values, an int4 key, a text key, no key.
    pg.sql(&db,
        "CREATE TABLE artifacts (id bigint PRIMARY KEY, n int, payload text, blob bytea);
         INSERT INTO artifacts SELECT g * 7 - 300000, g, repeat(md5(g::text), 3) || E'\\t\\\\x\\n', \
           sha256(g::text::bytea) FROM generate_series(1, 60000) g;
         INSERT INTO artifacts VALUES (9000000000, NULL, NULL, NULL), (-9000000000, 0, '', '\\x');
         CREATE TABLE events (id int PRIMARY KEY, what text NOT NULL);
         INSERT INTO events SELECT g, repeat('e', g % 200) FROM generate_series(1, 30000) g;
         CREATE TABLE words (w text PRIMARY KEY);
         INSERT INTO words SELECT md5(g::text) FROM generate_series(1, 20000) g;
         CREATE TABLE tiny (id int PRIMARY KEY);
         INSERT INTO tiny VALUES (1), (2);
         CREATE TABLE empty_big (id int PRIMARY KEY);
         ANALYZE artifacts;",
    );
    let size: usize = pg
        .scalar(&db, "SELECT pg_table_size('artifacts')")
        .parse()
        .expect("size");
    assert!(size > 4 * MIB, "artifacts is {size} bytes");
    let opts = |jobs| DumpOptions {
        jobs,
        part_bytes: 64 * KIB,
        databases: vec![db.clone()],
        ..DumpOptions::default()
    };

    // `artifacts` is consumed first and takes all 4 permits and workers: its 4 key ranges
    // (balanced by the histogram despite the outlying keys) are read by 4 connections at once,
    // all started before the consumer takes anything.
    let session = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), &opts(4)))
        .expect("dump");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ranged = loop {
        let n: usize = pg
            .scalar(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
                 AND query LIKE 'COPY (SELECT % FROM ONLY public.artifacts % WHERE %'",
                    db
                ),
            )
            .parse()
            .expect("count");
        if n >= 4 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ranged, 4, "key-range readers of artifacts");
    let queries = pg.sql(
        "postgres",
        &format!(
            "SELECT query FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'COPY%'",
            db
        ),
    );
    // An even cut of [min, max] would put every row but the outliers into two ranges.
    assert!(
        queries
            .iter()
            .flatten()
            .flatten()
            .all(|q| !q.contains("4500000000")),
        "{queries:?}"
    );
    drop(session);

    let t0 = Instant::now();
    let serial = dump(&pg, &opts(1));
    let serial_took = t0.elapsed();
    let t0 = Instant::now();
    let parallel = dump(&pg, &opts(4));
    let parallel_took = t0.elapsed();
    eprintln!("dump jobs=1: {serial_took:?}, jobs=4 with key ranges: {parallel_took:?}");
    let s = &serial.dbs[&db];
    let p = &parallel.dbs[&db];
    assert_eq!(table_bytes(s), table_bytes(p));
    assert_eq!(
        s.entries.values().map(entry).collect::<Vec<_>>(),
        p.entries.values().map(entry).collect::<Vec<_>>()
    );
    assert_eq!(p.entries["artifacts"].rows, 60002);
    assert_eq!(p.entries["empty_big"].rows, 0);
    for (name, parts) in &p.tables {
        for (i, path) in parts.iter().enumerate() {
            assert_eq!(
                path,
                &format!("data/{name}.{:06}.copy", i + 1),
                "parts numbered in order"
            );
            let bytes = &p.files[path];
            let rows = bytes.iter().filter(|&&b| b == b'\n').count();
            assert!(
                bytes.len() <= 64 * KIB || rows == 1,
                "{path}: {} bytes",
                bytes.len()
            );
            assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "{path}");
        }
    }
    assert!(
        p.tables["artifacts"].len() > 64,
        "{}",
        p.tables["artifacts"].len()
    );

    let restored = pg.target("split_restored");
    let report = restore(&pg, request(p, &db, &restored)).expect("restore");
    assert_eq!(
        report.tables.iter().map(entry).collect::<Vec<_>>(),
        p.entries.values().map(entry).collect::<Vec<_>>()
    );
    assert_same_rows(
        &pg,
        &db,
        &restored,
        &["artifacts", "events", "words", "tiny", "empty_big"],
    );
}

#[test]
fn restore_refuses_non_empty_supports_dry_run_force_and_filters_and_cleans_up_failures() {
    let pg = PgFixture::new();
    let src = pg.database("refuse");
    pg.sql(
        &src,
        "CREATE TABLE keep (id int PRIMARY KEY, v text);
         CREATE TABLE skip_me (id int PRIMARY KEY, keep_id int REFERENCES keep (id));
         CREATE VIEW uses_skipped AS SELECT * FROM skip_me;
         INSERT INTO keep VALUES (1, 'one'), (2, 'two');",
    );
    let opts = DumpOptions {
        databases: vec![src.clone()],
        tables: kfguard::config::TableFilter::new(&[], &["skip_*".into()]).unwrap(),
        ..DumpOptions::default()
    };
    let d = dump(&pg, &opts);
    let dd = &d.dbs[&src];
    assert_eq!(dd.tables.keys().collect::<Vec<_>>(), ["keep"]);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("view uses_skipped not captured")),
        "{:?}",
        d.warnings
    );

    // Into the (non-empty) source itself, without --force.
    let err = restore(&pg, request(dd, &src, &src)).expect_err("not empty");
    assert!(
        matches!(&err, DbError::NotEmpty { tables: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--force"), "{err}");

    // Dry run: a plan, and nothing created.
    let target = pg.target("refuse_target");
    let mut req = request(dd, &src, &target);
    req.dry_run = true;
    let plan = restore(&pg, req).expect("dry run").plan;
    assert_eq!(plan[0], format!("create database {}", target));
    assert!(plan.iter().any(|p| p == "create table keep"), "{plan:?}");
    assert!(
        plan.iter().any(|p| p == "copy 1 parts into keep"),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|p| p.starts_with("apply post.sql (")),
        "{plan:?}"
    );
    assert!(plan.iter().any(|p| p == "verify keep: 2 rows"), "{plan:?}");
    assert!(!pg.exists(&target));

    // Restore, change the copy, then --force replaces it.
    restore(&pg, request(dd, &src, &target)).expect("restore");
    pg.sql(
        &target,
        "INSERT INTO keep VALUES (3, 'three'); CREATE TABLE extra (x int)",
    );
    let err = restore(&pg, request(dd, &src, &target)).expect_err("now not empty");
    assert!(
        matches!(err, DbError::NotEmpty { tables: 2, .. }),
        "{err:?}"
    );
    let mut req = request(dd, &src, &target);
    req.force = true;
    let report = restore(&pg, req).expect("forced restore");
    assert_eq!(report.tables[0].rows, 2);
    assert_eq!(pg.scalar(&target, "SELECT count(*) FROM keep"), "2");
    assert!(pg
        .sql(&target, "SELECT 1 FROM pg_class WHERE relname = 'extra'")
        .is_empty());

    // A tampered part fails verification loudly.
    let mut bad = dd.clone();
    let part = bad.tables["keep"][0].clone();
    bad.files.insert(part, b"1\tone\n2\tTWO\n".to_vec());
    let mut req = request(&bad, &src, &target);
    req.force = true;
    let err = restore(&pg, req).expect_err("tampered");
    assert!(
        matches!(&err, DbError::Abandoned { cause, .. }
            if matches!(&**cause, DbError::Verify { table, .. } if table == "keep")),
        "{err:?}"
    );
    // The target existed before this restore: it is named as left behind, never dropped.
    let msg = err.to_string();
    assert!(
        msg.contains("which existed before, partly restored") && msg.contains("--force"),
        "{msg}"
    );
    assert!(pg.exists(&target));

    // A database the failed restore created itself is dropped again, and the message says so.
    let fresh = pg.target("tampered_new");
    let err = restore(&pg, request(&bad, &src, &fresh)).expect_err("tampered");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "`{}`, which this restore had created, was dropped",
            fresh
        )),
        "{msg}"
    );
    assert!(!pg.exists(&fresh));
}

const EXOTIC_SCHEMA: &str = r#"
CREATE SCHEMA ext;
CREATE TYPE color AS ENUM ('red', 'green');
CREATE DOMAIN color_d AS color NOT NULL DEFAULT 'red';
CREATE TYPE pair AS (a int, b text COLLATE "C");
CREATE TABLE t1 (id int PRIMARY KEY, p pair, col color_d, name text COLLATE "C", x int)
    WITH (fillfactor = 70);
INSERT INTO t1 VALUES (1, ROW(1, 'x'), 'green', 'n', 5), (2, NULL, 'red', NULL, -1);
ALTER TABLE t1 ADD CONSTRAINT x_pos CHECK (x > 0) NOT VALID;
CREATE UNLOGGED TABLE ul (id int PRIMARY KEY);
INSERT INTO ul VALUES (1);
CREATE TABLE parent (id int PRIMARY KEY, v text);
CREATE TABLE child (extra int) INHERITS (parent);
INSERT INTO parent VALUES (1, 'p');
INSERT INTO child VALUES (2, 'c', 3);
CREATE TABLE meas (id int, d date, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
CREATE TABLE meas_2024 PARTITION OF meas FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO meas VALUES (1, '2024-05-01');
CREATE MATERIALIZED VIEW mv AS SELECT id, name FROM t1;
CREATE UNIQUE INDEX mv_id ON mv (id);
CREATE VIEW v1 AS SELECT id FROM t1;
CREATE VIEW v0 AS SELECT id FROM v1;
-- v1 is now newer than the view that uses it.
CREATE OR REPLACE VIEW v1 AS SELECT id FROM t1 WHERE id > 0;
CREATE FUNCTION atomic_f() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM public.t1; END;
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t1_trg BEFORE UPDATE ON t1 FOR EACH ROW EXECUTE FUNCTION trg();
ALTER TABLE t1 DISABLE TRIGGER t1_trg;
CREATE RULE r1 AS ON DELETE TO ul DO INSTEAD NOTHING;
ALTER TABLE parent ENABLE ROW LEVEL SECURITY;
CREATE POLICY pol ON parent USING (true);
CREATE TABLE ext.other (id int PRIMARY KEY, t1_id int REFERENCES public.t1 (id));
INSERT INTO ext.other VALUES (1, 1);
CREATE STATISTICS st1 (dependencies) ON id, x FROM t1;
CREATE TABLE gen (id int GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 5) PRIMARY KEY, h text);
INSERT INTO gen (h) VALUES ('a'), ('b');
CREATE TABLE zero ();
INSERT INTO zero DEFAULT VALUES;
INSERT INTO zero DEFAULT VALUES;
COMMENT ON COLUMN t1.name IS 'a comment';
"#;

#[test]
fn other_objects_are_captured_or_reported() {
    let pg = PgFixture::new();
    let src = pg.database("objects");
    pg.sql(&src, EXOTIC_SCHEMA);
    let citext = !pg
        .sql(
            &src,
            "SELECT 1 FROM pg_available_extensions WHERE name = 'citext'",
        )
        .is_empty();
    if citext {
        pg.sql(
            &src,
            "CREATE EXTENSION citext; CREATE TABLE ci (c citext PRIMARY KEY); \
             INSERT INTO ci VALUES ('Hello'), ('world')",
        );
    }
    let d = dump(
        &pg,
        &DumpOptions {
            databases: vec![src.clone()],
            ..DumpOptions::default()
        },
    );
    let expected = [
        "row-level security of table parent not captured",
        "table child inherits from another table",
        "partitioned table meas not captured",
        "row-level security policy pol on public.parent not captured",
        "rule r1 on public.ul not captured",
        "table child has no primary key",
        "table zero has no primary key",
    ];
    for e in expected {
        assert!(
            d.warnings.iter().any(|w| w.contains(e)),
            "missing warning `{e}` in {:?}",
            d.warnings
        );
    }
    assert_eq!(d.warnings.len(), expected.len(), "{:?}", d.warnings);

    let dd = &d.dbs[&src];
    let dst = pg.target("objects_restored");
    restore(&pg, request(dd, &src, &dst)).expect("restore");
    let mut tables = vec![
        "t1",
        "ul",
        "ONLY parent",
        "child",
        "meas_2024",
        "mv",
        "v0",
        "v1",
        "ext.other",
        "gen",
    ];
    if citext {
        tables.push("ci");
    }
    assert_same_rows(&pg, &src, &dst, &tables);
    let same = [
        "SELECT count(*) FROM zero",
        "SELECT public.atomic_f()",
        "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
        "SELECT relname, relpersistence, reloptions FROM pg_class WHERE relname IN ('t1', 'ul') ORDER BY 1",
        "SELECT stxname FROM pg_statistic_ext ORDER BY 1",
        "SELECT conname, convalidated FROM pg_constraint WHERE conname = 'x_pos'",
        "SELECT col_description('t1'::regclass, 4)",
        "SELECT typname, typnotnull, pg_get_expr(typdefaultbin, 0) FROM pg_type WHERE typname = 'color_d'",
    ];
    for q in same {
        assert_eq!(pg.sql(&src, q), pg.sql(&dst, q), "{q}");
    }
    assert_eq!(
        pg.scalar(&dst, "INSERT INTO gen (h) VALUES ('c') RETURNING id"),
        "110"
    );
}
