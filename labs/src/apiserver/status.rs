//! Errors as Kubernetes reports them: a `Status` object with an HTTP code, a
//! machine-readable `reason` and a human message.
//!
//! Clients depend on these shapes. kubectl prints `Error from server
//! (NotFound): deployments.apps "nope" not found` straight from `reason` and
//! `message`; kube-rs turns the body into `Error::Api(Status)`, and
//! `Api::get_opt` maps exactly `code: 404` to `Ok(None)`. The message
//! formats follow apimachinery's `pkg/api/errors/errors.go`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::{self, Resource};
use super::validation::{FieldError, invalid_status};
use crate::store::StoreError;

// ANCHOR: api_error
/// An error answer: becomes a `Status` body with the matching HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ...
    pub reason: &'static str,
    pub message: String,
    /// `details`: which object (and for `Invalid`, which fields).
    pub details: Option<Value>,
}
// ANCHOR_END: api_error

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, r: &Resource, name: &str) -> ApiError {
        // For NotFound/AlreadyExists/Conflict `details.kind` is the plural
        // (`deployments`), not the Kind: upstream passes a GroupResource.
        let mut d = json!({"name": name, "kind": r.plural});
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        self.details = Some(d);
        self
    }

    /// `deployments.apps "web" not found`
    pub fn not_found(r: &Resource, name: &str) -> ApiError {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified_plural()),
        )
        .with_details(r, name)
    }

    /// Unknown URL, resource or subresource.
    pub fn no_route() -> ApiError {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details_value(json!({}))
    }

    pub fn already_exists(r: &Resource, name: &str) -> ApiError {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified_plural()),
        )
        .with_details(r, name)
    }

    /// A write based on a stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(r: &Resource, name: &str) -> ApiError {
        Self::conflict_because(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_because(r: &Resource, name: &str, why: &str) -> ApiError {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                r.qualified_plural()
            ),
        )
        .with_details(r, name)
    }

    /// `namespaces "default" is forbidden: this namespace may not be deleted`
    pub fn forbidden(r: &Resource, name: &str, why: &str) -> ApiError {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", r.qualified_plural()),
        )
        .with_details(r, name)
    }

    /// 422 without field causes (e.g. a JSON patch `test` that failed).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
        .with_details_value(json!({}))
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> ApiError {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 406: the client asked only for encodings the server cannot write
    /// (upstream: `NewNotAcceptableError`).
    pub fn not_acceptable(accepted: &[&str]) -> ApiError {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request is too large (limit {limit} bytes)"),
        )
    }

    /// 410 for a list at a compacted revision. (Watches report it as an
    /// ERROR event inside a 200 stream instead; see `watch.rs`.)
    pub fn expired(message: impl Into<String>) -> ApiError {
        Self::new(410, "Expired", message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        Self::new(504, "Timeout", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(500, "InternalError", message)
    }

    // ANCHOR: invalid
    /// 422 Invalid: `Deployment.apps "web" is invalid: spec.replicas: Invalid
    /// value: -1: must be greater than or equal to 0`, with one `cause` per
    /// field error (the body is built by `validation::invalid_status`).
    pub fn invalid(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> ApiError {
        let status = invalid_status(kind, group, name, errs);
        ApiError {
            code: 422,
            reason: "Invalid",
            message: status["message"].as_str().unwrap_or_default().to_string(),
            details: status.get("details").cloned(),
        }
    }
    // ANCHOR_END: invalid

    pub fn invalid_resource(r: &Resource, name: &str, errs: &[FieldError]) -> ApiError {
        Self::invalid(r.kind, r.group, name, errs)
    }

    fn with_details_value(mut self, v: Value) -> ApiError {
        self.details = Some(v);
        self
    }

    /// The `Status` object, as the body of an error response or the object
    /// of a watch ERROR event.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A store error as the API reports it. The store names only the key;
/// [`resources::parse_key`] turns it back into the resource and name that
/// kubectl prints (`deployments.apps "web" not found`). The texts of the
/// revision errors are the real server's.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::AlreadyExists { key }
            | StoreError::NotFound { key }
            | StoreError::Conflict { key, .. } => {
                let Some((r, name)) = resources::parse_key(key) else {
                    // A key outside the resource table: nothing the API serves.
                    return ApiError::internal(e.to_string());
                };
                match &e {
                    StoreError::AlreadyExists { .. } => ApiError::already_exists(r, name),
                    StoreError::NotFound { .. } => ApiError::not_found(r, name),
                    _ => ApiError::conflict(r, name),
                }
            }
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

/// A JSON body with `Content-Type: application/json`.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut resp = (code, serde_json::to_vec(body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `{"kind":"Status","status":"Success"}`: what `pods/binding` answers.
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}
