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

use super::{Scheduler, Snapshot};

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
