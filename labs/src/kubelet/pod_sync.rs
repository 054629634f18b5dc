//! `sync_pod`: the kubelet's decision core.
//!
//! Given a pod (what the API says should run) and the pod's
//! [`PodRuntimeState`] (what runs, plus the kubelet's memory), decide what
//! to do next and what to report. This is upstream's `SyncPod` /
//! `computePodActions` (`pkg/kubelet/kuberuntime/kuberuntime_manager.go`) and
//! `generateAPIPodStatus` (`pkg/kubelet/kubelet_pods.go`), as one pure
//! function: no runtime calls, no API calls, no clock.
//!
//! The status describes the pod **as the state stands when this sync
//! begins**, the actions what to do about it. Upstream works the same way:
//! the status is generated first, from the results of earlier syncs. So a
//! container that crashed is first reported `terminated` (reason `Error`),
//! and only after this sync has decided to wait does the next status say
//! `CrashLoopBackOff`; a failed pull shows `ErrImagePull`, then
//! `ImagePullBackOff` — the sequence `kubectl get pods -w` shows on a real
//! cluster.
//!
//! Native sidecars (init containers with `restartPolicy: Always`) follow
//! upstream: started in init order before the app, the next container only
//! once the sidecar has started (its startup probe passed); restarted
//! whenever they exit, whatever the pod's `restartPolicy`; counted in the
//! pod's readiness; stopped **after** the app — the regular containers get
//! SIGTERM first, the sidecars once all of those have exited, one at a time
//! in reverse order, in what is left of the same grace period
//! ([`Planner::terminate`]); and never keeping a finished pod alive (a
//! Job's pod completes when its app does).
//!
//! Left out: ephemeral containers, the `postStart` hook (`preStop` is in:
//! see [`super::lifecycle`]), restarting a container whose spec (image) was changed in
//! place, gRPC probes, tearing down the sandbox of a finished pod,
//! pod-level resources and in-place resize, static pods.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::jiff::Timestamp;

pub use super::actions::{Action, KillReason, PodSyncDecision};
use super::backoff::{add, go_duration};
use super::pod_status::*;
use super::probe::{ProbeKind, ProbeResult, ProbeTiming, ProbeTracker};
use super::runtime::RuntimeState;
use super::state::{ContainerInstance, ContainerRecord, PodRuntimeState, reasons};

/// `minimumGracePeriodInSeconds`: a container always gets 2 s to stop.
pub const MINIMUM_GRACE_PERIOD: Duration = Duration::from_secs(2);
/// The default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// How long after a failed start (other than a pull) the kubelet tries
/// again: the pod worker's requeue after an error (`backOffPeriod`).
pub const START_RETRY: Duration = Duration::from_secs(10);
/// While a container waits out a back-off, its pod is synced again at
/// least this often, so the status moves from the exit (`Error`,
/// `ErrImagePull`) to `CrashLoopBackOff` / `ImagePullBackOff` long before a
/// 5-minute wait ends, and each look adds one to the `BackOff` event's
/// count. (Upstream gets there through the pod worker's requeues and
/// resyncs; we use its `backOffPeriod`, 10 s, without jitter.)
pub const BACKOFF_RESYNC: Duration = Duration::from_secs(10);

/// A sidecar: an init container with `restartPolicy: Always` (native
/// sidecars, GA in 1.33). It starts in init order, then keeps running
/// alongside the app containers.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

// ANCHOR: restart_policy
/// Should a container that exited with `exit_code` run again
/// (`ShouldContainerBeRestarted`)? Never for a pod being deleted; sidecars
/// always; otherwise the pod's `restartPolicy`.
pub fn should_restart(pod: &Pod, sidecar: bool, exit_code: i32) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let policy = if sidecar {
        "Always"
    } else {
        restart_policy(pod)
    };
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true, // "Always", the default
    }
}
// ANCHOR_END: restart_policy

pub(super) fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// `name_namespace(uid)`, how the kubelet names a pod in messages.
pub(super) fn pod_ref(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or(""),
        m.namespace.as_deref().unwrap_or("default"),
        m.uid.as_deref().unwrap_or("")
    )
}

