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
                "must populate information for the given metric source",
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
            other => errs.invalid(
                &format!("{tpath}.type"),
                other,
                "must be either Utilization, Value, or AverageValue",
            ),
        }
        // A resource target is a utilisation or a raw average, exactly one.
        if matches!(kind, "Resource" | "ContainerResource") {
            let has = |f: &str| target.get(f).is_some_and(|v| !v.is_null());
            match (has("averageUtilization"), has("averageValue")) {
                (false, false) => errs.required(
                    &format!("{tpath}.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ),
                (true, true) => errs.forbidden(
                    &format!("{tpath}.averageValue"),
                    "may not set both a target raw value and a target utilization",
                ),
                _ => {}
            }
        }
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| !b.is_null()) {
        for direction in ["scaleUp", "scaleDown"] {
            if let Some(rules) = behavior.get(direction).filter(|r| !r.is_null()) {
                validate_scaling_rules(errs, rules, &format!("spec.behavior.{direction}"));
            }
        }
    }
}

/// Upstream's `MaxStabilizationWindowSeconds` and `MaxPeriodSeconds`.
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;
const MAX_PERIOD_SECONDS: i64 = 1800;

/// `validateScalingRules` and `validateScalingPolicy`.
fn validate_scaling_rules(errs: &mut Errors, rules: &Value, path: &str) {
    if let Some(w) = rules
        .get("stabilizationWindowSeconds")
        .and_then(Value::as_i64)
    {
        let field = format!("{path}.stabilizationWindowSeconds");
        if w < 0 {
            errs.invalid(&field, w, "must be greater than or equal to zero");
        }
        if w > MAX_STABILIZATION_WINDOW_SECONDS {
            errs.invalid(
                &field,
                w,
                &format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            );
        }
    }
    if let Some(p) = rules.get("selectPolicy").and_then(Value::as_str)
        && !matches!(p, "Max" | "Min" | "Disabled")
    {
        errs.not_supported(
            &format!("{path}.selectPolicy"),
            p,
            &["Disabled", "Max", "Min"],
        );
    }
    let policies = rules
        .get("policies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if policies.is_empty() {
        errs.required(
            &format!("{path}.policies"),
            "must specify at least one Policy",
        );
    }
    for (i, policy) in policies.iter().enumerate() {
        let ppath = format!("{path}.policies[{i}]");
        let kind = policy.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "Pods" | "Percent") {
            errs.not_supported(&format!("{ppath}.type"), kind, &["Percent", "Pods"]);
        }
        let value = policy.get("value").and_then(Value::as_i64).unwrap_or(0);
        if value <= 0 {
            errs.invalid(
                &format!("{ppath}.value"),
                value,
                "must be greater than zero",
            );
        }
        let period = policy
            .get("periodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let field = format!("{ppath}.periodSeconds");
        if period <= 0 {
            errs.invalid(&field, period, "must be greater than zero");
        }
        if period > MAX_PERIOD_SECONDS {
            errs.invalid(
                &field,
                period,
                &format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            );
        }
    }
}
// ANCHOR_END: validate_hpa
