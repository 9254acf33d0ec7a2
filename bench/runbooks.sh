#!/usr/bin/env bash
# kfguard's runbook engine, side by side with its peers in one run, against the stand-in API
# server (kube-standin):
#   kfguard runbook run verify-health   vs  for k in KINDS; do kubectl get $k -A -o json; done
# on the multi-tenant cluster of bench/kubernetes.sh (its generator, taken from that script as
# is), with the pods, claims, services and controllers verify-health reads added: per profile
# the notebooks' and the running workflows' pods and a claim per workflow. The loop fetches the
# kinds verify-health reads and analyses nothing; verify-health also analyses what it fetched.
# Then the engine's overhead per step: a runbook of STEPS empty steps against one of 1, the
# difference divided by STEPS - 1 (start-up, compiling and journaling the run cancel out).
# Reports the median wall time of RUNS runs, the ratios and the requests each side sent.
# Needs kubectl, curl and python3. With PROFILES=50, RUNS=3: a few minutes on 2 shared cores.
#
# Usage: [BENCH_PROFILE=release|dev] bench/runbooks.sh [PROFILES=50] [RUNS=3] [STEPS=1000]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILES=${1:-50}
RUNS=${2:-3}
STEPS=${3:-1000}
TARGET=1.0       # verify-health <= 1.0x the kubectl loop
STEP_TARGET=1.0 # ms per empty step

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need kubectl "apt-get install kubernetes-client"
need curl "apt-get install curl"
need python3 "apt-get install python3"
((STEPS > 1)) || { echo "bench: STEPS must be at least 2" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-rbbench.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# BENCH_PROFILE=dev checks the script on the dev build (no release build); its times mean little.
PROFILE=${BENCH_PROFILE:-release}
case $PROFILE in
  release) (cd "$REPO" && cargo build --release --quiet -p kfguard -p kube-standin); OUT=release ;;
  dev) (cd "$REPO" && cargo build --quiet -p kfguard -p kube-standin); OUT=debug ;;
  *) echo "bench: BENCH_PROFILE is release or dev, not $PROFILE" >&2; exit 2 ;;
esac
# Benchmark copies, so that a concurrent `cargo build` cannot swap a binary mid-run.
cp "${CARGO_TARGET_DIR:-$REPO/target}/$OUT/kfguard" "${CARGO_TARGET_DIR:-$REPO/target}/$OUT/kube-standin" "$WORK/"
KFGUARD=$WORK/kfguard
STANDIN=$WORK/kube-standin
BUILT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z $(git -C "$REPO" status --porcelain -- src runbooks Cargo.toml Cargo.lock 2>/dev/null) ]] || BUILT+=" + uncommitted changes"

# ------------------------------------------------------------------ fixtures
# bench/kubernetes.sh's generator, as that script runs it: one cluster for both benches.
sed -n '/^python3 - "$WORK\/fixtures" "$WORK\/istio" "$PROFILES" <<'"'"'PY'"'"'$/,/^PY$/p' \
  "$REPO/bench/kubernetes.sh" | sed '1d;$d' >"$WORK/generate.py"
[[ -s $WORK/generate.py ]] || { echo "bench: cannot find the generator in bench/kubernetes.sh" >&2; exit 1; }
mkdir -p "$WORK/fixtures" "$WORK/istio"
python3 "$WORK/generate.py" "$WORK/fixtures" "$WORK/istio" "$PROFILES"
# What verify-health reads beyond a backup's kinds, all healthy: pods, claims, a default
# StorageClass, the KFP services with endpoints and the controllers.
python3 - "$WORK/fixtures/health.yaml" "$PROFILES" <<'PY'
import sys
out, profiles = sys.argv[1], int(sys.argv[2])
docs = []
READY = '{phase: Running, conditions: [{type: Ready, status: "True"}], containerStatuses: [{name: main, ready: true, restartCount: 0, state: {running: {}}}]}'
def pod(ns, name, labels, volumes=""):
    docs.append(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec: {{containers: [{{name: main, image: busybox}}]{volumes}}}\nstatus: {READY}")
docs.append('apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: standard, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}\nprovisioner: rancher.io/local-path\nvolumeBindingMode: Immediate')
for app in ["ml-pipeline", "ml-pipeline-ui", "metadata-grpc-service", "minio-service"]:
    docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: {app}, namespace: kubeflow}}\nspec: {{ports: [{{port: 8888}}]}}")
    docs.append(f"apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {app}, namespace: kubeflow}}\nsubsets: [{{addresses: [{{ip: 10.0.0.12}}], ports: [{{port: 8888}}]}}]")
