//! Server-side apply, the subset this server implements: the applied
//! configuration merged in with the strategic-merge rules, never deleting,
//! without `managedFields` (see [`apply_patch`] for what is left out).
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager` and
//! `sigs.k8s.io/structured-merge-diff`.

use serde_json::Value;

use super::{PatchError, drop_nulls, strategic_merge_patch};

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
