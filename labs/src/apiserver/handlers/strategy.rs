//! What the server owns in an object, on create and on update: identity
//! and bookkeeping metadata, the initial status, the `spec`/`status` split,
//! Secrets' `stringData`, a pod's QoS class.
//!
//! Upstream: the `PrepareForCreate` and `PrepareForUpdate` of each
//! resource's strategy (`pkg/registry/{core,apps}/*/strategy.go`), with the
//! metadata rules of `k8s.io/apiserver/pkg/registry/rest/{create,update}.go`
//! and `qos.GetPodQOS` (`pkg/apis/core/helper/qos`).

use serde_json::{Value, json};

use super::{meta_mut, now, set_or_remove};
use crate::apiserver::resources::{Resource, Subresource};
use crate::apiserver::status::ApiError;

// ANCHOR: prepare_create
/// What the server fills in on create, whatever the client sent.
pub(super) fn prepare_create(
    r: &Resource,
    url_ns: Option<&str>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    if r.namespaced {
        let ns = url_ns.unwrap_or("");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generation",
    ] {
        meta.remove(field);
    }
    // generation counts spec changes; the first spec is generation 1.
    if r.has_generation {
        meta.insert("generation".into(), json!(1));
    }
    if r.kind == "Namespace" {
        // Every namespace carries its own name as a label, so that
        // namespace selectors can pick namespaces by name.
        let name = meta.get("name").cloned().unwrap_or(json!(""));
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = name;
    }
    // A new object starts with the status the server gives it: the
    // client's status is ignored (nodes are the exception: the kubelet
    // registers its node with a status).
    match r.kind {
        "Deployment" | "ReplicaSet" => obj["status"] = json!({}),
        "Pod" => obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)}),
        "Service" => obj["status"] = json!({"loadBalancer": {}}),
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "Secret" => string_data_to_data(obj),
        _ => {}
    }
    Ok(())
}
// ANCHOR_END: prepare_create

// ANCHOR: prepare_update
/// What an update may not change. The server owns identity and
/// bookkeeping metadata; the main resource does not write `status` and
/// `/status` does not write `spec` or labels (upstream's
/// `PrepareForUpdate` of each strategy). This split is what lets a
/// controller and a user write the same object without overwriting each
/// other's half.
pub(super) fn prepare_update(r: &Resource, sub: Option<Subresource>, old: &Value, new: &mut Value) {
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = meta_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        set_or_remove(meta, field, old_meta.get(field));
    }
    meta.remove("managedFields");
    meta.remove("selfLink");
    if sub == Some(Subresource::Status) {
        set_or_remove(meta, "labels", old_meta.get("labels"));
        let obj = new.as_object_mut().expect("objects are JSON objects");
        set_or_remove(obj, "spec", old.get("spec"));
    } else if r.has(Subresource::Status) {
        let obj = new.as_object_mut().expect("objects are JSON objects");
        set_or_remove(obj, "status", old.get("status"));
    }
    match r.kind {
        // An update that leaves out the allocated cluster IP (a manifest
        // applied again) keeps it rather than trying to change it.
        "Service" if sub != Some(Subresource::Status) => service_update(old, new),
        "Secret" => string_data_to_data(new),
        _ => {}
    }
}
// ANCHOR_END: prepare_update