/// How long a container gets to stop (`setTerminationGracePeriod`): the
/// deletion's grace period, else a failing probe's own
/// `terminationGracePeriodSeconds`, else the pod's (default 30 s); never
/// less than 2 s.
pub fn grace_period(pod: &Pod, c: &Container, reason: KillReason) -> Duration {
    let secs = |s: i64| Duration::from_secs(s.max(0) as u64);
    let spec = pod.spec.as_ref();
    let probe_grace = match reason {
        KillReason::LivenessProbe => c
            .liveness_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds),
        KillReason::StartupProbe => c
            .startup_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds),
        _ => None,
    };
    let g = if let Some(d) = pod.metadata.deletion_grace_period_seconds {
        secs(d)
    } else if let Some(p) = probe_grace {
        secs(p)
    } else if let Some(t) = spec.and_then(|s| s.termination_grace_period_seconds) {
        secs(t)
    } else {
        DEFAULT_GRACE_PERIOD
    };
    g.max(MINIMUM_GRACE_PERIOD)
}

/// Has the container passed its startup probe (or has none) while running?
pub(super) fn is_started(c: &Container, rec: Option<&ContainerRecord>) -> bool {
    let Some(rec) = rec else { return false };
    if !rec.current.as_ref().is_some_and(|i| i.is_running()) {
        return false;
    }
    c.startup_probe.is_none() || probe_result(rec, ProbeKind::Startup) == ProbeResult::Success
}

pub(super) fn probe_result(rec: &ContainerRecord, kind: ProbeKind) -> ProbeResult {
    rec.probes
        .get(&kind)
        .map_or_else(|| ProbeTracker::new(kind).result, |t| t.result)
}

// ANCHOR: sync_pod
/// Decide what to do for `pod` on this node, and what its status is.
pub fn sync_pod(pod: &Pod, state: &PodRuntimeState, now: Timestamp) -> PodSyncDecision {
    let status = generate_pod_status(pod, state, now);
    let mut plan = Planner {
        pod,
        state,
        now,
        actions: Vec::new(),
        next_sync_at: None,
    };
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);

    if pod.metadata.deletion_timestamp.is_some() {
        // Deleted: stop everything (the app first, the sidecars after it),
        // then hand the object back for deletion.
        plan.terminate(KillReason::PodDeleted);
        if !state.any_running() {
            plan.actions.push(if state.sandbox.is_some() {
                Action::RemoveSandbox
            } else {
                Action::DeletePod
            });
        }
        return plan.finish(status);
    }
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        // A finished pod never runs again; stop what is left (sidecars).
        plan.terminate(KillReason::PodCompleted);
        return plan.finish(status);
    }
    if state.sandbox.is_none() {
        plan.actions.push(Action::CreateSandbox);
    }

    // Init containers, one at a time in order, unless a regular container
    // has already run (then the pod was initialized before).
    let initialized_before = spec.containers.iter().any(|c| {
        state
            .container(&c.name)
            .is_some_and(|r| r.current.is_some() || r.previous.is_some())
    });
    for c in spec.init_containers.iter().flatten() {
        if is_sidecar(c) {
            plan.sync_container(c, true, true);
            if !initialized_before && !is_started(c, state.container(&c.name)) {
                return plan.finish(status); // the next init container waits
            }
            continue;
        }
        if initialized_before {
            continue;
        }
        match state.current(&c.name).map(|i| &i.state) {
            Some(RuntimeState::Exited { exit_code: 0, .. }) => continue,
            _ => {
                plan.sync_container(c, true, false);
                return plan.finish(status);
            }
        }
    }

    for c in &spec.containers {
        plan.sync_container(c, false, false);
    }

    // Every regular container has finished for good: stop the sidecars
    // (upstream's `KillPod` when no container is left to keep), so that
    // they do not keep a completed Job's pod running for ever.
    let all_done = spec
        .containers
        .iter()
        .all(|c| match state.current(&c.name) {
            Some(ContainerInstance {
                state: RuntimeState::Exited { exit_code, .. },
                ..
            }) => !should_restart(pod, false, *exit_code),
            _ => false,
        });
    if all_done {
        plan.stop_sidecars(KillReason::PodCompleted);
        plan.actions.retain(|a| {
            !matches!(
                a,
                Action::StartContainer { init: true, .. } | Action::RunProbe { .. }
            )
        });
    }
    plan.finish(status)
}
// ANCHOR_END: sync_pod

struct Planner<'a> {
    pod: &'a Pod,
    state: &'a PodRuntimeState,
    now: Timestamp,
    actions: Vec<Action>,
    next_sync_at: Option<Timestamp>,
}

