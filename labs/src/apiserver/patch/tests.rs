//! The four patch flavours against the objects and patches kubectl and
//! kube-rs send, plus random patches that must never panic.

use super::*;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "finalizers": ["a", "b"],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "app:v1",
                            "args": ["--a"],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": "proxy:v1"},
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    })
}

#[test]
fn content_types() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::StrategicMerge),
        ),
        ("Application/Apply-Patch+YAML", Some(PatchType::Apply)),
        ("application/json", None),
        ("", None),
    ];
    for (ct, want) in cases {
        assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
    }
    assert_eq!(
        PatchType::Apply.content_type(),
        "application/apply-patch+yaml"
    );
}

#[test]
fn kubectl_set_image() {
    // Observed body of `kubectl set image deployment/web web=app:v2`.
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"web"}],
        "containers":[{"image":"app:v2","name":"web"}]}}}});
    let out = strategic_merge_patch(&deployment(), &patch, "Deployment").unwrap();
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "app:v2");
    // Everything else in the container is kept...
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
    // ...and so is the container the patch did not mention.
    assert_eq!(containers[1]["name"], "sidecar");
    let mut want = deployment();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:v2");
    assert_eq!(out, want);
}

#[test]
fn kubectl_apply_three_way_patch() {
    // Observed body of `kubectl apply -f deployment-v2.yaml` (shortened
    // annotation): replicas 4, image v2, env added, ports removed.
    let patch = json!({
        "metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"}},
        "spec":{"replicas":4,"template":{"spec":{
            "$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"env":[{"name":"MODE","value":"prod"}],"image":"app:v2","name":"web","ports":null}]}}}});
    let out = strategic_merge_patch(&deployment(), &patch, "Deployment").unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    let web = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["image"], "app:v2");
    assert!(
        web.get("ports").is_none(),
        "null inside a list element deletes the field"
    );
    assert_eq!(
        web["env"],
        json!([{"name":"A","value":"1"},{"name":"B","value":"2"},{"name":"MODE","value":"prod"}])
    );
    assert_eq!(
        out["metadata"]["annotations"],
        json!({"deployment.kubernetes.io/revision":"1","kubectl.kubernetes.io/last-applied-configuration":"{}\n"})
    );
}

#[test]
fn kubectl_rollout_pause_resume_restart() {
    let paused = strategic_merge_patch(
        &deployment(),
        &json!({"spec":{"paused":true}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(paused["spec"]["paused"], true);
    let resumed =
        strategic_merge_patch(&paused, &json!({"spec":{"paused":null}}), "Deployment").unwrap();
    assert!(resumed["spec"].get("paused").is_none());
    assert_eq!(resumed, deployment());

    let restart = json!({"spec":{"template":{"metadata":{"annotations":{
        "kubectl.kubernetes.io/restartedAt":"2026-11-27T22:03:17Z"}}}}});
    let out = strategic_merge_patch(&deployment(), &restart, "Deployment").unwrap();
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-27T22:03:17Z"}})
    );
}

#[test]
fn kubectl_rollout_undo_json_patch() {
    let old_template = json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "app:v0"}]},
    });
    let patch = json!([
        {"op":"replace","path":"/spec/template","value": old_template},
        {"op":"replace","path":"/metadata/annotations","value":{"deployment.kubernetes.io/revision":"1","x":"y"}},
    ]);
    let mut out = json_patch(&deployment(), &patch).unwrap();
    assert_eq!(
        out["spec"]["template"]["metadata"]["creationTimestamp"],
        Value::Null
    );
    drop_nulls(&mut out);
    assert_eq!(
        out["spec"]["template"],
        json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"app:v0"}]}})
    );
    assert_eq!(out["metadata"]["annotations"]["x"], "y");
}

