//! kube-proxy: makes a Service's virtual IP lead somewhere.
//!
//! A cluster IP is on no interface and no pod owns it. Every node runs a
//! kube-proxy that watches Services and EndpointSlices and makes connections
//! to `clusterIP:port` (and to `nodeIP:nodePort`) arrive at one of the
//! Service's endpoints. How it does that has changed four times:
//!
//! | mode | how | |
//! |---|---|---|
//! | userspace (2014) | kube-proxy itself accepts the connection and copies bytes to an endpoint | **this module** ([`proxier`]) |
//! | iptables (default since 1.2) | NAT rules in the kernel rewrite the destination; kube-proxy only writes rules | [`iptables`] prints them |
//! | IPVS (1.11, deprecated 1.35) | the kernel's L4 load balancer | — |
//! | nftables (GA 1.33) | the same idea as iptables with maps instead of rule lists | [`nftables`] prints them |
//!
//! The labs run the first mode for real: it needs no root, no kernel
//! tables, and runs beside other processes on one machine's loopback
//! addresses. The other modes are printed from the same state, so the
//! reader can see what a real node would program.
//!
//! Whatever the mode, the *decision* is the same and lives here, pure:
//! [`service_ports`] turns Services and EndpointSlices into a list of service
//! ports with their endpoints (upstream's `ServicePortMap` and `EndpointsMap`,
//! built by `pkg/proxy/servicechangetracker.go` and `endpointslicecache.go`),
//! [`usable_endpoints`] picks the endpoints traffic may go to
//! (`CategorizeEndpoints` in `pkg/proxy/topology.go`), and [`pick_endpoint`]
//! chooses one for a new connection as the iptables mode's `statistic`
//! rules do.
//!
//! kube-proxy never looks at pods: whether an endpoint is ready is what the
//! EndpointSlice controller wrote. Taking a pod out of traffic is that
//! controller's job; kube-proxy only follows.
//!
//! Left out, on purpose: UDP and SCTP (the workbook's apps speak HTTP),
//! session affinity, `internalTrafficPolicy`/`externalTrafficPolicy: Local`
//! and topology hints, external IPs and load balancers, and IPv6.

pub mod iptables;
pub mod nftables;
pub mod proxier;

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Set on the slices of headless Services; kube-proxy ignores those slices
/// (upstream filters them out in its informer's label selector).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

// ANCHOR: service_port_name
/// Which service port: `namespace/name:port` (upstream's `ServicePortName`).
/// The port's *name*, not its number, identifies it, which is why a Service
/// with several ports must name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name; "" for the single unnamed port.
    pub port: String,
}

/// `default/web:http`, or `default/web` for an unnamed port
/// (`ServicePortName.String()` with `fmtPortName`). This exact text is
/// hashed into the iptables chain names and written in their comments.
impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}
// ANCHOR_END: service_port_name

/// One endpoint of one service port, as kube-proxy sees it (upstream's
/// `BaseEndpointInfo`): an address, a port, and the three conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// One service port with everything a proxy needs to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub name: ServicePortName,
    /// `TCP`, `UDP` or `SCTP`; the userspace proxy serves TCP only.
    pub protocol: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// Set for NodePort (and LoadBalancer) Services.
    pub node_port: Option<u16>,
    /// Every endpoint, sorted by address; see [`usable_endpoints`] for
    /// which ones get traffic.
    pub endpoints: Vec<Endpoint>,
}

