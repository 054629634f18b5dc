//! The kubelet's Docker runtime against the real engine, driven by the real
//! kubectl: a 3-replica Deployment runs as real containers (a pause
//! container per pod, the app joining its network) and answers HTTP on the
//! pod IPs; a container killed with `docker kill` is restarted (RESTARTS
//! goes up, `kubectl logs --previous` reads the dead one); a restarted
//! kubelet adopts what runs (same container ids) and removes the containers
//! of a pod deleted while it was down; deleting the Deployment removes every
//! container; an image no registry has gives `ErrImagePull`, then
//! `ImagePullBackOff`, with the engine's message.
//!
//! Without a Docker engine these tests fail with one line; with
//! `WORKBOOK_SKIP_DOCKER=1` they are skipped. Every container they make
//! carries `workbook.node=<test scope>` and is removed at the end, also when
//! a test fails (the [`Leftovers`] guard).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use labs::apiserver::{ApiServer, kubeconfig};
use labs::cluster::{ClusterOptions, Components};
use labs::images;
use labs::kubelet::Clock;
use labs::kubelet::runtime::docker::{DockerConfig, DockerRuntime, NODE_LABEL, POD_NAME_LABEL};
use labs::kubelet::runtime::{LoopbackIpam, Runtime, RuntimeState};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;

const LIMIT: Duration = Duration::from_secs(90);

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: workbook/demo-app:v1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            path: /readyz
            port: 8080
          periodSeconds: 1
        resources:
          limits:
            memory: 64Mi
            cpu: 500m
"#;

/// The engine (images built), or `None` when explicitly skipped.
async fn engine() -> Option<Docker> {
    if std::env::var("WORKBOOK_SKIP_DOCKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: WORKBOOK_SKIP_DOCKER=1");
        return None;
    }
    let docker = images::connect().await.unwrap_or_else(|err| {
        panic!("these tests need a Docker engine: {err:#} (WORKBOOK_SKIP_DOCKER=1 skips them)")
    });
    images::ensure_all(&docker, &mut std::io::sink())
        .await
        .expect("build the workbook's images");
    Some(docker)
}

