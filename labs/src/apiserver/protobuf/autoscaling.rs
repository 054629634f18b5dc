//! The HorizontalPodAutoscaler as `kubectl autoscale` sends it (kubectl ≥
//! 1.32 sends autoscaling/v2 in protobuf): the spec's target, bounds and
//! resource metrics. `behavior` and the Pods/Object/External metric
//! sources are outside the subset (kubectl's generator never sets them).

use k8s_pb::api::autoscaling::{v1, v2};
use serde_json::Value;

use super::convert::obj;

fn quantity(q: &Option<k8s_pb::apimachinery::pkg::api::resource::Quantity>) -> Option<Value> {
    q.as_ref()
        .and_then(|q| q.string.clone())
        .filter(|s| !s.is_empty())
        .map(Value::String)
}

fn target(t: &v2::MetricTarget) -> Value {
    obj()
        .str("type", &t.r#type)
        .val("value", quantity(&t.value))
        .val("averageValue", quantity(&t.average_value))
        .opt_int("averageUtilization", t.average_utilization)
        .build()
}

fn reference(r: &Option<v2::CrossVersionObjectReference>) -> Value {
    let r = r.clone().unwrap_or_default();
    obj()
        .str("kind", &r.kind)
        .str("name", &r.name)
        .str("apiVersion", &r.api_version)
        .build()
}

pub(super) fn hpa_v2_spec(s: &v2::HorizontalPodAutoscalerSpec) -> Value {
    let metrics = s
        .metrics
        .iter()
        .map(|m| {
            let base = obj().str("type", &m.r#type);
            if let Some(r) = &m.resource {
                base.put(
                    "resource",
                    obj()
                        .str("name", &r.name)
                        .val("target", r.target.as_ref().map(target))
                        .build(),
                )
                .build()
            } else if let Some(r) = &m.container_resource {
                base.put(
                    "containerResource",
                    obj()
                        .str("name", &r.name)
                        .str("container", &r.container)
                        .val("target", r.target.as_ref().map(target))
                        .build(),
                )
                .build()
            } else {
                base.build()
            }
        })
        .collect();
    obj()
        .put("scaleTargetRef", reference(&s.scale_target_ref))
        .opt_int("minReplicas", s.min_replicas)
        .int("maxReplicas", s.max_replicas)
        .list("metrics", metrics)
        .build()
}

pub(super) fn hpa_v1_spec(s: &v1::HorizontalPodAutoscalerSpec) -> Value {
    let r = s.scale_target_ref.clone().unwrap_or_default();
    obj()
        .put(
            "scaleTargetRef",
            obj()
                .str("kind", &r.kind)
                .str("name", &r.name)
                .str("apiVersion", &r.api_version)
                .build(),
        )
        .opt_int("minReplicas", s.min_replicas)
        .int("maxReplicas", s.max_replicas)
        .opt_int(
            "targetCPUUtilizationPercentage",
            s.target_cpu_utilization_percentage,
        )
        .build()
}
