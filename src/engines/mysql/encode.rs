//! Row encoding in the `LOAD DATA` text format, and its decoding.

use std::io::Write as _;

use mysql_async::consts::ColumnType;
use mysql_async::{Column, Row, Value};

/// The extension of data parts in this format.
pub(crate) const PART_EXT: &str = "tsv";
/// The `LOAD DATA` format clauses; they must match [`escape_into`] and [`decode_field`].
pub(super) const LOAD_FORMAT: &str =
    r"CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'";

/// Appends `b` with the escapes `LOAD DATA ... ESCAPED BY '\\'` undoes.
pub(super) fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len());
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc = match c {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// One field of a data part back to its bytes, as `LOAD DATA ... ESCAPED BY '\\'` reads it;
/// `None` for NULL (`\N`). Undoes [`escape_into`], and reads the server's other escapes too.
pub(crate) fn decode_field(field: &[u8]) -> Option<Vec<u8>> {
    if field == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        // A backslash at the very end stands for itself.
        let Some(&e) = bytes.next() else {
            out.push(b);
            break;
        };
        out.push(match e {
            b'0' => 0,
            b'b' => 8,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'Z' => 26,
            other => other,
        });
    }
    Some(out)
}

/// Shortest text that parses back to the same bits; exponent form outside the usual range so
/// 1e-300 is not 300 zeros. Servers parse decimal text with correctly rounded strtod.
pub(super) fn write_double(out: &mut Vec<u8>, v: f64) {
    // Writing into a Vec cannot fail.
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// Fractional seconds with the column's precision (all six digits when it is unknown).
pub(super) fn write_fraction(out: &mut Vec<u8>, micros: u32, col: Option<&Column>) {
    let fsp = match col.map(mysql_async::Column::decimals) {
        Some(d @ 0..=6) => usize::from(d),
        _ => 6,
    };
    // Never drop digits a value has, whatever the metadata says.
    let fsp = if fsp == 0 && micros != 0 { 6 } else { fsp };
    if fsp > 0 {
        let digits = format!("{micros:06}");
        out.push(b'.');
        out.extend_from_slice(&digits.as_bytes()[..fsp]);
    }
}

pub(super) fn encode_value(out: &mut Vec<u8>, v: &Value, col: Option<&Column>) {
    let ty = col.map(mysql_async::Column::column_type);
    match v {
        Value::NULL => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => escape_into(out, b),
        // YEAR(4) 0000 must stay 0000: the text `0` would load as 2000.
        Value::Int(i) if ty == Some(ColumnType::MYSQL_TYPE_YEAR) => {
            let _ = write!(out, "{i:04}");
        }
        Value::UInt(i) if ty == Some(ColumnType::MYSQL_TYPE_YEAR) => {
            let _ = write!(out, "{i:04}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(i) => {
            let _ = write!(out, "{i}");
        }
        // A float widens exactly; its shortest f64 text parses back to the same float.
        Value::Float(f) => write_double(out, f64::from(*f)),
        Value::Double(d) => write_double(out, *d),
        Value::Date(y, m, d, h, mi, s, us) => {
            let _ = write!(out, "{y:04}-{m:02}-{d:02}");
            let date_only = matches!(
                ty,
                Some(ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE)
            );
            if !date_only {
                let _ = write!(out, " {h:02}:{mi:02}:{s:02}");
                write_fraction(out, *us, col);
            }
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            let _ = write!(out, "{sign}{hours:02}:{mi:02}:{s:02}");
            write_fraction(out, *us, col);
        }
    }
}

pub(super) fn encode_row(out: &mut Vec<u8>, row: Row) {
    let columns = row.columns();
    for (i, v) in row.unwrap_raw().into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        encode_value(out, v.as_ref().unwrap_or(&Value::NULL), columns.get(i));
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value) -> String {
        let mut out = Vec::new();
        encode_value(&mut out, &v, None);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_match_load_data() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\rd\\e\0f\\N");
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\0f\\\\N");
        assert_eq!(enc(Value::NULL), "\\N");
        assert_eq!(enc(Value::Bytes(Vec::new())), "");
    }

    #[test]
    fn decoding_undoes_the_escapes() {
        let raw = b"a\tb\nc\rd\\e\0f\\N\x007\\0";
        let mut out = Vec::new();
        escape_into(&mut out, raw);
        assert_eq!(decode_field(&out).unwrap(), raw);
        assert_eq!(decode_field(b"\\N"), None);
        assert_eq!(decode_field(b"").unwrap(), b"");
        assert_eq!(decode_field(b"\\Z\\b\\q\\").unwrap(), b"\x1a\x08q\\");
    }

    #[test]
    fn doubles_are_shortest_round_trip() {
        for v in [
            0.1 + 0.2,
            1e-300,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456.789,
            5e-324,
        ] {
            let s = enc(Value::Double(v));
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
        }
        assert_eq!(enc(Value::Double(1e-300)), "1e-300");
        assert_eq!(enc(Value::Double(0.5)), "0.5");
        let f = 0.1f32;
        // The text must round-trip to the very same f32, so the comparison is exact on purpose.
        assert_eq!(
            (enc(Value::Float(f)).parse::<f64>().unwrap() as f32).to_bits(),
            f.to_bits()
        );
    }

    #[test]
    fn temporals() {
        assert_eq!(
            enc(Value::Date(2024, 2, 29, 23, 59, 58, 123456)),
            "2024-02-29 23:59:58.123456"
        );
        // Without column metadata, all six digits.
        assert_eq!(enc(Value::Time(true, 1, 2, 3, 4, 0)), "-26:03:04.000000");
    }
}
