//! The GKE manifests and `gcloud` commands: snapshots of both, the book's
//! copies (`book/src/generated/`, included by what-changed.md) kept equal
//! to them, and the YAML read back as typed objects to check that the
//! pieces fit together (the names the Deployment uses are the ones the other
//! objects and the commands create).

use demo::gke::{CLOUD_SQL_PROXY_IMAGE, GkeParams, gcloud_commands, gcloud_steps};
use demo::manifests::manifests_yaml;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use serde::Deserialize;

/// The placeholders the book shows.
fn book_params() -> GkeParams {
    GkeParams {
        project: "PROJECT_ID".into(),
        region: "asia-northeast1".into(),
        instance: "workbook-db".into(),
        database: "app".into(),
        namespace: "default".into(),
        image: "asia-northeast1-docker.pkg.dev/PROJECT_ID/workbook/demo-app:v1".into(),
        replicas: 3,
        db_password: "GENERATED_PASSWORD".into(),
    }
}

/// The book's copy of a generated text must equal `text`
/// ([`labs::lab::book::check_generated`]: `UPDATE_GENERATED=1` writes it
/// instead, then review the diff).
pub(crate) fn check_generated(name: &str, text: &str) {
    if let Err(e) = labs::lab::book::check_generated(name, text) {
        panic!("{e}");
    }
}

#[test]
fn manifests_snapshot_and_book_copy() {
    let yaml = manifests_yaml(&book_params()).unwrap();
    insta::assert_snapshot!("gke_manifests", yaml);
    check_generated("gke-manifests.yaml", &yaml);
}

#[test]
fn gcloud_commands_snapshot_and_book_copy() {
    let text = gcloud_commands(&book_params()).join("\n") + "\n";
    insta::assert_snapshot!("gke_gcloud_commands", text);
    check_generated("gke-gcloud.sh", &text);
}

/// The documents, read back.
struct Objects {
    namespace: Namespace,
    service_account: ServiceAccount,
    secret: Secret,
    deployment: Deployment,
    service: Service,
}

fn read_back(p: &GkeParams) -> Objects {
    let yaml = manifests_yaml(p).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "Secret",
            "Deployment",
            "Service"
        ],
        "apply order"
    );
    let typed = |i: usize| docs[i].clone();
    Objects {
        namespace: serde_yaml::from_value(typed(0)).unwrap(),
        service_account: serde_yaml::from_value(typed(1)).unwrap(),
        secret: serde_yaml::from_value(typed(2)).unwrap(),
        deployment: serde_yaml::from_value(typed(3)).unwrap(),
        service: serde_yaml::from_value(typed(4)).unwrap(),
    }
}

#[test]
fn the_pieces_fit_together() {
    let p = GkeParams {
        project: "my-proj".into(),
        region: "europe-west1".into(),
        instance: "db1".into(),
        database: "visits".into(),
        namespace: "talk".into(),
        image: "europe-west1-docker.pkg.dev/my-proj/w/demo-app:v2".into(),
        replicas: 5,
        db_password: "pw".into(),
    };
    let o = read_back(&p);
    assert_eq!(o.namespace.metadata.name.as_deref(), Some("talk"));
    let d = &o.deployment;
    assert_eq!(d.metadata.namespace.as_deref(), Some("talk"));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(5));
    let pod = spec.template.spec.as_ref().unwrap();

    // Workload Identity: the pods run as the annotated service account,
    // and the IAM binding names exactly that account in that namespace.
    let ksa = o.service_account.metadata.name.clone().unwrap();
    assert_eq!(pod.service_account_name.as_ref(), Some(&ksa));
    let gsa =
        &o.service_account.metadata.annotations.as_ref().unwrap()["iam.gke.io/gcp-service-account"];
    assert_eq!(gsa, "web-sql@my-proj.iam.gserviceaccount.com");
    let steps = gcloud_steps(&p);
    let binding = steps
        .iter()
        .find(|s| {
            s.args
                .iter()
                .any(|a| a == "--role=roles/iam.workloadIdentityUser")
        })
        .unwrap();
    assert!(binding.args.contains(gsa));
    assert!(binding.args.contains(&format!(
        "--member=serviceAccount:my-proj.svc.id.goog[talk/{ksa}]"
    )));
    assert!(steps.iter().any(
        |s| s.args.contains(&format!("--member=serviceAccount:{gsa}"))
            && s.args.iter().any(|a| a == "--role=roles/cloudsql.client")
    ));

    // The proxy: a native sidecar, pinned, on port 5432, for this instance.
    let proxy = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
    assert_eq!(proxy.image.as_deref(), Some(CLOUD_SQL_PROXY_IMAGE));
    let tag = CLOUD_SQL_PROXY_IMAGE.rsplit_once(':').unwrap().1;
    assert!(tag.starts_with("2.") && tag != "latest", "a pinned 2.x tag");
    let args = proxy.args.as_ref().unwrap();
    for want in [
        "--port=5432",
        "--structured-logs",
        "my-proj:europe-west1:db1",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(proxy.startup_probe.is_some() && proxy.resources.is_some());

    // The app: reaches the proxy on its localhost, logs in with the
    // Secret's keys, serves where its probes and the Service look.
    let app = &pod.containers[0];
    assert_eq!(app.image.as_deref(), Some(p.image.as_str()));
    let env = app.env.as_ref().unwrap();
    let literal = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| panic!("{n} literal"))
    };
    assert_eq!(literal("DB_HOST"), "127.0.0.1");
    assert_eq!(literal("DB_PORT"), "5432");
    assert_eq!(literal("DB_NAME"), "visits");
    assert_eq!(literal("LISTEN"), "0.0.0.0:8080");
    let secret_data = o.secret.string_data.as_ref().unwrap();
    for name in ["DB_USER", "DB_PASSWORD"] {
        let r = env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|f| f.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!(Some(&r.name), o.secret.metadata.name.as_ref());
        assert!(secret_data.contains_key(&r.key), "{name}: key {}", r.key);
    }
    assert_eq!(secret_data["password"], "pw");
    assert!(
        steps
            .iter()
            .any(|s| s.args.contains(&"--password=pw".to_string()))
    );
    assert!(steps.iter().any(|s| s.args.contains(&"visits".to_string())));
    let path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&app.readiness_probe), "/readyz");
    assert_eq!(path(&app.liveness_probe), "/livez");

    // The Service selects the pods and targets the app's named port.
    let svc = o.service.spec.as_ref().unwrap();
    assert_eq!(
        svc.selector,
        spec.template.metadata.as_ref().unwrap().labels
    );
    let port_name = app.ports.as_ref().unwrap()[0].name.clone().unwrap();
    assert_eq!(
        svc.ports.as_ref().unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(port_name))
    );
}
