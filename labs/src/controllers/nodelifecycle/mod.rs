//! The node lifecycle controller: notices nodes that stopped reporting,
//! marks them, taints them, and evicts their pods.
//!
//! Nobody tells the control plane that a machine died: it simply stops
//! hearing from it. Each kubelet reports regularly (its heartbeat), and
//! this controller (`pkg/controller/nodelifecycle` in
//! kube-controller-manager) watches for silence:
//!
//! 1. **Health.** A node whose heartbeat has not moved for
//!    `--node-monitor-grace-period` (40 s upstream) gets its `Ready`
//!    condition set to `Unknown`, reason `NodeStatusUnknown`, "Kubelet
//!    stopped posting node status.", and a `NodeNotReady` event. Two things
//!    count as a heartbeat (upstream's `tryUpdateNodeHealth`): the node's
//!    **Lease** `kube-node-lease/<node>` getting a newer `spec.renewTime`
//!    (the kubelet renews it every 10 s, since Kubernetes 1.17), and the
//!    `Ready` condition's `lastHeartbeatTime` moving (the kubelet writes
//!    the node status when it changes, and at least every 5 minutes). The
//!    Lease is the cheap one: a few hundred bytes, against a node status of
//!    kilobytes that every node watcher receives again.
//!    As upstream, the controller does not compare the heartbeat with its
//!    own clock (the two machines' clocks may disagree): it remembers *when
//!    it saw the heartbeat change* (`probeTimestamp`) and measures silence
//!    from there.
//! 2. **Taints.** The `Ready` condition is turned into taints, so that the
//!    scheduler and the eviction logic only have to look at taints:
//!    `Ready=Unknown` → `node.kubernetes.io/unreachable`, `Ready=False` →
//!    `node.kubernetes.io/not-ready`, each with effect `NoSchedule` (no new
//!    pods) and `NoExecute` (running pods must go); a cordoned node gets
//!    `node.kubernetes.io/unschedulable:NoSchedule`. When the heartbeats
//!    come back (`Ready=True`) the taints are removed.
//! 3. **Eviction** (upstream's separate taint-eviction-controller, once the
//!    "NoExecuteTaintManager"). A pod on a node with a `NoExecute` taint it
//!    does not tolerate is deleted at once; one that tolerates it for
//!    `tolerationSeconds` is deleted that long after the taint was seen.
//!    Every pod gets such tolerations — not-ready and unreachable, 300 s —
//!    from the API server's DefaultTolerationSeconds admission plugin
//!    ([`crate::apiserver::defaults::default_toleration_seconds`]), which is
//!    why a dead node's pods move after five minutes and not at once. Each
//!    eviction is a `TaintManagerEviction` event "Marking for deletion Pod
//!    default/web-x". The ReplicaSet controller then sees a pod missing
//!    and creates a replacement, which the scheduler places on a healthy
//!    node.
//!
//! 4. **Pods not ready** (upstream's `MarkPodsNotReady`). The moment a node
//!    stops being `Ready`, the pods on it are marked `Ready=False`, with a
//!    `NodeNotReady` warning event "Node is not ready" on each — long
//!    before they are evicted. Nobody on the node can say whether they
//!    still serve, so they stop counting as ready: a Deployment shows 4/6,
//!    and a Service stops sending them traffic. Upstream marks them once,
//!    when the node's `Ready` leaves `True` (and retries on failure); we
//!    mark, on every look at a node that is not `Ready`, the pods that still
//!    say `Ready=True` — the same effect, level-triggered. A kubelet that
//!    comes back writes its pods' real readiness again.
//!
//! Left out: zone-aware eviction rate limiting (upstream
//! slows evictions down when a whole zone looks unhealthy, since that is
//! more likely the network than the nodes), and the `DisruptionTarget` pod
//! condition set before an eviction.
//!
//! The decisions are pure functions, in this file, with their tests:
//! [`observe`] (upstream's `tryUpdateNodeHealth`), [`desired_taints`]
//! (`doNoScheduleTaintingPass` and `doNoExecuteTaintingPass`),
//! [`eviction_delay`] (the taint eviction controller's
//! `getMinTolerationTime`) and [`not_ready_conditions`] (`MarkPodsNotReady`).
//! [`controller::NodeLifecycleController`] is the plumbing, built on
//! [`crate::machinery::workqueue`]: a work queue of node names, each node
//! re-examined every `--node-monitor-period` (5 s).

pub mod controller;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use tokio::time::Instant;

use crate::machinery::wellknown::{
    TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE, tolerates,
};

/// What the controller remembers about a node's heartbeat (upstream's
/// `nodeHealthData`).
#[derive(Clone, Debug)]
pub struct Health {
    /// The last heartbeat value seen (`lastHeartbeatTime`, as text).
    pub heartbeat: Option<String>,
    /// The newest `renewTime` seen on the node's Lease.
    pub lease_renew_time: Option<MicroTime>,
    /// When, on our clock, it last changed.
    pub probe_timestamp: Instant,
}

