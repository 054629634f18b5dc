//! `labs service`: a rolling update under load, through a Service.
//!
//! Three `demo-app` processes (the process runtime) behind a Service, and a
//! load generator that opens a new connection to the Service's cluster IP
//! for every request, at a fixed rate, while the Deployment rolls from v1
//! to v2. Every answer says which version served it, so the run shows the
//! versions changing over, and counts every failed request.
//!
//! With readiness probes and a preStop hook, no request fails. The flags
//! take each half away to show why it is there:
//!
//! * `--no-readiness`: a new pod counts as ready as soon as its container
//!   runs, before the app listens: the EndpointSlice controller lists it,
//!   kube-proxy sends it connections, and they are refused.
//! * `--no-drain`: no preStop hook, so the kubelet sends SIGTERM the moment
//!   the pod is deleted. The app stops accepting at once, while the
//!   kube-proxies may still choose it until they have synced (kube-proxy
//!   batches its syncs: `--iptables-min-sync-period`, 1 s by default, and the
//!   labs' proxy does the same): those connections fail.
//!
//! Unlike the narrated labs, this one runs on real time: real processes,
//! real sockets, real latency. What varies between runs (times, counts,
//! addresses) is redacted by [`redact`] wherever the output is compared.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use crate::apiserver::ApiServer;
use crate::cluster::{
    ClusterOptions, Components, Nodes, RuntimeKind, api_config, start_docker_kubelets,
    start_process_kubelets,
};
use crate::kubelet::runtime::LoopbackIpam;
use crate::kubelet::runtime::process::ProcessConfig;
use crate::lab::narration::wait_until;
use crate::proxy::proxier::{KubeProxy, ProxyOptions};
use crate::proxy::{iptables, service_ports};
use crate::store::Store;

/// The Service's port: a high port, so that the lab needs no root to bind
/// it (ports below 1024 do on Linux).
pub const SERVICE_PORT: u16 = 8000;
/// Where `demo-app` listens in its pod.
pub const CONTAINER_PORT: u16 = 8080;
const NODES: usize = 3;

/// `labs service`'s flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Leave out the readiness probe: new pods get traffic before they listen.
    #[arg(long)]
    pub no_readiness: bool,
    /// Leave out the preStop hook: old pods stop before the proxies know.
    #[arg(long)]
    pub no_drain: bool,
    /// Also print the rules kube-proxy's iptables and nftables modes would
    /// program for the Service.
    #[arg(long)]
    pub iptables: bool,
    /// Requests per second sent to the cluster IP.
    #[arg(long, default_value_t = 100)]
    pub rps: u32,
    /// The replicas of the Deployment.
    #[arg(long, default_value_t = 3)]
    pub replicas: i32,
    /// The kubelets' container runtime: `process` (the default: child
    /// processes) or `docker` (real containers, a pause container per pod).
    #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
    pub runtime: RuntimeKind,
    /// The executable with the hidden `app` subcommand (the `labs` binary).
    #[arg(skip)]
    pub exe: Option<std::path::PathBuf>,
    /// The first pod address (127.0.1.1 by default) and the Services' range
    /// (127.2.0.0/16): tests that run several labs at once give each its own.
    #[arg(skip)]
    pub addresses: Option<(Ipv4Addr, (Ipv4Addr, u8))>,
}

impl Default for ServiceArgs {
    fn default() -> Self {
        ServiceArgs {
            no_readiness: false,
            no_drain: false,
            iptables: false,
            rps: 100,
            replicas: 3,
            runtime: RuntimeKind::Process,
            exe: None,
            addresses: None,
        }
    }
}

/// What one request saw.
#[derive(Debug, Clone)]
enum Outcome {
    /// The version that answered, and how long it took.
    Answered(String, Duration),
    /// The connection was refused, reset, or the answer was not a 200.
    Failed(String),
}

/// The whole run, for the summary and the tests.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub requests: usize,
    pub errors: usize,
    /// Answers per version.
    pub versions: BTreeMap<String, usize>,
    /// Failures by kind (`connection refused`, `HTTP 503`, …).
    pub failures: BTreeMap<String, usize>,
    pub p50: Duration,
    pub p99: Duration,
    /// From the image change until the rollout was complete.
    pub rollout: Duration,
}