/// The containers labelled `workbook.node=<scope>`.
async fn scoped(docker: &Docker, scope: &str) -> Vec<bollard::models::ContainerSummary> {
    let filters = HashMap::from([("label", vec![format!("{NODE_LABEL}={scope}")])]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
}

/// Removes the scope's containers when dropped: after a failed assertion
/// too. (Drop cannot await: a thread of its own does the work.)
struct Leftovers {
    scope: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let scope = self.scope.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(docker) = images::connect().await else {
                    return;
                };
                for c in scoped(&docker, &scope).await {
                    let options = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = docker
                        .remove_container(&c.id.unwrap_or_default(), Some(options))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A cluster on a loopback port (for kubectl) with controllers and
/// scheduler, and one Docker node whose kubelet can be restarted.
struct TestCluster {
    api: ApiServer,
    components: Option<Components>,
    docker: Docker,
    scope: String,
    ipam_start: Ipv4Addr,
    runtime: Arc<DockerRuntime>,
    kubelet: Option<Kubelet>,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestCluster {
    async fn start(docker: Docker, scope: &str, ipam_third: u8) -> TestCluster {
        let api = ApiServer::new(Store::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        kubeconfig::write_kubeconfig(
            &dir.path().join("kubeconfig"),
            listener.local_addr().unwrap(),
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        let components = Components::start(&api, &ClusterOptions::default());
        // Pod addresses of their own per test process (parallel binaries).
        let ipam_start = Ipv4Addr::new(127, 3, ipam_third, 1);
        let runtime = Self::runtime(&docker, scope, ipam_start);
        let mut cluster = TestCluster {
            api,
            components: Some(components),
            docker,
            scope: scope.to_string(),
            ipam_start,
            runtime,
            kubelet: None,
            dir,
            stop: Some(stop),
            server: Some(server),
        };
        cluster.start_kubelet();
        cluster
    }

    fn runtime(docker: &Docker, scope: &str, ipam_start: Ipv4Addr) -> Arc<DockerRuntime> {
        Arc::new(DockerRuntime::new(
            docker.clone(),
            DockerConfig::new(scope),
            LoopbackIpam::starting_at(ipam_start),
        ))
    }

    fn start_kubelet(&mut self) {
        let mut config = KubeletConfig::new("node-1");
        config.relist_period = Duration::from_millis(300);
        let kubelet = Kubelet::start(
            self.api.client(),
            Arc::clone(&self.runtime),
            config,
            Clock::cluster(),
        );
        self.api.register_kubelet("node-1", kubelet.logs());
        self.api.register_kubelet_stats("node-1", kubelet.stats());
        self.kubelet = Some(kubelet);
    }

    async fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
        self.api.unregister_kubelet("node-1");
    }

    /// A kubelet restart as on a node: a new process, so a new runtime
    /// object with nothing in memory; only the engine's labels remain.
    async fn restart_kubelet(&mut self) {
        self.stop_kubelet().await;
        self.runtime = Self::runtime(&self.docker, &self.scope, self.ipam_start);
        self.start_kubelet();
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(crate::kubectl())
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("run /usr/bin/kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.api.client())
    }

    async fn shutdown(mut self) {
        self.stop_kubelet().await;
        self.runtime.remove_all().await;
        if let Some(c) = self.components.take() {
            c.shutdown().await.unwrap();
        }
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + LIMIT;
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

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Ready pods, once there are exactly `n` pods and all are Ready.
async fn all_ready(pods: &Api<Pod>, n: usize) -> Option<Vec<Pod>> {
    let list = pods.list(&ListParams::default()).await.ok()?.items;
    (list.len() == n
        && list.iter().all(ready)
        && list.iter().all(|p| p.metadata.deletion_timestamp.is_none()))
    .then_some(list)
}

/// The app containers (not sandboxes) the runtime reports as running.
async fn running_ids(rt: &DockerRuntime) -> BTreeSet<String> {
    rt.list_containers()
        .await
        .into_iter()
        .filter(|c| c.state == RuntimeState::Running)
        .map(|c| c.id.0)
        .collect()
}

fn scope(name: &str) -> String {
    format!("test-{}-{name}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_restarts_is_adopted_and_removed() {
    let Some(docker) = engine().await else { return };
    let scope = scope("deploy");
    let _guard = Leftovers {
        scope: scope.clone(),
    };
    let mut c = TestCluster::start(docker.clone(), &scope, (std::process::id() % 200) as u8).await;
    let pods = c.pods();

    // 3/3 through kubectl, on real containers.
    let f = c.file("web.yaml", DEPLOYMENT);
    c.kubectl(&["apply", "-f", f.to_str().unwrap()]).await;
    let list = wait_for("3 Ready pods", async || all_ready(&pods, 3).await).await;
    let deploy = c.kubectl(&["get", "deployment", "web"]).await;
    assert!(
        deploy
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(" 3/3 ")),
        "{deploy}"
    );
    let table = c.kubectl(&["get", "pods", "-o", "wide"]).await;
    assert_eq!(table.matches(" Running ").count(), 3, "{table}");

    // One pause and one app container per pod, labelled with the pod.
    let containers = scoped(&docker, &scope).await;
    assert_eq!(containers.len(), 6, "{containers:#?}");
    for p in &list {
        let name = p.metadata.name.as_deref().unwrap();
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| c.labels.as_ref().unwrap()[POD_NAME_LABEL] == name)
            .collect();
        assert_eq!(mine.len(), 2, "pause + app for {name}");
        // HTTP on the pod's own address, through the pause container's
        // published port.
        let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
        let body: serde_json::Value = reqwest::get(format!("http://{ip}:8080/"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["version"], "v1");
        assert_eq!(body["pod"], name, "the hostname is the pod's name");
    }
    // The limits reached Docker.
    let app_id = running_ids(&c.runtime).await.into_iter().next().unwrap();
    let host = docker
        .inspect_container(app_id.trim_start_matches("docker://"), None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert!(host.network_mode.unwrap().starts_with("container:"));

    // `docker kill` one app container: the kubelet restarts it.
    let victim = &list[0];
    let victim_name = victim.metadata.name.clone().unwrap();
    let victim_uid = victim.metadata.uid.clone().unwrap();
    let victim_id = c
        .runtime
        .list_containers()
        .await
        .into_iter()
        .find(|s| s.pod_uid == victim_uid)
        .unwrap()
        .id;
    docker
        .kill_container(victim_id.0.trim_start_matches("docker://"), None)
        .await
        .unwrap();
    let restarted = wait_for("the killed container restarted and Ready", async || {
        let p = pods.get(&victim_name).await.ok()?;
        let cs = p.status.as_ref()?.container_statuses.as_ref()?[0].clone();
        (cs.restart_count == 1 && ready(&p)).then_some(cs)
    })
    .await;
    let last = restarted.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 137, "SIGKILL: 128 + 9");
    let table = c.kubectl(&["get", "pod", &victim_name]).await;
    let row = table.lines().nth(1).unwrap();
    assert_eq!(
        row.split_whitespace().nth(3),
        Some("1"),
        "RESTARTS: {table}"
    );
    let previous = c.kubectl(&["logs", &victim_name, "--previous"]).await;
    assert!(previous.contains("demo-app listening"), "{previous}");
    let current = c.kubectl(&["logs", &victim_name]).await;
    assert!(current.contains("demo-app listening"), "{current}");

    // A kubelet restart adopts: same containers, none started again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = running_ids(&c.runtime).await;
    assert_eq!(before.len(), 3);
    let all_before: BTreeSet<String> = scoped(&docker, &scope)
        .await
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    c.restart_kubelet().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        running_ids(&c.runtime).await,
        before,
        "adopted, not restarted"
    );
    let all_after: BTreeSet<String> = scoped(&docker, &scope)
        .await
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(all_after, all_before, "no container created or removed");
    assert!(all_ready(&pods, 3).await.is_some(), "still 3 Ready");

    // A pod deleted while the kubelet is down: the next kubelet removes
    // its containers (and the ReplicaSet's replacement runs).
    c.stop_kubelet().await;
    let gone = list[1].clone();
    let gone_uid = gone.metadata.uid.clone().unwrap();
    pods.delete(
        gone.metadata.name.as_deref().unwrap(),
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    c.restart_kubelet().await;
    wait_for("the orphan's containers removed", async || {
        let left = scoped(&docker, &scope).await;
        (!left
            .iter()
            .any(|c| c.labels.as_ref().unwrap()["io.kubernetes.pod.uid"] == gone_uid))
        .then_some(())
    })
    .await;
    wait_for("3 Ready pods again", async || all_ready(&pods, 3).await).await;

    // Deleting the Deployment removes every container.
    c.kubectl(&["delete", "deployment", "web"]).await;
    wait_for("no pods", async || {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    wait_for("no containers", async || {
        scoped(&docker, &scope).await.is_empty().then_some(())
    })
    .await;
    c.shutdown().await;
    assert!(scoped(&docker, &scope).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_no_registry_has_backs_off_with_the_engines_message() {
    let Some(docker) = engine().await else { return };
    let scope = scope("pull");
    let _guard = Leftovers {
        scope: scope.clone(),
    };
    let third = 1 + ((std::process::id() + 100) % 200) as u8;
    let c = TestCluster::start(docker.clone(), &scope, third).await;
    let pods = c.pods();
    let f = c.file(
        "missing.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  - name: app\n    image: workbook-missing/nothing-here:v1\n",
    );
    c.kubectl(&["apply", "-f", f.to_str().unwrap()]).await;
    let mut seen: Vec<(String, String)> = Vec::new();
    wait_for("ErrImagePull, then ImagePullBackOff", async || {
        let p = pods.get("missing").await.ok()?;
        let waiting = p
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        let entry = (waiting.reason?, waiting.message.unwrap_or_default());
        if seen.last() != Some(&entry) {
            seen.push(entry);
        }
        let reasons: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
        let pulled_first = reasons.iter().position(|r| *r == "ErrImagePull");
        let backoff = reasons.iter().position(|r| *r == "ImagePullBackOff");
        matches!((pulled_first, backoff), (Some(a), Some(b)) if a < b).then_some(())
    })
    .await;
    let (_, message) = seen.iter().find(|(r, _)| r == "ErrImagePull").unwrap();
    assert!(
        message.starts_with("Error response from daemon: "),
        "the engine's message: {message}"
    );
    let described = c.kubectl(&["describe", "pod", "missing"]).await;
    assert!(
        described.contains("Failed to pull image \"workbook-missing/nothing-here:v1\""),
        "{described}"
    );
    // Nothing ran but the pause container.
    let containers = scoped(&docker, &scope).await;
    assert_eq!(containers.len(), 1, "{containers:#?}");
    c.kubectl(&["delete", "pod", "missing", "--wait=true"])
        .await;
    wait_for("no containers", async || {
        scoped(&docker, &scope).await.is_empty().then_some(())
    })
    .await;
    c.shutdown().await;
}

/// `kubectl exec` on the Docker runtime is a real `docker exec`: the
/// scratch image has only `/demo-app`, so that runs, and `sh` cannot start:
/// the engine's exit code for that comes back through kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_is_a_docker_exec() {
    let Some(docker) = engine().await else { return };
    let scope = scope("exec");
    let _guard = Leftovers {
        scope: scope.clone(),
    };
    let third = 1 + ((std::process::id() + 50) % 200) as u8;
    let c = TestCluster::start(docker.clone(), &scope, third).await;
    let f = c.file(
        "one.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: workbook/demo-app:v1\n    ports:\n    - containerPort: 8080\n",
    );
    c.kubectl(&["apply", "-f", f.to_str().unwrap()]).await;
    let pods = c.pods();
    wait_for("pod one running", async || {
        let p = pods.get("one").await.ok()?;
        let statuses = p.status?.container_statuses?;
        statuses
            .iter()
            .any(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()))
            .then_some(())
    })
    .await;
    let version = c
        .kubectl(&["exec", "one", "--", "/demo-app", "--version"])
        .await;
    assert!(version.starts_with("demo-app "), "{version}");

    let out = tokio::process::Command::new(crate::kubectl())
        .arg("--kubeconfig")
        .arg(c.dir.path().join("kubeconfig"))
        .args(["exec", "one", "--", "sh", "-c", "echo hi"])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The engine's own code for an exec whose program cannot start (this
    // engine says 126 and writes nothing on the stream; older ones 127).
    assert!(
        matches!(out.status.code(), Some(126 | 127)),
        "{:?} {err}",
        out.status
    );

    // `kubectl attach` is a `docker attach`: the app's log line for a
    // request sent while attached (the app logs to stderr, and kubectl
    // writes the container's stderr to its own).
    let ip = pods
        .get("one")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let mut attach = tokio::process::Command::new(crate::kubectl())
        .arg("--kubeconfig")
        .arg(c.dir.path().join("kubeconfig"))
        .args(["attach", "one", "-c", "app"])
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = attach.stderr.take().unwrap();
    let poke = async {
        loop {
            let _ = reqwest::get(format!("http://{ip}:8080/")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let seen = tokio::select! {
        seen = crate::exec::read_until(&mut err, "GET /") => seen,
        _ = poke => unreachable!(),
    };
    assert!(
        !seen.contains("demo-app listening"),
        "only what comes after attaching: {seen}"
    );
    attach.kill().await.unwrap();

    // `kubectl top`: the metrics API asks the kubelet, the kubelet asks the
    // engine (`docker stats`): the pod's row, CPU and memory working set.
    let mut top = String::new();
    for _ in 0..60 {
        let out = tokio::process::Command::new(crate::kubectl())
            .arg("--kubeconfig")
            .arg(c.dir.path().join("kubeconfig"))
            .args(["top", "pod", "one", "--no-headers"])
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap();
        top = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if top.starts_with("one ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Without stats from the engine there is no row at all ("podmetrics
    // not found"). The static app's working set is under a MiB, which
    // kubectl may print as 0Mi.
    let cells: Vec<&str> = top.split_whitespace().collect();
    assert!(
        cells.len() == 3 && cells[1].ends_with('m') && cells[2].ends_with("Mi"),
        "kubectl top pod one: {top}"
    );
    c.shutdown().await;
}
