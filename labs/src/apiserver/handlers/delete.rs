//! `DELETE` of an object or a collection: preconditions, a pod's graceful
//! deletion (the kubelet finishes it), finalizers, and the propagation
//! policy handed to the garbage collector as a finalizer.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/delete.go`, the
//! `Delete`/`DeleteCollection` of `registry/generic/registry/store.go`
//! (with `deletionFinalizersForGarbageCollection`), and the pod strategy's
//! `CheckGracefulDelete` (`pkg/registry/core/pod/strategy.go`).

use k8s_openapi::jiff::SignedDuration;
use serde_json::{Value, json};

use super::get::Selectors;
use super::storage::{Write, guaranteed_update, object_from_kv};
use super::{Reply, format_time, key_of, meta_mut, meta_str, target_name};
use crate::apiserver::request::Call;
use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;
use crate::apiserver::validation::{FieldError, FieldErrorKind};
use crate::apiserver::{ApiServer, INITIAL_NAMESPACES};

/// `DeleteOptions`, from the body and the query string.
#[derive(Debug, Default, Clone)]
pub(super) struct DeleteOptions {
    pub(super) grace_period_seconds: Option<i64>,
    pub(super) uid: Option<String>,
    pub(super) resource_version: Option<String>,
    /// `Orphan`, `Background` or `Foreground` (see
    /// `apply_propagation_policy`).
    pub(super) propagation_policy: Option<String>,
    /// `dryRun: ["All"]` in the body (the query's `dryRun=All` is read by
    /// each verb).
    pub(super) dry_run: bool,
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !call.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode DeleteOptions: {e}")))?;
        opts = delete_options_from(&body)?;
    }
    if let Some(g) = call.query.int("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    Ok(opts)
}

/// A `DeleteOptions` object (a DELETE's body, or an Eviction's
/// `deleteOptions`).
pub(super) fn delete_options_from(body: &Value) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if body.is_null() {
        return Ok(opts);
    }
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "unable to decode DeleteOptions: not an object",
        ));
    }
    opts.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
    opts.uid = body
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    opts.resource_version = body
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    // The deprecated `orphanDependents` bool means Orphan or Background.
    opts.propagation_policy = match body.get("orphanDependents").and_then(Value::as_bool) {
        Some(true) => Some("Orphan".into()),
        Some(false) => Some("Background".into()),
        None => None,
    };
    if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
        if !["Orphan", "Background", "Foreground"].contains(&p) {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[FieldError {
                    kind: FieldErrorKind::NotSupported,
                    field: "propagationPolicy".into(),
                    bad_value: Some(json!(p)),
                    detail: "supported values: \"Foreground\", \"Background\", \"Orphan\"".into(),
                }],
            ));
        }
        opts.propagation_policy = Some(p.to_string());
    }
    opts.dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(opts)
}

pub fn delete(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    if r.kind == "Namespace" && INITIAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            r,
            name,
            "this namespace may not be deleted",
        ));
    }
    let opts = delete_options(call)?;
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()? || opts.dry_run;
    let obj = delete_one(api, r, &key, name, &opts, dry_run)?;
    Ok(Reply::ok(obj))
}

// ANCHOR: delete_one
/// Deletes one object; returns it as it was deleted (or as marked).
///
/// Deletion is immediate unless something has to happen first:
/// - a pod running on a node gets a grace period: the server only sets
///   `deletionTimestamp` (now + grace) and the kubelet stops the containers
///   and then deletes the pod for good (with grace period 0);
/// - finalizers: the object stays, marked with `deletionTimestamp`, until
///   whoever owns each finalizer removes it (see `commit_update`).
pub(super) fn delete_one(
    api: &ApiServer,
    r: &Resource,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
    dry_run: bool,
) -> Result<Value, ApiError> {
    guaranteed_update(api, key, |kv| {
        let kv = kv.ok_or_else(|| ApiError::not_found(r, name))?;
        let obj = object_from_kv(kv);
        if let Some(uid) = &opts.uid
            && uid != meta_str(&obj, "uid")
        {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            ));
        }
        let mut obj = obj;
        let finalizers_changed =
            apply_propagation_policy(&mut obj, opts.propagation_policy.as_deref());
        let grace = if r.kind == "Pod" {
            pod_grace_period(&obj, opts)
        } else {
            0
        };
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if grace == 0 && !has_finalizers {
            return Ok(if dry_run {
                Write::Keep(obj)
            } else {
                Write::Delete(obj)
            });
        }
        // Mark for deletion. A second delete may shorten the grace period,
        // never lengthen it.
        let current_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if obj.pointer("/metadata/deletionTimestamp").is_some()
            && current_grace.is_some_and(|g| g <= grace)
            && !finalizers_changed
        {
            return Ok(Write::Keep(obj));
        }
        let mut marked = obj.clone();
        let at = crate::machinery::clock::now() + SignedDuration::from_secs(grace);
        let meta = meta_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(format_time(at)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        Ok(if dry_run {
            Write::Keep(marked)
        } else {
            Write::Update(marked)
        })
    })
}
// ANCHOR_END: delete_one

