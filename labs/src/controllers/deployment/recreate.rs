//! The Recreate strategy (upstream `recreate.go`): stop everything, then
//! start the new version.
//!
//! For workloads that cannot run two versions side by side (a schema
//! migration, a single-writer volume). Scale every old ReplicaSet to zero,
//! wait until *no old pod is left running*, not even a terminating one, and
//! only then create the new ReplicaSet at full size. There is downtime by
//! design; `maxSurge` and `maxUnavailable` do not apply.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use super::{SyncError, Syncer, actual_replica_count, is_active, name, replicas};

/// Upstream `oldPodsRunning`: does any old ReplicaSet still count pods, or is
/// any pod of a non-new ReplicaSet still not finished? Pods belong to the
/// ReplicaSet named in their controller owner reference. A pod in phase
/// `Unknown` counts as running (its node may just be unreachable), and so
/// does a terminating pod: it may still be serving.
pub fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[&ReplicaSet],
    pods: &[Pod],
) -> bool {
    if actual_replica_count(old_rss) > 0 {
        return true;
    }
    let owner = |pod: &Pod| {
        pod.metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true) && r.kind == "ReplicaSet")
            .map(|r| (r.name.clone(), r.uid.clone()))
    };
    let is_new = |(owner_name, owner_uid): &(String, String)| {
        new_rs.is_some_and(|rs| match rs.metadata.uid.as_deref() {
            Some(uid) if !uid.is_empty() && !owner_uid.is_empty() => uid == owner_uid,
            _ => name(&rs.metadata) == owner_name,
        })
    };
    pods.iter().any(|pod| {
        let Some(owner) = owner(pod) else {
            return false;
        };
        if is_new(&owner) {
            return false;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        !matches!(phase, Some("Failed") | Some("Succeeded"))
    })
}

impl Syncer<'_> {
    /// Upstream `rolloutRecreate`.
    pub(super) fn rollout_recreate(&mut self) -> Result<(), SyncError> {
        // Don't create the new ReplicaSet yet: no new pod may start before the
        // old ones are gone.
        let (mut new, mut old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let mut all: Vec<usize> = old.iter().copied().chain(new).collect();
        let active_old: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| is_active(self.rs(i)))
            .collect();

        // Scale down old ReplicaSets.
        if self.scale_down_old_replica_sets_for_recreate(&active_old) {
            return self.sync_rollout_status(&all, new);
        }
        // Wait while old pods are still running.
        let new_rs = new.map(|i| self.rs(i));
        if old_pods_running(new_rs, &self.rs_list(&old), self.pods) {
            return self.sync_rollout_status(&all, new);
        }
        // Create the new ReplicaSet now, at full size.
        if new.is_none() {
            (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
            all = old.iter().copied().chain(new).collect();
        }
        let new_i = new.expect("created above");
        // Scale up the new ReplicaSet (a no-op right after its creation).
        self.scale_replica_set_and_record_event(new_i, replicas(&self.d));

        if super::status::deployment_complete(&self.d, self.status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, new)
    }

    /// Upstream `scaleDownOldReplicaSetsForRecreate`.
    fn scale_down_old_replica_sets_for_recreate(&mut self, old: &[usize]) -> bool {
        let mut scaled = false;
        for &i in old {
            scaled |= self.scale_replica_set_and_record_event(i, 0);
        }
        scaled
    }
}
