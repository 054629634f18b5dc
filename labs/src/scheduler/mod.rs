//! The scheduler: which node should this pod run on?
//!
//! A new pod has no `spec.nodeName`. The scheduler's only job is to fill it
//! in (by posting a `Binding`), and to do it well: on a node that *can* run
//! the pod, and among those, on the *best* one. kube-scheduler splits this in
//! two phases of plugins, and so do we:
//!
//! 1. **Filter** ([`filters`]): drop every node that cannot run the pod —
//!    cordoned, tainted, wrong labels, not enough cpu or memory left.
//! 2. **Score** ([`scores`]): rank the rest; each plugin gives 0..=100, times
//!    its weight, summed. The highest total wins, ties are broken at random
//!    ([`select_host`]).
//!
//! If no node passes the filters, the pod is unschedulable and the reasons
//! are summed up in Kubernetes' message shape: `0/3 nodes are available:
//! 3 Insufficient cpu.` ([`FitError`]).
//!
//! This module is the **pure decision core**: [`schedule`] takes a pod and a
//! [`Snapshot`] of the nodes and returns a [`Decision`] — no API calls, no
//! async, no clock — so it can be table-tested and explained line by line.
//! Watching pending pods, the scheduling queue, binding, retrying and
//! Events are plumbing: [`plumbing`] and [`queue`]. `labs scheduler`
//! ([`lab`]) narrates it all.
//!
//! What we leave out (each would add machinery, not a new idea):
//! preemption, NodePorts, volume plugins,
//! InterPodAffinity, ImageLocality, extended resources, a pod's own
//! `topologySpreadConstraints` (we always use the system defaults),
//! pod-level resources, extenders and multiple profiles.

pub mod decision;
pub mod filters;
pub mod queue;
pub mod rng;
pub mod schedule_one;
pub mod scores;
pub mod snapshot;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decision::{Decision, FitError, NodeScores, NodeVerdict, Placement, PluginScore};
pub use filters::{Reason, Rejection};
pub use rng::SplitMix64;
pub use snapshot::{NodeInfo, Snapshot};

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use filters::{PodFacts, run_filters};
use scores::{PLUGINS, score_nodes};

/// Schedule one pod, looking at every node (as kube-scheduler does below
/// 100 nodes). Ties are broken with `rng`; the same seed gives the same
/// decision.
pub fn schedule(pod: &Pod, snapshot: &Snapshot, rng: &mut SplitMix64) -> Decision {
    let all = snapshot.nodes().len();
    schedule_from(pod, snapshot, 0, all, rng).0
}

/// kube-scheduler's node sampling, for a stream of decisions.
///
/// In a big cluster, checking every node for every pod costs more than it
/// gains, so kube-scheduler stops filtering once it has found
/// [`num_feasible_nodes_to_find`] feasible nodes, and scores only those. So
/// that the same nodes are not always the ones looked at, the next cycle
/// starts where this one stopped (`nextStartNodeIndex`, round robin). Below
/// 100 nodes every node is looked at and this equals [`schedule`].
///
/// Upstream filters nodes in parallel, so exactly which nodes a cycle sees
/// varies from run to run; we filter them one after another, which gives the
/// same count and the same rotation, deterministically. (Upstream also
/// orders its node list by interleaving zones; we keep the snapshot's order.)
#[derive(Clone, Debug)]
pub struct Scheduler {
    /// Where the next cycle starts looking, as an index into the snapshot.
    pub next_start_node_index: usize,
    /// `percentageOfNodesToScore`; 0 means upstream's adaptive default.
    pub percentage_of_nodes_to_score: u32,
    pub rng: SplitMix64,
}

impl Scheduler {
    pub fn new(seed: u64) -> Self {
        Scheduler {
            next_start_node_index: 0,
            percentage_of_nodes_to_score: 0,
            rng: SplitMix64::new(seed),
        }
    }

    pub fn schedule(&mut self, pod: &Pod, snapshot: &Snapshot) -> Decision {
        let n = snapshot.nodes().len();
        let to_find = num_feasible_nodes_to_find(n, self.percentage_of_nodes_to_score);
        let start = if n == 0 {
            0
        } else {
            self.next_start_node_index % n
        };
        let (decision, processed) = schedule_from(pod, snapshot, start, to_find, &mut self.rng);
        if n > 0 {
            self.next_start_node_index = (start + processed) % n;
        }
        decision
    }
}

