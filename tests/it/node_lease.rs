//! Node heartbeats through Leases (`coordination.k8s.io/v1`), as Kubernetes
//! does them since 1.17:
//!
//! * the real kubectl lists and prints the Lease a kubelet holds in
//!   `kube-node-lease` (discovery, routing and the server-side Table);
//! * through kube-rs, on paused time: the kubelet renews the Lease every
//!   10 s, while the unchanged node status is not written again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use labs::apiserver::ApiServer;
use labs::cluster::SimulatedNodes;
use labs::kubelet::Clock;
use labs::kubelet::runtime::LoopbackIpam;
use labs::kubelet::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use workbook::apiserver::TestServer;
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_gets_the_node_lease() {
    let s = TestServer::start().await;
    let nodes = SimulatedNodes::start(&s.api, &s.client(), 1, SimulatedConfig::default(), 1);
    let leases: Api<Lease> = Api::namespaced(s.client(), "kube-node-lease");
    wait_for("node-1's Lease", LIMIT, || async {
        leases
            .get_opt("node-1")
            .await
            .ok()
            .flatten()
            .is_some_and(|l| l.metadata.owner_references.is_some())
    })
    .await;

    let out = s.kubectl(&["get", "leases", "-n", "kube-node-lease"]).await;
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "HOLDER", "AGE"], "{text}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..2], ["node-1", "node-1"], "{text}");

    let out = s
        .kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "node-1",
            "-o",
            "yaml",
        ])
        .await;
    let yaml = out.ok();
    for expected in [
        "apiVersion: coordination.k8s.io/v1",
        "kind: Lease",
        "namespace: kube-node-lease",
        "holderIdentity: node-1",
        "leaseDurationSeconds: 40",
        "renewTime:",
        "kind: Node",
    ] {
        assert!(yaml.contains(expected), "{expected}:\n{yaml}");
    }
    // renewTime is a MicroTime: RFC 3339 with microseconds.
    let renew = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("renewTime: "))
        .unwrap()
        .trim_matches('"');
    let fraction = renew.split('.').nth(1).unwrap_or_default();
    assert_eq!(fraction.len(), "000000Z".len(), "{renew}");

    let out = s.kubectl(&["get", "namespaces"]).await;
    assert!(out.ok().contains("kube-node-lease"), "{}", out.stdout);

    // A bad Lease is refused with upstream's message, and nothing is stored.
    let bad = s.file(
        "bad-lease.yaml",
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: bad\n\
         spec:\n  holderIdentity: me\n  leaseDurationSeconds: 0\n",
    );
    let out = s.kubectl(&["create", "-f", &bad]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(
            r#"The Lease "bad" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"#
        ),
        "{out:?}"
    );
    let out = s.kubectl(&["get", "lease", "bad"]).await;
    assert_eq!(out.code, 1, "{out:?}");

    nodes.stop().await.unwrap();
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_kubelet_renews_its_lease_and_writes_an_unchanged_status_rarely() {
    let api = ApiServer::new(Store::new());
    let clock = Clock::starting_at(Timestamp::from_second(1_800_000_000).unwrap());
    let rt = Arc::new(SimulatedRuntime::new(
        SimulatedConfig::default(),
        clock,
        LoopbackIpam::default(),
    ));
    let kubelet = Kubelet::start(api.client(), rt, KubeletConfig::new("node-1"), clock);
    let leases: Api<Lease> = Api::namespaced(api.client(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(api.client());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let lease = leases.get("node-1").await.unwrap();
    let node = nodes.get("node-1").await.unwrap();
    let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "node-1")
    );
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());
    let renew = |l: &Lease| l.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
    let first = renew(&lease);

    // Every 10 s, a renewal.
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let lease = leases.get("node-1").await.unwrap();
        assert_eq!(
            renew(&lease).duration_since(first).as_secs(),
            10 * n,
            "renewal {n}"
        );
    }
    // Meanwhile the node status was computed three times and written
    // never: nothing changed.
    let later = nodes.get("node-1").await.unwrap();
    assert_eq!(
        later.metadata.resource_version,
        node.metadata.resource_version
    );

    // After nodeStatusReportFrequency (5 min) it is written anyway.
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let later = nodes.get("node-1").await.unwrap();
    assert_ne!(
        later.metadata.resource_version,
        node.metadata.resource_version
    );

    kubelet.stop().await;
}

/// The Lease names its Node as owner, so deleting the Node deletes the
/// Lease: the garbage collector follows an ownerReference from a namespaced
/// object to a cluster-scoped owner.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_node_deletes_its_lease() {
    use kube::api::DeleteParams;
    use labs::controllers::manager::{ControllerManager, ManagerOptions};

    let s = TestServer::start().await;
    let controllers = ControllerManager::start(s.client(), ManagerOptions::default());
    let nodes = SimulatedNodes::start(&s.api, &s.client(), 1, SimulatedConfig::default(), 1);
    let leases: Api<Lease> = Api::namespaced(s.client(), "kube-node-lease");
    wait_for("node-1's Lease with its owner", LIMIT, || async {
        leases
            .get_opt("node-1")
            .await
            .ok()
            .flatten()
            .is_some_and(|l| l.metadata.owner_references.is_some())
    })
    .await;
    // Stop the kubelet first, or it would register the node again.
    nodes.stop().await.unwrap();
    Api::<Node>::all(s.client())
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the Lease deleted", LIMIT, || async {
        matches!(leases.get_opt("node-1").await, Ok(None))
    })
    .await;

    controllers.shutdown().await.unwrap();
    s.stop().await;
}
