//! `labs cluster`: the whole lab cluster in one process — the API server on
//! loopback for kubectl, and the components (so far the controllers) as
//! tasks, each talking to the API server through its own in-process client,
//! exactly as they would over the network.
//!
//! Components can be left out (`--without controllers`) to see what breaks:
//! without the controller manager a ReplicaSet never gets pods, and a
//! `kubectl delete --cascade=orphan` waits forever for a garbage collector
//! to remove the `orphan` finalizer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::apiserver::{ApiServer, kubeconfig};
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::kubelet::Clock;
use crate::kubelet::agent::{Kubelet, KubeletConfig};
use crate::kubelet::runtime::LoopbackIpam;
use crate::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use crate::kubelet::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use crate::store::Store;

/// A component of `labs cluster` that `--without` can leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The controller manager (ReplicaSet controller and garbage collector).
    Controllers,
    /// The kubelets: pods are bound to nodes but nothing runs them.
    Kubelet,
}

/// The container runtime of the cluster's kubelets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// No processes: containers are records with configured behaviour.
    Simulated,
    /// `workbook/demo-app:<tag>` runs as a child process on the pod's own
    /// loopback address.
    Process,
}

/// The nodes of `labs cluster`.
#[derive(Clone, Copy, Debug)]
pub struct NodeOptions {
    pub nodes: usize,
    pub runtime: RuntimeKind,
}

/// One kubelet per node `node-1..N`, all on one runtime of `kind` (so pod
/// IPs are unique across the cluster), each registered with the API server
/// for `kubectl logs`.
async fn start_kubelets(
    api: &ApiServer,
    opts: NodeOptions,
) -> anyhow::Result<(Vec<Kubelet>, Option<Arc<ProcessRuntime>>)> {
    let clock = Clock::system();
    let ipam = LoopbackIpam::default();
    let mut kubelets = Vec::new();
    let mut process = None;
    for i in 1..=opts.nodes {
        let config = KubeletConfig::new(format!("node-{i}"));
        let kubelet = match opts.runtime {
            RuntimeKind::Simulated => {
                let rt = SimulatedRuntime::new(SimulatedConfig::default(), clock, ipam.clone());
                Kubelet::start(api.client(), Arc::new(rt), config, clock)
            }
            RuntimeKind::Process => {
                let exe = ProcessConfig::current_exe()
                    .context("cannot find the labs executable to run containers")?;
                let rt = Arc::new(ProcessRuntime::new(exe, clock, ipam.clone()));
                // One runtime per node; the last one is kept to stop its
                // children — every runtime kills its children when dropped.
                process = Some(Arc::clone(&rt));
                Kubelet::start(api.client(), rt, config, clock)
            }
        };
        api.register_kubelet(kubelet.node_name(), kubelet.logs());
        kubelets.push(kubelet);
    }
    Ok((kubelets, process))
}

/// `labs cluster`: serve the API, start the controllers, run until Ctrl-C.
pub async fn run(
    port: u16,
    kubeconfig_path: &Path,
    without: &[Component],
    nodes: NodeOptions,
) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    kubeconfig::write_kubeconfig(kubeconfig_path, addr)
        .with_context(|| format!("cannot write the kubeconfig {}", kubeconfig_path.display()))?;
    let controllers = (!without.contains(&Component::Controllers))
        .then(|| ControllerManager::start(api.client(), ManagerOptions::default()));
    let (kubelets, _process) = if without.contains(&Component::Kubelet) {
        (Vec::new(), None)
    } else {
        start_kubelets(&api, nodes).await?
    };
    println!("API server listening on http://{addr}");
    match kubelets.len() {
        0 => println!("kubelets: none (--without kubelet)"),
        n => println!(
            "kubelets: {n} ({:?} runtime): node-1..node-{n}",
            nodes.runtime
        ),
    }
    match &controllers {
        Some(_) => println!("controllers: replicaset-controller, garbage-collector"),
        None => println!("controllers: none (--without controllers)"),
    }
    println!("export KUBECONFIG={}", kubeconfig_path.display());
    api.serve(listener, crate::apiserver::shutdown_signal())
        .await?;
    if let Some(controllers) = controllers {
        controllers.shutdown().await?;
    }
    for kubelet in kubelets {
        kubelet.stop().await;
    }
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
