//! `labs cluster`: the whole lab cluster in one process — the API server on
//! loopback for kubectl, and the components (controllers, scheduler, node
//! lifecycle controller, one kubelet and one kube-proxy per node) as tasks, each talking to the API server through
//! its own in-process client, exactly as they would over the network.
//!
//! Components can be left out (`--without controllers`) to see what breaks:
//! without the controller manager a ReplicaSet never gets pods, and a
//! `kubectl delete --cascade=orphan` waits forever for a garbage collector
//! to remove the `orphan` finalizer; without the scheduler every pod stays
//! Pending; without the kubelets, pods are bound to nodes but never run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::apiserver::{ApiServer, Config, kubeconfig};
use crate::controllers::manager::{Controller, ControllerManager, ManagerOptions};
use crate::controllers::nodelifecycle::controller::{
    self as nodelifecycle, NodeLifecycleController,
};
use crate::kubelet::Clock;
use crate::kubelet::runtime::docker::{DockerConfig, DockerRuntime};
use crate::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use crate::kubelet::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use crate::kubelet::runtime::{LoopbackIpam, Runtime};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::proxy::proxier::{KubeProxy, ProxyOptions};
use crate::scheduler::schedule_one::{self, DefaultScheduler};
use crate::store::Store;

/// A component that `--without` can leave out, to see what breaks without
/// it. One list for `labs cluster` and `labs controller-manager` (which
/// accepts the controllers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The whole controller manager (every controller below).
    Controllers,
    /// The ReplicaSet controller: ReplicaSets never get pods.
    Replicaset,
    /// The Deployment controller: Deployments get no ReplicaSets, and
    /// `kubectl rollout status` waits forever.
    Deployment,
    /// The EndpointSlice controller: Services never learn their pods, and
    /// kube-proxy refuses their connections.
    Endpointslice,
    /// The garbage collector: nothing owned is deleted with its owner.
    GarbageCollector,
    /// The disruption controller: PodDisruptionBudgets never allow a
    /// disruption, so `kubectl drain` waits forever on a budgeted app.
    Disruption,
    /// The service-account controller: new namespaces get no `default`
    /// ServiceAccount.
    Serviceaccount,
    /// The HorizontalPodAutoscaler controller: HPAs show `<unknown>` and
    /// nothing scales.
    HorizontalPodAutoscaler,
    /// The scheduler: without it, pods stay Pending with no node.
    Scheduler,
    /// The node lifecycle controller: without it, a node that stops
    /// reporting keeps its pods forever. (Upstream it runs inside
    /// kube-controller-manager; it is separate here so it can be left out
    /// on its own.)
    NodeLifecycle,
    /// The kubelets: pods are bound to nodes but nothing runs them.
    Kubelet,
    /// kube-proxy: Services get cluster IPs and endpoints, but nothing
    /// answers on the cluster IPs.
    Proxy,
}

impl Component {
    /// The controller manager's name for this component, if it is one of
    /// its controllers.
    pub fn controller(self) -> Option<Controller> {
        match self {
            Component::Replicaset => Some(Controller::Replicaset),
            Component::Deployment => Some(Controller::Deployment),
            Component::Endpointslice => Some(Controller::Endpointslice),
            Component::GarbageCollector => Some(Controller::GarbageCollector),
            Component::Disruption => Some(Controller::Disruption),
            Component::Serviceaccount => Some(Controller::Serviceaccount),
            Component::HorizontalPodAutoscaler => Some(Controller::HorizontalPodAutoscaler),
            _ => None,
        }
    }
}

/// The container runtime of the cluster's kubelets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// No processes: containers are records with configured behaviour.
    Simulated,
    /// `workbook/demo-app:<tag>` runs as a child process on the pod's own
    /// loopback address.
    Process,
    /// Real containers on the Docker engine (`DOCKER_HOST` or the local
    /// socket): one pause container per pod, as dockershim ran them.
    Docker,
}

/// The nodes of `labs cluster`.
#[derive(Clone, Copy, Debug)]
pub struct NodeOptions {
    pub nodes: usize,
    pub runtime: RuntimeKind,
}

/// The kubelets of a cluster, and the Docker runtimes among them (whose
/// containers outlive the process unless removed).
pub struct Nodes {
    pub kubelets: Vec<Kubelet>,
    pub docker: Vec<Arc<DockerRuntime>>,
}

impl Nodes {
    /// Stops the kubelets, then removes the Docker runtime's containers:
    /// a cluster that ends leaves nothing running on the engine.
    pub async fn stop(self) {
        for kubelet in self.kubelets {
            kubelet.stop().await;
        }
        for runtime in self.docker {
            runtime.remove_all().await;
        }
    }
}

