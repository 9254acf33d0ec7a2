//! Bad input: unreachable servers, wrong passwords, missing databases and killed connections are
//! typed errors, never short tables.

use super::*;

#[test]
fn unreachable_server_is_a_connect_error_quickly() {
    let my = Db::mysql();
    let rt = my.rt();
    let conn = Connection {
        url: "mysql://root@127.0.0.1:1".into(),
        ..mysql_connection()
    };
    let t0 = Instant::now();
    let err = rt
        .block_on(mysql::dump(&conn, &DumpOptions::default()))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && !msg.contains('\n'), "{msg}");
}

#[test]
fn wrong_password_is_an_auth_error() {
    let my = Db::mysql();
    let rt = my.rt();
    let conn = Connection {
        password: Some("definitely-not-the-password".into()),
        ..mysql_connection()
    };
    let err = rt
        .block_on(mysql::dump(&conn, &DumpOptions::default()))
        .unwrap_err();
    assert!(matches!(err, DbError::Auth { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("definitely-not"),
        "password leaked: {err}"
    );
}

#[test]
fn missing_database_is_reported() {
    let mut my = Db::mysql();
    let missing = my.mysql_name("does_not_exist");
    let rt = my.rt();
    let err = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&missing], 1, 1 << 20),
        ))
        .unwrap_err();
    match err {
        DbError::NoDatabase { database, .. } => assert_eq!(database, missing),
        other => panic!("expected NoDatabase, got {other:?}"),
    }
}

#[test]
fn killed_connection_mid_dump_is_an_error_not_a_short_table() {
    let mut my = Db::mysql();
    let db = my.mysql_name("kill");
    let (rt, c) = my.mysql_parts();
    run_ddl(
        rt,
        c,
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, payload text)",
    );
    // ~32 MiB: more than the socket buffers can hold, so the server is still sending.
    exec(
        rt,
        c,
        &format!(
            "INSERT INTO `{db}`.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 4096) FROM seq_1_to_8000"
        ),
    );
    let mut session = rt
        .block_on(mysql::dump(
            &mysql_connection(),
            &opts(&[&db], 1, 64 * 1024),
        ))
        .expect("dump starts");
    let stream = &mut session.databases[0].tables[0];
    let first = stream
        .parts
        .blocking_recv()
        .expect("a first part")
        .expect("ok");
    assert_eq!(first.path, "data/big.000001.tsv");

    let ids = strings(
        rt,
        c,
        &format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND (DB = '{db}' OR INFO LIKE '%`{db}`%')"
        ),
    );
    assert!(
        !ids.is_empty(),
        "the dump's connection is not in the process list"
    );
    for id in ids {
        let _ = rt.block_on(c.query_drop(format!("KILL {}", id[0].clone().unwrap())));
    }

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
