//! The Service registry's allocators: cluster IPs and node ports.
//!
//! A Service of type ClusterIP gets a *virtual* IP that no interface owns
//! until kube-proxy answers for it; a NodePort Service also gets a port
//! that every node listens on. Both must be unique across the cluster, so
//! the API server hands them out, in the write path of `services` — not a
//! controller after the fact: a Service is never stored without its
//! address, and two Services never share one.
//!
//! Upstream: `pkg/registry/core/service/ipallocator` and `portallocator`
//! (a bitmap over the range), `pkg/registry/core/service/storage/alloc.go`
//! (what a create or an update needs, and what it gives back), and the
//! repair controllers (`.../ipallocator/controller/repair.go`,
//! `.../portallocator/controller/repair.go`), which rebuild the bitmaps
//! from the stored Services. Upstream keeps the bitmap itself in etcd and
//! repairs it every few minutes; the labs keep it in memory and rebuild it
//! from the stored Services whenever an API server starts on a store
//! ([`ServiceAllocators::repair`]) — the stored Services are the truth, so
//! a restarted server can never hand out an address a Service still holds.
//!
//! Both bitmaps split their range as upstream does since 1.24/1.29
//! (ServiceIPStaticSubrange, ServiceNodePortStaticSubrange): the low band
//! is kept for addresses users ask for by number (a DNS service at `.10`),
//! so dynamic allocation takes from the upper band first and only falls
//! back to the low band when the upper one is full. Upstream picks at
//! random inside a band; the labs take the lowest free slot, so that runs
//! (and the book's printouts) are repeatable.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::validation::{FieldError, FieldErrorKind};

/// The service CIDR of the labs: `127.2.0.0/16`.
///
/// Every 127.x address is on the loopback interface on Linux, so kube-proxy
/// can listen on a cluster IP without any route or interface being set up,
/// and nothing leaves the machine. No other range may be used here: the
/// machines the labs run on allow loopback traffic only (pods are on
/// 127.0.1.x, so Services get a range of their own).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 2, 0, 0), 16);

/// `--service-node-port-range`, upstream's default.
pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

/// Why an address could not be handed out; the texts are upstream's
/// (`ipallocator.ErrFull`, `ErrAllocated`, `ErrNotInRange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    Full,
    Allocated(&'static str),
    NotInRange(String),
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::Full => write!(f, "range is full"),
            AllocError::Allocated(what) => write!(f, "provided {what} is already allocated"),
            AllocError::NotInRange(text) => write!(f, "{text}"),
        }
    }
}

/// A bitmap over `size` slots with upstream's static/dynamic band split.
#[derive(Debug, Clone)]
struct Bitmap {
    used: Vec<bool>,
    /// Slots below this are the static band.
    band: usize,
}

impl Bitmap {
    fn new(size: usize, band: usize) -> Bitmap {
        Bitmap {
            used: vec![false; size],
            band: band.min(size),
        }
    }

    /// Lowest free slot of the upper (dynamic) band, else of the lower band.
    fn next_free(&self) -> Option<usize> {
        (self.band..self.used.len())
            .chain(0..self.band)
            .find(|&i| !self.used[i])
    }

    fn free(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }
}

/// Cluster IPs: upstream's `ipallocator.Range` over one IPv4 CIDR. The
/// network address and the broadcast address are never handed out.
#[derive(Debug, Clone)]
pub struct IpAllocator {
    base: u32,
    prefix: u8,
    bits: Bitmap,
}

impl IpAllocator {
    pub fn new(network: Ipv4Addr, prefix: u8) -> IpAllocator {
        assert!((1..=30).contains(&prefix), "a service CIDR needs room");
        let mask = u32::MAX << (32 - prefix);
        let base = u32::from(network) & mask;
        // Usable: everything but the network and broadcast addresses.
        let size = (1usize << (32 - prefix)) - 2;
        // Upstream's `calculateRangeOffset`: min(max(16, size/16), 256).
        let band = if size < 16 {
            0
        } else {
            (size / 16).clamp(16, 256)
        };
        IpAllocator {
            base,
            prefix,
            bits: Bitmap::new(size, band),
        }
    }

    /// `127.2.0.0/16`, as the error messages print it.
    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }

    fn slot(&self, ip: Ipv4Addr) -> Result<usize, AllocError> {
        let n = u32::from(ip);
        let slot = n.wrapping_sub(self.base).wrapping_sub(1) as usize;
        if n <= self.base || slot >= self.bits.used.len() {
            return Err(AllocError::NotInRange(format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.cidr()
            )));
        }
        Ok(slot)
    }

    /// Takes a requested address (`spec.clusterIP: 127.2.0.10`).
    pub fn allocate(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let slot = self.slot(ip)?;
        if self.bits.used[slot] {
            return Err(AllocError::Allocated("IP"));
        }
        self.bits.used[slot] = true;
        Ok(())
    }

    /// Takes the next free address.
    pub fn allocate_next(&mut self) -> Result<Ipv4Addr, AllocError> {
        let slot = self.bits.next_free().ok_or(AllocError::Full)?;
        self.bits.used[slot] = true;
        Ok(Ipv4Addr::from(self.base + 1 + slot as u32))
    }

    /// Gives an address back; an address not held is ignored (a repair
    /// may have dropped it already).
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Ok(slot) = self.slot(ip) {
            self.bits.used[slot] = false;
        }
    }

    pub fn has(&self, ip: Ipv4Addr) -> bool {
        self.slot(ip).is_ok_and(|s| self.bits.used[s])
    }

    pub fn free(&self) -> usize {
        self.bits.free()
    }
}

