//! `labs bench rollout`: a 1,000-replica Deployment rolled from v1 to v2
//! on the in-process cluster with 100 nodes: the scheduler places every pod
//! and 100 kubelets on the simulated runtime run them (each container
//! starts, and is ready, at once). Reports the wall time of the rollout,
//! the Deployment controller's syncs, and the API calls every component
//! made (by verb and resource): the controllers', the scheduler's and the
//! kubelets' (status writes and Events).
//!
//! Real time here (a multi-threaded runtime, no lockstep): the question is
//! how fast the control plane converges, not which steps it takes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::apiserver::ApiServer;
use crate::cluster::{RequestCounter, SimulatedNodes, counted_client};
use crate::controllers::deployment::controller::Metrics;
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::kubelet::runtime::simulated::SimulatedConfig;
use crate::lab::rollout::{self as rollout_lab, IMAGE_V2, RolloutArgs};
use crate::store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1000)]
    pub replicas: i32,
    /// Nodes, each with its own kubelet.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
}

pub async fn run(args: BenchArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let counter = Arc::new(RequestCounter::default());
    let client = counted_client(&api, Arc::clone(&counter));
    let metrics = Arc::new(Metrics::default());
    let manager = ControllerManager::start(
        client.clone(),
        ManagerOptions {
            deployment_metrics: Some(Arc::clone(&metrics)),
            ..ManagerOptions::default()
        },
    );
    let nodes = SimulatedNodes::start(&api, &client, args.nodes, SimulatedConfig::default(), 1);
    let deployments: Api<Deployment> = Api::default_namespaced(api.client());
    let d = rollout_lab::deployment(&RolloutArgs {
        replicas: args.replicas,
        ..RolloutArgs::default()
    });

    writeln!(
        out,
        "bench rollout: {} replicas on {} nodes, maxSurge 25%, maxUnavailable 25%, pods ready at once",
        args.replicas, args.nodes
    )?;
    let start = Instant::now();
    deployments.create(&PostParams::default(), &d).await?;
    complete(&deployments, args.replicas, 1).await?;
    writeln!(out, "  v1 available:        {:>8.2?}", start.elapsed())?;

    counter.reset();
    let syncs_before = metrics.syncs.load(std::sync::atomic::Ordering::Relaxed);
    let steps_before = metrics.steps.load(std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_V2}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    complete(&deployments, args.replicas, 2).await?;
    let took = start.elapsed();
    let syncs = metrics.syncs.load(std::sync::atomic::Ordering::Relaxed) - syncs_before;
    let steps = metrics.steps.load(std::sync::atomic::Ordering::Relaxed) - steps_before;
    writeln!(out, "  v1 → v2 rolled out:  {took:>8.2?}  (goal < 10 s)")?;
    writeln!(
        out,
        "  deployment syncs:    {syncs:>8}  ({steps} of them scaled a ReplicaSet)"
    )?;
    writeln!(out, "  API calls:           {:>8}", counter.total())?;
    let mut calls: Vec<(String, u64)> = counter.calls().into_iter().collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (call, n) in calls.iter().take(10) {
        writeln!(out, "    {n:>8}  {call}")?;
    }
    nodes.stop().await?;
    manager.shutdown().await?;
    Ok(())
}

/// Waits (at most 5 minutes) until the Deployment's generation `generation`
/// is fully rolled out.
async fn complete(api: &Api<Deployment>, replicas: i32, generation: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let d = api.get("web").await?;
        let s = d.status.unwrap_or_default();
        if d.metadata.generation == Some(generation)
            && s.observed_generation == Some(generation)
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the rollout did not complete in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
