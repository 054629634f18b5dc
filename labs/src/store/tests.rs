//! Unit tests: one per operation and per error. The concurrent property
//! tests live in `proptests.rs`.

use super::*;
use futures::StreamExt;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const A: &str = "/registry/pods/default/a";
const B: &str = "/registry/pods/default/b";
const C: &str = "/registry/pods/kube-system/c";

/// Drain every event already delivered to a watch.
fn drain(watch: &mut Watch) -> Vec<Event> {
    std::iter::from_fn(|| watch.try_recv()).collect()
}

fn revisions(events: &[Event]) -> Vec<Revision> {
    events.iter().map(Event::revision).collect()
}

#[test]
fn empty_store_is_at_revision_zero() {
    let store = Store::new();
    assert_eq!(store.revision(), 0);
    assert_eq!(store.compacted_revision(), 0);
    assert_eq!(store.get(A), None);
    assert_eq!(store.list(""), (vec![], 0));
    assert_eq!(store.list_at("", 0), Ok(vec![]));
}

#[test]
fn create_sets_all_three_numbers() {
    let store = Store::new();
    let a = store.create(A, b("1")).unwrap();
    assert_eq!(
        a,
        KeyValue {
            key: A.into(),
            value: b("1"),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
        }
    );
    let bkv = store.create(B, b("2")).unwrap();
    assert_eq!(
        (bkv.create_revision, bkv.mod_revision, bkv.version),
        (2, 2, 1)
    );
    assert_eq!(store.revision(), 2);
    assert_eq!(store.get(A), Some(a));
}

#[test]
fn create_twice_is_already_exists_and_changes_nothing() {
    let store = Store::new();
    store.create(A, b("1")).unwrap();
    assert_eq!(
        store.create(A, b("2")),
        Err(StoreError::AlreadyExists { key: A.into() })
    );
    assert_eq!(store.revision(), 1);
    assert_eq!(store.get(A).unwrap().value, b("1"));
}

#[test]
fn update_bumps_mod_revision_and_version_but_not_create_revision() {
    let store = Store::new();
    store.create(A, b("1")).unwrap();
    store.create(B, b("x")).unwrap();
    let a = store.update(A, b("2"), None).unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 3, 2));
    let a = store.update(A, b("3"), Some(3)).unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 4, 3));
    assert_eq!(store.get(A).unwrap().value, b("3"));
}

#[test]
fn update_with_stale_mod_revision_is_conflict_and_changes_nothing() {
    let store = Store::new();
    let a = store.create(A, b("1")).unwrap();
    store.update(A, b("2"), Some(a.mod_revision)).unwrap();
    // A second writer still holding revision 1 loses.
    assert_eq!(
        store.update(A, b("3"), Some(a.mod_revision)),
        Err(StoreError::Conflict {
            key: A.into(),
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(store.revision(), 2);
    assert_eq!(store.get(A).unwrap().value, b("2"));
}

#[test]
fn update_of_missing_key_is_not_found() {
    let store = Store::new();
    assert_eq!(
        store.update(A, b("1"), None),
        Err(StoreError::NotFound { key: A.into() })
    );
    assert_eq!(
        store.update(A, b("1"), Some(1)),
        Err(StoreError::NotFound { key: A.into() })
    );
    assert_eq!(store.revision(), 0);
}

#[test]
fn delete_returns_a_tombstone_event_with_the_old_value() {
    let store = Store::new();
    let a = store.create(A, b("1")).unwrap();
    let event = store.delete(A, None).unwrap();
    assert_eq!(
        event,
        Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: A.into(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: 2,
                version: 0,
            },
            prev_kv: Some(a),
        }
    );
    assert_eq!(store.get(A), None);
    assert_eq!(store.revision(), 2);
}

#[test]
fn delete_errors() {
    let store = Store::new();
    assert_eq!(
        store.delete(A, None),
        Err(StoreError::NotFound { key: A.into() })
    );
    store.create(A, b("1")).unwrap();
    store.update(A, b("2"), None).unwrap();
    assert_eq!(
        store.delete(A, Some(1)),
        Err(StoreError::Conflict {
            key: A.into(),
            expected: 1,
            actual: 2
        })
    );
    assert!(store.get(A).is_some());
    assert!(store.delete(A, Some(2)).is_ok());
}

#[test]
fn recreated_key_starts_over() {
    let store = Store::new();
    store.create(A, b("1")).unwrap();
    store.update(A, b("2"), None).unwrap();
    store.delete(A, None).unwrap();
    let a = store.create(A, b("3")).unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (4, 4, 1));
}

#[test]
fn list_is_sorted_by_key_and_limited_to_the_prefix() {
    let store = Store::new();
    store.create(C, b("c")).unwrap();
    store.create(B, b("b")).unwrap();
    store.create(A, b("a")).unwrap();
    // A key that shares the prefix's characters but not its "directory".
    store.create("/registry/pods/defaultx/z", b("z")).unwrap();
    let (kvs, rev) = store.list("/registry/pods/default/");
    assert_eq!(rev, 4);
    let keys: Vec<_> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, [A, B]);
    let (all, _) = store.list("");
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(store.list("/registry/services/"), (vec![], 4));
}

