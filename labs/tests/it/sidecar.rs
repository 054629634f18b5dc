//! Native sidecars (`initContainers` with `restartPolicy: Always`), end to
//! end through the real kubelet.
//!
//! * On the **simulated** runtime, on paused time: the sidecar starts before
//!   the app (after its startup probe), counts in the pod's readiness, is
//!   restarted on a crash even with `restartPolicy: Never`, does not keep a
//!   finished Job-like pod running, and on deletion gets SIGTERM only once
//!   the app has exited, within what is left of the one grace period.
//! * On the **process** runtime: the talk's architecture for real — a
//!   3-replica Deployment whose pods run the app and the workbook's proxy
//!   as a native sidecar (the stand-in for the Cloud SQL Auth Proxy), each
//!   pod writing its visits through its own proxy into one real PostgreSQL,
//!   and `kubectl get pods` showing `2/2`.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use labs::apiserver::{ApiServer, kubeconfig};
use labs::cluster::{ClusterOptions, Components};
use labs::kubelet::Clock;
use labs::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use labs::kubelet::runtime::simulated::{Behavior, SimulatedConfig, SimulatedRuntime};
use labs::kubelet::runtime::{LoopbackIpam, Runtime, RuntimeState};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use serde_json::json;

// ---------------------------------------------------------------------------
// The ordering, on the simulated runtime.

/// How each image behaves: the proxy starts in 1 s and answers probes 3 s
/// after its start; the app takes 3 s to exit after SIGTERM, the proxy 1 s.
fn images() -> SimulatedConfig {
    let b = |f: fn(&mut Behavior)| {
        let mut b = Behavior::default();
        f(&mut b);
        b
    };
    let images: HashMap<String, Behavior> = [
        (
            "proxy:1",
            b(|b| {
                b.start_delay_seconds = 1;
                b.ready_after_seconds = 3;
                b.stop_seconds = 1;
            }),
        ),
        ("slow-proxy:1", b(|b| b.stop_seconds = 5)),
        (
            "crashing-proxy:1",
            b(|b| {
                b.crash_after_seconds = Some(5);
                b.exit_code = Some(1);
            }),
        ),
        ("app:1", b(|b| b.stop_seconds = 3)),
        ("stubborn-app:1", b(|b| b.stop_seconds = 100)),
        (
            "job:1",
            b(|b| {
                b.crash_after_seconds = Some(5);
                b.exit_code = Some(0);
            }),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    SimulatedConfig {
        images,
        ..SimulatedConfig::default()
    }
}

struct SimNode {
    api: ApiServer,
    rt: Arc<SimulatedRuntime>,
    kubelet: Kubelet,
    pods: Api<Pod>,
}

fn sim_node() -> SimNode {
    let api = ApiServer::new(Store::new());
    let clock = Clock::starting_at(Timestamp::from_second(1_800_000_000).unwrap());
    let rt = Arc::new(SimulatedRuntime::new(
        images(),
        clock,
        LoopbackIpam::default(),
    ));
    let kubelet = Kubelet::start(
        api.client(),
        Arc::clone(&rt),
        KubeletConfig::new("node-1"),
        clock,
    );
    let pods = Api::default_namespaced(api.client());
    SimNode {
        api,
        rt,
        kubelet,
        pods,
    }
}

/// A pod on node-1: `proxy_image` as a native sidecar (with a startup probe),
/// then `app_image`.
fn sidecar_pod(name: &str, proxy_image: &str, app_image: &str, policy: &str, grace: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": grace,
            "initContainers": [{
                "name": "proxy", "image": proxy_image, "restartPolicy": "Always",
                "startupProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1,
                                 "failureThreshold": 30},
            }],
            "containers": [{"name": "app", "image": app_image}],
        },
    }))
    .unwrap()
}

