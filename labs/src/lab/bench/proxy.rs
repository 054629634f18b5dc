//! `labs bench proxy`: what does the userspace kube-proxy cost, and how
//! quickly does it stop sending traffic to a pod that turned not-ready?
//!
//! One process, loopback only: the in-process API server, the EndpointSlice
//! controller, one kube-proxy, and `demo-app` backends served in-process on
//! their own 127.0.x.y addresses (no kubelet: the bench writes the pods'
//! status itself, as a kubelet would). Two measurements:
//!
//! 1. **Throughput and latency**, in the same run: keep-alive HTTP/1.1
//!    clients send `GET /` straight to the pods, then through the cluster
//!    IP (each bounded by a request count and a time limit). Reported side
//!    by side and as a ratio. Goal on the workbook's 2-core machine: the
//!    proxy adds < 20% at p50 and sustains ≥ 10,000 requests/s.
//! 2. **Reaction time**: a pod's Ready condition is set to False, and the
//!    clock runs until the proxy's sync no longer offers it (pod status →
//!    pod watch → EndpointSlice controller → slice write → slice watch →
//!    kube-proxy). Goal: < 100 ms.
//!
//! The load generator shares the two cores with everything it measures, so
//! the absolute numbers are a floor, not what a dedicated client would see.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::apiserver::ApiServer;
use crate::controllers::endpointslice::controller::{
    self as es_controller, EndpointSliceController,
};
use crate::proxy::proxier::{KubeProxy, ProxyOptions};
use crate::proxy::{ServicePortInfo, usable_endpoints};
use crate::store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Requests per run (direct, then through the proxy).
    #[arg(long, default_value_t = 40_000)]
    pub requests: usize,
    /// Stop a run after this many seconds even if requests are left.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Backend pods behind the Service.
    #[arg(long, default_value_t = 2)]
    pub pods: u8,
    /// How many times to flip a pod to not-ready for the reaction time.
    #[arg(long, default_value_t = 10)]
    pub flips: usize,
}

/// What one load run measured.
struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    /// Sorted latencies of the successful requests.
    latencies: Vec<Duration>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.pods >= 1, "--pods must be at least 1");
    let api = ApiServer::new(Store::new());
    let client = api.client();
    let shutdown = CancellationToken::new();
    let controller =
        EndpointSliceController::new(client.clone(), es_controller::Options::default());
    tokio::spawn(controller.run(shutdown.clone()));

    // Addresses of our own, away from the labs' usual ranges.
    let third = 200 + (std::process::id() % 50) as u8;
    let cluster_ip = Ipv4Addr::new(127, 2, third, 1);
    let mut pod_urls = Vec::new();
    for i in 0..args.pods {
        let ip = Ipv4Addr::new(127, 0, third, i + 1);
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .with_context(|| format!("cannot listen on {ip}"))?;
        let port = listener.local_addr()?.port();
        let name = format!("web-{i}");
        let app = demo_app::App::new(demo_app::AppInfo {
            version: "v1".into(),
            pod: name.clone(),
        });
        let stop = shutdown.clone();
        tokio::spawn(demo_app::serve(listener, app, async move {
            stop.cancelled().await
        }));
        create_pod(&client, &name, ip, port).await?;
        pod_urls.push(format!("http://{ip}:{port}/"));
    }
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"clusterIP": cluster_ip.to_string(), "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
    }))?;
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc)
        .await
        .context("creating the Service")?;

    let proxy = KubeProxy::start(client.clone(), "node-1", ProxyOptions::default());
    let mut synced = proxy.synced();
    let pods = usize::from(args.pods);
    tokio::time::timeout(
        Duration::from_secs(10),
        synced.wait_for(|p| usable(p).len() == pods),
    )
    .await
    .context("the proxy did not see the endpoints within 10 s")??;

    println!(
        "kube-proxy bench (userspace mode): {} pods behind {cluster_ip}:8080, {} keep-alive connections, \
         up to {} requests or {} s per run, {} CPUs",
        args.pods,
        args.connections,
        args.requests,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let limit = Duration::from_secs(args.seconds);
    // Warm up both paths (connections, allocator), then measure.
    let service_url = vec![format!("http://{cluster_ip}:8080/")];
    load(&pod_urls, args.connections, 1_000, limit).await;
    load(&service_url, args.connections, 1_000, limit).await;
    let direct = load(&pod_urls, args.connections, args.requests, limit).await;
    let proxied = load(&service_url, args.connections, args.requests, limit).await;

    println!(
        "{:<16}{:>10}{:>8}{:>12}{:>12}{:>12}",
        "", "requests", "errors", "req/s", "p50", "p99"
    );
    for (name, r) in [("straight to pods", &direct), ("through proxy", &proxied)] {
        println!(
            "{name:<16}{:>10}{:>8}{:>12.0}{:>12}{:>12}",
            r.requests,
            r.errors,
            r.rps(),
            format!("{:.0} µs", r.percentile(0.50).as_secs_f64() * 1e6),
            format!("{:.0} µs", r.percentile(0.99).as_secs_f64() * 1e6),
        );
    }
    let p50_ratio = proxied.percentile(0.50).as_secs_f64() / direct.percentile(0.50).as_secs_f64();
    let p99_ratio = proxied.percentile(0.99).as_secs_f64() / direct.percentile(0.99).as_secs_f64();
    println!(
        "proxy / direct: p50 × {p50_ratio:.2} ({:+.0}%), p99 × {p99_ratio:.2}, throughput × {:.2}  \
         (goals: p50 < +20%, ≥ 10,000 req/s through the proxy)",
        (p50_ratio - 1.0) * 100.0,
        proxied.rps() / direct.rps(),
    );

    // Reaction time: not-ready → no longer chosen.
    let target = Ipv4Addr::new(127, 0, third, 1);
    let chosen = |ports: &[ServicePortInfo]| usable(ports).iter().any(|a| *a.ip() == target);
    let mut times = Vec::new();
    for _ in 0..args.flips {
        let started = Instant::now();
        set_ready(&client, "web-0", false).await?;
        tokio::time::timeout(Duration::from_secs(10), synced.wait_for(|p| !chosen(p)))
            .await
            .context("the proxy kept choosing the not-ready pod for 10 s")??;
        times.push(started.elapsed());
        set_ready(&client, "web-0", true).await?;
        tokio::time::timeout(Duration::from_secs(10), synced.wait_for(|p| chosen(p)))
            .await
            .context("the proxy did not take the pod back within 10 s")??;
    }
    times.sort();
    if !times.is_empty() {
        println!(
            "pod not-ready → proxy stops choosing it: median {:.1} ms, max {:.1} ms over {} flips (goal < 100 ms)",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            times.len(),
        );
    }

    proxy.stop().await;
    shutdown.cancel();
    Ok(())
}

