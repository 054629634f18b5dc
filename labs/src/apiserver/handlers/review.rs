//! "Who am I?" and "may I?": the review resources behind `kubectl auth
//! whoami` and `kubectl auth can-i`.
//!
//! Every request to a real API server passes two gates before any handler
//! runs. **Authentication** turns the request's credentials (a client
//! certificate, a bearer token, an OIDC token from `gcloud`) into a user:
//! a name and groups. **Authorization** asks whether that user may do this
//! verb on this resource; with `--authorization-mode=Node,RBAC` the answer
//! comes from Roles and ClusterRoles bound to the user or its groups.
//!
//! The lab cluster has neither gate, and says so rather than pretending:
//!
//! - It authenticates nobody. A real server with anonymous access enabled
//!   gives a request without valid credentials the user `system:anonymous`
//!   in the group `system:unauthenticated`; that is what every request here
//!   is, whatever token the kubeconfig holds, so that is what
//!   `SelfSubjectReview` reports.
//! - It runs no authorizer, which is upstream's
//!   `--authorization-mode=AlwaysAllow`: every request is allowed, so every
//!   `SelfSubjectAccessReview` answers `allowed: true`, and a
//!   `SelfSubjectRulesReview` lists one rule allowing everything.
//!
//! The reviews are not stored: `create` computes the answer into `status`
//! and returns the object (201), as upstream's `pkg/registry/authorization`
//! and `pkg/registry/authentication/selfsubjectreview` do.

use serde_json::{Value, json};

use super::Reply;
use super::decode::decode_typed;
use crate::apiserver::ApiServer;
use crate::apiserver::request::Call;
use crate::apiserver::status::ApiError;
use crate::apiserver::validation::{FieldError, FieldErrorKind};

/// The user every request is, as a real server names an unauthenticated one.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of that user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// Why every access review says yes.
pub const ALLOW_REASON: &str = "the lab cluster runs no authorizer (as --authorization-mode=AlwaysAllow): every request is allowed";

// ANCHOR: review
/// `POST` to a review collection: answer the question in `status`.
pub fn review(_api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let obj = call.decode_object()?;
    let (mut obj, warnings) = decode_typed(r, call, obj)?;
    let status = match r.kind {
        "SelfSubjectReview" => json!({"userInfo": {
            "username": ANONYMOUS_USER,
            "groups": [UNAUTHENTICATED_GROUP],
        }}),
        "SelfSubjectAccessReview" => {
            validate_access_review(&obj)?;
            json!({"allowed": true, "reason": ALLOW_REASON})
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => return Err(ApiError::no_route()),
    };
    obj["apiVersion"] = json!(r.api_version());
    obj["kind"] = json!(r.kind);
    obj["status"] = status;
    Ok(Reply::created(obj).warn(warnings))
}
// ANCHOR_END: review

/// Upstream's `ValidateSelfSubjectAccessReviewSpec`: the question is about
/// a resource or about a URL (`/healthz`), exactly one of the two.
fn validate_access_review(obj: &Value) -> Result<(), ApiError> {
    let has = |f: &str| {
        obj.pointer(&format!("/spec/{f}"))
            .is_some_and(|v| !v.is_null())
    };
    let err = match (has("resourceAttributes"), has("nonResourceAttributes")) {
        (true, true) => FieldError {
            kind: FieldErrorKind::Invalid,
            field: "spec.nonResourceAttributes".into(),
            bad_value: obj.pointer("/spec/nonResourceAttributes").cloned(),
            detail: "cannot be specified in combination with resourceAttributes".into(),
        },
        (false, false) => FieldError {
            kind: FieldErrorKind::Invalid,
            field: "spec.resourceAttributes".into(),
            bad_value: Some(Value::Null),
            detail: "exactly one of nonResourceAttributes or resourceAttributes must be specified"
                .into(),
        },
        _ => return Ok(()),
    };
    Err(ApiError::invalid(
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
        "",
        &[err],
    ))
}