for d in ["ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow"]:
    docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {d}, namespace: kubeflow}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {d}}}}}\n  template: {{metadata: {{labels: {{app: {d}}}}}, spec: {{containers: [{{name: main, image: x}}]}}}}\nstatus: {{replicas: 1, readyReplicas: 1, availableReplicas: 1}}")
for app in ["ml-pipeline", "ml-pipeline-ui", "ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow",
            "metadata-grpc", "workflow-controller", "profiles-controller", "centraldashboard", "minio", "mysql"]:
    pod("kubeflow", f"{app}-0", f"app: {app}")
# What the generator's kubeflow-edit aggregates in a real cluster, and the viewer's role.
docs.append('apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: kubeflow-kubernetes-edit}\nrules:\n- {apiGroups: [""], resources: [pods, persistentvolumeclaims], verbs: [get, list, watch, create, delete]}')
docs.append('apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: kubeflow-view}\nrules:\n- {apiGroups: [""], resources: [pods], verbs: [get, list]}\n- {apiGroups: [argoproj.io], resources: [workflows], verbs: [get, list]}')
for p in range(1, profiles + 1):
    ns = f"kubeflow-user-{p:02d}"
    for sa, role in (("default-editor", "kubeflow-kubernetes-edit"), ("default-viewer", "kubeflow-view")):
        docs.append(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {sa}-{role}, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\nsubjects: [{{kind: ServiceAccount, name: {sa}, namespace: {ns}}}]")
    for n in range(10):
        pod(ns, f"nb-{n}-0", f"notebook-name: nb-{n}",
            f", volumes: [{{name: w, persistentVolumeClaim: {{claimName: workspace-nb-{n}}}}}, {{name: d, persistentVolumeClaim: {{claimName: datasets}}}}]")
    for w in range(34):  # the generator's running workflows
        wf = f"nightly-train-{w % 10}-{w:03d}"
        docs.append(f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {wf}-data, namespace: {ns}}}\nspec: {{accessModes: [ReadWriteOnce], storageClassName: standard, resources: {{requests: {{storage: 1Gi}}}}}}\nstatus: {{phase: Bound}}")
        pod(ns, f"{wf}-step-2", f"workflows.argoproj.io/workflow: {wf}",
            f", volumes: [{{name: data, persistentVolumeClaim: {{claimName: {wf}-data}}}}]")
with open(out, "w") as f:
    f.write("\n---\n".join(docs) + "\n")
