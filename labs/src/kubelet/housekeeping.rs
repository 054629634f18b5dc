//! Housekeeping: what the runtime runs for pods that no longer exist.
//!
//! A kubelet that was down while its pods were deleted comes back to a
//! runtime still running them, and no pod worker will ever be told to stop
//! them: their pods are not in the API any more. Upstream's
//! `HandlePodCleanups` kills such "orphaned" pods and the container garbage
//! collector removes what is left. We do both once, right after the
//! kubelet's first full list of its pods.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::kubelet::Shared;
use super::runtime::{Runtime, RuntimeState};

/// How long an orphan's containers get to exit after SIGTERM. Its pod's
/// own grace period is not known any more (the pod object is gone).
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// Stops and removes every container and sandbox whose pod UID is not in
/// `known` (the pods bound to this node, and the ones with a worker).
pub(super) async fn remove_orphaned_pods<R: Runtime>(s: Arc<Shared<R>>, known: HashSet<String>) {
    // A pod that arrived since the list has a worker (and a bell) by now.
    let orphan = |uid: &str| !known.contains(uid) && !s.bells.lock().unwrap().contains_key(uid);
    let containers = s.runtime.list_containers().await;
    for c in containers.iter().filter(|c| orphan(&c.pod_uid)) {
        if c.state == RuntimeState::Running {
            let _ = s.runtime.stop_container(&c.id, ORPHAN_GRACE).await;
        }
        let _ = s.runtime.remove_container(&c.id).await;
    }
    for sandbox in s.runtime.list_pod_sandboxes().await {
        if orphan(&sandbox.config.uid) {
            tracing::info!(
                pod = %format!("{}/{}", sandbox.config.namespace, sandbox.config.name),
                "removing the sandbox of a pod that no longer exists"
            );
            let _ = s.runtime.remove_pod_sandbox(&sandbox.id).await;
        }
    }
}
