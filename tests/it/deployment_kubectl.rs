//! The real kubectl's rollout commands against a served lab cluster with
//! the controllers running (the "rollout" part of the acceptance commands,
//! `kubernetes-api.md` §16; the rest of the list runs without controllers
//! in `apiserver_kubectl.rs`).
//!
//! The pods run: the scheduler places them on three nodes whose kubelets
//! use the simulated runtime, configured per image — `app:slow` takes an hour
//! to start (a rollout to it stops at its first step), `app:broken` cannot
//! be pulled, every other image starts at once. Real time and real sockets
//! here, so every wait is bounded.

use std::time::Duration;

use labs::cluster::SimulatedNodes;
use labs::controllers::manager::{ControllerManager, ManagerOptions};
use labs::kubelet::runtime::simulated::{Behavior, SimulatedConfig};
use serde_json::Value;
use workbook::apiserver::{DEPLOYMENT_YAML, TestServer};
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(30);

async fn start() -> (TestServer, ControllerManager, SimulatedNodes) {
    let s = TestServer::start().await;
    let controllers = ControllerManager::start(s.client(), ManagerOptions::default());
    let mut config = SimulatedConfig::default();
    let slow = Behavior {
        start_delay_seconds: 3600,
        ..Behavior::default()
    };
    let broken = Behavior {
        pull_fails: true,
        ..Behavior::default()
    };
    config.images.insert("app:slow".into(), slow);
    config.images.insert("app:broken".into(), broken);
    let nodes = SimulatedNodes::start(&s.api, &s.client(), 3, config, 1);
    (s, controllers, nodes)
}

async fn json(s: &TestServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(s.kubectl(&args).await.ok()).unwrap()
}

/// `kubectl get rs -l app=web`: (name, spec.replicas, image, revision), by revision.
async fn replica_sets(s: &TestServer) -> Vec<(String, i64, String, String)> {
    let list = json(s, &["get", "rs", "-l", "app=web"]).await;
    let mut out: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(1),
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    out.sort_by_key(|r| r.3.parse::<i64>().unwrap_or(0));
    out
}

/// `kubectl rollout status` until it succeeds (each run waits at most 20 s).
async fn rollout_status(s: &TestServer) -> String {
    let out = s
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    let text = out.ok().to_string();
    assert!(
        text.trim_end()
            .ends_with(r#"deployment "web" successfully rolled out"#),
        "{text}"
    );
    text
}

/// The rows of `kubectl rollout history` as (revision, change-cause).
async fn history(s: &TestServer) -> Vec<(String, String)> {
    let out = s.kubectl(&["rollout", "history", "deployment/web"]).await;
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("deployment.apps/web "), "{text}");
    assert!(lines.next().unwrap().starts_with("REVISION"), "{text}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (rev, cause) = l.split_once(char::is_whitespace).unwrap();
            (rev.to_string(), cause.trim().to_string())
        })
        .collect()
}