// ANCHOR: propagation_policy
/// How a delete treats the object's dependents (upstream's
/// `deletionFinalizersForGarbageCollection`). The API server does not
/// delete dependents itself; it only records the request as a finalizer for
/// the garbage collector, which is a controller like any other:
///
/// - `Orphan`: finalizer `orphan`. The collector removes this object's
///   ownerReference from every dependent, then the finalizer.
/// - `Foreground`: finalizer `foregroundDeletion`. The collector deletes
///   the dependents, and removes the finalizer when none that blocks
///   (`blockOwnerDeletion: true`) is left.
/// - `Background` (the default for apps/v1 and core/v1): neither; the
///   object goes at once and the collector deletes the dependents after.
///
/// With a finalizer the object stays, with `deletionTimestamp` set, until
/// the collector is done, so without a garbage collector running an orphan
/// or foreground delete never finishes. Returns whether the finalizers
/// changed.
fn apply_propagation_policy(obj: &mut Value, policy: Option<&str>) -> bool {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let (add, remove): (&[&str], &[&str]) = match policy {
        Some("Orphan") => (&[ORPHAN], &[FOREGROUND]),
        Some("Foreground") => (&[FOREGROUND], &[ORPHAN]),
        Some("Background") => (&[], &[ORPHAN, FOREGROUND]),
        _ => return false,
    };
    let before: Vec<String> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut after: Vec<String> = before
        .iter()
        .filter(|f| !remove.contains(&f.as_str()))
        .cloned()
        .collect();
    for f in add {
        if !after.iter().any(|x| x == f) {
            after.push(f.to_string());
        }
    }
    if after == before {
        return false;
    }
    let meta = meta_mut(obj);
    if after.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(after));
    }
    true
}
// ANCHOR_END: propagation_policy

/// The grace period of a pod deletion: the request's, else the pod's
/// `terminationGracePeriodSeconds`. A pod that never reached a node, or has
/// already finished, has nothing to stop and goes at once.
fn pod_grace_period(pod: &Value, opts: &DeleteOptions) -> i64 {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

pub fn delete_collection(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let sel = Selectors::from_call(call)?;
    let opts = delete_options(call)?;
    let dry_run = call.query.dry_run()?;
    let (kvs, _) = api
        .store()
        .list(&r.prefix(call.target.namespace.as_deref()));
    let mut deleted = Vec::new();
    for kv in kvs {
        let obj = object_from_kv(&kv);
        if !sel.matches(&obj) {
            continue;
        }
        let name = meta_str(&obj, "name").to_string();
        if r.kind == "Namespace" && INITIAL_NAMESPACES.contains(&name.as_str()) {
            continue;
        }
        match delete_one(api, r, &kv.key, &name, &opts, dry_run) {
            Ok(obj) => deleted.push(obj),
            // Deleted by someone else meanwhile: that is fine.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": r.list_kind(),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": api.store().revision().to_string()},
        "items": deleted,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_policy_becomes_a_finalizer() {
        let mut rs = json!({"metadata": {"name": "web", "finalizers": ["keep"]}});
        assert!(!apply_propagation_policy(&mut rs, None));
        assert!(apply_propagation_policy(&mut rs, Some("Orphan")));
        assert_eq!(rs["metadata"]["finalizers"], json!(["keep", "orphan"]));
        assert!(!apply_propagation_policy(&mut rs, Some("Orphan")));
        assert!(apply_propagation_policy(&mut rs, Some("Foreground")));
        assert_eq!(
            rs["metadata"]["finalizers"],
            json!(["keep", "foregroundDeletion"])
        );
        assert!(apply_propagation_policy(&mut rs, Some("Background")));
        assert_eq!(rs["metadata"]["finalizers"], json!(["keep"]));
        let mut pod = json!({"metadata": {"name": "p"}});
        assert!(!apply_propagation_policy(&mut pod, Some("Background")));
        assert!(pod["metadata"].get("finalizers").is_none());
    }
}
