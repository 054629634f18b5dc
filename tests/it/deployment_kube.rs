//! The Deployment controller end to end with kube-rs on the in-process
//! cluster, with tokio's clock paused: a template change makes a new
//! ReplicaSet (named by pod-template-hash) and moves replicas within
//! maxSurge/maxUnavailable; an undo by JSON patch (as kubectl does it)
//! re-uses the old ReplicaSet; revisionHistoryLimit deletes the oldest;
//! orphaned ReplicaSets are adopted.
//!
//! The pods run: the scheduler places them and three kubelets on the
//! simulated runtime start them, each container taking `ready_after` to
//! start (and, with no readiness probe, ready once it runs).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use labs::apiserver::ApiServer;
use labs::cluster::SimulatedNodes;
use labs::controllers::manager::{ControllerManager, ManagerOptions};
use labs::kubelet::runtime::simulated::{Behavior, SimulatedConfig};
use labs::store::Store;
use serde_json::json;
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(600);

struct Cluster {
    client: kube::Client,
    manager: ControllerManager,
    nodes: SimulatedNodes,
}

impl Cluster {
    fn start(ready_after: Duration) -> Cluster {
        let api = ApiServer::new(Store::new());
        let manager = ControllerManager::start(api.client(), ManagerOptions::default());
        let config = SimulatedConfig {
            default: Behavior {
                start_delay_seconds: ready_after.as_secs(),
                ..Behavior::default()
            },
            ..SimulatedConfig::default()
        };
        let nodes = SimulatedNodes::start(&api, &api.client(), 3, config, 1);
        Cluster {
            client: api.client(),
            manager,
            nodes,
        }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::default_namespaced(self.client.clone())
    }

    /// (name, spec.replicas, image, revision), oldest revision first.
    async fn replica_sets(&self) -> Vec<(String, i32, String, String)> {
        let list = Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let mut out: Vec<_> = list
            .items
            .iter()
            .map(|rs| {
                let spec = rs.spec.as_ref().unwrap();
                (
                    rs.metadata.name.clone().unwrap(),
                    spec.replicas.unwrap_or(1),
                    spec.template
                        .as_ref()
                        .unwrap()
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers[0]
                        .image
                        .clone()
                        .unwrap(),
                    rs.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        out.sort_by_key(|r| r.3.parse::<i64>().unwrap_or(0));
        out
    }

    async fn complete(&self) {
        wait_for("the rollout to complete", LIMIT, || async {
            let d = self.deployments().get("web").await.unwrap();
            let want = d.spec.as_ref().unwrap().replicas.unwrap_or(1);
            let s = d.status.unwrap_or_default();
            s.observed_generation == d.metadata.generation
                && s.updated_replicas == Some(want)
                && s.replicas == Some(want)
                && s.available_replicas == Some(want)
        })
        .await;
    }

    async fn set_image(&self, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.deployments()
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }

    async fn stop(self) {
        self.nodes.stop().await.unwrap();
        self.manager.shutdown().await.unwrap();
    }
}

fn deployment(replicas: i32, extra: serde_json::Value) -> Deployment {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": "app:v1"}]},
            },
        },
    });
    json_patch::merge(&mut d, &extra);
    serde_json::from_value(d).unwrap()
}