/// One kubelet per node `node-1..N`, all sharing one address allocator (so
/// pod IPs are unique across the cluster), each registered with the API
/// server for `kubectl logs`.
pub async fn start_kubelets(api: &ApiServer, opts: NodeOptions) -> anyhow::Result<Nodes> {
    let client = api.client();
    let kubelets = match opts.runtime {
        RuntimeKind::Simulated => {
            start_simulated_kubelets(api, &client, opts.nodes, SimulatedConfig::default())
        }
        RuntimeKind::Process => {
            let exe = ProcessConfig::current_exe()
                .context("cannot find the labs executable to run containers")?;
            start_process_kubelets(api, &client, opts.nodes, exe, LoopbackIpam::default())
        }
        RuntimeKind::Docker => {
            let docker =
                start_docker_kubelets(api, &client, opts.nodes, "", LoopbackIpam::default())
                    .await?;
            return Ok(docker);
        }
    };
    Ok(Nodes {
        kubelets,
        docker: Vec::new(),
    })
}

/// Kubelets `node-1..N` on the process runtime: `workbook/demo-app` images
/// run as child processes of `config.exe`. One runtime per node; each kills
/// its children when dropped, so stopping the kubelets leaves no process.
pub fn start_process_kubelets(
    api: &ApiServer,
    client: &kube::Client,
    nodes: usize,
    config: ProcessConfig,
    ipam: LoopbackIpam,
) -> Vec<Kubelet> {
    start_nodes(api, client, nodes, ipam, |clock, ipam| {
        Arc::new(ProcessRuntime::new(config.clone(), clock, ipam))
    })
}

// ANCHOR: docker_nodes
/// Kubelets `node-1..N` on the Docker runtime. The images come first: the
/// kubelet only pulls, and `workbook/demo-app:<tag>` and the pause image
/// exist on no registry, so they are built here (a cache hit when
/// unchanged). `scope` prefixes the `workbook.node` label, keeping the
/// containers of two clusters on one engine apart (tests use it).
pub async fn start_docker_kubelets(
    api: &ApiServer,
    client: &kube::Client,
    nodes: usize,
    scope: &str,
    ipam: LoopbackIpam,
) -> anyhow::Result<Nodes> {
    let docker = crate::images::connect().await?;
    println!(
        "building the workbook's images (a cache hit when unchanged; the first time compiles a static demo-app)"
    );
    crate::images::ensure_all(&docker, &mut std::io::sink())
        .await
        .context("cannot build the workbook's images")?;
    let mut runtimes = Vec::new();
    let kubelets = start_nodes(api, client, nodes, ipam, |_clock, ipam| {
        let node = format!("{scope}node-{}", runtimes.len() + 1);
        let runtime = Arc::new(DockerRuntime::new(
            docker.clone(),
            DockerConfig::new(node),
            ipam,
        ));
        runtimes.push(Arc::clone(&runtime));
        runtime
    });
    Ok(Nodes {
        kubelets,
        docker: runtimes,
    })
}
// ANCHOR_END: docker_nodes

/// Kubelets `node-1..N` on the simulated runtime, all with the same
/// `config` (how containers behave), talking to the API through `client`.
/// What the labs and benches that need many nodes and no processes use.
pub fn start_simulated_kubelets(
    api: &ApiServer,
    client: &kube::Client,
    nodes: usize,
    config: SimulatedConfig,
) -> Vec<Kubelet> {
    start_nodes(
        api,
        client,
        nodes,
        LoopbackIpam::default(),
        |clock, ipam| Arc::new(SimulatedRuntime::new(config.clone(), clock, ipam)),
    )
}

/// The node side of a cluster with no processes: the scheduler and
/// kubelets `node-1..N` on the simulated runtime. For the labs, benches
/// and tests that bring their own controller manager (`labs rollout`
/// starts it in lockstep mode, the bench counts its calls).
pub struct SimulatedNodes {
    kubelets: Vec<Kubelet>,
    scheduler: tokio::task::JoinHandle<anyhow::Result<()>>,
    shutdown: CancellationToken,
}

impl SimulatedNodes {
    pub fn start(
        api: &ApiServer,
        client: &kube::Client,
        nodes: usize,
        config: SimulatedConfig,
        seed: u64,
    ) -> SimulatedNodes {
        let shutdown = CancellationToken::new();
        let scheduler =
            DefaultScheduler::new(client.clone(), schedule_one::Options { seed, steps: None });
        let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));
        SimulatedNodes {
            kubelets: start_simulated_kubelets(api, client, nodes, config),
            scheduler,
            shutdown,
        }
    }

    /// Stops the scheduler and every kubelet.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.scheduler.await.context("the scheduler panicked")??;
        for kubelet in self.kubelets {
            kubelet.stop().await;
        }
        Ok(())
    }
}

