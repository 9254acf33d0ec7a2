//! Quoting of SQL identifiers and literals, as the dump's SQL files and queries need them.

/// A quoted identifier.
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal (with `standard_conforming_strings = on`).
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Inverse of `quote_ident` for one identifier.
pub(super) fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::postgres::copy::table_name;

    #[test]
    fn quoting() {
        assert_eq!(ident("My \"T\""), "\"My \"\"T\"\"\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(unquote_ident("\"a \"\"b\"\"\""), "a \"b\"");
        assert_eq!(unquote_ident("plain"), "plain");
        assert_eq!(table_name("public", "t"), "t");
        assert_eq!(table_name("kfp", "t"), "kfp.t");
    }
}
