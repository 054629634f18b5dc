//! Table tests of the HPA's decision core, with upstream's numbers.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// A pod `name` requesting `request` millicores, Running and Ready since
/// `ready_at` (started 10 min before `t(0)`: past the CPU initialization
/// period).
fn pod(name: &str, request: i64, phase: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "x",
            "resources": {"requests": {"cpu": format!("{request}m")}}}]},
        "status": {
            "phase": phase,
            "startTime": t(-600).to_string(),
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "lastTransitionTime": t(-590).to_string()}],
        },
    }))
    .unwrap()
}

fn metrics(values: &[(&str, i64)]) -> HashMap<String, PodMetric> {
    values
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                PodMetric {
                    value: *v,
                    timestamp: t(0),
                    window: Duration::from_secs(15),
                },
            )
        })
        .collect()
}

// ANCHOR: table
#[test]
fn replica_calculator_follows_upstream() {
    struct Case {
        name: &'static str,
        current: i32,
        target: i32,
        pods: Vec<Pod>,
        metrics: Vec<(&'static str, i64)>,
        want: Result<(i32, i32), &'static str>, // (replicas, utilization)
    }
    let ready = |n| pod(n, 1000, "Running", true);
    let cases = vec![
        Case {
            // 3 pods at 50 %, 60 %, 70 % of 1 core against a 30 % target:
            // ceil(3 × 60/30) = 6.
            name: "scale up",
            current: 3,
            target: 30,
            pods: vec![ready("a"), ready("b"), ready("c")],
            metrics: vec![("a", 500), ("b", 600), ("c", 700)],
            want: Ok((6, 60)),
        },
        Case {
            name: "scale down",
            current: 5,
            target: 50,
            pods: (["a", "b", "c", "d", "e"]).iter().map(|n| ready(n)).collect(),
            metrics: vec![("a", 100), ("b", 300), ("c", 500), ("d", 250), ("e", 250)],
            want: Ok((3, 28)),
        },
        Case {
            // 84 % against 80 %: a ratio of 1.05, inside the tolerance.
            name: "within tolerance",
            current: 3,
            target: 80,
            pods: vec![ready("a"), ready("b"), ready("c")],
            metrics: vec![("a", 840), ("b", 840), ("c", 840)],
            want: Ok((3, 84)),
        },
        Case {
            // Two ready pods at 100 %, one still Pending: the pending pod
            // is counted as using nothing → ratio (2000/3000)/0.5 = 1.33,
            // ceil(1.33 × 3) = 4 (not the 4 of ready pods alone, 2 × 2).
            name: "scale up counts an unready pod as idle",
            current: 3,
            target: 50,
            pods: vec![ready("a"), ready("b"), pod("c", 1000, "Pending", false)],
            metrics: vec![("a", 1000), ("b", 1000)],
            want: Ok((4, 100)),
        },
        Case {
            // Scale-down with a pod whose metrics are missing: it counts
            // as using 100 % of its request, which cancels the move.
            name: "missing metrics hold a scale-down",
            current: 2,
            target: 50,
            pods: vec![ready("a"), ready("b")],
            metrics: vec![("a", 200)],
            want: Ok((2, 20)),
        },
        Case {
            name: "a pod without a cpu request",
            current: 1,
            target: 50,
            pods: vec![serde_json::from_value(json!({
                "metadata": {"name": "a"},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
                "status": {"phase": "Running", "startTime": t(-600).to_string(),
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t(-590).to_string()}]},
            }))
            .unwrap()],
            metrics: vec![("a", 200)],
            want: Err("missing request for cpu in container app of Pod a"),
        },
        Case {
            name: "no metrics for any ready pod",
            current: 1,
            target: 50,
            pods: vec![pod("a", 1000, "Pending", false)],
            metrics: vec![],
            want: Err("did not receive metrics for targeted pods (pods might be unready)"),
        },
    ];
    for c in cases {
        let got = cpu_replicas(c.current, c.target, &c.pods, &metrics(&c.metrics), t(0))
            .map(|r| (r.replicas, r.utilization));
        assert_eq!(got, c.want.map_err(str::to_string), "{}", c.name);
    }
}
// ANCHOR_END: table

#[test]
fn a_sample_from_before_readiness_is_ignored_while_starting() {
    // Started 20 s ago, ready 5 s ago; the sample is from now, but the
    // window (15 s) reaches back before readiness: start-up CPU, ignored.
    let mut p = pod("a", 1000, "Running", true);
    let status = p.status.as_mut().unwrap();
    status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(-20)));
    status.conditions.as_mut().unwrap()[0].last_transition_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(-5)));
    let err = cpu_replicas(1, 50, &[p], &metrics(&[("a", 900)]), t(0)).unwrap_err();
    assert!(err.contains("pods might be unready"), "{err}");
}

