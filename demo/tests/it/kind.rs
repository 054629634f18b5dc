//! The kind manifests: a snapshot, the book's copy, and the YAML read back
//! as typed objects to check the pieces fit (the proxy forwards to the
//! Service PostgreSQL is behind, both Secrets hold the same password, the
//! loaded image is used as it is, never pulled).

use demo::kind::manifests::{KindParams, POSTGRES_IMAGE, manifests_yaml};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use serde::Deserialize;

use crate::gke::check_generated;

fn book_params() -> KindParams {
    KindParams {
        namespace: "default".into(),
        image: "workbook/demo-app:v1".into(),
        replicas: 3,
        database: "app".into(),
        db_password: "GENERATED_PASSWORD".into(),
    }
}

#[test]
fn kind_manifests_snapshot_and_book_copy() {
    let yaml = manifests_yaml(&book_params()).unwrap();
    insta::assert_snapshot!("kind_manifests", yaml);
    check_generated("kind-manifests.yaml", &yaml);
}

#[test]
fn the_kind_pieces_fit_together() {
    let p = KindParams {
        namespace: "talk".into(),
        image: "workbook/demo-app:v2".into(),
        replicas: 4,
        database: "visits".into(),
        db_password: "pw".into(),
    };
    let yaml = manifests_yaml(&p).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
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

    let app_data = app_secret.string_data.unwrap();
    let pg_data = pg_secret.string_data.unwrap();
    assert_eq!(app_data["password"], pg_data["POSTGRES_PASSWORD"]);
    assert_eq!(app_data["username"], pg_data["POSTGRES_USER"]);
    assert_eq!(pg_data["POSTGRES_DB"], "visits");

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

    let pod = web.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.service_account_name, None,
        "no Workload Identity on kind"
    );
    let proxy = &pod.init_containers.unwrap()[0];
    assert_eq!(
        proxy.restart_policy.as_deref(),
        Some("Always"),
        "a native sidecar"
    );
    let service_name = pg_service.metadata.name.unwrap();
    let args = proxy.args.clone().unwrap();
    assert_eq!(args[0], "proxy");
    assert!(
        args.contains(&format!("--to={service_name}:5432")),
        "{args:?}"
    );
    assert!(args.contains(&"--listen=127.0.0.1:5432".to_string()));
    for container in [proxy, &pod.containers[0]] {
        assert_eq!(container.image.as_deref(), Some("workbook/demo-app:v2"));
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }
    let env = pod.containers[0].env.clone().unwrap();
    let db_host = env.iter().find(|e| e.name == "DB_HOST").unwrap();
    assert_eq!(db_host.value.as_deref(), Some("127.0.0.1"));
    assert!(!yaml.contains(":latest"));
}
