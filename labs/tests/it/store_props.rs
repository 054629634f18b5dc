//! Property tests for the store's guarantees under concurrency, through its
//! public API only.
//!
//! Several writer threads run random creates, updates, compare-and-swaps,
//! deletes and compactions against one store, while another thread starts
//! watches at random revisions (some of them the informer way: list, then
//! watch from the list's revision). Afterwards we check the promises the
//! rest of the labs rely on:
//!
//! - every successful write got its own revision, and together they are
//!   exactly `1..=revision()`: the global counter has no gaps and no repeats;
//! - each watch delivered *exactly* the writes under its prefix after its
//!   start revision — strictly increasing, none missing, none twice, each
//!   with the right value and previous value;
//! - replaying a watch's events onto the state at its start revision gives
//!   the final state (and, for list+watch, onto the list it started from);
//! - `list_at` reconstructs the state at every retained revision;
//! - a watch refused as `Compacted` really asked for a compacted revision;
//! - compare-and-swap increments never lose an update: the counter ends at
//!   the number of increments that reported success.
//!
//! The "truth" we compare against is independent of the watch code: it is
//! what the writers' own calls returned, put in revision order.

use std::collections::BTreeMap;
use std::sync::{Barrier, Mutex};

use bytes::Bytes;
use labs::store::{Event, EventKind, KeyValue, Revision, Store, StoreError, Watch};
use proptest::prelude::*;

/// The keys writers touch: several namespaces and resources, and a key that
/// is a string prefix of another (`.../a` and `.../ab`), so prefix matching
/// is exercised where it is easiest to get wrong.
const KEYS: &[&str] = &[
    "/registry/pods/default/a",
    "/registry/pods/default/ab",
    "/registry/pods/default/b",
    "/registry/pods/kube-system/a",
    "/registry/services/specs/default/a",
    "/registry/minions/n1",
];
/// Touched only by compare-and-swap increments.
const COUNTER: &str = "/registry/configmaps/default/counter";
const PREFIXES: &[&str] = &[
    "",
    "/registry/",
    "/registry/pods/",
    "/registry/pods/default/",
    "/registry/pods/default/a",
    "/registry/services/",
    "/registry/configmaps/",
];

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u8),
    Update(usize, u8),
    /// Read, then update with the mod revision just read (may lose a race).
    UpdateCas(usize, u8),
    /// Update with a mod revision older than the current one: must fail.
    UpdateStale(usize, u8),
    Delete(usize),
    DeleteCas(usize),
    /// One compare-and-swap increment of the counter, no retry.
    Incr,
    /// Compact to this percentage of the current revision.
    Compact(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        3 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        2 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Update(k, v)),
        3 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::UpdateCas(k, v)),
        1 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::UpdateStale(k, v)),
        1 => key.clone().prop_map(Op::Delete),
        1 => key.prop_map(Op::DeleteCas),
        3 => Just(Op::Incr),
        1 => (0u8..=100).prop_map(Op::Compact),
    ]
}

#[derive(Clone, Debug)]
struct WatchSpec {
    prefix: usize,
    /// Start at this percentage of the revision current when it starts.
    percent: u8,
    /// List first and watch from the list's revision, as an informer does.
    informer: bool,
}

fn watch_spec() -> impl Strategy<Value = WatchSpec> {
    (0..PREFIXES.len(), 0u8..=100, any::<bool>()).prop_map(|(prefix, percent, informer)| {
        WatchSpec {
            prefix,
            percent,
            informer,
        }
    })
}

/// One successful write as its caller saw it: the revision, the key, and
/// the new value (`None` for a delete).
#[derive(Clone, Debug)]
struct Write {
    revision: Revision,
    key: String,
    kv: Option<KeyValue>,
}

/// A started watch, with what it needs for the checks.
struct Started {
    prefix: &'static str,
    after: Revision,
    /// For informer-style watches: the list the watch continues from.
    listed: Option<Vec<KeyValue>>,
    watch: Watch,
}

fn value(v: u8) -> Bytes {
    Bytes::from(vec![v])
}

