//! What the kubelet knows about one pod: [`PodRuntimeState`].
//!
//! Two kinds of knowledge, kept side by side as upstream keeps them side by
//! side in different managers:
//!
//! * what the **runtime** reports: the sandbox and its IP, and for each
//!   container its current and previous instance (running, or exited with a
//!   code), from [`PodRuntimeState::observe`] (the "PLEG relist");
//! * the kubelet's own **memory**: the last reason a container could not
//!   start (`reasonCache`: `ErrImagePull`, `CrashLoopBackOff`, …), the
//!   crash-loop and image-pull backoff, probe results, stops in flight.
//!
//! [`super::sync_pod`] only reads this. The plumbing writes it with the
//! `record_*` methods: after each decision ([`PodRuntimeState::record_decision`])
//! and with the result of each action it carried out.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::actions::{Action, KillReason, PodSyncDecision};
use super::backoff::Backoff;
use super::probe::{ProbeKind, ProbeTiming, ProbeTracker};
use super::runtime::{ContainerId, ContainerStatus, ImageRef, RuntimeState, SandboxInfo};

/// The waiting reasons the kubelet itself sets.
pub mod reasons {
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    pub const POD_INITIALIZING: &str = "PodInitializing";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
}

/// One run of a container (one attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInstance {
    pub id: ContainerId,
    /// 0 for the first run, then +1 per restart: the `restartCount`.
    pub attempt: u32,
    pub image: ImageRef,
    pub started_at: Timestamp,
    pub state: RuntimeState,
    /// The kubelet has asked the runtime to stop it, and why; do not ask
    /// again.
    pub killing: Option<KillReason>,
}

impl ContainerInstance {
    pub fn from_status(s: &ContainerStatus) -> Self {
        ContainerInstance {
            id: s.id.clone(),
            attempt: s.attempt,
            image: s.image.clone(),
            started_at: s.started_at,
            state: s.state.clone(),
            killing: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.state == RuntimeState::Running
    }
}

/// A reason and message for a container that is not running
/// (`ContainerStateWaiting`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
    /// When the failed start (or backoff decision) happened.
    pub at: Timestamp,
}

/// Everything about one container (by name) of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerRecord {
    pub current: Option<ContainerInstance>,
    /// The instance before `current`: `lastState`, and `kubectl logs
    /// --previous`.
    pub previous: Option<ContainerInstance>,
    /// Why it is not running, if the kubelet knows (`reasonCache`).
    pub waiting: Option<Waiting>,
    /// Probe trackers of the *current* instance.
    pub probes: BTreeMap<ProbeKind, ProbeTracker>,
    /// Probes sent and not yet answered.
    pub probes_in_flight: Vec<ProbeKind>,
}

/// What the kubelet knows about one pod on its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRuntimeState {
    pub sandbox: Option<SandboxInfo>,
    /// The node's address, for `status.hostIP`.
    pub host_ip: Option<String>,
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Crash-loop backoff, keyed by container name.
    pub crash_backoff: Backoff,
    /// Image-pull backoff, keyed by image.
    pub image_backoff: Backoff,
    /// When the kubelet began to stop the pod (deleted, or completed), and
    /// why: every container must be stopped within one grace period
    /// counted from here, also the sidecars stopped last.
    pub termination_started: Option<(KillReason, Timestamp)>,
}

