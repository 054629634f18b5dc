//! The garbage collector's plumbing: one informer per watched kind feeding
//! the dependency graph, and the workers of the two queues
//! (`attempt_to_delete`, `attempt_to_orphan`) that look at the live objects
//! and delete dependents, strip ownerReferences and remove finalizers
//! through the API server.
//!
//! This mirrors `pkg/controller/garbagecollector/garbagecollector.go`
//! (`attemptToDeleteItem`, `attemptToOrphanWorker`,
//! `processDeletingDependentsItem`, `classifyReferences`),
//! `graph_builder.go` (`processGraphChanges`), and the patches of
//! `operations.go` and `patch.go`.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node as K8sNode, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::runtime::reflector::Store;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::machinery::informer::{EventHandler, Informer};
use crate::machinery::workqueue::{Action, WorkQueue, run_workers};

use super::{
    CLUSTER_SCOPED, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Graph, KINDS, Node, OwnerState,
};

/// Workers on the attempt-to-delete queue (`--concurrent-gc-syncs` = 20).
const DELETE_WORKERS: usize = 20;
/// Workers on the attempt-to-orphan queue (upstream runs one).
const ORPHAN_WORKERS: usize = 1;
struct Shared {
    client: kube::Client,
    graph: Mutex<Graph>,
    attempt_to_delete: Arc<WorkQueue>,
    attempt_to_orphan: Arc<WorkQueue>,
}

pub struct GarbageCollector {
    shared: Arc<Shared>,
}

impl GarbageCollector {
    pub fn new(client: kube::Client) -> Self {
        GarbageCollector {
            shared: Arc::new(Shared {
                client,
                graph: Mutex::new(Graph::default()),
                attempt_to_delete: WorkQueue::new(),
                attempt_to_orphan: WorkQueue::new(),
            }),
        }
    }

    /// Runs until `shutdown`: one informer per kind in [`KINDS`], then the
    /// workers of both queues once every cache is synced.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let s = self.shared;
        let (pods, pods_task) = watch_kind::<Pod>(&s, &shutdown);
        let (rss, rss_task) = watch_kind::<ReplicaSet>(&s, &shutdown);
        let (deps, deps_task) = watch_kind::<Deployment>(&s, &shutdown);
        let (nodes, nodes_task) = watch_kind::<K8sNode>(&s, &shutdown);
        let (leases, leases_task) = watch_kind::<Lease>(&s, &shutdown);
        let synced = async {
            pods.wait_until_ready().await?;
            rss.wait_until_ready().await?;
            deps.wait_until_ready().await?;
            nodes.wait_until_ready().await?;
            leases.wait_until_ready().await
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            result = synced => {
                result.context("informer stopped before its first list")?;
                tracing::info!("garbage-collector: caches synced; starting workers");
                let stop = {
                    let (s, shutdown) = (Arc::clone(&s), shutdown.clone());
                    async move {
                        shutdown.cancelled().await;
                        s.attempt_to_delete.shut_down();
                        s.attempt_to_orphan.shut_down();
                    }
                };
                let deleter = run_workers(Arc::clone(&s.attempt_to_delete), DELETE_WORKERS, {
                    let s = Arc::clone(&s);
                    move |uid: String| {
                        let s = Arc::clone(&s);
                        async move { s.attempt_to_delete_item(&uid).await }
                    }
                });
                let orphaner = run_workers(Arc::clone(&s.attempt_to_orphan), ORPHAN_WORKERS, {
                    let s = Arc::clone(&s);
                    move |uid: String| {
                        let s = Arc::clone(&s);
                        async move { s.attempt_to_orphan_item(&uid).await }
                    }
                });
                tokio::join!(stop, deleter, orphaner);
            }
        }
        s.attempt_to_delete.shut_down();
        s.attempt_to_orphan.shut_down();
        let _ = tokio::join!(pods_task, rss_task, deps_task, nodes_task, leases_task);
        Ok(())
    }
}

