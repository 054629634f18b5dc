//! The scheduler's plumbing: everything around the pure [`schedule`](super::schedule)
//! that turns it into a component of the cluster — kube-scheduler's
//! `scheduleOne` loop, its cache and its event handlers.
//!
//! ```text
//!  API server ──watch pods, nodes──▶ informers ──handlers──▶ scheduling queue
//!      ▲                               │ cache                   │ pop (priority, then FIFO)
//!      │                               ▼                         ▼
//!      │                           snapshot ◀── assume ── schedule(pod, snapshot)
//!      │                                                         │
//!      ├──── POST pods/{name}/binding ◀── bind (async) ◀─── fits │ doesn't fit
//!      └──── PodScheduled=False + FailedScheduling event ◀───────┘ → unschedulablePods
//! ```
//!
//! * **One pod informer, two roles.** Like kube-scheduler, we watch every
//!   pod that has not finished (`fieldSelector=status.phase!=Succeeded,
//!   status.phase!=Failed`) and split them in the event handlers: a pod
//!   with `spec.nodeName` counts against its node's resources (the cache);
//!   a pod without one, addressed to us (`spec.schedulerName:
//!   default-scheduler`) and not being deleted, goes into the queue. A
//!   scheduler that only wanted pending pods could watch with
//!   `fieldSelector=spec.nodeName=`, but then it could not see what the
//!   nodes already run.
//! * **One pod at a time.** Decisions are made one after another, each on
//!   a snapshot that includes every earlier decision: after choosing a node
//!   the pod is **assumed** onto it in the snapshot at once, before the
//!   binding is even sent. Binding is a network call and runs in its own
//!   task (upstream's binding cycle goroutine), so the next decision does
//!   not wait for it.
//! * **Why a pod went where it did** is recorded in the annotation
//!   [`DECISION_ANNOTATION`] — ours, not Kubernetes'; kube-scheduler keeps
//!   its scores to its log — and in the Events. The annotation travels in
//!   the Binding's metadata: the API server copies a Binding's annotations
//!   onto the pod, so recording it costs no extra request.
//! * **Retry on change.** A pod that fits nowhere is parked in the queue's
//!   unschedulablePods and retried when a node is added or changes in a way
//!   that matters (allocatable, labels, taints, cordon, readiness), or a
//!   scheduled pod is deleted ([`super::queue`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::queue::{Popped, SchedulingQueue};
use super::{Decision, Scheduler, Snapshot};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{EventHandler, Informer, key_of, ref_from_key};

/// The name pods ask for in `spec.schedulerName` (the API server's
/// default), and the `source.component` of our Events, as upstream.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Where the decision is recorded on the pod. This annotation is the
/// workbook's own; Kubernetes has nothing like it.
pub const DECISION_ANNOTATION: &str = "labs.workbook/scheduling-decision";

/// The whole per-node table goes into the annotation only up to this many
/// examined nodes; beyond, the summary and the top nodes (a table of
/// 420 nodes × 10,000 pods would weigh hundreds of megabytes).
pub const EXPLAIN_MAX_NODES: usize = 16;

/// Bindings in flight at once (upstream has no fixed limit: one goroutine
/// per pod; a bound keeps memory in check when 10,000 pods arrive).
pub const MAX_CONCURRENT_BINDS: usize = 64;

/// What the scheduler did, for the labs' narration.
#[derive(Debug, Clone)]
pub enum Step {
    /// A node was chosen (the binding follows).
    Scheduled { decision: Decision },
    /// No node fits; the pod waits for the cluster to change.
    Unschedulable { decision: Decision },
    /// The API server refused the binding.
    BindFailed { pod: String, error: String },
}

#[derive(Default)]
pub struct Options {
    /// Seeds the tie-breaking random choice (`labs cluster --seed`).
    pub seed: u64,
    pub steps: Option<mpsc::UnboundedSender<Step>>,
}

/// The scheduler's view beyond the informer caches.
#[derive(Default)]
struct Cache {
    /// Nodes or scheduled pods changed: rebuild the snapshot before the
    /// next decision.
    dirty: bool,
    /// Pods we chose a node for whose binding the informer has not shown
    /// yet, with that node. The snapshot counts them all the same.
    assumed: HashMap<String, (Arc<Pod>, String)>,
}

struct Shared {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    queue: SchedulingQueue,
    cache: Mutex<Cache>,
    recorder: Mutex<Option<EventRecorder>>,
    steps: Option<mpsc::UnboundedSender<Step>>,
}

