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

use serde_json::{Map, Value};

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

/// Server-side apply, the subset this server implements.
///
/// What we do: merge the applied configuration into the live object with
/// the strategic-merge rules above (containers by name, ports by
/// `containerPort`, ...), but **never delete**: `null`s in the applied
/// configuration are ignored ("no opinion"), and patch directives are
/// rejected (they are not part of the apply format). `apiVersion`/`kind`
/// in the configuration must match the object's (400 otherwise).
/// Creating a missing object (201) is the HTTP layer's job: it applies the
/// configuration to an empty object.
///
/// What full SSA adds and we leave out: `metadata.managedFields`, which
/// records which *field manager* (`kubectl`, `krs-manager`, a controller)
/// owns each field. With it, the server (1) removes fields a manager
/// applied before but no longer applies, and (2) detects conflicts: applying
/// a value that another manager owns fails with 409 Conflict unless
/// `force=true` (`kubectl apply --server-side --force-conflicts`), which
/// transfers ownership.
pub fn apply_patch(live: &Value, applied: &Value, kind: &str) -> Result<Value, PatchError> {
    let Value::Object(cfg) = applied else {
        return Err(PatchError::InvalidPatch(
            "apply patch: the configuration must be an object".into(),
        ));
    };
    if let Some(k) = cfg.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != kind
    {
        return Err(PatchError::InvalidPatch(format!(
            "apply patch: the kind in the data ({k}) does not match the expected kind ({kind})"
        )));
    }
    if let (Some(want), Some(have)) = (
        cfg.get("apiVersion").and_then(Value::as_str),
        live.get("apiVersion").and_then(Value::as_str),
    ) && want != have
    {
        return Err(PatchError::InvalidPatch(format!(
            "apply patch: the API version in the data ({want}) does not match the expected API version ({have})"
        )));
    }
    let mut cfg = applied.clone();
    drop_nulls(&mut cfg);
    reject_directives(&cfg)?;
    strategic_merge_patch(live, &cfg, kind)
}

