//! The EndpointSlice controller's decision core: given a Service, the pods in
//! its namespace and the slices that already exist for it, decide which
//! EndpointSlices to create, update and delete.
//!
//! A Service is only a name, a virtual IP and a label selector. *Which* pod
//! addresses stand behind it right now is written down by this controller,
//! in EndpointSlice objects (`discovery.k8s.io/v1`), and every node's
//! kube-proxy follows those slices. So the controller is the one that takes a
//! pod out of traffic when it stops being ready or starts terminating:
//! kube-proxy never looks at pods at all.
//!
//! This follows Kubernetes' `staging/src/k8s.io/endpointslice`
//! (`reconciler.go`: `reconcile`, `reconcileByAddressType`,
//! `reconcileByPortMapping`; `utils.go`: `podToEndpoint`,
//! `getEndpointPorts`, `newEndpointSlice`) and `podutil.FindPort`, with the
//! same names. The plumbing ([`controller`]) runs one sync of a Service like
//! this:
//!
//! 1. Read the Service from the cache. Gone, or without a selector: nothing
//!    to do (slices of a selector-less Service are someone else's; slices of
//!    a deleted one go with it through the garbage collector, because each
//!    slice has the Service as its owner).
//! 2. `let r = reconcile(&service, &pods_in_namespace, &our_slices)`.
//! 3. Create `r.create`, update `r.update`, delete `r.delete` through the API.
//!
//! Left out, on purpose: the `zone` of each endpoint (it needs a Node
//! informer and only matters for topology-aware routing), topology hints,
//! the `endpoints.kubernetes.io/last-change-trigger-time` annotation, the
//! legacy `Endpoints` object (its controller is a separate one upstream, and
//! kube-proxy has read only EndpointSlices since 1.19), and dual-stack (the
//! labs' addresses are IPv4).

pub mod controller;

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::machinery::pods::{is_pod_ready, pod_phase};
use crate::machinery::selector::{SelectorExt, as_selector};

/// The label that ties a slice to its Service; kube-proxy selects on it.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Who manages a slice. Slices carrying another value (written by hand, or
/// by a mesh) are left alone.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value of [`LABEL_MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Set on the slices of a headless Service (`clusterIP: None`), which
/// kube-proxy ignores (DNS serves those).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// `--max-endpoints-per-slice`'s default. Why slices at all: before 1.19 one
/// `Endpoints` object held every address of a Service, so one pod of a
/// 5,000-pod Service turning not-ready rewrote (and sent to every node) an
/// object of megabytes. With slices of 100, it rewrites one small slice.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The only address type the labs produce.
pub const ADDRESS_TYPE_IPV4: &str = "IPv4";

// ANCHOR: reconcile_result
/// What one sync of a Service decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconcile {
    /// New slices: `generateName: <service>-`, so the API server names them.
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content; they keep their name and
    /// resourceVersion, so a write based on a stale cache fails with 409
    /// Conflict instead of overwriting someone else's change.
    pub update: Vec<EndpointSlice>,
    /// Slices no longer needed.
    pub delete: Vec<EndpointSlice>,
}
// ANCHOR_END: reconcile_result

impl Reconcile {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The Service's selector as something that matches labels, or `None` when
/// the Service has none. A Service without a selector is how one points at
/// addresses outside the cluster: its slices are written by hand, and this
/// controller must not touch them.
pub fn service_selector(service: &Service) -> Option<crate::machinery::selector::Selector> {
    let selector = service.spec.as_ref()?.selector.as_ref()?;
    if selector.is_empty() {
        return None;
    }
    as_selector(&LabelSelector {
        match_labels: Some(selector.clone()),
        match_expressions: None,
    })
}

// ANCHOR: should_pod_be_in_endpoints
/// Does this pod belong in the Service's slices at all (upstream's
/// `ShouldPodBeInEndpoints` with `includeTerminating`)? It needs an IP —
/// there is nothing to route to before the kubelet reports one — and must
/// not have finished. A terminating pod *stays*, marked `terminating`, so
/// that kube-proxy can still fall back to it while it drains.
pub fn should_pod_be_in_endpoints(pod: &Pod) -> bool {
    let has_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let phase = pod_phase(pod);
    has_ip && phase != "Succeeded" && phase != "Failed"
}
// ANCHOR_END: should_pod_be_in_endpoints

// ANCHOR: endpoint
/// The endpoint of one pod (upstream's `podToEndpoint`), with the three
/// conditions as Kubernetes computes them:
///
/// * `serving`: the pod's `Ready` condition, whatever else is going on.
/// * `terminating`: the pod has a `deletionTimestamp`.
/// * `ready`: serving and *not* terminating — a pod being deleted is taken
///   out of normal traffic at once, even while its readiness probe still
///   passes. `publishNotReadyAddresses` overrides this (StatefulSets use it
///   so peers find each other before they are ready).
pub fn pod_to_endpoint(service: &Service, pod: &Pod) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish_not_ready || (serving && !terminating);
    let spec = pod.spec.as_ref();
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    Endpoint {
        addresses: vec![pod_ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        // DNS gives `<hostname>.<service>` records only to pods that asked
        // for this Service as their subdomain (upstream's `ShouldSetHostname`).
        hostname: spec
            .filter(|s| {
                s.hostname.is_some() && s.subdomain.as_deref() == service.metadata.name.as_deref()
            })
            .and_then(|s| s.hostname.clone()),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    }
}
// ANCHOR_END: endpoint

// ANCHOR: ports
/// The ports of the slice a pod's endpoint goes into (upstream's
/// `getEndpointPorts`): one per Service port, with the target port resolved
/// against this pod. A Service port the pod cannot serve (a named
/// `targetPort` no container declares) is left out *for this pod*, so pods
/// of two versions may land in two slices with different port lists.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
    ports
        .unwrap_or_default()
        .iter()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                protocol: Some(protocol(sp).to_string()),
                port: Some(port),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// The pod's port for a Service port (upstream's `podutil.FindPort`): a
/// number is taken as it is; a name is looked up among the containers'
/// declared ports with the same protocol. That indirection is what lets a
/// new version move its port without touching the Service.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    match service_port.target_port.as_ref() {
        // The API server defaults targetPort to port; be as lenient here.
        None => Some(service_port.port),
        Some(IntOrString::Int(port)) => Some(*port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            // Native sidecars (restartable init containers) count too.
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol(service_port)
                })
                .map(|p| p.container_port)
        }
    }
}
// ANCHOR_END: ports