#[test]
fn list_at_reconstructs_every_past_revision() {
    let store = Store::new();
    let a1 = store.create(A, b("1")).unwrap(); // rev 1
    let b2 = store.create(B, b("1")).unwrap(); // rev 2
    let a3 = store.update(A, b("2"), None).unwrap(); // rev 3
    store.delete(B, None).unwrap(); // rev 4
    store.create(C, b("1")).unwrap(); // rev 5 (other prefix)
    let p = "/registry/pods/default/";
    assert_eq!(store.list_at(p, 0), Ok(vec![]));
    assert_eq!(store.list_at(p, 1), Ok(vec![a1.clone()]));
    assert_eq!(store.list_at(p, 2), Ok(vec![a1, b2.clone()]));
    assert_eq!(store.list_at(p, 3), Ok(vec![a3.clone(), b2]));
    assert_eq!(store.list_at(p, 4), Ok(vec![a3.clone()]));
    assert_eq!(store.list_at(p, 5), Ok(vec![a3]));
    assert_eq!(store.list_at(p, 5).unwrap(), store.list(p).0);
}

#[test]
fn list_at_refuses_the_future_and_the_compacted_past() {
    let store = Store::new();
    for i in 0..5 {
        store.create(&format!("/k/{i}"), b("v")).unwrap();
    }
    assert_eq!(
        store.list_at("", 6),
        Err(StoreError::FutureRevision {
            requested: 6,
            current: 5
        })
    );
    store.compact(3);
    assert_eq!(store.compacted_revision(), 3);
    assert_eq!(
        store.list_at("", 2),
        Err(StoreError::Compacted {
            requested: 2,
            compacted: 3
        })
    );
    // At the floor itself the history is complete: still readable.
    assert_eq!(store.list_at("", 3).unwrap().len(), 3);
    assert_eq!(
        store.list_at("", -1).unwrap_err().to_string(),
        "required revision -1 has been compacted (compacted revision 3)"
    );
}

#[test]
fn watch_replays_history_then_delivers_live_events() {
    let store = Store::new();
    store.create(A, b("1")).unwrap(); // 1
    store.create(C, b("1")).unwrap(); // 2 (other prefix)
    store.update(A, b("2"), None).unwrap(); // 3
    let mut watch = store.watch("/registry/pods/default/", 1).unwrap();
    let replay = drain(&mut watch);
    assert_eq!(revisions(&replay), [3]);
    assert_eq!(replay[0].kind, EventKind::Put);
    assert_eq!(replay[0].prev_kv.as_ref().unwrap().value, b("1"));

    store.create(B, b("1")).unwrap(); // 4
    store.update(C, b("2"), None).unwrap(); // 5 (other prefix)
    store.delete(A, None).unwrap(); // 6
    let live = drain(&mut watch);
    assert_eq!(revisions(&live), [4, 6]);
    assert_eq!(live[0].prev_kv, None, "a create has no previous value");
    assert_eq!(live[1].kind, EventKind::Delete);
}

#[test]
fn watch_from_current_revision_sees_only_new_events() {
    let store = Store::new();
    store.create(A, b("1")).unwrap();
    let (_, rev) = store.list("");
    let mut watch = store.watch("", rev).unwrap();
    assert!(drain(&mut watch).is_empty());
    store.update(A, b("2"), None).unwrap();
    assert_eq!(revisions(&drain(&mut watch)), [2]);
}

#[test]
fn watch_errors() {
    let store = Store::with_history(2);
    for i in 0..5 {
        store.create(&format!("/k/{i}"), b("v")).unwrap();
    }
    assert_eq!(
        store.watch("", 6).err(),
        Some(StoreError::FutureRevision {
            requested: 6,
            current: 5
        })
    );
    // Two events kept: revisions 4 and 5, so the floor is 3.
    assert_eq!(store.compacted_revision(), 3);
    assert_eq!(
        store.watch("", 2).err(),
        Some(StoreError::Compacted {
            requested: 2,
            compacted: 3
        })
    );
    let mut watch = store.watch("", 3).unwrap();
    assert_eq!(revisions(&drain(&mut watch)), [4, 5]);
}

#[test]
fn with_history_keeps_at_most_n_events() {
    let store = Store::with_history(3);
    store.create(A, b("0")).unwrap();
    for i in 1..10 {
        store.update(A, b(&i.to_string()), None).unwrap();
    }
    assert_eq!(store.revision(), 10);
    assert_eq!(store.compacted_revision(), 7);
    let mut watch = store.watch("", 7).unwrap();
    assert_eq!(revisions(&drain(&mut watch)), [8, 9, 10]);
    // Compaction never touches current values.
    assert_eq!(store.get(A).unwrap().version, 10);
}

