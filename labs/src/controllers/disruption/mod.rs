//! The disruption controller's decision core: how many pods of a
//! PodDisruptionBudget may be disrupted right now.
//!
//! A budget says "keep at least `minAvailable`" or "let at most
//! `maxUnavailable` be down" of the pods its selector matches, as a number
//! or a percentage. Evictions do not do that arithmetic themselves: they
//! read one number, `status.disruptionsAllowed`, and this controller keeps
//! it current from four others (upstream's names):
//!
//! - `expectedPods`: how many pods there should be. For a plain number in
//!   `minAvailable`, the pods that exist; otherwise the sum of the scales
//!   (`spec.replicas`) of the pods' controllers — a Deployment of 5 with 3
//!   pods up expects 5, so a percentage is of 5, not of 3;
//! - `desiredHealthy`: `minAvailable`, or `expectedPods - maxUnavailable`,
//!   percentages rounded **up** in both cases (a budget errs on the side of
//!   keeping pods);
//! - `currentHealthy`: pods that are Ready, not being deleted, and not just
//!   evicted (`disruptedPods`: evictions the controller has not seen go
//!   through yet — without them a pod evicted a moment ago would still count
//!   as healthy and a second eviction could get through);
//! - `disruptionsAllowed = currentHealthy - desiredHealthy`, at least 0, and
//!   0 while `expectedPods` is 0.
//!
//! An eviction noted in `disruptedPods` that did not happen within two
//! minutes (the pod still exists and is not terminating) is forgotten, and
//! the pod counts again.
//!
//! Upstream: `pkg/controller/disruption/disruption.go` (`trySync`,
//! `getExpectedPodCount`, `getExpectedScale`, `buildDisruptedPodMap`,
//! `countHealthyPods`, `updatePdbStatus`, `failSafe`) and
//! `pkg/apis/policy/v1/helper` (`UpdateDisruptionAllowedCondition`).
//! [`controller`] is the plumbing.

pub mod controller;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::machinery::pods::{controller_of, is_pod_ready};

/// How long an eviction noted in `disruptedPods` may take before the
/// controller stops waiting for it (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// The condition type, and its reasons (`policy/v1`'s constants).
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// A pod's controller as the plumbing found it: its uid (two pods of one
/// Deployment count its scale once) and its `spec.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerScale {
    pub uid: String,
    pub scale: i32,
}

// ANCHOR: scaled_value
/// Upstream's `intstr.GetScaledValueFromIntOrPercent`: a number as it is,
/// a percentage of `total`, rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = i64::from(total) * percent;
            let value = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            Ok(value as i32)
        }
    }
}
// ANCHOR_END: scaled_value

/// `expectedPods` and `desiredHealthy` of a budget, and the pods without a
/// controller (they count in `expectedPods` only for an integer
/// `minAvailable`; for the rest they are reported, not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub expected_count: i32,
    pub desired_healthy: i32,
    pub unmanaged_pods: Vec<String>,
}

// ANCHOR: expected_pod_count
/// Upstream's `getExpectedPodCount`. `scale_of` finds the scale of a pod's
/// controller (from the plumbing's caches); a controlled pod whose
/// controller cannot be found is an error, as upstream: the budget is then
/// failed safe (no disruptions allowed).
pub fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: impl Fn(&Pod, &OwnerReference) -> Option<ControllerScale>,
) -> Result<Expected, String> {
    let spec = pdb.spec.as_ref();
    let max_unavailable = spec.and_then(|s| s.max_unavailable.as_ref());
    let min_available = spec.and_then(|s| s.min_available.as_ref());
    let mut out = Expected::default();
    if let Some(max_unavailable) = max_unavailable {
        (out.expected_count, out.unmanaged_pods) = expected_scale(pods, &scale_of)?;
        let max_unavailable = scaled_value(max_unavailable, out.expected_count, true)?;
        out.desired_healthy = (out.expected_count - max_unavailable).max(0);
    } else if let Some(min_available) = min_available {
        match min_available {
            // A plain number needs no controller: the pods there are is
            // what is expected.
            IntOrString::Int(n) => {
                out.desired_healthy = *n;
                out.expected_count = pods.len() as i32;
            }
            IntOrString::String(_) => {
                (out.expected_count, out.unmanaged_pods) = expected_scale(pods, &scale_of)?;
                out.desired_healthy = scaled_value(min_available, out.expected_count, true)?;
            }
        }
    }
    Ok(out)
}