// ANCHOR: deployment
/// The Deployment: `demo-app` (which takes a second to start listening)
/// with a readiness probe on `/readyz` and a preStop hook that keeps the old pod serving for 3 s after it is told to
/// go, while the change reaches every kube-proxy. maxUnavailable 0: the
/// capacity never drops during the rollout.
pub fn deployment(args: &ServiceArgs, image: &str) -> Deployment {
    let mut container = json!({
        "name": "demo-app",
        "image": image,
        "ports": [{"containerPort": CONTAINER_PORT, "name": "http"}],
        // Like a real app, it takes a moment before it listens.
        "env": [{"name": "STARTUP_SECONDS", "value": "1"}],
    });
    if !args.no_readiness {
        container["readinessProbe"] = json!({
            "httpGet": {"path": "/readyz", "port": CONTAINER_PORT},
            "periodSeconds": 1,
        });
    }
    if !args.no_drain {
        container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 3}}});
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": args.replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                },
            },
        },
    }))
    .expect("a valid Deployment")
}
// ANCHOR_END: deployment

/// The Service in front of it.
pub fn service() -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }))
    .expect("a valid Service")
}

pub async fn run(args: &ServiceArgs, out: &mut dyn Write) -> anyhow::Result<Report> {
    let exe = match &args.exe {
        Some(exe) => ProcessConfig {
            exe: exe.clone(),
            tags: None,
        },
        None => ProcessConfig::current_exe().context("cannot find the labs executable")?,
    };
    let mut config = api_config(300);
    let ipam = match args.addresses {
        Some((first_pod_ip, service_cidr)) => {
            config.service_cidr = service_cidr;
            LoopbackIpam::starting_at(first_pod_ip)
        }
        None => LoopbackIpam::default(),
    };
    let api = ApiServer::with_config(Store::new(), config);
    let components = Components::start(&api, &ClusterOptions::default());
    let nodes = match args.runtime {
        RuntimeKind::Process => Nodes {
            kubelets: start_process_kubelets(&api, &api.client(), NODES, exe, ipam),
            docker: Vec::new(),
        },
        RuntimeKind::Docker => {
            // Its own label scope, so that it never touches another
            // cluster's containers on the same engine.
            start_docker_kubelets(&api, &api.client(), NODES, "service-lab-", ipam).await?
        }
        RuntimeKind::Simulated => {
            anyhow::bail!("the Service lab needs real processes: --runtime process or docker")
        }
    };
    let proxies: Vec<KubeProxy> = (1..=NODES)
        .map(|i| KubeProxy::start(api.client(), format!("node-{i}"), ProxyOptions::default()))
        .collect();
    writeln!(
        out,
        "A cluster in this process: {NODES} nodes ({} runtime), controllers, scheduler, a kube-proxy per node.",
        match args.runtime {
            RuntimeKind::Docker => "docker",
            _ => "process",
        }
    )?;
    let result = scenario(&api, args, out).await;
    // Clean up whatever happened: delete the pods (their processes stop),
    // then the components. Dropping a runtime kills what is left.
    let client = api.client();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let _ = deployments.delete("web", &DeleteParams::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match pods.list(&ListParams::default()).await {
            Ok(list) if list.items.is_empty() => break,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    for proxy in proxies {
        proxy.stop().await;
    }
    components.shutdown().await?;
    nodes.stop().await;
    result
}

async fn scenario(
    api: &ApiServer,
    args: &ServiceArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    let client = api.client();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());

    writeln!(out)?;
    writeln!(
        out,
        "$ kubectl create deployment web --image=workbook/demo-app:v1 --replicas={}   (readiness probe: {}, preStop sleep: {})",
        args.replicas,
        if args.no_readiness { "none" } else { "/readyz" },
        if args.no_drain { "none" } else { "3 s" },
    )?;
    deployments
        .create(
            &PostParams::default(),
            &deployment(args, "workbook/demo-app:v1"),
        )
        .await?;
    writeln!(
        out,
        "$ kubectl expose deployment web --port {SERVICE_PORT} --target-port http"
    )?;
    let svc = services.create(&PostParams::default(), &service()).await?;
    let cluster_ip: Ipv4Addr = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .context("the Service got no cluster IP")?
        .parse()
        .context("the cluster IP is not IPv4")?;
    writeln!(
        out,
        "  service/web  ClusterIP  {cluster_ip}  {SERVICE_PORT}/TCP"
    )?;

    let replicas = args.replicas as usize;
    let ready_endpoints = |client: kube::Client| async move {
        let slices: Api<EndpointSlice> = Api::default_namespaced(client);
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await?;
        let ready = list
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        Ok(ready == replicas)
    };
    let limit = Duration::from_secs(30);
    wait_until(&client, "3 ready endpoints", limit, ready_endpoints).await?;
    writeln!(
        out,
        "$ kubectl get endpointslices -l kubernetes.io/service-name=web"
    )?;
    let list = slices.list(&ListParams::default()).await?;
    for slice in &list.items {
        let addrs: Vec<&str> = slice
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.first())
            .map(String::as_str)
            .collect();
        // The slice's name is generated (`web-` and 5 random characters).
        writeln!(out, "  web-…  IPv4  {CONTAINER_PORT}  {}", addrs.join(","))?;
    }
    // Let every kube-proxy catch up with the endpoints.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    if args.iptables {
        let svcs = services.list(&ListParams::default()).await?.items;
        let ports = service_ports(&svcs, &list.items);
        writeln!(out)?;
        writeln!(
            out,
            "What kube-proxy's iptables mode would program (iptables-save -t nat):"
        )?;
        // Unindented, exactly as `iptables-save` prints it.
        write!(
            out,
            "{}",
            iptables::render(&ports, &iptables::Options::default())
        )?;
        writeln!(out)?;
        writeln!(out, "And its nftables mode (nft list table ip kube-proxy):")?;
        let nft = crate::proxy::nftables::Options::default();
        write!(out, "{}", crate::proxy::nftables::render(&ports, &nft))?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "Sending {} requests/s to http://{cluster_ip}:{SERVICE_PORT}/ (a new connection each), then:",
        args.rps
    )?;
    writeln!(
        out,
        "$ kubectl set image deployment/web demo-app=workbook/demo-app:v2"
    )?;
    let load = Load::start(cluster_ip, args.rps);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let changed_at = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "demo-app", "image": "workbook/demo-app:v2"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    let complete = |client: kube::Client| async move {
        let d = Api::<Deployment>::default_namespaced(client)
            .get("web")
            .await?;
        Ok(rollout_complete(&d))
    };
    let limit = Duration::from_secs(60);
    wait_until(&client, "the rollout to complete", limit, complete).await?;
    let rollout = changed_at.elapsed();
    // Two more seconds of v2 only, then stop and wait for the last answers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcomes = load.stop().await;

    writeln!(out)?;
    writeln!(out, "  second   v1    v2   errors   p50      p99")?;
    let report = summarize(&outcomes, rollout);
    for (second, row) in per_second(&outcomes) {
        writeln!(
            out,
            "  t={second:<3}s  {:>4}  {:>4}  {:>6}   {:>6}  {:>6}",
            row.versions.get("v1").copied().unwrap_or(0),
            row.versions.get("v2").copied().unwrap_or(0),
            row.errors,
            ms(row.p50),
            ms(row.p99),
        )?;
    }
    writeln!(out)?;
    for (kind, n) in &report.failures {
        writeln!(out, "  failed: {n} × {kind}")?;
    }
    writeln!(out, "{}", summary_line(&report))?;
    Ok(report)
}

