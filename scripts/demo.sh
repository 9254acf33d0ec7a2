#!/usr/bin/env bash
# Demo: kfguard's main job on its embedded defaults, end to end.
#   services up -> release build -> stand-in Kubeflow cluster -> discover -> init (once)
#   -> backup -> snapshots -> show -> diff -> restore plans -> check
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

step "building kfguard and the stand-in API server (cargo build --release)"
(cd "$REPO" && cargo build --release -p kfguard -p kube-standin)
# Honour CARGO_TARGET_DIR; a relative one is relative to where cargo ran.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
KFGUARD=$target_dir/release/kfguard
[[ -x $KFGUARD ]] || {
  echo "demo: built binary not found at $KFGUARD" >&2
  exit 1
}

mkdir -p "$DEMO_DIR"
DEMO_ABS=$(cd "$DEMO_DIR" && pwd)

# No Kubernetes API server can run here, so the demo's cluster is the stand-in the tests use
# (tests/standin), seeded from scripts/demo-cluster/: a small Kubeflow with a KFP install config,
# a user profile and a schedule. It serves on a free port until the demo ends.
step "starting a stand-in Kubeflow cluster from scripts/demo-cluster/ (kubeconfig: $DEMO_DIR/kubeconfig)"
rm -f "$DEMO_ABS/kubeconfig"
"$target_dir/release/kube-standin" --fixtures "$REPO/scripts/demo-cluster" --port 0 \
  --kubeconfig "$DEMO_ABS/kubeconfig" 2>"$DEMO_ABS/standin.log" &
standin_pid=$!
trap 'kill "$standin_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  [[ -s $DEMO_ABS/kubeconfig ]] && break
  sleep 0.2
done
[[ -s $DEMO_ABS/kubeconfig ]] || {
  echo "demo: the stand-in API server did not start; see $DEMO_DIR/standin.log" >&2
  exit 1
}
export KFGUARD_KUBECONFIG=$DEMO_ABS/kubeconfig

step "kfguard discover (a kfguard.toml read off the cluster's KFP install; printed, not used)"
"$KFGUARD" discover
if [[ ! -f $DEMO_DIR/password ]]; then
  step "creating a random repository password in $DEMO_DIR/password"
  # umask in a subshell: the file is never readable by others, not even briefly.
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$DEMO_DIR/password")
fi
chmod 600 "$DEMO_DIR/password"

# Small KFP-like demo data on the local services: an `mlpipeline` on MariaDB, an MLMD-like
# `metadb` on PostgreSQL, and an `mlpipeline` bucket on the local S3 server. Idempotent.
step "seeding demo data (MariaDB kfguard_demo_mlpipeline, PostgreSQL kfguard_demo_metadb, bucket kfguard-demo)"
mariadb_cli=$(command -v mariadb || command -v mysql)
"$mariadb_cli" -h127.0.0.1 -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS kfguard_demo_mlpipeline CHARACTER SET utf8mb4;
USE kfguard_demo_mlpipeline;
CREATE TABLE IF NOT EXISTS pipelines (UUID varchar(64) PRIMARY KEY, Name varchar(128) NOT NULL, CreatedAtInSec bigint NOT NULL);
CREATE TABLE IF NOT EXISTS pipeline_versions (UUID varchar(64) PRIMARY KEY, PipelineId varchar(64) NOT NULL, PipelineSpecURI text NOT NULL);
INSERT IGNORE INTO pipelines VALUES ('p1', 'train', 1700000000), ('p2', 'evaluate', 1700000100);
INSERT IGNORE INTO pipeline_versions VALUES ('v1', 'p1', 'minio://kfguard-demo/pipelines/p1'), ('v2', 'p2', 'minio://kfguard-demo/pipelines/p2');
SQL
if ! psql -h 127.0.0.1 -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'kfguard_demo_metadb'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE kfguard_demo_metadb'
fi
psql -h 127.0.0.1 -U postgres -d kfguard_demo_metadb -q <<'SQL'
CREATE TABLE IF NOT EXISTS "Artifact" (id serial PRIMARY KEY, uri text, name text);
INSERT INTO "Artifact" (uri, name) SELECT 'minio://kfguard-demo/v2/artifacts/run-1/model', 'model'
  WHERE NOT EXISTS (SELECT 1 FROM "Artifact");
SQL
# Signed uploads with boto3, as a real client makes them. boto3 comes with moto in the
# virtualenv services.sh owns; when another S3 server was reused, the demo gets its own.
py=${KFGUARD_SERVICES_DIR:-$REPO/.services}/venv/bin/python
if ! "$py" -c 'import boto3' 2>/dev/null; then
  [[ -x $DEMO_DIR/venv/bin/python ]] || python3 -m venv "$DEMO_DIR/venv"
  "$DEMO_DIR/venv/bin/python" -c 'import boto3' 2>/dev/null || "$DEMO_DIR/venv/bin/pip" install -q boto3
  py=$DEMO_DIR/venv/bin/python
fi
"$py" - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["KFGUARD_TEST_S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
if "kfguard-demo" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket="kfguard-demo")
for key in ["pipelines/p1", "pipelines/p2", "v2/artifacts/run-1/model"]:
    s3.put_object(Bucket="kfguard-demo", Key=key, Body=f"demo object {key}\n".encode(), ContentType="text/plain")
PY

# The embedded defaults plus the local sources: what a nightly run on a real cluster does.
cat >"$DEMO_DIR/kfguard.toml" <<TOML
cluster = "demo"

[[databases]]
name = "kfp"
engine = "mysql"
url = "mysql://root@127.0.0.1:3306"
databases = ["kfguard_demo_mlpipeline"]

[[databases]]
name = "mlmd"
engine = "postgres"
url = "postgres://postgres@127.0.0.1:5432"
databases = ["kfguard_demo_metadb"]

[[buckets]]
name = "artifacts"
endpoint = "$KFGUARD_TEST_S3_ENDPOINT"
region = "us-east-1"
bucket = "kfguard-demo"
access_key_id_env = "AWS_ACCESS_KEY_ID"
secret_access_key_env = "AWS_SECRET_ACCESS_KEY"

[kubernetes]
enabled = true                # the cluster comes from KFGUARD_KUBECONFIG
TOML
export KFGUARD_CONFIG=$DEMO_DIR/kfguard.toml
export KFGUARD_REPO=$DEMO_DIR/repo
export KFGUARD_PASSWORD_FILE=$DEMO_DIR/password

if [[ -f $KFGUARD_REPO/config ]]; then
  step "repository $KFGUARD_REPO already initialised"
else
  step "kfguard init ($KFGUARD_REPO)"
  "$KFGUARD" init
fi

step "kfguard backup --tag demo"
# Exit code 3 means "done with warnings" (e.g. a dangling artifact reference): shown, not fatal.
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

step "kfguard diff latest (the live cluster against the snapshot: no drift yet)"
"$KFGUARD" diff latest

step "kfguard restore latest --dry-run (a database restore plan; nothing is changed)"
"$KFGUARD" restore latest --dry-run --into kfguard_demo_restored --database kfp/kfguard_demo_mlpipeline

step "kfguard restore latest --only kubernetes --dry-run (the ordered plan, validated with dryRun=All)"
"$KFGUARD" restore latest --only kubernetes --dry-run --existing overwrite

step "kfguard check --read-data"
"$KFGUARD" check --read-data

step "demo done; state is in $DEMO_DIR/"
