//! The scheduler's picture of the cluster: one [`NodeInfo`] per node.
//!
//! Scheduling one pod looks at every node, and for each node at the sum of
//! what its pods request. Recomputing those sums from the pods' quantity
//! strings for every decision would make the scheduler's cost grow with the
//! number of *pods* in the cluster. kube-scheduler avoids that with a cache of
//! `NodeInfo` objects (`pkg/scheduler/framework/types.go`) that keep the sums
//! up to date as pods come and go, and takes a cheap snapshot of that cache at
//! the start of every cycle. [`Snapshot`] is our version: build it once from
//! nodes and pods, then [`Snapshot::add_pod`] each pod you bind (upstream's
//! "assume"), so a stream of decisions sees its own earlier placements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::machinery::quantity::{parse_bytes, parse_cpu_millis};

pub use crate::machinery::wellknown::{
    LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE,
    TAINT_NODE_UNSCHEDULABLE,
};

/// What scoring assumes a container without a cpu / memory request will use
/// (`DefaultMilliCPURequest`, `DefaultMemoryRequest` in
/// `pkg/scheduler/util/pod_resources.go`). Without them, a hundred
/// request-less pods would all look free and pile onto one node. The *filter*
/// never uses these: a pod without requests always fits.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The three resources the default scheduler checks by name. Extended
/// resources (`nvidia.com/gpu`, hugepages, ...) are left out of the labs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Resources {
    /// Read a `requests` / `allocatable` / `overhead` map. An unparseable
    /// quantity counts as 0: the API server validates quantities on write, so
    /// this only happens to objects that bypassed it.
    pub fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let get = |key: &str, parse: fn(&str) -> Result<i64, _>| {
            map.and_then(|m| m.get(key))
                .and_then(|q| parse(&q.0).ok())
                .unwrap_or(0)
        };
        Resources {
            milli_cpu: get("cpu", parse_cpu_millis),
            memory: get("memory", parse_bytes),
            ephemeral_storage: get("ephemeral-storage", parse_bytes),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Resources::default()
    }

    fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
    }

    fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_map(requests);
    // Only a *missing* request gets the default; an explicit "0" stays 0.
    let has = |key: &str| requests.is_some_and(|m| m.contains_key(key));
    if non_zero && !has("cpu") {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if non_zero && !has("memory") {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

// ANCHOR: pod_requests
/// What a pod asks a node for (`resourcehelper.PodRequests`).
///
/// Regular containers run side by side, so their requests add up. Init
/// containers run one after another *before* them, so only the largest one
/// matters — the pod needs `max(Σ containers, max init container)`. Sidecars
/// (init containers with `restartPolicy: Always`) keep running, so they are
/// added to the sum and to every init container that starts after them. The
/// `overhead` of the pod's RuntimeClass (the sandbox's own cost) comes on top.
///
/// `non_zero` substitutes the 100m / 200Mi defaults for missing cpu / memory
/// requests: scoring uses that, the filter does not.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut requests = Resources::default();
    for c in &spec.containers {
        requests.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            requests.add(&r);
            sidecars.add(&r);
            init_max.max(&sidecars);
        } else {
            let mut during = r;
            during.add(&sidecars);
            init_max.max(&during);
        }
    }
    requests.max(&init_max);
    requests.add(&Resources::from_map(spec.overhead.as_ref()));
    requests
}
// ANCHOR_END: pod_requests

/// Which pods a pod should be spread away from.
///
/// Upstream's system-default spreading constraints select "the pods matched by
/// the Services, ReplicaSets, ReplicationControllers and StatefulSets that
/// match this pod". We don't look Services up (the core sees no Services), so
/// we take the pods *of the same owner*: the same controller `ownerReference`
/// — which for a ReplicaSet's pods is exactly the set its selector matches —
/// or, for a pod with no controller, the pods with identical labels. A pod
/// with neither has an empty selector, and upstream then has no constraints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpreadGroup {
    Owner {
        namespace: String,
        kind: String,
        name: String,
        uid: String,
    },
    Labels {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

impl SpreadGroup {
    pub fn of(pod: &Pod) -> Option<SpreadGroup> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        if let Some(owner) = controller {
            return Some(SpreadGroup::Owner {
                namespace,
                kind: owner.kind.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
            });
        }
        match &meta.labels {
            Some(labels) if !labels.is_empty() => Some(SpreadGroup::Labels {
                namespace,
                labels: labels.clone(),
            }),
            _ => None,
        }
    }
}

