use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

fn svc(spec: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": spec})
}

#[test]
fn the_network_and_broadcast_addresses_are_never_handed_out() {
    let mut ips = IpAllocator::new(Ipv4Addr::new(127, 2, 0, 0), 29);
    let got: Vec<Ipv4Addr> = std::iter::from_fn(|| ips.allocate_next().ok()).collect();
    assert_eq!(got.len(), 6);
    assert!(!got.contains(&Ipv4Addr::new(127, 2, 0, 0)));
    assert!(!got.contains(&Ipv4Addr::new(127, 2, 0, 7)));
    assert_eq!(ips.allocate_next(), Err(AllocError::Full));
    let err = ips.allocate(Ipv4Addr::new(127, 2, 0, 7)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the provided IP (127.2.0.7) is not in the valid range. The range of valid IPs is 127.2.0.0/29"
    );
}

#[test]
fn dynamic_allocation_starts_above_the_static_band() {
    let mut alloc = ServiceAllocators::new(SERVICE_CIDR, NODE_PORT_RANGE);
    // /16: the static band is the first 256 addresses, so the first
    // dynamic one is 127.2.1.1; node ports: 2768/32 = 86 → 30086.
    assert_eq!(alloc.ips.allocate_next(), Ok(Ipv4Addr::new(127, 2, 1, 1)));
    assert_eq!(alloc.node_ports.allocate_next(), Ok(30086));
    // A requested low address is free for the asking.
    assert_eq!(alloc.ips.allocate(Ipv4Addr::new(127, 2, 0, 10)), Ok(()));
    assert_eq!(
        alloc.ips.allocate(Ipv4Addr::new(127, 2, 0, 10)),
        Err(AllocError::Allocated("IP"))
    );
}

