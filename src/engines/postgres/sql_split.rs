//! Splitting `schema.sql` and `post.sql` into statements, as psql does, so a restore can run
//! them one by one in a transaction and name the one that fails.

/// Splits a script into statements at top-level semicolons, skipping quotes, quoted
/// identifiers, dollar-quoted bodies, comments and `BEGIN ATOMIC … END` function bodies (as
/// psql does). Statements that are only comments are dropped.
pub(super) fn split_sql(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut content) = (0, 0, false);
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    // Inside `BEGIN ATOMIC`: nesting of BEGIN/CASE … END; semicolons do not end the statement.
    let (mut atomic, mut after_begin) = (0usize, false);
    let mut finish = |from: usize, to: usize, content: &mut bool| {
        if *content {
            out.push(sql[from..to].trim().to_string());
        }
        *content = false;
    };
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(b, i);
                continue;
            }
            b'\'' => {
                content = true;
                // E'…' strings take backslash escapes.
                let escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident(b[i - 2]));
                i = string_end(b, i, escapes);
            }
            b'"' => {
                content = true;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
            }
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                if let Some(end) = dollar_quote_end(sql, i) {
                    content = true;
                    i = end;
                }
            }
            b';' if atomic == 0 => {
                finish(start, i, &mut content);
                start = i + 1;
                after_begin = false;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                content = true;
                let from = i;
                while i + 1 < b.len() && is_ident(b[i + 1]) {
                    i += 1;
                }
                let word = &sql[from..=i];
                let begin = word.eq_ignore_ascii_case("begin");
                if atomic == 0 {
                    if after_begin && word.eq_ignore_ascii_case("atomic") {
                        atomic = 1;
                    }
                } else if begin || word.eq_ignore_ascii_case("case") {
                    atomic += 1;
                } else if word.eq_ignore_ascii_case("end") {
                    atomic -= 1;
                }
                after_begin = begin;
            }
            c if !c.is_ascii_whitespace() => {
                content = true;
                after_begin = false;
            }
            _ => {}
        }
        i += 1;
    }
    finish(start, b.len().min(sql.len()), &mut content);
    out
}

/// The index just after the (nested) block comment that starts at `i`.
fn block_comment_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// The index of the quote that closes the string opening at `i` (the end if none), with
/// backslash escapes for `E'…'` strings.
fn string_end(b: &[u8], mut i: usize, escapes: bool) -> usize {
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'\'' {
            break;
        }
        i += 1;
    }
    i
}

/// For a dollar quote (`$$` or `$tag$`) opening at `i`: the index of the last `$` of its
/// closing tag (the end if none). `None` if `$` at `i` does not open one (`$1`, a lone `$`).
fn dollar_quote_end(sql: &str, i: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let e = b[i + 1..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
        .map(|p| i + 1 + p)?;
    if b[e] != b'$' || b[i + 1..e].first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &sql[i..=e];
    Some(match sql[e + 1..].find(tag) {
        Some(p) => e + 1 + p + tag.len() - 1,
        None => b.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_quotes_and_bodies() {
        let sql = "-- header; not a statement\nSET a = 1;\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   COMMENT ON TABLE \"x;y\" IS 'it''s; fine';\n\
                   SELECT E'a\\';b', $$;$$ /* ; /* nested ; */ */;\n-- trailing comment\n";
        let stmts = split_sql(sql);
        assert_eq!(stmts.len(), 4, "{stmts:#?}");
        assert!(stmts[1].ends_with("LANGUAGE sql"));
        assert!(stmts[2].ends_with("'it''s; fine'"));
        assert!(stmts[3].starts_with("SELECT E'a"));
        assert!(split_sql("-- only a comment\n").is_empty());
        let atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT CASE \
                      WHEN true THEN 1 END;\n SELECT 2;\nEND;\nSELECT 3;";
        let stmts = split_sql(atomic);
        assert_eq!(stmts.len(), 2, "{stmts:#?}");
        assert!(stmts[0].ends_with("SELECT 2;\nEND"));
        assert_eq!(split_sql("BEGIN; SELECT 1; COMMIT").len(), 3);
    }
}
