"""Plays the kubelet and the controllers the stand-in API server does not have, for scripts/demo.sh.

The stand-in (tests/standin) stores objects and nothing more: no pod ever starts there. So that
verify-health sees what a real cluster shows once its Deployments roll out, this script writes,
through the API as the controllers would:
  - one Ready pod per replica of each Deployment of the Kubeflow namespace (the kubelet),
  - the Deployments' available replicas (the Deployment controller),
  - Bound for every claim (the PV controller),
  - an address for every Service that selects pods (the endpoints controller).
Usage: python3 kubelet.py KUBECONFIG [NAMESPACE]
"""
import json
import sys
import urllib.error
import urllib.request

kubeconfig = open(sys.argv[1]).read()
namespace = sys.argv[2] if len(sys.argv) > 2 else "kubeflow"
server = next(l.split("server:", 1)[1].strip() for l in kubeconfig.splitlines() if "server:" in l)
token = next(l.split("token:", 1)[1].strip() for l in kubeconfig.splitlines() if "token:" in l)


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        if e.code == 409:  # already there
            return None
        raise SystemExit(f"kubelet.py: {method} {path}: {e.code} {e.read().decode()[:300]}")


ns_path = f"/api/v1/namespaces/{namespace}"
pods = 0
for d in call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]:
    name = d["metadata"]["name"]
    replicas = d["spec"].get("replicas", 1)
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    image = d["spec"]["template"]["spec"]["containers"][0]["image"]
    for i in range(replicas):
        pod = f"{name}-{i}"
        call("POST", f"{ns_path}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "main", "image": image}]},
        })
        live = call("GET", f"{ns_path}/pods/{pod}")
        live["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "image": image, "ready": True,
                                   "restartCount": 0, "state": {"running": {}}}],
        }
        call("PUT", f"{ns_path}/pods/{pod}/status", live)
        pods += 1
    d["status"] = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                   "updatedReplicas": replicas,
                   "conditions": [{"type": "Available", "status": "True"}]}
    call("PUT", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status", d)

claims = 0
for c in call("GET", "/api/v1/persistentvolumeclaims")["items"]:
    c["status"] = {"phase": "Bound"}
    meta = c["metadata"]
    call("PUT", f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status", c)
    claims += 1

endpoints = 0
for i, s in enumerate(call("GET", f"{ns_path}/services")["items"]):
    if not s["spec"].get("selector"):
        continue
    name = s["metadata"]["name"]
    ports = [{"name": p.get("name", ""), "port": p["port"]} for p in s["spec"]["ports"]]
    body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
            "subsets": [{"addresses": [{"ip": f"10.0.0.{10 + i}"}], "ports": ports}]}
    if call("POST", f"{ns_path}/endpoints", body) is None:
        live = call("GET", f"{ns_path}/endpoints/{name}")
        live["subsets"] = body["subsets"]
        call("PUT", f"{ns_path}/endpoints/{name}", live)
    endpoints += 1

print(f"stand-in: {pods} pods Ready, Deployments available, {claims} claims Bound, {endpoints} services with endpoints")