PY
OBJECTS=$(cat "$WORK"/fixtures/*.yaml | grep -c '^kind: ')
echo "bench: $OBJECTS objects for $PROFILES profiles" >&2

"$STANDIN" --fixtures "$WORK/fixtures" --port 0 --kubeconfig "$WORK/c.kubeconfig" >/dev/null 2>"$WORK/standin.log" &
PIDS+=("$!")
for _ in $(seq 600); do
  grep -q '^kube-standin: serving on ' "$WORK/standin.log" 2>/dev/null && break
  sleep 0.1
done
SURL=$(sed -n 's/^kube-standin: serving on //p' "$WORK/standin.log")
[[ -n $SURL ]] || { echo "bench: the stand-in did not start:" >&2; tail -5 "$WORK/standin.log" >&2; exit 1; }
for _ in $(seq 100); do curl -sf "$SURL/version" >/dev/null && break; sleep 0.1; done

echo "password-for-bench" >"$WORK/password"
export KFGUARD_PASSWORD_FILE=$WORK/password
unset KFGUARD_CONFIG KUBECONFIG
cd "$WORK" # no kfguard.toml from the caller's folder
cp "$REPO/runbooks/verify-health.rhai" "$WORK/"

# The kinds verify-health reads, as kubectl names them.
KINDS=(namespaces pods persistentvolumeclaims storageclasses.storage.k8s.io events
  workflows.argoproj.io customresourcedefinitions.apiextensions.k8s.io profiles.kubeflow.org
  serviceaccounts rolebindings.rbac.authorization.k8s.io services endpoints deployments.apps
  validatingwebhookconfigurations.admissionregistration.k8s.io
  mutatingwebhookconfigurations.admissionregistration.k8s.io secrets resourcequotas)
export KINDS_LIST="${KINDS[*]}"
cat >"$WORK/kubectl-loop.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
for k in $KINDS_LIST; do kubectl get "$k" -A -o json >/dev/null; done
SH
chmod +x "$WORK/kubectl-loop.sh"

# Runbooks of STEPS empty steps and of one.
python3 - "$WORK" "$STEPS" <<'PY'
import sys
work, steps = sys.argv[1], int(sys.argv[2])
for name, n in (("empty-1", 1), ("empty-n", steps)):
    with open(f"{work}/{name}.rhai", "w") as f:
        f.write(f"// {n} empty steps\n" + "".join(f'step("s{i}", || ());\n' for i in range(n)))
PY

# timed LABEL CMD...: appends the wall seconds of CMD to $WORK/LABEL.times and the requests the
# stand-in logged meanwhile to $WORK/LABEL.requests; exit 0 and 3 (findings) both count.
timed() {
  local label=$1 rc=0 l0 t0 t1
  shift
  l0=$(wc -l <"$WORK/standin.log")
  t0=$(date +%s.%N)
  "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || rc=$?
  t1=$(date +%s.%N)
  if ((rc != 0 && rc != 3)); then
    echo "bench: $label failed (exit $rc):" >&2
    tail -5 "$WORK/$label.err" >&2
    exit 1
  fi
  sleep 0.2
  tail -n +$((l0 + 1)) "$WORK/standin.log" | grep -cE '^[A-Z]+ /' >"$WORK/$label.requests" || true
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$WORK/$label.times"
  printf 'bench: %-14s %8s s  exit %d  %5s requests\n' "$label" "$(tail -1 "$WORK/$label.times")" "$rc" "$(cat "$WORK/$label.requests")" >&2
}
median() { sort -n "$WORK/$1.times" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for r in $(seq "$RUNS"); do
  timed verify-health "$KFGUARD" --kubeconfig "$WORK/c.kubeconfig" --output json runbook run verify-health.rhai \
    --set workflow_threshold=8760h
  rm -rf "$WORK/kube-cache"
  timed kubectl-loop env KUBECONFIG="$WORK/c.kubeconfig" KUBECACHEDIR="$WORK/kube-cache" "$WORK/kubectl-loop.sh"
  timed empty-1 "$KFGUARD" --kubeconfig "$WORK/c.kubeconfig" runbook run empty-1.rhai
  timed empty-n "$KFGUARD" --kubeconfig "$WORK/c.kubeconfig" runbook run empty-n.rhai
done

VH=$(median verify-health)
KL=$(median kubectl-loop)
E1=$(median empty-1)
EN=$(median empty-n)
FINDINGS=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(len(s.get("findings") or []) for s in r["steps"]))' "$WORK/verify-health.out" 2>/dev/null || echo "?")
echo
echo "kfguard runbooks bench: $PROFILES profiles, $OBJECTS objects, median of $RUNS runs, $PROFILE build $BUILT, $(date -u +%FT%TZ)"
awk -v vh="$VH" -v kl="$KL" -v t="$TARGET" -v f="$FINDINGS" -v rq="$(cat "$WORK/verify-health.requests")" -v kq="$(cat "$WORK/kubectl-loop.requests")" 'BEGIN {
  r = vh / kl
  printf "  verify-health %7.2f s (%s requests, %s findings)  vs  kubectl get loop %7.2f s (%s requests): %.2fx (target <= %.2fx) %s\n", vh, rq, f, kl, kq, r, t, (r <= t ? "ok" : "MISSED")
}'
awk -v e1="$E1" -v en="$EN" -v n="$STEPS" -v t="$STEP_TARGET" 'BEGIN {
  ms = (en - e1) * 1000 / (n - 1)
  printf "  empty step    %7.3f ms per step (%d steps %.2f s, 1 step %.2f s; target < %.1f ms) %s\n", ms, n, en, e1, t, (ms < t ? "ok" : "MISSED")
}'
