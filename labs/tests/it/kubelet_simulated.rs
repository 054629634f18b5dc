//! The kubelet on the simulated runtime, on paused time: a crashing
//! container restarts with crash-loop backoff, `pods/log?previous=true`
//! reads the instance before the restart, and a kubelet restarted on the
//! same runtime adopts the containers instead of starting them again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use labs::apiserver::ApiServer;
use labs::kubelet::Clock;
use labs::kubelet::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use labs::kubelet::runtime::{LoopbackIpam, Runtime};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use serde_json::json;

async fn log(api: &ApiServer, query: &str) -> (u16, String) {
    use tower::ServiceExt;
    let req = http::Request::get(format!("/api/v1/namespaces/default/pods/crash/log{query}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = api.router().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(start_paused = true)]

async fn crash_loop_previous_logs_and_adoption() {
    let api = ApiServer::new(Store::new());
    let clock = Clock::starting_at(Timestamp::from_second(1_800_000_000).unwrap());
    let rt = Arc::new(SimulatedRuntime::new(
        SimulatedConfig::default(),
        clock,
        LoopbackIpam::default(),
    ));
    let start = |rt: &Arc<SimulatedRuntime>| {
        let k = Kubelet::start(
            api.client(),
            Arc::clone(rt),
            KubeletConfig::new("node-1"),
            clock,
        );
        api.register_kubelet("node-1", k.logs());
        k
    };
    let kubelet = start(&rt);
    let pods: Api<Pod> = Api::default_namespaced(api.client());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crash", "annotations": {
            "labs.workbook/simulate": "{\"crashAfterSeconds\": 5}"}},
        "spec": {"nodeName": "node-1",
                 "containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    // No previous instance yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, body) = log(&api, "?previous=true").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("previous terminated container"), "{body}");

    // It crashes at 5 s and is restarted: wait long enough for that.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let p = pods.get("crash").await.unwrap();
    let cs = &p.status.unwrap().container_statuses.unwrap()[0];
    assert!(cs.restart_count >= 1, "restarted: {cs:?}");
    let (code, body) = log(&api, "?previous=true").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("exiting with code 1"), "{body}");

    // Restart the kubelet on the same runtime: nothing is started twice.
    let before: Vec<_> = rt
        .list_containers()
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    kubelet.stop().await;
    let kubelet = start(&rt);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running_before = before.len();
    let after = rt.list_containers().await;
    assert!(
        after.len() <= running_before + 1,
        "no duplicate instances: {before:?} vs {after:?}"
    );
    let p = pods.get("crash").await.unwrap();
    let restarts = p.status.unwrap().container_statuses.unwrap()[0].restart_count;
    assert!(restarts >= cs.restart_count);
    kubelet.stop().await;
}

/// Someone else marks the pod not ready (as the node lifecycle controller
/// does when this node's heartbeat was late): the kubelet, which knows the
/// container is fine, writes `Ready=True` again at its next sync, as
/// upstream's status manager reconciles.
#[tokio::test(start_paused = true)]
async fn a_status_written_by_someone_else_is_reconciled() {
    use kube::api::{Patch, PatchParams};

    let api = ApiServer::new(Store::new());
    let clock = Clock::starting_at(Timestamp::from_second(1_800_000_000).unwrap());
    let rt = Arc::new(SimulatedRuntime::new(
        SimulatedConfig::default(),
        clock,
        LoopbackIpam::default(),
    ));
    let kubelet = Kubelet::start(api.client(), rt, KubeletConfig::new("node-1"), clock);
    let pods: Api<Pod> = Api::default_namespaced(api.client());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-1",
                 "containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ready(&pods.get("web").await.unwrap()).as_deref(),
        Some("True")
    );

    let mut status = pods.get("web").await.unwrap().status.unwrap();
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ == "Ready" {
            c.status = "False".into();
        }
    }
    pods.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap();
    assert_eq!(
        ready(&pods.get("web").await.unwrap()).as_deref(),
        Some("False")
    );
    // The kubelet's periodic sync (every minute with nothing else due).
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        ready(&pods.get("web").await.unwrap()).as_deref(),
        Some("True")
    );
    kubelet.stop().await;
}

