use super::*;

fn v3(path: &str) -> Value {
    serde_json::from_slice(&documents().v3[path].json).unwrap()
}

/// Every `$ref` in `v` (a whole document).
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_inside_its_document() {
    let mut docs: Vec<(String, Value, &str)> = documents()
        .v3
        .keys()
        .map(|p| (p.clone(), v3(p), "#/components/schemas/"))
        .collect();
    let v2: Value = serde_json::from_slice(&documents().v2.json).unwrap();
    docs.push(("v2".into(), v2, "#/definitions/"));
    for (name, doc, prefix) in docs {
        let defs = if prefix.starts_with("#/components") {
            &doc["components"]["schemas"]
        } else {
            &doc["definitions"]
        };
        let mut found = vec![];
        refs(&doc, &mut found);
        assert!(found.len() > 10, "{name}: {}", found.len());
        for r in found {
            let target = r
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{name}: {r} is not under {prefix}"));
            assert!(defs.get(target).is_some(), "{name}: {r} dangles");
        }
    }
}

#[test]
fn kinds_carry_their_group_version_kind_and_docs() {
    let doc = v3("apis/apps/v1");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    // A reference with a description is wrapped in allOf, as upstream.
    let rolling = &schemas["io.k8s.api.apps.v1.DeploymentStrategy"]["properties"]["rollingUpdate"];
    assert_eq!(
        rolling["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.RollingUpdateDeployment"
    );
    assert!(
        rolling["description"]
            .as_str()
            .unwrap()
            .starts_with("Rolling update config params."),
        "{rolling}"
    );
    // The core group's document has Pod, with the shared meta types.
    let core = v3("api/v1");
    let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(pod["x-kubernetes-group-version-kind"][0]["group"], "");
    assert!(
        core["components"]["schemas"]
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some()
    );
    // Only apps/v1's kinds in apps/v1's document.
    assert!(schemas.get("io.k8s.api.core.v1.Service").is_none());
}

#[test]
fn int_or_string_and_quantity_have_upstreams_shapes() {
    let doc = v3("apis/apps/v1");
    let s = &doc["components"]["schemas"];
    let ios = &s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(
        ios["oneOf"],
        json!([{"type": "integer"}, {"type": "string"}])
    );
    assert!(ios.get("type").is_none(), "{ios}");
    assert_eq!(ios["format"], "int-or-string");
    let q = &s["io.k8s.apimachinery.pkg.api.resource.Quantity"];
    assert_eq!(q["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
    // CRD schemas' flag, which upstream's built-in schemas do not carry.
    for schema in [ios, q] {
        assert!(
            schema.get("x-kubernetes-int-or-string").is_none(),
            "{schema}"
        );
    }
    let time = &s["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!(
        (&time["type"], &time["format"]),
        (&json!("string"), &json!("date-time"))
    );
    let v2: Value = serde_json::from_slice(&documents().v2.json).unwrap();
    let ios = &v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(
        (&ios["type"], &ios["format"]),
        (&json!("string"), &json!("int-or-string"))
    );
}

// ANCHOR: patch_operation_test
/// What kubectl looks for before it leaves validation to the server: the
/// kind's `patch` operation with a `fieldValidation` parameter.
#[test]
fn every_kind_has_a_patch_operation_taking_field_validation() {
    for r in RESOURCES {
        let doc = v3(&gv_path(r.group, r.version));
        let found = doc["paths"].as_object().unwrap().values().any(|item| {
            let patch = &item["patch"];
            patch["x-kubernetes-group-version-kind"]["kind"] == r.kind
                && patch["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
        });
        assert!(found, "{}: no patch operation with fieldValidation", r.kind);
    }
}
// ANCHOR_END: patch_operation_test

#[test]
fn the_index_links_each_document_by_its_hash() {
    let index: Value = serde_json::from_slice(&documents().v3_index.json).unwrap();
    let deploy = &index["paths"]["apis/apps/v1"]["serverRelativeURL"];
    let hash = &documents().v3["apis/apps/v1"].hash;
    assert_eq!(
        deploy,
        &json!(format!("/openapi/v3/apis/apps/v1?hash={hash}"))
    );
    assert_eq!(hash.len(), 128);
    assert_eq!(
        index["paths"].as_object().unwrap().len(),
        group_versions().len()
    );
}

#[test]
fn v2_keeps_descriptions_beside_references() {
    let v2: Value = serde_json::from_slice(&documents().v2.json).unwrap();
    let spec = &v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
    assert_eq!(
        spec["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(spec["description"].is_string());
    let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
}

/// The documents are built once per process; how long that takes is
/// printed (`cargo test -- --nocapture`), since the first kubectl call
/// waits for it.
#[test]
fn documents_are_built_once() {
    let start = Instant::now();
    let first = documents() as *const Documents;
    println!("OpenAPI documents ready after {:?}", start.elapsed());
    let start = Instant::now();
    let again = build();
    println!("one more build: {:?}", start.elapsed());
    assert_eq!(first, documents() as *const Documents);
    assert_eq!(again.v2.hash, documents().v2.hash, "deterministic");
}