/// The node's `Ready` condition status (`True`, `False`, `Unknown`), if any.
pub fn ready_status(node: &Node) -> Option<&str> {
    ready_condition(node).map(|c| c.status.as_str())
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

// ANCHOR: observe
/// Updates `health` with what the node and its Lease show now and says
/// whether its grace period is over: no heartbeat for longer than `grace`
/// (on our clock) and the node does not already say `Unknown`. A heartbeat
/// is a new `lastHeartbeatTime` on the `Ready` condition, or a Lease
/// `renewTime` newer than the last one seen.
pub fn observe(
    node: &Node,
    lease: Option<&Lease>,
    health: &mut Option<Health>,
    now: Instant,
    grace: Duration,
) -> bool {
    let heartbeat = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    let renew_time = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.clone());
    // First sight: the silence starts now.
    let h = health.get_or_insert_with(|| Health {
        heartbeat: heartbeat.clone(),
        lease_renew_time: renew_time.clone(),
        probe_timestamp: now,
    });
    if h.heartbeat != heartbeat {
        h.heartbeat = heartbeat;
        h.probe_timestamp = now;
    }
    if let Some(renewed) = renew_time
        && h.lease_renew_time
            .as_ref()
            .is_none_or(|seen| seen.0 < renewed.0)
    {
        h.lease_renew_time = Some(renewed);
        h.probe_timestamp = now;
    }
    now.duration_since(h.probe_timestamp) > grace && ready_status(node) != Some("Unknown")
}
// ANCHOR_END: observe

/// Whether a taint is one this controller manages (and may remove).
fn managed(taint: &Taint) -> bool {
    matches!(
        taint.key.as_str(),
        TAINT_NODE_NOT_READY | TAINT_NODE_UNREACHABLE | TAINT_NODE_UNSCHEDULABLE
    )
}

// ANCHOR: desired_taints
/// The node's taints as they should be: the ones others put there kept,
/// ours derived from the `Ready` condition and the cordon. A taint that
/// stays keeps its `timeAdded`; a new `NoExecute` taint is stamped `now`.
pub fn desired_taints(node: &Node, now: &Time) -> Vec<Taint> {
    let spec = node.spec.as_ref();
    let current: Vec<Taint> = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    match ready_status(node) {
        Some("True") => {}
        Some("False") => wanted.extend([
            (TAINT_NODE_NOT_READY, "NoSchedule"),
            (TAINT_NODE_NOT_READY, "NoExecute"),
        ]),
        // A node that never reported has no Ready condition: no taint
        // until the grace period makes it Unknown.
        None => {}
        Some(_) => wanted.extend([
            (TAINT_NODE_UNREACHABLE, "NoSchedule"),
            (TAINT_NODE_UNREACHABLE, "NoExecute"),
        ]),
    }
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        wanted.push((TAINT_NODE_UNSCHEDULABLE, "NoSchedule"));
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            taints.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: (effect == "NoExecute").then(|| now.clone()),
                value: None,
            });
        }
    }
    taints
}
// ANCHOR_END: desired_taints

/// When a pod on a node with these taints must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    Now,
    After(Duration),
    Never,
}

// ANCHOR: eviction_delay
/// The taint manager's rule (`getMinTolerationTime`): only `NoExecute`
/// taints count. One the pod does not tolerate: evict now. All tolerated:
/// after the shortest `tolerationSeconds` among the matching tolerations;
/// none of them limited: never.
pub fn eviction_delay(tolerations: &[Toleration], taints: &[Taint]) -> Eviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Eviction::Never;
    }
    let mut min: Option<i64> = None;
    for taint in no_execute {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        for t in matching {
            if let Some(s) = t.toleration_seconds {
                min = Some(min.map_or(s, |m| m.min(s)));
            }
        }
    }
    match min {
        None => Eviction::Never,
        Some(s) => Eviction::After(Duration::from_secs(s.max(0) as u64)),
    }
}
// ANCHOR_END: eviction_delay

