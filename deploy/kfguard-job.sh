#!/bin/sh
# kfguard-job: runs kfguard as a Kubernetes Job's container: kfguard-job ARGS... runs kfguard ARGS...
#
# 1. Joins the config fragments of $KFGUARD_CONFIG_DIR (the ConfigMap kfguard-config, one key per
#    fragment), in name order, into $KFGUARD_CONFIG, the one file kfguard reads. Kustomize
#    components replace whole fragments, which is how they combine (deploy/base/config/00-base.toml).
# 2. Maps exit code 3 (done with warnings: the snapshot or restore is complete, the warnings are
#    in the log and the metrics) to 0, so the Job succeeds and the CronJob's history, backoff
#    and alerts see a finished run. A podFailurePolicy cannot do this: it can fail a Job on an
#    exit code or ignore one (and retry the pod), never count one as success.
# 3. Forwards SIGTERM and SIGINT to kfguard: as PID 1 the shell would otherwise swallow them and
#    kfguard could not stop at a safe point before the kubelet's SIGKILL.
# Every other exit code (1 failure, 2 usage or config, 130/143 stopped) fails the Job.
set -u

if [ -n "${KFGUARD_CONFIG_DIR:-}" ]; then
  : "${KFGUARD_CONFIG:?set KFGUARD_CONFIG to the file to write the joined config to}"
  mkdir -p "$(dirname "$KFGUARD_CONFIG")" || exit 2
  found=0
  : > "$KFGUARD_CONFIG" || exit 2
  for f in "$KFGUARD_CONFIG_DIR"/*.toml; do
    [ -f "$f" ] || continue
    found=1
    { printf '# ---- %s\n' "$(basename "$f")"; cat "$f"; printf '\n'; } >> "$KFGUARD_CONFIG" || exit 2
  done
  if [ "$found" -eq 0 ]; then
    echo "kfguard-job: no *.toml in KFGUARD_CONFIG_DIR=$KFGUARD_CONFIG_DIR; is the ConfigMap kfguard-config mounted there?" >&2
    exit 2
  fi
  export KFGUARD_CONFIG
fi

kfguard "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
wait "$pid"
rc=$?
# A trapped signal ends `wait` early: wait again for kfguard's own exit code.
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid"
  rc=$?
done
if [ "$rc" -eq 3 ]; then
  echo "kfguard-job: kfguard $* finished with warnings (exit 3); the Job counts it as done" >&2
  exit 0
fi
exit "$rc"
