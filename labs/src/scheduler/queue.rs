//! The scheduling queue: which pending pod is scheduled next, and when a pod
//! that did not fit is tried again.
//!
//! Controllers use a plain work queue of keys
//! ([`crate::machinery::workqueue::WorkQueue`]); kube-scheduler has its own
//! (`pkg/scheduler/backend/queue`, `PriorityQueue`), because its questions
//! are different: *which pod first?* and *when is retrying worth it?* It
//! keeps each pending pod in one of three places:
//!
//! * **activeQ** — ready to be scheduled, ordered by the QueueSort plugin
//!   (`PrioritySort`): higher `spec.priority` first, then the pod that was
//!   queued earlier;
//! * **backoffQ** — failed recently; waits out its backoff (1 s, doubled
//!   after every failed attempt, at most 10 s) before going back to activeQ;
//! * **unschedulablePods** — failed, and nothing has changed since that
//!   could make it fit. Retrying it would give the same answer, so it waits
//!   for a cluster event: a node added or changed, or a scheduled pod
//!   deleted, moves *every* unschedulable pod back
//!   ([`SchedulingQueue::move_all_to_active_or_backoff`], upstream's
//!   `MoveAllToActiveOrBackoffQueue`). As a safety net a pod never waits
//!   there longer than 5 minutes (`podMaxInUnschedulablePodsDuration`).
//!
//! One race needs care: a node may be added *while* a pod is being
//! scheduled (after its decision saw the old nodes, before it is declared
//! unschedulable). Parking it in unschedulablePods then would miss that
//! node until the next event. So every pop is numbered (the *scheduling
//! cycle*) and every move-all remembers the cycle it happened in
//! (`moveRequestCycle`); a pod whose cycle is not newer than the last move
//! goes to backoffQ instead. (Newer upstream versions refine this with
//! per-plugin "queueing hints", which tell which events can help which
//! pod; we treat every node change as helpful.)
//!
//! Keys are `namespace/name`; the scheduler reads the pod itself from its
//! informer cache when the key is popped, so it always schedules the newest
//! version.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Backoff of the first retry (`podInitialBackoffSeconds`).
pub const POD_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff (`podMaxBackoffSeconds`).
pub const POD_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest a pod waits in unschedulablePods without an event.
pub const POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION: Duration = Duration::from_secs(5 * 60);

/// Where a pod the queue knows is right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled (or bound); the scheduler reports back.
    InFlight,
}

#[derive(Clone, Debug)]
struct QueuedPod {
    priority: i32,
    /// When the pod was last put in the queue (`Timestamp`): PrioritySort's
    /// second key, and the start of its backoff.
    timestamp: Instant,
    /// Enqueue order, to break ties between equal timestamps (under a
    /// paused clock every timestamp is equal).
    seq: u64,
    /// Scheduling attempts so far; the backoff doubles with each.
    attempts: u32,
    place: Place,
}

// ANCHOR: queue_sort
/// activeQ's order: `PrioritySort.Less` — higher priority first, then
/// earlier timestamp. `Reverse` turns BTreeSet's ascending order into
/// "highest priority first".
type ActiveKey = (std::cmp::Reverse<i32>, Instant, u64, String);
// ANCHOR_END: queue_sort

#[derive(Default)]
struct State {
    pods: HashMap<String, QueuedPod>,
    active: BTreeSet<ActiveKey>,
    /// (backoff expiry, seq, key).
    backoff: BTreeSet<(Instant, u64, String)>,
    /// (parked since, seq, key).
    unschedulable: BTreeSet<(Instant, u64, String)>,
    next_seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

/// What a pop hands the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Popped {
    pub key: String,
    /// The scheduling cycle of this attempt, to hand back to
    /// [`SchedulingQueue::add_unschedulable`].
    pub cycle: u64,
    /// Attempts including this one.
    pub attempts: u32,
}

/// Counts by place, for tests and the lab.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLengths {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub in_flight: usize,
}

pub struct SchedulingQueue {
    state: Mutex<State>,
    ready: Notify,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        SchedulingQueue {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
        }
    }
}

// ANCHOR: backoff
/// `calculateBackoffDuration`: 1 s after the first failed attempt, doubled
/// after every further one, at most 10 s.
pub fn backoff_duration(attempts: u32) -> Duration {
    let mut d = POD_INITIAL_BACKOFF;
    for _ in 1..attempts {
        d *= 2;
        if d >= POD_MAX_BACKOFF {
            return POD_MAX_BACKOFF;
        }
    }
    d
}
// ANCHOR_END: backoff

