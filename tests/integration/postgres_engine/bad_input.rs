//! Bad input and killed connections are typed errors on the table, never short tables.

use super::*;

#[test]
fn bad_input_fails_with_typed_errors() {
    let pg = Db::postgres();
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
    let pg = Db::postgres();
    let db = pg.pg_database(tag);
    pg.pg_sql(
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
    let killed = pg.pg_sql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND pid <> pg_backend_pid()"
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
