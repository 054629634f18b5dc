//! What kube-proxy's nftables mode (GA in 1.33) would program for the
//! current state, printed as `nft list table ip kube-proxy` shows it — not
//! applied.
//!
//! The decision is the iptables mode's; the data structure is not. Where
//! iptables makes every new connection walk KUBE-SERVICES rule by rule
//! (10,000 Services: up to 10,000 comparisons), nftables looks the
//! destination up in one **verdict map** (`service-ips`: `ip . protocol .
//! port → goto service-…`), and each service chain picks its endpoint with
//! one `numgen random mod N vmap` instead of N `statistic` rules. It also
//! replaces IPVS, deprecated in 1.35. (`pkg/proxy/nftables/proxier.go`.)

use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::iptables::base32;
use super::{ServicePortInfo, ServicePortName, usable_endpoints};

/// Settings of the rendering that a real kube-proxy gets from its flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--cluster-cidr`, as for [`super::iptables::Options`].
    pub cluster_cidr: Option<String>,
    /// The node's addresses, on which node ports are accepted.
    pub node_ips: Vec<String>,
}

// ANCHOR: chain_names
/// Upstream's `hashAndTruncate`: the name, prefixed by the first 8
/// characters of its base32 SHA-256. nftables chain names may be 128
/// characters long and may contain `/`, so the readable name is kept and
/// the hash only keeps similar names apart at a glance.
fn hash_and_truncate(name: &str) -> String {
    let hash = base32(&Sha256::digest(name.as_bytes()));
    let mut out = format!("{}-{name}", &hash[..8]);
    out.truncate(112);
    out
}

/// `service-<HASH>-namespace/name/protocol/portName`.
pub fn service_chain(name: &ServicePortName, protocol: &str) -> String {
    let base = format!(
        "{}/{}/{}/{}",
        name.namespace,
        name.name,
        protocol.to_lowercase(),
        name.port
    );
    format!("service-{}", hash_and_truncate(&base))
}

/// `external-<HASH>-…`: the entry for node-port traffic.
pub fn external_chain(name: &ServicePortName, protocol: &str) -> String {
    service_chain(name, protocol).replacen("service-", "external-", 1)
}

/// `endpoint-<HASH>-namespace/name/protocol/portName__ip/port`.
pub fn endpoint_chain(name: &ServicePortName, protocol: &str, ip: &str, port: u16) -> String {
    let base = format!(
        "{}/{}/{}/{}__{ip}/{port}",
        name.namespace,
        name.name,
        protocol.to_lowercase(),
        name.port
    );
    format!("endpoint-{}", hash_and_truncate(&base))
}
// ANCHOR_END: chain_names

