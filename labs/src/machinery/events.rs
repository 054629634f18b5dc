//! Events: how a controller tells people what it did and why.
//!
//! `kubectl describe rs web` ends with lines such as
//! `Normal SuccessfulCreate 5s replicaset-controller Created pod: web-7x2kq`.
//! Each is a core/v1 `Event` object naming the object it is about
//! (`involvedObject`). Controllers write them through an *event recorder*
//! (client-go's `record.EventRecorder`), which this file is a small version
//! of:
//!
//! * **Asynchronous.** [`EventRecorder::record`] only puts the event on a
//!   channel; a background task writes it. A reconcile never waits for, or
//!   fails because of, an Event: they are informational and may be lost.
//! * **Correlated.** An event identical to an earlier one (same object,
//!   type, reason and message) is not written again: the earlier Event's
//!   `count` goes up and its `lastTimestamp` moves (a PATCH instead of a
//!   POST). That is why `kubectl get events` shows `(x12)`.
//! * **Spam-filtered.** Each object may write 25 events at once, then one
//!   more every 5 minutes (client-go's `EventSourceObjectSpamFilter` token
//!   bucket). A ReplicaSet scaled to 10,000 does not write 10,000 Events.
//!
//! Left out: client-go's aggregation of *similar* events (same reason,
//! different messages) into "(combined from similar events)", and the
//! newer events.k8s.io/v1 API with its series.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events each object may write in a burst (`defaultSpamBurst`).
pub const SPAM_BURST: u32 = 25;
/// After the burst, one more event per object this often (`defaultSpamQPS`
/// = 1/300).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);

/// One event to write.
#[derive(Debug, Clone)]
struct Pending {
    object: ObjectReference,
    type_: &'static str,
    reason: String,
    message: String,
}

/// Records Events on behalf of one component (the `source.component` of
/// every Event it writes). Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::UnboundedSender<Pending>,
}

impl EventRecorder {
    /// Starts the writer task; it ends on `shutdown` (events still queued
    /// then are dropped, as client-go's broadcaster drops them).
    pub fn new(client: kube::Client, component: &'static str, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_events(client, component, rx, shutdown));
        EventRecorder { tx }
    }

    /// Records an event about `obj`. `type_` is `Normal` or `Warning`.
    pub fn record<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        let meta = obj.meta();
        let object = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..ObjectReference::default()
        };
        // The writer is gone only after shutdown: then the event is dropped.
        let _ = self.tx.send(Pending {
            object,
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}

/// A token bucket per object.
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let periods = (now - self.refilled).as_secs() / SPAM_REFILL.as_secs();
        if periods > 0 {
            self.tokens = (self.tokens + periods as u32).min(SPAM_BURST);
            self.refilled += SPAM_REFILL * periods as u32;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// An Event already written: its name and count, to bump it.
struct Written {
    namespace: String,
    name: String,
    count: i32,
}

async fn write_events(
    client: kube::Client,
    component: &'static str,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    shutdown: CancellationToken,
) {
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    let mut written: HashMap<(String, &'static str, String, String), Written> = HashMap::new();
    let mut sequence = 0u64;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = rx.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let uid = event.object.uid.clone().unwrap_or_default();
        let bucket = buckets.entry(uid.clone()).or_insert(Bucket {
            tokens: SPAM_BURST,
            refilled: Instant::now(),
        });
        if !bucket.take(Instant::now()) {
            tracing::debug!(reason = %event.reason, "event dropped by the spam filter");
            continue;
        }
        let namespace = event
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = Time(crate::machinery::clock::now());
        let key = (
            uid,
            event.type_,
            event.reason.clone(),
            event.message.clone(),
        );
        // Seen before: count it on the existing Event.
        if let Some(w) = written.get_mut(&key) {
            w.count += 1;
            let patch = serde_json::json!({"count": w.count, "lastTimestamp": now});
            let api: Api<Event> = Api::namespaced(client.clone(), &w.namespace);
            match api
                .patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                // Deleted meanwhile (events expire): write a new one.
                Err(err) => {
                    tracing::debug!(%err, "could not update event; writing a new one");
                    written.remove(&key);
                }
            }
        }
        // Upstream names an Event `<object>.<unix nanoseconds in hex>`.
        sequence += 1;
        let name = format!(
            "{}.{:x}",
            event.object.name.as_deref().unwrap_or("object"),
            crate::machinery::clock::now().as_nanosecond() as u64 + sequence
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: event.object.clone(),
            reason: Some(event.reason.clone()),
            message: Some(event.message.clone()),
            type_: Some(event.type_.into()),
            source: Some(EventSource {
                component: Some(component.into()),
                host: None,
            }),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            reporting_component: Some(component.into()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                written.insert(
                    key,
                    Written {
                        namespace,
                        name,
                        count: 1,
                    },
                );
            }
            Err(err) => tracing::debug!(%err, "could not write event"),
        }
        // client-go keeps the correlation cache in a 4096-entry LRU.
        if written.len() > 4096 {
            written.clear();
        }
    }
}
