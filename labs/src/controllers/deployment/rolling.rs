//! The rolling update (upstream `rolling.go`).
//!
//! Each sync does **at most one scale phase**: scale the new ReplicaSet up,
//! *or* scale old ones down, then stop and write the status. The next phase
//! waits for the next sync, which comes when the ReplicaSet controller and the
//! kubelets have acted and their status changes wake the Deployment up. Two
//! limits steer every step:
//!
//! * **up**: all pods wanted (Σ `spec.replicas`) ≤ `replicas + maxSurge`;
//! * **down**: available pods ≥ `replicas − maxUnavailable`.
//!
//! Scaling down waits for *availability*, not just for pods to exist, which is
//! why a new version that never becomes ready stalls the rollout instead of
//! taking the old pods with it.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::fenceposts::{
    FencepostError, get_scaled_value_from_int_or_percent, max_unavailable, rolling_params,
};
use super::{
    RECREATE, ROLLING_UPDATE, SyncError, Syncer, available_replica_count, by_creation_timestamp,
    is_active, replica_count, replicas, rs_available, rs_replicas, strategy_type,
};

// ANCHOR: new_rs_new_replicas
/// Upstream `NewRSNewReplicas`: how big the new ReplicaSet may be now.
///
/// Rolling update: grow it by what the surge allows, counting the *wanted*
/// pods of every ReplicaSet (`spec.replicas`, not pods that exist: pods being
/// created count already), and never beyond `replicas`. Note that the surge is
/// computed directly, not through `resolve_fenceposts`, and a missing
/// `maxSurge` is an error here. Recreate: everything at once.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, FencepostError> {
    let desired = replicas(d);
    match strategy_type(d) {
        ROLLING_UPDATE => {
            let (max_surge, _) = rolling_params(d);
            let max_surge = get_scaled_value_from_int_or_percent(max_surge, desired, true)?;
            let current_pod_count = replica_count(all_rss);
            let max_total_pods = desired + max_surge;
            if current_pod_count >= max_total_pods {
                // Cannot scale up.
                return Ok(rs_replicas(new_rs));
            }
            let scale_up_count =
                (max_total_pods - current_pod_count).min(desired - rs_replicas(new_rs));
            Ok(rs_replicas(new_rs) + scale_up_count)
        }
        RECREATE => Ok(desired),
        // `sync_deployment` rejects other strategies before getting here.
        _ => Ok(0),
    }
}
// ANCHOR_END: new_rs_new_replicas