/// A spread group, numbered by the snapshot so per-node counts are plain
/// integers (comparing owner strings on every node of every decision would
/// dominate the scheduler's run time).
pub type GroupId = u32;

/// The `Ready` condition's status, as the node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady,
    /// `Unknown` (the node lifecycle controller's verdict when heartbeats
    /// stop), or no `Ready` condition at all (a node that never reported).
    Unknown,
}

/// One node and the sums over the pods bound to it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// `Arc` so that every decision can name nodes without copying strings.
    pub name: Arc<str>,
    pub labels: BTreeMap<String, String>,
    /// The topology labels spreading looks at, looked up once here rather
    /// than in every decision: whether `kubernetes.io/hostname` is set, and
    /// `topology.kubernetes.io/zone`.
    pub has_hostname_label: bool,
    pub zone: Option<String>,
    /// `spec.unschedulable` (a cordoned node).
    pub unschedulable: bool,
    /// The node's taints, plus the not-ready / unreachable taint its `Ready`
    /// condition implies if that taint is missing (see [`NodeInfo::new`]).
    pub taints: Vec<Taint>,
    pub readiness: Readiness,
    /// `status.allocatable`: capacity minus what the system reserves.
    pub allocatable: Resources,
    /// `status.allocatable.pods`. Missing means 0, as upstream: such a node
    /// takes no pods ("Too many pods").
    pub allowed_pod_number: i64,
    /// Σ real requests of the node's pods (the filter and BalancedAllocation).
    pub requested: Resources,
    /// Σ requests with the 100m / 200Mi defaults (LeastAllocated).
    pub non_zero_requested: Resources,
    /// Pods bound to the node and not finished, terminating ones included:
    /// they still hold their resources until they are gone.
    pub pod_count: usize,
    /// Non-terminating pods per spread group.
    spread_counts: BTreeMap<GroupId, u32>,
}

impl NodeInfo {
    /// Build the node's entry with no pods yet.
    ///
    /// **Node readiness.** The real scheduler has no "is the node Ready?"
    /// filter. The node lifecycle controller taints a node whose `Ready`
    /// condition is `False` with `node.kubernetes.io/not-ready:NoSchedule`, and
    /// one whose condition is `Unknown` with `node.kubernetes.io/unreachable:
    /// NoSchedule`; the TaintToleration filter then keeps pods away — except
    /// pods that tolerate those taints (DaemonSet pods do), which is why it is
    /// done with taints. We do the same, and in addition add the taint here
    /// when the condition calls for it but the node does not carry it yet (our
    /// lifecycle controller may not be running, or not have caught up): the
    /// scheduler then behaves as if the controller had already acted.
    pub fn new(node: &Node) -> NodeInfo {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let readiness = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map_or(Readiness::Unknown, |c| match c.status.as_str() {
                "True" => Readiness::Ready,
                "False" => Readiness::NotReady,
                _ => Readiness::Unknown,
            });
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let implied = match readiness {
            Readiness::Ready => None,
            Readiness::NotReady => Some(TAINT_NODE_NOT_READY),
            Readiness::Unknown => Some(TAINT_NODE_UNREACHABLE),
        };
        if let Some(key) = implied
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_string(),
                effect: "NoSchedule".to_string(),
                ..Taint::default()
            });
        }
        let allocatable_map = status.and_then(|s| s.allocatable.as_ref());
        let labels = node.metadata.labels.clone().unwrap_or_default();
        NodeInfo {
            name: Arc::from(node.metadata.name.as_deref().unwrap_or_default()),
            has_hostname_label: labels.contains_key(LABEL_HOSTNAME),
            zone: labels.get(LABEL_TOPOLOGY_ZONE).cloned(),
            labels,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints,
            readiness,
            allocatable: Resources::from_map(allocatable_map),
            allowed_pod_number: allocatable_map
                .and_then(|m| m.get("pods"))
                .and_then(|q| parse_bytes(&q.0).ok())
                .unwrap_or(0),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pod_count: 0,
            spread_counts: BTreeMap::new(),
        }
    }

    /// Non-terminating pods of `group` on this node.
    pub fn spread_count(&self, group: GroupId) -> u32 {
        self.spread_counts.get(&group).copied().unwrap_or(0)
    }
}

