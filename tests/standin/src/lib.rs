//! A stand-in Kubernetes API server for tests: real HTTP, in-memory state.
