//! Discovery: how clients learn what this server serves.
//!
//! kubectl knows no resource by heart. Before `kubectl get deploy` it asks
//! `/api` and `/apis` for the group/versions, then `/api/v1` and
//! `/apis/apps/v1` for their resources, and maps `deploy` to
//! `deployments.apps/v1` through the `shortNames` found there. It caches the
//! answers under `~/.kube/cache/discovery`. All documents are generated from
//! the resource table, so routing and discovery cannot disagree.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiServer;
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
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
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

// ANCHOR: openapi
/// `GET /openapi/v3`: one entry per group/version. kubectl apply (default
/// `--validate=strict`) follows these links to decide whether the server
/// can validate fields itself (`fieldValidation=Strict`).
pub fn openapi_v3_root_doc() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions() {
        let gv = gv_path(g, v);
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", doc_hash(g, v))}),
        );
    }
    json!({"paths": paths})
}

/// The smallest per-group/version document kubectl accepts: for each kind a
/// `patch` operation carrying `x-kubernetes-group-version-kind` and a
/// `fieldValidation` query parameter. No schemas: the server validates by
/// decoding into its types, and kubectl computes client-side apply patches
/// from its own compiled-in types.
pub fn openapi_v3_doc(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(
            path,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
    }))
}
// ANCHOR_END: openapi

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A content hash for the `?hash=` of the OpenAPI links (kubectl caches the
/// documents by it). FNV-1a over the document: stable across runs.
fn doc_hash(group: &str, version: &str) -> String {
    let doc = openapi_v3_doc(group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in doc.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

pub async fn openapi_v3_root(State(_api): State<ApiServer>) -> Response {
    json_response(StatusCode::OK, &openapi_v3_root_doc())
}

pub async fn openapi_v3_group_version(Path(gv): Path<String>) -> Response {
    let parts: Vec<&str> = gv.trim_matches('/').split('/').collect();
    let doc = match parts.as_slice() {
        ["api", v] => openapi_v3_doc("", v),
        ["apis", g, v] => openapi_v3_doc(g, v),
        _ => None,
    };
    respond(doc)
}
