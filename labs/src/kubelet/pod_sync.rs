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
//! Left out: ephemeral containers, lifecycle hooks (`postStart`,
//! `preStop`), restarting a container whose spec (image) was changed in
//! place, termination ordering of sidecars (all containers get the same
//! grace period at once), gRPC probes, tearing down the sandbox of a
//! finished pod, pod-level resources and in-place resize, static pods.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::backoff::{add, go_duration};
use super::probe::{ProbeKind, ProbeResult, ProbeTiming, ProbeTracker};
use super::qos::qos_class;
use super::runtime::{ContainerId, RuntimeState};
use super::state::{ContainerInstance, ContainerRecord, PodRuntimeState, reasons};

/// Why the kubelet stops a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The liveness probe failed `failureThreshold` times.
    LivenessProbe,
    /// The startup probe failed `failureThreshold` times.
    StartupProbe,
    /// The pod is being deleted.
    PodDeleted,
    /// A sidecar, once every regular container has finished for good.
    PodCompleted,
}

// ANCHOR: actions
/// One thing for the plumbing to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `RunPodSandbox`: give the pod its IP. The starts that follow in the
    /// same decision need it.
    CreateSandbox,
    /// Pull the image, resolve the environment, then create and start the
    /// container (`PullImage`, `CreateContainer`, `StartContainer`).
    StartContainer {
        container: String,
        init: bool,
        /// `restartCount` of the new instance.
        attempt: u32,
        /// For a restart: when the previous instance exited. The kubelet
        /// steps the crash-loop backoff with it
        /// ([`PodRuntimeState::record_decision`]).
        restart_after_exit_at: Option<Timestamp>,
    },
    /// `StopContainer`: SIGTERM, wait `grace_period`, SIGKILL.
    KillContainer {
        container: String,
        id: ContainerId,
        grace_period: Duration,
        reason: KillReason,
        /// The `Killing` event's message.
        message: String,
    },
    /// Run one probe against this instance and `record_probe` the result.
    RunProbe {
        container: String,
        id: ContainerId,
        kind: ProbeKind,
    },
    /// Do not start the container before `until`; report `reason`.
    BackOff {
        container: String,
        reason: &'static str,
        /// The waiting container's message (`back-off 20s restarting
        /// failed container=app pod=...`).
        message: String,
        /// The `BackOff` event's message. Upstream's is the same on every
        /// sync of one back-off (`Back-off restarting failed container app
        /// in pod ...`), so repeats add up as one Event's `count` (x5).
        event: String,
        until: Timestamp,
    },
    /// `StopPodSandbox` + `RemovePodSandbox`: every container of a deleted
    /// pod has stopped.
    RemoveSandbox,
    /// Nothing of the deleted pod runs any more: the API object can go
    /// (the plumbing sends DELETE with `gracePeriodSeconds: 0`).
    DeletePod,
}

