//! A benchmark of the pure core: how many decisions per second, with no API
//! server, no serialisation and no binding — the upper bound the plumbing
//! can approach. `labs bench scheduler` reports it next to the end-to-end
//! pods/s; `cargo run --release --example scheduler_core` runs it alone.
//!
//! For comparison: kube-scheduler's own scheduler_perf suite reports end-to-end
//! throughputs in the low hundreds of pods/s for 5000-node clusters, with the
//! API server, watches and bindings in the loop, so the two are not the same
//! measurement.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use crate::scheduler::{Scheduler, Snapshot};

/// A node of one of three sizes (2, 4 or 8 cores), in one of three zones,
/// Ready, 110 pod slots, labelled as a kubelet labels it.
pub fn bench_node(i: usize) -> Node {
    let size = 1 << (i % 3); // 1, 2, 4
    let name = format!("node-{i:04}");
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": format!("zone-{}", ['a', 'b', 'c'][i % 3]),
            },
        },
        "status": {
            "allocatable": {
                "cpu": format!("{}", 2 * size),
                "memory": format!("{}Gi", 4 * size),
                "pods": "110",
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .expect("a valid Node")
}

/// Pod `i` of ReplicaSet `i / 10`, requesting 100m cpu and 128Mi.
pub fn bench_pod(i: usize) -> Pod {
    let rs = format!("web-{:04}", i / 10);
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{rs}-{i}"),
            "namespace": "default",
            "labels": {"app": rs},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": format!("uid-{rs}"), "controller": true,
            }],
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "workbook/demo-app:v1",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }],
        },
    }))
    .expect("a valid Pod")
}

/// Schedule `pods` pending pods onto `nodes` empty nodes, one decision after
/// another, each placed pod added to the snapshot as kube-scheduler
/// "assumes" it. Returns the number of decisions and the time they took
/// (building the objects is not timed).
pub fn bench_core(nodes: usize, pods: usize) -> (usize, Duration) {
    let node_objects: Vec<Node> = (0..nodes).map(bench_node).collect();
    let pod_objects: Vec<Pod> = (0..pods).map(bench_pod).collect();
    let mut snapshot = Snapshot::new(&node_objects, []);
    let mut scheduler = Scheduler::new(1);

    let started = Instant::now();
    for pod in &pod_objects {
        let decision = scheduler.schedule(pod, &snapshot);
        if let Some(node) = decision.node() {
            let node = node.to_string();
            snapshot.add_pod(pod, &node);
        }
    }
    (pod_objects.len(), started.elapsed())
}

/// `labs bench scheduler`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Simulated nodes (Node objects; nothing runs on them).
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Pending pods to schedule and bind.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
}

/// Creates the nodes and the pending pods, then starts the scheduler and
/// times it until every pod is bound; then the core alone on the same
/// numbers.
pub async fn run(args: BenchArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{Api, ListParams, PostParams};

    use crate::apiserver::ApiServer;
    use crate::scheduler::schedule_one::{DefaultScheduler, Options};
    use crate::store::Store;

    writeln!(
        out,
        "labs bench scheduler: {} pending pods on {} simulated nodes (100m cpu, 128Mi each;",
        args.pods, args.nodes
    )?;
    writeln!(
        out,
        "nodes of 2, 4 or 8 cpu in 3 zones; pods in ReplicaSets of 10, so spreading counts)"
    )?;
    // History large enough that the scheduler's watches never fall out of it.
    let api = ApiServer::new(Store::with_history(8 * (args.pods + args.nodes) + 1000));
    let client = api.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move { nodes.create(&PostParams::default(), &bench_node(i)).await }
        })
        .buffer_unordered(16)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    futures::stream::iter(0..args.pods)
        .map(|i| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &bench_pod(i)).await }
        })
        .buffer_unordered(16)
        .try_for_each(|_| async { Ok(()) })
        .await?;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let scheduler = tokio::spawn(
        DefaultScheduler::new(client.clone(), Options::default()).run(shutdown.clone()),
    );
    // Done when no pod is left without a node.
    let pending = ListParams::default().fields("spec.nodeName=").limit(1);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if pods.list(&pending).await?.items.is_empty() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not every pod was bound within 10 minutes"
        );
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    scheduler.await??;
    writeln!(
        out,
        "end to end (in-process API: list+watch, decide, bind, Event): {} pods bound in {:.2} s = {:.0} pods/s",
        args.pods,
        elapsed.as_secs_f64(),
        args.pods as f64 / elapsed.as_secs_f64()
    )?;

    let (decisions, took) = bench_core(args.nodes, args.pods);
    writeln!(
        out,
        "core only (Scheduler::schedule with node sampling, no API): {:.0} decisions/s",
        decisions as f64 / took.as_secs_f64()
    )?;
    writeln!(
        out,
        "compare: kube-scheduler's scheduler_perf suite (test/integration/scheduler_perf) reports"
    )?;
    writeln!(
        out,
        "end-to-end throughput in the low hundreds of pods/s (e.g. SchedulingBasic, 5000 nodes);"
    )?;
    writeln!(
        out,
        "that includes a real API server, etcd and the network, so it is an order, not a match."
    )?;
    Ok(())
}