fn protocol(sp: &ServicePort) -> &str {
    sp.protocol.as_deref().unwrap_or("TCP")
}

/// A port list as a map key: slices are grouped by their exact ports
/// (upstream hashes the sorted list: `endpointMeta`).
fn port_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or_default(),
                p.protocol.as_deref().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.app_protocol.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    parts.sort();
    parts.join(",")
}

/// An endpoint's identity inside a port mapping: its address. (Upstream
/// keys by the addresses too; the pod may change, e.g. a new pod reusing
/// an address, and then the endpoint is *updated*, not added twice.)
fn endpoint_key(ep: &Endpoint) -> String {
    ep.addresses.first().cloned().unwrap_or_default()
}

// ANCHOR: labels
/// The labels of every slice of `service` (upstream's
/// `setEndpointSliceLabels`): the Service's own labels, plus the two that
/// kube-proxy and this controller select on, plus `headless` for a
/// Service without a cluster IP.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    // Ours win over the Service's.
    labels.remove(LABEL_HEADLESS);
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    if is_headless(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels
}
// ANCHOR_END: labels

fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Is `slice` one of ours for `service`? (Upstream lists slices with the
/// selector `kubernetes.io/service-name=<name>,managed-by=<us>`.)
pub fn is_managed_slice_of(slice: &EndpointSlice, service: &Service) -> bool {
    let labels = slice.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    slice.metadata.namespace == service.metadata.namespace
        && label(LABEL_SERVICE_NAME) == service.metadata.name.as_deref()
        && label(LABEL_MANAGED_BY) == Some(CONTROLLER_NAME)
}

/// An empty slice for `service` with `ports` (upstream's
/// `newEndpointSlice`): named by the API server from `<service>-`, and
/// owned by the Service, so deleting the Service deletes its slices.
pub fn new_endpoint_slice(service: &Service, ports: Vec<EndpointPort>) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name,
                uid: service.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        address_type: ADDRESS_TYPE_IPV4.into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

// ANCHOR: reconcile
/// One sync of a Service (upstream's `reconciler.reconcile`), without the API
/// calls. `pods` are the pods in the Service's namespace (this function
/// applies the selector); `existing` are the slices managed for this
/// Service (see [`is_managed_slice_of`]).
///
/// The desired endpoints are grouped by port list, and each group is
/// packed into slices by [`reconcile_by_port_mapping`]. A Service that has
/// no endpoints at all still gets one empty slice (a *placeholder*, with no
/// ports): it tells a reader "the controller has seen this Service, and
/// there is nothing behind it", which an absent slice cannot.
pub fn reconcile<P: Borrow<Pod>>(
    service: &Service,
    pods: &[P],
    existing: &[EndpointSlice],
) -> Reconcile {
    let Some(selector) = service_selector(service) else {
        return Reconcile::default();
    };
    let no_labels = BTreeMap::new();

    // Desired state: for each port list, the endpoints that use it, keyed
    // by address (a BTreeMap, so packing is deterministic).
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
        BTreeMap::new();
    for pod in pods.iter().map(Borrow::borrow) {
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        if pod.metadata.namespace != service.metadata.namespace
            || !selector.matches(labels)
            || !should_pod_be_in_endpoints(pod)
        {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let ep = pod_to_endpoint(service, pod);
        desired
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()))
            .1
            .insert(endpoint_key(&ep), ep);
    }

    // Existing slices, grouped the same way. A slice of another address
    // type (an IPv6 slice from an earlier configuration) is simply deleted.
    let mut result = Reconcile::default();
    let mut existing_by_ports: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if slice.address_type != ADDRESS_TYPE_IPV4 {
            result.delete.push(slice.clone());
            continue;
        }
        let key = port_key(slice.ports.as_deref().unwrap_or_default());
        existing_by_ports.entry(key).or_default().push(slice);
    }

    let labels = slice_labels(service);
    for (key, (ports, endpoints)) in desired {
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        let r = reconcile_by_port_mapping(service, &labels, ports, endpoints, &slices);
        result.create.extend(r.create);
        result.update.extend(r.update);
        result.delete.extend(r.delete);
    }
    // Port lists nobody uses any more.
    for slices in existing_by_ports.into_values() {
        result.delete.extend(slices.into_iter().cloned());
    }

    // The placeholder: when every existing slice is to go and nothing is to
    // be created, keep (or create) one empty slice without ports.
    if result.create.is_empty() && result.delete.len() == existing.len() {
        let placeholder = new_endpoint_slice(service, Vec::new());
        let kept = result.delete.iter().position(|s| {
            s.endpoints.is_empty()
                && s.ports.as_deref().unwrap_or_default().is_empty()
                && s.metadata.labels.as_ref() == Some(&labels)
        });
        match kept {
            Some(i) => {
                result.delete.remove(i);
            }
            None => result.create.push(placeholder),
        }
    }
    result
}

