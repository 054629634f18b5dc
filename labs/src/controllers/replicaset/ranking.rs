//! Which pods go first when a ReplicaSet scales down: the deletion ranking,
//! the `controller.kubernetes.io/pod-deletion-cost` annotation, and the
//! related pods that rank pods by how crowded their node is.
//!
//! This mirrors `pkg/controller/controller_utils.go` (`ActivePodsWithRanks`
//! and its `Less`), `replica_set.go` (`getPodsToDelete`,
//! `getPodsRankedByRelatedPodsOnSameNode`, `getIndirectlyRelatedPods`) and
//! `pkg/apis/core/helper` (`GetDeletionCostFromPodAnnotations`).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::{labels, pod_key};
use crate::machinery::pods::{
    controller_of, is_pod_active, is_pod_ready, pod_phase, ready_condition,
};
use crate::machinery::selector::{SelectorExt, as_selector};

/// The annotation a user (or an autoscaler) sets to say which pods are cheap
/// to lose on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

// ANCHOR: ranking
/// Active pods with the rank used to order them for deletion (upstream's
/// `ActivePodsWithRanks`). `rank[i]` belongs to `pods[i]`.
#[derive(Debug, Clone)]
pub struct ActivePodsWithRanks<'a> {
    pub pods: Vec<&'a Pod>,
    /// How many active related pods share the pod's node.
    pub rank: Vec<usize>,
    /// The time the log2 buckets are measured from.
    pub now: Timestamp,
}

impl ActivePodsWithRanks<'_> {
    /// True when `pods[i]` should be deleted before `pods[j]`. The first rule
    /// on which the two pods differ decides. The common thread: delete the
    /// pod whose loss hurts least, i.e. the one doing the least useful work
    /// and having the least invested in it.
    pub fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.pods[i], self.pods[j]);

        // 1. Unassigned before assigned: a pod no node has accepted runs
        //    nothing, holds no resources and costs nothing to delete.
        let (node_a, node_b) = (node_name(a), node_name(b));
        if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
            return node_a.is_empty();
        }

        // 2. Pending < Unknown < Running: a pod still starting (pulling its
        //    image, say) has done less work than one running; Unknown (its
        //    node stopped reporting) sits in between.
        let (phase_a, phase_b) = (phase_ordinal(a), phase_ordinal(b));
        if phase_a != phase_b {
            return phase_a < phase_b;
        }

        // 3. Not ready before ready: a pod that is not ready receives no
        //    traffic, so removing it does not reduce serving capacity.
        let (ready_a, ready_b) = (is_pod_ready(a), is_pod_ready(b));
        if ready_a != ready_b {
            return !ready_a;
        }

        // 4. Lower pod-deletion-cost first: the user's own word on which pods
        //    are cheap to lose beats every heuristic below.
        let (cost_a, cost_b) = (pod_deletion_cost(a), pod_deletion_cost(b));
        if cost_a != cost_b {
            return cost_a < cost_b;
        }

        // 5. Higher rank first: removing a pod from a node crowded with
        //    related pods spreads the survivors across nodes, so one node
        //    failure takes fewer of them down.
        if self.rank[i] != self.rank[j] {
            return self.rank[i] > self.rank[j];
        }

        // 6. Both ready: the more recently ready one first, since it has
        //    proven itself for less time and may still be warming caches.
        //    Times are compared by log2 bucket, so that pods of similar age
        //    (ready 5h vs 7h ago) count as equally old and the pod UID, which
        //    is random, picks among them. Always removing the very newest pod
        //    would make repeated scale-downs keep the same old pods forever.
        if ready_a && ready_b {
            let (since_a, since_b) = (pod_ready_time(a), pod_ready_time(b));
            if since_a != since_b {
                return self.newer_first(since_a, since_b, a, b);
            }
        }

        // 7. More container restarts first: a crash-looping pod is the least
        //    useful one to keep.
        if let Some(more_restarts) = compare_max_container_restarts(a, b) {
            return more_restarts;
        }

        // 8. Newer creation first, bucketed as in rule 6: an old pod has
        //    survived longer and is more likely to keep doing so.
        let (created_a, created_b) = (creation_time(a), creation_time(b));
        if created_a != created_b {
            return self.newer_first(created_a, created_b, a, b);
        }
        false
    }

    /// Rules 6 and 8: a missing ("zero") time first, then the later log2
    /// bucket of the age first, ties broken by UID.
    fn newer_first(
        &self,
        t_a: Option<Timestamp>,
        t_b: Option<Timestamp>,
        a: &Pod,
        b: &Pod,
    ) -> bool {
        let (Some(t_a), Some(t_b)) = (t_a, t_b) else {
            return t_a.is_none();
        };
        let rank_diff = log2_age(self.now, t_a) - log2_age(self.now, t_b);
        if rank_diff == 0 {
            return a.metadata.uid < b.metadata.uid;
        }
        rank_diff < 0
    }

    /// Sort into deletion order.
    ///
    /// Not `slice::sort_by`: `less` is not a strict weak order. Rule 6 decides
    /// by UID when two ready times differ but share a bucket, yet falls through
    /// to rule 7 when they are equal; three pods can then form a cycle
    /// (a < b < c < a). Go's `sort.Sort` tolerates that; Rust's sort may panic
    /// on it. A merge sort never does.
    pub fn sort(&mut self) {
        let mut order: Vec<usize> = (0..self.pods.len()).collect();
        merge_sort(&mut order, &|i, j| self.less(i, j));
        self.pods = order.iter().map(|&i| self.pods[i]).collect();
        self.rank = order.iter().map(|&i| self.rank[i]).collect();
    }
}

