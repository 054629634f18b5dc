//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: `kubectl logs`.
//!
//! The API server does not have the logs: they live on the node, in the
//! container runtime's log files. A real API server answers this request by
//! opening its own HTTPS connection to the **kubelet** of the pod's node
//! (`https://<node>:10250/containerLogs/{ns}/{pod}/{container}`) and copying
//! the answer through. Here every kubelet runs in the same process as the
//! API server, so the stand-in for that connection is a registry: each
//! kubelet registers a [`NodeLogs`] for its node name
//! ([`ApiServer::register_kubelet`](super::ApiServer::register_kubelet)),
//! and this handler forwards to the one of `spec.nodeName`. Nothing else
//! goes that way; the kubelet still reads and writes objects only through
//! the REST API.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use super::ApiServer;
use super::handlers;
use super::request::{Call, Query, Target};
use super::status::ApiError;

pub use crate::machinery::node_api::{LogRequest, LogStream, NodeLogs};

/// The kubelets by node name.
pub(crate) type Registry = std::sync::RwLock<std::collections::HashMap<String, Arc<dyn NodeLogs>>>;

/// The pod behind a `pods/{name}/…` request to its node (`log`, `exec`,
/// `attach`, `portforward`), read as a plain GET would read it: a missing
/// pod is the usual 404.
pub(super) fn parent_pod(api: &ApiServer, target: &Target) -> Result<Value, ApiError> {
    let get = Call {
        method: Method::GET,
        target: Target {
            subresource: None,
            ..target.clone()
        },
        query: Query::default(),
        headers: Default::default(),
        body: Bytes::new(),
    };
    Ok(handlers::get(api, &get)?.body)
}

/// Which container a `log`, `exec` or `attach` request means, with
/// upstream's rules and words (`validateContainer` in the pod registry):
/// none named is fine when the pod has exactly one (regular) container;
/// a named one may be any of the pod's containers, init containers
/// included.
pub(super) fn validate_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names = |key: &str| -> Vec<String> {
        pod.pointer(key)
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("/spec/containers");
    let all: Vec<String> = containers
        .iter()
        .cloned()
        .chain(names("/spec/initContainers"))
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            all.join(" ")
        ))),
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
    }
}

/// Answers a `pods/{name}/log` request.
pub async fn pod_log(api: &ApiServer, call: &Call) -> Result<Response, ApiError> {
    // The pod says which node to ask.
    let pod = parent_pod(api, &call.target)?;
    let name = call.target.name.clone().unwrap_or_default();
    let namespace = call.target.namespace.clone().unwrap_or_default();
    let container = validate_container(&pod, call.query.get("container"))?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if node.is_empty() {
        // A pod no kubelet has: upstream says the same (the container
        // "is waiting to start" because it has not been scheduled).
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let Some(kubelet) = api.kubelet(node) else {
        // What a real API server answers when the kubelet's port does not
        // answer (a stopped kubelet, a dead node).
        return Err(ApiError::internal(format!(
            "Get \"https://{node}:10250/containerLogs/{namespace}/{name}/{container}\": \
             dial tcp {node}:10250: connect: connection refused"
        )));
    };
    let tail_lines = match call.query.get("tailLines") {
        None => None,
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for tailLines: {n}")))?,
        ),
    };
    let req = LogRequest {
        namespace,
        pod: name,
        container,
        previous: call.query.flag("previous"),
        follow: call.query.flag("follow"),
        tail_lines: tail_lines.map(|n| n.max(0) as usize),
        timestamps: call.query.flag("timestamps"),
    };
    let lines = kubelet.logs(req).await.map_err(ApiError::bad_request)?;
    // A streamed body: axum sends it chunked, so `kubectl logs -f` prints
    // each line as it comes. A client that goes away drops the body, and
    // with it the stream.
    let body = Body::from_stream(lines.map(Ok::<_, std::convert::Infallible>));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
