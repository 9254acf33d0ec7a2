#!/usr/bin/env bash
# kfguard's Kubernetes export and restore vs the kubectl scripts a platform engineer would
# otherwise write, side by side in one run, against the stand-in API server (kube-standin)
# seeded with a multi-tenant Kubeflow-like cluster of about PROFILES * 100 captured objects:
#   kfguard backup --only kubernetes          vs  for k in KINDS; do kubectl get $k -A -o yaml; done
#   kfguard restore latest --only kubernetes  vs  kubectl apply --server-side -f <those files>
# into a fresh, empty stand-in (only Istio's CRD seeded) per run, plus the --dry-run plan.
# Reports median wall time of RUNS runs, objects per second (the objects kfguard captured, from
# its manifest), the ratio kfguard/kubectl, peak RSS, the stand-in's CPU, the requests each
# side sent (from the stand-in's request log), how a kfguard export splits into opening the
# repository, listing and writing the snapshot, and (with perf) where its CPU goes.
# Needs kubectl, curl and python3; about 3 minutes after the build on 2 shared cores.
#
# Usage: bench/kubernetes.sh [PROFILES=50] [RUNS=3]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILES=${1:-50}
RUNS=${2:-3}
TARGET=0.33 # kfguard export <= 0.33x the kubectl loop

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need kubectl "apt-get install kubernetes-client"
need curl "apt-get install curl"
need python3 "apt-get install python3"
[[ -x /usr/bin/time ]] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-kubebench.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$REPO" && cargo build --release --quiet -p kfguard -p kube-standin)
# Benchmark copies, so that a concurrent `cargo build` cannot swap a binary mid-run.
cp "${CARGO_TARGET_DIR:-$REPO/target}/release/kfguard" "${CARGO_TARGET_DIR:-$REPO/target}/release/kube-standin" "$WORK/"
KFGUARD=$WORK/kfguard
STANDIN=$WORK/kube-standin
BUILT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || BUILT+=" + uncommitted changes"
START=$SECONDS

# ------------------------------------------------------------------ fixtures
# Deterministic: the same PROFILES give the same YAML, byte for byte.
mkdir -p "$WORK/fixtures" "$WORK/istio"
python3 - "$WORK/fixtures" "$WORK/istio" "$PROFILES" <<'PY'
import os, random, sys
out, istio_dir, profiles = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(20261126)
hx = lambda n: "".join(rnd.choice("0123456789abcdef") for _ in range(n))
def uid(): return "%s-%s-%s-%s-%s" % (hx(8), hx(4), hx(4), hx(4), hx(12))
TS = "2026-11-%02dT%02d:%02d:00Z"
def ts(): return TS % (rnd.randint(1, 25), rnd.randint(0, 23), rnd.randint(0, 59))

docs = []
def add(s): docs.append(s.strip("\n"))

def crd(group, plural, kind, version, scope, schema):
    add(f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
  annotations: {{controller-gen.kubebuilder.io/version: v0.14.0}}
spec:
  group: {group}
  scope: {scope}
  names: {{plural: {plural}, singular: {kind.lower()}, kind: {kind}, listKind: {kind}List}}
  versions:
  - name: {version}
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
{schema}""")

OPEN = "        type: object\n        x-kubernetes-preserve-unknown-fields: true"
def big_schema(fields):  # Katib's and Argo's real CRDs carry 100s of KiB of schema
    s = "        type: object\n        x-kubernetes-preserve-unknown-fields: true\n        properties:\n          spec:\n            type: object\n            properties:\n"
    for i in range(fields):
        s += f"              field{i:04d}:\n                type: string\n                description: \"Describes one tunable of a trial template, as long as the real descriptions are.\"\n"
    return s.rstrip("\n")

crd("kubeflow.org", "profiles", "Profile", "v1", "Cluster", OPEN)
crd("kubeflow.org", "notebooks", "Notebook", "v1", "Namespaced", big_schema(150))
crd("kubeflow.org", "scheduledworkflows", "ScheduledWorkflow", "v1beta1", "Namespaced", OPEN)
crd("kubeflow.org", "experiments", "Experiment", "v1beta1", "Namespaced", big_schema(800))
crd("argoproj.io", "workflows", "Workflow", "v1alpha1", "Namespaced", big_schema(400))
istio = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: authorizationpolicies.security.istio.io
  labels: {{app: istio-pilot, istio: security}}
spec:
  group: security.istio.io
  scope: Namespaced
  names: {{plural: authorizationpolicies, singular: authorizationpolicy, kind: AuthorizationPolicy, listKind: AuthorizationPolicyList}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
{OPEN}"""
add(istio)
with open(os.path.join(istio_dir, "istio-crd.yaml"), "w") as f:
    f.write(istio + "\n")

# --- the platform: kubeflow, istio-system, kube-system, default
for ns, labels in [("kubeflow", "{app.kubernetes.io/part-of: kubeflow, istio-injection: enabled}"),
                   ("istio-system", "{istio-injection: disabled}"), ("kube-system", "{}"), ("default", "{}")]:
    add(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {labels}}}")
    add(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kube-root-ca.crt, namespace: {ns}}}\ndata: {{ca.crt: \"minted by the cluster {hx(64)}\"}}")
add("""apiVersion: v1
kind: ConfigMap
metadata: {name: pipeline-install-config, namespace: kubeflow, labels: {application-crd-id: kubeflow-pipelines}}
data: {appName: pipeline, appVersion: 2.5.0, bucketName: mlpipeline, dbHost: mysql, dbPort: "3306", pipelineDb: mlpipeline, mlmdDb: metadb, cacheDb: cachedb, autoUpdatePipelineDefaultVersion: "true", cronScheduleTimezone: UTC}""")
KF_APPS = ["ml-pipeline", "ml-pipeline-ui", "ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow",
           "ml-pipeline-viewer-crd", "ml-pipeline-visualizationserver", "metadata-grpc", "metadata-writer",
           "cache-server", "workflow-controller", "katib-controller", "katib-ui", "katib-db-manager",
           "notebook-controller", "profiles-controller", "centraldashboard", "jupyter-web-app",
           "volumes-web-app", "tensorboards-web-app", "admission-webhook", "training-operator",
           "kserve-controller", "minio", "mysql", "oauth2-proxy", "dex", "kubeflow-pipelines-profile-controller",
           "pvcviewer-controller", "metacontroller", "seaweedfs"]
for app in KF_APPS:
    add(f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {app}, namespace: kubeflow, labels: {{app: {app}, application-crd-id: kubeflow-pipelines}}}}")
    add(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {app}-config, namespace: kubeflow, labels: {{app: {app}}}}}
