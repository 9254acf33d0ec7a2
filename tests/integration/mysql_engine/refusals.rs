//! Refusals, dry run and force: a restore never overwrites by accident, and a failed one drops
//! only what it created.

use super::*;

#[test]
fn restore_refuses_non_empty_database_and_dry_run_changes_nothing() {
    let mut my = Db::mysql();
    let (src, dst) = (my.mysql_name("notempty"), my.mysql_name("notempty_copy"));
    let (rt, c) = my.mysql_parts();
    run_ddl(
        rt,
        c,
        &src,
        "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(20)) DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci;\n\
         CREATE TABLE u (id int PRIMARY KEY)",
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{src}`.t (v) VALUES ('a'), ('b'), ('c')"),
    );
    exec(
        rt,
        c,
        &format!("ALTER DATABASE `{src}` CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 1, 1 << 20)).expect("dump");
    let d = &dumped.dbs[&src];

    // Dry run into a missing database: a plan, and nothing created.
    let report = restore_db(rt, d, &src, &dst, 2, false, true).expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.plan[0], format!("create database {dst}"));
    for p in [
        "create table t",
        "create table u",
        "load 1 parts into t",
        "verify t: 3 rows",
    ] {
        assert!(
            report.plan.iter().any(|x| x == p),
            "{p} not in {:?}",
            report.plan
        );
    }
    let exists = strings(
        rt,
        c,
        &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{dst}'"),
    );
    assert!(exists.is_empty(), "dry run created the database");

    // A real restore creates it with the original charset and collation.
    restore_db(rt, d, &src, &dst, 2, false, false).expect("restore");
    let cs = strings(
        rt,
        c,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = '{dst}'"
        ),
    );
    assert_eq!(
        cs,
        vec![vec![
            Some("latin1".into()),
            Some("latin1_swedish_ci".into())
        ]]
    );

    // Again without --force: refused, and the data is untouched.
    exec(
        rt,
        c,
        &format!("INSERT INTO `{dst}`.t (v) VALUES ('extra')"),
    );
    match restore_db(rt, d, &src, &dst, 2, false, false) {
        Err(e @ DbError::NotEmpty { tables: 2, .. }) => {
            assert!(e.to_string().contains("--force"), "{e}");
        }
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    // Dry run on a non-empty database without force is refused too; with force it plans a drop.
    assert!(matches!(
        restore_db(rt, d, &src, &dst, 2, false, true),
        Err(DbError::NotEmpty { .. })
    ));
    let plan = restore_db(rt, d, &src, &dst, 2, true, true)
        .expect("dry run with force")
        .plan;
    assert_eq!(plan[0], format!("drop 2 tables and views in {dst}"));
    assert_eq!(
        rows_of(rt, c, &dst, "t").len(),
        4,
        "dry run changed the data"
    );

    // --force replaces the tables.
    restore_db(rt, d, &src, &dst, 2, true, false).expect("forced restore");
    assert_same_databases(rt, c, &src, &dst);
}

#[test]
fn checksum_mismatch_fails_loudly_and_drops_only_the_database_the_restore_created() {
    let mut my = Db::mysql();
    let (src, dst) = (my.mysql_name("verify"), my.mysql_name("verify_copy"));
    let (rt, c) = my.mysql_parts();
    run_ddl(
        rt,
        c,
        &src,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))",
    );
    exec(
        rt,
        c,
        &format!("INSERT INTO `{src}`.t VALUES (1, 'a'), (2, 'b')"),
    );
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 1, 1 << 20)).expect("dump");
    let mut d = dumped.dbs[&src].clone();
    // A part altered after the manifest was written.
    let part = d.tables[0].parts[0].clone();
    d.files.insert(part, b"1\ta\n2\tB\n".to_vec());
    let exists = |c: &mut Conn| {
        !strings(
            rt,
            c,
            &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{dst}'"),
        )
        .is_empty()
    };
    let err = restore_db(rt, &d, &src, &dst, 1, false, false).expect_err("tampered");
    match &err {
        DbError::Abandoned { cause, .. } => match &**cause {
            DbError::Verify {
                table,
                rows: 2,
                expected_rows: 2,
                ..
            } => assert_eq!(table, "t"),
            other => panic!("expected Verify, got {other:?}"),
        },
        other => panic!("expected Abandoned, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "`{dst}`, which this restore had created, was dropped"
        )),
        "{msg}"
    );
    assert!(!exists(c), "the half-restored database is gone");

    // A database that existed before is never dropped: it is named as left behind.
    exec(rt, c, &format!("CREATE DATABASE `{dst}`"));
    let err = restore_db(rt, &d, &src, &dst, 1, false, false).expect_err("tampered");
    let msg = err.to_string();
    assert!(
        msg.contains("which existed before, partly restored") && msg.contains("--force"),
        "{msg}"
    );
    assert!(exists(c));
}
