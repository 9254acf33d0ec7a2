#!/usr/bin/env bash
# Demo: a measured disaster-recovery drill of a small Kubeflow, end to end, on this machine.
#   services up -> release build -> stand-in Kubeflow cluster -> seed data -> discover
#   -> init (once) -> backup -> snapshots, show, diff, restore plans, check -> verify-health
#   -> DISASTER (databases dropped, bucket emptied, cluster wiped)
#   -> runbook restore-cluster -> runbook verify-health -> RTO, per-step times, what was verified
# All demo state lives under ./kfguard-demo/ in the folder you run this from; rerunning reuses
# the repository and password made the first time. The drill report is kfguard-demo/drill.html.
#
# Environment:
#   KFGUARD_DEMO_BIN_DIR  use the kfguard and kube-standin binaries of this folder instead of
#                         a release build (the CI check passes the debug build's)
#   KFGUARD_DEMO_RUNS     pipeline runs to seed (default 2000)
#   KFGUARD_DEMO_NAME     prefix of the demo's databases and bucket (default kfguard_demo)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=./kfguard-demo
RUNS=${KFGUARD_DEMO_RUNS:-2000}
NAME=${KFGUARD_DEMO_NAME:-kfguard_demo}
BUCKET=${NAME//_/-}
DBS=("${NAME}_mlpipeline" "${NAME}_metadb" "${NAME}_cachedb")

step() { printf '\n==> %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

step "starting services (scripts/services.sh up)"
bash "$REPO/scripts/services.sh" up
eval "$(bash "$REPO/scripts/services.sh" env)"
unset AWS_CA_BUNDLE # the local S3 is plain http

if [[ -n ${KFGUARD_DEMO_BIN_DIR:-} ]]; then
  BIN=$KFGUARD_DEMO_BIN_DIR
  step "using the binaries of $BIN"
else
  step "building kfguard and the stand-in API server (cargo build --release)"
  (cd "$REPO" && cargo build --release -p kfguard -p kube-standin)
  # Honour CARGO_TARGET_DIR; a relative one is relative to where cargo ran.
  target_dir=${CARGO_TARGET_DIR:-target}
  [[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
  BIN=$target_dir/release
fi
KFGUARD=$BIN/kfguard
[[ -x $KFGUARD && -x $BIN/kube-standin ]] || {
  echo "demo: kfguard or kube-standin not found in $BIN" >&2
  exit 1
}

mkdir -p "$DEMO_DIR"
DEMO_ABS=$(cd "$DEMO_DIR" && pwd)
export KFGUARD_KUBECONFIG=$DEMO_ABS/kubeconfig

# No Kubernetes API server can run here, so the demo's cluster is the stand-in the tests use
# (tests/standin), seeded from scripts/demo-cluster/ (install/: what Kubeflow's manifests make;
# state/: what kfguard backs up). It stores objects and runs nothing: no kubelet, no
# controllers. scripts/demo-cluster/kubelet.py plays those, through the API.
standin_pid=
start_standin() {
  rm -f "$KUBEFLOW_KUBECONFIG_TMP" "$KFGUARD_KUBECONFIG"
  "$BIN/kube-standin" "$@" --port 0 --kubeconfig "$KUBEFLOW_KUBECONFIG_TMP" 2>>"$DEMO_ABS/standin.log" &
  standin_pid=$!
  for _ in $(seq 1 50); do
    [[ -s $KUBEFLOW_KUBECONFIG_TMP ]] && break
    sleep 0.2
  done
  [[ -s $KUBEFLOW_KUBECONFIG_TMP ]] || {
    echo "demo: the stand-in API server did not start; see $DEMO_DIR/standin.log" >&2
    exit 1
  }
  mv "$KUBEFLOW_KUBECONFIG_TMP" "$KFGUARD_KUBECONFIG"
}
stop_standin() { [[ -z $standin_pid ]] || kill "$standin_pid" 2>/dev/null || true; wait "$standin_pid" 2>/dev/null || true; }
trap stop_standin EXIT
KUBEFLOW_KUBECONFIG_TMP=$DEMO_ABS/kubeconfig.new
: >"$DEMO_ABS/standin.log"
step "starting the STAND-IN API server (not a real cluster) with the Kubeflow of scripts/demo-cluster/"
start_standin --fixtures "$REPO/scripts/demo-cluster"
step "stand-in: kubelet.py plays the kubelet and controllers the stand-in lacks"
python3 "$REPO/scripts/demo-cluster/kubelet.py" "$KFGUARD_KUBECONFIG"

step "kfguard discover (a kfguard.toml read off the cluster's KFP install; printed, not used)"
"$KFGUARD" discover
if [[ ! -f $DEMO_DIR/password ]]; then
  step "creating a random repository password in $DEMO_DIR/password"
  # umask in a subshell: the file is never readable by others, not even briefly.
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$DEMO_DIR/password")
fi
chmod 600 "$DEMO_DIR/password"

# KFP-like databases on the local MariaDB, as KFP keeps them: `mlpipeline` (pipelines, runs),
# `metadb` (ML Metadata: artifacts with their URIs, MLMDEnv) and `cachedb` (cached steps).
# The artifacts they name are objects of the bucket. Made afresh on every run.
step "seeding $RUNS pipeline runs: MariaDB ${DBS[*]}, bucket $BUCKET"
mariadb_cli=$(command -v mariadb || command -v mysql)
sql() { "$mariadb_cli" -h127.0.0.1 -uroot "$@"; }
sql <<SQL
SET SESSION max_recursive_iterations = 100000;
DROP DATABASE IF EXISTS ${DBS[0]};
DROP DATABASE IF EXISTS ${DBS[1]};
DROP DATABASE IF EXISTS ${DBS[2]};
CREATE DATABASE ${DBS[0]} CHARACTER SET utf8mb4;
CREATE DATABASE ${DBS[1]} CHARACTER SET utf8mb4;
CREATE DATABASE ${DBS[2]} CHARACTER SET utf8mb4;
USE ${DBS[0]};
CREATE TABLE pipelines (UUID varchar(64) PRIMARY KEY, Name varchar(128) NOT NULL, CreatedAtInSec bigint NOT NULL, Namespace varchar(63) NOT NULL);
CREATE TABLE pipeline_versions (UUID varchar(64) PRIMARY KEY, PipelineId varchar(64) NOT NULL, PipelineSpecURI text NOT NULL);
CREATE TABLE experiments (UUID varchar(64) PRIMARY KEY, Name varchar(128) NOT NULL, Namespace varchar(63) NOT NULL);
CREATE TABLE run_details (UUID varchar(64) PRIMARY KEY, ExperimentUUID varchar(64), PipelineId varchar(64), State varchar(32), CreatedAtInSec bigint, PipelineRuntimeManifest longtext);
CREATE TABLE jobs (UUID varchar(64) PRIMARY KEY, Name varchar(128), Namespace varchar(63), Enabled tinyint(1), CronSchedule varchar(64));
INSERT INTO pipelines VALUES ('p1', 'train', 1700000000, 'kubeflow-user-example-com'), ('p2', 'evaluate', 1700000100, 'kubeflow-user-team-b');
INSERT INTO pipeline_versions VALUES ('v1', 'p1', 'minio://$BUCKET/pipelines/p1'), ('v2', 'p2', 'minio://$BUCKET/pipelines/p2');
INSERT INTO experiments VALUES ('e1', 'Default', 'kubeflow-user-example-com'), ('e2', 'Default', 'kubeflow-user-team-b');
INSERT INTO jobs VALUES ('j1', 'nightly-train', 'kubeflow-user-example-com', 1, '0 0 2 * * *');
INSERT INTO run_details
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS)
  SELECT CONCAT('run-', i), IF(i % 2 = 0, 'e1', 'e2'), IF(i % 3 = 0, 'p2', 'p1'),
         ELT(1 + i % 4, 'SUCCEEDED', 'SUCCEEDED', 'FAILED', 'SKIPPED'), 1700000000 + i * 60,
         IF(i % 10 = 1, CONCAT('{"run": ', i, ', "model": "minio://$BUCKET/v2/artifacts/run-', i, '/model"}'), CONCAT('{"run": ', i, '}'))
  FROM n;
USE ${DBS[1]};
CREATE TABLE MLMDEnv (schema_version int PRIMARY KEY);
INSERT INTO MLMDEnv VALUES (10);
CREATE TABLE Type (id int PRIMARY KEY, name varchar(255) NOT NULL);
INSERT INTO Type VALUES (1, 'system.Model'), (2, 'system.Metrics'), (3, 'system.Execution');
CREATE TABLE Artifact (id int PRIMARY KEY, type_id int NOT NULL, uri text, name varchar(255), create_time_since_epoch bigint);
INSERT INTO Artifact
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS)
  SELECT i, 1, CONCAT('minio://$BUCKET/v2/artifacts/run-', i, '/model'), 'model', 1700000000000 + i FROM n WHERE i % 10 = 1;
CREATE TABLE Execution (id int PRIMARY KEY, type_id int NOT NULL, last_known_state int, name varchar(255));
INSERT INTO Execution
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS)
  SELECT i, 3, 3, CONCAT('run-', i, '-train') FROM n;
USE ${DBS[2]};
CREATE TABLE execution_caches (ID bigint PRIMARY KEY, ExecutionCacheKey varchar(255), ExecutionTemplate longtext, ExecutionOutput longtext, StartedAtInSec bigint);
INSERT INTO execution_caches
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS / 4)
  SELECT i, SHA2(CONCAT('key-', i), 256), '{"container": "train"}', CONCAT('{"model": "run-', i, '"}'), 1700000000 + i FROM n;
