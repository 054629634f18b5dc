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

use futures::future::{BoxFuture, join_all};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, PodStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::logs::LogLine;
use super::pod_sync::{Action, PodSyncDecision, sync_pod};
use super::probe::{ProbeTiming, probe_action};
use super::runtime::{
    ContainerConfig, ContainerId, ContainerStatus, ProbeTarget, Runtime, SandboxConfig,
};
use super::state::{PodRuntimeState, reasons};
use super::{Clock, referenced_objects, resolve_env};
use crate::machinery::events::EventRecorder;
use crate::machinery::node_api::{LogRequest, LogStream, NodeLogs};

/// The version `kubectl get nodes` shows.
pub const KUBELET_VERSION: &str = "v1.33.1-labs";

pub use crate::machinery::wellknown::NODE_LEASE_NAMESPACE;
/// The kubelet's default `nodeLeaseDurationSeconds`.
pub const NODE_LEASE_DURATION_SECONDS: i32 = 40;
/// The Lease is renewed every quarter of its duration (upstream's
/// `nodeLeaseRenewIntervalFraction`): 10 s for 40 s.
const NODE_LEASE_RENEW_INTERVAL_FRACTION: f64 = 0.25;

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
}

/// What the kubelet's tasks share.
struct Shared<R> {
    client: kube::Client,
    runtime: Arc<R>,
    config: KubeletConfig,
    clock: Clock,
    events: EventRecorder,
    shutdown: CancellationToken,
    /// Per pod UID: the worker's wake-up bell (the PLEG rings it).
    bells: Mutex<HashMap<String, Arc<Notify>>>,
    /// Per `namespace/name`: which container instances exist, for logs.
    log_index: Arc<Mutex<HashMap<String, PodLogIndex>>>,
    /// The images on this node (upstream asks the runtime's image service;
    /// ours remembers what it pulled).
    images: Mutex<HashMap<String, super::runtime::ImageRef>>,
}

/// Which instance of each container `kubectl logs` reads.
#[derive(Clone, Debug, Default)]
struct PodLogIndex {
    containers: BTreeMap<String, LogTargets>,
}

/// A container's current and previous instance, and why it is waiting.
type LogTargets = (Option<ContainerId>, Option<ContainerId>, Option<String>);

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

    /// Stops every task of the kubelet — heartbeats, watches, pod workers —
    /// and leaves the containers as they are.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

// ANCHOR: node_status
/// The node's conditions: all is well (we measure no pressure). Each keeps
/// its `lastTransitionTime` from `old` when its status is unchanged; every
/// computation moves `lastHeartbeatTime` (which reaches the API server only
/// when the status is written: see [`node_status_changed`]).
fn node_conditions(old: Option<&Node>, now: Timestamp) -> serde_json::Value {
    let conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    let old_conditions = old
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = conditions
        .iter()
        .map(|(type_, status, reason, message)| {
            let transition = old_conditions
                .iter()
                .find(|c| c.type_ == *type_ && c.status == *status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(time(now));
            json!({
                "type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": time(now), "lastTransitionTime": transition,
            })
        })
        .collect();
    json!(list)
}
// ANCHOR_END: node_status

fn node_object<R: Runtime>(s: &Shared<R>, now: Timestamp) -> serde_json::Value {
    let c = &s.config;
    let resources = json!({"cpu": c.cpu, "memory": c.memory, "pods": c.max_pods.to_string()});
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": c.node_name,
            "labels": {
                "kubernetes.io/hostname": c.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": node_conditions(None, now),
            "addresses": [
                {"type": "InternalIP", "address": c.host_ip},
                {"type": "Hostname", "address": c.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": c.node_name, "systemUUID": c.node_name, "bootID": c.node_name,
                "kernelVersion": kernel,
                "osImage": format!("labs {} node", s.runtime.name()),
                "containerRuntimeVersion": format!("labs-{}://0.1", s.runtime.name()),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    })
}

/// Registers the node (`POST /api/v1/nodes`, or take over the existing
/// object after a restart), then keeps its status up to date until shutdown.
async fn node_status_loop<R: Runtime>(s: Arc<Shared<R>>) {
    let nodes: Api<Node> = Api::all(s.client.clone());
    let name = s.config.node_name.clone();
    loop {
        let obj = node_object(&s, s.clock.now());
        let node: Node = serde_json::from_value(obj.clone()).expect("a valid Node");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Already registered (a restarted kubelet): bring labels,
                // capacity and info up to date, keep the rest.
                let patch = json!({"metadata": {"labels": obj["metadata"]["labels"]}});
                let _ = nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                let mut status = obj["status"].clone();
                let old = nodes.get_opt(&name).await.ok().flatten();
                status["conditions"] = node_conditions(old.as_ref(), s.clock.now());
                if nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({ "status": status })),
                    )
                    .await
                    .is_ok()
                {
                    break;
                }
            }
            Err(e) => tracing::warn!(node = %name, error = %e, "registering the node failed"),
        }
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // ANCHOR: status_report
    let mut last_report = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.config.node_status_update_frequency) => {}
        }
        // Every period the status is computed; it is written only when it
        // changed or the report frequency has passed (the Lease is the
        // heartbeat, so an unchanged status need not be sent).
        let old = nodes.get_opt(&name).await.ok().flatten();
        let conditions = node_conditions(old.as_ref(), s.clock.now());
        let due = last_report.elapsed() >= s.config.node_status_report_frequency;
        if !due && !node_status_changed(old.as_ref(), &conditions) {
            continue;
        }
        let patch = json!({"status": {"conditions": conditions}});
        match nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => last_report = tokio::time::Instant::now(),
            Err(e) => tracing::warn!(node = %name, error = %e, "updating the node status failed"),
        }
    }
    // ANCHOR_END: status_report
}

