//! The ReplicaSet controller's plumbing: informers on ReplicaSets and Pods,
//! a work queue of ReplicaSet keys, and a sync that feeds the decision core
//! ([`super::replicaset`]) from the cache and carries out its decisions
//! through the API server.
//!
//! This is `pkg/controller/replicaset/replica_set.go` minus the core: the
//! event handlers (`addPod`, `updatePod`, `deletePod`, …), `syncReplicaSet`'s
//! API calls, `manageReplicas`' creates and deletes, and
//! `updateReplicaSetStatus`.

use crate::machinery::selector::SelectorExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    self as replicaset, Expectations, ReplicaSetEvent, Scale, adopt_patch, as_selector,
    calculate_status, controller_of, indirectly_related_pods, pod_key, release_patch,
    slow_start_batch, slow_start_batches,
};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{EventHandler, Informer, key_of, ref_from_key};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The component name on the Events it writes, as in Kubernetes.
pub const COMPONENT: &str = "replicaset-controller";

/// How many ReplicaSets are synced at once (`--concurrent-replicaset-syncs`).
pub const DEFAULT_WORKERS: usize = 5;

/// One step the controller took, for the labs' timelines. (Kubernetes has
/// only logs and Events for this; the labs print these to narrate a run.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Pods created in slow-start batches; names in creation order.
    Created {
        replica_set: String,
        batches: Vec<usize>,
        pods: Vec<String>,
    },
    /// Creating stopped at the first failing batch.
    CreateFailed {
        replica_set: String,
        created: Vec<String>,
        error: String,
    },
    /// Pods deleted, in the deletion order the core chose.
    Deleted {
        replica_set: String,
        pods: Vec<String>,
    },
    /// An orphan adopted, or an owned pod released.
    Adopted {
        replica_set: String,
        pod: String,
    },
    Released {
        replica_set: String,
        pod: String,
    },
}

#[derive(Default)]
pub struct Options {
    /// Workers; [`DEFAULT_WORKERS`] if 0.
    pub workers: usize,
    /// Where to report each [`Step`], if anywhere.
    pub steps: Option<mpsc::UnboundedSender<Step>>,
}

/// What the event handlers and the workers share.
struct Shared {
    client: kube::Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    /// A std Mutex: held only for a map update, never across an `.await`.
    expectations: Mutex<Expectations>,
    recorder: Mutex<Option<EventRecorder>>,
    steps: Option<mpsc::UnboundedSender<Step>>,
}

pub struct ReplicaSetController {
    shared: Arc<Shared>,
    replica_set_informer: Informer<ReplicaSet>,
    pod_informer: Informer<Pod>,
    workers: usize,
}

