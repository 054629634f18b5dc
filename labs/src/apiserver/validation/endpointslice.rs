//! EndpointSlices (discovery.k8s.io/v1): the address type, the size
//! limits, and each endpoint's addresses and ports.
//!
//! Upstream: `ValidateEndpointSlice` in
//! `pkg/apis/discovery/validation/validation.go`. The limits are what keep
//! one slice small enough that a change to one pod rewrites (and sends to
//! every kube-proxy) a few kilobytes, not the whole Service: the
//! controller fills slices to 100 endpoints, the API accepts up to 1000.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::pod::validate_protocol;
use super::{Errors, list_of, str_of};
use crate::apiserver::names;

/// Upstream's `maxEndpoints`, `maxPorts` and `maxAddresses`.
pub const MAX_ENDPOINTS: usize = 1000;
pub const MAX_PORTS: usize = 100;
const MAX_ADDRESSES: usize = 100;

pub(super) fn validate_endpoint_slice(errs: &mut Errors, slice: &Value) {
    let address_type = str_of(slice, "addressType");
    match address_type {
        "IPv4" | "IPv6" | "FQDN" => {}
        "" => errs.required("addressType", ""),
        other => errs.not_supported("addressType", other, &["FQDN", "IPv4", "IPv6"]),
    }
    let endpoints = list_of(slice, "endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        errs.too_many("endpoints", endpoints.len(), MAX_ENDPOINTS);
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}].addresses");
        let addresses = list_of(ep, "addresses");
        if addresses.is_empty() {
            errs.required(&path, "must contain at least 1 address");
        } else if addresses.len() > MAX_ADDRESSES {
            errs.too_many(&path, addresses.len(), MAX_ADDRESSES);
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let field = format!("{path}[{j}]");
            match address_type {
                "IPv4" if a.parse::<Ipv4Addr>().is_err() => {
                    errs.invalid(&field, a, "must be a valid IPv4 address")
                }
                "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                    errs.invalid(&field, a, "must be a valid IPv6 address")
                }
                "FQDN" => {
                    for msg in names::is_dns1123_subdomain(a) {
                        errs.invalid(&field, a, &msg);
                    }
                }
                _ => {}
            }
        }
    }
    let ports = list_of(slice, "ports");
    if ports.len() > MAX_PORTS {
        errs.too_many("ports", ports.len(), MAX_PORTS);
    }
    for (i, port) in ports.iter().enumerate() {
        let p = format!("ports[{i}]");
        let name = str_of(port, "name");
        if !name.is_empty() {
            for msg in names::is_dns1123_label(name) {
                errs.invalid(&format!("{p}.name"), name, &msg);
            }
        }
        if let Some(n) = port.get("port").and_then(Value::as_i64) {
            for msg in names::is_valid_port_num(n) {
                errs.invalid(&format!("{p}.port"), n, &msg);
            }
        }
        if port.get("protocol").is_some() {
            validate_protocol(errs, port, &p);
        }
    }
}