// ANCHOR: status_changed
/// Whether the freshly computed `conditions` say anything the node does not
/// already say (upstream's `nodeStatusHasChanged`): the heartbeat times are
/// ignored, since they change on every computation.
fn node_status_changed(old: Option<&Node>, conditions: &serde_json::Value) -> bool {
    let old_conditions = old
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let new_conditions: Vec<k8s_openapi::api::core::v1::NodeCondition> =
        serde_json::from_value(conditions.clone()).unwrap_or_default();
    let strip = |c: &k8s_openapi::api::core::v1::NodeCondition| {
        let mut c = c.clone();
        c.last_heartbeat_time = None;
        c
    };
    old_conditions.len() != new_conditions.len()
        || new_conditions
            .iter()
            .any(|new| !old_conditions.iter().any(|old| strip(old) == strip(new)))
}
// ANCHOR_END: status_changed

// ANCHOR: node_lease
/// The node's Lease with a fresh `renewTime` (upstream's `newLease` in
/// `component-helpers/apimachinery/lease`): built from `base` (the Lease as
/// last read or written) or from nothing. The Lease is owned by its Node,
/// so deleting the Node deletes the Lease; the Node's `uid` is needed for
/// that, and may be unknown while the Node is not registered yet — the next
/// renewal adds it.
pub fn node_lease(
    base: Option<&Lease>,
    node_name: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
    now: Timestamp,
) -> Lease {
    let mut lease = base.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node_name.to_string());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(MicroTime(now));
    let owners = lease.metadata.owner_references.get_or_insert_with(Vec::new);
    if owners.is_empty()
        && let Some(uid) = node_uid
    {
        owners.push(OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.to_string(),
            uid: uid.to_string(),
            ..OwnerReference::default()
        });
    }
    if owners.is_empty() {
        lease.metadata.owner_references = None;
    }
    lease
}
// ANCHOR_END: node_lease

/// Upstream's node lease controller: renew the Lease every renew interval
/// (10 s), creating it if it is missing. A failed write forgets the Lease
/// we hold, so the next round reads it again (someone else may have
/// changed or deleted it).
async fn node_lease_loop<R: Runtime>(s: Arc<Shared<R>>) {
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), NODE_LEASE_NAMESPACE);
    let name = s.config.node_name.clone();
    let mut latest: Option<Lease> = None;
    loop {
        match renew_lease(&s, &leases, latest.take()).await {
            Ok(lease) => latest = Some(lease),
            Err(e) => tracing::warn!(node = %name, error = %e, "renewing the node lease failed"),
        }
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.config.node_lease_renew_interval()) => {}
        }
    }
}

