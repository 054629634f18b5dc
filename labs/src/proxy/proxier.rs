//! kube-proxy's plumbing in userspace mode: informers on Services and
//! EndpointSlices, and one TCP listener per service address that forwards
//! each accepted connection to the endpoint [`pick_endpoint`] chooses.
//!
//! This is what kube-proxy's first mode (`pkg/proxy/userspace`, removed in
//! 1.26) did, with the endpoint choice of the iptables mode. Its cost is
//! why it was replaced: every byte crosses into this process and out again,
//! where the iptables mode leaves the connection to the kernel after one
//! NAT decision. `labs bench proxy` measures that cost.
//!
//! A sync (upstream's `syncProxyRules`) recomputes everything from the
//! caches, like a controller's reconcile: for every TCP service port with a
//! usable endpoint, listen on `clusterIP:port` (and on `127.0.0.1:nodePort`
//! for node ports) and hand the listener the current endpoints; close every
//! other listener. Closing is how "no endpoint" becomes *connection
//! refused*: the kernel answers a SYN to an address nobody listens on with
//! a RST at once, as the iptables mode's `REJECT` rule does, instead of
//! leaving the client waiting for a timeout.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    Endpoint, ServicePortInfo, ServicePortName, pick_endpoint, service_ports, usable_endpoints,
};
use crate::machinery::informer::{EventHandler, Informer};

/// How long a connection to an endpoint may take before the client's
/// connection is reset. Endpoints are on loopback: a healthy one answers in
/// microseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed bind, try again this much later.
const RETRY_BIND: Duration = Duration::from_secs(1);

/// Settings of one kube-proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Where node ports are opened: the node's address. Every lab node is
    /// this machine, so `127.0.0.1`.
    pub node_port_address: Ipv4Addr,
    /// The least time between two syncs (`--iptables-min-sync-period`, 1 s
    /// by default upstream). Changes after a quiet spell are synced at once
    /// (upstream allows a burst of two); a longer burst of changes (a
    /// rolling update) is folded into one sync per period, because rewriting a big rule set on every event would
    /// cost a real node too much. The price is a delay, and the delay is why
    /// a pod must keep serving for a while after it is told to stop (the
    /// preStop hook of the Service lab).
    pub min_sync_period: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            node_port_address: Ipv4Addr::LOCALHOST,
            min_sync_period: Duration::from_secs(1),
        }
    }
}

/// A running kube-proxy. Stop it with [`KubeProxy::stop`].
pub struct KubeProxy {
    node_name: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    synced: watch::Receiver<Arc<Vec<ServicePortInfo>>>,
}

