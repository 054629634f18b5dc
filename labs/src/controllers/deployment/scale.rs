//! Scaling events and proportional scaling (upstream `sync.go
//! isScalingEvent`, `sync`, `scale`, and helpers in `deployment_util.go`).
//!
//! `kubectl scale deployment web --replicas=20` in the middle of a rollout:
//! which ReplicaSet gets the ten extra pods? Giving them all to the new one
//! would be a rollout step the strategy did not allow; giving them to the old
//! one would grow a version on its way out. Kubernetes does neither: it
//! **spreads the change over every active ReplicaSet in proportion to its
//! size**, so the mix of versions stays what it was, and the rollout then
//! carries on from there.
//!
//! A scaling event is recognised without remembering anything: every
//! ReplicaSet carries the Deployment size it was last sized for
//! (`deployment.kubernetes.io/desired-replicas`), and a Deployment whose
//! `spec.replicas` differs from it has been scaled.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::fenceposts::max_surge;
use super::revisions::{desired_replicas_annotation, max_replicas_annotation};
use super::{
    SyncError, Syncer, by_creation_timestamp, is_active, is_rolling_update, paused, replica_count,
    replicas, rs_available, rs_replicas,
};

/// Upstream `FindActiveOrLatest`: the one ReplicaSet that should take the
/// whole Deployment size, if there is exactly one candidate: the only active
/// ReplicaSet; with none active, the new one, or else the newest old one.
/// `None` when several are active (proportional scaling decides then).
pub fn find_active_or_latest(
    new_rs: Option<usize>,
    old_rss: &[usize],
    rss: &[ReplicaSet],
) -> Option<usize> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut old = old_rss.to_vec();
    old.sort_by(|&a, &b| by_creation_timestamp(&rss[b], &rss[a]));
    let active: Vec<usize> = old
        .iter()
        .copied()
        .chain(new_rs)
        .filter(|&i| is_active(&rss[i]))
        .collect();
    match active.len() {
        0 => new_rs.or(old.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Upstream `IsSaturated`: the new ReplicaSet has the whole Deployment and all
/// of it is available, so old ReplicaSets can simply go to zero.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) =
        super::annotation(&rs.metadata, super::revisions::DESIRED_REPLICAS_ANNOTATION)
            .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    let n = replicas(d);
    rs_replicas(rs) == n && desired == n && rs_available(rs) == n
}

/// Upstream `ReplicaSetsBySizeNewer`: larger first; among equals, newer
/// first. Used when scaling up, so a tie gives the extra pod to the newer
/// version.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation_timestamp(b, a))
}

/// Upstream `ReplicaSetsBySizeOlder`: larger first; among equals, older
/// first. Used when scaling down, so a tie takes the pod from the older
/// version.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation_timestamp(a, b))
}

// ANCHOR: proportional_scaling
/// Upstream `integer.RoundToInt32`: round half away from zero.
pub fn round_to_int32(x: f64) -> i32 {
    if x < 0.0 {
        (x - 0.5) as i32
    } else {
        (x + 0.5) as i32
    }
}

/// Upstream `getReplicaSetFraction`: how many replicas this ReplicaSet should
/// gain (or lose) so that it keeps its share when the Deployment's maximum
/// goes from what it was (the `max-replicas` annotation) to
/// `replicas + maxSurge`.
pub fn get_replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    // Scaling to zero: the whole ReplicaSet goes.
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_max_replicas = replicas(d) + max_surge(d);
    let max_before = match max_replicas_annotation(rs) {
        Some(n) if n != 0 => n,
        // Annotation removed by hand: fall back to the Deployment's current
        // pod count; 0 means nothing sensible can be computed.
        _ => match d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) {
            0 => return 0,
            n => n,
        },
    };
    let new_rs_size = (i64::from(rs_replicas(rs)) * i64::from(deployment_max_replicas)) as f64
        / f64::from(max_before);
    round_to_int32(new_rs_size) - rs_replicas(rs)
}

/// Upstream `GetProportion`: this ReplicaSet's share of `to_add`, capped so
/// that the running total `added` never passes `to_add` (in either
/// direction).
pub fn get_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = get_replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