/// Run one writer's ops; return its successful writes and how many counter
/// increments succeeded.
fn run_writer(store: &Store, ops: &[Op]) -> (Vec<Write>, u64) {
    let mut writes = Vec::new();
    let mut increments = 0;
    let put = |kv: KeyValue| Write {
        revision: kv.mod_revision,
        key: kv.key.clone(),
        kv: Some(kv),
    };
    let del = |event: Event| Write {
        revision: event.revision(),
        key: event.kv.key,
        kv: None,
    };
    for op in ops {
        match op {
            Op::Create(k, v) => match store.create(KEYS[*k], value(*v)) {
                Ok(kv) => writes.push(put(kv)),
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => panic!("create: {e}"),
            },
            Op::Update(k, v) => match store.update(KEYS[*k], value(*v), None) {
                Ok(kv) => writes.push(put(kv)),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => panic!("update: {e}"),
            },
            Op::UpdateCas(k, v) => {
                if let Some(current) = store.get(KEYS[*k]) {
                    match store.update(KEYS[*k], value(*v), Some(current.mod_revision)) {
                        Ok(kv) => writes.push(put(kv)),
                        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                        Err(e) => panic!("cas update: {e}"),
                    }
                }
            }
            Op::UpdateStale(k, v) => {
                if let Some(current) = store.get(KEYS[*k]) {
                    // Mod revisions only grow, so an older one can never
                    // match again.
                    match store.update(KEYS[*k], value(*v), Some(current.mod_revision - 1)) {
                        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                        other => panic!("stale update must fail, got {other:?}"),
                    }
                }
            }
            Op::Delete(k) => match store.delete(KEYS[*k], None) {
                Ok(event) => writes.push(del(event)),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => panic!("delete: {e}"),
            },
            Op::DeleteCas(k) => {
                if let Some(current) = store.get(KEYS[*k]) {
                    match store.delete(KEYS[*k], Some(current.mod_revision)) {
                        Ok(event) => writes.push(del(event)),
                        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                        Err(e) => panic!("cas delete: {e}"),
                    }
                }
            }
            Op::Incr => {
                let current = store.get(COUNTER).expect("the counter is never deleted");
                let n: u64 = std::str::from_utf8(&current.value)
                    .unwrap()
                    .parse()
                    .unwrap();
                let next = Bytes::from((n + 1).to_string());
                match store.update(COUNTER, next, Some(current.mod_revision)) {
                    Ok(kv) => {
                        increments += 1;
                        writes.push(put(kv));
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("increment: {e}"),
                }
            }
            Op::Compact(percent) => {
                store.compact(store.revision() * Revision::from(*percent) / 100);
            }
        }
        // Invite the scheduler to interleave the threads more finely.
        std::thread::yield_now();
    }
    (writes, increments)
}

/// Start the watches, interleaved with the writers.
fn run_watcher(store: &Store, specs: &[WatchSpec]) -> Vec<Started> {
    let mut started = Vec::new();
    for spec in specs {
        let prefix = PREFIXES[spec.prefix];
        let result = if spec.informer {
            let (listed, rev) = store.list(prefix);
            store
                .watch(prefix, rev)
                .map(|watch| (rev, Some(listed), watch))
        } else {
            // Revisions only grow, so this is never in the future.
            let after = store.revision() * Revision::from(spec.percent) / 100;
            store.watch(prefix, after).map(|watch| (after, None, watch))
        };
        match result {
            Ok((after, listed, watch)) => started.push(Started {
                prefix,
                after,
                listed,
                watch,
            }),
            // Refused because the history is gone: only legitimate if the
            // revision asked for really is below the compaction floor.
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => assert!(requested < compacted, "{requested} >= {compacted}"),
            Err(e) => panic!("watch: {e}"),
        }
        std::thread::yield_now();
    }
    started
}

/// The keys under `prefix` after applying `events` to `state`.
fn apply<'a>(
    mut state: BTreeMap<String, KeyValue>,
    events: impl IntoIterator<Item = &'a Event>,
) -> BTreeMap<String, KeyValue> {
    for event in events {
        match event.kind {
            EventKind::Put => state.insert(event.kv.key.clone(), event.kv.clone()),
            EventKind::Delete => state.remove(&event.kv.key),
        };
    }
    state
}

fn under(prefix: &str, kvs: &BTreeMap<String, KeyValue>) -> Vec<KeyValue> {
    kvs.values()
        .filter(|kv| kv.key.starts_with(prefix))
        .cloned()
        .collect()
}