impl PodRuntimeState {
    pub fn new(host_ip: impl Into<String>) -> Self {
        PodRuntimeState {
            host_ip: Some(host_ip.into()),
            ..Default::default()
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.get(name)
    }

    pub fn current(&self, name: &str) -> Option<&ContainerInstance> {
        self.containers.get(name).and_then(|r| r.current.as_ref())
    }

    /// Is any container instance still running?
    pub fn any_running(&self) -> bool {
        self.containers
            .values()
            .any(|r| r.current.as_ref().is_some_and(|c| c.is_running()))
    }

    /// Take in what the runtime reports for this pod's containers (one
    /// status per instance). The newest attempt of each name becomes
    /// `current`, the one before `previous`; the kubelet's memory about an
    /// instance it already knew is kept. Returns the instances older than
    /// `previous`, which the caller should remove from the runtime (the
    /// kubelet's container garbage collection keeps one dead instance).
    pub fn observe(&mut self, statuses: &[ContainerStatus]) -> Vec<ContainerId> {
        let mut by_name: BTreeMap<&str, Vec<&ContainerStatus>> = BTreeMap::new();
        for s in statuses {
            by_name.entry(&s.name).or_default().push(s);
        }
        let mut garbage = Vec::new();
        for (name, mut list) in by_name {
            list.sort_by_key(|s| s.attempt);
            let rec = self.containers.entry(name.to_string()).or_default();
            let old_current = rec.current.as_ref().map(|c| c.id.clone());
            let mut known: Vec<ContainerInstance> = rec
                .previous
                .take()
                .into_iter()
                .chain(rec.current.take())
                .collect();
            for s in list {
                match known.iter_mut().find(|k| k.id == s.id) {
                    Some(k) => k.state = s.state.clone(),
                    None => known.push(ContainerInstance::from_status(s)),
                }
            }
            known.sort_by_key(|k| k.attempt);
            let current = known.pop();
            let previous = known.pop();
            garbage.extend(known.into_iter().map(|k| k.id));
            if current.as_ref().map(|c| c.id.clone()) != old_current {
                // A new instance: fresh probes (a restarted container is
                // unready until probed again).
                rec.probes.clear();
                rec.probes_in_flight.clear();
            }
            rec.current = current;
            rec.previous = previous;
        }
        garbage
    }

    /// The kubelet-memory part of a decision: the backoff waits it reports
    /// (`CrashLoopBackOff`, `ImagePullBackOff` go into the reason cache), the
    /// crash-loop backoff step of every restart, stops and probes in flight.
    pub fn record_decision(&mut self, decision: &PodSyncDecision, now: Timestamp) {
        for action in &decision.actions {
            match action {
                Action::BackOff {
                    container,
                    reason,
                    message,
                    ..
                } => {
                    self.containers
                        .entry(container.clone())
                        .or_default()
                        .waiting = Some(Waiting {
                        reason: reason.to_string(),
                        message: message.clone(),
                        at: now,
                    });
                }
                Action::StartContainer {
                    container,
                    restart_after_exit_at: Some(finished_at),
                    ..
                } => {
                    self.crash_backoff.next(container, *finished_at, now);
                }
                Action::KillContainer {
                    container,
                    id,
                    reason,
                    ..
                } => {
                    if let Some(c) = self
                        .containers
                        .get_mut(container)
                        .and_then(|r| r.current.as_mut())
                        .filter(|c| &c.id == id)
                    {
                        c.killing = Some(*reason);
                    }
                    if matches!(reason, KillReason::PodDeleted | KillReason::PodCompleted)
                        && self.termination_started.is_none_or(|(r, _)| r != *reason)
                    {
                        self.termination_started = Some((*reason, now));
                    }
                }
                Action::RunProbe {
                    container, kind, ..
                } => {
                    if let Some(r) = self.containers.get_mut(container) {
                        r.probes_in_flight.push(*kind);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn record_sandbox(&mut self, sandbox: SandboxInfo) {
        self.sandbox = Some(sandbox);
    }

    pub fn record_sandbox_removed(&mut self) {
        self.sandbox = None;
    }

    /// A container was started: clear its waiting reason and take in its
    /// status. Returns instances to remove (see [`Self::observe`]).
    pub fn record_started(&mut self, status: &ContainerStatus) -> Vec<ContainerId> {
        self.containers
            .entry(status.name.clone())
            .or_default()
            .waiting = None;
        self.observe(std::slice::from_ref(status))
    }

    /// Pulling `image` for `container` failed: `ErrImagePull`, and one more
    /// step of that image's backoff.
    pub fn record_pull_failure(
        &mut self,
        container: &str,
        image: &str,
        message: &str,
        now: Timestamp,
    ) {
        self.image_backoff.next(image, now, now);
        self.record_start_failure(container, reasons::ERR_IMAGE_PULL, message, now);
    }

    /// Starting `container` failed for another reason
    /// (`CreateContainerConfigError` when its environment could not be
    /// built, `CreateContainerError` when the runtime refused).
    pub fn record_start_failure(
        &mut self,
        container: &str,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) {
        self.containers
            .entry(container.to_string())
            .or_default()
            .waiting = Some(Waiting {
            reason: reason.to_string(),
            message: message.to_string(),
            at: now,
        });
    }

    /// A probe answered. Ignored if the instance has changed meanwhile.
    pub fn record_probe(
        &mut self,
        container: &str,
        id: &ContainerId,
        kind: ProbeKind,
        success: bool,
        timing: &ProbeTiming,
        now: Timestamp,
    ) {
        let Some(rec) = self.containers.get_mut(container) else {
            return;
        };
        rec.probes_in_flight.retain(|k| *k != kind);
        if rec.current.as_ref().map(|c| &c.id) != Some(id) {
            return;
        }
        rec.probes
            .entry(kind)
            .or_insert_with(|| ProbeTracker::new(kind))
            .record(success, timing, now);
    }
}
