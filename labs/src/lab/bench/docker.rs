//! `labs bench docker`: what real containers cost.
//!
//! Two figures, from one run on one machine:
//!
//! * **pod start to Ready** on the Docker runtime and on the process runtime,
//!   and their ratio. The same pods (one `demo-app` container with an HTTP
//!   readiness probe) go through the same kubelet; only the runtime differs.
//!   The Docker runtime creates and starts two containers per pod (pause and
//!   app: each a new set of namespaces and cgroups, a filesystem mount, a
//!   port-publishing proxy) where the process runtime forks one process.
//! * **image build** of `workbook/demo-app:v1`, cold (no cache) and cached
//!   (unchanged: every step from the build cache), from
//!   [`crate::images::run_bench`].
//!
//! The pods are bound to the node directly (`spec.nodeName`), so neither the
//! scheduler nor a controller is in the measurement: creation of the pod
//! object to its `Ready` condition seen through the API.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::apiserver::ApiServer;
use crate::kubelet::runtime::docker::{DockerConfig, DockerRuntime};
use crate::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use crate::kubelet::runtime::{LoopbackIpam, Runtime};
use crate::kubelet::{Clock, Kubelet, KubeletConfig};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Pods started (one after another) on each runtime.
    #[arg(long, default_value_t = 5)]
    pub pods: usize,
    /// Image builds (cold and cached) to take the median of.
    #[arg(long, default_value_t = 3)]
    pub builds: usize,
}

/// A pod bound to `node-1`: the workload, Ready once `/readyz` answers.
fn bench_pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "app",
                "image": "workbook/demo-app:v1",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": 8080},
                    "periodSeconds": 1,
                },
            }],
        },
    }))
    .expect("a valid Pod")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// Per pod: create → container `running` in the status, create → `Ready`.
type Times = Vec<(Duration, Duration)>;

/// Start `n` pods one after another on a kubelet over `runtime`; returns
/// each one's times. Deletes them afterwards.
async fn start_to_ready<R: Runtime>(runtime: Arc<R>, n: usize) -> anyhow::Result<Times> {
    let api = ApiServer::new(Store::new());
    let mut config = KubeletConfig::new("node-1");
    config.relist_period = Duration::from_millis(200);
    let kubelet = Kubelet::start(api.client(), runtime, config, Clock::cluster());
    let pods: Api<Pod> = Api::default_namespaced(api.client());
    let mut times = Vec::new();
    let result = async {
        for i in 0..n {
            let started = Instant::now();
            pods.create(&PostParams::default(), &bench_pod(i)).await?;
            let name = format!("bench-{i}");
            let mut to_running = None;
            loop {
                let pod = pods.get(&name).await.ok();
                if to_running.is_none() && pod.as_ref().is_some_and(running) {
                    to_running = Some(started.elapsed());
                }
                if pod.as_ref().is_some_and(ready) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    bail!("{name} was not Ready after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let to_ready = started.elapsed();
            times.push((to_running.unwrap_or(to_ready), to_ready));
        }
        pods.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pods.list(&ListParams::default()).await?.items.is_empty() {
            if Instant::now() > deadline {
                bail!("the bench pods were not gone after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
    .await;
    kubelet.stop().await;
    result.map(|()| times)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let n = args.pods.max(1);
    let docker = crate::images::connect().await?;
    crate::images::ensure_all(&docker, &mut std::io::sink())
        .await
        .context("cannot build the workbook's images")?;
    println!(
        "Docker runtime bench: {n} pods one after another per runtime (create → Ready, HTTP readiness probe), {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let process = Arc::new(ProcessRuntime::new(
        ProcessConfig::current_exe().context("cannot find the labs executable")?,
        Clock::cluster(),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 4, 1, 1)),
    ));
    let process_times = start_to_ready(Arc::clone(&process), n).await;
    process.shutdown().await;
    let process_times = process_times?;

    let scope = format!("bench-{}-node-1", std::process::id());
    let runtime = Arc::new(DockerRuntime::new(
        docker,
        DockerConfig::new(scope),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 4, 2, 1)),
    ));
    let docker_times = start_to_ready(Arc::clone(&runtime), n).await;
    // Whatever happened, nothing of the bench stays on the engine.
    runtime.remove_all().await;
    let docker_times = docker_times?;

    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    // Running: the runtime's own cost. Ready adds the first successful
    // probe, which lands on the probe period's 1 s grid: a container
    // whose app is not listening yet at the first probe waits a second.
    for (what, pick) in [
        (
            "running",
            (|t: &(Duration, Duration)| t.0) as fn(&(Duration, Duration)) -> Duration,
        ),
        ("Ready", |t| t.1),
    ] {
        let p: Vec<Duration> = process_times.iter().map(pick).collect();
        let d: Vec<Duration> = docker_times.iter().map(pick).collect();
        let (mp, md) = (median(&p), median(&d));
        println!(
            "pod create → {what:<7} (median): process {:>5.0} ms, docker {:>5.0} ms: docker/process = {:.1}×",
            ms(mp),
            ms(md),
            md.as_secs_f64() / mp.as_secs_f64()
        );
    }
    crate::images::run_bench(args.builds.max(1), &mut std::io::stdout()).await?;
    Ok(())
}
