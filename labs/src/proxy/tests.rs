//! Table tests of kube-proxy's core (which endpoints, which one), the
//! chain-name hashes against upstream's test vectors, and snapshots of the
//! iptables and nftables renderings for a fixed state.

use std::net::SocketAddrV4;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn ep(addr: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    Endpoint {
        addr: addr.parse().unwrap(),
        ready,
        serving,
        terminating,
        node_name: None,
    }
}

fn addrs(eps: &[&Endpoint]) -> Vec<String> {
    eps.iter().map(|e| e.addr.to_string()).collect()
}

#[test]
fn usable_endpoints_are_ready_ones_else_serving_terminating_ones() {
    let a = "127.0.1.1:8080";
    let b = "127.0.1.2:8080";
    let cases: [(&str, Vec<Endpoint>, Vec<&str>); 6] = [
        (
            "all ready",
            vec![ep(a, true, true, false), ep(b, true, true, false)],
            vec![a, b],
        ),
        (
            "one not ready",
            vec![ep(a, false, false, false), ep(b, true, true, false)],
            vec![b],
        ),
        // A ready endpoint wins over a draining one.
        (
            "ready beats terminating",
            vec![ep(a, false, true, true), ep(b, true, true, false)],
            vec![b],
        ),
        // ProxyTerminatingEndpoints: no ready one, so the draining pod serves.
        (
            "fallback to serving+terminating",
            vec![ep(a, false, true, true), ep(b, false, false, true)],
            vec![a],
        ),
        // Not serving and not terminating: a pod that failed its probe.
        (
            "nothing usable",
            vec![ep(a, false, false, false), ep(b, false, false, true)],
            vec![],
        ),
        ("no endpoints", vec![], vec![]),
    ];
    for (what, endpoints, want) in cases {
        assert_eq!(addrs(&usable_endpoints(&endpoints)), want, "{what}");
    }
}

#[test]
fn pick_endpoint_is_uniform_over_usable_ones_and_none_when_empty() {
    let endpoints = vec![
        ep("127.0.1.1:80", true, true, false),
        ep("127.0.1.2:80", false, false, false),
        ep("127.0.1.3:80", true, true, false),
        ep("127.0.1.4:80", false, true, true),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..10_000 {
        let e = pick_endpoint(&endpoints, &mut rng).unwrap();
        *counts.entry(e.addr.to_string()).or_insert(0) += 1;
    }
    // Only the two ready ones, about half each.
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["127.0.1.1:80", "127.0.1.3:80"]
    );
    assert!(
        counts.values().all(|n| (4_500..5_500).contains(n)),
        "{counts:?}"
    );

    // The fallback: only the serving-terminating one is chosen.
    let draining = vec![
        ep("127.0.1.4:80", false, true, true),
        ep("127.0.1.2:80", false, false, false),
    ];
    for _ in 0..100 {
        assert_eq!(
            pick_endpoint(&draining, &mut rng).unwrap().addr.to_string(),
            "127.0.1.4:80"
        );
    }
    assert_eq!(pick_endpoint(&[], &mut rng), None);
    assert_eq!(pick_endpoint(&endpoints[1..2], &mut rng), None);
    // Seeded: the same seed makes the same choices.
    let picks = |seed| {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..20)
            .map(|_| pick_endpoint(&endpoints, &mut rng).unwrap().addr)
            .collect::<Vec<SocketAddrV4>>()
    };
    assert_eq!(picks(1), picks(1));
}

#[test]
fn chain_names_match_upstream_test_vectors() {
    let cases = [
        ("default/kubernetes:https", "tcp", "NPX46M4PTMTKRN6Y"),
        ("kube-system/kube-dns:dns", "udp", "TCOU7JCQXEZGVUNU"),
        ("kube-system/kube-dns:dns-tcp", "tcp", "ERIFXISQEP7F7OF4"),
    ];
    for (name, proto, hash) in cases {
        assert_eq!(iptables::port_proto_hash(name, proto), hash, "{name}");
    }
    let name = ServicePortName {
        namespace: "default".into(),
        name: "kubernetes".into(),
        port: "https".into(),
    };
    assert_eq!(name.to_string(), "default/kubernetes:https");
    assert_eq!(
        iptables::service_chain(&name, "TCP"),
        "KUBE-SVC-NPX46M4PTMTKRN6Y"
    );
    let unnamed = ServicePortName {
        port: String::new(),
        ..name
    };
    assert_eq!(unnamed.to_string(), "default/kubernetes");
}

