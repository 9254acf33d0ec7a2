//! `schema.sql` of one database: tables, views ordered by dependency, triggers, and warnings
//! for what is not captured.

use std::collections::HashSet;
use std::fmt::Write as _;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::catalog::{table_infos, RowOrder, TableInfo};
use super::connect::{cell, cell_or_empty, one_line, qi, qs, query_err, SQL_MODE};
use crate::engines::{DbError, DumpOptions};

/// Marks the parts of `schema.sql`; a comment, so the file stays plain SQL.
pub(super) const SECTION_MARKER: &str = "-- kfguard:section ";
pub(super) const SECTION_PREAMBLE: &str = "preamble";
pub(super) const SECTION_TABLES: &str = "tables";
pub(super) const SECTION_VIEWS: &str = "views";
pub(super) const SECTION_TRIGGERS: &str = "triggers";
pub(super) const SECTION_END: &str = "end";

pub(super) struct CapturedSchema {
    pub(super) sql: String,
    /// The selected base tables.
    pub(super) tables: Vec<TableInfo>,
}

/// Writes `schema.sql` for one database and collects its warnings.
pub(super) async fn capture_schema(
    c: &mut Conn,
    db: &str,
    charset: &str,
    collation: &str,
    server_version: &str,
    opts: &DumpOptions,
    warnings: &mut Vec<String>,
) -> Result<CapturedSchema, DbError> {
    let err =
        |what: &str, table: Option<&str>, e: mysql_async::Error| query_err(what, db, table, &e);
    // Views print references to their own database unqualified only from inside it.
    c.query_drop(format!("USE {}", qi(db)))
        .await
        .map_err(|e| err("USE", None, e))?;
    let infos = table_infos(c, db)
        .await
        .map_err(|e| err("reading table metadata", None, e))?;

    let mut sql = String::new();
    let _ = writeln!(
        sql,
        "-- kfguard schema of database {} (server {server_version})\n\
         -- Replays in order into an empty database: mysql NEWNAME < schema.sql\n\
         SET @kfguard_saved_sql_mode = @@SESSION.sql_mode;\n\
         SET FOREIGN_KEY_CHECKS=0;\n\
         SET NAMES utf8mb4;\n\
         SET SESSION sql_mode = '{SQL_MODE}';",
        qi(db)
    );
    if is_word(charset) && is_word(collation) {
        let _ = writeln!(
            sql,
            "ALTER DATABASE CHARACTER SET {charset} COLLATE {collation};"
        );
    }

    let mut tables = Vec::new();
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_TABLES}");
    for t in infos
        .iter()
        .filter(|t| !t.is_view() && opts.selects(&t.name))
    {
        let full = format!("{}.{}", qi(db), qi(&t.name));
        if !t.is_data() {
            warnings.push(format!(
                "{} `{db}`.`{}` not captured",
                t.kind.to_ascii_lowercase(),
                t.name
            ));
            continue;
        }
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE TABLE {full}"))
            .await
            .map_err(|e| err("SHOW CREATE TABLE", Some(&t.name), e))?;
        let create = row.as_ref().and_then(|r| cell(r, 1)).unwrap_or_default();
        let _ = writeln!(sql, "\n{create};");
        if t.kind == "SYSTEM VERSIONED" {
            warnings.push(format!(
                "table `{db}`.`{}` is system-versioned: only its current rows are captured, \
                 not its history",
                t.name
            ));
        }
        if let Some(engine) = &t.engine {
            if !["innodb", "rocksdb", "tokudb"].contains(&engine.to_ascii_lowercase().as_str()) {
                warnings.push(format!(
                    "table `{db}`.`{}` uses the non-transactional engine {engine}: it is not \
                     covered by the consistent snapshot",
                    t.name
                ));
            }
        }
        if t.order == RowOrder::AllColumns {
            warnings.push(format!(
                "table `{db}`.`{}` has no primary key: row order is not guaranteed stable",
                t.name
            ));
        }
        tables.push(t.clone());
    }

    // Views, ordered so that a view comes after the views it reads.
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_VIEWS}");
    let mut views = Vec::new();
    for t in infos
        .iter()
        .filter(|t| t.is_view() && opts.selects(&t.name))
    {
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE VIEW {}.{}", qi(db), qi(&t.name)))
            .await
            .map_err(|e| err("SHOW CREATE VIEW", Some(&t.name), e))?;
        let create = row.as_ref().and_then(|r| cell(r, 1)).unwrap_or_default();
        views.push((t.name.clone(), strip_definer(&create)));
    }
    for (_, create) in order_views(views) {
        let _ = writeln!(sql, "\n{create};");
    }

    // Triggers of the selected tables, in their firing order.
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_TRIGGERS}");
    let selected: HashSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let triggers: Vec<Row> = c
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (db,),
        )
        .await
        .map_err(|e| err("listing triggers", None, e))?;
    for r in &triggers {
        let name = cell_or_empty(r, 0);
        if !selected.contains(cell_or_empty(r, 1).as_str()) {
            continue;
        }
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE TRIGGER {}.{}", qi(db), qi(&name)))
            .await
            .map_err(|e| err("SHOW CREATE TRIGGER", None, e))?;
        let Some(row) = row else { continue };
        let mode = cell_or_empty(&row, 1);
        let create = strip_definer(&cell_or_empty(&row, 2));
        let _ = writeln!(
            sql,
            "\nSET SESSION sql_mode = {};\nDELIMITER ;;\n{create};;\nDELIMITER ;",
            qs(&mode)
        );
    }

    let _ = writeln!(
        sql,
        "\n{SECTION_MARKER}{SECTION_END}\n\
         SET SESSION sql_mode = @kfguard_saved_sql_mode;\n\
         SET FOREIGN_KEY_CHECKS=1;"
    );

    // Stored routines and events are not captured: say so, one by one.
    let routines: Vec<Row> = c
        .exec(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .map_err(|e| err("listing routines", None, e))?;
    for r in &routines {
        warnings.push(format!(
            "stored {} `{db}`.`{}` not captured",
            cell_or_empty(r, 0).to_ascii_lowercase(),
            cell_or_empty(r, 1)
        ));
    }
    // EVENTS needs the EVENT privilege on some servers; a refusal is itself worth a warning.
    match c
        .exec::<Row, _, _>(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? \
             ORDER BY EVENT_NAME",
            (db,),
        )
        .await
    {
        Ok(events) => {
            for r in &events {
                warnings.push(format!(
                    "event `{db}`.`{}` not captured",
                    cell_or_empty(r, 0)
                ));
            }
        }
        Err(e) => warnings.push(format!(
            "events of `{db}` could not be listed ({}); any events are not captured",
            one_line(&e.to_string())
        )),
    }

    Ok(CapturedSchema { sql, tables })
}

