//! The controller pattern, written once and used by every controller in the
//! labs: **informers** feed a **work queue** of object keys, and **workers**
//! pop a key and reconcile it.
//!
//! ```text
//!   API server ──list+watch──▶ informer ──cache──▶ reconcile reads the cache
//!                                 │
//!                       event handlers map each event
//!                       to the key(s) it concerns
//!                                 ▼
//!                  work queue of "namespace/name" keys ──▶ workers ──▶ reconcile(key)
//!                        ▲                                               │
//!                        └── requeue: with backoff on error, or after ───┘
//!                            the delay the reconcile asked for
//! ```
//!
//! This is client-go's shape (`SharedInformer`, `workqueue`,
//! `processNextWorkItem`), which every controller in Kubernetes follows.
//! kube-runtime's `Controller` packages the same loop; we write the queue by
//! hand because its rules *are* the lesson:
//!
//! * the queue holds **keys, not events**: ten events about one ReplicaSet
//!   while it waits are one key, so the ReplicaSet is reconciled once, from
//!   the newest state;
//! * a key being processed is **never processed concurrently** by a second
//!   worker: if it is added meanwhile, it waits and runs again afterwards;
//! * a failed reconcile is **retried with exponential backoff** per key;
//! * everything stops on one **shutdown signal**.
//!
//! The watching itself is kube-runtime's: [`watcher`] (list, then watch from
//! the list's resourceVersion, relist after a 410 Gone) and the
//! [`reflector`](kube::runtime::reflector) store that holds the cache. What
//! this file adds to them is client-go's event handlers (`OnAdd`, `OnUpdate`,
//! `OnDelete`), which controllers need to tell an added pod from an updated
//! one (see the ReplicaSet controller's expectations).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::workqueue::WorkQueue;

// ANCHOR: informer
/// What a controller wants to hear about an object kind: client-go's
/// `ResourceEventHandler`. The handlers run on the informer's task, one
/// event at a time, so they must be quick: map the event to keys, add them
/// to a queue, adjust some bookkeeping. Never call the API from here.
pub trait EventHandler<K>: Send + Sync + 'static {
    /// An object appeared (created, or first seen by this informer).
    fn on_add(&self, obj: &K);
    /// An object changed. `old` is what the cache held before. Also called
    /// with `old == new` on a resync.
    fn on_update(&self, old: &K, new: &K);
    /// An object is gone. After a relist this may be the last state the
    /// cache knew, not the object as it was deleted (client-go calls that
    /// `DeletedFinalStateUnknown`).
    fn on_delete(&self, obj: &K);
}

/// An **informer**: list + watch + a local cache + event handlers.
///
/// * **List, then watch.** It lists the objects once, then watches for
///   changes from the list's resourceVersion, so it misses nothing in
///   between. If the watch falls too far behind (410 Gone), it lists again.
///   (kube-runtime's [`watcher`] does this.)
/// * **A cache.** Every event updates an in-memory copy of the objects
///   (kube-runtime's reflector [`Store`]). Controllers read the cache, not
///   the API server: a ReplicaSet sync that looks at 10,000 pods costs no
///   request at all. The price is that the cache lags a little behind the
///   API server; the ReplicaSet controller's *expectations* exist because
///   of that lag.
/// * **Resync.** Optionally, every `resync` period, the handlers get an
///   `on_update(obj, obj)` for every cached object, so every object is
///   reconciled again even if nothing happened. Level-triggered controllers
///   use this as a safety net against their own bugs; ours leave it off and
///   rely on `requeue_after` instead, which keeps runs deterministic.
pub struct Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    config: watcher::Config,
    resync: Option<Duration>,
    reader: Store<K>,
    writer: reflector::store::Writer<K>,
}

