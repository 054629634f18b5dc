//! The API server: the only door to the store.
//!
//! Every component of the cluster — kubectl, controllers, the scheduler,
//! kubelets — reads and writes objects through this REST API; none of them
//! touches the store. The server is an axum [`Router`](axum::Router), that is
//! a tower `Service`: the same value is served over HTTP on loopback for
//! kubectl ([`ApiServer::serve`]) and handed in-process to
//! `kube::Client::new` ([`ApiServer::client`]) for tests and benches.
//!
//! The *pure* parts are functions over `serde_json::Value` that know
//! Kubernetes' rules but nothing about HTTP or the store; keeping the rules
//! pure is what lets the tests (and the book) check each rule with a plain
//! table of inputs and outputs. The HTTP layer calls them.
//!
//! | module | Kubernetes' counterpart |
//! |---|---|
//! | [`names`] | `k8s.io/apimachinery/pkg/util/validation` (name and label syntax) |
//! | [`selector`] | `k8s.io/apimachinery/pkg/labels`, `.../pkg/fields` |
//! | [`patch`] | `k8s.io/apimachinery/pkg/util/strategicpatch`, json-patch, SSA |
//! | [`allocator`] | `pkg/registry/core/service/{ipallocator,portallocator}` and their repair controllers |
//! | [`defaults`] | `pkg/apis/{core,apps}/v1/defaults.go` |
//! | [`validation`] | `pkg/apis/{core,apps}/validation` |
//! | [`table`] | `pkg/printers/internalversion/printers.go` |
//! | [`protobuf`] | `k8s.io/apimachinery/pkg/runtime/serializer/protobuf` |
//! | [`resources`] | the scheme and `pkg/registry/*/storage` (one row per resource) |
//! | [`request`] | `k8s.io/apiserver/pkg/endpoints/request` (what a URL names) |
//! | [`server`] | `k8s.io/apiserver/pkg/endpoints/installer.go` (routing) |
//! | [`handlers`] | `k8s.io/apiserver/pkg/endpoints/handlers` and `registry/generic/registry/store.go` |
//! | [`watch`] | `k8s.io/apiserver/pkg/endpoints/handlers/watch.go` |
//! | [`discovery`] | `/api`, `/apis`, `/version` |
//! | [`openapi`] | `k8s.io/kube-openapi/pkg/handler3` (`/openapi/v3`, `/openapi/v2`) |
//! | [`status`] | `k8s.io/apimachinery/pkg/api/errors` |

pub mod allocator;
pub mod defaults;
pub mod names;
pub mod patch;
pub mod protobuf;
pub mod selector;
pub mod table;
pub mod validation;

