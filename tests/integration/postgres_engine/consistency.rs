//! Consistency: a dump is one snapshot of the database while writers keep writing.

use super::*;

#[test]
fn dump_is_one_consistent_snapshot_under_concurrent_writes() {
    let pg = Db::postgres();
    let db = pg.pg_database("consistency");
    pg.pg_sql(&db,
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
        pg.pg_sql(
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
                    pg.pg_sql(&db, "UPDATE accounts SET balance = 0 WHERE id = 100");
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