/// `1,840 requests, 0 errors, p50 1.2 ms, p99 4.8 ms, v1 → v2 in 9.6 s`
pub fn summary_line(r: &Report) -> String {
    format!(
        "{} requests, {} errors, p50 {}, p99 {}, v1 → v2 in {:.1} s",
        thousands(r.requests),
        thousands(r.errors),
        ms(r.p50),
        ms(r.p99),
        r.rollout.as_secs_f64()
    )
}

fn thousands(n: usize) -> String {
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

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// kubectl's `rollout status` rule: the controller has seen the newest
/// spec, every replica runs the new template, no old replica is left, and
/// all are available.
fn rollout_complete(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
}

// ANCHOR: load
/// The load generator: `rps` requests a second, each on a new connection
/// (as `curl` in a loop would), each with a 2 s timeout, until stopped.
/// Bounded: it only ever talks to the one loopback address it is given.
struct Load {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<(Duration, Outcome)>>,
}

impl Load {
    fn start(ip: Ipv4Addr, rps: u32) -> Load {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client");
            let url = format!("http://{ip}:{SERVICE_PORT}/");
            let results = Arc::new(Mutex::new(Vec::new()));
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rps.max(1));
            let mut inflight = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let (client, url, results) = (client.clone(), url.clone(), Arc::clone(&results));
                let sent = start.elapsed();
                inflight.spawn(async move {
                    let began = Instant::now();
                    let outcome = match client.get(&url).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            match resp.json::<serde_json::Value>().await {
                                Ok(v) => Outcome::Answered(
                                    v["version"].as_str().unwrap_or("?").to_string(),
                                    began.elapsed(),
                                ),
                                Err(_) => Outcome::Failed("a broken answer".into()),
                            }
                        }
                        Ok(resp) => Outcome::Failed(format!("HTTP {}", resp.status().as_u16())),
                        Err(e) => Outcome::Failed(failure_kind(&e)),
                    };
                    results.lock().unwrap().push((sent, outcome));
                });
            }
            while inflight.join_next().await.is_some() {}
            let mut results = std::mem::take(&mut *results.lock().unwrap());
            results.sort_by_key(|(at, _)| *at);
            results
        });
        Load { stop, task }
    }

    async fn stop(self) -> Vec<(Duration, Outcome)> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}
