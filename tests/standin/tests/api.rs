//! The stand-in API server driven by the real `kube::Client`, as kfguard will drive it.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::Client;
use kube_standin::{Fault, Options, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod common;
use common::{client, code, Kubectl};

fn dynamic(client: &Client, gv: &str, kind: &str, plural: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (g, v) = gv.split_once('/').unwrap_or(("", gv));
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

const NOTEBOOKS_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: notebooks.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {kind: Notebook, plural: notebooks, singular: notebook, listKind: NotebookList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

#[tokio::test]
async fn crd_becomes_established_then_serves_and_deletes_its_resources() {
    let server = Server::start(Options {
        established_delay: Duration::from_millis(300),
        ..Options::default()
    });
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kf}\n")
        .unwrap();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = yaml_serde::from_str(NOTEBOOKS_CRD).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "True"));
    assert!(conds.iter().any(|c| c.type_ == "Established" && c.status == "False"));

    let notebooks = dynamic(&client, "kubeflow.org/v1", "Notebook", "notebooks", Some("kf"));
    let nb =
        obj(json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb"}, "spec": {"x": 1}}));
    assert_eq!(
        code(notebooks.create(&PostParams::default(), &nb).await).0,
        404,
        "not served before Established"
    );
    let groups: Vec<String> = Discovery::new(client.clone())
        .run()
        .await
        .unwrap()
        .groups()
        .map(|g| g.name().to_string())
        .collect();
    assert!(!groups.contains(&"kubeflow.org".to_string()));

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = crds.get("notebooks.kubeflow.org").await.unwrap();
        let conds = c.status.unwrap().conditions.unwrap_or_default();
        if conds.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            break;
        }
        assert!(Instant::now() < deadline, "CRD never became Established");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("kubeflow.org", "v1", "Notebook"))
        .unwrap();
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("notebooks", kube::discovery::Scope::Namespaced)
    );
    let (ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(ar.plural, "deployments");

    let made = notebooks.create(&PostParams::default(), &nb).await.unwrap();
    assert_eq!(made.metadata.generation, Some(1));
    assert!(made.metadata.uid.is_some() && made.metadata.creation_timestamp.is_some());
    // The status subresource changes only .status; main writes keep it.
    let st = notebooks
        .patch_status(
            "nb",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"x": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (st.data["status"]["ready"].clone(), st.data["spec"]["x"].clone()),
        (json!(true), json!(1))
    );
    let main = notebooks
        .patch(
            "nb",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}, "spec": {"x": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (main.data["status"]["ready"].clone(), main.data["spec"]["x"].clone()),
        (json!(true), json!(2))
    );
    assert_eq!(main.metadata.generation, Some(2));

    crds.delete("notebooks.kubeflow.org", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.list("kubeflow.org/v1", "Notebook").is_empty());
    assert!(server
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "notebooks.kubeflow.org"
        )
        .is_none());
}

/// Katib's Experiment (v1beta1 only) sorts before Profile (v1 and v1beta1) by CRD name; the
/// group's preferred version is still v1, by Kubernetes version priority.
#[tokio::test]
async fn discovery_prefers_versions_by_kubernetes_priority_not_crd_order() {
    let server = Server::start(Options::default());
    let crd = |plural: &str, kind: &str, versions: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.kubeflow.org}}\nspec:\n  group: kubeflow.org\n  scope: Cluster\n  names: {{kind: {kind}, plural: {plural}}}\n  versions:\n{versions}---\n"
        )
    };
    let v = |name: &str, storage: bool| {
        format!(
            "  - {{name: {name}, served: true, storage: {storage}, schema: {{openAPIV3Schema: {{type: object}}}}}}\n"
        )
    };
    let yaml = crd("experiments", "Experiment", &v("v1beta1", true))
        + &crd("profiles", "Profile", &(v("v1beta1", false) + &v("v1", true)))
        + &crd(
            "widgets",
            "Widget",
            &(v("v1alpha1", false) + &v("v2beta1", false) + &v("v1beta2", true)),
        );
    server.seed_yaml(&yaml).unwrap();
    let client = client(&server).await;
    let groups = client.list_api_groups().await.unwrap();
    let kf = groups.groups.iter().find(|g| g.name == "kubeflow.org").unwrap();
    let versions: Vec<&str> = kf.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1"]);
    assert_eq!(kf.preferred_version.as_ref().unwrap().version, "v1");

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery.groups().find(|g| g.name() == "kubeflow.org").unwrap();
    let recommended: Vec<String> = group
        .recommended_resources()
        .iter()
        .map(|(ar, _)| format!("{}/{}", ar.kind, ar.version))
        .collect();
    assert_eq!(recommended, ["Profile/v1"]);
}