// ANCHOR: run
impl ReplicaSetController {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let replica_set_informer = Informer::new(Api::<ReplicaSet>::all(client.clone()));
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            replica_sets: replica_set_informer.store(),
            pods: pod_informer.store(),
            queue: WorkQueue::new(),
            expectations: Mutex::new(Expectations::new()),
            recorder: Mutex::new(None),
            steps: options.steps,
        });
        ReplicaSetController {
            shared,
            replica_set_informer,
            pod_informer,
            workers: if options.workers == 0 {
                DEFAULT_WORKERS
            } else {
                options.workers
            },
        }
    }

    /// Runs until `shutdown`: start both informers, wait until both caches
    /// hold a full list, then reconcile keys with the workers. On shutdown
    /// the informers stop, the queue stops handing out keys, and `run`
    /// returns once every worker has finished the key it holds.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(self.replica_set_informer.run(
                Arc::new(ReplicaSetEvents(Arc::clone(&shared))),
                shutdown.clone(),
            )),
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
        ];
        // client-go's WaitForCacheSync.
        let synced = async {
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
// ANCHOR_END: run

// ANCHOR: handlers
/// ReplicaSet events: every change is a reason to sync that ReplicaSet.
struct ReplicaSetEvents(Arc<Shared>);

impl EventHandler<ReplicaSet> for ReplicaSetEvents {
    fn on_add(&self, rs: &ReplicaSet) {
        self.0.queue.add(key_of(rs));
    }
    fn on_update(&self, _old: &ReplicaSet, rs: &ReplicaSet) {
        self.0.queue.add(key_of(rs));
    }
    fn on_delete(&self, rs: &ReplicaSet) {
        // Forget what we were waiting for; the sync then finds it gone.
        let key = key_of(rs);
        self.0.expectations().delete_expectations(&key);
        self.0.queue.add(key);
    }
}

/// Pod events: find the ReplicaSet(s) the pod concerns, lower their
/// expectations, and queue them (upstream's `addPod`, `updatePod`,
/// `deletePod`).
struct PodEvents(Arc<Shared>);

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, pod: &Pod) {
        let s = &self.0;
        // After a controller restart, a pod may first be seen already
        // terminating: for us that is a deletion.
        if pod.metadata.deletion_timestamp.is_some() {
            return self.on_delete(pod);
        }
        // A pod with a controller belongs to that one ReplicaSet only.
        if let Some(owner) = controller_of(&pod.metadata) {
            if let Some(rs) = s.resolve(pod, owner) {
                let key = key_of(&*rs);
                s.expectations().creation_observed(&key);
                s.queue.add(key);
            }
            return;
        }
        // An orphan: every ReplicaSet that selects it may want to adopt it.
        for rs in s.replica_sets_selecting(pod) {
            s.queue.add(key_of(&*rs));
        }
    }

    fn on_update(&self, old: &Pod, cur: &Pod) {
        let s = &self.0;
        // A resync (same version): nothing changed.
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != cur.metadata.labels;
        // A graceful deletion first only sets deletionTimestamp; the pod
        // goes later. Count it as deleted now, so the replacement is made
        // at once instead of after the grace period.
        if cur.metadata.deletion_timestamp.is_some() {
            self.on_delete(cur);
            if labels_changed {
                // It may have belonged to another ReplicaSet before.
                self.on_delete(old);
            }
            return;
        }
        let old_owner = controller_of(&old.metadata);
        let cur_owner = controller_of(&cur.metadata);
        let owner_changed = old_owner.map(|o| &o.uid) != cur_owner.map(|o| &o.uid);
        if owner_changed
            && let Some(owner) = old_owner
            && let Some(rs) = s.resolve(old, owner)
        {
            // The old owner lost a pod: it may need a replacement.
            s.queue.add(key_of(&*rs));
        }
        if let Some(owner) = cur_owner {
            if let Some(rs) = s.resolve(cur, owner) {
                s.queue.add(key_of(&*rs));
                // Becoming ready produces no later event when the pod
                // becomes *available* minReadySeconds afterwards: sync then.
                let min_ready = rs.spec.as_ref().and_then(|sp| sp.min_ready_seconds);
                if let Some(secs) = min_ready.filter(|s| *s > 0)
                    && !replicaset::is_pod_ready(old)
                    && replicaset::is_pod_ready(cur)
                {
                    s.queue
                        .add_after(key_of(&*rs), Duration::from_secs(secs as u64));
                }
            }
            return;
        }
        // An orphan whose labels or owner changed may now match someone.
        if labels_changed || owner_changed {
            for rs in s.replica_sets_selecting(cur) {
                s.queue.add(key_of(&*rs));
            }
        }
    }

    fn on_delete(&self, pod: &Pod) {
        let s = &self.0;
        let Some(owner) = controller_of(&pod.metadata) else {
            return; // An orphan's deletion changes no ReplicaSet's count.
        };
        if let Some(rs) = s.resolve(pod, owner) {
            let key = key_of(&*rs);
            s.expectations().deletion_observed(&key, &pod_key(pod));
            s.queue.add(key);
        }
    }
}

impl Shared {
    fn expectations(&self) -> std::sync::MutexGuard<'_, Expectations> {
        self.expectations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached ReplicaSet a controller ownerReference points to, if it
    /// is that very ReplicaSet (same uid: a ReplicaSet deleted and
    /// recreated under the same name is another object).
    fn resolve(&self, pod: &Pod, owner: &OwnerReference) -> Option<Arc<ReplicaSet>> {
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let rs = self
            .replica_sets
            .get(&ref_from_key(&format!("{ns}/{}", owner.name)))?;
        (rs.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(rs)
    }

    /// ReplicaSets in the pod's namespace whose selector matches it
    /// (upstream's `GetPodReplicaSets`).
    fn replica_sets_selecting(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let no_labels = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        self.replica_sets.state_filter(|rs| {
            rs.metadata.namespace == pod.metadata.namespace
                && rs
                    .spec
                    .as_ref()
                    .and_then(|spec| as_selector(&spec.selector))
                    .is_some_and(|sel| !sel.selects_all() && sel.matches(labels))
        })
    }
}
// ANCHOR_END: handlers

impl Shared {
    fn step(&self, step: Step) {
        if let Some(tx) = &self.steps {
            let _ = tx.send(step);
        }
    }