#[test]
fn scale_down_waits_for_the_highest_recommendation_of_five_minutes() {
    let (up, down) = (default_scale_up(), default_scale_down());
    let mut h = History::default();
    // Load high at t=0 (recommend 6), low afterwards (recommend 2).
    assert_eq!(stabilize(6, 3, &mut h, &up, &down, t(0)), 6);
    assert_eq!(stabilize(2, 6, &mut h, &up, &down, t(15)), 6);
    assert_eq!(stabilize(2, 6, &mut h, &up, &down, t(299)), 6);
    // The 6 leaves the window after 300 s.
    assert_eq!(stabilize(2, 6, &mut h, &up, &down, t(301)), 2);
}

#[test]
fn scale_up_rate_is_max_of_four_pods_and_double() {
    let (up, down) = (default_scale_up(), default_scale_down());
    let h = History::default();
    // From 1: +4 beats ×2 → 5. From 10: ×2 beats +4 → 20 (clamped by max).
    assert_eq!(
        limit_rate(100, 1, (1, 100), &h, &up, &down, t(0)),
        (
            5,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
        )
    );
    assert_eq!(limit_rate(100, 10, (1, 100), &h, &up, &down, t(0)).0, 20);
    assert_eq!(
        limit_rate(100, 10, (1, 12), &h, &up, &down, t(0)),
        (
            12,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count"
        )
    );
    // A scale-up of +4 five seconds ago counts against this period: the
    // period started at 1 pod, so at most 5 now.
    let h = History {
        recommendations: vec![],
        scale_events: vec![(t(-5), 4)],
    };
    assert_eq!(limit_rate(100, 5, (1, 100), &h, &up, &down, t(0)).0, 5);
    // Down: 100 % per 15 s, bounded by minReplicas.
    let h = History::default();
    assert_eq!(
        limit_rate(1, 6, (2, 10), &h, &up, &down, t(0)),
        (
            2,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count"
        )
    );
    assert_eq!(
        limit_rate(3, 6, (2, 10), &h, &up, &down, t(0)),
        (
            3,
            "DesiredWithinRange",
            "the desired count is within the acceptable range"
        )
    );
}

#[test]
fn without_behavior_the_older_path_scales_up_to_twice_or_four() {
    // kubectl autoscale's HPA has no `spec.behavior`: from 1 pod the limit
    // is max(2 × 1, 4) = 4, not the behavior default's 1 + 4 = 5.
    assert_eq!(
        limit_without_behavior(9, 1, (1, 10)),
        (
            4,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
        )
    );
    // From 4: 8. From 5 with max 6: the max.
    assert_eq!(limit_without_behavior(9, 4, (1, 10)).0, 8);
    assert_eq!(
        limit_without_behavior(9, 5, (1, 6)),
        (
            6,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count"
        )
    );
    // Down: straight to the desired count, bounded by minReplicas only.
    assert_eq!(limit_without_behavior(1, 9, (1, 10)).0, 1);
    assert_eq!(
        limit_without_behavior(1, 9, (2, 10)),
        (
            2,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count"
        )
    );
    assert_eq!(
        limit_without_behavior(3, 3, (1, 10)),
        (
            3,
            "DesiredWithinRange",
            "the desired count is within the acceptable range"
        )
    );
}

#[test]
fn without_behavior_scale_down_still_waits_five_minutes() {
    let mut h = History {
        recommendations: vec![(t(-10), 3)],
        scale_events: vec![],
    };
    // Up at once: no window on the way up.
    assert_eq!(stabilize_without_behavior(6, &mut h, t(0)), 6);
    assert_eq!(stabilize_without_behavior(2, &mut h, t(15)), 6);
    assert_eq!(stabilize_without_behavior(2, &mut h, t(300)), 6);
    assert_eq!(stabilize_without_behavior(2, &mut h, t(301)), 2);
}

#[test]
fn terminal_pods_are_ignored() {
    // A Succeeded pod (a finished Job's, say) neither counts nor blocks.
    let done = pod("done", 1000, "Succeeded", false);
    let got = cpu_replicas(
        1,
        50,
        &[pod("a", 1000, "Running", true), done],
        &metrics(&[("a", 1000)]),
        t(0),
    )
    .map(|r| r.replicas);
    assert_eq!(got, Ok(2));
}
