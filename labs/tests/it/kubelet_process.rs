//! The kubelet end to end with the process runtime: pods bound to its node
//! run `demo-app` as child processes on their own loopback addresses, become
//! Ready through real HTTP readiness probes, answer `GET /`, show their log
//! through `kubectl logs`, get their environment from a ConfigMap and a
//! Secret, stop with SIGTERM (exit 0) on delete, and are adopted — not
//! started twice — by a restarted kubelet. Also `kubectl get nodes`.
//! Loopback only; every child process is stopped at the end.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use labs::apiserver::{ApiServer, kubeconfig};
use labs::kubelet::Clock;
use labs::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use labs::kubelet::runtime::{LoopbackIpam, Runtime, RuntimeState};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use serde_json::json;

fn runtime() -> Arc<ProcessRuntime> {
    let config = ProcessConfig {
        exe: env!("CARGO_BIN_EXE_labs").into(),
        tags: None,
    };
    // A per-process range of pod addresses (parallel test binaries).
    let third = 10 + (std::process::id() % 200) as u8;
    Arc::new(ProcessRuntime::new(
        config,
        Clock::cluster(),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 1, third, 1)),
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_kubelet(api: &ApiServer, rt: &Arc<ProcessRuntime>) -> Kubelet {
    let mut config = KubeletConfig::new("node-1");
    config.relist_period = Duration::from_millis(200);
    let kubelet = Kubelet::start(api.client(), Arc::clone(rt), config, Clock::cluster());
    api.register_kubelet("node-1", kubelet.logs());
    kubelet
}

fn pod(name: &str, port: u16, env: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "app", "image": "workbook/demo-app:v1",
                "ports": [{"containerPort": port}],
                "env": env,
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 1},
            }],
        },
    }))
    .unwrap()
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn kubectl(kubeconfig: &std::path::Path, cache: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(crate::kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pods_run_probe_log_stop_and_are_adopted() {
    let api = ApiServer::new(Store::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    kubeconfig::write_kubeconfig(&kc, addr).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.clone().serve(listener, async {
        let _ = stopped.await;
    }));

    let rt = runtime();
    let kubelet = start_kubelet(&api, &rt);
    let client = api.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
        "metadata": {"name": "names"}, "data": {"pod": "from-configmap"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
            "metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}))
            .unwrap(),
        )
        .await
        .unwrap();

    // `POD_NAME` is what demo-app reports as its pod: set it from the
    // ConfigMap and see the value come back over HTTP.
    let port = free_port();
    let env = json!([
        {"name": "POD_NAME", "valueFrom": {"configMapKeyRef": {"name": "names", "key": "pod"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]);
    pods.create(&PostParams::default(), &pod("web", port, env))
        .await
        .unwrap();
    // And one whose name comes from a Secret instead.
    let env2 = json!([
        {"name": "POD_NAME", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]);
    pods.create(&PostParams::default(), &pod("web2", port, env2))
        .await
        .unwrap();

    let web = wait_for("web Ready", async || {
        pods.get("web").await.ok().filter(ready)
    })
    .await;
    let web2 = wait_for("web2 Ready", async || {
        pods.get("web2").await.ok().filter(ready)
    })
    .await;
    let ip = web.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let ip2 = web2.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_ne!(ip, ip2, "each pod has its own address");
    assert_eq!(
        web.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );

    // Real HTTP to the pod's own address.
    let body: serde_json::Value = reqwest::get(format!("http://{ip}:{port}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["version"], "v1");
    assert_eq!(body["pod"], "from-configmap");
    let body2: serde_json::Value = reqwest::get(format!("http://{ip2}:{port}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body2["pod"], "s3cret");

    // kubectl sees a Ready node and the pod's log.
    let nodes = kubectl(&kc, &cache, &["get", "nodes"]).await;
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("node-1") && l.contains(" Ready ")),
        "{nodes}"
    );
    assert!(nodes.contains("v1.35.2-labs"), "{nodes}");
    let logs = kubectl(&kc, &cache, &["logs", "web"]).await;
    assert!(logs.contains("demo-app listening"), "{logs}");

    // Restart the kubelet: the same containers are adopted, none started.
    let before = rt.list_containers().await;
    assert_eq!(before.len(), 2);
    kubelet.stop().await;
    api.unregister_kubelet("node-1");
    let kubelet = start_kubelet(&api, &rt);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rt.list_containers().await;
    assert_eq!(
        before.iter().map(|c| &c.id).collect::<Vec<_>>(),
        after.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "adopted, not duplicated"
    );
    let web = pods.get("web").await.unwrap();
    assert!(ready(&web), "still Ready after the kubelet restart");
    let cs = &web
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(cs.restart_count, 0);

    // Delete: SIGTERM, the app drains and exits 0, then the object goes.
    let id = before
        .iter()
        .find(|c| c.pod_uid == web.metadata.uid.clone().unwrap())
        .unwrap()
        .id
        .clone();
    let logs_before = rt.logs(&id).await.unwrap();
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    let exit = wait_for("web's container to exit", async || {
        match rt.container_status(&id).await {
            Ok(s) => match s.state {
                RuntimeState::Exited { exit_code, .. } => Some(Some(exit_code)),
                RuntimeState::Running => None,
            },
            // Already removed after the pod went: it exited.
            Err(_) => Some(None),
        }
    })
    .await;
    if let Some(code) = exit {
        assert_eq!(code, 0, "SIGTERM lets demo-app exit cleanly");
    }
    wait_for("web to be gone", async || {
        pods.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(logs_before.iter().any(|l| l.text.contains("listening")));
    pods.delete("web2", &DeleteParams::default()).await.unwrap();
    wait_for("web2 to be gone", async || {
        pods.get_opt("web2").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(rt.list_containers().await.is_empty(), "containers removed");

    kubelet.stop().await;
    rt.shutdown().await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
