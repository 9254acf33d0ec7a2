//! Drift: how live Kubernetes objects differ from a snapshot or from pinned manifests.

pub mod fields;