data:
  config.json: '{{"dbConnectionTimeout": "2m", "defaultPipelineRoot": "minio://mlpipeline/v2/artifacts", "logLevel": "info", "image": "ghcr.io/kubeflow/{app}:2.5.0@sha256:{hx(64)}"}}'
  LOG_LEVEL: info""")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {app}-role, namespace: kubeflow, labels: {{app: {app}}}}}
rules:
- {{apiGroups: [""], resources: [configmaps, secrets, pods, services], verbs: [get, list, watch, create, update, patch, delete]}}
- {{apiGroups: [argoproj.io, kubeflow.org], resources: ["*"], verbs: [get, list, watch]}}""")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {app}-binding, namespace: kubeflow, labels: {{app: {app}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {app}-role}}
subjects:
- {{kind: ServiceAccount, name: {app}, namespace: kubeflow}}""")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: kubeflow-{app}-cluster-role, labels: {{app: {app}, app.kubernetes.io/part-of: kubeflow}}}}
rules:
- {{apiGroups: [argoproj.io], resources: [workflows, workflowtemplates, cronworkflows], verbs: [get, list, watch, create, update, patch, delete]}}
- {{apiGroups: [kubeflow.org], resources: [scheduledworkflows, notebooks, experiments, profiles], verbs: [get, list, watch, create, update, patch, delete]}}
- {{apiGroups: [""], resources: [namespaces, pods, pods/log, events], verbs: [get, list, watch]}}""")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {app}-cluster-binding, labels: {{app: {app}}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-{app}-cluster-role}}
subjects:
- {{kind: ServiceAccount, name: {app}, namespace: kubeflow}}""")
for i, app in enumerate(KF_APPS[:16]):
    add(f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {app}, namespace: kubeflow}}
spec:
  podSelector: {{matchLabels: {{app: {app}}}}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {{matchLabels: {{app.kubernetes.io/part-of: kubeflow-profile}}}}
    - podSelector: {{}}
    ports: [{{protocol: TCP, port: {8080 + i}}}]""")
    add(f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {app}, namespace: kubeflow}}
spec:
  selector: {{matchLabels: {{app: {app}}}}}
  rules:
  - from:
    - source: {{principals: ["cluster.local/ns/kubeflow/sa/ml-pipeline-ui", "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}""")
for pvc, size in [("mysql-pv-claim", "20Gi"), ("minio-pvc", "200Gi"), ("katib-mysql", "10Gi")]:
    add(f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {pvc}, namespace: kubeflow, annotations: {{pv.kubernetes.io/bind-completed: "yes"}}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: {size}}}}}, volumeName: pvc-{uid()}, storageClassName: standard}}
status: {{phase: Bound, capacity: {{storage: {size}}}}}""")
add("""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-admin, labels: {rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin: "true"}}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin: "true"}}]
rules: []""")
add("""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubeflow-edit, labels: {rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin: "true"}}
rules:
- {apiGroups: [kubeflow.org], resources: [notebooks, experiments, scheduledworkflows], verbs: [get, list, watch, create, update, patch, delete]}
- {apiGroups: [argoproj.io], resources: [workflows], verbs: [get, list, watch, create, update, patch, delete]}""")
# what every cluster has and a Kubeflow backup leaves out
for i in range(40):
    add(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: \"system:controller:ctrl-{i:02d}\"}}\nrules:\n- {{apiGroups: [\"\"], resources: [pods], verbs: [get, list, watch]}}")
    add(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: \"system:controller:ctrl-{i:02d}\"}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: \"system:controller:ctrl-{i:02d}\"}}\nsubjects:\n- {{kind: ServiceAccount, name: ctrl-{i:02d}, namespace: kube-system}}")
    add(f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: ctrl-{i:02d}, namespace: kube-system}}")
for i in range(10):
    add(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio-config-{i}, namespace: istio-system}}\ndata: {{mesh: \"accessLogFile: /dev/stdout\\ndefaultConfig:\\n  discoveryAddress: istiod.istio-system.svc:15012\"}}")

# --- the tenants
IMAGES = ["kubeflownotebookswg/jupyter-scipy:v1.9.0", "kubeflownotebookswg/jupyter-pytorch-cuda-full:v1.9.0",
          "kubeflownotebookswg/codeserver-python:v1.9.0", "kubeflownotebookswg/rstudio-tidyverse:v1.9.0"]
for p in range(1, profiles + 1):
    ns, owner = f"kubeflow-user-{p:02d}", f"user{p:02d}@example.com"
    add(f"""apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels: {{app.kubernetes.io/part-of: kubeflow-profile, katib.kubeflow.org/metrics-collector-injection: enabled, istio-injection: enabled, pipelines.kubeflow.org/enabled: "true"}}
  annotations: {{owner: {owner}}}""")
    add(f"""apiVersion: kubeflow.org/v1
