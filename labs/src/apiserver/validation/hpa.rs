//! HorizontalPodAutoscaler rules. Upstream:
//! `pkg/apis/autoscaling/validation/validation.go`
//! (`validateHorizontalPodAutoscalerSpec`, `validateMetrics`).

use serde_json::Value;

use super::Errors;

// ANCHOR: validate_hpa
pub(super) fn validate_hpa_spec(errs: &mut Errors, spec: &Value) {
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    // `minReplicas: 0` needs the HPAScaleToZero feature gate (alpha, off).
    if let Some(min) = min
        && min < 1
    {
        errs.invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        );
    }
    if max < 1 {
        errs.invalid("spec.maxReplicas", max, "must be greater than 0");
    }
    if let Some(min) = min
        && max < min
    {
        errs.invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        );
    }
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for f in ["kind", "name"] {
        if target
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.required(&format!("spec.scaleTargetRef.{f}"), "");
        }
    }
    for (i, m) in spec
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.metrics[{i}]");
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        let source = match kind {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            "" => {
                errs.required(&format!("{path}.type"), "must specify a metric source type");
                continue;
            }
            other => {
                errs.not_supported(
                    &format!("{path}.type"),
                    other,
                    &[
                        "ContainerResource",
                        "External",
                        "Object",
                        "Pods",
                        "Resource",
                    ],
                );
                continue;
            }
        };
        let Some(src) = m.get(source).filter(|s| s.is_object()) else {
            errs.required(
                &format!("{path}.{source}"),
                &format!("must populate information for the given metric source (type {kind})"),
            );
            continue;
        };
        let target = src.get("target").unwrap_or(&Value::Null);
        let tpath = format!("{path}.{source}.target");
        if let Some(u) = target.get("averageUtilization").and_then(Value::as_i64)
            && u < 1
        {
            errs.invalid(
                &format!("{tpath}.averageUtilization"),
                u,
                "must be greater than 0",
            );
        }
        match target.get("type").and_then(Value::as_str).unwrap_or("") {
            "" => errs.required(
                &format!("{tpath}.type"),
                "must specify a metric target type",
            ),
            "Utilization" | "Value" | "AverageValue" => {}
            other => errs.not_supported(
                &format!("{tpath}.type"),
                other,
                &["AverageValue", "Utilization", "Value"],
            ),
        }
    }
}
// ANCHOR_END: validate_hpa
