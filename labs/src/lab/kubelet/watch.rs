//! What the kubelet lab watches and how it shows it: every pod and Event
//! version as it arrives (`kubectl get pods -w` and `kubectl get events -w`
//! at once), and a pod's line as kubectl prints it.

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerState, Event, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One write the lab saw: a pod's new version (or its deletion) or an
/// Event, with its resourceVersion and when it arrived.
#[derive(Debug)]
pub(super) enum Seen {
    Pod {
        rv: u64,
        at: Instant,
        pod: Box<Pod>,
        deleted: bool,
    },
    Event {
        rv: u64,
        at: Instant,
        event: Box<Event>,
    },
}

impl Seen {
    pub(super) fn rv(&self) -> u64 {
        match self {
            Seen::Pod { rv, .. } | Seen::Event { rv, .. } => *rv,
        }
    }
}

pub(super) fn rv_of(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `kubectl get pods -w` and `kubectl get events -w` at once: every pod and
/// Event version, as it arrives. (A watcher that restarts lists everything
/// again; versions already seen are skipped.)
pub(super) async fn observe(
    client: kube::Client,
    tx: mpsc::UnboundedSender<Seen>,
    shutdown: CancellationToken,
) {
    // Each watch event as (pod or Event, deleted?); `None` for the
    // bookkeeping ones (a re-list starting or ending).
    fn split<K>(e: watcher::Event<K>) -> Option<(K, bool)> {
        match e {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some((o, false)),
            watcher::Event::Delete(o) => Some((o, true)),
            watcher::Event::Init | watcher::Event::InitDone => None,
        }
    }
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .map(|e| e.map(|e| split(e).map(|(p, d)| ((Some(p), None), d))));
    let events = watcher::watcher(Api::<Event>::all(client), watcher::Config::default())
        .map(|e| e.map(|e| split(e).map(|(ev, d)| ((None, Some(ev)), d))));
    let mut both = futures::stream::select(pods.boxed(), events.boxed());
    let mut seen_rvs: HashSet<u64> = HashSet::new();
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = both.next() => item,
        };
        let (object, deleted) = match item {
            None => return,
            Some(Ok(Some(split))) => split,
            // Watch errors: the watcher retries by itself.
            Some(Ok(None) | Err(_)) => continue,
        };
        let at = Instant::now();
        let seen = match object {
            (Some(pod), _) => Seen::Pod {
                rv: rv_of(&pod.metadata),
                at,
                pod: Box::new(pod),
                deleted,
            },
            (_, Some(event)) if !deleted => Seen::Event {
                rv: rv_of(&event.metadata),
                at,
                event: Box::new(event),
            },
            _ => continue,
        };
        // A deletion has its own revision in our store; a re-list repeats
        // versions already seen.
        if !deleted && !seen_rvs.insert(seen.rv()) {
            continue;
        }
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// What one line of `kubectl get pods -w` shows, plus the phase, the
/// container's state and the conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodRow {
    pub(super) ready: String,
    pub(super) status: String,
    pub(super) restarts: i32,
    pub(super) phase: String,
    pub(super) container: String,
    pub(super) conditions: Vec<(String, String)>,
}

// ANCHOR: kubectl_status
/// The STATUS column of `kubectl get pods`, computed as kubectl computes it
/// (`printPod` in `pkg/printers/internalversion/printers.go`), for pods
/// without init containers: the phase, unless a container is waiting or
/// terminated with a reason — then that reason; `Terminating` for a pod
/// being deleted that has not reached a final phase. So STATUS is not a
/// field of the pod: `CrashLoopBackOff` is a container's waiting reason,
/// while the pod's phase stays `Running`.
pub(super) fn kubectl_status(pod: &Pod) -> (String, String, i32) {
    let status = pod.status.clone().unwrap_or_default();
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let mut reason = status.phase.clone().unwrap_or_default();
    if let Some(r) = status.reason.clone().filter(|r| !r.is_empty()) {
        reason = r;
    }
    let (mut ready, mut restarts, mut has_running) = (0, 0, false);
    // kubectl walks the containers backwards: the first one wins.
    for c in status.container_statuses.iter().flatten().rev() {
        restarts += c.restart_count;
        let state = c.state.clone().unwrap_or_default();
        if let Some(w) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
            reason = w;
        } else if let Some(t) = &state.terminated {
            reason = match &t.reason {
                Some(r) if !r.is_empty() => r.clone(),
                _ if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                _ => format!("ExitCode:{}", t.exit_code),
            };
        } else if c.ready && state.running.is_some() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    let terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if pod.metadata.deletion_timestamp.is_some() && !terminal {
        reason = "Terminating".into();
    }
    (format!("{ready}/{total}"), reason, restarts)
}
// ANCHOR_END: kubectl_status

/// The container's state in a few words (what `kubectl describe` shows as
/// `State:`).
pub(super) fn describe_state(state: Option<&ContainerState>) -> String {
    let Some(state) = state else {
        return "-".into();
    };
    if let Some(w) = &state.waiting {
        format!("waiting ({})", w.reason.as_deref().unwrap_or(""))
    } else if let Some(t) = &state.terminated {
        format!(
            "terminated ({}, exit code {})",
            t.reason.as_deref().unwrap_or(""),
            t.exit_code
        )
    } else if state.running.is_some() {
        "running".into()
    } else {
        "-".into()
    }
}

/// The conditions in the order `kubectl describe` prints them.
const CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

pub(super) fn row_of(pod: &Pod) -> PodRow {
    let (ready, status, restarts) = kubectl_status(pod);
    let st = pod.status.clone().unwrap_or_default();
    let container = st
        .container_statuses
        .iter()
        .flatten()
        .next()
        .map(|c| describe_state(c.state.as_ref()))
        .unwrap_or_else(|| "-".into());
    let conditions = CONDITIONS
        .iter()
        .filter_map(|t| {
            st.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == *t)
                .map(|c| (c.type_.clone(), c.status.clone()))
        })
        .collect();
    PodRow {
        ready,
        status,
        restarts,
        phase: st.phase.unwrap_or_default(),
        container,
        conditions,
    }
}
