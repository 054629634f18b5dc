//! insta snapshots of what the lab API server answers: discovery documents,
//! a Table, and error bodies. A change here is a change clients can see.

use insta::assert_json_snapshot;
use serde_json::{Value, json};
use workbook::apiserver::{TestServer, raw};

async fn get_json(s: &TestServer, path: &str, accept: &str) -> (u16, String, Value) {
    let (code, headers, body) = raw(&s.api, "GET", path, &[("accept", accept)], "").await;
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        code,
        ct,
        serde_json::from_slice(&body).expect("a JSON body"),
    )
}

#[tokio::test]
async fn discovery_documents() {
    let s = TestServer::start().await;
    for (name, path) in [
        ("version", "/version"),
        ("api", "/api"),
        ("apis", "/apis"),
        ("api_v1", "/api/v1"),
        ("apis_apps_v1", "/apis/apps/v1"),
        ("apis_discovery_v1", "/apis/discovery.k8s.io/v1"),
    ] {
        let (code, ct, body) = get_json(&s, path, "application/json").await;
        assert_eq!((code, ct.as_str()), (200, "application/json"), "{path}");
        assert_json_snapshot!(format!("discovery_{name}"), body);
    }
    // The OpenAPI index, with the hashes (which change with any schema)
    // redacted.
    let (code, _, body) = get_json(&s, "/openapi/v3", "application/json").await;
    assert_eq!(code, 200);
    assert_json_snapshot!("discovery_openapi_v3", body, {
        ".paths.*.serverRelativeURL" => insta::dynamic_redaction(|v, _| {
            let url = v.as_str().unwrap_or_default();
            format!("{}?hash=[hash]", url.split('?').next().unwrap_or_default())
        }),
    });
    // A group/version's document is hundreds of kilobytes of upstream's
    // schemas; its outline is what a change here would show: each path
    // with its verbs, and the names of the schemas it carries.
    let (code, _, body) = get_json(&s, "/openapi/v3/apis/apps/v1", "application/json").await;
    assert_eq!(code, 200);
    let paths: serde_json::Map<String, Value> = body["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, item)| {
            let verbs: Vec<&String> = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .collect();
            (p.clone(), json!(verbs))
        })
        .collect();
    let schemas: Vec<&String> = body["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_json_snapshot!(
        "discovery_openapi_v3_apps_v1",
        json!({"openapi": body["openapi"], "info": body["info"], "paths": paths, "schemas": schemas})
    );
    s.stop().await;
}

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn table_response() {
    let s = TestServer::start().await;
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "app:v1"}]}}},
    });
    let (code, _, _) = raw(
        &s.api,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &[("content-type", "application/json")],
        deployment.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    let (code, ct, body) = get_json(
        &s,
        "/apis/apps/v1/namespaces/default/deployments?limit=500",
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_json_snapshot!("table_deployments", body, {
        ".metadata.resourceVersion" => "[rv]",
        ".rows[].cells[4]" => "[age]",
        ".rows[].object.metadata.uid" => "[uid]",
        ".rows[].object.metadata.creationTimestamp" => "[time]",
        ".rows[].object.metadata.resourceVersion" => "[rv]",
    });
    s.stop().await;
}

#[tokio::test]
async fn error_bodies() {
    let s = TestServer::start().await;
    let json_ct = [("content-type", "application/json")];
    let cm = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string()
    };
    let mut cases: Vec<(&str, u16, Value)> = Vec::new();
    let mut record = |name, (code, _, body): (u16, http::HeaderMap, bytes::Bytes)| {
        let v: Value = serde_json::from_slice(&body).expect("a Status body");
        assert_eq!(v["kind"], "Status");
        assert_eq!(
            v["code"].as_u64(),
            Some(u64::from(code)),
            "{name}: the code in the body matches"
        );
        cases.push((name, code, v));
    };
    let base = "/api/v1/namespaces/default/configmaps";
    assert_eq!(raw(&s.api, "POST", base, &json_ct, cm("a")).await.0, 201);
    record(
        "not_found",
        raw(
            &s.api,
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/nope",
            &[],
            "",
        )
        .await,
    );
    record(
        "no_route",
        raw(&s.api, "GET", "/apis/widgets/v1/things", &[], "").await,
    );
    record(
        "already_exists",
        raw(&s.api, "POST", base, &json_ct, cm("a")).await,
    );
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1"}});
    record(
        "conflict",
        raw(
            &s.api,
            "PUT",
            &format!("{base}/a"),
            &json_ct,
            stale.to_string(),
        )
        .await,
    );
    let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "app:v1"}]}}}});
    record(
        "invalid",
        raw(
            &s.api,
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            &json_ct,
            bad.to_string(),
        )
        .await,
    );
    record(
        "bad_json",
        raw(&s.api, "POST", base, &json_ct, "{not json").await,
    );
    record(
        "wrong_type",
        raw(&s.api, "POST", base, &json_ct, r#"{"metadata":{"name":7}}"#).await,
    );
    record(
        "unsupported_media_type",
        raw(
            &s.api,
            "POST",
            base,
            &[("content-type", "text/plain")],
            cm("b"),
        )
        .await,
    );
    record(
        "patch_media_type",
        raw(
            &s.api,
            "PATCH",
            &format!("{base}/a"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await,
    );
    record(
        "method_not_allowed",
        raw(&s.api, "PUT", base, &json_ct, cm("c")).await,
    );
    record(
        "too_large",
        raw(&s.api, "POST", base, &json_ct, vec![b' '; 4 * 1024 * 1024]).await,
    );
    record(
        "namespace_missing",
        raw(
            &s.api,
            "POST",
            "/api/v1/namespaces/nowhere/configmaps",
            &json_ct,
            cm("d"),
        )
        .await,
    );
    record(
        "apply_without_field_manager",
        raw(
            &s.api,
            "PATCH",
            &format!("{base}/a"),
            &[("content-type", "application/apply-patch+yaml")],
            cm("a"),
        )
        .await,
    );
    for (name, code, body) in cases {
        assert_json_snapshot!(format!("error_{name}"), json!({"http": code, "body": body}));
    }
    s.stop().await;
}
