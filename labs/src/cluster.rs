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
use crate::store::Store;

/// A component of `labs cluster` that `--without` can leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The whole controller manager (ReplicaSet and Deployment controllers,
    /// garbage collector).
    Controllers,
    /// Only the Deployment controller: Deployments get no ReplicaSets, and
    /// `kubectl rollout status` waits forever.
    Deployment,
}

/// `labs cluster`: serve the API, start the controllers, run until Ctrl-C.
pub async fn run(port: u16, kubeconfig_path: &Path, without: &[Component]) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    kubeconfig::write_kubeconfig(kubeconfig_path, addr)
        .with_context(|| format!("cannot write the kubeconfig {}", kubeconfig_path.display()))?;
    let options = ManagerOptions {
        without_deployment: without.contains(&Component::Deployment),
        ..ManagerOptions::default()
    };
    let running = options.running().join(", ");
    let controllers = (!without.contains(&Component::Controllers))
        .then(|| ControllerManager::start(api.client(), options));
    println!("API server listening on http://{addr}");
    match &controllers {
        Some(_) => println!("controllers: {running}"),
        None => println!("controllers: none (--without controllers)"),
    }
    println!("export KUBECONFIG={}", kubeconfig_path.display());
    api.serve(listener, crate::apiserver::shutdown_signal())
        .await?;
    if let Some(controllers) = controllers {
        controllers.shutdown().await?;
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
