//! OpenAPI: the schema of every served kind, field by field, with its docs.
//!
//! Two clients read these documents. `kubectl explain deployment.spec.strategy`
//! prints a field's type and description from them: kubectl knows no field
//! by heart, the server tells it. And `kubectl apply`/`create` look up each
//! kind's `patch` operation to see whether the server checks unknown fields
//! itself (`?fieldValidation=Strict`, answered in
//! `handlers/decode.rs`).
//!
//! Two formats, as upstream serves them:
//!
//! - **OpenAPI v3**, split by group/version: `/openapi/v3` is an index
//!   (`{"paths": {"apis/apps/v1": {"serverRelativeURL":
//!   "/openapi/v3/apis/apps/v1?hash=…"}}}`) and each document carries only
//!   its group/version's paths and the schemas they need. The `hash` is the
//!   document's ETag: kubectl caches documents under it, so a URL with the
//!   right hash never changes (`Cache-Control: public, immutable`), and one
//!   with a stale hash is redirected to the current one.
//! - **Swagger 2.0**, one document for everything: `/openapi/v2`.
//!
//! Nothing is written by hand or vendored: the schemas come from
//! k8s-openapi's types ([`schemas`]), the paths from the resource table
//! ([`paths`]), so serving a new kind (a row in
//! [`RESOURCES`](super::resources::RESOURCES) and a line in
//! [`Resource::with_type`](super::resources::Resource::with_type)) also
//! publishes its schema. The documents depend on nothing else, so they are
//! built once per process, on first use, and served as bytes.
//!
//! Upstream: `k8s.io/kube-openapi/pkg/handler3` (the v3 index, hashes and
//! caching) and `pkg/handler` (v2); the schemas come from the Go types
//! through `openapi-gen`.

pub mod paths;
pub mod schemas;
pub mod v2proto;

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::discovery::GIT_VERSION;
use super::resources::{RESOURCES, Resource, group_versions};
use super::status::ApiError;
use schemas::Dialect;

/// One document, serialised once: its bytes and their hash.
pub struct Document {
    pub json: Bytes,
    /// Upper-case hex SHA-512 of `json`, as upstream: the `?hash=` of the
    /// v3 index and the ETag.
    pub hash: String,
}

impl Document {
    fn new(value: &Value) -> Document {
        Document::from_bytes(serde_json::to_vec(value).expect("a JSON value serialises"))
    }

    fn from_bytes(bytes: Vec<u8>) -> Document {
        let hash = Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Document {
            json: Bytes::from(bytes),
            hash,
        }
    }
}

/// What client-go asks `/openapi/v2` for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Every OpenAPI document this server serves.
pub struct Documents {
    /// `/openapi/v3/<path>` by path (`api/v1`, `apis/apps/v1`).
    pub v3: BTreeMap<String, Document>,
    /// `/openapi/v3`: links to the documents above, with their hashes.
    pub v3_index: Document,
    /// `/openapi/v2`.
    pub v2: Document,
    /// The same in protobuf ([`v2proto`]); `json` holds the protobuf bytes.
    pub v2_protobuf: Document,
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let start = Instant::now();
    let docs = build();
    tracing::debug!(elapsed = ?start.elapsed(), "OpenAPI documents built");
    docs
});

/// The documents, built on first use.
pub fn documents() -> &'static Documents {
    &DOCUMENTS
}

/// `api/v1`, `apis/apps/v1`: a group/version as the v3 index names it.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build() -> Documents {
    let mut v3 = BTreeMap::new();
    for (g, v) in group_versions() {
        let rs: Vec<&Resource> = RESOURCES
            .iter()
            .filter(|r| r.group == g && r.version == v)
            .collect();
        v3.insert(gv_path(g, v), Document::new(&v3_document(&rs)));
    }
    let index: Map<String, Value> = v3
        .iter()
        .map(|(path, doc)| {
            let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
            (path.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    let all: Vec<&Resource> = RESOURCES.iter().collect();
    let v2 = v2_document(&all);
    Documents {
        v3_index: Document::new(&json!({"paths": index})),
        v3,
        v2_protobuf: Document::from_bytes(v2proto::document(&v2)),
        v2: Document::new(&v2),
    }
}

fn all_paths(resources: &[&Resource], dialect: Dialect) -> Map<String, Value> {
    let mut out = BTreeMap::new();
    for r in resources {
        if let Some(schema) = schemas::schema_name(r) {
            out.extend(paths::resource_paths(r, &schema, dialect));
        }
    }
    out.into_iter().collect()
}

// ANCHOR: v3_document
/// One group/version's OpenAPI v3 document: its resources' operations and
/// every schema they refer to.
pub fn v3_document(resources: &[&Resource]) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": all_paths(resources, Dialect::V3),
        "components": {"schemas": schemas::schemas(resources, Dialect::V3)},
    })
}
// ANCHOR_END: v3_document

/// The Swagger 2.0 document: every resource in one.
pub fn v2_document(resources: &[&Resource]) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": all_paths(resources, Dialect::V2),
        "definitions": schemas::schemas(resources, Dialect::V2),
    })
}

/// A document with upstream's caching headers: its ETag always; with the
/// right `?hash=`, `Cache-Control: public, immutable` (the URL names this
/// content for good); otherwise `no-cache` (ask again, with
/// `If-None-Match`, and get 304 if nothing changed).
fn serve(doc: &Document, headers: &HeaderMap, immutable: bool) -> Response {
    serve_as(doc, headers, immutable, "application/json")
}

fn serve_as(
    doc: &Document,
    headers: &HeaderMap,
    immutable: bool,
    content_type: &'static str,
) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, doc.json.clone()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// `GET /openapi/v3`.
pub async fn v3_index(headers: HeaderMap) -> Response {
    serve(&documents().v3_index, &headers, false)
}

/// `GET /openapi/v3/apis/apps/v1?hash=…`. A stale hash is redirected to
/// the current document (301), as upstream does, so that a client with an
/// old index still lands on the right content.
pub async fn v3_group_version(
    Path(gv): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = gv.trim_matches('/');
    let Some(doc) = documents().v3.get(path) else {
        return ApiError::no_route().into_response();
    };
    let hash = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.into_owned());
    match hash {
        Some(h) if h != doc.hash => {
            let location = format!("/openapi/v3/{path}?hash={}", doc.hash);
            let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Some(_) => serve(doc, &headers, true),
        None => serve(doc, &headers, false),
    }
}

/// `GET /openapi/v2`: protobuf when the client asks for it (client-go
/// always does), JSON otherwise; anything else is 406 Not Acceptable.
pub async fn v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or_default().trim())
        .collect();
    if types.contains(&V2_PROTOBUF) {
        // Answered as `application/octet-stream`, as upstream does: the
        // requested name, with its `@`, is no valid media type, and
        // client-go fails on a Content-Type it cannot parse.
        return serve_as(
            &documents().v2_protobuf,
            &headers,
            false,
            "application/octet-stream",
        );
    }
    if types
        .iter()
        .any(|t| matches!(*t, "application/json" | "*/*" | "application/*" | ""))
    {
        return serve(&documents().v2, &headers, false);
    }
    ApiError::not_acceptable(&["application/json", V2_PROTOBUF]).into_response()
}

#[cfg(test)]
mod tests;
