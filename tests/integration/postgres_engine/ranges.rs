//! Key ranges: large tables are read in ranges with the output of one stream.

use super::*;

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
    let pg = Db::postgres();
    let db = pg.pg_database("split");
    // A bigint key with gaps and negative values, an int4 key, a text key, no key.
    pg.pg_sql(&db,
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
        .pg_scalar(&db, "SELECT pg_table_size('artifacts')")
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
            .pg_scalar(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND query LIKE 'COPY (SELECT % FROM ONLY public.artifacts % WHERE %'"
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
    let queries = pg.pg_sql(
        "postgres",
        &format!(
            "SELECT query FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE 'COPY%'"
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

    let restored = pg.pg_target("split_restored");
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
