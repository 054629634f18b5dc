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
//!   and the downward API.
//! * [`runtime`]: the CRI-shaped [`runtime::Runtime`] trait with the
//!   `simulated` and `process` runtimes; [`logs`]: container logs.
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

pub mod agent;
pub mod backoff;
pub mod env;
pub mod lab;
pub mod logs;
pub mod pod_sync;
pub mod probe;
pub mod qos;
pub mod runtime;
pub mod state;

#[cfg(test)]
mod tests;

pub use env::{EnvError, referenced_objects, resolve_env};
pub use pod_sync::{Action, KillReason, PodSyncDecision, generate_pod_status, sync_pod};
pub use state::PodRuntimeState;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Wall-clock time from tokio's clock: `start` plus the tokio time elapsed
/// since the clock was made. Under `tokio::time::pause()` timestamps then
/// advance exactly with the paused clock, so timelines are deterministic.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Timestamp,
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads `start` now. Must be called inside a tokio runtime
    /// if time is paused.
    pub fn starting_at(start: Timestamp) -> Self {
        Clock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }

    /// The cluster's clock ([`crate::clock`]): the same readings as every
    /// other component's, on real or paused time. What a kubelet in a lab
    /// uses, so that the `Ready` times it writes agree with the timers of
    /// the controllers that read them (`minReadySeconds`).
    pub fn cluster() -> Self {
        Self::starting_at(crate::clock::now())
    }

    /// A clock that reads the real time now.
    pub fn system() -> Self {
        // (k8s-openapi's jiff is built without `std`, so no `Timestamp::now`.)
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = Timestamp::new(
            since_epoch.as_secs() as i64,
            since_epoch.subsec_nanos() as i32,
        )
        .expect("the present is a valid timestamp");
        Self::starting_at(now)
    }

    pub fn now(&self) -> Timestamp {
        self.at(tokio::time::Instant::now())
    }

    /// The timestamp of a tokio instant.
    pub fn at(&self, instant: tokio::time::Instant) -> Timestamp {
        let elapsed = instant.saturating_duration_since(self.origin);
        self.start
            .checked_add(SignedDuration::try_from(elapsed).expect("elapsed time fits"))
            .expect("timestamp in range")
    }
}
