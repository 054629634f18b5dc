//! The scheduler and the node lifecycle controller end to end, driven with
//! kube-rs on the in-process cluster with tokio's clock paused: pods land on
//! nodes that fit, an unschedulable pod says why and is placed as soon as a
//! node with room appears, a ReplicaSet spreads, and when a node stops
//! reporting its pods are evicted and replaced elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use labs::apiserver::ApiServer;
use labs::cluster::{ClusterOptions, Component, Components, api_config};
use labs::scheduler::schedule_one::DECISION_ANNOTATION;
use labs::store::Store;
use serde_json::json;
use workbook::cluster::{active, node, node_of, pod, ready_condition, replica_set, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

struct Lab {
    client: kube::Client,
    components: Components,
}

impl Lab {
    /// The whole control plane; pods tolerate an unreachable node for
    /// `toleration_seconds`.
    fn start(without: &[Component], toleration_seconds: i64) -> Lab {
        let api = ApiServer::with_config(Store::new(), api_config(toleration_seconds));
        let components = Components::start(
            &api,
            &ClusterOptions {
                without: without.to_vec(),
                seed: 1,
                ..ClusterOptions::default()
            },
        );
        Lab {
            client: api.client(),
            components,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    async fn add_node(&self, name: &str, cpu: &str) {
        self.nodes()
            .create(&PostParams::default(), &node(name, cpu, "8Gi", 0))
            .await
            .expect("create node");
    }

    async fn bound_node(&self, name: &str) -> Option<String> {
        node_of(&self.pods().get(name).await.expect("get pod"))
    }

    async fn wait_bound(&self, name: &str) -> String {
        wait_for(&format!("{name} bound"), LIMIT, || async {
            self.bound_node(name).await.is_some()
        })
        .await;
        self.bound_node(name).await.unwrap()
    }

    async fn events(&self, reason: &str) -> Vec<Event> {
        Api::<Event>::default_namespaced(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn pods_are_bound_to_nodes_that_fit_and_say_why() {
    let lab = Lab::start(&[Component::NodeLifecycle], 300);
    lab.add_node("small", "1").await;
    lab.add_node("big", "4").await;
    lab.pods()
        .create(&PostParams::default(), &pod("web", "2"))
        .await
        .unwrap();
    assert_eq!(lab.wait_bound("web").await, "big");

    let web = lab.pods().get("web").await.unwrap();
    let why = &web.metadata.annotations.as_ref().unwrap()[DECISION_ANNOTATION];
    assert!(
        why.starts_with("default/web -> big (1/2 nodes feasible; the only feasible node"),
        "{why}"
    );
    assert!(
        why.contains("small  NodeResourcesFit: Insufficient cpu"),
        "{why}"
    );
    let scheduled = web
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(scheduled.status, "True");

    wait_for("the Scheduled event", LIMIT, || async {
        !lab.events("Scheduled").await.is_empty()
    })
    .await;
    let event = &lab.events("Scheduled").await[0];
    assert_eq!(
        event.message.as_deref(),
        Some(
            "Successfully assigned default/web to big (1/2 nodes feasible; the only feasible node, chosen without scoring)"
        )
    );
    assert_eq!(
        event.source.as_ref().unwrap().component.as_deref(),
        Some("default-scheduler")
    );
    lab.components.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unschedulable_pod_says_why_and_is_placed_when_a_node_with_room_appears() {
    let lab = Lab::start(&[Component::NodeLifecycle], 300);
    for n in ["node-1", "node-2", "node-3"] {
        lab.add_node(n, "1").await;
    }
    lab.pods()
        .create(&PostParams::default(), &pod("big", "2"))
        .await
        .unwrap();
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    wait_for("PodScheduled=False", LIMIT, || async {
        let p = lab.pods().get("big").await.unwrap();
        p.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(message)
            })
    })
    .await;
    wait_for("the FailedScheduling event", LIMIT, || async {
        lab.events("FailedScheduling")
            .await
            .iter()
            .any(|e| e.message.as_deref() == Some(message) && e.type_.as_deref() == Some("Warning"))
    })
    .await;
    // Parked: a minute passes and nothing changes.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(lab.bound_node("big").await, None);

    // A node with room: the pod is retried at once and lands there.
    lab.add_node("node-4", "4").await;
    assert_eq!(lab.wait_bound("big").await, "node-4");
    lab.components.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_replicasets_pods_spread_over_equal_nodes() {
    let lab = Lab::start(&[Component::NodeLifecycle], 300);
    for n in ["node-1", "node-2", "node-3"] {
        lab.add_node(n, "4").await;
    }
    Api::default_namespaced(lab.client.clone())
        .create(&PostParams::default(), &replica_set(6))
        .await
        .unwrap();
    let per_node = || async {
        let pods = lab.pods().list(&ListParams::default()).await.unwrap().items;
        let mut count = BTreeMap::new();
        for p in &pods {
            *count.entry(node_of(p).unwrap_or_default()).or_insert(0) += 1;
        }
        count
    };
    wait_for("6 pods bound", LIMIT, || async {
        let c = per_node().await;
        c.values().sum::<i32>() == 6 && !c.contains_key("")
    })
    .await;
    assert_eq!(
        per_node().await,
        BTreeMap::from([
            ("node-1".to_string(), 2),
            ("node-2".to_string(), 2),
            ("node-3".to_string(), 2)
        ])
    );
    lab.components.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pods_on_a_node_that_stops_reporting_are_evicted_and_replaced_elsewhere() {
    // Everything, with pods tolerating an unreachable node for 5 s.
    let lab = Lab::start(&[], 5);
    for n in ["node-1", "node-2", "node-3"] {
        lab.add_node(n, "4").await;
    }
    // A fake kubelet on each node posts a heartbeat every 10 s — until
    // node-1's stops.
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeats = tokio::spawn({
        let nodes = lab.nodes();
        let stopped = stopped.clone();
        async move {
            for beat in 1.. {
                tokio::time::sleep(Duration::from_secs(10)).await;
                for n in ["node-1", "node-2", "node-3"] {
                    if n == "node-1" && stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    let patch = json!({"status": {"conditions": [ready_condition(beat)]}});
                    let _ = nodes
                        .patch_status(n, &PatchParams::default(), &Patch::Strategic(&patch))
                        .await;
                }
            }
        }
    });
    Api::default_namespaced(lab.client.clone())
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    wait_for("3 pods bound", LIMIT, || async {
        let pods = lab.pods().list(&ListParams::default()).await.unwrap().items;
        pods.len() == 3 && pods.iter().all(|p| node_of(p).is_some())
    })
    .await;
    let on_node_1: Vec<String> = lab
        .pods()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| node_of(p).as_deref() == Some("node-1"))
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(on_node_1.len(), 1, "spread puts one pod on each node");
    // Every pod got the default tolerations (5 s here).
    let tolerations = lab
        .pods()
        .get(&on_node_1[0])
        .await
        .unwrap()
        .spec
        .unwrap()
        .tolerations
        .unwrap();
    assert!(tolerations.iter().any(
        |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.toleration_seconds == Some(5)
    ));

    // A minute of healthy heartbeats changes nothing.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        lab.nodes()
            .get("node-1")
            .await
            .unwrap()
            .spec
            .unwrap_or_default()
            .taints
            .is_none()
    );

    stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    let silence = tokio::time::Instant::now();
    wait_for("node-1 Unknown and tainted", LIMIT, || async {
        let n = lab.nodes().get("node-1").await.unwrap();
        let taints: Vec<String> = n
            .spec
            .unwrap_or_default()
            .taints
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        let ready = n
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        ready.status == "Unknown"
            && ready.reason.as_deref() == Some("NodeStatusUnknown")
            && taints
                == [
                    "node.kubernetes.io/unreachable:NoSchedule",
                    "node.kubernetes.io/unreachable:NoExecute",
                ]
    })
    .await;
    // The grace period is 40 s from the last heartbeat seen (up to 10 s
    // before the silence began), checked every 5 s.
    let waited = silence.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_secs(50),
        "{waited:?}"
    );

    // 5 s later the pod is evicted; the ReplicaSet replaces it, and the
    // scheduler puts the replacement on a healthy node.
    wait_for("the pod on node-1 evicted", LIMIT, || async {
        lab.pods()
            .get(&on_node_1[0])
            .await
            .map(|p| p.metadata.deletion_timestamp.is_some())
            .unwrap_or(true)
    })
    .await;
    wait_for("3 active pods on healthy nodes", LIMIT, || async {
        let pods = lab.pods().list(&ListParams::default()).await.unwrap().items;
        let placed: Vec<Option<String>> = pods.iter().filter(|p| active(p)).map(node_of).collect();
        placed.len() == 3
            && placed
                .iter()
                .all(|n| matches!(n.as_deref(), Some("node-2" | "node-3")))
    })
    .await;
    wait_for("the eviction event", LIMIT, || async {
        lab.events("TaintManagerEviction").await.iter().any(|e| {
            e.message.as_deref()
                == Some(&format!(
                    "Marking for deletion Pod default/{}",
                    on_node_1[0]
                ))
        })
    })
    .await;
    let node_events: Vec<Event> = Api::<Event>::all(lab.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        node_events
            .iter()
            .any(|e| e.reason.as_deref() == Some("NodeNotReady")
                && e.message.as_deref() == Some("Node node-1 status is now: NodeNotReady"))
    );

    // The kubelet comes back: the taints go.
    stopped.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("node-1 untainted", LIMIT, || async {
        let n = lab.nodes().get("node-1").await.unwrap();
        n.spec
            .unwrap_or_default()
            .taints
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    heartbeats.abort();
    lab.components.shutdown().await.unwrap();
}
