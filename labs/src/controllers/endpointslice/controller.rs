//! The EndpointSlice controller's plumbing: informers on Services, Pods and
//! EndpointSlices, a work queue of Service keys, and a sync that feeds the
//! core ([`super::reconcile`]) from the caches and writes its decisions
//! through the API server.
//!
//! This is `pkg/controller/endpointslice/endpointslice_controller.go` minus
//! the core: the event handlers (`onServiceUpdate`, `addPod`, `updatePod`,
//! `onEndpointSliceUpdate`, …), `syncService`, and the
//! `EndpointSliceTracker` that guards against acting on a stale cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::Store;
use tokio_util::sync::CancellationToken;

use super::{LABEL_SERVICE_NAME, is_managed_slice_of, reconcile, services_selecting};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{EventHandler, Informer, key_of, ref_from_key};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The component name on the Events it writes, as in Kubernetes.
pub const COMPONENT: &str = "endpointslice-controller";

/// When the slice cache is older than our own writes, look again after
/// this long (the watch event usually comes first).
const STALE_CACHE_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// How many Services are synced at once (`--concurrent-service-endpoint-syncs`).
pub const DEFAULT_WORKERS: usize = 5;

#[derive(Default)]
pub struct Options {
    /// Workers; [`DEFAULT_WORKERS`] if 0.
    pub workers: usize,
}

/// What the event handlers and the workers share.
struct Shared {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    queue: Arc<WorkQueue>,
    tracker: Mutex<Tracker>,
    recorder: Mutex<Option<EventRecorder>>,
}

pub struct EndpointSliceController {
    shared: Arc<Shared>,
    service_informer: Informer<Service>,
    pod_informer: Informer<Pod>,
    slice_informer: Informer<EndpointSlice>,
    workers: usize,
}

