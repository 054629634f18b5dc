//! Object metadata, for every kind: names and `generateName`, namespace,
//! labels, annotations and their total size, what an update may not change,
//! and label selectors.
//!
//! Upstream: `k8s.io/apimachinery/pkg/api/validation/objectmeta.go` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go`.

use serde_json::Value;

use super::{Errors, FieldErrorKind, is_namespaced, list_of, name_validator, str_of};
use crate::apiserver::names;

/// Upstream's `TotalAnnotationSizeLimitB`: 256 KiB of keys and values.
pub(super) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

pub(super) fn validate_object_meta(errs: &mut Errors, kind: &str, meta: &Value) {
    let name_fn = name_validator(kind);
    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            errs.invalid("metadata.generateName", generate_name, &msg);
        }
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        // The server fills `name` from `generateName` before validating;
        // if both are empty there is nothing to name the object by.
        if generate_name.is_empty() {
            errs.required("metadata.name", "name or generateName is required");
        }
    } else {
        for msg in name_fn(name, false) {
            errs.invalid("metadata.name", name, &msg);
        }
    }
    // The HTTP layer sets `namespace` from the URL, so only its syntax (and
    // its absence on cluster-scoped kinds) is checked here.
    let namespace = str_of(meta, "namespace");
    if !namespace.is_empty() {
        if is_namespaced(kind) {
            for msg in names::is_dns1123_label(namespace) {
                errs.invalid("metadata.namespace", namespace, &msg);
            }
        } else {
            errs.forbidden("metadata.namespace", "not allowed on this type");
        }
    }
    errs.nonnegative(meta, "generation", "metadata.generation");
    validate_labels(errs, meta.get("labels"), "metadata.labels");
    validate_annotations(errs, meta.get("annotations"), "metadata.annotations");
}

pub(super) fn validate_object_meta_update(errs: &mut Errors, meta: &Value, old: &Value) {
    for key in ["name", "namespace"] {
        let (new, was) = (str_of(meta, key), str_of(old, key));
        if !new.is_empty() && !was.is_empty() && new != was {
            errs.invalid(&format!("metadata.{key}"), new, "field is immutable");
        }
    }
}

pub(super) fn validate_labels(errs: &mut Errors, labels: Option<&Value>, field: &str) {
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        for msg in names::is_qualified_name(k) {
            errs.invalid(field, k.as_str(), &msg);
        }
        let value = v.as_str().unwrap_or("");
        for msg in names::is_valid_label_value(value) {
            errs.invalid(field, value, &msg);
        }
    }
}

pub(super) fn validate_annotations(errs: &mut Errors, annotations: Option<&Value>, field: &str) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (k, v) in map {
        // Annotation keys are qualified names, but case does not matter.
        for msg in names::is_qualified_name(&k.to_lowercase()) {
            errs.invalid(field, k.as_str(), &msg);
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(
            FieldErrorKind::TooLong,
            field,
            None,
            &format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        );
    }
}

/// Upstream's `ValidateLabelSelector` (syntax of `matchLabels` and
/// `matchExpressions`).
pub(super) fn validate_label_selector(errs: &mut Errors, sel: &Value, field: &str) {
    for (i, expr) in list_of(sel, "matchExpressions").iter().enumerate() {
        let path = format!("{field}.matchExpressions[{i}]");
        let values = list_of(expr, "values");
        match str_of(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.required(
                        &format!("{path}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.forbidden(
                        &format!("{path}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            op => errs.invalid(
                &format!("{path}.operator"),
                op,
                "not a valid selector operator",
            ),
        }
        let key = str_of(expr, "key");
        for msg in names::is_qualified_name(key) {
            errs.invalid(&format!("{path}.key"), key, &msg);
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in names::is_valid_label_value(v) {
                errs.invalid(&format!("{path}.values[{j}]"), v, &msg);
            }
        }
    }
    validate_labels(
        errs,
        sel.get("matchLabels"),
        &format!("{field}.matchLabels"),
    );
}