// ANCHOR: render
/// The `ip kube-proxy` table for `ports`.
pub fn render(ports: &[ServicePortInfo], options: &Options) -> String {
    let mut service_ips = Vec::new();
    let mut node_ports = Vec::new();
    let mut no_endpoints = Vec::new();
    let mut no_endpoint_node_ports = Vec::new();
    let mut chains: Vec<(String, Vec<String>)> = Vec::new();

    for sp in ports {
        let proto = sp.protocol.to_lowercase();
        let name = sp.name.to_string();
        let endpoints = usable_endpoints(&sp.endpoints);
        if endpoints.is_empty() {
            no_endpoints.push(format!(
                "{} . {proto} . {} comment \"{name}\" : goto reject-chain",
                sp.cluster_ip, sp.port
            ));
            if let Some(np) = sp.node_port {
                no_endpoint_node_ports.push(format!(
                    "{proto} . {np} comment \"{name}\" : goto reject-chain"
                ));
            }
            continue;
        }
        let svc_chain = service_chain(&sp.name, &sp.protocol);
        service_ips.push(format!(
            "{} . {proto} . {} : goto {svc_chain}",
            sp.cluster_ip, sp.port
        ));
        let mut svc_rules = Vec::new();
        if let Some(cidr) = &options.cluster_cidr {
            svc_rules.push(format!(
                "ip daddr {} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                sp.cluster_ip, sp.port
            ));
        }
        // One random number, one map lookup: no chain of probabilities.
        let arms: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| {
                format!(
                    "{i} : goto {}",
                    endpoint_chain(
                        &sp.name,
                        &sp.protocol,
                        &ep.addr.ip().to_string(),
                        ep.addr.port()
                    )
                )
            })
            .collect();
        svc_rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            arms.join(", ")
        ));
        if let Some(np) = sp.node_port {
            let ext = external_chain(&sp.name, &sp.protocol);
            node_ports.push(format!("{proto} . {np} : goto {ext}"));
            chains.push((
                ext,
                vec![
                    "jump mark-for-masquerade".into(),
                    format!("goto {svc_chain}"),
                ],
            ));
        }
        chains.push((svc_chain, svc_rules));
        for ep in endpoints {
            chains.push((
                endpoint_chain(
                    &sp.name,
                    &sp.protocol,
                    &ep.addr.ip().to_string(),
                    ep.addr.port(),
                ),
                vec![
                    format!("ip saddr {} jump mark-for-masquerade", ep.addr.ip()),
                    format!("meta l4proto {proto} dnat to {}", ep.addr),
                ],
            ));
        }
    }
    chains.sort();

    let mut out = String::from(
        "# The table kube-proxy's nftables mode would program (nft list table; not applied)\n",
    );
    out.push_str("table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n");
    let set =
        |out: &mut String, kind: &str, name: &str, ty: &str, comment: &str, elements: &[String]| {
            let _ = write!(out, "\n\t{kind} {name} {{\n\t\ttype {ty}\n");
            if !comment.is_empty() {
                let _ = writeln!(out, "\t\tcomment \"{comment}\"");
            }
            if !elements.is_empty() {
                let _ = writeln!(
                    out,
                    "\t\telements = {{ {} }}",
                    elements.join(",\n\t\t\t     ")
                );
            }
            out.push_str("\t}\n");
        };
    let chain = |out: &mut String, name: &str, rules: &[&str]| {
        let _ = writeln!(out, "\n\tchain {name} {{");
        for r in rules {
            let _ = writeln!(out, "\t\t{r}");
        }
        out.push_str("\t}\n");
    };
    set(
        &mut out,
        "set",
        "nodeport-ips",
        "ipv4_addr",
        "IPs that accept NodePort traffic",
        &options.node_ips,
    );
    set(
        &mut out,
        "map",
        "no-endpoint-nodeports",
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
        &no_endpoint_node_ports,
    );
    set(
        &mut out,
        "map",
        "no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to services with no endpoints",
        &no_endpoints,
    );
    set(
        &mut out,
        "map",
        "service-ips",
        "ipv4_addr . inet_proto . inet_service : verdict",
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
        &service_ips,
    );
    set(
        &mut out,
        "map",
        "service-nodeports",
        "inet_proto . inet_service : verdict",
        "NodePort traffic",
        &node_ports,
    );
    chain(
        &mut out,
        "filter-output",
        &[
            "type filter hook output priority -110; policy accept;",
            "ct state new jump service-endpoints-check",
        ],
    );
    chain(
        &mut out,
        "service-endpoints-check",
        &[
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
        ],
    );
    chain(
        &mut out,
        "reject-chain",
        &[
            "comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\"",
            "reject",
        ],
    );
    chain(
        &mut out,
        "nat-prerouting",
        &[
            "type nat hook prerouting priority dstnat; policy accept;",
            "jump services",
        ],
    );
    chain(
        &mut out,
        "nat-output",
        &[
            "type nat hook output priority -100; policy accept;",
            "jump services",
        ],
    );
    chain(
        &mut out,
        "nat-postrouting",
        &[
            "type nat hook postrouting priority srcnat; policy accept;",
            "jump masquerading",
        ],
    );
    chain(
        &mut out,
        "mark-for-masquerade",
        &["mark set mark or 0x4000"],
    );
    chain(
        &mut out,
        "masquerading",
        &[
            "mark & 0x4000 == 0 return",
            "mark set mark xor 0x4000",
            "masquerade fully-random",
        ],
    );
    chain(
        &mut out,
        "services",
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
        ],
    );
    for (name, rules) in &chains {
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        chain(&mut out, name, &rules);
    }
    out.push_str("}\n");
    out
}
// ANCHOR_END: render
