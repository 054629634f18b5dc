//! Strategic merge patch: a merge patch whose lists of objects merge by
//! key (containers by `name`, ports by `containerPort`), with the `$patch`,
//! `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList`
//! directives. Our server has no Go struct tags, so [`list_strategy`]
//! holds the patch strategies of the fields the labs meet as a table.
//!
//! Upstream: `k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`, with
//! the strategies from the `patchStrategy`/`patchMergeKey` tags of
//! `k8s.io/api`.

use serde_json::{Map, Value};

use super::PatchError;

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The list is replaced wholesale (Go: no `patchStrategy`; e.g. `args`,
    /// `command`, `tolerations`, `envFrom`).
    Replace,
    /// A list of objects merged element by element, matched on this key
    /// (Go: `patchStrategy:"merge" patchMergeKey:"<key>"`).
    MergeByKey(&'static str),
    /// A list of strings merged as a set (Go: `patchStrategy:"merge"` on a
    /// primitive list, e.g. `metadata.finalizers`).
    MergePrimitives,
}

/// Where the pod spec sits inside an object of this kind, for the kinds
/// that embed one.
fn pod_spec_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => {
            Some("spec.template.spec")
        }
        "PodTemplate" => Some("template.spec"),
        _ => None,
    }
}

/// The patch strategy of the list at `path` (dotted field names from the
/// object's root, list indices left out) in an object of `kind`.
///
/// This is the per-kind schema table that upstream keeps in Go struct tags
/// (`k8s.io/api/core/v1/types.go` et al.). It covers every list field of the
/// kinds we serve that has a merge strategy; every other list is replaced.
///
/// | path (relative to the pod spec where marked *) | merge key |
/// |---|---|
/// | * `containers`, `initContainers`, `ephemeralContainers` | `name` |
/// | * `<container list>.env` | `name` |
/// | * `<container list>.ports` | `containerPort` |
/// | * `<container list>.volumeMounts` | `mountPath` |
/// | * `<container list>.volumeDevices` | `devicePath` |
/// | * `volumes`, `imagePullSecrets`, `schedulingGates`, `resourceClaims` | `name` |
/// | * `hostAliases` | `ip` |
/// | * `topologySpreadConstraints` | `topologyKey` |
/// | `metadata.ownerReferences` (also a template's) | `uid` |
/// | `metadata.finalizers` | set of strings |
/// | `status.conditions` (every kind) | `type` |
/// | Pod `status.podIPs`, `status.hostIPs` | `ip` |
/// | Node `status.addresses` | `type` |
/// | Node `spec.podCIDRs` | set of strings |
/// | Service `spec.ports` | `port` |
///
/// Replaced, for example: `args`, `command`, `tolerations`, `envFrom`,
/// `readinessGates`, Service `spec.clusterIPs`, Endpoints `subsets`,
/// container statuses.
pub fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    use ListStrategy::*;
    if let Some(rest) =
        pod_spec_prefix(kind).and_then(|p| path.strip_prefix(p).and_then(|r| r.strip_prefix('.')))
    {
        let (list, field) = match rest.split_once('.') {
            Some((list, field)) => (list, Some(field)),
            None => (rest, None),
        };
        let container_list = matches!(
            list,
            "containers" | "initContainers" | "ephemeralContainers"
        );
        return match (list, field) {
            (_, None) if container_list => MergeByKey("name"),
            (_, Some("env")) if container_list => MergeByKey("name"),
            (_, Some("ports")) if container_list => MergeByKey("containerPort"),
            (_, Some("volumeMounts")) if container_list => MergeByKey("mountPath"),
            (_, Some("volumeDevices")) if container_list => MergeByKey("devicePath"),
            ("volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims", None) => {
                MergeByKey("name")
            }
            ("hostAliases", None) => MergeByKey("ip"),
            ("topologySpreadConstraints", None) => MergeByKey("topologyKey"),
            _ => Replace,
        };
    }
    match (kind, path) {
        (_, "metadata.ownerReferences" | "spec.template.metadata.ownerReferences") => {
            MergeByKey("uid")
        }
        (_, "metadata.finalizers" | "spec.template.metadata.finalizers") => MergePrimitives,
        (_, "status.conditions") => MergeByKey("type"),
        ("Pod", "status.podIPs" | "status.hostIPs") => MergeByKey("ip"),
        ("Node", "status.addresses") => MergeByKey("type"),
        ("Node", "spec.podCIDRs") => MergePrimitives,
        ("Service", "spec.ports") => MergeByKey("port"),
        _ => Replace,
    }
}

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Strategic merge patch (`application/strategic-merge-patch+json`).
///
/// Merge-patch rules (objects merge, `null` deletes, scalars replace), plus:
///
/// * lists with a merge key ([`list_strategy`]) are merged element by
///   element: a patch element updates the live element with the same key
///   (recursively, so `null` inside it deletes a field, as in
///   `"ports": null` from `kubectl apply`), or is appended;
/// * other lists are replaced;
/// * directives, which never reach the stored object:
///   * `"$patch": "replace"` in an object (replace it instead of merging)
///     or as a list element (replace the list with the other elements);
///   * `"$patch": "delete"` in an object (delete it) or in a list element
///     (delete the live element with that key);
///   * `"$patch": "merge"`: the default, accepted and ignored;
///   * `"$retainKeys": [..]`: after merging, keep only these keys (used for
///     Deployment `spec.strategy` when switching `type`, and pod `volumes`);
///   * `"$setElementOrder/<list>": [..]`: the order the client wants. We
///     honour it for the elements it names; live elements it does not name
///     (added by someone else) follow them in their previous order. (Upstream
///     interleaves those by their old positions; the difference only shows in
///     lists edited by two writers at once.)
///   * `"$deleteFromPrimitiveList/<list>": [..]`: remove these values from a
///     merged primitive list such as `finalizers`.
///
/// Fields that are new (absent from the live object) are added after the
/// same processing, so nulls and directives never leak into storage.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    kind: &str,
) -> Result<Value, PatchError> {
    let (Value::Object(original), Value::Object(patch)) = (target, patch) else {
        return Err(PatchError::InvalidPatch(
            "strategic merge patch: the patch and the object must both be JSON objects".into(),
        ));
    };
    let mut path = Vec::new();
    match merge_map(original, patch, &mut path, kind)? {
        Some(m) => Ok(Value::Object(m)),
        // `{"$patch":"delete"}` at the root: upstream returns an empty object.
        None => Ok(Value::Object(Map::new())),
    }
}