SQL

# Signed uploads with boto3, as a real client makes them. boto3 comes with moto in the
# virtualenv services.sh owns; when another S3 server was reused, the demo gets its own.
py=${KFGUARD_SERVICES_DIR:-$REPO/.services}/venv/bin/python
if ! "$py" -c 'import boto3' 2>/dev/null; then
  [[ -x $DEMO_DIR/venv/bin/python ]] || python3 -m venv "$DEMO_DIR/venv"
  "$DEMO_DIR/venv/bin/python" -c 'import boto3' 2>/dev/null || "$DEMO_DIR/venv/bin/pip" install -q boto3
  py=$DEMO_DIR/venv/bin/python
fi
# bucket.py: seed (the artifacts the databases name), empty (the disaster), digest (every
# object's key and SHA-256, to compare before and after).
bucket() { "$py" "$REPO/scripts/demo-cluster/bucket.py" "$BUCKET" "$@"; }
bucket seed "$RUNS"

# The local sources: what a nightly run on a real cluster backs up.
cat >"$DEMO_DIR/kfguard.toml" <<TOML
cluster = "demo"

[[databases]]
name = "kfp"
engine = "mysql"
url = "mysql://root@127.0.0.1:3306"
databases = ["${DBS[0]}", "${DBS[1]}", "${DBS[2]}"]