fn rows(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rollout_status_history_undo_pause_resume_restart() {
    let (s, controllers, nodes) = start().await;
    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    assert_eq!(
        s.kubectl(&["apply", "-f", &f]).await.ok().trim(),
        "deployment.apps/web created"
    );
    rollout_status(&s).await;
    let out = s.kubectl(&["get", "deploy", "web", "--no-headers"]).await;
    let cols: Vec<&str> = out.ok().split_whitespace().collect();
    assert_eq!(cols[..4], ["web", "3/3", "3", "3"], "{}", out.stdout);

    // describe: conditions, the new ReplicaSet and the controller's events.
    let rs1 = replica_sets(&s).await[0].0.clone();
    let out = s.kubectl(&["describe", "deployment", "web"]).await;
    let text = out.ok();
    assert!(
        text.contains(&format!("NewReplicaSet:   {rs1} (3/3 replicas created)")),
        "{text}"
    );
    assert!(
        text.contains("Available      True    MinimumReplicasAvailable"),
        "{text}"
    );
    assert!(
        text.contains("Progressing    True    NewReplicaSetAvailable"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Scaled up replica set {rs1} from 0 to 3"))
            || text.contains(&format!("Scaled up replica set {rs1} to 3")),
        "{text}"
    );

    // set image + change-cause, then rollout status follows the rollout.
    assert_eq!(
        s.kubectl(&["set", "image", "deployment/web", "web=app:v2"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web image updated"
    );
    s.kubectl(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=set image app:v2",
    ])
    .await
    .ok();
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    assert_eq!(rss.len(), 2, "{rss:?}");
    assert_eq!(
        (rss[0].1, rss[0].2.as_str(), rss[0].3.as_str()),
        (0, "app:v1", "1")
    );
    assert_eq!(
        (rss[1].1, rss[1].2.as_str(), rss[1].3.as_str()),
        (3, "app:v2", "2")
    );
    let rs2 = rss[1].0.clone();
    assert!(rs2.starts_with("web-"), "{rs2}");
    let d = json(&s, &["get", "deploy", "web"]).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    // The ReplicaSet and its pods carry pod-template-hash.
    let rs = json(&s, &["get", "rs", &rs2]).await;
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs2, format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );

    // scale: a merge patch on the scale subresource.
    assert_eq!(
        s.kubectl(&["scale", "deployment/web", "--replicas=5"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web scaled"
    );
    rollout_status(&s).await;
    assert_eq!(replica_sets(&s).await[1].1, 5);

    // history with CHANGE-CAUSE, and one revision's template.
    assert_eq!(
        history(&s).await,
        rows(&[("1", "<none>"), ("2", "set image app:v2")])
    );
    let out = s
        .kubectl(&["rollout", "history", "deployment/web", "--revision=1"])
        .await;
    let text = out.ok();
    assert!(
        text.contains("deployment.apps/web with revision #1"),
        "{text}"
    );
    assert!(
        text.contains("Image:\tapp:v1") || text.contains("Image:      app:v1"),
        "{text}"
    );
    assert!(text.contains("pod-template-hash="), "{text}");

    // undo: the old ReplicaSet is reused and its revision becomes 3.
    assert_eq!(
        s.kubectl(&["rollout", "undo", "deployment/web"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web rolled back"
    );
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    assert_eq!(rss.len(), 2, "no new ReplicaSet: {rss:?}");
    assert_eq!(
        (rss[0].0.as_str(), rss[0].1, rss[0].3.as_str()),
        (rs2.as_str(), 0, "2")
    );
    assert_eq!(
        (rss[1].0.as_str(), rss[1].1, rss[1].3.as_str()),
        (rs1.as_str(), 5, "3")
    );
    let rs = json(&s, &["get", "rs", &rs1]).await;
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(
        history(&s).await,
        rows(&[("2", "set image app:v2"), ("3", "<none>")])
    );

    // undo --to-revision=2: back to v2, which becomes revision 4.
    assert_eq!(
        s.kubectl(&["rollout", "undo", "deployment/web", "--to-revision=2"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web rolled back"
    );
    rollout_status(&s).await;
    assert_eq!(
        history(&s).await,
        rows(&[("3", "<none>"), ("4", "set image app:v2")])
    );
    assert_eq!(replica_sets(&s).await.len(), 2);

    // Errors and no-ops, all decided by kubectl from what the controller wrote.
    let out = s
        .kubectl(&["rollout", "undo", "deployment/web", "--to-revision=42"])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: unable to find specified revision 42 in history"
    );
    let out = s
        .kubectl(&["rollout", "undo", "deployment/web", "--to-revision=4"])
        .await;
    assert_eq!(
        out.ok().trim(),
        "deployment.apps/web skipped rollback (current template already matches revision 4)"
    );

    // pause: a template change is held until resume.
    assert_eq!(
        s.kubectl(&["rollout", "pause", "deployment/web"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web paused"
    );
    let out = s.kubectl(&["rollout", "pause", "deployment/web"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"error: deployments.apps "web" is already paused"#
    );
    let out = s.kubectl(&["rollout", "undo", "deployment/web"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: you cannot rollback a paused deployment; resume it first"),
        "{}",
        out.stderr
    );
    s.kubectl(&["set", "image", "deployment/web", "web=app:v3"])
        .await
        .ok();
    wait_for("the paused deployment's status", LIMIT, || async {
        let d = json(&s, &["get", "deploy", "web"]).await;
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused")
    })
    .await;
    assert_eq!(replica_sets(&s).await.len(), 2, "no rollout while paused");
    assert_eq!(
        s.kubectl(&["rollout", "resume", "deployment/web"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web resumed"
    );
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    assert_eq!(rss.len(), 3, "{rss:?}");
    assert_eq!(
        (rss[2].1, rss[2].2.as_str(), rss[2].3.as_str()),
        (5, "app:v3", "5")
    );

    // restart: a template annotation, hence a new ReplicaSet.
    assert_eq!(
        s.kubectl(&["rollout", "restart", "deployment/web"])
            .await
            .ok()
            .trim(),
        "deployment.apps/web restarted"
    );
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    assert_eq!(rss.len(), 4, "{rss:?}");
    let rs = json(&s, &["get", "rs", &rss[3].0]).await;
    assert!(
        rs["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(rss[3].1, 5);

    // delete a pod: kubectl waits until it is gone; the ReplicaSet replaces it.
    let pods = json(&s, &["get", "pods", "-l", "app=web"]).await;
    let victim = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.kubectl(&["delete", "pod", &victim]).await.deleted(),
        format!(r#"pod "{victim}" deleted"#)
    );
    rollout_status(&s).await;

    nodes.stop().await.unwrap();
    controllers.shutdown().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_set_image_and_scale_mid_rollout() {
    let (s, controllers, nodes) = start().await;
    let yaml = DEPLOYMENT_YAML.replace("replicas: 3", "replicas: 10");
    let f = s.file("deployment.yaml", &yaml);
    s.kubectl(&["apply", "-f", &f]).await.ok();
    rollout_status(&s).await;

    // app:slow's containers take an hour to start, so its pods do not become
    // ready: the rollout stops at the first step, (3, 8) for 10 replicas
    // at 25%/25%.
    s.kubectl(&["set", "image", "deployment/web", "web=app:slow"])
        .await
        .ok();
    wait_for("the first rollout step", LIMIT, || async {
        let rss = replica_sets(&s).await;
        rss.len() == 2 && rss[0].1 == 8 && rss[1].1 == 5
    })
    .await;
    let out = s
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=1s"])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stdout
            .contains(r#"Waiting for deployment "web" rollout to finish: 5 out of 10 new replicas have been updated..."#),
        "{}",
        out.stdout
    );

    // scale mid-rollout: proportional scaling, (5, 8) at 13 → 25 allowed.
    s.kubectl(&["scale", "deployment/web", "--replicas=20"])
        .await
        .ok();
    // The old ReplicaSet gets round(8*25/13)-8 = +7, the new one
    // round(5*25/13)-5 = +5. (The next sync then removes the 7 fresh old
    // pods again: they are not ready, and unhealthy old pods go first.)
    let (old_rs, new_rs) = {
        let rss = replica_sets(&s).await;
        (rss[0].0.clone(), rss[1].0.clone())
    };
    wait_for("proportional scaling events", LIMIT, || async {
        let out = s.kubectl(&["get", "events"]).await;
        let text = out.ok();
        text.contains(&format!("Scaled up replica set {old_rs} from 8 to 15"))
            && text.contains(&format!("Scaled up replica set {new_rs} from 5 to 10"))
    })
    .await;

    // set image mid-rollout: a rollover to a third ReplicaSet.
    s.kubectl(&["set", "image", "deployment/web", "web=app:v3"])
        .await
        .ok();
    wait_for("a third ReplicaSet", LIMIT, || async {
        replica_sets(&s).await.len() == 3
    })
    .await;
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    let sizes: Vec<(i64, &str)> = rss.iter().map(|r| (r.1, r.2.as_str())).collect();
    assert_eq!(sizes, [(0, "app:v1"), (0, "app:slow"), (20, "app:v3")]);

    nodes.stop().await.unwrap();
    controllers.shutdown().await.unwrap();
    s.stop().await;
}

/// The official tutorial's broken-version moment: an image that cannot be
/// pulled. The rollout stalls (old pods keep serving), the progress deadline
/// passes, `rollout status` fails, and only a human's `undo` fixes it.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_broken_image_stalls_until_undo() {
    let (s, controllers, nodes) = start().await;
    let yaml = DEPLOYMENT_YAML.replace(
        "  replicas: 3\n",
        "  replicas: 4\n  progressDeadlineSeconds: 2\n",
    );
    let f = s.file("deployment.yaml", &yaml);
    s.kubectl(&["apply", "-f", &f]).await.ok();
    rollout_status(&s).await;
    s.kubectl(&["set", "image", "deployment/web", "web=app:broken"])
        .await
        .ok();
    let out = s
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        r#"error: deployment "web" exceeded its progress deadline"#
    );
    // Stalled within maxUnavailable: 25% of 4 = 1 old pod gone, 3 left.
    let rss = replica_sets(&s).await;
    assert_eq!((rss[0].1, rss[1].1), (3, 2), "{rss:?}");
    let d = json(&s, &["get", "deploy", "web"]).await;
    assert_eq!(d["status"]["availableReplicas"], 3);
    s.kubectl(&["rollout", "undo", "deployment/web"]).await.ok();
    rollout_status(&s).await;
    let rss = replica_sets(&s).await;
    assert_eq!((rss[0].1, rss[1].1), (0, 4), "{rss:?}");

    nodes.stop().await.unwrap();
    controllers.shutdown().await.unwrap();
    s.stop().await;
}