impl Syncer<'_> {
    /// Upstream `rolloutRolling`.
    pub(super) fn rollout_rolling(&mut self) -> Result<(), SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
        let new = new.expect("created if missing");
        let all: Vec<usize> = old.iter().copied().chain([new]).collect();

        // Scale up, if we can.
        if self.reconcile_new_replica_set(&all, new)? {
            return self.sync_rollout_status(&all, Some(new));
        }
        // Scale down, if we can.
        let active_old: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| is_active(self.rs(i)))
            .collect();
        if self.reconcile_old_replica_sets(&all, &active_old, new) {
            return self.sync_rollout_status(&all, Some(new));
        }
        // Nothing to scale. If the *stored* status says the rollout is
        // complete, trim the history.
        if super::status::deployment_complete(&self.d, self.status()) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(&all, Some(new))
    }

    /// Upstream `reconcileNewReplicaSet`: returns true if the new ReplicaSet
    /// was scaled (a creation is not a scale: the sync goes on to the
    /// scale-down phase).
    fn reconcile_new_replica_set(&mut self, all: &[usize], new: usize) -> Result<bool, SyncError> {
        let desired = replicas(&self.d);
        let current = rs_replicas(self.rs(new));
        if current == desired {
            return Ok(false);
        }
        if current > desired {
            // The Deployment was scaled down below the new ReplicaSet.
            return Ok(self.scale_replica_set_and_record_event(new, desired));
        }
        let new_replicas = new_rs_new_replicas(&self.d, &self.rs_list(all), self.rs(new))?;
        Ok(self.scale_replica_set_and_record_event(new, new_replicas))
    }

    // ANCHOR: reconcile_old_replica_sets
    /// Upstream `reconcileOldReplicaSets`: returns true if any old ReplicaSet
    /// was scaled down.
    fn reconcile_old_replica_sets(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        let old_pods_count = replica_count(&self.rs_list(old));
        if old_pods_count == 0 {
            // Can't scale down further.
            return false;
        }
        let all_pods_count = replica_count(&self.rs_list(all));
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_rs_unavailable = rs_replicas(self.rs(new)) - rs_available(self.rs(new));
        // Pods we may remove: everything wanted, minus what must stay
        // available, minus the new pods that are not available yet (they may
        // never become so; removing old pods for them would eat into
        // availability). Example (upstream's): 10 replicas, maxUnavailable 2,
        // maxSurge 3, new pods crash-looping: the total stays at 13 and
        // nothing more is scaled down until the rollout is fixed.
        let max_scaled_down = all_pods_count - min_available - new_rs_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy old pods first: removing them costs no availability, and
        // without this a broken old version could block the rollout forever.
        let Some(cleaned) = self.cleanup_unhealthy_replicas(old, max_scaled_down) else {
            // Upstream swallows this error and reports "nothing scaled".
            return false;
        };
        let old_and_new: Vec<usize> = old.iter().copied().chain([new]).collect();
        let Some(scaled) = self.scale_down_old_replica_sets_for_rolling_update(&old_and_new, old)
        else {
            return false;
        };
        cleaned + scaled > 0
    }

    /// Upstream `cleanupUnhealthyReplicas`: scale old ReplicaSets down by
    /// their *unavailable* pods, oldest ReplicaSet first, at most
    /// `max_cleanup` in all. This relies on the ReplicaSet controller deleting
    /// not-ready pods before ready ones. `None` when an old ReplicaSet has
    /// more available pods than it wants (it is being scaled down and the
    /// pods are not gone yet): upstream treats that as an error.
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max_cleanup: i32) -> Option<i32> {
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation_timestamp(self.rs(a), self.rs(b)));
        let mut total_scaled_down = 0;
        for i in old {
            if total_scaled_down >= max_cleanup {
                break;
            }
            let (spec, available) = (rs_replicas(self.rs(i)), rs_available(self.rs(i)));
            if spec == 0 || spec == available {
                // Nothing wanted, or no unhealthy replicas.
                continue;
            }
            let scaled_down_count = (max_cleanup - total_scaled_down).min(spec - available);
            let new_replicas_count = spec - scaled_down_count;
            if new_replicas_count > spec {
                return None;
            }
            self.scale_replica_set_and_record_event(i, new_replicas_count);
            total_scaled_down += scaled_down_count;
        }
        Some(total_scaled_down)
    }

    /// Upstream `scaleDownOldReplicaSetsForRollingUpdate`: remove as many old
    /// pods as availability allows, oldest ReplicaSet first.
    ///
    /// Available counts are the statuses read at the start of the sync: the
    /// cleanup above changed only `spec.replicas`, and it removed pods that
    /// were not available anyway.
    fn scale_down_old_replica_sets_for_rolling_update(
        &mut self,
        all: &[usize],
        old: &[usize],
    ) -> Option<i32> {
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let available_pod_count = available_replica_count(&self.rs_list(all));
        if available_pod_count <= min_available {
            // Cannot scale down.
            return Some(0);
        }
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation_timestamp(self.rs(a), self.rs(b)));
        let total_scale_down_count = available_pod_count - min_available;
        let mut total_scaled_down = 0;
        for i in old {
            if total_scaled_down >= total_scale_down_count {
                break;
            }
            let spec = rs_replicas(self.rs(i));
            if spec == 0 {
                continue;
            }
            let scale_down_count = spec.min(total_scale_down_count - total_scaled_down);
            let new_replicas_count = spec - scale_down_count;
            if new_replicas_count > spec {
                return None;
            }
            self.scale_replica_set_and_record_event(i, new_replicas_count);
            total_scaled_down += scale_down_count;
        }
        Some(total_scaled_down)
    }
    // ANCHOR_END: reconcile_old_replica_sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::tests::{deployment, rs_at};

    /// Upstream `TestNewRSNewReplicas`-style cases: (replicas, surge,
    /// old spec, new spec) -> new size.
    #[test]
    fn new_rs_new_replicas_table() {
        let cases = [
            (10, "25%", 10, 0, 3),
            (10, "25%", 8, 3, 5),
            (10, "25%", 8, 5, 5),
            (10, "25%", 3, 5, 10),
            (3, "1", 3, 0, 1),
            (10, "0", 10, 0, 0),
            (10, "0", 9, 0, 1),
            (5, "100%", 5, 0, 5),
            (1, "25%", 1, 0, 1),
            (0, "25%", 0, 0, 0),
        ];
        for (n, surge, old, new, want) in cases {
            let d = deployment(n, surge, "25%");
            let old_rs = rs_at("old", "app:v1", old, 0);
            let new_rs = rs_at("new", "app:v2", new, 1);
            let got = new_rs_new_replicas(&d, &[&old_rs, &new_rs], &new_rs).unwrap();
            assert_eq!(got, want, "{n} @ surge {surge}, ({new},{old})");
        }
        // A missing maxSurge is an error here (not 0 as in MaxSurge).
        let mut d = deployment(3, "1", "0");
        let strategy = d.spec.as_mut().unwrap().strategy.as_mut().unwrap();
        strategy.rolling_update.as_mut().unwrap().max_surge = None;
        let rs = rs_at("new", "app:v2", 0, 1);
        assert_eq!(
            new_rs_new_replicas(&d, &[&rs], &rs),
            Err(FencepostError::Nil)
        );
        // Recreate: all at once.
        d.spec.as_mut().unwrap().strategy.as_mut().unwrap().type_ = Some(RECREATE.into());
        assert_eq!(new_rs_new_replicas(&d, &[&rs], &rs), Ok(3));
    }
}
