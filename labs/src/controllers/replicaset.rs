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

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

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
    if !selector_is_valid(&spec.selector) {
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
    let Some(selector) = rs.spec.as_ref().map(|spec| &spec.selector) else {
        return out;
    };
    let rs_uid = rs.metadata.uid.as_deref();
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();

    // Pods that are finished or terminating are no replicas: they are neither
    // counted, nor adopted, nor released. A terminating pod is going away
    // whatever we do, and counting it would delay its replacement.
    for pod in pods.iter().map(Borrow::borrow).filter(|p| is_pod_active(p)) {
        let matches = selector_matches(selector, labels(&pod.metadata));
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

/// The ownerReference with `controller: true`, if any. A pod can have many
/// owners but at most one controller.
fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
}

/// Upstream's `IsPodActive`: not finished and not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .unwrap_or_default()
}

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
        let Some(selector) = other.spec.as_ref().map(|spec| &spec.selector) else {
            continue;
        };
        if !selector_is_valid(selector) {
            continue;
        }
        for pod in pods.iter().map(Borrow::borrow) {
            if pod.metadata.namespace == other.metadata.namespace
                && selector_matches(selector, labels(&pod.metadata))
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

/// A pod is ready when its `Ready` condition is `True`: all its containers
/// pass their readiness probes, so a Service may send it traffic.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// A pod is available when it has been ready for *more than*
/// `min_ready_seconds` (upstream's `IsPodAvailable`). The comparison is
/// strict: a pod ready for exactly `min_ready_seconds` is not available yet.
/// minReadySeconds guards against pods that pass their probe and then crash:
/// a rollout only counts a pod once it has stayed ready for a while.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(ready) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    // No transition time means we cannot tell how long it has been ready.
    ready.last_transition_time.as_ref().is_some_and(|since| {
        since
            .0
            .checked_add(SignedDuration::from_secs(min_ready_seconds.into()))
            .is_ok_and(|available_at| available_at < now)
    })
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
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
        if let Some(exp) = self.by_key.get_mut(key) {
            if exp.deletions.remove(pod_key) {
                exp.del -= 1;
            }
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

/// Does `selector` match these labels? `matchLabels` and every
/// `matchExpressions` requirement must all hold; an empty selector matches
/// everything. (A private copy: the API server's selector module will
/// replace it.)
fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let match_expressions = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            // A pod without the key is "not in" any set.
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    match_labels && match_expressions
}

/// Kubernetes refuses to build a selector from an unknown operator, from
/// `In`/`NotIn` without values or from `Exists`/`DoesNotExist` with values.
fn selector_is_valid(selector: &LabelSelector) -> bool {
    selector.match_expressions.iter().flatten().all(|req| {
        let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
        match req.operator.as_str() {
            "In" | "NotIn" => has_values,
            "Exists" | "DoesNotExist" => !has_values,
            _ => false,
        }
    })
}