impl Syncer<'_> {
    /// Upstream `scale`: resize the ReplicaSets after `spec.replicas` changed.
    pub(super) fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let desired = replicas(&self.d);
        // One candidate: it takes the whole size. Surge is ignored here.
        if let Some(i) = find_active_or_latest(new, old, &self.rss) {
            if rs_replicas(self.rs(i)) != desired {
                self.scale_replica_set_and_record_event(i, desired);
            }
            return;
        }
        // The new ReplicaSet is complete: old ones simply go to zero (this
        // covers adopting old ReplicaSets while the new one is saturated).
        // Upstream iterates the old ones newest first here.
        if is_saturated(&self.d, new.map(|i| self.rs(i))) {
            let mut old = old.to_vec();
            old.sort_by(|&a, &b| by_creation_timestamp(self.rs(b), self.rs(a)));
            for i in old {
                if is_active(self.rs(i)) {
                    self.scale_replica_set_and_record_event(i, 0);
                }
            }
            return;
        }
        // Several active ReplicaSets: share the change proportionally. Only
        // rolling updates do this; Recreate has at most one active set once
        // it is past its first step.
        if !is_rolling_update(&self.d) {
            return;
        }
        let mut all: Vec<usize> = old
            .iter()
            .copied()
            .chain(new)
            .filter(|&i| is_active(self.rs(i)))
            .collect();
        let allowed_size = if desired > 0 {
            desired + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed_size - replica_count(&self.rs_list(&all));
        // Largest first, so the rounding leftovers land on the largest set;
        // ties go to the newer set when growing and the older when shrinking.
        match to_add.cmp(&0) {
            Ordering::Greater => all.sort_by(|&a, &b| by_size_newer(self.rs(a), self.rs(b))),
            Ordering::Less => all.sort_by(|&a, &b| by_size_older(self.rs(a), self.rs(b))),
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            let proportion = if to_add != 0 {
                get_proportion(self.rs(i), &self.d, to_add, added)
            } else {
                0
            };
            sizes.push(rs_replicas(self.rs(i)) + proportion);
            added += proportion;
        }
        // Whatever rounding left over goes to (or comes from) the first one.
        if to_add != 0
            && let Some(first) = sizes.first_mut()
        {
            *first = (*first + to_add - added).max(0);
        }
        // Every active ReplicaSet is written, even at an unchanged size, to
        // refresh its desired/max annotations for the next scaling event.
        for (&i, &size) in all.iter().zip(&sizes) {
            self.scale_replica_set(i, size);
        }
    }
}
// ANCHOR_END: proportional_scaling

