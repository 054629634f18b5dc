//! `metrics.k8s.io/v1beta1`: the resource metrics API, what `kubectl top`
//! and the HorizontalPodAutoscaler read.
//!
//! A real cluster gets this API from **metrics-server**, a separate
//! deployment: every 15 s it scrapes each kubelet's `/metrics/resource`
//! (CPU as a cumulative counter, memory as the working set), turns two
//! scrapes into a CPU rate, keeps only the latest point in memory, and
//! serves it under `/apis/metrics.k8s.io/v1beta1` — the API server only
//! proxies to it (API aggregation, an `APIService` object). Nothing is
//! stored in etcd: metrics are not objects, they are the latest reading.
//! Without metrics-server, `kubectl top` answers "Metrics API not
//! available" and an HPA shows `<unknown>`.
//!
//! Here the API server answers the group itself, by asking the kubelets of
//! the nodes the pods run on — the same in-process path as `kubectl logs`
//! ([`super::logs`]): each kubelet registers a [`NodeStats`], whose CPU
//! figure is already a rate (the kubelet keeps the previous sample, as
//! cAdvisor does). What is left out: the aggregation layer, the 15 s
//! scrape cache (every request asks the kubelets afresh), and Table output
//! (`kubectl top` formats the numbers itself).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::ApiServer;
use super::handlers::{format_time, object_from_kv};
use super::resources;
use super::selector::LabelSelector;
use super::status::{ApiError, json_response};

pub use crate::machinery::node_api::{ContainerUsage, NodeStats, NodeUsage, PodUsage};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// The kubelets' metrics endpoints by node name.
pub(crate) type Registry = std::sync::RwLock<HashMap<String, Arc<dyn NodeStats>>>;

/// The group's entry in `/apis`.
pub fn api_group() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [gv], "preferredVersion": gv})
}

/// `/apis/metrics.k8s.io/v1beta1`: two read-only resources.
pub fn api_resource_list() -> Value {
    let verbs = ["get", "list"];
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": verbs},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": verbs},
        ],
    })
}

