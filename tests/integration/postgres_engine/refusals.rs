//! Refusals, dry run, force and filters: a restore never overwrites by accident, and a failed
//! one cleans up after itself.

use super::*;

#[test]
fn restore_refuses_non_empty_supports_dry_run_force_and_filters_and_cleans_up_failures() {
    let pg = Db::postgres();
    let src = pg.pg_database("refuse");
    pg.pg_sql(
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
    let target = pg.pg_target("refuse_target");
    let mut req = request(dd, &src, &target);
    req.dry_run = true;
    let plan = restore(&pg, req).expect("dry run").plan;
    assert_eq!(plan[0], format!("create database {target}"));
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
    assert!(!pg.pg_exists(&target));

    // Restore, change the copy, then --force replaces it.
    restore(&pg, request(dd, &src, &target)).expect("restore");
    pg.pg_sql(
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
    assert_eq!(pg.pg_scalar(&target, "SELECT count(*) FROM keep"), "2");
    assert!(pg
        .pg_sql(&target, "SELECT 1 FROM pg_class WHERE relname = 'extra'")
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
    assert!(pg.pg_exists(&target));

    // A database the failed restore created itself is dropped again, and the message says so.
    let fresh = pg.pg_target("tampered_new");
    let err = restore(&pg, request(&bad, &src, &fresh)).expect_err("tampered");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "`{fresh}`, which this restore had created, was dropped"
        )),
        "{msg}"
    );
    assert!(!pg.pg_exists(&fresh));
}
