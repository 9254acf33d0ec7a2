#!/usr/bin/env bash
# Operations, archives half: `kfguard export` and `kfguard import` of a database snapshot of
# about SIZE_MIB, side by side with what one would script with restic, in one run:
#   export: kfguard export SNAP -o k.tar        vs  restic restore SNAP --target DIR + tar cf r.tar -C DIR .
#   import: kfguard import k.tar (new repo)     vs  tar xf r.tar -C DIR2 + restic backup DIR2 (new repo)
# Both read the same repository (kfguard's is restic-format). Reports the median wall time of
# RUNS runs, the ratio kfguard/peer, and peak RSS (GNU time; a pipeline counts its largest
# process). Targets: <= 0.8x each, peak RSS <= 300 MiB.
#
# Needs MariaDB on 127.0.0.1:3306 (root, no password): run `scripts/services.sh up` first.
# KFGUARD_BENCH_PROFILE=debug benchmarks target/debug (dependencies optimised) instead of a
# release build, when there is no time for one; KFGUARD_BENCH_BIN=PATH a binary built already.
#
# Then the sharding half, bench/shards.sh (SHARDS_SIZE_MIB, default 2048).
#
# Usage: bench/operations.sh [SIZE_MIB=1024] [RUNS=3]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-1024}
RUNS=${2:-3}
PROFILE=${KFGUARD_BENCH_PROFILE:-release}
DB=benchdb_ops
unset AWS_CA_BUNDLE

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need restic "apt-get install restic"
need tar "apt-get install tar"
[[ -x /usr/bin/time ]] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 1; }
if command -v mariadb >/dev/null; then MYSQL=mariadb; else need mysql "apt-get install mariadb-client"; MYSQL=mysql; fi
my() { "$MYSQL" -h127.0.0.1 -P3306 -uroot --batch --skip-column-names "$@"; }
my -e 'SELECT 1' >/dev/null || { echo "bench: MariaDB is not reachable on 127.0.0.1:3306 as root (scripts/services.sh up)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-opsbench.XXXXXX")
cleanup() { my -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${KFGUARD_BENCH_BIN:-} ]]; then
  PROFILE="given binary"
  cp "$KFGUARD_BENCH_BIN" "$WORK/kfguard"
else
  if [[ $PROFILE == release ]]; then
    (cd "$REPO" && cargo build --release --quiet)
  else
    (cd "$REPO" && cargo build --quiet)
  fi
  # Benchmark a copy, so that a concurrent `cargo build` cannot swap the binary mid-run.
  cp "${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE/kfguard" "$WORK/kfguard"
fi
KFGUARD=$WORK/kfguard
BUILT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown) ($PROFILE)"
START=$SECONDS

# ------------------------------------------------------------------ dataset
# Half incompressible blobs (64-255 KiB), half JSON-like manifest text: a KFP database's mix.
T=$((SIZE_MIB * 1048576))
BLOB=$((T / 2 / (160 * 1024))); ((BLOB > 0)) || BLOB=1
MAN=$((T / 2 / (300 * 1024))); ((MAN > 0)) || MAN=1
echo "bench: generating ~${SIZE_MIB} MiB in MariaDB database $DB ($BLOB blobs, $MAN manifests)" >&2
my -e "DROP DATABASE IF EXISTS \`$DB\`"
my >/dev/null <<SQL
SET SESSION group_concat_max_len = 16777216;
CREATE DATABASE $DB;
USE $DB;
CREATE TABLE artifact_blobs (id BIGINT PRIMARY KEY, proto_value MEDIUMBLOB NOT NULL);
CREATE TABLE run_details (id BIGINT PRIMARY KEY, manifest LONGTEXT NOT NULL);
INSERT INTO artifact_blobs
SELECT r.seq, (SELECT GROUP_CONCAT(RANDOM_BYTES(1024) SEPARATOR '') FROM seq_1_to_256 s
               WHERE s.seq <= 64 + (r.seq * 31) MOD 192)
FROM seq_1_to_$BLOB r;
INSERT INTO run_details
SELECT r.seq, (SELECT GROUP_CONCAT(CONCAT('{"name":"step-', s.seq, '","input":"gs://kfp-artifacts/',
                 MD5(RAND()), '/data.csv","phase":"Succeeded"}') SEPARATOR ',')
               FROM seq_1_to_4000 s)
FROM seq_1_to_$MAN r;
SQL

printf 'pw-%s\n' "$RANDOM$RANDOM" >"$WORK/password"
export KFGUARD_PASSWORD_FILE=$WORK/password RESTIC_PASSWORD_FILE=$WORK/password RESTIC_CACHE_DIR=$WORK/restic-cache
cat >"$WORK/kfguard.toml" <<TOML
cluster = "bench"
[[databases]]
name = "kfp"
engine = "mysql"
url = "mysql://root@127.0.0.1:3306"
databases = ["$DB"]
TOML
export KFGUARD_CONFIG=$WORK/kfguard.toml
KFGUARD_REPO=$WORK/source "$KFGUARD" -q init
KFGUARD_REPO=$WORK/source "$KFGUARD" -q backup --only databases
SNAP=$(KFGUARD_REPO=$WORK/source "$KFGUARD" --output json snapshots | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)
SNAP_MIB=$(du -sm "$WORK/source" | cut -f1)
echo "bench: snapshot $SNAP, repository $SNAP_MIB MiB" >&2

