//! Discovery: how clients learn what this server serves.
//!
//! kubectl knows no resource by heart. Before `kubectl get deploy` it asks
//! `/api` and `/apis` for the group/versions, then `/api/v1` and
//! `/apis/apps/v1` for their resources, and maps `deploy` to
//! `deployments.apps/v1` through the `shortNames` found there. It caches the
//! answers under `~/.kube/cache/discovery`. All documents are generated from
//! the resource table, so routing and discovery cannot disagree. (The
//! schemas, for `kubectl explain`, are in [`super::openapi`].)

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::{RESOURCES, Resource, Subresource, group_versions};
use super::status::{ApiError, json_response};

/// The Kubernetes version this server claims to be. kubectl's dispatcher
/// picks the kubectl binary matching `minor`.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "35";
pub const GIT_VERSION: &str = "v1.35.2-labs";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

pub fn version_info() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version() -> Response {
    json_response(StatusCode::OK, &version_info())
}

/// `GET /api`: the core group's versions. (Answered in the legacy format
/// even when kubectl asks for aggregated discovery first: kubectl looks at
/// the response Content-Type and falls back.)
pub async fn api_versions(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    json_response(StatusCode::OK, &api_versions_doc(host))
}

pub fn api_versions_doc(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    })
}

/// `GET /apis`: the named groups (`apps`), each with its versions.
pub async fn api_group_list() -> Response {
    json_response(StatusCode::OK, &api_group_list_doc())
}

pub fn api_group_list_doc() -> Value {
    // One entry per group with all its versions, the preferred (storage)
    // one first: `autoscaling` serves v2 and v1.
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for (g, v) in group_versions().into_iter().filter(|(g, _)| !g.is_empty()) {
        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, versions)) => versions.push(gv),
            None => groups.push((g, vec![gv])),
        }
    }
    let mut groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| json!({"name": g, "preferredVersion": versions[0], "versions": versions}))
        .collect();
    // The resource metrics API, which upstream's metrics-server adds to the
    // server through API aggregation; here the server answers it itself.
    groups.push(super::metrics::api_group());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

// ANCHOR: resource_list
/// `GET /api/v1`, `GET /apis/apps/v1`: the resources of one group/version,
/// with their verbs, short names, categories and subresources.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (super::metrics::GROUP, super::metrics::VERSION) {
        return Some(super::metrics::api_resource_list());
    }
    let rs: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        // A review (nothing stored) can only be created, as upstream lists it.
        let verbs = if r.is_virtual() {
            &["create"][..]
        } else {
            VERBS
        };
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        out.push(main);
        for sub in r.subresources {
            let (name, kind, verbs) = match sub {
                Subresource::Status => ("status", r.kind, SUB_VERBS),
                Subresource::Scale => ("scale", "Scale", SUB_VERBS),
                Subresource::Binding => ("binding", "Binding", &["create"][..]),
                Subresource::Log => ("log", "Pod", &["get"][..]),
                Subresource::Eviction => ("eviction", "Eviction", &["create"][..]),
                Subresource::Exec => ("exec", "PodExecOptions", &["create", "get"][..]),
                Subresource::Attach => ("attach", "PodAttachOptions", &["create", "get"][..]),
                Subresource::PortForward => (
                    "portforward",
                    "PodPortForwardOptions",
                    &["create", "get"][..],
                ),
            };
            let mut entry = json!({
                "name": format!("{}/{name}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            // kubectl's scale client reads the Scale kind's group and
            // version from here; without them it looks for `apps/v1 Scale`,
            // which does not exist, and `kubectl scale` fails.
            if *sub == Subresource::Scale {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
            }
            // kubectl drain looks for `pods/eviction` here, and posts the
            // Eviction in the group/version found (policy/v1, or v1beta1 on
            // old servers); without the entry it falls back to DELETE.
            if *sub == Subresource::Eviction {
                entry["group"] = json!("policy");
                entry["version"] = json!("v1");
            }
            out.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}
// ANCHOR_END: resource_list

pub async fn core_resources() -> Response {
    respond(api_resource_list("", "v1"))
}

pub async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    respond(api_resource_list(&group, &version))
}

fn respond(doc: Option<Value>) -> Response {
    match doc {
        Some(d) => json_response(StatusCode::OK, &d),
        None => ApiError::no_route().into_response(),
    }
}
