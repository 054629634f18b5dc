//! The store: etcd's role in the cluster.
//!
//! Kubernetes keeps *all* of its state — every Pod, Deployment, Node, Secret —
//! in etcd, a consistent key-value store. Nothing else in a cluster remembers
//! anything for long: the API server is stateless in front of etcd, and every
//! controller rebuilds its view from the API after a restart. So the store's
//! semantics are the cluster's semantics, and three of them shape everything
//! built on top:
//!
//! 1. **Revisions.** Every write gets the next number of one global counter,
//!    the *revision*. Each key remembers the revision of its last write (its
//!    `mod_revision`), and Kubernetes hands that number to clients as the
//!    object's `metadata.resourceVersion`.
//! 2. **Compare-and-swap.** A write can say "only if the key is still at the
//!    mod revision I read". That is optimistic concurrency: no locks, and a
//!    stale writer gets a conflict (the API server's 409) instead of silently
//!    overwriting someone else's change.
//! 3. **Watch from a revision.** A client can ask for "every change after
//!    revision R". Combined with a list taken *at* revision R, that gives a
//!    gap-free, duplicate-free view of the data — the foundation of every
//!    Kubernetes controller (the list+watch pattern of informers).
//!
//! History is not kept forever: *compaction* forgets old events, and a watch
//! that asks for a forgotten revision fails with [`StoreError::Compacted`]
//! (the API server's 410 Gone, "too old resource version"); the client must
//! list again.
//!
//! This is an embedded, in-memory store with those semantics, an
//! "incomplete, idiomatic implementation" in the spirit of mini-redis. What it
//! leaves out (Raft replication, persistence, leases, multi-key transactions,
//! the gRPC API) is listed in the book chapter "etcd: the cluster's memory".
//!
//! Keys are laid out as Kubernetes lays them out in etcd:
//! `/registry/pods/<namespace>/<name>`, `/registry/deployments/<ns>/<name>`,
//! `/registry/minions/<name>` for nodes, and so on. The store itself does not
//! care: a key is a string, a value is bytes (the API server stores JSON), and
//! "all pods in namespace default" is simply the prefix
//! `/registry/pods/default/`.

mod watch;

#[cfg(test)]
mod tests;

pub use watch::Watch;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

// ANCHOR: types
/// A point in the store's history. etcd's revisions are `int64`, and so are
/// ours. Revision 0 means "before anything was written": the first write is
/// revision 1, and every write after it adds exactly one.
pub type Revision = i64;

/// One key as stored, with the three numbers etcd keeps for it.
///
/// The three are easy to mix up, and the difference matters:
///
/// - `create_revision`: the global revision at which the key was created.
///   It never changes until the key is deleted (a re-created key gets a new
///   one).
/// - `mod_revision`: the global revision of the key's latest write. This is
///   what Kubernetes calls `resourceVersion`: it changes on every write, it
///   is unique across the whole store, and it is what compare-and-swap
///   compares. Because it comes from one global counter, a client can also
///   use it as a position in the store's history ("watch from here").
/// - `version`: how many times *this key* has been written since it was
///   created (1 on create). It is per key, so it cannot be used as a position
///   in history; Kubernetes does not use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// etcd stores opaque bytes; our API server stores JSON. `Bytes` makes the
    /// many copies (history, every watcher's event) cheap reference counts.
    pub value: Bytes,
    pub create_revision: Revision,
    /// `== metadata.resourceVersion` of the object stored here.
    pub mod_revision: Revision,
    pub version: i64,
}

/// What a write did to a key, as a watcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated (etcd does not distinguish the two;
    /// `prev_kv` tells them apart, and the API server turns them into
    /// ADDED and MODIFIED).
    Put,
    /// The key was deleted (the API server's DELETED).
    Delete,
}

/// One entry of the store's history: one write, at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// `Put`: the key as written. `Delete`: a tombstone — the key, an empty
    /// value, `mod_revision` = the revision of the delete, and
    /// `create_revision` and `version` 0 (as etcd reports it).
    pub kv: KeyValue,
    /// The key as it was just before this write: always `Some` for a
    /// `Delete` (a watcher needs to know *what* was deleted), `Some` for a
    /// `Put` that updated an existing key, `None` for a `Put` that created it.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision at which this event happened. Every event has its own:
    /// one write, one revision.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Why an operation was refused. Each variant maps onto an HTTP status the