/// Starts `node-1..N`, each a kubelet on its own runtime from `runtime`,
/// all on the cluster's clock and one address allocator.
fn start_nodes<R: Runtime>(
    api: &ApiServer,
    client: &kube::Client,
    nodes: usize,
    ipam: LoopbackIpam,
    mut runtime: impl FnMut(Clock, LoopbackIpam) -> Arc<R>,
) -> Vec<Kubelet> {
    let clock = Clock::cluster();
    (1..=nodes)
        .map(|i| {
            let config = KubeletConfig::new(format!("node-{i}"));
            let kubelet =
                Kubelet::start(client.clone(), runtime(clock, ipam.clone()), config, clock);
            api.register_kubelet(kubelet.node_name(), kubelet.logs());
            api.register_kubelet_stats(kubelet.node_name(), kubelet.stats());
            kubelet
        })
        .collect()
}

/// How `labs cluster` (and the tests) start the components.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub without: Vec<Component>,
    /// Seeds the scheduler's random tie-breaking.
    pub seed: u64,
    /// `--node-monitor-grace-period` of the node lifecycle controller.
    pub node_monitor_grace_period: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            without: Vec::new(),
            seed: 0,
            node_monitor_grace_period: nodelifecycle::DEFAULT_NODE_MONITOR_GRACE_PERIOD,
        }
    }
}

/// The API server's settings for a cluster whose pods tolerate an
/// unreachable node for `toleration_seconds` (300 upstream).
pub fn api_config(toleration_seconds: i64) -> Config {
    Config {
        default_not_ready_toleration_seconds: toleration_seconds,
        default_unreachable_toleration_seconds: toleration_seconds,
        ..Config::default()
    }
}

// ANCHOR: components
/// The control plane's components, running as tasks on the current
/// runtime, each with its own client of `api`.
pub struct Components {
    controllers: Option<ControllerManager>,
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Components {
    /// The names of what [`Components::start`] runs with these options, in
    /// the order it starts them.
    pub fn names(options: &ClusterOptions) -> Vec<&'static str> {
        let without = |c| options.without.contains(&c);
        let mut running = Vec::new();
        if !without(Component::Controllers) {
            running.extend(Self::manager_options(options).running());
        }
        if !without(Component::Scheduler) {
            running.push("default-scheduler");
        }
        if !without(Component::NodeLifecycle) {
            running.push("node-lifecycle-controller");
        }
        running
    }

    /// The controller manager's options: every controller but those left out.
    fn manager_options(options: &ClusterOptions) -> ManagerOptions {
        let left_out: Vec<Controller> = options
            .without
            .iter()
            .filter_map(|c| c.controller())
            .collect();
        ManagerOptions::without(&left_out)
    }

    pub fn start(api: &ApiServer, options: &ClusterOptions) -> Components {
        let without = |c| options.without.contains(&c);
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let controllers = (!without(Component::Controllers))
            .then(|| ControllerManager::start(api.client(), Self::manager_options(options)));
        if !without(Component::Scheduler) {
            let scheduler = DefaultScheduler::new(
                api.client(),
                schedule_one::Options {
                    seed: options.seed,
                    steps: None,
                },
            );
            tasks.spawn(scheduler.run(shutdown.clone()));
        }
        if !without(Component::NodeLifecycle) {
            let controller = NodeLifecycleController::new(
                api.client(),
                nodelifecycle::Options {
                    node_monitor_grace_period: options.node_monitor_grace_period,
                    ..nodelifecycle::Options::default()
                },
            );
            tasks.spawn(controller.run(shutdown.clone()));
        }
        Components {
            controllers,
            shutdown,
            tasks,
        }
    }

    /// Stops everything gracefully.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(controllers) = self.controllers.take() {
            controllers.shutdown().await?;
        }
        while let Some(result) = self.tasks.join_next().await {
            result.context("component task panicked")??;
        }
        Ok(())
    }
}
// ANCHOR_END: components

