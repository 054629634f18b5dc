//! The traffic probe: requests to the app's Service during the whole
//! rollout and rollback, counting which version answered, the errors and
//! the latency.
//!
//! This is the audience's proof that a rolling update is what it claims to
//! be: the answers change from v1 to v2 while *no request fails*. Every
//! request opens a new connection (as a browser hitting reload, or `curl`
//! in a loop, would), so kube-proxy chooses a pod for each one and the
//! probe sees every pod the Service routes to, including the ones that are
//! about to go.
//!
//! On the local target the probe runs in this process and talks to the
//! Service's cluster IP, where the node's kube-proxy listens
//! ([`InProcessProbe`]). On kind and GKE the cluster IP is not reachable
//! from the laptop, so the probe runs as a pod in the cluster instead
//! ([`pod::PodProbe`]); both report through the [`Probe`] trait.

pub mod pod;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the probe has seen so far.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ProbeReport {
    pub requests: usize,
    pub errors: usize,
    /// Answers per version (`v1`, `v2`).
    pub versions: BTreeMap<String, usize>,
    /// Failures by kind (`connection refused`, `HTTP 503`, ...).
    pub failures: BTreeMap<String, usize>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The database's visit count in the last answer (`None`: no database).
    pub visits: Option<i64>,
    /// The versions the database holds visits of (from the answers'
    /// `recent_visits`): the visits table outlives every pod.
    pub versions_in_database: BTreeSet<String>,
}

/// A running probe.
#[async_trait]
pub trait Probe: Send {
    /// The counts so far, for the live view.
    fn snapshot(&self) -> ProbeReport;
    /// Stops sending, waits for the requests in flight, and reports.
    async fn stop(self: Box<Self>) -> anyhow::Result<ProbeReport>;
}

#[derive(Default)]
pub(crate) struct Stats {
    report: ProbeReport,
    latencies: Vec<Duration>,
}

impl Stats {
    pub(crate) fn record(&mut self, outcome: Outcome) {
        self.report.requests += 1;
        match outcome {
            Outcome::Answered {
                version,
                latency,
                visits,
                in_database,
            } => {
                *self.report.versions.entry(version).or_default() += 1;
                self.latencies.push(latency);
                if visits.is_some() {
                    self.report.visits = self.report.visits.max(visits);
                }
                self.report.versions_in_database.extend(in_database);
            }
            Outcome::Failed(kind) => {
                self.report.errors += 1;
                *self.report.failures.entry(kind).or_default() += 1;
            }
        }
    }

    pub(crate) fn report(&self) -> ProbeReport {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        ProbeReport {
            p50_ms: ms(percentile(&sorted, 50)),
            p99_ms: ms(percentile(&sorted, 99)),
            ..self.report.clone()
        }
    }
}

pub(crate) enum Outcome {
    Answered {
        version: String,
        latency: Duration,
        visits: Option<i64>,
        in_database: Vec<String>,
    },
    Failed(String),
}

// ANCHOR: probe
/// The probe of the local target: `rps` requests a second to `url`, each on
/// a new connection with a 2-second timeout, until stopped.
pub struct InProcessProbe {
    stats: Arc<Mutex<Stats>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessProbe {
    pub fn start(url: String, rps: u32) -> InProcessProbe {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = CancellationToken::new();
        let (shared, token) = (Arc::clone(&stats), stop.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                // No keep-alive: a new connection, so a new choice of pod,
                // for every request.
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client");
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rps.max(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut inflight = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (client, url, stats) = (client.clone(), url.clone(), Arc::clone(&shared));
                inflight.spawn(async move {
                    let outcome = request(&client, &url).await;
                    stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(outcome);
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        });
        InProcessProbe { stats, stop, task }
    }
}

async fn request(client: &reqwest::Client, url: &str) -> Outcome {
    let began = Instant::now();
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<serde_json::Value>().await {
            Ok(v) => Outcome::Answered {
                version: v["version"].as_str().unwrap_or("?").to_string(),
                latency: began.elapsed(),
                visits: v["total_visits"].as_i64(),
                in_database: v["recent_visits"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            },
            Err(_) => Outcome::Failed("a broken answer".into()),
        },
        Ok(resp) => Outcome::Failed(format!("HTTP {}", resp.status().as_u16())),
        Err(e) => Outcome::Failed(failure_kind(&e)),
    }
}
// ANCHOR_END: probe

#[async_trait]
impl Probe for InProcessProbe {
    fn snapshot(&self) -> ProbeReport {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report()
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<ProbeReport> {
        self.stop.cancel();
        let InProcessProbe { stats, task, .. } = *self;
        task.await
            .map_err(|e| anyhow::anyhow!("the probe failed: {e}"))?;
        let report = stats.lock().unwrap_or_else(|e| e.into_inner()).report();
        Ok(report)
    }
}

/// A failed request in a few words: what a learner should recognise.
fn failure_kind(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut source: Option<&dyn Error> = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                kind => format!("{kind}").to_lowercase(),
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        "connection closed before an answer".into()
    }
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `1,240`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_versions_errors_and_visits() {
        let mut s = Stats::default();
        let answered = |v: &str, visits| Outcome::Answered {
            version: v.into(),
            latency: Duration::from_millis(2),
            visits: Some(visits),
            in_database: vec!["v1".into(), v.into()],
        };
        s.record(answered("v1", 3));
        s.record(answered("v2", 5));
        s.record(Outcome::Failed("connection refused".into()));
        let r = s.report();
        assert_eq!((r.requests, r.errors), (3, 1));
        assert_eq!(r.versions["v1"] + r.versions["v2"], 2);
        assert_eq!(r.visits, Some(5));
        assert_eq!(r.versions_in_database.len(), 2);
        assert_eq!(r.p50_ms, 2.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1240), "1,240");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
