#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run).
#
# Usage: scripts/test.sh [cargo test args] [-- test harness args]
#   e.g. scripts/test.sh --test integration s3:: -- --nocapture
# Lints (fmt, clippy) run first when KFGUARD_LINT=1 or CI=true.
set -euo pipefail

# Resolve the repo from this file so the script works from any cwd.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

step() { printf '\n==> %s\n' "$*" >&2; }

step "starting test services"
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"
# Tests talk plain http to the local S3; a CA bundle override only gets in the way.
unset AWS_CA_BUNDLE

if [[ ${KFGUARD_LINT:-0} == 1 || ${CI:-} == true ]]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

# Split our args at the first `--`: before it for cargo, after it for the test
# harness, so callers can pass both without doubling the separator.
cargo_args=()
harness_args=()
seen_sep=0
for arg in "$@"; do
  if [[ $seen_sep -eq 0 && $arg == -- ]]; then
    seen_sep=1
  elif [[ $seen_sep -eq 0 ]]; then
    cargo_args+=("$arg")
  else
    harness_args+=("$arg")
  fi
done
# libtest rejects --test-threads given twice; let the caller's value win.
threads=(--test-threads=4)
for arg in "${harness_args[@]}"; do
  [[ $arg == --test-threads* ]] && threads=()
done

# The workspace: kfguard and the stand-in Kubernetes API server its tests use.
step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
step "cargo test --workspace --all-targets"
cargo test --workspace --all-targets "${cargo_args[@]}" -- "${threads[@]}" "${harness_args[@]}"
