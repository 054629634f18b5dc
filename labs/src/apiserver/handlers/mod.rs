//! The verbs: get, list, create, update, patch, delete, and the `status`,
//! `scale` and `binding` subresources.
//!
//! This is the part of the API server that upstream splits between the
//! *endpoint handlers* (`k8s.io/apiserver/pkg/endpoints/handlers/{get,
//! create,update,patch,delete}.go`), the *generic registry*
//! (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`) and the
//! per-resource *strategies*. Every write goes through the same steps:
//!
//! 1. decode the body and round-trip it through the k8s-openapi type
//!    (400 BadRequest if that fails) — [`decode`];
//! 2. prepare: fill what the server owns (uid, creationTimestamp,
//!    generation, namespace) and keep what the caller may not change here
//!    (`status` on the main resource, `spec` on `/status`) — [`strategy`];
//! 3. default, then validate (422 Invalid with field paths);
//! 4. write with compare-and-swap on the store's mod revision, which *is*
//!    the object's `resourceVersion`, and start over when someone wrote in
//!    between — [`storage::guaranteed_update`].
//!
//! | file | verb | upstream |
//! |---|---|---|
//! | [`get`] | get, list | `endpoints/handlers/get.go` |
//! | [`create`] | create (POST) | `endpoints/handlers/create.go` |
//! | [`update`] | update (PUT) | `endpoints/handlers/update.go`, `registry/rest/update.go` |
//! | [`patch`] | patch (PATCH, server-side apply) | `endpoints/handlers/patch.go` |
//! | [`delete`] | delete, deletecollection | `endpoints/handlers/delete.go` |
//! | [`subresources`] | `scale`, `binding` | the `ScaleREST` and `BindingREST` of `pkg/registry` |
//! | [`eviction`] | `pods/eviction` (PodDisruptionBudgets) | `pkg/registry/core/pod/storage/eviction.go` |
//! | [`review`] | the authentication and authorization reviews | `pkg/registry/{authentication,authorization}` |
//!
//! Objects are kept as `serde_json::Value` the whole way: the server is
//! generic over kinds, as the real one is over `runtime.Object`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::request::Call;
use super::resources::Resource;
use super::status;

mod create;
mod decode;
mod delete;
mod eviction;
mod get;
mod patch;
mod review;
mod storage;
mod strategy;
mod subresources;
mod update;

pub use create::{NAME_ALPHABET, create, ensure_namespace};
pub use delete::{delete, delete_collection};
pub use eviction::{VIOLATES_BUDGET, evict};
pub use get::{Selectors, get, list};
pub use patch::patch;
pub use review::{ALLOW_REASON, ANONYMOUS_USER, UNAUTHENTICATED_GROUP, review};
pub use storage::{object_bytes_from_kv, object_from_kv};
pub use subresources::{bind, get_scale, update_scale};
pub use update::update;

/// The media type of Table responses, as the real server sends it.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// A successful answer: an object (or list, or Table) with its HTTP code.
pub struct Reply {
    pub code: StatusCode,
    pub body: Value,
    /// Pre-serialized JSON, used instead of `body` when set (big lists).
    pub raw: Option<Vec<u8>>,
    pub content_type: &'static str,
    /// `Warning: 299 - "..."` headers; kubectl prints them as `Warning: ...`.
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            code: StatusCode::OK,
            body,
            raw: None,
            content_type: "application/json",
            warnings: vec![],
        }
    }

    fn raw(bytes: Vec<u8>) -> Reply {
        Reply {
            raw: Some(bytes),
            ..Reply::ok(Value::Null)
        }
    }

    fn created(body: Value) -> Reply {
        Reply {
            code: StatusCode::CREATED,
            ..Reply::ok(body)
        }
    }

    fn table(body: Value) -> Reply {
        Reply {
            content_type: TABLE_CONTENT_TYPE,
            ..Reply::ok(body)
        }
    }

    fn warn(mut self, warnings: Vec<String>) -> Reply {
        self.warnings = warnings;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = match self.raw {
            Some(bytes) => (self.code, bytes).into_response(),
            None => status::json_response(self.code, &self.body),
        };
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for w in &self.warnings {
            let text = format!("299 - {:?}", w);
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }
}

// ---------------------------------------------------------------------------
// Small helpers over JSON objects and calls, for every verb.

/// RFC 3339 with seconds and `Z`: how Kubernetes writes `metav1.Time`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> String {
    format_time(crate::machinery::clock::now())
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

fn key_of(r: &Resource, call: &Call) -> String {
    r.key(
        call.target.namespace.as_deref(),
        call.target.name.as_deref().unwrap_or(""),
    )
}

fn target_name(call: &Call) -> &str {
    call.target.name.as_deref().unwrap_or("")
}
