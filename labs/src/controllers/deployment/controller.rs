//! The Deployment controller's plumbing: informers on Deployments,
//! ReplicaSets and Pods, a work queue of Deployment keys, and a sync that
//! feeds the decision core ([`super::sync_deployment`]) from the
//! cache and carries out its decisions through the API server.
//!
//! This is `pkg/controller/deployment/deployment_controller.go` minus the
//! core: the event handlers (`addReplicaSet`, `updateReplicaSet`,
//! `deletePod`, …), `getReplicaSetsForDeployment` with its
//! `ControllerRefManager` (adoption and release of ReplicaSets), and the API
//! calls that `sync.go`, `rolling.go` and `progress.go` make as they go.
//!
//! The core decides everything; this file only knows how to *write*:
//!
//! | the core's action | the API call |
//! |---|---|
//! | `CreateReplicaSet` | `POST replicasets` (an `AlreadyExists` is our stale cache or a hash collision) |
//! | `ScaleReplicaSet`, `UpdateReplicaSet` | `PUT replicasets/<name>` with the cached resourceVersion |
//! | `DeleteReplicaSet` | `DELETE replicasets/<name>` |
//! | `UpdateDeployment` | `PUT deployments/<name>` (revision annotation, rollback) |
//! | the status | `PUT deployments/<name>/status` (one retry on conflict) |
//!
//! Every write carries the resourceVersion the decision was based on, so a
//! write based on a stale cache fails with 409 Conflict instead of undoing
//! someone else's change; the key is then requeued and the next sync decides
//! again from fresher state. That is upstream's way too: a conflict is never
//! an error worth reporting, only a reason to look again.

use crate::machinery::selector::{Selector, SelectorExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::revisions::{self, AlreadyExists};
use super::status::{
    AVAILABLE, FAILED_RS_CREATE_REASON, PROGRESSING, get_deployment_condition,
    has_progress_deadline, new_deployment_condition, set_deployment_condition,
};
use super::{self as deployment, Action as Write, EventType, strategy_type};
use crate::controllers::replicaset::{as_selector, controller_of};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{EnqueueKey, EventHandler, Informer, key_of, ref_from_key};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The component name on the Events it writes, as in Kubernetes.
pub const COMPONENT: &str = "deployment-controller";

/// How many Deployments are synced at once (`--concurrent-deployment-syncs`).
pub const DEFAULT_WORKERS: usize = 5;

/// One sync that changed something, for the labs' timelines: what it wrote
/// and what the Deployment looked like afterwards. (Kubernetes has only
/// Events and logs for this.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub deployment: String,
    /// When the sync ran (the cluster's clock, see [`crate::machinery::clock`]).
    pub at: Timestamp,
    /// What it wrote, in words: `create web-5d8f7 (3)`, `scale web-6b7f9 10→8`.
    pub actions: Vec<String>,
    /// The new ReplicaSet's `spec.replicas` after the sync (0 if none).
    pub new_replicas: i32,
    /// Σ `spec.replicas` of the old ReplicaSets after the sync.
    pub old_replicas: i32,
    /// Σ `status.availableReplicas` the sync saw (what it decided on).
    pub available: i32,
    /// Σ `status.readyReplicas` the sync saw.
    pub ready: i32,
    /// The reasons of the Progressing and Available conditions afterwards.
    pub progressing: Option<String>,
    pub available_reason: Option<String>,
}

/// Counters for benches.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Syncs run (every key popped from the queue).
    pub syncs: AtomicU64,
    /// Syncs that wrote something to a ReplicaSet.
    pub steps: AtomicU64,
}

#[derive(Default)]
pub struct Options {
    /// Workers; [`DEFAULT_WORKERS`] if 0.
    pub workers: usize,
    /// Where to report each [`Step`], if anywhere.
    pub steps: Option<mpsc::UnboundedSender<Step>>,
    pub metrics: Option<Arc<Metrics>>,
    /// Lockstep (the labs' deterministic runs, on tokio's paused clock):
    /// before each sync, wait until the rest of the cluster is quiet, so the
    /// sync sees every consequence of what happened before it, as the tick
    /// model of the reference assumes. See [`wait_until_quiet`].
    pub lockstep: bool,
}

