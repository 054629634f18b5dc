//! The disruption controller's plumbing: informers on budgets, pods,
//! ReplicaSets and Deployments, a work queue of budget keys, and a sync
//! that feeds the core ([`super::try_sync`]) from the caches and writes the
//! budget's status through the API server.
//!
//! This is `pkg/controller/disruption/disruption.go` minus the core: the
//! pod and budget event handlers (`addPod`, `updatePod`, `deletePod`,
//! `addDb`, …), the *finders* that map a pod's controller to its scale, and
//! the recheck queue for noted evictions that are about to expire.
//! StatefulSets and ReplicationControllers (and any kind with a `scale`
//! subresource) are among upstream's finders; the lab cluster has neither,
//! so ReplicaSets and Deployments are all it looks for.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use super::{ControllerScale, status_changed, try_sync};
use crate::machinery::clock;
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{CacheOnly, EventHandler, Informer, key_of, ref_from_key};
use crate::machinery::pods::controller_of;
use crate::machinery::selector::{SelectorExt, as_selector};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The component name on the Events it writes, as in Kubernetes.
pub const COMPONENT: &str = "controllermanager";

/// The name the controller manager knows it by (`--controllers`).
pub const NAME: &str = "disruption-controller";

struct Shared {
    client: kube::Client,
    budgets: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    queue: Arc<WorkQueue>,
    recorder: Mutex<Option<EventRecorder>>,
}

pub struct DisruptionController {
    shared: Arc<Shared>,
    budget_informer: Informer<PodDisruptionBudget>,
    pod_informer: Informer<Pod>,
    replica_set_informer: Informer<ReplicaSet>,
    deployment_informer: Informer<Deployment>,
}

impl DisruptionController {
    pub fn new(client: kube::Client) -> Self {
        let budget_informer = Informer::new(Api::<PodDisruptionBudget>::all(client.clone()));
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()));
        let replica_set_informer = Informer::new(Api::<ReplicaSet>::all(client.clone()));
        let deployment_informer = Informer::new(Api::<Deployment>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            budgets: budget_informer.store(),
            pods: pod_informer.store(),
            replica_sets: replica_set_informer.store(),
            deployments: deployment_informer.store(),
            queue: WorkQueue::new(),
            recorder: Mutex::new(None),
        });
        DisruptionController {
            shared,
            budget_informer,
            pod_informer,
            replica_set_informer,
            deployment_informer,
        }
    }

    /// Runs until `shutdown`. One worker, as upstream: budgets are few, and
    /// a sync costs at most one write.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(self.budget_informer.run(
                Arc::new(BudgetEvents(Arc::clone(&shared))),
                shutdown.clone(),
            )),
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
            tokio::spawn(
                self.replica_set_informer
                    .run(Arc::new(CacheOnly), shutdown.clone()),
            ),
            tokio::spawn(
                self.deployment_informer
                    .run(Arc::new(CacheOnly), shutdown.clone()),
            ),
        ];
        let synced = async {
            shared.budgets.wait_until_ready().await?;
            shared.pods.wait_until_ready().await?;
            shared.replica_sets.wait_until_ready().await?;
            shared.deployments.wait_until_ready().await
        };
        let workers = Arc::clone(&shared);
        run_controller(
            NAME,
            Arc::clone(&shared.queue),
            synced,
            1,
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

/// Budget events: a new or changed budget is synced.
struct BudgetEvents(Arc<Shared>);

impl EventHandler<PodDisruptionBudget> for BudgetEvents {
    fn on_add(&self, pdb: &PodDisruptionBudget) {
        self.0.queue.add(key_of(pdb));
    }
    fn on_update(&self, _old: &PodDisruptionBudget, pdb: &PodDisruptionBudget) {
        self.0.queue.add(key_of(pdb));
    }
    fn on_delete(&self, _pdb: &PodDisruptionBudget) {}
}

/// Pod events: the budgets selecting the pod are synced (upstream's
/// `getPdbForPod`). Readiness flips, deletions and new pods all move the
/// counts.
struct PodEvents(Arc<Shared>);

impl PodEvents {
    fn enqueue_budgets_of(&self, pod: &Pod) {
        for pdb in self.0.budgets.state() {
            if pods_of(&pdb)(pod) {
                self.0.queue.add(key_of(&*pdb));
            }
        }
    }
}

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, pod: &Pod) {
        self.enqueue_budgets_of(pod);
    }
    fn on_update(&self, old: &Pod, pod: &Pod) {
        if old.metadata.resource_version == pod.metadata.resource_version {
            return;
        }
        self.enqueue_budgets_of(pod);
        if old.metadata.labels != pod.metadata.labels {
            self.enqueue_budgets_of(old);
        }
    }
    fn on_delete(&self, pod: &Pod) {
        self.enqueue_budgets_of(pod);
    }
}

