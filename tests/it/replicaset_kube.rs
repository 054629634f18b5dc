//! The ReplicaSet controller and the garbage collector end to end: kube-rs
//! against the in-process cluster (API server + controller manager), with
//! tokio's clock paused so that every wait is bounded and instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use labs::apiserver::ApiServer;
use labs::controllers::manager::{ControllerManager, ManagerOptions};
use labs::store::Store;
use serde_json::json;
use workbook::cluster::{Cluster, active, controller_name, replica_set, settle, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// Waits until ReplicaSet `web` has exactly `n` active pods and its status
/// says so.
async fn converged(c: &Cluster, n: usize) {
    wait_for(&format!("web has {n} pods"), LIMIT, || async {
        let pods = c.web_pods().await;
        let rs = c.replica_sets().get("web").await.unwrap();
        let status = rs.status.clone().unwrap_or_default();
        pods.iter().filter(|p| active(p)).count() == n
            && status.replicas == n as i32
            && status.observed_generation == rs.metadata.generation
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_pod_is_recreated() {
    let c = Cluster::start();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    let pods = c.web_pods().await;
    for pod in &pods {
        assert_eq!(controller_name(pod).as_deref(), Some("web"));
        assert!(pod.metadata.name.as_deref().unwrap().starts_with("web-"));
    }

    let victim = pods[0].metadata.name.clone().unwrap();
    c.pods()
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    converged(&c, 3).await;
    let names: Vec<String> = c
        .web_pods()
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert!(!names.contains(&victim), "{names:?}");

    // Events: one SuccessfulCreate per pod the controller created (3, then
    // the replacement). The user's delete is no controller event.
    let events: Api<Event> = Api::default_namespaced(c.client.clone());
    wait_for("4 SuccessfulCreate events", LIMIT, || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .count()
            == 4
    })
    .await;
    let event = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
        .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(event.involved_object.name.as_deref(), Some("web"));
    assert!(event.involved_object.uid.is_some());
    assert!(event.message.unwrap().starts_with("Created pod: web-"));
    assert_eq!(
        event.source.unwrap().component.as_deref(),
        Some("replicaset-controller")
    );
    assert_eq!(event.count, Some(1));
    assert!(event.first_timestamp.is_some() && event.last_timestamp.is_some());
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn scaling_down_deletes_and_records_events() {
    let c = Cluster::start();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(5))
        .await
        .unwrap();
    converged(&c, 5).await;
    c.replica_sets()
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    converged(&c, 2).await;
    let events: Api<Event> = Api::default_namespaced(c.client.clone());
    wait_for("3 SuccessfulDelete events", LIMIT, || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
            .count()
            == 3
    })
    .await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_orphan_is_adopted_and_a_relabelled_pod_released() {
    let c = Cluster::start();
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "handmade", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
    }))
    .unwrap();
    c.pods()
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    // Adopted, so only two were created.
    let handmade = c.pods().get("handmade").await.unwrap();
    assert_eq!(controller_name(&handmade).as_deref(), Some("web"));

    // Relabel it: released (no ownerReference) and replaced.
    c.pods()
        .patch(
            "handmade",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
        )
        .await
        .unwrap();
    converged(&c, 3).await;
    wait_for("handmade released", LIMIT, || async {
        let p = c.pods().get("handmade").await.unwrap();
        p.metadata.owner_references.unwrap_or_default().is_empty()
    })
    .await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deleting_the_replicaset_collects_its_pods() {
    let c = Cluster::start();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    // kube-rs's default DeleteParams: no propagationPolicy (the default for
    // apps/v1 is background).
    c.replica_sets()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.replica_sets().get_opt("web").await.unwrap().is_none());
    wait_for("the garbage collector deleted the pods", LIMIT, || async {
        c.web_pods().await.is_empty()
    })
    .await;
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn orphan_propagation_keeps_the_pods_without_owner_references() {
    let c = Cluster::start();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    let before: Vec<String> = c
        .web_pods()
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let answer = c
        .replica_sets()
        .delete("web", &DeleteParams::orphan())
        .await
        .unwrap();
    // The API server keeps the ReplicaSet until the collector is done.
    let rs = answer.left().expect("the ReplicaSet, marked for deletion");
    assert!(rs.metadata.deletion_timestamp.is_some());
    assert_eq!(rs.metadata.finalizers, Some(vec!["orphan".to_string()]));
    wait_for("the ReplicaSet is gone", LIMIT, || async {
        c.replica_sets().get_opt("web").await.unwrap().is_none()
    })
    .await;
    settle(Duration::from_secs(5)).await;
    let after = c.web_pods().await;
    let mut names: Vec<String> = after
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    let mut before = before;
    before.sort();
    assert_eq!(names, before, "the same pods, none deleted, none added");
    for pod in &after {
        // Absent, not `[]`, as the real server writes it.
        assert_eq!(pod.metadata.owner_references, None);
    }
    c.stop().await;
}

/// Every DELETED event on `api` from `rv` on, as (resourceVersion, name).
fn deletions<K>(api: Api<K>, rv: String) -> tokio::task::JoinHandle<Vec<(u64, String)>>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    tokio::spawn(async move {
        let mut stream = api
            .watch(&WatchParams::default().timeout(10), &rv)
            .await
            .unwrap()
            .boxed();
        let mut out = Vec::new();
        while let Some(event) = stream.next().await {
            if let WatchEvent::Deleted(obj) = event.unwrap() {
                let meta = obj.meta();
                out.push((
                    meta.resource_version.as_deref().unwrap().parse().unwrap(),
                    meta.name.clone().unwrap(),
                ));
            }
        }
        out
    })
}