/// What the event handlers and the workers share.
struct Shared {
    client: kube::Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    recorder: Mutex<Option<EventRecorder>>,
    steps: Option<mpsc::UnboundedSender<Step>>,
    metrics: Arc<Metrics>,
    lockstep: bool,
}

pub struct DeploymentController {
    shared: Arc<Shared>,
    deployment_informer: Informer<Deployment>,
    replica_set_informer: Informer<ReplicaSet>,
    pod_informer: Informer<Pod>,
    workers: usize,
}

impl DeploymentController {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let deployment_informer = Informer::new(Api::<Deployment>::all(client.clone()));
        let replica_set_informer = Informer::new(Api::<ReplicaSet>::all(client.clone()));
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            deployments: deployment_informer.store(),
            replica_sets: replica_set_informer.store(),
            pods: pod_informer.store(),
            queue: WorkQueue::new(),
            recorder: Mutex::new(None),
            steps: options.steps,
            metrics: options.metrics.unwrap_or_default(),
            lockstep: options.lockstep,
        });
        DeploymentController {
            shared,
            deployment_informer,
            replica_set_informer,
            pod_informer,
            workers: if options.workers == 0 {
                DEFAULT_WORKERS
            } else {
                options.workers
            },
        }
    }

    /// Runs until `shutdown`, exactly like the ReplicaSet controller: start
    /// the informers, wait for their first lists, then run the workers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(self.deployment_informer.run(
                // Every change of a Deployment is a reason to sync it.
                Arc::new(EnqueueKey(Arc::clone(&shared.queue))),
                shutdown.clone(),
            )),
            tokio::spawn(self.replica_set_informer.run(
                Arc::new(ReplicaSetEvents(Arc::clone(&shared))),
                shutdown.clone(),
            )),
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
        ];
        let synced = async {
            shared.deployments.wait_until_ready().await?;
            shared.replica_sets.wait_until_ready().await?;
            shared.pods.wait_until_ready().await
        };
        let workers = Arc::clone(&shared);
        run_controller(
            COMPONENT,
            Arc::clone(&shared.queue),
            synced,
            self.workers,
            shutdown.clone(),
            move |key: String| {
                let shared = Arc::clone(&workers);
                async move { shared.sync(&key).await }
            },
        )
        .await?;
        for informer in informers {
            let _ = informer.await;
        }
        Ok(())
    }
}

