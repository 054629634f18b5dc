//! Score plugins: among the nodes that *can* run the pod, which is best?
//!
//! Every score plugin gives each feasible node a raw score, may normalise
//! the scores to 0..=100 across all feasible nodes (`NormalizeScore`), and is
//! multiplied by its weight; a node's total is the sum. The plugins and
//! weights are the default profile's (`default_plugins.go`):
//!
//! | plugin                            | weight | prefers                                      |
//! |-----------------------------------|--------|----------------------------------------------|
//! | TaintToleration                   | 3      | fewer untolerated PreferNoSchedule taints    |
//! | NodeAffinity                      | 2      | more (weight of) matched preferred terms     |
//! | NodeResourcesFit (LeastAllocated) | 1      | emptier nodes                                |
//! | PodTopologySpread                 | 2      | fewer pods of the same owner on / near it    |
//! | NodeResourcesBalancedAllocation   | 1      | cpu and memory used to the same fraction     |
//!
//! InterPodAffinity (2) and ImageLocality (1) are default plugins too. We
//! leave them out; for our pods they add the same 0 to every node (no pod
//! affinity terms, no image sizes in node status), so totals still match.

use k8s_openapi::api::core::v1::{PreferredSchedulingTerm, Taint, Toleration};

use super::filters::tolerates;
use super::filters::{PodFacts, node_selector_term_matches, required_node_affinity_matches};
use super::snapshot::{NodeInfo, Snapshot};

/// `framework.MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;

/// The score plugins in the order we run and show them.
pub const PLUGINS: [(&str, i64); 5] = [
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("NodeResourcesBalancedAllocation", 1),
];

// ANCHOR: least_allocated
/// NodeResourcesFit's default scoring strategy, LeastAllocated: the share of
/// each resource that would still be free after placing the pod, averaged
/// with weights (cpu 1, memory 1 by default). Integer arithmetic, truncating,
/// exactly as upstream — that is what makes scores reproducible.
///
/// `requested[i]` already includes the pod (node's non-zero requests + the
/// pod's non-zero request). Resources the node has none of are skipped.
pub fn least_allocated(requested: &[i64], allocatable: &[i64], weights: &[i64]) -> i64 {
    let (mut score, mut weight_sum) = (0, 0);
    for ((&req, &alloc), &w) in requested.iter().zip(allocatable).zip(weights) {
        if alloc == 0 {
            continue;
        }
        score += least_requested_score(req, alloc) * w;
        weight_sum += w;
    }
    if weight_sum == 0 {
        0
    } else {
        score / weight_sum
    }
}

/// `(capacity − requested) × 100 / capacity`, 0 when over capacity.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}
// ANCHOR_END: least_allocated

// ANCHOR: balanced_allocation
/// NodeResourcesBalancedAllocation: a node whose cpu and memory would be
/// used to the *same* fraction scores best, so that neither runs out while
/// the other sits idle. It uses the real requests (no 100m / 200Mi defaults).
///
/// score = (1 − std) × 100, std being the population standard deviation of
/// the fractions; for two resources that is |f₁ − f₂| / 2.
pub fn balanced_allocation(requested: &[i64], allocatable: &[i64]) -> i64 {
    // The fractions are recomputed on each pass rather than collected: this
    // runs for every feasible node of every decision, and an allocation per
    // node would cost more than the arithmetic.
    let fractions = || {
        requested
            .iter()
            .zip(allocatable)
            .filter(|&(_, &alloc)| alloc > 0)
            .map(|(&req, &alloc)| (req as f64 / alloc as f64).min(1.0))
    };
    let n = fractions().count();
    let std = match n {
        2 => {
            let mut f = fractions();
            let (f1, f2) = (f.next().unwrap_or(0.0), f.next().unwrap_or(0.0));
            ((f1 - f2) / 2.0).abs()
        }
        n if n > 2 => {
            let mean = fractions().sum::<f64>() / n as f64;
            let var = fractions().map(|f| (f - mean).powi(2)).sum::<f64>() / n as f64;
            var.sqrt()
        }
        _ => 0.0,
    };
    // Go's int64(x) truncates toward zero, as `as` does.
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}
// ANCHOR_END: balanced_allocation