/// Packs the desired endpoints of one port list into slices, changing as
/// few existing slices as possible (upstream's `reconcileByPortMapping`).
/// Every write is sent to every kube-proxy in the cluster, so the
/// algorithm prefers leaving a slice untouched over packing tightly:
///
/// 1. Each existing slice keeps the endpoints that are still desired,
///    updated in place if their conditions changed, and drops the rest. A
///    slice left empty is deleted; a changed one is updated.
/// 2. New endpoints first fill the slices being updated anyway (the fullest
///    first), because that costs no extra write.
/// 3. What is left goes into an unchanged slice with room for *all* of it
///    (the one it fills best), else into new slices of up to
///    [`MAX_ENDPOINTS_PER_SLICE`].
pub fn reconcile_by_port_mapping(
    service: &Service,
    labels: &BTreeMap<String, String>,
    ports: Vec<EndpointPort>,
    mut desired: BTreeMap<String, Endpoint>,
    existing: &[&EndpointSlice],
) -> Reconcile {
    let mut result = Reconcile::default();
    let mut to_update: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<EndpointSlice> = Vec::new();

    // 1. Existing slices: keep, refresh or drop each endpoint.
    for slice in existing {
        let mut changed = slice.metadata.labels.as_ref() != Some(labels);
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        for ep in &slice.endpoints {
            match desired.remove(&endpoint_key(ep)) {
                Some(want) => {
                    changed |= &want != ep;
                    kept.push(want);
                }
                None => changed = true,
            }
        }
        if kept.is_empty() {
            result.delete.push((*slice).clone());
            continue;
        }
        let mut slice = (*slice).clone();
        slice.endpoints = kept;
        slice.metadata.labels = Some(labels.clone());
        if changed {
            to_update.push(slice);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Fill the slices being written anyway, fullest first.
    to_update.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for slice in &mut to_update {
        while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(ep);
        }
    }

    // 3. The rest: into the unchanged slice it fits best, or new slices.
    while !desired.is_empty() {
        let room = |s: &EndpointSlice| {
            MAX_ENDPOINTS_PER_SLICE - s.endpoints.len().min(MAX_ENDPOINTS_PER_SLICE)
        };
        let fits = unchanged
            .iter()
            .enumerate()
            .filter(|(_, s)| room(s) >= desired.len())
            .min_by_key(|(_, s)| room(s))
            .map(|(i, _)| i);
        let mut slice = match fits {
            Some(i) => unchanged.remove(i),
            None => new_endpoint_slice(service, ports.clone()),
        };
        while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(ep);
        }
        if slice.metadata.name.is_some() {
            to_update.push(slice);
        } else {
            result.create.push(slice);
        }
    }
    result.update = to_update;
    result
}
// ANCHOR_END: reconcile

/// The names of the Services whose slices a pod's change concerns: those in
/// its namespace whose selector matches its labels (upstream's
/// `GetPodServiceMemberships`).
pub fn services_selecting<'s>(
    services: impl IntoIterator<Item = &'s Service>,
    pod: &Pod,
) -> BTreeSet<String> {
    let no_labels = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
    services
        .into_iter()
        .filter(|svc| svc.metadata.namespace == pod.metadata.namespace)
        .filter(|svc| service_selector(svc).is_some_and(|sel| sel.matches(labels)))
        .filter_map(|svc| svc.metadata.name.clone())
        .collect()
}
