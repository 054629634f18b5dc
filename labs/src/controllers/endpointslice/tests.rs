//! Table tests of the EndpointSlice controller's core: which pods, which
//! conditions, which ports, and how endpoints are packed into slices.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn service(extra: serde_json::Value) -> Service {
    let mut svc = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {
            "clusterIP": "127.2.0.10",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    });
    merge(&mut svc, extra);
    serde_json::from_value(svc).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A pod `web-<i>` at 127.0.1.<i+1> whose container calls port 8080 `http`.
fn pod(i: u32, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "x",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250),
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
    }))
    .unwrap()
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-01-01T00:00:00Z".parse().unwrap(),
    ));
    p
}

/// The slices as the API server would hold them after `r` was applied to
/// `existing` (names `web-<n>` for created ones).
fn apply(existing: &[EndpointSlice], r: &Reconcile) -> Vec<EndpointSlice> {
    let gone: Vec<_> = r.delete.iter().map(|s| s.metadata.name.clone()).collect();
    let mut out: Vec<EndpointSlice> = existing
        .iter()
        .filter(|s| !gone.contains(&s.metadata.name))
        .map(|s| {
            r.update
                .iter()
                .find(|u| u.metadata.name == s.metadata.name)
                .unwrap_or(s)
                .clone()
        })
        .collect();
    for (n, s) in r.create.iter().enumerate() {
        let mut s = s.clone();
        s.metadata.name = Some(format!("web-{}{n}", out.len()));
        out.push(s);
    }
    out
}

fn conditions(slices: &[EndpointSlice]) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e| {
            let c = e.conditions.clone().unwrap();
            (
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn conditions_follow_readiness_and_termination_as_upstream() {
    // (pod, publishNotReadyAddresses, expected ready, serving, terminating)
    let cases = [
        (pod(1, true), false, (true, true, false)),
        (pod(1, false), false, (false, false, false)),
        // Terminating: out of normal traffic at once, still serving.
        (terminating(pod(1, true)), false, (false, true, true)),
        (terminating(pod(1, false)), false, (false, false, true)),
        // publishNotReadyAddresses: ready whatever the pod says.
        (pod(1, false), true, (true, false, false)),
        (terminating(pod(1, true)), true, (true, true, true)),
    ];
    for (p, publish, (ready, serving, term)) in cases {
        let svc = service(json!({"spec": {"publishNotReadyAddresses": publish}}));
        let ep = pod_to_endpoint(&svc, &p);
        let c = ep.conditions.unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(ready), Some(serving), Some(term)),
            "{p:?} publish={publish}"
        );
        assert_eq!(ep.addresses, ["127.0.1.2"]);
        assert_eq!(ep.node_name.as_deref(), Some("node-1"));
        let target = ep.target_ref.unwrap();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref()),
            (Some("Pod"), Some("web-1"))
        );
    }
}

#[test]
fn which_pods_are_endpoints() {
    let svc = service(json!({}));
    let mut no_ip = pod(2, true);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    let mut failed = pod(3, true);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let mut other_labels = pod(4, true);
    other_labels.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let mut other_ns = pod(5, true);
    other_ns.metadata.namespace = Some("other".into());
    let pods = [
        pod(1, true),
        no_ip,
        failed,
        other_labels,
        other_ns,
        terminating(pod(6, true)),
        pod(7, false),
    ];
    let r = reconcile(&svc, &pods, &[]);
    assert_eq!(r.create.len(), 1);
    let addrs: Vec<_> = conditions(&r.create).into_iter().map(|c| c.0).collect();
    // The not-ready and the terminating pod are in, marked as such.
    assert_eq!(addrs, ["127.0.1.2", "127.0.1.7", "127.0.1.8"]);
}

#[test]
fn a_slice_has_the_labels_owner_and_ports_upstream_gives_it() {
    let r = reconcile(&service(json!({})), &[pod(1, true)], &[]);
    let slice = &r.create[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_SERVICE_NAME], "web");
    assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "a", "the Service's labels are copied");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    // The named targetPort resolved against the container's ports.
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.protocol.as_deref(), port.port),
        (Some("http"), Some("TCP"), Some(8080))
    );
}

#[test]
fn named_target_ports_split_pods_by_what_they_declare() {
    let svc = service(json!({}));
    let mut v2 = pod(2, true);
    v2.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .container_port = 9090;
    let mut unnamed = pod(3, true);
    unnamed.spec.as_mut().unwrap().containers[0].ports = None;
    let r = reconcile(&svc, &[pod(1, true), v2, unnamed], &[]);
    let mut by_port: Vec<(Vec<Option<i32>>, usize)> = r
        .create
        .iter()
        .map(|s| {
            (
                s.ports.iter().flatten().map(|p| p.port).collect(),
                s.endpoints.len(),
            )
        })
        .collect();
    by_port.sort();
    // A pod without the named port gets a slice without that port.
    assert_eq!(
        by_port,
        [(vec![], 1), (vec![Some(8080)], 1), (vec![Some(9090)], 1)]
    );
    // A numeric targetPort is taken as it is.
    let numeric =
        service(json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 7000}]}}));
    let r = reconcile(&numeric, &[pod(1, true)], &[]);
    assert_eq!(r.create[0].ports.as_ref().unwrap()[0].port, Some(7000));
}