impl<K> Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over every object `api` can see (`Api::all` for all
    /// namespaces). Nothing happens until [`Informer::run`].
    pub fn new(api: Api<K>) -> Self {
        let (reader, writer) = reflector::store();
        Informer {
            api,
            config: watcher::Config::default(),
            resync: None,
            reader,
            writer,
        }
    }

    /// Watch only the objects matching a field selector, e.g. the
    /// scheduler's `status.phase!=Succeeded,status.phase!=Failed`. An
    /// object that stops matching arrives as a deletion.
    pub fn with_field_selector(mut self, selector: &str) -> Self {
        self.config = self.config.fields(selector);
        self
    }

    pub fn with_resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// The cache. It starts empty; [`Store::wait_until_ready`] resolves
    /// once the first list is in (client-go's `HasSynced`). A controller
    /// must not reconcile before that: an empty cache would look like "no
    /// pods exist" and it would create them all again.
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Watches until `shutdown`, keeping the cache current and calling
    /// `handler` for every change.
    pub async fn run(self, handler: Arc<dyn EventHandler<K>>, shutdown: CancellationToken) {
        let Informer {
            api,
            config,
            resync,
            reader,
            mut writer,
        } = self;
        // default_backoff: after a failed list or watch, wait (with growing,
        // jittered delays) before trying again, instead of hammering a
        // struggling API server.
        let mut events = watcher(api, config).default_backoff().boxed();
        // Objects of a (re)list, until it is complete.
        let mut relisted: Vec<K> = Vec::new();
        let mut resync_timer = resync.map(|period| {
            let mut timer = tokio::time::interval(period);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        });
        loop {
            let resync_tick = async {
                match resync_timer.as_mut() {
                    Some(timer) => timer.tick().await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = resync_tick => {
                    for obj in reader.state() {
                        handler.on_update(&obj, &obj);
                    }
                    continue;
                }
                event = events.next() => event,
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(err)) => {
                    // The backoff above delays the retry; nothing else to do.
                    tracing::debug!(kind = %K::kind(&()), %err, "watch failed; retrying");
                    continue;
                }
                None => return,
            };
            match &event {
                watcher::Event::Apply(obj) => {
                    let old = reader.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&event);
                    match old {
                        Some(old) => handler.on_update(&old, obj),
                        None => handler.on_add(obj),
                    }
                }
                watcher::Event::Delete(obj) => {
                    writer.apply_watcher_event(&event);
                    handler.on_delete(obj);
                }
                watcher::Event::Init => {
                    relisted.clear();
                    writer.apply_watcher_event(&event);
                }
                watcher::Event::InitApply(obj) => {
                    relisted.push(obj.clone());
                    writer.apply_watcher_event(&event);
                }
                watcher::Event::InitDone => {
                    // A (re)list replaces the whole cache at once. Compare
                    // the old cache with the new list so the handlers hear
                    // about what changed while we were not watching,
                    // including deletions no watch event reported.
                    let before: HashMap<ObjectRef<K>, Arc<K>> = reader
                        .state()
                        .into_iter()
                        .map(|obj| (ObjectRef::from_obj(&*obj), obj))
                        .collect();
                    writer.apply_watcher_event(&event);
                    let mut seen = HashSet::new();
                    for obj in relisted.drain(..) {
                        let key = ObjectRef::from_obj(&obj);
                        match before.get(&key) {
                            Some(old) => handler.on_update(old, &obj),
                            None => handler.on_add(&obj),
                        }
                        seen.insert(key);
                    }
                    for (key, old) in &before {
                        if !seen.contains(key) {
                            handler.on_delete(old);
                        }
                    }
                }
            }
        }
    }
}

/// The handler of a controller's own kind: every add, change and delete of
/// an object is a reason to sync it (client-go's
/// `cache.ResourceEventHandlerFuncs` that all call `enqueue(obj)`).
pub struct EnqueueKey(pub Arc<WorkQueue>);

impl<K: kube::Resource> EventHandler<K> for EnqueueKey {
    fn on_add(&self, obj: &K) {
        self.0.add(key_of(obj));
    }
    fn on_update(&self, _old: &K, obj: &K) {
        self.0.add(key_of(obj));
    }
    fn on_delete(&self, obj: &K) {
        self.0.add(key_of(obj));
    }
}

/// No handler: an informer kept only for its cache, read during syncs (a
/// client-go lister with no event handlers registered).
pub struct CacheOnly;

impl<K> EventHandler<K> for CacheOnly {
    fn on_add(&self, _: &K) {}
    fn on_update(&self, _: &K, _: &K) {}
    fn on_delete(&self, _: &K) {}
}

/// `namespace/name` (or `name` for cluster-scoped objects): the key of an
/// object in a work queue (client-go's `MetaNamespaceKeyFunc`).
pub fn key_of<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The cache entry for a key made by [`key_of`].
pub fn ref_from_key<K>(key: &str) -> ObjectRef<K>
where
    K: kube::Resource<DynamicType = ()>,
{
    match key.split_once('/') {
        Some((ns, name)) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(key),
    }
}
// ANCHOR_END: informer
