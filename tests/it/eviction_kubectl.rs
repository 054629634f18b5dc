//! `kubectl drain` through the Eviction API, and PodDisruptionBudgets that
//! hold it back: the real kubectl against a served cluster (controllers,
//! scheduler, three simulated nodes), and the same eviction from kube-rs's
//! `Api::evict`. Real time and real sockets, so every wait is bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use labs::cluster::{ClusterOptions, Components, start_simulated_kubelets};
use labs::kubelet::runtime::simulated::SimulatedConfig;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use workbook::apiserver::TestServer;
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(60);

/// A served cluster with every component and `nodes` simulated nodes,
/// running Deployment `web` with 3 ready replicas.
async fn cluster_with_web(nodes: usize) -> (TestServer, Components, Vec<labs::kubelet::Kubelet>) {
    let s = TestServer::start().await;
    let components = Components::start(&s.api, &ClusterOptions::default());
    let kubelets = start_simulated_kubelets(&s.api, &s.client(), nodes, SimulatedConfig::default());
    s.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=workbook/demo-app:v1",
        "--replicas=3",
    ])
    .await
    .ok();
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    wait_for("3 ready web pods", LIMIT, || async {
        ready_web_pods(&pods).await.len() == 3
    })
    .await;
    (s, components, kubelets)
}

/// (name, node) of the ready, not terminating pods of `web`.
async fn ready_web_pods(pods: &Api<Pod>) -> Vec<(String, String)> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(labs::machinery::pods::is_pod_ready)
        .map(|p| {
            let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), node)
        })
        .collect()
}

/// POSTs an Eviction body as JSON; the error's Status if refused.
async fn post_eviction(
    s: &TestServer,
    pod: &str,
    body: serde_json::Value,
) -> Result<kube::core::Status, Box<kube::core::Status>> {
    let req = http::Request::post(format!("/api/v1/namespaces/default/pods/{pod}/eviction"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    match s.client().request::<kube::core::Status>(req).await {
        Ok(status) => Ok(status),
        Err(kube::Error::Api(status)) => Err(status),
        Err(e) => panic!("{e:?}"),
    }
}

async fn stop(s: TestServer, components: Components, kubelets: Vec<labs::kubelet::Kubelet>) {
    components.shutdown().await.expect("components stopped");
    for k in kubelets {
        k.stop().await;
    }
    drop(s);
}

/// Waits until the disruption controller has seen the budget's spec and
/// allows `allowed` disruptions.
async fn wait_for_budget(s: &TestServer, allowed: i32) {
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(s.client());
    wait_for("the budget's status", LIMIT, || async {
        let Ok(pdb) = pdbs.get("web").await else {
            return false;
        };
        let status = pdb.status.unwrap_or_default();
        status.observed_generation == pdb.metadata.generation
            && status.disruptions_allowed == allowed
            && status.current_healthy == 3
    })
    .await;
}

// ANCHOR: drain_test
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_drain_waits_for_the_budget_then_moves_the_pods() {
    let (s, components, kubelets) = cluster_with_web(3).await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());

    // `kubectl create pdb` and its columns.
    let out = s
        .kubectl(&[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=3",
        ])
        .await;
    assert_eq!(out.ok().trim(), "poddisruptionbudget.policy/web created");
    wait_for_budget(&s, 0).await;
    let out = s.kubectl(&["get", "pdb"]).await;
    let text = out.ok();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ],
        "{text}"
    );
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "3", "N/A", "0"], "{text}");

    // The scheduler spreads a Deployment's pods over the nodes.
    let before = ready_web_pods(&pods).await;
    assert!(before.iter().any(|(_, n)| n == "node-2"), "{before:?}");

    // The drain cordons node-2, then every eviction is refused while the
    // budget allows nothing: kubectl prints the server's message and tries
    // again every 5 s.
    let mut child = s
        .kubectl_command(&[
            "drain",
            "node-2",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=90s",
        ])
        .spawn()
        .expect("kubectl drain starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = Arc::clone(&stderr);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    wait_for("two refused evictions", LIMIT, || async {
        stderr
            .lock()
            .unwrap()
            .matches("Cannot evict pod as it would violate the pod's disruption budget.")
            .count()
            >= 2
    })
    .await;
    let text = stderr.lock().unwrap().clone();
    assert!(text.contains("error when evicting pods/"), "{text}");
    assert!(text.contains("(will retry after 5s)"), "{text}");
    // Nothing moved meanwhile.
    assert_eq!(ready_web_pods(&pods).await, before);

    // Relax the budget: one disruption at a time is allowed, and the drain
    // completes; the ReplicaSet controller recreates the pods elsewhere.
    s.kubectl(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ])
    .await
    .ok();
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("the drain finished")
        .expect("kubectl output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr.lock().unwrap());
    assert!(stdout.contains("node/node-2 drained"), "{stdout}");
    wait_for("3 ready pods, none on node-2", LIMIT, || async {
        let ready = ready_web_pods(&pods).await;
        ready.len() == 3 && ready.iter().all(|(_, n)| n != "node-2")
    })
    .await;
    let out = s.kubectl(&["get", "node", "node-2"]).await;
    assert!(out.ok().contains("SchedulingDisabled"));

    // The node-failure chapter shows this run.
    let transcript = drain_transcript(&stdout, &stderr.lock().unwrap());
    let book = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/book/src/generated/kubectl-drain.txt"
    ))
    .unwrap_or_default();
    assert_eq!(
        book, transcript,
        "book/src/generated/kubectl-drain.txt no longer matches `kubectl drain`; replace it with:\n{transcript}"
    );
    stop(s, components, kubelets).await;
}
// ANCHOR_END: drain_test