fn watch_kind<K>(
    s: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let informer = Informer::new(Api::<K>::all(s.client.clone()));
    let store = informer.store();
    let task = tokio::spawn(informer.run(Arc::new(GraphEvents(Arc::clone(s))), shutdown.clone()));
    (store, task)
}

// ANCHOR: graph_events
/// Informer events update the graph and queue what may need action
/// (upstream's `GraphBuilder.processGraphChanges`).
struct GraphEvents(Arc<Shared>);

impl<K: kube::Resource<DynamicType = ()>> EventHandler<K> for GraphEvents {
    fn on_add(&self, obj: &K) {
        self.changed(obj);
    }
    fn on_update(&self, _old: &K, obj: &K) {
        self.changed(obj);
    }
    fn on_delete(&self, obj: &K) {
        let s = &self.0;
        let Some(uid) = obj.meta().uid.clone() else {
            return;
        };
        let mut g = s.graph();
        let Some(node) = g.remove(&uid) else {
            return;
        };
        g.absent.insert(uid.clone());
        // Its dependents may now be garbage.
        for dependent in g.dependents_of(&uid) {
            s.attempt_to_delete.add(dependent);
        }
        // An owner waiting for its dependents may now be able to go.
        for owner in &node.owners {
            if g.nodes
                .get(&owner.uid)
                .is_some_and(Node::deleting_dependents)
            {
                s.attempt_to_delete.add(owner.uid.clone());
            }
        }
    }
}

impl GraphEvents {
    fn changed<K: kube::Resource<DynamicType = ()>>(&self, obj: &K) {
        let s = &self.0;
        let meta = obj.meta();
        let Some(uid) = meta.uid.clone() else {
            return;
        };
        let node = Node {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        };
        let mut g = s.graph();
        g.absent.remove(&uid);
        g.set(&uid, node.clone());
        // Deleted with Orphan: strip its dependents.
        if node.deleting && node.has_finalizer(FINALIZER_ORPHAN) {
            s.attempt_to_orphan.add(uid.clone());
        }
        // Deleted with Foreground: its dependents go first, then it.
        if node.deleting_dependents() {
            for dependent in g.dependents_of(&uid) {
                s.attempt_to_delete.add(dependent);
            }
            s.attempt_to_delete.add(uid.clone());
        }
        // An owner we do not know (yet), or one that is going away: look
        // at this dependent. (Usually the owner's own event is merely late;
        // the check then finds it alive and does nothing.)
        let needs_check = node.owners.iter().any(|owner| {
            g.absent.contains(&owner.uid)
                || g.nodes
                    .get(&owner.uid)
                    .is_none_or(Node::deleting_dependents)
        });
        if needs_check {
            s.attempt_to_delete.add(uid);
        }
    }
}
// ANCHOR_END: graph_events
impl Shared {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Option<Api<DynamicObject>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        if !KINDS.contains(&(api_version, kind)) {
            return None;
        }
        let plural = format!("{}s", kind.to_ascii_lowercase());
        let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
        Some(match namespace {
            Some(ns) if !CLUSTER_SCOPED.contains(&kind) => {
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            _ => Api::all_with(self.client.clone(), &ar),
        })
    }