/// Node ports: upstream's `portallocator.PortAllocator`.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    bits: Bitmap,
}

impl PortAllocator {
    pub fn new(first: u16, last: u16) -> PortAllocator {
        let size = (last - first) as usize + 1;
        // Upstream's `calculateRangeOffset` for ports: min(max(16, size/32), 128).
        let band = if size < 16 {
            0
        } else {
            (size / 32).clamp(16, 128)
        };
        PortAllocator {
            first,
            last,
            bits: Bitmap::new(size, band),
        }
    }

    fn slot(&self, port: i64) -> Result<usize, AllocError> {
        if port < self.first as i64 || port > self.last as i64 {
            return Err(AllocError::NotInRange(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                self.first, self.last
            )));
        }
        Ok((port - self.first as i64) as usize)
    }

    pub fn allocate(&mut self, port: i64) -> Result<(), AllocError> {
        let slot = self.slot(port)?;
        if self.bits.used[slot] {
            return Err(AllocError::Allocated("port"));
        }
        self.bits.used[slot] = true;
        Ok(())
    }

    pub fn allocate_next(&mut self) -> Result<i64, AllocError> {
        let slot = self.bits.next_free().ok_or(AllocError::Full)?;
        self.bits.used[slot] = true;
        Ok(self.first as i64 + slot as i64)
    }

    pub fn release(&mut self, port: i64) {
        if let Ok(slot) = self.slot(port) {
            self.bits.used[slot] = false;
        }
    }

    pub fn has(&self, port: i64) -> bool {
        self.slot(port).is_ok_and(|s| self.bits.used[s])
    }

    pub fn free(&self) -> usize {
        self.bits.free()
    }
}

/// A failed allocation, as the registry answers it: a 422 naming the field,
/// or a 500 when the range is full (upstream's own TODO admits that "range
/// is full" is neither a field error nor really internal).
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceAllocError {
    Invalid(FieldError),
    Internal(String),
}

/// What one write took, so that a write which then fails (a validation
/// error, a lost compare-and-swap) can give it back.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Taken {
    pub ips: Vec<Ipv4Addr>,
    pub ports: Vec<i64>,
}

/// The addresses a stored Service holds.
pub fn held(svc: &Value) -> Taken {
    let spec = svc.get("spec").cloned().unwrap_or(json!({}));
    let ips = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| {
            spec.get("clusterIP")
                .and_then(Value::as_str)
                .into_iter()
                .collect()
        })
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter(|n| *n != 0)
        .collect();
    Taken { ips, ports }
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// NodePort and LoadBalancer Services get a node port per port.
pub fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Every type but ExternalName has a cluster IP (or is headless).
pub fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName"
}

/// Both allocators of one API server.
#[derive(Debug, Clone)]
pub struct ServiceAllocators {
    pub ips: IpAllocator,
    pub node_ports: PortAllocator,
}

impl ServiceAllocators {
    pub fn new(cidr: (Ipv4Addr, u8), node_ports: (u16, u16)) -> ServiceAllocators {
        ServiceAllocators {
            ips: IpAllocator::new(cidr.0, cidr.1),
            node_ports: PortAllocator::new(node_ports.0, node_ports.1),
        }
    }