/// Upstream's `getExpectedScale`: the sum of the scales of the pods'
/// controllers, each controller counted once.
fn expected_scale(
    pods: &[&Pod],
    scale_of: &impl Fn(&Pod, &OwnerReference) -> Option<ControllerScale>,
) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(name);
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let found =
            scale_of(pod, owner).ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
        scales.insert(found.uid, found.scale);
    }
    Ok((scales.values().sum(), unmanaged))
}
// ANCHOR_END: expected_pod_count

/// What [`build_disrupted_pod_map`] keeps, when to look again, and which
/// noted pods were not deleted in time (a `NotDeleted` warning each).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DisruptedPods {
    pub pods: BTreeMap<String, Time>,
    pub recheck_at: Option<Timestamp>,
    pub not_deleted: Vec<String>,
}

// ANCHOR: disrupted_pods
/// Upstream's `buildDisruptedPodMap`: keep a noted eviction while its pod
/// exists, is not terminating yet, and the note is younger than
/// [`DELETION_TIMEOUT`]. A pod that is gone or terminating needs no note
/// (it no longer counts as healthy anyway); an expired note is dropped.
pub fn build_disrupted_pod_map(
    pods: &[&Pod],
    pdb: &PodDisruptionBudget,
    now: Timestamp,
) -> DisruptedPods {
    let mut out = DisruptedPods::default();
    let Some(noted) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return out;
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(at) = noted.get(name) else { continue };
        let expected_deletion = expires(at);
        if expected_deletion < now {
            out.not_deleted.push(name.to_string());
        } else {
            if out.recheck_at.is_none_or(|r| expected_deletion < r) {
                out.recheck_at = Some(expected_deletion);
            }
            out.pods.insert(name.to_string(), at.clone());
        }
    }
    out
}

fn expires(noted: &Time) -> Timestamp {
    noted.0 + SignedDuration::try_from(DELETION_TIMEOUT).expect("two minutes fit")
}

/// Upstream's `countHealthyPods`: Ready pods, minus those being deleted or
/// noted as just evicted.
pub fn count_healthy_pods(
    pods: &[&Pod],
    disrupted: &BTreeMap<String, Time>,
    now: Timestamp,
) -> i32 {
    pods.iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            disrupted.get(name).is_none_or(|at| expires(at) <= now)
        })
        .filter(|pod| is_pod_ready(pod))
        .count() as i32
}
// ANCHOR_END: disrupted_pods

/// The outcome of one sync: the status to write (if it differs from the
/// budget's), when to sync again, and what to tell the user.
#[derive(Clone, Debug, PartialEq)]
pub struct Sync {
    pub status: PodDisruptionBudgetStatus,
    pub recheck_at: Option<Timestamp>,
    pub events: Vec<Event>,
}

/// An Event the plumbing records: on the budget, or on one of its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `None`: about the budget; `Some(pod)`: about that pod.
    pub pod: Option<String>,
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

