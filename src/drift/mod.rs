//! Drift: how live Kubernetes objects differ from a snapshot or from pinned manifests.

pub mod crds;
pub mod fields;
pub mod objects;
pub mod redact;