fn check(
    history: usize,
    writers: Vec<Vec<Op>>,
    watchers: Vec<WatchSpec>,
) -> Result<(), TestCaseError> {
    let store = Store::with_history(history);
    let counter = store.create(COUNTER, Bytes::from_static(b"0")).unwrap();
    // Some watches exist before anything else happens.
    let early: Vec<_> = (0..2)
        .map(|i| Started {
            prefix: PREFIXES[i * 3],
            after: 0,
            listed: None,
            watch: store.watch(PREFIXES[i * 3], 0).unwrap(),
        })
        .collect();

    let barrier = Barrier::new(writers.len() + 1);
    let results = Mutex::new(Vec::new());
    let mut started = std::thread::scope(|s| {
        for ops in &writers {
            s.spawn(|| {
                barrier.wait();
                let result = run_writer(&store, ops);
                results.lock().unwrap().push(result);
            });
        }
        let watcher = s.spawn(|| {
            barrier.wait();
            run_watcher(&store, &watchers)
        });
        watcher.join().unwrap()
    });
    started.extend(early);

    // The truth: every successful write, in revision order. The revisions
    // must be exactly 1..=current: one per write, no gaps, no repeats.
    let mut writes = vec![Write {
        revision: counter.mod_revision,
        key: COUNTER.into(),
        kv: Some(counter),
    }];
    let mut increments = 0;
    for (w, n) in results.into_inner().unwrap() {
        writes.extend(w);
        increments += n;
    }
    writes.sort_by_key(|w| w.revision);
    let final_rev = store.revision();
    prop_assert_eq!(
        writes.iter().map(|w| w.revision).collect::<Vec<_>>(),
        (1..=final_rev).collect::<Vec<_>>()
    );

    // Turn the writes into the events a watcher must see, computing each
    // previous value ourselves, and check per-key numbers on the way.
    let mut state = BTreeMap::<String, KeyValue>::new();
    let mut events = Vec::new();
    let mut states = vec![state.clone()]; // states[r] = the state at revision r
    for w in &writes {
        let prev = state.get(&w.key).cloned();
        let event = match &w.kv {
            Some(kv) => {
                let (create, version) = match &prev {
                    Some(p) => (p.create_revision, p.version + 1),
                    None => (w.revision, 1),
                };
                prop_assert_eq!((kv.create_revision, kv.version), (create, version));
                Event {
                    kind: EventKind::Put,
                    kv: kv.clone(),
                    prev_kv: prev,
                }
            }
            None => {
                prop_assert!(prev.is_some(), "deleted a missing key");
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: w.key.clone(),
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: w.revision,
                        version: 0,
                    },
                    prev_kv: prev,
                }
            }
        };
        state = apply(state, [&event]);
        states.push(state.clone());
        events.push(event);
    }
    prop_assert_eq!(under("", &state), store.list("").0);

    // No lost update: every successful increment is in the counter.
    let count = store.get(COUNTER).unwrap().value;
    prop_assert_eq!(count, Bytes::from(increments.to_string()));

    // Each watch saw exactly its share of the truth.
    for mut s in started {
        let got: Vec<Event> = std::iter::from_fn(|| s.watch.try_recv()).collect();
        let want: Vec<&Event> = events
            .iter()
            .filter(|e| e.revision() > s.after && e.kv.key.starts_with(s.prefix))
            .collect();
        prop_assert!(
            got.windows(2).all(|w| w[0].revision() < w[1].revision()),
            "out of order"
        );
        prop_assert_eq!(got.iter().collect::<Vec<_>>(), want, "watch {:?}", s.prefix);

        // Replaying the watch onto where it started gives where we ended.
        let base = match s.listed {
            // An informer starts from its list.
            Some(listed) => {
                prop_assert_eq!(&listed, &under(s.prefix, &states[s.after as usize]));
                listed.into_iter().map(|kv| (kv.key.clone(), kv)).collect()
            }
            None => states[s.after as usize].clone(),
        };
        let replayed = apply(base, &got);
        prop_assert_eq!(under(s.prefix, &replayed), store.list(s.prefix).0);
    }

    // list_at reconstructs every revision the history still covers, and
    // refuses the ones it does not.
    let floor = store.compacted_revision();
    for rev in floor..=final_rev {
        for prefix in PREFIXES {
            let at = store.list_at(prefix, rev);
            prop_assert_eq!(at, Ok(under(prefix, &states[rev as usize])));
        }
    }
    if floor > 0 {
        prop_assert_eq!(
            store.list_at("", floor - 1),
            Err(StoreError::Compacted {
                requested: floor - 1,
                compacted: floor
            })
        );
    }
    Ok(())
}

proptest! {
    // Each case spawns a handful of threads and does a few hundred
    // operations; 256 cases take about a second in a debug build.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn concurrent_writers_and_watchers_lose_nothing(
        history in prop_oneof![Just(usize::MAX), 1usize..=300],
        writers in prop::collection::vec(prop::collection::vec(op(), 0..60), 2..=4),
        watchers in prop::collection::vec(watch_spec(), 1..10),
    ) {
        check(history, writers, watchers)?;
    }
}
