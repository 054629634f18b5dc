//! Pod and owner helpers every controller needs: who controls an object, is a
//! pod active, ready, available. Upstream has them in `controller_utils.go` and
//! `podutil`; they live here because the ReplicaSet and Deployment controllers,
//! the node lifecycle controller and the EndpointSlice controller all ask the
//! same questions, and must answer them the same way.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The ownerReference with `controller: true`, if any. A pod can have many
/// owners but at most one controller.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
}

/// Upstream's `IsPodActive`: not finished and not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's phase (`Pending`, `Running`, …), or "" before the kubelet wrote one.
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .unwrap_or_default()
}

/// A pod is ready when its `Ready` condition is `True`: all its containers
/// pass their readiness probes, so a Service may send it traffic.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

// ANCHOR: pod_available
/// A pod is available when it has been ready for *more than*
/// `min_ready_seconds` (upstream's `IsPodAvailable`). The comparison is
/// strict: a pod ready for exactly `min_ready_seconds` is not available yet.
/// minReadySeconds guards against pods that pass their probe and then crash:
/// a rollout only counts a pod once it has stayed ready for a while.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(ready) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    // No transition time means we cannot tell how long it has been ready.
    ready.last_transition_time.as_ref().is_some_and(|since| {
        since
            .0
            .checked_add(SignedDuration::from_secs(min_ready_seconds.into()))
            .is_ok_and(|available_at| available_at < now)
    })
}

/// The pod's `Ready` condition, if it has one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}
// ANCHOR_END: pod_available