impl State {
    fn remove_from_place(&mut self, key: &str, pod: &QueuedPod) {
        match pod.place {
            Place::Active => {
                self.active.remove(&(
                    std::cmp::Reverse(pod.priority),
                    pod.timestamp,
                    pod.seq,
                    key.to_string(),
                ));
            }
            Place::Backoff => {
                let expiry = pod.timestamp + backoff_duration(pod.attempts);
                self.backoff.remove(&(expiry, pod.seq, key.to_string()));
            }
            Place::Unschedulable => {
                self.unschedulable
                    .remove(&(pod.timestamp, pod.seq, key.to_string()));
            }
            Place::InFlight => {}
        }
    }

    /// Puts a known pod in `place`, stamped `now`.
    fn put(&mut self, key: &str, place: Place, now: Instant) {
        let Some(mut pod) = self.pods.get(key).cloned() else {
            return;
        };
        self.remove_from_place(key, &pod);
        pod.timestamp = now;
        pod.seq = self.next_seq;
        self.next_seq += 1;
        pod.place = place;
        match place {
            Place::Active => {
                self.active.insert((
                    std::cmp::Reverse(pod.priority),
                    now,
                    pod.seq,
                    key.to_string(),
                ));
            }
            Place::Backoff => {
                let expiry = now + backoff_duration(pod.attempts);
                self.backoff.insert((expiry, pod.seq, key.to_string()));
            }
            Place::Unschedulable => {
                self.unschedulable.insert((now, pod.seq, key.to_string()));
            }
            Place::InFlight => {}
        }
        self.pods.insert(key.to_string(), pod);
    }

    /// Moves a pod out of unschedulablePods: to backoffQ if its backoff
    /// (counted from when it failed) has not run out yet, else to activeQ.
    /// It keeps its original failure time for the backoff.
    fn requeue(&mut self, key: &str, now: Instant) {
        let Some(pod) = self.pods.get(key).cloned() else {
            return;
        };
        let expiry = pod.timestamp + backoff_duration(pod.attempts);
        if expiry > now {
            self.remove_from_place(key, &pod);
            let pod = self.pods.get_mut(key).expect("known");
            pod.place = Place::Backoff;
            self.backoff.insert((expiry, pod.seq, key.to_string()));
        } else {
            self.put(key, Place::Active, now);
        }
    }

    /// Backoffs that ran out go to activeQ; pods parked too long too.
    fn flush(&mut self, now: Instant) {
        while let Some((expiry, _, key)) = self.backoff.first().cloned() {
            if expiry > now {
                break;
            }
            self.put(&key, Place::Active, now);
        }
        while let Some((since, _, key)) = self.unschedulable.first().cloned() {
            if since + POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION > now {
                break;
            }
            self.requeue(&key, now);
        }
    }

