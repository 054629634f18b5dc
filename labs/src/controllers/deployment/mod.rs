//! The Deployment controller's decision core (upstream:
//! `pkg/controller/deployment/`).
//!
//! A Deployment does not run pods. It runs *ReplicaSets*, one per version of
//! the pod template, and moves replicas from the old ones to the new one. Every
//! sync looks at the Deployment and the ReplicaSets it owns, decides the next
//! step, and stops: the ReplicaSet controller creates and deletes the pods, the
//! kubelets make them ready, and their status changes wake this controller up
//! again. That is the *level-triggered* loop of Kubernetes: nothing here
//! remembers what it did last time; everything is recomputed from the objects.
//!
//! This module is the pure half of the controller. [`sync_deployment`] takes
//! the Deployment, its ReplicaSets and their pods as read from the API server
//! and returns a [`Sync`]: the writes to make, the status to store, the events
//! to record and when to look again. It makes no API calls and has no clock of
//! its own, so every decision can be tested as a table and replayed. The
//! plumbing (watches, work queue, adoption of ReplicaSets, the API calls) lives
//! elsewhere and only carries out what the core returns.
//!
//! The code follows upstream function by function, with upstream's names, so a
//! reader can open `sync.go`, `rolling.go`, `recreate.go`, `progress.go`,
//! `rollback.go` and `util/deployment_util.go` next to it:
//!
//! | here | upstream |
//! |---|---|
//! | [`sync_deployment`] | `deployment_controller.go syncDeployment` |
//! | [`fenceposts`] | `ResolveFenceposts`, `MaxSurge`, `MaxUnavailable`, intstr scaling |
//! | [`hash`] | `controller.ComputeHash`, `rand.SafeEncodeString` |
//! | [`revisions`] | revisions, annotations, `getNewReplicaSet`, `rollback.go` |
//! | [`rolling`] | `rolling.go`, `NewRSNewReplicas` |
//! | [`recreate`] | `recreate.go` |
//! | [`scale`] | `sync.go isScalingEvent / sync / scale`, proportional scaling |
//! | [`status`] | `calculateStatus`, `progress.go`, conditions |
//! | [`cleanup`] | `sync.go cleanupDeployment` (revisionHistoryLimit) |
//!
//! # Not modelled (non-goals)
//!
//! * The alpha `podReplacementPolicy` (1.34+) and its `scaleV2`: the GA
//!   behaviour is the lesson, and upstream's `scaleV2` equals `scale` for
//!   Deployments without the policy.
//! * Adoption and orphaning of ReplicaSets (`ControllerRefManager`): the caller
//!   passes the ReplicaSets the Deployment already controls.
//! * API errors in the middle of a sync. Upstream returns on the first failed
//!   write and the work queue retries; here the plumbing stops applying
//!   [`Sync::actions`] at the first failure and requeues, which comes to the
//!   same thing because the next sync recomputes everything.

pub mod cleanup;
pub mod controller;
pub mod fenceposts;
pub mod hash;
pub mod recreate;
pub mod revisions;
pub mod rolling;
pub mod scale;
pub mod status;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

pub use fenceposts::FencepostError;

/// The label that tells the ReplicaSets (and pods) of one Deployment apart:
/// `pod-template-hash=<hash of the template>` (upstream:
/// `DefaultDeploymentUniqueLabelKey`). It is added to the new ReplicaSet's
/// labels, selector and pod template, so two ReplicaSets of one Deployment
/// never select each other's pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The strategy types of `spec.strategy.type`.
pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const RECREATE: &str = "Recreate";