impl SimNode {
    /// The state of each container of `pod_name` as the runtime has it now
    /// (the newest instance of each name).
    async fn runtime_states(&self, pod_name: &str) -> HashMap<String, RuntimeState> {
        let uid = self
            .pods
            .get(pod_name)
            .await
            .ok()
            .and_then(|p| p.metadata.uid);
        let mut newest: HashMap<String, (u32, RuntimeState)> = HashMap::new();
        for c in self.rt.list_containers().await {
            if Some(&c.pod_uid) != uid.as_ref() {
                continue;
            }
            let e = newest
                .entry(c.name.clone())
                .or_insert((c.attempt, c.state.clone()));
            if c.attempt >= e.0 {
                *e = (c.attempt, c.state);
            }
        }
        newest.into_iter().map(|(k, (_, s))| (k, s)).collect()
    }

    async fn pod(&self, name: &str) -> Pod {
        self.pods.get(name).await.unwrap()
    }
}

fn running(states: &HashMap<String, RuntimeState>, name: &str) -> bool {
    states.get(name) == Some(&RuntimeState::Running)
}

fn exited(states: &HashMap<String, RuntimeState>, name: &str) -> Option<i32> {
    match states.get(name) {
        Some(RuntimeState::Exited { exit_code, .. }) => Some(*exit_code),
        _ => None,
    }
}