    /// The next moment `flush` would move something.
    fn next_deadline(&self) -> Option<Instant> {
        let backoff = self.backoff.first().map(|(t, _, _)| *t);
        let parked = self
            .unschedulable
            .first()
            .map(|(t, _, _)| *t + POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION);
        match (backoff, parked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl SchedulingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every operation leaves the sets consistent before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pending pod (upstream `Add`): straight to activeQ. A pod the
    /// queue already knows is left where it is.
    pub fn add(&self, key: &str, priority: i32) {
        let mut s = self.lock();
        if s.closed || s.pods.contains_key(key) {
            return;
        }
        s.pods.insert(
            key.to_string(),
            QueuedPod {
                priority,
                timestamp: Instant::now(),
                seq: 0,
                attempts: 0,
                place: Place::InFlight, // replaced by `put`
            },
        );
        s.put(key, Place::Active, Instant::now());
        drop(s);
        self.ready.notify_one();
    }

    /// The pod changed in a way that may make it fit (upstream `Update`
    /// when `isPodUpdated`): if it is parked, move it back.
    pub fn update(&self, key: &str) {
        let mut s = self.lock();
        if s.pods.get(key).map(|p| p.place) == Some(Place::Unschedulable) {
            s.requeue(key, Instant::now());
            drop(s);
            self.ready.notify_one();
        }
    }

    /// The pod is gone, bound by someone else, or terminating.
    pub fn delete(&self, key: &str) {
        let mut s = self.lock();
        if let Some(pod) = s.pods.remove(key) {
            s.remove_from_place(key, &pod);
        }
    }

    /// Waits for the next pod to schedule: the head of activeQ, after
    /// moving every expired backoff there. `None` once closed.
    pub async fn pop(&self) -> Option<Popped> {
        loop {
            let notified = self.ready.notified();
            let deadline = {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                s.flush(now);
                if let Some(head) = s.active.pop_first() {
                    let key = head.3;
                    s.scheduling_cycle += 1;
                    let cycle = s.scheduling_cycle;
                    let pod = s.pods.get_mut(&key).expect("queued pods are known");
                    pod.place = Place::InFlight;
                    pod.attempts += 1;
                    return Some(Popped {
                        key,
                        cycle,
                        attempts: pod.attempts,
                    });
                }
                s.next_deadline()
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The pod was bound: the queue forgets it (upstream `Done` plus the
    /// informer's delete from the queue once the pod shows a node).
    pub fn done(&self, key: &str) {
        self.delete(key);
    }

    // ANCHOR: add_unschedulable
    /// The attempt of `cycle` failed (upstream
    /// `AddUnschedulableIfNotPresent`). If a move-all happened since the
    /// pod was popped, the cluster changed under the decision: back off and
    /// retry. Otherwise park it until something changes.
    pub fn add_unschedulable(&self, key: &str, cycle: u64) {
        let mut s = self.lock();
        if s.closed || s.pods.get(key).map(|p| p.place) != Some(Place::InFlight) {
            return; // deleted (or bound elsewhere) meanwhile
        }
        let place = if s.move_request_cycle >= cycle {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        s.put(key, place, Instant::now());
        drop(s);
        // A waiting pop must learn the new backoff deadline.
        self.ready.notify_one();
    }

    /// A cluster event that may make parked pods fit — a node added, a
    /// node's labels, taints, allocatable or readiness changed, a scheduled
    /// pod deleted — moves every parked pod to backoffQ or activeQ.
    pub fn move_all_to_active_or_backoff(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        let parked: Vec<String> = s
            .unschedulable
            .iter()
            .map(|(_, _, key)| key.clone())
            .collect();
        for key in &parked {
            s.requeue(key, now);
        }
        s.move_request_cycle = s.scheduling_cycle;
        drop(s);
        self.ready.notify_one();
    }
    // ANCHOR_END: add_unschedulable

    /// Stops: `pop` returns `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    pub fn lengths(&self) -> QueueLengths {
        let s = self.lock();
        QueueLengths {
            active: s.active.len(),
            backoff: s.backoff.len(),
            unschedulable: s.unschedulable.len(),
            in_flight: s
                .pods
                .values()
                .filter(|p| p.place == Place::InFlight)
                .count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_1s_to_10s() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff_duration(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_first_then_first_come() {
        let q = SchedulingQueue::new();
        q.add("default/a", 0);
        q.add("default/b", 1000);
        q.add("default/c", 0);
        let order: Vec<String> = [
            q.pop().await.unwrap(),
            q.pop().await.unwrap(),
            q.pop().await.unwrap(),
        ]
        .into_iter()
        .map(|p| p.key)
        .collect();
        assert_eq!(order, ["default/b", "default/a", "default/c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_an_event_then_their_backoff() {
        let q = SchedulingQueue::new();
        q.add("default/p", 0);
        let p = q.pop().await.unwrap();
        q.add_unschedulable(&p.key, p.cycle);
        assert_eq!(q.lengths().unschedulable, 1);
        // Nothing happens for a while: it stays parked.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(q.lengths().unschedulable, 1);
        // A node appears: back to the queue (its 1 s backoff is long over).
        q.move_all_to_active_or_backoff();
        let start = Instant::now();
        let p = q.pop().await.unwrap();
        assert_eq!((p.attempts, start.elapsed()), (2, Duration::ZERO));
        // Fails again; a node appears at once: it waits out 2 s of backoff.
        q.add_unschedulable(&p.key, p.cycle);
        q.move_all_to_active_or_backoff();
        assert_eq!(q.lengths().backoff, 1);
        let p = q.pop().await.unwrap();
        assert_eq!((p.attempts, start.elapsed()), (3, Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_added_during_the_attempt_is_not_missed() {
        let q = SchedulingQueue::new();
        q.add("default/p", 0);
        let p = q.pop().await.unwrap();
        // The node arrives while the decision is being made...
        q.move_all_to_active_or_backoff();
        // ...so the failure is retried after the backoff, not parked.
        q.add_unschedulable(&p.key, p.cycle);
        assert_eq!(q.lengths().backoff, 1);
        let start = Instant::now();
        q.pop().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn parked_pods_are_retried_after_five_minutes_anyway() {
        let q = SchedulingQueue::new();
        q.add("default/p", 0);
        let p = q.pop().await.unwrap();
        q.add_unschedulable(&p.key, p.cycle);
        let start = Instant::now();
        q.pop().await.unwrap();
        assert_eq!(start.elapsed(), POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION);
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_pods_leave_the_queue() {
        let q = SchedulingQueue::new();
        q.add("default/a", 0);
        q.add("default/b", 0);
        q.delete("default/a");
        assert_eq!(q.pop().await.unwrap().key, "default/b");
        assert_eq!(
            q.lengths(),
            QueueLengths {
                in_flight: 1,
                ..QueueLengths::default()
            }
        );
    }
}