#[test]
fn with_history_zero_keeps_nothing() {
    let store = Store::with_history(0);
    store.create(A, b("0")).unwrap();
    assert_eq!(store.compacted_revision(), 1);
    let mut watch = store.watch("", 1).unwrap();
    store.update(A, b("1"), None).unwrap();
    assert_eq!(revisions(&drain(&mut watch)), [2]);
}

#[test]
fn compact_clamps_and_never_goes_back() {
    let store = Store::new();
    store.create(A, b("0")).unwrap();
    store.create(B, b("0")).unwrap();
    store.compact(100);
    assert_eq!(store.compacted_revision(), 2);
    store.compact(1);
    assert_eq!(store.compacted_revision(), 2);
    assert_eq!(store.list_at("", 2).unwrap().len(), 2);
}

#[test]
fn compaction_does_not_disturb_a_running_watch() {
    let store = Store::new();
    let mut watch = store.watch("", 0).unwrap();
    store.create(A, b("0")).unwrap();
    store.compact(1);
    store.update(A, b("1"), None).unwrap();
    assert_eq!(revisions(&drain(&mut watch)), [1, 2]);
}

#[test]
fn dropped_watches_are_pruned() {
    let store = Store::new();
    let w1 = store.watch("/registry/pods/", 0).unwrap();
    let w2 = store.watch("/registry/services/", 0).unwrap();
    let _w3 = store.watch("", 0).unwrap();
    assert_eq!(store.lock().watchers.len(), 3);
    drop(w1);
    drop(w2);
    // The next write finds both gone: one by a failed send (its prefix
    // matches), one by checking (it does not).
    store.create(A, b("0")).unwrap();
    assert_eq!(store.lock().watchers.len(), 1);
}

#[test]
fn errors_read_like_etcds() {
    let e = StoreError::Conflict {
        key: A.into(),
        expected: 1,
        actual: 2,
    };
    assert_eq!(
        e.to_string(),
        "key \"/registry/pods/default/a\": expected mod revision 1, found 2"
    );
}

#[tokio::test]
async fn watch_is_a_stream_that_waits_for_live_events() {
    let store = Store::new();
    let mut watch = store.watch("", 0).unwrap();
    let writer = store.clone();
    let task = tokio::spawn(async move {
        tokio::task::yield_now().await;
        writer.create(A, b("1")).unwrap();
        writer.delete(A, None).unwrap();
    });
    let first = watch.next().await.unwrap();
    let second = watch.recv().await.unwrap();
    assert_eq!((first.revision(), second.revision()), (1, 2));
    task.await.unwrap();
    // When the last handle to the store goes, the stream ends.
    drop(store);
    assert_eq!(watch.next().await, None);
}

#[test]
fn cas_increments_from_many_threads_are_never_lost() {
    // The classic lost-update test: N threads read-modify-write one counter
    // with compare-and-swap, retrying on conflict. Every increment must
    // survive.
    const THREADS: usize = 8;
    const INCREMENTS: usize = 200;
    let store = Store::new();
    store.create("/counter", b("0")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..INCREMENTS {
                        loop {
                            let kv = store.get("/counter").unwrap();
                            let n: usize = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                            match store.update(
                                "/counter",
                                b(&(n + 1).to_string()),
                                Some(kv.mod_revision),
                            ) {
                                Ok(_) => break,
                                Err(StoreError::Conflict { .. }) => continue,
                                Err(e) => panic!("unexpected {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    });
    let kv = store.get("/counter").unwrap();
    assert_eq!(kv.value, b(&(THREADS * INCREMENTS).to_string()));
    assert_eq!(kv.version as usize, THREADS * INCREMENTS + 1);
    // Conflicts are failed attempts, not writes: they never moved the revision.
    assert_eq!(store.revision() as usize, THREADS * INCREMENTS + 1);
}

#[test]
fn handles_can_cross_threads_and_tasks() {
    // The API server shares a `Store` between request handlers and returns a
    // `Watch` as the body of a streaming response: both must be `Send`, the
    // store `Sync` too, and the watch an `Unpin` stream.
    fn store<T: Send + Sync + Clone + 'static>() {}
    fn watch<T: Send + Unpin + futures::Stream<Item = Event> + 'static>() {}
    store::<Store>();
    watch::<Watch>();
}

#[test]
fn debug_is_a_summary() {
    let store = Store::new();
    store.create(A, b("1")).unwrap();
    let _watch = store.watch("", 0).unwrap();
    assert_eq!(
        format!("{store:?}"),
        "Store { revision: 1, compacted: 0, keys: 1, history: 1, watchers: 1 }"
    );
}