/// One renewal: `PUT` the Lease with a new `renewTime` (or `POST` it if
/// it does not exist yet).
async fn renew_lease<R: Runtime>(
    s: &Shared<R>,
    leases: &Api<Lease>,
    latest: Option<Lease>,
) -> Result<Lease, kube::Error> {
    let name = &s.config.node_name;
    let base = match latest {
        Some(lease) => Some(lease),
        None => leases.get_opt(name).await?,
    };
    let has_owner = base
        .as_ref()
        .and_then(|l| l.metadata.owner_references.as_ref())
        .is_some_and(|o| !o.is_empty());
    let uid = if has_owner {
        None
    } else {
        let nodes: Api<Node> = Api::all(s.client.clone());
        nodes
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.metadata.uid)
    };
    let duration = s.config.node_lease_duration_seconds;
    let lease = node_lease(base.as_ref(), name, uid.as_deref(), duration, s.clock.now());
    match base {
        Some(_) => leases.replace(name, &PostParams::default(), &lease).await,
        None => leases.create(&PostParams::default(), &lease).await,
    }
}

/// The PLEG: relist the runtime every `relist_period`, and ring the bell of
/// each pod whose containers changed since the last relist.
async fn pleg<R: Runtime>(s: Arc<Shared<R>>) {
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
struct PodUpdate {
    pod: Pod,
    gone: bool,
}

/// Watches the pods bound to this node and feeds their workers.
async fn watch_pods<R: Runtime>(s: Arc<Shared<R>>) {
    let pods: Api<Pod> = Api::all(s.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", s.config.node_name));
    let mut events = watcher::watcher(pods, config).boxed();
    let mut workers: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut tasks = Vec::new();
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
fn differs_semantically(old: &Pod, new: &Pod) -> bool {
    let (o, n) = (&old.metadata, &new.metadata);
    old.spec != new.spec
        || o.labels != n.labels
        || o.annotations != n.annotations
        || o.deletion_timestamp != n.deletion_timestamp
        || o.deletion_grace_period_seconds != n.deletion_grace_period_seconds
        || o.owner_references != n.owner_references
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// A tokio instant for a timestamp of the kubelet's clock.
fn instant_of(clock: &Clock, at: Timestamp) -> tokio::time::Instant {
    let ahead = at.duration_since(clock.now());
    let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

// ANCHOR: pod_worker
/// One pod's worker: observe, decide, report, act, wait — until the pod is
/// deleted and its containers are gone.
async fn pod_worker<R: Runtime>(
    s: Arc<Shared<R>>,
    mut updates: watch::Receiver<PodUpdate>,
    bell: Arc<Notify>,
) {
    let first = updates.borrow().pod.clone();
    let uid = first.metadata.uid.clone().unwrap_or_default();
    let key = pod_key(&first);
    let mut state = PodRuntimeState::new(s.config.host_ip.clone());
    // Adoption: a sandbox the runtime already has for this pod is ours.
    if let Some(sandbox) = s
        .runtime
        .list_pod_sandboxes()
        .await
        .into_iter()
        .find(|sb| sb.config.uid == uid)
    {
        state.record_sandbox(sandbox);
    }
    let mut written: Option<PodStatus> = first.status.clone();
    // The pod's resourceVersion after our last status write.
    let mut written_rv = resource_version(&first);
    loop {
        let PodUpdate { mut pod, gone } = updates.borrow_and_update().clone();
        if gone && pod.metadata.deletion_timestamp.is_none() {
            // Deleted from the API without a graceful deletion (a force
            // delete): stop the containers anyway, with the minimum grace.
            pod.metadata.deletion_timestamp = Some(time(s.clock.now()));
            pod.metadata.deletion_grace_period_seconds = Some(0);
        }
        // The status to build on is the one this worker last wrote, not the
        // one in the pod it was handed: the watch delivers our own writes a
        // step late, and deciding from a stale status (a `Ready` condition's
        // `lastTransitionTime` from two writes ago) would write it back, see
        // that write come round, and so on for ever. Upstream's status
        // manager keeps the same cache for the same reason.
        //
        // A status someone *else* wrote after ours is another matter: the
        // node lifecycle controller marks the pods of a node whose
        // heartbeat was late `Ready=False`. Then the cache is wrong, and
        // the status must be written again (upstream's status manager
        // reconciles the same way, `needsReconcile`). Our own writes come
        // back with the revision we got, never a later one.
        if written.is_some() && resource_version(&pod) > written_rv && pod.status != written {
            written = None;
        }
        if written.is_some() {
            pod.status = written.clone();
        }
        // Observe: what the runtime runs for this pod now (a relist of our
        // own: the PLEG's snapshot may be a second old).
        let mine: Vec<ContainerStatus> = s
            .runtime
            .list_containers()
            .await
            .into_iter()
            .filter(|c| c.pod_uid == uid)
            .collect();
        for id in state.observe(&mine) {
            let _ = s.runtime.remove_container(&id).await;
        }
        // Decide.
        let now = s.clock.now();
        let decision = sync_pod(&pod, &state, now);
        // Report, only if something changed.
        if !gone && written.as_ref() != Some(&decision.status) {
            match write_status(&s, &pod, &decision.status).await {
                Ok(rv) => {
                    written = Some(decision.status.clone());
                    written_rv = rv;
                }
                Err(e) => tracing::debug!(pod = %key, error = %e, "status update failed"),
            }
        }
        state.record_decision(&decision, now);
        // Act.
        let deleted = carry_out(&s, &pod, &mut state, &decision, gone).await;
        publish_log_index(&s, &key, &state);
        if deleted {
            // The object is gone: forget the pod's dead containers too.
            for c in s.runtime.list_containers().await {
                if c.pod_uid == uid {
                    let _ = s.runtime.remove_container(&c.id).await;
                }
            }
            s.log_index.lock().unwrap().remove(&key);
            s.bells.lock().unwrap().remove(&uid);
            return;
        }
        // Whatever the actions did (a container started, a probe answered,
        // a container stopped) changes the state: sync again at once, as
        // upstream's probe manager and PLEG wake the worker. A decision that
        // only waits (back-off) must not, or it would spin.
        if decision
            .actions
            .iter()
            .any(|a| !matches!(a, Action::BackOff { .. }))
        {
            continue;
        }
        // Wait for: a pod change, a container event, the next due time.
        let next = decision
            .next_sync_at
            .map(|t| instant_of(&s.clock, t))
            // Nothing due: still sync now and then, as upstream's periodic
            // resync (every minute) does.
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60))
            // A due time already past (a backoff that has just ended) must
            // not make the worker spin: wait at least one relist period.
            .max(tokio::time::Instant::now() + s.config.relist_period);
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            changed = updates.changed() => if changed.is_err() { return },
            _ = bell.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}
// ANCHOR_END: pod_worker

/// `PATCH pods/{name}/status` with a merge patch of the whole status (lists
/// are replaced as a whole by a merge patch, which is what we want).
async fn write_status<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    status: &PodStatus,
) -> Result<u64, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .map(|p| resource_version(&p))
}

/// A pod's `resourceVersion` as a number (ours are etcd revisions), 0 if
/// absent.
fn resource_version(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

// ANCHOR: carry_out
/// Carries out one decision's actions in order. Returns `true` once the pod
/// object has been deleted.
async fn carry_out<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    state: &mut PodRuntimeState,
    decision: &PodSyncDecision,
    gone: bool,
) -> bool {
    let actions = &decision.actions;
    let mut i = 0;
    while i < actions.len() {
        match &actions[i] {
            Action::CreateSandbox => {
                match s.runtime.run_pod_sandbox(&SandboxConfig::of(pod)).await {
                    Ok(sandbox) => state.record_sandbox(sandbox),
                    Err(e) => {
                        s.events.record(
                            pod,
                            "Warning",
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        // The starts that follow need the sandbox.
                        return false;
                    }
                }
            }
            Action::StartContainer {
                container, attempt, ..
            } => start_container(s, pod, state, container, *attempt).await,
            Action::KillContainer { .. } => {
                // Containers of one pod stop in parallel, each with its own
                // grace period: take every kill in a row at once.
                let mut kills = Vec::new();
                while let Some(Action::KillContainer {
                    id,
                    grace_period,
                    message,
                    ..
                }) = actions.get(i)
                {
                    s.events.record(pod, "Normal", "Killing", message.clone());
                    kills.push(s.runtime.stop_container(id, *grace_period));
                    i += 1;
                }
                for r in join_all(kills).await {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "stopping a container failed");
                    }
                }
                continue;
            }
            Action::RunProbe {
                container,
                id,
                kind,
            } => {
                let Some(c) = find_container(pod, container) else {
                    i += 1;
                    continue;
                };
                let Some(probe) = kind.probe(c) else {
                    i += 1;
                    continue;
                };
                let timing = ProbeTiming::of(probe);
                let pod_ip = state
                    .sandbox
                    .as_ref()
                    .map(|sb| sb.ip)
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
                let outcome = match probe_action(probe, c, &pod_ip.to_string()) {
                    Ok(action) => {
                        let target = ProbeTarget {
                            id: id.clone(),
                            pod_ip,
                        };
                        s.runtime.probe(&target, &action, timing.timeout).await
                    }
                    Err(msg) => super::probe::ProbeOutcome::failure(msg),
                };
                if !outcome.success {
                    s.events.record(
                        pod,
                        "Warning",
                        "Unhealthy",
                        format!("{} probe failed: {}", kind.name(), outcome.output),
                    );
                }
                state.record_probe(
                    container,
                    id,
                    *kind,
                    outcome.success,
                    &timing,
                    s.clock.now(),
                );
            }
            Action::BackOff { reason, event, .. } => {
                // Upstream's events: a crash loop is a Warning ("Back-off
                // restarting failed container app in pod web_default(uid)");
                // an image back-off is Normal ("Back-off pulling image"),
                // followed by the failed start's "Error: ImagePullBackOff".
                if *reason == reasons::IMAGE_PULL_BACK_OFF {
                    s.events.record(pod, "Normal", "BackOff", event.clone());
                    s.events.record(
                        pod,
                        "Warning",
                        "Failed",
                        format!("Error: {}", reasons::IMAGE_PULL_BACK_OFF),
                    );
                } else {
                    s.events.record(pod, "Warning", "BackOff", event.clone());
                }
            }
            Action::RemoveSandbox => {
                if let Some(sandbox) = &state.sandbox {
                    let _ = s.runtime.remove_pod_sandbox(&sandbox.id).await;
                }
                state.record_sandbox_removed();
            }
            Action::DeletePod => {
                if gone {
                    return true;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
                // Grace period 0 and the UID as a precondition: the final
                // delete of *this* pod, never of a new one with its name.
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                return match api.delete(name, &params).await {
                    Ok(_) => true,
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => true,
                    Err(e) => {
                        tracing::debug!(error = %e, "deleting the pod failed");
                        false
                    }
                };
            }
        }
        i += 1;
    }
    false
}
// ANCHOR_END: carry_out

/// Pull, build the environment, create and start one container, and record
/// how it went.
async fn start_container<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    state: &mut PodRuntimeState,
    name: &str,
    attempt: u32,
) {
    let Some(c) = find_container(pod, name) else {
        return;
    };
    let Some(sandbox) = state.sandbox.clone() else {
        return;
    };
    let image = c.image.clone().unwrap_or_default();
    // `imagePullPolicy` (the API server defaults it: `IfNotPresent` for a
    // tagged image, `Always` for `:latest`): an image already on the node is
    // not pulled again — which is why a crash-looping container's restarts
    // say "already present on machine" instead of pulling each time.
    let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
    let present = s.images.lock().unwrap().get(&image).cloned();
    let pulled = match present.filter(|_| policy != "Always") {
        Some(r) => {
            s.events.record(
                pod,
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            Ok(r)
        }
        None => {
            s.events.record(
                pod,
                "Normal",
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
            let pulled = s.runtime.pull_image(&image, Some(&sandbox.config)).await;
            if let Ok(r) = &pulled {
                s.events.record(
                    pod,
                    "Normal",
                    "Pulled",
                    format!("Successfully pulled image \"{image}\""),
                );
                s.images.lock().unwrap().insert(image.clone(), r.clone());
            }
            pulled
        }
    };
    let image_ref = match pulled {
        Ok(r) => r,
        Err(e) => {
            s.events.record(
                pod,
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {e}"),
            );
            s.events.record(
                pod,
                "Warning",
                "Failed",
                format!("Error: {}", reasons::ERR_IMAGE_PULL),
            );
            state.record_pull_failure(name, &image, &e.message, s.clock.now());
            return;
        }
    };
    let env = match container_env(s, pod, c, &sandbox.ip.to_string()).await {
        Ok(env) => env,
        Err(msg) => {
            s.events
                .record(pod, "Warning", "Failed", format!("Error: {msg}"));
            state.record_start_failure(
                name,
                reasons::CREATE_CONTAINER_CONFIG_ERROR,
                &msg,
                s.clock.now(),
            );
            return;
        }
    };
    let config = ContainerConfig {
        container: c.clone(),
        attempt,
        image: image_ref,
        env,
    };
    let started = match s.runtime.start_container(&sandbox, &config).await {
        Ok(id) => s.runtime.container_status(&id).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(status) => {
            s.events.record(
                pod,
                "Normal",
                "Created",
                format!("Created container: {name}"),
            );
            s.events.record(
                pod,
                "Normal",
                "Started",
                format!("Started container {name}"),
            );
            for id in state.record_started(&status) {
                let _ = s.runtime.remove_container(&id).await;
            }
        }
        Err(e) => {
            s.events
                .record(pod, "Warning", "Failed", format!("Error: {e}"));
            state.record_start_failure(
                name,
                reasons::CREATE_CONTAINER_ERROR,
                &e.to_string(),
                s.clock.now(),
            );
        }
    }
}

/// The container's environment: fetch the ConfigMaps and Secrets it
/// references (through the API, as the kubelet does), then resolve.
async fn container_env<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cm_names, secret_names) = referenced_objects(c);
    let mut configmaps = BTreeMap::new();
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), ns);
    for n in cm_names {
        if let Ok(Some(cm)) = cms.get_opt(&n).await {
            configmaps.insert(n, cm);
        }
    }
    let mut secrets = BTreeMap::new();
    let sec: Api<Secret> = Api::namespaced(s.client.clone(), ns);
    for n in secret_names {
        if let Ok(Some(secret)) = sec.get_opt(&n).await {
            secrets.insert(n, secret);
        }
    }
    // The downward API's status.podIP and status.hostIP: the kubelet knows
    // them before it has written them.
    let mut with_ips = pod.clone();
    let status = with_ips.status.get_or_insert_with(Default::default);
    status.pod_ip = Some(pod_ip.to_string());
    status.host_ip = Some(s.config.host_ip.clone());
    resolve_env(c, &configmaps, &secrets, &with_ips).map_err(|e| e.to_string())
}

