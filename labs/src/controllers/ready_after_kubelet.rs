//! The **ready-after kubelet stand-in**: the smallest thing that makes pods
//! ready, for `labs rollout` and `labs bench rollout`.
//!
//! A rolling update only moves when new pods become *available*, and that
//! is the kubelet's news to tell: it runs the containers, probes them and
//! writes `Ready=True` into the pod's status. The labs' real kubelet with
//! its simulated runtime comes in a later lab; until then this stand-in
//! plays its part, through the API as a kubelet would:
//!
//! * it binds each new pod to a node (`POST pods/<name>/binding`, the
//!   scheduler's job) and, `ready_after` after the pod's
//!   `creationTimestamp`, writes `phase: Running` and `Ready=True` through
//!   the status subresource;
//! * pods created in the same second become ready at the same instant and
//!   are written as one batch. The Deployment controller, in lockstep,
//!   syncs only once the cluster is quiet again, so it sees the whole batch
//!   and never half of it: the "pods created at the same time become ready
//!   together" of the reference's tick model. (Kubernetes timestamps have
//!   one-second resolution, so "the same second" is all an observer could
//!   tell apart anyway.)
//! * pods of a *never-ready* image stay `Pending` with `ImagePullBackOff`,
//!   as an image that cannot be pulled would leave them;
//! * a pod being deleted gracefully is deleted at once (`gracePeriodSeconds:
//!   0`), as a kubelet does once its containers have stopped.
//!
//! To be replaced by the kubelet and its simulated runtime.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apiserver::handlers::format_time;

/// The node the stand-in binds pods to.
pub const NODE: &str = "node-1";

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// How long after its creation a pod becomes ready.
    pub ready_after: Duration,
    /// Pods with this image never become ready.
    pub never_ready_image: Option<String>,
    /// Where to report each batch made ready, if anywhere.
    pub report: Option<mpsc::UnboundedSender<Became>>,
}

/// A batch of pods the stand-in made ready (or failed), for a timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Became {
    pub at: Timestamp,
    /// Pods per `pod-template-hash` label, in order of the hash.
    pub ready: BTreeMap<String, usize>,
    pub failed: BTreeMap<String, usize>,
}

/// Runs until `shutdown`.
pub async fn run(client: kube::Client, options: Options, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut pods = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    // Due instant → pods (namespace, name, hash, never ready).
    let mut due: BTreeMap<Instant, Vec<(String, String, String, bool)>> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    loop {
        let next = due.keys().next().copied();
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = wake => {
                let (_, batch) = due.pop_first().expect("a due batch");
                let became = make_ready(&client, batch).await;
                if let Some(tx) = &options.report {
                    let _ = tx.send(became);
                }
            }
            pod = pods.next() => {
                let Some(Ok(pod)) = pod else { continue };
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                    let params = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
                    let _ = api.delete(&name, &params).await;
                    continue;
                }
                if !seen.insert((ns.clone(), name.clone())) {
                    continue;
                }
                let created = pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or_else(crate::clock::now);
                let at = crate::clock::instant_at(created) + options.ready_after;
                let hash = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pod-template-hash").cloned())
                    .unwrap_or_default();
                let never = options.never_ready_image.as_deref().is_some_and(|bad| {
                    pod.spec.as_ref().is_some_and(|s| {
                        s.containers.iter().any(|c| c.image.as_deref() == Some(bad))
                    })
                });
                due.entry(at.max(Instant::now())).or_default().push((ns, name, hash, never));
            }
        }
    }
}

/// Binds and writes the status of every pod in the batch.
async fn make_ready(client: &kube::Client, batch: Vec<(String, String, String, bool)>) -> Became {
    let now = crate::clock::now();
    let mut became = Became {
        at: now,
        ready: BTreeMap::new(),
        failed: BTreeMap::new(),
    };
    for (ns, name, hash, never) in batch {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        });
        // Gone meanwhile (scaled down before it was ready): nothing to do.
        if api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
            .is_err()
        {
            continue;
        }
        let status = if never {
            json!({"status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                "lastTransitionTime": format_time(now)}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                       "image": "", "imageID": "",
                                       "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
            }})
        } else {
            json!({"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": format_time(now)}],
            }})
        };
        if api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .is_ok()
        {
            let counts = if never {
                &mut became.failed
            } else {
                &mut became.ready
            };
            *counts.entry(hash).or_default() += 1;
        }
    }
    became
}