// ANCHOR: service_ports
/// Services + EndpointSlices → the service ports to proxy, each with its
/// endpoints, sorted by name (so every rendering is stable).
///
/// * Headless Services (`clusterIP: None`) and ExternalName Services have
///   no virtual IP and are skipped.
/// * An endpoint's port comes from the slice's port *with the same name*
///   as the Service port: the slice already resolved named target ports per
///   pod (the EndpointSlice controller did).
/// * Slices are joined by their `kubernetes.io/service-name` label, not by
///   owner, so hand-written slices of a selector-less Service work too.
/// * The same address in two slices (an endpoint moving between slices)
///   counts once (upstream's `endpointSliceCache` merges them).
pub fn service_ports<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
) -> Vec<ServicePortInfo> {
    // Slices by (namespace, service).
    let mut slices_of: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices.iter().map(Borrow::borrow) {
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(LABEL_SERVICE_NAME)) else {
            continue;
        };
        if slice.address_type != "IPv4" || labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
            continue;
        }
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        slices_of
            .entry((ns, service.clone()))
            .or_default()
            .push(slice);
    }

    let mut out = Vec::new();
    for svc in services.iter().map(Borrow::borrow) {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        // "None" (headless), "" (not allocated) and anything unparsable.
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            continue;
        };
        let namespace = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let svc_slices = slices_of
            .get(&(namespace.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for sp in spec.ports.iter().flatten() {
            let port_name = sp.name.clone().unwrap_or_default();
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut endpoints: BTreeMap<String, Endpoint> = BTreeMap::new();
            for slice in svc_slices {
                let Some(port) = slice.ports.iter().flatten().find(|p| {
                    p.name.as_deref().unwrap_or_default() == port_name
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                }) else {
                    continue;
                };
                let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                        continue;
                    };
                    let c = ep.conditions.clone().unwrap_or_default();
                    let endpoint = Endpoint {
                        addr: SocketAddrV4::new(ip, port),
                        // Unset conditions mean "unknown", read as ready and
                        // serving (upstream does the same).
                        ready: c.ready.unwrap_or(true),
                        serving: c.serving.unwrap_or(true),
                        terminating: c.terminating.unwrap_or(false),
                        node_name: ep.node_name.clone(),
                    };
                    // Upstream sorts endpoints by their "ip:port" string.
                    endpoints
                        .entry(endpoint.addr.to_string())
                        .or_insert(endpoint);
                }
            }
            out.push(ServicePortInfo {
                name: ServicePortName {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    port: port_name,
                },
                protocol,
                cluster_ip,
                port: u16::try_from(sp.port).unwrap_or(0),
                node_port: sp.node_port.and_then(|p| u16::try_from(p).ok()),
                endpoints: endpoints.into_values().collect(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.protocol.cmp(&b.protocol)));
    out
}
// ANCHOR_END: service_ports

// ANCHOR: usable_endpoints
/// The endpoints a service port's traffic may go to (the "cluster" half of
/// upstream's `CategorizeEndpoints`):
///
/// 1. the **ready** ones;
/// 2. if there are none, the ones that are **serving and terminating**: a
///    pod that is shutting down but still answers. Before
///    ProxyTerminatingEndpoints (GA in 1.28), a one-replica Deployment's
///    rollout refused connections for a moment; with it, the old pod keeps
///    taking traffic until the new one is ready;
/// 3. else none: the connection is refused.
pub fn usable_endpoints(endpoints: &[Endpoint]) -> Vec<&Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .iter()
        .filter(|e| e.serving && e.terminating)
        .collect()
}
// ANCHOR_END: usable_endpoints

// ANCHOR: pick_endpoint
/// The endpoint for one new connection: uniformly at random among the
/// usable endpoints, `None` if there is none.
///
/// This is what the iptables mode's rules amount to: with n endpoints, the
/// first rule matches with probability 1/n, the second with 1/(n−1) of the
/// rest, …, the last always, so each endpoint gets 1/n of the connections
/// (see [`iptables::probability`]). The choice is per *connection*, not per
/// request: an HTTP keep-alive connection stays on its endpoint.
///
/// The generator is the caller's, so tests can seed it.
pub fn pick_endpoint<'e>(
    endpoints: &'e [Endpoint],
    rng: &mut fastrand::Rng,
) -> Option<&'e Endpoint> {
    let usable = usable_endpoints(endpoints);
    if usable.is_empty() {
        return None;
    }
    Some(usable[rng.usize(..usable.len())])
}
// ANCHOR_END: pick_endpoint
