//! A validation error as Kubernetes words it: the kinds of field errors,
//! the message of each (with bad values printed as Go prints them), and the
//! 422 `Status` body that lists them.
//!
//! Upstream: `k8s.io/apimachinery/pkg/util/validation/field/errors.go`
//! (`field.Error`, `ErrorBody`) and `NewInvalid` in
//! `k8s.io/apimachinery/pkg/api/errors/errors.go`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The kinds of field errors, with upstream's names (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The value is not acceptable.
    Invalid,
    /// A required field is missing.
    Required,
    /// The value is not one of a fixed set.
    NotSupported,
    /// The value must be unique but is not.
    Duplicate,
    /// The field may not be set (in this context).
    Forbidden,
    /// The value is too long.
    TooLong,
    /// The list has too many items (the value is the count).
    TooMany,
}

/// One validation problem: where, what value, why.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field path, as upstream writes it: `spec.template.spec.containers[0].name`,
    /// `data[key]`.
    pub field: String,
    /// The offending value, for the kinds that print one.
    pub bad_value: Option<Value>,
    /// The explanation after the value.
    pub detail: String,
}

impl FieldError {
    /// The `reason` of the Status cause (`metav1.CauseType`).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
        }
    }

    /// The message of the Status cause, upstream's `ErrorBody`:
    /// `Invalid value: -1: must be greater than or equal to 0`,
    /// `Required value`, `Unsupported value: "X": supported values: "A", "B"`.
    pub fn message(&self) -> String {
        let mut s = match self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong => "Too long".to_string(),
            kind => {
                let label = match kind {
                    FieldErrorKind::Invalid => "Invalid value",
                    FieldErrorKind::NotSupported => "Unsupported value",
                    FieldErrorKind::TooMany => "Too many",
                    _ => "Duplicate value",
                };
                let value = self.bad_value.as_ref().unwrap_or(&Value::Null);
                format!("{label}: {}", render_value(&self.field, value))
            }
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The whole error as upstream's `Error()` prints it: `field: message`.
    pub fn error(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }
}

/// Renders a bad value the way upstream's Go code prints it (`%v` for
/// numbers, `%q` for strings, `%#v` for structs and maps). Upstream prints
/// Go values, so the text depends on the Go *type*, which we infer from the
/// field path for the three cases learners meet most often: label maps
/// (`map[string]string{"app":"web"}`), label selectors (the famous
/// `v1.LabelSelector{...}: field is immutable`) and int-or-string fields
/// (`intstr.IntOrString{...}`). Other structured values print as JSON.
fn render_value(field: &str, v: &Value) -> String {
    let last = field.rsplit('.').next().unwrap_or(field);
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) if last == "maxSurge" || last == "maxUnavailable" => {
            format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                go_quote(s)
            )
        }
        Value::Number(n) if last == "maxSurge" || last == "maxUnavailable" => {
            format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}")
        }
        Value::String(s) => go_quote(s),
        // `spec.clusterIPs` is a Go `[]string`: `[]string{"127.2.1.1"}`.
        Value::Array(a) if last.starts_with("clusterIPs") && a.iter().all(Value::is_string) => {
            let items: Vec<String> = a.iter().filter_map(Value::as_str).map(go_quote).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Object(m)
            if last == "selector"
                && m.keys()
                    .all(|k| k == "matchLabels" || k == "matchExpressions")
                && field.starts_with("spec.")
                && !field.starts_with("spec.ports") =>
        {
            go_label_selector(v)
        }
        Value::Object(m) if last == "labels" || last == "matchLabels" || last == "selector" => {
            if m.values().all(Value::is_string) {
                go_string_map(Some(v))
            } else {
                v.to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// Go's `%q` for the strings we meet (JSON escaping is the same for them).
pub(super) fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as `fmt` sorts them).
fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            let entries: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or(""))))
                .collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`.
fn go_label_selector(v: &Value) -> String {
    let exprs = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => format!(
                            "[]string{{{}}}",
                            vs.iter()
                                .map(|v| go_quote(v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(e.get("key").and_then(Value::as_str).unwrap_or("")),
                        go_quote(e.get("operator").and_then(Value::as_str).unwrap_or(""))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(v.get("matchLabels"))
    )
}

/// The `Status` body for a rejected write (HTTP 422): `kind` is the
/// object's Kind, `group` its API group (`""` for core), `name` its name.
/// The message joins the errors as upstream's aggregate error does
/// (one error: as is; several: `[e1, e2]`).
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    // Upstream's aggregate drops exact duplicates.
    let mut seen = BTreeSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(FieldError::error)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    let message = match msgs.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), msgs[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            msgs.join(", ")
        ),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.message(), "field": e.field}))
        .collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422,
    })
}
