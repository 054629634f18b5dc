//! Services: ports (numbers, names, protocols, target ports, node
//! ports), type, cluster IP and session affinity.
//!
//! Upstream: `ValidateService` and `ValidateServiceUpdate` in
//! `pkg/apis/core/validation/validation.go`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::meta::validate_labels;
use super::pod::validate_protocol;
use super::{Errors, list_of, str_of};
use crate::apiserver::names;

pub(super) fn validate_service(errs: &mut Errors, spec: &Value, old: Option<&Value>) {
    let ty = str_of(spec, "type");
    let headless = str_of(spec, "clusterIP") == "None";
    let ports = list_of(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.required("spec.ports", "");
    }
    if ty == "ExternalName" {
        let name = str_of(spec, "externalName");
        if name.is_empty() {
            errs.required("spec.externalName", "");
        } else {
            for msg in names::is_dns1123_subdomain(name) {
                errs.invalid("spec.externalName", name, &msg);
            }
        }
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        let name = str_of(port, "name");
        // With several ports, each needs a name: Endpoints and environment
        // variables refer to ports by name.
        if ports.len() > 1 && name.is_empty() {
            errs.required(&format!("{p}.name"), "");
        } else if !name.is_empty() {
            for msg in names::is_dns1123_label(name) {
                errs.invalid(&format!("{p}.name"), name, &msg);
            }
            if !port_names.insert(name) {
                errs.duplicate(&format!("{p}.name"), name);
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in names::is_valid_port_num(number) {
            errs.invalid(&format!("{p}.port"), number, &msg);
        }
        validate_protocol(errs, port, &p);
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                for msg in names::is_valid_port_num(n) {
                    errs.invalid(&format!("{p}.targetPort"), n, &msg);
                }
            }
            Some(Value::String(s)) if !s.is_empty() => {
                for msg in names::is_valid_port_name(s) {
                    errs.invalid(&format!("{p}.targetPort"), s.as_str(), &msg);
                }
            }
            _ => errs.required(&format!("{p}.targetPort"), ""),
        }
    }
    validate_labels(errs, spec.get("selector"), "spec.selector");
    match str_of(spec, "sessionAffinity") {
        "None" | "ClientIP" => {}
        "" => errs.required("spec.sessionAffinity", ""),
        other => errs.not_supported("spec.sessionAffinity", other, &["ClientIP", "None"]),
    }
    match ty {
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        "" => errs.required("spec.type", ""),
        other => errs.not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ),
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                errs.forbidden(
                    &format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            }
        }
    }
    // Two ports with the same number and protocol would be ambiguous.
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (
            str_of(port, "protocol").to_string(),
            port.get("port").and_then(Value::as_i64).unwrap_or(0),
        );
        if !seen.insert(key.clone()) {
            errs.duplicate(
                &format!("spec.ports[{i}]"),
                json!({"port": key.1, "protocol": key.0}),
            );
        }
    }
    if let Some(old) = old {
        validate_cluster_ips_update(errs, spec, old);
    }
}

/// A cluster IP may not change once set (upstream's
/// `validateUpgradeDowngradeClusterIPs`): clients, kube-proxy's rules and
/// environment variables of running pods all hold it. Changes to or from
/// ExternalName are the exception — those drop or allocate the address.
fn validate_cluster_ips_update(errs: &mut Errors, spec: &Value, old: &Value) {
    if str_of(spec, "type") == "ExternalName" || str_of(old, "type") == "ExternalName" {
        return;
    }
    let ips = |s: &Value| -> Vec<String> {
        list_of(s, "clusterIPs")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let (new_ips, old_ips) = (ips(spec), ips(old));
    if new_ips.first().map(String::as_str) == Some("None")
        && old_ips.first().map(String::as_str) == Some("None")
    {
        return;
    }
    if old_ips.is_empty() {
        return;
    }
    if new_ips.is_empty() {
        errs.invalid(
            "spec.clusterIPs[0]",
            json!(new_ips),
            "primary clusterIP can not be unset",
        );
        return;
    }
    for (i, ip) in old_ips.iter().enumerate() {
        if new_ips.get(i).is_some_and(|n| n != ip) {
            errs.invalid(
                &format!("spec.clusterIPs[{i}]"),
                json!(new_ips),
                "may not change once set",
            );
        }
    }
}
