//! Relations and columns: which tables are backed up (with a warning for partitioned, foreign
//! and inheriting tables), and their `CREATE TABLE` statements and comments.

use std::collections::{HashMap, HashSet};

use super::sequences::Sequence;
use super::{collate, not_extension, Catalog};
use crate::engines::postgres::copy::table_name;
use crate::engines::postgres::quote::literal;
use crate::engines::postgres::USER_NS;
use crate::engines::{DbError, DumpOptions};

/// A relation of a user schema: table, partitioned or foreign table, view or materialized view.
pub(super) struct Rel {
    pub(super) oid: u32,
    pub(super) kind: String,
    pub(super) qname: String,
    pub(super) name: String,
    pub(super) unlogged: bool,
    pub(super) is_partition: bool,
    pub(super) options: Option<String>,
    pub(super) comment: Option<String>,
    pub(super) row_security: bool,
    pub(super) inherits: bool,
    pub(super) viewdef: Option<String>,
    pub(super) populated: bool,
}

/// One stored or generated column, for `CREATE TABLE`.
pub(super) struct Column {
    pub(super) attnum: i32,
    pub(super) qname: String,
    type_sql: String,
    not_null: bool,
    identity: String,
    generated: String,
    default: Option<String>,
    collation: String,
    comment: Option<String>,
}

/// Every relation of the user schemas, in creation (oid) order.
pub(super) async fn relations(cat: &Catalog<'_>) -> Result<Vec<Rel>, DbError> {
    let sql = format!(
        "SELECT c.oid, c.relkind::text, n.nspname::text, c.relname::text, \
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relpersistence = 'u', \
           c.relispartition, array_to_string(c.reloptions, ', '), \
           obj_description(c.oid, 'pg_class'), c.relrowsecurity, \
           EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid), \
           CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, c.relispopulated \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {USER_NS} AND {} ORDER BY c.oid",
        not_extension("pg_class", "c.oid")
    );
    Ok(cat
        .rows(&sql)
        .await?
        .iter()
        .map(|r| Rel {
            oid: r.get(0),
            kind: r.get(1),
            name: table_name(&r.get::<_, String>(2), &r.get::<_, String>(3)),
            qname: r.get(4),
            unlogged: r.get(5),
            is_partition: r.get(6),
            options: r.get::<_, Option<String>>(7).filter(|o| !o.is_empty()),
            comment: r.get(8),
            row_security: r.get(9),
            inherits: r.get(10),
            viewdef: r.get(11),
            populated: r.get(12),
        })
        .collect())
}

/// The ordinary tables the options select; warns about what of them, or of other selected
/// relations, is not captured.
pub(super) fn select<'r>(
    cat: &mut Catalog<'_>,
    rels: &'r [Rel],
    opts: &DumpOptions,
) -> Vec<&'r Rel> {
    let mut tables: Vec<&Rel> = Vec::new();
    for rel in rels {
        match rel.kind.as_str() {
            "r" if opts.selects(&rel.name) => {
                if rel.inherits && !rel.is_partition {
                    cat.warn(format!(
                        "table {} inherits from another table: inheritance not captured, it is \
                         restored as a standalone table",
                        rel.name
                    ));
                }
                if rel.row_security {
                    cat.warn(format!(
                        "row-level security of table {} not captured",
                        rel.name
                    ));
                }
                tables.push(rel);
            }
            "p" if opts.selects(&rel.name) => cat.warn(format!(
                "partitioned table {} not captured; its partitions are backed up as standalone \
                 tables",
                rel.name
            )),
            "f" if opts.selects(&rel.name) => {
                cat.warn(format!("foreign table {} not captured", rel.name));
            }
            _ => {}
        }
    }
    tables
}

/// The columns of the selected tables, by table oid, in column order.
pub(super) async fn columns(
    cat: &Catalog<'_>,
    table_oids: &HashSet<u32>,
) -> Result<HashMap<u32, Vec<Column>>, DbError> {
    let sql = format!(
        "SELECT a.attrelid, a.attnum::int4, quote_ident(a.attname), \
           format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity::text, \
           a.attgenerated::text, pg_get_expr(ad.adbin, ad.adrelid), {}, \
           col_description(a.attrelid, a.attnum) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE c.relkind = 'r' AND {USER_NS} AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        collate("a.attcollation", "a.atttypid")
    );
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in cat.rows(&sql).await? {
        let rel: u32 = r.get(0);
        if !table_oids.contains(&rel) {
            continue;
        }
        columns.entry(rel).or_default().push(Column {
            attnum: r.get(1),
            qname: r.get(2),
            type_sql: r.get(3),
            not_null: r.get(4),
            identity: r.get(5),
            generated: r.get(6),
            default: r.get(7),
            collation: r.get(8),
            comment: r.get(9),
        });
    }
    Ok(columns)
}

/// `CREATE TABLE` of every selected table, then `ALTER SEQUENCE … OWNED BY` of serial
/// sequences; table and column comments go to `comments`.
pub(super) fn create(
    tables: &[&Rel],
    columns: &HashMap<u32, Vec<Column>>,
    sequences: &[Sequence],
    comments: &mut String,
) -> String {
    let mut section = String::new();
    for t in tables {
        let cols: Vec<String> = columns
            .get(&t.oid)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|col| column_sql(t, col, sequences, comments))
            .collect();
        section.push_str(&format!(
            "CREATE {}TABLE {} (\n{}\n){};\n\n",
            if t.unlogged { "UNLOGGED " } else { "" },
            t.qname,
            cols.join(",\n"),
            t.options
                .as_ref()
                .map(|o| format!(" WITH ({o})"))
                .unwrap_or_default()
        ));
        if let Some(comment) = &t.comment {
            comments.push_str(&format!(
                "COMMENT ON TABLE {} IS {};\n",
                t.qname,
                literal(comment)
            ));
        }
    }
    for s in sequences.iter().filter(|s| !s.identity) {
        let Some((rel, att)) = s.owner else { continue };
        let Some(col) = columns
            .get(&rel)
            .and_then(|cols| cols.iter().find(|c| c.attnum == att))
        else {
            continue;
        };
        let Some(t) = tables.iter().find(|t| t.oid == rel) else {
            continue;
        };
        section.push_str(&format!(
            "ALTER SEQUENCE {} OWNED BY {}.{};\n",
            s.qname, t.qname, col.qname
        ));
    }
    section
}

/// One column of `CREATE TABLE` (generated, identity or default, and `NOT NULL`); its comment
/// goes to `comments`.
fn column_sql(t: &Rel, col: &Column, sequences: &[Sequence], comments: &mut String) -> String {
    let mut s = format!("    {} {}{}", col.qname, col.type_sql, col.collation);
    if col.generated == "s" {
        if let Some(expr) = &col.default {
            s.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
        }
    } else if !col.identity.is_empty() {
        let seq = sequences
            .iter()
            .find(|s| s.identity && s.owner == Some((t.oid, col.attnum)));
        let kind = if col.identity == "a" {
            "ALWAYS"
        } else {
            "BY DEFAULT"
        };
        s.push_str(&format!(" GENERATED {kind} AS IDENTITY"));
        if let Some(seq) = seq {
            s.push_str(&format!(" ({})", seq.options));
        }
    } else if let Some(expr) = &col.default {
        s.push_str(&format!(" DEFAULT {expr}"));
    }
    if col.not_null {
        s.push_str(" NOT NULL");
    }
    if let Some(comment) = &col.comment {
        comments.push_str(&format!(
            "COMMENT ON COLUMN {}.{} IS {};\n",
            t.qname,
            col.qname,
            literal(comment)
        ));
    }
    s
}