/// What a `$patch` directive asks for.
enum Directive {
    Merge,
    Replace,
    Delete,
}

fn directive(patch: &Map<String, Value>) -> Result<Directive, PatchError> {
    match patch.get(PATCH_DIRECTIVE) {
        None => Ok(Directive::Merge),
        Some(Value::String(s)) => match s.as_str() {
            "merge" => Ok(Directive::Merge),
            "replace" => Ok(Directive::Replace),
            "delete" => Ok(Directive::Delete),
            other => Err(PatchError::InvalidPatch(format!(
                "unknown patch type: {other:?} in map"
            ))),
        },
        Some(other) => Err(PatchError::InvalidPatch(format!(
            "invalid $patch directive value: {other}"
        ))),
    }
}

fn string_list(v: &Value, what: &str) -> Result<Vec<Value>, PatchError> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        _ => Err(PatchError::InvalidPatch(format!(
            "invalid patch: {what} must be a list, got {v}"
        ))),
    }
}

/// Merges `patch` into `original`. `Ok(None)` means "delete this object"
/// (`$patch: delete`).
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Option<Map<String, Value>>, PatchError> {
    let mut result = match directive(patch)? {
        Directive::Delete => return Ok(None),
        // Replace = merge into nothing, which still strips directives/nulls.
        Directive::Replace => Map::new(),
        Directive::Merge => original.clone(),
    };
    let retain_keys = match patch.get(RETAIN_KEYS_DIRECTIVE) {
        Some(v) => Some(string_list(v, RETAIN_KEYS_DIRECTIVE)?),
        None => None,
    };
    let mut orders = Vec::new();

    for (key, value) in patch {
        if key == PATCH_DIRECTIVE || key == RETAIN_KEYS_DIRECTIVE {
            continue;
        }
        if let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER_PREFIX) {
            orders.push((list.to_string(), string_list(value, key)?));
            continue;
        }
        if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            let remove = string_list(value, key)?;
            if let Some(Value::Array(items)) = result.get_mut(list) {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(PatchError::InvalidPatch(format!(
                "unknown patch directive {key:?}"
            )));
        }
        if let Some(keys) = &retain_keys
            && !value.is_null()
            && !keys.contains(&Value::String(key.clone()))
        {
            // Upstream's ErrPatchContentNotMatchRetainKeys → 422.
            return Err(PatchError::Unprocessable {
                field: field_path(path, key),
                message: format!(
                    "patch content doesn't match retainKeys list: {key:?} is not in $retainKeys"
                ),
            });
        }
        if value.is_null() {
            result.remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = merge_value(result.get(key), value, path, kind);
        path.pop();
        match merged? {
            Some(v) => {
                result.insert(key.clone(), v);
            }
            None => {
                result.remove(key);
            }
        }
    }

    for (list, order) in orders {
        path.push(list.clone());
        let strategy = list_strategy(kind, &path.join("."));
        path.pop();
        if let Some(Value::Array(items)) = result.get_mut(&list) {
            reorder(items, &order, strategy);
        }
    }

    if let Some(keys) = retain_keys {
        result.retain(|k, _| keys.contains(&Value::String(k.clone())));
    }
    Ok(Some(result))
}