/// Everything one sync of one Deployment decided.
///
/// The plumbing applies [`actions`](Sync::actions) in order, then writes
/// [`status`](Sync::status) through the status subresource, records the
/// [`events`](Sync::events), and requeues the Deployment after
/// [`requeue_after`](Sync::requeue_after) (a zero duration means "now, rate
/// limited"), or with back-off if [`error`](Sync::error) is set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sync {
    pub actions: Vec<Action>,
    /// The status to store, or `None` if the stored one is already right.
    pub status: Option<DeploymentStatus>,
    pub events: Vec<Event>,
    /// Set only for a rollout that is neither complete nor timed out and made
    /// no progress in this sync: the moment its progress deadline expires
    /// (upstream `requeueStuckDeployment`). Without it a stalled rollout would
    /// only be noticed at the next periodic resync.
    pub requeue_after: Option<Duration>,
    /// The sync stopped early. Upstream returns the error to the work queue,
    /// which retries with back-off; the actions before it still happened.
    pub error: Option<SyncError>,
}

/// One write to the API server.
///
/// Updates carry the whole object as the controller wants it (upstream sends
/// an `Update`, i.e. a PUT); the plumbing may send it as a PUT with the
/// resourceVersion it last saw for that object, or turn it into a patch of the
/// fields that changed. Several updates of one ReplicaSet in one sync are
/// cumulative: each carries the earlier changes too.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// POST a new ReplicaSet `<deployment>-<pod-template-hash>` with its
    /// owner reference, labels, selector, template, replicas and annotations.
    CreateReplicaSet(ReplicaSet),
    /// Change a ReplicaSet's `spec.replicas` (upstream `scaleReplicaSet`). The
    /// object also carries the `desired-replicas`/`max-replicas` annotations.
    ScaleReplicaSet {
        name: String,
        from: i32,
        to: i32,
        replica_set: ReplicaSet,
    },
    /// Update a ReplicaSet's annotations or `minReadySeconds`, no scaling.
    UpdateReplicaSet(ReplicaSet),
    /// DELETE an old ReplicaSet (revisionHistoryLimit cleanup).
    DeleteReplicaSet { name: String },
    /// Update the Deployment's metadata or spec: its revision annotation, or
    /// a rollback's template. (Upstream sends the revision annotation along
    /// with a status update, which the real API server accepts for
    /// annotations; a separate write does not depend on that quirk.)
    UpdateDeployment(Deployment),
}

/// An event to record on the Deployment, e.g. `Normal ScalingReplicaSet
/// "Scaled up replica set web-6b7f5c9d4 from 1 to 2"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The value of the Event's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Why a sync stopped early.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// `maxSurge`/`maxUnavailable` cannot be read (validation prevents it).
    #[error(transparent)]
    Fencepost(#[from] FencepostError),
    /// The new ReplicaSet's name is taken by a ReplicaSet with another
    /// template. `status.collisionCount` was raised, so the next sync computes
    /// a different hash.
    #[error(
        "replica set {name:?} already exists with a different template; collisionCount is now {collision_count}"
    )]
    HashCollision { name: String, collision_count: i32 },
    #[error("unexpected deployment strategy type: {0}")]
    UnexpectedStrategy(String),
}

// ANCHOR: sync_deployment
/// One sync of one Deployment (upstream `syncDeployment`): the order of the
/// checks is the order in which they win.
///
/// * `rss` are the ReplicaSets the Deployment controls (owner reference with
///   `controller: true` and the Deployment's uid), in any order.
/// * `pods` are the pods of those ReplicaSets; only Recreate looks at them, to
///   wait until every old pod is gone.
/// * `now` stamps conditions and measures the progress deadline.
pub fn sync_deployment(d: &Deployment, rss: &[ReplicaSet], pods: &[Pod], now: Timestamp) -> Sync {
    let mut syncer = Syncer::new(d, rss, pods, now);
    let result = syncer.sync_deployment();
    syncer.finish(result)
}

