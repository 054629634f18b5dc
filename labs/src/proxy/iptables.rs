//! What kube-proxy's iptables mode would program for the current state,
//! printed in `iptables-save` form — not applied: the labs never touch the
//! machine's tables. This is the mode the talk describes ("kube-proxy
//! programs iptables"), and the default on most clusters.
//!
//! The shape (`pkg/proxy/iptables/proxier.go`, `syncProxyRules`):
//!
//! ```text
//! PREROUTING / OUTPUT ─▶ KUBE-SERVICES ─(clusterIP:port)─▶ KUBE-SVC-<hash> ─(random)─▶ KUBE-SEP-<hash> ─▶ DNAT to pod
//!                              └─(dst is a local address)─▶ KUBE-NODEPORTS ─(nodePort)─▶ KUBE-EXT-<hash> ─▶ KUBE-SVC-<hash>
//! ```
//!
//! The kernel walks KUBE-SERVICES rule by rule for every new connection, so
//! the cost grows with the number of Services: the reason the nftables mode
//! ([`super::nftables`]) replaces the list with a map lookup.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::{ServicePortInfo, ServicePortName, usable_endpoints};

/// Settings of the rendering that a real kube-proxy gets from its flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--cluster-cidr`: the pods' range. Traffic to a cluster IP from
    /// outside it is masqueraded (SNAT), so the reply comes back through
    /// this node. Without it, no such rule is written.
    pub cluster_cidr: Option<String>,
}

// ANCHOR: chain_names
/// Upstream's `portProtoHash`: the first 16 characters of the base32
/// (RFC 4648) SHA-256 of `servicePortName + protocol`. Chain names may be
/// at most 28 characters, and a Service's name alone can be 63, so names
/// are hashed; the hash is stable, so a sync rewrites a chain in place
/// instead of creating a new one.
pub fn port_proto_hash(service_port_name: &str, protocol: &str) -> String {
    let digest = Sha256::digest(format!("{service_port_name}{protocol}").as_bytes());
    base32(&digest)[..16].to_string()
}

/// `KUBE-SVC-…`: the chain that picks an endpoint for a service port.
pub fn service_chain(name: &ServicePortName, protocol: &str) -> String {
    format!(
        "KUBE-SVC-{}",
        port_proto_hash(&name.to_string(), &protocol.to_lowercase())
    )
}

/// `KUBE-EXT-…`: where node-port traffic enters (it is masqueraded first).
pub fn external_chain(name: &ServicePortName, protocol: &str) -> String {
    format!(
        "KUBE-EXT-{}",
        port_proto_hash(&name.to_string(), &protocol.to_lowercase())
    )
}

/// `KUBE-SEP-…`: one per endpoint, hashing `servicePortName + protocol +
/// "ip:port"` (upstream's `servicePortEndpointChainName`).
pub fn endpoint_chain(name: &ServicePortName, protocol: &str, endpoint: &str) -> String {
    format!(
        "KUBE-SEP-{}",
        port_proto_hash(
            &name.to_string(),
            &format!("{}{endpoint}", protocol.to_lowercase())
        )
    )
}

/// Base32 with the standard alphabet and padding (Go's
/// `base32.StdEncoding`), the encoding upstream hashes are written in.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // 5 bytes = 40 bits = 8 characters; a short chunk needs fewer.
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
// ANCHOR_END: chain_names

// ANCHOR: probability
/// The `--probability` kube-proxy writes for the `i`-th of `n` endpoints
/// (0-based): 1/(n−i), formatted `%0.10f` (upstream's `probability`). The
/// first rule takes 1/n of the connections; the second 1/(n−1) of what is
/// left, which is again 1/n of the total; and so on. The last endpoint has
/// no statistic match at all: whatever reaches it goes there.
pub fn probability(n: usize, i: usize) -> String {
    format!("{:.10}", 1.0 / (n - i) as f64)
}

/// What `iptables-save` prints back for a probability kube-proxy wrote:
/// the kernel's `xt_statistic` keeps it as a 31-bit fixed-point number, so
/// `0.3333333333` comes back as `0.33333333349`.
pub fn saved_probability(written: &str) -> String {
    let p: f64 = written.parse().unwrap_or(0.0);
    let fixed = (p * f64::from(0x8000_0000u32)).round();
    format!("{:.11}", fixed / f64::from(0x8000_0000u32))
}
// ANCHOR_END: probability

