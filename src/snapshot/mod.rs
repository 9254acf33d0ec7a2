//! Snapshots: writing a virtual tree into the repository, and finding and reading snapshots back.

pub mod archive;
pub mod layout;
pub mod manifest;
pub mod read;
pub mod retention;
pub mod scope;
pub mod select;
pub mod shard;
pub mod show;
pub mod summary;
pub mod tree;
pub mod writer;

pub use scope::Component;

/// Tag of a snapshot whose backup has not been verified complete. Such snapshots are hidden,
/// never used as a parent or as `latest`, and removed by `forget`.
pub const INCOMPLETE_TAG: &str = "kfguard-incomplete";
/// Tag on every snapshot kfguard writes, to tell them from others in a shared repository.
pub const KFGUARD_TAG: &str = "kfguard";

/// Prefix of the tag that records a snapshot's scope, e.g. `kfguard-scope=buckets+databases`.
pub const SCOPE_TAG_PREFIX: &str = "kfguard-scope=";

/// Tags kfguard gives meaning to (`kfguard`, `kfguard-incomplete`, `kfguard-scope=…`) start
/// with this; a user's tag must not, or it could hide a snapshot or change its retention group.
pub const RESERVED_TAG_PREFIX: &str = "kfguard";

pub fn is_reserved_tag(tag: &str) -> bool {
    tag.get(..RESERVED_TAG_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_TAG_PREFIX))
}

pub fn scope_tag(scope: &str) -> String {
    format!("{SCOPE_TAG_PREFIX}{scope}")
}

/// The full hex id (rustic_core's `Display` prints only the first 8 characters).
pub fn full_id(id: &rustic_core::Id) -> String {
    id.to_hex().to_string()
}
