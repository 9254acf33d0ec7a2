//! The MySQL / MariaDB engine: a consistent, parallel, streaming dump into `schema.sql` plus
//! `LOAD DATA` text parts, and a verified restore through `LOAD DATA LOCAL INFILE`.
//!
//! **Consistency.** `jobs` connections are opened; one of them takes `FLUSH TABLES WITH READ
//! LOCK`, every connection starts `START TRANSACTION WITH CONSISTENT SNAPSHOT`, the binlog
//! position is recorded, and the lock is released: all connections then read the same point in
//! time. Where FTWRL is not permitted, one consistent-snapshot connection does everything and
//! the session says so (`consistency["mode"] = "single-connection"` and a warning).
//!
//! **Schema.** `schema.sql` replays in order into an empty database with the stock `mysql`
//! client: a preamble of `SET`s, then tables (`SHOW CREATE TABLE`), views (definer removed,
//! ordered by dependency) and triggers (between `DELIMITER ;;` lines, as mysqldump writes
//! them). `-- kfguard:section NAME` comment lines mark the parts, so a restore can create views
//! and triggers after the data is loaded (triggers must not fire during the load).
//!
//! **Data.** Rows are read in primary-key order through the binary protocol (doubles arrive as
//! IEEE bits, not as server-formatted text) and written in the format that
//! `LOAD DATA ... CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\'
//! LINES TERMINATED BY '\n'` reads back: tab-separated, `\N` for NULL, and `\\ \t \n \r \0`
//! escaped. Strings are read unconverted (`character_set_results = NULL`) and loaded as
//! `binary`, so every column keeps its own bytes whatever its charset. The same reader, with no
//! parts kept, re-reads restored tables to verify their checksums.

mod catalog;
mod connect;
mod dump;
mod encode;
mod pool;
pub(crate) mod query;
mod ranges;
mod read;
mod restore;
mod schema;
mod sql_split;

pub use dump::dump;
pub(crate) use encode::{decode_field, PART_EXT};
pub use restore::restore;
