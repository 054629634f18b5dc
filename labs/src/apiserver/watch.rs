//! Watch: a long-running GET that streams changes as they happen.
//!
//! The answer is an HTTP 200 whose chunked body is one JSON object per
//! line, `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`,
//! kept open until `timeoutSeconds` ends it. This is how every controller,
//! the scheduler and every kubelet learn about changes — none of them poll.
//!
//! The server adds little to the store's own watch: it turns store events
//! into Kubernetes event types, filters them with label and field
//! selectors, and writes BOOKMARKs (an RV with no object, so that a quiet
//! watcher can resume from a recent revision).
//!
//! A filtered watch must decode each object to test its selectors, and
//! there are many of them: every kubelet watches pods with
//! `spec.nodeName=<itself>`, so with 100 nodes each pod change would be
//! decoded 200 times (old and new, per kubelet). kube-apiserver's watch
//! cache decodes an event once and hands the result to every watcher; the
//! [`Decoded`] memo below does the same for us.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ApiServer;
use super::handlers::{Selectors, TABLE_CONTENT_TYPE, object_bytes_from_kv, object_from_kv};
use super::request::Call;
use super::resources::Resource;
use super::status::ApiError;
use super::table;
use crate::store::{Event, EventKind, KeyValue, Revision, Watch};

// ANCHOR: decoded
/// Objects decoded for filtered watches, by (key, revision): a stored
/// version never changes, so whichever watcher decodes it first decodes it
/// for all. Bounded: it only has to outlive one event's fan-out.
#[derive(Default)]
pub struct Decoded {
    objects: Mutex<HashMap<(String, Revision), Arc<Value>>>,
}

impl Decoded {
    const CAPACITY: usize = 4096;

    fn get(&self, kv: &KeyValue) -> Arc<Value> {
        let key = (kv.key.clone(), kv.mod_revision);
        if let Some(v) = self.objects.lock().unwrap().get(&key) {
            return Arc::clone(v);
        }
        // Decode outside the lock; two watchers racing decode twice, which
        // is harmless.
        let v = Arc::new(object_from_kv(kv));
        let mut objects = self.objects.lock().unwrap();
        if objects.len() >= Self::CAPACITY {
            objects.clear();
        }
        objects.insert(key, Arc::clone(&v));
        v
    }
}
// ANCHOR_END: decoded

/// Everything the streaming task needs, moved into it.
struct WatchTask {
    api: ApiServer,
    resource: &'static Resource,
    selectors: Selectors,
    table: bool,
    bookmarks: bool,
    timeout: Duration,
    /// Objects to send as ADDED before any change.
    initial: Vec<Value>,
    /// `Some(rv)`: after the initial events, send the
    /// `k8s.io/initial-events-end` bookmark at `rv` (`sendInitialEvents`).
    initial_events_end: Option<Revision>,
    /// The store watch, or the error to report as an ERROR event.
    source: Result<Watch, ApiError>,
    /// The revision the watcher has seen everything up to.
    last_revision: Revision,
}

