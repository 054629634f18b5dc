//! The cluster's wall clock, which follows tokio's clock.
//!
//! Kubernetes stamps objects with wall-clock times (`creationTimestamp`, a
//! pod's `Ready` condition's `lastTransitionTime`, a Deployment's
//! `Progressing` condition) and makes decisions by comparing them with
//! "now": is this pod available yet (`minReadySeconds`)? Has this rollout
//! missed its progress deadline?
//!
//! The labs run their deterministic timelines on tokio's *paused* clock,
//! where a 600-second progress deadline passes in no real time at all. If
//! the components read `Timestamp::now()` they would see real time barely
//! move while tokio's timers fire minutes later, and every such decision
//! would go wrong. So every component reads the time here instead: the
//! real wall-clock time when the process first asked, plus however far
//! tokio's clock has moved since. On an ordinary (unpaused) runtime that is
//! the wall clock; on a paused one it is *virtual* wall-clock time, and
//! timestamps written by one component agree with timers set by another.
//!
//! The starting point is rounded down to a whole second, because
//! Kubernetes' timestamps have one-second resolution: a lab that waits for
//! the next whole second then knows which objects share a timestamp.

use std::sync::OnceLock;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// (wall-clock time, tokio instant) at the first call.
static ORIGIN: OnceLock<(Timestamp, std::time::Instant)> = OnceLock::new();

fn origin() -> (Timestamp, std::time::Instant) {
    *ORIGIN.get_or_init(|| {
        let wall = Timestamp::now();
        let whole = Timestamp::from_second(wall.as_second()).unwrap_or(wall);
        // The instant that corresponds to the whole second.
        let back = wall.duration_since(whole).unsigned_abs();
        let instant = std::time::Instant::now()
            .checked_sub(back)
            .unwrap_or_else(std::time::Instant::now);
        (whole, instant)
    })
}

/// The time now, as the cluster sees it.
pub fn now() -> Timestamp {
    timestamp_at(Instant::now())
}

/// The wall-clock time of a tokio instant.
pub fn timestamp_at(instant: Instant) -> Timestamp {
    let (wall, at) = origin();
    let at = Instant::from_std(at);
    let delta = if instant >= at {
        SignedDuration::try_from(instant - at).unwrap_or(SignedDuration::MAX)
    } else {
        -SignedDuration::try_from(at - instant).unwrap_or(SignedDuration::MAX)
    };
    wall.checked_add(delta).unwrap_or(wall)
}

/// The tokio instant of a wall-clock time (for a timer that must fire at a
/// timestamp written into an object).
pub fn instant_at(t: Timestamp) -> Instant {
    let (wall, at) = origin();
    let at = Instant::from_std(at);
    let delta = t.duration_since(wall);
    if delta.is_negative() {
        at.checked_sub(delta.unsigned_abs()).unwrap_or(at)
    } else {
        at + delta.unsigned_abs()
    }
}

/// A component's own clock: `start` plus the tokio time elapsed since the
/// clock was made. [`Clock::cluster`] reads the same as [`now`]; a test that
/// wants round timestamps starts one at a fixed time. Under `tokio::time::pause()` timestamps then
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

    /// The cluster's clock ([`now`]): the same readings as every
    /// other component's, on real or paused time. What a kubelet in a lab
    /// uses, so that the `Ready` times it writes agree with the timers of
    /// the controllers that read them (`minReadySeconds`).
    pub fn cluster() -> Self {
        Self::starting_at(now())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let before = now();
        tokio::time::sleep(Duration::from_secs(600)).await;
        let after = now();
        assert_eq!(after.duration_since(before).as_secs(), 600);
        let t = Timestamp::from_second(before.as_second() + 10).unwrap();
        assert_eq!(timestamp_at(instant_at(t)), t);
    }
}
