//! Table tests of the budget arithmetic, with upstream's numbers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2025-01-01T00:10:00Z";

/// A pod of Deployment `web` (through ReplicaSet `web-1`), ready or not.
fn pod(name: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": "default", "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                 "uid": "rs-uid", "controller": true}],
        },
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}
        ]},
    }))
    .unwrap()
}

fn unmanaged(name: &str) -> Pod {
    let mut p = pod(name, true);
    p.metadata.owner_references = None;
    p
}

fn deleting(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(ts("2025-01-01T00:09:00Z")));
    p
}

fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": spec,
    }))
    .unwrap()
}

/// The Deployment above every pod has `scale` replicas.
fn deployment_scale(scale: i32) -> impl Fn(&Pod, &OwnerReference) -> Option<ControllerScale> {
    move |_, _| {
        Some(ControllerScale {
            uid: "deploy-uid".into(),
            scale,
        })
    }
}

#[test]
fn percentages_are_scaled_and_rounded_up() {
    let cases = [
        (IntOrString::Int(3), 10, true, 3),
        (IntOrString::String("50%".into()), 5, true, 3),
        (IntOrString::String("50%".into()), 5, false, 2),
        (IntOrString::String("10%".into()), 3, true, 1),
        (IntOrString::String("0%".into()), 3, true, 0),
        (IntOrString::String("100%".into()), 7, true, 7),
    ];
    for (v, total, up, want) in cases {
        assert_eq!(
            scaled_value(&v, total, up).unwrap(),
            want,
            "{v:?} of {total}"
        );
    }
    assert!(scaled_value(&IntOrString::String("half".into()), 4, true).is_err());
}

#[test]
fn expected_pods_and_desired_healthy() {
    let three: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), true)).collect();
    let pods: Vec<&Pod> = three.iter().collect();
    // (spec, deployment scale, expectedPods, desiredHealthy)
    let cases = [
        // An integer minAvailable counts the pods there are, whatever the scale.
        (json!({"minAvailable": 2}), 5, 3, 2),
        // A percentage is of the controllers' scale, rounded up.
        (json!({"minAvailable": "50%"}), 5, 5, 3),
        (json!({"maxUnavailable": 1}), 5, 5, 4),
        (json!({"maxUnavailable": "30%"}), 5, 5, 3),
        // Never below zero.
        (json!({"maxUnavailable": 9}), 5, 5, 0),
        // Neither: nothing expected, nothing desired (upstream allows it).
        (json!({}), 5, 0, 0),
    ];
    for (spec, scale, expected, desired) in cases {
        let e = expected_pod_count(&pdb(spec.clone()), &pods, deployment_scale(scale)).unwrap();
        assert_eq!(
            (e.expected_count, e.desired_healthy),
            (expected, desired),
            "{spec}"
        );
    }
}

#[test]
fn one_controller_counts_once_and_unmanaged_pods_are_reported() {
    let owned = [pod("a", true), pod("b", true)];
    let lone = unmanaged("lone");
    let pods = vec![&owned[0], &owned[1], &lone];
    let e = expected_pod_count(
        &pdb(json!({"maxUnavailable": 1})),
        &pods,
        deployment_scale(2),
    )
    .unwrap();
    assert_eq!(e.expected_count, 2, "the Deployment's 2, once");
    assert_eq!(e.unmanaged_pods, vec!["lone".to_string()]);
    // An integer minAvailable needs no controller at all.
    let e = expected_pod_count(&pdb(json!({"minAvailable": 1})), &pods, |_, _| None).unwrap();
    assert_eq!(e.expected_count, 3);
}

#[test]
fn a_pod_whose_controller_is_missing_fails_safe() {
    let p = pod("orphan", true);
    let budget = pdb(json!({"minAvailable": "50%"}));
    let err = try_sync(&budget, &[&p], |_, _| None, ts(NOW)).unwrap_err();
    assert_eq!(err.1, "found no controllers for pod \"orphan\"");
    assert_eq!(err.0.disruptions_allowed, 0);
    let c = &err.0.conditions.unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        (DISRUPTION_ALLOWED, "False", SYNC_FAILED)
    );
}

