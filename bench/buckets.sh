#!/usr/bin/env bash
# kfguard backup of an artifact bucket vs rclone (+ restic), side by side in one run, on the
# local S3 server (moto) started by scripts/services.sh:
#   (a) kfguard backup --only buckets      vs  rclone copy of the bucket into a second bucket
#   (b) kfguard backup --only buckets      vs  rclone copy to a local folder + restic backup
#   (c) a second night with 1% of the objects new or changed, kfguard vs rclone + restic
#   (d) kfguard restore --only buckets into a new bucket  vs  restic restore to a folder + rclone
#       copy of it into a new bucket; the last run's restored bucket is checked equal to the
#       original, byte for byte (rclone check --download)
# Reports median wall time of N runs (each into fresh repositories, buckets and folders), peak
# RSS, bytes stored and the ratios.
#
# Usage: bench/buckets.sh [SIZE_MIB=2048] [OBJECTS=2000] [RUNS=3]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-2048}
OBJECTS=${2:-2000}
RUNS=${3:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-bench-buckets.XXXXXX")
BUCKET=kfg-bench-$$
# The dataset lives in the S3 server's memory and disk: remove it however the script ends.
cleanup() {
  local b
  for b in $(rclone lsf --dirs-only src: 2>/dev/null | grep "^$BUCKET" || true); do
    rclone purge "src:${b%/}" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
# Debian's rclone refuses plain http when AWS_CA_BUNDLE is set; everything here is loopback.
unset AWS_CA_BUNDLE
eval "$(bash "$REPO/scripts/services.sh" env)"
unset AWS_CA_BUNDLE
ENDPOINT=${KFGUARD_TEST_S3_ENDPOINT:-http://127.0.0.1:9000}

command -v restic >/dev/null || { echo "bench: restic is missing (apt-get install restic)" >&2; exit 1; }
if ! command -v rclone >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >&2
fi
if [[ ! -x /usr/bin/time ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi
# boto3 uploads the dataset (moto ignores unsigned PUT bodies, so plain curl will not do).
PY=$REPO/.services/bench-venv/bin/python
if ! "$PY" -c 'import boto3' 2>/dev/null; then
  python3 -m venv "$REPO/.services/bench-venv"
  "$REPO/.services/bench-venv/bin/pip" install -q boto3 >&2
fi

(cd "$REPO" && cargo build --release --quiet)
# A copy, so that a concurrent build cannot swap the binary under the benchmark.
cp "${CARGO_TARGET_DIR:-$REPO/target}/release/kfguard" "$WORK/kfguard"
KFGUARD=$WORK/kfguard

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
for r in SRC DST; do
  export "RCLONE_CONFIG_${r}_TYPE=s3" "RCLONE_CONFIG_${r}_PROVIDER=Other" \
    "RCLONE_CONFIG_${r}_ENDPOINT=$ENDPOINT" "RCLONE_CONFIG_${r}_REGION=us-east-1" \
    "RCLONE_CONFIG_${r}_ACCESS_KEY_ID=test" "RCLONE_CONFIG_${r}_SECRET_ACCESS_KEY=test" \
    "RCLONE_CONFIG_${r}_FORCE_PATH_STYLE=true"
done
# Two remotes on one server: rclone streams every object through itself, as it would to
# another server, instead of a server-side copy.

# dataset.py BUCKET SIZE_MIB OBJECTS [night2]: deterministic KFP-like objects; "night2" adds
# and rewrites 1% of them.
cat >"$WORK/dataset.py" <<'PY'
import json, random, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config

bucket, size_mib, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
night2 = len(sys.argv) > 4 and sys.argv[4] == "night2"
s3 = boto3.client("s3", endpoint_url=sys.argv[5] if len(sys.argv) > 5 else None,
                  region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
MiB = 1024 * 1024
rnd = random.Random(42)
# KFP-like sizes: ~0.3% large (100-160 MiB), ~12% MiB-sized, the rest small JSON and metrics.
large = max(1, count * 3 // 1000)
medium = count * 12 // 100
small = count - large - medium
sizes = [("large", rnd.randint(100, 160) * MiB) for _ in range(large)]
small_sizes = [("small", rnd.randint(200, 64 * 1024)) for _ in range(small)]
rest = size_mib * MiB - sum(s for _, s in sizes) - sum(s for _, s in small_sizes)
mean = max(MiB, rest // max(1, medium))
sizes += [("medium", max(MiB // 2, int(rnd.uniform(0.25, 1.75) * mean))) for _ in range(medium)]
sizes += small_sizes
rnd.shuffle(sizes)

def key(i, kind):
    run = "run-%04d" % (i % 97)
    if kind == "small":
        name = ("metrics-%d.json" if i % 2 else "executor-output-%d.json") % i
    elif kind == "medium":
        name = "model-%d.bin" % i
    else:
        name = "checkpoint-%d.bin" % i
    return "v2/artifacts/pipeline-%d/%s/%s" % (i % 7, run, name)

def body(i, kind, size, version=0):
    r = random.Random(i * 1000 + version)
    if kind == "small":
        text = json.dumps({"i": i, "version": version,
                           "metrics": [{"name": "m%d" % j, "value": r.random()} for j in range(size // 40)]})
        return text.encode()[:size]
    return r.randbytes(size)

def put(item):
    i, (kind, size), version = item
    s3.put_object(Bucket=bucket, Key=key(i, kind), Body=body(i, kind, size, version),
                  ContentType="application/json" if kind == "small" else "application/octet-stream")
    return size

items = list(enumerate(sizes))
if night2:
    # 1%: half rewritten (metrics and models; KFP never rewrites a large artifact), half new.
    changed = [(i, s, 1) for i, s in items if s[0] != "large"][:: max(1, 200)]
    new = [(count + j, ("small", 4096 + j) if j % 3 else ("medium", 3 * MiB), 0) for j in range(len(changed))]
    work = changed + new
else:
    s3.create_bucket(Bucket=bucket)
    work = [(i, s, 0) for i, s in items]
with ThreadPoolExecutor(8) as ex:
    total = sum(ex.map(put, work))
print("%d objects, %.0f MiB" % (len(work), total / MiB), file=sys.stderr)
PY

echo "bench: uploading ~${SIZE_MIB} MiB in ${OBJECTS} objects to $ENDPOINT/$BUCKET" >&2
t0=$(date +%s)
"$PY" "$WORK/dataset.py" "$BUCKET" "$SIZE_MIB" "$OBJECTS" "" "$ENDPOINT" 2>&1 | sed 's/^/bench: dataset: /' >&2
echo "bench: dataset uploaded in $(($(date +%s) - t0)) s" >&2
echo "password-for-bench" >"$WORK/password"
cat >"$WORK/kfguard.toml" <<EOF
[[buckets]]
name = "kfp"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
bucket = "$BUCKET"
access_key_id_env = "AWS_ACCESS_KEY_ID"
secret_access_key_env = "AWS_SECRET_ACCESS_KEY"
EOF

# run LABEL CMD... : appends "seconds max_rss_kib" to $WORK/LABEL.times
run() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/$label.err" || {
    echo "bench: $label failed:" >&2
    tail -5 "$WORK/$label.err" >&2
    exit 1
  }
  cat "$WORK/time.out" >>"$WORK/$label.times"
  echo "bench: $label $(cat "$WORK/time.out")" >&2
}
# A pipeline of two timed steps: its time is the sum, its peak RSS the larger one.
pipeline() {
  local label=$1 a b
  a=$(tail -1 "$WORK/$label.a.times")
  b=$(tail -1 "$WORK/$label.b.times")
  echo "$a $b" | awk '{ printf "%.2f %d\n", $1 + $3, ($2 > $4) ? $2 : $4 }' >>"$WORK/$label.times"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
bucket_bytes() { rclone size --json "src:$1" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'; }

cd "$WORK"
export KFGUARD_PASSWORD_FILE=$WORK/password RESTIC_PASSWORD_FILE=$WORK/password
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/kr" "$WORK/rr" "$WORK/mirror" "$WORK/restic-cache"
  export KFGUARD_REPO=$WORK/kr RESTIC_REPOSITORY=$WORK/rr RESTIC_CACHE_DIR=$WORK/restic-cache
  "$KFGUARD" -q init >/dev/null
  restic init -q >/dev/null
  run kfguard "$KFGUARD" -q backup --only buckets
  run rclone-s3 rclone copy "src:$BUCKET" "dst:$BUCKET-copy-$i"
  run pipe.a rclone copy "src:$BUCKET" "$WORK/mirror"
  run pipe.b restic -q backup "$WORK/mirror"
  pipeline pipe
  rclone purge "dst:$BUCKET-copy-$i" >/dev/null 2>&1 || true

  # (d) Restores, each into a new bucket; one at a time, to bound the disk the S3 server needs.
  rclone mkdir "dst:$BUCKET-kr-$i"
  run restore "$KFGUARD" -q restore latest --only buckets --into "$BUCKET-kr-$i"
  if [[ $i == "$RUNS" ]]; then
    rclone check --download "src:$BUCKET" "dst:$BUCKET-kr-$i" 2>"$WORK/check.err" || {
      echo "bench: the restored bucket differs from the original:" >&2
      tail -5 "$WORK/check.err" >&2
      exit 1
    }
    restored_equal=yes
  fi
  rclone purge "dst:$BUCKET-kr-$i" >/dev/null 2>&1 || true
  rm -rf "$WORK/restored"
  run rpipe.a restic -q restore latest --target "$WORK/restored"
  # restic restores the absolute path it backed up.
  run rpipe.b rclone copy "$WORK/restored$WORK/mirror" "dst:$BUCKET-rr-$i"
  pipeline rpipe
  rclone purge "dst:$BUCKET-rr-$i" >/dev/null 2>&1 || true
  rm -rf "$WORK/restored"
done
kbytes=$(du -sb "$WORK/kr" | cut -f1)
rbytes=$(du -sb "$WORK/rr" | cut -f1)
cbytes=$(bucket_bytes "$BUCKET")

# (c) The second night, on the last run's repositories: 1% of the objects new or changed.
"$PY" "$WORK/dataset.py" "$BUCKET" "$SIZE_MIB" "$OBJECTS" night2 "$ENDPOINT" 2>&1 | sed 's/^/bench: night 2: /' >&2
run kfguard2 "$KFGUARD" -q backup --only buckets
run pipe2.a rclone copy "src:$BUCKET" "$WORK/mirror"
run pipe2.b restic -q backup "$WORK/mirror"
pipeline pipe2
kbytes2=$(($(du -sb "$WORK/kr" | cut -f1) - kbytes))
rbytes2=$(($(du -sb "$WORK/rr" | cut -f1) - rbytes))

col() { cut -d' ' -f"$2" "$WORK/$1.times"; }
kt=$(col kfguard 1 | median)
ct=$(col rclone-s3 1 | median)
pt=$(col pipe 1 | median)
kt2=$(col kfguard2 1 | median)
pt2=$(col pipe2 1 | median)
krss=$(col kfguard 2 | sort -n | tail -1)
crss=$(col rclone-s3 2 | sort -n | tail -1)
prss=$(col pipe 2 | sort -n | tail -1)
krss2=$(col kfguard2 2 | sort -n | tail -1)
rt=$(col restore 1 | median)
rpt=$(col rpipe 1 | median)
rrss=$(col restore 2 | sort -n | tail -1)
rprss=$(col rpipe 2 | sort -n | tail -1)
prss2=$(col pipe2 2 | sort -n | tail -1)
met() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }

printf '\n%s MiB in %s objects at %s, %s runs (median)\n' "$(mib "$cbytes")" "$OBJECTS" "$ENDPOINT" "$RUNS"
printf '%-34s %10s %10s %8s %14s\n' "" kfguard peer ratio target
printf '%-34s %10s %10s %8s\n' "(a) backup vs rclone to bucket (s)" "$kt" "$ct" "$(ratio "$kt" "$ct")"
printf '%-34s %10s %10s %8s %14s\n' "(b) backup vs rclone+restic (s)" "$kt" "$pt" "$(ratio "$kt" "$pt")" "<= 1.0x $(met "$(ratio "$kt" "$pt")" 1.0)"
printf '%-34s %10s %10s %8s %14s\n' "(c) second night (s)" "$kt2" "$pt2" "$(ratio "$kt2" "$pt2")"
printf '%-34s %9s%% %9s%% %8s %14s\n' "    as % of the first backup" "$(awk -v a="$kt2" -v b="$kt" 'BEGIN{printf "%.1f", 100*a/b}')" "$(awk -v a="$pt2" -v b="$pt" 'BEGIN{printf "%.1f", 100*a/b}')" "" "<= 10% $(met "$(ratio "$kt2" "$kt")" 0.1)"
printf '%-34s %10s %10s %8s %14s\n' "(d) restore vs restic+rclone (s)" "$rt" "$rpt" "$(ratio "$rt" "$rpt")" "<= 1.0x $(met "$(ratio "$rt" "$rpt")" 1.0)"
printf '%-34s %10s\n' "    restored bucket equal" "${restored_equal:-no}"
printf '%-34s %10s %10s %8s %14s\n' "peak RSS, (a) (MiB)" "$((krss / 1024))" "$((crss / 1024))" "$(ratio "$krss" "$crss")" "<= 300 $(met "$((krss / 1024))" 300)"
printf '%-34s %10s %10s %8s\n' "peak RSS, (b) (MiB)" "$((krss / 1024))" "$((prss / 1024))" "$(ratio "$krss" "$prss")"
printf '%-34s %10s %10s %8s %14s\n' "peak RSS, (c) (MiB)" "$((krss2 / 1024))" "$((prss2 / 1024))" "$(ratio "$krss2" "$prss2")" "<= 300 $(met "$((krss2 / 1024))" 300)"
printf '%-34s %10s %10s %8s\n' "peak RSS, (d) (MiB)" "$((rrss / 1024))" "$((rprss / 1024))" "$(ratio "$rrss" "$rprss")"
printf '%-34s %10s %10s %8s\n' "stored, (a) (MiB)" "$(mib "$kbytes")" "$(mib "$cbytes")" "$(ratio "$kbytes" "$cbytes")"
printf '%-34s %10s %10s %8s\n' "stored, (b) (MiB)" "$(mib "$kbytes")" "$(mib "$rbytes")" "$(ratio "$kbytes" "$rbytes")"
printf '%-34s %10s %10s %8s\n' "added by the second night (MiB)" "$(mib "$kbytes2")" "$(mib "$rbytes2")" "$(ratio "$kbytes2" "$rbytes2")"
printf '\npeer (a) = rclone copy src:BUCKET dst:COPY (two remotes, so no server-side copy; rclone defaults, --transfers 4)\n'
printf 'peer (b) = rclone copy src:BUCKET DIR; restic backup DIR (time: the sum; RSS: the larger)\n'
printf 'peer (d) = restic restore latest --target DIR; rclone copy DIR dst:NEW (time: the sum; RSS: the larger)\n'
printf 'kfguard = kfguard backup --only buckets / restore --only buckets --into NEW (--transfers 8), local folder repository\n'
