//! The process runtime for real: two pods of `workbook/demo-app:v1` as child
//! processes of the built `labs` binary, each on its own loopback address and
//! the same port, probed over real HTTP, logs read, one stopped with SIGTERM.
//! Loopback only.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort};
use labs::kubelet::Clock;
use labs::kubelet::probe::{ProbeAction, http_get, tcp_socket};
use labs::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use labs::kubelet::runtime::{
    ContainerConfig, ContainerId, LoopbackIpam, ProbeTarget, Runtime, RuntimeState, SandboxConfig,
    SandboxInfo,
};

/// A port no other test is using right now: ask the kernel for a free one.
/// Pods listen on other loopback addresses, so a clash would need another
/// test to pick the same port *and* pod address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> ProcessRuntime {
    let config = ProcessConfig {
        exe: env!("CARGO_BIN_EXE_labs").into(),
        tags: None,
    };
    // Start pod IPs at a per-process address, so parallel test binaries
    // using this runtime do not hand out the same ones.
    let third = 10 + (std::process::id() % 200) as u8;
    ProcessRuntime::new(
        config,
        Clock::cluster(),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 0, third, 1)),
    )
}

async fn start_pod(rt: &ProcessRuntime, name: &str, port: u16) -> (SandboxInfo, ContainerId) {
    let sandbox = rt
        .run_pod_sandbox(&SandboxConfig {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            annotations: BTreeMap::new(),
            ports: vec![port],
        })
        .await
        .unwrap();
    let image = rt.pull_image("workbook/demo-app:v1", None).await.unwrap();
    let container = Container {
        name: "app".into(),
        image: Some("workbook/demo-app:v1".into()),
        ports: Some(vec![ContainerPort {
            container_port: port.into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let config = ContainerConfig {
        container,
        attempt: 0,
        image,
        env: vec![("GREETING".into(), "hello".into())],
    };
    let id = rt.start_container(&sandbox, &config).await.unwrap();
    (sandbox, id)
}

/// Probe `/healthz` the kubelet's way until it succeeds (the app needs a
/// moment to bind).
async fn wait_ready(rt: &ProcessRuntime, sandbox: &SandboxInfo, id: &ContainerId, port: u16) {
    let target = ProbeTarget {
        id: id.clone(),
        pod_ip: sandbox.ip,
    };
    let action = ProbeAction::HttpGet {
        scheme: "http".into(),
        host: sandbox.ip.to_string(),
        port,
        path: "/healthz".into(),
        headers: vec![],
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = rt.probe(&target, &action, Duration::from_secs(1)).await;
        if outcome.success {
            assert_eq!(outcome.output, "ok");
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {}", outcome.output);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_pods_same_port_real_http_logs_and_sigterm() {
    let rt = runtime();
    let port = free_port();
    let (sb1, id1) = start_pod(&rt, "web-1", port).await;
    let (sb2, id2) = start_pod(&rt, "web-2", port).await;
    assert_ne!(sb1.ip, sb2.ip, "each pod has its own address");
    wait_ready(&rt, &sb1, &id1, port).await;
    wait_ready(&rt, &sb2, &id2, port).await;

    // GET / answers with the version (the image tag) and the pod name.
    for (sb, name) in [(&sb1, "web-1"), (&sb2, "web-2")] {
        let body: serde_json::Value = reqwest::get(format!("http://{}:{port}/", sb.ip))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["version"], "v1");
        assert_eq!(body["pod"], *name);
        assert_eq!(body["database"], "no database");
    }

    // A TCP probe, and an exec probe (run on the host).
    assert!(
        tcp_socket(&sb1.ip.to_string(), port, Duration::from_secs(1))
            .await
            .success
    );
    let target = ProbeTarget {
        id: id1.clone(),
        pod_ip: sb1.ip,
    };
    let exec = |cmd: &[&str]| ProbeAction::Exec {
        command: cmd.iter().map(|s| s.to_string()).collect(),
    };
    let sh = exec(&["sh", "-c", "test \"$GREETING\" = hello"]);
    assert!(
        rt.probe(&target, &sh, Duration::from_secs(5)).await.success,
        "exec sees the container's env"
    );
    assert!(
        !rt.probe(&target, &exec(&["false"]), Duration::from_secs(5))
            .await
            .success
    );
    // Not found → a failed HTTP probe with upstream's wording.
    let missing = http_get(
        "http",
        &sb1.ip.to_string(),
        port,
        "/nope",
        &[],
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(missing.output, "HTTP probe failed with statuscode: 404");

    // Logs: what the app wrote on start.
    let logs = rt.logs(&id1).await.unwrap();
    let text: String = logs.iter().map(|l| format!("{}\n", l.text)).collect();
    assert!(text.contains("demo-app listening"), "{text}");
    assert!(text.contains(&format!("{}:{port}", sb1.ip)), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in logs: {text:?}"
    );

    // Stop web-1 gracefully: SIGTERM, it drains and exits 0 well within the
    // grace period.
    let before = Instant::now();
    rt.stop_container(&id1, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(before.elapsed() < Duration::from_secs(10));
    let status = rt.container_status(&id1).await.unwrap();
    assert!(
        matches!(status.state, RuntimeState::Exited { exit_code: 0, .. }),
        "{status:?}"
    );
    let text: String = rt
        .logs(&id1)
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{}\n", l.text))
        .collect();
    assert!(text.contains("demo-app stopped"), "{text}");
    assert!(
        !tcp_socket(&sb1.ip.to_string(), port, Duration::from_secs(1))
            .await
            .success
    );
    // The log of the stopped instance stays (that is `kubectl logs --previous`)
    // and following it ends at once.
    use futures::StreamExt;
    let followed: Vec<_> = rt.follow_logs(&id1).await.unwrap().collect().await;
    assert_eq!(followed.len(), rt.logs(&id1).await.unwrap().len());

    // web-2 is untouched.
    wait_ready(&rt, &sb2, &id2, port).await;
    let all = rt.list_containers().await;
    assert_eq!(all.len(), 2);

    // Shutting the runtime down kills and reaps what still runs.
    rt.shutdown().await;
    assert!(matches!(
        rt.container_status(&id2).await.unwrap().state,
        RuntimeState::Exited { exit_code: 137, .. }
    ));
    rt.remove_container(&id1).await.unwrap();
    assert!(rt.logs(&id1).await.is_err());
}

#[tokio::test]
async fn unknown_images_fail_to_pull() {
    let rt = runtime();
    for image in [
        "nginx:1.27",
        "gcr.io/google-samples/kubernetes-bootcamp:v10",
    ] {
        let err = rt.pull_image(image, None).await.unwrap_err();
        assert!(err.message.contains("not found"), "{err}");
        assert!(
            err.message.starts_with("rpc error: code = NotFound"),
            "{err}"
        );
    }
    let only_v1 = ProcessRuntime::new(
        ProcessConfig {
            exe: env!("CARGO_BIN_EXE_labs").into(),
            tags: Some(vec!["v1".into()]),
        },
        Clock::cluster(),
        LoopbackIpam::default(),
    );
    assert!(
        only_v1
            .pull_image("workbook/demo-app:v1", None)
            .await
            .is_ok()
    );
    assert!(
        only_v1
            .pull_image("workbook/demo-app:v10", None)
            .await
            .is_err()
    );
}

/// The whole chain for an unknown image: the kubelet core decides to start,
/// the pull fails, the pod shows ErrImagePull and then ImagePullBackOff.
#[tokio::test]
async fn err_image_pull_through_sync_pod() {
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use labs::kubelet::{Action, PodRuntimeState, sync_pod};

    let rt = runtime();
    let clock = Clock::cluster();
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some("broken".into()),
            namespace: Some("default".into()),
            uid: Some("uid-broken".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("workbook/kubernetes-bootcamp:v10".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let mut state = PodRuntimeState::new("127.0.0.1");
    let mut shown = vec![];
    for _ in 0..3 {
        let now = clock.now();
        let d = sync_pod(&pod, &state, now);
        pod.status = Some(d.status.clone());
        state.record_decision(&d, now);
        for a in &d.actions {
            match a {
                Action::CreateSandbox => {
                    let sb = rt.run_pod_sandbox(&SandboxConfig::of(&pod)).await.unwrap();
                    state.record_sandbox(sb);
                }
                Action::StartContainer { container, .. } => {
                    let image = "workbook/kubernetes-bootcamp:v10";
                    let err = rt.pull_image(image, None).await.unwrap_err();
                    state.record_pull_failure(container, image, &err.message, now);
                }
                _ => {}
            }
        }
        let s = &pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        shown.push(
            s.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .clone()
                .unwrap(),
        );
    }
    assert_eq!(
        shown,
        ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    );
}

/// `ContainerStats` from `/proc`: the resident memory of the app's process,
/// and a CPU counter that grows while it answers requests; none once it
/// has exited.
#[tokio::test]
async fn stats_come_from_proc_and_grow_under_load() {
    let rt = runtime();
    let port = free_port();
    let (sb, id) = start_pod(&rt, "stats-1", port).await;
    wait_ready(&rt, &sb, &id, port).await;
    let first = rt.container_stats(&id).await.expect("a running container");
    assert!(
        first.memory_working_set_bytes > 1024 * 1024,
        "an app holds more than 1 MiB: {first:?}"
    );
    assert_eq!(first.usage_nano_cores, None, "measured, not set");
    // Keep it busy until its CPU counter moves (one clock tick is 10 ms).
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for _ in 0..50 {
            let _ = client.get(format!("http://{}:{port}/", sb.ip)).send().await;
        }
        let now = rt.container_stats(&id).await.expect("still running");
        if now.usage_core_nano_seconds > first.usage_core_nano_seconds {
            break;
        }
        assert!(Instant::now() < deadline, "the CPU counter never moved");
    }
    rt.stop_container(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(rt.container_stats(&id).await, None);
}
