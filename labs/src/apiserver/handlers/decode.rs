//! Decoding a request body into an object of the resource's kind: the
//! round trip through the k8s-openapi type (the real server decodes into
//! its Go types) and the `fieldValidation` query parameter for the fields
//! the type does not know.
//!
//! Upstream: the decoding steps of `k8s.io/apiserver/pkg/endpoints/handlers/
//! create.go` and `update.go`, with `fieldValidation` from
//! `endpoints/handlers/rest.go` and the strict decoding of
//! `k8s.io/apimachinery/pkg/runtime/serializer/json`.

use serde_json::Value;

use crate::apiserver::request::Call;
use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;

/// Rejects bodies the k8s-openapi type cannot decode (400, as the real
/// server does when its Go types cannot), and reports fields the type does
/// not know. `fieldValidation=Strict` (kubectl's default) makes them an
/// error, `Ignore` drops them silently, anything else warns.
pub(super) fn decode_typed(
    r: &Resource,
    call: &Call,
    obj: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            r.kind, r.version, r.kind
        ))
    };
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version != r.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != r.kind
    {
        return Err(cannot(format!(
            "no kind \"{kind}\" is registered for version \"{}\"",
            r.api_version()
        )));
    }
    let typed = r
        .round_trip(obj.clone())
        .map_err(|e| cannot(e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&obj, &typed, "", &mut unknown);
    let warnings: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match call.query.get("fieldValidation") {
        Some("Strict") if !warnings.is_empty() => Err(cannot(format!(
            "strict decoding error: {}",
            warnings.join(", ")
        ))),
        Some("Ignore") => Ok((typed, vec![])),
        _ => Ok((typed, warnings)),
    }
}

/// Paths present (and not null) in `before` but gone after the round trip.
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    None => out.push(p),
                    Some(av) => unknown_fields(v, av, &p, out),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found() {
        let before =
            json!({"spec":{"replicas":1,"replicaz":2,"template":{"x":null}},"a":[{"b":1}]});
        let after = json!({"spec":{"replicas":1,"template":{}},"a":[{}]});
        let mut out = vec![];
        unknown_fields(&before, &after, "", &mut out);
        assert_eq!(out, vec!["a[0].b", "spec.replicaz"]);
    }
}
