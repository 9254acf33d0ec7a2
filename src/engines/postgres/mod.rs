//! The PostgreSQL engine: consistent, parallel, streaming dumps and verified restores, with
//! `tokio-postgres` only (no `pg_dump`, no `psql`).
//!
//! **Dump.** Per database a coordinator connection opens a `REPEATABLE READ, READ ONLY`
//! transaction, exports its snapshot (`pg_export_snapshot()`), reads the schema from the
//! catalogs and takes `ACCESS SHARE` locks on the selected tables (so no `DROP`/`ALTER`/
//! `TRUNCATE` can slip in). Up to `jobs` worker connections import that snapshot with
//! `SET TRANSACTION SNAPSHOT` before [`dump`] returns, so every table of a database is read at
//! the same point. Each table is streamed as `COPY (SELECT … ORDER BY <primary key>) TO STDOUT`
//! in text format, cut at row boundaries into parts of at most `part_bytes`, and checksummed
//! with [`super::RowChecksum`]. A table with a one-column integer primary key larger than a few parts
//! is read in key ranges by several workers at once (as many as are free when it starts); the
//! ranges are concatenated in key order, so its bytes, parts and checksum are those of the
//! single stream (see `dump::dispatch` for why this cannot deadlock). The coordinator stays open
//! (holding the locks) until the last table of its database is done.
//!
//! Files per database: `schema.sql` (schemas, extensions, enum/domain/composite types,
//! functions, sequences, tables, views, comments) runs before the data; `post.sql` (primary,
//! unique, exclusion, check and foreign-key constraints, indexes, extended statistics,
//! triggers, materialized-view refreshes and `setval` of every sequence) runs after it. Both are
//! plain SQL that `psql` can run. Objects not captured (aggregates, operators, rules, policies,
//! range types, …) are reported as warnings, never dropped silently. Ownership and privileges
//! are not captured: restored objects belong to the restoring role.
//!
//! **Determinism.** Workers set `extra_float_digits = 3` (shortest exact floats),
//! `DateStyle = ISO`, `IntervalStyle = postgres`, `TimeZone = UTC`, `client_encoding = UTF8`
//! and `bytea_output = hex`, and rows come in primary-key order (tables without one are ordered
//! by their row text in the "C" collation), so an unchanged table dumps to identical bytes.
//!
//! **Restore.** Creates the target database (with the source's encoding and locale when the
//! server has it), runs `schema.sql` in one transaction, loads tables in parallel with
//! `COPY … FROM STDIN`, runs `post.sql` in one transaction, then re-reads every table through the
//! dump's own code path and compares row count and checksum with the manifest.
//!
//! A table's channel ends with an `Err` if its connection fails; its entry in
//! `DumpSession::results` is written just before its last part is sent, so a channel that
//! closes without one (the runtime shut down) means the table is incomplete.
//!
//! Connections are plain TCP (`NoTls`). Servers older than PostgreSQL 12 are not supported.

mod catalog;
mod connect;
mod copy;
mod dump;
pub(crate) mod query;
mod quote;
mod ranges;
mod restore;
mod sql_split;

pub use dump::dump;
pub use restore::restore;

/// Session settings of every dump, restore and verify connection: they fix the text form of
/// every value, so the same rows always produce the same bytes.
const SESSION_SETTINGS: &str = "SET extra_float_digits = 3; SET DateStyle = ISO; \
     SET IntervalStyle = postgres; SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; \
     SET bytea_output = hex; SET standard_conforming_strings = on; SET statement_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0; SET search_path = ''";

/// Preamble of `schema.sql` and `post.sql`; the empty search path matches the dump session,
/// in which every name printed by `pg_get_*def` is schema-qualified.
const FILE_SETTINGS: &str = "SET client_encoding = 'UTF8';\n\
     SET standard_conforming_strings = on;\n\
     SET check_function_bodies = false;\n\
     SET client_min_messages = warning;\n\
     SELECT pg_catalog.set_config('search_path', '', false);\n";

/// Prefix of the `schema.sql` comment line that carries the database's encoding and locale.
const DATABASE_HEADER: &str = "-- kfguard-database: ";

/// Namespaces that hold user objects (`n` is `pg_namespace`).
const USER_NS: &str = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";