kind: Profile
metadata: {{name: {ns}}}
spec:
  owner: {{kind: User, name: {owner}}}
  resourceQuotaSpec: {{hard: {{cpu: "16", memory: 64Gi, requests.nvidia.com/gpu: "2", persistentvolumeclaims: "20"}}}}""")
    for sa in ("default-editor", "default-viewer"):
        add(f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {ns}}}")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: namespaceAdmin
  namespace: {ns}
  annotations: {{role: admin, user: {owner}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-admin}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {owner}}}""")
    add(f"""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: default-editor, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeflow-edit}}
subjects:
- {{kind: ServiceAccount, name: default-editor, namespace: {ns}}}""")
    add(f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ns-owner-access-istio, namespace: {ns}, annotations: {{role: admin, user: {owner}}}}}
spec:
  rules:
  - from:
    - source: {{principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account", "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"]}}
    when:
    - {{key: "request.headers[kubeflow-userid]", values: ["{owner}"]}}
  - from:
    - source: {{principals: ["cluster.local/ns/{ns}/sa/default-editor"]}}""")
    add(f"""apiVersion: v1
kind: ResourceQuota
metadata: {{name: kf-resource-quota, namespace: {ns}}}
spec:
  hard: {{cpu: "16", memory: 64Gi, requests.nvidia.com/gpu: "2", persistentvolumeclaims: "20"}}
status:
  hard: {{cpu: "16", memory: 64Gi, requests.nvidia.com/gpu: "2", persistentvolumeclaims: "20"}}
  used: {{cpu: "{rnd.randint(1, 15)}", memory: {rnd.randint(1, 60)}Gi, requests.nvidia.com/gpu: "0", persistentvolumeclaims: "12"}}""")
    add(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kube-root-ca.crt, namespace: {ns}}}\ndata: {{ca.crt: \"minted by the cluster {hx(64)}\"}}")
    add(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: kfp-launcher, namespace: {ns}}}
data: {{defaultPipelineRoot: "minio://mlpipeline/v2/artifacts/{ns}"}}""")
    add(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: metadata-grpc-configmap, namespace: {ns}}}
data: {{METADATA_GRPC_SERVICE_HOST: metadata-grpc-service.kubeflow, METADATA_GRPC_SERVICE_PORT: "8080"}}""")
    add(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: artifact-repositories, namespace: {ns}, annotations: {{workflows.argoproj.io/default-artifact-repository: default-v1}}}}
data:
  default-v1: |
    archiveLogs: true
    s3:
      endpoint: minio-service.kubeflow:9000
      bucket: mlpipeline
      keyFormat: "private-artifacts/{ns}/{{{{workflow.name}}}}/{{{{workflow.creationTimestamp.Y}}}}/{{{{pod.name}}}}"
      insecure: true
      accessKeySecret: {{name: mlpipeline-minio-artifact, key: accesskey}}
      secretKeySecret: {{name: mlpipeline-minio-artifact, key: secretkey}}""")
    for c in range(9):
        params = ", ".join(f'"{k}": {rnd.random():.6f}' for k in ("lr", "dropout", "momentum", "weight_decay"))
        add(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: train-config-{c}, namespace: {ns}, labels: {{app: trainer, team: team-{p % 7}}}}}
