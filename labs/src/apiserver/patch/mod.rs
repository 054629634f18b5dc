//! The four PATCH flavours Kubernetes accepts, chosen by `Content-Type`.
//!
//! | `Content-Type` | who sends it | semantics |
//! |---|---|---|
//! | `application/json-patch+json` | `kubectl rollout undo` | RFC 6902: a list of operations |
//! | `application/merge-patch+json` | `kubectl scale`, `annotate` | RFC 7386: merge objects, `null` deletes, lists replaced |
//! | `application/strategic-merge-patch+json` | `kubectl set image`, `rollout pause/resume/restart`, client-side `apply` | merge patch, but lists of objects are merged *by key* |
//! | `application/apply-patch+yaml` | `kubectl apply --server-side`, kube-rs `Patch::Apply` | server-side apply: "make the object look like this config" |
//!
//! Why a "strategic" merge patch at all? With a plain merge patch,
//! `kubectl set image deployment/web web=app:v2` would have to send the whole
//! `containers` list, and would silently undo any concurrent change to another
//! container. Kubernetes' Go types therefore carry *patch strategies*: the
//! `containers` list is a map keyed by `name`, so the patch
//! `{"containers":[{"name":"web","image":"app:v2"}]}` touches one container
//! and one field. Our server has no Go struct tags, so [`list_strategy`]
//! holds the same facts as a small table (see its documentation).
//!
//! All functions are pure: `&Value` in, new `Value` out; the caller stores
//! the result only if every later step (defaulting, validation) succeeds.
//!
//! This file holds the request side (content types, errors, decoding) and
//! the two RFC flavours, which the `json-patch` crate implements;
//! [`strategic`] holds strategic merge patch and [`apply`] server-side
//! apply. Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/patch.go`
//! (choosing the flavour), `k8s.io/apimachinery/pkg/util/strategicpatch`,
//! `sigs.k8s.io/structured-merge-diff` (apply).

use serde_json::Value;

mod apply;
mod strategic;

pub use apply::apply_patch;
pub use strategic::{ListStrategy, list_strategy, strategic_merge_patch};

/// Which patch format a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes' strategic merge patch.
    StrategicMerge,
    /// Server-side apply (body is YAML or JSON).
    Apply,
}

impl PatchType {
    /// Every patch type with its media type, in the order upstream lists
    /// them in its 415 message ("accepted media types include: ...").
    pub const ALL: [(PatchType, &'static str); 4] = [
        (PatchType::Json, "application/json-patch+json"),
        (PatchType::Merge, "application/merge-patch+json"),
        (PatchType::Apply, "application/apply-patch+yaml"),
        (
            PatchType::StrategicMerge,
            "application/strategic-merge-patch+json",
        ),
    ];

    /// Maps a request's `Content-Type` to a patch type, ignoring parameters
    /// such as `; charset=utf-8`. `None` means the server answers 415.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct.split(';').next()?.trim().to_ascii_lowercase();
        PatchType::ALL
            .iter()
            .find(|(_, name)| *name == media)
            .map(|(t, _)| *t)
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        PatchType::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, name)| *name)
            .unwrap_or_default()
    }
}

/// Why a patch could not be applied.
///
/// Upstream splits these between two status codes, and so do we:
/// a patch document that is malformed is the client's *syntax* error
/// (400 Bad Request), while a well-formed patch that does not fit the
/// object is a *semantic* error (422 Unprocessable Entity).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (not JSON, wrong shape, unknown
    /// directive, list element without its merge key). → **400 BadRequest**.
    #[error("{0}")]
    InvalidPatch(String),
    /// The patch is well-formed but cannot be applied to this object
    /// (JSON patch path missing, `$retainKeys` contradicting the patch).
    /// → **422 Unprocessable Entity** (upstream: `NewGenericServerResponse(422, ...)`).
    #[error("{message}")]
    Unprocessable { field: String, message: String },
    /// A JSON patch `test` operation failed. → **422 Unprocessable Entity**.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
}

impl PatchError {
    /// The HTTP status the API server answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::InvalidPatch(_) => 400,
            PatchError::Unprocessable { .. } | PatchError::TestFailed { .. } => 422,
        }
    }
}

/// Decodes a PATCH body. JSON for every type; server-side apply bodies may
/// also be YAML (`application/apply-patch+yaml`; kubectl and kube-rs send
/// JSON, which is YAML too, but a user with curl may send real YAML).
/// A body that does not decode → [`PatchError::InvalidPatch`] (400).
pub fn decode_body(patch_type: PatchType, body: &[u8]) -> Result<Value, PatchError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if patch_type != PatchType::Apply => Err(PatchError::InvalidPatch(format!(
            "error decoding patch: {e}"
        ))),
        Err(_) => serde_yaml::from_slice(body)
            .map_err(|e| PatchError::InvalidPatch(format!("error decoding YAML: {e}"))),
    }
}

/// RFC 6902 JSON patch, via the `json-patch` crate.
///
/// `replace` and `remove` on a missing path fail (which is why
/// `kubectl rollout undo`'s `replace /metadata/annotations` relies on the
/// controller having written the revision annotation). The operations are
/// applied to a copy; on any failure the target is untouched.
///
/// Note that JSON patch values are inserted literally, `null`s included
/// (undo sends `"creationTimestamp": null`); the server should run
/// [`drop_nulls`] on the result, as decoding into Go structs does upstream.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidPatch(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| {
        let path = e.path.to_string();
        match e.kind {
            json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed { path },
            _ => {
                let op = match &ops.0[e.operation] {
                    json_patch::PatchOperation::Add(_) => "add",
                    json_patch::PatchOperation::Remove(_) => "remove",
                    json_patch::PatchOperation::Replace(_) => "replace",
                    json_patch::PatchOperation::Move(_) => "move",
                    json_patch::PatchOperation::Copy(_) => "copy",
                    json_patch::PatchOperation::Test(_) => "test",
                };
                PatchError::Unprocessable {
                    message: format!(
                        "{op} operation does not apply: doc is missing path: \"{path}\": missing value"
                    ),
                    field: path,
                }
            }
        }
    })?;
    Ok(doc)
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a
/// key, anything else (lists included) replaces. This is what
/// `kubectl scale` and `kubectl annotate` send.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Removes every `null` from objects, recursively (list elements that are
/// `null` stay: they are values, not absent fields).
///
/// Upstream gets this for free by decoding into Go structs, where `null`
/// and "absent" are the same. It matters: `kubectl rollout undo` sends
/// `"creationTimestamp": null` inside the template, and a stored `null`
/// would make the template differ from the old ReplicaSet's, so the
/// Deployment controller would create a *new* ReplicaSet instead of
/// re-using the old one.
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