// ANCHOR: not_ready_conditions
/// Upstream's `MarkPodsNotReady`, for one pod: if its `Ready` condition says
/// `True`, the conditions with `Ready` turned `False` (transition time
/// `now`); otherwise `None`, nothing to write.
pub fn not_ready_conditions(pod: &Pod, now: &Time) -> Option<Vec<PodCondition>> {
    let mut conditions = pod.status.as_ref()?.conditions.clone()?;
    let ready = conditions
        .iter_mut()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.status = "False".into();
    ready.last_transition_time = Some(now.clone());
    Some(conditions)
}
// ANCHOR_END: not_ready_conditions
#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn node(ready: Option<&str>, heartbeat: &str, taints: serde_json::Value) -> Node {
        let conditions = match ready {
            Some(s) => json!([{"type": "Ready", "status": s, "lastHeartbeatTime": heartbeat}]),
            None if heartbeat.is_empty() => json!([]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    const T0: &str = "2025-01-01T00:00:00Z";

    fn keys(taints: &[Taint]) -> Vec<String> {
        taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn silence_longer_than_the_grace_period_expires_the_node() {
        let grace = Duration::from_secs(40);
        let mut health = None;
        let n = node(Some("True"), "2025-01-01T00:00:00Z", json!([]));
        assert!(!observe(&n, None, &mut health, Instant::now(), grace));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(!observe(&n, None, &mut health, Instant::now(), grace));
        // A heartbeat at 40 s restarts the count.
        let n = node(Some("True"), "2025-01-01T00:00:40Z", json!([]));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!observe(&n, None, &mut health, Instant::now(), grace));
        tokio::time::advance(Duration::from_secs(41)).await;
        assert!(observe(&n, None, &mut health, Instant::now(), grace));
        // Once marked Unknown it is not marked again.
        let n = node(Some("Unknown"), "2025-01-01T00:00:40Z", json!([]));
        assert!(!observe(&n, None, &mut health, Instant::now(), grace));
    }

    fn lease(renew_time: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": renew_time},
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewed_lease_keeps_a_node_with_a_stale_status_healthy() {
        let grace = Duration::from_secs(40);
        let mut health = None;
        // The status is written once and never again (nothing changes),
        // but the Lease is renewed every 10 s: the node stays healthy.
        let n = node(Some("True"), T0, json!([]));
        for i in 0..30 {
            let l = lease(&format!(
                "2025-01-01T00:{:02}:{:02}.000000Z",
                i / 6,
                i % 6 * 10
            ));
            assert!(
                !observe(&n, Some(&l), &mut health, Instant::now(), grace),
                "renewal {i}"
            );
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        // The same renewTime again is no heartbeat; an older one neither.
        let last = lease("2025-01-01T00:04:50.000000Z");
        let older = lease("2025-01-01T00:01:00.000000Z");
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(!observe(
            &n,
            Some(&last),
            &mut health,
            Instant::now(),
            grace
        ));
        assert!(!observe(
            &n,
            Some(&older),
            &mut health,
            Instant::now(),
            grace
        ));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(observe(&n, Some(&last), &mut health, Instant::now(), grace));
    }

    #[tokio::test(start_paused = true)]
    async fn neither_lease_nor_status_marks_the_node_unknown_after_the_grace_period() {
        let grace = Duration::from_secs(40);
        let mut health = None;
        let n = node(Some("True"), T0, json!([]));
        let l = lease("2025-01-01T00:00:00.000000Z");
        assert!(!observe(&n, Some(&l), &mut health, Instant::now(), grace));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(!observe(&n, Some(&l), &mut health, Instant::now(), grace));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(observe(&n, Some(&l), &mut health, Instant::now(), grace));
        // A Lease that disappears is no heartbeat either.
        assert!(observe(&n, None, &mut health, Instant::now(), grace));
        // A renewal brings it back.
        let l = lease("2025-01-01T00:00:50.000000Z");
        assert!(!observe(&n, Some(&l), &mut health, Instant::now(), grace));
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let now = Time(Timestamp::now());
        let other = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        assert_eq!(
            keys(&desired_taints(
                &node(Some("Unknown"), T0, other.clone()),
                &now
            )),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(
            keys(&desired_taints(&node(Some("False"), T0, json!([])), &now)),
            [
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        let tainted = json!([
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"},
        ]);
        assert_eq!(
            keys(&desired_taints(&node(Some("True"), T0, tainted), &now)),
            ["dedicated:NoSchedule"]
        );
    }

    #[test]
    fn a_ready_pod_is_marked_not_ready_once() {
        let now = Time(Timestamp::from_second(1_800_000_000).unwrap());
        let pod = |ready: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "web-1"},
                "status": {"conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": ready, "lastTransitionTime": T0},
                ]},
            }))
            .unwrap()
        };
        let marked = not_ready_conditions(&pod("True"), &now).expect("a write");
        assert_eq!(marked[0].status, "True", "other conditions kept");
        assert_eq!(marked[1].status, "False");
        assert_eq!(marked[1].last_transition_time.as_ref(), Some(&now));
        assert_eq!(not_ready_conditions(&pod("False"), &now), None);
        assert_eq!(not_ready_conditions(&Pod::default(), &now), None);
    }

    #[test]
    fn eviction_waits_for_the_shortest_toleration() {
        let taint: Vec<Taint> = serde_json::from_value(json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        ]))
        .unwrap();
        let tol = |v: serde_json::Value| -> Vec<Toleration> { serde_json::from_value(v).unwrap() };
        assert_eq!(eviction_delay(&[], &taint), Eviction::Now);
        assert_eq!(
            eviction_delay(
                &tol(json!([
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"operator": "Exists", "tolerationSeconds": 60},
                ])),
                &taint
            ),
            Eviction::After(Duration::from_secs(60))
        );
        assert_eq!(
            eviction_delay(&tol(json!([{"operator": "Exists"}])), &taint),
            Eviction::Never
        );
        assert_eq!(eviction_delay(&[], &taint[1..]), Eviction::Never);
    }
}