// ANCHOR: run
impl EndpointSliceController {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let service_informer = Informer::new(Api::<Service>::all(client.clone()));
        let pod_informer = Informer::new(Api::<Pod>::all(client.clone()));
        let slice_informer = Informer::new(Api::<EndpointSlice>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            services: service_informer.store(),
            pods: pod_informer.store(),
            slices: slice_informer.store(),
            queue: WorkQueue::new(),
            tracker: Mutex::new(Tracker::default()),
            recorder: Mutex::new(None),
        });
        EndpointSliceController {
            shared,
            service_informer,
            pod_informer,
            slice_informer,
            workers: if options.workers == 0 {
                DEFAULT_WORKERS
            } else {
                options.workers
            },
        }
    }

    /// Runs until `shutdown`: start the three informers, wait until every
    /// cache holds a full list, then sync Service keys with the workers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let informers = [
            tokio::spawn(self.service_informer.run(
                Arc::new(ServiceEvents(Arc::clone(&shared))),
                shutdown.clone(),
            )),
            tokio::spawn(
                self.pod_informer
                    .run(Arc::new(PodEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
            tokio::spawn(
                self.slice_informer
                    .run(Arc::new(SliceEvents(Arc::clone(&shared))), shutdown.clone()),
            ),
        ];
        let synced = async {
            shared.services.wait_until_ready().await?;
            shared.pods.wait_until_ready().await?;
            shared.slices.wait_until_ready().await
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
/// Service events: every change may change the slices (a new selector, new
/// ports, publishNotReadyAddresses).
struct ServiceEvents(Arc<Shared>);

impl EventHandler<Service> for ServiceEvents {
    fn on_add(&self, svc: &Service) {
        self.0.queue.add(key_of(svc));
    }
    fn on_update(&self, _old: &Service, svc: &Service) {
        self.0.queue.add(key_of(svc));
    }
    fn on_delete(&self, svc: &Service) {
        // The garbage collector deletes the slices (they are owned by the
        // Service); we only forget what we were tracking.
        let key = key_of(svc);
        self.0.tracker().forget_service(&key);
        self.0.queue.add(key);
    }
}

/// Pod events: every Service selecting the pod, before or after the change,
/// is synced (upstream's `addPod`, `updatePod`, `deletePod`). A readiness
/// flip, an IP assigned, a deletionTimestamp set: each changes an endpoint.
struct PodEvents(Arc<Shared>);

impl PodEvents {
    fn enqueue_services_of(&self, pod: &Pod) {
        let services = self.0.services.state();
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        for name in services_selecting(services.iter().map(|s| &**s), pod) {
            self.0.queue.add(format!("{ns}/{name}"));
        }
    }
}

impl EventHandler<Pod> for PodEvents {
    fn on_add(&self, pod: &Pod) {
        self.enqueue_services_of(pod);
    }
    fn on_update(&self, old: &Pod, pod: &Pod) {
        if old.metadata.resource_version == pod.metadata.resource_version {
            return; // a resync: nothing changed
        }
        self.enqueue_services_of(pod);
        if old.metadata.labels != pod.metadata.labels {
            // It may have left a Service: that one loses an endpoint.
            self.enqueue_services_of(old);
        }
    }
    fn on_delete(&self, pod: &Pod) {
        self.enqueue_services_of(pod);
    }
}

/// Slice events: someone (maybe us) changed a slice of a Service. Syncing
/// the Service again is how a slice edited or deleted by hand is put back.
struct SliceEvents(Arc<Shared>);

impl SliceEvents {
    fn enqueue_service_of(&self, slice: &EndpointSlice) {
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(LABEL_SERVICE_NAME)) else {
            return;
        };
        let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
        self.0.queue.add(format!("{ns}/{service}"));
    }
}

impl EventHandler<EndpointSlice> for SliceEvents {
    fn on_add(&self, slice: &EndpointSlice) {
        self.0.tracker().observed(slice);
        self.enqueue_service_of(slice);
    }
    fn on_update(&self, old: &EndpointSlice, slice: &EndpointSlice) {
        if old.metadata.resource_version == slice.metadata.resource_version {
            return;
        }
        self.0.tracker().observed(slice);
        self.enqueue_service_of(slice);
    }
    fn on_delete(&self, slice: &EndpointSlice) {
        self.0.tracker().observed_deletion(slice);
        self.enqueue_service_of(slice);
    }
}
// ANCHOR_END: handlers

// ANCHOR: tracker
/// What this controller wrote and has not yet seen in its slice cache
/// (upstream's `EndpointSliceTracker`).
///
/// Why: the cache lags behind our own writes. A sync that runs right after
/// we created a slice, but before the watch delivered it, would see "no
/// slice" and create a second one. So every write is recorded here, and a
/// sync whose cache is older than what we wrote does nothing: the watch
/// event that brings our write queues the Service again. (Upstream returns
/// an error and lets the queue's backoff retry; the effect is the same.)
///
/// Upstream compares `metadata.generation`; the labs' store gives every
/// write a larger resourceVersion (the etcd revision), so we compare those.
#[derive(Default)]
struct Tracker {
    /// Per Service key: slice uid → what we expect the cache to show.
    by_service: HashMap<String, HashMap<String, Expect>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// At least this resourceVersion.
    Version(u64),
    /// The slice gone.
    Deleted,
}

fn version(slice: &EndpointSlice) -> Option<u64> {
    slice.metadata.resource_version.as_deref()?.parse().ok()
}

fn service_key_of(slice: &EndpointSlice) -> Option<String> {
    let service = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
    Some(format!("{ns}/{service}"))
}

impl Tracker {
    fn wrote(&mut self, service: &str, slice: &EndpointSlice, expect: Expect) {
        if let Some(uid) = slice.metadata.uid.clone() {
            self.by_service
                .entry(service.to_string())
                .or_default()
                .insert(uid, expect);
        }
    }

    /// The cache now shows `slice`: expectations at or below it are met.
    fn observed(&mut self, slice: &EndpointSlice) {
        let (Some(key), Some(uid)) = (service_key_of(slice), slice.metadata.uid.as_ref()) else {
            return;
        };
        if let Some(slices) = self.by_service.get_mut(&key)
            && let Some(Expect::Version(v)) = slices.get(uid)
            && version(slice).is_some_and(|seen| seen >= *v)
        {
            slices.remove(uid);
        }
    }

    fn observed_deletion(&mut self, slice: &EndpointSlice) {
        if let (Some(key), Some(uid)) = (service_key_of(slice), slice.metadata.uid.as_ref())
            && let Some(slices) = self.by_service.get_mut(&key)
        {
            slices.remove(uid);
        }
    }

    fn forget_service(&mut self, key: &str) {
        self.by_service.remove(key);
    }

    /// Is the cache (`cached`, the Service's slices in it) older than our
    /// own writes? (upstream's `StaleSlices`)
    fn stale(&self, key: &str, cached: &[EndpointSlice]) -> bool {
        let Some(expected) = self.by_service.get(key) else {
            return false;
        };
        expected.iter().any(|(uid, expect)| {
            let seen = cached.iter().find(|s| s.metadata.uid.as_ref() == Some(uid));
            match (expect, seen) {
                (Expect::Deleted, seen) => seen.is_some(),
                (Expect::Version(_), None) => true,
                (Expect::Version(v), Some(s)) => version(s).is_some_and(|seen| seen < *v),
            }
        })
    }
}
// ANCHOR_END: tracker

impl Shared {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ANCHOR: sync
    /// One sync of the Service `key` (upstream's `syncService`).
    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(service) = self.services.get(&ref_from_key(key)) else {
            // Deleted: its slices go with it (ownerReference → garbage
            // collector), as upstream relies on too.
            return Ok(Action::AwaitChange);
        };
        if service.metadata.deletion_timestamp.is_some() {
            return Ok(Action::AwaitChange);
        }
        let ns = service.metadata.namespace.clone().unwrap_or_default();
        let slices: Vec<EndpointSlice> = self
            .slices
            .state_filter(|s| is_managed_slice_of(s, &service))
            .into_iter()
            .map(|s| (*s).clone())
            .collect();
        if self.tracker().stale(key, &slices) {
            // Our own write is on its way through the watch; its event
            // queues this Service again. The requeue is only a safety net.
            tracing::debug!(%key, "EndpointSlice cache older than our last write; waiting");
            return Ok(Action::RequeueAfter(STALE_CACHE_RETRY));
        }
        let pods = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
        let r = reconcile(&service, &pods, &slices);
        if r.is_empty() {
            return Ok(Action::AwaitChange);
        }
        if let Err(err) = self.apply(key, &ns, r).await {
            // Upstream's Warning event, so `kubectl describe svc` says why.
            if let Some(recorder) = &*self.recorder.lock().unwrap_or_else(|e| e.into_inner()) {
                recorder.record(
                    &*service,
                    "Warning",
                    "FailedToUpdateEndpointSlices",
                    format!("Error updating Endpoint Slices for Service {key}: {err:#}"),
                );
            }
            return Err(err);
        }
        Ok(Action::AwaitChange)
    }
    // ANCHOR_END: sync

    /// Writes the decisions: creates first, then updates, then deletes, as
    /// upstream orders them, so that an endpoint moving between slices is
    /// never missing from all of them at once.
    async fn apply(&self, key: &str, ns: &str, r: super::Reconcile) -> anyhow::Result<()> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        for slice in &r.create {
            let created = api
                .create(&PostParams::default(), slice)
                .await
                .context("creating an EndpointSlice")?;
            if let Some(v) = version(&created) {
                self.tracker().wrote(key, &created, Expect::Version(v));
            }
        }
        for slice in &r.update {
            let name = slice.metadata.name.as_deref().unwrap_or_default();
            // The PUT carries the cached resourceVersion: 409 Conflict if
            // the slice changed since, and the queue retries with backoff.
            let updated = api
                .replace(name, &PostParams::default(), slice)
                .await
                .with_context(|| format!("updating EndpointSlice {name}"))?;
            if let Some(v) = version(&updated) {
                self.tracker().wrote(key, &updated, Expect::Version(v));
            }
        }
        for slice in &r.delete {
            let name = slice.metadata.name.as_deref().unwrap_or_default();
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => self.tracker().wrote(key, slice, Expect::Deleted),
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("deleting EndpointSlice {name}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(uid: &str, rv: u64) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid, "resourceVersion": rv.to_string(),
                         "labels": {LABEL_SERVICE_NAME: "web"}},
            "addressType": "IPv4", "endpoints": [],
        }))
        .unwrap()
    }

    #[test]
    fn the_tracker_calls_a_cache_stale_until_it_shows_our_writes() {
        let mut t = Tracker::default();
        assert!(!t.stale("default/web", &[]));
        // We created slice a at version 5; the cache does not have it yet.
        t.wrote("default/web", &slice("a", 5), Expect::Version(5));
        assert!(t.stale("default/web", &[]));
        assert!(t.stale("default/web", &[slice("a", 4)]));
        assert!(!t.stale("default/web", &[slice("a", 5)]));
        t.observed(&slice("a", 5));
        assert!(!t.stale("default/web", &[]), "observed: nothing expected");
        // We deleted b; the cache still shows it.
        t.wrote("default/web", &slice("b", 7), Expect::Deleted);
        assert!(t.stale("default/web", &[slice("b", 7)]));
        t.observed_deletion(&slice("b", 7));
        assert!(!t.stale("default/web", &[slice("b", 7)]));
    }
}
