//! What the server allows or holds that kfguard cannot dump as data: a missing RELOAD privilege,
//! routines and events.

use super::*;

#[test]
fn without_reload_privilege_falls_back_to_one_connection() {
    let mut my = Db::mysql();
    let db = my.mysql_name("noreload");
    let user = my.mysql_user("noreload");
    let (rt, c) = my.mysql_parts();
    run_ddl(rt, c, &db, "CREATE TABLE t (id int PRIMARY KEY)");
    exec(rt, c, &format!("INSERT INTO `{db}`.t VALUES (1), (2)"));
    let _ = rt.block_on(c.query_drop(format!("DROP USER IF EXISTS '{user}'@'%'")));
    exec(
        rt,
        c,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'kfg-pw'"),
    );
    exec(rt, c, &format!("GRANT ALL ON `{db}`.* TO '{user}'@'%'"));

    let o = Opts::from_url(&mysql_url()).unwrap();
    let conn = Connection {
        url: format!("mysql://{user}@{}:{}", o.ip_or_hostname(), o.tcp_port()),
        password: Some("kfg-pw".into()),
        ..mysql_connection()
    };
    let dumped = dump_all(rt, &conn, &opts(&[&db], 4, 1 << 20)).expect("dump");
    assert_eq!(
        dumped.consistency.get("mode").map(String::as_str),
        Some("single-connection")
    );
    assert!(
        dumped
            .warnings
            .iter()
            .any(|w| w.contains("FLUSH TABLES WITH READ LOCK")),
        "{:?}",
        dumped.warnings
    );
    assert_eq!(dumped.dbs[&db].expected[0].rows, 2);

    // A wrong password for an account that has one.
    let bad = Connection {
        password: Some("wrong".into()),
        ..conn
    };
    assert!(matches!(
        rt.block_on(mysql::dump(&bad, &DumpOptions::default())),
        Err(DbError::Auth { .. })
    ));
}

#[test]
fn routines_and_events_are_warned_about() {
    let mut my = Db::mysql();
    let db = my.mysql_name("routines");
    let (rt, c) = my.mysql_parts();
    run_ddl(rt, c, &db, "CREATE TABLE t (id int PRIMARY KEY)");
    exec(
        rt,
        c,
        &format!("CREATE PROCEDURE `{db}`.cleanup() BEGIN DELETE FROM t; END"),
    );
    exec(
        rt,
        c,
        &format!("CREATE FUNCTION `{db}`.two() RETURNS int DETERMINISTIC RETURN 2"),
    );
    exec(
        rt,
        c,
        &format!("CREATE EVENT `{db}`.nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&db], 1, 1 << 20)).expect("dump");
    let mine: BTreeSet<&String> = dumped.warnings.iter().filter(|w| w.contains(&db)).collect();
    let expect = [
        format!("stored procedure `{db}`.`cleanup` not captured"),
        format!("stored function `{db}`.`two` not captured"),
        format!("event `{db}`.`nightly` not captured"),
    ];
    for e in &expect {
        assert!(mine.contains(e), "{e} not in {mine:?}");
    }
}
