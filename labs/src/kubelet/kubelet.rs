//! The kubelet's plumbing: [`Kubelet`], one per node, generic over its
//! container runtime.
//!
//! It runs five kinds of task, all stopped by one shutdown token:
//!
//! * **node lease** (the heartbeat): every 10 s (a quarter of the lease's
//!   40 s duration) it writes a fresh `spec.renewTime` into the Lease
//!   `kube-node-lease/<node name>`, creating the Lease first if there is
//!   none. That tiny write is how the node lifecycle controller knows the
//!   node is alive (Kubernetes 1.17 and later; before, the heartbeat was a
//!   whole node status write every 10 s, far bigger in etcd and in every
//!   node watcher's stream).
//! * **node status**: registers the Node object, then every
//!   `node_status_update_frequency` (10 s) computes its conditions again,
//!   but writes them only when something changed or
//!   `node_status_report_frequency` (5 min) has passed since the last write.
//!   Each write moves the conditions' `lastHeartbeatTime`, which the
//!   controller also counts as a heartbeat.
//! * **pod watch**: lists and watches the pods with
//!   `spec.nodeName=<this node>` and hands each one to its pod worker.
//! * **PLEG** (pod lifecycle event generator): relists the runtime every
//!   second and wakes the worker of every pod whose containers changed —
//!   how the kubelet notices that a container exited.
//! * **pod workers**, one per pod: the loop of [`super`] around the pure
//!   [`sync_pod`]. Each worker does one thing at a time, as upstream's pod
//!   workers do, so two syncs of one pod never race.
//!
//! A kubelet that stops leaves its containers running (stopping the
//! kubelet service on a real node does too). A kubelet that starts
//! **adopts** what the runtime already runs for its pods: the first sync of
//! each pod sees the sandbox and containers in the runtime's lists, so
//! nothing is started twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Clock;
use super::runtime::{ContainerId, ContainerStatus, Runtime};
use crate::machinery::events::EventRecorder;

use super::{node_status::*, pod_workers::*, server::*};

use crate::machinery::node_api::NodeLogs;

/// The version `kubectl get nodes` shows.
pub const KUBELET_VERSION: &str = "v1.35.2-labs";

pub use crate::machinery::wellknown::NODE_LEASE_NAMESPACE;
/// The kubelet's default `nodeLeaseDurationSeconds`.
pub const NODE_LEASE_DURATION_SECONDS: i32 = 40;
/// The Lease is renewed every quarter of its duration (upstream's
/// `nodeLeaseRenewIntervalFraction`): 10 s for 40 s.
pub(super) const NODE_LEASE_RENEW_INTERVAL_FRACTION: f64 = 0.25;

/// A kubelet's settings (upstream: `KubeletConfiguration` and flags).
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    pub node_name: String,
    /// `--node-status-update-frequency`: how often the node status is
    /// computed (and written, if it changed).
    pub node_status_update_frequency: Duration,
    /// `nodeStatusReportFrequency`: how often an unchanged node status is
    /// written anyway (upstream: 5 min).
    pub node_status_report_frequency: Duration,
    /// `nodeLeaseDurationSeconds`: the node Lease's `leaseDurationSeconds`
    /// (40). The Lease is renewed every quarter of it.
    pub node_lease_duration_seconds: i32,
    /// How often the PLEG relists the runtime (upstream: 1 s).
    pub relist_period: Duration,
    /// The node's `InternalIP` and every pod's `hostIP`.
    pub host_ip: String,
    /// Capacity (= allocatable: we reserve nothing for the system).
    pub cpu: String,
    pub memory: String,
    pub max_pods: u32,
}

impl KubeletConfig {
    pub fn new(node_name: impl Into<String>) -> Self {
        KubeletConfig {
            node_name: node_name.into(),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(5 * 60),
            node_lease_duration_seconds: NODE_LEASE_DURATION_SECONDS,
            relist_period: Duration::from_secs(1),
            host_ip: "127.0.0.1".into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            max_pods: 110,
        }
    }

    /// How often the node Lease is renewed: 25% of its duration.
    pub fn node_lease_renew_interval(&self) -> Duration {
        Duration::from_secs(self.node_lease_duration_seconds.max(1) as u64)
            .mul_f64(NODE_LEASE_RENEW_INTERVAL_FRACTION)
    }
}

/// A running kubelet.
pub struct Kubelet {
    node_name: String,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    logs: Arc<dyn NodeLogs>,
    stats: Arc<dyn crate::machinery::node_api::NodeStats>,
}

/// What the kubelet's tasks share.
pub(super) struct Shared<R> {
    pub(super) client: kube::Client,
    pub(super) runtime: Arc<R>,
    pub(super) config: KubeletConfig,
    pub(super) clock: Clock,
    pub(super) events: EventRecorder,
    pub(super) shutdown: CancellationToken,
    /// Per pod UID: the worker's wake-up bell (the PLEG rings it).
    pub(super) bells: Mutex<HashMap<String, Arc<Notify>>>,
    /// Per `namespace/name`: which container instances exist, for logs.
    pub(super) log_index: Arc<Mutex<HashMap<String, PodLogIndex>>>,
    /// The images on this node (upstream asks the runtime's image service;
    /// ours remembers what it pulled).
    pub(super) images: Mutex<HashMap<String, super::runtime::ImageRef>>,
}