fn reject_directives(v: &Value) -> Result<(), PatchError> {
    match v {
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| k.starts_with('$')) {
                return Err(PatchError::InvalidPatch(format!(
                    "apply patch: unknown field {k:?}: patch directives are not allowed in an applied configuration"
                )));
            }
            m.values().try_for_each(reject_directives)
        }
        Value::Array(a) => a.iter().try_for_each(reject_directives),
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "finalizers": ["a", "b"],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "app:v1",
                                "args": ["--a"],
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            },
                            {"name": "sidecar", "image": "proxy:v1"},
                        ],
                        "tolerations": [{"key": "k", "operator": "Exists"}],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        })
    }

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json; charset=utf-8",
                Some(PatchType::StrategicMerge),
            ),
            ("Application/Apply-Patch+YAML", Some(PatchType::Apply)),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
        assert_eq!(
            PatchType::Apply.content_type(),
            "application/apply-patch+yaml"
        );
    }

    #[test]
    fn kubectl_set_image() {
        // Observed body of `kubectl set image deployment/web web=app:v2`.
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"image":"app:v2","name":"web"}]}}}});
        let out = strategic_merge_patch(&deployment(), &patch, "Deployment").unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:v2");
        // Everything else in the container is kept...
        assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
        assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
        // ...and so is the container the patch did not mention.
        assert_eq!(containers[1]["name"], "sidecar");
        let mut want = deployment();
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:v2");
        assert_eq!(out, want);
    }

    #[test]
    fn kubectl_apply_three_way_patch() {
        // Observed body of `kubectl apply -f deployment-v2.yaml` (shortened
        // annotation): replicas 4, image v2, env added, ports removed.
        let patch = json!({
            "metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"}},
            "spec":{"replicas":4,"template":{"spec":{
                "$setElementOrder/containers":[{"name":"web"}],
                "containers":[{"env":[{"name":"MODE","value":"prod"}],"image":"app:v2","name":"web","ports":null}]}}}});
        let out = strategic_merge_patch(&deployment(), &patch, "Deployment").unwrap();
        assert_eq!(out["spec"]["replicas"], 4);
        let web = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(web["image"], "app:v2");
        assert!(
            web.get("ports").is_none(),
            "null inside a list element deletes the field"
        );
        assert_eq!(
            web["env"],
            json!([{"name":"A","value":"1"},{"name":"B","value":"2"},{"name":"MODE","value":"prod"}])
        );
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision":"1","kubectl.kubernetes.io/last-applied-configuration":"{}\n"})
        );
    }

    #[test]
    fn kubectl_rollout_pause_resume_restart() {
        let paused = strategic_merge_patch(
            &deployment(),
            &json!({"spec":{"paused":true}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(paused["spec"]["paused"], true);
        let resumed =
            strategic_merge_patch(&paused, &json!({"spec":{"paused":null}}), "Deployment").unwrap();
        assert!(resumed["spec"].get("paused").is_none());
        assert_eq!(resumed, deployment());

        let restart = json!({"spec":{"template":{"metadata":{"annotations":{
            "kubectl.kubernetes.io/restartedAt":"2026-11-27T22:03:17Z"}}}}});
        let out = strategic_merge_patch(&deployment(), &restart, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["metadata"],
            json!({"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-27T22:03:17Z"}})
        );
    }

    #[test]
    fn kubectl_rollout_undo_json_patch() {
        let old_template = json!({
            "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "app:v0"}]},
        });
        let patch = json!([
            {"op":"replace","path":"/spec/template","value": old_template},
            {"op":"replace","path":"/metadata/annotations","value":{"deployment.kubernetes.io/revision":"1","x":"y"}},
        ]);
        let mut out = json_patch(&deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["metadata"]["creationTimestamp"],
            Value::Null
        );
        drop_nulls(&mut out);
        assert_eq!(
            out["spec"]["template"],
            json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"app:v0"}]}})
        );
        assert_eq!(out["metadata"]["annotations"]["x"], "y");
    }

    #[test]
    fn json_patch_errors() {
        let d = json!({"metadata": {"name": "web"}});
        // replace on a missing path fails: 422.
        let err = json_patch(
            &d,
            &json!([{"op":"replace","path":"/metadata/annotations","value":{}}]),
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 422);
        assert!(
            matches!(&err, PatchError::Unprocessable { field, .. } if field == "/metadata/annotations"),
            "{err:?}"
        );
        // A failed test: 422.
        let err = json_patch(
            &d,
            &json!([{"op":"test","path":"/metadata/name","value":"db"}]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::TestFailed {
                path: "/metadata/name".into()
            }
        );
        assert_eq!(err.status_code(), 422);
        // Not a patch document at all: 400.
        for bad in [
            json!({"op":"add"}),
            json!([{"op":"frobnicate","path":"/x"}]),
            json!([{"path":"/x"}]),
        ] {
            let err = json_patch(&d, &bad).unwrap_err();
            assert_eq!(err.status_code(), 400, "{bad}");
        }
        // add, remove, move, copy, test all work.
        let out = json_patch(
            &d,
            &json!([
                {"op":"add","path":"/metadata/labels","value":{"a":"1"}},
                {"op":"copy","from":"/metadata/labels","path":"/metadata/annotations"},
                {"op":"move","from":"/metadata/annotations/a","path":"/metadata/annotations/b"},
                {"op":"remove","path":"/metadata/labels"},
                {"op":"test","path":"/metadata/annotations/b","value":"1"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata":{"name":"web","annotations":{"b":"1"}}})
        );
    }

    #[test]
    fn merge_patch_rfc7386() {
        // Cases from RFC 7386, appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
        // kubectl scale on /scale and kubectl annotate.
        let out = merge_patch(&deployment(), &json!({"spec":{"replicas":5}}));
        assert_eq!(out["spec"]["replicas"], 5);
        let out = merge_patch(
            &deployment(),
            &json!({"metadata":{"annotations":{"kubernetes.io/change-cause":"x"}}}),
        );
        assert_eq!(
            out["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "x"
        );
        assert_eq!(
            out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
    }

    #[test]
    fn strategic_lists_by_kind() {
        let d = deployment();
        let spec = |v: &Value| v["spec"]["template"]["spec"].clone();
        // Lists without a merge key are replaced.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "tolerations":[{"key":"x","operator":"Exists"}],
            "containers":[{"name":"web","args":["--b"]}]}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(
            spec(&out)["tolerations"],
            json!([{"key":"x","operator":"Exists"}])
        );
        assert_eq!(spec(&out)["containers"][0]["args"], json!(["--b"]));
        // Container ports merge by containerPort, env by name (null inside deletes).
        let out = strategic_merge_patch(&d, &json!({"spec":{"template":{"spec":{
            "containers":[{"name":"web",
                "ports":[{"containerPort":9090},{"containerPort":8080,"name":"http"}],
                "env":[{"name":"A","value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}}}}), "Deployment").unwrap();
        assert_eq!(
            spec(&out)["containers"][0]["ports"],
            json!([{"containerPort":8080,"protocol":"TCP","name":"http"},{"containerPort":9090}])
        );
        assert_eq!(
            spec(&out)["containers"][0]["env"][0],
            json!({"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}})
        );
        // Volumes by name; new elements are added.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "volumes":[{"name":"cfg","configMap":{"name":"c"}}]}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(spec(&out)["volumes"].as_array().unwrap().len(), 2);
        // The same pod-spec paths for a Pod.
        let pod = json!({"kind":"Pod","spec": d["spec"]["template"]["spec"].clone()});
        let out = strategic_merge_patch(
            &pod,
            &json!({"spec":{"containers":[{"name":"sidecar","image":"proxy:v2"}]}}),
            "Pod",
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "app:v1");
        assert_eq!(out["spec"]["containers"][1]["image"], "proxy:v2");
        // Service ports by port.
        let svc = json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443}]}});
        let out = strategic_merge_patch(
            &svc,
            &json!({"spec":{"ports":[{"port":80,"nodePort":30080}]}}),
            "Service",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port":80,"targetPort":8080,"nodePort":30080},{"port":443}])
        );
        // Conditions by type, ownerReferences by uid.
        let rs = json!({"metadata":{"ownerReferences":[{"uid":"u1","name":"a"}]},
                        "status":{"conditions":[{"type":"A","status":"True"}]}});
        let out = strategic_merge_patch(
            &rs,
            &json!({
            "metadata":{"ownerReferences":[{"uid":"u2","name":"b"}]},
            "status":{"conditions":[{"type":"A","status":"False"},{"type":"B","status":"True"}]}}),
            "ReplicaSet",
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type":"A","status":"False"},{"type":"B","status":"True"}])
        );
        // An element without its merge key is a bad patch (400).
        let err = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 400);
        // Unknown kinds: lists are replaced.
        let out = strategic_merge_patch(
            &json!({"items":[{"name":"a"}]}),
            &json!({"items":[{"name":"b"}]}),
            "Widget",
        )
        .unwrap();
        assert_eq!(out["items"], json!([{"name":"b"}]));
    }

    #[test]
    fn strategic_directives() {
        let d = deployment();
        let spec = |v: &Value| v["spec"]["template"]["spec"].clone();
        // $patch: delete on a list element.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "containers":[{"name":"sidecar","$patch":"delete"}]}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(spec(&out)["containers"].as_array().unwrap().len(), 1);
        // $patch: replace as a list element.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "containers":[{"name":"only","image":"x"},{"$patch":"replace"}]}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(
            spec(&out)["containers"],
            json!([{"name":"only","image":"x"}])
        );
        // $patch: replace on a map.
        let out = strategic_merge_patch(
            &d,
            &json!({"metadata":{"labels":{"$patch":"replace","new":"1"}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"new":"1"}));
        // $patch: delete on a map.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"strategy":{"$patch":"delete"}}}),
            "Deployment",
        )
        .unwrap();
        assert!(out["spec"].get("strategy").is_none());
        // $retainKeys: switching the strategy to Recreate drops rollingUpdate.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"strategy":{
            "$retainKeys":["type"],"type":"Recreate","rollingUpdate":null}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
        let err = strategic_merge_patch(
            &d,
            &json!({"spec":{"strategy":{
            "$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}}),
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 422);
        // $deleteFromPrimitiveList and primitive merge of finalizers.
        let out = strategic_merge_patch(
            &d,
            &json!({"metadata":{
            "$deleteFromPrimitiveList/finalizers":["a"],"finalizers":["c"]}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        // $setElementOrder reorders named elements, others follow.
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"sidecar"},{"name":"web"}]}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(spec(&out)["containers"][0]["name"], "sidecar");
        let out = strategic_merge_patch(
            &d,
            &json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"new"},{"name":"web"}],
            "containers":[{"name":"new","image":"n:1"}]}}}}),
            "Deployment",
        )
        .unwrap();
        let names: Vec<_> = spec(&out)["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("new"), json!("web"), json!("sidecar")]);
        // New fields are cleaned too: no nulls or directives are stored.
        let out = strategic_merge_patch(
            &json!({}),
            &json!({"spec":{"a":null,"b":{"$patch":"merge","c":1}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(out, json!({"spec":{"b":{"c":1}}}));
        // Bad directives are 400.
        for bad in [
            json!({"$patch":"frob"}),
            json!({"$bogus":1}),
            json!({"$retainKeys":"x"}),
        ] {
            assert_eq!(
                strategic_merge_patch(&d, &bad, "Deployment")
                    .unwrap_err()
                    .status_code(),
                400,
                "{bad}"
            );
        }
        assert!(strategic_merge_patch(&d, &json!([1]), "Deployment").is_err());
    }

    #[test]
    fn server_side_apply_subset() {
        // kubectl apply --server-side -f ssa.yaml, applied to the live object.
        let applied = json!({
            "apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"replicas":5,"selector":{"matchLabels":{"app":"web"}},
                "template":{"metadata":{"labels":{"app":"web"},"creationTimestamp":null},
                    "spec":{"containers":[{"name":"web","image":"app:v3"}]}}}});
        let out = apply_patch(&deployment(), &applied, "Deployment").unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "app:v3");
        // Nothing is deleted: fields and containers the config omits stay.
        assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 8080);
        assert_eq!(spec["containers"][1]["name"], "sidecar");
        assert!(
            out["spec"]["template"]["metadata"]
                .get("creationTimestamp")
                .is_none()
        );
        // Applying to an empty object is how a missing object is created.
        let created = apply_patch(&json!({}), &applied, "Deployment").unwrap();
        assert_eq!(created["spec"]["replicas"], 5);
        // Wrong kind or apiVersion, directives: 400.
        let mut wrong = applied.clone();
        wrong["kind"] = json!("ReplicaSet");
        assert_eq!(
            apply_patch(&deployment(), &wrong, "Deployment")
                .unwrap_err()
                .status_code(),
            400
        );
        let mut wrong = applied.clone();
        wrong["apiVersion"] = json!("apps/v2");
        assert_eq!(
            apply_patch(&deployment(), &wrong, "Deployment")
                .unwrap_err()
                .status_code(),
            400
        );
        let err = apply_patch(
            &deployment(),
            &json!({"spec":{"$patch":"replace"}}),
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn decoding_bodies() {
        assert_eq!(
            decode_body(PatchType::Merge, br#"{"a":1}"#).unwrap(),
            json!({"a":1})
        );
        assert_eq!(
            decode_body(PatchType::Merge, b"a: 1")
                .unwrap_err()
                .status_code(),
            400
        );
        assert_eq!(
            decode_body(
                PatchType::Apply,
                b"kind: Deployment\nspec:\n  replicas: 2\n"
            )
            .unwrap(),
            json!({"kind":"Deployment","spec":{"replicas":2}})
        );
        assert_eq!(
            decode_body(PatchType::Apply, b"a: [")
                .unwrap_err()
                .status_code(),
            400
        );
    }

    /// Arbitrary JSON built from the words the patch code reacts to, so
    /// that random documents hit directives, merge keys and known paths.
    pub(crate) fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let word = prop::sample::select(vec![
            "spec",
            "template",
            "containers",
            "name",
            "image",
            "ports",
            "containerPort",
            "env",
            "metadata",
            "labels",
            "finalizers",
            "strategy",
            "$patch",
            "$retainKeys",
            "$setElementOrder/containers",
            "$deleteFromPrimitiveList/finalizers",
            "replace",
            "delete",
            "merge",
            "status",
            "conditions",
            "type",
            "replicas",
            "selector",
            "é",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            word.clone().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(word.clone().prop_map(String::from), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// No patch document, however odd, panics the server: every path
        /// ends in a value or an error.
        #[test]
        fn random_patches_never_panic(target in arb_json(), patch in arb_json()) {
            for kind in ["Deployment", "Pod", "Service", "Widget"] {
                let _ = strategic_merge_patch(&target, &patch, kind);
                let _ = apply_patch(&target, &patch, kind);
                let mut v = target.clone();
                crate::apiserver::defaults::apply_defaults(kind, &mut v);
                let _ = crate::apiserver::validation::validate(kind, &v, Some(&target));
                let _ = crate::apiserver::table::table(
                    kind, &[v], "1", k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            }
            let _ = json_patch(&target, &patch);
            let _ = merge_patch(&target, &patch);
        }

        /// Strategic merge with an empty patch changes nothing.
        #[test]
        fn empty_patch_is_identity(target in arb_json()) {
            if target.is_object() {
                let out = strategic_merge_patch(&target, &json!({}), "Deployment").unwrap();
                proptest::prop_assert_eq!(out, target);
            }
        }
    }
}