// ANCHOR: quantities
/// CPU as metrics-server writes it: nanocores (`12345678n`), which kubectl
/// shows rounded up to millicores (`13m`).
pub fn cpu_quantity(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

/// Memory in KiB (`20480Ki`), as metrics-server writes it.
pub fn memory_quantity(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}
// ANCHOR_END: quantities

/// `GET /apis/metrics.k8s.io/v1beta1/...`: nodes, nodes/{name}, pods,
/// namespaces/{ns}/pods, namespaces/{ns}/pods/{name}.
pub async fn serve(State(api): State<ApiServer>, OriginalUri(uri): OriginalUri) -> Response {
    let prefix = format!("/apis/{GROUP}/{VERSION}/");
    let rest = uri.path().strip_prefix(&prefix).unwrap_or("");
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let selector = match label_selector(uri.query()) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let result = match segs.as_slice() {
        ["nodes"] => Ok(node_list(&api, None).await),
        ["nodes", name] => node_list(&api, Some(name))
            .await
            .pointer("/items/0")
            .cloned()
            .ok_or_else(|| not_found("nodes", name)),
        ["pods"] => Ok(pod_list(&api, None, None, &selector).await),
        ["namespaces", ns, "pods"] => Ok(pod_list(&api, Some(ns), None, &selector).await),
        ["namespaces", ns, "pods", name] => pod_list(&api, Some(ns), Some(name), &selector)
            .await
            .pointer("/items/0")
            .cloned()
            .ok_or_else(|| not_found("pods", name)),
        _ => Err(ApiError::no_route()),
    };
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn label_selector(query: Option<&str>) -> Result<LabelSelector, ApiError> {
    let q = super::request::Query::parse(query);
    match q.get("labelSelector") {
        None | Some("") => Ok(LabelSelector::everything()),
        Some(s) => s
            .parse()
            .map_err(|e: super::selector::SelectorError| ApiError::bad_request(e.0)),
    }
}

/// metrics-server's wording: `podmetrics.metrics.k8s.io "web-1" not found`.
fn not_found(plural: &str, name: &str) -> ApiError {
    let r = resources::Resource {
        group: GROUP,
        version: VERSION,
        plural: if plural == "pods" {
            "podmetrics"
        } else {
            "nodemetrics"
        },
        singular: "",
        kind: "",
        namespaced: plural == "pods",
        short_names: &[],
        categories: &[],
        subresources: &[],
        etcd_prefix: "",
        has_generation: false,
    };
    ApiError::not_found(&r, name)
}

/// Asks every kubelet for its figures (concurrently).
async fn all_stats(api: &ApiServer) -> Vec<(String, NodeUsage)> {
    let asks = api
        .kubelet_stats()
        .into_iter()
        .map(|(node, stats)| async move { (node, stats.stats().await) });
    futures::future::join_all(asks).await
}

async fn node_list(api: &ApiServer, only: Option<&str>) -> Value {
    let nodes = resources::by_kind("Node").expect("nodes are served");
    let mut items = Vec::new();
    for (node, usage) in all_stats(api).await {
        if only.is_some_and(|n| n != node) {
            continue;
        }
        // Only nodes that exist as objects have metrics.
        let Some(kv) = api.store().get(&nodes.key(None, &node)) else {
            continue;
        };
        let obj = object_from_kv(&kv);
        items.push(json!({
            "kind": "NodeMetrics",
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {
                "name": node,
                "creationTimestamp": format_time(usage.timestamp),
                "labels": obj.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            },
            "timestamp": format_time(usage.timestamp),
            "window": format!("{}s", usage.window.as_secs()),
            "usage": {
                "cpu": cpu_quantity(usage.cpu_nano_cores),
                "memory": memory_quantity(usage.memory_working_set_bytes),
            },
        }));
    }
    list("NodeMetricsList", items)
}

// ANCHOR: pod_metrics
/// The PodMetrics of the pods in `namespace` (all if `None`) that match
/// `selector` and whose kubelet reports them: a pod that is not running
/// yet has no metrics, and the HPA treats it as "missing".
async fn pod_list(
    api: &ApiServer,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: &LabelSelector,
) -> Value {
    let pods = resources::by_kind("Pod").expect("pods are served");
    let (kvs, _) = api.store().list(&pods.prefix(namespace));
    let wanted: HashMap<(String, String), Value> = kvs
        .iter()
        .map(object_from_kv)
        .filter(|p| selector.matches_object(p))
        .filter(|p| name.is_none_or(|n| p.pointer("/metadata/name") == Some(&json!(n))))
        .map(|p| {
            let ns = p.pointer("/metadata/namespace").and_then(Value::as_str);
            let n = p.pointer("/metadata/name").and_then(Value::as_str);
            (
                (ns.unwrap_or("").to_string(), n.unwrap_or("").to_string()),
                p,
            )
        })
        .collect();
    let mut items = Vec::new();
    for (_node, usage) in all_stats(api).await {
        for pod in usage.pods {
            let Some(obj) = wanted.get(&(pod.namespace.clone(), pod.name.clone())) else {
                continue;
            };
            let containers: Vec<Value> = pod
                .containers
                .iter()
                .map(|c| {
                    json!({"name": c.name, "usage": {
                        "cpu": cpu_quantity(c.cpu_nano_cores),
                        "memory": memory_quantity(c.memory_working_set_bytes),
                    }})
                })
                .collect();
            items.push(json!({
                "kind": "PodMetrics",
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "creationTimestamp": format_time(usage.timestamp),
                    "labels": obj.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
                },
                "timestamp": format_time(usage.timestamp),
                "window": format!("{}s", usage.window.as_secs()),
                "containers": containers,
            }));
        }
    }
    items.sort_by_key(|i| {
        (
            i["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            i["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    });
    list("PodMetricsList", items)
}
// ANCHOR_END: pod_metrics

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}
