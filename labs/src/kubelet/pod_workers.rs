//! One worker per pod (upstream's `pod_workers.go` and the runtime manager's
//! `SyncPod`): the loop around the pure [`sync_pod`] that decides, writes the
//! status, and carries the actions out through the container runtime — one
//! thing at a time, so two syncs of one pod never race.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::lifecycle::{PreStop, grace_after_hook};
use super::pod_sync::{Action, PodSyncDecision, sync_pod};
use super::probe::{ProbeAction, ProbeTiming, probe_action};
use super::runtime::{
    ContainerConfig, ContainerId, ContainerStatus, ProbeTarget, Runtime, SandboxConfig,
};
use super::service_env::{merge_service_env, service_env};
use super::state::{PodRuntimeState, reasons};
use super::{referenced_objects, resolve_env};

use super::{kubelet::*, node_status::*, server::*};

// ANCHOR: pod_worker
/// One pod's worker: observe, decide, report, act, wait — until the pod is
/// deleted and its containers are gone.
pub(super) async fn pod_worker<R: Runtime>(
    s: Arc<Shared<R>>,
    mut updates: watch::Receiver<PodUpdate>,
    bell: Arc<Notify>,
) {
    let first = updates.borrow().pod.clone();
    let uid = first.metadata.uid.clone().unwrap_or_default();
    let key = pod_key(&first);
    let mut state = PodRuntimeState::new(s.config.host_ip.clone());
    // Adoption: a sandbox the runtime already has for this pod is ours.
    if let Some(sandbox) = s
        .runtime
        .list_pod_sandboxes()
        .await
        .into_iter()
        .find(|sb| sb.config.uid == uid)
    {
        state.record_sandbox(sandbox);
    }
    let mut written: Option<PodStatus> = first.status.clone();
    // The pod's resourceVersion after our last status write.
    let mut written_rv = resource_version(&first);
    loop {
        let PodUpdate { mut pod, gone } = updates.borrow_and_update().clone();
        if gone && pod.metadata.deletion_timestamp.is_none() {
            // Deleted from the API without a graceful deletion (a force
            // delete): stop the containers anyway, with the minimum grace.
            pod.metadata.deletion_timestamp = Some(time(s.clock.now()));
            pod.metadata.deletion_grace_period_seconds = Some(0);
        }
        // The status to build on is the one this worker last wrote, not the
        // one in the pod it was handed: the watch delivers our own writes a
        // step late, and deciding from a stale status (a `Ready` condition's
        // `lastTransitionTime` from two writes ago) would write it back, see
        // that write come round, and so on for ever. Upstream's status
        // manager keeps the same cache for the same reason.
        //
        // A status someone *else* wrote after ours is another matter: the
        // node lifecycle controller marks the pods of a node whose
        // heartbeat was late `Ready=False`. Then the cache is wrong, and
        // the status must be written again (upstream's status manager
        // reconciles the same way, `needsReconcile`). Our own writes come
        // back with the revision we got, never a later one.
        if written.is_some() && resource_version(&pod) > written_rv && pod.status != written {
            written = None;
        }
        if written.is_some() {
            pod.status = written.clone();
        }
        // Observe: what the runtime runs for this pod now (a relist of our
        // own: the PLEG's snapshot may be a second old).
        let mine: Vec<ContainerStatus> = s
            .runtime
            .list_containers()
            .await
            .into_iter()
            .filter(|c| c.pod_uid == uid)
            .collect();
        for id in state.observe(&mine) {
            let _ = s.runtime.remove_container(&id).await;
        }
        // Decide.
        let now = s.clock.now();
        let decision = sync_pod(&pod, &state, now);
        // Report, only if something changed.
        if !gone && written.as_ref() != Some(&decision.status) {
            match write_status(&s, &pod, &decision.status).await {
                Ok(rv) => {
                    written = Some(decision.status.clone());
                    written_rv = rv;
                }
                Err(e) => tracing::debug!(pod = %key, error = %e, "status update failed"),
            }
        }
        state.record_decision(&decision, now);
        // Act.
        let deleted = carry_out(&s, &pod, &mut state, &decision, gone).await;
        publish_log_index(&s, &key, &state);
        if deleted {
            // The object is gone: forget the pod's dead containers too.
            for c in s.runtime.list_containers().await {
                if c.pod_uid == uid {
                    let _ = s.runtime.remove_container(&c.id).await;
                }
            }
            s.log_index.lock().unwrap().remove(&key);
            s.bells.lock().unwrap().remove(&uid);
            return;
        }
        // Whatever the actions did (a container started, a probe answered,
        // a container stopped) changes the state: sync again at once, as
        // upstream's probe manager and PLEG wake the worker. A decision that
        // only waits (back-off) must not, or it would spin.
        if decision
            .actions
            .iter()
            .any(|a| !matches!(a, Action::BackOff { .. }))
        {
            continue;
        }
        // Wait for: a pod change, a container event, the next due time.
        let next = decision
            .next_sync_at
            .map(|t| instant_of(&s.clock, t))
            // Nothing due: still sync now and then, as upstream's periodic
            // resync (every minute) does.
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60))
            // A due time already past (a backoff that has just ended) must
            // not make the worker spin: wait at least one relist period.
            .max(tokio::time::Instant::now() + s.config.relist_period);
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            changed = updates.changed() => if changed.is_err() { return },
            _ = bell.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}
