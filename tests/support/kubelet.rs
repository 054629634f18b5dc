//! A fake kubelet for the tests.
//!
//! The labs have no kubelet yet (it is a later lab), so nothing would ever
//! make a pod ready, and no rollout could finish: the Deployment controller
//! only moves on when the new pods are *available*. This helper plays the
//! kubelet's part, through the API as a kubelet would:
//!
//! * it binds every unscheduled pod to a fake node (the scheduler's part,
//!   `POST pods/<name>/binding`);
//! * it writes the pod's status through the status subresource: `Running`
//!   with `Ready=True` (or `Ready=False` while readiness is held, or for
//!   images marked broken, as an unpullable image would leave them);
//! * it finishes pods being deleted gracefully (a real kubelet stops the
//!   containers, then deletes the pod with `gracePeriodSeconds: 0`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

pub struct FakeKubelet {
    ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Starts acting on every pod in the namespace `default`. Pods whose
    /// image contains `broken` never become ready.
    pub fn start(client: kube::Client) -> FakeKubelet {
        let ready = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(run(client, Arc::clone(&ready)));
        FakeKubelet { ready, task }
    }

    /// While held, new pods start Running but not ready (a slow start), so
    /// a rollout stops in the middle. Releasing makes every running pod
    /// ready.
    pub fn hold_readiness(&self, hold: bool) {
        self.ready.store(!hold, Ordering::SeqCst);
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn broken(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.image.as_deref().is_some_and(|i| i.contains("broken")))
    })
}

async fn run(client: kube::Client, ready: Arc<AtomicBool>) {
    let api: Api<Pod> = Api::default_namespaced(client);
    // Re-list now and then, so pods held back become ready once released.
    let mut events = watcher(api.clone(), watcher::Config::default().timeout(1))
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        let pods: Vec<Pod> = tokio::select! {
            event = events.next() => match event {
                Some(Ok(pod)) => vec![pod],
                Some(Err(_)) => continue,
                None => return,
            },
            _ = tick.tick() => match api.list(&Default::default()).await {
                Ok(list) => list.items,
                Err(_) => continue,
            },
        };
        for pod in pods {
            let _ = act(&api, &pod, ready.load(Ordering::SeqCst)).await;
        }
    }
}

async fn act(api: &Api<Pod>, pod: &Pod, ready: bool) -> kube::Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        return api.delete(&name, &params).await.map(|_| ());
    }
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !bound {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "fake-node"},
        });
        api.create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await?;
    }
    let want_ready = ready && !broken(pod);
    let has_phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p != "Pending");
    if bound && has_phase && pod_ready(pod) == want_ready {
        return Ok(());
    }
    if pod_ready(pod) && !want_ready {
        return Ok(()); // Never take readiness back.
    }
    let now = labs::clock::now().to_string();
    let status = if broken(pod) {
        json!({"status": {
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now,
                            "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0, "image": "",
                                   "imageID": "", "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
        }})
    } else {
        json!({"status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": if want_ready { "True" } else { "False" },
                            "lastTransitionTime": now}],
        }})
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
}
