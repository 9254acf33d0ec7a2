//! Triggers for `post.sql` (their functions are in `schema.sql`), with their enabled state.

use std::collections::HashMap;

use super::tables::Rel;
use super::Catalog;
use crate::engines::DbError;

/// `CREATE TRIGGER` (and `ALTER TABLE … TRIGGER` for a non-default state) of the triggers on
/// relations `in_backup` accepts.
pub(super) async fn capture(
    cat: &Catalog<'_>,
    by_oid: &HashMap<u32, &Rel>,
    in_backup: impl Fn(u32) -> bool,
) -> Result<String, DbError> {
    let sql =
        "SELECT t.tgrelid, pg_get_triggerdef(t.oid), t.tgenabled::text, quote_ident(t.tgname) \
               FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY t.tgrelid, t.tgname";
    let mut section = String::new();
    for r in cat.rows(sql).await? {
        let rel: u32 = r.get(0);
        let Some(target) = by_oid.get(&rel) else {
            continue;
        };
        if !in_backup(rel) {
            continue;
        }
        section.push_str(&format!("{};\n", r.get::<_, String>(1)));
        let state = match r.get::<_, String>(2).as_str() {
            "D" => "DISABLE",
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => continue,
        };
        section.push_str(&format!(
            "ALTER TABLE {} {state} TRIGGER {};\n",
            target.qname,
            r.get::<_, String>(3)
        ));
    }
    Ok(section)
}
