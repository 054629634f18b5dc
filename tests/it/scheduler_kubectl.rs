//! The real kubectl against a served cluster running the scheduler (as
//! `labs cluster` does): `kubectl get pods -o wide` shows the NODE column
//! filled in, and `kubectl describe pod` shows why a pod stays Pending.
//! Real time and real sockets, so every wait is bounded.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use labs::cluster::{ClusterOptions, Component, Components};
use workbook::apiserver::TestServer;
use workbook::cluster::{node, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

const POD_YAML: &str = "apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  containers:
  - name: app
    image: workbook/demo-app:v1
    resources:
      requests:
        cpu: CPU
";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_shows_the_node_and_why_a_pod_is_pending() {
    let s = TestServer::start().await;
    let components = Components::start(
        &s.api,
        &ClusterOptions {
            without: vec![Component::NodeLifecycle],
            ..ClusterOptions::default()
        },
    );
    let nodes: Api<Node> = Api::all(s.client());
    for name in ["node-1", "node-2"] {
        nodes
            .create(&PostParams::default(), &node(name, "2", "4Gi", 0))
            .await
            .unwrap();
    }
    let small = s.file(
        "small.yaml",
        &POD_YAML.replace("NAME", "small").replace("CPU", "500m"),
    );
    let huge = s.file(
        "huge.yaml",
        &POD_YAML.replace("NAME", "huge").replace("CPU", "8"),
    );
    s.kubectl(&["create", "-f", &small]).await.ok();
    s.kubectl(&["create", "-f", &huge]).await.ok();

    wait_for("small bound", LIMIT, || async {
        let out = s
            .kubectl(&["get", "pod", "small", "-o", "wide", "--no-headers"])
            .await;
        out.ok().contains("node-")
    })
    .await;
    let out = s.kubectl(&["get", "pods", "-o", "wide"]).await;
    let text = out.ok();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{text}"
    );
    let row = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(row("small")[6].starts_with("node-"), "{text}");
    assert_eq!(row("huge")[6], "<none>", "{text}");

    wait_for("the FailedScheduling event", LIMIT, || async {
        let out = s.kubectl(&["describe", "pod", "huge"]).await;
        out.ok().contains("FailedScheduling")
    })
    .await;
    let out = s.kubectl(&["describe", "pod", "huge"]).await;
    let text = out.ok();
    let event = text
        .lines()
        .find(|l| l.contains("FailedScheduling"))
        .unwrap();
    let cols: Vec<&str> = event.split_whitespace().collect();
    assert_eq!(cols[..2], ["Warning", "FailedScheduling"], "{text}");
    assert!(event.contains("default-scheduler"), "{text}");
    assert!(
        event.ends_with("0/2 nodes are available: 2 Insufficient cpu."),
        "{text}"
    );
    assert!(text.contains("PodScheduled   False"), "{text}");

    let out = s.kubectl(&["describe", "pod", "small"]).await;
    assert!(
        out.ok()
            .contains("Successfully assigned default/small to node-"),
        "{}",
        out.stdout
    );

    components.shutdown().await.unwrap();
    s.stop().await;
}
