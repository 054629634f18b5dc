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
//! Nothing in this module calls the API server, reads a clock or awaits
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
//!
//! The module is cut where upstream cuts its files:
//!
//! | file | what | upstream |
//! |---|---|---|
//! | this one | [`reconcile`] (`syncReplicaSet`, `manageReplicas`), the pod template, slow start, events | `replica_set.go`, `controller_utils.go` (`GetPodFromTemplate`) |
//! | [`claim`] | adoption and release: which pods are ours, the ownerReference patches | `controller_ref_manager.go` |
//! | [`ranking`] | which pods to delete first, `pod-deletion-cost`, related pods | `controller_utils.go` (`ActivePodsWithRanks`), `replica_set.go` (`getPodsToDelete`) |
//! | [`expectations`] | what the controller waits to see in its watch | `controller_utils.go` (`ControllerExpectations`) |
//! | [`status`] | the status it writes, the `ReplicaFailure` condition | `replica_set_utils.go` (`calculateStatus`) |
//! | [`controller`] | the plumbing: informers, work queue, API calls | `replica_set.go` |

pub mod claim;
pub mod controller;
pub mod expectations;
pub mod ranking;
pub mod status;

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

pub use claim::{ClaimedPods, adopt_patch, claim_pods, controller_ref, release_patch};
pub use expectations::{EXPECTATIONS_TIMEOUT, Expectations};
pub use ranking::{
    ActivePodsWithRanks, POD_DELETION_COST, indirectly_related_pods, pod_deletion_cost,
    pods_ranked_by_related_pods_on_same_node, pods_to_delete,
};
pub use status::{REPLICA_FAILURE, calculate_status};

/// At most this many pods are created or deleted in one sync. A ReplicaSet
/// scaled from 0 to 10,000 gets there in steps of 500, so one sync never
/// floods the API server and other ReplicaSets' workers get their turn.
/// (Upstream's `BurstReplicas`.)
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch creates this many pods (`SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

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

fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&NO_LABELS)
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