#[tokio::test]
async fn lists_paginate_and_filter_in_stable_order() {
    let server = Server::start(Options::default());
    let mut yaml = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
    for (ns, name, tier) in [
        ("b", "x", "web"),
        ("a", "z", "db"),
        ("a", "y", "web"),
        ("b", "w", "db"),
        ("a", "v", "cache"),
    ] {
        yaml += &format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}, labels: {{tier: {tier}}}}}\n");
    }
    assert_eq!(server.seed_yaml(&yaml).unwrap(), 7);
    let client = client(&server).await;
    let all: Api<ConfigMap> = Api::all(client.clone());

    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let first = all.list(&lp).await.unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let mut page = first;
    loop {
        seen.extend(page.items.iter().map(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.as_deref().unwrap(),
                c.metadata.name.as_deref().unwrap()
            )
        }));
        match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
            Some(token) => {
                lp = lp.continue_token(&token);
                page = all.list(&lp).await.unwrap();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a/v", "a/y", "a/z", "b/w", "b/x"]);

    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier in (web,db),tier!=db"))
                .await
                .unwrap()
        ),
        ["y", "x"]
    );
    assert_eq!(
        names(all.list(&ListParams::default().labels("!tier")).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=b"))
                .await
                .unwrap()
        ),
        ["w", "x"]
    );
    let in_a: Api<ConfigMap> = Api::namespaced(client.clone(), "a");
    assert_eq!(
        names(
            in_a.list(&ListParams::default().fields("metadata.name!=y"))
                .await
                .unwrap()
        ),
        ["v", "z"]
    );

    let raw = client
        .request::<Value>(
            http::Request::get("/api/v1/namespaces/a/configmaps")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (raw["kind"].as_str(), raw["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    assert_eq!(raw["items"][0]["kind"], "ConfigMap");
    assert!(
        raw["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 7
    );
}

#[tokio::test]
async fn errors_are_statuses_with_real_codes_and_messages() {
    let server = Server::start(Options::default());
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kf}\n")
        .unwrap();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let (c, reason, msg) = code(crds.get("x").await);
    assert_eq!(
        (c, reason.as_str(), msg.as_str()),
        (
            404,
            "NotFound",
            "customresourcedefinitions.apiextensions.k8s.io \"x\" not found"
        )
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kf");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    let made = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(code(cms.create(&PostParams::default(), &cm).await).1, "AlreadyExists");

    let mut stale = made.clone();
    cms.patch("c", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "w"}})))
        .await
        .unwrap();
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let (c, reason, msg) = code(cms.replace("c", &PostParams::default(), &stale).await);
    assert_eq!((c, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("the object has been modified"), "{msg}");

    let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap();
    let (c, reason, msg) = code(cms.create(&PostParams::default(), &bad).await);
    assert_eq!((c, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{msg}"
    );
    let unnamed: ConfigMap = serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert_eq!(code(cms.create(&PostParams::default(), &unnamed).await).0, 422);

    let wrong_kind = dynamic(&client, "v1", "Secret", "configmaps", Some("kf"));
    let s = obj(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}));
    assert_eq!(code(wrong_kind.create(&PostParams::default(), &s).await).0, 422);

    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let (c, _, msg) = code(elsewhere.create(&PostParams::default(), &cm).await);
    assert_eq!((c, msg.as_str()), (404, "namespaces \"nope\" not found"));

    let sar_get = client
        .request::<Value>(
            http::Request::get("/apis/authorization.k8s.io/v1/subjectaccessreviews")
                .body(vec![])
                .unwrap(),
        )
        .await;
    assert_eq!(code(sar_get).0, 405);
    let no_manager = http::Request::patch("/api/v1/namespaces/kf/configmaps/c")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".to_vec())
        .unwrap();
    assert_eq!(code(client.request::<Value>(no_manager).await).0, 422);
    let bad_dry = http::Request::delete("/api/v1/namespaces/kf/configmaps/c?dryRun=Some")
        .body(vec![])
        .unwrap();
    assert_eq!(code(client.request::<Value>(bad_dry).await).0, 400);
}

