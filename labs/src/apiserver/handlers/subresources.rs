//! The subresources with verbs of their own: `/scale` (the
//! `autoscaling/v1` Scale view of a Deployment or ReplicaSet) and a pod's
//! `/binding` (how the scheduler assigns it to a node). `/status` is the
//! main resource's update with the other half kept ([`super::strategy`]).
//!
//! Upstream: `ScaleREST` in `pkg/registry/apps/{deployment,replicaset}/
//! storage/storage.go` and `BindingREST` in
//! `pkg/registry/core/pod/storage/storage.go`.

use serde_json::{Value, json};

use super::storage::{Write, guaranteed_update, object_from_kv};
use super::update::before_update;
use super::{Reply, key_of, meta_mut, meta_str, now, target_name};
use crate::apiserver::ApiServer;
use crate::apiserver::request::Call;
use crate::apiserver::resources::Resource;
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::status::{self, ApiError};
use crate::apiserver::validation::{FieldError, FieldErrorKind};

// ANCHOR: scale
/// The `autoscaling/v1` `Scale` view of a Deployment or ReplicaSet: what
/// `kubectl scale` and autoscalers read and write instead of the whole
/// object.
pub(super) fn scale_of(r: &Resource, obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_api_value(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{field}")) {
            meta[field] = v.clone();
        }
    }
    let _ = r;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// The object with `spec.replicas` taken from a written `Scale`.
pub(super) fn scaled(r: &Resource, current: &Value, scale: &Value) -> Result<Value, ApiError> {
    let name = meta_str(current, "name");
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let bad = |detail: &str| {
        ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError {
                kind: FieldErrorKind::Invalid,
                field: "spec.replicas".into(),
                bad_value: Some(replicas.clone()),
                detail: detail.into(),
            }],
        )
    };
    let n = replicas.as_i64().ok_or_else(|| bad("must be an integer"))?;
    if n < 0 {
        return Err(bad("must be greater than or equal to 0"));
    }
    if n > i64::from(i32::MAX) {
        return Err(bad("must be less than or equal to 2147483647"));
    }
    let _ = r;
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(n);
    Ok(new)
}
// ANCHOR_END: scale

pub fn get_scale(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let kv = api
        .store()
        .get(&key_of(r, call))
        .ok_or_else(|| ApiError::not_found(r, target_name(call)))?;
    Ok(Reply::ok(scale_of(r, &object_from_kv(&kv))))
}

pub fn update_scale(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let body = call.decode_object()?;
    let precondition = meta_str(&body, "resourceVersion").to_string();
    let key = key_of(r, call);
    let dry_run = call.query.dry_run()?;
    let obj = guaranteed_update(api, &key, |kv| {
        let kv = kv.ok_or_else(|| ApiError::not_found(r, name))?;
        if !precondition.is_empty() && precondition != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(r, name));
        }
        let current = object_from_kv(kv);
        let new = scaled(r, &current, &body)?;
        before_update(r, None, &current, new, dry_run)
    })?;
    Ok(Reply::ok(scale_of(r, &obj)))
}

// ANCHOR: bind
/// `POST pods/{name}/binding`: how the scheduler assigns a pod to a node.
/// A pod is bound once; a second binding is a conflict, which is how two
/// schedulers racing for the same pod find out.
pub fn bind(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let r = call.target.resource;
    let name = target_name(call);
    let binding = call.decode_object()?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            name,
            &[FieldError {
                kind: FieldErrorKind::Required,
                field: "target.name".into(),
                bad_value: None,
                detail: "".into(),
            }],
        ));
    }
    let key = key_of(r, call);
    guaranteed_update(api, &key, |kv| {
        let kv = kv.ok_or_else(|| ApiError::not_found(r, name))?;
        let mut pod = object_from_kv(kv);
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let current = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict_because(
                r,
                name,
                &format!("pod {name} is already assigned to node {current:?}"),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        // The Binding's annotations are copied onto the pod (upstream's
        // `setPodNodeAndMetadata`): a scheduler can record something about
        // its decision in the same write that binds.
        if let Some(Value::Object(annotations)) = binding.pointer("/metadata/annotations")
            && !annotations.is_empty()
        {
            let meta = meta_mut(&mut pod);
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in annotations {
                target[k.as_str()] = v.clone();
            }
        }
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
        if let Some(Value::Array(conds)) = conditions {
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(
                json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}),
            );
        }
        if call.query.dry_run()? {
            return Ok(Write::Keep(pod));
        }
        Ok(Write::Update(pod))
    })?;
    Ok(Reply::created(status::success(201)))
}
// ANCHOR_END: bind