// ANCHOR_END: pod_worker

/// `PATCH pods/{name}/status` with a merge patch of the whole status (lists
/// are replaced as a whole by a merge patch, which is what we want).
pub(super) async fn write_status<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    status: &PodStatus,
) -> Result<u64, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .map(|p| resource_version(&p))
}

/// A pod's `resourceVersion` as a number (ours are etcd revisions), 0 if
/// absent.
pub(super) fn resource_version(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

// ANCHOR: carry_out
/// Carries out one decision's actions in order. Returns `true` once the pod
/// object has been deleted.
pub(super) async fn carry_out<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    state: &mut PodRuntimeState,
    decision: &PodSyncDecision,
    gone: bool,
) -> bool {
    let actions = &decision.actions;
    let mut i = 0;
    while i < actions.len() {
        match &actions[i] {
            Action::CreateSandbox => {
                match s.runtime.run_pod_sandbox(&SandboxConfig::of(pod)).await {
                    Ok(sandbox) => state.record_sandbox(sandbox),
                    Err(e) => {
                        s.events.record(
                            pod,
                            "Warning",
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        // The starts that follow need the sandbox.
                        return false;
                    }
                }
            }
            Action::StartContainer {
                container, attempt, ..
            } => start_container(s, pod, state, container, *attempt).await,
            Action::KillContainer { .. } => {
                // Containers of one pod stop in parallel, each with its own
                // grace period: take every kill in a row at once.
                let mut kills = Vec::new();
                while let Some(Action::KillContainer {
                    id,
                    grace_period,
                    pre_stop,
                    message,
                    ..
                }) = actions.get(i)
                {
                    s.events.record(pod, "Normal", "Killing", message.clone());
                    kills.push(kill_container(s, pod, id, *grace_period, pre_stop.as_ref()));
                    i += 1;
                }
                for r in join_all(kills).await {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "stopping a container failed");
                    }
                }
                continue;
            }
            Action::RunProbe {
                container,
                id,
                kind,
            } => {
                let Some(c) = find_container(pod, container) else {
                    i += 1;
                    continue;
                };
                let Some(probe) = kind.probe(c) else {
                    i += 1;
                    continue;
                };
                let timing = ProbeTiming::of(probe);
                let pod_ip = state
                    .sandbox
                    .as_ref()
                    .map(|sb| sb.ip)
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
                let outcome = match probe_action(probe, c, &pod_ip.to_string()) {
                    Ok(action) => {
                        let target = ProbeTarget {
                            id: id.clone(),
                            pod_ip,
                        };
                        s.runtime.probe(&target, &action, timing.timeout).await
                    }
                    Err(msg) => super::probe::ProbeOutcome::failure(msg),
                };
                if !outcome.success {
                    s.events.record(
                        pod,
                        "Warning",
                        "Unhealthy",
                        format!("{} probe failed: {}", kind.name(), outcome.output),
                    );
                }
                state.record_probe(
                    container,
                    id,
                    *kind,
                    outcome.success,
                    &timing,
                    s.clock.now(),
                );
            }
            Action::BackOff { reason, event, .. } => {
                // Upstream's events: a crash loop is a Warning ("Back-off
                // restarting failed container app in pod web_default(uid)");
                // an image back-off is Normal ("Back-off pulling image"),
                // followed by the failed start's "Error: ImagePullBackOff".
                if *reason == reasons::IMAGE_PULL_BACK_OFF {
                    s.events.record(pod, "Normal", "BackOff", event.clone());
                    s.events.record(
                        pod,
                        "Warning",
                        "Failed",
                        format!("Error: {}", reasons::IMAGE_PULL_BACK_OFF),
                    );
                } else {
                    s.events.record(pod, "Warning", "BackOff", event.clone());
                }
            }
            Action::RemoveSandbox => {
                if let Some(sandbox) = &state.sandbox {
                    let _ = s.runtime.remove_pod_sandbox(&sandbox.id).await;
                }
                state.record_sandbox_removed();
            }
            Action::DeletePod => {
                if gone {
                    return true;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
                // Grace period 0 and the UID as a precondition: the final
                // delete of *this* pod, never of a new one with its name.
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                return match api.delete(name, &params).await {
                    Ok(_) => true,
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => true,
                    Err(e) => {
                        tracing::debug!(error = %e, "deleting the pod failed");
                        false
                    }
                };
            }
        }
        i += 1;
    }
    false
}
// ANCHOR_END: carry_out