/// Rank every pod by the number of active related pods on its node
/// (upstream's `getPodsRankedByRelatedPodsOnSameNode`).
pub fn pods_ranked_by_related_pods_on_same_node<'a, R: Borrow<Pod>>(
    pods_to_rank: &[&'a Pod],
    related_pods: &[R],
    now: Timestamp,
) -> ActivePodsWithRanks<'a> {
    let mut pods_on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related_pods.iter().map(Borrow::borrow) {
        if is_pod_active(pod) {
            *pods_on_node.entry(node_name(pod)).or_default() += 1;
        }
    }
    ActivePodsWithRanks {
        pods: pods_to_rank.to_vec(),
        rank: pods_to_rank
            .iter()
            .map(|pod| pods_on_node.get(node_name(pod)).copied().unwrap_or(0))
            .collect(),
        now,
    }
}

/// The first `diff` pods in deletion order (upstream's `getPodsToDelete`).
/// When every pod goes anyway, the order does not matter and sorting is
/// skipped.
pub fn pods_to_delete<'a, R: Borrow<Pod>>(
    pods: &[&'a Pod],
    related_pods: &[R],
    diff: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut ranked = pods_ranked_by_related_pods_on_same_node(pods, related_pods, now);
    ranked.sort();
    ranked.pods.truncate(diff);
    ranked.pods
}
// ANCHOR_END: ranking

pub(super) fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .unwrap_or_default()
}

