//! Well-known names: the labels, taints and namespaces that Kubernetes'
//! components agree on without talking to each other (upstream's
//! `k8s.io/api/core/v1/well_known_labels.go` and `well_known_taints.go`). A
//! taint the node lifecycle controller writes is one the scheduler must
//! recognise, so the string lives in one place.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// The taints the node lifecycle controller puts on a node whose `Ready`
/// condition is `False` / `Unknown` (`TaintNodeNotReady`, `TaintNodeUnreachable`).
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint equivalent of `spec.unschedulable` (`kubectl cordon`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The well-known topology labels the default spreading constraints use.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// The namespace of the nodes' heartbeat Leases (`kube-node-lease`): one
/// Lease per node, named after it, renewed by its kubelet and read by the
/// node lifecycle controller.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

// ANCHOR: tolerates
/// Does one toleration tolerate one taint? (`Toleration.ToleratesTaint`)
///
/// - an empty effect tolerates every effect;
/// - an empty key (only valid with `Exists`) tolerates every key;
/// - `Exists` ignores the value, `Equal` (also the default, "") compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// The first taint (among those `applies` selects) that no toleration
/// tolerates (`FindMatchingUntoleratedTaint`).
pub fn find_untolerated_taint<'t>(
    taints: &'t [Taint],
    tolerations: &[Toleration],
    applies: impl Fn(&Taint) -> bool,
) -> Option<&'t Taint> {
    taints
        .iter()
        .filter(|t| applies(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}
// ANCHOR_END: tolerates