#[tokio::test]
async fn apply_patch_and_dry_run() {
    let server = Server::start(Options::default());
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kf}\n")
        .unwrap();
    let client = client(&server).await;
    let deploys = dynamic(&client, "apps/v1", "Deployment", "deployments", Some("kf"));
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 1}});
    let pp = PatchParams::apply("kfguard").force();

    let dry = deploys
        .patch("web", &pp.clone().dry_run(), &Patch::Apply(d.clone()))
        .await
        .unwrap();
    assert_eq!(dry.data["spec"]["replicas"], 1);
    assert!(
        server.get("apps/v1", "Deployment", Some("kf"), "web").is_none(),
        "dry run stored nothing"
    );

    let made = deploys.patch("web", &pp, &Patch::Apply(d.clone())).await.unwrap();
    let mf = made.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("kfguard"), Some("Apply"))
    );
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    let rv = made.metadata.resource_version.clone().unwrap();

    // Re-applying the same object is a no-op: same resourceVersion.
    let again = deploys.patch("web", &pp, &Patch::Apply(d.clone())).await.unwrap();
    assert_eq!(again.metadata.resource_version.as_deref(), Some(rv.as_str()));

    // Another manager changes replicas; a non-forced apply of a different value conflicts.
    // (kube's Patch::Json needs a feature the workspace does not enable, so send it raw.)
    let json_patch = http::Request::patch("/apis/apps/v1/namespaces/kf/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(br#"[{"op": "replace", "path": "/spec/replicas", "value": 3}]"#.to_vec())
        .unwrap();
    let patched: Value = client.request(json_patch).await.unwrap();
    assert_eq!(patched["spec"]["replicas"], 3);
    let mut scaled = d.clone();
    scaled["spec"]["replicas"] = json!(5);
    let (c, reason, _) = code(
        deploys
            .patch("web", &PatchParams::apply("other"), &Patch::Apply(scaled.clone()))
            .await,
    );
    assert_eq!((c, reason.as_str()), (409, "Conflict"));
    let forced = deploys.patch("web", &pp, &Patch::Apply(scaled)).await.unwrap();
    assert_eq!(
        (
            forced.data["spec"]["replicas"].clone(),
            forced.metadata.labels.unwrap()["a"].as_str()
        ),
        (json!(5), "1")
    );

    let before = server.get("apps/v1", "Deployment", Some("kf"), "web").unwrap();
    let p = deploys
        .patch(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data["spec"]["replicas"], 9);
    deploys
        .delete(
            "web",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        server.get("apps/v1", "Deployment", Some("kf"), "web").unwrap(),
        before,
        "dry runs changed nothing"
    );

    let log = server.requests();
    let dry: Vec<_> = log.iter().filter(|r| r.dry_run).map(|r| r.method.as_str()).collect();
    assert_eq!(dry, ["PATCH", "PATCH", "DELETE"]);
    assert_eq!(log[0].field_manager.as_deref(), Some("kfguard"));
    assert_eq!(log[0].content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(log[0].path, "/apis/apps/v1/namespaces/kf/deployments/web");
    assert_eq!(log[0].status, 201);
}

#[tokio::test]
async fn access_reviews_follow_rbac() {
    let server = Server::start(Options::default());
    server
        .seed_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")))
        .unwrap();
    server
        .seed_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubeflow:crd-reader"}
rules:
- {apiGroups: [apiextensions.k8s.io], resources: [customresourcedefinitions], verbs: [get], resourceNames: [profiles.kubeflow.org]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubeflow:crd-reader"}
subjects: [{kind: Group, name: auditors}]
"#,
        )
        .unwrap();
    let client = client(&server).await;
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let ask = |user: &str, groups: &[&str], verb: &str, resource: &str, ns: Option<&str>, name: Option<&str>| {
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    group: Some(if resource == "customresourcedefinitions" {
                        "apiextensions.k8s.io".into()
                    } else {
                        String::new()
                    }),
                    namespace: ns.map(str::to_string),
                    name: name.map(str::to_string),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        }
    };
    let sa = "system:serviceaccount:kubeflow-user:default-editor";
    let r = sars
        .create(
            &PostParams::default(),
            &ask(sa, &[], "list", "pods", Some("kubeflow-user"), None),
        )
        .await
        .unwrap();
    let status = r.status.unwrap();
    assert!(status.allowed);
    assert!(status
        .reason
        .unwrap()
        .contains("RoleBinding \"default-editor-pod-reader/kubeflow-user\""));
    for (user, groups, verb, res, ns, name) in [
        (sa, &[][..], "delete", "pods", Some("kubeflow-user"), None),
        (sa, &[], "list", "pods", Some("other"), None),
        (
            "bob",
            &["auditors"],
            "get",
            "customresourcedefinitions",
            None,
            Some("notebooks.kubeflow.org"),
        ),
    ] {
        let r = sars
            .create(&PostParams::default(), &ask(user, groups, verb, res, ns, name))
            .await
            .unwrap();
        assert!(!r.status.unwrap().allowed, "{user} {verb} {res} {ns:?} {name:?}");
    }
    let r = sars
        .create(
            &PostParams::default(),
            &ask(
                "bob",
                &["auditors"],
                "get",
                "customresourcedefinitions",
                None,
                Some("profiles.kubeflow.org"),
            ),
        )
        .await
        .unwrap();
    assert!(r
        .status
        .unwrap()
        .reason
        .unwrap()
        .contains("ClusterRoleBinding \"readers\""));

    let ssar = |verb: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some("pods".into()),
                namespace: Some("kubeflow-user".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let admin: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    assert!(
        admin
            .create(&PostParams::default(), &ssar("delete"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    let as_sa = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .header("authorization", format!("Bearer user:{sa}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&ssar("get")).unwrap())
        .unwrap();
    // kube's own Authorization header comes first; build a plain connection instead.
    let reply = raw_post(&server, as_sa);
    assert_eq!(reply["status"]["allowed"], true, "{reply}");
}

/// A bare HTTP/1.1 request over a TcpStream, for requests with a chosen bearer token.
fn raw_post(server: &Server, req: http::Request<Vec<u8>>) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        req.method(),
        req.uri(),
        req.body().len()
    );
    for (k, v) in req.headers() {
        head += &format!("{k}: {}\r\n", v.to_str().unwrap());
    }
    s.write_all(format!("{head}\r\n").as_bytes()).unwrap();
    s.write_all(req.body()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[tokio::test]
async fn faults_latency_and_request_log() {
    let server = Server::start(Options::default());
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kf}\n")
        .unwrap();
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kf");
    server.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("/configmaps".into()),
        status: 429,
        times: 2,
        retry_after_secs: Some(3),
    });
    server.inject(Fault {
        method: Some("POST".into()),
        status: 500,
        times: 1,
        ..Fault::default()
    });
    assert_eq!(code(cms.list(&ListParams::default()).await).0, 429);
    assert_eq!(code(cms.list(&ListParams::default()).await).0, 429);
    assert!(cms.list(&ListParams::default()).await.unwrap().items.is_empty());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let (c, reason, _) = code(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((c, reason.as_str()), (500, "InternalError"));
    cms.create(
        &PostParams {
            field_manager: Some("kfguard".into()),
            ..PostParams::default()
        },
        &cm,
    )
    .await
    .unwrap();

    server.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    cms.get("c").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));

    let got: Vec<(String, u16)> = server.requests().into_iter().map(|r| (r.method, r.status)).collect();
    assert_eq!(
        got,
        [
            ("GET".into(), 429),
            ("GET".into(), 429),
            ("GET".into(), 200),
            ("POST".into(), 500),
            ("POST".into(), 201),
            ("GET".into(), 200)
        ]
    );
    let post = &server.requests()[4];
    assert_eq!(post.field_manager.as_deref(), Some("kfguard"));
    assert!(post.query.contains("fieldManager=kfguard"), "{}", post.query);
    let stored = server.get("v1", "ConfigMap", Some("kf"), "c").unwrap();
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "kfguard");
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[test]
fn seeding_rules_and_namespace_deletion_from_a_plain_test() {
    let server = Server::start(Options::default());
    let err = server
        .seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: missing}\n")
        .unwrap_err();
    assert!(err.to_string().contains("namespaces \"missing\" not found"), "{err}");
    // Namespaces and CRDs are seeded first whatever the document order; Lists are expanded.
    let n = server
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: kubeflow.org/v1, kind: Notebook, metadata: {{name: nb, namespace: kf}}, status: {{ready: true}}}}\n- {{apiVersion: v1, kind: Secret, metadata: {{name: s, namespace: kf}}}}\n---\n{NOTEBOOKS_CRD}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: kf}}\n"
        ))
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        server.get("kubeflow.org/v1", "Notebook", Some("kf"), "nb").unwrap()["status"]["ready"],
        true
    );
    assert_eq!(server.all().len(), 4);

    // Deleting the namespace over HTTP takes its objects with it.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.write_all(b"DELETE /api/v1/namespaces/kf HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let left: Vec<String> = server
        .all()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["CustomResourceDefinition"]);
}

