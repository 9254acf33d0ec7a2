//! Fidelity: every column type, charset and edge value comes back byte for byte.

use super::*;

const FIDELITY: &str = r"
CREATE TABLE fidelity (
  id int NOT NULL PRIMARY KEY,
  txt text NULL,
  emoji varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  latin varchar(64) CHARACTER SET latin1 NULL,
  bin_blob longblob NULL,
  vbin varbinary(16) NULL,
  long_text longtext NULL,
  doc json NULL,
  dt datetime(6) NULL,
  ts timestamp(6) NULL DEFAULT NULL,
  ts0 timestamp NULL DEFAULT NULL,
  d date NULL,
  t time(3) NULL,
  y year NULL,
  dbl double NULL,
  flt float NULL,
  dec30 decimal(30,10) NULL,
  ubig bigint unsigned NULL,
  sbig bigint NULL,
  tiny tinyint NULL,
  bits bit(5) NULL,
  bits64 bit(64) NULL,
  e enum('a','b c','') NULL,
  s set('x','y','z') NULL,
  gen_virtual int AS (id * 2) VIRTUAL,
  gen_stored varchar(80) AS (CONCAT('#', id)) PERSISTENT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE no_pk (a int NULL, b varchar(20) NULL) ENGINE=InnoDB;
CREATE TABLE unique_not_null (code varchar(10) NOT NULL, v int NULL, UNIQUE KEY (code)) ENGINE=InnoDB;
CREATE TABLE empty_table (id int PRIMARY KEY, v text) ENGINE=InnoDB;
CREATE TABLE `select` (`from` int PRIMARY KEY, `my col` varchar(10), `back``tick` int) ENGINE=InnoDB;
CREATE TABLE `my table` (`key` varchar(20) PRIMARY KEY, `where` text) ENGINE=InnoDB;
CREATE TABLE one_col (s varchar(10) NULL) ENGINE=InnoDB;
";

#[test]
fn fidelity_round_trip() {
    let mut my = Db::mysql();
    let (src, dst) = (my.mysql_name("fidelity"), my.mysql_name("fidelity_copy"));
    let (rt, c) = my.mysql_parts();
    run_ddl(rt, c, &src, FIDELITY);

    let every_byte: Vec<u8> = (0..=255u8).collect();
    let long_text: String = "line\twith\ttabs\\ and \r\n\\N — ünïcode 🦀\n".repeat(30_000);
    let doubles = [
        0.1 + 0.2,
        1e-300,
        -0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -1.0 / 3.0,
        std::f64::consts::PI,
        123456789.12345678,
        1e16,
        0.0,
    ];
    let floats = [
        0.1f32,
        f32::MAX,
        f32::MIN_POSITIVE,
        -16777217.0,
        std::f32::consts::PI,
        -0.0,
    ];
    let texts: [Option<&str>; 8] = [
        None,
        Some(""),
        Some("\\N"),
        Some("N"),
        Some("a\tb\nc\rd\\e"),
        Some("\\"),
        Some("tail\\"),
        Some("NULL"),
    ];
    rt.block_on(async {
        for (i, &dbl) in doubles.iter().enumerate() {
            let i = i as i64;
            let txt = texts[i as usize % texts.len()];
            let params: Vec<Value> = vec![
                i.into(),
                txt.map(str::to_string).into(),
                Some(["😀 emoji 🎉", "", "ß", "\u{1F9EA}\u{200D}"][i as usize % 4]).into(),
                Some("café naïve").into(),
                match i % 3 {
                    0 => Some(every_byte.clone()),
                    1 => Some(Vec::new()),
                    _ => None,
                }
                .into(),
                Some(vec![0u8, b'\t', b'\n', b'\\', 0xff]).into(),
                (i == 1).then(|| long_text.clone()).into(),
                Some(format!("{{\"k\": [1, 2.5, \"v{i}\\t\\n\"], \"e\": \"🎉\"}}")).into(),
                Value::Date(2024, 2, 29, 23, 59, 58, 123_456 + i as u32),
                Value::Date(2038, 1, 19, 3, 14, 7, 999_999 - i as u32),
                Value::Date(2001, 9, 9, 7, 16, 40, 0),
                Value::Date(1000 + i as u16, 1, 1, 0, 0, 0, 0),
                Value::Time(i % 2 == 1, 1, 2, 3, 4, 567_000),
                Value::Int(if i == 0 { 0 } else { 1901 + i }),
                Value::Double(dbl),
                Value::Float(floats[i as usize % floats.len()]),
                Value::Bytes(
                    ["12345678901234567890.0123456789", "-0.0000000001", "0E-10"][i as usize % 3]
                        .as_bytes()
                        .to_vec(),
                ),
                Value::UInt(if i == 0 { u64::MAX } else { i as u64 }),
                Value::Int(if i == 0 { i64::MIN } else { -i }),
                Value::Int(if i == 0 { -128 } else { 127 }),
                Value::Bytes(vec![(i as u8) & 0x1f]),
                Value::Bytes(vec![0xff, 0, 0x80, b'\t', b'\n', b'\\', 0, i as u8]),
                Value::Bytes(["a", "b c", ""][i as usize % 3].as_bytes().to_vec()),
                Value::Bytes(["x,z", "", "y"][i as usize % 3].as_bytes().to_vec()),
            ];
            c.exec_drop(
                format!(
                    "INSERT INTO `{src}`.fidelity (id, txt, emoji, latin, bin_blob, vbin, long_text, doc, \
                     dt, ts, ts0, d, t, y, dbl, flt, dec30, ubig, sbig, tiny, bits, bits64, e, s) \
                     VALUES ({})",
                    vec!["?"; params.len()].join(", ")
                ),
                params,
            )
            .await
            .unwrap();
        }
        // A NULL in every nullable column.
        c.exec_drop(format!("INSERT INTO `{src}`.fidelity (id) VALUES (100)"), ())
            .await
            .unwrap();
        for (a, b) in [(Some(1), Some("x")), (Some(1), Some("x")), (None, None), (Some(0), Some(""))] {
            c.exec_drop(format!("INSERT INTO `{src}`.no_pk VALUES (?, ?)"), (a, b))
                .await
                .unwrap();
        }
        c.query_drop(format!(
            "INSERT INTO `{src}`.unique_not_null VALUES ('b', 2), ('a', NULL), ('c', 3)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{src}`.`select` VALUES (1, 'x y', 2), (2, NULL, NULL)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{src}`.`my table` VALUES ('k 1', 'where\\tclause'), ('', '')"
        ))
        .await
        .unwrap();
        // A one-column table whose only value is '': an empty line in the data.
        c.query_drop(format!("INSERT INTO `{src}`.one_col VALUES (''), (NULL), ('\\\\N')"))
            .await
            .unwrap();
    });
    // The double -0.0 is stored as such (otherwise the comparison below proves nothing about it).
    let neg_zero = rows_of(rt, c, &src, "fidelity")
        .iter()
        .any(|r| matches!(r[14], Value::Double(d) if d == 0.0 && d.is_sign_negative()));

    let t0 = Instant::now();
    let dumped = dump_all(rt, &mysql_connection(), &opts(&[&src], 2, 1024 * 1024)).expect("dump");
    let d = &dumped.dbs[&src];
    restore_db(rt, d, &src, &dst, 1, false, false).expect("restore");
    eprintln!("fidelity dump + restore: {:?}", t0.elapsed());
    assert_same_databases(rt, c, &src, &dst);
    eprintln!("-0.0 stored as negative zero by the server: {neg_zero}");

    // Warnings: the table without a primary key, not the one with a unique NOT NULL key.
    let no_pk = |t: &str| {
        dumped.warnings.contains(&format!(
            "table `{src}`.`{t}` has no primary key: row order is not guaranteed stable"
        ))
    };
    assert!(no_pk("no_pk") && no_pk("one_col"), "{:?}", dumped.warnings);
    assert!(
        !no_pk("unique_not_null") && !no_pk("fidelity"),
        "{:?}",
        dumped.warnings
    );

    // The empty table is one empty part; quoting-hungry names have readable, safe stems.
    let empty = d.tables.iter().find(|t| t.name == "empty_table").unwrap();
    assert_eq!(empty.parts, vec!["data/empty_table.000001.tsv".to_string()]);
    assert!(d.files[&empty.parts[0]].is_empty());
    assert!(d.files.contains_key("data/my%20table.000001.tsv"));
    let exp = |n: &str| d.expected.iter().find(|e| e.name == n).unwrap().rows;
    assert_eq!(exp("empty_table"), 0);
    assert_eq!(exp("fidelity"), doubles.len() as u64 + 1);
    assert_eq!(exp("one_col"), 3);

    // The data format, spelled out: NULL, '', and the literal \N differ; doubles exact.
    let one_col = &d.files["data/one_col.000001.tsv"];
    let mut lines: Vec<&[u8]> = one_col.split(|&b| b == b'\n').collect();
    lines.sort();
    assert_eq!(lines, vec![&b""[..], b"", b"\\N", b"\\\\N"]);
    let fidelity = d.tables.iter().find(|t| t.name == "fidelity").unwrap();
    assert!(
        fidelity.parts.len() >= 2,
        "the ~1.3 MiB row makes a part of its own"
    );
    let fid: String = fidelity
        .parts
        .iter()
        .map(|p| String::from_utf8_lossy(&d.files[p]).into_owned())
        .collect();
    assert!(
        fid.contains("\t1e-300\t"),
        "doubles in shortest round-trip form"
    );
    assert!(fid.contains("\t0.30000000000000004\t"));
    assert!(fid.contains("\t18446744073709551615\t"));
    assert!(fid.contains("2024-02-29 23:59:58.123456"));
}