pub mod discovery;
pub mod handlers;
pub mod kubeconfig;
pub mod logs;
pub mod openapi;
pub mod portforward;
pub mod request;
pub mod resources;
pub mod server;
pub mod status;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// Settings with Kubernetes' defaults; tests shrink the intervals.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest request body accepted. The real server's limit is 3 MiB
    /// (`MaxRequestBodyBytes`), which is also etcd's default value limit.
    pub max_body_bytes: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    /// Upstream sends one about every minute.
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` stays open. Upstream
    /// picks a random value between 30 and 60 minutes.
    pub default_watch_timeout: Duration,
    /// The `tolerationSeconds` of the not-ready / unreachable tolerations
    /// every new pod gets (the DefaultTolerationSeconds admission plugin,
    /// `--default-not-ready-toleration-seconds` and
    /// `--default-unreachable-toleration-seconds`; 300 upstream). How long a
    /// pod stays on a node that stopped reporting before it is evicted; the
    /// labs shorten it.
    pub default_not_ready_toleration_seconds: i64,
    pub default_unreachable_toleration_seconds: i64,
    /// `--service-cluster-ip-range`: where Services' cluster IPs come from
    /// ([`allocator::SERVICE_CIDR`], a loopback range; tests shrink it to
    /// see it fill up).
    pub service_cidr: (std::net::Ipv4Addr, u8),
    /// `--service-node-port-range`: 30000-32767.
    pub node_port_range: (u16, u16),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            service_cidr: allocator::SERVICE_CIDR,
            node_port_range: allocator::NODE_PORT_RANGE,
        }
    }
}

/// The API server's shared state: the store and its settings. Cheap to
/// clone; every request handler gets a clone.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Config,
    /// Flipped to `true` on shutdown so that open watch streams end: a
    /// graceful HTTP shutdown waits for every response to finish, and a
    /// watch would otherwise run for its full timeout.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The kubelets' log endpoints by node name ([`logs`]).
    kubelets: logs::Registry,
    /// Objects decoded once for all filtered watches ([`watch::Decoded`]).
    decoded: watch::Decoded,
    /// Cluster IPs and node ports handed out ([`allocator`]), rebuilt from
    /// the stored Services when the server starts.
    allocators: std::sync::Mutex<allocator::ServiceAllocators>,
}

/// The namespaces a fresh cluster has. Creating a namespaced object needs
/// its namespace to exist, as in Kubernetes.
pub const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-node-lease"];

impl ApiServer {
    pub fn new(store: Store) -> ApiServer {
        ApiServer::with_config(store, Config::default())
    }

    pub fn with_config(store: Store, config: Config) -> ApiServer {
        let (shutdown, _) = tokio::sync::watch::channel(false);
        // A server started on a store that already holds Services (a
        // restart) must know which addresses they hold: upstream's repair
        // controllers, run once before the first request.
        let services = resources::by_kind("Service").expect("services are served");
        let (kvs, _) = store.list(&services.prefix(None));
        let stored: Vec<serde_json::Value> = kvs.iter().map(handlers::object_from_kv).collect();
        let allocators = allocator::ServiceAllocators::repair(
            config.service_cidr,
            config.node_port_range,
            &stored,
        );
        let api = ApiServer {
            inner: Arc::new(Inner {
                store,
                config,
                shutdown,
                kubelets: Default::default(),
                decoded: Default::default(),
                allocators: std::sync::Mutex::new(allocators),
            }),
        };
        for ns in INITIAL_NAMESPACES {
            handlers::ensure_namespace(&api, ns);
        }
        api
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Service allocators, locked for one allocation or release.
    pub(crate) fn allocators(&self) -> std::sync::MutexGuard<'_, allocator::ServiceAllocators> {
        self.inner
            .allocators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn decoded(&self) -> &watch::Decoded {
        &self.inner.decoded
    }

    /// The axum router serving the whole API.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// A kubelet announces where its logs can be read: the in-process
    /// stand-in for the API server → kubelet connection on port 10250
    /// (see [`logs`]). A later registration for the same node replaces it.
    pub fn register_kubelet(&self, node: &str, logs: Arc<dyn logs::NodeLogs>) {
        self.inner
            .kubelets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), logs);
    }

    /// The kubelet is gone (stopped, its node dead): `kubectl logs` for
    /// its pods fails as a refused connection does.
    pub fn unregister_kubelet(&self, node: &str) {
        self.inner
            .kubelets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    pub(crate) fn kubelet(&self, node: &str) -> Option<Arc<dyn logs::NodeLogs>> {
        self.inner
            .kubelets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }

    // ANCHOR: client
    /// A kube-rs client that calls the router in-process: no socket, no
    /// HTTP parsing. kube's `Client::new` takes any tower `Service`; only
    /// the request body type has to be converted into axum's.
    pub fn client(&self) -> kube::Client {
        let service = tower::ServiceBuilder::new()
            .map_request(|req: http::Request<kube::client::Body>| req.map(axum::body::Body::new))
            .service(self.router());
        kube::Client::new(service, "default")
    }
    // ANCHOR_END: client

    /// Ends every open watch stream (they finish with their chunked
    /// terminator, as after `timeoutSeconds`).
    pub fn shutdown_watches(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    // ANCHOR: serve
    /// Serves the API over HTTP on `listener` until `shutdown` completes;
    /// then ends open watches and waits for in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let api = self.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                api.shutdown_watches();
            })
            .await
    }
    // ANCHOR_END: serve
}

// ANCHOR: run
/// `labs apiserver` / `labs cluster`: serve a fresh store on a loopback
/// port, write a kubeconfig for it, and run until Ctrl-C.
pub async fn run(port: u16, kubeconfig_path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let api = ApiServer::new(Store::new());
    // Loopback only: the lab cluster is not meant to be reachable from
    // anywhere else (and does no authentication).
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    kubeconfig::write_kubeconfig(kubeconfig_path, addr)
        .with_context(|| format!("cannot write the kubeconfig {}", kubeconfig_path.display()))?;
    tracing::info!(%addr, "API server listening");
    print!("{}", banner(addr, kubeconfig_path));
    api.serve(listener, shutdown_signal()).await?;
    println!("API server stopped");
    Ok(())
}
// ANCHOR_END: run

/// What `labs apiserver` prints once it listens: where, and the line to
/// paste into another terminal. A function of its own so that the book's
/// copy is generated from it (`labs/src/main.rs`'s tests).
pub fn banner(addr: std::net::SocketAddr, kubeconfig_path: &std::path::Path) -> String {
    format!(
        "API server listening on http://{addr}\nexport KUBECONFIG={}\n",
        kubeconfig_path.display()
    )
}
pub use crate::machinery::signal::shutdown_signal;
