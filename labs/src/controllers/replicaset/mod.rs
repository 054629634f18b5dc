//! The ReplicaSet controller's decision core: given a ReplicaSet and the pods
//! the cache holds, decide what to adopt, release, create and delete, and what
//! the status should say.
//!
//! This follows Kubernetes' `pkg/controller/replicaset/replica_set.go`
//! (`syncReplicaSet`, `manageReplicas`, `calculateStatus`) and
//! `pkg/controller/controller_utils.go` (`ClaimPods`, `slowStartBatch`,
//! `ActivePodsWithRanks`, `ControllerExpectations`), with the same names, so
//! that a reader can move from here to the real code.
//!
//! Nothing in this file calls the API server, reads a clock or awaits
//! anything except [`slow_start_batch`], which awaits the futures it is given.
//! The plumbing runs one sync of a ReplicaSet (key `namespace/name`) like this,
//! which is `syncReplicaSet` step by step:
//!
//! 1. `needs_sync = expectations.satisfied(key, now)`, *before* reading the
//!    cache, as upstream does: an event observed after the check only makes
//!    the next sync more up to date, never this one wrong.
//! 2. `let r = reconcile(&rs, &pods_in_namespace, &related, now)`, where
//!    `related` comes from [`indirectly_related_pods`].
//! 3. Patch every pod in `r.adopt` with [`adopt_patch`] and every pod in
//!    `r.release` with [`release_patch`]. A failure other than NotFound ends
//!    the sync with an error (requeue with backoff): `r.scale` assumed the
//!    adoptions succeeded.
//! 4. Only if `needs_sync`, carry out `r.scale`:
//!    * `Create { count, pod }`: `expectations.expect_creations(key, count,
//!      now)`, then [`slow_start_batch`] creating copies of `pod`; call
//!      `creation_observed` once for every pod not created (failed or never
//!      tried), because no watch event will ever report them.
//!    * `Delete { pods }`: `expectations.expect_deletions(key, keys, now)`,
//!      delete them all concurrently; on a failed delete call
//!      `deletion_observed(key, pod_key)` for that pod.
//!    * Record a [`ReplicaSetEvent`] for each create and delete.
//! 5. Write `r.status` if it differs from `rs.status`. If step 4 failed, write
//!    [`calculate_status`]`(rs, &r.active, Some(error), now)` instead, which
//!    adds the `ReplicaFailure` condition, and requeue with backoff.
//! 6. On success, requeue after `r.requeue_after` if it is set.
//!
//! The informer handlers lower the expectations: a pod added that names the
//! ReplicaSet as its controller calls `creation_observed`; a pod deleted, or
//! one whose `deletionTimestamp` is set, calls `deletion_observed`.
//!
//! Left out, on purpose: `terminatingReplicas` (behind an alpha feature gate in
//! Kubernetes 1.33, off by default, so the status leaves it unset), the
//! "namespace is terminating" special case for create errors (the plumbing
//! can treat such an error as success), and metrics.

pub mod controller;

use crate::machinery::selector::SelectorExt;
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

