//! Pod specs (of Pods and of templates): containers, images, ports, env,
//! volumes, policies; and what may change in a running Pod.
//!
//! Upstream: `ValidatePodSpec`, `validateContainers` and
//! `ValidatePodUpdate` in `pkg/apis/core/validation/validation.go`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::meta::validate_labels;
use super::{Errors, list_of, str_of};
use crate::apiserver::names;

/// Upstream's `ValidatePodSpec`, for the fields the labs use.
pub(super) fn validate_pod_spec(errs: &mut Errors, spec: &Value, path: &str) {
    let mut volume_names = BTreeSet::new();
    for (i, vol) in list_of(spec, "volumes").iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        let name = str_of(vol, "name");
        if name.is_empty() {
            errs.required(&field, "");
        } else {
            for msg in names::is_dns1123_label(name) {
                errs.invalid(&field, name, &msg);
            }
            if !volume_names.insert(name) {
                errs.duplicate(&field, name);
            }
        }
    }
    // Container names are unique across init and regular containers (they
    // share the pod's namespace of names for logs, exec and status).
    let mut all_names = BTreeSet::new();
    let init = list_of(spec, "initContainers");
    for (i, c) in init.iter().enumerate() {
        let p = format!("{path}.initContainers[{i}]");
        validate_container(errs, c, &p);
        let name = str_of(c, "name");
        if !name.is_empty() && !all_names.insert(name.to_string()) {
            errs.duplicate(&format!("{p}.name"), name);
        }
    }
    let containers = list_of(spec, "containers");
    if containers.is_empty() {
        errs.required(&format!("{path}.containers"), "");
    }
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        validate_container(errs, c, &p);
        let name = str_of(c, "name");
        if !name.is_empty() && !all_names.insert(name.to_string()) {
            errs.duplicate(&format!("{p}.name"), name);
        }
    }
    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.required(&format!("{path}.restartPolicy"), ""),
        other => errs.not_supported(
            &format!("{path}.restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        ),
    }
    match str_of(spec, "dnsPolicy") {
        "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None" => {}
        "" => errs.required(&format!("{path}.dnsPolicy"), ""),
        other => errs.not_supported(
            &format!("{path}.dnsPolicy"),
            other,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        ),
    }
    validate_labels(
        errs,
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
    );
    if let Some(v) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=i64::from(i32::MAX)).contains(&v)
    {
        errs.invalid(
            &format!("{path}.activeDeadlineSeconds"),
            v,
            &names::inclusive_range_error(1, i64::from(i32::MAX)),
        );
    }
}

pub(super) fn validate_container(errs: &mut Errors, c: &Value, path: &str) {
    let name = str_of(c, "name");
    if name.is_empty() {
        errs.required(&format!("{path}.name"), "");
    } else {
        for msg in names::is_dns1123_label(name) {
            errs.invalid(&format!("{path}.name"), name, &msg);
        }
    }
    if str_of(c, "image").is_empty() {
        errs.required(&format!("{path}.image"), "");
    }
    match str_of(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.required(
            &format!("{path}.terminationMessagePolicy"),
            "must be 'File' or 'FallbackToLogsOnError'",
        ),
        other => errs.not_supported(
            &format!("{path}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        ),
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in list_of(c, "ports").iter().enumerate() {
        let p = format!("{path}.ports[{i}]");
        let pname = str_of(port, "name");
        if !pname.is_empty() {
            let msgs = names::is_valid_port_name(pname);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.invalid(&format!("{p}.name"), pname, &msg);
                }
            } else if !port_names.insert(pname) {
                errs.duplicate(&format!("{p}.name"), pname);
            }
        }
        match port.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.required(&format!("{p}.containerPort"), ""),
            Some(n) => {
                for msg in names::is_valid_port_num(n) {
                    errs.invalid(&format!("{p}.containerPort"), n, &msg);
                }
            }
        }
        if let Some(n) = port.get("hostPort").and_then(Value::as_i64)
            && n != 0
        {
            for msg in names::is_valid_port_num(n) {
                errs.invalid(&format!("{p}.hostPort"), n, &msg);
            }
        }
        validate_protocol(errs, port, &p);
    }
    for (i, env) in list_of(c, "env").iter().enumerate() {
        let field = format!("{path}.env[{i}].name");
        let ename = str_of(env, "name");
        if ename.is_empty() {
            errs.required(&field, "");
        } else {
            for msg in names::is_env_var_name(ename) {
                errs.invalid(&field, ename, &msg);
            }
        }
    }
    match str_of(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.required(&format!("{path}.imagePullPolicy"), ""),
        other => errs.not_supported(
            &format!("{path}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        ),
    }
}

pub(super) fn validate_protocol(errs: &mut Errors, port: &Value, path: &str) {
    match str_of(port, "protocol") {
        "TCP" | "UDP" | "SCTP" => {}
        "" => errs.required(&format!("{path}.protocol"), ""),
        other => errs.not_supported(&format!("{path}.protocol"), other, &["SCTP", "TCP", "UDP"]),
    }
}

/// What may change in a running Pod (everything else is fixed at creation,
/// because the kubelet has already acted on it).
pub(super) const POD_UPDATABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(super) fn validate_pod_update(errs: &mut Errors, spec: &Value, old: &Value) {
    // Blank out what may change, then compare the rest.
    let mask = |s: &Value, other: &Value| {
        let mut s = s.clone();
        if let Some(m) = s.as_object_mut() {
            for key in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                m.remove(key);
            }
            // Binding a pod to a node sets `nodeName` once; our server may
            // implement the `binding` subresource as an update, so allow
            // setting it when it was empty (upstream binds through a
            // separate path).
            if str_of(other, "nodeName").is_empty() {
                m.remove("nodeName");
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        s
    };
    if mask(spec, old) != mask(old, old) {
        errs.forbidden("spec", POD_UPDATABLE);
        return;
    }
    // Tolerations may only be added to.
    let new_tol = list_of(spec, "tolerations");
    if list_of(old, "tolerations")
        .iter()
        .any(|t| !new_tol.contains(t))
    {
        errs.forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        );
    }
}