// ANCHOR: start
pub fn watch(api: &ApiServer, call: &Call) -> Response {
    match start(api, call) {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn start(api: &ApiServer, call: &Call) -> Result<Response, ApiError> {
    let r = call.target.resource;
    let selectors = Selectors::from_call(call)?;
    let prefix = r.prefix(call.target.namespace.as_deref());
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => api.config().default_watch_timeout,
    };
    let rv = call.query.get("resourceVersion").unwrap_or("");
    let send_initial = call.query.get("sendInitialEvents").map(|v| v == "true");
    // Two ways to ask for the current state first: the legacy "RV unset or
    // 0" (kubectl get -w NAME, client-go informers' first watch), and the
    // newer streaming list `sendInitialEvents=true`, which ends the initial
    // state with a marked bookmark so that the client knows it has it all.
    let wants_initial =
        send_initial == Some(true) || (matches!(rv, "" | "0") && send_initial.is_none());
    let (initial, from, initial_events_end) = if wants_initial {
        let (kvs, rev) = api.store().list(&prefix);
        let objs = kvs
            .iter()
            .map(object_from_kv)
            .filter(|o| selectors.matches(o))
            .collect();
        (objs, rev, (send_initial == Some(true)).then_some(rev))
    } else if matches!(rv, "" | "0") {
        (vec![], api.store().revision(), None)
    } else {
        let n: Revision = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        (vec![], n, None)
    };
    // Errors after this point are ERROR events inside a 200 stream, never
    // HTTP errors: kube-rs relists after an ERROR 410 event but would retry
    // the same RV forever after an HTTP 410.
    let source = api.store().watch(&prefix, from).map_err(ApiError::from);
    let task = WatchTask {
        api: api.clone(),
        resource: r,
        selectors,
        table: call.wants_table(),
        bookmarks: call.query.flag("allowWatchBookmarks"),
        timeout,
        initial,
        initial_events_end,
        source,
        last_revision: from,
    };
    let content_type = if task.table {
        TABLE_CONTENT_TYPE
    } else {
        "application/json"
    };
    // A small buffer: a slow reader slows its own watch down instead of
    // making the server queue its events without limit.
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(task.run(tx));
    let stream =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}
// ANCHOR_END: start

impl WatchTask {
    // ANCHOR: run
    async fn run(mut self, tx: mpsc::Sender<Bytes>) {
        for obj in std::mem::take(&mut self.initial) {
            if !self.send(&tx, "ADDED", obj).await {
                return;
            }
        }
        if let Some(rv) = self.initial_events_end {
            let mark = self.bookmark(rv, true);
            if tx.send(mark).await.is_err() {
                return;
            }
        }
        let mut watch = match std::mem::replace(&mut self.source, Err(ApiError::internal("taken")))
        {
            Ok(w) => w,
            Err(e) => {
                let _ = tx.send(line("ERROR", e.to_status())).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let period = self.api.config().bookmark_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut shutdown = self.api.shutdown_signal();
        loop {
            tokio::select! {
                // timeoutSeconds: end the stream; clients re-watch from
                // the last revision they saw.
                _ = &mut deadline => return,
                _ = async { shutdown.wait_for(|down| *down).await.is_ok() } => return,
                // The client went away.
                _ = tx.closed() => return,
                _ = ticks.tick(), if self.bookmarks => {
                    // Everything up to `now` is already in our channel
                    // (the store feeds watches under its lock), so after
                    // draining it the bookmark's promise holds: "you have
                    // seen every change up to this revision".
                    let now = self.api.store().revision();
                    while let Some(Some(ev)) = watch.recv().now_or_never() {
                        if !self.event(&tx, ev).await {
                            return;
                        }
                    }
                    let rv = now.max(self.last_revision);
                    self.last_revision = rv;
                    if tx.send(self.bookmark(rv, false)).await.is_err() {
                        return;
                    }
                }
                ev = watch.recv() => match ev {
                    Some(ev) => if !self.event(&tx, ev).await { return },
                    None => return,
                },
            }
        }
    }
    // ANCHOR_END: run

    // ANCHOR: event
    /// Turns a store event into a watch event. With a selector, an object
    /// that starts matching is ADDED and one that stops matching is
    /// DELETED, as the real server's watch cache reports them.
    async fn event(&mut self, tx: &mpsc::Sender<Bytes>, ev: Event) -> bool {
        self.last_revision = ev.kv.mod_revision;
        if self.selectors.is_everything() && !self.table {
            return self.event_unfiltered(tx, ev).await;
        }
        let decoded = self.api.decoded();
        let old = ev.prev_kv.as_ref().map(|kv| decoded.get(kv));
        let old_matches = old.as_ref().map(|o| self.selectors.matches(o));
        match ev.kind {
            EventKind::Put => {
                let new = decoded.get(&ev.kv);
                let new_matches = self.selectors.matches(&new);
                let kind = match (old_matches, new_matches) {
                    (Some(true), true) => "MODIFIED",
                    (_, true) => "ADDED",
                    (Some(true), false) => "DELETED",
                    (_, false) => return true,
                };
                self.send(tx, kind, Value::clone(&new)).await
            }
            EventKind::Delete => {
                let Some(last) = old.filter(|_| old_matches == Some(true)) else {
                    return true;
                };
                let mut last = Value::clone(&last);
                // A DELETED event carries the last state, stamped with the
                // revision of the delete itself.
                last["metadata"]["resourceVersion"] = json!(ev.kv.mod_revision.to_string());
                self.send(tx, "DELETED", last).await
            }
        }
    }
    // ANCHOR_END: event

    /// The common case (a controller watching all of a kind) without
    /// decoding objects: with many watchers, each one would otherwise parse
    /// every object again.
    async fn event_unfiltered(&mut self, tx: &mpsc::Sender<Bytes>, ev: Event) -> bool {
        let (kind, bytes) = match (ev.kind, ev.prev_kv) {
            (EventKind::Put, None) => ("ADDED", object_bytes_from_kv(&ev.kv)),
            (EventKind::Put, Some(_)) => ("MODIFIED", object_bytes_from_kv(&ev.kv)),
            (EventKind::Delete, Some(mut last)) => {
                last.mod_revision = ev.kv.mod_revision;
                ("DELETED", object_bytes_from_kv(&last))
            }
            (EventKind::Delete, None) => return true,
        };
        let mut buf = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
        buf.extend_from_slice(&bytes);
        buf.extend_from_slice(b"}\n");
        tx.send(Bytes::from(buf)).await.is_ok()
    }

    async fn send(&self, tx: &mpsc::Sender<Bytes>, kind: &str, obj: Value) -> bool {
        let obj = if self.table {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            table::table(
                self.resource.kind,
                &[obj],
                &rv,
                crate::machinery::clock::now(),
            )
        } else {
            obj
        };
        tx.send(line(kind, obj)).await.is_ok()
    }

    // ANCHOR: bookmark
    /// A BOOKMARK, written by hand: clients decode it as an object of the
    /// watched kind, so it needs `kind` and `apiVersion` (k8s-openapi's
    /// own `WatchEvent::Bookmark` leaves them out).
    fn bookmark(&self, rv: Revision, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta}),
        )
    }
    // ANCHOR_END: bookmark
}

/// One newline-terminated JSON line, `type` first as the real server
/// writes it (clients do not care; people reading `curl` output do).
fn line(kind: &str, object: Value) -> Bytes {
    let mut buf = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
    serde_json::to_writer(&mut buf, &object).expect("JSON values serialize");
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}