// ANCHOR: num_feasible
/// How many feasible nodes are enough (`numFeasibleNodesToFind`).
///
/// All of them below 100 nodes; otherwise a percentage that shrinks as the
/// cluster grows (50% minus 1% per 125 nodes, at least 5%), but never fewer
/// than 100 nodes: 500 nodes → 230, 1000 → 420, 5000 → 500.
pub fn num_feasible_nodes_to_find(
    num_all_nodes: usize,
    percentage_of_nodes_to_score: u32,
) -> usize {
    const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
    const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = (percentage_of_nodes_to_score as usize).min(100);
    if percentage == 0 {
        percentage = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}
// ANCHOR_END: num_feasible

// ANCHOR: select_host
/// Pick the index of the highest total; among equal totals, each one with
/// the same probability (`selectHost`). Reservoir sampling: the k-th node
/// seen with the current best score replaces the pick with probability 1/k,
/// which leaves every one of the k equally likely — in one pass, whatever
/// the order. Returns the index and how many nodes shared the best total.
pub fn select_host(totals: &[i64], rng: &mut SplitMix64) -> Option<(usize, usize)> {
    let (mut best, mut ties) = (0, 0);
    for (i, &total) in totals.iter().enumerate() {
        if ties == 0 || total > totals[best] {
            (best, ties) = (i, 1);
        } else if total == totals[best] {
            ties += 1;
            if rng.below(ties as u64) == 0 {
                best = i;
            }
        }
    }
    (ties > 0).then_some((best, ties))
}
// ANCHOR_END: select_host

/// One scheduling cycle: filter nodes from `start` until `to_find` feasible
/// ones are found (or all were seen), score them, pick one. Also returns how
/// many nodes were processed, for `nextStartNodeIndex`.
fn schedule_from(
    pod: &Pod,
    snapshot: &Snapshot,
    start: usize,
    to_find: usize,
    rng: &mut SplitMix64,
) -> (Decision, usize) {
    let facts = PodFacts::new(pod, snapshot);
    let nodes = snapshot.nodes();
    let n = nodes.len();
    // Sized for the common case where (nearly) every node examined is
    // feasible; it grows if not.
    let mut examined = Vec::with_capacity(n.min(to_find));
    // (index into nodes, index into examined) of every feasible node.
    let mut feasible: Vec<(usize, usize)> = Vec::with_capacity(to_find);
    let mut processed = 0;
    while processed < n && feasible.len() < to_find {
        let i = (start + processed) % n;
        processed += 1;
        let filter = run_filters(&facts, &nodes[i]);
        if filter.is_ok() {
            feasible.push((i, examined.len()));
        }
        examined.push(NodeVerdict {
            node: nodes[i].name.clone(),
            filter,
            scores: None,
        });
    }

    let pod_name = format!(
        "{}/{}",
        facts.namespace,
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let mut decision = Decision {
        pod: pod_name,
        num_all_nodes: n,
        examined,
        skipped_plugins: [false; 5],
        result: Err(FitError {
            num_all_nodes: n,
            reasons: Default::default(),
        }),
    };

    match feasible.len() {
        0 => {
            let mut reasons = std::collections::BTreeMap::new();
            for v in &decision.examined {
                if let Err(r) = &v.filter {
                    for reason in &r.reasons {
                        *reasons.entry(reason.clone()).or_insert(0) += 1;
                    }
                }
            }
            decision.result = Err(FitError {
                num_all_nodes: n,
                reasons,
            });
        }
        // One feasible node: nothing to compare, so no scoring at all.
        1 => {
            decision.result = Ok(Placement {
                node: nodes[feasible[0].0].name.clone(),
                feasible: 1,
                ties: 1,
                top: Vec::new(),
            });
        }
        _ => {
            let indices: Vec<usize> = feasible.iter().map(|&(i, _)| i).collect();
            let scores = score_nodes(&facts, snapshot, &indices);
            decision.skipped_plugins = scores.skipped;
            let mut totals = Vec::with_capacity(feasible.len());
            for (k, &(_, e)) in feasible.iter().enumerate() {
                let mut plugins = [PluginScore::default(); 5];
                let mut total = 0;
                for (p, (_, weight)) in PLUGINS.iter().enumerate() {
                    let (raw, normalized) = (scores.raw[k][p], scores.normalized[k][p]);
                    let weighted = normalized * weight;
                    total += weighted;
                    plugins[p] = PluginScore {
                        raw,
                        normalized,
                        weighted,
                    };
                }
                totals.push(total);
                decision.examined[e].scores = Some(NodeScores { plugins, total });
            }
            let (chosen, ties) = select_host(&totals, rng).expect("two or more feasible nodes");
            decision.result = Ok(Placement {
                node: nodes[feasible[chosen].0].name.clone(),
                feasible: feasible.len(),
                ties,
                top: top_nodes(&feasible, &totals, nodes),
            });
        }
    }
    (decision, processed)
}

/// The three best totals, best first, equal totals in the order examined.
fn top_nodes(
    feasible: &[(usize, usize)],
    totals: &[i64],
    nodes: &[NodeInfo],
) -> Vec<(Arc<str>, i64)> {
    let mut order: Vec<usize> = (0..totals.len()).collect();
    let key = |k: &usize| (std::cmp::Reverse(totals[*k]), *k);
    if order.len() > 3 {
        order.select_nth_unstable_by(2, |a, b| key(a).cmp(&key(b)));
        order.truncate(3);
    }
    order.sort_by_key(key);
    order
        .into_iter()
        .map(|k| (nodes[feasible[k].0].name.clone(), totals[k]))
        .collect()
}
