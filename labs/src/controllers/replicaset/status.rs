//! The status a ReplicaSet reports: how many of its pods exist, carry the
//! template's labels, are ready and are available, and the
//! `ReplicaFailure` condition when creating or deleting failed.
//!
//! This mirrors `pkg/controller/replicaset/replica_set_utils.go`
//! (`calculateStatus`, `NewReplicaSetCondition`); the plumbing
//! ([`super::controller`]) writes it (`updateReplicaSetStatus`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{desired_replicas, labels};
use crate::machinery::pods::{is_pod_available, is_pod_ready};

/// The ReplicaSet condition that reports failed creates or deletes.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
// ANCHOR: status
/// The status the ReplicaSet reports (upstream's `calculateStatus`, plus the
/// `observedGeneration` that `updateReplicaSetStatus` sets).
///
/// `manage_replicas_err` is the error of the scale step, if it failed: it
/// sets the `ReplicaFailure` condition, which a later successful sync removes.
/// Zero counts are left unset, as Kubernetes omits them on the wire.
pub fn calculate_status(
    rs: &ReplicaSet,
    active_pods: &[&Pod],
    manage_replicas_err: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let min_ready_seconds = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let no_labels = BTreeMap::new();
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);

    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in active_pods {
        // The selector may be looser than the template's labels; a pod that
        // matches the selector but lacks some template label counts as a
        // replica, yet not as a fully labeled one.
        let pod_labels = labels(&pod.metadata);
        if template_labels
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
    }

    let conditions = status.conditions.take().unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    let conditions: Vec<ReplicaSetCondition> = match manage_replicas_err {
        // A new failure: say whether creating or deleting went wrong.
        Some(err) if !had_failure => {
            let diff = active_pods.len() as i64 - desired_replicas(rs) as i64;
            let reason = match diff {
                ..0 => Some("FailedCreate".to_string()),
                1.. => Some("FailedDelete".to_string()),
                0 => None,
            };
            let mut conditions = conditions;
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason,
                message: Some(err.to_string()),
                last_transition_time: Some(Time(now)),
            });
            conditions
        }
        // Still failing: keep the existing condition and its transition time.
        Some(_) => conditions,
        // Success clears the failure.
        None => conditions
            .into_iter()
            .filter(|c| c.type_ != REPLICA_FAILURE)
            .collect(),
    };
    status.conditions = (!conditions.is_empty()).then_some(conditions);

    status.replicas = active_pods.len() as i32;
    status.fully_labeled_replicas = omit_zero(fully_labeled);
    status.ready_replicas = omit_zero(ready);
    status.available_replicas = omit_zero(available);
    status.terminating_replicas = None;
    status.observed_generation = rs.metadata.generation;
    status
}

fn omit_zero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

// ANCHOR_END: status

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::replicaset::reconcile;
    use crate::controllers::replicaset::tests::{
        NO_PODS, now, pod, pods, replica_set, t, with_min_ready,
    };
    use k8s_openapi::jiff::SignedDuration;

    // ---- status -----------------------------------------------------------

    #[test]
    fn status_counts() {
        let rs = replica_set(5);
        let all = vec![
            pod("ready").ready(Some(t(-60))).build(),
            pod("ready-partly-labeled")
                .labels(&[("app", "web")])
                .ready(Some(t(-60)))
                .build(),
            pod("running-not-ready")
                .phase("Running")
                .not_ready_condition()
                .build(),
            pod("pending").build(),
            pod("terminating").ready(Some(t(-60))).terminating().build(),
            pod("done").phase("Succeeded").build(),
        ];
        let r = reconcile(&rs, &all, NO_PODS, now());
        let s = &r.status;
        assert_eq!(s.replicas, 4);
        assert_eq!(s.fully_labeled_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.terminating_replicas, None);
        assert_eq!(s.conditions, None);
    }

    #[test]
    fn zero_counts_are_omitted_as_kubernetes_does() {
        let r = reconcile(&replica_set(0), NO_PODS, NO_PODS, now());
        let json = serde_json::to_value(&r.status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"replicas": 0, "observedGeneration": 4})
        );
    }

    #[test]
    fn availability_with_min_ready_seconds() {
        // (minReadySeconds, ready since (None = no transition time), ready?, available?)
        let cases = [
            (0, Some(t(0)), true, true),
            (0, None, true, true),
            (10, Some(t(-11)), true, true),
            // Exactly minReadySeconds is not enough: the comparison is strict.
            (10, Some(t(-10)), true, false),
            (10, Some(t(-9)), true, false),
            (10, None, true, false),
            (10, Some(t(3600)), true, false),
        ];
        for (min_ready, since, ready, available) in cases {
            let p = pod("p").ready(since).build();
            assert_eq!(is_pod_ready(&p), ready);
            assert_eq!(
                is_pod_available(&p, min_ready, now()),
                available,
                "minReadySeconds={min_ready} since={since:?}"
            );
            let rs = with_min_ready(replica_set(1), min_ready);
            let all = [p];
            let status = reconcile(&rs, &all, NO_PODS, now()).status;
            assert_eq!(status.available_replicas, available.then_some(1));
        }
        // One nanosecond past the boundary is enough.
        let since = t(-10).checked_sub(SignedDuration::from_nanos(1)).unwrap();
        assert!(is_pod_available(
            &pod("p").ready(Some(since)).build(),
            10,
            now()
        ));
        // Not ready is never available.
        let p = pod("p").phase("Running").not_ready_condition().build();
        assert!(!is_pod_ready(&p) && !is_pod_available(&p, 0, now()));
    }
    #[test]
    fn replica_failure_condition() {
        let failure = |reason: &str, at: i64| ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("old".into()),
            last_transition_time: Some(Time(t(at))),
        };
        let other = ReplicaSetCondition {
            type_: "Other".into(),
            status: "True".into(),
            ..Default::default()
        };
        let two = pods(2, |p| p);
        let active: Vec<&Pod> = two.iter().collect();
        // (replicas, existing conditions, error, expected conditions)
        let cases = [
            (
                3,
                None,
                Some("quota exceeded"),
                Some(vec![ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some("quota exceeded".into()),
                    last_transition_time: Some(Time(now())),
                }]),
            ),
            (
                1,
                Some(vec![other.clone()]),
                Some("forbidden"),
                Some(vec![
                    other.clone(),
                    ReplicaSetCondition {
                        type_: REPLICA_FAILURE.into(),
                        status: "True".into(),
                        reason: Some("FailedDelete".into()),
                        message: Some("forbidden".into()),
                        last_transition_time: Some(Time(now())),
                    },
                ]),
            ),
            // Still failing: the existing condition (and its time) stays.
            (
                3,
                Some(vec![failure("FailedCreate", -100)]),
                Some("new error"),
                Some(vec![failure("FailedCreate", -100)]),
            ),
            // Success clears it, and only it.
            (3, Some(vec![failure("FailedCreate", -100)]), None, None),
            (
                3,
                Some(vec![other.clone(), failure("FailedCreate", -100)]),
                None,
                Some(vec![other.clone()]),
            ),
        ];
        for (i, (replicas, existing, err, expected)) in cases.into_iter().enumerate() {
            let mut rs = replica_set(replicas);
            rs.status = Some(ReplicaSetStatus {
                conditions: existing,
                ..Default::default()
            });
            let status = calculate_status(&rs, &active, err, now());
            assert_eq!(status.conditions, expected, "case {i}");
        }
    }
}