/// kube-scheduler with one profile, `default-scheduler`.
pub struct DefaultScheduler {
    shared: Arc<Shared>,
    pod_informer: Informer<Pod>,
    node_informer: Informer<Node>,
    seed: u64,
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

// ANCHOR: responsible
/// Should this pod wait in our queue? Unscheduled, addressed to us, not
/// being deleted, and without scheduling gates (the `SchedulingGates`
/// PreEnqueue plugin keeps gated pods out of the queue).
fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    node_name(pod).is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(SCHEDULER_NAME)
            == SCHEDULER_NAME
        && spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_none_or(Vec::is_empty)
}
// ANCHOR_END: responsible

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl DefaultScheduler {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()))
            .with_field_selector("status.phase!=Succeeded,status.phase!=Failed");
        let node_informer = Informer::new(Api::<Node>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            pods: pod_informer.store(),
            nodes: node_informer.store(),
            queue: SchedulingQueue::new(),
            cache: Mutex::new(Cache {
                dirty: true,
                ..Cache::default()
            }),
            recorder: Mutex::new(None),
            steps: options.steps,
        });
        DefaultScheduler {
            shared,
            pod_informer,
            node_informer,
            seed: options.seed,
        }
    }

    // ANCHOR: run
    /// Runs until `shutdown`: informers first, then — once both caches
    /// hold a full list — the scheduling loop.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            SCHEDULER_NAME,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
            tokio::spawn(
                self.node_informer
                    .run(Arc::new(NodeEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
        ];
        let synced = async {
            shared.pods.wait_until_ready().await?;
            shared.nodes.wait_until_ready().await
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            result = synced => {
                result.context("informer stopped before its first list")?;
                tracing::info!("default-scheduler: caches synced; scheduling");
                let queue_shared = Arc::clone(&shared);
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    queue_shared.queue.close();
                });
                shared.schedule_loop(Scheduler::new(self.seed)).await;
            }
        }
        shared.queue.close();
        for informer in informers {
            let _ = informer.await;
        }
        Ok(())
    }
    // ANCHOR_END: run
}

// ANCHOR: handlers
/// Pod events (upstream `addPodToCache`/`addPodToSchedulingQueue` and
/// friends): assigned pods change the cache, pending pods the queue.
struct PodEvents(Arc<Shared>);

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, pod: &Pod) {
        let s = &self.0;
        let key = key_of(pod);
        if let Some(node) = node_name(pod) {
            s.assigned_pod_seen(&key, node);
        } else if wants_scheduling(pod) {
            s.queue.add(&key, priority(pod));
        }
    }

    fn on_update(&self, old: &Pod, pod: &Pod) {
        let s = &self.0;
        if old.metadata.resource_version == pod.metadata.resource_version {
            return;
        }
        let key = key_of(pod);
        if let Some(node) = node_name(pod) {
            if node_name(old).is_none() {
                // Bound: by us (the informer confirms an assumed pod) or by
                // someone else. Either way it leaves the queue.
                s.queue.delete(&key);
                s.assigned_pod_seen(&key, node);
            } else if old.metadata.deletion_timestamp != pod.metadata.deletion_timestamp
                || old.metadata.labels != pod.metadata.labels
                || old.metadata.owner_references != pod.metadata.owner_references
            {
                // Terminating pods stop counting for spreading; labels and
                // owners decide the spread group.
                s.mark_dirty();
            }
        } else if !wants_scheduling(pod) {
            s.queue.delete(&key);
        } else {
            s.queue.add(&key, priority(pod));
            // Only a change of the spec or labels can change the answer;
            // our own status and annotation writes must not send the pod
            // round again (upstream's `isPodUpdated` ignores status too).
            if old.spec != pod.spec || old.metadata.labels != pod.metadata.labels {
                s.queue.update(&key);
            }
        }
    }

    fn on_delete(&self, pod: &Pod) {
        let s = &self.0;
        let key = key_of(pod);
        s.queue.delete(&key);
        let assumed = s.cache().assumed.remove(&key).is_some();
        if node_name(pod).is_some() || assumed {
            // Its resources are free now: parked pods may fit.
            s.mark_dirty();
            s.queue.move_all_to_active_or_backoff();
        }
    }
}