fn field_path(path: &[String], key: &str) -> String {
    let mut p = path.to_vec();
    p.push(key.to_string());
    p.join(".")
}

/// Merges one patch value into an optional original value.
fn merge_value(
    original: Option<&Value>,
    patch: &Value,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Option<Value>, PatchError> {
    match (original, patch) {
        (Some(Value::Object(o)), Value::Object(p)) => {
            Ok(merge_map(o, p, path, kind)?.map(Value::Object))
        }
        (_, Value::Object(p)) => Ok(merge_map(&Map::new(), p, path, kind)?.map(Value::Object)),
        (Some(Value::Array(o)), Value::Array(p)) => {
            Ok(Some(Value::Array(merge_list(o, p, path, kind)?)))
        }
        (_, Value::Array(p)) => Ok(Some(Value::Array(merge_list(&[], p, path, kind)?))),
        (_, scalar) => Ok(Some(scalar.clone())),
    }
}

/// A list element's merge key value, or an error naming the missing key
/// (upstream: "map: ... does not contain declared merge key: name").
fn key_of<'a>(elem: &'a Map<String, Value>, key: &str) -> Result<&'a Value, PatchError> {
    elem.get(key).ok_or_else(|| {
        PatchError::InvalidPatch(format!(
            "map: {} does not contain declared merge key: {key}",
            Value::Object(elem.clone())
        ))
    })
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Vec<Value>, PatchError> {
    let strategy = list_strategy(kind, &path.join("."));
    // `{"$patch": "replace"}` as an element: the rest of the patch list is
    // the new list.
    let replace_all = patch.iter().any(|e| {
        e.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("replace")
            && e.as_object().is_some_and(|m| m.len() == 1)
    });
    let fresh = |path: &mut Vec<String>| -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::new();
        for e in patch {
            if e.as_object()
                .is_some_and(|m| m.len() == 1 && m.contains_key(PATCH_DIRECTIVE))
            {
                continue;
            }
            if let Some(v) = merge_value(None, e, path, kind)? {
                out.push(v);
            }
        }
        Ok(out)
    };
    if replace_all {
        return fresh(path);
    }
    match strategy {
        ListStrategy::Replace => fresh(path),
        ListStrategy::MergePrimitives => {
            let mut result = original.to_vec();
            for e in patch {
                if !result.contains(e) {
                    result.push(e.clone());
                }
            }
            Ok(result)
        }
        ListStrategy::MergeByKey(key) => {
            let mut result = original.to_vec();
            for e in patch {
                let Value::Object(p) = e else {
                    return Err(PatchError::InvalidPatch(format!(
                        "invalid patch: the elements of {} must be objects with the merge key {key:?}, got {e}",
                        path.join(".")
                    )));
                };
                let wanted = key_of(p, key)?;
                let pos = result.iter().position(|o| o.get(key) == Some(wanted));
                if let Some(i) = pos {
                    let Value::Object(o) = &result[i] else {
                        unreachable!("position() matched an object")
                    };
                    match merge_map(o, p, path, kind)? {
                        Some(m) => result[i] = Value::Object(m),
                        None => {
                            result.remove(i);
                        }
                    }
                } else if let Some(m) = merge_map(&Map::new(), p, path, kind)? {
                    // A `$patch: delete` for an element that does not exist
                    // is a no-op, hence only `Some` is appended.
                    result.push(Value::Object(m));
                }
            }
            Ok(result)
        }
    }
}

/// Applies `$setElementOrder`: the named elements first, in the given
/// order, then the elements the order does not mention, in their old order.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let id = |v: &Value| -> Option<Value> {
        match strategy {
            ListStrategy::MergeByKey(key) => v.get(key).cloned(),
            _ => Some(v.clone()),
        }
    };
    let wanted: Vec<Value> = order.iter().filter_map(id).collect();
    let mut ordered = Vec::with_capacity(items.len());
    for w in &wanted {
        if let Some(i) = items.iter().position(|v| id(v).as_ref() == Some(w)) {
            ordered.push(items.remove(i));
        }
    }
    ordered.append(items);
    *items = ordered;
}
