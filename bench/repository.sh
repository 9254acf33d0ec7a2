#!/usr/bin/env bash
# kfguard backup of a folder vs restic backup of the same folder, side by side in one run.
# Reports median wall time of N runs (each into a fresh repository), the ratio, peak RSS,
# repository bytes, and the bytes a second, unchanged backup adds.
#
# Usage: bench/repository.sh [SIZE_MIB=512] [RUNS=3]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-512}
RUNS=${2:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v restic >/dev/null || { echo "bench: restic is missing (apt-get install restic)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 1; }

(cd "$REPO" && cargo build --release --quiet)
KFGUARD=${CARGO_TARGET_DIR:-$REPO/target}/release/kfguard

echo "bench: generating ${SIZE_MIB} MiB of KFP-like artifacts in $WORK/data" >&2
mkdir -p "$WORK/data"
python3 - "$WORK/data" "$SIZE_MIB" <<'PY'
import os, random, sys, json
root, total = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
rnd = random.Random(42)
n = 0
written = 0
while written < total:
    d = os.path.join(root, "v2/artifacts/pipeline-%d/run-%d" % (n % 7, n % 53))
    os.makedirs(d, exist_ok=True)
    kind = n % 10
    if kind < 6:   # small metrics / JSON
        body = json.dumps({"metrics": [rnd.random() for _ in range(200)], "n": n}).encode()
    elif kind < 9: # MiB-sized model outputs, incompressible
        body = rnd.randbytes(rnd.randint(1, 4) * 1024 * 1024)
    else:          # a large artifact
        body = rnd.randbytes(32 * 1024 * 1024)
    with open(os.path.join(d, "out-%d" % n), "wb") as f:
        f.write(body)
    written += len(body)
    n += 1
PY
echo "password-for-bench" >"$WORK/password"

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
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for i in $(seq "$RUNS"); do
  rm -rf "$WORK/kr" "$WORK/rr"
  export KFGUARD_PASSWORD_FILE=$WORK/password KFGUARD_REPO=$WORK/kr
  "$KFGUARD" -q init >/dev/null
  run kfguard "$KFGUARD" -q backup --from-dir "$WORK/data"
  run kfguard2 "$KFGUARD" -q backup --from-dir "$WORK/data"
  export RESTIC_PASSWORD_FILE=$WORK/password RESTIC_REPOSITORY=$WORK/rr RESTIC_CACHE_DIR=$WORK/restic-cache
  restic init -q >/dev/null
  run restic restic -q backup "$WORK/data"
  run restic2 restic -q backup "$WORK/data"
done

kt=$(cut -d' ' -f1 "$WORK/kfguard.times" | median)
rt=$(cut -d' ' -f1 "$WORK/restic.times" | median)
kt2=$(cut -d' ' -f1 "$WORK/kfguard2.times" | median)
rt2=$(cut -d' ' -f1 "$WORK/restic2.times" | median)
krss=$(cut -d' ' -f2 "$WORK/kfguard.times" | sort -n | tail -1)
rrss=$(cut -d' ' -f2 "$WORK/restic.times" | sort -n | tail -1)
kbytes=$(du -sb "$WORK/kr" | cut -f1)
rbytes=$(du -sb "$WORK/rr" | cut -f1)

printf '\n%s MiB in %s files, %s runs (median)\n' "$SIZE_MIB" "$(find "$WORK/data" -type f | wc -l)" "$RUNS"
printf '%-28s %10s %10s %8s\n' "" kfguard restic ratio
printf '%-28s %10s %10s %8s\n' "first backup (s)" "$kt" "$rt" "$(ratio "$kt" "$rt")"
printf '%-28s %10s %10s %8s\n' "second, unchanged (s)" "$kt2" "$rt2" "$(ratio "$kt2" "$rt2")"
printf '%-28s %10s %10s %8s\n' "peak RSS (MiB)" "$((krss / 1024))" "$((rrss / 1024))" "$(ratio "$krss" "$rrss")"
printf '%-28s %10s %10s %8s\n' "repository (MiB)" "$((kbytes / 1048576))" "$((rbytes / 1048576))" "$(ratio "$kbytes" "$rbytes")"
