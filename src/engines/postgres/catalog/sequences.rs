//! Sequences: their definitions (identity sequences come with their column), the owning
//! column of serial sequences, and their values, set after the data is in.

use std::collections::HashMap;

use super::tables::{Column, Rel};
use super::{not_extension, Catalog};
use crate::engines::postgres::connect::query_err;
use crate::engines::postgres::quote::{literal, unquote_ident};
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

pub(super) struct Sequence {
    pub(super) qname: String,
    pub(super) type_sql: String,
    pub(super) options: String,
    /// Owning table oid and column number, of serial and identity sequences.
    pub(super) owner: Option<(u32, i32)>,
    pub(super) identity: bool,
    pub(super) last_value: i64,
    pub(super) is_called: bool,
}

/// Every user sequence, with the owning column of serial and identity sequences.
pub(super) async fn read(cat: &Catalog<'_>) -> Result<Vec<Sequence>, DbError> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, \
           s.seqcache, s.seqcycle, d.refobjid, d.refobjsubid, d.deptype::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_sequence s ON s.seqrelid = c.oid \
         LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid \
           AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 \
           AND d.deptype IN ('a', 'i') \
         WHERE c.relkind = 'S' AND {USER_NS} AND {} ORDER BY c.oid",
        not_extension("pg_class", "c.oid")
    );
    let mut sequences = Vec::new();
    for r in cat.rows(&sql).await? {
        let qname: String = r.get(0);
        let options = format!(
            "START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{}",
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            r.get::<_, i64>(4),
            r.get::<_, i64>(5),
            r.get::<_, i64>(6),
            if r.get::<_, bool>(7) {
                " CYCLE"
            } else {
                " NO CYCLE"
            }
        );
        // Sequences are not transactional: the value read here is at least the snapshot's.
        let value = cat
            .c
            .query_one(&format!("SELECT last_value, is_called FROM {qname}"), &[])
            .await
            .map_err(|e| query_err("read sequence", cat.db, None, &e))?;
        let owner = match (r.get::<_, Option<u32>>(8), r.get::<_, Option<i32>>(9)) {
            (Some(rel), Some(att)) => Some((rel, att)),
            _ => None,
        };
        sequences.push(Sequence {
            qname,
            type_sql: r.get(1),
            options,
            owner,
            identity: r.get::<_, Option<String>>(10).as_deref() == Some("i"),
            last_value: value.get(0),
            is_called: value.get(1),
        });
    }
    Ok(sequences)
}

/// `CREATE SEQUENCE` of the sequences that are not identity columns (those come with their
/// table).
pub(super) fn create(sequences: &[Sequence]) -> String {
    let mut section = String::new();
    for s in sequences.iter().filter(|s| !s.identity) {
        section.push_str(&format!(
            "CREATE SEQUENCE {} AS {} {};\n",
            s.qname, s.type_sql, s.options
        ));
    }
    section
}

/// `setval` of every sequence whose table is in the backup (or that has none).
pub(super) fn values(
    sequences: &[Sequence],
    tables: &[&Rel],
    columns: &HashMap<u32, Vec<Column>>,
) -> String {
    let mut section = String::new();
    for s in sequences {
        let called = if s.is_called { "true" } else { "false" };
        if s.identity {
            let Some((rel, att)) = s.owner else { continue };
            let (Some(t), Some(col)) = (
                tables.iter().find(|t| t.oid == rel),
                columns
                    .get(&rel)
                    .and_then(|cols| cols.iter().find(|c| c.attnum == att)),
            ) else {
                continue;
            };
            // The identity sequence's name is chosen on creation: look it up by column.
            let column = unquote_ident(&col.qname);
            section.push_str(&format!(
                "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, {}), {}, {called});\n",
                literal(&t.qname),
                literal(&column),
                s.last_value
            ));
        } else {
            section.push_str(&format!(
                "SELECT pg_catalog.setval({}, {}, {called});\n",
                literal(&s.qname),
                s.last_value
            ));
        }
    }
    section
}