// ANCHOR: render
/// The `nat` and `filter` tables kube-proxy's iptables mode would write
/// for `ports`, as `iptables-save` prints them: chains declared first,
/// then rules grouped by chain (built-in chains first, then the others in
/// name order), comments quoted.
pub fn render(ports: &[ServicePortInfo], options: &Options) -> String {
    // (chain, rule) pairs; the grouping by chain happens at the end.
    let mut nat: Vec<(String, String)> = Vec::new();
    let mut filter: Vec<(String, String)> = Vec::new();
    let rule = |table: &mut Vec<(String, String)>, chain: &str, text: String| {
        table.push((chain.to_string(), text));
    };
    rule(
        &mut nat,
        "PREROUTING",
        r#"-m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#.into(),
    );
    rule(
        &mut nat,
        "OUTPUT",
        r#"-m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#.into(),
    );
    rule(
        &mut nat,
        "POSTROUTING",
        r#"-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING"#.into(),
    );
    rule(
        &mut nat,
        "KUBE-MARK-MASQ",
        "-j MARK --set-xmark 0x4000/0x4000".into(),
    );
    rule(
        &mut nat,
        "KUBE-POSTROUTING",
        "-m mark ! --mark 0x4000/0x4000 -j RETURN".into(),
    );
    rule(
        &mut nat,
        "KUBE-POSTROUTING",
        "-j MARK --set-xmark 0x4000/0x0".into(),
    );
    rule(&mut nat, "KUBE-POSTROUTING", r#"-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully"#.into());
    rule(&mut filter, "INPUT", r#"-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES"#.into());
    rule(&mut filter, "OUTPUT", r#"-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#.into());
    let mut chains = vec![
        "KUBE-MARK-MASQ",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-SERVICES",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();

    for sp in ports {
        let proto = sp.protocol.to_lowercase();
        let name = sp.name.to_string();
        let dst = format!("-d {}/32 -p {proto}", sp.cluster_ip);
        let dport = format!("-m {proto} --dport {}", sp.port);
        let endpoints = usable_endpoints(&sp.endpoints);
        if endpoints.is_empty() {
            // No endpoint: reject at once (the client gets "connection
            // refused"), instead of letting packets vanish into a DNAT to
            // nowhere.
            rule(
                &mut filter,
                "KUBE-SERVICES",
                format!(
                    r#"{dst} -m comment --comment "{name} has no endpoints" {dport} -j REJECT --reject-with icmp-port-unreachable"#
                ),
            );
            if let Some(node_port) = sp.node_port {
                rule(
                    &mut filter,
                    "KUBE-EXTERNAL-SERVICES",
                    format!(
                        r#"-p {proto} -m comment --comment "{name} has no endpoints" -m addrtype --dst-type LOCAL -m {proto} --dport {node_port} -j REJECT --reject-with icmp-port-unreachable"#
                    ),
                );
            }
            continue;
        }
        let svc_chain = service_chain(&sp.name, &sp.protocol);
        chains.push(svc_chain.clone());
        rule(
            &mut nat,
            "KUBE-SERVICES",
            format!(r#"{dst} -m comment --comment "{name} cluster IP" {dport} -j {svc_chain}"#),
        );
        if let Some(cidr) = &options.cluster_cidr {
            rule(
                &mut nat,
                &svc_chain,
                format!(
                    r#"! -s {cidr} {dst} -m comment --comment "{name} cluster IP" {dport} -j KUBE-MARK-MASQ"#
                ),
            );
        }
        if let Some(node_port) = sp.node_port {
            let ext_chain = external_chain(&sp.name, &sp.protocol);
            chains.push(ext_chain.clone());
            rule(
                &mut nat,
                "KUBE-NODEPORTS",
                format!(
                    r#"-p {proto} -m comment --comment "{name}" -m {proto} --dport {node_port} -j {ext_chain}"#
                ),
            );
            rule(
                &mut nat,
                &ext_chain,
                format!(
                    r#"-m comment --comment "masquerade traffic for {name} external destinations" -j KUBE-MARK-MASQ"#
                ),
            );
            rule(&mut nat, &ext_chain, format!("-j {svc_chain}"));
        }
        let n = endpoints.len();
        for (i, ep) in endpoints.iter().enumerate() {
            let addr = ep.addr.to_string();
            let sep_chain = endpoint_chain(&sp.name, &sp.protocol, &addr);
            chains.push(sep_chain.clone());
            let statistic = if i < n - 1 {
                format!(
                    " -m statistic --mode random --probability {}",
                    saved_probability(&probability(n, i))
                )
            } else {
                String::new()
            };
            rule(
                &mut nat,
                &svc_chain,
                format!(r#"-m comment --comment "{name} -> {addr}"{statistic} -j {sep_chain}"#),
            );
            // A pod calling its own Service may be sent to itself: SNAT,
            // or the reply would skip the DNAT's reverse translation.
            rule(
                &mut nat,
                &sep_chain,
                format!(
                    r#"-s {}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ"#,
                    ep.addr.ip()
                ),
            );
            rule(
                &mut nat,
                &sep_chain,
                format!(
                    r#"-p {proto} -m comment --comment "{name}" -m {proto} -j DNAT --to-destination {addr}"#
                ),
            );
        }
    }
    // Must be last: anything addressed to this node (its own IPs) may be a
    // node port.
    rule(&mut nat, "KUBE-SERVICES", r#"-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"#.into());

    let mut out = String::from(
        "# The rules kube-proxy's iptables mode would program (iptables-save form; not applied)\n",
    );
    let filter_chains = vec![
        "KUBE-EXTERNAL-SERVICES".to_string(),
        "KUBE-SERVICES".to_string(),
    ];
    write_table(
        &mut out,
        "filter",
        &["INPUT", "FORWARD", "OUTPUT"],
        filter_chains,
        &filter,
    );
    write_table(
        &mut out,
        "nat",
        &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        chains,
        &nat,
    );
    out
}

/// One table in `iptables-save` layout.
fn write_table(
    out: &mut String,
    table: &str,
    builtin: &[&str],
    mut chains: Vec<String>,
    rules: &[(String, String)],
) {
    chains.sort();
    chains.dedup();
    let _ = writeln!(out, "*{table}");
    for chain in builtin {
        let _ = writeln!(out, ":{chain} ACCEPT [0:0]");
    }
    for chain in &chains {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for chain in builtin.iter().map(|c| c.to_string()).chain(chains) {
        for (c, text) in rules {
            if *c == chain {
                let _ = writeln!(out, "-A {chain} {text}");
            }
        }
    }
    let _ = writeln!(out, "COMMIT");
}
// ANCHOR_END: render