impl Planner<'_> {
    fn finish(self, status: PodStatus) -> PodSyncDecision {
        PodSyncDecision {
            actions: self.actions,
            status,
            next_sync_at: self.next_sync_at,
        }
    }

    fn wake_at(&mut self, t: Timestamp) {
        self.next_sync_at = Some(self.next_sync_at.map_or(t, |n| n.min(t)));
    }

    /// A back-off ends at `until`; look again before then, every
    /// [`BACKOFF_RESYNC`].
    fn wake_during_backoff(&mut self, until: Timestamp) {
        self.wake_at(until.min(add(self.now, BACKOFF_RESYNC)));
    }

    // ANCHOR: terminate
    /// Stop the pod's containers in upstream's order (`killContainers` with
    /// its termination ordering): every regular container (and an init
    /// container still running) at once; the sidecars only when none of
    /// those runs any more, so the app can use its proxy until it has
    /// exited.
    fn terminate(&mut self, reason: KillReason) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let mut main_running = false;
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| !is_sidecar(c))
            .chain(&spec.containers)
        {
            if self.state.current(&c.name).is_some_and(|i| i.is_running()) {
                main_running = true;
                self.kill(c, reason);
            }
        }
        if !main_running {
            self.stop_sidecars(reason);
        }
    }

    /// The sidecars, one at a time from the last defined to the first: a
    /// sidecar may serve those started after it (a proxy used by a log
    /// shipper), so it goes after them, as it came before them.
    fn stop_sidecars(&mut self, reason: KillReason) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .rev()
        {
            if self.state.current(&c.name).is_some_and(|i| i.is_running()) {
                self.kill(c, reason); // nothing if already being stopped
                return; // the ones before it wait for it
            }
        }
    }
    // ANCHOR_END: terminate

    /// The grace period for stopping `c`: for a pod being deleted or
    /// completed, what is left of the one period that began when the
    /// kubelet started to stop the pod (upstream subtracts the time a
    /// sidecar waited for its turn), never less than the 2-second minimum.
    fn grace(&self, c: &Container, reason: KillReason) -> Duration {
        let full = grace_period(self.pod, c, reason);
        let Some((started_for, started)) = self.state.termination_started else {
            return full;
        };
        if started_for != reason {
            return full;
        }
        let elapsed = self
            .now
            .duration_since(started)
            .try_into()
            .unwrap_or(Duration::ZERO);
        full.saturating_sub(elapsed).max(MINIMUM_GRACE_PERIOD)
    }

    fn kill(&mut self, c: &Container, reason: KillReason) {
        let Some(inst) = self.state.current(&c.name) else {
            return;
        };
        if !inst.is_running() || inst.killing.is_some() {
            return;
        }
        let message = match reason {
            KillReason::LivenessProbe => format!(
                "Container {} failed liveness probe, will be restarted",
                c.name
            ),
            KillReason::StartupProbe => format!(
                "Container {} failed startup probe, will be restarted",
                c.name
            ),
            KillReason::PodDeleted | KillReason::PodCompleted => {
                format!("Stopping container {}", c.name)
            }
        };
        // Every kill runs the preStop hook first: a deletion's, and a
        // failed probe's too, as upstream does.
        let pod_ip = self
            .state
            .sandbox
            .as_ref()
            .map(|s| s.ip.to_string())
            .unwrap_or_default();
        let pre_stop = super::lifecycle::pre_stop(c, &pod_ip);
        self.actions.push(Action::KillContainer {
            container: c.name.clone(),
            id: inst.id.clone(),
            grace_period: self.grace(c, reason),
            pre_stop,
            reason,
            message,
        });
    }

    // ANCHOR: sync_container
    /// One container: start it, restart it (after its backoff), kill it
    /// (failed probes), or probe it.
    fn sync_container(&mut self, c: &Container, init: bool, sidecar: bool) {
        let rec = self.state.container(&c.name);
        match rec.and_then(|r| r.current.as_ref()) {
            None => self.start(c, init, 0, None),
            Some(inst) if inst.is_running() => {
                if inst.killing.is_none() {
                    self.sync_probes(c, inst, rec.expect("has an instance"));
                }
            }
            Some(inst) => {
                let RuntimeState::Exited {
                    exit_code,
                    finished_at,
                    ..
                } = inst.state
                else {
                    return;
                };
                if !should_restart(self.pod, sidecar, exit_code) {
                    return;
                }
                let backoff = &self.state.crash_backoff;
                if backoff.is_in_backoff_since(&c.name, finished_at, self.now) {
                    let wait = backoff.get(&c.name).expect("in backoff");
                    let until = add(finished_at, wait);
                    self.actions.push(Action::BackOff {
                        container: c.name.clone(),
                        reason: reasons::CRASH_LOOP_BACK_OFF,
                        message: format!(
                            "back-off {} restarting failed container={} pod={}",
                            go_duration(wait),
                            c.name,
                            pod_ref(self.pod)
                        ),
                        event: format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            pod_ref(self.pod)
                        ),
                        until,
                    });
                    self.wake_during_backoff(until);
                    return;
                }
                self.start(c, init, inst.attempt + 1, Some(finished_at));
            }
        }
    }
    // ANCHOR_END: sync_container

    /// Start (or retry starting) a container, unless its last start failed
    /// too recently.
    fn start(
        &mut self,
        c: &Container,
        init: bool,
        attempt: u32,
        restart_after_exit_at: Option<Timestamp>,
    ) {
        let image = c.image.clone().unwrap_or_default();
        let waiting = self
            .state
            .container(&c.name)
            .and_then(|r| r.waiting.as_ref());
        match waiting.map(|w| w.reason.as_str()) {
            Some(reasons::ERR_IMAGE_PULL | reasons::IMAGE_PULL_BACK_OFF) => {
                let backoff = &self.state.image_backoff;
                if backoff.is_in_backoff_since_update(&image, self.now) {
                    let e = backoff.entry(&image).expect("in backoff");
                    let until = add(e.last_update, e.backoff);
                    let message = format!("Back-off pulling image \"{image}\"");
                    self.actions.push(Action::BackOff {
                        container: c.name.clone(),
                        reason: reasons::IMAGE_PULL_BACK_OFF,
                        message: message.clone(),
                        event: message,
                        until,
                    });
                    self.wake_during_backoff(until);
                    return;
                }
            }
            Some(reasons::CREATE_CONTAINER_CONFIG_ERROR | reasons::CREATE_CONTAINER_ERROR) => {
                let retry = add(waiting.expect("some").at, START_RETRY);
                if self.now < retry {
                    self.wake_at(retry);
                    return;
                }
            }
            _ => {}
        }
        self.actions.push(Action::StartContainer {
            container: c.name.clone(),
            init,
            attempt,
            restart_after_exit_at,
        });
    }

    // ANCHOR: sync_probes
    /// Probes of a running container. The startup probe gates the other two;
    /// a failed liveness or startup probe kills the container (the restart
    /// policy then decides whether it comes back).
    fn sync_probes(&mut self, c: &Container, inst: &ContainerInstance, rec: &ContainerRecord) {
        if c.startup_probe.is_some() {
            match probe_result(rec, ProbeKind::Startup) {
                ProbeResult::Failure => return self.kill(c, KillReason::StartupProbe),
                ProbeResult::Success => {}
                ProbeResult::Unknown => return self.maybe_probe(c, inst, rec, ProbeKind::Startup),
            }
        }
        if c.liveness_probe.is_some() {
            if probe_result(rec, ProbeKind::Liveness) == ProbeResult::Failure {
                return self.kill(c, KillReason::LivenessProbe);
            }
            self.maybe_probe(c, inst, rec, ProbeKind::Liveness);
        }
        if c.readiness_probe.is_some() {
            self.maybe_probe(c, inst, rec, ProbeKind::Readiness);
        }
    }
    // ANCHOR_END: sync_probes

    fn maybe_probe(
        &mut self,
        c: &Container,
        inst: &ContainerInstance,
        rec: &ContainerRecord,
        kind: ProbeKind,
    ) {
        if rec.probes_in_flight.contains(&kind) {
            return;
        }
        let Some(probe) = kind.probe(c) else { return };
        let timing = ProbeTiming::of(probe);
        let tracker = rec
            .probes
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| ProbeTracker::new(kind));
        let Some(due) = tracker.next_due(&timing, inst.started_at) else {
            return;
        };
        if due <= self.now {
            self.actions.push(Action::RunProbe {
                container: c.name.clone(),
                id: inst.id.clone(),
                kind,
            });
        } else {
            self.wake_at(due);
        }
    }
}

// ---------------------------------------------------------------------------
// The status.
