//! What one sync of a pod decides: the actions for the plumbing to carry
//! out, in order, and the status to write. The vocabulary shared by the
//! decision core ([`super::pod_sync`]), the kubelet's memory of a pod
//! ([`super::state`]) and the pod workers that carry the actions out.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::jiff::Timestamp;

use super::lifecycle::PreStop;
use super::probe::ProbeKind;
use super::runtime::ContainerId;

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
    /// Run the preStop hook (if any), then `StopContainer`: SIGTERM, wait
    /// what is left of `grace_period`, SIGKILL. One action rather than a
    /// `RunPreStop` followed by a kill, because the hook's time is taken
    /// from the same grace period and the containers of one pod stop in
    /// parallel, each hook → SIGTERM → SIGKILL on its own clock
    /// ([`super::lifecycle`]).
    KillContainer {
        container: String,
        id: ContainerId,
        grace_period: Duration,
        /// The resolved `lifecycle.preStop` hook.
        pre_stop: Option<PreStop>,
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
