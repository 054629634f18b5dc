//! `labs bench replicaset`: how fast does the ReplicaSet controller
//! converge?
//!
//! One ReplicaSet on the in-process cluster (API server + controller
//! manager), scaled 0 → N (10,000 by default) and back to 0. For each
//! direction: the time from the scale request until the ReplicaSet's status
//! reports N pods (the controller's cache, and so the store, holds them all),
//! and the API requests the controllers made, counted by a tower layer
//! between their client and the router. Goal on the workbook's 2-core
//! machine (release build): under 10 s each way.
//!
//! What bounds it: `burstReplicas` = 500 creates or deletes per sync, then
//! the controller waits (expectations) until its watch has reported all 500
//! before the next sync. So 10,000 pods take 20 syncs, each 9 slow-start
//! round trips for creates (1, 2, 4, … 256, 245) or one concurrent round of
//! deletes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::apiserver::ApiServer;
use crate::cluster::{RequestCounter, counted_client};
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::lab::replicaset::replica_set;
use crate::store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Replicas to scale to (and back from).
    #[arg(long, default_value_t = 10_000)]
    pub replicas: i32,
    /// Give up on a direction after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub async fn run(args: BenchArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let counter = Arc::new(RequestCounter::default());
    let manager = ControllerManager::start(
        counted_client(&api, Arc::clone(&counter)),
        ManagerOptions::default(),
    );
    let client = api.client();
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    rss.create(&PostParams::default(), &replica_set("bench", 0))
        .await?;
    wait(&rss, 0, Duration::from_secs(args.timeout)).await?;
    writeln!(
        out,
        "ReplicaSet bench: 0 → {n} → 0 pods, in-process API server, {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        n = args.replicas
    )?;

    for (from, to) in [(0, args.replicas), (args.replicas, 0)] {
        counter.reset();
        let start = Instant::now();
        rss.patch_scale(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": to}})),
        )
        .await?;
        wait(&rss, to, Duration::from_secs(args.timeout))
            .await
            .with_context(|| format!("scaling {from} → {to}"))?;
        let elapsed = start.elapsed();
        let pods = Api::<Pod>::default_namespaced(client.clone())
            .list(&ListParams::default().labels("app=bench"))
            .await?
            .items
            .len();
        writeln!(out)?;
        writeln!(
            out,
            "scale {from:>6} → {to:<6} converged in {:>6.2} s ({pods} pods exist)",
            elapsed.as_secs_f64()
        )?;
        writeln!(
            out,
            "  API requests by the controllers: {}",
            counter.total()
        )?;
        for (call, n) in counter.calls() {
            writeln!(out, "    {call:<28} {n:>7}")?;
        }
        let statuses: Vec<String> = counter
            .statuses()
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(out, "  responses: {}", statuses.join(", "))?;
    }
    manager.shutdown().await?;
    Ok(())
}

/// Polls the ReplicaSet until its status reports `replicas` for its
/// current generation.
async fn wait(rss: &Api<ReplicaSet>, replicas: i32, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let rs = rss.get("bench").await?;
        let status = rs.status.unwrap_or_default();
        if status.replicas == replicas && status.observed_generation == rs.metadata.generation {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "did not converge within {timeout:?}: status.replicas = {}",
            status.replicas
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