#[tokio::test(start_paused = true)]
async fn template_change_rolls_out_within_surge_and_unavailable() {
    let c = Cluster::start(Duration::from_secs(5));
    c.deployments()
        .create(&PostParams::default(), &deployment(10, json!({})))
        .await
        .unwrap();
    c.complete().await;

    // Watch the sizes while the rollout runs: never more than 13 pods
    // wanted, never fewer than 8 available.
    c.set_image("app:v2").await;
    let mut max_total = 0;
    let mut min_available = i32::MAX;
    let mut seen_steps = Vec::new();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss = c.replica_sets().await;
        let total: i32 = rss.iter().map(|r| r.1).sum();
        max_total = max_total.max(total);
        let d = c.deployments().get("web").await.unwrap();
        let s = d.status.unwrap_or_default();
        min_available = min_available.min(s.available_replicas.unwrap_or(0));
        if rss.len() == 2 {
            let step = (rss[1].1, rss[0].1);
            if seen_steps.last() != Some(&step) {
                seen_steps.push(step);
            }
        }
        if s.updated_replicas == Some(10)
            && s.replicas == Some(10)
            && s.available_replicas == Some(10)
        {
            break;
        }
    }
    assert!(max_total <= 13, "at most replicas + maxSurge: {max_total}");
    assert!(
        min_available >= 8,
        "at least replicas - maxUnavailable: {min_available}"
    );
    assert_eq!(seen_steps.last(), Some(&(10, 0)), "{seen_steps:?}");

    let rss = c.replica_sets().await;
    assert_eq!(rss.len(), 2);
    let new = Api::<ReplicaSet>::default_namespaced(c.client.clone())
        .get(&rss[1].0)
        .await
        .unwrap();
    let hash = new.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rss[1].0, format!("web-{hash}"));
    let selector = new
        .spec
        .as_ref()
        .unwrap()
        .selector
        .match_labels
        .clone()
        .unwrap();
    assert_eq!(selector["pod-template-hash"], hash);
    // Every pod of the new ReplicaSet carries the hash too.
    let pods = Api::<Pod>::default_namespaced(c.client.clone())
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 10);
    assert_eq!(
        new.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/max-replicas"],
        "13"
    );
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn undo_by_json_patch_reuses_the_old_replica_set() {
    let c = Cluster::start(Duration::from_secs(1));
    c.deployments()
        .create(&PostParams::default(), &deployment(3, json!({})))
        .await
        .unwrap();
    c.complete().await;
    c.set_image("app:v2").await;
    c.complete().await;
    let before = c.replica_sets().await;
    assert_eq!(before.len(), 2);

    // kubectl's undo: the old ReplicaSet's template without the hash label.
    let old = Api::<ReplicaSet>::default_namespaced(c.client.clone())
        .get(&before[0].0)
        .await
        .unwrap();
    let mut template = old.spec.unwrap().template.unwrap();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
    ]))
    .unwrap();
    c.deployments()
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .unwrap();
    c.complete().await;

    let after = c.replica_sets().await;
    assert_eq!(after.len(), 2, "no new ReplicaSet: {after:?}");
    assert_eq!(
        after[0],
        (before[1].0.clone(), 0, "app:v2".into(), "2".into())
    );
    assert_eq!(
        after[1],
        (before[0].0.clone(), 3, "app:v1".into(), "3".into())
    );
    let reused = Api::<ReplicaSet>::default_namespaced(c.client.clone())
        .get(&after[1].0)
        .await
        .unwrap();
    assert_eq!(
        reused.metadata.annotations.unwrap()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let d = c.deployments().get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn revision_history_limit_deletes_the_oldest_replica_sets() {
    let c = Cluster::start(Duration::from_secs(1));
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment(2, json!({"spec": {"revisionHistoryLimit": 2}})),
        )
        .await
        .unwrap();
    c.complete().await;
    for v in 2..=5 {
        c.set_image(&format!("app:v{v}")).await;
        c.complete().await;
    }
    wait_for("cleanup", LIMIT, || async {
        c.replica_sets().await.len() == 3
    })
    .await;
    let rss = c.replica_sets().await;
    let kept: Vec<(&str, &str)> = rss.iter().map(|r| (r.2.as_str(), r.3.as_str())).collect();
    assert_eq!(kept, [("app:v3", "3"), ("app:v4", "4"), ("app:v5", "5")]);
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_orphaned_replica_set_is_adopted_and_a_relabelled_one_released() {
    let c = Cluster::start(Duration::from_secs(1));
    c.deployments()
        .create(&PostParams::default(), &deployment(2, json!({})))
        .await
        .unwrap();
    c.complete().await;
    let rs_api = Api::<ReplicaSet>::default_namespaced(c.client.clone());
    let name = c.replica_sets().await[0].0.clone();

    // Remove the ownerReference (as `kubectl delete deploy --cascade=orphan`
    // would leave it): the Deployment adopts it back.
    let patch = json!({"metadata": {"ownerReferences": null}});
    rs_api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("adoption", LIMIT, || async {
        let rs = rs_api.get(&name).await.unwrap();
        rs.metadata.owner_references.is_some_and(|o| {
            o.iter()
                .any(|o| o.kind == "Deployment" && o.controller == Some(true))
        })
    })
    .await;
    assert_eq!(c.replica_sets().await.len(), 1, "adopted, not replaced");

    // Change its labels so the Deployment no longer selects it: released,
    // and the Deployment makes a new ReplicaSet for its template.
    let patch = json!({"metadata": {"labels": {"app": "other"}}});
    rs_api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("release", LIMIT, || async {
        let rs = rs_api.get(&name).await.unwrap();
        rs.metadata.owner_references.is_none_or(|o| o.is_empty())
    })
    .await;
    c.complete().await;
    c.stop().await;
}
