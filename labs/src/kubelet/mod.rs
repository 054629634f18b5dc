//! The kubelet: the agent on every node that makes the pods bound to the node
//! actually run.
//!
//! The scheduler only writes a node name into the pod. The kubelet of that
//! node sees the pod (it watches pods with `spec.nodeName=<itself>`), asks
//! its **container runtime** to run the containers, watches them, restarts
//! them when they crash (more and more slowly: `CrashLoopBackOff`), probes
//! them, and writes what it sees back into the pod's status: the phase,
//! the conditions (`Ready`, …), each container's state and restart count,
//! the pod's IP. When the pod is deleted it stops the containers gracefully
//! (SIGTERM, a grace period, SIGKILL) and only then lets the object go.
//!
//! As with every component here, the module is a **pure decision core**
//! plus parts the plumbing drives:
//!
//! * [`sync_pod`] ([`pod_sync`]): pod + [`PodRuntimeState`] + now →
//!   actions and the status to write. No I/O, no clock, table-tested.
//! * [`backoff`]: Kubernetes' crash-loop and image-pull backoff
//!   (10 s doubling to 5 min, reset after 10 quiet minutes).
//! * [`probe`]: the probe state machine ([`probe::ProbeTracker`]) and the
//!   HTTP/TCP probers.
//! * [`env`](mod@env): a container's environment from values, ConfigMaps, Secrets
//!   and the downward API; [`expansion`]: `$(VAR)` in values, `command` and
//!   `args`.
//! * [`runtime`]: the CRI-shaped [`runtime::Runtime`] trait with the
//!   `simulated`, `process` and `docker` runtimes; [`logs`]: container logs.
//!
//! The loop that ties them together (one per pod, like upstream's pod
//! workers) is the plumbing's:
//!
//! ```text
//! loop {
//!     state.observe(runtime.list_containers())      // what runs (relist)
//!     let d = sync_pod(&pod, &state, now);           // decide
//!     write d.status if it changed                    // PUT pods/x/status
//!     state.record_decision(&d, now);                 // backoff, reasons
//!     for a in d.actions { carry it out; state.record_*(result) }
//!     wait for: a pod change, a container event, d.next_sync_at
//! }
//! ```

pub mod actions;
pub mod backoff;
pub mod env;
pub mod expansion;
mod housekeeping;
#[allow(clippy::module_inception)] // upstream's pkg/kubelet/kubelet.go
pub mod kubelet;
pub mod lifecycle;
pub mod logs;
pub mod node_status;
pub mod pod_status;
pub mod pod_sync;
pub mod pod_workers;
mod portforward;
pub mod probe;
pub mod qos;
pub mod runtime;
pub mod server;
pub mod service_env;
pub mod state;

#[cfg(test)]
mod tests;

pub use actions::{Action, KillReason, PodSyncDecision};
pub use env::{EnvError, referenced_objects, resolve_env};
pub use kubelet::{
    KUBELET_VERSION, Kubelet, KubeletConfig, NODE_LEASE_DURATION_SECONDS, NODE_LEASE_NAMESPACE,
};
pub use pod_status::generate_pod_status;
pub use pod_sync::sync_pod;
pub use state::PodRuntimeState;

pub use crate::machinery::clock::Clock;
