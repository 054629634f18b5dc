//! One kind, two versions: the HorizontalPodAutoscaler in autoscaling/v2
//! and autoscaling/v1.
//!
//! Kubernetes stores every object of a resource in **one** version (the
//! storage version) and converts on the way in and out, so a client of any
//! served version sees every object. autoscaling/v1 knows a single metric,
//! `targetCPUUtilizationPercentage`; v2 has a list of `metrics` and a
//! `behavior`. Converting v2 → v1 keeps what v1 cannot say in annotations
//! (upstream's `autoscaling.alpha.kubernetes.io/*`), so that a v1 client
//! that reads an object and writes it back loses nothing; v1 → v2 takes
//! them back out.
//!
//! The conversion sits at the edge ([`Converted`]): a request for
//! autoscaling/v1 is turned into a request for the storage version (its
//! body converted), handled like any other, and the answer converted back.
//! The handlers never see v1. What is left out: patches sent to the v1
//! endpoint apply to the stored (v2) form, so a v1 patch may only touch the
//! fields both versions share (metadata, `minReplicas`, `maxReplicas`,
//! `scaleTargetRef`); upstream converts, patches, and converts back.
//! Upstream: `pkg/apis/autoscaling/v1/conversion.go`.

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::request::Call;
use super::resources::{self, Resource};

/// Where v1 keeps the v2 fields it has no place for.
pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Whether requests for `r` are served by converting to another version.
pub fn needs_conversion(r: &Resource) -> bool {
    r.kind == "HorizontalPodAutoscaler" && r.version == "v1"
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"].as_object_mut().unwrap()
}

fn drop_empty_annotations(obj: &mut Value) {
    if obj["metadata"]["annotations"]
        .as_object()
        .is_some_and(Map::is_empty)
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("annotations");
    }
}

// ANCHOR: v2_to_v1
/// autoscaling/v2 → autoscaling/v1.
pub fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let metrics: Vec<Value> = spec["metrics"].as_array().cloned().unwrap_or_default();
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    let mut v1_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if !spec["minReplicas"].is_null() {
        v1_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if let Some(t) = cpu.first() {
        v1_spec["targetCPUUtilizationPercentage"] =
            t["resource"]["target"]["averageUtilization"].clone();
    }
    let mut keep = Vec::new();
    if !other.is_empty() {
        keep.push((METRICS_ANNOTATION, json!(other)));
    }
    if !spec["behavior"].is_null() {
        keep.push((BEHAVIOR_ANNOTATION, spec["behavior"].clone()));
    }
    let mut v1_status = json!({
        "currentReplicas": status["currentReplicas"].as_i64().unwrap_or(0),
        "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
    });
    for f in ["observedGeneration", "lastScaleTime"] {
        if !status[f].is_null() {
            v1_status[f] = status[f].clone();
        }
    }
    let current: Vec<Value> = status["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut other_current = Vec::new();
    for m in current {
        if m["type"] == "Resource" && m["resource"]["name"] == "cpu" {
            if let Some(u) = m["resource"]["current"]["averageUtilization"].as_i64() {
                v1_status["currentCPUUtilizationPercentage"] = json!(u);
            }
        } else {
            other_current.push(m);
        }
    }
    if !other_current.is_empty() {
        keep.push((CURRENT_METRICS_ANNOTATION, json!(other_current)));
    }
    if status["conditions"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        keep.push((CONDITIONS_ANNOTATION, status["conditions"].clone()));
    }
    for (k, v) in keep {
        annotations(&mut obj).insert(k.into(), json!(v.to_string()));
    }
    obj["apiVersion"] = json!("autoscaling/v1");
    obj["spec"] = v1_spec;
    obj["status"] = v1_status;
    obj
}
// ANCHOR_END: v2_to_v1

/// autoscaling/v1 → autoscaling/v2. A v1 object without a CPU target gets
/// none here; v2 defaulting then gives it upstream's default (80 %).
pub fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let mut taken = |key: &str| -> Option<Value> {
        let raw = annotations(&mut obj).remove(key)?;
        serde_json::from_str(raw.as_str()?).ok()
    };
    let other = taken(METRICS_ANNOTATION);
    let behavior = taken(BEHAVIOR_ANNOTATION);
    let other_current = taken(CURRENT_METRICS_ANNOTATION);
    let conditions = taken(CONDITIONS_ANNOTATION);
    drop_empty_annotations(&mut obj);
    let mut metrics = Vec::new();
    if let Some(t) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|t| !t.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": t}}}));
    }
    metrics.extend(
        other
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default(),
    );
    let mut v2_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if !spec["minReplicas"].is_null() {
        v2_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if !metrics.is_empty() {
        v2_spec["metrics"] = json!(metrics);
    }
    if let Some(b) = behavior {
        v2_spec["behavior"] = b;
    }
    obj["apiVersion"] = json!("autoscaling/v2");
    obj["spec"] = v2_spec;
    if status.is_object() {
        let mut v2_status = json!({
            "currentReplicas": status["currentReplicas"],
            "desiredReplicas": status["desiredReplicas"],
        });
        for f in ["observedGeneration", "lastScaleTime"] {
            if !status[f].is_null() {
                v2_status[f] = status[f].clone();
            }
        }
        let mut current = Vec::new();
        if let Some(u) = status["currentCPUUtilizationPercentage"].as_i64() {
            current.push(json!({"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": u}}}));
        }
        current.extend(
            other_current
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default(),
        );
        if !current.is_empty() {
            v2_status["currentMetrics"] = json!(current);
        }
        if let Some(c) = conditions {
            v2_status["conditions"] = c;
        }
        obj["status"] = v2_status;
    } else if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    obj
}

