//! PodDisruptionBudget: a budget is a number *or* a percentage of pods,
//! given as `minAvailable` or as `maxUnavailable`, never both.
//!
//! Upstream: `pkg/apis/policy/validation/validation.go`
//! (`ValidatePodDisruptionBudgetSpec`), which reuses the apps group's
//! int-or-percent rules. Upstream accepts a budget with neither field (it
//! then never allows a disruption); so does this server.

use serde_json::Value;

use super::Errors;
use super::meta::validate_label_selector;
use super::workloads::validate_int_or_percent;

/// The values `spec.unhealthyPodEvictionPolicy` may take.
const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

pub(super) fn validate_pod_disruption_budget(errs: &mut Errors, spec: &Value) {
    let set = |f: &str| spec.get(f).filter(|v| !v.is_null());
    let (min, max) = (set("minAvailable"), set("maxUnavailable"));
    if min.is_some() && max.is_some() {
        errs.invalid(
            "spec",
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (value, field) in [(min, "spec.minAvailable"), (max, "spec.maxUnavailable")] {
        let Some(value) = value else { continue };
        validate_int_or_percent(errs, Some(value), field);
        // Upstream's `IsNotMoreThan100Percent`.
        let percent = value
            .as_str()
            .and_then(|s| s.strip_suffix('%'))
            .and_then(|n| n.parse::<i64>().ok());
        if percent.is_some_and(|p| p > 100) {
            errs.invalid(field, value.clone(), "must not be greater than 100%");
        }
    }
    if let Some(sel) = set("selector") {
        validate_label_selector(errs, sel, "spec.selector");
    }
    if let Some(policy) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
        && !UNHEALTHY_POD_EVICTION_POLICIES.contains(&policy)
    {
        errs.not_supported(
            "spec.unhealthyPodEvictionPolicy",
            policy,
            UNHEALTHY_POD_EVICTION_POLICIES,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::apiserver::validation::validate;

    fn errors(spec: serde_json::Value) -> Vec<String> {
        let pdb = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        validate("PodDisruptionBudget", &pdb, None)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect()
    }

    #[test]
    fn a_budget_is_one_int_or_percentage() {
        let sel = json!({"matchLabels": {"app": "web"}});
        assert!(errors(json!({"minAvailable": 2, "selector": sel})).is_empty());
        assert!(errors(json!({"maxUnavailable": "25%", "selector": sel})).is_empty());
        // Neither is accepted, as upstream (the budget then allows nothing).
        assert!(errors(json!({"selector": sel})).is_empty());
        assert_eq!(
            errors(json!({"minAvailable": 1, "maxUnavailable": 1})),
            ["spec: minAvailable and maxUnavailable cannot be both set"]
        );
        assert_eq!(
            errors(json!({"minAvailable": -1})),
            ["spec.minAvailable: must be greater than or equal to 0"]
        );
        assert_eq!(
            errors(json!({"maxUnavailable": "150%"})),
            ["spec.maxUnavailable: must not be greater than 100%"]
        );
        assert_eq!(
            errors(json!({"minAvailable": "half"})),
            [
                "spec.minAvailable: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            ]
        );
        assert_eq!(
            errors(json!({"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "Never"})),
            [
                "spec.unhealthyPodEvictionPolicy: supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ]
        );
    }
}
