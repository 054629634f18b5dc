//! Probes: is the container alive, ready, started?
//!
//! Three questions, three probes, one mechanism:
//!
//! * **startup**: has the app finished starting? Until it has, the other two
//!   probes are not run, so a slow starter is not killed by its liveness
//!   probe. A startup failure restarts the container.
//! * **liveness**: is the app still working? A failure restarts the
//!   container. Its result starts as Success.
//! * **readiness**: may it receive traffic? A failure takes the pod out of
//!   its Services' endpoints, nothing else. Its result starts as **Failure**:
//!   a pod is not ready until its first successful probe.
//!
//! Each probe is run every `periodSeconds`, the first time after
//! `initialDelaySeconds`; its result only changes after `failureThreshold`
//! consecutive failures or `successThreshold` consecutive successes. That is
//! [`ProbeTracker`], a pure state machine (the kubelet's prober `worker` and
//! results manager, `pkg/kubelet/prober/worker.go`, without goroutines).
//!
//! The probing itself (an HTTP GET, a TCP connect, a command) is async and
//! lives at the bottom of this file; the runtime decides how to reach the
//! container ([`super::runtime::Runtime::probe`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::backoff::add;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn probe(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// A probe's published result (`results.Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Unknown,
    Success,
    Failure,
}

/// The timing fields of a `Probe`, with the API server's defaults filled in
/// (period 10 s, timeout 1 s, thresholds 1 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.map_or(default, |v| v.max(0) as u64))
        };
        ProbeTiming {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

// ANCHOR: probe_tracker
/// One probe of one container instance. A new container (a restart) gets new
/// trackers, so a restarted container is unready until probed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTracker {
    pub kind: ProbeKind,
    /// What the kubelet acts on.
    pub result: ProbeResult,
    /// The last raw outcome and how many times in a row it came
    /// (`lastResult`, `resultRun`).
    last_outcome: Option<bool>,
    run: u32,
    pub last_probe_at: Option<Timestamp>,
    /// After a liveness or startup failure the container is going to be
    /// killed: stop probing it (`onHold`).
    pub on_hold: bool,
}

impl ProbeTracker {
    pub fn new(kind: ProbeKind) -> Self {
        // The initial values of the prober workers.
        let result = match kind {
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Startup => ProbeResult::Unknown,
        };
        ProbeTracker {
            kind,
            result,
            last_outcome: None,
            run: 0,
            last_probe_at: None,
            on_hold: false,
        }
    }

    /// When this probe should next run for a container started at
    /// `started_at`: after `initialDelaySeconds`, then every `periodSeconds`.
    /// `None` once on hold.
    pub fn next_due(&self, timing: &ProbeTiming, started_at: Timestamp) -> Option<Timestamp> {
        if self.on_hold {
            return None;
        }
        let first = add(started_at, timing.initial_delay);
        Some(match self.last_probe_at {
            None => first,
            Some(last) => add(last, timing.period).max(first),
        })
    }

    /// Count one probe outcome; the published result changes only after
    /// `successThreshold` successes or `failureThreshold` failures in a row.
    pub fn record(&mut self, success: bool, timing: &ProbeTiming, now: Timestamp) {
        self.last_probe_at = Some(now);
        if self.last_outcome == Some(success) {
            self.run += 1;
        } else {
            self.last_outcome = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        if self.run < threshold {
            return; // below threshold: leave the result as it is
        }
        self.result = if success {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        };
        if !success && self.kind != ProbeKind::Readiness {
            self.on_hold = true;
            self.run = 0;
        }
    }
}
// ANCHOR_END: probe_tracker

/// A probe resolved against a container: what to do, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    HttpGet {
        scheme: String,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: String,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

/// How one probe run went. `output` is what `kubectl describe` shows in the
/// `Unhealthy` event ("Readiness probe failed: HTTP probe failed with
/// statuscode: 503").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub success: bool,
    pub output: String,
}

impl ProbeOutcome {
    pub fn success(output: impl Into<String>) -> Self {
        ProbeOutcome {
            success: true,
            output: output.into(),
        }
    }
    pub fn failure(output: impl Into<String>) -> Self {
        ProbeOutcome {
            success: false,
            output: output.into(),
        }
    }
}

/// Resolve a `Probe`'s handler for a container whose pod has address
/// `pod_ip`: named ports are looked up in the container's ports, the host
/// defaults to the pod IP. gRPC probes are not supported.
pub fn probe_action(
    probe: &Probe,
    container: &Container,
    pod_ip: &str,
) -> Result<ProbeAction, String> {
    let port_of = |p: &IntOrString| -> Result<u16, String> {
        match p {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("invalid port number: {n}"))
            }
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name)),
        }
    };
    if let Some(h) = &probe.http_get {
        return Ok(ProbeAction::HttpGet {
            scheme: h
                .scheme
                .clone()
                .unwrap_or_else(|| "HTTP".into())
                .to_lowercase(),
            host: h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string()),
            port: port_of(&h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        });
    }
    if let Some(t) = &probe.tcp_socket {
        return Ok(ProbeAction::TcpSocket {
            host: t
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string()),
            port: port_of(&t.port)?,
        });
    }
    if let Some(e) = &probe.exec {
        return Ok(ProbeAction::Exec {
            command: e.command.clone().unwrap_or_default(),
        });
    }
    Err("unsupported probe handler (only httpGet, tcpSocket and exec)".into())
}

