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
//! The decisions are pure functions ([`observe`], [`desired_taints`],
//! [`eviction_delay`], [`not_ready_conditions`]); [`NodeLifecycleController`] is the plumbing, built
//! on [`super::runtime`]: a work queue of node names, each node
//! re-examined every `--node-monitor-period` (5 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{CacheOnly, EnqueueKey, EventHandler, Informer, key_of};
use crate::machinery::wellknown::{
    NODE_LEASE_NAMESPACE, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
    tolerates,
};
use crate::machinery::workqueue::{Action, WorkQueue, run_workers};

/// The component name on the Events (upstream's node controller writes as
/// `node-controller`).
pub const COMPONENT: &str = "node-controller";

/// `--node-monitor-grace-period`: how long a node may stay silent.
pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(40);
/// `--node-monitor-period`: how often every node is looked at.
pub const DEFAULT_NODE_MONITOR_PERIOD: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Options {
    pub node_monitor_grace_period: Duration,
    pub node_monitor_period: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_monitor_grace_period: DEFAULT_NODE_MONITOR_GRACE_PERIOD,
            node_monitor_period: DEFAULT_NODE_MONITOR_PERIOD,
        }
    }
}

// ---------------------------------------------------------------------------
// The decisions

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

// ---------------------------------------------------------------------------
// The plumbing

struct Shared {
    client: kube::Client,
    nodes: Store<Node>,
    /// The node Leases in `kube-node-lease` (read, never written: only the
    /// kubelets renew them).
    leases: Store<Lease>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    options: Options,
    /// Per node.
    health: Mutex<HashMap<String, Option<Health>>>,
    /// Per pod key: when we first saw it on a NoExecute-tainted node.
    tainted_since: Mutex<HashMap<String, Instant>>,
    recorder: Mutex<Option<EventRecorder>>,
}

pub struct NodeLifecycleController {
    shared: Arc<Shared>,
    node_informer: Informer<Node>,
    lease_informer: Informer<Lease>,
    pod_informer: Informer<Pod>,
}

impl NodeLifecycleController {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let node_informer = Informer::new(Api::<Node>::all(client.clone()));
        let lease_informer = Informer::new(Api::<Lease>::namespaced(
            client.clone(),
            NODE_LEASE_NAMESPACE,
        ));
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            nodes: node_informer.store(),
            leases: lease_informer.store(),
            pods: pod_informer.store(),
            queue: WorkQueue::new(),
            options,
            health: Mutex::new(HashMap::new()),
            tainted_since: Mutex::new(HashMap::new()),
            recorder: Mutex::new(None),
        });
        NodeLifecycleController {
            shared,
            node_informer,
            lease_informer,
            pod_informer,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(self.node_informer.run(
                Arc::new(EnqueueKey(Arc::clone(&shared.queue))),
                shutdown.clone(),
            )),
            // No handler: like upstream's lease lister, the Leases are only
            // read when a node is looked at (every monitor period anyway).
            tokio::spawn(
                self.lease_informer
                    .run(Arc::new(CacheOnly), shutdown.clone()),
            ),
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
        ];
        let synced = async {
            shared.nodes.wait_until_ready().await?;
            shared.leases.wait_until_ready().await?;
            shared.pods.wait_until_ready().await
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            result = synced => {
                result.context("informer stopped before its first list")?;
                let queue = Arc::clone(&shared.queue);
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    queue.shut_down();
                });
                let workers = Arc::clone(&shared);
                run_workers(Arc::clone(&shared.queue), 1, move |key: String| {
                    let shared = Arc::clone(&workers);
                    async move { shared.sync(&key).await }
                })
                .await;
            }
        }
        shared.queue.shut_down();
        for informer in informers {
            let _ = informer.await;
        }
        Ok(())
    }
}

/// A pod bound to a node (or newly terminating there) may need evicting,
/// or may stop needing it: look at its node again.
struct PodEvents(Arc<Shared>);

impl PodEvents {
    fn node_of(&self, pod: &Pod) {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && !node.is_empty()
        {
            self.0.queue.add(node.to_string());
        }
    }
}

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, pod: &Pod) {
        self.node_of(pod);
    }
    fn on_update(&self, old: &Pod, pod: &Pod) {
        if old.spec.as_ref().and_then(|s| s.node_name.as_ref())
            != pod.spec.as_ref().and_then(|s| s.node_name.as_ref())
        {
            self.node_of(pod);
        }
    }
    fn on_delete(&self, pod: &Pod) {
        self.0
            .tainted_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key_of(pod));
    }
}