/// The usable endpoints' addresses of every service port.
fn usable(ports: &[ServicePortInfo]) -> Vec<std::net::SocketAddrV4> {
    ports
        .iter()
        .flat_map(|sp| usable_endpoints(&sp.endpoints))
        .map(|e| e.addr)
        .collect()
}

/// `connections` workers, each one keep-alive connection (its own client)
/// to one of `urls` in turn, sending requests back to back until `total`
/// requests are sent or `limit` has passed.
async fn load(urls: &[String], connections: usize, total: usize, limit: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + limit;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..connections.max(1)).map(|i| {
        let url = urls[i % urls.len()].clone();
        let next = std::sync::Arc::clone(&next);
        async move {
            // One idle connection per worker: the same TCP connection for
            // every request (HTTP/1.1 keep-alive).
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("a reqwest client");
            let mut latencies = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total
                && Instant::now() < deadline
            {
                let sent = Instant::now();
                let ok = match http.get(&url).send().await {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }
    });
    let results: Vec<(Vec<Duration>, usize)> = futures::stream::iter(workers)
        .buffer_unordered(connections.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    latencies.sort();
    let errors = results.iter().map(|r| r.1).sum();
    Run {
        requests: latencies.len() + errors,
        errors,
        elapsed,
        latencies,
    }
}

async fn create_pod(
    client: &kube::Client,
    name: &str,
    ip: Ipv4Addr,
    port: u16,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "workbook/demo-app:v1",
                 "ports": [{"name": "http", "containerPort": port}]}]},
    }))?;
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Running", "podIP": ip.to_string(),
                                         "podIPs": [{"ip": ip.to_string()}]}}),
        ),
    )
    .await?;
    set_ready(client, name, true).await
}

async fn set_ready(client: &kube::Client, name: &str, ready: bool) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    Api::<Pod>::default_namespaced(client.clone())
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": status}]}})),
        )
        .await
        .with_context(|| format!("setting pod {name} Ready={status}"))?;
    Ok(())
}
