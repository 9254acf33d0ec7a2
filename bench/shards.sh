#!/usr/bin/env bash
# Sharded bucket backup on the local S3 server (moto) started by scripts/services.sh: the same
# bucket backed up by N = 1, 2 and 4 shard processes running in parallel on this machine
# (`kfguard backup --only buckets --shard I/N`), each into a fresh repository, then joined by
# `kfguard backup --merge-shards`. Reports the wall time of each shard and of the merge, the
# merge as a fraction of the mean shard (target: under 10%), and a single-pod
# `backup --only buckets` of the same bucket for reference. The merged snapshot is checked to
# hold every object of the bucket, with the same byte count as the single-pod one.
#
# Usage: bench/shards.sh [SIZE_MIB=2048] [OBJECTS=2000] [COUNTS="1 2 4"]
#   KFGUARD_BIN=path: benchmark that binary instead of building a release one.
# `bench/operations.sh` calls it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-2048}
OBJECTS=${2:-2000}
COUNTS=${3:-1 2 4}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-bench-shards.XXXXXX")
BUCKET=kfg-bench-shards-$$
unset AWS_CA_BUNDLE
eval "$(bash "$REPO/scripts/services.sh" env)"
unset AWS_CA_BUNDLE
ENDPOINT=${KFGUARD_TEST_S3_ENDPOINT:-http://127.0.0.1:9000}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

# boto3 uploads the dataset, as in bench/buckets.sh (moto ignores unsigned PUT bodies).
PY=$REPO/.services/bench-venv/bin/python
if ! "$PY" -c 'import boto3' 2>/dev/null; then
  python3 -m venv "$REPO/.services/bench-venv"
  "$REPO/.services/bench-venv/bin/pip" install -q boto3 >&2
fi
if [[ ! -x /usr/bin/time ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi
cleanup() {
  "$PY" - "$BUCKET" "$ENDPOINT" <<'PY' >/dev/null 2>&1 || true
import sys, boto3
from botocore.config import Config
s3 = boto3.resource("s3", endpoint_url=sys.argv[2], region_name="us-east-1",
                    aws_access_key_id="test", aws_secret_access_key="test",
                    config=Config(s3={"addressing_style": "path"}))
b = s3.Bucket(sys.argv[1])
b.objects.all().delete()
b.delete()
PY
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n ${KFGUARD_BIN:-} ]]; then
  cp "$KFGUARD_BIN" "$WORK/kfguard"
else
  (cd "$REPO" && cargo build --release --quiet)
  cp "${CARGO_TARGET_DIR:-$REPO/target}/release/kfguard" "$WORK/kfguard"
fi
# A copy, so that a concurrent build cannot swap the binary under the benchmark.
KFGUARD=$WORK/kfguard

# KFP-like objects, as bench/buckets.sh makes them: a few large, some MiB-sized, many small.
cat >"$WORK/dataset.py" <<'PY'
import random, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config

bucket, size_mib, count, endpoint = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
MiB = 1024 * 1024
rnd = random.Random(42)
large = max(1, count * 3 // 1000)
medium = count * 12 // 100
small = count - large - medium
sizes = [rnd.randint(50, 100) * MiB for _ in range(large)]
smalls = [rnd.randint(200, 64 * 1024) for _ in range(small)]
rest = max(0, size_mib * MiB - sum(sizes) - sum(smalls))
mean = max(MiB, rest // max(1, medium))
sizes += [max(MiB // 2, int(rnd.uniform(0.25, 1.75) * mean)) for _ in range(medium)] + smalls

def put(item):
    i, size = item
    key = "v2/artifacts/pipeline-%d/run-%04d/out-%d.bin" % (i % 7, i % 97, i)
    s3.put_object(Bucket=bucket, Key=key, Body=random.Random(i).randbytes(size))
    return size

s3.create_bucket(Bucket=bucket)
with ThreadPoolExecutor(8) as ex:
    total = sum(ex.map(put, enumerate(sizes)))
print("%d objects, %.0f MiB" % (len(sizes), total / MiB), file=sys.stderr)
PY

echo "bench: uploading ~${SIZE_MIB} MiB in ${OBJECTS} objects to $ENDPOINT/$BUCKET" >&2
t0=$(date +%s)
"$PY" "$WORK/dataset.py" "$BUCKET" "$SIZE_MIB" "$OBJECTS" "$ENDPOINT" 2>&1 | sed 's/^/bench: dataset: /' >&2
echo "bench: dataset uploaded in $(($(date +%s) - t0)) s" >&2
echo "password-for-bench" >"$WORK/password"
cat >"$WORK/kfguard.toml" <<EOF
cluster = "bench"
[[buckets]]
name = "kfp"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
bucket = "$BUCKET"
access_key_id_env = "AWS_ACCESS_KEY_ID"
secret_access_key_env = "AWS_SECRET_ACCESS_KEY"
EOF
cd "$WORK"
export KFGUARD_PASSWORD_FILE=$WORK/password KFGUARD_CONFIG=$WORK/kfguard.toml

# timed LABEL CMD...: runs CMD, writes "seconds max_rss_kib" to $WORK/LABEL.time.
timed() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/$label.time" "$@" >"$WORK/$label.json" 2>"$WORK/$label.err" || {
    rc=$?
    # 3: saved, with warnings.
    if [[ $rc -ne 3 ]]; then
      echo "bench: $label failed ($rc):" >&2
      tail -5 "$WORK/$label.err" >&2
      exit 1
    fi
  }
}
secs() { cut -d' ' -f1 "$WORK/$1.time"; }
field() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$WORK/$1.json" "$2"; }

export KFGUARD_REPO=$WORK/single
"$KFGUARD" -q init >/dev/null
timed single "$KFGUARD" -q --output json backup --only buckets
single_bytes=$(field single 'd["manifest"]["buckets"][0]["bytes"]')
single_objects=$(field single 'd["manifest"]["buckets"][0]["objects"]')
echo "bench: single pod $(secs single) s, $single_objects objects" >&2

report="$WORK/report"
printf '%-3s %-28s %10s %10s %12s %8s\n' N "shard times (s)" "slowest" "merge (s)" "merge/shard" "target" >"$report"
for n in $COUNTS; do
  export KFGUARD_REPO=$WORK/repo-$n
  "$KFGUARD" -q init >/dev/null
  pids=()
  for i in $(seq 0 $((n - 1))); do
    timed "shard-$n-$i" "$KFGUARD" -q --output json backup --only buckets \
      --shard "$i/$n" --shard-run "bench-$n" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  timed "merge-$n" "$KFGUARD" -q --output json backup --merge-shards --shard-run "bench-$n"
  objects=$(field "merge-$n" 'd["manifest"]["buckets"][0]["objects"]')
  bytes=$(field "merge-$n" 'd["manifest"]["buckets"][0]["bytes"]')
  if [[ $objects != "$single_objects" || $bytes != "$single_bytes" ]]; then
    echo "bench: the merge of $n shards holds $objects objects, $bytes bytes; one pod $single_objects, $single_bytes" >&2
    exit 1
  fi
  times=""
  for i in $(seq 0 $((n - 1))); do times+="$(secs "shard-$n-$i") "; done
  mean=$(echo "$times" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s / NF }')
  slowest=$(echo "$times" | awk '{ m = 0; for (i = 1; i <= NF; i++) if ($i > m) m = $i; print m }')
  merge=$(secs "merge-$n")
  frac=$(awk -v m="$merge" -v s="$mean" 'BEGIN { printf "%.3f", (s > 0) ? m / s : 0 }')
  verdict=$(awk -v f="$frac" 'BEGIN { print (f < 0.10) ? "met" : "MISSED" }')
  printf '%-3s %-28s %10s %10s %12s %8s\n' "$n" "$times" "$slowest" "$merge" "$frac" "< 0.10 $verdict" >>"$report"
  echo "bench: N=$n shards $times merge $merge s" >&2
done
printf '\nsingle pod (backup --only buckets): %s s, %s objects, %s MiB\n' "$(secs single)" \
  "$single_objects" "$(awk -v b="$single_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')" >>"$report"
cat "$report"
