//! Crash-loop and image-pull backoff: Kubernetes' `flowcontrol.Backoff`.
//!
//! When a container keeps crashing, the kubelet does not restart it in a
//! tight loop: each restart waits twice as long as the one before, up to five
//! minutes. `kubectl get pods` shows this wait as `CrashLoopBackOff`; the
//! same mechanism, keyed by image instead of container, is behind
//! `ImagePullBackOff`.
//!
//! This is a port of `k8s.io/client-go/util/flowcontrol/backoff.go` as the
//! kubelet uses it (`flowcontrol.NewBackOff(backOffPeriod,
//! MaxContainerBackOff)`, no jitter). Like the rest of the decision core it
//! has no clock of its own: every method takes `now`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

// ANCHOR: constants
/// The first wait (`backOffPeriod` in `pkg/kubelet/kubelet.go`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait (`MaxContainerBackOff`, and `MaxImageBackOff` for
/// pulls, in `pkg/kubelet/kubelet.go`): 300 s.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A backoff entry is forgotten when the thing it counts has behaved for
/// twice the maximum, 10 minutes (`hasExpired` in `flowcontrol`): a container
/// that ran 10 minutes before crashing again starts over at 10 s.
pub const BACKOFF_RESET: Duration = Duration::from_secs(2 * 300);
// ANCHOR_END: constants

/// One key's backoff: how long the current wait is, and when it was last
/// stepped up (`backoffEntry` upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffEntry {
    pub backoff: Duration,
    pub last_update: Timestamp,
}

/// Per-key exponential backoff (`flowcontrol.Backoff`). The kubelet keys its
/// crash-loop backoff by container (we use the container's name: the map
/// lives in that pod's state) and its image-pull backoff by image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    entries: BTreeMap<String, BackoffEntry>,
}

fn since(later: Timestamp, earlier: Timestamp) -> SignedDuration {
    later.duration_since(earlier)
}

fn has_expired(event_time: Timestamp, last_update: Timestamp) -> bool {
    // "consider stable if it's ok for twice the maxDuration"
    since(event_time, last_update) > SignedDuration::try_from(BACKOFF_RESET).expect("fits")
}

// ANCHOR: backoff
impl Backoff {
    /// The current wait for `key`, if it has one (`Backoff.Get`).
    pub fn get(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    pub fn entry(&self, key: &str) -> Option<&BackoffEntry> {
        self.entries.get(key)
    }

    /// Step the backoff for `key` after a failure at `event_time`
    /// (`Backoff.Next`): start at 10 s, or double up to 5 minutes. If the last
    /// step is more than 10 minutes older than this failure, start over.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let backoff = match self.entries.get(key) {
            Some(e) if !has_expired(event_time, e.last_update) => (e.backoff * 2).min(MAX_BACKOFF),
            _ => INITIAL_BACKOFF,
        };
        self.entries.insert(
            key.to_string(),
            BackoffEntry {
                backoff,
                last_update: now,
            },
        );
    }

    /// Is `key` still waiting after a failure at `event_time`
    /// (`Backoff.IsInBackOffSince`)? The crash-loop check: `event_time` is
    /// when the container last exited.
    pub fn is_in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if has_expired(event_time, e.last_update) => false,
            Some(e) => since(now, event_time) < signed(e.backoff),
        }
    }

    /// Is `key` still waiting since its last step
    /// (`Backoff.IsInBackOffSinceUpdate`)? The image-pull check.
    pub fn is_in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if has_expired(now, e.last_update) => false,
            Some(e) => since(now, e.last_update) < signed(e.backoff),
        }
    }

    /// Forget `key` (a pod's backoff goes with the pod).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}
// ANCHOR_END: backoff

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).expect("backoff durations are small")
}

/// `t + d`, for computing "wait until" times.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(signed(d)).expect("timestamp in range")
}

/// Go's `time.Duration.String()` for whole seconds, as the kubelet prints a
/// backoff in its messages: `10s`, `2m40s`, `5m0s`.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn doubles_to_five_minutes() {
        let mut b = Backoff::default();
        let mut seen = vec![];
        for now in 0..8 {
            b.next("app", t(now), t(now));
            seen.push(b.get("app").unwrap().as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_ten_quiet_minutes() {
        let mut b = Backoff::default();
        b.next("app", t(0), t(0));
        b.next("app", t(5), t(5));
        assert_eq!(b.get("app"), Some(Duration::from_secs(20)));
        // Exactly 10 minutes after the last step is not yet "expired".
        b.next("app", t(605), t(605));
        assert_eq!(b.get("app"), Some(Duration::from_secs(40)));
        // A failure more than 10 minutes after the last step starts over.
        b.next("app", t(1206), t(1206));
        assert_eq!(b.get("app"), Some(Duration::from_secs(10)));
    }

    #[test]
    fn in_backoff_since_event() {
        let mut b = Backoff::default();
        assert!(!b.is_in_backoff_since("app", t(0), t(0)));
        b.next("app", t(0), t(0));
        assert!(b.is_in_backoff_since("app", t(0), t(9)));
        assert!(!b.is_in_backoff_since("app", t(0), t(10)));
        assert!(b.is_in_backoff_since_update("app", t(9)));
        assert!(!b.is_in_backoff_since_update("app", t(10)));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(160)), "2m40s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