/// Which pods the budget selects, its selector parsed once: the pods of
/// its namespace that the selector matches. No selector (or one this
/// controller cannot read) selects nothing; an empty one selects every pod
/// of the namespace (policy/v1; the eviction handler counts by the same
/// rule).
fn pods_of(pdb: &PodDisruptionBudget) -> impl Fn(&Pod) -> bool {
    let ns = pdb.metadata.namespace.clone();
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(as_selector);
    move |pod| {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        pod.metadata.namespace == ns && selector.as_ref().is_some_and(|s| s.matches(&labels))
    }
}

impl Shared {
    // ANCHOR: sync
    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(pdb) = self.budgets.get(&ref_from_key::<PodDisruptionBudget>(key)) else {
            return Ok(Action::AwaitChange);
        };
        let ns = pdb.metadata.namespace.clone().unwrap_or_default();
        let selected = pods_of(&pdb);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| selected(p))
            .collect();
        let pods: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let now = clock::now();
        let (status, recheck_at) =
            match try_sync(&pdb, &pods, |pod, owner| self.scale_of(pod, owner), now) {
                Ok(sync) => {
                    for event in &sync.events {
                        self.record(&pdb, &pods, event);
                    }
                    (sync.status, sync.recheck_at)
                }
                Err((status, err)) => {
                    self.record(
                        &pdb,
                        &pods,
                        &super::Event {
                            pod: None,
                            type_: "Warning",
                            reason: "CalculateExpectedPodCountFailed",
                            message: format!(
                                "Failed to calculate the number of expected pods: {err}"
                            ),
                        },
                    );
                    (status, None)
                }
            };
        if status_changed(pdb.status.as_ref(), &status) {
            let mut new = (*pdb).clone();
            new.status = Some(status);
            // A PUT with the cached resourceVersion: if an eviction wrote the
            // budget since, this conflicts and the sync runs again on the
            // newer budget — its noted pod is never lost.
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &ns);
            let name = pdb.metadata.name.clone().unwrap_or_default();
            api.replace_status(&name, &PostParams::default(), &new)
                .await?;
        }
        Ok(match recheck_at {
            // Look again when the earliest noted eviction expires.
            Some(at) => Action::RequeueAfter(
                std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default()
                    + std::time::Duration::from_millis(10),
            ),
            None => Action::AwaitChange,
        })
    }
    // ANCHOR_END: sync

    /// The finders: a pod's ReplicaSet, and the Deployment above it if there
    /// is one (then the Deployment's replicas are the scale, not the
    /// ReplicaSet's, which a rollout moves up and down).
    fn scale_of(&self, pod: &Pod, owner: &OwnerReference) -> Option<ControllerScale> {
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let rs = self
            .replica_sets
            .get(&ObjectRef::new(&owner.name).within(ns))
            .filter(|rs| rs.metadata.uid.as_deref() == Some(&owner.uid))?;
        match controller_of(&rs.metadata) {
            Some(dep_ref) if dep_ref.kind == "Deployment" => {
                let dep = self
                    .deployments
                    .get(&ObjectRef::new(&dep_ref.name).within(ns))
                    .filter(|d| d.metadata.uid.as_deref() == Some(&dep_ref.uid))?;
                Some(ControllerScale {
                    uid: dep_ref.uid.clone(),
                    scale: dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                })
            }
            _ => Some(ControllerScale {
                uid: owner.uid.clone(),
                scale: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }),
        }
    }

    fn record(&self, pdb: &PodDisruptionBudget, pods: &[&Pod], event: &super::Event) {
        let recorder = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        let Some(recorder) = recorder.as_ref() else {
            return;
        };
        match &event.pod {
            None => recorder.record(pdb, event.type_, event.reason, event.message.clone()),
            Some(name) => {
                if let Some(pod) = pods.iter().find(|p| p.metadata.name.as_ref() == Some(name)) {
                    recorder.record(*pod, event.type_, event.reason, event.message.clone());
                }
            }
        }
    }
}