impl Syncer<'_> {
    /// Upstream `isScalingEvent`: does any active ReplicaSet remember a
    /// different Deployment size than `spec.replicas`?
    pub(super) fn is_scaling_event(&mut self) -> Result<bool, SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let desired = replicas(&self.d);
        Ok(old
            .iter()
            .copied()
            .chain(new)
            .filter(|&i| is_active(self.rs(i)))
            .filter_map(|i| desired_replicas_annotation(self.rs(i)))
            .any(|n| n != desired))
    }

    /// Upstream `sync`: scaling and bookkeeping without rolling out (used for
    /// scaling events and while paused).
    pub(super) fn sync(&mut self) -> Result<(), SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        self.scale(new, &old);
        // While paused, the history is trimmed here, since no rollout will
        // complete to do it.
        if paused(&self.d) && super::revisions::get_rollback_to(&self.d).is_none() {
            self.cleanup_deployment(&old);
        }
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        self.sync_deployment_status(&all, new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::revisions::{
        DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION,
    };
    use crate::controllers::deployment::tests::{deployment, rs_at, with_annotation};
    use crate::controllers::deployment::{Action, sync_deployment};
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn rounding_is_half_away_from_zero() {
        for (x, want) in [
            (0.5, 1),
            (1.49, 1),
            (1.5, 2),
            (-0.5, -1),
            (-1.5, -2),
            (-1.49, -1),
            (0.0, 0),
        ] {
            assert_eq!(round_to_int32(x), want, "{x}");
        }
    }

    /// A TestScale case: the Deployment was `before` replicas (the RSs carry
    /// its desired/max annotations) and is now `after`; the RSs are given
    /// newest first as (name, spec); returns the new sizes in the same order.
    fn scale_case(before: i32, after: i32, surge: &str, sizes: &[(&str, i32)]) -> Vec<i32> {
        let old_d = deployment(before, surge, "0");
        let mut d = deployment(after, surge, "0");
        d.spec.as_mut().unwrap().template =
            crate::controllers::deployment::tests::template(sizes[0].0);
        let max = before + max_surge(&old_d);
        let rss: Vec<ReplicaSet> = sizes
            .iter()
            .enumerate()
            .map(|(age, &(image, n))| {
                let rs = rs_at(image, image, n, (sizes.len() - age) as i64);
                let rs = with_annotation(rs, DESIRED_REPLICAS_ANNOTATION, &before.to_string());
                with_annotation(rs, MAX_REPLICAS_ANNOTATION, &max.to_string())
            })
            .collect();
        let sync = sync_deployment(&d, &rss, &[], Timestamp::UNIX_EPOCH);
        assert!(sync.error.is_none(), "{:?}", sync.error);
        let mut out: Vec<i32> = sizes.iter().map(|&(_, n)| n).collect();
        for action in &sync.actions {
            if let Action::ScaleReplicaSet { name, to, .. } = action {
                let k = sizes.iter().position(|&(image, _)| image == name).unwrap();
                out[k] = *to;
            }
        }
        out
    }

    /// The examples of upstream `sync_test.go TestScale` (reference §1.7).
    /// The first name is the new ReplicaSet (the Deployment's template).
    #[test]
    fn proportional_scaling_examples() {
        assert_eq!(scale_case(5, 10, "0", &[("v2", 2), ("v1", 3)]), [4, 6]);
        assert_eq!(
            scale_case(7, 10, "0", &[("v3", 2), ("v2", 3), ("v1", 2)]),
            [3, 4, 3]
        );
        assert_eq!(
            scale_case(13, 8, "0", &[("v3", 2), ("v2", 8), ("v1", 3)]),
            [1, 5, 2]
        );
        // Leftovers: +1 to the newest of equals, -1 from the oldest.
        assert_eq!(
            scale_case(3, 4, "0", &[("v3", 1), ("v2", 1), ("v1", 1)]),
            [2, 1, 1]
        );
        assert_eq!(
            scale_case(3, 2, "0", &[("v3", 1), ("v2", 1), ("v1", 1)]),
            [1, 1, 0]
        );
        // With surge: 10 -> 20, surge 2 (max 12 -> 22).
        assert_eq!(scale_case(10, 20, "2", &[("v2", 6), ("v1", 6)]), [11, 11]);
        // To zero: everything goes.
        assert_eq!(scale_case(10, 0, "0", &[("v2", 4), ("v1", 6)]), [0, 0]);
        // Only one active ReplicaSet: it takes the whole size, surge ignored.
        assert_eq!(scale_case(10, 12, "3", &[("v2", 10), ("v1", 0)]), [12, 0]);
        assert_eq!(scale_case(10, 12, "3", &[("v2", 0), ("v1", 10)]), [0, 12]);
    }

    #[test]
    fn saturated_but_broken_new_replica_set_is_not_touched() {
        // Deployment 2 with surge 1: new RS 2/2 with nothing available, old 1.
        // allowed = 3 = 2 + 1, so toAdd = 0 and no size changes.
        let d = deployment(2, "1", "0");
        let new = with_annotation(
            rs_at("new", "app:v1", 2, 2),
            DESIRED_REPLICAS_ANNOTATION,
            "3",
        );
        let old = with_annotation(
            rs_at("old", "app:v0", 1, 1),
            DESIRED_REPLICAS_ANNOTATION,
            "3",
        );
        let sync = sync_deployment(&d, &[new, old], &[], Timestamp::UNIX_EPOCH);
        assert!(
            !sync
                .actions
                .iter()
                .any(|a| matches!(a, Action::ScaleReplicaSet { .. })),
            "{:#?}",
            sync.actions
        );
    }

    #[test]
    fn saturated_new_replica_set_scales_old_ones_to_zero() {
        let d = deployment(3, "1", "0");
        let mut new = with_annotation(
            rs_at("new", "app:v1", 3, 2),
            DESIRED_REPLICAS_ANNOTATION,
            "3",
        );
        new.status.as_mut().unwrap().available_replicas = Some(3);
        let old = with_annotation(
            rs_at("old", "app:v0", 2, 1),
            DESIRED_REPLICAS_ANNOTATION,
            "4",
        );
        let sync = sync_deployment(&d, &[new, old], &[], Timestamp::UNIX_EPOCH);
        let scales: Vec<(String, i32)> = sync
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::ScaleReplicaSet { name, to, .. } => Some((name.clone(), *to)),
                _ => None,
            })
            .collect();
        assert_eq!(scales, [("old".to_string(), 0)]);
    }

    #[test]
    fn find_active_or_latest_cases() {
        let rss = vec![
            rs_at("a", "v1", 0, 1),
            rs_at("b", "v2", 0, 2),
            rs_at("c", "v3", 3, 3),
        ];
        assert_eq!(find_active_or_latest(None, &[], &rss), None);
        assert_eq!(
            find_active_or_latest(Some(2), &[0, 1], &rss),
            Some(2),
            "one active"
        );
        assert_eq!(
            find_active_or_latest(None, &[0, 1], &rss),
            Some(1),
            "none active: newest old"
        );
        assert_eq!(
            find_active_or_latest(Some(0), &[1], &rss),
            Some(0),
            "none active: the new one"
        );
        let rss = vec![rs_at("a", "v1", 1, 1), rs_at("b", "v2", 2, 2)];
        assert_eq!(
            find_active_or_latest(Some(1), &[0], &rss),
            None,
            "two active"
        );
    }

    #[test]
    fn fraction_falls_back_to_status_replicas() {
        let mut d = deployment(20, "0", "1");
        let rs = rs_at("a", "v1", 5, 1); // no max-replicas annotation
        assert_eq!(
            get_replica_set_fraction(&rs, &d),
            0,
            "status.replicas 0: no estimate"
        );
        d.status.get_or_insert_default().replicas = Some(10);
        assert_eq!(get_replica_set_fraction(&rs, &d), 5, "5 * 20 / 10 - 5");
    }
}
