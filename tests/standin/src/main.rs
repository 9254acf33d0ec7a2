//! Runs the stand-in API server from a folder of YAML fixtures and prints a kubeconfig.
fn main() {}