fn publish_log_index<R: Runtime>(s: &Shared<R>, key: &str, state: &PodRuntimeState) {
    let containers = state
        .containers
        .iter()
        .map(|(name, rec)| {
            (
                name.clone(),
                (
                    rec.current.as_ref().map(|c| c.id.clone()),
                    rec.previous.as_ref().map(|c| c.id.clone()),
                    rec.waiting.as_ref().map(|w| w.reason.clone()),
                ),
            )
        })
        .collect();
    s.log_index
        .lock()
        .unwrap()
        .insert(key.to_string(), PodLogIndex { containers });
}

/// The kubelet's `/containerLogs` endpoint, reached in-process.
struct KubeletLogs<R> {
    runtime: Arc<R>,
    log_index: Arc<Mutex<HashMap<String, PodLogIndex>>>,
}

// ANCHOR: logs
impl<R: Runtime> NodeLogs for KubeletLogs<R> {
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<LogStream, String>> {
        let runtime = Arc::clone(&self.runtime);
        let entry = self
            .log_index
            .lock()
            .unwrap()
            .get(&format!("{}/{}", req.namespace, req.pod))
            .and_then(|p| p.containers.get(&req.container).cloned());
        async move {
            let (pod, container) = (&req.pod, &req.container);
            let (current, previous, waiting) = entry.unwrap_or_default();
            // Upstream's messages for the two ways there is no log.
            let id = if req.previous {
                previous.ok_or_else(|| {
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    )
                })?
            } else {
                current.ok_or_else(|| {
                    let why = waiting.unwrap_or_else(|| reasons::CONTAINER_CREATING.into());
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {why}")
                })?
            };
            let so_far = runtime.logs(&id).await.map_err(|e| e.to_string())?;
            let skip = req.tail_lines.map_or(0, |n| so_far.len().saturating_sub(n));
            let timestamps = req.timestamps;
            let format = move |l: LogLine| {
                let line = if timestamps {
                    format!("{} {}\n", l.at, l.text)
                } else {
                    format!("{}\n", l.text)
                };
                bytes::Bytes::from(line)
            };
            if req.follow && !req.previous {
                let lines = runtime.follow_logs(&id).await.map_err(|e| e.to_string())?;
                Ok(lines.skip(skip).map(format).boxed())
            } else {
                Ok(futures::stream::iter(so_far.into_iter().skip(skip).map(format)).boxed())
            }
        }
        .boxed()
    }
}
// ANCHOR_END: logs

#[cfg(test)]
mod tests {
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
