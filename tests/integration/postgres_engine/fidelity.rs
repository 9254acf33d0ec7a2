//! Fidelity: every column type and edge value comes back as the server renders it.

use super::*;

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
    let pg = Db::postgres();
    let src = pg.pg_database("fidelity");
    pg.pg_sql(&src, FIDELITY_SCHEMA);
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
        pg.pg_scalar(&src, "SELECT count(*) FROM fidelity")
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

    let dst = pg.pg_target("fidelity_restored");
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
        assert_eq!(pg.pg_sql(&src, q), pg.pg_sql(&dst, q), "{q}");
    }
    assert_eq!(
        pg.pg_scalar(&dst, "SELECT length(t) FROM fidelity WHERE id = 11"),
        pg.pg_scalar(&src, "SELECT length(t) FROM fidelity WHERE id = 11")
    );
    assert_eq!(
        pg.pg_scalar(
            &dst,
            "SELECT encode(float8send(d), 'hex') FROM fidelity WHERE id = 40"
        ),
        "3fd3333333333334"
    );

    // Schema objects: indexes, unique constraints, the trigger, identity values.
    let idx = "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes \
               WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1, 2, 3";
    assert_eq!(pg.pg_sql(&src, idx), pg.pg_sql(&dst, idx));
    let cons = "SELECT conrelid::regclass::text, conname, \
                CASE WHEN contype <> 'c' THEN pg_get_constraintdef(oid) END FROM pg_constraint WHERE conrelid <> 0 AND connamespace <> 'pg_catalog'::regnamespace \
                ORDER BY 1, 2";
    assert_eq!(pg.pg_sql(&src, cons), pg.pg_sql(&dst, cons));
    pg.pg_sql(
        &dst,
        "INSERT INTO \"select\" VALUES (3, 'fires the trigger')",
    );
    assert_eq!(
        pg.pg_scalar(&dst, "SELECT what FROM audit ORDER BY id DESC LIMIT 1"),
        "select row 3"
    );
    assert_eq!(
        pg.pg_scalar(
            &dst,
            "INSERT INTO \"ml md\".\"Events\" (note) VALUES ('n') RETURNING id"
        ),
        "11"
    );
    let domain_check = "DO $$ BEGIN INSERT INTO fidelity (id, p) VALUES (1000, -1); \
        RAISE EXCEPTION 'domain not enforced'; EXCEPTION WHEN check_violation THEN NULL; END $$";
    pg.pg_sql(&dst, domain_check);

    // The files are plain SQL that psql runs as they are (what `restic dump` would print).
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_ok()
    {
        let via_psql = pg.pg_database("fidelity_psql");
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
        assert_eq!(pg.pg_scalar(&via_psql, q), pg.pg_scalar(&dst, q));
    } else {
        eprintln!("psql not found: skipping the psql check of schema.sql/post.sql");
    }
    eprintln!("fidelity round trip: {:?}", started.elapsed());
}