/// At most this many pods are created or deleted in one sync. A ReplicaSet
/// scaled from 0 to 10,000 gets there in steps of 500, so one sync never
/// floods the API server and other ReplicaSets' workers get their turn.
/// (Upstream's `BurstReplicas`.)
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch creates this many pods (`SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// Expectations older than this are ignored (`ExpectationsTimeout`), so a
/// watch event that is lost for good cannot stall a ReplicaSet forever.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The annotation a user (or an autoscaler) sets to say which pods are cheap
/// to lose on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The ReplicaSet condition that reports failed creates or deletes.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

// ANCHOR: reconcile
/// What one sync of a ReplicaSet decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconcile<'a> {
    /// Orphans that match the selector: the controller takes them over by
    /// adding itself as their controller ownerReference. They already count
    /// in `active`.
    pub adopt: Vec<&'a Pod>,
    /// Pods this ReplicaSet controls that no longer match its selector
    /// (someone relabelled them): the controller removes its ownerReference
    /// and stops counting them, so a replacement is created.
    pub release: Vec<&'a Pod>,
    /// The active pods this ReplicaSet owns after adoption and release: the
    /// observed state that is compared with `spec.replicas`.
    pub active: Vec<&'a Pod>,
    /// `active.len() - spec.replicas`: negative means too few pods.
    pub diff: i64,
    /// What to create or delete (upstream's `manageReplicas`).
    pub scale: Scale<'a>,
    /// The status to write, assuming `scale` succeeds.
    pub status: ReplicaSetStatus,
    /// Sync again after this long even if no event arrives.
    pub requeue_after: Option<Duration>,
}

/// The scale step of one sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale<'a> {
    /// Observed equals desired, or the ReplicaSet is being deleted (then the
    /// garbage collector, not this controller, removes its pods).
    None,
    /// Create `count` pods, each a copy of `pod`: the template with a
    /// `generateName`, so the API server picks a unique name for each.
    Create { count: usize, pod: Box<Pod> },
    /// Delete these pods, the first ones in the deletion order.
    Delete { pods: Vec<&'a Pod> },
}

/// One sync of a ReplicaSet: upstream's `syncReplicaSet` without the API
/// calls.
///
/// `pods` are all pods in the ReplicaSet's namespace, not only those matching
/// the selector: a pod we own that no longer matches must be seen to be
/// released. `related_pods` are the pods of every ReplicaSet with the same
/// owner (see [`indirectly_related_pods`]); they only rank pods for deletion.
pub fn reconcile<'a, P: Borrow<Pod>, R: Borrow<Pod>>(
    rs: &ReplicaSet,
    pods: &'a [P],
    related_pods: &[R],
    now: Timestamp,
) -> Reconcile<'a> {
    // The API server rejects a ReplicaSet without a spec or with a malformed
    // selector, so this only guards against bad input. Upstream logs and does
    // nothing; acting on a selector we cannot read could release every pod.
    let Some(spec) = rs.spec.as_ref() else {
        return Reconcile::unchanged(rs);
    };
    if as_selector(&spec.selector).is_none() {
        return Reconcile::unchanged(rs);
    }

    // Observed state: the active pods this ReplicaSet owns, after adopting
    // matching orphans and releasing owned pods that stopped matching.
    let ClaimedPods {
        claimed: active,
        adopt,
        release,
    } = claim_pods(rs, pods);

    // Desired state versus observed state.
    let replicas = desired_replicas(rs);
    let diff = active.len() as i64 - replicas as i64;

    // A ReplicaSet being deleted must not fight the garbage collector by
    // replacing the pods it removes.
    let scale = if rs.metadata.deletion_timestamp.is_some() {
        Scale::None
    } else {
        manage_replicas(rs, &active, diff, related_pods, now)
    };

    let status = calculate_status(rs, &active, None, now);

    // A pod that is ready but not yet available (minReadySeconds) produces no
    // event when it becomes available: nothing about it changes except the
    // clock. So ask to be woken up when it should have become available.
    let min_ready_seconds = spec.min_ready_seconds.unwrap_or(0);
    let requeue_after = (min_ready_seconds > 0
        && status.ready_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) != replicas)
        .then(|| Duration::from_secs(min_ready_seconds as u64));

    Reconcile {
        adopt,
        release,
        active,
        diff,
        scale,
        status,
        requeue_after,
    }
}

/// Upstream's `manageReplicas`, minus the API calls: how many pods to create,
/// or which to delete. Never more than [`BURST_REPLICAS`] in one sync.
fn manage_replicas<'a, R: Borrow<Pod>>(
    rs: &ReplicaSet,
    active: &[&'a Pod],
    diff: i64,
    related_pods: &[R],
    now: Timestamp,
) -> Scale<'a> {
    let burst = BURST_REPLICAS as u64;
    if diff < 0 {
        let count = diff.unsigned_abs().min(burst) as usize;
        Scale::Create {
            count,
            pod: Box::new(pod_from_template(rs)),
        }
    } else if diff > 0 {
        let count = diff.unsigned_abs().min(burst) as usize;
        Scale::Delete {
            pods: pods_to_delete(active, related_pods, count, now),
        }
    } else {
        Scale::None
    }
}
// ANCHOR_END: reconcile

impl Reconcile<'_> {
    /// "Do nothing": what a sync decides when it cannot read the ReplicaSet.
    fn unchanged(rs: &ReplicaSet) -> Self {
        Reconcile {
            adopt: Vec::new(),
            release: Vec::new(),
            active: Vec::new(),
            diff: 0,
            scale: Scale::None,
            status: rs.status.clone().unwrap_or_default(),
            requeue_after: None,
        }
    }
}

/// `spec.replicas`; the API server defaults a missing value to 1.
fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1)
        .max(0)
}

/// The work queue key of an object: `namespace/name` (upstream's `KeyFunc`).
pub fn replica_set_key(rs: &ReplicaSet) -> String {
    object_key(&rs.metadata)
}

/// The key expectations track a pod deletion by: `namespace/name`
/// (upstream's `PodKey`).
pub fn pod_key(pod: &Pod) -> String {
    object_key(&pod.metadata)
}

fn object_key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

// ANCHOR: claim
/// The outcome of claiming pods (upstream's `PodControllerRefManager.ClaimPods`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimedPods<'a> {
    /// Active pods this ReplicaSet controls, including those about to be adopted.
    pub claimed: Vec<&'a Pod>,
    /// Orphans to adopt.
    pub adopt: Vec<&'a Pod>,
    /// Owned pods to release.
    pub release: Vec<&'a Pod>,
}

/// Decide which pods belong to this ReplicaSet.
///
/// Labels say which pods a ReplicaSet *wants*; the controller ownerReference
/// says which pods it *has*. Two ReplicaSets with overlapping selectors would
/// otherwise both count the same pod and never agree on how many exist, so a
/// pod is counted only by the one controller named in its ownerReferences.
pub fn claim_pods<'a, P: Borrow<Pod>>(rs: &ReplicaSet, pods: &'a [P]) -> ClaimedPods<'a> {
    let mut out = ClaimedPods::default();
    let Some(selector) = rs
        .spec
        .as_ref()
        .and_then(|spec| as_selector(&spec.selector))
    else {
        return out;
    };
    let rs_uid = rs.metadata.uid.as_deref();
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();

    // Pods that are finished or terminating are no replicas: they are neither
    // counted, nor adopted, nor released. A terminating pod is going away
    // whatever we do, and counting it would delay its replacement.
    for pod in pods.iter().map(Borrow::borrow).filter(|p| is_pod_active(p)) {
        let matches = selector.matches(labels(&pod.metadata));
        match controller_of(&pod.metadata) {
            // Controlled by someone else: never touch another controller's pod,
            // even if our selector matches it.
            Some(owner) if Some(owner.uid.as_str()) != rs_uid => {}
            // Ours and still matching. (Allowed even while we are being
            // deleted, because it takes no action.)
            Some(_) if matches => out.claimed.push(pod),
            // Ours but relabelled: let it go, unless we are being deleted, in
            // which case the garbage collector is about to handle it anyway.
            Some(_) => {
                if !rs_deleting {
                    out.release.push(pod);
                }
            }
            // An orphan that matches: adopt it, unless we are being deleted
            // (adopting then would hand the pod straight to the garbage
            // collector) or it lives in another namespace (ownerReferences
            // cannot cross namespaces).
            None => {
                let same_namespace = rs.metadata.namespace.as_deref().is_none_or(str::is_empty)
                    || rs.metadata.namespace == pod.metadata.namespace;
                if matches && !rs_deleting && same_namespace {
                    out.adopt.push(pod);
                    out.claimed.push(pod);
                }
            }
        }
    }
    out
}
// ANCHOR_END: claim

fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// The controller ownerReference this ReplicaSet puts on its pods.
///
/// `blockOwnerDeletion` makes a foreground deletion of the ReplicaSet wait
/// until this pod is gone.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod to create (upstream's `GetPodFromTemplate`): the template's labels,
/// annotations, finalizers and spec, our controller ownerReference, and a
/// `generateName` so every create gets a fresh name (`web-7x2kq`) and a
/// retried create can never collide with an earlier one.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|spec| spec.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pods_prefix(rs.metadata.name.as_deref().unwrap_or_default())),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `<name>-`, unless that would be too long to be a valid name prefix.
fn pods_prefix(controller_name: &str) -> String {
    const MAX_NAME_LENGTH: usize = 253; // a DNS subdomain
    if controller_name.len() < MAX_NAME_LENGTH {
        format!("{controller_name}-")
    } else {
        controller_name.to_string()
    }
}

/// The strategic merge patch that adopts `pod` (upstream's
/// `ownerRefControllerPatch`). Its `uid` is a precondition: if the pod was
/// deleted and recreated under the same name meanwhile, the patch fails
/// instead of adopting a pod we never looked at.
pub fn adopt_patch(rs: &ReplicaSet, pod: &Pod) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [controller_ref(rs)],
            "uid": pod.metadata.uid,
        }
    })
}

/// The strategic merge patch that releases `pod`: delete our ownerReference
/// (matched by uid), keep any others.
pub fn release_patch(rs: &ReplicaSet, pod: &Pod) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": rs.metadata.uid}],
            "uid": pod.metadata.uid,
        }
    })
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

// ANCHOR: status
/// The status the ReplicaSet reports (upstream's `calculateStatus`, plus the
/// `observedGeneration` that `updateReplicaSetStatus` sets).
///
/// `manage_replicas_err` is the error of the scale step, if it failed: it
/// sets the `ReplicaFailure` condition, which a later successful sync removes.
/// Zero counts are left unset, as Kubernetes omits them on the wire.
pub fn calculate_status(
    rs: &ReplicaSet,
    active_pods: &[&Pod],
    manage_replicas_err: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let min_ready_seconds = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let no_labels = BTreeMap::new();
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);

    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in active_pods {
        // The selector may be looser than the template's labels; a pod that
        // matches the selector but lacks some template label counts as a
        // replica, yet not as a fully labeled one.
        let pod_labels = labels(&pod.metadata);
        if template_labels
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
    }

    let conditions = status.conditions.take().unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    let conditions: Vec<ReplicaSetCondition> = match manage_replicas_err {
        // A new failure: say whether creating or deleting went wrong.
        Some(err) if !had_failure => {
            let diff = active_pods.len() as i64 - desired_replicas(rs) as i64;
            let reason = match diff {
                ..0 => Some("FailedCreate".to_string()),
                1.. => Some("FailedDelete".to_string()),
                0 => None,
            };
            let mut conditions = conditions;
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason,
                message: Some(err.to_string()),
                last_transition_time: Some(Time(now)),
            });
            conditions
        }
        // Still failing: keep the existing condition and its transition time.
        Some(_) => conditions,
        // Success clears the failure.
        None => conditions
            .into_iter()
            .filter(|c| c.type_ != REPLICA_FAILURE)
            .collect(),
    };
    status.conditions = (!conditions.is_empty()).then_some(conditions);

    status.replicas = active_pods.len() as i32;
    status.fully_labeled_replicas = omit_zero(fully_labeled);
    status.ready_replicas = omit_zero(ready);
    status.available_replicas = omit_zero(available);
    status.terminating_replicas = None;
    status.observed_generation = rs.metadata.generation;
    status
}

fn omit_zero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

// ANCHOR_END: status

// ANCHOR: slow_start
/// The batch sizes of a slow start of `count` creates: 1, 2, 4, 8, … and
/// whatever is left at the end. `slow_start_batches(10)` is `[1, 2, 4, 3]`.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut batch = remaining.min(SLOW_START_INITIAL_BATCH_SIZE);
    while batch > 0 {
        batches.push(batch);
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    batches
}

/// Run `create` `count` times in slow-start batches (upstream's
/// `slowStartBatch`): the calls of one batch run concurrently, and the first
/// batch with a failure is the last. Returns how many calls succeeded and the
/// first error.
///
/// Why: when every create is bound to fail (a quota is exhausted, the
/// template is invalid, an admission webhook is down), a ReplicaSet of 500
/// would otherwise send 500 doomed requests every sync. Slow start sends one,
/// sees it fail, and stops; when creates succeed it doubles its pace, so a
/// healthy scale-up still takes only about log2(count) round trips.
pub async fn slow_start_batch<F, Fut, E>(count: usize, mut create: F) -> (usize, Option<E>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut successes = 0;
    for batch in slow_start_batches(count) {
        let results = futures::future::join_all((0..batch).map(|_| create())).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => successes += 1,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
    }
    (successes, None)
}
// ANCHOR_END: slow_start

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

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .unwrap_or_default()
}

/// Pending 0, Unknown 1, Running 2. Any other phase (including none yet)
/// counts as Pending, as upstream's map lookup defaults to 0.
fn phase_ordinal(pod: &Pod) -> u8 {
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

// ANCHOR: expectations
/// What each ReplicaSet is waiting to see in its watch (upstream's
/// `UIDTrackingControllerExpectations`).
///
/// Why it exists: the controller decides from its *cache*, which the watch
/// fills in a little after the API server changes. Right after creating 3
/// pods, a sync triggered by some other event would still see 0 pods in the
/// cache and create 3 more. So before creating, the controller writes down
/// "expect 3 creations"; each pod-added event lowers the count; and until it
/// reaches 0 the ReplicaSet is not scaled again. Deletions are tracked by
/// pod key, so only the deletions the controller asked for count. If an
/// event never comes (a failed create, a lost watch), the entry expires after
/// [`EXPECTATIONS_TIMEOUT`] and the controller trusts its cache again.
///
/// Every method takes `now` from the caller: there is no clock in here.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    by_key: HashMap<String, ControlleeExpectations>,
}

#[derive(Debug, Clone)]
struct ControlleeExpectations {
    add: i64,
    del: i64,
    /// Keys (`namespace/name`) of the pods whose deletion is awaited.
    deletions: HashSet<String>,
    /// When the expectations were set; they expire [`EXPECTATIONS_TIMEOUT`] later.
    timestamp: Timestamp,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// May the ReplicaSet `key` be scaled now? Yes if nothing is expected,
    /// if everything expected has been observed, or if the expectations are
    /// older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, key: &str, now: Timestamp) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(exp) => {
                let fulfilled = exp.add <= 0 && exp.del <= 0;
                let age = now.as_nanosecond() - exp.timestamp.as_nanosecond();
                let expired = age > EXPECTATIONS_TIMEOUT.as_nanos() as i128;
                fulfilled || expired
            }
        }
    }

    /// About to create `adds` pods. Replaces whatever was expected before,
    /// and restarts the timeout.
    pub fn expect_creations(&mut self, key: &str, adds: usize, now: Timestamp) {
        self.set(key, adds as i64, HashSet::new(), now);
    }

    /// About to delete the pods with these keys (see [`pod_key`]).
    pub fn expect_deletions(
        &mut self,
        key: &str,
        pod_keys: impl IntoIterator<Item = String>,
        now: Timestamp,
    ) {
        let deletions: HashSet<String> = pod_keys.into_iter().collect();
        self.set(key, 0, deletions, now);
    }

    fn set(&mut self, key: &str, add: i64, deletions: HashSet<String>, now: Timestamp) {
        let exp = ControlleeExpectations {
            add,
            del: deletions.len() as i64,
            deletions,
            timestamp: now,
        };
        self.by_key.insert(key.to_string(), exp);
    }

    /// A pod controlled by `key` was seen created, or a create we expected
    /// will never happen (it failed, or slow start skipped it).
    pub fn creation_observed(&mut self, key: &str) {
        if let Some(exp) = self.by_key.get_mut(key) {
            exp.add -= 1;
        }
    }

    /// The pod `pod_key` was seen deleted (or terminating), or its delete
    /// failed. Counts only for a pod we asked to delete, and only once, though
    /// both the deletionTimestamp update and the final delete event report it.
    pub fn deletion_observed(&mut self, key: &str, pod_key: &str) {
        if let Some(exp) = self.by_key.get_mut(key)
            && exp.deletions.remove(pod_key)
        {
            exp.del -= 1;
        }
    }

    /// The ReplicaSet is gone: forget it.
    pub fn delete_expectations(&mut self, key: &str) {
        self.by_key.remove(key);
    }
}
// ANCHOR_END: expectations

/// An Event the controller records on the ReplicaSet, as data; the plumbing
/// turns it into a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaSetEvent {
    SuccessfulCreate { pod: String },
    FailedCreate { error: String },
    SuccessfulDelete { pod: String },
    FailedDelete { pod: String, error: String },
}

impl ReplicaSetEvent {
    /// The Event's `reason`, as Kubernetes spells it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SuccessfulCreate { .. } => "SuccessfulCreate",
            Self::FailedCreate { .. } => "FailedCreate",
            Self::SuccessfulDelete { .. } => "SuccessfulDelete",
            Self::FailedDelete { .. } => "FailedDelete",
        }
    }

    /// The Event's `type`: `Normal` or `Warning`.
    pub fn type_(&self) -> &'static str {
        match self {
            Self::SuccessfulCreate { .. } | Self::SuccessfulDelete { .. } => "Normal",
            Self::FailedCreate { .. } | Self::FailedDelete { .. } => "Warning",
        }
    }

    /// The Event's `message`, worded as Kubernetes words it.
    pub fn message(&self) -> String {
        match self {
            Self::SuccessfulCreate { pod } => format!("Created pod: {pod}"),
            Self::FailedCreate { error } => format!("Error creating: {error}"),
            Self::SuccessfulDelete { pod } => format!("Deleted pod: {pod}"),
            Self::FailedDelete { error, .. } => format!("Error deleting: {error}"),
        }
    }
}

pub use crate::machinery::pods::{
    controller_of, is_pod_active, is_pod_available, is_pod_ready, pod_phase, ready_condition,
};
pub use crate::machinery::selector::as_selector;

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::jiff::SignedDuration;

    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{
        Container, ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    const NS: &str = "default";
    const RS_UID: &str = "uid-rs-web";

    /// Seconds relative to a fixed "now".
    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + seconds).unwrap()
    }
    fn now() -> Timestamp {
        t(0)
    }
    const HOUR: i64 = 3600;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `web`: selector app=web, template labels app=web tier=frontend.
    fn replica_set(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some(NS.into()),
                uid: Some(RS_UID.into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: None,
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "web")])),
                    match_expressions: None,
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("app", "web"), ("tier", "frontend")])),
                        annotations: Some(map(&[("team", "blue")])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some("workbook/demo-app:v1".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
            }),
            status: None,
        }
    }

    fn with_min_ready(mut rs: ReplicaSet, seconds: i32) -> ReplicaSet {
        rs.spec.as_mut().unwrap().min_ready_seconds = Some(seconds);
        rs
    }

    /// A pod builder: by default owned by `web`, fully labeled, Pending,
    /// unscheduled, not ready, created at no particular time.
    #[derive(Clone)]
    struct P(Pod);

    fn pod(name: &str) -> P {
        P(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NS.into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(map(&[("app", "web"), ("tier", "frontend")])),
                owner_references: Some(vec![controller_ref(&replica_set(1))]),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        })
    }

    impl P {
        fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
            self.0.metadata.labels = Some(map(pairs));
            self
        }
        fn orphan(mut self) -> Self {
            self.0.metadata.owner_references = None;
            self
        }
        fn owner(mut self, uid: &str, controller: bool) -> Self {
            self.0.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "other".into(),
                uid: uid.into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]);
            self
        }
        fn namespace(mut self, ns: &str) -> Self {
            self.0.metadata.namespace = Some(ns.into());
            self
        }
        fn uid(mut self, uid: &str) -> Self {
            self.0.metadata.uid = Some(uid.into());
            self
        }
        fn no_uid(mut self) -> Self {
            self.0.metadata.uid = None;
            self
        }
        fn node(mut self, node: &str) -> Self {
            self.0.spec.as_mut().unwrap().node_name = Some(node.into());
            self
        }
        fn phase(mut self, phase: &str) -> Self {
            self.0.status.as_mut().unwrap().phase = Some(phase.into());
            self
        }
        /// Running and ready since `since` (None: no transition time).
        fn ready(mut self, since: Option<Timestamp>) -> Self {
            let status = self.0.status.as_mut().unwrap();
            status.phase = Some("Running".into());
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: since.map(Time),
                ..Default::default()
            }]);
            self
        }
        fn not_ready_condition(mut self) -> Self {
            self.0.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: Some(Time(t(-100))),
                ..Default::default()
            }]);
            self
        }
        fn created(mut self, at: Timestamp) -> Self {
            self.0.metadata.creation_timestamp = Some(Time(at));
            self
        }
        fn restarts(mut self, n: i32) -> Self {
            self.0.status.as_mut().unwrap().container_statuses = Some(vec![
                ContainerStatus {
                    name: "app".into(),
                    restart_count: n,
                    ..Default::default()
                },
                ContainerStatus {
                    name: "other".into(),
                    restart_count: 0,
                    ..Default::default()
                },
            ]);
            self
        }
        fn sidecar_restarts(mut self, n: i32) -> Self {
            self.0.spec.as_mut().unwrap().init_containers = Some(vec![
                Container {
                    name: "proxy".into(),
                    restart_policy: Some("Always".into()),
                    ..Default::default()
                },
                Container {
                    name: "migrate".into(),
                    ..Default::default()
                },
            ]);
            self.0.status.as_mut().unwrap().init_container_statuses = Some(vec![
                ContainerStatus {
                    name: "proxy".into(),
                    restart_count: n,
                    ..Default::default()
                },
                // A plain init container's restarts do not count.
                ContainerStatus {
                    name: "migrate".into(),
                    restart_count: 100,
                    ..Default::default()
                },
            ]);
            self
        }
        fn cost(mut self, value: &str) -> Self {
            self.0.metadata.annotations = Some(map(&[(POD_DELETION_COST, value)]));
            self
        }
        fn terminating(mut self) -> Self {
            self.0.metadata.deletion_timestamp = Some(Time(t(-1)));
            self
        }
        fn build(self) -> Pod {
            self.0
        }
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    fn pods(n: usize, f: impl Fn(P) -> P) -> Vec<Pod> {
        (0..n)
            .map(|i| f(pod(&format!("web-{i:03}"))).build())
            .collect()
    }

    const NO_PODS: &[Pod] = &[];

    // ---- manageReplicas: how many to create or delete -------------------

    #[test]
    fn create_and_delete_counts() {
        // (spec.replicas, active owned pods, extra terminating/finished pods,
        //  expected diff, expected creates, expected deletes)
        let cases = [
            (3, 0, 0, -3, 3, 0),
            (3, 3, 0, 0, 0, 0),
            (3, 5, 0, 2, 0, 2),
            (0, 4, 0, 4, 0, 4),
            // Terminating and finished pods are not replicas: they are replaced.
            (3, 1, 2, -2, 2, 0),
            // Burst cap: never more than 500 in one sync.
            (1000, 0, 0, -1000, 500, 0),
            (600, 99, 0, -501, 500, 0),
            (0, 600, 0, 600, 0, 500),
            (100, 600, 0, 500, 0, 500),
        ];
        for (replicas, active, inactive, diff, creates, deletes) in cases {
            let rs = replica_set(replicas);
            let mut all = pods(active, |p| p);
            all.extend((0..inactive).map(|i| {
                let p = pod(&format!("gone-{i}"));
                if i % 2 == 0 {
                    p.terminating().build()
                } else {
                    p.phase("Succeeded").build()
                }
            }));
            let r = reconcile(&rs, &all, NO_PODS, now());
            let case = format!("replicas={replicas} active={active} inactive={inactive}");
            assert_eq!(r.diff, diff, "{case}");
            assert_eq!(r.active.len(), active, "{case}");
            match r.scale {
                Scale::None => assert_eq!((creates, deletes), (0, 0), "{case}"),
                Scale::Create { count, .. } => {
                    assert_eq!((count, 0), (creates, deletes), "{case}")
                }
                Scale::Delete { pods } => {
                    assert_eq!((0, pods.len()), (creates, deletes), "{case}");
                    assert!(pods.iter().all(|p| is_pod_active(p)), "{case}");
                }
            }
        }
    }

    #[test]
    fn missing_replicas_defaults_to_one() {
        let mut rs = replica_set(0);
        rs.spec.as_mut().unwrap().replicas = None;
        let r = reconcile(&rs, NO_PODS, NO_PODS, now());
        assert!(matches!(r.scale, Scale::Create { count: 1, .. }));
    }

    #[test]
    fn created_pod_comes_from_the_template() {
        let rs = replica_set(2);
        let r = reconcile(&rs, NO_PODS, NO_PODS, now());
        let Scale::Create { count, pod } = r.scale else {
            panic!("expected creates, got {:?}", r.scale);
        };
        assert_eq!(count, 2);
        let template = rs.spec.as_ref().unwrap().template.clone().unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None, "the API server picks the name");
        assert_eq!(pod.metadata.namespace.as_deref(), Some(NS));
        assert_eq!(
            pod.metadata.labels,
            template.metadata.as_ref().unwrap().labels
        );
        assert_eq!(
            pod.metadata.annotations,
            template.metadata.as_ref().unwrap().annotations
        );
        assert_eq!(pod.spec, template.spec);
        assert_eq!(
            pod.metadata.owner_references,
            Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: RS_UID.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }])
        );
        assert_eq!(pod.status, None);
    }

    #[test]
    fn very_long_names_get_no_dash() {
        assert_eq!(pods_prefix("web"), "web-");
        let long = "a".repeat(253);
        assert_eq!(pods_prefix(&long), long);
        let almost = "a".repeat(252);
        assert_eq!(pods_prefix(&almost), format!("{almost}-"));
    }

    #[test]
    fn a_replica_set_being_deleted_neither_scales_nor_adopts() {
        let mut rs = replica_set(5);
        rs.metadata.deletion_timestamp = Some(Time(t(-5)));
        let all = vec![
            pod("owned").build(),
            pod("orphan").orphan().build(),
            pod("relabelled").labels(&[("app", "db")]).build(),
        ];
        let r = reconcile(&rs, &all, NO_PODS, now());
        assert_eq!(r.scale, Scale::None);
        assert!(r.adopt.is_empty());
        assert!(r.release.is_empty(), "the garbage collector handles it");
        assert_eq!(names(&r.active), ["owned"]);
        // The status is still kept up to date.
        assert_eq!(r.status.replicas, 1);
    }

    #[test]
    fn invalid_selector_changes_nothing() {
        let mut rs = replica_set(3);
        rs.spec.as_mut().unwrap().selector.match_expressions =
            Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "Matches".into(),
                values: None,
            }]);
        let all = vec![pod("a").build()];
        let r = reconcile(&rs, &all, NO_PODS, now());
        assert_eq!(r.scale, Scale::None);
        assert!(r.release.is_empty() && r.adopt.is_empty());
    }

    // ---- ClaimPods: adoption and release --------------------------------

    #[derive(Debug, PartialEq)]
    enum Claim {
        Keep,
        Adopt,
        Release,
        Ignore,
    }

    #[test]
    fn claiming_pods() {
        use Claim::*;
        let cases = [
            ("owned and matching", pod("p").build(), Keep),
            ("orphan, matching", pod("p").orphan().build(), Adopt),
            (
                "orphan, matching the selector but not the whole template",
                pod("p").orphan().labels(&[("app", "web")]).build(),
                Adopt,
            ),
            (
                "orphan, not matching",
                pod("p").orphan().labels(&[("app", "db")]).build(),
                Ignore,
            ),
            (
                "orphan with a non-controller owner",
                pod("p").owner("uid-someone", false).build(),
                Adopt,
            ),
            (
                "owned but relabelled",
                pod("p").labels(&[("app", "web-debug")]).build(),
                Release,
            ),
            (
                "owned, labels removed",
                pod("p").labels(&[]).build(),
                Release,
            ),
            (
                "controlled by another ReplicaSet",
                pod("p").owner("uid-rs-other", true).build(),
                Ignore,
            ),
            (
                "orphan, terminating",
                pod("p").orphan().terminating().build(),
                Ignore,
            ),
            (
                "orphan, succeeded",
                pod("p").orphan().phase("Succeeded").build(),
                Ignore,
            ),
            ("owned, terminating", pod("p").terminating().build(), Ignore),
            ("owned, failed", pod("p").phase("Failed").build(), Ignore),
            (
                "owned, relabelled and terminating",
                pod("p").labels(&[]).terminating().build(),
                Ignore,
            ),
            (
                "orphan in another namespace",
                pod("p").orphan().namespace("other").build(),
                Ignore,
            ),
        ];
        let rs = replica_set(1);
        for (case, pod, expected) in cases {
            let all = [pod];
            let claim = claim_pods(&rs, &all);
            let got = match (claim.claimed.len(), claim.adopt.len(), claim.release.len()) {
                (1, 0, 0) => Keep,
                (1, 1, 0) => Adopt,
                (0, 0, 1) => Release,
                (0, 0, 0) => Ignore,
                other => panic!("{case}: inconsistent claim {other:?}"),
            };
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn adopted_pods_count_and_released_pods_are_replaced() {
        let rs = replica_set(3);
        let all = vec![
            pod("owned").build(),
            pod("orphan").orphan().build(),
            pod("relabelled").labels(&[("app", "other")]).build(),
            pod("foreign").owner("uid-rs-other", true).build(),
        ];
        let r = reconcile(&rs, &all, NO_PODS, now());
        assert_eq!(names(&r.adopt), ["orphan"]);
        assert_eq!(names(&r.release), ["relabelled"]);
        assert_eq!(names(&r.active), ["owned", "orphan"]);
        assert_eq!(r.diff, -1);
        assert!(matches!(r.scale, Scale::Create { count: 1, .. }));
    }

    #[test]
    fn adopt_and_release_patches() {
        let rs = replica_set(1);
        let p = pod("web-a").orphan().build();
        assert_eq!(
            adopt_patch(&rs, &p),
            serde_json::json!({"metadata": {
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": RS_UID, "controller": true, "blockOwnerDeletion": true,
                }],
                "uid": "uid-web-a",
            }})
        );
        assert_eq!(
            release_patch(&rs, &p),
            serde_json::json!({"metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": RS_UID}],
                "uid": "uid-web-a",
            }})
        );
    }

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

    // ---- status -----------------------------------------------------------

    #[test]
    fn status_counts() {
        let rs = replica_set(5);
        let all = vec![
            pod("ready").ready(Some(t(-60))).build(),
            pod("ready-partly-labeled")
                .labels(&[("app", "web")])
                .ready(Some(t(-60)))
                .build(),
            pod("running-not-ready")
                .phase("Running")
                .not_ready_condition()
                .build(),
            pod("pending").build(),
            pod("terminating").ready(Some(t(-60))).terminating().build(),
            pod("done").phase("Succeeded").build(),
        ];
        let r = reconcile(&rs, &all, NO_PODS, now());
        let s = &r.status;
        assert_eq!(s.replicas, 4);
        assert_eq!(s.fully_labeled_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.terminating_replicas, None);
        assert_eq!(s.conditions, None);
    }

    #[test]
    fn zero_counts_are_omitted_as_kubernetes_does() {
        let r = reconcile(&replica_set(0), NO_PODS, NO_PODS, now());
        let json = serde_json::to_value(&r.status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"replicas": 0, "observedGeneration": 4})
        );
    }

    #[test]
    fn availability_with_min_ready_seconds() {
        // (minReadySeconds, ready since (None = no transition time), ready?, available?)
        let cases = [
            (0, Some(t(0)), true, true),
            (0, None, true, true),
            (10, Some(t(-11)), true, true),
            // Exactly minReadySeconds is not enough: the comparison is strict.
            (10, Some(t(-10)), true, false),
            (10, Some(t(-9)), true, false),
            (10, None, true, false),
            (10, Some(t(3600)), true, false),
        ];
        for (min_ready, since, ready, available) in cases {
            let p = pod("p").ready(since).build();
            assert_eq!(is_pod_ready(&p), ready);
            assert_eq!(
                is_pod_available(&p, min_ready, now()),
                available,
                "minReadySeconds={min_ready} since={since:?}"
            );
            let rs = with_min_ready(replica_set(1), min_ready);
            let all = [p];
            let status = reconcile(&rs, &all, NO_PODS, now()).status;
            assert_eq!(status.available_replicas, available.then_some(1));
        }
        // One nanosecond past the boundary is enough.
        let since = t(-10).checked_sub(SignedDuration::from_nanos(1)).unwrap();
        assert!(is_pod_available(
            &pod("p").ready(Some(since)).build(),
            10,
            now()
        ));
        // Not ready is never available.
        let p = pod("p").phase("Running").not_ready_condition().build();
        assert!(!is_pod_ready(&p) && !is_pod_available(&p, 0, now()));
    }

    #[test]
    fn requeue_after_min_ready_seconds() {
        // (minReadySeconds, replicas, pods ready since, expected requeue)
        let cases: [(i32, i32, &[i64], Option<u64>); 6] = [
            (10, 2, &[-60, -5], Some(10)), // all ready, one not yet available
            (10, 2, &[-60, -60], None),    // all available
            (10, 3, &[-60, -5], None),     // not all ready: a pod event will come
            (0, 2, &[-60, -5], None),      // available as soon as ready
            (30, 1, &[-30], Some(30)),     // exactly at the boundary
            (30, 1, &[-31], None),
        ];
        for (min_ready, replicas, since, expected) in cases {
            let rs = with_min_ready(replica_set(replicas), min_ready);
            let all: Vec<Pod> = since
                .iter()
                .enumerate()
                .map(|(i, s)| pod(&format!("p{i}")).ready(Some(t(*s))).build())
                .collect();
            let r = reconcile(&rs, &all, NO_PODS, now());
            assert_eq!(
                r.requeue_after,
                expected.map(Duration::from_secs),
                "minReadySeconds={min_ready} replicas={replicas} since={since:?}"
            );
        }
    }

    #[test]
    fn replica_failure_condition() {
        let failure = |reason: &str, at: i64| ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("old".into()),
            last_transition_time: Some(Time(t(at))),
        };
        let other = ReplicaSetCondition {
            type_: "Other".into(),
            status: "True".into(),
            ..Default::default()
        };
        let two = pods(2, |p| p);
        let active: Vec<&Pod> = two.iter().collect();
        // (replicas, existing conditions, error, expected conditions)
        let cases = [
            (
                3,
                None,
                Some("quota exceeded"),
                Some(vec![ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some("quota exceeded".into()),
                    last_transition_time: Some(Time(now())),
                }]),
            ),
            (
                1,
                Some(vec![other.clone()]),
                Some("forbidden"),
                Some(vec![
                    other.clone(),
                    ReplicaSetCondition {
                        type_: REPLICA_FAILURE.into(),
                        status: "True".into(),
                        reason: Some("FailedDelete".into()),
                        message: Some("forbidden".into()),
                        last_transition_time: Some(Time(now())),
                    },
                ]),
            ),
            // Still failing: the existing condition (and its time) stays.
            (
                3,
                Some(vec![failure("FailedCreate", -100)]),
                Some("new error"),
                Some(vec![failure("FailedCreate", -100)]),
            ),
            // Success clears it, and only it.
            (3, Some(vec![failure("FailedCreate", -100)]), None, None),
            (
                3,
                Some(vec![other.clone(), failure("FailedCreate", -100)]),
                None,
                Some(vec![other.clone()]),
            ),
        ];
        for (i, (replicas, existing, err, expected)) in cases.into_iter().enumerate() {
            let mut rs = replica_set(replicas);
            rs.status = Some(ReplicaSetStatus {
                conditions: existing,
                ..Default::default()
            });
            let status = calculate_status(&rs, &active, err, now());
            assert_eq!(status.conditions, expected, "case {i}");
        }
    }

    // ---- slow start -------------------------------------------------------

    #[test]
    fn slow_start_batch_sizes() {
        let cases: [(usize, &[usize]); 7] = [
            (0, &[]),
            (1, &[1]),
            (2, &[1, 1]),
            (3, &[1, 2]),
            (7, &[1, 2, 4]),
            (10, &[1, 2, 4, 3]),
            (500, &[1, 2, 4, 8, 16, 32, 64, 128, 245]),
        ];
        for (count, batches) in cases {
            assert_eq!(slow_start_batches(count), batches, "count={count}");
            assert_eq!(slow_start_batches(count).iter().sum::<usize>(), count);
        }
    }

    #[test]
    fn slow_start_stops_after_the_first_failing_batch() {
        // (count, calls that fail, expected successes, expected calls made)
        let cases: [(usize, &[usize], usize, usize); 6] = [
            (10, &[], 10, 10),
            (10, &[0], 0, 1),    // the first create fails: one call, not ten
            (10, &[1], 2, 3),    // batch 2 (calls 1-2): both are made
            (10, &[4], 6, 7),    // batch 3 (calls 3-6) runs to its end
            (10, &[3, 5], 5, 7), // two failures in one batch
            (10, &[9], 9, 10),   // the last batch
        ];
        for (count, failing, successes, calls) in cases {
            let mut made = 0;
            let (ok, err) = futures::executor::block_on(slow_start_batch(count, || {
                let call = made;
                made += 1;
                let fails = failing.contains(&call);
                async move {
                    if fails {
                        Err(format!("call {call}"))
                    } else {
                        Ok(())
                    }
                }
            }));
            let case = format!("count={count} failing={failing:?}");
            assert_eq!(ok, successes, "{case}");
            assert_eq!(made, calls, "{case}");
            assert_eq!(err, failing.first().map(|c| format!("call {c}")), "{case}");
        }
    }

    #[test]
    fn slow_start_runs_a_batch_concurrently() {
        // Each create records, when it runs, how many creates had been
        // started by then. A whole batch is started before any of it runs,
        // and the next batch only after it has finished.
        use std::cell::{Cell, RefCell};
        let started = Cell::new(0);
        let seen = RefCell::new(Vec::new());
        let (ok, err) = futures::executor::block_on(slow_start_batch(10, || {
            started.set(started.get() + 1);
            let (started, seen) = (&started, &seen);
            async move {
                seen.borrow_mut().push(started.get());
                Ok::<(), ()>(())
            }
        }));
        assert_eq!((ok, err), (10, None));
        assert_eq!(seen.into_inner(), [1, 3, 3, 7, 7, 7, 7, 10, 10, 10]);
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

    // ---- expectations -----------------------------------------------------

    #[test]
    fn expectations_creations() {
        let key = "default/web";
        let mut exp = Expectations::new();
        assert!(exp.satisfied(key, now()), "nothing expected yet");
        exp.expect_creations(key, 3, now());
        assert!(!exp.satisfied(key, now()));
        exp.creation_observed(key);
        exp.creation_observed(key);
        assert!(!exp.satisfied(key, now()));
        exp.creation_observed(key);
        assert!(exp.satisfied(key, now()));
        // Other keys are independent; observing for an unknown key is a no-op.
        exp.creation_observed("default/other");
        assert!(exp.satisfied("default/other", now()));
        // A new expectation replaces the old one.
        exp.expect_creations(key, 1, now());
        assert!(!exp.satisfied(key, now()));
        exp.delete_expectations(key);
        assert!(exp.satisfied(key, now()));
    }

    #[test]
    fn expectations_deletions_track_pod_keys() {
        let key = "default/web";
        let mut exp = Expectations::new();
        exp.expect_deletions(
            key,
            ["default/web-a".to_string(), "default/web-b".to_string()],
            now(),
        );
        assert!(!exp.satisfied(key, now()));
        // A pod we did not ask to delete does not count.
        exp.deletion_observed(key, "default/web-z");
        // Seen twice (deletionTimestamp set, then gone): counted once.
        exp.deletion_observed(key, "default/web-a");
        exp.deletion_observed(key, "default/web-a");
        assert!(!exp.satisfied(key, now()));
        exp.deletion_observed(key, "default/web-b");
        assert!(exp.satisfied(key, now()));
    }

    #[test]
    fn expectations_expire_after_five_minutes() {
        let key = "default/web";
        let mut exp = Expectations::new();
        exp.expect_creations(key, 3, t(0));
        // (seconds later, satisfied)
        for (later, satisfied) in [(1, false), (299, false), (300, false), (301, true)] {
            assert_eq!(exp.satisfied(key, t(later)), satisfied, "after {later}s");
        }
        // Just past five minutes is enough.
        let just_past = t(300).checked_add(SignedDuration::from_nanos(1)).unwrap();
        assert!(exp.satisfied(key, just_past));
        // Setting new expectations restarts the clock.
        exp.expect_deletions(key, ["default/web-a".to_string()], t(400));
        assert!(!exp.satisfied(key, t(600)));
        assert!(exp.satisfied(key, t(701)));
    }

    #[test]
    fn expectations_prevent_double_creates_while_the_cache_lags() {
        // The controller creates 3 pods; the next sync runs before the watch
        // has delivered them, so the cache still holds none.
        let rs = replica_set(3);
        let key = replica_set_key(&rs);
        let mut exp = Expectations::new();
        let r = reconcile(&rs, NO_PODS, NO_PODS, now());
        let Scale::Create { count, .. } = r.scale else {
            panic!()
        };
        exp.expect_creations(&key, count, now());

        let stale = reconcile(&rs, NO_PODS, NO_PODS, t(1));
        assert!(matches!(stale.scale, Scale::Create { count: 3, .. }));
        assert!(!exp.satisfied(&key, t(1)), "so the plumbing must not act");

        // The watch catches up.
        for _ in 0..3 {
            exp.creation_observed(&key);
        }
        let all = pods(3, |p| p);
        assert!(exp.satisfied(&key, t(2)));
        assert_eq!(reconcile(&rs, &all, NO_PODS, t(2)).scale, Scale::None);
    }

    // ---- events and selectors ---------------------------------------------

    #[test]
    fn events() {
        let cases = [
            (
                ReplicaSetEvent::SuccessfulCreate {
                    pod: "web-abcde".into(),
                },
                "SuccessfulCreate",
                "Normal",
                "Created pod: web-abcde",
            ),
            (
                ReplicaSetEvent::FailedCreate {
                    error: "pods \"web-\" is forbidden: exceeded quota".into(),
                },
                "FailedCreate",
                "Warning",
                "Error creating: pods \"web-\" is forbidden: exceeded quota",
            ),
            (
                ReplicaSetEvent::SuccessfulDelete {
                    pod: "web-abcde".into(),
                },
                "SuccessfulDelete",
                "Normal",
                "Deleted pod: web-abcde",
            ),
            (
                ReplicaSetEvent::FailedDelete {
                    pod: "web-abcde".into(),
                    error: "boom".into(),
                },
                "FailedDelete",
                "Warning",
                "Error deleting: boom",
            ),
        ];
        for (event, reason, type_, message) in cases {
            assert_eq!(
                (event.reason(), event.type_(), event.message().as_str()),
                (reason, type_, message)
            );
        }
    }

    fn req(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
        as_selector(selector).is_some_and(|s| s.matches(labels))
    }

    fn selector_is_valid(selector: &LabelSelector) -> bool {
        as_selector(selector).is_some()
    }

    #[test]
    fn selectors() {
        let web = map(&[("app", "web"), ("tier", "frontend")]);
        let none = map(&[]);
        let sel = |labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: (!labels.is_empty()).then(|| map(labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        };
        // (selector, labels, matches)
        let cases = [
            (sel(&[], vec![]), &web, true),
            (sel(&[], vec![]), &none, true),
            (sel(&[("app", "web")], vec![]), &web, true),
            (
                sel(&[("app", "web"), ("tier", "frontend")], vec![]),
                &web,
                true,
            ),
            (sel(&[("app", "db")], vec![]), &web, false),
            (sel(&[("app", "web"), ("env", "prod")], vec![]), &web, false),
            (sel(&[], vec![req("app", "In", &["db", "web"])]), &web, true),
            (sel(&[], vec![req("app", "In", &["db"])]), &web, false),
            (sel(&[], vec![req("env", "In", &["prod"])]), &web, false),
            (sel(&[], vec![req("app", "NotIn", &["db"])]), &web, true),
            (sel(&[], vec![req("app", "NotIn", &["web"])]), &web, false),
            (sel(&[], vec![req("env", "NotIn", &["prod"])]), &web, true),
            (sel(&[], vec![req("tier", "Exists", &[])]), &web, true),
            (sel(&[], vec![req("env", "Exists", &[])]), &web, false),
            (sel(&[], vec![req("env", "DoesNotExist", &[])]), &web, true),
            (sel(&[], vec![req("app", "DoesNotExist", &[])]), &web, false),
            (
                sel(
                    &[("app", "web")],
                    vec![
                        req("tier", "In", &["frontend"]),
                        req("env", "DoesNotExist", &[]),
                    ],
                ),
                &web,
                true,
            ),
            (
                sel(&[("app", "web")], vec![req("tier", "NotIn", &["frontend"])]),
                &web,
                false,
            ),
        ];
        for (i, (selector, labels, matches)) in cases.iter().enumerate() {
            assert_eq!(
                selector_matches(selector, labels),
                *matches,
                "case {i}: {selector:?}"
            );
            assert!(selector_is_valid(selector), "case {i}");
        }
        for invalid in [
            req("app", "In", &[]),
            req("app", "NotIn", &[]),
            req("app", "Exists", &["x"]),
            req("app", "DoesNotExist", &["x"]),
            req("app", "Gt", &["1"]),
        ] {
            assert!(
                !selector_is_valid(&sel(&[], vec![invalid.clone()])),
                "{invalid:?}"
            );
        }
    }

    // ---- properties ---------------------------------------------------------

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A random pod: owned, orphaned or foreign; matching or not;
        /// scheduled or not; in any phase; ready or not; with or without a
        /// deletion cost, restarts, creation time; sometimes terminating.
        fn any_pod(index: usize) -> impl Strategy<Value = Pod> {
            (
                (
                    0u8..4,
                    any::<bool>(),
                    0u8..4,
                    0u8..5,
                    proptest::option::of(-3i64..3),
                ),
                (
                    proptest::option::weighted(0.8, 0i64..40 * 24 * HOUR),
                    proptest::option::of(-2i32..3),
                    0i32..3,
                    proptest::option::of(0i64..40 * 24 * HOUR),
                    0u8..10,
                ),
            )
                .prop_map(
                    move |(
                        (owner, matching, node, phase, ready),
                        (since, cost, restarts, created, rare),
                    )| {
                        let mut p = pod(&format!("p{index:03}"));
                        p = match owner {
                            0 | 1 => p,
                            2 => p.orphan(),
                            _ => p.owner("uid-rs-other", true),
                        };
                        if !matching {
                            p = p.labels(&[("app", "db")]);
                        }
                        if node > 0 {
                            p = p.node(&format!("n{node}"));
                        }
                        p = match phase {
                            0 => p,
                            1 => p.phase("Unknown"),
                            2 => p.phase("Running"),
                            3 => p.phase("Succeeded"),
                            _ => p.phase("Failed"),
                        };
                        if ready.is_some() && phase == 2 {
                            p = p.ready(since.map(|s| t(-s)));
                        }
                        if let Some(cost) = cost {
                            p = p.cost(&cost.to_string());
                        }
                        p = p.restarts(restarts);
                        if let Some(c) = created {
                            p = p.created(t(-c));
                        }
                        if rare == 0 {
                            p = p.terminating();
                        }
                        p.build()
                    },
                )
        }

        fn any_pods() -> impl Strategy<Value = Vec<Pod>> {
            (0usize..60).prop_flat_map(|n| (0..n).map(any_pod).collect::<Vec<_>>())
        }

        /// The part of the order that is a plain key (rules 1 to 5), which
        /// every correct sort must respect even when later rules are not
        /// transitive.
        fn key(
            ranked: &ActivePodsWithRanks,
            i: usize,
        ) -> (bool, u8, bool, i32, std::cmp::Reverse<usize>) {
            let p = ranked.pods[i];
            (
                !node_name(p).is_empty(),
                phase_ordinal(p),
                is_pod_ready(p),
                pod_deletion_cost(p),
                std::cmp::Reverse(ranked.rank[i]),
            )
        }

        proptest! {
            #[test]
            fn creates_fill_the_gap(all in any_pods(), replicas in 0i32..700) {
                let rs = replica_set(replicas);
                let r = reconcile(&rs, &all, NO_PODS, now());
                let active = r.active.len();
                match r.scale {
                    Scale::Create { count, .. } => {
                        prop_assert!(active < replicas as usize);
                        prop_assert_eq!(count, (replicas as usize - active).min(BURST_REPLICAS));
                    }
                    Scale::Delete { ref pods } => {
                        prop_assert!(active > replicas as usize);
                        prop_assert_eq!(pods.len(), (active - replicas as usize).min(BURST_REPLICAS));
                    }
                    Scale::None => prop_assert_eq!(active, replicas as usize),
                }
                // Every counted pod is active and ours (or adopted), and matches.
                for p in &r.active {
                    prop_assert!(is_pod_active(p));
                    prop_assert!(selector_matches(&rs.spec.as_ref().unwrap().selector, labels(&p.metadata)));
                }
            }

            #[test]
            fn deletes_are_top_ranked_and_never_terminating(
                all in any_pods(),
                related in any_pods(),
                replicas in 0i32..60,
            ) {
                let rs = replica_set(replicas);
                let r = reconcile(&rs, &all, &related, now());
                if let Scale::Delete { pods } = &r.scale {
                    for p in pods {
                        prop_assert!(p.metadata.deletion_timestamp.is_none());
                        prop_assert!(is_pod_active(p));
                        prop_assert!(r.active.iter().any(|a| std::ptr::eq(*a, *p)));
                    }
                    // No pod kept has a strictly better claim to deletion on
                    // rules 1-5 than a pod deleted.
                    let ranked = pods_ranked_by_related_pods_on_same_node(&r.active, &related, now());
                    let deleted: Vec<usize> = (0..ranked.pods.len())
                        .filter(|&i| pods.iter().any(|p| std::ptr::eq(*p, ranked.pods[i])))
                        .collect();
                    let kept: Vec<usize> = (0..ranked.pods.len()).filter(|i| !deleted.contains(i)).collect();
                    for &d in &deleted {
                        for &k in &kept {
                            prop_assert!(key(&ranked, d) <= key(&ranked, k));
                        }
                    }
                }
            }

            #[test]
            fn sorting_keeps_every_pod(all in any_pods()) {
                let active: Vec<&Pod> = all.iter().collect();
                let mut ranked = pods_ranked_by_related_pods_on_same_node(&active, &all, now());
                ranked.sort();
                let mut before = names(&active);
                let mut after = names(&ranked.pods);
                before.sort();
                after.sort();
                prop_assert_eq!(before, after);
            }
        }
    }
}
