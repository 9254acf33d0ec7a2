//! Key ranges: large tables are read over several connections with the output of one stream.

use super::*;

/// The concatenation of a table's parts, in order.
fn table_bytes(d: &DbFiles, table: &str) -> Vec<u8> {
    let t = d
        .tables
        .iter()
        .find(|t| t.name == table)
        .expect("table dumped");
    t.parts.iter().flat_map(|p| d.files[p].clone()).collect()
}

#[test]
fn large_tables_split_into_key_ranges_dump_like_one_stream() {
    let mut my = Db::mysql();
    let (db, copy) = (my.mysql_name("split"), my.mysql_name("split_copy"));
    let (rt, c) = my.mysql_parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE a_small (id int PRIMARY KEY, v varchar(10));\n\
         CREATE TABLE big (id int PRIMARY KEY, note text, d double, t datetime(3));\n\
         CREATE TABLE huge_keys (id bigint unsigned PRIMARY KEY, payload varchar(2000));\n\
         CREATE TABLE z_after (id int PRIMARY KEY, v varchar(10))",
    );
    // ~5 MiB over sparse, negative and positive keys, with escapes, NULLs and doubles.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT CAST(seq AS SIGNED) * 7 - 20000, \
             IF(seq % 13 = 0, NULL, CONCAT(REPEAT(CHAR(65 + seq % 26), 600 + seq % 300), '\\t\\n\\\\', seq)), \
             seq / 3.0e0, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_6000"
        ),
    );
    // Keys spread over the whole unsigned 64-bit range, up to its maximum.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.huge_keys SELECT seq * 6148914691236517, REPEAT('x', 1000 + seq % 7) \
             FROM seq_1_to_2999 UNION ALL SELECT 18446744073709551615, 'max' \
             UNION ALL SELECT 0, 'zero'"
        ),
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{db}`.a_small VALUES (1, 'a'), (2, NULL)"),
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{db}`.z_after VALUES (3, 'z')"),
    );
    // The split decision uses the server's size estimate: make it current.
    exec(
        rt,
        c,
        &format!("ANALYZE TABLE `{db}`.big, `{db}`.huge_keys"),
    );

    let part_bytes = 64 * 1024;
    let one = dump_all(rt, &mysql_connection(), &opts(&[&db], 1, part_bytes)).expect("jobs=1 dump");
    let split =
        dump_all(rt, &mysql_connection(), &opts(&[&db], 4, part_bytes)).expect("jobs=4 dump");
    let (one, split) = (&one.dbs[&db], &split.dbs[&db]);
    let names = |d: &DbFiles| d.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(one), ["a_small", "big", "huge_keys", "z_after"]);
    assert_eq!(names(split), names(one));
    for t in &split.tables {
        let bytes = table_bytes(split, &t.name);
        assert_eq!(bytes, table_bytes(one, &t.name), "bytes of {}", t.name);
        for (i, p) in t.parts.iter().enumerate() {
            assert_eq!(p, &format!("data/{}.{:06}.tsv", t.name, i + 1));
            let part = &split.files[p];
            assert!(
                part.len() <= part_bytes || part.iter().filter(|&&b| b == b'\n').count() == 1,
                "{p} is {} bytes",
                part.len()
            );
            assert!(
                part.is_empty() || part.ends_with(b"\n"),
                "{p} ends inside a row"
            );
        }
    }
    assert!(split.tables[1].parts.len() > 20, "big has many parts");
    let entries = |d: &DbFiles| {
        d.expected
            .iter()
            .map(|e| (e.name.clone(), e.rows, e.checksum.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(entries(split), entries(one));
    assert!(entries(split).contains(&("big".to_string(), 6000, entries(one)[1].2.clone())));
    assert!(entries(split)
        .iter()
        .any(|e| e.0 == "huge_keys" && e.1 == 3001));

    let report = restore_db(rt, split, &db, &copy, 4, false, false).expect("restore");
    assert_eq!(report.tables.len(), 4);
    assert_eq!(assert_same_databases(rt, c, &db, &copy), 6000 + 3001 + 3);
}

#[test]
fn killed_connection_in_a_key_range_is_an_error_not_a_short_table() {
    let mut my = Db::mysql();
    let db = my.mysql_name("killsplit");
    let (rt, c) = my.mysql_parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, payload text)",
    );
    // ~32 MiB in 4 ranges of ~8 MiB: each more than the socket buffers and channels can hold.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 4096) FROM seq_1_to_8000"
        ),
    );
    exec(rt, c, &format!("ANALYZE TABLE `{db}`.big"));
    let mut session = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&db], 4, 64 * 1024),
        ))
        .expect("dump starts");
    let stream = &mut session.databases[0].tables[0];
    let first = stream
        .parts
        .blocking_recv()
        .expect("a first part")
        .expect("ok");
    assert_eq!(first.path, "data/big.000001.tsv");

    // The ranges are read concurrently: give the later ones time to start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let ids = strings(
            rt,
            c,
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND INFO LIKE '%`{db}`.`big` WHERE%'"
            ),
        );
        if ids.len() >= 4 || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ids.len(), 4, "the table is read as 4 concurrent key ranges");
    // Kill the last range only: the first ranges complete, and the table must still fail.
    let last = ids
        .iter()
        .map(|r| r[0].clone().unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    let _ = rt.block_on(c.query_drop(format!("KILL {last}")));

    let mut received = first.bytes.len();
    let err = loop {
        match stream.parts.blocking_recv() {
            Some(Ok(part)) => received += part.bytes.len(),
            Some(Err(e)) => break e,
            None => panic!("the table ended without an error after {received} bytes"),
        }
    };
    assert!(matches!(err, DbError::Query { .. }), "{err:?}");
    assert!(err.to_string().contains("big"), "{err}");
    assert!(
        stream.parts.blocking_recv().is_none(),
        "the channel closes after the error"
    );
    assert!(received < 8000 * 4096, "all data arrived despite the kill");
    assert!(
        session.results.lock().unwrap().is_empty(),
        "a failed table has no result"
    );
}
