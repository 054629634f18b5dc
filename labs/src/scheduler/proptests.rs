//! Property: whatever the cluster looks like, a chosen node passes every
//! filter and has the highest total score; an unschedulable pod had no
//! feasible node at all.

use k8s_openapi::api::core::v1::{Node, Pod};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::filters::{PodFacts, run_filters};
use super::*;

#[derive(Debug, Clone)]
struct NodeSpec {
    milli_cpu: u32,
    memory_mi: u32,
    pods: u8,
    unschedulable: bool,
    ready: &'static str,
    taints: Vec<usize>,
    zone: Option<&'static str>,
    disk: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct PodSpec {
    milli_cpu: Option<u32>,
    memory_mi: Option<u32>,
    owner: Option<&'static str>,
    tolerations: Vec<usize>,
    ssd_only: bool,
    prefer_zone_a: bool,
}

const TAINTS: [(&str, &str, &str); 3] = [
    ("dedicated", "batch", "NoSchedule"),
    ("spot", "", "PreferNoSchedule"),
    ("maintenance", "", "NoExecute"),
];

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        0u32..4000,
        0u32..4096,
        0u8..6,
        prop::bool::weighted(0.15),
        prop::sample::select(vec!["True", "True", "True", "False", "Unknown"]),
        prop::collection::vec(0usize..3, 0..2),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::option::of(prop::sample::select(vec!["ssd", "hdd"])),
    )
        .prop_map(
            |(milli_cpu, memory_mi, pods, unschedulable, ready, taints, zone, disk)| NodeSpec {
                milli_cpu,
                memory_mi,
                pods,
                unschedulable,
                ready,
                taints,
                zone,
                disk,
            },
        )
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        prop::option::of(0u32..1500),
        prop::option::of(0u32..1500),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::collection::vec(0usize..3, 0..2),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(
            |(milli_cpu, memory_mi, owner, tolerations, ssd_only, prefer_zone_a)| PodSpec {
                milli_cpu,
                memory_mi,
                owner,
                tolerations,
                ssd_only,
                prefer_zone_a,
            },
        )
}

fn make_node(i: usize, s: &NodeSpec) -> Node {
    let name = format!("n{i}");
    let mut labels = json!({"kubernetes.io/hostname": name});
    if let Some(z) = s.zone {
        labels["topology.kubernetes.io/zone"] = z.into();
    }
    if let Some(d) = s.disk {
        labels["disk"] = d.into();
    }
    let taints: Vec<Value> = s
        .taints
        .iter()
        .map(|&t| json!({"key": TAINTS[t].0, "value": TAINTS[t].1, "effect": TAINTS[t].2}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": s.unschedulable, "taints": taints},
        "status": {
            "allocatable": {"cpu": format!("{}m", s.milli_cpu),
                            "memory": format!("{}Mi", s.memory_mi),
                            "pods": s.pods.to_string()},
            "conditions": [{"type": "Ready", "status": s.ready}],
        },
    }))
    .unwrap()
}

fn make_pod(name: &str, s: &PodSpec, node: Option<String>) -> Pod {
    let mut requests = serde_json::Map::new();
    if let Some(c) = s.milli_cpu {
        requests.insert("cpu".into(), format!("{c}m").into());
    }
    if let Some(m) = s.memory_mi {
        requests.insert("memory".into(), format!("{m}Mi").into());
    }
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
    });
    if let Some(rs) = s.owner {
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
            "kind": "ReplicaSet", "name": rs, "uid": rs, "controller": true}]);
    }
    if let Some(n) = node {
        v["spec"]["nodeName"] = n.into();
    }
    let tolerations: Vec<Value> = s
        .tolerations
        .iter()
        .map(|&t| json!({"key": TAINTS[t].0, "operator": "Exists"}))
        .collect();
    v["spec"]["tolerations"] = tolerations.into();
    if s.ssd_only {
        v["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    }
    if s.prefer_zone_a {
        v["spec"]["affinity"] = json!({"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10,
                "preference": {"matchExpressions": [
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}}]}});
    }
    serde_json::from_value(v).unwrap()
}

proptest! {
    #[test]
    fn chosen_node_passes_every_filter_and_has_the_best_score(
        node_specs in prop::collection::vec(node_spec(), 0..8),
        existing in prop::collection::vec((pod_spec(), 0usize..8), 0..12),
        pending in pod_spec(),
        seed in any::<u64>(),
    ) {
        let nodes: Vec<Node> = node_specs.iter().enumerate().map(|(i, s)| make_node(i, s)).collect();
        let pods: Vec<Pod> = existing
            .iter()
            .enumerate()
            .map(|(i, (s, n))| make_pod(&format!("e{i}"), s, Some(format!("n{n}"))))
            .collect();
        let snapshot = Snapshot::new(&nodes, &pods);
        let pod = make_pod("p", &pending, None);
        let d = schedule(&pod, &snapshot, &mut SplitMix64::new(seed));
        let facts = PodFacts::new(&pod, &snapshot);

        prop_assert_eq!(d.examined.len(), nodes.len());
        let feasible: Vec<&NodeVerdict> = d.examined.iter().filter(|v| v.filter.is_ok()).collect();
        // The recorded verdicts are the filters' verdicts.
        for (v, info) in d.examined.iter().zip(snapshot.nodes()) {
            prop_assert_eq!(v.filter.is_ok(), run_filters(&facts, info).is_ok());
        }
        match &d.result {
            Ok(p) => {
                let chosen = snapshot.node(&p.node).unwrap();
                prop_assert!(run_filters(&facts, chosen).is_ok());
                prop_assert_eq!(p.feasible, feasible.len());
                if feasible.len() > 1 {
                    let best = feasible.iter().map(|v| v.scores.as_ref().unwrap().total).max();
                    let mine = feasible.iter().find(|v| v.node == p.node).unwrap();
                    prop_assert_eq!(Some(mine.scores.as_ref().unwrap().total), best);
                    let tied = feasible.iter().filter(|v| Some(v.scores.as_ref().unwrap().total) == best).count();
                    prop_assert_eq!(p.ties, tied);
                    for v in &feasible {
                        let s = v.scores.as_ref().unwrap();
                        prop_assert_eq!(s.total, s.plugins.iter().map(|p| p.weighted).sum::<i64>());
                        for p in &s.plugins {
                            prop_assert!((0..=100).contains(&p.normalized));
                        }
                    }
                } else {
                    prop_assert!(p.top.is_empty());
                }
            }
            Err(e) => {
                prop_assert!(feasible.is_empty());
                let counted: usize = e.reasons.values().sum();
                let given: usize = d.examined.iter().map(|v| v.filter.as_ref().unwrap_err().reasons.len()).sum();
                prop_assert_eq!(counted, given);
            }
        }
    }
}
