//! Server-side printing: the `Table` behind `kubectl get`'s columns.
//!
//! kubectl does not know how to print a Deployment. It asks the server for
//! a `meta.k8s.io/v1 Table` (`Accept: application/json;as=Table;...`): column
//! definitions plus, per object, the cells already rendered as text. That is
//! why a new resource type shows sensible columns in an old kubectl, and why
//! *our* server must render `READY 3/3` and `AGE 5m` itself. The columns and
//! cell formats here follow upstream's printers
//! (`pkg/printers/internalversion/printers.go`); without them kubectl falls
//! back to `NAME AGE`.
//!
//! The server renders every row "wide" (all columns); kubectl hides the
//! columns with `priority > 0` unless given `-o wide`. Each row also carries
//! the object's full metadata (`PartialObjectMetadata`), which kubectl uses
//! for `--show-labels`, `-L` and the namespace column of `-A`.

//!
//! [`columns`] holds the column definitions of each kind, [`pod`] the
//! pod row (the most involved one); the other rows are below.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::selector::LabelSelector;

mod columns;
pub mod hpa;
mod pod;

pub use columns::column_definitions;
use pod::pod_cells;

/// Upstream's `duration.HumanDuration`: a short, coarse age such as `45s`,
/// `2m30s`, `10m`, `5h10m`, `3d`, `2y`. Precision shrinks as the age grows
/// (nobody cares about the seconds of a day-old pod); a clock skew of up to
/// one second in the future reads as `0s`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Upstream's `translateTimestampSince`: the age of an RFC 3339 timestamp,
/// `<unknown>` when there is none.
fn since(ts: Option<&Value>, now: Timestamp) -> String {
    match ts
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
    {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

/// Builds the `Table` for `objects` of `kind`, as the answer to a list
/// (or, with one object, to a get or a watch event). `resource_version` goes
/// into the table's metadata: `kubectl get -w` starts its watch from it.
/// `now` is passed in, rather than read from the clock, so that ages are
/// deterministic in tests.
pub fn table(kind: &str, objects: &[Value], resource_version: &str, now: Timestamp) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let (cells, conditions) = cells(kind, obj, now);
            let mut row = json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            });
            if let Some(c) = conditions {
                row["conditions"] = c;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(kind),
        "rows": rows,
    })
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

/// The cells of one row, and the row's conditions (pods only).
fn cells(kind: &str, obj: &Value, now: Timestamp) -> (Vec<Value>, Option<Value>) {
    let name = s(obj, "/metadata/name");
    let age = since(obj.pointer("/metadata/creationTimestamp"), now);
    match kind {
        "Pod" => pod_cells(obj, now),
        "Deployment" => {
            let (containers, images) = container_cells(obj);
            let cells = vec![
                json!(name),
                json!(format!(
                    "{}/{}",
                    i(obj, "/status/readyReplicas"),
                    i(obj, "/spec/replicas")
                )),
                json!(i(obj, "/status/updatedReplicas")),
                json!(i(obj, "/status/availableReplicas")),
                json!(age),
                json!(containers),
                json!(images),
                json!(selector_string(obj)),
            ];
            (cells, None)
        }
        "ReplicaSet" => {
            let (containers, images) = container_cells(obj);
            let cells = vec![
                json!(name),
                json!(i(obj, "/spec/replicas")),
                json!(i(obj, "/status/replicas")),
                json!(i(obj, "/status/readyReplicas")),
                json!(age),
                json!(containers),
                json!(images),
                json!(selector_string(obj)),
            ];
            (cells, None)
        }
        "Service" => (service_cells(obj, name, age), None),
        "Node" => (node_cells(obj, name, age), None),
        "Namespace" => (
            vec![json!(name), json!(s(obj, "/status/phase")), json!(age)],
            None,
        ),
        "Event" => (event_cells(obj, now), None),
        "ConfigMap" => {
            let n = ["/data", "/binaryData"]
                .iter()
                .filter_map(|p| obj.pointer(p).and_then(Value::as_object))
                .map(|m| m.len())
                .sum::<usize>();
            (vec![json!(name), json!(n), json!(age)], None)
        }
        "Secret" => {
            let n = obj
                .pointer("/data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            (
                vec![json!(name), json!(s(obj, "/type")), json!(n), json!(age)],
                None,
            )
        }
        "Endpoints" => (
            vec![json!(name), json!(format_endpoints(obj)), json!(age)],
            None,
        ),
        "EndpointSlice" => (
            vec![
                json!(name),
                json!(s(obj, "/addressType")),
                json!(format_slice_ports(obj)),
                json!(format_slice_endpoints(obj)),
                json!(age),
            ],
            None,
        ),
        "Lease" => (
            vec![
                json!(name),
                json!(or_none(s(obj, "/spec/holderIdentity"))),
                json!(age),
            ],
            None,
        ),
        // Upstream's `printPodDisruptionBudget`: the unset one of the two
        // budgets reads `N/A`.
        "PodDisruptionBudget" => {
            let budget = |f: &str| match obj.pointer(&format!("/spec/{f}")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".to_string(),
            };
            (
                vec![
                    json!(name),
                    json!(budget("minAvailable")),
                    json!(budget("maxUnavailable")),
                    json!(i(obj, "/status/disruptionsAllowed")),
                    json!(age),
                ],
                None,
            )
        }
        "ServiceAccount" => (
            vec![json!(name), json!(list(obj, "/secrets").len()), json!(age)],
            None,
        ),
        "HorizontalPodAutoscaler" => (hpa::cells(obj, age), None),
        _ => (vec![json!(name), json!(age)], None),
    }
}

