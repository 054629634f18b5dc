//! Filter plugins: can this pod run on this node at all?
//!
//! kube-scheduler runs its filter plugins in a fixed order and stops at the
//! first one that says no, so each rejected node has exactly one plugin's
//! reasons (one or several: NodeResourcesFit reports every resource that is
//! short). The order, from the default plugin list: NodeUnschedulable,
//! NodeName, TaintToleration, NodeAffinity, NodeResourcesFit. The reason
//! strings are upstream's, word for word, because they end up in the pod's
//! `PodScheduled` condition and learners will search for them.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use super::snapshot::{GroupId, NodeInfo, Resources, SpreadGroup, TAINT_NODE_UNSCHEDULABLE};
use super::snapshot::{Snapshot, pod_requests};
pub use crate::machinery::wellknown::{find_untolerated_taint, tolerates};

/// The facts about the pod being scheduled that every node is checked
/// against, worked out once per decision (upstream's PreFilter / PreScore
/// state in the `CycleState`).
pub(crate) struct PodFacts<'a> {
    pub namespace: &'a str,
    /// Real requests, for the filter and BalancedAllocation.
    pub requests: Resources,
    /// Requests with the 100m / 200Mi defaults, for LeastAllocated.
    pub non_zero_requests: Resources,
    pub tolerations: &'a [Toleration],
    pub node_name: Option<&'a str>,
    pub node_selector: Option<&'a BTreeMap<String, String>>,
    pub required_affinity: Option<&'a NodeSelector>,
    pub preferred_affinity: &'a [k8s_openapi::api::core::v1::PreferredSchedulingTerm],
    /// Whether the pod has a spread group at all (else PodTopologySpread has
    /// no constraints and skips), and its id if some pod of it is placed.
    pub spread_group: Option<SpreadGroup>,
    pub spread_group_id: Option<GroupId>,
}

impl<'a> PodFacts<'a> {
    pub fn new(pod: &'a Pod, snapshot: &Snapshot) -> Self {
        let spec = pod.spec.as_ref();
        let node_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        let spread_group = SpreadGroup::of(pod);
        PodFacts {
            namespace: pod.metadata.namespace.as_deref().unwrap_or_default(),
            requests: pod_requests(pod, false),
            non_zero_requests: pod_requests(pod, true),
            tolerations: spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]),
            node_name: spec
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty()),
            node_selector: spec.and_then(|s| s.node_selector.as_ref()),
            required_affinity: node_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            preferred_affinity: node_affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_deref()
                })
                .unwrap_or(&[]),
            spread_group_id: spread_group
                .as_ref()
                .and_then(|g| snapshot.existing_group_id(g)),
            spread_group,
        }
    }
}

/// One reason a node was rejected. `Display` gives upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// NodeUnschedulable: `spec.unschedulable` (cordoned).
    Unschedulable,
    /// NodeName: `spec.nodeName` names another node.
    NodeNameMismatch,
    /// TaintToleration: a NoSchedule / NoExecute taint the pod does not tolerate.
    UntoleratedTaint { key: String, value: String },
    /// NodeAffinity: `nodeSelector` or required node affinity not met.
    NodeAffinityMismatch,
    /// NodeResourcesFit: the node already holds `allocatable.pods` pods.
    TooManyPods,
    /// NodeResourcesFit: not enough of `cpu`, `memory` or `ephemeral-storage`
    /// left for the pod's request.
    Insufficient(&'static str),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NodeNameMismatch => f.write_str("node(s) didn't match the requested node name"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinityMismatch => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
        }
    }
}

/// A node's filter verdict: which plugin rejected it, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub reasons: Vec<Reason>,
}

