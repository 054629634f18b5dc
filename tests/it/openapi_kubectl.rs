//! The OpenAPI documents as their readers use them: `kubectl explain`
//! (which knows no field by heart and prints what `/openapi/v3` says),
//! kubectl's field validation (`--validate`, strict by default), and the
//! documents themselves fetched with kube-rs.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use workbook::apiserver::{DEPLOYMENT_YAML, TestServer, raw};

#[tokio::test(flavor = "multi_thread")]
async fn explain_prints_fields_and_their_docs() {
    let s = TestServer::start().await;

    let out = s.kubectl(&["explain", "deployment.spec.strategy"]).await;
    let text = out.ok();
    assert!(
        text.contains("FIELD: strategy <DeploymentStrategy>"),
        "{text}"
    );
    assert!(
        text.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{text}"
    );
    assert!(
        text.contains("Rolling update config params. Present only if DeploymentStrategyType ="),
        "{text}"
    );
    insta::assert_snapshot!("explain_deployment_spec_strategy", text);

    // --recursive: the whole sub-tree, names and types only; the
    // int-or-string fields named as upstream names them.
    let out = s
        .kubectl(&["explain", "deployment.spec.strategy", "--recursive"])
        .await;
    let text = out.ok();
    assert!(text.contains("    maxSurge\t<IntOrString>"), "{text}");
    assert!(text.contains("    maxUnavailable\t<IntOrString>"), "{text}");
    assert!(text.contains("  type\t<string>"), "{text}");
    assert!(!text.contains("The maximum number of pods"), "{text}");

    // A whole kind, by its short name, in the core group.
    let out = s.kubectl(&["explain", "pods"]).await;
    let text = out.ok();
    assert!(text.contains("KIND:       Pod"), "{text}");
    assert!(text.contains("metadata\t<ObjectMeta> -required-"), "{text}");
    assert!(text.contains("spec\t<PodSpec>"), "{text}");
    assert!(
        text.contains("Pod is a collection of containers that can run on a host."),
        "{text}"
    );

    let out = s.kubectl(&["explain", "svc.spec.ports"]).await;
    let text = out.ok();
    assert!(text.contains("FIELD: ports <[]ServicePort>"), "{text}");
    assert!(text.contains("targetPort\t<IntOrString>"), "{text}");
    assert!(text.contains("port\t<integer> -required-"), "{text}");

    let out = s
        .kubectl(&["explain", "pod.spec.containers.resources"])
        .await;
    assert!(
        out.ok().contains("limits\t<map[string]Quantity>"),
        "{}",
        out.stdout
    );

    // A field that does not exist: kubectl's own message.
    let out = s.kubectl(&["explain", "deployment.spec.replicaz"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(r#"field "replicaz" does not exist"#),
        "{}",
        out.stderr
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_are_refused_unless_validation_is_off() {
    let s = TestServer::start().await;
    let api = Api::<Deployment>::default_namespaced(s.client());
    let typo = DEPLOYMENT_YAML.replace("replicas: 3", "replicas: 3\n  replicaz: 3");

    // Default `--validate=strict`: kubectl finds `fieldValidation` on the
    // Deployment's patch operation in /openapi/v3 and lets the server
    // decide; the server refuses with upstream's message.
    for verb in ["apply", "create"] {
        let out = s.kubectl_stdin(&[verb, "-f", "-"], Some(&typo)).await;
        assert_eq!(out.code, 1, "{verb}: {}", out.stdout);
        assert!(
            out.stderr.contains(
                r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz""#
            ),
            "{verb}: {}",
            out.stderr
        );
        assert!(
            api.get_opt("web").await.unwrap().is_none(),
            "{verb} stored it"
        );
    }

    // `--validate=false` is `fieldValidation=Ignore`: accepted, and the
    // unknown field is dropped, not stored.
    let out = s
        .kubectl_stdin(&["apply", "--validate=false", "-f", "-"], Some(&typo))
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/web created");
    let stored = s.stored("/registry/deployments/default/web").unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert!(stored["spec"].get("replicaz").is_none(), "{stored}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_reads_the_documents() {
    let s = TestServer::start().await;
    let client = s.http_client();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let req = http::Request::get(path).body(Vec::new()).unwrap();
            let text = client.request_text(req).await.expect("a document");
            serde_json::from_str::<Value>(&text).expect("JSON")
        }
    };
    let index = get("/openapi/v3".into()).await;
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("a link for apps/v1")
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    assert!(index["paths"]["api/v1"].is_object(), "{index}");

    let doc = get(url).await;
    assert_eq!(doc["openapi"], "3.0.0");
    let deployment = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        deployment["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let replicas = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
        ["replicas"];
    assert_eq!(replicas["type"], "integer");
    assert!(
        replicas["description"]
            .as_str()
            .unwrap()
            .starts_with("Number of desired pods."),
        "{replicas}"
    );

    // Swagger 2.0 as JSON, for clients that ask for it.
    let v2 = get("/openapi/v2".into()).await;
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    s.stop().await;
}

/// Upstream's caching: the hashed URL is immutable, a stale hash is
/// redirected, and `If-None-Match` with the ETag gets 304.
#[tokio::test]
async fn documents_are_cached_by_hash() {
    let s = TestServer::start().await;
    let (code, _, body) = raw(&s.api, "GET", "/openapi/v3", &[], "").await;
    assert_eq!(code, 200);
    let index: Value = serde_json::from_slice(&body).unwrap();
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let hash = url.split("hash=").nth(1).unwrap();

    let (code, headers, _) = raw(&s.api, "GET", url, &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(headers["cache-control"], "public, immutable");
    assert_eq!(headers["etag"], format!("\"{hash}\"").as_str());

    let (code, headers, _) = raw(&s.api, "GET", "/openapi/v3/api/v1?hash=0001", &[], "").await;
    assert_eq!(code, 301);
    assert_eq!(headers["location"], url);

    let etag = format!("\"{hash}\"");
    let (code, _, body) = raw(
        &s.api,
        "GET",
        "/openapi/v3/api/v1",
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!((code, body.len()), (304, 0));

    let (code, _, _) = raw(&s.api, "GET", "/openapi/v3/apis/nope/v1", &[], "").await;
    assert_eq!(code, 404);
    s.stop().await;
}

/// Why the `patch` operations leave `application/strategic-merge-patch+json`
/// out of their body types (`PATCH_TYPES` in `openapi/paths.rs`): listed
/// there, `kubectl apply` would compute its three-way patch from the
/// documents, whose schemas lack upstream's merge keys, and a list of
/// containers or env vars would be diffed as a whole. Left out, kubectl
/// falls back to its compiled-in types: removing one env var and one
/// container from the manifest removes exactly those, by name, and keeps
/// the rest.
#[tokio::test(flavor = "multi_thread")]
async fn apply_removes_list_items_by_their_merge_keys() {
    let s = TestServer::start().await;
    let api = Api::<Deployment>::default_namespaced(s.client());
    let two = DEPLOYMENT_YAML.replace(
        "        ports:\n        - containerPort: 8080\n",
        "        env:\n        - {name: A, value: \"1\"}\n        - {name: B, value: \"2\"}\n      - name: sidecar\n        image: app:v1\n",
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(&two)).await;
    assert_eq!(out.ok().trim(), "deployment.apps/web created");

    let one = two
        .replace("        - {name: B, value: \"2\"}\n", "")
        .replace("      - name: sidecar\n        image: app:v1\n", "");
    let out = s
        .kubectl_stdin(&["apply", "-f", "-", "-v=8"], Some(&one))
        .await;
    assert!(
        out.ok().contains("deployment.apps/web configured"),
        "{}",
        out.stdout
    );
    // kubectl's patch names what goes, by merge key.
    assert!(
        out.stderr
            .contains("Content-Type: application/strategic-merge-patch+json"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(r#"\"$patch\":\"delete\",\"name\":\"B\""#)
            || out.stderr.contains(r#""$patch":"delete","name":"B""#),
        "{}",
        out.stderr
    );
    let spec = api
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web"]);
    let env: Vec<(&str, Option<&str>)> = spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(env, [("A", Some("1"))]);
    s.stop().await;
}