    fn record(&self, rs: &ReplicaSet, event: ReplicaSetEvent) {
        if let Some(recorder) = &*self.recorder.lock().unwrap_or_else(|e| e.into_inner()) {
            recorder.record(rs, event.type_(), event.reason(), event.message());
        }
    }

    // ANCHOR: sync
    /// One sync of the ReplicaSet `key` (upstream's `syncReplicaSet`), in
    /// the steps the core's module documentation lists.
    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(rs) = self.replica_sets.get(&ref_from_key(key)) else {
            // Deleted: nothing to do. The garbage collector removes its pods.
            self.expectations().delete_expectations(key);
            return Ok(Action::AwaitChange);
        };
        let now = crate::machinery::clock::now();
        // 1. Checked *before* reading the cache (see the core's docs).
        let needs_sync = self.expectations().satisfied(key, now);

        // 2. The decision, from the cache alone.
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let pods = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
        let siblings = if controller_of(&rs.metadata).is_some() {
            self.replica_sets
                .state_filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
        } else {
            Vec::new()
        };
        let related = indirectly_related_pods(&rs, &siblings, &pods);
        let r = replicaset::reconcile(&rs, &pods, &related, now);

        // 3. Adopt and release. scale assumed these succeed, so a failure
        //    ends the sync (to be retried with backoff).
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        for (pods, adopt) in [(&r.adopt, true), (&r.release, false)] {
            for pod in pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let patch = if adopt {
                    adopt_patch(&rs, pod)
                } else {
                    release_patch(&rs, pod)
                };
                match pod_api
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(_) => self.step(if adopt {
                        Step::Adopted {
                            replica_set: rs_name.clone(),
                            pod: name,
                        }
                    } else {
                        Step::Released {
                            replica_set: rs_name.clone(),
                            pod: name,
                        }
                    }),
                    // Gone meanwhile: nothing to adopt or release.
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(err) => return Err(err).context(format!("patching pod {name}")),
                }
            }
        }

        // 4. Scale, unless still waiting for the watch to report our last
        //    creates and deletes.
        let manage_error = if needs_sync {
            self.manage_replicas(key, &rs, &pod_api, r.scale)
                .await
                .err()
        } else {
            None
        };

        // 5. Status: what the core computed, or with ReplicaFailure if the
        //    scale step failed.
        let status = match &manage_error {
            None => r.status,
            Some(err) => calculate_status(&rs, &r.active, Some(&format!("{err:#}")), now),
        };
        if rs.status.as_ref() != Some(&status) {
            self.update_status(&rs, status).await?;
        }
        if let Some(err) = manage_error {
            return Err(err);
        }
        // 6. Wake up later if the core asked for it (minReadySeconds).
        Ok(match r.requeue_after {
            Some(delay) => Action::RequeueAfter(delay),
            None => Action::AwaitChange,
        })
    }
    // ANCHOR_END: sync

    // ANCHOR: manage_replicas
    /// Carries out the scale step: upstream's `manageReplicas` API calls.
    async fn manage_replicas(
        &self,
        key: &str,
        rs: &ReplicaSet,
        pod_api: &Api<Pod>,
        scale: Scale<'_>,
    ) -> anyhow::Result<()> {
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        match scale {
            Scale::None => Ok(()),
            Scale::Create { count, pod } => {
                // Write down what we expect *before* creating: the watch
                // may report a new pod before `create` even returns.
                self.expectations()
                    .expect_creations(key, count, crate::machinery::clock::now());
                let created = Mutex::new(Vec::new());
                let (successes, error) = slow_start_batch(count, || {
                    let (pod_api, pod, created) = (pod_api, &pod, &created);
                    async move {
                        let pod = pod_api.create(&PostParams::default(), pod).await?;
                        let rv: u64 = pod
                            .metadata
                            .resource_version
                            .as_deref()
                            .and_then(|rv| rv.parse().ok())
                            .unwrap_or(0);
                        let name = pod.metadata.name.unwrap_or_default();
                        created
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((rv, name));
                        Ok::<_, kube::Error>(())
                    }
                })
                .await;
                // No watch event will ever report the creates that failed
                // or were never tried: stop waiting for them.
                for _ in successes..count {
                    self.expectations().creation_observed(key);
                }
                let mut created = created.into_inner().unwrap_or_else(|e| e.into_inner());
                // The order the API server created them in.
                created.sort();
                let names: Vec<String> = created.into_iter().map(|(_, name)| name).collect();
                for name in &names {
                    self.record(rs, ReplicaSetEvent::SuccessfulCreate { pod: name.clone() });
                }
                match error {
                    None => {
                        self.step(Step::Created {
                            replica_set: rs_name,
                            batches: slow_start_batches(count),
                            pods: names,
                        });
                        Ok(())
                    }
                    Some(err) => {
                        let error = api_message(&err);
                        self.record(
                            rs,
                            ReplicaSetEvent::FailedCreate {
                                error: error.clone(),
                            },
                        );
                        self.step(Step::CreateFailed {
                            replica_set: rs_name,
                            created: names,
                            error: error.clone(),
                        });
                        Err(anyhow::anyhow!(error))
                    }
                }
            }
            Scale::Delete { pods } => {
                self.expectations().expect_deletions(
                    key,
                    pods.iter().map(|p| pod_key(p)),
                    crate::machinery::clock::now(),
                );
                let results = futures::future::join_all(pods.iter().map(|pod| async move {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let result = pod_api.delete(&name, &DeleteParams::default()).await;
                    (*pod, name, result)
                }))
                .await;
                let mut first_error = None;
                let mut deleted = Vec::new();
                for (pod, name, result) in results {
                    match result {
                        Ok(_) => {
                            self.record(
                                rs,
                                ReplicaSetEvent::SuccessfulDelete { pod: name.clone() },
                            );
                            deleted.push(name);
                        }
                        Err(err) => {
                            // The watch will not report this deletion.
                            self.expectations().deletion_observed(key, &pod_key(pod));
                            // Already gone is what we wanted.
                            if matches!(&err, kube::Error::Api(s) if s.is_not_found()) {
                                continue;
                            }
                            let error = api_message(&err);
                            self.record(
                                rs,
                                ReplicaSetEvent::FailedDelete {
                                    pod: name,
                                    error: error.clone(),
                                },
                            );
                            first_error.get_or_insert(error);
                        }
                    }
                }
                self.step(Step::Deleted {
                    replica_set: rs_name,
                    pods: deleted,
                });
                match first_error {
                    None => Ok(()),
                    Some(error) => Err(anyhow::anyhow!(error)),
                }
            }
        }
    }
    // ANCHOR_END: manage_replicas

    // ANCHOR: update_status
    /// Writes the status with one retry (upstream's `updateReplicaSetStatus`
    /// with `statusUpdateRetries = 1`). The PUT carries the cached
    /// resourceVersion, so if anyone changed the ReplicaSet since the cache
    /// saw it, the API server answers 409 Conflict; then we read the current
    /// object and try once more. A second failure fails the sync, and the
    /// work queue retries it with backoff: a conflict is never fatal, only
    /// a reason to look again.
    async fn update_status(&self, rs: &ReplicaSet, status: ReplicaSetStatus) -> anyhow::Result<()> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let mut current = rs.clone();
        for attempt in 0..2 {
            current.status = Some(status.clone());
            match api
                .replace_status(name, &PostParams::default(), &current)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                Err(err) if attempt == 1 => {
                    return Err(err).context(format!("updating the status of replicaset {name}"));
                }
                Err(err) => {
                    tracing::debug!(%err, "status update failed; re-reading and retrying once");
                    // The status we computed stays right: it describes
                    // the generation we synced (its observedGeneration).
                    current = api.get(name).await.context("re-reading the replicaset")?;
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: update_status
}

/// The message of an API error (the `Status` message), else the error.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