/// Waits until every other task of this (paused, single-threaded) runtime
/// is idle. tokio moves a paused clock forward only when nothing is left to
/// run, so a timer of 1 ms fires exactly when the cluster has gone quiet:
/// the ReplicaSet controller has made its pods, the kubelets have written
/// their statuses, and the informers have seen it all. Twice, because a
/// timer that happens to fall due at the same instant as ours may have just
/// woken someone. Costs 2 ms of virtual time per sync.
pub async fn wait_until_quiet() {
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ANCHOR: handlers
/// ReplicaSet events go to the Deployment that controls the ReplicaSet, or,
/// for an orphan, to every Deployment that selects it and may adopt it
/// (upstream `addReplicaSet`, `updateReplicaSet`, `deleteReplicaSet`).
struct ReplicaSetEvents(Arc<Shared>);

impl EventHandler<ReplicaSet> for ReplicaSetEvents {
    fn on_add(&self, rs: &ReplicaSet) {
        let s = &self.0;
        if rs.metadata.deletion_timestamp.is_some() {
            return self.on_delete(rs);
        }
        if let Some(owner) = controller_of(&rs.metadata) {
            if let Some(d) = s.resolve(rs.metadata.namespace.as_deref(), owner) {
                s.queue.add(key_of(&*d));
            }
            return;
        }
        for d in s.deployments_selecting(rs) {
            s.queue.add(key_of(&*d));
        }
    }

    fn on_update(&self, old: &ReplicaSet, cur: &ReplicaSet) {
        let s = &self.0;
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        let old_owner = controller_of(&old.metadata);
        let cur_owner = controller_of(&cur.metadata);
        let owner_changed = old_owner.map(|o| &o.uid) != cur_owner.map(|o| &o.uid);
        if owner_changed
            && let Some(owner) = old_owner
            && let Some(d) = s.resolve(old.metadata.namespace.as_deref(), owner)
        {
            s.queue.add(key_of(&*d));
        }
        if let Some(owner) = cur_owner {
            if let Some(d) = s.resolve(cur.metadata.namespace.as_deref(), owner) {
                s.queue.add(key_of(&*d));
            }
            return;
        }
        // An orphan whose labels or owner changed may now match someone.
        if owner_changed || old.metadata.labels != cur.metadata.labels {
            for d in s.deployments_selecting(cur) {
                s.queue.add(key_of(&*d));
            }
        }
    }

    fn on_delete(&self, rs: &ReplicaSet) {
        let s = &self.0;
        if let Some(owner) = controller_of(&rs.metadata)
            && let Some(d) = s.resolve(rs.metadata.namespace.as_deref(), owner)
        {
            s.queue.add(key_of(&*d));
        }
    }
}

/// Pod events: only deletions matter, and only to a Recreate Deployment,
/// which waits for the last old pod to go before it scales up the new
/// ReplicaSet (upstream `deletePod`). Everything else about pods reaches
/// this controller through the ReplicaSets' status.
struct PodEvents(Arc<Shared>);

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, _pod: &Pod) {}
    fn on_update(&self, _old: &Pod, _cur: &Pod) {}
    fn on_delete(&self, pod: &Pod) {
        let s = &self.0;
        let Some(rs_owner) = controller_of(&pod.metadata) else {
            return;
        };
        if rs_owner.kind != "ReplicaSet" {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(rs) = s
            .replica_sets
            .get(&ref_from_key(&format!("{ns}/{}", rs_owner.name)))
            .filter(|rs| rs.metadata.uid.as_deref() == Some(rs_owner.uid.as_str()))
        else {
            return;
        };
        let Some(d) = controller_of(&rs.metadata).and_then(|o| s.resolve(Some(ns), o)) else {
            return;
        };
        if strategy_type(&d) == deployment::RECREATE && s.pods_of(&d).is_empty() {
            s.queue.add(key_of(&*d));
        }
    }
}
// ANCHOR_END: handlers

impl Shared {
    /// The cached Deployment a controller ownerReference points to, if it is
    /// that very object (same uid).
    fn resolve(&self, ns: Option<&str>, owner: &OwnerReference) -> Option<Arc<Deployment>> {
        if owner.kind != "Deployment" {
            return None;
        }
        let ns = ns.unwrap_or_default();
        let d = self
            .deployments
            .get(&ref_from_key(&format!("{ns}/{}", owner.name)))?;
        (d.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(d)
    }

    /// Deployments in the ReplicaSet's namespace whose selector matches it
    /// (upstream `getDeploymentsForReplicaSet`).
    fn deployments_selecting(&self, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
        let no_labels = Default::default();
        let labels = rs.metadata.labels.as_ref().unwrap_or(&no_labels);
        self.deployments.state_filter(|d| {
            d.metadata.namespace == rs.metadata.namespace
                && selector_of(d).is_some_and(|sel| !sel.selects_all() && sel.matches(labels))
        })
    }

    /// The cached pods controlled by the cached ReplicaSets the Deployment
    /// controls.
    fn pods_of(&self, d: &Deployment) -> Vec<Pod> {
        let ns = d.metadata.namespace.clone();
        let rs_uids: Vec<String> = self
            .replica_sets
            .state_filter(|rs| {
                rs.metadata.namespace == ns
                    && controller_of(&rs.metadata)
                        .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref())
            })
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        self.pods
            .state_filter(|p| {
                p.metadata.namespace == ns
                    && controller_of(&p.metadata).is_some_and(|o| rs_uids.contains(&o.uid))
            })
            .iter()
            .map(|p| (**p).clone())
            .collect()
    }