// ANCHOR_END: load

/// A failed request in a few words: what a learner should recognise.
fn failure_kind(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut source: Option<&dyn Error> = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                _ => format!("{}", io.kind()).to_lowercase(),
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "connection closed before an answer".into()
    }
}

#[derive(Default)]
struct Second {
    versions: BTreeMap<String, usize>,
    errors: usize,
    p50: Duration,
    p99: Duration,
}

fn per_second(outcomes: &[(Duration, Outcome)]) -> BTreeMap<u64, Second> {
    let mut seconds: BTreeMap<u64, (Second, Vec<Duration>)> = BTreeMap::new();
    for (at, outcome) in outcomes {
        let (row, latencies) = seconds.entry(at.as_secs()).or_default();
        match outcome {
            Outcome::Answered(v, latency) => {
                *row.versions.entry(v.clone()).or_default() += 1;
                latencies.push(*latency);
            }
            Outcome::Failed(_) => row.errors += 1,
        }
    }
    seconds
        .into_iter()
        .map(|(s, (mut row, mut latencies))| {
            latencies.sort();
            row.p50 = percentile(&latencies, 50);
            row.p99 = percentile(&latencies, 99);
            (s, row)
        })
        .collect()
}

fn summarize(outcomes: &[(Duration, Outcome)], rollout: Duration) -> Report {
    let mut report = Report {
        requests: outcomes.len(),
        rollout,
        ..Report::default()
    };
    let mut latencies = Vec::new();
    for (_, outcome) in outcomes {
        match outcome {
            Outcome::Answered(v, latency) => {
                *report.versions.entry(v.clone()).or_default() += 1;
                latencies.push(*latency);
            }
            Outcome::Failed(kind) => {
                report.errors += 1;
                *report.failures.entry(kind.clone()).or_default() += 1;
            }
        }
    }
    latencies.sort();
    report.p50 = percentile(&latencies, 50);
    report.p99 = percentile(&latencies, 99);
    report
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The output with what varies between runs taken out: the per-second rows
/// (their number follows the rollout's duration), and every number
/// (counts, milliseconds, addresses, generated names). What is left is the
/// shape a learner sees, which the book's copy must match.
pub fn redact(output: &str) -> String {
    let mut lines = Vec::new();
    for line in output.lines() {
        if line.trim_start().starts_with("t=") {
            continue;
        }
        let mut redacted = String::new();
        let mut in_number = false;
        for c in line.chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    redacted.push('N');
                }
                in_number = true;
            } else if in_number && (c == '.' || c == ',') {
                // 1,840 and 4.8 are one number
            } else {
                in_number = false;
                redacted.push(c);
            }
        }
        lines.push(redacted);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let v: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&v, 50), ms(50));
        assert_eq!(percentile(&v, 99), ms(99));
        assert_eq!(percentile(&[ms(7)], 99), ms(7));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn the_summary_reads_like_the_book() {
        let r = Report {
            requests: 1840,
            errors: 0,
            p50: Duration::from_micros(1200),
            p99: Duration::from_micros(4800),
            rollout: Duration::from_millis(9600),
            ..Report::default()
        };
        assert_eq!(
            summary_line(&r),
            "1,840 requests, 0 errors, p50 1.2 ms, p99 4.8 ms, v1 → v2 in 9.6 s"
        );
    }

    #[test]
    fn redaction_keeps_the_shape_only() {
        let out = "  t=3  s  97  3\nservice/web  ClusterIP  127.2.0.10  8000/TCP\n1,840 requests, 0 errors";
        assert_eq!(
            redact(out),
            "service/web  ClusterIP  N  N/TCP\nN requests, N errors"
        );
    }
}