#[tokio::test(start_paused = true)]
async fn foreground_propagation_deletes_the_pods_before_the_replicaset() {
    let c = Cluster::start();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    let rv = c
        .pods()
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pod_deletions = deletions(c.pods(), rv.clone());
    let rs_deletions = deletions(c.replica_sets(), rv);
    let answer = c
        .replica_sets()
        .delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    let rs = answer.left().expect("the ReplicaSet, marked for deletion");
    assert_eq!(
        rs.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    wait_for("the ReplicaSet is gone", LIMIT, || async {
        c.replica_sets().get_opt("web").await.unwrap().is_none()
    })
    .await;
    let pods = pod_deletions.await.unwrap();
    let rss = rs_deletions.await.unwrap();
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(rss.len(), 1, "{rss:?}");
    let rs_gone_at = rss[0].0;
    for (rv, name) in &pods {
        assert!(*rv < rs_gone_at, "pod {name} deleted after its owner");
    }
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_controllers_nothing_happens() {
    let c = Cluster::without_controllers();
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    settle(Duration::from_secs(30)).await;
    assert!(c.web_pods().await.is_empty());
    // And an orphan delete waits for a collector that is not there.
    c.replica_sets()
        .delete("web", &DeleteParams::orphan())
        .await
        .unwrap();
    settle(Duration::from_secs(30)).await;
    let rs = c.replica_sets().get("web").await.unwrap();
    assert!(rs.metadata.deletion_timestamp.is_some());
}

/// A client whose every request takes `delay` before it reaches the API
/// server: slow enough to stop the controller between slow-start batches.
fn slow_client(api: &ApiServer, delay: Duration) -> kube::Client {
    let router = api.router();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        use tower::ServiceExt;
        let router = router.clone();
        async move {
            tokio::time::sleep(delay).await;
            router.oneshot(req.map(axum::body::Body::new)).await
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test(start_paused = true)]
async fn a_controller_restarted_mid_scale_converges_without_extra_pods() {
    let api = ApiServer::new(Store::new());
    let first = ControllerManager::start(
        slow_client(&api, Duration::from_millis(20)),
        ManagerOptions::default(),
    );
    let c = Cluster::with(api.clone(), None);
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(20))
        .await
        .unwrap();
    // Batches 1, 2, 4, 8, 5: stop it once the first batches are in.
    wait_for("the first batches", LIMIT, || async {
        c.web_pods().await.len() >= 3
    })
    .await;
    let partial = c.web_pods().await.len();
    assert!(partial < 20, "stopped mid-scale ({partial} pods)");
    // A crash: the tasks are dropped mid-sync.
    first.abort();

    let second = ControllerManager::start(api.client(), ManagerOptions::default());
    converged(&c, 20).await;
    // And it stays there: no late duplicate creates.
    settle(Duration::from_secs(30)).await;
    assert_eq!(c.web_pods().await.len(), 20);
    second.shutdown().await.unwrap();
}

/// A client that, before each of the controller's first `conflicts` status
/// writes, lets a competing writer change the ReplicaSet's status, so that
/// the controller's write carries a stale resourceVersion and gets 409.
/// Counts the 409s it passes back.
fn contended_client(api: &ApiServer, conflicts: usize, seen_409: Arc<AtomicUsize>) -> kube::Client {
    let router = api.router();
    let writes = Arc::new(AtomicUsize::new(0));
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        use tower::ServiceExt;
        let (router, writes, seen_409) = (router.clone(), writes.clone(), seen_409.clone());
        async move {
            let path = req.uri().path().to_string();
            if req.method() == http::Method::PUT
                && path.ends_with("/replicasets/web/status")
                && writes.fetch_add(1, Ordering::SeqCst) < conflicts
            {
                let bogus = http::Request::patch(&path)
                    .header("content-type", "application/merge-patch+json")
                    .body(axum::body::Body::from(r#"{"status":{"replicas":99}}"#))
                    .unwrap();
                let resp = router.clone().oneshot(bogus).await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
            }
            let resp = router.oneshot(req.map(axum::body::Body::new)).await;
            if let Ok(r) = &resp
                && r.status() == http::StatusCode::CONFLICT
            {
                seen_409.fetch_add(1, Ordering::SeqCst);
            }
            resp
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test(start_paused = true)]
async fn status_conflicts_are_retried() {
    let api = ApiServer::new(Store::new());
    let seen_409 = Arc::new(AtomicUsize::new(0));
    // Three conflicts in a row: the first is retried within the sync (GET,
    // PUT again), which conflicts again and fails the sync; the work queue
    // retries it with backoff, and the third conflict is retried in turn.
    let manager = ControllerManager::start(
        contended_client(&api, 3, seen_409.clone()),
        ManagerOptions::default(),
    );
    let c = Cluster::with(api, Some(manager));
    c.replica_sets()
        .create(&PostParams::default(), &replica_set(3))
        .await
        .unwrap();
    converged(&c, 3).await;
    settle(Duration::from_secs(5)).await;
    assert_eq!(seen_409.load(Ordering::SeqCst), 3);
    let rs: ReplicaSet = c.replica_sets().get("web").await.unwrap();
    assert_eq!(
        rs.status.unwrap().replicas,
        3,
        "the competing 99 was overwritten"
    );
    assert_eq!(c.web_pods().await.len(), 3);
    c.stop().await;
}
