//! Deployments and ReplicaSets: replicas and the other counts, the
//! selector and the template it must match, the rollout strategy.
//!
//! Upstream: `pkg/apis/apps/validation/validation.go`
//! (`ValidateDeploymentSpec`, `ValidateReplicaSetSpec`,
//! `ValidateRollingUpdateDeployment`).

use serde_json::{Value, json};

use super::meta::{validate_annotations, validate_label_selector, validate_labels};
use super::pod::validate_pod_spec;
use super::{Errors, list_of, str_of};
use crate::apiserver::names;
use crate::apiserver::selector::LabelSelector;

fn intstr_percent(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    if !names::is_valid_percent(s).is_empty() {
        return None;
    }
    s.trim_end_matches('%').parse().ok()
}

/// The number an int-or-string stands for (a percentage counts as its
/// number: `0%` is zero), as upstream's `getIntOrPercentValue`.
fn intstr_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(s @ Value::String(_)) => intstr_percent(s).unwrap_or(0),
        _ => 0,
    }
}

/// Upstream's `ValidatePositiveIntOrPercent`.
pub(super) fn validate_int_or_percent(errs: &mut Errors, v: Option<&Value>, field: &str) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            for msg in names::is_valid_percent(s) {
                errs.invalid(field, s.as_str(), &msg);
            }
        }
        Some(Value::Number(n)) => {
            if n.as_i64().is_some_and(|n| n < 0) {
                errs.invalid(
                    field,
                    v.cloned().unwrap_or_default(),
                    "must be greater than or equal to 0",
                );
            }
        }
        Some(other) => errs.invalid(
            field,
            other.clone(),
            "must be an integer or percentage (e.g '5%')",
        ),
    }
}

pub(super) fn validate_strategy(errs: &mut Errors, strategy: &Value) {
    let rolling = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match str_of(strategy, "type") {
        "Recreate" => {
            if rolling.is_some() {
                errs.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        "RollingUpdate" => match rolling {
            None => errs.required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            ),
            Some(ru) => {
                let path = "spec.strategy.rollingUpdate";
                let (unavailable, surge) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                validate_int_or_percent(errs, unavailable, &format!("{path}.maxUnavailable"));
                validate_int_or_percent(errs, surge, &format!("{path}.maxSurge"));
                if intstr_value(unavailable) == 0 && intstr_value(surge) == 0 {
                    // Nothing may be taken down and nothing added: the
                    // rollout could never make progress.
                    errs.invalid(
                        &format!("{path}.maxUnavailable"),
                        unavailable.cloned().unwrap_or(json!(0)),
                        "may not be 0 when `maxSurge` is 0",
                    );
                }
                if let Some(p) = unavailable.and_then(intstr_percent)
                    && p > 100
                {
                    errs.invalid(
                        &format!("{path}.maxUnavailable"),
                        unavailable.cloned().unwrap_or_default(),
                        "must not be greater than 100%",
                    );
                }
            }
        },
        other => errs.not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"]),
    }
}

/// Deployment and ReplicaSet specs share the selector/template rules
/// (upstream's `ValidateDeploymentSpec`, `ValidateReplicaSetSpec`).
pub(super) fn validate_replicated_spec(errs: &mut Errors, kind: &str, spec: &Value) {
    errs.nonnegative(spec, "replicas", "spec.replicas");
    if kind == "ReplicaSet" {
        errs.nonnegative(spec, "minReadySeconds", "spec.minReadySeconds");
    }
    let selector = spec.get("selector").filter(|v| !v.is_null());
    match selector {
        None => errs.required("spec.selector", ""),
        Some(sel) => {
            validate_label_selector(errs, sel, "spec.selector");
            let n = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + list_of(sel, "matchExpressions").len();
            if n == 0 {
                // An empty selector selects every pod in the namespace.
                errs.invalid(
                    "spec.selector",
                    sel.clone(),
                    "empty selector is invalid for deployment",
                );
            }
        }
    }
    let empty = json!({});
    let template = spec.get("template").unwrap_or(&empty);
    // A missing selector selects *nothing* (upstream's `labels.Nothing()`),
    // so upstream also reports the template labels as unmatched then.
    let parsed = match selector {
        None => Ok(None),
        Some(sel) => LabelSelector::from_api_value(sel).map(Some),
    };
    match parsed {
        Err(_) => errs.invalid(
            "spec.selector",
            selector.cloned().unwrap_or_default(),
            "invalid label selector",
        ),
        Ok(sel) => {
            let labels_value = template.pointer("/metadata/labels");
            let matches = match &sel {
                None => false,
                Some(s) if s.is_empty() => true,
                Some(s) => s.matches_object(template),
            };
            if !matches {
                let bad = labels_value.cloned().unwrap_or(Value::Null);
                errs.invalid(
                    "spec.template.metadata.labels",
                    bad,
                    "`selector` does not match template `labels`",
                );
            }
            let tmeta = template.get("metadata").unwrap_or(&empty);
            // Upstream's template paths skip `metadata` here (a quirk we keep).
            validate_labels(errs, tmeta.get("labels"), "spec.template.labels");
            validate_annotations(errs, tmeta.get("annotations"), "spec.template.annotations");
            let pod_spec = template.get("spec").unwrap_or(&empty);
            validate_pod_spec(errs, pod_spec, "spec.template.spec");
            let restart = str_of(pod_spec, "restartPolicy");
            if restart != "Always" {
                errs.not_supported("spec.template.spec.restartPolicy", restart, &["Always"]);
            }
            if pod_spec
                .get("activeDeadlineSeconds")
                .is_some_and(|v| !v.is_null())
            {
                errs.forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                );
            }
        }
    }
    if kind == "Deployment" {
        validate_strategy(errs, spec.get("strategy").unwrap_or(&empty));
        errs.nonnegative(spec, "minReadySeconds", "spec.minReadySeconds");
        errs.nonnegative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit");
        if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            errs.nonnegative(
                spec,
                "progressDeadlineSeconds",
                "spec.progressDeadlineSeconds",
            );
            let min_ready = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if deadline <= min_ready {
                errs.invalid(
                    "spec.progressDeadlineSeconds",
                    deadline,
                    "must be greater than minReadySeconds",
                );
            }
        }
    }
}