// ANCHOR: filters
/// Run the filter plugins in upstream order; the first rejection wins.
pub(crate) fn run_filters(pod: &PodFacts, node: &NodeInfo) -> Result<(), Rejection> {
    let reject = |plugin, reasons| Err(Rejection { plugin, reasons });

    // NodeUnschedulable. A pod that tolerates the `unschedulable` taint may
    // still go to a cordoned node (DaemonSets do this).
    if node.unschedulable && !tolerates_unschedulable(pod.tolerations) {
        return reject("NodeUnschedulable", vec![Reason::Unschedulable]);
    }

    // NodeName. The scheduler only ever sees pods whose `spec.nodeName` is
    // empty (a set nodeName *is* a binding), so this rarely fires; the
    // kubelet runs the same check when someone sets nodeName directly.
    if pod.node_name.is_some_and(|n| n != &*node.name) {
        return reject("NodeName", vec![Reason::NodeNameMismatch]);
    }

    // TaintToleration: only NoSchedule and NoExecute keep pods away;
    // PreferNoSchedule is left to scoring. Node readiness arrives here too,
    // as the not-ready / unreachable taints (see `NodeInfo::new`).
    if let Some(taint) = find_untolerated_taint(&node.taints, pod.tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    }) {
        let reason = Reason::UntoleratedTaint {
            key: taint.key.clone(),
            value: taint.value.clone().unwrap_or_default(),
        };
        return reject("TaintToleration", vec![reason]);
    }

    // NodeAffinity: nodeSelector AND required node affinity.
    if !required_node_affinity_matches(pod, node) {
        return reject("NodeAffinity", vec![Reason::NodeAffinityMismatch]);
    }

    // NodeResourcesFit: every shortfall is reported, not just the first.
    let reasons = resources_fit(&pod.requests, node);
    if !reasons.is_empty() {
        return reject("NodeResourcesFit", reasons);
    }
    Ok(())
}

/// NodeResourcesFit's checks (`fitsRequest`). Requests, not limits and not
/// actual usage: the scheduler promises each pod what it asked for, and a
/// node is "full" when the promises add up to its allocatable.
pub fn resources_fit(pod: &Resources, node: &NodeInfo) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if node.pod_count as i64 + 1 > node.allowed_pod_number {
        reasons.push(Reason::TooManyPods);
    }
    // A pod that requests nothing fits anywhere that has a pod slot.
    if pod.is_zero() {
        return reasons;
    }
    let free = |alloc: i64, used: i64| alloc - used;
    let checks = [
        (
            "cpu",
            pod.milli_cpu,
            free(node.allocatable.milli_cpu, node.requested.milli_cpu),
        ),
        (
            "memory",
            pod.memory,
            free(node.allocatable.memory, node.requested.memory),
        ),
        (
            "ephemeral-storage",
            pod.ephemeral_storage,
            free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            ),
        ),
    ];
    for (resource, request, free) in checks {
        if request > 0 && request > free {
            reasons.push(Reason::Insufficient(resource));
        }
    }
    reasons
}
// ANCHOR_END: filters

// ANCHOR: tolerations
fn tolerates_unschedulable(tolerations: &[Toleration]) -> bool {
    let taint = Taint {
        key: TAINT_NODE_UNSCHEDULABLE.to_string(),
        effect: "NoSchedule".to_string(),
        ..Taint::default()
    };
    tolerations.iter().any(|t| tolerates(t, &taint))
}
// ANCHOR_END: tolerations

// ANCHOR: node_affinity
/// `spec.nodeSelector` (every label equal) and the required node affinity.
pub(crate) fn required_node_affinity_matches(pod: &PodFacts, node: &NodeInfo) -> bool {
    let selector_ok = pod
        .node_selector
        .into_iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    selector_ok
        && pod
            .required_affinity
            .is_none_or(|required| node_selector_matches(required, &node.labels, &node.name))
}

/// A `NodeSelector` is the **OR** of its terms. No terms matches nothing.
pub fn node_selector_matches(
    selector: &NodeSelector,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| node_selector_term_matches(term, labels, node_name))
}

/// A term is the **AND** of its label expressions and field expressions.
/// An empty term matches nothing (not everything!), as upstream.
pub fn node_selector_term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| label_requirement_matches(r, labels))
        && fields
            .iter()
            .all(|r| field_requirement_matches(r, node_name))
}

/// One `matchExpressions` entry against the node's labels.
pub fn label_requirement_matches(
    req: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        // An absent label is "not in" any set.
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        // Gt / Lt compare integers: exactly one value, and both sides must
        // parse, otherwise the requirement is not met.
        "Gt" | "Lt" => {
            let (Some(label), [value]) = (label, values) else {
                return false;
            };
            match (label.parse::<i64>(), value.parse::<i64>()) {
                (Ok(l), Ok(v)) if req.operator == "Gt" => l > v,
                (Ok(l), Ok(v)) => l < v,
                _ => false,
            }
        }
        _ => false,
    }
}

/// One `matchFields` entry. Kubernetes supports a single field here,
/// `metadata.name`, with `In` / `NotIn`.
pub fn field_requirement_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or(&[]);
    let found = values.iter().any(|v| v == node_name);
    match req.operator.as_str() {
        "In" => found,
        "NotIn" => !found,
        _ => false,
    }
}
// ANCHOR_END: node_affinity