#[test]
fn kubectl_reads_through_the_stand_in() {
    let server = Server::start(Options::default());
    server
        .seed_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")))
        .unwrap();
    let kubectl = Kubectl::new(&server);
    let run = |args: &[&str]| {
        let r = kubectl.run(args);
        (r.code, r.stdout, r.stderr)
    };
    let (rc, out, err) = run(&["get", "pods", "-A"]);
    assert_eq!(rc, Some(0), "{err}");
    assert!(
        out.contains("kubeflow-user") && out.contains("notebook-0") && out.contains("Running"),
        "{out}"
    );
    let (rc, out, err) = run(&["get", "crds"]);
    assert!(rc == Some(0) && out.contains("profiles.kubeflow.org"), "{out}{err}");
    let (rc, out, _) = run(&[
        "auth",
        "can-i",
        "list",
        "pods",
        "-n",
        "kubeflow-user",
        "--as",
        "system:serviceaccount:kubeflow-user:default-editor",
    ]);
    assert_eq!((rc, out.trim()), (Some(0), "yes"));
    let (rc, out, _) = run(&[
        "auth",
        "can-i",
        "delete",
        "pods",
        "-n",
        "kubeflow-user",
        "--as",
        "system:serviceaccount:kubeflow-user:default-editor",
    ]);
    assert_eq!((rc, out.trim()), (Some(1), "no"));
}

#[tokio::test]
async fn watch_streams_changes() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    let server = Server::start(Options::default());
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kf}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: old, namespace: kf}\n")
        .unwrap();
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kf");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let mut next = async || match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(c) => ("ADDED", c.metadata.name.unwrap()),
        WatchEvent::Modified(c) => ("MODIFIED", c.metadata.name.unwrap()),
        WatchEvent::Deleted(c) => ("DELETED", c.metadata.name.unwrap()),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(next().await, ("ADDED", "old".to_string()));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "new"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(next().await, ("ADDED", "new".to_string()));
    cms.patch(
        "new",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "b"}})),
    )
    .await
    .unwrap();
    assert_eq!(next().await, ("MODIFIED", "new".to_string()));
    cms.delete("old", &DeleteParams::default()).await.unwrap();
    assert_eq!(next().await, ("DELETED", "old".to_string()));
}
