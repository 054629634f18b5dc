//! `PUT` of an object (and of its `/status`): replace it, with the body's
//! `resourceVersion` as a precondition; and the step every write of an
//! existing object shares, [`before_update`].
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/update.go`, the
//! `Update` of `registry/generic/registry/store.go`, and `BeforeUpdate` in
//! `registry/rest/update.go`.

use serde_json::{Value, json};

use super::decode::decode_typed;
use super::storage::{Write, guaranteed_update, object_from_kv, same_object};
use super::strategy::prepare_update;
use super::{Reply, key_of, meta_mut, meta_str, target_name};
use crate::apiserver::request::Call;
use crate::apiserver::resources::{Resource, Subresource};
use crate::apiserver::status::ApiError;
use crate::apiserver::{ApiServer, defaults, validation};

// ANCHOR: update
pub fn update(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let body = call.decode_object()?;
    let (body, warnings) = decode_typed(r, call, body)?;
    let body_name = meta_str(&body, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    // A resourceVersion in the body is a precondition: "update this only
    // if nobody wrote it since I read it". Empty means unconditional.
    let precondition = meta_str(&body, "resourceVersion").to_string();
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    // With a precondition a lost race answers 409 on the next round;
    // without one the body is simply written over the new state.
    let obj = guaranteed_update(api, &key, |kv| {
        let kv = kv.ok_or_else(|| ApiError::not_found(r, name))?;
        if !precondition.is_empty() && precondition != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let old = object_from_kv(kv);
        before_update(r, call.target.subresource, &old, body.clone(), dry_run)
    })?;
    Ok(Reply::ok(obj).warn(warnings))
}
// ANCHOR_END: update

// ANCHOR: commit_update
/// The write path shared by PUT, PATCH, `/status` and `/scale`: prepare,
/// default, validate, and decide what to write in place of `old` —
/// [`guaranteed_update`] does the compare-and-swap against the revision
/// `old` was read at, and calls this again after a lost race. Upstream's
/// `rest.BeforeUpdate` and the update function `Update` hands to
/// `GuaranteedUpdate`.
pub(super) fn before_update(
    r: &Resource,
    sub: Option<Subresource>,
    old: &Value,
    mut new: Value,
    dry_run: bool,
) -> Result<Write, ApiError> {
    let name = meta_str(old, "name").to_string();
    prepare_update(r, sub, old, &mut new);
    // Go's `omitempty`: a patch that removes the last ownerReference (the
    // garbage collector orphaning a pod) or the last finalizer leaves `[]`,
    // which the real server never writes back; clients test for absence.
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        for list in ["ownerReferences", "finalizers"] {
            if meta
                .get(list)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                meta.remove(list);
            }
        }
    }
    defaults::apply_defaults(r.kind, &mut new);
    // generation moves only when the desired state (spec) moves; this is
    // what `status.observedGeneration` is compared with. An EndpointSlice
    // has no spec: its endpoints and ports are what it says (upstream's
    // endpointslice strategy compares the whole object the same way).
    let desired = |o: &Value| match r.kind {
        "EndpointSlice" => json!([o.get("addressType"), o.get("endpoints"), o.get("ports")]),
        _ => o.get("spec").cloned().unwrap_or(Value::Null),
    };
    if r.has_generation && desired(&new) != desired(old) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    let errs = validation::validate(r.kind, &new, Some(old));
    if !errs.is_empty() {
        return Err(ApiError::invalid_resource(r, &name, &errs));
    }
    if same_object(&new, old) {
        return Ok(Write::Keep(old.clone()));
    }
    // The last finalizer of an object being deleted is gone: delete it now.
    let finished = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        && new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
    if dry_run {
        return Ok(Write::Keep(new));
    }
    if finished {
        return Ok(Write::Delete(new));
    }
    Ok(Write::Update(new))
}
// ANCHOR_END: commit_update