/// What one sync decided.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSyncDecision {
    pub actions: Vec<Action>,
    /// The status to write (`PUT pods/{name}/status`) if it changed.
    pub status: PodStatus,
    /// Sync again at this time even if nothing happens: a backoff ends, a
    /// probe is due, a failed start is retried.
    pub next_sync_at: Option<Timestamp>,
}
// ANCHOR_END: actions

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

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// `name_namespace(uid)`, how the kubelet names a pod in messages.
fn pod_ref(pod: &Pod) -> String {
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
fn is_started(c: &Container, rec: Option<&ContainerRecord>) -> bool {
    let Some(rec) = rec else { return false };
    if !rec.current.as_ref().is_some_and(|i| i.is_running()) {
        return false;
    }
    c.startup_probe.is_none() || probe_result(rec, ProbeKind::Startup) == ProbeResult::Success
}

fn probe_result(rec: &ContainerRecord, kind: ProbeKind) -> ProbeResult {
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
        // Deleted: stop everything, then hand the object back for deletion.
        plan.kill_all(KillReason::PodDeleted);
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
        plan.kill_all(KillReason::PodCompleted);
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

    // Every regular container has finished for good: stop the sidecars.
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
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
        {
            plan.kill(c, KillReason::PodCompleted);
        }
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

    fn kill_all(&mut self, reason: KillReason) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            self.kill(c, reason);
        }
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
        self.actions.push(Action::KillContainer {
            container: c.name.clone(),
            id: inst.id.clone(),
            grace_period: grace_period(self.pod, c, reason),
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

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated(inst: &ContainerInstance) -> Option<ContainerState> {
    let RuntimeState::Exited {
        exit_code,
        finished_at,
        reason,
    } = &inst.state
    else {
        return None;
    };
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: *exit_code,
            reason: Some(reason.clone().unwrap_or_else(|| {
                if *exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string()
            })),
            started_at: Some(time(inst.started_at)),
            finished_at: Some(time(*finished_at)),
            container_id: Some(inst.id.0.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn waiting_state(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

// ANCHOR: container_status
/// One container's status (`convertToAPIContainerStatuses` plus the probe
/// manager's `ready`/`started`).
fn container_status(
    pod: &Pod,
    c: &Container,
    state: &PodRuntimeState,
    init: bool,
) -> ContainerStatus {
    let rec = state.container(&c.name);
    let current = rec.and_then(|r| r.current.as_ref());
    let previous = rec.and_then(|r| r.previous.as_ref());
    let cached = rec.and_then(|r| r.waiting.as_ref());
    let has_init = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.init_containers.as_ref().is_some_and(|i| !i.is_empty()));
    let default_reason = if has_init {
        reasons::POD_INITIALIZING
    } else {
        reasons::CONTAINER_CREATING
    };
    let sidecar = init && is_sidecar(c);

    let mut s = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        restart_count: current.map_or(0, |i| i.attempt as i32),
        ..Default::default()
    };
    match current {
        None => {
            let (reason, message) = match cached {
                Some(w) => (w.reason.as_str(), Some(w.message.as_str())),
                None => (default_reason, None),
            };
            s.state = Some(waiting_state(reason, message));
            s.started = Some(false);
        }
        Some(inst) => {
            s.image_id = inst.image.image_id.clone();
            s.container_id = Some(inst.id.0.clone());
            s.last_state = previous.and_then(terminated);
            match &inst.state {
                RuntimeState::Running => {
                    s.state = Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(time(inst.started_at)),
                        }),
                        ..Default::default()
                    });
                    let started = is_started(c, rec);
                    s.started = Some(started);
                    // An init container is ready once it has succeeded, not
                    // while it runs.
                    s.ready = (!init || sidecar)
                        && started
                        && (c.readiness_probe.is_none()
                            || probe_result(rec.expect("has instance"), ProbeKind::Readiness)
                                == ProbeResult::Success);
                }
                RuntimeState::Exited { exit_code, .. } => {
                    s.started = Some(false);
                    s.ready = init && !sidecar && *exit_code == 0;
                    s.state = terminated(inst);
                    // Going to be restarted and the kubelet knows why it is
                    // not yet: waiting, with the exit as lastState.
                    if let Some(w) = cached
                        && should_restart(pod, sidecar, *exit_code)
                    {
                        s.last_state = terminated(inst);
                        s.state = Some(waiting_state(&w.reason, Some(&w.message)));
                    }
                }
            }
        }
    }
    if s.last_state.is_none() {
        s.last_state = Some(ContainerState::default());
    }
    s
}
// ANCHOR_END: container_status

fn has_any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        statuses.iter().find(|s| s.name == c.name).is_some_and(|s| {
            let st = s.state.as_ref();
            st.is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                || s.last_state
                    .as_ref()
                    .is_some_and(|l| l.terminated.is_some())
        })
    })
}