/// API server returns, noted below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Create of a key that exists (409 AlreadyExists).
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// Update or delete of a key that does not exist (404 NotFound).
    #[error("key {key:?} not found")]
    NotFound { key: String },
    /// Compare-and-swap failed: someone wrote the key since the caller read
    /// it (409 Conflict, "the object has been modified").
    #[error("key {key:?}: expected mod revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The history needed for this read or watch has been compacted away
    /// (410 Gone / Expired, "too old resource version"). The text is etcd's.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// A read or watch at a revision that has not happened yet. etcd refuses
    /// these for reads too (its watch would wait; we keep it simple and
    /// refuse both).
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
}
// ANCHOR_END: types

/// How many events [`Store::new`] keeps before compacting the oldest away.
///
/// The real API server asks etcd to compact every five minutes, keeping
/// whatever was written in that window. A count is easier to reason about in
/// a lab and in tests; 10,000 events is plenty for a watcher that briefly
/// disconnects to resume without relisting.
pub const DEFAULT_HISTORY: usize = 10_000;

// ANCHOR: store
/// The store. Cheap to clone: every clone is a handle to the same shared
/// state, so each API-server handler can hold its own.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    /// A `std::sync::Mutex`, not `tokio::sync::Mutex`, for the reason
    /// mini-redis gives for its `Db`: every critical section is short and
    /// purely computational (a map lookup, an insert, pushing into channels),
    /// and none of them `.await`s while holding the lock. A blocking mutex is
    /// then both correct and faster; an async mutex only earns its cost when
    /// the lock must be held across an `.await`.
    ///
    /// One lock for everything is also what makes the guarantees easy to
    /// prove: a write bumps the revision, updates the key, records the event
    /// and hands it to the watchers in one critical section, so no reader can
    /// ever see one of those steps without the others.
    state: Mutex<State>,
}

struct State {
    /// The global revision: the revision of the latest write (0 before any).
    revision: Revision,
    /// Events at or below this revision are forgotten. Reads and watches
    /// *at* it still work (everything after it is retained); below it they
    /// fail with `Compacted`.
    compacted: Revision,
    /// The current value of every live key. A `BTreeMap` keeps keys sorted,
    /// which makes "list a prefix" a range scan that comes out in key order,
    /// as etcd's does.
    kvs: BTreeMap<String, KeyValue>,
    /// Every event with revision > `compacted`, oldest first. Because each
    /// write is one event, their revisions are exactly
    /// `compacted + 1 ..= revision`, with no gaps.
    history: VecDeque<Event>,
    /// Keep at most this many events; older ones are compacted automatically.
    max_history: usize,
    /// Live watches. Each gets every new event under its prefix.
    watchers: Vec<Watcher>,
}

/// The store's end of one watch.
///
/// The channel is *unbounded*, a deliberate trade-off. A write must never
/// wait for a slow reader (it holds the store's lock, and one stuck watcher
/// would stall the whole cluster), so the send has to succeed at once. A
/// bounded channel would force us to decide what happens when it is full.
/// Real systems do decide: etcd stops sending to a slow watcher and later
/// catches it up from its on-disk history, *cancelling* the watch if that
/// history has been compacted meanwhile; the API server's watch cache simply
/// closes a watcher whose buffer is full, and the client watches (or lists)
/// again. We keep every event instead, which is simpler and loses nothing,
/// at the price that memory grows if a watcher never reads. A watcher whose
/// `Watch` was dropped is pruned on the next write.
struct Watcher {
    prefix: String,
    tx: mpsc::UnboundedSender<Event>,
}
// ANCHOR_END: store

