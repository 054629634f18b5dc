//! The real kubectl against a served lab cluster with the controllers
//! running: `kubectl create/get/scale/delete --cascade=...` on a ReplicaSet.
//! Real time and real sockets here, so every wait is bounded.

use std::time::Duration;

use labs::controllers::manager::{ControllerManager, ManagerOptions};
use serde_json::Value;
use workbook::apiserver::TestServer;
use workbook::cluster::{REPLICASET_YAML, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// `kubectl get pods -l app=web -o json`'s items.
async fn pods(s: &TestServer) -> Vec<Value> {
    let out = s
        .kubectl(&["get", "pods", "-l", "app=web", "-o", "json"])
        .await;
    let list: Value = serde_json::from_str(out.ok()).unwrap();
    list["items"].as_array().unwrap().clone()
}

async fn wait_for_pods(s: &TestServer, n: usize) {
    wait_for(&format!("{n} pods"), LIMIT, || async {
        let items = pods(s).await;
        items.len() == n
            && items
                .iter()
                .all(|p| p["metadata"].get("deletionTimestamp").is_none())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_scale_and_delete_with_cascade_orphan() {
    let s = TestServer::start().await;
    let controllers = ControllerManager::start(s.client(), ManagerOptions::default());
    let f = s.file("rs.yaml", REPLICASET_YAML);
    assert_eq!(
        s.kubectl(&["create", "-f", &f]).await.ok().trim(),
        "replicaset.apps/web created"
    );
    wait_for_pods(&s, 3).await;

    // `kubectl get rs,pods`: 3 desired, 3 current, 0 ready; the pods Pending
    // (no scheduler yet).
    wait_for("status: 3 current", LIMIT, || async {
        let out = s.kubectl(&["get", "rs", "web", "--no-headers"]).await;
        let cols: Vec<String> = out.ok().split_whitespace().map(str::to_string).collect();
        cols[..4] == ["web", "3", "3", "0"]
    })
    .await;
    let out = s.kubectl(&["get", "rs,pods"]).await;
    let text = out.ok();
    assert_eq!(text.matches("Pending").count(), 3, "{text}");
    assert!(text.contains("replicaset.apps/web"), "{text}");

    assert_eq!(
        s.kubectl(&["scale", "rs", "web", "--replicas=5"])
            .await
            .ok()
            .trim(),
        "replicaset.apps/web scaled"
    );
    wait_for_pods(&s, 5).await;
    let before: Vec<String> = pods(&s)
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for p in pods(&s).await {
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    }

    // kubectl waits until the ReplicaSet is really gone, which takes the
    // garbage collector removing the `orphan` finalizer.
    assert_eq!(
        s.kubectl(&["delete", "rs", "web", "--cascade=orphan"])
            .await
            .deleted(),
        "replicaset.apps \"web\" deleted"
    );
    let out = s.kubectl(&["get", "rs"]).await;
    assert!(out.stderr.contains("No resources found"), "{out:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pods(&s).await;
    let mut names: Vec<String> = after
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut before = before;
    before.sort();
    assert_eq!(names, before);
    for p in &after {
        assert!(
            p["metadata"].get("ownerReferences").is_none(),
            "{}",
            p["metadata"]
        );
    }
    controllers.shutdown().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_delete_rs_collects_the_pods() {
    let s = TestServer::start().await;
    let controllers = ControllerManager::start(s.client(), ManagerOptions::default());
    let f = s.file("rs.yaml", REPLICASET_YAML);
    s.kubectl(&["create", "-f", &f]).await.ok();
    wait_for_pods(&s, 3).await;
    assert_eq!(
        s.kubectl(&["delete", "rs", "web", "--cascade=foreground"])
            .await
            .deleted(),
        "replicaset.apps \"web\" deleted"
    );
    // Foreground: by the time kubectl saw the ReplicaSet gone, its pods were.
    assert!(pods(&s).await.is_empty());

    s.kubectl(&["create", "-f", &f]).await.ok();
    wait_for_pods(&s, 3).await;
    s.kubectl(&["delete", "rs", "web"]).await.ok();
    wait_for_pods(&s, 0).await;
    controllers.shutdown().await.unwrap();
    s.stop().await;
}
