//! Services end to end on the in-process API server: the EndpointSlice
//! controller through kube-rs (a pod ready → not ready → terminating →
//! gone; 150 pods → two slices), and kube-proxy with real sockets on
//! loopback: two `demo-app` backends behind a cluster IP, both reached; no
//! ready endpoint → connection refused at once; recovery when one is
//! ready again. No kubelet: the tests write the pods' status themselves, as
//! a kubelet would.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use labs::apiserver::ApiServer;
use labs::controllers::endpointslice::controller::{
    self as es_controller, EndpointSliceController,
};
use labs::proxy::proxier::{KubeProxy, ProxyOptions};
use labs::store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A third octet for this test process's addresses, so parallel test
/// binaries do not collide.
fn octet(offset: u8) -> u8 {
    150 + ((std::process::id() % 40) as u8) + offset
}

fn start() -> (ApiServer, kube::Client, CancellationToken) {
    let api = ApiServer::new(Store::new());
    let client = api.client();
    let shutdown = CancellationToken::new();
    let controller =
        EndpointSliceController::new(client.clone(), es_controller::Options::default());
    tokio::spawn(controller.run(shutdown.clone()));
    (api, client, shutdown)
}

async fn create_service(client: &kube::Client, name: &str, cluster_ip: &str, port: u16) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// A pod of `app` at `ip` whose container port `http` is `port`, running
/// and Ready as `ready` says (the status a kubelet would write).
async fn create_pod(
    client: &kube::Client,
    app: &str,
    name: &str,
    ip: &str,
    port: u16,
    ready: bool,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "workbook/demo-app:v1",
                 "ports": [{"name": "http", "containerPort": port}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})),
    )
    .await
    .unwrap();
    set_ready(client, name, ready).await;
}

async fn set_ready(client: &kube::Client, name: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": status}]}})),
        )
        .await
        .unwrap();
}

async fn slices_of(client: &kube::Client, service: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap()
        .items
}

/// (address, ready, serving, terminating) of every endpoint, sorted.
async fn endpoints(client: &kube::Client, service: &str) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices_of(client, service)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            (
                e.addresses[0].clone(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

async fn eventually<T: std::fmt::Debug + PartialEq>(
    what: &str,
    want: T,
    mut f: impl AsyncFnMut() -> T,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = f().await;
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}: got {got:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn endpointslice_follows_a_pod_from_ready_to_gone() {
    let (_api, client, shutdown) = start();
    create_service(&client, "web", "127.2.250.1", 8080).await;
    // No pod yet: one placeholder slice without ports or endpoints.
    eventually("the placeholder slice", 1, async || {
        slices_of(&client, "web").await.len()
    })
    .await;
    let placeholder = &slices_of(&client, "web").await[0];
    assert!(placeholder.endpoints.is_empty());
    assert_eq!(
        placeholder.metadata.labels.as_ref().unwrap()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        placeholder.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Service"
    );

    let ip = "127.0.1.21";
    create_pod(&client, "web", "web-1", ip, 9376, true).await;
    eventually(
        "ready",
        vec![(ip.to_string(), true, true, false)],
        async || endpoints(&client, "web").await,
    )
    .await;
    let slices = slices_of(&client, "web").await;
    assert_eq!(
        slices.len(),
        1,
        "the placeholder made way for the real slice"
    );
    let port = &slices[0].ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port),
        (Some("http"), Some(9376))
    );
    assert_eq!(slices[0].metadata.generate_name.as_deref(), Some("web-"));

    set_ready(&client, "web-1", false).await;
    eventually(
        "not ready",
        vec![(ip.to_string(), false, false, false)],
        async || endpoints(&client, "web").await,
    )
    .await;

    // Ready again, then deleted: a pod on a node is only marked for
    // deletion (its kubelet would stop it); the endpoint is terminating at
    // once, still serving, no longer ready.
    set_ready(&client, "web-1", true).await;
    eventually(
        "ready again",
        vec![(ip.to_string(), true, true, false)],
        async || endpoints(&client, "web").await,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "terminating",
        vec![(ip.to_string(), false, true, true)],
        async || endpoints(&client, "web").await,
    )
    .await;

    // Gone for good (what the kubelet does once the containers stopped).
    pods.delete("web-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("gone", vec![], async || endpoints(&client, "web").await).await;
    shutdown.cancel();
}

#[tokio::test]
async fn more_than_100_pods_make_two_slices() {
    let (_api, client, shutdown) = start();
    create_service(&client, "big", "127.2.250.2", 8080).await;
    for i in 0..150u32 {
        let ip = format!("127.0.{}.{}", 2 + i / 200, 1 + i % 200);
        create_pod(&client, "big", &format!("big-{i}"), &ip, 8080, true).await;
    }
    eventually("150 endpoints", 150, async || {
        endpoints(&client, "big").await.len()
    })
    .await;
    let mut sizes: Vec<usize> = slices_of(&client, "big")
        .await
        .iter()
        .map(|s| s.endpoints.len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100]);
    shutdown.cancel();
}

/// A `demo-app` answering as pod `name` on `ip`, on a free port.
async fn backend(ip: Ipv4Addr, name: &str, shutdown: CancellationToken) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = demo_app::App::new(demo_app::AppInfo {
        version: "v1".into(),
        pod: name.into(),
    });
    tokio::spawn(demo_app::serve(listener, app, async move {
        shutdown.cancelled().await
    }));
    port
}