/// Which instance of each container `kubectl logs` reads.
#[derive(Clone, Debug, Default)]
pub(super) struct PodLogIndex {
    pub(super) containers: BTreeMap<String, LogTargets>,
}

/// A container's current and previous instance, and why it is waiting.
pub(super) type LogTargets = (Option<ContainerId>, Option<ContainerId>, Option<String>);

impl Kubelet {
    /// Registers the node and starts the kubelet's tasks. `runtime` may
    /// outlive the kubelet: a new kubelet on the same runtime adopts its
    /// containers.
    pub fn start<R: Runtime>(
        client: kube::Client,
        runtime: Arc<R>,
        config: KubeletConfig,
        clock: Clock,
    ) -> Kubelet {
        let shutdown = CancellationToken::new();
        let events = EventRecorder::new(client.clone(), "kubelet", shutdown.child_token());
        let log_index = Arc::new(Mutex::new(HashMap::new()));
        let shared = Arc::new(Shared {
            client,
            runtime: Arc::clone(&runtime),
            config: config.clone(),
            clock,
            events,
            shutdown: shutdown.clone(),
            bells: Mutex::new(HashMap::new()),
            log_index: Arc::clone(&log_index),
            images: Mutex::new(HashMap::new()),
        });
        let tasks = vec![
            tokio::spawn(node_status_loop(Arc::clone(&shared))),
            tokio::spawn(node_lease_loop(Arc::clone(&shared))),
            tokio::spawn(pleg(Arc::clone(&shared))),
            tokio::spawn(watch_pods(shared)),
        ];
        Kubelet {
            node_name: config.node_name,
            shutdown,
            tasks,
            stats: Arc::new(super::server::KubeletStats {
                runtime: Arc::clone(&runtime),
                log_index: Arc::clone(&log_index),
                clock,
                previous: Default::default(),
            }),
            logs: Arc::new(KubeletLogs { runtime, log_index }),
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The log endpoint to register with the API server
    /// ([`crate::apiserver::ApiServer::register_kubelet`]).
    pub fn logs(&self) -> Arc<dyn NodeLogs> {
        Arc::clone(&self.logs)
    }

    /// Its resource metrics endpoint, for the API server's metrics API.
    pub fn stats(&self) -> Arc<dyn crate::machinery::node_api::NodeStats> {
        Arc::clone(&self.stats)
    }

    /// Stops every task of the kubelet — heartbeats, watches, pod workers —
    /// and leaves the containers as they are.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The PLEG: relist the runtime every `relist_period`, and ring the bell of
/// each pod whose containers changed since the last relist.
pub(super) async fn pleg<R: Runtime>(s: Arc<Shared<R>>) {
    let mut last: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.config.relist_period) => {}
        }
        let mut now: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
        for c in s.runtime.list_containers().await {
            now.entry(c.pod_uid.clone()).or_default().push(c);
        }
        for list in now.values_mut() {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let bells = s.bells.lock().unwrap();
        for (uid, bell) in bells.iter() {
            if now.get(uid) != last.get(uid) {
                bell.notify_one();
            }
        }
        drop(bells);
        last = now;
    }
}

/// What a pod worker is told: the newest pod, and whether it is gone from
/// the API.
#[derive(Clone)]
pub(super) struct PodUpdate {
    pub(super) pod: Pod,
    pub(super) gone: bool,
}

/// Watches the pods bound to this node and feeds their workers.
pub(super) async fn watch_pods<R: Runtime>(s: Arc<Shared<R>>) {
    let pods: Api<Pod> = Api::all(s.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", s.config.node_name));
    let mut events = watcher::watcher(pods, config).boxed();
    let mut workers: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut tasks = Vec::new();
    let mut first_list = true;
    loop {
        let event = tokio::select! {
            _ = s.shutdown.cancelled() => break,
            e = events.next() => e,
        };
        let Some(event) = event else { break };
        let (pod, gone) = match event {
            Ok(watcher::Event::Apply(pod)) => (pod, false),
            Ok(watcher::Event::Delete(pod)) => (pod, true),
            Ok(watcher::Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(pod)) => {
                listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                (pod, false)
            }
            Ok(watcher::Event::InitDone) => {
                // Pods that vanished while the watch was down are gone.
                for (uid, tx) in &workers {
                    if !listed.contains(uid) {
                        tx.send_modify(|u| u.gone = true);
                    }
                }
                // After a (re)start: what runs for pods that are gone.
                if std::mem::take(&mut first_list) {
                    let known = listed.iter().chain(workers.keys()).cloned().collect();
                    tasks.push(tokio::spawn(super::housekeeping::remove_orphaned_pods(
                        Arc::clone(&s),
                        known,
                    )));
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        workers.retain(|_, tx| !tx.is_closed());
        match workers.get(&uid) {
            Some(tx) => {
                // Hand over the newest object, but wake the worker only for
                // a change it must act on: not for a status write (most
                // often its own, coming back through the watch).
                tx.send_if_modified(|u| {
                    let wake = gone != u.gone || differs_semantically(&u.pod, &pod);
                    *u = PodUpdate { pod, gone };
                    wake
                });
            }
            None if gone => {}
            None => {
                let (tx, rx) = watch::channel(PodUpdate { pod, gone });
                let bell = Arc::new(Notify::new());
                s.bells
                    .lock()
                    .unwrap()
                    .insert(uid.clone(), Arc::clone(&bell));
                tasks.push(tokio::spawn(pod_worker(Arc::clone(&s), rx, bell)));
                workers.insert(uid, tx);
            }
        }
    }
    // A worker waiting for its next sync has returned already. One in the
    // middle of an action (a container that takes long to start) stops
    // where it is, as it would if the kubelet process were killed: the
    // runtime keeps what it has, and the next kubelet adopts it.
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
}

/// Does `new` differ from `old` in something other than its status (and
/// bookkeeping such as `resourceVersion`)? Upstream's pod config
/// (`checkAndUpdatePod` in `pkg/kubelet/config/config.go`) hands the pod
/// workers an update only then. Without this, each status the worker wrote
/// woke it once more: an extra sync per write, and during a back-off an
/// extra `BackOff` event each time.
pub(super) fn differs_semantically(old: &Pod, new: &Pod) -> bool {
    let (o, n) = (&old.metadata, &new.metadata);
    old.spec != new.spec
        || o.labels != n.labels
        || o.annotations != n.annotations
        || o.deletion_timestamp != n.deletion_timestamp
        || o.deletion_grace_period_seconds != n.deletion_grace_period_seconds
        || o.owner_references != n.owner_references
}

pub(super) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

pub(super) fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// A tokio instant for a timestamp of the kubelet's clock.
pub(super) fn instant_of(clock: &Clock, at: Timestamp) -> tokio::time::Instant {
    let ahead = at.duration_since(clock.now());
    let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, PodStatus};
    use serde_json::json;

    use super::*;

    #[test]
    fn the_node_lease_is_held_by_its_node_and_owned_by_it() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        // Created before the Node is registered: no owner yet.
        let first = node_lease(None, "node-1", None, 40, t0);
        let v = serde_json::to_value(&first).unwrap();
        assert_eq!(v["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(v["spec"]["holderIdentity"], "node-1");
        assert_eq!(v["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(v["spec"]["renewTime"], "2027-01-15T08:00:00.000000Z");
        assert!(v["metadata"].get("ownerReferences").is_none());
        // A renewal moves renewTime and adds the owner once it is known.
        let t1 = t0 + Duration::from_millis(10_250);
        let renewed = node_lease(Some(&first), "node-1", Some("uid-1"), 40, t1);
        let v = serde_json::to_value(&renewed).unwrap();
        assert_eq!(v["spec"]["renewTime"], "2027-01-15T08:00:10.250000Z");
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "uid-1"}])
        );
        let again = node_lease(Some(&renewed), "node-1", Some("uid-2"), 40, t1);
        assert_eq!(
            again.metadata.owner_references,
            renewed.metadata.owner_references
        );
    }

    #[test]
    fn the_status_is_written_only_when_it_changed() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let written: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-1"},
            "status": {"conditions": node_conditions(None, t0)},
        }))
        .unwrap();
        // Ten seconds later: only the heartbeat times differ.
        let t1 = t0 + Duration::from_secs(10);
        assert!(!node_status_changed(
            Some(&written),
            &node_conditions(Some(&written), t1)
        ));
        // The controller marked the node Unknown: the kubelet writes again.
        let mut unknown = written.clone();
        for c in unknown
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
        {
            c.status = "Unknown".into();
        }
        assert!(node_status_changed(
            Some(&unknown),
            &node_conditions(Some(&unknown), t1)
        ));
        assert!(node_status_changed(None, &node_conditions(None, t1)));
    }

    #[test]
    fn only_non_status_changes_wake_a_pod_worker() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "resourceVersion": "5"},
            "spec": {"containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
        }))
        .unwrap();
        // Its own status write, back through the watch: no.
        let mut status_only = pod.clone();
        status_only.metadata.resource_version = Some("6".into());
        status_only.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert!(!differs_semantically(&pod, &status_only));
        // A new image, or a deletion: yes.
        let mut new_image = pod.clone();
        new_image.spec.as_mut().unwrap().containers[0].image = Some("x:2".into());
        assert!(differs_semantically(&pod, &new_image));
        let mut deleted = pod.clone();
        deleted.metadata.deletion_timestamp = Some(time(Timestamp::UNIX_EPOCH));
        assert!(differs_semantically(&pod, &deleted));
    }
}
