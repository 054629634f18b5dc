//! An in-process lab cluster for controller tests: the API server (called
//! in-process, no socket) and the controller manager, plus helpers to wait
//! for the cluster to reach a state.
//!
//! Tests using it run with tokio's clock paused
//! (`#[tokio::test(start_paused = true)]`): time advances only while every
//! task waits, so a wait of "up to 60 s" costs milliseconds, and a test
//! that fails to converge fails fast instead of hanging.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use labs::apiserver::ApiServer;
use labs::controllers::manager::{ControllerManager, ManagerOptions};
use labs::store::Store;

/// The ReplicaSet the controller tests use (as `kubectl create -f` sends
/// it): `web`, selector app=web.
pub const REPLICASET_YAML: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: workbook/demo-app:v1
";

/// `REPLICASET_YAML` with another replica count.
pub fn replica_set(replicas: i32) -> ReplicaSet {
    let yaml = REPLICASET_YAML.replace("replicas: 3", &format!("replicas: {replicas}"));
    serde_yaml::from_str(&yaml).expect("a valid ReplicaSet")
}

pub struct Cluster {
    pub api: ApiServer,
    /// The test's own client (the user's, as kubectl's).
    pub client: kube::Client,
    pub manager: Option<ControllerManager>,
}

impl Cluster {
    /// API server and both controllers.
    pub fn start() -> Cluster {
        let api = ApiServer::new(Store::new());
        let manager = ControllerManager::start(api.client(), ManagerOptions::default());
        Cluster::with(api, Some(manager))
    }

    /// API server only.
    pub fn without_controllers() -> Cluster {
        Cluster::with(ApiServer::new(Store::new()), None)
    }

    pub fn with(api: ApiServer, manager: Option<ControllerManager>) -> Cluster {
        let client = api.client();
        Cluster {
            api,
            client,
            manager,
        }
    }

    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::default_namespaced(self.client.clone())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    /// Pods with label app=web (active or not).
    pub async fn web_pods(&self) -> Vec<Pod> {
        self.pods()
            .list(&ListParams::default().labels("app=web"))
            .await
            .expect("list pods")
            .items
    }

    pub async fn stop(mut self) {
        if let Some(manager) = self.manager.take() {
            manager
                .shutdown()
                .await
                .expect("controllers stopped cleanly");
        }
    }
}

/// Polls `check` every 10 ms until it returns true, for at most `limit`
/// (of tokio time: under a paused clock this is instant). Panics with
/// `what` and the last observation if it never does.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets the cluster run for `d` (paused clock: until idle, then `d` more).
pub async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Is the pod active (not terminating, not finished)?
pub fn active(pod: &Pod) -> bool {
    labs::controllers::replicaset::is_pod_active(pod)
}

/// The name of the controller in the pod's ownerReferences, if any.
pub fn controller_name(pod: &Pod) -> Option<String> {
    labs::controllers::replicaset::controller_of(&pod.metadata).map(|o| o.name.clone())
}

/// A Node as a kubelet would register it: `cpu` cores and `memory`,
/// 110 pod slots, the hostname label, and `Ready=True` with heartbeat
/// number `beat` (any change of it is a new heartbeat).
pub fn node(name: &str, cpu: &str, memory: &str, beat: i64) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [ready_condition(beat)],
        },
    }))
    .expect("a valid Node")
}

/// The `Ready=True` condition a kubelet posts, heartbeat number `beat`.
pub fn ready_condition(beat: i64) -> serde_json::Value {
    let at = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + beat)
        .expect("a valid time")
        .to_string();
    serde_json::json!({
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": at, "lastTransitionTime": "2023-11-14T22:13:20Z",
    })
}

/// A pod requesting `cpu` (and 64Mi), not owned by anything.
pub fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "app", "image": "workbook/demo-app:v1",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
        }]},
    }))
    .expect("a valid Pod")
}

/// The node a pod is bound to, if any.
pub fn node_of(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}