/// A summary, not the contents: the API server's state derives `Debug`, and
/// printing ten thousand pods into a log line would help nobody.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Store")
            .field("revision", &state.revision)
            .field("compacted", &state.compacted)
            .field("keys", &state.kvs.len())
            .field("history", &state.history.len())
            .field("watchers", &state.watchers.len())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store keeping the last [`DEFAULT_HISTORY`] events.
    pub fn new() -> Store {
        Store::with_history(DEFAULT_HISTORY)
    }

    /// An empty store keeping at most `max_events` events of history. Older
    /// events are compacted away automatically as new writes arrive, exactly
    /// as if [`Store::compact`] had been called. (`0` keeps no history at
    /// all: watches can then only start from the current revision.)
    pub fn with_history(max_events: usize) -> Store {
        Store {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    revision: 0,
                    compacted: 0,
                    kvs: BTreeMap::new(),
                    history: VecDeque::new(),
                    max_history: max_events,
                    watchers: Vec::new(),
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic happened inside one of the critical
        // sections below, i.e. a bug in this module; the state may be half
        // updated, so refusing to continue is the honest answer.
        self.shared.state.lock().expect("store lock poisoned")
    }

    /// The current global revision: the revision of the latest write.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// The compaction floor. History after this revision is retained, so
    /// [`Store::list_at`] and [`Store::watch`] work *at* it and above; below
    /// it they fail with [`StoreError::Compacted`].
    pub fn compacted_revision(&self) -> Revision {
        self.lock().compacted
    }

    /// The current value of one key.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.lock().kvs.get(key).cloned()
    }

    // ANCHOR: list
    /// Every key starting with `prefix`, sorted by key, and the revision at
    /// which this snapshot was taken.
    ///
    /// The revision is the important half. The keys are a consistent
    /// snapshot (taken under the lock, so no write is half visible), and the
    /// revision says exactly *which* point in history they show. Kubernetes
    /// returns it as the list's `metadata.resourceVersion`, and a client
    /// that then watches from it sees every change after the snapshot, and
    /// nothing the snapshot already contains.
    pub fn list(&self, prefix: &str) -> (Vec<KeyValue>, Revision) {
        let state = self.lock();
        (state.scan(prefix).cloned().collect(), state.revision)
    }
    // ANCHOR_END: list

    // ANCHOR: list_at
    /// The keys under `prefix` as they were at revision `rev`, sorted by key.
    ///
    /// We keep only the current value of each key, plus the history of
    /// events. Every event remembers the value it replaced (`prev_kv`), so
    /// walking the history backwards from now to `rev` and undoing each
    /// event reconstructs the past. That only works while the history
    /// reaches back to `rev`: below the compaction floor the answer is
    /// `Compacted`, above the current revision `FutureRevision`.
    pub fn list_at(&self, prefix: &str, rev: Revision) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.lock();
        state.check_readable(rev)?;
        let mut snapshot: BTreeMap<&str, &KeyValue> =
            state.scan(prefix).map(|kv| (kv.key.as_str(), kv)).collect();
        // Newest first, stopping at the first event at or before `rev`.
        for event in state.history.iter().rev() {
            if event.revision() <= rev {
                break;
            }
            if !event.kv.key.starts_with(prefix) {
                continue;
            }
            // Undo the event: the key goes back to what it was before, or
            // disappears if the event created it.
            match &event.prev_kv {
                Some(prev) => snapshot.insert(&event.kv.key, prev),
                None => snapshot.remove(event.kv.key.as_str()),
            };
        }
        Ok(snapshot.into_values().cloned().collect())
    }
    // ANCHOR_END: list_at

    /// Create `key` with `value`, only if it does not exist
    /// ([`StoreError::AlreadyExists`] otherwise). This is what a Kubernetes
    /// `POST` does: two clients creating the same name cannot both succeed.
    pub fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let mut state = self.lock();
        if state.kvs.contains_key(key) {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = state.revision + 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        };
        state.commit(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev_kv: None,
        });
        Ok(kv)
    }

    // ANCHOR: update
    /// Replace the value of an existing `key`.
    ///
    /// With `expected_mod_revision: Some(rev)` this is a compare-and-swap:
    /// the write happens only if the key's `mod_revision` is still `rev`,
    /// i.e. nobody wrote it since the caller read it. Otherwise the answer
    /// is [`StoreError::Conflict`] and nothing changes; the caller re-reads,
    /// re-applies its change and tries again. That is how a Kubernetes `PUT`
    /// carrying `metadata.resourceVersion` behaves (409 Conflict), and why
    /// two controllers editing the same object never lose each other's
    /// writes. `None` writes unconditionally ("last writer wins").
    pub fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let mut state = self.lock();
        let prev = state.expect_current(key, expected_mod_revision)?.clone();
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.create_revision,
            mod_revision: state.revision + 1,
            version: prev.version + 1,
        };
        state.commit(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev_kv: Some(prev),
        });
        Ok(kv)
    }
    // ANCHOR_END: update

    /// Delete `key`, optionally only if its `mod_revision` is still
    /// `expected_mod_revision` (Kubernetes' delete precondition). Returns the
    /// `Delete` event, whose `prev_kv` is the value just deleted and whose
    /// revision is the revision of the delete.
    pub fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<Event, StoreError> {
        let mut state = self.lock();
        let prev = state.expect_current(key, expected_mod_revision)?.clone();
        let event = Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_owned(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: state.revision + 1,
                version: 0,
            },
            prev_kv: Some(prev),
        };
        state.commit(event.clone());
        Ok(event)
    }

    // ANCHOR: watch
    /// Watch every key under `prefix` for events with revision > `after`.
    ///
    /// The returned [`Watch`] first yields the retained history after
    /// `after` (the *replay*), then live events as they happen — every one,
    /// in revision order, none twice. `after` is typically the revision of a
    /// [`Store::list`]; then list + watch together miss nothing.
    ///
    /// The one subtle point is the hand-over from replay to live. If we
    /// copied the history, released the lock and *then* registered for live
    /// events, a write in between would be in neither: lost. If we
    /// registered first and copied later, it could be in both: duplicated.
    /// So both happen in one critical section: the replayed events go into
    /// the watch's channel, the watcher is registered, and only then can the
    /// next write run (and it will find the watcher).
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let mut state = self.lock();
        state.check_readable(after)?;
        let (tx, rx) = mpsc::unbounded_channel();
        for event in &state.history {
            if event.revision() > after && event.kv.key.starts_with(prefix) {
                // The receiver is alive (we hold it), so this cannot fail.
                let _ = tx.send(event.clone());
            }
        }
        state.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            tx,
        });
        Ok(Watch::new(rx))
    }
    // ANCHOR_END: watch

    // ANCHOR: compact
    /// Forget the history up to and including `rev`.
    ///
    /// Why forget at all? Every write adds an event, and an event holds a
    /// full copy of the old and the new value; a store that kept them all
    /// would grow without bound. etcd calls this *compaction*, and the API
    /// server asks for it regularly (every five minutes by default). After
    /// it, [`Store::list_at`] and [`Store::watch`] below `rev` fail with
    /// [`StoreError::Compacted`]: the client has to list again and watch
    /// from the new list's revision. Current values are never affected, and
    /// watches already running keep receiving events.
    ///
    /// Compacting beyond the current revision compacts to the current one;
    /// compacting below the floor does nothing.
    pub fn compact(&self, rev: Revision) {
        let mut state = self.lock();
        let rev = rev.min(state.revision);
        if rev <= state.compacted {
            return;
        }
        while state.history.front().is_some_and(|e| e.revision() <= rev) {
            state.history.pop_front();
        }
        state.compacted = rev;
    }
    // ANCHOR_END: compact
}

