//! `POST` to a collection: create an object, with `generateName`, the
//! NamespaceLifecycle admission check, and the addresses a Service gets.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/create.go`, the
//! `Create` of `registry/generic/registry/store.go`, and the Service
//! registry's `BeginCreate` (`pkg/registry/core/service/storage`), which
//! takes the addresses from [`crate::apiserver::allocator`].

use serde_json::{Value, json};

use super::decode::decode_typed;
use super::storage::{object_from_kv, to_store_bytes};
use super::strategy::prepare_create;
use super::{Reply, meta_mut, meta_str};
use crate::apiserver::request::Call;
use crate::apiserver::status::ApiError;
use crate::apiserver::validation::{self, FieldError, FieldErrorKind};
use crate::apiserver::{ApiServer, defaults, resources};
use crate::store::StoreError;

pub fn create(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    if call.target.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let obj = call.decode_object()?;
    let (obj, warnings) = decode_typed(call.target.resource, call, obj)?;
    let created = create_object(api, call, obj)?;
    Ok(Reply::created(created).warn(warnings))
}

/// The characters of generated name suffixes: no vowels (no accidental
/// words) and no look-alikes (`0/o`, `1/l`). Upstream `util/rand.String`.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[..5]
        .iter()
        .map(|b| NAME_ALPHABET[*b as usize % NAME_ALPHABET.len()] as char)
        .collect()
}

// ANCHOR: create_object
/// Creates a decoded object (also used by server-side apply of a missing
/// object). Returns it as stored, with its resourceVersion.
pub(super) fn create_object(
    api: &ApiServer,
    call: &Call,
    mut obj: Value,
) -> Result<Value, ApiError> {
    let r = call.target.resource;
    let url_ns = call.target.namespace.as_deref();
    prepare_create(r, url_ns, &mut obj)?;
    defaults::apply_defaults(r.kind, &mut obj);
    if r.kind == "Pod" {
        let config = api.config();
        defaults::default_toleration_seconds(
            &mut obj,
            config.default_not_ready_toleration_seconds,
            config.default_unreachable_toleration_seconds,
        );
    }
    if r.kind == "Pod" {
        service_account_admission(api, url_ns, &mut obj)?;
    }
    // The Service registry's BeginCreate: the addresses are taken before
    // validation and the write, and given back if either fails.
    let taken = if r.kind == "Service" {
        let name = meta_str(&obj, "name").to_string();
        let taken = api
            .allocators()
            .allocate(None, &mut obj)
            .map_err(|e| super::storage::service_alloc_error(r, &name, e))?;
        Some(taken)
    } else {
        None
    };
    let result = store_new_object(api, call, obj);
    if let Some(taken) = taken {
        let dry_run = call.query.dry_run().unwrap_or(false);
        if result.is_err() || dry_run {
            api.allocators().undo(&taken);
        }
    }
    result
}

// ANCHOR: service_account_admission
/// The ServiceAccount admission plugin, on pod creation: a pod runs as a
/// ServiceAccount of its namespace — `default` unless it names another —
/// and one that names a ServiceAccount which does not exist is refused,
/// with upstream's message.
///
/// Two parts of upstream's plugin are left out. It mounts the account's
/// token into every container (the `kube-api-access-*` projected volume):
/// the lab server authenticates nobody, so a token would prove nothing.
/// And it refuses a pod whose `default` account is missing too, after
/// waiting a moment for the service-account controller to create it; here
/// a missing `default` is let through, because many labs run the API
/// server without a controller manager, and a pod that cannot be created
/// there would hide the lesson of the lab.
fn service_account_admission(
    api: &ApiServer,
    namespace: Option<&str>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => DEFAULT_SERVICE_ACCOUNT.to_string(),
    };
    spec.insert("serviceAccountName".into(), json!(name));
    // The deprecated field mirrors the new one, as the v1 conversion does.
    spec.insert("serviceAccount".into(), json!(name));
    let ns = namespace.unwrap_or("default");
    let sar = resources::by_kind("ServiceAccount").expect("serviceaccounts are served");
    let nsr = resources::by_kind("Namespace").expect("namespaces are served");
    let exists = |r: &resources::Resource, ns: Option<&str>, n: &str| {
        api.store().get(&r.key(ns, n)).is_some()
    };
    // A missing namespace is NamespaceLifecycle's to report (404), later.
    if name == DEFAULT_SERVICE_ACCOUNT || !exists(nsr, None, ns) || exists(sar, Some(ns), &name) {
        return Ok(());
    }
    let why = format!(
        "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
    );
    let pods = resources::by_kind("Pod").expect("pods are served");
    // Admission runs before a `generateName` becomes a name, so upstream's
    // `admission.NewForbidden` names the pod by its prefix (`web-`), or
    // `Unknown` if it has neither.
    let pod_name = [meta_str(pod, "name"), meta_str(pod, "generateName")]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or("Unknown");
    Err(ApiError::forbidden(pods, pod_name, &why))
}
// ANCHOR_END: service_account_admission

/// The ServiceAccount every namespace has (the service-account controller
/// creates it) and every pod runs as unless it names another.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Validates and stores a prepared, defaulted object (retrying a generated
/// name that is taken).
fn store_new_object(api: &ApiServer, call: &Call, mut obj: Value) -> Result<Value, ApiError> {
    let r = call.target.resource;
    let url_ns = call.target.namespace.as_deref();
    let generated = meta_str(&obj, "name").is_empty() && !meta_str(&obj, "generateName").is_empty();
    // generateName: upstream retries a few times when the random name is taken.
    for _attempt in 0..8 {
        if generated {
            let name = format!("{}{}", meta_str(&obj, "generateName"), random_suffix());
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        let name = meta_str(&obj, "name").to_string();
        let mut errs = validation::validate(r.kind, &obj, None);
        if name.is_empty() && !errs.iter().any(|e| e.field == "metadata.name") {
            errs.push(FieldError {
                kind: FieldErrorKind::Required,
                field: "metadata.name".into(),
                bad_value: None,
                detail: "name or generateName is required".into(),
            });
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid_resource(r, &name, &errs));
        }
        // The NamespaceLifecycle admission plugin: no objects in a
        // namespace that does not exist.
        if let Some(ns) = url_ns.filter(|_| r.namespaced) {
            let nsr = resources::by_kind("Namespace").expect("namespaces are served");
            if api.store().get(&nsr.key(None, ns)).is_none() {
                return Err(ApiError::not_found(nsr, ns));
            }
        }
        if call.query.dry_run()? {
            return Ok(obj);
        }
        let key = r.key(url_ns, &name);
        match api.store().create(&key, to_store_bytes(&obj)) {
            Ok(kv) => return Ok(object_from_kv(&kv)),
            Err(StoreError::AlreadyExists { .. }) if generated => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::already_exists(r, meta_str(&obj, "name")))
}
// ANCHOR_END: create_object

/// Creates a namespace directly in the store if it is missing (the
/// namespaces every cluster starts with).
pub fn ensure_namespace(api: &ApiServer, name: &str) {
    let r = resources::by_kind("Namespace").expect("namespaces are served");
    let key = r.key(None, name);
    if api.store().get(&key).is_some() {
        return;
    }
    let mut ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {}});
    if prepare_create(r, None, &mut ns).is_ok() {
        defaults::apply_defaults("Namespace", &mut ns);
        let _ = api.store().create(&key, to_store_bytes(&ns));
    }
}