// ANCHOR: phase
/// The pod's phase from its containers' statuses (`getPhase`).
fn pod_phase(
    pod: &Pod,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let policy = restart_policy(pod);
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let state_of = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_terminated =
        |s: &ContainerStatus| s.last_state.as_ref().and_then(|l| l.terminated.clone());

    let (mut pending_init, mut failed_init) = (0, 0);
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init, &c.name) else {
            if is_sidecar(c) {
                unknown += 1;
            }
            pending_init += 1;
            continue;
        };
        let st = state_of(&s);
        if is_sidecar(c) {
            // Sidecars count as running containers, but their exits do not
            // decide the phase.
            if st.running.is_some() {
                if s.started != Some(true) {
                    pending_init += 1;
                }
                running += 1;
            } else if st.waiting.is_some() && last_terminated(&s).is_none() {
                pending_init += 1;
                waiting += 1;
            }
            continue;
        }
        if st.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(&s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(regular, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = state_of(&s);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(&s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if (pending_init > 0 && !has_any_regular_container_started(spec, regular)) || waiting > 0 {
        return "Pending"; // one or more containers has not been started
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return match policy {
            "Always" => "Running", // restarting
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running", // OnFailure, restarting the failed ones
        };
    }
    "Pending"
}
// ANCHOR_END: phase

/// A condition, keeping `lastTransitionTime` from the old status when its
/// status did not change.
fn condition(
    old: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

// ANCHOR: conditions
/// The kubelet's conditions, in the order `kubectl describe` shows them.
fn pod_conditions(
    pod: &Pod,
    state: &PodRuntimeState,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    phase: &str,
    now: Timestamp,
) -> Vec<PodCondition> {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let terminal_reason = if phase == "Succeeded" {
        "PodCompleted"
    } else {
        "PodFailed"
    };

    // PodReadyToStartContainers: the sandbox (network) is up.
    let sandbox = condition(
        &old,
        "PodReadyToStartContainers",
        state.sandbox.is_some(),
        None,
        None,
        now,
    );

    // Initialized: every init container has succeeded, every sidecar started.
    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let done = find(init, &c.name).is_some_and(|s| {
            if is_sidecar(c) {
                s.started == Some(true)
            } else {
                s.ready
            }
        });
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    let initialized = if phase == "Succeeded" {
        condition(&old, "Initialized", true, Some("PodCompleted"), None, now)
    } else if incomplete.is_empty() || has_any_regular_container_started(spec, regular) {
        condition(&old, "Initialized", true, None, None, now)
    } else {
        condition(
            &old,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            )),
            now,
        )
    };

    // ContainersReady: every app container (and sidecar) is ready.
    let mut unready = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
    {
        if !find(init, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    for c in &spec.containers {
        if !find(regular, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    let containers_ready = if terminal {
        condition(
            &old,
            "ContainersReady",
            false,
            Some(terminal_reason),
            None,
            now,
        )
    } else if unready.is_empty() {
        condition(&old, "ContainersReady", true, None, None, now)
    } else {
        condition(
            &old,
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
            now,
        )
    };

    // Ready: ContainersReady, and every readiness gate's condition True.
    // (Gates are conditions other controllers set, e.g. a load balancer.)
    let ready = if containers_ready.status != "True" {
        condition(
            &old,
            "Ready",
            false,
            containers_ready.reason.as_deref(),
            containers_ready.message.clone(),
            now,
        )
    } else {
        let mut gate_messages = Vec::new();
        for gate in spec.readiness_gates.iter().flatten() {
            match old.iter().find(|c| c.type_ == gate.condition_type) {
                None => gate_messages.push(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => gate_messages.push(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => {}
            }
        }
        if gate_messages.is_empty() {
            condition(&old, "Ready", true, None, None, now)
        } else {
            condition(
                &old,
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(gate_messages.join(", ")),
                now,
            )
        }
    };

    // PodScheduled is the scheduler's; keep it, or say True (we run here).
    let scheduled = old
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&old, "PodScheduled", true, None, None, now));

    vec![sandbox, initialized, ready, containers_ready, scheduled]
}
// ANCHOR_END: conditions

const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// The pod's status as the kubelet reports it (`generateAPIPodStatus`).
/// Fields the kubelet does not own (other controllers' conditions,
/// `nominatedNodeName`, …) are kept from the old status.
pub fn generate_pod_status(pod: &Pod, state: &PodRuntimeState, now: Timestamp) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old = pod.status.clone().unwrap_or_default();

    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(pod, c, state, true))
        .collect();
    let mut regular: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(pod, c, state, false))
        .collect();
    regular.sort_by(|a, b| a.name.cmp(&b.name)); // upstream sorts by name

    let pod_is_terminal = pod.metadata.deletion_timestamp.is_some() && !state.any_running();
    let mut phase = pod_phase(pod, &init, &regular, pod_is_terminal);
    // A terminal phase is final.
    if let Some(p @ ("Succeeded" | "Failed")) = old.phase.as_deref() {
        phase = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }

    let mut conditions = pod_conditions(pod, state, &init, &regular, phase, now);
    conditions.extend(
        old.conditions
            .iter()
            .flatten()
            .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );

    let pod_ip = state
        .sandbox
        .as_ref()
        .map(|s| s.ip.to_string())
        .or(old.pod_ip.clone());
    let host_ip = state.host_ip.clone().or(old.host_ip.clone());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(time(now))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(regular),
        qos_class: Some(qos_class(pod).to_string()),
        ..old
    }
}

/// The container statuses by name, handy for tests and the lab's printing.
pub fn statuses_by_name(status: &PodStatus) -> BTreeMap<String, ContainerStatus> {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|s| (s.name.clone(), s.clone()))
        .collect()
}
