#!/usr/bin/env bash
# Demo: kfguard's main job on its embedded defaults, end to end.
#   services up -> release build -> init (once) -> backup -> snapshots -> show -> check
# All demo state lives under ./kfguard-demo/ in the folder you run this from;
# rerunning reuses the repository and password made the first time.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=./kfguard-demo

step() { printf '\n==> %s\n' "$*" >&2; }

step "starting services (scripts/services.sh up)"
bash "$REPO/scripts/services.sh" up
eval "$(bash "$REPO/scripts/services.sh" env)"
unset AWS_CA_BUNDLE # the local S3 is plain http

step "building kfguard (cargo build --release)"
(cd "$REPO" && cargo build --release)
# Honour CARGO_TARGET_DIR; a relative one is relative to where cargo ran.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
KFGUARD=$target_dir/release/kfguard
[[ -x $KFGUARD ]] || {
  echo "demo: built binary not found at $KFGUARD" >&2
  exit 1
}

mkdir -p "$DEMO_DIR"
if [[ ! -f $DEMO_DIR/password ]]; then
  step "creating a random repository password in $DEMO_DIR/password"
  # umask in a subshell: the file is never readable by others, not even briefly.
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$DEMO_DIR/password")
fi
chmod 600 "$DEMO_DIR/password"

export KFGUARD_REPO=$DEMO_DIR/repo
export KFGUARD_PASSWORD_FILE=$DEMO_DIR/password

if [[ -f $KFGUARD_REPO/config ]]; then
  step "repository $KFGUARD_REPO already initialised"
else
  step "kfguard init ($KFGUARD_REPO)"
  "$KFGUARD" init
fi

step "kfguard backup --tag demo"
# Exit code 3 means "done with warnings": expected while no source is configured.
rc=0
"$KFGUARD" backup --tag demo || rc=$?
if [[ $rc -ne 0 && $rc -ne 3 ]]; then
  echo "demo: kfguard backup failed (exit $rc)" >&2
  exit "$rc"
fi

step "kfguard snapshots"
"$KFGUARD" snapshots

step "kfguard show latest"
"$KFGUARD" show latest

step "kfguard check --read-data"
"$KFGUARD" check --read-data

step "demo done; state is in $DEMO_DIR/"