// ANCHOR: start
impl KubeProxy {
    /// Starts watching and proxying on the current runtime.
    pub fn start(
        client: kube::Client,
        node_name: impl Into<String>,
        options: ProxyOptions,
    ) -> KubeProxy {
        let node_name = node_name.into();
        let shutdown = CancellationToken::new();
        let (tx, synced) = watch::channel(Arc::new(Vec::new()));
        let task = tokio::spawn(run(
            client,
            node_name.clone(),
            options,
            tx,
            shutdown.clone(),
        ));
        KubeProxy {
            node_name,
            shutdown,
            task,
            synced,
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The service ports as of the last completed sync: what the listeners
    /// serve now. A new value is published after every sync, so a caller
    /// can wait for the proxy to have caught up with a change.
    pub fn synced(&self) -> watch::Receiver<Arc<Vec<ServicePortInfo>>> {
        self.synced.clone()
    }

    /// Closes every listener and every forwarded connection, and stops
    /// watching.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
// ANCHOR_END: start

/// Any change to a Service or a slice: sync (soon). A [`Notify`] keeps one
/// permit, so a burst of events while a sync runs means one more sync, not
/// one per event: the same folding the work queue does for controllers.
struct Poke(Arc<Notify>);

impl<K> EventHandler<K> for Poke {
    fn on_add(&self, _: &K) {
        self.0.notify_one();
    }
    fn on_update(&self, _: &K, _: &K) {
        self.0.notify_one();
    }
    fn on_delete(&self, _: &K) {
        self.0.notify_one();
    }
}

/// One open listener and what it needs to know.
struct Listener {
    /// The service port it serves, for logs.
    name: ServicePortName,
    /// The current endpoints; the accept loop reads the newest on every
    /// connection, so an endpoint turning not-ready is skipped from the
    /// next connection on.
    endpoints: watch::Sender<Arc<Vec<Endpoint>>>,
    stop: CancellationToken,
}

async fn run(
    client: kube::Client,
    node_name: String,
    options: ProxyOptions,
    synced: watch::Sender<Arc<Vec<ServicePortInfo>>>,
    shutdown: CancellationToken,
) {
    let service_informer = Informer::new(Api::<Service>::all(client.clone()));
    let slice_informer = Informer::new(Api::<EndpointSlice>::all(client));
    let (services, slices) = (service_informer.store(), slice_informer.store());
    let poke = Arc::new(Notify::new());
    let informers = [
        tokio::spawn(service_informer.run(Arc::new(Poke(Arc::clone(&poke))), shutdown.clone())),
        tokio::spawn(slice_informer.run(Arc::new(Poke(Arc::clone(&poke))), shutdown.clone())),
    ];
    // Like a controller: never act on a half-listed cache (it would close
    // the listeners of every Service not listed yet).
    let ready = async {
        services.wait_until_ready().await?;
        slices.wait_until_ready().await
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        result = ready => {
            if result.is_ok() {
                tracing::info!(node = %node_name, "kube-proxy: caches synced");
                sync_loop(&services, &slices, &options, &synced, &poke, &shutdown).await;
            }
        }
    }
    for informer in informers {
        let _ = informer.await;
    }
}

/// A token bucket: at most `burst` syncs at once, one more per `period`.
struct SyncLimiter {
    period: Duration,
    burst: u32,
    tokens: u32,
    refilled_at: tokio::time::Instant,
}

impl SyncLimiter {
    fn new(period: Duration, burst: u32) -> Self {
        SyncLimiter {
            period,
            burst,
            tokens: burst,
            refilled_at: tokio::time::Instant::now(),
        }
    }

    /// Waits until a sync may run, and spends its token.
    async fn take(&mut self) {
        loop {
            let now = tokio::time::Instant::now();
            if !self.period.is_zero() {
                while self.tokens < self.burst && now >= self.refilled_at + self.period {
                    self.tokens += 1;
                    self.refilled_at += self.period;
                }
            }
            if self.tokens >= self.burst {
                self.refilled_at = now;
            }
            if self.tokens > 0 || self.period.is_zero() {
                self.tokens = self.tokens.saturating_sub(1);
                return;
            }
            tokio::time::sleep_until(self.refilled_at + self.period).await;
        }
    }
}

// ANCHOR: sync
async fn sync_loop(
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    options: &ProxyOptions,
    synced: &watch::Sender<Arc<Vec<ServicePortInfo>>>,
    poke: &Notify,
    shutdown: &CancellationToken,
) {
    let mut listeners: HashMap<SocketAddrV4, Listener> = HashMap::new();
    let mut limiter = SyncLimiter::new(options.min_sync_period, 2);
    loop {
        let ports = service_ports(&services.state(), &slices.state());
        let all_bound = sync_listeners(&mut listeners, &ports, options, shutdown);
        synced.send_replace(Arc::new(ports));
        let retry = async {
            if all_bound {
                std::future::pending().await
            } else {
                tokio::time::sleep(RETRY_BIND).await
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = poke.notified() => {}
            _ = retry => {}
        }
        // Upstream's BoundedFrequencyRunner: a token bucket of two syncs,
        // refilled one per `min_sync_period`. Two changes after a quiet
        // spell (a Service, then its first endpoints) are synced at once;
        // a longer burst waits for the next token.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = limiter.take() => {}
        }
    }
    for listener in listeners.into_values() {
        listener.stop.cancel();
    }
}

/// One sync: the listeners that should exist, with their endpoints.
/// Returns false if some address could not be bound (retried later).
fn sync_listeners(
    listeners: &mut HashMap<SocketAddrV4, Listener>,
    ports: &[ServicePortInfo],
    options: &ProxyOptions,
    shutdown: &CancellationToken,
) -> bool {
    // Every address that should accept connections, and where they go.
    let mut desired: HashMap<SocketAddrV4, (&ServicePortName, Vec<Endpoint>)> = HashMap::new();
    for sp in ports.iter().filter(|sp| sp.protocol == "TCP") {
        let usable: Vec<Endpoint> = usable_endpoints(&sp.endpoints)
            .into_iter()
            .cloned()
            .collect();
        if usable.is_empty() {
            continue; // not listening = connection refused
        }
        desired.insert(
            SocketAddrV4::new(sp.cluster_ip, sp.port),
            (&sp.name, sp.endpoints.clone()),
        );
        if let Some(node_port) = sp.node_port {
            desired.insert(
                SocketAddrV4::new(options.node_port_address, node_port),
                (&sp.name, sp.endpoints.clone()),
            );
        }
    }
    listeners.retain(|addr, listener| {
        let keep = desired.contains_key(addr);
        if !keep {
            tracing::debug!(%addr, service = %listener.name, "no usable endpoint: closing");
            listener.stop.cancel();
        }
        keep
    });
    let mut all_bound = true;
    for (addr, (name, endpoints)) in desired {
        let endpoints = Arc::new(endpoints);
        if let Some(listener) = listeners.get(&addr) {
            listener.endpoints.send_if_modified(|current| {
                let changed = *current != endpoints;
                *current = Arc::clone(&endpoints);
                changed
            });
            continue;
        }
        match bind(addr) {
            Ok(socket) => {
                let (tx, rx) = watch::channel(endpoints);
                let stop = shutdown.child_token();
                tokio::spawn(accept_loop(socket, rx, stop.clone(), shutdown.clone()));
                listeners.insert(
                    addr,
                    Listener {
                        name: name.clone(),
                        endpoints: tx,
                        stop,
                    },
                );
            }
            Err(err) => {
                tracing::warn!(%addr, service = %name, %err, "cannot listen; retrying");
                all_bound = false;
            }
        }
    }
    all_bound
}
// ANCHOR_END: sync

// ANCHOR: bind
/// Listens on `addr` so that several kube-proxies can share it.
///
/// On a real cluster every node has its own kube-proxy and its own network
/// stack. In `labs cluster` all nodes are this one machine (every 127.x
/// address is local on Linux), so two kube-proxies want the same cluster IP
/// and port. `SO_REUSEPORT` lets them both listen; the kernel spreads new
/// connections between them, and either one alone is enough. `SO_REUSEADDR`
/// lets a listener reopen right after it was closed, while connections it
/// forwarded are still in TIME_WAIT.
fn bind(addr: SocketAddrV4) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(SocketAddr::V4(addr))?;
    socket.listen(1024)
}
// ANCHOR_END: bind

// ANCHOR: accept_loop
/// Accepts connections until `stop`, choosing an endpoint for each.
/// Connections already forwarded outlive `stop` (as established flows
/// outlive a rule change in the iptables mode) and end on `shutdown`.
async fn accept_loop(
    listener: TcpListener,
    endpoints: watch::Receiver<Arc<Vec<Endpoint>>>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut rng = fastrand::Rng::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(err) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let current = Arc::clone(&endpoints.borrow());
        let chosen = pick_endpoint(&current, &mut rng).map(|e| e.addr);
        tokio::spawn(forward(client, chosen, shutdown.clone()));
    }
    // Dropping the listener here closes the address: from now on the
    // kernel refuses connections to it.
}

/// Copies bytes both ways between the client and the endpoint until either
/// side closes (or the proxy stops).
async fn forward(client: TcpStream, endpoint: Option<SocketAddrV4>, stop: CancellationToken) {
    let backend = match endpoint {
        Some(addr) => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await,
        None => return reset(client), // the last endpoint left meanwhile
    };
    let mut backend = match backend {
        Ok(Ok(backend)) => backend,
        Ok(Err(err)) => {
            tracing::debug!(?endpoint, %err, "endpoint refused the connection");
            return reset(client);
        }
        Err(_) => return reset(client),
    };
    // Requests are small and latency matters more than packet count.
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let mut client = client;
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        _ = stop.cancelled() => {}
    }
}

/// Closes the client's connection with a RST, as a refused DNAT target
/// would: the client sees "connection reset", not a clean empty reply.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}
// ANCHOR_END: accept_loop

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn two_syncs_at_once_then_one_per_period() {
        let start = tokio::time::Instant::now();
        let mut limiter = SyncLimiter::new(Duration::from_secs(1), 2);
        let mut at = Vec::new();
        for _ in 0..4 {
            limiter.take().await;
            at.push((tokio::time::Instant::now() - start).as_millis());
        }
        assert_eq!(at, [0, 0, 1000, 2000]);
        // After a quiet spell the bucket is full again: a burst of two.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let quiet = tokio::time::Instant::now();
        limiter.take().await;
        limiter.take().await;
        assert_eq!(tokio::time::Instant::now(), quiet);
    }
}