/// A charset or collation name, safe to write into SQL unquoted.
pub(super) fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Removes `DEFINER=user@host` from the head of a CREATE VIEW/TRIGGER: the restoring account
/// becomes the definer, so a restore does not need SUPER or the original account.
pub(super) fn strip_definer(create: &str) -> String {
    let upper = create.to_ascii_uppercase();
    let Some(start) = upper.find("DEFINER=") else {
        return create.to_string();
    };
    // Only in the head, before anything quoted.
    if create[..start].contains(['`', '\'', '"']) {
        return create.to_string();
    }
    let b = create.as_bytes();
    let mut i = start + "DEFINER=".len();
    // user, then optional @host; each quoted or bare.
    for part in 0..2 {
        if part == 1 {
            if b.get(i) != Some(&b'@') {
                break;
            }
            i += 1;
        }
        match b.get(i) {
            Some(&q @ (b'`' | b'\'' | b'"')) => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'@' {
                    i += 1;
                }
            }
        }
    }
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    format!("{}{}", &create[..start], &create[i..])
}

/// Sorts views so that each comes after the views it mentions (by quoted name); a cycle, which
/// the server would not allow anyway, keeps name order.
pub(super) fn order_views(views: Vec<(String, String)>) -> Vec<(String, String)> {
    let names: Vec<String> = views.iter().map(|(n, _)| n.clone()).collect();
    let deps: Vec<Vec<usize>> = views
        .iter()
        .enumerate()
        .map(|(i, (_, sql))| {
            let body = sql.split_once(" AS ").map_or(sql.as_str(), |(_, b)| b);
            names
                .iter()
                .enumerate()
                .filter(|(j, n)| *j != i && body.contains(&qi(n)))
                .map(|(j, _)| j)
                .collect()
        })
        .collect();
    let mut done = vec![false; views.len()];
    let mut order = Vec::with_capacity(views.len());
    while order.len() < views.len() {
        let next = (0..views.len())
            .find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]))
            .or_else(|| (0..views.len()).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    let mut slots: Vec<Option<(String, String)>> = views.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_stripped() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=`a``b`@`localhost` trigger t before insert on x for each row set @a='DEFINER='"),
            "CREATE trigger t before insert on x for each row set @a='DEFINER='"
        );
        assert_eq!(
            strip_definer("CREATE VIEW v AS select 'DEFINER=x'"),
            "CREATE VIEW v AS select 'DEFINER=x'"
        );
    }

    #[test]
    fn views_follow_their_dependencies() {
        let v = vec![
            (
                "a".to_string(),
                "CREATE VIEW `a` AS select * from `b`".to_string(),
            ),
            (
                "b".to_string(),
                "CREATE VIEW `b` AS select * from `t`".to_string(),
            ),
        ];
        let names: Vec<String> = order_views(v).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