    // ANCHOR: repair
    /// Rebuilds the bitmaps from the stored Services: upstream's repair
    /// controllers. Addresses outside the range (a Service stored before
    /// the range changed) and duplicates are left as they are, and logged:
    /// upstream reports them as events and does not touch the Services.
    pub fn repair<'a>(
        cidr: (Ipv4Addr, u8),
        node_ports: (u16, u16),
        services: impl IntoIterator<Item = &'a Value>,
    ) -> ServiceAllocators {
        let mut alloc = ServiceAllocators::new(cidr, node_ports);
        for svc in services {
            let taken = held(svc);
            for ip in taken.ips {
                if let Err(e) = alloc.ips.allocate(ip) {
                    tracing::warn!(%ip, error = %e, "repair: cluster IP of a stored Service");
                }
            }
            for port in taken.ports {
                if let Err(e) = alloc.node_ports.allocate(port) {
                    tracing::warn!(port, error = %e, "repair: node port of a stored Service");
                }
            }
        }
        alloc
    }
    // ANCHOR_END: repair

    /// Gives back what a failed write took.
    pub fn undo(&mut self, taken: &Taken) {
        for ip in &taken.ips {
            self.ips.release(*ip);
        }
        for port in &taken.ports {
            self.node_ports.release(*port);
        }
    }

    /// A deleted Service gives back everything it held.
    pub fn release(&mut self, svc: &Value) {
        self.undo(&held(svc));
    }

    // ANCHOR: allocate
    /// What a new Service (`old` = `None`) or an updated one needs beyond
    /// what it already holds: a cluster IP (the requested one, or the next
    /// free one) and a node port per port of a NodePort Service. Fills
    /// `clusterIP`, `clusterIPs` and the node ports into `svc`. Nothing is
    /// taken when it fails. Upstream: `Allocators.allocateCreate` /
    /// `allocateUpdate` (`storage/alloc.go`).
    pub fn allocate(
        &mut self,
        old: Option<&Value>,
        svc: &mut Value,
    ) -> Result<Taken, ServiceAllocError> {
        let mut taken = Taken::default();
        let result = self.allocate_into(old, svc, &mut taken);
        if result.is_err() {
            self.undo(&taken);
        }
        result.map(|()| taken)
    }

    fn allocate_into(
        &mut self,
        old: Option<&Value>,
        svc: &mut Value,
        taken: &mut Taken,
    ) -> Result<(), ServiceAllocError> {
        let before = old.map(held).unwrap_or_default();
        if needs_cluster_ip(svc) {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let requested = if requested.is_empty() {
                // `clusterIPs` alone is a request too.
                svc.pointer("/spec/clusterIPs/0")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            } else {
                requested
            };
            let ip = if requested == "None" {
                None
            } else if requested.is_empty() {
                let ip = self.ips.allocate_next().map_err(|e| {
                    ServiceAllocError::Internal(format!(
                        "Internal error occurred: failed to allocate a serviceIP: {e}"
                    ))
                })?;
                taken.ips.push(ip);
                Some(ip.to_string())
            } else {
                let parsed: Option<Ipv4Addr> = requested.parse().ok();
                match parsed {
                    // Already this Service's: an update that keeps it.
                    Some(ip) if before.ips.contains(&ip) => {}
                    Some(ip) => {
                        self.ips.allocate(ip).map_err(|e| {
                            ServiceAllocError::Invalid(FieldError {
                                kind: FieldErrorKind::Invalid,
                                field: "spec.clusterIPs".into(),
                                bad_value: Some(json!([requested])),
                                detail: format!("failed to allocate IP {requested}: {e}"),
                            })
                        })?;
                        taken.ips.push(ip);
                    }
                    // Not an IPv4 address: validation names it.
                    None => {}
                }
                Some(requested)
            };
            let spec = spec_mut(svc);
            match ip {
                Some(ip) => {
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                None => {
                    spec.insert("clusterIP".into(), json!("None"));
                    spec.insert("clusterIPs".into(), json!(["None"]));
                }
            }
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
        if needs_node_ports(svc) {
            let mut ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Requested ports first, so that a port asked for by number is
            // not handed to another port of the same Service.
            for (i, p) in ports.iter().enumerate() {
                let n = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
                if n == 0 || before.ports.contains(&n) || taken.ports.contains(&n) {
                    continue;
                }
                self.node_ports.allocate(n).map_err(|e| {
                    ServiceAllocError::Invalid(FieldError {
                        kind: FieldErrorKind::Invalid,
                        field: format!("spec.ports[{i}].nodePort"),
                        bad_value: Some(json!(n)),
                        detail: e.to_string(),
                    })
                })?;
                taken.ports.push(n);
            }
            for p in ports.iter_mut() {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let n = self.node_ports.allocate_next().map_err(|e| {
                    ServiceAllocError::Internal(format!(
                        "Internal error occurred: failed to allocate a nodePort: {e}"
                    ))
                })?;
                taken.ports.push(n);
                p["nodePort"] = json!(n);
            }
            if !ports.is_empty() {
                spec_mut(svc).insert("ports".into(), json!(ports));
            }
        }
        Ok(())
    }
    // ANCHOR_END: allocate

    /// After an update is stored: give back what the old Service held and
    /// the new one does not (a type change away from NodePort, a node port
    /// changed by number, a change to ExternalName).
    pub fn release_replaced(&mut self, old: &Value, new: &Value) {
        let (before, after) = (held(old), held(new));
        for ip in before.ips.iter().filter(|ip| !after.ips.contains(ip)) {
            self.ips.release(*ip);
        }
        for port in before.ports.iter().filter(|p| !after.ports.contains(p)) {
            self.node_ports.release(*port);
        }
    }
}

fn spec_mut(svc: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    svc["spec"].as_object_mut().expect("spec is an object")
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