/// Container names and images of a template, comma-separated
/// (upstream's `layoutContainerCells`).
fn container_cells(obj: &Value) -> (String, String) {
    let containers = list(obj, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `spec.selector` in its canonical string form (`<invalid>` if it does
/// not parse, `""` when there is none — the Everything selector).
fn selector_string(obj: &Value) -> String {
    match obj.pointer("/spec/selector") {
        None | Some(Value::Null) => String::new(),
        Some(sel) => LabelSelector::from_api_value(sel)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "<invalid>".to_string()),
    }
}

/// `80/TCP`, or `80:30080/TCP` when a node port is allocated.
fn port_string(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let (port, proto, node_port) = (i(p, "/port"), s(p, "/protocol"), i(p, "/nodePort"));
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    pieces.join(",")
}

/// `a=b,c=d` sorted by key, `<none>` when empty (upstream's `FormatLabels`).
fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

fn service_cells(svc: &Value, name: &str, age: String) -> Vec<Value> {
    let ty = s(svc, "/spec/type");
    let cluster_ip = list(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(svc, "/spec/clusterIP"));
    let external: Vec<&str> = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match ty {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|ing| {
                    let ip = s(ing, "/ip");
                    if ip.is_empty() {
                        s(ing, "/hostname")
                    } else {
                        ip
                    }
                })
                .filter(|ip| !ip.is_empty())
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports = port_string(list(svc, "/spec/ports"));
    vec![
        json!(name),
        json!(ty),
        json!(or_none(cluster_ip)),
        json!(external_ip),
        json!(or_none(&ports)),
        json!(age),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` labels (and the older
/// `kubernetes.io/role=<role>`), sorted.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
            roles.insert(v.as_str().unwrap_or("").to_string());
        }
    }
    or_none(&roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_cells(node: &Value, name: &str, age: String) -> Vec<Value> {
    // Only the Ready condition shows, as Ready / NotReady; cordoning adds
    // SchedulingDisabled.
    let mut status: Vec<String> = list(node, "/status/conditions")
        .iter()
        .filter(|c| s(c, "/type") == "Ready")
        .take(1)
        .map(|c| {
            if s(c, "/status") == "True" {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .collect();
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push("SchedulingDisabled".to_string());
    }
    let address = |ty: &str| {
        list(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map_or_else(|| "<none>".to_string(), |a| s(a, "/address").to_string())
    };
    let info = |field: &str| {
        let v = s(node, &format!("/status/nodeInfo/{field}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(name),
        json!(status.join(",")),
        json!(node_roles(node)),
        json!(age),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let present = |p: &str| ev.pointer(p).filter(|v| !v.is_null());
    let first = match present("/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(present("/eventTime"), now),
    };
    let mut last = match present("/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = i(ev, "/count");
    if let Some(series) = present("/series") {
        last = since(series.get("lastObservedTime"), now);
        count = i(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let obj_name = s(ev, "/involvedObject/name");
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(s(ev, "/source/component"), s(ev, "/reportingComponent"));
    let instance = first_non_empty(s(ev, "/source/host"), s(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(ev, "/type")),
        json!(s(ev, "/reason")),
        json!(target),
        json!(s(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(ev, "/metadata/name")),
    ]
}

/// `ip:port` pairs, at most three, then `+ N more...` (upstream's
/// `formatEndpoints`).
fn format_endpoints(ep: &Value) -> String {
    let subsets = list(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses: Vec<&str> = list(ss, "/addresses").iter().map(|a| s(a, "/ip")).collect();
        let ports = list(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for ip in &addresses {
                if shown.len() < MAX {
                    shown.push(ip.to_string());
                }
            }
        } else {
            for port in ports {
                count += addresses.len();
                for ip in &addresses {
                    if shown.len() < MAX {
                        let p = i(port, "/port");
                        // IPv6 addresses are bracketed, as net.JoinHostPort does.
                        shown.push(if ip.contains(':') {
                            format!("[{ip}]:{p}")
                        } else {
                            format!("{ip}:{p}")
                        });
                    }
                }
            }
        }
    }
    let joined = shown.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<none>".to_string()
    } else {
        joined
    }
}

/// The PORTS of an EndpointSlice: port numbers (a port without a number
/// prints its name, or `*`), at most three (upstream's
/// `formatDiscoveryPorts`).
fn format_slice_ports(slice: &Value) -> String {
    let items: Vec<String> = list(slice, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    list_with_more(items)
}

/// The ENDPOINTS of an EndpointSlice: every address of every endpoint,
/// at most three, then `+ N more...` (upstream's
/// `formatDiscoveryEndpoints`).
fn format_slice_endpoints(slice: &Value) -> String {
    let items: Vec<String> = list(slice, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    list_with_more(items)
}

/// Upstream's `listWithMoreString`: three items, the count of the rest,
/// and `<unset>` for none.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let shown = items[..count.min(MAX)].join(",");
    if count > MAX {
        format!("{shown} + {} more...", count - MAX)
    } else if shown.is_empty() {
        "<unset>".to_string()
    } else {
        shown
    }
}

#[cfg(test)]
mod tests;