#[test]
fn base32_is_rfc_4648() {
    // RFC 4648 section 10's test vectors.
    for (input, want) in [
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ] {
        assert_eq!(iptables::base32(input.as_bytes()), want);
    }
}

#[test]
fn probabilities_are_written_as_upstream_and_saved_as_iptables_does() {
    assert_eq!(iptables::probability(3, 0), "0.3333333333");
    assert_eq!(iptables::probability(3, 1), "0.5000000000");
    assert_eq!(iptables::probability(3, 2), "1.0000000000");
    // The reference's iptables-save output.
    assert_eq!(iptables::saved_probability("0.3333333333"), "0.33333333349");
    assert_eq!(iptables::saved_probability("0.5000000000"), "0.50000000000");
    assert_eq!(iptables::saved_probability("0.2500000000"), "0.25000000000");
}

/// A fixed state: `web` (ClusterIP, 3 ready endpoints, one not ready),
/// `api` (NodePort, two ports, one endpoint draining alone), `empty` (no
/// endpoint), and a headless Service that kube-proxy ignores.
fn fixed_state() -> Vec<ServicePortInfo> {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "ClusterIP", "clusterIP": "127.2.0.10",
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
        json!({"metadata": {"name": "api", "namespace": "shop"},
               "spec": {"type": "NodePort", "clusterIP": "127.2.0.11",
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                                  {"name": "metrics", "port": 9090, "protocol": "TCP", "nodePort": 30090}]}}),
        json!({"metadata": {"name": "empty", "namespace": "default"},
               "spec": {"clusterIP": "127.2.0.12", "ports": [{"port": 80, "protocol": "TCP"}]}}),
        json!({"metadata": {"name": "db", "namespace": "default"},
               "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let endpoint = |ip: &str, ready: bool, serving: bool, terminating: bool| json!({"addresses": [ip], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}});
    let slices: Vec<EndpointSlice> = [
        json!({"metadata": {"name": "web-abc", "namespace": "default", "labels": {LABEL_SERVICE_NAME: "web"}},
               "addressType": "IPv4",
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [endpoint("127.0.1.3", true, true, false), endpoint("127.0.1.1", true, true, false),
                             endpoint("127.0.1.2", true, true, false), endpoint("127.0.1.4", false, false, false)]}),
        json!({"metadata": {"name": "api-xyz", "namespace": "shop", "labels": {LABEL_SERVICE_NAME: "api"}},
               "addressType": "IPv4",
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}],
               "endpoints": [endpoint("127.0.1.7", false, true, true)]}),
        json!({"metadata": {"name": "db-1", "namespace": "default",
                            "labels": {LABEL_SERVICE_NAME: "db", LABEL_HEADLESS: ""}},
               "addressType": "IPv4", "ports": [{"name": "", "port": 5432}],
               "endpoints": [endpoint("127.0.1.9", true, true, false)]}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    service_ports(&services, &slices)
}

#[test]
fn service_ports_join_services_and_slices_by_port_name() {
    let ports = fixed_state();
    let summary: Vec<String> = ports
        .iter()
        .map(|sp| {
            format!(
                "{} {}:{} node={:?} -> {:?}",
                sp.name,
                sp.cluster_ip,
                sp.port,
                sp.node_port,
                sp.endpoints
                    .iter()
                    .map(|e| e.addr.to_string())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "default/empty 127.2.0.12:80 node=None -> []",
            "default/web:http 127.2.0.10:80 node=None -> [\"127.0.1.1:8080\", \"127.0.1.2:8080\", \"127.0.1.3:8080\", \"127.0.1.4:8080\"]",
            "shop/api:http 127.2.0.11:80 node=Some(30080) -> [\"127.0.1.7:8080\"]",
            "shop/api:metrics 127.2.0.11:9090 node=Some(30090) -> [\"127.0.1.7:9100\"]",
        ]
    );
}

#[test]
fn iptables_save_snapshot() {
    let rules = iptables::render(
        &fixed_state(),
        &iptables::Options {
            cluster_cidr: Some("127.0.0.0/16".into()),
        },
    );
    insta::assert_snapshot!(rules);
}

#[test]
fn nftables_snapshot() {
    let table = nftables::render(
        &fixed_state(),
        &nftables::Options {
            cluster_cidr: Some("127.0.0.0/16".into()),
            node_ips: vec!["127.0.0.1".into()],
        },
    );
    insta::assert_snapshot!(table);
}
