//! Server-side apply of the demo's objects, and their deletion.
//!
//! Every step that creates Kubernetes objects sends them with **server-side
//! apply** (`PATCH` with `application/apply-patch+yaml`, field manager
//! `workbook-demo`): the API server creates what is missing and updates
//! what differs, so running a step twice, or again after Ctrl-C, ends in
//! the same objects. That is what makes the demo's steps idempotent.
//!
//! The objects come in as JSON values (from the typed k8s-openapi objects
//! of [`crate::manifests`] and [`crate::kind::manifests`], or the step
//! machine's [`crate::targets::AnyObject`]s), so one function handles every
//! kind the demo uses.

use anyhow::{Context, bail};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The field manager the demo's applies are recorded under
/// (`kubectl get … --show-managed-fields` shows it).
pub use crate::FIELD_MANAGER;

/// A typed object as the JSON the API takes (k8s-openapi writes
/// `apiVersion` and `kind`).
pub fn to_value<K: serde::Serialize>(object: &K) -> Value {
    serde_json::to_value(object).expect("k8s-openapi objects serialize")
}

/// The resource (URL path) of a kind the demo applies, and whether it is
/// namespaced.
fn resource(api_version: &str, kind: &str) -> anyhow::Result<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        "Service" => ("services", true),
        "Deployment" => ("deployments", true),
        "Pod" => ("pods", true),
        other => bail!("the demo does not apply {other} objects"),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// The API for `object`'s kind, in its namespace, and its name.
fn api_for(client: &kube::Client, object: &Value) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let field = |path: &str| object.pointer(path).and_then(Value::as_str);
    let (Some(api_version), Some(kind), Some(name)) = (
        field("/apiVersion"),
        field("/kind"),
        field("/metadata/name"),
    ) else {
        bail!("an object without apiVersion, kind or metadata.name: {object}");
    };
    let (ar, namespaced) = resource(api_version, kind)?;
    let api = if namespaced {
        let ns = field("/metadata/namespace").unwrap_or("default");
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    Ok((api, format!("{kind}/{name}")))
}

// ANCHOR: apply
/// `kubectl apply --server-side --field-manager=workbook-demo
/// --force-conflicts -f -` for one object. `force`: the demo owns these
/// objects, so a field another manager set (a `kubectl edit` during the
/// talk) is taken over rather than refused.
pub async fn apply(client: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let (api, shown) = api_for(client, object)?;
    let name = shown.split_once('/').map(|(_, n)| n).unwrap_or(&shown);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(object))
        .await
        .with_context(|| format!("cannot apply {shown}"))?;
    Ok(())
}
// ANCHOR_END: apply

/// Deletes `object`; an object that is gone already is fine. Returns
/// whether there was one.
pub async fn delete(client: &kube::Client, object: &Value) -> anyhow::Result<bool> {
    let (api, shown) = api_for(client, object)?;
    let name = shown.split_once('/').map(|(_, n)| n).unwrap_or(&shown);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {shown}")),
    }
}

/// The namespaces the demo never deletes, even when it applied them.
pub fn is_shared_namespace(name: &str) -> bool {
    matches!(
        name,
        "default" | "kube-system" | "kube-public" | "kube-node-lease"
    )
}