/// All nodes, in a fixed order (the order decisions visit them in).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    by_name: HashMap<Arc<str>, usize>,
    groups: HashMap<SpreadGroup, GroupId>,
    /// Per spread group: node index → its non-terminating pods there. The
    /// zone-spreading score needs "where are this owner's pods?"; asking
    /// every node would cost as many lookups as there are nodes.
    group_nodes: Vec<BTreeMap<usize, u32>>,
}

impl Snapshot {
    /// Nodes in the given order, and the pods bound to them (by
    /// `spec.nodeName`; pods bound to unknown nodes are ignored).
    pub fn new<'a>(nodes: &[Node], pods: impl IntoIterator<Item = &'a Pod>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for node in nodes {
            let info = NodeInfo::new(node);
            snapshot
                .by_name
                .insert(info.name.clone(), snapshot.nodes.len());
            snapshot.nodes.push(info);
        }
        for pod in pods {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                snapshot.add_pod(pod, node);
            }
        }
        snapshot
    }

    /// The same from a map node name → pods on that node.
    pub fn from_pods_by_node(nodes: &[Node], pods_by_node: &BTreeMap<String, Vec<Pod>>) -> Self {
        let mut snapshot = Snapshot::new(nodes, []);
        for (node, pods) in pods_by_node {
            for pod in pods {
                snapshot.add_pod(pod, node);
            }
        }
        snapshot
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// Account for `pod` running on `node` — when building the snapshot, and
    /// right after a decision (kube-scheduler "assumes" the pod onto the node
    /// before the binding is even sent, so the next decision already sees it).
    /// Returns false if the node is unknown.
    ///
    /// Finished pods (`Succeeded` / `Failed`) are skipped: they hold nothing,
    /// and kube-scheduler's informer does not even list them.
    pub fn add_pod(&mut self, pod: &Pod, node: &str) -> bool {
        let Some(&i) = self.by_name.get(node) else {
            return false;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return true;
        }
        let group = if pod.metadata.deletion_timestamp.is_none() {
            SpreadGroup::of(pod).map(|g| self.group_id(g))
        } else {
            None // terminating pods are not counted for spreading
        };
        let info = &mut self.nodes[i];
        info.requested.add(&pod_requests(pod, false));
        info.non_zero_requested.add(&pod_requests(pod, true));
        info.pod_count += 1;
        if let Some(g) = group {
            *info.spread_counts.entry(g).or_insert(0) += 1;
            *self.group_nodes[g as usize].entry(i).or_insert(0) += 1;
        }
        true
    }

    fn group_id(&mut self, group: SpreadGroup) -> GroupId {
        let next = self.groups.len() as GroupId;
        let id = *self.groups.entry(group).or_insert(next);
        if id == next {
            self.group_nodes.push(BTreeMap::new());
        }
        id
    }

    /// The nodes holding pods of `group`, with how many.
    pub(crate) fn group_placements(
        &self,
        group: GroupId,
    ) -> impl Iterator<Item = (&NodeInfo, u32)> + '_ {
        self.group_nodes
            .get(group as usize)
            .into_iter()
            .flatten()
            .map(|(&i, &count)| (&self.nodes[i], count))
    }

    /// The id of a pod's spread group, if any pod of that group is on a node.
    pub(crate) fn existing_group_id(&self, group: &SpreadGroup) -> Option<GroupId> {
        self.groups.get(group).copied()
    }
}
