//! A pod's quality-of-service class (`status.qosClass`).
//!
//! The class decides who is killed first when a node runs out of memory:
//! `BestEffort` pods (no requests, no limits) first, `Guaranteed` pods
//! (every container has cpu and memory limits, requests equal to limits)
//! last, `Burstable` in between. Port of `ComputePodQOS`
//! (`pkg/apis/core/v1/helper/qos/qos.go`), without pod-level resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::machinery::quantity::{parse_bytes, parse_cpu_millis};

fn amount(resource: &str, q: &str) -> i64 {
    // Unparseable quantities are rejected by the API server; count them as 0.
    match resource {
        "cpu" => parse_cpu_millis(q).unwrap_or(0),
        _ => parse_bytes(q).unwrap_or(0),
    }
}

// ANCHOR: qos
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    for c in all {
        let res = c.resources.as_ref();
        let lims = res.and_then(|r| r.limits.as_ref());
        // The API server defaults a missing request to its limit; do the same
        // so a pod with limits only is Guaranteed, as it is in a cluster.
        let mut reqs = res.and_then(|r| r.requests.clone()).unwrap_or_default();
        for (k, v) in lims.into_iter().flatten() {
            reqs.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (name, q) in &reqs {
            let name = name.as_str();
            if name == "cpu" || name == "memory" {
                let v = amount(name, &q.0);
                if v > 0 {
                    *requests
                        .entry(if name == "cpu" { "cpu" } else { "memory" })
                        .or_default() += v;
                }
            }
        }
        let mut found = (false, false);
        for (name, q) in lims.into_iter().flatten() {
            let v = amount(name, &q.0);
            if v <= 0 {
                continue;
            }
            match name.as_str() {
                "cpu" => {
                    found.0 = true;
                    *limits.entry("cpu").or_default() += v;
                }
                "memory" => {
                    found.1 = true;
                    *limits.entry("memory").or_default() += v;
                }
                _ => {}
            }
        }
        if found != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests == limits {
        return "Guaranteed";
    }
    "Burstable"
}
// ANCHOR_END: qos

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn res(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        (!pairs.is_empty()).then(|| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        })
    }

    /// (requests, limits) of one container.
    type Resources<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);

    fn pod(containers: &[Resources]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|(req, lim)| Container {
                        name: "c".into(),
                        resources: Some(ResourceRequirements {
                            requests: res(req),
                            limits: res(lim),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn classes() {
        let full = [("cpu", "500m"), ("memory", "128Mi")];
        let table: Vec<(&str, Pod, &str)> = vec![
            ("nothing", pod(&[(&[], &[])]), "BestEffort"),
            (
                "requests only",
                pod(&[(&[("cpu", "100m")], &[])]),
                "Burstable",
            ),
            (
                "limits equal requests",
                pod(&[(&full, &full)]),
                "Guaranteed",
            ),
            (
                "limits only (defaulted requests)",
                pod(&[(&[], &full)]),
                "Guaranteed",
            ),
            (
                "0.5 == 500m",
                pod(&[(&[("cpu", "0.5"), ("memory", "128Mi")], &full)]),
                "Guaranteed",
            ),
            (
                "requests below limits",
                pod(&[(&[("cpu", "100m")], &full)]),
                "Burstable",
            ),
            (
                "cpu limit only",
                pod(&[(&[], &[("cpu", "1")])]),
                "Burstable",
            ),
            (
                "one container without limits",
                pod(&[(&full, &full), (&[], &[])]),
                "Burstable",
            ),
        ];
        for (name, p, want) in table {
            assert_eq!(qos_class(&p), want, "{name}");
        }
    }
}