/// Pending 0, Unknown 1, Running 2. Any other phase (including none yet)
/// counts as Pending, as upstream's map lookup defaults to 0.
pub(super) fn phase_ordinal(pod: &Pod) -> u8 {
    match pod_phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// The `controller.kubernetes.io/pod-deletion-cost` annotation as an int32;
/// missing or invalid means 0 (upstream's `GetDeletionCostFromPodAnnotations`).
pub fn pod_deletion_cost(pod: &Pod) -> i32 {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
    else {
        return 0;
    };
    // Kubernetes rejects "+10" and "010"; Rust's parser would accept both.
    let valid_first_digit = value.starts_with('-')
        || value == "0"
        || value.starts_with(|c: char| ('1'..='9').contains(&c));
    if !valid_first_digit {
        return 0;
    }
    value.parse().unwrap_or(0)
}

/// When the pod became ready; `None` (Go's zero time) if it is not ready or
/// the condition has no transition time.
fn pod_ready_time(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

fn creation_time(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `floor(log2(now - t))` with the age in nanoseconds, -1 for an age of zero
/// or less. Computed through `f64` as upstream does, so the bucket
/// boundaries agree exactly.
fn log2_age(now: Timestamp, t: Timestamp) -> i64 {
    let age = now.as_nanosecond() - t.as_nanosecond();
    if age > 0 {
        (age as f64).log2() as i64
    } else {
        -1
    }
}

/// `Some(true)` if `a` restarted more, `Some(false)` if `b` did, `None` on a
/// tie. Regular containers first; sidecars (restartable init containers)
/// only break a tie.
fn compare_max_container_restarts(a: &Pod, b: &Pod) -> Option<bool> {
    let (regular_a, sidecar_a) = max_container_restarts(a);
    let (regular_b, sidecar_b) = max_container_restarts(b);
    if regular_a != regular_b {
        return Some(regular_a > regular_b);
    }
    if sidecar_a != sidecar_b {
        return Some(sidecar_a > sidecar_b);
    }
    None
}

fn max_container_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .fold(0, i32::max);
    // A sidecar is an init container with restartPolicy Always: it keeps
    // running beside the app, so its restarts matter too.
    let sidecars: HashSet<&str> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count)
        .fold(0, i32::max);
    (regular, sidecar)
}

/// A stable top-down merge sort by a "less" function that need not be a
/// total order. Element `j` moves ahead of element `i` only if `less(j, i)`.
fn merge_sort<T: Copy>(items: &mut Vec<T>, less: &impl Fn(T, T) -> bool) {
    if items.len() < 2 {
        return;
    }
    let mut right = items.split_off(items.len() / 2);
    merge_sort(items, less);
    merge_sort(&mut right, less);
    let left = std::mem::take(items);
    let (mut l, mut r) = (0, 0);
    while l < left.len() && r < right.len() {
        if less(right[r], left[l]) {
            items.push(right[r]);
            r += 1;
        } else {
            items.push(left[l]);
            l += 1;
        }
    }
    items.extend_from_slice(&left[l..]);
    items.extend_from_slice(&right[r..]);
}

/// The pods of every ReplicaSet controlled by the same owner as `rs`, usually
/// a Deployment's old and new ReplicaSets (upstream's
/// `getIndirectlyRelatedPods`). Only used to rank pods for deletion: during a
/// rollout, a node crowded with pods of the *other* ReplicaSet is a good place
/// to remove one from. A ReplicaSet without an owner has no related pods.
pub fn indirectly_related_pods<'a, S: Borrow<ReplicaSet>, P: Borrow<Pod>>(
    rs: &ReplicaSet,
    replica_sets: &[S],
    pods: &'a [P],
) -> Vec<&'a Pod> {
    let Some(owner) = controller_of(&rs.metadata) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut related = Vec::new();
    for other in replica_sets.iter().map(Borrow::borrow) {
        if controller_of(&other.metadata).is_none_or(|o| o.uid != owner.uid) {
            continue;
        }
        let Some(selector) = other
            .spec
            .as_ref()
            .and_then(|spec| as_selector(&spec.selector))
        else {
            continue;
        };
        for pod in pods.iter().map(Borrow::borrow) {
            if pod.metadata.namespace == other.metadata.namespace
                && selector.matches(labels(&pod.metadata))
                && seen.insert(pod_key(pod))
            {
                related.push(pod);
            }
        }
    }
    related
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::replicaset::tests::{
        HOUR, NO_PODS, map, names, now, pod, replica_set, t,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn related_pods_come_from_replica_sets_with_the_same_owner() {
        let deployment_ref = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "uid-deploy".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let owned_rs = |name: &str, uid: &str, version: &str, owner: Option<&OwnerReference>| {
            let mut rs = replica_set(1);
            rs.metadata.name = Some(name.into());
            rs.metadata.uid = Some(uid.into());
            rs.metadata.owner_references = owner.map(|o| vec![o.clone()]);
            rs.spec.as_mut().unwrap().selector.match_labels =
                Some(map(&[("app", "web"), ("v", version)]));
            rs
        };
        let new = owned_rs("web-v2", "uid-v2", "2", Some(&deployment_ref));
        let old = owned_rs("web-v1", "uid-v1", "1", Some(&deployment_ref));
        let stranger = owned_rs("web-v0", "uid-v0", "0", None);
        let all = vec![
            pod("a").labels(&[("app", "web"), ("v", "2")]).build(),
            pod("b").labels(&[("app", "web"), ("v", "1")]).build(),
            pod("c").labels(&[("app", "web"), ("v", "0")]).build(),
            pod("d")
                .labels(&[("app", "web"), ("v", "1")])
                .namespace("x")
                .build(),
        ];
        // Listed twice to show duplicates are dropped.
        let replica_sets = [new.clone(), old.clone(), stranger.clone(), new.clone()];
        let related = indirectly_related_pods(&new, &replica_sets, &all);
        assert_eq!(names(&related), ["a", "b"]);
        // No owner, no related pods.
        assert!(indirectly_related_pods(&stranger, &replica_sets, &all).is_empty());
    }
    // ---- deletion ranking -------------------------------------------------

    /// `less` on two pods with ranks, both ways.
    fn order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> (bool, bool) {
        let ranked = ActivePodsWithRanks {
            pods: vec![a, b],
            rank: vec![rank_a, rank_b],
            now: now(),
        };
        (ranked.less(0, 1), ranked.less(1, 0))
    }

    fn assert_deleted_first(case: &str, first: (&Pod, usize), then: (&Pod, usize)) {
        assert_eq!(
            order(first.0, first.1, then.0, then.1),
            (true, false),
            "{case}: {:?} should go before {:?}",
            first.0.metadata.name,
            then.0.metadata.name
        );
    }

    /// The pods of upstream's `TestSortingActivePodsWithRanks`, without UIDs
    /// as there.
    struct Upstream {
        unscheduled: Pod,
        scheduled_pending: Pod,
        unknown_phase: Pod,
        running_not_ready: Pod,
        ready_no_last_transition_time: Pod,
        ready_now: Pod,
        ready_then: Pod,
        ready_now_high_restarts: Pod,
        ready_now_high_sidecar_restarts: Pod,
        ready_now_created_then: Pod,
        low_deletion_cost: Pod,
        high_deletion_cost: Pod,
        unscheduled_5_hours: Pod,
        unscheduled_8_hours: Pod,
        ready_2_hours: Pod,
        ready_5_hours: Pod,
        ready_8_hours: Pod,
    }

    fn upstream() -> Upstream {
        let month = t(-30 * 24 * HOUR);
        let base = |name: &str, node: &str| {
            let p = pod(name).no_uid();
            if node.is_empty() { p } else { p.node(node) }
        };
        let ready = |name: &str, node: &str, since: Timestamp, created: Timestamp| {
            base(name, node).ready(Some(since)).created(created)
        };
        Upstream {
            unscheduled: base("unscheduled", "").build(),
            scheduled_pending: base("pending", "node").build(),
            unknown_phase: base("unknown-phase", "node").phase("Unknown").build(),
            running_not_ready: base("not-ready", "node").phase("Running").build(),
            ready_no_last_transition_time: base("ready-no-ltt", "node").ready(None).build(),
            ready_now: ready("ready-now", "node", now(), now()).build(),
            ready_then: ready("ready-then", "node", month, month).build(),
            ready_now_high_restarts: ready("ready-high-restarts", "node", now(), now())
                .restarts(10)
                .build(),
            ready_now_high_sidecar_restarts: ready("ready-high-sidecar", "node", now(), now())
                .sidecar_restarts(10)
                .build(),
            ready_now_created_then: ready("ready-now-created-then", "node", now(), month).build(),
            low_deletion_cost: ready("low-cost", "node", now(), month).cost("10").build(),
            high_deletion_cost: ready("high-cost", "node", now(), month).cost("100").build(),
            unscheduled_5_hours: base("unscheduled-5h", "").created(t(-5 * HOUR)).build(),
            unscheduled_8_hours: base("unscheduled-8h", "").created(t(-8 * HOUR)).build(),
            ready_2_hours: ready("ready-2h", "", t(-2 * HOUR), month).build(),
            ready_5_hours: ready("ready-5h", "", t(-5 * HOUR), month).build(),
            ready_8_hours: ready("ready-8h", "", t(-8 * HOUR), month).build(),
        }
    }

    #[test]
    fn upstream_equalities() {
        let u = upstream();
        let cases = [
            (&u.unscheduled, &u.unscheduled),
            (&u.scheduled_pending, &u.scheduled_pending),
            (&u.unknown_phase, &u.unknown_phase),
            (&u.running_not_ready, &u.running_not_ready),
            (&u.ready_now_created_then, &u.ready_now_created_then),
            (&u.ready_now, &u.ready_now),
            (&u.ready_then, &u.ready_then),
            (&u.ready_now_high_restarts, &u.ready_now_high_restarts),
            // 5h and 8h old share the log2 bucket 44, and the UIDs are equal.
            (&u.unscheduled_5_hours, &u.unscheduled_8_hours),
            (&u.ready_5_hours, &u.ready_8_hours),
        ];
        for (a, b) in cases {
            assert_eq!(
                order(a, 1, b, 1),
                (false, false),
                "{:?} vs {:?}",
                a.metadata.name,
                b.metadata.name
            );
        }
    }

    #[test]
    fn upstream_inequalities() {
        let u = upstream();
        // (deleted first, rank), (kept, rank)
        let cases = [
            ((&u.unscheduled, 1), (&u.scheduled_pending, 2)),
            ((&u.unscheduled, 2), (&u.scheduled_pending, 1)),
            ((&u.scheduled_pending, 1), (&u.unknown_phase, 2)),
            ((&u.unknown_phase, 1), (&u.running_not_ready, 2)),
            (
                (&u.running_not_ready, 1),
                (&u.ready_no_last_transition_time, 1),
            ),
            ((&u.ready_no_last_transition_time, 1), (&u.ready_now, 1)),
            ((&u.ready_now, 2), (&u.ready_no_last_transition_time, 1)),
            ((&u.ready_now, 1), (&u.ready_then, 1)),
            ((&u.ready_now, 2), (&u.ready_then, 1)),
            ((&u.ready_now_high_restarts, 1), (&u.ready_now, 1)),
            ((&u.ready_now, 2), (&u.ready_now_high_restarts, 1)),
            ((&u.ready_now, 1), (&u.ready_now_created_then, 1)),
            ((&u.ready_now_created_then, 2), (&u.ready_now, 1)),
            ((&u.low_deletion_cost, 2), (&u.high_deletion_cost, 1)),
            ((&u.ready_2_hours, 1), (&u.ready_5_hours, 1)),
            ((&u.ready_now_high_sidecar_restarts, 1), (&u.ready_now, 1)),
        ];
        for (first, then) in cases {
            assert_deleted_first("upstream", (first.0, first.1), (then.0, then.1));
        }
    }

    #[test]
    fn each_rule_in_isolation() {
        let running = |name: &str| pod(name).node("n1").ready(Some(t(-HOUR))).created(t(-HOUR));
        // (rule, deleted first, kept); all else equal, rank 0.
        let cases = [
            (
                "1 unassigned",
                pod("a").build(),
                pod("b").node("n1").build(),
            ),
            (
                "2 pending before unknown",
                pod("a").node("n1").build(),
                pod("b").node("n1").phase("Unknown").build(),
            ),
            (
                "2 unknown before running",
                pod("a").node("n1").phase("Unknown").build(),
                pod("b").node("n1").phase("Running").build(),
            ),
            (
                "2 no phase counts as pending",
                pod("a").node("n1").phase("").build(),
                pod("b").node("n1").phase("Unknown").build(),
            ),
            (
                "3 not ready",
                pod("a")
                    .node("n1")
                    .phase("Running")
                    .not_ready_condition()
                    .build(),
                pod("b").node("n1").ready(None).build(),
            ),
            (
                "4 lower deletion cost",
                running("a").cost("-5").build(),
                running("b").build(),
            ),
            (
                "4 invalid cost is 0",
                running("a").cost("+10").build(),
                running("b").cost("1").build(),
            ),
            (
                "4 leading zero is invalid",
                running("a").cost("010").build(),
                running("b").cost("1").build(),
            ),
            (
                "4 out of int32 range is invalid",
                running("a").cost("99999999999").build(),
                running("b").cost("1").build(),
            ),
            (
                "6 more recently ready",
                running("a").ready(Some(t(-60))).build(),
                running("b").ready(Some(t(-HOUR))).build(),
            ),
            (
                "6 ready without a time first",
                running("a").ready(None).build(),
                running("b").ready(Some(t(0))).build(),
            ),
            (
                "6 same bucket: lower uid",
                running("a").ready(Some(t(-5 * HOUR))).uid("1").build(),
                running("b").ready(Some(t(-7 * HOUR))).uid("2").build(),
            ),
            (
                "7 more restarts",
                running("a").restarts(3).build(),
                running("b").restarts(2).build(),
            ),
            (
                "7 sidecar restarts break a tie",
                running("a").sidecar_restarts(1).build(),
                running("b").build(),
            ),
            (
                "8 newer creation",
                running("a").created(t(-60)).build(),
                running("b").created(t(-HOUR)).build(),
            ),
            (
                "8 no creation time first",
                pod("a").node("n1").build(),
                pod("b").node("n1").created(t(0)).build(),
            ),
            (
                "8 same bucket: lower uid",
                running("a").created(t(-5 * HOUR)).uid("1").build(),
                running("b").created(t(-7 * HOUR)).uid("2").build(),
            ),
        ];
        for (case, first, then) in &cases {
            assert_deleted_first(case, (first, 0), (then, 0));
        }
        // 5: the rank alone.
        let a = running("a").build();
        let b = running("b").build();
        assert_deleted_first("5 higher rank", (&a, 3), (&b, 1));
    }

    #[test]
    fn earlier_rules_win() {
        let month = t(-30 * 24 * HOUR);
        // (case, deleted first, kept, ranks)
        let cases = [
            (
                "1 beats 2: unassigned running before assigned pending",
                pod("a").phase("Running").build(),
                pod("b").node("n1").build(),
            ),
            (
                "2 beats 3: pending before running-not-ready",
                pod("a").node("n1").build(),
                pod("b").node("n1").phase("Running").build(),
            ),
            (
                "3 beats 4: not ready with high cost before ready with low cost",
                pod("a").node("n1").phase("Running").cost("1000").build(),
                pod("b")
                    .node("n1")
                    .ready(Some(t(-HOUR)))
                    .cost("-1000")
                    .build(),
            ),
            (
                "4 beats 5: lower cost with lower rank",
                pod("a").node("n1").ready(Some(t(-HOUR))).cost("1").build(),
                pod("b").node("n1").ready(Some(t(-HOUR))).cost("2").build(),
            ),
            (
                "6 beats 7: recently ready before crash-looping",
                pod("a").node("n1").ready(Some(t(-60))).build(),
                pod("b")
                    .node("n1")
                    .ready(Some(t(-HOUR)))
                    .restarts(50)
                    .build(),
            ),
            (
                "6 beats 8: recently ready though created long ago",
                pod("a")
                    .node("n1")
                    .ready(Some(t(-60)))
                    .created(month)
                    .build(),
                pod("b")
                    .node("n1")
                    .ready(Some(t(-HOUR)))
                    .created(t(-HOUR))
                    .build(),
            ),
            (
                "7 beats 8: more restarts though older",
                pod("a").node("n1").restarts(1).created(month).build(),
                pod("b").node("n1").created(t(-60)).build(),
            ),
        ];
        for (case, first, then) in &cases {
            // Give the pod that should go first the lower rank where rank
            // could otherwise interfere with the rule under test.
            let (rank_first, rank_then) = if case.starts_with("4 beats 5") {
                (0, 5)
            } else {
                (0, 0)
            };
            assert_deleted_first(case, (first, rank_first), (then, rank_then));
        }
        // Rule 5 beats rule 6: a crowded node's pod goes first though it has
        // been ready longer.
        let a = pod("a").node("n1").ready(Some(t(-HOUR))).build();
        let b = pod("b").node("n2").ready(Some(t(-60))).build();
        assert_deleted_first("5 beats 6", (&a, 2), (&b, 1));
    }

    #[test]
    fn log2_buckets() {
        assert_eq!(log2_age(now(), now()), -1);
        assert_eq!(log2_age(now(), t(60)), -1, "future times count as age 0");
        let ns = |n: i128| Timestamp::from_nanosecond(now().as_nanosecond() - n).unwrap();
        assert_eq!(log2_age(now(), ns(1)), 0);
        assert_eq!(log2_age(now(), ns(1023)), 9);
        assert_eq!(log2_age(now(), ns(1024)), 10);
        // 5h and 8h share a bucket; 2h does not.
        assert_eq!(log2_age(now(), t(-5 * HOUR)), 44);
        assert_eq!(log2_age(now(), t(-8 * HOUR)), 44);
        assert_eq!(log2_age(now(), t(-2 * HOUR)), 42);
    }

    #[test]
    fn pods_to_delete_in_order() {
        let month = t(-30 * 24 * HOUR);
        let all = [
            pod("ready-old")
                .node("n1")
                .ready(Some(month))
                .created(month)
                .build(),
            pod("ready-recent")
                .node("n2")
                .ready(Some(t(-60)))
                .created(t(-120))
                .build(),
            pod("running-not-ready").node("n1").phase("Running").build(),
            pod("crowded")
                .node("n3")
                .ready(Some(month))
                .created(month)
                .build(),
            pod("pending-scheduled").node("n2").build(),
            pod("unscheduled").build(),
            pod("unknown").node("n1").phase("Unknown").build(),
            pod("cheap")
                .node("n1")
                .ready(Some(month))
                .created(month)
                .cost("-1")
                .build(),
        ];
        let active: Vec<&Pod> = all.iter().collect();
        // Pods of a sibling ReplicaSet crowd node n3; inactive ones don't count.
        let related = vec![
            pod("sib-1").node("n3").build(),
            pod("sib-2").node("n3").build(),
            pod("sib-3").node("n1").terminating().build(),
            pod("sib-4").node("n1").phase("Failed").build(),
        ];
        let expected = [
            "unscheduled",
            "pending-scheduled",
            "unknown",
            "running-not-ready",
            "cheap",
            "crowded",
            "ready-recent",
            "ready-old",
        ];
        for n in 0..expected.len() {
            assert_eq!(
                names(&pods_to_delete(&active, &related, n, now())),
                expected[..n],
                "n={n}"
            );
        }
        // All of them (or more): no need to sort, input order kept.
        assert_eq!(
            names(&pods_to_delete(&active, &related, 20, now())),
            names(&active)
        );
    }

    #[test]
    fn ranks_count_active_related_pods_on_the_same_node() {
        let all = [
            pod("a").node("n1").build(),
            pod("b").node("n2").build(),
            pod("c").build(),
        ];
        let related = vec![
            pod("r1").node("n1").build(),
            pod("r2").node("n1").build(),
            pod("r3").node("n2").terminating().build(),
            pod("r4").build(),
        ];
        let active: Vec<&Pod> = all.iter().collect();
        let ranked = pods_ranked_by_related_pods_on_same_node(&active, &related, now());
        assert_eq!(ranked.rank, [2, 0, 1]);
    }

    #[test]
    fn sorting_survives_a_non_transitive_order() {
        // a and c became ready at the same instant, so rule 6 passes them on
        // to rule 7 (a restarted more); b shares their bucket but not their
        // instant, so rule 6 orders b against both by UID. The result is a
        // cycle: a < c (restarts), c < b (uid), b < a (uid).
        let since = t(-5 * HOUR);
        let a = pod("a")
            .node("n")
            .ready(Some(since))
            .uid("2")
            .restarts(5)
            .build();
        let b = pod("b")
            .node("n")
            .ready(Some(t(-6 * HOUR)))
            .uid("1")
            .build();
        let c = pod("c").node("n").ready(Some(since)).uid("0").build();
        assert_deleted_first("a<c", (&a, 0), (&c, 0));
        assert_deleted_first("c<b", (&c, 0), (&b, 0));
        assert_deleted_first("b<a", (&b, 0), (&a, 0));
        let many: Vec<&Pod> = [&a, &b, &c].iter().cycle().take(300).copied().collect();
        // Must not panic, and must return what was asked for.
        assert_eq!(pods_to_delete(&many, NO_PODS, 100, now()).len(), 100);
    }
}