[[buckets]]
name = "artifacts"
endpoint = "$KFGUARD_TEST_S3_ENDPOINT"
region = "us-east-1"
bucket = "$BUCKET"
access_key_id_env = "AWS_ACCESS_KEY_ID"
secret_access_key_env = "AWS_SECRET_ACCESS_KEY"

[kubernetes]
enabled = true                # the cluster comes from KFGUARD_KUBECONFIG

[runbooks]
dir = "$REPO/runbooks"        # the shipped runbooks
state_dir = "$DEMO_ABS/runs"
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
"$KFGUARD" restore latest --dry-run --into "${NAME}_restored" --database "kfp/${DBS[0]}"

step "kfguard restore latest --only kubernetes --dry-run (the ordered plan, validated with dryRun=All)"
"$KFGUARD" restore latest --only kubernetes --dry-run --existing overwrite

step "kfguard check --read-data"
"$KFGUARD" check --read-data

step "kfguard runbook run verify-health (before the disaster: the baseline)"
"$KFGUARD" runbook run verify-health --fail-on warning

# What the drill compares with afterwards: each table's checksum and rows, each object's bytes.
checksums() {
  for db in "${DBS[@]}"; do
    tables=$(sql -N -e "SELECT GROUP_CONCAT(table_name ORDER BY table_name) FROM information_schema.tables WHERE table_schema = '$db'")
    for t in ${tables//,/ }; do
      printf '%s.%s %s %s\n' "$db" "$t" "$(sql -N -e "SELECT COUNT(*) FROM $db.$t")" \
        "$(sql -N -e "CHECKSUM TABLE $db.$t EXTENDED" | cut -f2)"
    done
  done
}
checksums >"$DEMO_ABS/tables.before"
bucket digest >"$DEMO_ABS/objects.before"

step "DISASTER: dropping ${DBS[*]}, emptying bucket $BUCKET, losing the cluster"
for db in "${DBS[@]}"; do sql -e "DROP DATABASE $db"; done
bucket empty
stop_standin
# The new cluster: Kubeflow installed from its manifests (scripts/demo-cluster/install/), with
# none of its state: no profiles, no CRDs, no schedules, no data.
step "a new STAND-IN cluster with only Kubeflow's manifests applied (scripts/demo-cluster/install/)"
start_standin --fixtures "$REPO/scripts/demo-cluster/install"
python3 "$REPO/scripts/demo-cluster/kubelet.py" "$KFGUARD_KUBECONFIG"

step "kfguard runbook run restore-cluster --yes --report-html $DEMO_DIR/drill.html"
t0=$(now_ms)
"$KFGUARD" runbook run restore-cluster --yes --report-html "$DEMO_DIR/drill.html" \
  --report "$DEMO_DIR/restore.json"
step "stand-in: kubelet.py starts the restored Deployments' pods (the stand-in runs none itself)"
python3 "$REPO/scripts/demo-cluster/kubelet.py" "$KFGUARD_KUBECONFIG"
step "kfguard runbook run verify-health --fail-on warning"
"$KFGUARD" runbook run verify-health --fail-on warning --report "$DEMO_DIR/verify.json"
t1=$(now_ms)

step "kfguard diff latest (the restored cluster against the snapshot: only the schedules differ, restored disabled)"
rc=0
"$KFGUARD" diff latest >"$DEMO_ABS/diff.after" || rc=$?
cat "$DEMO_ABS/diff.after"
if [[ $rc -ne 0 && $rc -ne 3 ]]; then
  echo "demo: kfguard diff failed (exit $rc)" >&2
  exit "$rc"
fi

checksums >"$DEMO_ABS/tables.after"
bucket digest >"$DEMO_ABS/objects.after"
diff -u "$DEMO_ABS/tables.before" "$DEMO_ABS/tables.after" >&2 || {
  echo "demo: the restored tables differ from the backed-up ones" >&2
  exit 1
}
diff -u "$DEMO_ABS/objects.before" "$DEMO_ABS/objects.after" >&2 || {
  echo "demo: the restored objects differ from the backed-up ones" >&2
  exit 1
}

step "the drill"
python3 - "$DEMO_ABS" "$t0" "$t1" <<'PY'
import json, sys
demo, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
restore = json.load(open(f"{demo}/restore.json"))
tables = [l.split() for l in open(f"{demo}/tables.after")]
objects = [l.split() for l in open(f"{demo}/objects.after")]
print(f"RTO: {(t1 - t0) / 1000:.2f} s, from the start of restore-cluster to a green verify-health")
print("restore-cluster, step by step:")
verified = {}
for s in restore["steps"]:
    print(f"  {s['name']:<24} {s['duration_ms'] / 1000:>7.2f} s  {s['outcome']}")
    out = s.get("output")
    if isinstance(out, dict) and isinstance(out.get("verified"), dict):
        for k, v in out["verified"].items():
            verified[k] = verified.get(k, 0) + v
print("verified by the restore (each table against the manifest's rows and checksum, each object on upload):")
for k, v in verified.items():
    print(f"  {k}: {v}")
rows = sum(int(t[1]) for t in tables)
print(f"checked by the drill: {len(tables)} tables and {rows} rows with checksums equal, "
      f"{len(objects)} objects byte-equal (SHA-256), {verified.get('kubernetes', 0)} Kubernetes objects restored")
drift = [l.strip() for l in open(f"{demo}/diff.after") if "drift" in l]
if drift:
    print(f"the cluster against the snapshot: {drift[-1]}")
print(f"the drill report: {demo}/drill.html")
PY

step "demo done; state is in $DEMO_DIR/ (the cluster was the stand-in API server, not a real one)"