fn condition(p: &Pod, type_: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

async fn sleep(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn sidecar_starts_first_counts_in_ready_and_stops_after_the_app() {
    let n = sim_node();
    n.pods
        .create(
            &PostParams::default(),
            &sidecar_pod("web", "proxy:1", "app:1", "Always", 30),
        )
        .await
        .unwrap();

    // The proxy runs from 1 s, answers its startup probe from 4 s: until
    // then the app is not even created.
    sleep(2.5).await;
    let s = n.runtime_states("web").await;
    assert!(running(&s, "proxy"), "{s:?}");
    assert!(
        !s.contains_key("app"),
        "the app waits for the sidecar: {s:?}"
    );
    let p = n.pod("web").await;
    assert_eq!(condition(&p, "Initialized"), "False");

    sleep(5.0).await;
    let s = n.runtime_states("web").await;
    assert!(running(&s, "app") && running(&s, "proxy"), "{s:?}");
    let p = n.pod("web").await;
    let status = p.status.as_ref().unwrap();
    let proxy = &status.init_container_statuses.as_ref().unwrap()[0];
    let app = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!((proxy.ready, proxy.started), (true, Some(true)));
    assert!(app.ready);
    assert_eq!(
        condition(&p, "Ready"),
        "True",
        "the sidecar counts in Ready"
    );
    let started = |s: &k8s_openapi::api::core::v1::ContainerStatus| {
        s.state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at
            .clone()
            .unwrap()
            .0
    };
    assert!(
        started(app).duration_since(started(proxy)).as_secs() >= 3,
        "the app starts once the sidecar's startup probe passed"
    );

    // Delete (grace 30 s). The app gets SIGTERM at once and takes 3 s; the
    // proxy keeps running (the app may still need its database) and gets
    // SIGTERM only when the app has exited.
    n.pods
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    sleep(2.0).await;
    let s = n.runtime_states("web").await;
    assert!(running(&s, "app") && running(&s, "proxy"), "at +2 s: {s:?}");
    sleep(1.5).await;
    let s = n.runtime_states("web").await;
    assert_eq!(exited(&s, "app"), Some(0), "at +3.5 s: {s:?}");
    assert!(running(&s, "proxy"), "the sidecar outlives the app: {s:?}");
    sleep(2.0).await;
    assert!(
        n.pods.get_opt("web").await.unwrap().is_none(),
        "both stopped, the pod is gone"
    );
    n.kubelet.stop().await;
    drop(n.api);
}

#[tokio::test(start_paused = true)]
async fn sidecars_stop_within_what_is_left_of_the_grace_period() {
    let n = sim_node();
    // The app ignores SIGTERM (100 s to stop), the proxy needs 5 s.
    n.pods
        .create(
            &PostParams::default(),
            &sidecar_pod("web", "slow-proxy:1", "stubborn-app:1", "Always", 10),
        )
        .await
        .unwrap();
    sleep(5.0).await;
    assert_eq!(condition(&n.pod("web").await, "Ready"), "True");
    n.pods
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    // The app is SIGKILLed when the 10 s are over...
    sleep(10.5).await;
    let s = n.runtime_states("web").await;
    assert_eq!(exited(&s, "app"), Some(137), "{s:?}");
    assert!(running(&s, "proxy"), "{s:?}");
    // ...and the proxy gets what is left: nothing, so the 2-second minimum,
    // not a fresh 10 s (with which it would still be stopping at +15 s).
    sleep(2.0).await;
    assert!(
        n.pods.get_opt("web").await.unwrap().is_none(),
        "the proxy was killed at +12 s"
    );
    n.kubelet.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sidecars_restart_under_never_and_do_not_block_completion() {
    let n = sim_node();
    // A sidecar that crashes every 5 s, in a pod that never restarts.
    n.pods
        .create(
            &PostParams::default(),
            &sidecar_pod("flaky", "crashing-proxy:1", "app:1", "Never", 30),
        )
        .await
        .unwrap();
    // A job (exits 0 after 5 s) with a well-behaved sidecar.
    n.pods
        .create(
            &PostParams::default(),
            &sidecar_pod("job", "slow-proxy:1", "job:1", "Never", 30),
        )
        .await
        .unwrap();
    sleep(40.0).await;

    let flaky = n.pod("flaky").await;
    let status = flaky.status.as_ref().unwrap();
    let proxy = &status.init_container_statuses.as_ref().unwrap()[0];
    let app = &status.container_statuses.as_ref().unwrap()[0];
    assert!(proxy.restart_count >= 2, "restarted: {proxy:?}");
    assert_eq!(app.restart_count, 0);
    assert_eq!(status.phase.as_deref(), Some("Running"));

    let job = n.pod("job").await;
    let status = job.status.as_ref().unwrap();
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "the running sidecar does not keep the job's pod alive"
    );
    let proxy = &status.init_container_statuses.as_ref().unwrap()[0];
    assert!(
        proxy.state.as_ref().unwrap().terminated.is_some(),
        "the sidecar was stopped: {proxy:?}"
    );
    assert_eq!(proxy.restart_count, 0, "and not restarted");
    n.kubelet.stop().await;
}

// ---------------------------------------------------------------------------
// The app and its proxy sidecar on the process runtime, with a real database.

fn process_runtime() -> Arc<ProcessRuntime> {
    let config = ProcessConfig {
        exe: env!("CARGO_BIN_EXE_labs").into(),
        tags: None,
    };
    // A range of pod addresses of our own (other tests of this binary and
    // other test binaries run at the same time).
    let third = 10 + (std::process::id() % 200) as u8;
    Arc::new(ProcessRuntime::new(
        config,
        Clock::cluster(),
        LoopbackIpam::starting_at(Ipv4Addr::new(127, 5, third, 1)),
    ))
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/kubectl: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ANCHOR: sidecar_deployment
/// The pod template of the talk's app, for the process runtime: the same
/// settings as on GKE (`DB_*`, the user and password from a Secret), except
/// that the pod's own address stands in for `127.0.0.1`, because processes
/// have no network namespace of their own. `to` is where the real database
/// listens (Cloud SQL's place).
fn deployment(to: &str) -> Deployment {
    let pod_ip = json!({"fieldRef": {"fieldPath": "status.podIP"}});
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "initContainers": [{
                        "name": "db-proxy",
                        "image": "workbook/demo-app:v1",
                        "restartPolicy": "Always",
                        "args": ["proxy", "--listen", "$(POD_IP):5432", "--to", to],
                        "env": [{"name": "POD_IP", "valueFrom": pod_ip}],
                        "startupProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1,
                                         "failureThreshold": 30},
                    }],
                    "containers": [{
                        "name": "app",
                        "image": "workbook/demo-app:v1",
                        "ports": [{"containerPort": 8080}],
                        "env": [
                            {"name": "DB_HOST", "valueFrom": pod_ip},
                            {"name": "DB_PORT", "value": "5432"},
                            {"name": "DB_NAME", "value": "app"},
                            {"name": "DB_USER", "valueFrom":
                                {"secretKeyRef": {"name": "db", "key": "username"}}},
                            {"name": "DB_PASSWORD", "valueFrom":
                                {"secretKeyRef": {"name": "db", "key": "password"}}},
                        ],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                           "periodSeconds": 1},
                        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080},
                                          "periodSeconds": 5},
                    }],
                },
            },
        },
    }))
    .unwrap()
}
// ANCHOR_END: sidecar_deployment