/// Which pod answered `GET /` on a fresh connection.
async fn who_answers(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    let answer: demo_app::Answer = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer.info.pod)
}

#[tokio::test]
async fn kube_proxy_balances_refuses_without_endpoints_and_recovers() {
    let (_api, client, shutdown) = start();
    let third = octet(0);
    let cluster_ip = format!("127.2.{third}.10");
    let (ip_a, ip_b) = (
        Ipv4Addr::new(127, 0, third, 1),
        Ipv4Addr::new(127, 0, third, 2),
    );
    // The two pods listen on different ports: the Service's named
    // targetPort finds each one's.
    let port_a = backend(ip_a, "web-a", shutdown.clone()).await;
    let port_b = backend(ip_b, "web-b", shutdown.clone()).await;
    create_service(&client, "web", &cluster_ip, 8080).await;
    create_pod(&client, "web", "web-a", &ip_a.to_string(), port_a, true).await;
    create_pod(&client, "web", "web-b", &ip_b.to_string(), port_b, true).await;

    let proxy = KubeProxy::start(client.clone(), "node-1", ProxyOptions::default());
    let mut synced = proxy.synced();
    let usable = |ports: &[labs::proxy::ServicePortInfo]| {
        ports
            .iter()
            .flat_map(|sp| labs::proxy::usable_endpoints(&sp.endpoints))
            .count()
    };
    synced.wait_for(|p| usable(p) == 2).await.unwrap();

    // A new connection per request (no pooling): the choice is per
    // connection, so both pods must answer.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("http://{cluster_ip}:8080/");
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(
            who_answers(&http, &url)
                .await
                .expect("a request through the cluster IP"),
        );
    }
    assert_eq!(
        seen,
        BTreeSet::from(["web-a".to_string(), "web-b".to_string()])
    );

    // No ready endpoint: the address is closed, so connecting fails at once
    // with "connection refused", as iptables' REJECT makes it.
    set_ready(&client, "web-a", false).await;
    set_ready(&client, "web-b", false).await;
    synced.wait_for(|p| usable(p) == 0).await.unwrap();
    let started = Instant::now();
    let err = tokio::net::TcpStream::connect((cluster_ip.as_str(), 8080))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused after {:?}",
        started.elapsed()
    );

    // One pod ready again: the proxy listens again and sends everything there.
    let turned_ready = Instant::now();
    set_ready(&client, "web-b", true).await;
    eventually(
        "the service to answer again",
        Ok("web-b".to_string()),
        async || who_answers(&http, &url).await.map_err(|e| e.is_connect()),
    )
    .await;
    let recovered = turned_ready.elapsed();
    assert!(
        recovered < Duration::from_secs(5),
        "recovered after {recovered:?}"
    );
    for _ in 0..10 {
        assert_eq!(who_answers(&http, &url).await.unwrap(), "web-b");
    }

    proxy.stop().await;
    // Stopped: nobody listens on the cluster IP any more.
    let err = tokio::net::TcpStream::connect((cluster_ip.as_str(), 8080))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    shutdown.cancel();
}