impl Shared {
    fn record<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        if let Some(recorder) = &*self.recorder.lock().unwrap_or_else(|e| e.into_inner()) {
            recorder.record(obj, type_, reason, message);
        }
    }

    // ANCHOR: sync
    /// One look at one node: health, taints, evictions. Always asks to be
    /// run again after the monitor period, since silence produces no event.
    async fn sync(&self, name: &str) -> anyhow::Result<Action> {
        let Some(node) = self
            .nodes
            .get(&kube::runtime::reflector::ObjectRef::new(name))
        else {
            self.health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            return Ok(Action::AwaitChange);
        };
        let mut node = (*node).clone();
        let api: Api<Node> = Api::all(self.client.clone());
        let now = Instant::now();
        // The cluster's clock, not the machine's: on a lab's paused time the
        // two disagree, and the taints' `timeAdded` must agree with the
        // kubelets' heartbeats.
        let wall = Time(crate::machinery::clock::now());

        // 1. Health.
        let lease = self
            .leases
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(NODE_LEASE_NAMESPACE));
        let expired = {
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            let h = health.entry(name.to_string()).or_default();
            observe(
                &node,
                lease.as_deref(),
                h,
                now,
                self.options.node_monitor_grace_period,
            )
        };
        if expired {
            let never = ready_condition(&node).is_none();
            let (reason, message) = if never {
                (
                    "NodeStatusNeverUpdated",
                    "Kubelet never posted node status.",
                )
            } else {
                ("NodeStatusUnknown", "Kubelet stopped posting node status.")
            };
            // Every condition the kubelet reports goes Unknown; the last
            // heartbeat stays as it was.
            let mut conditions = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if never {
                conditions.push(NodeCondition {
                    type_: "Ready".into(),
                    ..NodeCondition::default()
                });
            }
            for c in &mut conditions {
                c.status = "Unknown".into();
                c.reason = Some(reason.into());
                c.message = Some(message.into());
                c.last_transition_time = Some(wall.clone());
            }
            let patch = json!({"status": {"conditions": conditions}});
            node = api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .context("marking the node Unknown")?;
            self.record(
                &node,
                "Normal",
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }

        // 2. Taints.
        let taints = desired_taints(&node, &wall);
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if taints != current {
            let had_taint = current.iter().any(managed);
            // The resourceVersion makes the write conditional: if someone
            // changed the taints meanwhile, we fail and look again.
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            node = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .context("updating the node's taints")?;
            if had_taint && ready_status(&node) == Some("True") {
                self.record(
                    &node,
                    "Normal",
                    "NodeReady",
                    format!("Node {name} status is now: NodeReady"),
                );
            }
        }

        // 3. Pods not ready.
        if ready_status(&node).is_some_and(|s| s != "True") {
            self.mark_pods_not_ready(&node, &wall).await?;
        }

        // 4. Evictions.
        let next = self.evict(&node, now).await?;
        let period = self.options.node_monitor_period;
        Ok(Action::RequeueAfter(next.map_or(period, |d| d.min(period))))
    }
    // ANCHOR_END: sync

    /// Marks the node's pods that still say `Ready=True` as not ready, with
    /// a `NodeNotReady` event on each.
    async fn mark_pods_not_ready(&self, node: &Node, now: &Time) -> anyhow::Result<()> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let pods = self
            .pods
            .state_filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name));
        for pod in pods {
            let Some(conditions) = not_ready_conditions(&pod, now) else {
                continue;
            };
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            // Conditional on the version we read: if our cache is behind
            // (we marked it a moment ago, or it changed), the write fails
            // with a conflict and the next look decides again.
            let patch = json!({
                "metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conditions},
            });
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => self.record(
                    &*pod,
                    "Warning",
                    "NodeNotReady",
                    "Node is not ready".to_string(),
                ),
                Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
                Err(e) => return Err(e).context("marking a pod not ready"),
            }
        }
        Ok(())
    }

    /// Deletes the pods whose toleration ran out; returns when the next one
    /// will.
    async fn evict(&self, node: &Node, now: Instant) -> anyhow::Result<Option<Duration>> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let pods = self.pods.state_filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name)
                && p.metadata.deletion_timestamp.is_none()
        });
        let mut next: Option<Duration> = None;
        for pod in pods {
            let key = key_of(&*pod);
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let delay = eviction_delay(&tolerations, &taints);
            let due = {
                let mut since = self.tainted_since.lock().unwrap_or_else(|e| e.into_inner());
                match delay {
                    Eviction::Never => {
                        since.remove(&key);
                        None
                    }
                    Eviction::Now => Some(Duration::ZERO),
                    Eviction::After(d) => {
                        let start = *since.entry(key.clone()).or_insert(now);
                        Some((start + d).saturating_duration_since(now))
                    }
                }
            };
            match due {
                Some(d) if d.is_zero() => {
                    let ns = pod.metadata.namespace.clone().unwrap_or_default();
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    self.record(
                        &*pod,
                        "Normal",
                        "TaintManagerEviction",
                        format!("Marking for deletion Pod {ns}/{pod_name}"),
                    );
                    let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                    match api.delete(&pod_name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.is_not_found() => {}
                        Err(e) => return Err(e).context("evicting a pod"),
                    }
                }
                Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                None => {}
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

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
