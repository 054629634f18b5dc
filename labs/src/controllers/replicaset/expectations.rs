//! Expectations: the creates and deletes a ReplicaSet has asked for and
//! not yet seen in its watch, so that a cache that lags behind the API
//! server never makes it create or delete twice.
//!
//! This mirrors `pkg/controller/controller_utils.go`
//! (`ControllerExpectations`, `UIDTrackingControllerExpectations`,
//! `ExpectationsTimeout`). The plumbing ([`super::controller`]) raises them
//! before it acts and lowers them from its informer handlers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

#[cfg(doc)]
use super::pod_key;

/// Expectations older than this are ignored (`ExpectationsTimeout`), so a
/// watch event that is lost for good cannot stall a ReplicaSet forever.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

// ANCHOR: expectations
/// What each ReplicaSet is waiting to see in its watch (upstream's
/// `UIDTrackingControllerExpectations`).
///
/// Why it exists: the controller decides from its *cache*, which the watch
/// fills in a little after the API server changes. Right after creating 3
/// pods, a sync triggered by some other event would still see 0 pods in the
/// cache and create 3 more. So before creating, the controller writes down
/// "expect 3 creations"; each pod-added event lowers the count; and until it
/// reaches 0 the ReplicaSet is not scaled again. Deletions are tracked by
/// pod key, so only the deletions the controller asked for count. If an
/// event never comes (a failed create, a lost watch), the entry expires after
/// [`EXPECTATIONS_TIMEOUT`] and the controller trusts its cache again.
///
/// Every method takes `now` from the caller: there is no clock in here.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    by_key: HashMap<String, ControlleeExpectations>,
}