    // ANCHOR: attempt_to_delete
    /// Is the object `uid` garbage? Delete it if so (upstream's
    /// `attemptToDeleteItem`). Also drives foreground deletions: for an
    /// owner waiting for its dependents, delete them, or remove its
    /// finalizer once none is left.
    async fn attempt_to_delete_item(&self, uid: &str) -> anyhow::Result<Action> {
        let Some(node) = self.graph().nodes.get(uid).cloned() else {
            return Ok(Action::AwaitChange); // Gone already.
        };
        let Some(api) = self.api(&node.api_version, &node.kind, node.namespace.as_deref()) else {
            return Ok(Action::AwaitChange);
        };
        // The graph can be stale: decide on the live object.
        let Some(live) = api.get_opt(&node.name).await? else {
            return Ok(Action::AwaitChange);
        };
        if live.metadata.uid.as_deref() != Some(uid) {
            return Ok(Action::AwaitChange);
        }
        if live.metadata.deletion_timestamp.is_some() {
            if has_finalizer(&live, FINALIZER_FOREGROUND) {
                self.process_deleting_dependents(uid, &api, &live).await?;
            }
            return Ok(Action::AwaitChange);
        }
        let owners = live.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in &owners {
            match self.owner_state(node.namespace.as_deref(), owner).await? {
                OwnerState::Solid => solid.push(owner),
                OwnerState::Dangling => dangling.push(owner),
                OwnerState::WaitingForDependents => waiting.push(owner),
            }
        }
        // Still owned by someone alive: not garbage. Drop the references
        // to owners that are gone (or waiting for us), keep the object.
        if !solid.is_empty() {
            if !dangling.is_empty() || !waiting.is_empty() {
                let uids: Vec<&str> = dangling
                    .iter()
                    .chain(&waiting)
                    .map(|o| o.uid.as_str())
                    .collect();
                remove_owner_references(&api, &node.name, uid, &uids).await?;
            }
            return Ok(Action::AwaitChange);
        }
        // Every owner is gone or going: this object is garbage. How to
        // delete it: if an owner waits for us and we own things too, go in
        // the foreground so our dependents are gone before we are (and the
        // owner keeps waiting); otherwise as our own finalizers ask.
        let has_dependents = !self.graph().dependents_of(uid).is_empty();
        let policy = if !waiting.is_empty() && has_dependents {
            PropagationPolicy::Foreground
        } else if has_finalizer(&live, FINALIZER_ORPHAN) {
            PropagationPolicy::Orphan
        } else if has_finalizer(&live, FINALIZER_FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(kind = %node.kind, name = %node.name, ?policy, "garbage-collector: deleting");
        let params = DeleteParams {
            propagation_policy: Some(policy),
            // Only this object: not a new one that took its name meanwhile.
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&node.name, &params).await {
            Ok(_) => Ok(Action::AwaitChange),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(Action::AwaitChange),
            Err(err) => Err(err).context(format!("deleting {} {}", node.kind, node.name)),
        }
    }
    // ANCHOR_END: attempt_to_delete

    /// Classifies one owner (upstream's `classifyReferences`). An owner the
    /// graph knows and that is not being deleted is trusted without a GET:
    /// if it was deleted meanwhile, its delete event queues this dependent
    /// again, so trusting a stale cache can only delay a deletion, never
    /// cause a wrong one. Anything else is checked with a live GET.
    async fn owner_state(
        &self,
        namespace: Option<&str>,
        owner: &OwnerReference,
    ) -> anyhow::Result<OwnerState> {
        {
            let g = self.graph();
            if g.absent.contains(&owner.uid) {
                return Ok(OwnerState::Dangling);
            }
            if let Some(node) = g.nodes.get(&owner.uid)
                && !node.deleting
            {
                return Ok(OwnerState::Solid);
            }
        }
        let Some(api) = self.api(&owner.api_version, &owner.kind, namespace) else {
            // A kind we do not watch: we cannot tell, so never delete.
            return Ok(OwnerState::Solid);
        };
        let live = api.get_opt(&owner.name).await?;
        Ok(match live {
            Some(o) if o.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                if o.metadata.deletion_timestamp.is_some()
                    && has_finalizer(&o, FINALIZER_FOREGROUND)
                {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Solid
                }
            }
            _ => {
                self.graph().absent.insert(owner.uid.clone());
                OwnerState::Dangling
            }
        })
    }