/// What `labs cluster` prints once everything runs: the API server's
/// address, the nodes and proxies started, the components running and left
/// out, and the `export` line. Built from the options alone (plus what
/// actually started), so the book's copies are generated from it by the
/// tests of `labs/src/main.rs` and cannot drift.
pub fn banner(
    addr: std::net::SocketAddr,
    kubeconfig_path: &Path,
    options: &ClusterOptions,
    nodes: NodeOptions,
    kubelets: usize,
    proxies: usize,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "API server listening on http://{addr}");
    match kubelets {
        0 => out.push_str("kubelets: none\n"),
        n => {
            let _ = writeln!(
                out,
                "kubelets: {n} ({:?} runtime): node-1..node-{n}",
                nodes.runtime
            );
        }
    }
    if proxies > 0 {
        let _ = writeln!(
            out,
            "kube-proxies: {proxies} (userspace mode): Service cluster IPs on 127.2.0.0/16, node ports on 127.0.0.1"
        );
    }
    let running = Components::names(options);
    if running.is_empty() {
        out.push_str("components: none\n");
    } else {
        let _ = writeln!(out, "components: {}", running.join(", "));
    }
    for c in &options.without {
        use clap::ValueEnum;
        if let Some(name) = c.to_possible_value() {
            let _ = writeln!(out, "left out: {} (--without)", name.get_name());
        }
    }
    let _ = writeln!(out, "export KUBECONFIG={}", kubeconfig_path.display());
    out
}

/// `labs cluster`: serve the API, start the components, run until Ctrl-C.
pub async fn run(
    port: u16,
    kubeconfig_path: &Path,
    options: &ClusterOptions,
    toleration_seconds: i64,
    nodes: NodeOptions,
) -> anyhow::Result<()> {
    let api = ApiServer::with_config(Store::new(), api_config(toleration_seconds));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    kubeconfig::write_kubeconfig(kubeconfig_path, addr)
        .with_context(|| format!("cannot write the kubeconfig {}", kubeconfig_path.display()))?;
    let components = Components::start(&api, options);
    let nodes_running = if options.without.contains(&Component::Kubelet) {
        Nodes {
            kubelets: Vec::new(),
            docker: Vec::new(),
        }
    } else {
        start_kubelets(&api, nodes).await?
    };
    let kubelets = &nodes_running.kubelets;
    // One kube-proxy per node. All the nodes are this machine, so they share
    // the cluster IPs (SO_REUSEPORT); any one of them would do.
    let proxies: Vec<KubeProxy> = if options.without.contains(&Component::Proxy) {
        Vec::new()
    } else {
        (1..=nodes.nodes)
            .map(|i| KubeProxy::start(api.client(), format!("node-{i}"), ProxyOptions::default()))
            .collect()
    };
    print!(
        "{}",
        banner(
            addr,
            kubeconfig_path,
            options,
            nodes,
            kubelets.len(),
            proxies.len()
        )
    );
    api.serve(listener, crate::apiserver::shutdown_signal())
        .await?;
    for proxy in proxies {
        proxy.stop().await;
    }
    components.shutdown().await?;
    nodes_running.stop().await;
    println!("cluster stopped");
    Ok(())
}

// ANCHOR: counting
/// Counts the requests a client makes, by `METHOD resource` (and watch
/// requests separately), and the answers by status code. For benches and
/// tests that ask "how many API calls did that cost?".
#[derive(Default, Debug)]
pub struct RequestCounter {
    by_call: Mutex<BTreeMap<String, u64>>,
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl RequestCounter {
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.by_call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn statuses(&self) -> BTreeMap<u16, u64> {
        self.by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn total(&self) -> u64 {
        self.calls().values().sum()
    }

    pub fn reset(&self) {
        self.by_call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn count_request(&self, req: &http::Request<kube::client::Body>) {
        // `/apis/apps/v1/namespaces/default/replicasets/web/status`
        // → "replicasets/status"; the namespace and name are dropped.
        let path = req.uri().path();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let rest = match parts.first() {
            Some(&"api") => &parts[parts.len().min(2)..],
            Some(&"apis") => &parts[parts.len().min(3)..],
            _ => &parts[..],
        };
        let rest = match rest {
            ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
            other => other,
        };
        let resource = match rest {
            [kind] => kind.to_string(),
            [kind, _name] => kind.to_string(),
            [kind, _name, sub, ..] => format!("{kind}/{sub}"),
            [] => path.to_string(),
        };
        let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
        let method = if watch {
            "WATCH"
        } else {
            req.method().as_str()
        };
        *self
            .by_call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!("{method} {resource}"))
            .or_default() += 1;
    }

    fn count_status(&self, code: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }
}

/// Like [`ApiServer::client`], with every request counted: a tower layer
/// between kube's client and the router sees each request on its way in
/// and each response on its way out.
pub fn counted_client(api: &ApiServer, counter: Arc<RequestCounter>) -> kube::Client {
    use tower::ServiceExt;
    let requests = Arc::clone(&counter);
    let service = tower::ServiceBuilder::new()
        .map_request(move |req: http::Request<kube::client::Body>| {
            requests.count_request(&req);
            req.map(axum::body::Body::new)
        })
        .service(api.router())
        .map_response(move |resp: axum::response::Response| {
            counter.count_status(resp.status().as_u16());
            resp
        });
    kube::Client::new(service, "default")
}
// ANCHOR_END: counting