/// A Service update (upstream's `PrepareForUpdate`, `patchAllocatedValues`,
/// `normalizeClusterIPs` and `dropTypeDependentFields` in
/// `pkg/registry/core/service/{strategy.go,storage/storage.go}`):
///
/// - a manifest applied again leaves out the allocated `clusterIP`,
///   `clusterIPs` and node ports: they are kept, not changed;
/// - `clusterIP` changed alone moves `clusterIPs[0]` with it (so that
///   validation sees, and refuses, the change);
/// - a type change drops what only the old type had: node ports when the
///   Service is no longer NodePort/LoadBalancer, the cluster IP when it
///   becomes ExternalName — unless the client set them anew. The allocator
///   then gives the dropped addresses back (see `storage`).
fn service_update(old: &Value, new: &mut Value) {
    let ty = |v: &Value| {
        v.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (old_ty, new_ty) = (ty(old), ty(new));
    if !new.get("spec").is_some_and(Value::is_object) {
        new["spec"] = json!({});
    }
    let ip_fields = ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"];
    if new_ty == "ExternalName" {
        if old_ty != "ExternalName" {
            let spec = new["spec"].as_object_mut().expect("spec is an object");
            let unchanged = |f: &str, spec: &serde_json::Map<String, Value>| {
                spec.get(f).is_none_or(|v| {
                    v.is_null() || v == "" || Some(v) == old.pointer(&format!("/spec/{f}"))
                })
            };
            if ip_fields.iter().all(|f| unchanged(f, spec)) {
                for f in ip_fields {
                    spec.remove(f);
                }
            }
        }
    } else {
        let new_ip = new.pointer("/spec/clusterIP").cloned();
        let new_ips = new.pointer("/spec/clusterIPs").cloned();
        for field in ip_fields {
            let missing = new
                .pointer(&format!("/spec/{field}"))
                .is_none_or(|v| v.as_str() == Some("") || v.is_null());
            if missing && let Some(v) = old.pointer(&format!("/spec/{field}")) {
                new["spec"][field] = v.clone();
            }
        }
        let ip_given = new_ip
            .as_ref()
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        if ip_given
            && new_ips
                .as_ref()
                .is_none_or(|v| Some(v) == old.pointer("/spec/clusterIPs"))
        {
            new["spec"]["clusterIPs"] = json!([new_ip]);
        }
    }
    let node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            let Some(p) = p.as_object_mut() else { continue };
            let held = |n: &Value| old_ports.iter().any(|o| o.get("nodePort") == Some(n));
            if node_ports(&new_ty) {
                // Re-applied manifest: keep the node port this port had.
                let missing = p.get("nodePort").is_none_or(|v| v.is_null() || v == 0);
                if missing && node_ports(&old_ty) {
                    let same = old_ports.iter().find(|o| {
                        o.get("port") == p.get("port")
                            && o.get("protocol").unwrap_or(&json!("TCP"))
                                == p.get("protocol").unwrap_or(&json!("TCP"))
                    });
                    if let Some(n) = same.and_then(|o| o.get("nodePort")) {
                        p.insert("nodePort".into(), n.clone());
                    }
                }
            } else if p.get("nodePort").is_some_and(held) {
                p.remove("nodePort");
            }
        }
    }
}

/// `stringData` is a write-only convenience: the server merges it into
/// `data` (base64) and never stores it.
fn string_data_to_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let data = obj
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("data")
        .or_insert_with(|| json!({}));
    for (k, v) in sd {
        let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or("").as_bytes().to_vec());
        data[k] = serde_json::to_value(bytes).expect("ByteString serializes");
    }
}

/// The pod's quality-of-service class (upstream `qos.GetPodQOS`), which
/// `kubectl describe pod` prints: no requests or limits anywhere is
/// BestEffort; limits equal to requests for cpu and memory in every
/// container is Guaranteed; anything else Burstable.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let get = |c: &Value, kind: &str, res: &str| {
        c.pointer(&format!("/resources/{kind}/{res}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        for res in ["cpu", "memory"] {
            let (req, lim) = (get(c, "requests", res), get(c, "limits", res));
            any |= req.is_some() || lim.is_some();
            if lim.is_none() || (req.is_some() && req != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec":{"containers":[{"name":"a"}]}})),
            "BestEffort"
        );
        let g =
            json!({"spec":{"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec":{"containers":[{"resources":{"requests":{"cpu":"1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn string_data_is_merged() {
        let mut s = json!({"stringData":{"k":"v"},"data":{"a":"Yg=="}});
        string_data_to_data(&mut s);
        assert_eq!(s, json!({"data":{"a":"Yg==","k":"dg=="}}));
    }
}
