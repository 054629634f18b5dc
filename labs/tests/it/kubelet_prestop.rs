//! preStop on the process runtime: a `demo-app` container with a preStop
//! `sleep: {seconds: 2}` keeps answering for those 2 s after its pod is
//! deleted — SIGTERM comes only after the hook — and then exits cleanly
//! well within `terminationGracePeriodSeconds`. Loopback only.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use labs::apiserver::ApiServer;
use labs::kubelet::Clock;
use labs::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use labs::kubelet::runtime::{LoopbackIpam, Runtime, RuntimeState};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prestop_sleep_delays_sigterm_while_the_app_keeps_serving() {
    let api = ApiServer::new(Store::new());
    let third = 10 + ((std::process::id() + 97) % 200) as u8;
    let rt = Arc::new(ProcessRuntime::new(
        ProcessConfig {
            exe: env!("CARGO_BIN_EXE_labs").into(),
            tags: None,
        },
        Clock::cluster(),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 1, third, 101)),
    ));
    let mut config = KubeletConfig::new("node-1");
    config.relist_period = Duration::from_millis(200);
    let kubelet = Kubelet::start(api.client(), Arc::clone(&rt), config, Clock::cluster());
    let pods: Api<Pod> = Api::default_namespaced(api.client());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "drain"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "app", "image": "workbook/demo-app:v1",
                "ports": [{"containerPort": port}],
                "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (ip, id) = loop {
        let containers = rt.list_containers().await;
        let p = pods.get("drain").await.unwrap();
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
        if let (Some(ip), Some(c)) = (ip, containers.first()) {
            let url = format!("http://{ip}:{port}/");
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break (ip, c.id.clone());
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let url = format!("http://{ip}:{port}/");

    let deleted_at = tokio::time::Instant::now();
    pods.delete("drain", &DeleteParams::default())
        .await
        .unwrap();
    // During the hook the app has not been signalled: it keeps answering.
    while deleted_at.elapsed() < Duration::from_millis(1500) {
        let r = reqwest::get(&url).await;
        assert!(
            r.is_ok_and(|r| r.status().is_success()),
            "the app must keep answering during the preStop sleep ({:?} after the delete)",
            deleted_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then SIGTERM: the container exits (0) after the 2 s, not at once and
    // not after the whole grace period.
    let exited_at = loop {
        match rt.container_status(&id).await.map(|s| s.state) {
            Ok(RuntimeState::Running) => {}
            Ok(RuntimeState::Exited { exit_code, .. }) => {
                assert_eq!(exit_code, 0, "SIGTERM, not SIGKILL");
                break deleted_at.elapsed();
            }
            Err(_) => break deleted_at.elapsed(),
        }
        assert!(
            deleted_at.elapsed() < Duration::from_secs(15),
            "never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exited_at >= Duration::from_secs(2) && exited_at < Duration::from_secs(8),
        "exited {exited_at:?} after the delete"
    );
    kubelet.stop().await;
    for c in rt.list_containers().await {
        let _ = rt.stop_container(&c.id, Duration::from_secs(1)).await;
    }
}