fn ready(p: &Pod) -> bool {
    condition(p, "Ready") == "True"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_write_through_their_proxy_sidecars_into_one_database() {
    use demo_app::postgres::{Options, TempPostgres};
    // A real PostgreSQL with password authentication; without the server
    // binaries the test fails with the helper's one line on how to install.
    let pg = TempPostgres::new(Options {
        password: Some("s3cret".into()),
        ..Options::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The API server on loopback (for kubectl), the control plane, one node
    // on the process runtime.
    let api = ApiServer::new(Store::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    kubeconfig::write_kubeconfig(&kc, listener.local_addr().unwrap()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    let components = Components::start(&api, &ClusterOptions::default());
    let rt = process_runtime();
    let mut config = KubeletConfig::new("node-1");
    config.relist_period = Duration::from_millis(200);
    let kubelet = Kubelet::start(api.client(), Arc::clone(&rt), config, Clock::cluster());
    api.register_kubelet("node-1", kubelet.logs());

    let client = api.client();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "db"},
                "stringData": {"username": "app", "password": "s3cret"},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let to = format!("{}:{}", pg.host(), pg.port());
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &deployment(&to))
        .await
        .unwrap();

    // Ready means: the proxy started (its port accepts), the app reached the
    // database through it and migrated (`/readyz`).
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ready_pods = wait_for("3 ready pods", 90, async || {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let ready: Vec<Pod> = list.items.into_iter().filter(ready).collect();
        (ready.len() == 3).then_some(ready)
    })
    .await;

    let table = kubectl(&kc, &cache, &["get", "pods"]).await;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..3], ["2/2", "Running"], "{table}");
    }

    // Each pod's `GET /` records a visit through its own proxy.
    let mut names = BTreeSet::new();
    let mut last = serde_json::Value::Null;
    for p in &ready_pods {
        let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
        let answer: serde_json::Value = reqwest::get(format!("http://{ip}:8080/"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["database"],
            format!("app@{ip}:5432/app"),
            "the app talks to its pod's proxy: {answer}"
        );
        names.insert(p.metadata.name.clone().unwrap());
        last = answer;
    }
    assert_eq!(last["total_visits"], 3, "{last}");

    // The one table holds the three pods' visits.
    let (db, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=app password=s3cret dbname=app",
            pg.host(),
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let rows = db
        .query("SELECT pod, version FROM visits ORDER BY id", &[])
        .await
        .unwrap();
    let visited: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(visited, names, "one visit per pod, in one table");
    assert!(rows.iter().all(|r| r.get::<_, String>(1) == "v1"));

    // Deleting the Deployment stops the app first, then its proxy.
    Api::<Deployment>::default_namespaced(client.clone())
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the pods to go", 60, async || {
        let list = pods.list(&ListParams::default()).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
    let left: Vec<_> = rt
        .list_containers()
        .await
        .into_iter()
        .filter(|c| c.state == RuntimeState::Running)
        .collect();
    assert!(left.is_empty(), "nothing runs after the delete: {left:?}");

    kubelet.stop().await;
    components.shutdown().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    rt.shutdown().await;
}