impl State {
    /// Live keys starting with `prefix`, in key order: a range scan of the
    /// sorted map from `prefix` to the first key that no longer starts with it.
    fn scan<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KeyValue> + 'a {
        self.kvs
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv)
    }

    /// Can we answer a question about revision `rev`? Only if the history
    /// from `rev` to now is still complete, and `rev` is not in the future.
    fn check_readable(&self, rev: Revision) -> Result<(), StoreError> {
        if rev > self.revision {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current: self.revision,
            });
        }
        if rev < self.compacted {
            return Err(StoreError::Compacted {
                requested: rev,
                compacted: self.compacted,
            });
        }
        Ok(())
    }

    /// The current value of `key`, checked against the caller's expectation:
    /// it must exist, and if the caller names a mod revision, still have it.
    fn expect_current(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<&KeyValue, StoreError> {
        let current = self.kvs.get(key).ok_or_else(|| StoreError::NotFound {
            key: key.to_owned(),
        })?;
        match expected_mod_revision {
            Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual: current.mod_revision,
            }),
            _ => Ok(current),
        }
    }

    // ANCHOR: commit
    /// Make one write happen: the single place where the revision moves.
    ///
    /// Called with the lock held, after the caller has checked its
    /// preconditions and built the event for revision `self.revision + 1`.
    /// Everything a write does happens here, together: the global revision
    /// advances, the key changes, the event joins the history and goes to
    /// every interested watcher. Nobody can observe one step without the
    /// others, which is what "consistent" means for this store.
    fn commit(&mut self, event: Event) {
        debug_assert_eq!(event.revision(), self.revision + 1);
        self.revision = event.revision();
        match event.kind {
            EventKind::Put => {
                self.kvs.insert(event.kv.key.clone(), event.kv.clone());
            }
            EventKind::Delete => {
                self.kvs.remove(&event.kv.key);
            }
        }

        // Deliver to the watchers, pruning the ones whose `Watch` is gone
        // (a failed send means the receiver was dropped).
        self.watchers.retain(|watcher| {
            if event.kv.key.starts_with(&watcher.prefix) {
                watcher.tx.send(event.clone()).is_ok()
            } else {
                !watcher.tx.is_closed()
            }
        });

        // Record it, and compact automatically if the history is too long.
        self.history.push_back(event);
        while self.history.len() > self.max_history {
            if let Some(oldest) = self.history.pop_front() {
                self.compacted = oldest.revision();
            }
        }
    }
    // ANCHOR_END: commit
}
