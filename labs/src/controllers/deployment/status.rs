//! The Deployment's status and its conditions (upstream `sync.go
//! calculateStatus`, `progress.go`, and the condition helpers of
//! `deployment_util.go`).
//!
//! The counts (`replicas`, `updatedReplicas`, `readyReplicas`,
//! `availableReplicas`, ...) are sums over the ReplicaSets' statuses; they are
//! what `kubectl rollout status` watches. Two conditions explain them:
//!
//! * **Available**: are at least `replicas − maxUnavailable` pods available
//!   (`MinimumReplicasAvailable` / `MinimumReplicasUnavailable`)?
//! * **Progressing**: is the rollout moving? Its `lastUpdateTime` is refreshed
//!   on every sign of progress; when it is older than
//!   `progressDeadlineSeconds` the condition turns `False` with
//!   `ProgressDeadlineExceeded`. The controller does not roll back on its own:
//!   the condition is a signal for humans and tools (`kubectl rollout status`
//!   exits with an error).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::fenceposts::max_unavailable;
use super::{
    Syncer, actual_replica_count, available_replica_count, name, paused, ready_replica_count,
    replica_count, replicas, rs_status_replicas,
};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reasons (upstream constants in `deployment_util.go`).
pub const NEW_RS_CREATED_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";
/// Available reasons.
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Upstream `NewDeploymentCondition`: both timestamps are `now`.
pub fn new_deployment_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream `GetDeploymentCondition`.
pub fn get_deployment_condition<'s>(
    status: &'s DeploymentStatus,
    type_: &str,
) -> Option<&'s DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn reason(c: &DeploymentCondition) -> &str {
    c.reason.as_deref().unwrap_or("")
}

/// Upstream `SetDeploymentCondition`: the same status and reason is a no-op
/// (both timestamps are kept); the same status with a new reason keeps
/// `lastTransitionTime` (a transition is a change of *status*); anything else
/// replaces the condition. The new condition goes to the end of the list.
pub fn set_deployment_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_deployment_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_deployment_condition(status, &condition.type_.clone());
    status.conditions.get_or_insert_default().push(condition);
}

/// Upstream `RemoveDeploymentCondition`.
pub fn remove_deployment_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// Upstream `HasProgressDeadline`: set, and not the "never" value MaxInt32.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline_seconds(d).is_some_and(|s| s != i32::MAX)
}

fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds)
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Upstream `DeploymentComplete`: every replica is updated and available, no
/// old pod is left, and the status describes the current generation.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = replicas(d);
    count(s.updated_replicas) == n
        && count(s.replicas) == n
        && count(s.available_replicas) == n
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream `DeploymentProgressing`: compared with the stored status, did
/// anything move forward? More updated pods, fewer old pods, more ready or
/// more available pods.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old_replicas = count(old.replicas) - count(old.updated_replicas);
    let new_old_replicas = count(new.replicas) - count(new.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || new_old_replicas < old_old_replicas
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

/// Upstream `DeploymentTimedOut`: the Progressing condition was last updated
/// more than `progressDeadlineSeconds` ago (strictly), or already says so.
/// A completed rollout never times out.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_deployment_condition(new, PROGRESSING) else {
        return false;
    };
    match reason(condition) {
        NEW_RS_AVAILABLE_REASON => false,
        TIMED_OUT_REASON => true,
        _ => {
            let deadline = i128::from(progress_deadline_seconds(d).unwrap_or(0)) * 1_000_000_000;
            last_update_nanos(condition) + deadline < now.as_nanosecond()
        }
    }
}

/// A missing timestamp is Go's zero time: long, long ago.
fn last_update_nanos(c: &DeploymentCondition) -> i128 {
    c.last_update_time
        .as_ref()
        .map(|t| t.0.as_nanosecond())
        .unwrap_or(i128::MIN / 2)
}

/// Upstream `GetTerminatingReplicaCountForReplicaSets` (1.33+): unknown
/// (`None`) as soon as a synced ReplicaSet does not report the count.
fn terminating_replica_count(rss: &[&ReplicaSet]) -> Option<i32> {
    let mut total = 0;
    for rs in rss {
        let status = rs.status.clone().unwrap_or_default();
        match status.terminating_replicas {
            Some(n) => total += n,
            None if status.observed_generation.unwrap_or(0) == 0 => {}
            None => return None,
        }
    }
    Some(total)
}

