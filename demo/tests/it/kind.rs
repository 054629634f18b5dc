//! The kind manifests: a snapshot, the book's copy, and the YAML read back
//! as typed objects to check the pieces fit (the proxy forwards to the
//! Service PostgreSQL is behind, both Secrets hold the same password, the
//! loaded image is used as it is, never pulled).

use demo::kind::manifests::POSTGRES_IMAGE;
use demo::targets::{AppVersion, Settings, TargetKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use serde::Deserialize;

use crate::gke::check_generated;

/// `demo manifests --target kind [--namespace NS --replicas N]`: what the
/// kind target applies, before the cluster step has made a password.
fn kind_yaml(namespace: &str, replicas: i32, version: &str) -> String {
    let settings = Settings {
        target: TargetKind::Kind,
        namespace: namespace.into(),
        replicas,
        ..Settings::default()
    };
    let target = demo::targets::open(&settings, Default::default()).unwrap();
    let image = target.image_name(version);
    let objects = target
        .objects(&settings, &image, &AppVersion::good(version))
        .unwrap();
    demo::workload::yaml(&objects).unwrap()
}

#[test]
fn kind_manifests_snapshot_and_book_copy() {
    let yaml = kind_yaml("default", 3, "v1");
    insta::assert_snapshot!("kind_manifests", yaml);
    check_generated("kind-manifests.yaml", &yaml);
}

#[test]
fn the_kind_pieces_fit_together() {
    let yaml = kind_yaml("talk", 4, "v2");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Secret",
            "Secret",
            "Deployment",
            "Service",
            "Deployment",
            "Service"
        ]
    );
    let app_secret: Secret = serde_yaml::from_value(docs[1].clone()).unwrap();
    let pg_secret: Secret = serde_yaml::from_value(docs[2].clone()).unwrap();
    let pg: Deployment = serde_yaml::from_value(docs[3].clone()).unwrap();
    let pg_service: Service = serde_yaml::from_value(docs[4].clone()).unwrap();
    let web: Deployment = serde_yaml::from_value(docs[5].clone()).unwrap();
    for doc in &docs {
        assert_eq!(doc["metadata"]["namespace"], "talk", "{doc:?}");
    }

    let app_data = app_secret.string_data.unwrap();
    let pg_data = pg_secret.string_data.unwrap();
    assert_eq!(app_data["password"], pg_data["POSTGRES_PASSWORD"]);
    assert_eq!(app_data["username"], pg_data["POSTGRES_USER"]);
    assert_eq!(app_data["database"], pg_data["POSTGRES_DB"]);

    let pg_spec = pg.spec.unwrap();
    assert_eq!(pg_spec.replicas, Some(1));
    assert_eq!(
        pg_spec.strategy.unwrap().type_.as_deref(),
        Some("Recreate"),
        "never two servers on one data directory"
    );
    let pg_pod = pg_spec.template.spec.unwrap();
    assert_eq!(pg_pod.containers[0].image.as_deref(), Some(POSTGRES_IMAGE));
    assert_eq!(
        pg_service.spec.as_ref().unwrap().selector,
        pg_spec.template.metadata.unwrap().labels
    );
    // The proxy forwards to the address in the app's Secret: PostgreSQL's
    // Service, on its port.
    let service_name = pg_service.metadata.name.unwrap();
    let pg_port = pg_service.spec.unwrap().ports.unwrap()[0].port;
    assert_eq!(app_data["address"], format!("{service_name}:{pg_port}"));

    let web_spec = web.spec.unwrap();
    assert_eq!(web_spec.replicas, Some(4));
    let pod = web_spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("web"));
    let proxy = &pod.init_containers.unwrap()[0];
    assert_eq!(
        proxy.restart_policy.as_deref(),
        Some("Always"),
        "a native sidecar"
    );
    let args = proxy.args.clone().unwrap();
    assert_eq!(args[0], "proxy");
    let env = proxy.env.clone().unwrap();
    let to = env.iter().find(|e| e.name == "PROXY_TO").unwrap();
    let from = to
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("web-db", "address")
    );
    let app = &pod.containers[0];
    assert_eq!(app.image.as_deref(), Some("workbook/demo-app:v2"));
    assert_eq!(app.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(proxy.image.as_deref(), Some("workbook/demo-app:v2"));
    let app_env = app.env.clone().unwrap();
    let db_host = app_env.iter().find(|e| e.name == "DB_HOST").unwrap();
    assert_eq!(db_host.value.as_deref(), Some("127.0.0.1"));
    assert!(!yaml.contains(":latest"));
}