#[test]
fn services_without_a_selector_are_left_alone_headless_ones_are_not() {
    let manual = service(json!({"spec": {"selector": null}}));
    assert!(reconcile(&manual, &[pod(1, true)], &[]).is_empty());
    let headless = service(json!({"spec": {"clusterIP": "None"}}));
    let r = reconcile(&headless, &[pod(1, true)], &[]);
    assert_eq!(r.create.len(), 1);
    assert_eq!(
        r.create[0].metadata.labels.as_ref().unwrap()[LABEL_HEADLESS],
        ""
    );
}

#[test]
fn a_service_without_endpoints_gets_one_placeholder_slice() {
    let svc = service(json!({}));
    let r = reconcile(&svc, &[] as &[Pod], &[]);
    assert_eq!(r.create.len(), 1);
    assert!(r.create[0].endpoints.is_empty());
    assert_eq!(r.create[0].ports.as_deref(), Some(&[][..]));
    // Once it exists, the next sync keeps it and writes nothing.
    let slices = apply(&[], &r);
    assert!(reconcile(&svc, &[] as &[Pod], &slices).is_empty());
    // The last pod going away turns the real slice back into a placeholder.
    let slices = apply(&[], &reconcile(&svc, &[pod(1, true)], &[]));
    let r = reconcile(&svc, &[] as &[Pod], &slices);
    assert_eq!((r.create.len(), r.delete.len()), (1, 1));
}

#[test]
fn ready_to_not_ready_to_terminating_to_gone_updates_one_slice_in_place() {
    let svc = service(json!({}));
    let mut slices = apply(&[], &reconcile(&svc, &[pod(1, true), pod(2, true)], &[]));
    let name = slices[0].metadata.name.clone();
    /// (address, ready, serving, terminating)
    type Conditions<'a> = Vec<(&'a str, bool, bool, bool)>;
    let steps: [(Vec<Pod>, Conditions); 3] = [
        (
            vec![pod(1, false), pod(2, true)],
            vec![
                ("127.0.1.2", false, false, false),
                ("127.0.1.3", true, true, false),
            ],
        ),
        (
            vec![terminating(pod(1, false)), pod(2, true)],
            vec![
                ("127.0.1.2", false, false, true),
                ("127.0.1.3", true, true, false),
            ],
        ),
        (vec![pod(2, true)], vec![("127.0.1.3", true, true, false)]),
    ];
    for (pods, want) in steps {
        let r = reconcile(&svc, &pods, &slices);
        assert_eq!((r.create.len(), r.update.len(), r.delete.len()), (0, 1, 0));
        slices = apply(&slices, &r);
        assert_eq!(slices[0].metadata.name, name, "updated in place");
        let want: Vec<_> = want
            .into_iter()
            .map(|(a, r, s, t)| (a.to_string(), r, s, t))
            .collect();
        assert_eq!(conditions(&slices), want);
        // Level-triggered: the same state again changes nothing.
        assert!(reconcile(&svc, &pods, &slices).is_empty());
    }
}

#[test]
fn more_than_100_endpoints_need_two_slices_and_new_ones_fill_existing_room() {
    let svc = service(json!({}));
    let pods: Vec<Pod> = (0..150).map(|i| pod(i, true)).collect();
    let r = reconcile(&svc, &pods, &[]);
    let mut sizes: Vec<_> = r.create.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100]);
    let slices = apply(&[], &r);

    // Ten more pods: they fit into the slice with room; the full one is
    // not touched (each write goes to every node's kube-proxy).
    let more: Vec<Pod> = (0..160).map(|i| pod(i, true)).collect();
    let r = reconcile(&svc, &more, &slices);
    assert_eq!((r.create.len(), r.update.len(), r.delete.len()), (0, 1, 0));
    assert_eq!(r.update[0].endpoints.len(), 60);

    // One pod of the full slice turns not-ready: only that slice changes.
    let mut changed = more.clone();
    let full = slices.iter().find(|s| s.endpoints.len() == 100).unwrap();
    let victim = full.endpoints[0].target_ref.clone().unwrap().name.unwrap();
    let i: usize = victim.trim_start_matches("web-").parse().unwrap();
    changed[i] = pod(i as u32, false);
    let slices = apply(&slices, &r);
    let r = reconcile(&svc, &changed, &slices);
    assert_eq!((r.create.len(), r.update.len(), r.delete.len()), (0, 1, 0));
    assert_eq!(r.update[0].metadata.name, full.metadata.name);
}

#[test]
fn pods_of_a_service_are_found_by_selector() {
    let svcs = [
        service(json!({})),
        service(json!({"metadata": {"name": "all-web"}, "spec": {"selector": {"app": "web"}}})),
        service(json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}}})),
        service(json!({"metadata": {"name": "manual"}, "spec": {"selector": null}})),
    ];
    let names: Vec<_> = services_selecting(&svcs, &pod(1, true))
        .into_iter()
        .collect();
    assert_eq!(names, ["all-web", "web"]);
}
