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

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::selector::LabelSelector;

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

/// One column: `priority` 0 is always shown, 1 only with `-o wide`.
fn column(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )
}

fn age_column() -> Value {
    column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// The column definitions for a kind (a `Name`/`Age` pair for kinds
/// without their own printer).
pub fn column_definitions(kind: &str) -> Vec<Value> {
    let containers = || {
        column(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        )
    };
    let images = || {
        column(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        )
    };
    let selector = || column("Selector", "string", 1, "Label selector for pods.");
    match kind {
        "Pod" => vec![
            name_column(),
            column(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_column(),
            column("IP", "string", 1, "IP address allocated to the pod."),
            column(
                "Node",
                "string",
                1,
                "NodeName is the node the pod is bound to.",
            ),
            column(
                "Nominated Node",
                "string",
                1,
                "The node the scheduler nominated for preemption.",
            ),
            column(
                "Readiness Gates",
                "string",
                1,
                "Conditions evaluated for pod readiness.",
            ),
        ],
        "Deployment" => vec![
            name_column(),
            column("Ready", "string", 0, "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age_column(),
            containers(),
            images(),
            selector(),
        ],
        "ReplicaSet" => vec![
            name_column(),
            column(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            column(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            column(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age_column(),
            containers(),
            images(),
            selector(),
        ],
        "Service" => vec![
            name_column(),
            column("Type", "string", 0, "How the Service is exposed."),
            column(
                "Cluster-IP",
                "string",
                0,
                "The IP address of the service, allocated by the master.",
            ),
            column(
                "External-IP",
                "string",
                0,
                "One or more external IP addresses of the service.",
            ),
            column("Port(s)", "string", 0, "The ports exposed by this service."),
            age_column(),
            column(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "Node" => vec![
            name_column(),
            column("Status", "string", 0, "The status of the node"),
            column("Roles", "string", 0, "The roles of the node"),
            age_column(),
            column(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            column(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            column(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            column("OS-Image", "string", 1, "OS Image reported by the node."),
            column(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node.",
            ),
            column(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node.",
            ),
        ],
        "Namespace" => vec![
            name_column(),
            column("Status", "string", 0, "The status of the namespace"),
            age_column(),
        ],
        "Event" => vec![
            column(
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            column("Type", "string", 0, "Type of this event (Normal, Warning)."),
            column(
                "Reason",
                "string",
                0,
                "A short, machine understandable string that gives the reason for this event.",
            ),
            column(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            column(
                "Subobject",
                "string",
                1,
                "The part of the object the event is about.",
            ),
            column("Source", "string", 1, "The component reporting this event."),
            column(
                "Message",
                "string",
                0,
                "A human-readable description of the event.",
            ),
            column(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            column(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            column(
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "ConfigMap" => vec![
            name_column(),
            column("Data", "string", 0, "Number of keys."),
            age_column(),
        ],
        "Secret" => vec![
            name_column(),
            column("Type", "string", 0, "The type of secret"),
            column("Data", "string", 0, "Number of keys."),
            age_column(),
        ],
        "Endpoints" => vec![
            name_column(),
            column("Endpoints", "string", 0, "Endpoints of the service."),
            age_column(),
        ],
        "Lease" => vec![
            name_column(),
            column(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            age_column(),
        ],
        _ => vec![name_column(), age_column()],
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
        "Lease" => (
            vec![
                json!(name),
                json!(or_none(s(obj, "/spec/holderIdentity"))),
                json!(age),
            ],
            None,
        ),
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

fn is_restartable_init_container(c: Option<&Value>) -> bool {
    c.is_some_and(|c| s(c, "/restartPolicy") == "Always")
}

/// The terminated reason, or `Signal:N` / `ExitCode:N` when there is none.
fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = s(t, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = i(t, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", i(t, "/exitCode"))
    }
}

/// Upstream's `printPod`: what `kubectl get pods` shows in READY, STATUS
/// and RESTARTS. The STATUS column is not the phase alone: a waiting or
/// terminated container's reason (`ContainerCreating`, `ImagePullBackOff`,
/// `CrashLoopBackOff`, `Completed`) is more useful, so it wins.
fn pod_cells(pod: &Value, now: Timestamp) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let conditions = list(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type":"Completed","status":"True","reason":"Succeeded","message":"The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type":"Completed","status":"True","reason":"Failed","message":"The pod failed."}]),
        ),
        _ => None,
    };

    let init_specs = list(pod, "/spec/initContainers");
    let init_spec = |name: &str| init_specs.iter().find(|c| s(c, "/name") == name);
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init_container(Some(c)))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    // Timestamps compare correctly as RFC 3339 strings of the same format.
    let mut last_restart = String::new();
    let mut last_sidecar_restart = String::new();
    let later = |current: &mut String, t: &str| {
        if t > current.as_str() {
            *current = t.to_string();
        }
    };

    let mut initializing = false;
    let init_statuses = list(pod, "/status/initContainerStatuses");
    for (idx, c) in init_statuses.iter().enumerate() {
        let count = i(c, "/restartCount");
        restarts += count;
        let finished = s(c, "/lastState/terminated/finishedAt");
        later(&mut last_restart, finished);
        let spec = init_spec(s(c, "/name"));
        if is_restartable_init_container(spec) {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, finished);
        }
        let terminated = c.pointer("/state/terminated").filter(|v| !v.is_null());
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if is_restartable_init_container(spec) && c.pointer("/started") == Some(&json!(true)) {
            if c.pointer("/ready") == Some(&json!(true)) {
                ready += 1;
            }
            continue;
        }
        initializing = true;
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{idx}/{}", init_specs.len())
        };
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Upstream walks the statuses backwards, so the *first* container's
        // reason is the one left in `reason`.
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            later(&mut last_restart, s(c, "/lastState/terminated/finishedAt"));
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated").filter(|v| !v.is_null());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if c.pointer("/ready") == Some(&json!(true))
                && c.pointer("/state/running").is_some_and(|v| !v.is_null())
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }

    let restarts_cell = if restarts != 0 && !last_restart.is_empty() {
        format!(
            "{restarts} ({} ago)",
            since(Some(&json!(last_restart)), now)
        )
    } else {
        restarts.to_string()
    };

    let ip = list(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == ty)
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    let cells = vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(since(pod.pointer("/metadata/creationTimestamp"), now)),
        json!(or_none(ip)),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ];
    (cells, row_conditions)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    /// A creation timestamp `secs` seconds before `now()`.
    fn ago(secs: i64) -> Value {
        json!(
            now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(secs))
                .unwrap()
                .to_string()
        )
    }

    #[test]
    fn human_durations_like_upstream() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 600, "5h10m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400, "3d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn deployment_table() {
        let d = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                "creationTimestamp": ago(6), "resourceVersion": "120"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "app:v1"}, {"name": "proxy", "image": "envoy:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        let t = table("Deployment", std::slice::from_ref(&d), "126", now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "126"}));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "2/3",
                3,
                2,
                "6s",
                "web,proxy",
                "app:v1,envoy:1",
                "app=web"
            ])
        );
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": d["metadata"]})
        );
        // A fresh deployment without status.
        let fresh = json!({"metadata": {"name": "api"}, "spec": {"replicas": 2}});
        let t = table("Deployment", &[fresh], "1", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["api", "0/2", 0, 0, "<unknown>", "", "", ""])
        );
        // No objects: still a table with the columns.
        let t = table("Deployment", &[], "7", now());
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn replica_set_table() {
        let rs = json!({"metadata": {"name": "web-5d4f", "creationTimestamp": ago(3600)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "app:v1"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        let t = table("ReplicaSet", &[rs], "9", now());
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web-5d4f",
                3,
                3,
                1,
                "60m",
                "web",
                "app:v1",
                "app=web,pod-template-hash=5d4f"
            ])
        );
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "web-1", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "web", "image": "app:v1"}]},
            "status": status})
    }

    fn pod_cells_of(p: Value) -> Value {
        table("Pod", &[p], "1", now())["rows"][0]["cells"].clone()
    }

    #[test]
    fn pod_table() {
        let running = pod(
            json!({"phase": "Running", "podIP": "127.1.0.5", "podIPs": [{"ip": "127.1.0.5"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "x"}}}]}),
        );
        let mut with_node = running.clone();
        with_node["spec"]["nodeName"] = json!("node-1");
        assert_eq!(
            pod_cells_of(with_node),
            json!([
                "web-1",
                "1/1",
                "Running",
                "0",
                "5m",
                "127.1.0.5",
                "node-1",
                "<none>",
                "<none>"
            ])
        );

        let pending = pod(json!({"phase": "Pending"}));
        assert_eq!(
            pod_cells_of(pending),
            json!([
                "web-1", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"
            ])
        );

        let creating = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod_cells_of(creating)[2], "ContainerCreating");

        let backoff = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        assert_eq!(pod_cells_of(backoff)[2], "ImagePullBackOff");

        let crashing = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300).as_str().unwrap()}}}]}),
        );
        let cells = pod_cells_of(crashing);
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "2 (5m ago)");

        let exited = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "web", "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "signal": 0}}}]}),
        );
        let t = table("Pod", &[exited], "1", now());
        assert_eq!(t["rows"][0]["cells"][2], "ExitCode:137");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");

        let mut terminating = running.clone();
        terminating["metadata"]["deletionTimestamp"] = ago(1);
        assert_eq!(pod_cells_of(terminating)[2], "Terminating");

        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(pod_cells_of(evicted)[2], "Evicted");
    }

    #[test]
    fn pod_init_containers() {
        let mut p = pod(json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox:1"}]);
        assert_eq!(pod_cells_of(p.clone())[2], "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(pod_cells_of(p.clone())[2], "Init:Error");
        // A sidecar (restartable init container) counts towards READY.
        let mut p = pod(json!({"phase": "Running",
            "initContainerStatuses": [{"name": "proxy", "restartCount": 1, "started": true, "ready": true,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120).as_str().unwrap()}}}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}],
            "conditions": [{"type": "Initialized", "status": "True"}]}));
        p["spec"]["initContainers"] =
            json!([{"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}]);
        let cells = pod_cells_of(p);
        assert_eq!(cells[1], "2/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "1 (2m ago)");
    }

    #[test]
    fn service_table() {
        let svc = |spec: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(45)}, "spec": spec});
        let t = table(
            "Service",
            &[
                svc(
                    json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}),
                ),
                svc(json!({"type": "NodePort", "clusterIP": "10.96.0.11",
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]})),
                svc(
                    json!({"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443, "protocol": "TCP"}]}),
                ),
                svc(json!({"type": "ExternalName", "externalName": "db.example.com"})),
            ],
            "3",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "80/TCP",
                "45s",
                "app=web"
            ])
        );
        assert_eq!(
            t["rows"][1]["cells"],
            json!([
                "web",
                "NodePort",
                "10.96.0.11",
                "<none>",
                "80:30080/TCP,53/UDP",
                "45s",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][2]["cells"][3], "<pending>");
        assert_eq!(
            t["rows"][3]["cells"],
            json!([
                "web",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "45s",
                "<none>"
            ])
        );
    }

    #[test]
    fn node_table() {
        let node = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(3 * 86400),
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": "node-1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.2"}, {"type": "Hostname", "address": "node-1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "labs://0.1"}}});
        let t = table("Node", &[node], "5", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "node-1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "3d",
                "v1.33.1",
                "127.0.0.2",
                "<none>",
                "Debian",
                "6.1",
                "labs://0.1"
            ])
        );
        let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let t = table("Node", &[bare], "5", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "n2",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
    }

    #[test]
    fn other_tables() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(10)}, "status": {"phase": "Active"}});
        assert_eq!(
            table("Namespace", &[ns], "1", now())["rows"][0]["cells"],
            json!(["default", "Active", "10s"])
        );
        let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(10)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(
            table("ConfigMap", &[cm], "1", now())["rows"][0]["cells"],
            json!(["cfg", 3, "10s"])
        );
        let secret = json!({"metadata": {"name": "db", "creationTimestamp": ago(10)}, "type": "Opaque", "data": {"password": "cGFzcw=="}});
        assert_eq!(
            table("Secret", &[secret], "1", now())["rows"][0]["cells"],
            json!(["db", "Opaque", 1, "10s"])
        );
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}, {"ip": "127.1.0.3"}, {"ip": "127.1.0.4"}], "ports": [{"port": 8080}]}]});
        assert_eq!(
            table("Endpoints", &[ep], "1", now())["rows"][0]["cells"][1],
            "127.1.0.1:8080,127.1.0.2:8080,127.1.0.3:8080 + 1 more..."
        );
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "ScalingReplicaSet",
            "involvedObject": {"kind": "Deployment", "name": "web"}, "source": {"component": "deployment-controller"},
            "message": "Scaled up replica set web-5d4f from 0 to 3 ", "firstTimestamp": ago(120), "lastTimestamp": ago(60), "count": 2});
        assert_eq!(
            table("Event", &[ev], "1", now())["rows"][0]["cells"],
            json!([
                "60s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "Scaled up replica set web-5d4f from 0 to 3",
                "2m",
                2,
                "web.1"
            ])
        );
        let lease = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(10)},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        assert_eq!(
            table("Lease", &[lease], "1", now())["rows"][0]["cells"],
            json!(["node-1", "node-1", "10s"])
        );
        let widget = json!({"metadata": {"name": "w", "creationTimestamp": ago(5)}});
        let t = table("Widget", &[widget], "1", now());
        assert_eq!(t["rows"][0]["cells"], json!(["w", "5s"]));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
    }
}
