//! `revisionHistoryLimit`: how many old ReplicaSets to keep for rollbacks
//! (upstream `sync.go cleanupDeployment`).
//!
//! Old ReplicaSets at zero replicas cost nothing but an object in etcd, and
//! each is a revision `kubectl rollout undo` can return to. The limit (default
//! 10) keeps the history bounded. Cleanup runs only when nothing else is going
//! on (a completed rollout, or a paused Deployment), deletes the *oldest
//! revisions first*, and never deletes a ReplicaSet that still has pods or
//! whose status is not up to date.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::revisions::revision;
use super::{Action, Syncer, by_creation_timestamp, name, rs_replicas, rs_status_replicas};

/// Upstream `HasRevisionHistoryLimit`: set and not the "unlimited" MaxInt32.
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|&n| n != i32::MAX)
}

/// Which old ReplicaSets to delete now.
///
/// The `diff` oldest revisions beyond the limit are candidates; a candidate
/// that is not safe to delete is *skipped*, not replaced by a younger one, so
/// fewer than `diff` may go this time (the next cleanup tries again).
///
/// Order: upstream `ReplicaSetsByRevision`, ascending revision (missing = 0),
/// equal revisions by creation time then name. Upstream also falls back to
/// creation time when a revision does not parse, which is not a consistent
/// order when mixed with numbers; we count a malformed revision as 0, which
/// keeps the sort total.
pub fn replica_sets_to_delete<'a>(
    d: &Deployment,
    old_rss: &[&'a ReplicaSet],
) -> Vec<&'a ReplicaSet> {
    let Some(limit) = revision_history_limit(d) else {
        return vec![];
    };
    // ReplicaSets already being deleted are neither counted nor deleted.
    let mut cleanable: Vec<&ReplicaSet> = old_rss
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return vec![];
    }
    cleanable.sort_by(|a, b| {
        let rev = |rs: &ReplicaSet| revision(&rs.metadata).unwrap_or(0);
        rev(a)
            .cmp(&rev(b))
            .then_with(|| by_creation_timestamp(a, b))
    });
    cleanable
        .into_iter()
        .take(diff as usize)
        .filter(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            // Still has pods, or wants some.
            rs_status_replicas(rs) == 0
                && rs_replicas(rs) == 0
                // The ReplicaSet controller has seen its latest spec.
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0)
                // No pod still shutting down. (Upstream, with the 1.33 gate on,
                // also waits while the count is unknown; a ReplicaSet
                // controller that does not report it would then block
                // cleanup forever, so unknown counts as none here.)
                && status.terminating_replicas.unwrap_or(0) == 0
        })
        .collect()
}

impl Syncer<'_> {
    /// Upstream `cleanupDeployment`.
    pub(super) fn cleanup_deployment(&mut self, old: &[usize]) {
        let names: Vec<String> = replica_sets_to_delete(&self.d, &self.rs_list(old))
            .into_iter()
            .map(|rs| name(&rs.metadata).to_string())
            .collect();
        for name in names {
            self.out.actions.push(Action::DeleteReplicaSet { name });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::revisions::REVISION_ANNOTATION;
    use crate::controllers::deployment::tests::{deployment, rs_at, with_annotation};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn old(name: &str, rev: &str, age: i64) -> ReplicaSet {
        with_annotation(rs_at(name, name, 0, age), REVISION_ANNOTATION, rev)
    }

    fn names(v: Vec<&ReplicaSet>) -> Vec<&str> {
        v.into_iter()
            .map(|rs| rs.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn deletes_oldest_revisions_beyond_the_limit_skipping_unsafe_ones() {
        let mut d = deployment(3, "25%", "25%");
        d.spec.as_mut().unwrap().revision_history_limit = Some(2);
        // Created out of revision order on purpose: revisions decide.
        let r1 = old("r1", "1", 5);
        let mut r2 = old("r2", "2", 1);
        r2.spec.as_mut().unwrap().replicas = Some(1); // still wanted: skipped
        let r3 = old("r3", "3", 3);
        let r4 = old("r4", "4", 2);
        let r5 = old("r5", "5", 4);
        let all = [&r5, &r4, &r3, &r2, &r1];
        // diff = 5 - 2 = 3: candidates r1, r2, r3; r2 is skipped and r4 is
        // not taken instead.
        assert_eq!(names(replica_sets_to_delete(&d, &all)), ["r1", "r3"]);

        // Pods still counted, or a status behind its spec: skipped too.
        let mut r1b = r1.clone();
        r1b.status.as_mut().unwrap().replicas = 1;
        let mut r3b = r3.clone();
        r3b.metadata.generation = Some(2);
        assert!(replica_sets_to_delete(&d, &[&r1b, &r2, &r3b, &r4, &r5]).is_empty());

        // Being deleted: not counted (diff 4 - 2 = 2: r2 skipped, r3 deleted).
        let mut gone = r1.clone();
        gone.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(
            names(replica_sets_to_delete(&d, &[&gone, &r2, &r3, &r4, &r5])),
            ["r3"]
        );

        // No limit, or MaxInt32: nothing.
        d.spec.as_mut().unwrap().revision_history_limit = None;
        assert!(replica_sets_to_delete(&d, &all).is_empty());
        d.spec.as_mut().unwrap().revision_history_limit = Some(i32::MAX);
        assert!(replica_sets_to_delete(&d, &all).is_empty());
        // Limit 0: every idle old ReplicaSet goes.
        d.spec.as_mut().unwrap().revision_history_limit = Some(0);
        assert_eq!(
            names(replica_sets_to_delete(&d, &all)),
            ["r1", "r3", "r4", "r5"]
        );
    }

    #[test]
    fn equal_or_missing_revisions_fall_back_to_age() {
        let mut d = deployment(3, "25%", "25%");
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let a = rs_at("a", "a", 0, 3); // no revision: 0
        let b = old("b", "2", 1);
        let c = old("c", "2", 2);
        assert_eq!(names(replica_sets_to_delete(&d, &[&b, &c, &a])), ["a", "b"]);
    }
}
