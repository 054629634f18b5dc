//! Service address allocation through kube-rs: allocation and release, a
//! type change, exhaustion, and a restarted API server that rebuilds its
//! allocators from the stored Services.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use labs::apiserver::Config;
use labs::store::Store;
use serde_json::json;
use workbook::apiserver::TestServer;

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn ip(s: &Service) -> String {
    s.spec.as_ref().unwrap().cluster_ip.clone().unwrap()
}

fn node_port(s: &Service) -> Option<i32> {
    s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port
}

#[tokio::test]
async fn allocation_release_and_restart() {
    let store = Store::new();
    let s = TestServer::start_with(store.clone(), Config::default()).await;
    let api: Api<Service> = Api::default_namespaced(s.client());
    let pp = PostParams::default();
    let a = api
        .create(&pp, &service("a", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap();
    let b = api
        .create(
            &pp,
            &service("b", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    assert_eq!((ip(&a), ip(&b)), ("127.2.1.1".into(), "127.2.1.2".into()));
    assert_eq!(node_port(&b), Some(30086));
    let spec = b.spec.as_ref().unwrap();
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    let headless = api
        .create(
            &pp,
            &service("h", json!({"clusterIP": "None", "selector": {"app": "h"}})),
        )
        .await
        .unwrap();
    assert_eq!(ip(&headless), "None");

    // A type change to ClusterIP gives the node port back…
    let b = api
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    assert_eq!(node_port(&b), None);
    assert_eq!(ip(&b), "127.2.1.2", "the cluster IP stays");
    // …and the next NodePort Service gets it.
    let c = api
        .create(
            &pp,
            &service("c", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    assert_eq!(node_port(&c), Some(30086));

    // A delete releases the IP: the lowest free one is handed out again.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let d = api
        .create(&pp, &service("d", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap();
    assert_eq!(ip(&d), "127.2.1.1");

    // A new API server on the same store (a restart) knows what is taken.
    s.stop().await;
    let s = TestServer::start_with(store, Config::default()).await;
    let api: Api<Service> = Api::default_namespaced(s.client());
    let e = api
        .create(
            &pp,
            &service("e", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    assert_eq!(ip(&e), "127.2.1.4");
    assert_eq!(node_port(&e), Some(30087));
    let err = api
        .create(
            &pp,
            &service(
                "f",
                json!({"clusterIP": "127.2.1.2", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(err) = err else {
        panic!("{err}")
    };
    assert_eq!(err.code, 422);
    s.stop().await;
}

#[tokio::test]
async fn a_full_range_is_upstreams_internal_error() {
    let config = Config {
        service_cidr: ("127.2.0.0".parse().unwrap(), 30),
        ..Config::default()
    };
    let s = TestServer::start_with(Store::new(), config).await;
    let api: Api<Service> = Api::default_namespaced(s.client());
    let pp = PostParams::default();
    for name in ["a", "b"] {
        api.create(&pp, &service(name, json!({"ports": [{"port": 80}]})))
            .await
            .unwrap();
    }
    let err = api
        .create(&pp, &service("c", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap_err();
    let kube::Error::Api(err) = err else {
        panic!("{err}")
    };
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    // Deleting one frees its address for the next.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(&pp, &service("c", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap();
    s.stop().await;
}
