//! The node's side of the heartbeat (upstream's `kubelet_node_status.go`
//! and `nodelease`): registering the Node, computing its conditions, writing
//! them only when they change or every `node_status_report_frequency`, and
//! renewing the node's Lease every 10 s.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::runtime::Runtime;

use super::kubelet::*;

pub(super) fn time(t: Timestamp) -> Time {
    Time(t)
}

// ANCHOR: node_status
/// The node's conditions: all is well (we measure no pressure). Each keeps
/// its `lastTransitionTime` from `old` when its status is unchanged; every
/// computation moves `lastHeartbeatTime` (which reaches the API server only
/// when the status is written: see [`node_status_changed`]).
pub(super) fn node_conditions(old: Option<&Node>, now: Timestamp) -> serde_json::Value {
    let conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    let old_conditions = old
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = conditions
        .iter()
        .map(|(type_, status, reason, message)| {
            let transition = old_conditions
                .iter()
                .find(|c| c.type_ == *type_ && c.status == *status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(time(now));
            json!({
                "type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": time(now), "lastTransitionTime": transition,
            })
        })
        .collect();
    json!(list)
}
// ANCHOR_END: node_status

pub(super) fn node_object<R: Runtime>(s: &Shared<R>, now: Timestamp) -> serde_json::Value {
    let c = &s.config;
    let resources = json!({"cpu": c.cpu, "memory": c.memory, "pods": c.max_pods.to_string()});
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": c.node_name,
            "labels": {
                "kubernetes.io/hostname": c.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": node_conditions(None, now),
            "addresses": [
                {"type": "InternalIP", "address": c.host_ip},
                {"type": "Hostname", "address": c.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": c.node_name, "systemUUID": c.node_name, "bootID": c.node_name,
                "kernelVersion": kernel,
                "osImage": format!("labs {} node", s.runtime.name()),
                "containerRuntimeVersion": format!("labs-{}://0.1", s.runtime.name()),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    })
}

/// Registers the node (`POST /api/v1/nodes`, or take over the existing
/// object after a restart), then keeps its status up to date until shutdown.
pub(super) async fn node_status_loop<R: Runtime>(s: Arc<Shared<R>>) {
    let nodes: Api<Node> = Api::all(s.client.clone());
    let name = s.config.node_name.clone();
    loop {
        let obj = node_object(&s, s.clock.now());
        let node: Node = serde_json::from_value(obj.clone()).expect("a valid Node");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Already registered (a restarted kubelet): bring labels,
                // capacity and info up to date, keep the rest.
                let patch = json!({"metadata": {"labels": obj["metadata"]["labels"]}});
                let _ = nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                let mut status = obj["status"].clone();
                let old = nodes.get_opt(&name).await.ok().flatten();
                status["conditions"] = node_conditions(old.as_ref(), s.clock.now());
                if nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({ "status": status })),
                    )
                    .await
                    .is_ok()
                {
                    break;
                }
            }
            Err(e) => tracing::warn!(node = %name, error = %e, "registering the node failed"),
        }
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // ANCHOR: status_report
    let mut last_report = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.config.node_status_update_frequency) => {}
        }
        // Every period the status is computed; it is written only when it
        // changed or the report frequency has passed (the Lease is the
        // heartbeat, so an unchanged status need not be sent).
        let old = nodes.get_opt(&name).await.ok().flatten();
        let conditions = node_conditions(old.as_ref(), s.clock.now());
        let due = last_report.elapsed() >= s.config.node_status_report_frequency;
        if !due && !node_status_changed(old.as_ref(), &conditions) {
            continue;
        }
        let patch = json!({"status": {"conditions": conditions}});
        match nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => last_report = tokio::time::Instant::now(),
            Err(e) => tracing::warn!(node = %name, error = %e, "updating the node status failed"),
        }
    }
    // ANCHOR_END: status_report
}

// ANCHOR: status_changed
/// Whether the freshly computed `conditions` say anything the node does not
/// already say (upstream's `nodeStatusHasChanged`): the heartbeat times are
/// ignored, since they change on every computation.
pub(super) fn node_status_changed(old: Option<&Node>, conditions: &serde_json::Value) -> bool {
    let old_conditions = old
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let new_conditions: Vec<k8s_openapi::api::core::v1::NodeCondition> =
        serde_json::from_value(conditions.clone()).unwrap_or_default();
    let strip = |c: &k8s_openapi::api::core::v1::NodeCondition| {
        let mut c = c.clone();
        c.last_heartbeat_time = None;
        c
    };
    old_conditions.len() != new_conditions.len()
        || new_conditions
            .iter()
            .any(|new| !old_conditions.iter().any(|old| strip(old) == strip(new)))
}
// ANCHOR_END: status_changed

// ANCHOR: node_lease
/// The node's Lease with a fresh `renewTime` (upstream's `newLease` in
/// `component-helpers/apimachinery/lease`): built from `base` (the Lease as
/// last read or written) or from nothing. The Lease is owned by its Node,
/// so deleting the Node deletes the Lease; the Node's `uid` is needed for
/// that, and may be unknown while the Node is not registered yet — the next
/// renewal adds it.
pub fn node_lease(
    base: Option<&Lease>,
    node_name: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
    now: Timestamp,
) -> Lease {
    let mut lease = base.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node_name.to_string());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(MicroTime(now));
    let owners = lease.metadata.owner_references.get_or_insert_with(Vec::new);
    if owners.is_empty()
        && let Some(uid) = node_uid
    {
        owners.push(OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.to_string(),
            uid: uid.to_string(),
            ..OwnerReference::default()
        });
    }
    if owners.is_empty() {
        lease.metadata.owner_references = None;
    }
    lease
}
// ANCHOR_END: node_lease

/// Upstream's node lease controller: renew the Lease every renew interval
/// (10 s), creating it if it is missing. A failed write forgets the Lease
/// we hold, so the next round reads it again (someone else may have
/// changed or deleted it).
pub(super) async fn node_lease_loop<R: Runtime>(s: Arc<Shared<R>>) {
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), NODE_LEASE_NAMESPACE);
    let name = s.config.node_name.clone();
    let mut latest: Option<Lease> = None;
    loop {
        match renew_lease(&s, &leases, latest.take()).await {
            Ok(lease) => latest = Some(lease),
            Err(e) => tracing::warn!(node = %name, error = %e, "renewing the node lease failed"),
        }
        tokio::select! {
            _ = s.shutdown.cancelled() => return,
            _ = tokio::time::sleep(s.config.node_lease_renew_interval()) => {}
        }
    }
}

/// One renewal: `PUT` the Lease with a new `renewTime` (or `POST` it if
/// it does not exist yet).
pub(super) async fn renew_lease<R: Runtime>(
    s: &Shared<R>,
    leases: &Api<Lease>,
    latest: Option<Lease>,
) -> Result<Lease, kube::Error> {
    let name = &s.config.node_name;
    let base = match latest {
        Some(lease) => Some(lease),
        None => leases.get_opt(name).await?,
    };
    let has_owner = base
        .as_ref()
        .and_then(|l| l.metadata.owner_references.as_ref())
        .is_some_and(|o| !o.is_empty());
    let uid = if has_owner {
        None
    } else {
        let nodes: Api<Node> = Api::all(s.client.clone());
        nodes
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.metadata.uid)
    };
    let duration = s.config.node_lease_duration_seconds;
    let lease = node_lease(base.as_ref(), name, uid.as_deref(), duration, s.clock.now());
    match base {
        Some(_) => leases.replace(name, &PostParams::default(), &lease).await,
        None => leases.create(&PostParams::default(), &lease).await,
    }
}
