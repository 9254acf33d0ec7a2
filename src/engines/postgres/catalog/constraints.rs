//! Table constraints for `post.sql`: primary, unique, exclusion, check and foreign keys, the
//! foreign keys last (one that references a table not in the backup is reported).

use std::collections::HashSet;

use super::tables::Rel;
use super::Catalog;
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

pub(super) async fn capture(
    cat: &mut Catalog<'_>,
    tables: &[&Rel],
    table_oids: &HashSet<u32>,
) -> Result<String, DbError> {
    let sql = format!(
        "SELECT co.conrelid, co.contype::text, quote_ident(co.conname), \
           pg_get_constraintdef(co.oid), co.confrelid, co.conname::text \
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {USER_NS} AND co.contype IN ('p', 'u', 'x', 'c', 'f')"
    );
    let mut constraints = Vec::new();
    for r in cat.rows(&sql).await? {
        let rel: u32 = r.get(0);
        let Some(t) = tables.iter().find(|t| t.oid == rel) else {
            continue;
        };
        let kind: String = r.get(1);
        let order = match kind.as_str() {
            "p" => 0,
            "u" => 1,
            "x" => 2,
            "c" => 3,
            _ => 4,
        };
        let name: String = r.get(2);
        if kind == "f" && !table_oids.contains(&r.get::<_, u32>(4)) {
            cat.warn(format!(
                "foreign key {name} of table {} not captured: it references a table that is \
                 not in the backup",
                t.name
            ));
            continue;
        }
        constraints.push((
            order,
            t.name.clone(),
            r.get::<_, String>(5),
            format!(
                "ALTER TABLE ONLY {} ADD CONSTRAINT {name} {};\n",
                t.qname,
                r.get::<_, String>(3)
            ),
        ));
    }
    constraints.sort();
    Ok(constraints.into_iter().map(|c| c.3).collect())
}