/// Node events: any change the filters or scores could see rebuilds the
/// snapshot and gives parked pods another chance. A periodic status report
/// (only `lastHeartbeatTime` moved) changes nothing and is ignored, or 1,000
/// nodes reporting (every 5 min now, every 10 s before node Leases) would
/// keep every pending pod spinning.
struct NodeEvents(Arc<Shared>);

impl EventHandler<Node> for NodeEvents {
    fn on_add(&self, _node: &Node) {
        self.0.mark_dirty();
        self.0.queue.move_all_to_active_or_backoff();
    }

    fn on_update(&self, old: &Node, node: &Node) {
        if scheduling_properties(old) != scheduling_properties(node) {
            self.0.mark_dirty();
            self.0.queue.move_all_to_active_or_backoff();
        }
    }

    fn on_delete(&self, _node: &Node) {
        self.0.mark_dirty();
    }
}

/// What of a node the scheduler looks at (upstream
/// `nodeSchedulingPropertiesChange`): labels, cordon, taints, allocatable
/// and the `Ready` condition's status.
fn scheduling_properties(node: &Node) -> impl PartialEq + '_ {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    (
        &node.metadata.labels,
        spec.and_then(|s| s.unschedulable),
        spec.and_then(|s| s.taints.as_ref()),
        status.and_then(|s| s.allocatable.as_ref()),
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str()),
    )
}
// ANCHOR_END: handlers

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_dirty(&self) {
        self.cache().dirty = true;
    }

    /// A pod with a node appeared in the informer. If it is one we assumed
    /// onto that node, the snapshot already counts it: nothing to do.
    fn assigned_pod_seen(&self, key: &str, node: &str) {
        let mut cache = self.cache();
        match cache.assumed.remove(key) {
            Some((_, assumed_node)) if assumed_node == node => {}
            _ => cache.dirty = true,
        }
    }

    fn step(&self, step: Step) {
        if let Some(tx) = &self.steps {
            let _ = tx.send(step);
        }
    }

    fn record(&self, pod: &Pod, type_: &'static str, reason: &str, message: String) {
        if let Some(recorder) = &*self.recorder.lock().unwrap_or_else(|e| e.into_inner()) {
            recorder.record(pod, type_, reason, message);
        }
    }

    /// The snapshot from the caches: nodes by name, every assigned pod,
    /// and the assumed pods the informer has not shown bound yet
    /// (upstream's `Cache.UpdateSnapshot`, which is incremental; we rebuild
    /// only when something changed, which is rare while pods are placed).
    fn build_snapshot(&self) -> Snapshot {
        let assumed: Vec<(Arc<Pod>, String)> = {
            let mut cache = self.cache();
            cache.dirty = false;
            cache.assumed.values().cloned().collect()
        };
        let mut nodes: Vec<Node> = self.nodes.state().iter().map(|n| (**n).clone()).collect();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let pods = self.pods.state();
        let mut snapshot = Snapshot::new(&nodes, pods.iter().map(|p| &**p));
        for (pod, node) in assumed {
            let bound = self
                .pods
                .get(&ref_from_key(&key_of(&*pod)))
                .is_some_and(|p| node_name(&p).is_some());
            if !bound {
                snapshot.add_pod(&pod, &node);
            }
        }
        snapshot
    }

    // ANCHOR: schedule_one
    /// kube-scheduler's `scheduleOne`, forever: pop a pod, decide, assume,
    /// bind in the background — or record why it fits nowhere.
    async fn schedule_loop(self: &Arc<Self>, mut scheduler: Scheduler) {
        let mut snapshot = Snapshot::default();
        let binds = Arc::new(Semaphore::new(MAX_CONCURRENT_BINDS));
        while let Some(popped) = self.queue.pop().await {
            // The newest version of the pod, from the cache.
            let pod = match self.pods.get(&ref_from_key(&popped.key)) {
                Some(pod) if wants_scheduling(&pod) => pod,
                _ => {
                    self.queue.delete(&popped.key);
                    continue;
                }
            };
            if self.cache().dirty {
                snapshot = self.build_snapshot();
            }
            let decision = scheduler.schedule(&pod, &snapshot);
            match decision.node().map(str::to_string) {
                Some(node) => {
                    // Assume: the next decision must see this pod on its node.
                    snapshot.add_pod(&pod, &node);
                    self.cache()
                        .assumed
                        .insert(popped.key.clone(), (Arc::clone(&pod), node.clone()));
                    self.step(Step::Scheduled {
                        decision: decision.clone(),
                    });
                    let Ok(permit) = Arc::clone(&binds).acquire_owned().await else {
                        break;
                    };
                    let shared = Arc::clone(self);
                    tokio::spawn(async move {
                        shared.bind(&pod, &node, &decision, &popped).await;
                        drop(permit);
                    });
                }
                None => {
                    self.queue.add_unschedulable(&popped.key, popped.cycle);
                    self.step(Step::Unschedulable {
                        decision: decision.clone(),
                    });
                    let shared = Arc::clone(self);
                    tokio::spawn(async move {
                        if let Err(err) = shared.record_unschedulable(&pod, &decision).await {
                            tracing::debug!(%err, "could not record the unschedulable pod");
                        }
                    });
                }
            }
        }
    }
    // ANCHOR_END: schedule_one

    // ANCHOR: bind
    /// The binding cycle: `POST pods/{name}/binding`, the decision riding
    /// along as an annotation. On success the `Scheduled` event; on failure
    /// the pod is forgotten from the snapshot and tried again after a
    /// backoff.
    async fn bind(&self, pod: &Pod, node: &str, decision: &Decision, popped: &Popped) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": name,
                "annotations": {DECISION_ANNOTATION: annotation(decision)},
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let result = api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await;
        match result {
            Ok(_) => {
                self.queue.done(&popped.key);
                self.record(
                    pod,
                    "Normal",
                    "Scheduled",
                    format!(
                        "Successfully assigned {}/{name} to {node} ({})",
                        ns,
                        how(decision)
                    ),
                );
            }
            Err(err) => {
                {
                    let mut cache = self.cache();
                    cache.assumed.remove(&popped.key);
                    cache.dirty = true;
                }
                let error = match &err {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                };
                self.step(Step::BindFailed {
                    pod: popped.key.clone(),
                    error: error.clone(),
                });
                match &err {
                    // Gone, or bound by someone else: nothing to retry.
                    kube::Error::Api(s) if s.is_not_found() || s.code == 409 => {
                        self.queue.delete(&popped.key)
                    }
                    _ => {
                        self.record(
                            pod,
                            "Warning",
                            "FailedScheduling",
                            format!("Binding rejected: {error}"),
                        );
                        // Back off, then try again (cycle 0: never park it).
                        self.queue.add_unschedulable(&popped.key, 0);
                    }
                }
            }
        }
    }
    // ANCHOR_END: bind

    // ANCHOR: unschedulable
    /// A pod that fits nowhere: the `PodScheduled=False` condition with the
    /// FitError message (kubectl shows it), the per-node table in our
    /// annotation, and a `FailedScheduling` Warning event on every attempt
    /// (the event recorder turns repeats into a count).
    async fn record_unschedulable(&self, pod: &Pod, decision: &Decision) -> anyhow::Result<()> {
        let message = decision.message().unwrap_or_default();
        self.record(pod, "Warning", "FailedScheduling", message.clone());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let text = annotation(decision);
        let annotated = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DECISION_ANNOTATION))
            == Some(&text);
        if !annotated {
            let patch = json!({"metadata": {"annotations": {DECISION_ANNOTATION: text}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        // Written only when it changes, as upstream's `updatePod`: the same
        // answer on every retry would otherwise rewrite the pod each time.
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if !unchanged {
            // Strategic merge: `conditions` merge by `type`, so the
            // kubelet's conditions (if any) stay.
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": crate::machinery::clock::now().to_string(),
            }]}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await?;
        }
        Ok(())
    }
    // ANCHOR_END: unschedulable
}

/// The annotation's text: the whole table for small clusters, else the
/// summary and the best nodes.
pub fn annotation(decision: &Decision) -> String {
    if decision.examined.len() <= EXPLAIN_MAX_NODES {
        return decision.explain();
    }
    let mut text = decision.summary();
    if let Ok(p) = &decision.result
        && p.top.len() > 1
    {
        let top: Vec<String> = p.top.iter().map(|(n, s)| format!("{n} {s}")).collect();
        text.push_str(&format!("\ntop: {}", top.join(", ")));
    }
    text
}

/// The part of the summary in brackets: `2/3 nodes feasible; score 450`.
fn how(decision: &Decision) -> String {
    let summary = decision.summary();
    match (summary.find('('), summary.rfind(')')) {
        (Some(a), Some(b)) if a < b => summary[a + 1..b].to_string(),
        _ => summary,
    }
}