data:
  params.json: '{{{params}, "epochs": {rnd.randint(5, 50)}, "batch_size": {rnd.choice([32, 64, 128, 256])}}}'
  dataset: "s3://datasets/{hx(12)}/train.parquet"
  run-id: "{uid()}\"""")
    # volumes: one workspace per notebook, two shared datasets
    pvcs = [f"workspace-nb-{n}" for n in range(10)] + ["datasets", "models"]
    for pvc in pvcs:
        size = rnd.choice(["5Gi", "10Gi", "20Gi", "50Gi"])
        add(f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {pvc}
  namespace: {ns}
  labels: {{app: {'spawner' if pvc.startswith('workspace') else 'data'}}}
  annotations: {{pv.kubernetes.io/bind-completed: "yes", pv.kubernetes.io/bound-by-controller: "yes", volume.kubernetes.io/storage-provisioner: rancher.io/local-path}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
  storageClassName: standard
  volumeMode: Filesystem
  volumeName: pvc-{uid()}
status: {{phase: Bound, accessModes: [ReadWriteOnce], capacity: {{storage: {size}}}}}""")
    for n in range(10):
        img = IMAGES[(p + n) % len(IMAGES)]
        add(f"""apiVersion: kubeflow.org/v1
kind: Notebook
metadata:
  name: nb-{n}
  namespace: {ns}
  labels: {{app: nb-{n}}}
  annotations: {{notebooks.kubeflow.org/server-type: jupyter, notebooks.kubeflow.org/creator: {owner}, notebooks.kubeflow.org/last-activity: "{ts()}"}}
spec:
  template:
    spec:
      serviceAccountName: default-editor
      containers:
      - name: nb-{n}
        image: {img}
        imagePullPolicy: IfNotPresent
        resources:
          requests: {{cpu: "{rnd.choice(['0.5', '1', '2'])}", memory: {rnd.choice(['1Gi', '2Gi', '4Gi'])}}}
          limits: {{cpu: "{rnd.choice(['1', '2', '4'])}", memory: {rnd.choice(['2Gi', '4Gi', '8Gi'])}}}
        volumeMounts:
        - {{mountPath: /home/jovyan, name: workspace}}
        - {{mountPath: /dev/shm, name: dshm}}
        - {{mountPath: /data, name: datasets}}
        env:
        - {{name: NB_PREFIX, value: /notebook/{ns}/nb-{n}}}
      volumes:
      - {{name: workspace, persistentVolumeClaim: {{claimName: workspace-nb-{n}}}}}
      - {{name: dshm, emptyDir: {{medium: Memory}}}}
      - {{name: datasets, persistentVolumeClaim: {{claimName: datasets}}}}
status:
  readyReplicas: 1
  containerState: {{running: {{startedAt: "{ts()}"}}}}
  conditions:
  - {{type: Ready, status: "True", lastProbeTime: "{ts()}"}}""")
    for s in range(10):
        add(f"""apiVersion: kubeflow.org/v1beta1
kind: ScheduledWorkflow
metadata:
  name: nightly-train-{s}
  namespace: {ns}
  uid: {uid()}
  labels: {{scheduledworkflows.kubeflow.org/isOwnedByUi: "true"}}
spec:
  enabled: true
  maxConcurrency: {rnd.randint(1, 3)}
  noCatchup: false
  trigger: {{cronSchedule: {{cron: "0 {rnd.randint(0, 59)} {rnd.randint(0, 23)} * * *"}}}}
  workflow:
    parameters:
    - {{name: learning_rate, value: "{rnd.random():.4f}"}}
    - {{name: dataset, value: "s3://datasets/{hx(12)}"}}
    spec:
      pipeline_id: {uid()}
      pipeline_version_id: {uid()}
      service_account: default-editor
status:
  conditions:
  - {{type: Enabled, status: "True", lastTransitionTime: "{ts()}", reason: Enabled}}
  trigger: {{lastTriggeredTime: "{ts()}", nextTriggeredTime: "{ts()}"}}""")
    for w in range(38):
        running = w < 34
        sw = w % 10
        phase = "Running" if running else "Succeeded"
        completed = "" if running else ', workflows.argoproj.io/completed: "true"'
        nodes = "\n".join(f"""    nodes-{w}-{k}: {{id: nodes-{w}-{k}, name: "train-{w}.step-{k}", type: Pod, phase: {'Running' if running and k == 2 else 'Succeeded'}, startedAt: "{ts()}"}}""" for k in range(3))
        add(f"""apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: nightly-train-{sw}-{w:03d}
  namespace: {ns}
  labels: {{pipeline/runid: {uid()}, scheduledworkflows.kubeflow.org/scheduledWorkflowName: nightly-train-{sw}, workflows.argoproj.io/phase: {phase}{completed}}}
  annotations: {{pipelines.kubeflow.org/run_name: "nightly-train-{sw} run {w}", pipelines.kubeflow.org/kfp_sdk_version: 2.9.0}}
  ownerReferences:
  - {{apiVersion: kubeflow.org/v1beta1, kind: ScheduledWorkflow, name: nightly-train-{sw}, uid: {uid()}, controller: true, blockOwnerDeletion: true}}
spec:
  entrypoint: entrypoint
  serviceAccountName: default-editor
  arguments:
    parameters:
    - {{name: components-{hx(8)}, value: '{{"executorLabel": "exec-train", "inputDefinitions": {{"parameters": {{"lr": {{"parameterType": "NUMBER_DOUBLE"}}}}}}}}'}}
  templates:
  - name: system-container-driver
    container:
      image: ghcr.io/kubeflow/kfp-driver:2.5.0
      command: [driver]
      args: [--type, CONTAINER, --pipeline_name, nightly-train-{sw}, --run_id, "{{{{workflow.uid}}}}", --mlmd_server_address, metadata-grpc-service.kubeflow]
      resources: {{limits: {{cpu: 500m, memory: 512Mi}}, requests: {{cpu: 100m, memory: 64Mi}}}}
  - name: system-container-executor
    container:
      image: python:3.11
      command: [sh, -c, "python3 -m kfp.dsl.executor_main"]
      resources: {{limits: {{cpu: "2", memory: 4Gi}}}}
  - name: entrypoint
    dag:
      tasks:
      - {{name: train, template: system-container-driver}}
      - {{name: evaluate, template: system-container-executor, depends: train.Succeeded}}
status:
  phase: {phase}
  startedAt: "{ts()}"
  progress: {'2/3' if running else '3/3'}
  nodes:
{nodes}""")
    for e in range(10):
        add(f"""apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: tune-{e}
  namespace: {ns}
spec:
  objective: {{type: maximize, goal: 0.9{e}, objectiveMetricName: accuracy, additionalMetricNames: [loss]}}
  algorithm: {{algorithmName: {rnd.choice(['random', 'bayesianoptimization', 'tpe', 'grid'])}}}
  parallelTrialCount: {rnd.randint(1, 4)}
  maxTrialCount: {rnd.randint(10, 40)}
  maxFailedTrialCount: 3
  parameters:
  - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.0001", max: "0.1"}}}}
  - {{name: batch_size, parameterType: int, feasibleSpace: {{min: "16", max: "256"}}}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
    - {{name: learningRate, reference: lr}}
    - {{name: batchSize, reference: batch_size}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
            - name: training-container
              image: docker.io/kubeflowkatib/pytorch-mnist-cpu:v0.17.0
              command: [python3, /opt/pytorch-mnist/mnist.py, "--lr=${{trialParameters.learningRate}}", "--batch-size=${{trialParameters.batchSize}}"]
            restartPolicy: Never
status:
  trials: {rnd.randint(0, 10)}
  trialsRunning: {rnd.randint(0, 3)}
  conditions:
  - {{type: Running, status: "True", reason: ExperimentRunning, lastUpdateTime: "{ts()}"}}""")

with open(os.path.join(out, "cluster.yaml"), "w") as f:
    f.write("\n---\n".join(docs) + "\n")
PY
FIXTURE_DOCS=$(grep -c '^kind: ' "$WORK/fixtures/cluster.yaml")
echo "bench: $FIXTURE_DOCS objects in $WORK/fixtures/cluster.yaml ($(du -k "$WORK/fixtures/cluster.yaml" | cut -f1) KiB)" >&2

# ------------------------------------------------------------------ stand-ins
# start_standin NAME FIXTURE_DIR: a stand-in on a free port, its kubeconfig in $WORK/NAME.kubeconfig
# and its request log (one line per request) in $WORK/NAME.log; sets SPID and SURL.
start_standin() {
  local name=$1 dir=$2 n
  rm -f "$WORK/$name.kubeconfig" "$WORK/$name.log"
  "$STANDIN" --fixtures "$dir" --port 0 --kubeconfig "$WORK/$name.kubeconfig" >/dev/null 2>"$WORK/$name.log" &
  SPID=$!
  PIDS+=("$SPID")
  for n in $(seq 600); do
    grep -q '^kube-standin: serving on ' "$WORK/$name.log" 2>/dev/null && break
    kill -0 "$SPID" 2>/dev/null || { echo "bench: stand-in $name exited:" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  SURL=$(sed -n 's/^kube-standin: serving on //p' "$WORK/$name.log")
  for n in $(seq 100); do curl -sf "$SURL/version" >/dev/null && break; sleep 0.1; done
  curl -sf "$SURL/version" >/dev/null || { echo "bench: stand-in $name does not answer on $SURL" >&2; exit 1; }
}
stop_standin() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

CLK_TCK=$(getconf CLK_TCK)
cpu_of() { awk -v hz="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# run LABEL STANDIN_PID STANDIN_LOG CMD... : appends "wall_s max_rss_kib user_s sys_s server_cpu_s
# requests" to $WORK/LABEL.times and keeps the requests the command sent in $WORK/LABEL.requests
run() {
  local label=$1 spid=$2 slog=$3 rc=0 c0 l0 t
  shift 3
  c0=$(cpu_of "$spid")
  l0=$(wc -l <"$slog")
  date +%s.%N >"$WORK/$label.t0"
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.out" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || rc=$?
  date +%s.%N >"$WORK/$label.t1"
  if ((rc != 0)); then
    echo "bench: $label failed (exit $rc):" >&2
    tail -5 "$WORK/$label.err" >&2
    return 1
  fi
  sleep 0.2 # the last log lines
  tail -n +$((l0 + 1)) "$slog" | grep -E '^[A-Z]+ /' >"$WORK/$label.requests" || true
  t="$(tail -1 "$WORK/time.out") $(awk -v a="$c0" -v b="$(cpu_of "$spid")" 'BEGIN { printf "%.2f", b - a }') $(wc -l <"$WORK/$label.requests")"
  echo "$t" >>"$WORK/$label.times"
  read -r wall kib user sys srv req <<<"$t"
  printf 'bench: %s %-18s %7s s %5s MiB  cpu: client %5.1f s, stand-in %5.1f s, %5s requests\n' \
    "$(date +%T)" "$label" "$wall" "$((kib / 1024))" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$srv" "$req" >&2
}

# The kinds kfguard captures, as kubectl names them.
KINDS=(namespaces serviceaccounts configmaps persistentvolumeclaims resourcequotas limitranges
  roles.rbac.authorization.k8s.io rolebindings.rbac.authorization.k8s.io
  clusterroles.rbac.authorization.k8s.io clusterrolebindings.rbac.authorization.k8s.io
  networkpolicies.networking.k8s.io customresourcedefinitions.apiextensions.k8s.io
  authorizationpolicies.security.istio.io profiles.kubeflow.org notebooks.kubeflow.org
  scheduledworkflows.kubeflow.org experiments.kubeflow.org workflows.argoproj.io)
export KINDS_LIST="${KINDS[*]}"
# The loop a user's script would run: one `kubectl get -A -o yaml` per kind, one after another.
# Each run starts with an empty discovery cache, as kfguard discovers on every run.
cat >"$WORK/kubectl-export.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
out=$1
mkdir -p "$out"
i=0
for k in $KINDS_LIST; do
  i=$((i + 1))
  kubectl get "$k" -A -o yaml >"$out/$(printf %02d $i)-$k.yaml"
done
SH
chmod +x "$WORK/kubectl-export.sh"

echo "password-for-bench" >"$WORK/password"
export KFGUARD_PASSWORD_FILE=$WORK/password
unset KFGUARD_CONFIG KUBECONFIG
cd "$WORK" # no kfguard.toml from the caller's folder

echo "bench: starting the source stand-in" >&2
start_standin src "$WORK/fixtures"
SRC_PID=$SPID
SRC_LOG=$WORK/src.log
echo "bench: $(grep -m1 'seeded' "$SRC_LOG") on $SURL" >&2

# ------------------------------------------------------------------ export
k_export() {
  rm -rf "$WORK/kr"
  KFGUARD_REPO=$WORK/kr "$KFGUARD" -q init >/dev/null
  run k-export "$SRC_PID" "$SRC_LOG" env KFGUARD_REPO="$WORK/kr" \
    "$KFGUARD" --kubeconfig "$WORK/src.kubeconfig" --output json backup --only kubernetes
  cp "$WORK/k-export.out" "$WORK/k-export.json"
}
c_export() {
  rm -rf "$WORK/yaml" "$WORK/kube-cache"
  run c-export "$SRC_PID" "$SRC_LOG" env KUBECONFIG="$WORK/src.kubeconfig" KUBECACHEDIR="$WORK/kube-cache" \
    "$WORK/kubectl-export.sh" "$WORK/yaml"
}
# split LABEL: appends "open+list write" seconds of a kfguard backup, from its log line saying
# what it captured (the repository is opened before the capture, the snapshot written after).
split() {
  python3 - "$WORK/$1.t0" "$WORK/$1.t1" "$WORK/$1.err" >>"$WORK/$1.split" <<'PY2'
import datetime, json, sys
t0, t1 = (float(open(p).read()) for p in sys.argv[1:3])
for line in open(sys.argv[3]):
    try: r = json.loads(line)
    except ValueError: continue
    if "objects of" in r.get("message", "") and r["message"].startswith("kubernetes:"):
        t = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
        print("%.2f %.2f" % (t - t0, t1 - t))
        break
PY2
}
for i in $(seq "$RUNS"); do
  echo "bench: export run $i/$RUNS ($((SECONDS - START)) s elapsed)" >&2
  if ((i % 2)); then k_export; c_export; else c_export; k_export; fi
  split k-export
  # opening the repository alone (key derivation, index), for the split above
  /usr/bin/time -f "%e" -o "$WORK/time.out" env KFGUARD_REPO="$WORK/kr" "$KFGUARD" -q snapshots >/dev/null
  cat "$WORK/time.out" >>"$WORK/k-open.times"
done

# One more export under `perf record`, for where kfguard's CPU goes (skipped without perf).
if command -v perf >/dev/null && perf record -q -o /dev/null true 2>/dev/null; then
  rm -rf "$WORK/kr-perf"
  KFGUARD_REPO=$WORK/kr-perf "$KFGUARD" -q init >/dev/null
  perf record -q -F 999 -o "$WORK/perf.data" env KFGUARD_REPO="$WORK/kr-perf" \
    "$KFGUARD" --kubeconfig "$WORK/src.kubeconfig" -q backup --only kubernetes >/dev/null 2>&1
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -8 |
    sed -E 's/\[\.\] //; s/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/^ +//' >"$WORK/perf.top" || true
fi

OBJECTS=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifest"]; print(sum(m["kubernetes"].values()))' "$WORK/k-export.json")
SKIPPED=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifest"]; print(sum(m.get("kubernetes_skipped", {}).values()))' "$WORK/k-export.json")
KINDS_CAPTURED=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifest"]; print(len(m["kubernetes"]))' "$WORK/k-export.json")
KUBECTL_OBJECTS=$(cat "$WORK"/yaml/*.yaml | grep -c '^- ' || true)
echo "bench: kfguard captured $OBJECTS objects of $KINDS_CAPTURED kinds (skipped $SKIPPED);" \
  "kubectl exported $KUBECTL_OBJECTS objects in $(find "$WORK/yaml" -name '*.yaml' | wc -l) files" \
  "($(du -sk "$WORK/yaml" | cut -f1) KiB)" >&2
python3 - "$WORK/k-export.json" <<'PY' >&2
import json, sys
m = json.load(open(sys.argv[1]))["manifest"]
print("bench:   " + ", ".join(f"{k} {v}" for k, v in sorted(m["kubernetes"].items())))
PY

# ------------------------------------------------------------------ restore
# landed: how many objects of the captured kinds the target stand-in holds
landed() {
  KUBECONFIG=$WORK/dst.kubeconfig KUBECACHEDIR=$WORK/kube-cache-count \
    kubectl get "$(IFS=,; echo "${KINDS[*]}")" -A -o name | wc -l
}
# Into a fresh target per run: only Istio's CRD, as a real target cluster has Istio installed.
k_restore() { # LABEL EXTRA_ARGS...
  local label=$1
  shift
  start_standin dst "$WORK/istio"
  run "$label" "$SPID" "$WORK/dst.log" env KFGUARD_REPO="$WORK/kr" \
    "$KFGUARD" --kubeconfig "$WORK/dst.kubeconfig" --output json restore latest --only kubernetes "$@"
  cp "$WORK/dst.log" "$WORK/$label.standin.log"
  if [[ $label == k-restore && ! -e $WORK/restore-counts ]]; then
    landed >"$WORK/k-restore.landed"
    python3 - "$WORK/k-restore.out" <<'PY2' | tee "$WORK/restore-counts" >&2
import json, sys
counts = json.load(open(sys.argv[1]))["kubernetes"]["counts"]
print("bench:   kfguard restore: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
PY2
  fi
  stop_standin "$SPID"
}
# The peer: what a user's script does with the loop's files. Strip what the source server set
# (a real API server refuses resourceVersion on create and answers 409 when it differs), then
# server-side apply: the CRDs first (their kinds must be served before kubectl can map the custom
# resources), `kubectl wait` for Established, then the other files in the loop's order.
# --validate=false: the stand-in serves no /openapi (a real cluster's would be fetched per call).
c_restore() {
  start_standin dst "$WORK/istio"
  cat >"$WORK/kubectl-apply.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
in=$1 out=$2
mkdir -p "$out"
for f in "$in"/*.yaml; do
  sed -E '/^    (creationTimestamp|generation|resourceVersion|uid): /d' "$f" >"$out/${f##*/}"
done
rest=()
for f in "$out"/*.yaml; do [[ $f == *customresourcedefinitions* ]] || rest+=(-f "$f"); done
kubectl apply --server-side --force-conflicts --validate=false -f "$out"/*customresourcedefinitions*.yaml >/dev/null
kubectl wait --for condition=established --timeout=60s crd --all >/dev/null
kubectl apply --server-side --force-conflicts --validate=false "${rest[@]}" >/dev/null
SH
  rm -rf "$WORK/yaml-clean" "$WORK/kube-cache-dst"
  if run c-restore "$SPID" "$WORK/dst.log" env KUBECONFIG="$WORK/dst.kubeconfig" KUBECACHEDIR="$WORK/kube-cache-dst" \
    bash "$WORK/kubectl-apply.sh" "$WORK/yaml" "$WORK/yaml-clean"; then
    [[ -e $WORK/c-restore.landed ]] || landed >"$WORK/c-restore.landed"
  else
    C_RESTORE_OK=0
    cp "$WORK/c-restore.err" "$WORK/c-restore.failed"
  fi
  stop_standin "$SPID"
}
C_RESTORE_OK=1
for i in $(seq "$RUNS"); do
  echo "bench: restore run $i/$RUNS ($((SECONDS - START)) s elapsed)" >&2
  k_restore k-restore
  k_restore k-dryrun --dry-run
  if ((C_RESTORE_OK)); then c_restore; fi
done

# ------------------------------------------------------------------ report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{ print $c }' "$WORK/$1.times" | median; }
secs() { col "$1" 1; }
rss() { echo $(($(cut -d' ' -f2 "$WORK/$1.times" | sort -n | tail -1) / 1024)); }
cpu() { awk '{ print $3 + $4 }' "$WORK/$1.times" | median | xargs printf "%.2f"; }
ops() { awk -v n="$OBJECTS" -v s="$1" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }
row() { printf '%-34s %10s %10s %7s %10s  %s\n' "$@"; }
# requests LABEL: a summary of the last run's requests: by verb, list pages and their limits
requests() {
  awk '
    { split($2, a, "?"); path = a[1]; q = a[2]; m = $1
      if (m == "GET" && (path ~ /^\/api$/ || path ~ /^\/apis$/ || path ~ /^\/apis\/[^\/]+(\/[^\/]+)?$/ || path ~ /^\/api\/v1$/ || path ~ /^\/version/ || path ~ /^\/openapi/)) disc++
      else if (m == "GET" && q ~ /limit=/) { lists++; match(q, /limit=[0-9]+/); lim[substr(q, RSTART + 6, RLENGTH - 6)]++ }
      else if (m == "GET") gets++
      else writes[m]++
      n++ }
    END {
      printf "%d requests: %d discovery, %d list pages", n, disc, lists
      s = ""; for (l in lim) s = s sprintf("%s%d x limit=%s", s == "" ? "" : ", ", lim[l], l)
      if (s != "") printf " (%s)", s
      printf ", %d other GETs", gets
      for (w in writes) printf ", %d %s", writes[w], w
      printf "\n" }' "$WORK/$1.requests"
}

k=$(secs k-export) c=$(secs c-export)
printf '\n%s profiles, %s objects captured by kfguard (%s kinds; %s finished workflows skipped), %s exported by kubectl,\n' \
  "$PROFILES" "$OBJECTS" "$KINDS_CAPTURED" "$SKIPPED" "$KUBECTL_OBJECTS"
printf '%s runs (median), kfguard built from %s, %s, %s s in all\n\n' "$RUNS" "$BUILT" \
  "$(kubectl version --client 2>/dev/null | head -1)" "$((SECONDS - START))"
row "" kfguard kubectl ratio target ""
row "export (s)" "$k" "$c" "$(ratio "$k" "$c")" "<= ${TARGET}x" "$(verdict "$(ratio "$k" "$c")" "$TARGET")"
row "export (objects/s)" "$(ops "$k")" "$(ops "$c")" "$(ratio "$(ops "$k")" "$(ops "$c")")" "" ""
row "export peak RSS (MiB)" "$(rss k-export)" "$(rss c-export)" "$(ratio "$(rss k-export)" "$(rss c-export)")" "" ""
row "export client CPU (s)" "$(cpu k-export)" "$(cpu c-export)" "$(ratio "$(cpu k-export)" "$(cpu c-export)")" "" ""
row "export stand-in CPU (s)" "$(col k-export 5)" "$(col c-export 5)" "$(ratio "$(col k-export 5)" "$(col c-export 5)")" "" ""
kr=$(secs k-restore)
if ((C_RESTORE_OK)); then
  cr=$(secs c-restore)
  row "restore (s)" "$kr" "$cr" "$(ratio "$kr" "$cr")" "" ""
  row "restore (objects/s)" "$(ops "$kr")" "$(ops "$cr")" "$(ratio "$(ops "$kr")" "$(ops "$cr")")" "" ""
  row "restore peak RSS (MiB)" "$(rss k-restore)" "$(rss c-restore)" "$(ratio "$(rss k-restore)" "$(rss c-restore)")" "" ""
  row "restore client CPU (s)" "$(cpu k-restore)" "$(cpu c-restore)" "$(ratio "$(cpu k-restore)" "$(cpu c-restore)")" "" ""
  row "restore stand-in CPU (s)" "$(col k-restore 5)" "$(col c-restore 5)" "$(ratio "$(col k-restore 5)" "$(col c-restore 5)")" "" ""
else
  row "restore (s)" "$kr" "failed" "" "" ""
  row "restore (objects/s)" "$(ops "$kr")" "" "" "" ""
  row "restore peak RSS (MiB)" "$(rss k-restore)" "" "" "" ""
  row "restore client CPU (s)" "$(cpu k-restore)" "" "" "" ""
  row "restore stand-in CPU (s)" "$(col k-restore 5)" "" "" "" ""
fi
row "restore --dry-run (s)" "$(secs k-dryrun)" "" "" "" ""
row "restore --dry-run (objects/s)" "$(ops "$(secs k-dryrun)")" "" "" "" ""
openlist=$(cut -d' ' -f1 "$WORK/k-export.split" | median)
write=$(cut -d' ' -f2 "$WORK/k-export.split" | median)
open=$(median <"$WORK/k-open.times")
printf '\nkfguard export, median split: open the repository %s s (a separate `kfguard snapshots`),\n' "$open"
printf '  discover + list + sanitise %s s, write the snapshot (%s files) %s s;\n' \
  "$(awk -v a="$openlist" -v b="$open" 'BEGIN { printf "%.2f", a - b }')" "$OBJECTS" "$write"
printf '  the listing alone is %s of the kubectl loop.\n' \
  "$(ratio "$(awk -v a="$openlist" -v b="$open" 'BEGIN { print a - b }')" "$c")x"
if [[ -s $WORK/perf.top ]]; then
  printf 'kfguard export under perf record (share of CPU samples, top symbols):\n'
  sed 's/^/  /' "$WORK/perf.top"
fi
printf '\nobjects of those kinds on the target after one restore (Istio'"'"'s CRD was there before): kfguard %s' \
  "$(cat "$WORK/k-restore.landed")"
if ((C_RESTORE_OK)); then printf ', kubectl apply %s' "$(cat "$WORK/c-restore.landed")"; fi
echo
printf '\nrequests per run (from the stand-in'"'"'s request log, last run):\n'
printf '  kfguard export:     %s' "$(requests k-export)"; echo
printf '  kubectl loop:       %s' "$(requests c-export)"; echo
printf '  kfguard restore:    %s' "$(requests k-restore)"; echo
printf '  kfguard --dry-run:  %s' "$(requests k-dryrun)"; echo
if ((C_RESTORE_OK)); then printf '  kubectl apply:      %s' "$(requests c-restore)"; echo
else
  printf '  kubectl apply --server-side failed on the stand-in:\n'
  grep -v '^$' "$WORK/c-restore.failed" | head -5 | sed 's/^/    /'
fi
printf '\nkubectl loop = for k in <the %s kinds kfguard captures>; do kubectl get $k -A -o yaml; done,\n' "${#KINDS[@]}"
printf '  sequential, fresh discovery cache per run; kubectl apply = apply --server-side of the CRDs,\n'
printf '  kubectl wait for Established, then apply --server-side of the other files.\n'
printf 'objects/s counts the %s objects kfguard captured for both sides; stand-in CPU is the stand-in\n' "$OBJECTS"
printf '  process'"'"'s user+sys during the command; a loop'"'"'s peak RSS is that of its largest process.\n'
