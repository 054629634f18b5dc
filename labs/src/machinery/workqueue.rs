//! The work queue and its workers: client-go's `workqueue` and
//! `processNextWorkItem`, the second half of the controller pattern whose
//! first half is the [informer](super::informer). Written by hand because
//! its rules are the lesson (see the informer's module docs for the picture).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

// ANCHOR: queue
/// A work queue of keys, with client-go's rules (`workqueue.Type` plus its
/// rate-limited and delaying wrappers):
///
/// * `dirty`: keys that need processing. Adding a key that is already dirty
///   does nothing, which is how a burst of events becomes one reconcile.
/// * `processing`: keys a worker holds right now. Adding such a key marks it
///   dirty but does not queue it; [`WorkQueue::done`] queues it again. So one
///   key is never reconciled by two workers at once (they would race to
///   create the same pods), yet a change during a reconcile is not lost.
/// * `queue`: dirty keys not being processed, in FIFO order, so that a
///   busy ReplicaSet cannot starve the others.
pub struct WorkQueue<T = String> {
    state: Mutex<QueueState<T>>,
    /// Wakes an idle worker when a key is queued.
    ready: Notify,
    /// Ends delayed adds on shutdown.
    shutdown: CancellationToken,
    backoff: Backoff,
}

// A std Mutex, not tokio's: the lock is never held across an `.await`, only
// for a few map operations, and std's is cheaper (mini-redis makes the same
// choice for its database).
struct QueueState<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Consecutive failures per key, for the backoff.
    failures: HashMap<T, u32>,
    shutting_down: bool,
}

/// Per-key exponential backoff: `base * 2^failures`, at most `max`. The
/// default is client-go's default controller rate limiter's per-item part:
/// 5 ms, 10 ms, 20 ms, … up to 1000 s. (client-go also caps all keys
/// together at 10 requests/s with bursts of 100; we leave that out.)
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay before retry number `failures` (1 for the first retry).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