#[derive(Debug, Clone)]
struct ControlleeExpectations {
    add: i64,
    del: i64,
    /// Keys (`namespace/name`) of the pods whose deletion is awaited.
    deletions: HashSet<String>,
    /// When the expectations were set; they expire [`EXPECTATIONS_TIMEOUT`] later.
    timestamp: Timestamp,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// May the ReplicaSet `key` be scaled now? Yes if nothing is expected,
    /// if everything expected has been observed, or if the expectations are
    /// older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, key: &str, now: Timestamp) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(exp) => {
                let fulfilled = exp.add <= 0 && exp.del <= 0;
                let age = now.as_nanosecond() - exp.timestamp.as_nanosecond();
                let expired = age > EXPECTATIONS_TIMEOUT.as_nanos() as i128;
                fulfilled || expired
            }
        }
    }

    /// About to create `adds` pods. Replaces whatever was expected before,
    /// and restarts the timeout.
    pub fn expect_creations(&mut self, key: &str, adds: usize, now: Timestamp) {
        self.set(key, adds as i64, HashSet::new(), now);
    }

    /// About to delete the pods with these keys (see [`pod_key`]).
    pub fn expect_deletions(
        &mut self,
        key: &str,
        pod_keys: impl IntoIterator<Item = String>,
        now: Timestamp,
    ) {
        let deletions: HashSet<String> = pod_keys.into_iter().collect();
        self.set(key, 0, deletions, now);
    }

    fn set(&mut self, key: &str, add: i64, deletions: HashSet<String>, now: Timestamp) {
        let exp = ControlleeExpectations {
            add,
            del: deletions.len() as i64,
            deletions,
            timestamp: now,
        };
        self.by_key.insert(key.to_string(), exp);
    }

    /// A pod controlled by `key` was seen created, or a create we expected
    /// will never happen (it failed, or slow start skipped it).
    pub fn creation_observed(&mut self, key: &str) {
        if let Some(exp) = self.by_key.get_mut(key) {
            exp.add -= 1;
        }
    }

    /// The pod `pod_key` was seen deleted (or terminating), or its delete
    /// failed. Counts only for a pod we asked to delete, and only once, though
    /// both the deletionTimestamp update and the final delete event report it.
    pub fn deletion_observed(&mut self, key: &str, pod_key: &str) {
        if let Some(exp) = self.by_key.get_mut(key)
            && exp.deletions.remove(pod_key)
        {
            exp.del -= 1;
        }
    }

    /// The ReplicaSet is gone: forget it.
    pub fn delete_expectations(&mut self, key: &str) {
        self.by_key.remove(key);
    }
}
// ANCHOR_END: expectations

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::replicaset::tests::{NO_PODS, now, pods, replica_set, t};
    use crate::controllers::replicaset::{Scale, reconcile, replica_set_key};
    use k8s_openapi::jiff::SignedDuration;

    // ---- expectations -----------------------------------------------------

    #[test]
    fn expectations_creations() {
        let key = "default/web";
        let mut exp = Expectations::new();
        assert!(exp.satisfied(key, now()), "nothing expected yet");
        exp.expect_creations(key, 3, now());
        assert!(!exp.satisfied(key, now()));
        exp.creation_observed(key);
        exp.creation_observed(key);
        assert!(!exp.satisfied(key, now()));
        exp.creation_observed(key);
        assert!(exp.satisfied(key, now()));
        // Other keys are independent; observing for an unknown key is a no-op.
        exp.creation_observed("default/other");
        assert!(exp.satisfied("default/other", now()));
        // A new expectation replaces the old one.
        exp.expect_creations(key, 1, now());
        assert!(!exp.satisfied(key, now()));
        exp.delete_expectations(key);
        assert!(exp.satisfied(key, now()));
    }

    #[test]
    fn expectations_deletions_track_pod_keys() {
        let key = "default/web";
        let mut exp = Expectations::new();
        exp.expect_deletions(
            key,
            ["default/web-a".to_string(), "default/web-b".to_string()],
            now(),
        );
        assert!(!exp.satisfied(key, now()));
        // A pod we did not ask to delete does not count.
        exp.deletion_observed(key, "default/web-z");
        // Seen twice (deletionTimestamp set, then gone): counted once.
        exp.deletion_observed(key, "default/web-a");
        exp.deletion_observed(key, "default/web-a");
        assert!(!exp.satisfied(key, now()));
        exp.deletion_observed(key, "default/web-b");
        assert!(exp.satisfied(key, now()));
    }

    #[test]
    fn expectations_expire_after_five_minutes() {
        let key = "default/web";
        let mut exp = Expectations::new();
        exp.expect_creations(key, 3, t(0));
        // (seconds later, satisfied)
        for (later, satisfied) in [(1, false), (299, false), (300, false), (301, true)] {
            assert_eq!(exp.satisfied(key, t(later)), satisfied, "after {later}s");
        }
        // Just past five minutes is enough.
        let just_past = t(300).checked_add(SignedDuration::from_nanos(1)).unwrap();
        assert!(exp.satisfied(key, just_past));
        // Setting new expectations restarts the clock.
        exp.expect_deletions(key, ["default/web-a".to_string()], t(400));
        assert!(!exp.satisfied(key, t(600)));
        assert!(exp.satisfied(key, t(701)));
    }

    #[test]
    fn expectations_prevent_double_creates_while_the_cache_lags() {
        // The controller creates 3 pods; the next sync runs before the watch
        // has delivered them, so the cache still holds none.
        let rs = replica_set(3);
        let key = replica_set_key(&rs);
        let mut exp = Expectations::new();
        let r = reconcile(&rs, NO_PODS, NO_PODS, now());
        let Scale::Create { count, .. } = r.scale else {
            panic!()
        };
        exp.expect_creations(&key, count, now());

        let stale = reconcile(&rs, NO_PODS, NO_PODS, t(1));
        assert!(matches!(stale.scale, Scale::Create { count: 3, .. }));
        assert!(!exp.satisfied(&key, t(1)), "so the plumbing must not act");

        // The watch catches up.
        for _ in 0..3 {
            exp.creation_observed(&key);
        }
        let all = pods(3, |p| p);
        assert!(exp.satisfied(&key, t(2)));
        assert_eq!(reconcile(&rs, &all, NO_PODS, t(2)).scale, Scale::None);
    }
}
