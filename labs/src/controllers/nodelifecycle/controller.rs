//! The node lifecycle controller's plumbing: informers on Nodes, their
//! Leases and Pods, a work queue of node names, and a sync that feeds the
//! decisions of [`super`] from the cache and carries them out through the
//! API server (mark the node `Unknown`, write its taints, mark its pods not
//! ready, evict them), with an Event for each.
//!
//! This mirrors the API calls of
//! `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! (`monitorNodeHealth`, `processTaintBaseEviction`), the pod handling of
//! `pkg/controller/util/node/controller_utils.go` (`MarkPodsNotReady`) and
//! the taint eviction controller's deletions
//! (`pkg/controller/tainteviction/taint_eviction.go`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Eviction, Health, desired_taints, eviction_delay, managed, not_ready_conditions, observe,
    ready_condition, ready_status,
};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{CacheOnly, EnqueueKey, EventHandler, Informer, key_of};
use crate::machinery::wellknown::NODE_LEASE_NAMESPACE;
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