/// preStop and the grace period on paused time: the hook runs first, its
/// time comes out of `terminationGracePeriodSeconds`, SIGTERM gets what is
/// left but at least 2 s, and an app slower than that is SIGKILLed (137).
#[tokio::test(start_paused = true)]
async fn prestop_hooks_spend_the_grace_period() {
    use labs::kubelet::runtime::RuntimeState;
    // (preStop sleep, grace period, app's stop time) → (exit after the
    // delete, exit code)
    let cases: [(Option<u64>, u64, u64, u64, i32); 4] = [
        (Some(10), 30, 0, 10, 0),
        (Some(60), 5, 0, 5, 0),   // the hook is cut off at the grace period
        (Some(4), 5, 10, 6, 137), // 1 s left → 2 s minimum → SIGKILL
        (None, 5, 10, 5, 137),
    ];
    for (i, (sleep, grace, stop, exit_after, code)) in cases.into_iter().enumerate() {
        let api = ApiServer::new(Store::new());
        let clock = Clock::starting_at(Timestamp::from_second(1_800_000_000).unwrap());
        let rt = Arc::new(SimulatedRuntime::new(
            SimulatedConfig::default(),
            clock,
            LoopbackIpam::default(),
        ));
        let kubelet = Kubelet::start(
            api.client(),
            Arc::clone(&rt),
            KubeletConfig::new("node-1"),
            clock,
        );
        let pods: Api<Pod> = Api::default_namespaced(api.client());
        let mut container = json!({"name": "app", "image": "workbook/demo-app:v1"});
        if let Some(s) = sleep {
            container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": s}}});
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {
                "labs.workbook/simulate": format!("{{\"stopSeconds\": {stop}}}")}},
            "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": grace,
                     "containers": [container]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let id = rt.list_containers().await[0].id.clone();
        // Every status the kubelet writes, to catch the exit code it
        // reports just before the pod object goes.
        let exit_code = Arc::new(std::sync::Mutex::new(None));
        let watch = {
            use futures::StreamExt;
            let (pods, exit_code) = (pods.clone(), Arc::clone(&exit_code));
            let rv = pods
                .get("p")
                .await
                .unwrap()
                .metadata
                .resource_version
                .unwrap();
            tokio::spawn(async move {
                let mut events = pods.watch(&Default::default(), &rv).await.unwrap().boxed();
                while let Some(Ok(kube::api::WatchEvent::Modified(p))) = events.next().await {
                    let code = p.status.and_then(|s| {
                        s.container_statuses?[0]
                            .state
                            .as_ref()?
                            .terminated
                            .as_ref()
                            .map(|t| t.exit_code)
                    });
                    if let Some(c) = code {
                        *exit_code.lock().unwrap() = Some(c);
                    }
                }
            })
        };
        let deleted = tokio::time::Instant::now();
        pods.delete("p", &Default::default()).await.unwrap();
        // When the runtime's container stops running (it is removed with
        // the pod right after), and the exit code the kubelet reported.
        let mut took = None;
        let mut got = None;
        while took.is_none() || got.is_none() {
            if took.is_none()
                && !matches!(
                    rt.container_status(&id).await.map(|s| s.state),
                    Ok(RuntimeState::Running)
                )
            {
                took = Some(deleted.elapsed());
            }
            got = *exit_code.lock().unwrap();
            assert!(
                deleted.elapsed() < Duration::from_secs(120),
                "case {i}: never stopped ({took:?}, {got:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (took, got) = (took.unwrap(), got.unwrap());
        watch.abort();
        let secs = took.as_secs_f64();
        assert!(
            (secs - exit_after as f64).abs() < 0.5 && got == code,
            "case {i}: exited after {secs:.1}s with {got}, expected {exit_after}s with {code}"
        );
        kubelet.stop().await;
    }
}