    fn record(&self, d: &Deployment, type_: EventType, reason: &str, message: String) {
        if let Some(recorder) = &*self.recorder.lock().unwrap_or_else(|e| e.into_inner()) {
            recorder.record(d, type_.as_str(), reason, message);
        }
    }
}

fn selector_of(d: &Deployment) -> Option<Selector> {
    d.spec.as_ref().and_then(|s| as_selector(&s.selector))
}

fn selects_nothing_or_everything(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// The ownerReference a Deployment puts on its ReplicaSets.
fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn name_of<K: kube::Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

impl Shared {
    // ANCHOR: sync
    /// One sync of the Deployment `key` (upstream `syncDeployment`): read
    /// the cache, claim ReplicaSets, ask the core, write what it decided.
    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        if self.lockstep {
            wait_until_quiet().await;
        }
        self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
        let Some(d) = self.deployments.get(&ref_from_key(key)) else {
            return Ok(Action::AwaitChange); // Deleted: the garbage collector takes its ReplicaSets.
        };
        let d: Deployment = (*d).clone();
        let ns = d.metadata.namespace.clone().unwrap_or_default();

        // 1. The ReplicaSets this Deployment controls, adopting orphans that
        //    match its selector and releasing ours that no longer do. (An
        //    empty selector would claim everything: the core refuses it.)
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let rss = if selects_nothing_or_everything(&selector) {
            Vec::new()
        } else {
            self.claim_replica_sets(&d).await?
        };
        // 2. Their pods (only Recreate looks at them).
        let rs_uids: Vec<&str> = rss
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let pods: Vec<Pod> = self
            .pods
            .state_filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns.as_str())
                    && controller_of(&p.metadata).is_some_and(|o| rs_uids.contains(&o.uid.as_str()))
            })
            .iter()
            .map(|p| (**p).clone())
            .collect();

        // 3. The decision.
        let now = crate::machinery::clock::now();
        let sync = deployment::sync_deployment(&d, &rss, &pods, now);

        // 4. The writes, in order; the first failure ends the sync.
        let mut applied = Applied::new(&d, &rss);
        let write_result = self.apply(&d, &sync.actions, &mut applied).await;
        for event in &sync.events {
            // Only events about writes that happened (upstream records each
            // right after its write); a failed sync records its own warning.
            if write_result.is_ok() || event.reason != "ScalingReplicaSet" {
                self.record(&d, event.type_, &event.reason, event.message.clone());
            }
        }
        if let Err(err) = write_result {
            return self.write_failed(&applied, err).await;
        }

        // 5. The status, through the status subresource.
        if let Some(status) = &sync.status {
            self.update_status(&applied.deployment, status.clone())
                .await?;
        }
        self.report(&d, &rss, &applied, &sync, now);
        if let Some(err) = sync.error {
            return Err(anyhow::anyhow!("deployment {key}: {err}"));
        }
        // 6. Look again when the progress deadline expires.
        Ok(match sync.requeue_after {
            Some(delay) => Action::RequeueAfter(delay),
            None => Action::AwaitChange,
        })
    }
    // ANCHOR_END: sync

    // ANCHOR: claim
    /// Upstream `getReplicaSetsForDeployment` with its `ControllerRefManager`:
    ///
    /// * a ReplicaSet another owner controls is not ours, whatever its labels;
    /// * one we control whose labels no longer match is **released** (our
    ///   ownerReference removed), so that someone else may adopt it;
    /// * an orphan whose labels match is **adopted** (our ownerReference
    ///   added), after checking with the API server, not the cache, that we
    ///   still exist and are not being deleted (upstream `canAdoptFunc`).
    ///
    /// Both patches carry the ReplicaSet's uid as a precondition, so they
    /// never touch a different object that took the same name meanwhile.
    async fn claim_replica_sets(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let Some(selector) = selector_of(d) else {
            return Ok(Vec::new());
        };
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let mut claimed = Vec::new();
        let mut can_adopt: Option<bool> = None;
        let candidates = self
            .replica_sets
            .state_filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()));
        let no_labels = Default::default();
        for rs in candidates {
            let matches = selector.matches(rs.metadata.labels.as_ref().unwrap_or(&no_labels));
            match controller_of(&rs.metadata) {
                Some(owner) if owner.uid != uid => {}
                Some(_) if matches || d.metadata.deletion_timestamp.is_some() => {
                    claimed.push((*rs).clone())
                }
                Some(_) => {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": rs.metadata.uid,
                    }});
                    match api
                        .patch(
                            &name_of(&*rs),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        // Gone, or another object now: nothing to release.
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(err) => return Err(err).context("releasing a replica set"),
                    }
                }
                None => {
                    if !matches
                        || d.metadata.deletion_timestamp.is_some()
                        || rs.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    if can_adopt.is_none() {
                        can_adopt = Some(self.still_ours(d).await?);
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [controller_ref(d)],
                        "uid": rs.metadata.uid,
                    }});
                    match api
                        .patch(
                            &name_of(&*rs),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => claimed.push(adopted),
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(err) => return Err(err).context("adopting a replica set"),
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// Upstream `RecheckDeletionTimestamp`: is the Deployment the cache holds
    /// still the one in the API server, and not being deleted?
    async fn still_ours(&self, d: &Deployment) -> anyhow::Result<bool> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let fresh = api
            .get_opt(&name_of(d))
            .await
            .context("re-reading the deployment before adopting")?;
        Ok(fresh.is_some_and(|f| {
            f.metadata.uid == d.metadata.uid && f.metadata.deletion_timestamp.is_none()
        }))
    }
    // ANCHOR_END: claim

    // ANCHOR: apply
    /// Carries out the core's writes in order. `applied` tracks the objects
    /// as the API server returned them, so a later write in the same sync
    /// (a second update of one ReplicaSet, the status after a Deployment
    /// update) carries the newest resourceVersion.
    async fn apply(
        &self,
        d: &Deployment,
        actions: &[Write],
        applied: &mut Applied,
    ) -> Result<(), WriteError> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let pp = PostParams::default();
        for action in actions {
            match action {
                Write::CreateReplicaSet(rs) => {
                    let name = name_of(rs);
                    match rs_api.create(&pp, rs).await {
                        Ok(created) => {
                            applied.actions.push(format!(
                                "create {name} ({})",
                                deployment::rs_replicas(&created)
                            ));
                            applied.set_rs(created);
                        }
                        Err(kube::Error::Api(s))
                            if s.code == 409 && s.reason == "AlreadyExists" =>
                        {
                            let existing = rs_api.get(&name).await.map_err(WriteError::api)?;
                            match revisions::on_already_exists(d, &existing) {
                                // Our cache was behind: the ReplicaSet is the
                                // one we wanted. Carry on with it.
                                AlreadyExists::Ours => applied.set_rs(existing),
                                AlreadyExists::Collision(status) => {
                                    return Err(WriteError::Collision { name, status });
                                }
                            }
                        }
                        Err(err) => return Err(WriteError::Create { name, err }),
                    }
                }
                Write::ScaleReplicaSet {
                    name,
                    from,
                    to,
                    replica_set,
                } => {
                    let updated =
                        replace_replica_set(&rs_api, &applied.with_current_rv(replica_set))
                            .await
                            .map_err(WriteError::api)?;
                    applied.actions.push(format!("scale {name} {from}→{to}"));
                    applied.set_rs(updated);
                }
                Write::UpdateReplicaSet(rs) => {
                    let updated = replace_replica_set(&rs_api, &applied.with_current_rv(rs))
                        .await
                        .map_err(WriteError::api)?;
                    applied.set_rs(updated);
                }
                Write::DeleteReplicaSet { name } => {
                    match rs_api.delete(name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(err) => return Err(WriteError::api(err)),
                    }
                    applied.actions.push(format!("delete {name}"));
                    applied.replica_sets.remove(name);
                }
                Write::UpdateDeployment(new) => {
                    let mut new = new.clone();
                    new.metadata.resource_version =
                        applied.deployment.metadata.resource_version.clone();
                    let updated = d_api
                        .replace(&name_of(d), &pp, &new)
                        .await
                        .map_err(WriteError::api)?;
                    applied.deployment = updated;
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: apply

    /// A write failed: record why where upstream does, then fail the sync so
    /// the work queue retries it with backoff.
    async fn write_failed(&self, applied: &Applied, err: WriteError) -> anyhow::Result<Action> {
        let d = &applied.deployment;
        match err {
            WriteError::Api(err) => Err(anyhow::anyhow!(
                "writing the deployment's changes: {}",
                api_message(&err)
            )),
            // A hash collision: store the raised collisionCount, so the next
            // sync computes another hash and another name.
            WriteError::Collision { name, status } => {
                self.update_status(d, status).await?;
                Err(anyhow::anyhow!(
                    "replica set {name} already exists with another template (hash collision); retrying with a new collisionCount"
                ))
            }
            // Upstream `getNewReplicaSet`: Progressing=False/ReplicaSetCreateError
            // and a warning event.
            WriteError::Create { name, err } => {
                let message = format!(
                    "Failed to create new replica set {name:?}: {}",
                    api_message(&err)
                );
                if has_progress_deadline(d) {
                    let mut status = d.status.clone().unwrap_or_default();
                    let cond = new_deployment_condition(
                        PROGRESSING,
                        "False",
                        FAILED_RS_CREATE_REASON,
                        message.clone(),
                        crate::machinery::clock::now(),
                    );
                    set_deployment_condition(&mut status, cond);
                    self.update_status(d, status).await?;
                }
                self.record(
                    d,
                    EventType::Warning,
                    FAILED_RS_CREATE_REASON,
                    message.clone(),
                );
                Err(anyhow::anyhow!(message))
            }
        }
    }

    // ANCHOR: update_status
    /// `PUT .../status` with the resourceVersion we hold; on a conflict,
    /// re-read the Deployment and try once more. The status stays right:
    /// its observedGeneration says which generation it describes, and if
    /// the spec changed meanwhile that change has queued another sync.
    async fn update_status(&self, d: &Deployment, status: DeploymentStatus) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let name = name_of(d);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let mut current = d.clone();
        for attempt in 0..2 {
            current.status = Some(status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &current)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(err) if attempt == 1 => {
                    return Err(err).context(format!("updating the status of deployment {name}"));
                }
                Err(err) => {
                    tracing::debug!(%err, "status update failed; re-reading and retrying once");
                    current = api.get(&name).await.context("re-reading the deployment")?;
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: update_status

    /// Reports a sync that wrote to a ReplicaSet or changed a condition.
    fn report(
        &self,
        d: &Deployment,
        rss: &[ReplicaSet],
        applied: &Applied,
        sync: &deployment::Sync,
        now: Timestamp,
    ) {
        let reason = |s: Option<&DeploymentStatus>, t: &str| {
            s.and_then(|s| get_deployment_condition(s, t))
                .and_then(|c| c.reason.clone())
        };
        let before = d.status.as_ref();
        let after = sync.status.as_ref().or(before);
        let progressing = reason(after, PROGRESSING);
        let available_reason = reason(after, AVAILABLE);
        let conditions_changed = progressing != reason(before, PROGRESSING)
            || available_reason != reason(before, AVAILABLE);
        if applied.actions.is_empty() && !conditions_changed {
            return;
        }
        if !applied.actions.is_empty() {
            self.metrics.steps.fetch_add(1, Ordering::Relaxed);
        }
        let Some(tx) = &self.steps else {
            return;
        };
        let after_rss: Vec<ReplicaSet> = applied.replica_sets.values().cloned().collect();
        let new = revisions::find_new_replica_set(&applied.deployment, &after_rss);
        let new_replicas = new.map_or(0, |i| deployment::rs_replicas(&after_rss[i]));
        let old_replicas = after_rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new)
            .map(|(_, rs)| deployment::rs_replicas(rs))
            .sum();
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        let _ = tx.send(Step {
            deployment: key_of(d),
            at: now,
            actions: applied.actions.clone(),
            new_replicas,
            old_replicas,
            available: deployment::available_replica_count(&refs),
            ready: deployment::ready_replica_count(&refs),
            progressing,
            available_reason,
        });
    }
}

// ANCHOR: replace_replica_set
/// `PUT` a ReplicaSet with the resourceVersion the decision was based on.
///
/// A 409 Conflict is common here and usually means nothing: the ReplicaSet
/// controller writes the ReplicaSet's *status* all the time, and every
/// write moves the resourceVersion. So on a conflict, read the ReplicaSet
/// again: if its `generation` is the one we saw, its spec is as we saw it
/// and only the status (or other metadata) moved; the write is retried with
/// the fresh resourceVersion. If the spec changed, the conflict stands: the
/// sync fails and the work queue retries it, deciding again from fresh
/// state. (Upstream fails the sync on every conflict; with a busy
/// ReplicaSet controller that costs a backoff per step.)
async fn replace_replica_set(api: &Api<ReplicaSet>, rs: &ReplicaSet) -> kube::Result<ReplicaSet> {
    let name = name_of(rs);
    let mut want = rs.clone();
    let mut attempts = 0;
    loop {
        match api.replace(&name, &PostParams::default(), &want).await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempts < 3 => {
                attempts += 1;
                let current = api.get(&name).await?;
                if current.metadata.generation != rs.metadata.generation
                    || current.metadata.uid != rs.metadata.uid
                {
                    return Err(kube::Error::Api(s));
                }
                want.metadata.resource_version = current.metadata.resource_version;
            }
            other => return other,
        }
    }
}
// ANCHOR_END: replace_replica_set

/// The objects as this sync left them.
struct Applied {
    deployment: Deployment,
    replica_sets: HashMap<String, ReplicaSet>,
    actions: Vec<String>,
}

impl Applied {
    fn new(d: &Deployment, rss: &[ReplicaSet]) -> Self {
        Applied {
            deployment: d.clone(),
            replica_sets: rss.iter().map(|rs| (name_of(rs), rs.clone())).collect(),
            actions: Vec::new(),
        }
    }

    fn set_rs(&mut self, rs: ReplicaSet) {
        self.replica_sets.insert(name_of(&rs), rs);
    }

    /// The core's object with the resourceVersion of our last write to it
    /// in this sync (or the cached one).
    fn with_current_rv(&self, rs: &ReplicaSet) -> ReplicaSet {
        let mut rs = rs.clone();
        if let Some(current) = self.replica_sets.get(&name_of(&rs)) {
            rs.metadata.resource_version = current.metadata.resource_version.clone();
        }
        rs
    }
}

#[derive(Debug)]
enum WriteError {
    Api(kube::Error),
    Collision {
        name: String,
        status: DeploymentStatus,
    },
    Create {
        name: String,
        err: kube::Error,
    },
}

impl WriteError {
    fn api(err: kube::Error) -> Self {
        WriteError::Api(err)
    }
}

/// The message of an API error (the `Status` message), else the error.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
