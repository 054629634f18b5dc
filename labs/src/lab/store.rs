//! The `labs store` lab: etcd's semantics, narrated step by step.
//!
//! It drives a [`Store`] through what the API server will do to it — create
//! pods, list them, update one from two writers at once, watch, delete,
//! compact — and prints each step with the numbers etcd would report. The
//! output is deterministic (no clocks, no randomness), so the book shows it
//! verbatim and a snapshot test keeps it honest.

use std::io::Write;

use bytes::Bytes;

use crate::store::{Event, EventKind, KeyValue, Store, StoreError};

/// Where Kubernetes keeps the pods of namespace `default`.
const PODS: &str = "/registry/pods/default/";

/// Run the lab, printing what happens to `out`.
pub async fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::new();
    let key = |name: &str| format!("{PODS}{name}");

    writeln!(out, "Lab: etcd, the cluster's memory")?;
    writeln!(out)?;
    writeln!(
        out,
        "A new store is empty, at revision {}. Every write will add one.",
        store.revision()
    )?;

    // ---------------------------------------------------------------------
    heading(out, 1, "Create three pods under /registry/pods/default/")?;
    for name in ["web-1", "web-2", "web-3"] {
        let kv = store.create(&key(name), json(r#"{"image":"app:v1"}"#))?;
        writeln!(out, "  create {}  -> {}", kv.key, numbers(&kv))?;
    }
    writeln!(
        out,
        "  Each write took the next global revision. A pod's resourceVersion is its\n  \
         mod_revision: \"1\", \"2\", \"3\"."
    )?;
    writeln!(out, "  create web-1 again")?;
    let again = store.create(&key("web-1"), json(r#"{"image":"app:v2"}"#));
    writeln!(out, "    -> {}", outcome(&again))?;
    writeln!(
        out,
        "       (the API server answers 409 AlreadyExists: names are unique)"
    )?;

    // ---------------------------------------------------------------------
    heading(
        out,
        2,
        "List the prefix: a consistent snapshot and its revision",
    )?;
    let (listed, listed_at) = store.list(PODS);
    writeln!(
        out,
        "  list {PODS} -> {} keys at revision {listed_at}",
        listed.len()
    )?;
    for kv in &listed {
        writeln!(
            out,
            "    {}  mod_revision {}  {}",
            name(&kv.key),
            kv.mod_revision,
            text(&kv.value)
        )?;
    }
    writeln!(
        out,
        "  The list's metadata.resourceVersion is \"{listed_at}\": the point in history it shows."
    )?;

    // ---------------------------------------------------------------------
    heading(out, 3, "Two writers, one pod: compare-and-swap")?;
    let seen_by_scheduler = store.get(&key("web-1")).expect("created above");
    let seen_by_kubectl = store.get(&key("web-1")).expect("created above");
    writeln!(
        out,
        "  The scheduler and kubectl both read web-1 at mod_revision {}.",
        seen_by_scheduler.mod_revision
    )?;
    writeln!(
        out,
        "  kubectl adds a label, expecting mod_revision {}",
        seen_by_kubectl.mod_revision
    )?;
    let labelled = store.update(
        &key("web-1"),
        json(r#"{"image":"app:v1","labels":{"tier":"web"}}"#),
        Some(seen_by_kubectl.mod_revision),
    );
    writeln!(out, "    -> {}", outcome(&labelled))?;
    writeln!(
        out,
        "  the scheduler binds web-1 to node-1, expecting mod_revision {}",
        seen_by_scheduler.mod_revision
    )?;
    let stale = store.update(
        &key("web-1"),
        json(r#"{"image":"app:v1","nodeName":"node-1"}"#),
        Some(seen_by_scheduler.mod_revision),
    );
    writeln!(out, "    -> {}", outcome(&stale))?;
    writeln!(
        out,
        "       (the API server answers 409 Conflict: \"the object has been modified;\n        \
         please apply your changes to the latest version and try again\")"
    )?;
    let fresh = store.get(&key("web-1")).expect("still there");
    writeln!(
        out,
        "  the scheduler re-reads web-1 and binds again, expecting mod_revision {}",
        fresh.mod_revision
    )?;
    let bound = store.update(
        &key("web-1"),
        json(r#"{"image":"app:v1","labels":{"tier":"web"},"nodeName":"node-1"}"#),
        Some(fresh.mod_revision),
    );
    writeln!(out, "    -> {}", outcome(&bound))?;
    let web1 = store.get(&key("web-1")).expect("still there");
    writeln!(out, "  web-1 is now {}", text(&web1.value))?;
    writeln!(
        out,
        "  Both changes are there: no write was lost, and nobody held a lock."
    )?;

    // ---------------------------------------------------------------------
    heading(out, 4, "Watch from an old revision: replay, then live")?;
    writeln!(
        out,
        "  An informer listed at revision {listed_at} in step 2. It watches {PODS}\n  \
         from that revision, and first receives everything it has not seen:"
    )?;
    let mut watch = store.watch(PODS, listed_at)?;
    let mut seen = Vec::new();
    // Writes deliver their events before they return, so the replay is
    // already waiting in the channel.
    while let Some(event) = watch.try_recv() {
        writeln!(out, "    {}", describe(&event))?;
        seen.push(event);
    }
    writeln!(
        out,
        "  Then it waits for live events. Someone deletes web-3:"
    )?;
    let deleter = store.clone();
    let deleted = tokio::spawn(async move { deleter.delete(&format!("{PODS}web-3"), None) });
    let event = watch.recv().await.expect("the store is alive");
    writeln!(out, "    {}", describe(&event))?;
    seen.push(event);
    deleted.await??;
    // The informer's promise, checked: its list plus its events is the truth.
    let (now, now_at) = store.list(PODS);
    let verdict = if replay(&listed, &seen) == now {
        "the same: nothing missed, nothing twice"
    } else {
        "DIFFERENT (a bug in the store!)"
    };
    writeln!(
        out,
        "  The list at revision {listed_at} with these {} events applied: {}.\n  \
         The list now, at revision {now_at}: {}.\n  \
         They are {verdict}.",
        seen.len(),
        names(&replay(&listed, &seen)),
        names(&now)
    )?;

    // ---------------------------------------------------------------------
    heading(out, 5, "The past is readable, until it is compacted")?;
    writeln!(out, "  list_at revision {listed_at}")?;
    let past = store.list_at(PODS, listed_at).map(|kvs| names(&kvs));
    writeln!(out, "    -> {}", outcome(&past))?;
    let floor = store.revision() - 1;
    store.compact(floor);
    writeln!(
        out,
        "  compact({floor}): the history up to revision {floor} is forgotten \
         (compacted revision {})",
        store.compacted_revision()
    )?;
    writeln!(out, "  list_at revision {listed_at}")?;
    let past = store.list_at(PODS, listed_at).map(|kvs| names(&kvs));
    writeln!(out, "    -> {}", outcome(&past))?;
    writeln!(out, "  watch {PODS} after revision {listed_at}")?;
    let too_old = store.watch(PODS, listed_at).map(|_| "watching");
    writeln!(out, "    -> {}", outcome(&too_old))?;
    writeln!(
        out,
        "       (the API server ends the watch with an ERROR event: code 410, reason\n        \
         Expired, \"too old resource version\")"
    )?;
    let web1 = store.get(&key("web-1")).expect("not deleted");
    writeln!(
        out,
        "  Current values are untouched: web-1 still has {}.",
        numbers(&web1)
    )?;
    let (relisted, relisted_at) = store.list(PODS);
    let mut watch = store.watch(PODS, relisted_at)?;
    writeln!(
        out,
        "  So the client lists again ({} at revision {relisted_at}) and watches from there.\n  \
         Someone creates web-4 and updates web-2:",
        names(&relisted)
    )?;
    store.create(&key("web-4"), json(r#"{"image":"app:v1"}"#))?;
    store.update(&key("web-2"), json(r#"{"image":"app:v2"}"#), None)?;
    for _ in 0..2 {
        let event = watch.recv().await.expect("the store is alive");
        writeln!(out, "    {}", describe(&event))?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "The store is at revision {}, compacted revision {}.",
        store.revision(),
        store.compacted_revision()
    )?;
    Ok(())
}

/// Apply watch events to a list, as an informer does to its cache.
fn replay(listed: &[KeyValue], events: &[Event]) -> Vec<KeyValue> {
    let mut cache: std::collections::BTreeMap<String, KeyValue> = listed
        .iter()
        .map(|kv| (kv.key.clone(), kv.clone()))
        .collect();
    for event in events {
        match event.kind {
            EventKind::Put => cache.insert(event.kv.key.clone(), event.kv.clone()),
            EventKind::Delete => cache.remove(&event.kv.key),
        };
    }
    cache.into_values().collect()
}

fn heading(out: &mut impl Write, step: u32, title: &str) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{step}. {title}")?;
    Ok(())
}

fn json(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn text(value: &Bytes) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The three numbers etcd keeps per key.
fn numbers(kv: &KeyValue) -> String {
    format!(
        "create_revision {}, mod_revision {}, version {}",
        kv.create_revision, kv.mod_revision, kv.version
    )
}

/// The last path segment: the object's name.
fn name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

fn names(kvs: &[KeyValue]) -> String {
    let names: Vec<&str> = kvs.iter().map(|kv| name(&kv.key)).collect();
    format!("[{}]", names.join(", "))
}

/// What an operation answered, as the lab prints it.
fn outcome<T: Shown>(r: &Result<T, StoreError>) -> String {
    match r {
        Ok(value) => format!("ok: {}", value.shown()),
        Err(e) => format!("error: {e}"),
    }
}

/// How a successful result is shown by [`outcome`].
trait Shown {
    fn shown(&self) -> String;
}

impl Shown for KeyValue {
    fn shown(&self) -> String {
        numbers(self)
    }
}

impl Shown for String {
    fn shown(&self) -> String {
        self.clone()
    }
}

impl Shown for &str {
    fn shown(&self) -> String {
        (*self).to_owned()
    }
}

/// One event the way a Kubernetes watch would report it: etcd only has PUT
/// and DELETE; whether a PUT was a creation (ADDED) or an update (MODIFIED)
/// is told by its previous value.
fn describe(event: &Event) -> String {
    let (etcd, kube) = match (event.kind, &event.prev_kv) {
        (EventKind::Put, None) => ("PUT", "ADDED"),
        (EventKind::Put, Some(_)) => ("PUT", "MODIFIED"),
        (EventKind::Delete, _) => ("DELETE", "DELETED"),
    };
    let previous = match &event.prev_kv {
        Some(prev) => format!("previous mod_revision {}", prev.mod_revision),
        None => "no previous value".to_owned(),
    };
    format!(
        "revision {:>2}  {etcd:<6} {:<6} {kube:<8} ({previous})",
        event.revision(),
        name(&event.kv.key),
    )
}