/// Converts an answer of the storage version for a v1 client: an object,
/// a list of them, or a watch event; anything else (a Table, a Status)
/// passes through.
pub fn answer_to_v1(mut body: Value) -> Value {
    match body["kind"].as_str() {
        Some("HorizontalPodAutoscaler") => hpa_v2_to_v1(body),
        Some("HorizontalPodAutoscalerList") => {
            body["apiVersion"] = json!("autoscaling/v1");
            if let Some(items) = body["items"].as_array_mut() {
                for item in items.iter_mut() {
                    *item = hpa_v2_to_v1(item.take());
                }
            }
            body
        }
        _ if body.get("type").is_some() && body["object"].is_object() => {
            let object = body["object"].take();
            body["object"] = answer_to_v1(object);
            body
        }
        _ => body,
    }
}

// ANCHOR: converted
/// A request for a converted version, rewritten for the storage version.
pub struct Converted {
    pub call: Call,
}

impl Converted {
    /// Points `call` at the storage version and converts its body. A
    /// protobuf body is decoded to JSON first (our handlers store JSON).
    pub fn new(mut call: Call) -> Result<Converted, super::status::ApiError> {
        let storage =
            resources::by_kind(call.target.resource.kind).expect("the storage version is served");
        let served = call.target.resource;
        call.target.resource = storage;
        let is_write = call.method == http::Method::POST || call.method == http::Method::PUT;
        if is_write && !call.body.is_empty() {
            let content_type = call
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let obj: Value = if content_type.starts_with(super::protobuf::CONTENT_TYPE) {
                super::protobuf::decode(&call.body)
                    .map_err(|e| super::status::ApiError::bad_request(e.to_string()))?
            } else {
                serde_json::from_slice(&call.body).map_err(|e| {
                    super::status::ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: {e}",
                        served.kind, served.version, served.kind
                    ))
                })?
            };
            let obj = if obj["apiVersion"] == "autoscaling/v1" || obj.get("apiVersion").is_none() {
                hpa_v1_to_v2(obj)
            } else {
                obj
            };
            call.body = Bytes::from(serde_json::to_vec(&obj).expect("JSON values serialize"));
            call.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        Ok(Converted { call })
    }
}

/// Converts a streamed watch answer line by line (each event is one JSON
/// line).
pub fn watch_to_v1(resp: axum::response::Response) -> axum::response::Response {
    let (parts, body) = resp.into_parts();
    let mut pending: Vec<u8> = Vec::new();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<Value>(&line) {
                Ok(event) => {
                    serde_json::to_writer(&mut out, &answer_to_v1(event)).expect("serializes");
                    out.push(b'\n');
                }
                Err(_) => out.extend_from_slice(&line),
            }
        }
        Ok::<_, axum::Error>(Bytes::from(out))
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(stream))
}
// ANCHOR_END: converted

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 4,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 95, "averageValue": "95m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}],
            },
        })
    }

    #[test]
    fn v2_to_v1_keeps_the_cpu_target_and_annotates_the_rest() {
        let v1 = hpa_v2_to_v1(v2());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
        assert_eq!(v1["spec"]["minReplicas"], 2);
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 95);
        let ann = &v1["metadata"]["annotations"];
        assert!(ann[METRICS_ANNOTATION].as_str().unwrap().contains("memory"));
        assert!(ann[BEHAVIOR_ANNOTATION].as_str().is_some());
        assert!(ann[CONDITIONS_ANNOTATION].as_str().is_some());
        // It decodes as the v1 type.
        serde_json::from_value::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(v1)
            .unwrap();
    }

    #[test]
    fn v1_round_trip_loses_nothing() {
        let mut back = hpa_v1_to_v2(hpa_v2_to_v1(v2()));
        // v1 keeps only the utilisation of the current cpu metric.
        back["status"]["currentMetrics"][0]["resource"]["current"]["averageValue"] = json!("95m");
        assert_eq!(back, v2());
    }

    #[test]
    fn a_v1_object_without_target_has_no_metrics_until_defaulted() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "a"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3}});
        let v2 = hpa_v1_to_v2(v1);
        assert!(v2["spec"].get("metrics").is_none());
        assert!(v2.get("status").is_none());
        assert!(v2["metadata"].get("annotations").is_none());
    }
}
