//! `labs bench apiserver`: how fast is the lab API server?
//!
//! Not a test (timings depend on the machine) but a repeatable measurement:
//! pod creates through kube-rs in-process and over loopback HTTP, full
//! lists, and many watchers receiving the same stream of changes. The goal
//! on the workbook's 2-core machine: at least 5,000 writes/s in-process, a
//! 10,000-pod list in under 200 ms, and no watcher missing an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::apiserver::ApiServer;
use crate::store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Pods to create in each of the two runs (in-process, HTTP).
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Concurrent create requests.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Concurrent watchers.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Changes made while the watchers watch.
    #[arg(long, default_value_t = 1_000)]
    pub watch_events: usize,
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
    }))
    .expect("a valid pod")
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Creates `n` pods with `concurrency` requests in flight; returns writes/s.
async fn create_pods(
    client: &kube::Client,
    ns: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod(&format!("bench-{i}")))
                    .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await
        .context("creating pods")?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Lists the namespace `runs` times; returns the median latency.
async fn list_latency(
    client: &kube::Client,
    ns: &str,
    expect: usize,
    runs: usize,
) -> anyhow::Result<Duration> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        times.push(start.elapsed());
        anyhow::ensure!(
            list.items.len() == expect,
            "listed {} pods, expected {expect}",
            list.items.len()
        );
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// The list as the server alone produces it: router in, bytes out, no
/// client-side decoding into typed pods.
async fn raw_list_latency(api: &ApiServer, ns: &str, runs: usize) -> anyhow::Result<Duration> {
    use tower::ServiceExt;
    let mut times = Vec::new();
    for _ in 0..runs {
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/pods"))
            .body(axum::body::Body::empty())?;
        let start = Instant::now();
        let resp = api.router().oneshot(req).await?;
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        times.push(start.elapsed());
        anyhow::ensure!(!body.is_empty());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Peak resident memory of this process (Linux; `None` elsewhere).
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn run(args: BenchArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    // History large enough that no watcher falls out of the window.
    let store = Store::with_history(4 * args.pods + 4 * args.watch_events + 100);
    let api = ApiServer::new(store);
    let inproc = api.client();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    let config = kube::Config::new(format!("http://{addr}").parse()?);
    let http = kube::Client::try_from(config)?;

    writeln!(
        out,
        "labs bench apiserver: {} pods, {} concurrent creates, {} watchers",
        args.pods, args.concurrency, args.watchers
    )?;
    create_namespace(&inproc, "bench-inproc").await?;
    create_namespace(&inproc, "bench-http").await?;
    create_namespace(&inproc, "bench-watch").await?;

    let w = create_pods(&inproc, "bench-inproc", args.pods, args.concurrency).await?;
    writeln!(out, "create (in-process):  {w:>9.0} writes/s")?;
    let w = create_pods(&http, "bench-http", args.pods, args.concurrency).await?;
    writeln!(out, "create (HTTP):        {w:>9.0} writes/s")?;
    let l = list_latency(&inproc, "bench-inproc", args.pods, 5).await?;
    writeln!(
        out,
        "list {} pods (in-process): {:>7.1} ms (median of 5)",
        args.pods,
        l.as_secs_f64() * 1e3
    )?;
    let l = raw_list_latency(&api, "bench-inproc", 5).await?;
    writeln!(
        out,
        "list {} pods (server only):  {:>7.1} ms (median of 5; no client decoding)",
        args.pods,
        l.as_secs_f64() * 1e3
    )?;
    let l = list_latency(&http, "bench-http", args.pods, 5).await?;
    writeln!(
        out,
        "list {} pods (HTTP):       {:>7.1} ms (median of 5)",
        args.pods,
        l.as_secs_f64() * 1e3
    )?;

    // Watchers: each watches the namespace from the current revision and
    // records when each pod's ADDED arrives; one writer creates the pods.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rv = api.store().revision().to_string();
    let mut handles = Vec::new();
    for i in 0..args.watchers {
        // Half the watchers in-process, half over HTTP.
        let client = if i % 2 == 0 {
            inproc.clone()
        } else {
            http.clone()
        };
        let pods: Api<Pod> = Api::namespaced(client, "bench-watch");
        let sent = sent.clone();
        let (rv, n) = (rv.clone(), args.watch_events);
        let stream = pods
            .watch(&WatchParams::default().timeout(290), &rv)
            .await?;
        handles.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut latencies = Vec::with_capacity(n);
            while latencies.len() < n {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Added(p)))) => {
                        let name = p.metadata.name.unwrap_or_default();
                        let at = sent.lock().expect("not poisoned").get(&name).copied();
                        latencies.push(at.map(|t| t.elapsed()).unwrap_or_default());
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            latencies
        }));
    }
    let writer: Api<Pod> = Api::namespaced(inproc.clone(), "bench-watch");
    let start = Instant::now();
    for i in 0..args.watch_events {
        let name = format!("watched-{i}");
        sent.lock()
            .expect("not poisoned")
            .insert(name.clone(), Instant::now());
        writer.create(&PostParams::default(), &pod(&name)).await?;
    }
    let mut all = Vec::new();
    let mut missed = 0;
    for h in handles {
        let l = h.await?;
        missed += args.watch_events - l.len();
        all.extend(l);
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    writeln!(
        out,
        "watch: {} watchers x {} events in {:.2} s; delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; missed {missed}",
        args.watchers,
        args.watch_events,
        elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    )?;
    if let Some(kib) = peak_memory_kib() {
        writeln!(out, "peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0)?;
    }
    let _ = stop.send(());
    api.shutdown_watches();
    server.await??;
    anyhow::ensure!(missed == 0, "{missed} watch events were missed");
    Ok(())
}