// ANCHOR: try_sync
/// Upstream's `trySync` + `updatePdbStatus`: the whole status of `pdb` from
/// the pods its selector matches. `Err` carries the failed-safe status
/// ([`fail_safe`]) and the reason, for the plumbing to write and report.
pub fn try_sync(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: impl Fn(&Pod, &OwnerReference) -> Option<ControllerScale>,
    now: Timestamp,
) -> Result<Sync, (PodDisruptionBudgetStatus, String)> {
    let mut events = Vec::new();
    if pods.is_empty() {
        events.push(Event {
            pod: None,
            type_: "Normal",
            reason: "NoPods",
            message: "No matching pods found".into(),
        });
    }
    let expected = match expected_pod_count(pdb, pods, scale_of) {
        Ok(e) => e,
        Err(err) => return Err((fail_safe(pdb, &err, now), err)),
    };
    if !expected.unmanaged_pods.is_empty() {
        events.push(Event {
            pod: None,
            type_: "Warning",
            reason: "UnmanagedPods",
            message: "Pods selected by this PodDisruptionBudget were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.".into(),
        });
    }
    let disrupted = build_disrupted_pod_map(pods, pdb, now);
    for pod in &disrupted.not_deleted {
        events.push(Event {
            pod: Some(pod.clone()),
            type_: "Warning",
            reason: "NotDeleted",
            message: format!(
                "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                pdb.metadata.namespace.as_deref().unwrap_or_default(),
                pdb.metadata.name.as_deref().unwrap_or_default()
            ),
        });
    }
    let current_healthy = count_healthy_pods(pods, &disrupted.pods, now);
    // A budget that expects no pods allows nothing: its first pods may
    // appear before this controller has looked at it again.
    let mut disruptions_allowed = current_healthy - expected.desired_healthy;
    if expected.expected_count <= 0 || disruptions_allowed <= 0 {
        disruptions_allowed = 0;
    }
    let generation = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.clone().unwrap_or_default();
    let mut status = PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy: expected.desired_healthy,
        expected_pods: expected.expected_count,
        disruptions_allowed,
        disrupted_pods: (!disrupted.pods.is_empty()).then_some(disrupted.pods),
        observed_generation: Some(generation),
        conditions: old.conditions.clone(),
    };
    update_disruption_allowed_condition(&mut status, now);
    Ok(Sync {
        status,
        recheck_at: disrupted.recheck_at,
        events,
    })
}
// ANCHOR_END: try_sync

/// Upstream's `failSafe`: when the budget cannot be computed, allow no
/// disruption and say why in the condition.
pub fn fail_safe(
    pdb: &PodDisruptionBudget,
    err: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let generation = status.observed_generation;
    set_condition(
        &mut status,
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: err.to_string(),
            observed_generation: generation,
            last_transition_time: Time(now),
        },
    );
    status
}

/// Upstream's `UpdateDisruptionAllowedCondition`.
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let (value, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let generation = status.observed_generation;
    set_condition(
        status,
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: value.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: generation,
            last_transition_time: Time(now),
        },
    );
}

/// apimachinery's `meta.SetStatusCondition`: replace the condition of the
/// same type, keeping its `lastTransitionTime` unless the status changed.
fn set_condition(status: &mut PodDisruptionBudgetStatus, mut condition: Condition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(old) => {
            if old.status == condition.status {
                condition.last_transition_time = old.last_transition_time.clone();
            }
            *old = condition;
        }
        None => conditions.push(condition),
    }
}

/// Whether `new` says anything `old` does not (upstream compares the
/// counts, the noted pods, the generation and the condition).
pub fn status_changed(
    old: Option<&PodDisruptionBudgetStatus>,
    new: &PodDisruptionBudgetStatus,
) -> bool {
    let empty = PodDisruptionBudgetStatus::default();
    let old = old.unwrap_or(&empty);
    let condition = |s: &PodDisruptionBudgetStatus| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == DISRUPTION_ALLOWED)
            .map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
    };
    old.current_healthy != new.current_healthy
        || old.desired_healthy != new.desired_healthy
        || old.expected_pods != new.expected_pods
        || old.disruptions_allowed != new.disruptions_allowed
        || old.observed_generation != new.observed_generation
        || old.disrupted_pods != new.disrupted_pods
        || condition(old) != condition(new)
}