/// What the drain printed, as the book shows it: pod names redacted, each
/// line once (kubectl repeats `evicting pod` on every retry), and the first
/// refusal from stderr after the first attempt, where it appeared.
fn drain_transcript(stdout: &str, stderr: &str) -> String {
    fn redact(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find("web-") {
            out.push_str(&rest[..i]);
            out.push_str("web-<pod>");
            let tail = &rest[i + 4..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(tail.len());
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }
    let refusal = stderr
        .lines()
        .find(|l| l.starts_with("error when evicting"))
        .map(redact);
    let mut lines: Vec<String> = Vec::new();
    for line in stdout.lines().map(redact) {
        if lines.contains(&line) {
            continue;
        }
        let first_attempt = line.starts_with("evicting pod");
        lines.push(line);
        if first_attempt && let Some(r) = &refusal {
            lines.push(r.clone());
        }
    }
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_evict_is_201_or_429_by_the_budget() {
    let (s, components, kubelets) = cluster_with_web(2).await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    s.kubectl(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--max-unavailable=1",
    ])
    .await
    .ok();
    wait_for_budget(&s, 1).await;
    let names: Vec<String> = ready_web_pods(&pods)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();

    // A dry run is answered as the real one would be, and changes nothing.
    let dry = EvictParams {
        post_options: kube::api::PostParams {
            dry_run: true,
            ..Default::default()
        },
        ..Default::default()
    };
    pods.evict(&names[0], &dry)
        .await
        .expect("a dry run is allowed");
    let pod = pods.get(&names[0]).await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_none());
    // Two budgets over one pod: upstream refuses with a 500.
    s.kubectl(&[
        "create",
        "pdb",
        "web2",
        "--selector=app=web",
        "--max-unavailable=1",
    ])
    .await
    .ok();
    let err = pods
        .evict(&names[0], &EvictParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500 && s.message.contains("more than one PodDisruptionBudget")),
        "{err:?}"
    );
    s.kubectl(&["delete", "pdb", "web2"]).await.ok();

    // One disruption allowed: the first eviction goes through (201, Status
    // Success) and the pod is marked as evicted and terminating.
    let status = pods
        .evict(&names[0], &EvictParams::default())
        .await
        .expect("the first eviction is allowed");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let evicted = pods.get(&names[0]).await;
    if let Ok(pod) = evicted {
        assert!(pod.metadata.deletion_timestamp.is_some());
        let conditions = pod.status.unwrap().conditions.unwrap();
        let target = conditions
            .iter()
            .find(|c| c.type_ == "DisruptionTarget")
            .unwrap();
        assert_eq!(target.reason.as_deref(), Some("EvictionByEvictionAPI"));
    }
    // The eviction took the disruption from the budget itself (the
    // controller then forgets the note, the pod being on its way out).
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(s.client());
    let pdb = pdbs.get("web").await.unwrap();
    assert_eq!(pdb.status.unwrap().disruptions_allowed, 0);

    // The second, right after: refused with upstream's 429.
    let err = pods
        .evict(&names[1], &EvictParams::default())
        .await
        .expect_err("the budget is spent");
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err:?}");
    };
    assert_eq!(status.code, 429, "{status:?}");
    assert_eq!(status.reason, "TooManyRequests");
    assert_eq!(
        status.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    // The older policy/v1beta1 Eviction is understood the same way.
    let err = post_eviction(
        &s,
        &names[1],
        serde_json::json!({"apiVersion": "policy/v1beta1", "kind": "Eviction",
            "metadata": {"name": names[1]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 429, "{err:?}");
    assert_eq!(
        err.details.as_ref().unwrap().causes[0].reason,
        "DisruptionBudget"
    );
    // A pod that does not exist: 404, as a delete.
    let err = pods
        .evict("nope", &EvictParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );

    // Once the replacement is ready, the budget allows one again.
    wait_for("a disruption allowed again", LIMIT, || async {
        let status = pdbs.get("web").await.ok().and_then(|p| p.status);
        status.is_some_and(|s| s.disruptions_allowed == 1)
    })
    .await;
    // A precondition on another uid: 409, the pod stays. (As upstream, the
    // budget was charged before the delete failed; the controller gives
    // the disruption back when the note expires, two minutes later.)
    let err = post_eviction(
        &s,
        &names[2],
        serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": names[2]},
            "deleteOptions": {"preconditions": {"uid": "not-this-one"}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 409, "{err:?}");
    assert!(
        err.message.contains(
            "the UID in the precondition (not-this-one) does not match the UID in record"
        ),
        "{err:?}"
    );
    stop(s, components, kubelets).await;
}

/// Sets a budget's status as the disruption controller would.
async fn set_budget_status(pdbs: &Api<PodDisruptionBudget>, name: &str, allowed: i32) {
    let status = json!({"status": {"observedGeneration": 1, "expectedPods": 2,
        "desiredHealthy": 2 - allowed, "currentHealthy": 2, "disruptionsAllowed": allowed,
        "disruptedPods": null}});
    pdbs.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// The eviction handler's own rules, on an API server with no controller
/// and no kubelet: nothing changes a budget or a pod but the test and the
/// eviction, so every answer is the handler's alone, and an evicted pod
/// stays terminating for the test to look at.
#[tokio::test(flavor = "multi_thread")]
async fn eviction_rules_on_a_bare_api_server() {
    let s = TestServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(s.client());
    // Two running, ready pods on node-1, as a kubelet would report them.
    for name in ["web-1", "web-2"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1",
                     "containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
    let evict = |pod: &'static str| {
        post_eviction(
            &s,
            pod,
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}}),
        )
    };

    // policy/v1: an empty selector covers every pod of the namespace.
    let all: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "all"}, "spec": {"selector": {}, "maxUnavailable": 0},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &all).await.unwrap();
    set_budget_status(&pdbs, "all", 0).await;
    let err = evict("web-1").await.unwrap_err();
    assert_eq!(err.code, 429, "{err:?}");
    assert_eq!(
        err.details.as_ref().unwrap().causes[0].message,
        "The disruption budget all needs 2 healthy pods and has 2 currently"
    );

    // The Eviction's namespace must be the URL's.
    let err = post_eviction(
        &s,
        "web-1",
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "kube-system"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 400, "{err:?}");
    assert_eq!(
        err.message,
        "the namespace of the provided object does not match the namespace sent on the request"
    );

    // Allowed: the pod is marked DisruptionTarget and terminates
    // gracefully (no kubelet here to finish it); the budget is charged and
    // notes the pod in the same write.
    set_budget_status(&pdbs, "all", 1).await;
    let ok = evict("web-1").await.expect("one disruption is allowed");
    assert_eq!(ok.code, 201);
    let pod = pods.get("web-1").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some());
    let conditions = pod.status.unwrap().conditions.unwrap();
    let target = conditions
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("a DisruptionTarget condition");
    assert_eq!(
        (target.status.as_str(), target.reason.as_deref()),
        ("True", Some("EvictionByEvictionAPI"))
    );
    let status = pdbs.get("all").await.unwrap().status.unwrap();
    assert_eq!(status.disruptions_allowed, 0);
    assert!(status.disrupted_pods.unwrap().contains_key("web-1"));
    let condition = &status.conditions.unwrap()[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );
    // A pod already terminating is evicted again without asking the
    // budget, which allows nothing now.
    evict("web-1").await.expect("a terminating pod goes freely");

    // A budget without a selector covers nothing: web-2 goes, although the
    // budget allows no disruption.
    pdbs.delete("all", &Default::default()).await.unwrap();
    let none: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "none"}, "spec": {"maxUnavailable": 0},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &none).await.unwrap();
    set_budget_status(&pdbs, "none", 0).await;
    evict("web-2").await.expect("no budget covers web-2");
    s.stop().await;
}