/// `helper.DefaultNormalizeScore`: scale so the best raw score becomes 100
/// (integer division), or with `reverse` so the *lowest* becomes 100. All
/// zeros stay 0 — or all become 100 with `reverse`.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max_priority);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = max_priority * *s / max;
        if reverse {
            *s = max_priority - *s;
        }
    }
}

/// PodTopologySpread's NormalizeScore: fewer matching pods is better, so the
/// lowest raw score maps to 100: `100 × (max + min − s) / max`.
pub fn spread_normalize_score(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    for s in scores.iter_mut() {
        *s = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
}

/// TaintToleration's raw score: how many PreferNoSchedule taints the pod
/// does not tolerate. Only tolerations with effect PreferNoSchedule or ""
/// (all effects) count here.
pub fn intolerable_prefer_no_schedule(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    let relevant = |t: &&Toleration| {
        matches!(
            t.effect.as_deref(),
            None | Some("") | Some("PreferNoSchedule")
        )
    };
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| {
            !tolerations
                .iter()
                .filter(relevant)
                .any(|tol| tolerates(tol, t))
        })
        .count() as i64
}

/// NodeAffinity's raw score: the sum of the weights of the preferred terms
/// the node matches.
pub fn preferred_node_affinity(terms: &[PreferredSchedulingTerm], node: &NodeInfo) -> i64 {
    terms
        .iter()
        .filter(|t| node_selector_term_matches(&t.preference, &node.labels, &node.name))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// The score of every plugin for every feasible node.
pub(crate) struct Scores {
    /// Per plugin: skipped entirely this cycle (upstream PreScore → Skip)?
    pub skipped: [bool; 5],
    /// Per feasible node, per plugin: (raw, normalized).
    pub raw: Vec<[i64; 5]>,
    pub normalized: Vec<[i64; 5]>,
}

/// Score the feasible nodes (in `feasible` order) with all five plugins.
pub(crate) fn score_nodes(pod: &PodFacts, snapshot: &Snapshot, feasible: &[usize]) -> Scores {
    let nodes = snapshot.nodes();
    let n = feasible.len();
    let mut raw = vec![[0i64; 5]; n];

    // Best-effort pods (no cpu or memory request) skip BalancedAllocation
    // since v1.33 (kubernetes#130260): every node would score 100 for them,
    // and the nodes that already hold many best-effort pods most of all.
    let best_effort = pod.requests.milli_cpu == 0 && pod.requests.memory == 0;
    let spread = pod.spread_group.is_some();
    let skipped = [false, false, false, !spread, best_effort];

    let spread_state = spread.then(|| SpreadState::new(pod, snapshot, feasible));

    for (row, &i) in raw.iter_mut().zip(feasible) {
        let node = &nodes[i];
        row[0] = intolerable_prefer_no_schedule(&node.taints, pod.tolerations);
        row[1] = preferred_node_affinity(pod.preferred_affinity, node);
        row[2] = least_allocated(
            &[
                node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
                node.non_zero_requested.memory + pod.non_zero_requests.memory,
            ],
            &[node.allocatable.milli_cpu, node.allocatable.memory],
            &[1, 1],
        );
        if let Some(state) = &spread_state {
            row[3] = state.score(pod, node);
        }
        if !best_effort {
            row[4] = balanced_allocation(
                &[
                    node.requested.milli_cpu + pod.requests.milli_cpu,
                    node.requested.memory + pod.requests.memory,
                ],
                &[node.allocatable.milli_cpu, node.allocatable.memory],
            );
        }
    }

    // NormalizeScore, per plugin, across the feasible nodes.
    let mut normalized = raw.clone();
    let mut column = vec![0i64; n];
    for p in 0..5 {
        if skipped[p] {
            continue;
        }
        column
            .iter_mut()
            .zip(&normalized)
            .for_each(|(c, row)| *c = row[p]);
        match p {
            0 => default_normalize_score(MAX_NODE_SCORE, true, &mut column),
            1 => default_normalize_score(MAX_NODE_SCORE, false, &mut column),
            3 => spread_normalize_score(&mut column),
            _ => continue, // the resource plugins are 0..=100 already
        }
        normalized
            .iter_mut()
            .zip(&column)
            .for_each(|(row, &c)| row[p] = c);
    }
    Scores {
        skipped,
        raw,
        normalized,
    }
}

// ANCHOR: spread
/// PodTopologySpread with the system-default constraints, both
/// `ScheduleAnyway` (so they only score, never filter):
///
/// - `kubernetes.io/hostname`, maxSkew 3: count the group's pods on the node;
/// - `topology.kubernetes.io/zone`, maxSkew 5: count them in the node's zone.
///
/// raw = round(Σ_c count_c × w_c + (maxSkew_c − 1)) over the constraints whose
/// key the node has, with w_c = ln(#domains_c + 2): a constraint with more
/// domains weighs more. With the system defaults a node need not have both
/// keys; it just scores on the ones it has.
struct SpreadState {
    hostname_weight: f64,
    zone_weight: f64,
    /// Matching pods per zone that has a feasible node.
    zone_counts: Vec<(String, i64)>,
}

impl SpreadState {
    fn new(pod: &PodFacts, snapshot: &Snapshot, feasible: &[usize]) -> Self {
        let nodes = snapshot.nodes();
        // Domains come from the feasible nodes. A feasible node without a zone
        // label still makes a domain (zone ""), as upstream counts it.
        let mut zone_counts: Vec<(String, i64)> = Vec::new();
        let mut unlabelled = false;
        for &i in feasible {
            match &nodes[i].zone {
                Some(z) if !zone_counts.iter().any(|(zz, _)| zz == z) => {
                    zone_counts.push((z.clone(), 0))
                }
                Some(_) => {}
                None => unlabelled = true,
            }
        }
        // Counts come from *all* nodes in those zones that the pod's own
        // nodeSelector / required affinity accepts (nodeAffinityPolicy:
        // Honor); taints don't matter (nodeTaintsPolicy: Ignore).
        if let (Some(group), false) = (pod.spread_group_id, zone_counts.is_empty()) {
            for (node, count) in snapshot.group_placements(group) {
                let Some(zone) = &node.zone else {
                    continue;
                };
                let Some(entry) = zone_counts.iter_mut().find(|(z, _)| z == zone) else {
                    continue;
                };
                if required_node_affinity_matches(pod, node) {
                    entry.1 += i64::from(count);
                }
            }
        }
        let zone_domains = zone_counts.len() + usize::from(unlabelled);
        SpreadState {
            hostname_weight: topology_normalizing_weight(feasible.len()),
            zone_weight: topology_normalizing_weight(zone_domains),
            zone_counts,
        }
    }

    fn score(&self, pod: &PodFacts, node: &NodeInfo) -> i64 {
        let mut score = 0.0;
        if node.has_hostname_label {
            let count = pod.spread_group_id.map_or(0, |g| node.spread_count(g));
            score += f64::from(count) * self.hostname_weight + (3 - 1) as f64;
        }
        if let Some(zone) = &node.zone {
            let count = self
                .zone_counts
                .iter()
                .find(|(z, _)| z == zone)
                .map_or(0, |(_, c)| *c);
            score += count as f64 * self.zone_weight + (5 - 1) as f64;
        }
        score.round() as i64
    }
}

/// `topologyNormalizingWeight`: ln(size + 2).
pub fn topology_normalizing_weight(domains: usize) -> f64 {
    ((domains + 2) as f64).ln()
}
// ANCHOR_END: spread