# run LABEL CMD... : appends "wall_s max_rss_kib" to $WORK/LABEL.times
run() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || {
    echo "bench: $label failed:" >&2; tail -5 "$WORK/$label.err" >&2; exit 1; }
  tail -1 "$WORK/time.out" >>"$WORK/$label.times"
  read -r wall kib <<<"$(tail -1 "$WORK/time.out")"
  printf 'bench: %s %-22s %8s s %6s MiB\n' "$(date +%T)" "$label" "$wall" "$((kib / 1024))" >&2
}
# A peer pipeline of two steps, run one after the other: the sum of their times, the larger RSS.
run2() {
  local label=$1 a b
  run "$label.1" bash -c "$2"
  run "$label.2" bash -c "$3"
  a=$(tail -1 "$WORK/$label.1.times"); b=$(tail -1 "$WORK/$label.2.times")
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "%.2f %d\n", x[1] + y[1], (x[2] > y[2] ? x[2] : y[2]) }' >>"$WORK/$label.times"
}

for i in $(seq "$RUNS"); do
  rm -rf "$WORK/k.tar" "$WORK/r.tar" "$WORK/dir" "$WORK/dir2" "$WORK/target-k" "$WORK/target-r"
  run k-export env KFGUARD_REPO="$WORK/source" "$KFGUARD" -q export "$SNAP" -o "$WORK/k.tar"
  run2 r-export "restic -q -r '$WORK/source' restore '$SNAP' --target '$WORK/dir'" \
    "tar cf '$WORK/r.tar' -C '$WORK/dir' ."
  KFGUARD_REPO=$WORK/target-k "$KFGUARD" -q init
  restic -q -r "$WORK/target-r" init >/dev/null
  run k-import env KFGUARD_REPO="$WORK/target-k" "$KFGUARD" -q import "$WORK/k.tar"
  run2 r-import "mkdir -p '$WORK/dir2' && tar xf '$WORK/r.tar' -C '$WORK/dir2'" \
    "restic -q -r '$WORK/target-r' backup '$WORK/dir2' >/dev/null"
done
TAR_MIB=$(( $(stat -c %s "$WORK/k.tar") / 1048576 ))
PEER_TAR_MIB=$(( $(stat -c %s "$WORK/r.tar") / 1048576 ))

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { cut -d' ' -f"$2" "$WORK/$1.times" | median; }
row() { # LABEL K R TARGET KIND
  awk -v l="$1" -v k="$2" -v r="$3" -v t="$4" -v kind="$5" 'BEGIN {
    ratio = (r > 0) ? k / r : 0
    if (kind == "ratio") met = (ratio <= t) ? "met" : "MISSED"; else met = (k <= t) ? "met" : "MISSED"
    printf "%-30s %10.2f %10.2f %7.2f   %s %s  %s\n", l, k, r, ratio, (kind == "ratio" ? "<= " t "x" : "<= " t " MiB"), "", met }'
}
{
  echo "bench/operations.sh $SIZE_MIB $RUNS: kfguard $BUILT, $(restic version | cut -d' ' -f1-2), $(nproc) cores, $((SECONDS - START)) s"
  echo "snapshot: $SNAP_MIB MiB in the repository; archive: kfguard $TAR_MIB MiB, peer $PEER_TAR_MIB MiB"
  printf '%-30s %10s %10s %7s   %s\n' "" kfguard peer ratio target
  row "export (s)" "$(col k-export 1)" "$(col r-export 1)" 0.8 ratio
  row "import (s)" "$(col k-import 1)" "$(col r-import 1)" 0.8 ratio
  row "peak RSS, export (MiB)" "$(( $(col k-export 2) / 1024 ))" "$(( $(col r-export 2) / 1024 ))" 300 rss
  row "peak RSS, import (MiB)" "$(( $(col k-import 2) / 1024 ))" "$(( $(col r-import 2) / 1024 ))" 300 rss
  echo "peer = restic restore --target DIR + tar cf; tar xf + restic backup DIR (medians of the sums)"
} | tee "$WORK/result.txt"

# The sharding half: N = 1, 2, 4 shard processes and the merge (bench/shards.sh, on the binary
# benchmarked above). KFGUARD_BENCH_SKIP_SHARDS=1 leaves it out.
if [[ ${KFGUARD_BENCH_SKIP_SHARDS:-0} != 1 ]]; then
  echo
  KFGUARD_BIN="$WORK/kfguard" bash "$REPO/bench/shards.sh" "${SHARDS_SIZE_MIB:-2048}"
fi
