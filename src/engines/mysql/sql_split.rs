//! Splitting `schema.sql` into statements as the `mysql` client does, with their sections.

use super::connect::one_line;
use super::schema::{is_word, SECTION_MARKER, SECTION_PREAMBLE};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Statement {
    pub(super) section: String,
    pub(super) sql: String,
}

/// Splits SQL as the `mysql` client does: `;` (or the current `DELIMITER`) outside quotes and
/// comments ends a statement. Comments are dropped except `/*! ... */`, which the server runs.
/// `-- kfguard:section NAME` lines between statements set the section of those that follow.
pub(super) fn split_sql(text: &str) -> Vec<Statement> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut section = SECTION_PREAMBLE.to_string();
    let mut delim: Vec<u8> = b";".to_vec();
    let mut cur: Vec<u8> = Vec::new();
    let mut blank = true; // `cur` holds only whitespace
    let mut line_start = true;
    let mut i = 0;
    let line_end = |i: usize| {
        b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p)
    };
    let finish = |cur: &mut Vec<u8>, section: &str, out: &mut Vec<Statement>| {
        let sql = String::from_utf8_lossy(cur).trim().to_string();
        if !sql.is_empty() {
            out.push(Statement {
                section: section.to_string(),
                sql,
            });
        }
        cur.clear();
    };
    while i < b.len() {
        if line_start && blank {
            let end = line_end(i);
            let line = text[i..end].trim();
            if let Some(name) = line.strip_prefix(SECTION_MARKER) {
                section = name.trim().to_string();
                i = end;
                continue;
            }
            let mut words = line.splitn(2, char::is_whitespace);
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("DELIMITER"))
            {
                if let Some(d) = words.next().map(str::trim).filter(|d| !d.is_empty()) {
                    delim = d.as_bytes().to_vec();
                }
                cur.clear();
                i = end;
                continue;
            }
        }
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                cur.push(c);
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    cur.push(d);
                    i += 1;
                    if d == b'\\' && c != b'`' && i < b.len() {
                        cur.push(b[i]);
                        i += 1;
                    } else if d == c {
                        break;
                    }
                }
                blank = false;
                line_start = false;
                continue;
            }
            b'-' if b[i..].starts_with(b"--")
                && b.get(i + 2).is_none_or(u8::is_ascii_whitespace) =>
            {
                i = line_end(i);
                continue;
            }
            b'#' => {
                i = line_end(i);
                continue;
            }
            b'/' if b[i..].starts_with(b"/*") => {
                let end = b[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(b.len(), |p| i + 2 + p + 2);
                if b[i..].starts_with(b"/*!") {
                    cur.extend_from_slice(&b[i..end]);
                    blank = false;
                }
                i = end;
                line_start = false;
                continue;
            }
            _ => {}
        }
        if b[i..].starts_with(&delim) {
            finish(&mut cur, &section, &mut out);
            blank = true;
            line_start = false;
            i += delim.len();
            continue;
        }
        cur.push(c);
        blank &= c.is_ascii_whitespace();
        line_start = c == b'\n';
        i += 1;
    }
    finish(&mut cur, &section, &mut out);
    out
}

/// The name after `keyword` in a CREATE statement's head, for plans and messages.
pub(super) fn object_name(sql: &str, keyword: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let pos = upper.find(&format!(" {keyword} "))? + keyword.len() + 2;
    let rest = sql[pos..].trim_start();
    if let Some(quoted) = rest.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '`' {
                if chars.peek() == Some(&'`') {
                    chars.next();
                } else {
                    break;
                }
            }
            name.push(ch);
        }
        Some(name)
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .map(str::to_string)
    }
}

/// The `ALTER DATABASE CHARACTER SET x COLLATE y` of a schema, if any.
pub(super) fn schema_charset(statements: &[Statement]) -> Option<(String, String)> {
    statements.iter().find_map(|s| {
        let words: Vec<&str> = s.sql.split_whitespace().collect();
        match words.as_slice() {
            [a, d, c, s, cs, co, coll]
                if a.eq_ignore_ascii_case("ALTER")
                    && d.eq_ignore_ascii_case("DATABASE")
                    && c.eq_ignore_ascii_case("CHARACTER")
                    && s.eq_ignore_ascii_case("SET")
                    && co.eq_ignore_ascii_case("COLLATE")
                    && is_word(cs)
                    && is_word(coll) =>
            {
                Some((cs.to_string(), coll.to_string()))
            }
            _ => None,
        }
    })
}

pub(super) fn statement_head(sql: &str) -> String {
    let line = one_line(sql);
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_mysql_client() {
        let sql = "SET A=1; -- c\n-- kfguard:section tables\nCREATE TABLE `a;b` (x varchar(3) DEFAULT ';\\';');\n\
                   /*!40101 SET X=1 */;\n# note\n-- kfguard:section triggers\nDELIMITER ;;\n\
                   CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET @x = 1; SET @y = \"a;;b\"; END;;\nDELIMITER ;\nSELECT 1";
        let s = split_sql(sql);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.section.as_str(), s.sql.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("preamble", "SET A=1"),
                ("tables", "CREATE TABLE `a;b` (x varchar(3) DEFAULT ';\\';')"),
                ("tables", "/*!40101 SET X=1 */"),
                (
                    "triggers",
                    "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET @x = 1; SET @y = \"a;;b\"; END"
                ),
                ("triggers", "SELECT 1"),
            ]
        );
        assert_eq!(object_name(&s[1].sql, "TABLE").as_deref(), Some("a;b"));
        assert_eq!(object_name(&s[3].sql, "TRIGGER").as_deref(), Some("t"));
    }
}