// ANCHOR: kill_container
/// Upstream's `killContainer`: the preStop hook, bounded by the grace
/// period, then SIGTERM with what is left of it (at least 2 s), then
/// SIGKILL. A failed hook is a `FailedPreStopHook` event, and the container
/// is stopped all the same.
async fn kill_container<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    id: &ContainerId,
    grace: std::time::Duration,
    pre_stop: Option<&PreStop>,
) -> Result<(), crate::kubelet::runtime::RuntimeError> {
    let started = tokio::time::Instant::now();
    if let Some(hook) = pre_stop {
        let failure = match hook {
            PreStop::Sleep(d) => {
                // The kubelet sleeps, not the container; a sleep longer
                // than the grace period is cut off by it (below).
                tokio::time::sleep((*d).min(grace)).await;
                None
            }
            PreStop::Invalid(msg) => Some(msg.clone()),
            PreStop::Run(action) => {
                let target = ProbeTarget {
                    id: id.clone(),
                    pod_ip: sandbox_ip(action),
                };
                match tokio::time::timeout(grace, s.runtime.probe(&target, action, grace)).await {
                    Ok(outcome) if outcome.success => None,
                    Ok(outcome) => Some(outcome.output),
                    Err(_) => Some(format!("timed out after {}s", grace.as_secs())),
                }
            }
        };
        if let Some(msg) = failure {
            s.events.record(
                pod,
                "Warning",
                "FailedPreStopHook",
                format!("PreStopHook failed: {msg}"),
            );
        }
    }
    let left = grace_after_hook(grace, started.elapsed());
    s.runtime.stop_container(id, left).await
}
// ANCHOR_END: kill_container

/// The address an httpGet hook goes to (the probe target's pod IP).
fn sandbox_ip(action: &ProbeAction) -> std::net::Ipv4Addr {
    match action {
        ProbeAction::HttpGet { host, .. } | ProbeAction::TcpSocket { host, .. } => {
            host.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST)
        }
        ProbeAction::Exec { .. } => std::net::Ipv4Addr::LOCALHOST,
    }
}

