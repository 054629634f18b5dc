//! `PATCH` of an object, its `/status` or its `/scale`: JSON patch, merge
//! patch, strategic merge patch and server-side apply (which creates a
//! missing object).
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/patch.go`. The patch
//! algorithms themselves are in [`crate::apiserver::patch`].

use serde_json::json;

use super::create::create_object;
use super::decode::decode_typed;
use super::storage::{Write, guaranteed_update, object_from_kv};
use super::subresources::{scale_of, scaled};
use super::update::before_update;
use super::{Reply, key_of, meta_mut, meta_str, target_name};
use crate::apiserver::ApiServer;
use crate::apiserver::patch;
use crate::apiserver::request::Call;
use crate::apiserver::resources::Subresource;
use crate::apiserver::status::ApiError;
use crate::apiserver::validation::{FieldError, FieldErrorKind};

/// 400 for a malformed patch, 422 for one that does not fit the object.
fn patch_error(e: patch::PatchError) -> ApiError {
    if e.status_code() == 422 {
        ApiError::unprocessable(e.to_string())
    } else {
        ApiError::bad_request(e.to_string())
    }
}

// ANCHOR: patch
pub fn patch(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let ct = call.content_type();
    let Some(patch_type) = patch::PatchType::from_content_type(&ct) else {
        return Err(ApiError::unsupported_media_type(
            &ct,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ));
    };
    let patch_body = patch::decode_body(patch_type, &call.body).map_err(patch_error)?;
    if matches!(patch_type, patch::PatchType::Apply)
        && call.query.get("fieldManager").is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[FieldError {
                kind: FieldErrorKind::Required,
                field: "fieldManager".into(),
                bad_value: None,
                detail: "is required for apply patch".into(),
            }],
        ));
    }
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    let sub = call.target.subresource;
    let scale = sub == Some(Subresource::Scale);
    // Set by the round that wins: the decoder's warnings, and whether
    // server-side apply created the object.
    let mut warnings = vec![];
    let mut created = false;
    let obj = guaranteed_update(api, &key, |kv| {
        let Some(kv) = kv else {
            // Server-side apply creates what does not exist yet.
            if matches!(patch_type, patch::PatchType::Apply) && sub.is_none() {
                let mut obj = patch_body.clone();
                if !obj.is_object() {
                    return Err(ApiError::bad_request("the apply patch is not an object"));
                }
                let body_name = meta_str(&obj, "name").to_string();
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let (obj, decoded_warnings) = decode_typed(r, call, obj)?;
                warnings = decoded_warnings;
                created = true;
                return Ok(Write::Keep(create_object(api, call, obj)?));
            }
            return Err(ApiError::not_found(r, name));
        };
        let current = object_from_kv(kv);
        let base = if scale {
            scale_of(r, &current)
        } else {
            current.clone()
        };
        let kind = if scale { "Scale" } else { r.kind };
        let patched = match patch_type {
            patch::PatchType::Json => patch::json_patch(&base, &patch_body).map_err(patch_error)?,
            patch::PatchType::Merge => patch::merge_patch(&base, &patch_body),
            patch::PatchType::StrategicMerge => {
                patch::strategic_merge_patch(&base, &patch_body, kind).map_err(patch_error)?
            }
            patch::PatchType::Apply => {
                patch::apply_patch(&base, &patch_body, kind).map_err(patch_error)?
            }
        };
        // A resourceVersion inside the patch is a precondition, as in PUT.
        let rv = meta_str(&patched, "resourceVersion");
        if !rv.is_empty() && rv != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let new = if scale {
            warnings = vec![];
            scaled(r, &current, &patched)?
        } else {
            let (typed, decoded_warnings) = decode_typed(r, call, patched)?;
            warnings = decoded_warnings;
            typed
        };
        let main_or_status = if scale { None } else { sub };
        before_update(r, main_or_status, &current, new, dry_run)
    })?;
    Ok(match (created, scale) {
        (true, _) => Reply::created(obj).warn(warnings),
        (false, true) => Reply::ok(scale_of(r, &obj)),
        (false, false) => Reply::ok(obj).warn(warnings),
    })
}
// ANCHOR_END: patch