#[test]
fn json_patch_errors() {
    let d = json!({"metadata": {"name": "web"}});
    // replace on a missing path fails: 422.
    let err = json_patch(
        &d,
        &json!([{"op":"replace","path":"/metadata/annotations","value":{}}]),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert!(
        matches!(&err, PatchError::Unprocessable { field, .. } if field == "/metadata/annotations"),
        "{err:?}"
    );
    // A failed test: 422.
    let err = json_patch(
        &d,
        &json!([{"op":"test","path":"/metadata/name","value":"db"}]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::TestFailed {
            path: "/metadata/name".into()
        }
    );
    assert_eq!(err.status_code(), 422);
    // Not a patch document at all: 400.
    for bad in [
        json!({"op":"add"}),
        json!([{"op":"frobnicate","path":"/x"}]),
        json!([{"path":"/x"}]),
    ] {
        let err = json_patch(&d, &bad).unwrap_err();
        assert_eq!(err.status_code(), 400, "{bad}");
    }
    // add, remove, move, copy, test all work.
    let out = json_patch(
        &d,
        &json!([
            {"op":"add","path":"/metadata/labels","value":{"a":"1"}},
            {"op":"copy","from":"/metadata/labels","path":"/metadata/annotations"},
            {"op":"move","from":"/metadata/annotations/a","path":"/metadata/annotations/b"},
            {"op":"remove","path":"/metadata/labels"},
            {"op":"test","path":"/metadata/annotations/b","value":"1"},
        ]),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata":{"name":"web","annotations":{"b":"1"}}})
    );
}

#[test]
fn merge_patch_rfc7386() {
    // Cases from RFC 7386, appendix A.
    let cases = [
        (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
        (json!({"a":"b"}), json!({"a":null}), json!({})),
        (
            json!({"a":"b","b":"c"}),
            json!({"a":null}),
            json!({"b":"c"}),
        ),
        (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
        (
            json!({"a":{"b":"c"}}),
            json!({"a":{"b":"d","c":null}}),
            json!({"a":{"b":"d"}}),
        ),
        (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a":"b"}), json!(["c"]), json!(["c"])),
        (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
        (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
        (
            json!({}),
            json!({"a":{"bb":{"ccc":null}}}),
            json!({"a":{"bb":{}}}),
        ),
    ];
    for (target, patch, want) in cases {
        assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
    }
    // kubectl scale on /scale and kubectl annotate.
    let out = merge_patch(&deployment(), &json!({"spec":{"replicas":5}}));
    assert_eq!(out["spec"]["replicas"], 5);
    let out = merge_patch(
        &deployment(),
        &json!({"metadata":{"annotations":{"kubernetes.io/change-cause":"x"}}}),
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "x"
    );
    assert_eq!(
        out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
}

#[test]
fn strategic_lists_by_kind() {
    let d = deployment();
    let spec = |v: &Value| v["spec"]["template"]["spec"].clone();
    // Lists without a merge key are replaced.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "tolerations":[{"key":"x","operator":"Exists"}],
        "containers":[{"name":"web","args":["--b"]}]}}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(
        spec(&out)["tolerations"],
        json!([{"key":"x","operator":"Exists"}])
    );
    assert_eq!(spec(&out)["containers"][0]["args"], json!(["--b"]));
    // Container ports merge by containerPort, env by name (null inside deletes).
    let out = strategic_merge_patch(&d, &json!({"spec":{"template":{"spec":{
        "containers":[{"name":"web",
            "ports":[{"containerPort":9090},{"containerPort":8080,"name":"http"}],
            "env":[{"name":"A","value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}}}}), "Deployment").unwrap();
    assert_eq!(
        spec(&out)["containers"][0]["ports"],
        json!([{"containerPort":8080,"protocol":"TCP","name":"http"},{"containerPort":9090}])
    );
    assert_eq!(
        spec(&out)["containers"][0]["env"][0],
        json!({"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}})
    );
    // Volumes by name; new elements are added.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "volumes":[{"name":"cfg","configMap":{"name":"c"}}]}}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(spec(&out)["volumes"].as_array().unwrap().len(), 2);
    // The same pod-spec paths for a Pod.
    let pod = json!({"kind":"Pod","spec": d["spec"]["template"]["spec"].clone()});
    let out = strategic_merge_patch(
        &pod,
        &json!({"spec":{"containers":[{"name":"sidecar","image":"proxy:v2"}]}}),
        "Pod",
    )
    .unwrap();
    assert_eq!(out["spec"]["containers"][0]["image"], "app:v1");
    assert_eq!(out["spec"]["containers"][1]["image"], "proxy:v2");
    // Service ports by port.
    let svc = json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443}]}});
    let out = strategic_merge_patch(
        &svc,
        &json!({"spec":{"ports":[{"port":80,"nodePort":30080}]}}),
        "Service",
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port":80,"targetPort":8080,"nodePort":30080},{"port":443}])
    );
    // Conditions by type, ownerReferences by uid.
    let rs = json!({"metadata":{"ownerReferences":[{"uid":"u1","name":"a"}]},
                    "status":{"conditions":[{"type":"A","status":"True"}]}});
    let out = strategic_merge_patch(
        &rs,
        &json!({
        "metadata":{"ownerReferences":[{"uid":"u2","name":"b"}]},
        "status":{"conditions":[{"type":"A","status":"False"},{"type":"B","status":"True"}]}}),
        "ReplicaSet",
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type":"A","status":"False"},{"type":"B","status":"True"}])
    );
    // An element without its merge key is a bad patch (400).
    let err = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
        "Deployment",
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400);
    // Unknown kinds: lists are replaced.
    let out = strategic_merge_patch(
        &json!({"items":[{"name":"a"}]}),
        &json!({"items":[{"name":"b"}]}),
        "Widget",
    )
    .unwrap();
    assert_eq!(out["items"], json!([{"name":"b"}]));
}

#[test]
fn strategic_directives() {
    let d = deployment();
    let spec = |v: &Value| v["spec"]["template"]["spec"].clone();
    // $patch: delete on a list element.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "containers":[{"name":"sidecar","$patch":"delete"}]}}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(spec(&out)["containers"].as_array().unwrap().len(), 1);
    // $patch: replace as a list element.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "containers":[{"name":"only","image":"x"},{"$patch":"replace"}]}}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(
        spec(&out)["containers"],
        json!([{"name":"only","image":"x"}])
    );
    // $patch: replace on a map.
    let out = strategic_merge_patch(
        &d,
        &json!({"metadata":{"labels":{"$patch":"replace","new":"1"}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"new":"1"}));
    // $patch: delete on a map.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"strategy":{"$patch":"delete"}}}),
        "Deployment",
    )
    .unwrap();
    assert!(out["spec"].get("strategy").is_none());
    // $retainKeys: switching the strategy to Recreate drops rollingUpdate.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"strategy":{
        "$retainKeys":["type"],"type":"Recreate","rollingUpdate":null}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
    let err = strategic_merge_patch(
        &d,
        &json!({"spec":{"strategy":{
        "$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}}),
        "Deployment",
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 422);
    // $deleteFromPrimitiveList and primitive merge of finalizers.
    let out = strategic_merge_patch(
        &d,
        &json!({"metadata":{
        "$deleteFromPrimitiveList/finalizers":["a"],"finalizers":["c"]}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    // $setElementOrder reorders named elements, others follow.
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"sidecar"},{"name":"web"}]}}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(spec(&out)["containers"][0]["name"], "sidecar");
    let out = strategic_merge_patch(
        &d,
        &json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"new"},{"name":"web"}],
        "containers":[{"name":"new","image":"n:1"}]}}}}),
        "Deployment",
    )
    .unwrap();
    let names: Vec<_> = spec(&out)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("new"), json!("web"), json!("sidecar")]);
    // New fields are cleaned too: no nulls or directives are stored.
    let out = strategic_merge_patch(
        &json!({}),
        &json!({"spec":{"a":null,"b":{"$patch":"merge","c":1}}}),
        "Deployment",
    )
    .unwrap();
    assert_eq!(out, json!({"spec":{"b":{"c":1}}}));
    // Bad directives are 400.
    for bad in [
        json!({"$patch":"frob"}),
        json!({"$bogus":1}),
        json!({"$retainKeys":"x"}),
    ] {
        assert_eq!(
            strategic_merge_patch(&d, &bad, "Deployment")
                .unwrap_err()
                .status_code(),
            400,
            "{bad}"
        );
    }
    assert!(strategic_merge_patch(&d, &json!([1]), "Deployment").is_err());
}

#[test]
fn server_side_apply_subset() {
    // kubectl apply --server-side -f ssa.yaml, applied to the live object.
    let applied = json!({
        "apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"name":"web","labels":{"app":"web"}},
        "spec":{"replicas":5,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"},"creationTimestamp":null},
                "spec":{"containers":[{"name":"web","image":"app:v3"}]}}}});
    let out = apply_patch(&deployment(), &applied, "Deployment").unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["image"], "app:v3");
    // Nothing is deleted: fields and containers the config omits stay.
    assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 8080);
    assert_eq!(spec["containers"][1]["name"], "sidecar");
    assert!(
        out["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
    // Applying to an empty object is how a missing object is created.
    let created = apply_patch(&json!({}), &applied, "Deployment").unwrap();
    assert_eq!(created["spec"]["replicas"], 5);
    // Wrong kind or apiVersion, directives: 400.
    let mut wrong = applied.clone();
    wrong["kind"] = json!("ReplicaSet");
    assert_eq!(
        apply_patch(&deployment(), &wrong, "Deployment")
            .unwrap_err()
            .status_code(),
        400
    );
    let mut wrong = applied.clone();
    wrong["apiVersion"] = json!("apps/v2");
    assert_eq!(
        apply_patch(&deployment(), &wrong, "Deployment")
            .unwrap_err()
            .status_code(),
        400
    );
    let err = apply_patch(
        &deployment(),
        &json!({"spec":{"$patch":"replace"}}),
        "Deployment",
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn decoding_bodies() {
    assert_eq!(
        decode_body(PatchType::Merge, br#"{"a":1}"#).unwrap(),
        json!({"a":1})
    );
    assert_eq!(
        decode_body(PatchType::Merge, b"a: 1")
            .unwrap_err()
            .status_code(),
        400
    );
    assert_eq!(
        decode_body(
            PatchType::Apply,
            b"kind: Deployment\nspec:\n  replicas: 2\n"
        )
        .unwrap(),
        json!({"kind":"Deployment","spec":{"replicas":2}})
    );
    assert_eq!(
        decode_body(PatchType::Apply, b"a: [")
            .unwrap_err()
            .status_code(),
        400
    );
}

/// Arbitrary JSON built from the words the patch code reacts to, so
/// that random documents hit directives, merge keys and known paths.
pub(crate) fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let word = prop::sample::select(vec![
        "spec",
        "template",
        "containers",
        "name",
        "image",
        "ports",
        "containerPort",
        "env",
        "metadata",
        "labels",
        "finalizers",
        "strategy",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "replace",
        "delete",
        "merge",
        "status",
        "conditions",
        "type",
        "replicas",
        "selector",
        "é",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        word.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(word.clone().prop_map(String::from), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// No patch document, however odd, panics the server: every path
    /// ends in a value or an error.
    #[test]
    fn random_patches_never_panic(target in arb_json(), patch in arb_json()) {
        for kind in ["Deployment", "Pod", "Service", "Widget"] {
            let _ = strategic_merge_patch(&target, &patch, kind);
            let _ = apply_patch(&target, &patch, kind);
            let mut v = target.clone();
            crate::apiserver::defaults::apply_defaults(kind, &mut v);
            let _ = crate::apiserver::validation::validate(kind, &v, Some(&target));
            let _ = crate::apiserver::table::table(
                kind, &[v], "1", k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        let _ = json_patch(&target, &patch);
        let _ = merge_patch(&target, &patch);
    }

    /// Strategic merge with an empty patch changes nothing.
    #[test]
    fn empty_patch_is_identity(target in arb_json()) {
        if target.is_object() {
            let out = strategic_merge_patch(&target, &json!({}), "Deployment").unwrap();
            proptest::prop_assert_eq!(out, target);
        }
    }
}