#[test]
fn healthy_means_ready_not_deleting_and_not_just_evicted() {
    let pods = [
        pod("ready", true),
        pod("unready", false),
        deleting(pod("going", true)),
        pod("evicted", true),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut noted = BTreeMap::new();
    noted.insert("evicted".to_string(), Time(ts("2025-01-01T00:09:30Z")));
    assert_eq!(count_healthy_pods(&refs, &noted, ts(NOW)), 1);
    // Two minutes after the note the eviction is no longer waited for.
    assert_eq!(
        count_healthy_pods(&refs, &noted, ts("2025-01-01T00:11:31Z")),
        2
    );
}

#[test]
fn noted_evictions_are_kept_until_the_pod_goes_or_two_minutes_pass() {
    let pods = [
        pod("slow", true),
        deleting(pod("going", true)),
        pod("stuck", true),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut budget = pdb(json!({"minAvailable": 1}));
    budget.status = Some(PodDisruptionBudgetStatus {
        disrupted_pods: Some(BTreeMap::from([
            ("slow".to_string(), Time(ts("2025-01-01T00:09:30Z"))),
            ("going".to_string(), Time(ts("2025-01-01T00:09:30Z"))),
            ("stuck".to_string(), Time(ts("2025-01-01T00:07:00Z"))),
            ("gone".to_string(), Time(ts("2025-01-01T00:09:30Z"))),
        ])),
        ..Default::default()
    });
    let d = build_disrupted_pod_map(&refs, &budget, ts(NOW));
    assert_eq!(d.pods.keys().collect::<Vec<_>>(), ["slow"]);
    assert_eq!(d.not_deleted, ["stuck"]);
    assert_eq!(d.recheck_at, Some(ts("2025-01-01T00:11:30Z")));
}

#[test]
fn disruptions_allowed_from_a_whole_sync() {
    // (spec, ready pods of 3, deployment scale, disruptionsAllowed, condition reason)
    let cases = [
        (json!({"minAvailable": 3}), 3, 3, 0, INSUFFICIENT_PODS),
        (json!({"minAvailable": 2}), 3, 3, 1, SUFFICIENT_PODS),
        (json!({"minAvailable": 2}), 1, 3, 0, INSUFFICIENT_PODS),
        (json!({"maxUnavailable": 1}), 3, 3, 1, SUFFICIENT_PODS),
        (json!({"maxUnavailable": "100%"}), 3, 3, 3, SUFFICIENT_PODS),
        // The Deployment wants 5 but has 3: 20% of 5 is 1 unavailable, so
        // 4 must be healthy and only 3 are.
        (json!({"maxUnavailable": "20%"}), 3, 5, 0, INSUFFICIENT_PODS),
    ];
    for (spec, ready, scale, allowed, reason) in cases {
        let pods: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), i < ready)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let budget = pdb(spec.clone());
        let s = try_sync(&budget, &refs, deployment_scale(scale), ts(NOW)).unwrap();
        assert_eq!(
            s.status.disruptions_allowed, allowed,
            "{spec} with {ready} ready"
        );
        assert_eq!(s.status.observed_generation, Some(2));
        assert_eq!(s.status.conditions.as_ref().unwrap()[0].reason, reason);
        assert!(status_changed(budget.status.as_ref(), &s.status));
        // Synced again on its own result: nothing to write.
        let mut again = budget.clone();
        again.status = Some(s.status.clone());
        let s2 = try_sync(&again, &refs, deployment_scale(scale), ts(NOW)).unwrap();
        assert!(!status_changed(again.status.as_ref(), &s2.status), "{spec}");
    }
}

#[test]
fn no_pods_no_disruptions_and_an_event() {
    let s = try_sync(
        &pdb(json!({"maxUnavailable": 1})),
        &[],
        deployment_scale(3),
        ts(NOW),
    )
    .unwrap();
    assert_eq!(s.status.disruptions_allowed, 0);
    assert_eq!(s.events[0].reason, "NoPods");
}
