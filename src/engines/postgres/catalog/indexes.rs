//! Indexes that do not back a constraint, and extended statistics, on the tables and
//! materialized views of the backup.

use super::Catalog;
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

/// `CREATE INDEX` and `CREATE STATISTICS` statements of the relations `in_backup` accepts.
pub(super) async fn capture(
    cat: &Catalog<'_>,
    in_backup: impl Fn(u32) -> bool,
) -> Result<String, DbError> {
    let indexes = format!(
        "SELECT i.indrelid, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
         WHERE {USER_NS} AND NOT EXISTS (SELECT 1 FROM pg_constraint co \
           WHERE co.conindid = i.indexrelid AND co.contype IN ('p', 'u', 'x')) \
         ORDER BY i.indrelid, ic.relname"
    );
    let statistics = format!(
        "SELECT s.stxrelid, pg_get_statisticsobjdef(s.oid) FROM pg_statistic_ext s \
         JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {USER_NS} ORDER BY s.stxname"
    );
    let mut section = String::new();
    for sql in [indexes, statistics] {
        for r in cat.rows(&sql).await? {
            let rel: u32 = r.get(0);
            if in_backup(rel) {
                section.push_str(&format!("{};\n", r.get::<_, String>(1)));
            }
        }
    }
    Ok(section)
}