    // ANCHOR: foreground
    /// An owner deleted in the foreground: once none of its dependents with
    /// `blockOwnerDeletion: true` is left, remove its `foregroundDeletion`
    /// finalizer, and the API server deletes it. Until then, make sure each
    /// blocking dependent is being deleted (upstream's
    /// `processDeletingDependentsItem`).
    async fn process_deleting_dependents(
        &self,
        uid: &str,
        api: &Api<DynamicObject>,
        live: &DynamicObject,
    ) -> anyhow::Result<()> {
        let blocking: Vec<(String, bool)> = {
            let g = self.graph();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|d| {
                    let node = g.nodes.get(&d)?;
                    let blocks = node
                        .owners
                        .iter()
                        .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
                    blocks.then(|| (d.clone(), node.deleting))
                })
                .collect()
        };
        if blocking.is_empty() {
            return remove_finalizer(api, live, FINALIZER_FOREGROUND).await;
        }
        for (dependent, deleting) in blocking {
            if !deleting {
                self.attempt_to_delete.add(dependent);
            }
        }
        Ok(())
    }
    // ANCHOR_END: foreground

    // ANCHOR: orphan
    /// An owner deleted with `Orphan`: remove its ownerReference from every
    /// dependent, then its `orphan` finalizer, after which the API server
    /// deletes it (upstream's `attemptToOrphanWorker`).
    async fn attempt_to_orphan_item(&self, uid: &str) -> anyhow::Result<Action> {
        let (node, dependents) = {
            let g = self.graph();
            let Some(node) = g.nodes.get(uid).cloned() else {
                return Ok(Action::AwaitChange);
            };
            let dependents: Vec<(String, Node)> = g
                .dependents_of(uid)
                .into_iter()
                .filter_map(|d| g.nodes.get(&d).cloned().map(|n| (d, n)))
                .collect();
            (node, dependents)
        };
        for (dependent_uid, dependent) in &dependents {
            let Some(api) = self.api(
                &dependent.api_version,
                &dependent.kind,
                dependent.namespace.as_deref(),
            ) else {
                continue;
            };
            remove_owner_references(&api, &dependent.name, dependent_uid, &[uid]).await?;
        }
        let Some(api) = self.api(&node.api_version, &node.kind, node.namespace.as_deref()) else {
            return Ok(Action::AwaitChange);
        };
        if let Some(live) = api.get_opt(&node.name).await?
            && live.metadata.uid.as_deref() == Some(uid)
        {
            remove_finalizer(&api, &live, FINALIZER_ORPHAN).await?;
        }
        Ok(Action::AwaitChange)
    }
    // ANCHOR_END: orphan
}

fn has_finalizer(obj: &DynamicObject, f: &str) -> bool {
    obj.metadata.finalizers.iter().flatten().any(|x| x == f)
}

/// Removes the ownerReferences with these uids from a dependent: a strategic
/// merge patch deleting list entries by their merge key, `uid`, with the
/// dependent's own uid as a precondition.
async fn remove_owner_references(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    owner_uids: &[&str],
) -> anyhow::Result<()> {
    let deletes: Vec<_> = owner_uids
        .iter()
        .map(|u| json!({"$patch": "delete", "uid": u}))
        .collect();
    let patch = json!({"metadata": {"ownerReferences": deletes, "uid": uid}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(err) => Err(err).context(format!("removing ownerReferences from {name}")),
    }
}

/// Removes one finalizer: a merge patch of the whole list, with the
/// resourceVersion as a precondition so that a finalizer someone adds
/// meanwhile is not lost; on a conflict, read again and retry.
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    live: &DynamicObject,
    finalizer: &str,
) -> anyhow::Result<()> {
    let name = live.metadata.name.clone().unwrap_or_default();
    let mut current = live.clone();
    for _ in 0..5 {
        if !has_finalizer(&current, finalizer) {
            return Ok(());
        }
        let rest: Vec<&String> = current
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": current.metadata.resource_version,
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() => match api.get_opt(&name).await? {
                Some(fresh) if fresh.metadata.uid == live.metadata.uid => current = fresh,
                _ => return Ok(()),
            },
            Err(err) => {
                return Err(err).context(format!("removing finalizer {finalizer} from {name}"));
            }
        }
    }
    anyhow::bail!("removing finalizer {finalizer} from {name}: conflicts kept happening")
}