impl Syncer<'_> {
    fn sync_deployment(&mut self) -> Result<(), SyncError> {
        // A Deployment that selects everything would adopt every pod in the
        // namespace. Upstream refuses to touch anything.
        if selects_everything(&self.d) {
            self.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let generation = self.d.metadata.generation.unwrap_or(0);
            let status = self.d.status.get_or_insert_default();
            if status.observed_generation.unwrap_or(0) < generation {
                status.observed_generation = Some(generation);
            }
            return Ok(());
        }
        // Being deleted: the garbage collector removes the ReplicaSets; only
        // keep the status truthful meanwhile.
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        // Pausing and resuming are recorded as a Progressing=Unknown condition
        // first, so a resumed Deployment gets a fresh progress deadline.
        self.check_paused_conditions();
        // Paused: scale and clean up, but never roll out.
        if paused(&self.d) {
            return self.sync();
        }
        // The old `spec.rollbackTo`, carried as an annotation.
        if revisions::get_rollback_to(&self.d).is_some() {
            return self.rollback();
        }
        // `spec.replicas` changed: resize the ReplicaSets proportionally and
        // stop; the rollout continues in the next sync.
        if self.is_scaling_event()? {
            return self.sync();
        }
        match strategy_type(&self.d) {
            RECREATE => self.rollout_recreate(),
            ROLLING_UPDATE => self.rollout_rolling(),
            other => Err(SyncError::UnexpectedStrategy(other.to_string())),
        }
    }
}
// ANCHOR_END: sync_deployment

/// The working state of one sync: upstream's `dc` receiver plus the
/// deep-copied Deployment and ReplicaSets it mutates.
///
/// Upstream mutates its copies and writes each change at once. We mutate the
/// copies the same way and *record* each write in `out.actions`, so later steps
/// of the same sync see the effect of earlier ones exactly as upstream does.
pub(crate) struct Syncer<'a> {
    /// The Deployment as this sync sees it (annotations, status conditions
    /// and, on rollback, the template change as the sync goes).
    d: Deployment,
    /// The status as stored: the status write is needed only if the final
    /// status differs from it.
    stored_status: DeploymentStatus,
    /// The ReplicaSets, updated in place by every scale and created ones
    /// appended; referred to by index.
    rss: Vec<ReplicaSet>,
    pods: &'a [Pod],
    now: Timestamp,
    out: Sync,
}

impl<'a> Syncer<'a> {
    fn new(d: &Deployment, rss: &[ReplicaSet], pods: &'a [Pod], now: Timestamp) -> Self {
        let mut d = d.clone();
        d.spec.get_or_insert_default();
        let stored_status = d.status.clone().unwrap_or_default();
        d.status = Some(stored_status.clone());
        Syncer {
            d,
            stored_status,
            rss: rss.to_vec(),
            pods,
            now,
            out: Sync::default(),
        }
    }

    /// Turns the working state into the result: the status is written if it
    /// differs from the stored one, whether it changed in the middle of the
    /// sync (upstream writes those at once) or at its end.
    fn finish(mut self, result: Result<(), SyncError>) -> Sync {
        let status = self.d.status.take().unwrap_or_default();
        if !status::same_status(&status, &self.stored_status) {
            self.out.status = Some(status);
        }
        if let Err(e) = result {
            self.out.error = Some(e);
            self.out.requeue_after = None;
        }
        self.out
    }

    fn rs(&self, i: usize) -> &ReplicaSet {
        &self.rss[i]
    }

    fn rs_list(&self, indices: &[usize]) -> Vec<&ReplicaSet> {
        indices.iter().map(|&i| &self.rss[i]).collect()
    }

    fn status(&self) -> &DeploymentStatus {
        self.d.status.as_ref().expect("set in Syncer::new")
    }

    fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.as_mut().expect("set in Syncer::new")
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.out.events.push(Event {
            type_,
            reason: reason.to_string(),
            message,
        });
    }

    /// Upstream `scaleReplicaSetAndRecordEvent`: nothing to do if the size is
    /// already right (not even the annotations are refreshed).
    fn scale_replica_set_and_record_event(&mut self, i: usize, new_scale: i32) -> bool {
        if rs_replicas(self.rs(i)) == new_scale {
            return false;
        }
        self.scale_replica_set(i, new_scale)
    }

    /// Upstream `scaleReplicaSet`: writes `spec.replicas` together with the
    /// `desired-replicas` and `max-replicas` annotations. The annotations
    /// record the Deployment size this ReplicaSet was last sized for; a later
    /// change of `spec.replicas` is recognised by comparing against them
    /// (`is_scaling_event` in [`scale`]) and proportional scaling divides by them.
    /// Returns true only if the size changed.
    fn scale_replica_set(&mut self, i: usize, new_scale: i32) -> bool {
        let desired = replicas(&self.d);
        let max = desired + fenceposts::max_surge(&self.d);
        let old_scale = rs_replicas(self.rs(i));
        let size_needs_update = old_scale != new_scale;
        let annotations_need_update =
            revisions::replicas_annotations_need_update(self.rs(i), desired, max);
        if !size_needs_update && !annotations_need_update {
            return false;
        }
        let rs = &mut self.rss[i];
        rs.spec.get_or_insert_default().replicas = Some(new_scale);
        revisions::set_replicas_annotations(rs, desired, max);
        let rs = rs.clone();
        let name = name(&rs.metadata).to_string();
        if size_needs_update {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {old_scale} to {new_scale}"),
            );
            self.out.actions.push(Action::ScaleReplicaSet {
                name,
                from: old_scale,
                to: new_scale,
                replica_set: rs,
            });
        } else {
            self.out.actions.push(Action::UpdateReplicaSet(rs));
        }
        size_needs_update
    }

    /// Records an update of the Deployment's metadata/spec as it is now.
    fn update_deployment(&mut self) {
        let mut d = self.d.clone();
        d.status = None;
        self.out.actions.push(Action::UpdateDeployment(d));
    }
}

// --- Reading the objects ----------------------------------------------------
//
// k8s-openapi makes every optional field an `Option`; upstream reads them
// after the API server has defaulted them. These helpers apply the same
// defaults, so a core fed objects straight from our API server (which
// defaults too) and one fed hand-written test objects agree.

/// `spec.replicas` (API default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.strategy.type` (API default `RollingUpdate`).
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or(ROLLING_UPDATE)
}

/// Upstream `IsRollingUpdate`.
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == ROLLING_UPDATE
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// A ReplicaSet's `spec.replicas` (API default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `status.replicas`: the pods the ReplicaSet controller counted (created and
/// not being deleted), as opposed to `spec.replicas`, the pods wanted.
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

pub fn annotation<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn annotations_mut(meta: &mut ObjectMeta) -> &mut BTreeMap<String, String> {
    meta.annotations.get_or_insert_default()
}

fn selects_everything(d: &Deployment) -> bool {
    let selector = &d.spec.as_ref().expect("defaulted").selector;
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// Upstream `ReplicaSetsByCreationTimestamp`: oldest first, ties broken by
/// name (creation timestamps have one-second resolution).
pub fn by_creation_timestamp(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    time(a)
        .cmp(&time(b))
        .then_with(|| name(&a.metadata).cmp(name(&b.metadata)))
}

/// Upstream `FilterActiveReplicaSets`: those that want pods.
pub fn is_active(rs: &ReplicaSet) -> bool {
    rs_replicas(rs) > 0
}

/// Σ `spec.replicas` (upstream `GetReplicaCountForReplicaSets`).
pub fn replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_replicas(rs)).sum()
}

/// Σ `status.replicas` (upstream `GetActualReplicaCountForReplicaSets`).
pub fn actual_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_status_replicas(rs)).sum()
}

/// Σ `status.availableReplicas` (upstream `GetAvailableReplicaCountForReplicaSets`).
pub fn available_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_available(rs)).sum()
}

/// Σ `status.readyReplicas` (upstream `GetReadyReplicaCountForReplicaSets`).
pub fn ready_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_ready(rs)).sum()
}