// ANCHOR: http_probe
/// An HTTP GET probe, as the kubelet does it: a fresh connection each time
/// (keep-alives off), `User-Agent: kube-probe/1.35`, redirects not followed,
/// and any status from 200 to 399 is a success.
pub async fn http_get(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeOutcome {
    let url = format!(
        "{scheme}://{}/{}",
        host_port(host, port),
        path.trim_start_matches('/')
    );
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::failure(e.to_string()),
    };
    let mut req = client
        .get(&url)
        .header("User-Agent", "kube-probe/1.35")
        .header("Accept", "*/*");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            // Upstream keeps at most 10 KiB of the body as the probe output.
            let body: String = body.chars().take(10 * 1024).collect();
            if (200..400).contains(&code) {
                ProbeOutcome::success(body)
            } else {
                ProbeOutcome::failure(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Err(e) if e.is_timeout() => ProbeOutcome::failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => ProbeOutcome::failure(format!("Get \"{url}\": {}", root_cause(&e))),
    }
}
// ANCHOR_END: http_probe

/// A TCP probe: success if a connection can be opened within the timeout.
pub async fn tcp_socket(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => ProbeOutcome::success(""),
        Ok(Err(e)) => ProbeOutcome::failure(format!("dial tcp {addr}: connect: {}", e.kind())),
        Err(_) => ProbeOutcome::failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn timing(delay: u64, period: u64, succ: u32, fail: u32) -> ProbeTiming {
        ProbeTiming {
            initial_delay: Duration::from_secs(delay),
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(1),
            success_threshold: succ,
            failure_threshold: fail,
        }
    }

    #[test]
    fn initial_results() {
        assert_eq!(
            ProbeTracker::new(ProbeKind::Readiness).result,
            ProbeResult::Failure
        );
        assert_eq!(
            ProbeTracker::new(ProbeKind::Liveness).result,
            ProbeResult::Success
        );
        assert_eq!(
            ProbeTracker::new(ProbeKind::Startup).result,
            ProbeResult::Unknown
        );
    }

    #[test]
    fn schedule_follows_initial_delay_then_period() {
        let tm = timing(5, 10, 1, 3);
        let mut p = ProbeTracker::new(ProbeKind::Readiness);
        assert_eq!(p.next_due(&tm, t(0)), Some(t(5)));
        p.record(true, &tm, t(5));
        assert_eq!(p.next_due(&tm, t(0)), Some(t(15)));
    }

    /// (outcomes in order, result after each) for readiness with
    /// successThreshold 2 and failureThreshold 3.
    #[test]
    fn readiness_thresholds() {
        let tm = timing(0, 1, 2, 3);
        let mut p = ProbeTracker::new(ProbeKind::Readiness);
        use ProbeResult::*;
        let table = [
            (true, Failure), // one success is not enough
            (true, Success),
            (false, Success),
            (false, Success),
            (true, Success), // the failure run is broken
            (false, Success),
            (false, Success),
            (false, Failure), // three in a row
            (false, Failure),
            (true, Failure),
            (true, Success),
        ];
        for (i, (ok, want)) in table.into_iter().enumerate() {
            p.record(ok, &tm, t(i as i64));
            assert_eq!(p.result, want, "after probe {i}");
            assert!(!p.on_hold, "readiness never holds");
        }
    }

    #[test]
    fn liveness_failure_holds() {
        let tm = timing(0, 10, 1, 3);
        let mut p = ProbeTracker::new(ProbeKind::Liveness);
        p.record(false, &tm, t(10));
        p.record(false, &tm, t(20));
        assert_eq!(p.result, ProbeResult::Success);
        p.record(false, &tm, t(30));
        assert_eq!(p.result, ProbeResult::Failure);
        assert!(p.on_hold);
        assert_eq!(p.next_due(&tm, t(0)), None);
    }

    #[test]
    fn startup_success_after_one() {
        let tm = timing(0, 10, 1, 30);
        let mut p = ProbeTracker::new(ProbeKind::Startup);
        p.record(false, &tm, t(0));
        assert_eq!(p.result, ProbeResult::Unknown);
        p.record(true, &tm, t(10));
        assert_eq!(p.result, ProbeResult::Success);
    }

    #[test]
    fn named_ports_resolve() {
        use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};
        let c = Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("/healthz".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            probe_action(&probe, &c, "127.0.1.1"),
            Ok(ProbeAction::HttpGet {
                scheme: "http".into(),
                host: "127.0.1.1".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![]
            })
        );
        let bad = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("nope".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(probe_action(&bad, &c, "127.0.1.1").is_err());
    }
}