impl<T> WorkQueue<T>
where
    T: Clone + Eq + Hash + Send + Debug + 'static,
{
    pub fn new() -> Arc<Self> {
        WorkQueue::with_backoff(Backoff::default())
    }

    pub fn with_backoff(backoff: Backoff) -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(QueueState {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shutting_down: false,
            }),
            ready: Notify::new(),
            shutdown: CancellationToken::new(),
            backoff,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        // A panic while holding this lock leaves the maps consistent (every
        // operation is a few inserts/removes), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `key` as needing a reconcile.
    pub fn add(&self, key: T) {
        let mut s = self.lock();
        if s.shutting_down || !s.dirty.insert(key.clone()) {
            return; // Already waiting: the reconcile will see the newest state anyway.
        }
        if s.processing.contains(&key) {
            return; // `done` queues it once the current reconcile ends.
        }
        s.queue.push_back(key);
        drop(s);
        self.ready.notify_one();
    }

    /// Adds `key` after `delay` (client-go's `AddAfter`).
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => queue.add(key),
                _ = queue.shutdown.cancelled() => {}
            }
        });
    }

    /// Adds `key` after its backoff delay, which doubles with every call
    /// until [`WorkQueue::forget`] (client-go's `AddRateLimited`).
    pub fn add_rate_limited(self: &Arc<Self>, key: T) {
        let failures = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        self.add_after(key, self.backoff.delay(failures));
    }

    /// The key was reconciled successfully: reset its backoff.
    pub fn forget(&self, key: &T) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` has failed in a row.
    pub fn failures(&self, key: &T) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for a key and hands it to the caller, who must call
    /// [`WorkQueue::done`] with it. `None` once the queue is shut down.
    pub async fn get(&self) -> Option<T> {
        loop {
            // Register for a wake-up *before* looking, so an `add` between
            // the look and the wait is not missed.
            let notified = self.ready.notified();
            {
                let mut s = self.lock();
                if s.shutting_down {
                    return None;
                }
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The worker is finished with `key`. If it was added meanwhile, it is
    /// queued again now.
    pub fn done(&self, key: &T) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) && !s.shutting_down {
            s.queue.push_back(key.clone());
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Stops handing out keys and cancels delayed adds. Workers finish the
    /// key they hold, then [`WorkQueue::get`] returns `None`.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.shutdown.cancel();
        self.ready.notify_waiters();
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nothing queued and nothing being processed.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.queue.is_empty() && s.processing.is_empty()
    }
}
// ANCHOR_END: queue

// ANCHOR: workers
/// What a reconcile asks for when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Done until the next event about this object.
    AwaitChange,
    /// Reconcile again after this long even if nothing happens (for
    /// changes no event announces, such as time passing).
    RequeueAfter(Duration),
}

/// Runs `workers` workers on `queue` until it is shut down. Each worker is
/// client-go's `processNextWorkItem` in a loop: get a key, reconcile it,
/// then `forget` it on success or requeue it with backoff on error, and
/// always `done`.
///
/// The reconcile is **level-triggered**: it gets only the key, never the
/// event that queued it, and must work out what to do from the current
/// state alone.
pub async fn run_workers<T, F, Fut, E>(queue: Arc<WorkQueue<T>>, workers: usize, reconcile: F)
where
    T: Clone + Eq + Hash + Send + Sync + Debug + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: std::fmt::Display,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = Arc::clone(&queue);
        let reconcile = reconcile.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                match reconcile(key.clone()).await {
                    Ok(Action::AwaitChange) => queue.forget(&key),
                    Ok(Action::RequeueAfter(delay)) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), delay);
                    }
                    Err(err) => {
                        tracing::warn!(?key, %err, "reconcile failed; will retry with backoff");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A controller's main loop once its informers run: wait until every cache
/// has been listed (client-go's `WaitForCacheSync` — a controller that
/// reconciled from a half-filled cache would, say, create pods that already
/// exist), then run `workers` workers over `queue` until `shutdown`. The queue
/// is shut down on the way out, so the workers finish their current key and
/// stop.
pub async fn run_controller<T, F, Fut, E, SE>(
    name: &str,
    queue: Arc<WorkQueue<T>>,
    caches_synced: impl Future<Output = Result<(), SE>>,
    workers: usize,
    shutdown: CancellationToken,
    reconcile: F,
) -> anyhow::Result<()>
where
    T: Clone + Eq + Hash + Send + Sync + Debug + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: std::fmt::Display,
    SE: std::error::Error + Send + Sync + 'static,
{
    use anyhow::Context;
    tokio::select! {
        _ = shutdown.cancelled() => {}
        result = caches_synced => {
            result.context("informer stopped before its first list")?;
            tracing::info!("{name}: caches synced; starting workers");
            let stop = shutdown.clone();
            let on_shutdown = Arc::clone(&queue);
            tokio::spawn(async move {
                stop.cancelled().await;
                on_shutdown.shut_down();
            });
            run_workers(Arc::clone(&queue), workers, reconcile).await;
        }
    }
    queue.shut_down();
    Ok(())
}
// ANCHOR_END: workers

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waiting_is_queued_once() {
        let q = WorkQueue::<&str>::new();
        q.add("default/web");
        q.add("default/web");
        q.add("default/db");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("default/web"));
        assert_eq!(q.get().await, Some("default/db"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_being_processed_is_not_handed_out_again_until_done() {
        let q = WorkQueue::<&str>::new();
        q.add("k");
        let k = q.get().await.unwrap();
        // Added while a worker holds it: remembered, not queued.
        q.add("k");
        q.add("k");
        assert!(q.is_empty());
        q.done(&k);
        // Queued once more, because something changed during the reconcile.
        assert_eq!(q.len(), 1);
        let k = q.get().await.unwrap();
        q.done(&k);
        assert!(q.is_idle());
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s() {
        let b = Backoff::default();
        let delays: Vec<_> = (1..=5).map(|n| b.delay(n)).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80].map(Duration::from_millis).to_vec()
        );
        assert_eq!(b.delay(18), Duration::from_millis(5 << 17));
        assert_eq!(b.delay(19), Duration::from_secs(1000));
        assert_eq!(b.delay(1000), Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff_and_forgotten_on_success() {
        let q = WorkQueue::<&str>::new();
        q.add_rate_limited("k");
        q.add_rate_limited("k"); // second failure: 10 ms
        assert!(q.is_empty());
        let start = tokio::time::Instant::now();
        let k = q.get().await.unwrap();
        // The first delayed add (5 ms) arrives first; the second is folded in.
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        assert_eq!(q.failures(&k), 2);
        q.forget(&k);
        q.done(&k);
        assert_eq!(q.failures(&"k"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_run_one_key_concurrently_and_stop_on_shutdown() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let q = WorkQueue::<u32>::new();
        let running = Arc::new(Mutex::new(HashSet::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let workers = tokio::spawn(run_workers(Arc::clone(&q), 4, {
            let (running, runs, q) = (running.clone(), runs.clone(), q.clone());
            move |key: u32| {
                let (running, runs, q) = (running.clone(), runs.clone(), q.clone());
                async move {
                    assert!(
                        running.lock().unwrap().insert(key),
                        "{key} ran twice at once"
                    );
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Events keep arriving for the key while it is reconciled.
                    q.add(key);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.lock().unwrap().remove(&key);
                    Ok::<_, String>(Action::AwaitChange)
                }
            }
        }));
        for key in [1, 2, 1, 3, 1] {
            q.add(key);
        }
        tokio::time::sleep(Duration::from_millis(35)).await;
        q.shut_down();
        workers.await.unwrap();
        // Three keys, each re-run after every pass because it was re-added.
        assert!(runs.load(Ordering::SeqCst) >= 6);
    }
}