/// Upstream `calculateStatus`: the counts, and the Available condition.
///
/// (Upstream passes the ReplicaSets as read at the start of the sync, so a
/// ReplicaSet scaled in this very sync counts with its old `spec.replicas` in
/// `unavailableReplicas` until the next sync; we pass the updated ones, which
/// is what the next upstream sync writes anyway.)
pub fn calculate_status(
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = available_replica_count(all_rss);
    let unavailable = (replica_count(all_rss) - available).max(0);
    let previous = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: Some(d.metadata.generation.unwrap_or(0)),
        replicas: Some(actual_replica_count(all_rss)),
        updated_replicas: Some(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: Some(ready_replica_count(all_rss)),
        available_replicas: Some(available),
        unavailable_replicas: Some(unavailable),
        terminating_replicas: terminating_replica_count(all_rss),
        collision_count: previous.collision_count,
        conditions: previous.conditions.clone(),
    };
    let condition = if available >= replicas(d) - max_unavailable(d) {
        new_deployment_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_deployment_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_deployment_condition(&mut status, condition);
    status
}

/// Compares statuses the way they are stored: Go's int32 fields are
/// `omitempty`, so a count of 0 comes back from the API server as absent.
/// Without this, `Some(0)` versus `None` would look like a change and every
/// sync would write the status again, waking itself up forever.
pub fn same_status(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    fn norm(s: &DeploymentStatus) -> DeploymentStatus {
        let nz32 = |v: Option<i32>| v.filter(|&n| n != 0);
        DeploymentStatus {
            observed_generation: s.observed_generation.filter(|&n| n != 0),
            replicas: nz32(s.replicas),
            updated_replicas: nz32(s.updated_replicas),
            ready_replicas: nz32(s.ready_replicas),
            available_replicas: nz32(s.available_replicas),
            unavailable_replicas: nz32(s.unavailable_replicas),
            // Pointers in Go: nil and 0 differ.
            terminating_replicas: s.terminating_replicas,
            collision_count: s.collision_count,
            conditions: s.conditions.clone().filter(|c| !c.is_empty()),
        }
    }
    norm(a) == norm(b)
}

impl Syncer<'_> {
    /// Upstream `syncDeploymentStatus` (used by `sync`): counts and
    /// Available only; Progressing is left as it is.
    pub(super) fn sync_deployment_status(&mut self, all: &[usize], new: Option<usize>) {
        let status = calculate_status(
            &self.rs_list(all),
            new.map(|i| self.rs(i)),
            &self.d,
            self.now,
        );
        self.d.status = Some(status);
    }

    // ANCHOR: sync_rollout_status
    /// Upstream `syncRolloutStatus`: counts, Available, and the Progressing
    /// condition; requeues a rollout that made no progress for when its
    /// deadline expires.
    pub(super) fn sync_rollout_status(
        &mut self,
        all: &[usize],
        new: Option<usize>,
    ) -> Result<(), super::SyncError> {
        let new_rs = new.map(|i| self.rs(i));
        let mut new_status = calculate_status(&self.rs_list(all), new_rs, &self.d, self.now);
        let new_rs_name = new_rs.map(|rs| name(&rs.metadata).to_string());
        let d_name = name(&self.d.metadata).to_string();

        if !has_progress_deadline(&self.d) {
            remove_deployment_condition(&mut new_status, PROGRESSING);
        }
        // Once a rollout has been reported complete, nothing is estimated
        // until a new one starts (a new ReplicaSet is created or found).
        let current = get_deployment_condition(self.status(), PROGRESSING).cloned();
        let is_complete_deployment = new_status.replicas == new_status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| reason(c) == NEW_RS_AVAILABLE_REASON);
        if has_progress_deadline(&self.d) && !is_complete_deployment {
            let subject = match &new_rs_name {
                Some(rs) => format!("ReplicaSet {rs:?}"),
                None => format!("Deployment {d_name:?}"),
            };
            if deployment_complete(&self.d, &new_status) {
                let message = format!("{subject} has successfully progressed.");
                let c = new_deployment_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE_REASON,
                    message,
                    self.now,
                );
                set_deployment_condition(&mut new_status, c);
            } else if deployment_progressing(&self.d, &new_status) {
                // Progress refreshes lastUpdateTime even with an unchanged
                // reason (which set_deployment_condition would ignore), so the
                // condition is removed and re-added; lastTransitionTime is
                // kept while the status stays True.
                let message = format!("{subject} is progressing.");
                let mut c = new_deployment_condition(
                    PROGRESSING,
                    "True",
                    REPLICA_SET_UPDATED_REASON,
                    message,
                    self.now,
                );
                if let Some(current) = &current {
                    if current.status == "True" {
                        c.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_deployment_condition(&mut new_status, PROGRESSING);
                }
                set_deployment_condition(&mut new_status, c);
            } else if deployment_timed_out(&self.d, &new_status, self.now) {
                let message = format!("{subject} has timed out progressing.");
                let c = new_deployment_condition(
                    PROGRESSING,
                    "False",
                    TIMED_OUT_REASON,
                    message,
                    self.now,
                );
                set_deployment_condition(&mut new_status, c);
            }
        }

        // A ReplicaSet that cannot create or delete pods (quota, admission)
        // says so in its ReplicaFailure condition; surface it here.
        match self.replica_failure(all, new) {
            Some(c) => set_deployment_condition(&mut new_status, c),
            None => remove_deployment_condition(&mut new_status, REPLICA_FAILURE),
        }

        if same_status(self.status(), &new_status) {
            self.out.requeue_after = self.requeue_stuck_deployment(&new_status);
        } else {
            self.d.status = Some(new_status);
        }
        Ok(())
    }

    /// Upstream `requeueStuckDeployment`: when to look again at a rollout that
    /// made no progress: one second after its deadline expires, or at once
    /// (rate limited; returned as zero) if less than a second is left.
    fn requeue_stuck_deployment(&self, new_status: &DeploymentStatus) -> Option<Duration> {
        let current = get_deployment_condition(self.status(), PROGRESSING)?;
        if !has_progress_deadline(&self.d)
            || deployment_complete(&self.d, new_status)
            || reason(current) == TIMED_OUT_REASON
        {
            return None;
        }
        let deadline = i128::from(progress_deadline_seconds(&self.d).unwrap_or(0)) * 1_000_000_000;
        let after = last_update_nanos(current) + deadline - self.now.as_nanosecond();
        if after < 1_000_000_000 {
            return Some(Duration::ZERO);
        }
        // "Add a second to avoid milliseconds skew."
        Some(Duration::from_nanos(
            u64::try_from(after + 1_000_000_000).unwrap_or(u64::MAX),
        ))
    }
    // ANCHOR_END: sync_rollout_status

    /// Upstream `getReplicaFailures`: the new ReplicaSet's ReplicaFailure
    /// condition, else the first old one's.
    fn replica_failure(&self, all: &[usize], new: Option<usize>) -> Option<DeploymentCondition> {
        let failure = |i: usize| {
            self.rs(i)
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == REPLICA_FAILURE)
                .map(|c| DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
        };
        new.and_then(failure)
            .or_else(|| all.iter().copied().find_map(failure))
    }

    /// Upstream `syncStatusOnly`: for a Deployment being deleted.
    pub(super) fn sync_status_only(&mut self) -> Result<(), super::SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        self.sync_deployment_status(&all, new);
        Ok(())
    }

    /// Upstream `checkPausedConditions`: pausing sets Progressing to
    /// `Unknown/DeploymentPaused`; resuming to `Unknown/DeploymentResumed`,
    /// which gives the rollout a fresh deadline window. A rollout already
    /// reported as timed out keeps that report.
    pub(super) fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let current = get_deployment_condition(self.status(), PROGRESSING);
        if current.is_some_and(|c| reason(c) == TIMED_OUT_REASON) {
            return;
        }
        let paused_cond_exists = current.is_some_and(|c| reason(c) == PAUSED_DEPLOY_REASON);
        let now = self.now;
        if paused(&self.d) && !paused_cond_exists {
            let c = new_deployment_condition(
                PROGRESSING,
                "Unknown",
                PAUSED_DEPLOY_REASON,
                "Deployment is paused".into(),
                now,
            );
            set_deployment_condition(self.status_mut(), c);
        } else if !paused(&self.d) && paused_cond_exists {
            let c = new_deployment_condition(
                PROGRESSING,
                "Unknown",
                RESUMED_DEPLOY_REASON,
                "Deployment is resumed".into(),
                now,
            );
            set_deployment_condition(self.status_mut(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::tests::{deployment, rs_at};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn set_condition_keeps_timestamps_as_upstream() {
        let mut s = DeploymentStatus::default();
        set_deployment_condition(
            &mut s,
            new_deployment_condition(PROGRESSING, "True", NEW_RS_CREATED_REASON, "a".into(), t(1)),
        );
        // Same status and reason: no-op, even the message stays.
        set_deployment_condition(
            &mut s,
            new_deployment_condition(PROGRESSING, "True", NEW_RS_CREATED_REASON, "b".into(), t(2)),
        );
        let c = get_deployment_condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.message.as_deref(), c.last_update_time.clone()),
            (Some("a"), Some(Time(t(1))))
        );
        // Same status, new reason: lastTransitionTime kept.
        set_deployment_condition(
            &mut s,
            new_deployment_condition(
                PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                "c".into(),
                t(3),
            ),
        );
        let c = get_deployment_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t(1))));
        assert_eq!(c.last_update_time, Some(Time(t(3))));
        // New status: replaced.
        set_deployment_condition(
            &mut s,
            new_deployment_condition(PROGRESSING, "False", TIMED_OUT_REASON, "d".into(), t(4)),
        );
        let c = get_deployment_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t(4))));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
        remove_deployment_condition(&mut s, PROGRESSING);
        assert_eq!(s.conditions, None);
    }

    #[test]
    fn predicates() {
        let mut d = deployment(3, "1", "0");
        d.metadata.generation = Some(2);
        let s = |replicas, updated, available, generation| DeploymentStatus {
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            observed_generation: Some(generation),
            ..Default::default()
        };
        assert!(deployment_complete(&d, &s(3, 3, 3, 2)));
        assert!(!deployment_complete(&d, &s(3, 3, 3, 1)), "old generation");
        assert!(!deployment_complete(&d, &s(4, 3, 3, 2)), "an old pod left");
        assert!(
            !deployment_complete(&d, &s(3, 3, 2, 2)),
            "not all available"
        );

        d.status = Some(s(4, 1, 3, 2));
        assert!(deployment_progressing(&d, &s(4, 2, 3, 2)), "more updated");
        assert!(deployment_progressing(&d, &s(3, 1, 3, 2)), "fewer old");
        assert!(deployment_progressing(&d, &s(4, 1, 4, 2)), "more available");
        assert!(!deployment_progressing(&d, &s(4, 1, 3, 2)));

        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        let mut st = s(4, 1, 3, 2);
        assert!(
            !deployment_timed_out(&d, &st, t(100)),
            "no condition: no base"
        );
        set_deployment_condition(
            &mut st,
            new_deployment_condition(
                PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                String::new(),
                t(0),
            ),
        );
        assert!(
            !deployment_timed_out(&d, &st, t(10)),
            "strictly after the deadline"
        );
        assert!(deployment_timed_out(&d, &st, t(11)));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        assert!(
            !deployment_timed_out(&d, &st, t(1_000_000)),
            "MaxInt32 means no deadline"
        );
    }

    #[test]
    fn calculated_counts() {
        let d = deployment(10, "25%", "25%");
        let mut old = rs_at("old", "app:v1", 8, 0);
        let mut new = rs_at("new", "app:v2", 5, 1);
        let set = |rs: &mut ReplicaSet, replicas, ready, available| {
            let s = rs.status.get_or_insert_default();
            s.replicas = replicas;
            s.ready_replicas = Some(ready);
            s.available_replicas = Some(available);
        };
        set(&mut old, 8, 8, 8);
        set(&mut new, 5, 2, 1);
        let s = calculate_status(&[&old, &new], Some(&new), &d, t(0));
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(13), Some(5), Some(10), Some(9), Some(4))
        );
        let available = get_deployment_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (available.status.as_str(), reason(available)),
            ("True", MINIMUM_REPLICAS_AVAILABLE)
        );
        set(&mut old, 8, 8, 6);
        let s = calculate_status(&[&old, &new], Some(&new), &d, t(0));
        let available = get_deployment_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (available.status.as_str(), reason(available)),
            ("False", MINIMUM_REPLICAS_UNAVAILABLE)
        );
    }

    #[test]
    fn zero_counts_equal_absent_counts() {
        let a = DeploymentStatus {
            replicas: Some(0),
            observed_generation: Some(0),
            conditions: Some(vec![]),
            ..Default::default()
        };
        assert!(same_status(&a, &DeploymentStatus::default()));
        let b = DeploymentStatus {
            collision_count: Some(0),
            ..Default::default()
        };
        assert!(
            !same_status(&b, &DeploymentStatus::default()),
            "collisionCount is a pointer"
        );
    }
}