#[test]
fn create_fills_in_addresses_and_conflicts_answer_upstreams_messages() {
    let mut alloc = ServiceAllocators::new(SERVICE_CIDR, NODE_PORT_RANGE);
    let mut a = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
    let taken = alloc.allocate(None, &mut a).unwrap();
    assert_eq!(a["spec"]["clusterIP"], "127.2.1.1");
    assert_eq!(a["spec"]["clusterIPs"], json!(["127.2.1.1"]));
    assert_eq!(a["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(a["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(taken.ports, vec![30080]);

    let mut b = svc(json!({"type": "NodePort", "ports": [{"port": 81, "nodePort": 30080}]}));
    let Err(ServiceAllocError::Invalid(e)) = alloc.allocate(None, &mut b) else {
        panic!("a taken node port must be refused")
    };
    assert_eq!(
        e.error(),
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // The failed create took nothing: its cluster IP is free again.
    assert!(!alloc.ips.has(Ipv4Addr::new(127, 2, 1, 2)));

    let mut c = svc(json!({"clusterIP": "127.2.1.1", "ports": [{"port": 80}]}));
    let Err(ServiceAllocError::Invalid(e)) = alloc.allocate(None, &mut c) else {
        panic!("a taken IP must be refused")
    };
    assert_eq!(
        e.error(),
        "spec.clusterIPs: Invalid value: []string{\"127.2.1.1\"}: failed to allocate IP 127.2.1.1: provided IP is already allocated"
    );
    let mut d = svc(json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}));
    let Err(ServiceAllocError::Invalid(e)) = alloc.allocate(None, &mut d) else {
        panic!("an IP out of range must be refused")
    };
    assert!(
        e.detail
            .ends_with("is not in the valid range. The range of valid IPs is 127.2.0.0/16"),
        "{}",
        e.detail
    );

    let mut headless = svc(json!({"clusterIP": "None"}));
    assert_eq!(alloc.allocate(None, &mut headless), Ok(Taken::default()));
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
}

#[test]
fn a_type_change_takes_and_gives_back_node_ports() {
    let mut alloc = ServiceAllocators::new(SERVICE_CIDR, NODE_PORT_RANGE);
    let mut v1 = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
    alloc.allocate(None, &mut v1).unwrap();
    let mut v2 = v1.clone();
    v2["spec"]["type"] = json!("NodePort");
    let taken = alloc.allocate(Some(&v1), &mut v2).unwrap();
    assert!(taken.ips.is_empty(), "the cluster IP is kept");
    assert_eq!(v2["spec"]["ports"][0]["nodePort"], 30086);
    alloc.release_replaced(&v1, &v2);
    let mut v3 = v2.clone();
    v3["spec"]["type"] = json!("ClusterIP");
    v3["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    alloc.allocate(Some(&v2), &mut v3).unwrap();
    alloc.release_replaced(&v2, &v3);
    assert!(!alloc.node_ports.has(30086));
    assert!(alloc.ips.has(Ipv4Addr::new(127, 2, 1, 1)));
}

#[test]
fn exhaustion_is_upstreams_internal_error() {
    let mut alloc = ServiceAllocators::new((Ipv4Addr::new(127, 2, 0, 0), 30), (30000, 30001));
    for _ in 0..2 {
        alloc
            .allocate(None, &mut svc(json!({"ports": [{"port": 80}]})))
            .unwrap();
    }
    assert_eq!(
        alloc.allocate(None, &mut svc(json!({"ports": [{"port": 80}]}))),
        Err(ServiceAllocError::Internal(
            "Internal error occurred: failed to allocate a serviceIP: range is full".into()
        ))
    );
    let mut np = svc(json!({"clusterIP": "None", "type": "NodePort",
        "ports": [{"port": 1, "name": "a"}, {"port": 2, "name": "b"}, {"port": 3, "name": "c"}]}));
    assert_eq!(
        alloc.allocate(None, &mut np),
        Err(ServiceAllocError::Internal(
            "Internal error occurred: failed to allocate a nodePort: range is full".into()
        ))
    );
    assert_eq!(
        alloc.node_ports.free(),
        2,
        "a failed create gives back what it took"
    );
}

#[test]
fn repair_rebuilds_from_stored_services() {
    let mut alloc = ServiceAllocators::new(SERVICE_CIDR, NODE_PORT_RANGE);
    let mut stored = vec![];
    for ty in ["ClusterIP", "NodePort", "NodePort"] {
        let mut s = svc(json!({"type": ty, "ports": [{"port": 80}]}));
        alloc.allocate(None, &mut s).unwrap();
        stored.push(s);
    }
    let mut again = ServiceAllocators::repair(SERVICE_CIDR, NODE_PORT_RANGE, &stored);
    assert_eq!(again.ips.free(), alloc.ips.free());
    assert_eq!(again.node_ports.free(), alloc.node_ports.free());
    let mut next = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
    again.allocate(None, &mut next).unwrap();
    assert_eq!(next["spec"]["clusterIP"], "127.2.1.4");
    assert_eq!(next["spec"]["ports"][0]["nodePort"], 30088);
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        node_port: bool,
        ask_ip: Option<u8>,
        ask_port: Option<u8>,
    },
    Delete(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), proptest::option::of(0u8..20), proptest::option::of(0u8..20))
            .prop_map(|(node_port, ask_ip, ask_port)| Op::Create { node_port, ask_ip, ask_port }),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    /// Whatever the order of creates, deletes and restarts (a repair from
    /// the stored Services), no two live Services share an IP or a node
    /// port, a deleted Service's addresses are free again, and a create
    /// fails only when the range is full or it asked for a taken address.
    #[test]
    fn no_duplicate_is_ever_handed_out(ops in proptest::collection::vec(op(), 1..80)) {
        // A tiny range so that exhaustion happens: 14 IPs, 12 ports.
        let (cidr, ports) = ((Ipv4Addr::new(127, 2, 0, 0), 28), (30000, 30011));
        let mut alloc = ServiceAllocators::new(cidr, ports);
        let mut live: BTreeMap<usize, Value> = BTreeMap::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Create { node_port, ask_ip, ask_port } => {
                    let mut spec = json!({"ports": [{"port": 80}]});
                    if node_port {
                        spec["type"] = json!("NodePort");
                        if let Some(p) = ask_port {
                            spec["ports"][0]["nodePort"] = json!(30000 + p as i64);
                        }
                    }
                    if let Some(i) = ask_ip {
                        spec["clusterIP"] = json!(format!("127.2.0.{i}"));
                    }
                    let mut s = svc(spec);
                    let used: HashSet<Ipv4Addr> = live.values().flat_map(|s| held(s).ips).collect();
                    let used_ports: HashSet<i64> = live.values().flat_map(|s| held(s).ports).collect();
                    match alloc.allocate(None, &mut s) {
                        Ok(_) => { live.insert(next_id, s); next_id += 1; }
                        Err(ServiceAllocError::Internal(_)) => {
                            prop_assert!(used.len() == 14 || used_ports.len() == 12);
                        }
                        Err(ServiceAllocError::Invalid(e)) => {
                            let ip_taken = ask_ip.is_some_and(|i| used.contains(&Ipv4Addr::new(127, 2, 0, i)));
                            let ip_out = ask_ip.is_some_and(|i| i == 0 || i > 14);
                            let port_taken = node_port && ask_port.is_some_and(|p| used_ports.contains(&(30000 + p as i64)));
                            let port_out = node_port && ask_port.is_some_and(|p| p > 11);
                            prop_assert!(ip_taken || ip_out || port_taken || port_out, "{}", e.error());
                        }
                    }
                }
                Op::Delete(i) => {
                    if live.is_empty() { continue; }
                    let key = *live.keys().nth(i % live.len()).unwrap();
                    let s = live.remove(&key).unwrap();
                    alloc.release(&s);
                    for ip in held(&s).ips { prop_assert!(!alloc.ips.has(ip)); }
                    for p in held(&s).ports { prop_assert!(!alloc.node_ports.has(p)); }
                }
                Op::Restart => alloc = ServiceAllocators::repair(cidr, ports, live.values()),
            }
            let ips: Vec<Ipv4Addr> = live.values().flat_map(|s| held(s).ips).collect();
            let nps: Vec<i64> = live.values().flat_map(|s| held(s).ports).collect();
            prop_assert_eq!(ips.iter().collect::<HashSet<_>>().len(), ips.len(), "duplicate IP");
            prop_assert_eq!(nps.iter().collect::<HashSet<_>>().len(), nps.len(), "duplicate node port");
            prop_assert_eq!(alloc.ips.free(), 14 - ips.len());
            prop_assert_eq!(alloc.node_ports.free(), 12 - nps.len());
            for ip in &ips {
                prop_assert!(*ip != Ipv4Addr::new(127, 2, 0, 0) && *ip != Ipv4Addr::new(127, 2, 0, 15));
            }
        }
    }
}