/// Pull, build the environment, create and start one container, and record
/// how it went.
pub(super) async fn start_container<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    state: &mut PodRuntimeState,
    name: &str,
    attempt: u32,
) {
    let Some(c) = find_container(pod, name) else {
        return;
    };
    let Some(sandbox) = state.sandbox.clone() else {
        return;
    };
    // The Services that exist as the container starts (for its Service
    // environment variables), read before the pull so that what follows
    // keeps its pace.
    let services = list_services(s, pod).await;
    let image = c.image.clone().unwrap_or_default();
    // `imagePullPolicy` (the API server defaults it: `IfNotPresent` for a
    // tagged image, `Always` for `:latest`): an image already on the node is
    // not pulled again — which is why a crash-looping container's restarts
    // say "already present on machine" instead of pulling each time.
    let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
    let present = s.images.lock().unwrap().get(&image).cloned();
    let pulled = match present.filter(|_| policy != "Always") {
        Some(r) => {
            s.events.record(
                pod,
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            Ok(r)
        }
        None => {
            s.events.record(
                pod,
                "Normal",
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
            let pulled = s.runtime.pull_image(&image, Some(&sandbox.config)).await;
            if let Ok(r) = &pulled {
                s.events.record(
                    pod,
                    "Normal",
                    "Pulled",
                    format!("Successfully pulled image \"{image}\""),
                );
                s.images.lock().unwrap().insert(image.clone(), r.clone());
            }
            pulled
        }
    };
    let image_ref = match pulled {
        Ok(r) => r,
        Err(e) => {
            s.events.record(
                pod,
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {e}"),
            );
            s.events.record(
                pod,
                "Warning",
                "Failed",
                format!("Error: {}", reasons::ERR_IMAGE_PULL),
            );
            state.record_pull_failure(name, &image, &e.message, s.clock.now());
            return;
        }
    };
    let env = match container_env(s, pod, c, &sandbox.ip.to_string(), &services).await {
        Ok(env) => env,
        Err(msg) => {
            s.events
                .record(pod, "Warning", "Failed", format!("Error: {msg}"));
            state.record_start_failure(
                name,
                reasons::CREATE_CONTAINER_CONFIG_ERROR,
                &msg,
                s.clock.now(),
            );
            return;
        }
    };
    let config = ContainerConfig {
        // `$(VAR)` in command and args is the kubelet's to expand, from the
        // environment it has just built: the runtime runs them as given.
        container: super::expansion::expand_command_and_args(c, &env),
        attempt,
        image: image_ref,
        env,
    };
    let started = match s.runtime.start_container(&sandbox, &config).await {
        Ok(id) => s.runtime.container_status(&id).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(status) => {
            s.events.record(
                pod,
                "Normal",
                "Created",
                format!("Created container: {name}"),
            );
            s.events.record(
                pod,
                "Normal",
                "Started",
                format!("Started container {name}"),
            );
            for id in state.record_started(&status) {
                let _ = s.runtime.remove_container(&id).await;
            }
        }
        Err(e) => {
            s.events
                .record(pod, "Warning", "Failed", format!("Error: {e}"));
            state.record_start_failure(
                name,
                reasons::CREATE_CONTAINER_ERROR,
                &e.to_string(),
                s.clock.now(),
            );
        }
    }
}

/// The container's environment: fetch the ConfigMaps and Secrets it
/// references (through the API, as the kubelet does), then resolve.
pub(super) async fn container_env<R: Runtime>(
    s: &Shared<R>,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    services: &[Service],
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cm_names, secret_names) = referenced_objects(c);
    let mut configmaps = BTreeMap::new();
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), ns);
    for n in cm_names {
        if let Ok(Some(cm)) = cms.get_opt(&n).await {
            configmaps.insert(n, cm);
        }
    }
    let mut secrets = BTreeMap::new();
    let sec: Api<Secret> = Api::namespaced(s.client.clone(), ns);
    for n in secret_names {
        if let Ok(Some(secret)) = sec.get_opt(&n).await {
            secrets.insert(n, secret);
        }
    }
    // The downward API's status.podIP and status.hostIP: the kubelet knows
    // them before it has written them.
    let mut with_ips = pod.clone();
    let status = with_ips.status.get_or_insert_with(Default::default);
    status.pod_ip = Some(pod_ip.to_string());
    status.host_ip = Some(s.config.host_ip.clone());
    let mut env = resolve_env(c, &configmaps, &secrets, &with_ips).map_err(|e| e.to_string())?;
    merge_service_env(&mut env, service_env(pod, services));
    Ok(env)
}

/// The Services a container's environment may name, read through the API:
/// the pod's namespace, and `default` for the `kubernetes` Service. A failed
/// list only means no Service variables (upstream's lister, when empty).
async fn list_services<R: Runtime>(s: &Shared<R>, pod: &Pod) -> Vec<Service> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut services = Vec::new();
    for n in if ns == "default" {
        vec![ns]
    } else {
        vec![ns, "default"]
    } {
        let api: Api<Service> = Api::namespaced(s.client.clone(), n);
        if let Ok(list) = api.list(&Default::default()).await {
            services.extend(list.items);
        }
    }
    services
}
