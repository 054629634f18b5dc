//! The kind target behind the step machine's seam, against the lab API
//! server reached through a `kind-<name>` context: the cluster step makes
//! the namespace (labelled as the demo's), the password PostgreSQL was
//! initialised with is read back by the next run instead of replaced, and
//! `down` removes PostgreSQL's objects and the namespace it made.

use demo::narrate::Narrator;
use demo::steps::Demo;
use demo::targets::{AppVersion, CloudOptions, Settings, TargetKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;

use crate::gke_run::api_server;

/// A kubeconfig with kind's context for cluster `cluster`, pointing at `port`.
fn kind_kubeconfig(dir: &std::path::Path, port: u16, cluster: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let name = format!("kind-{cluster}");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {name}\n\
             clusters:\n- name: {name}\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n\
             users:\n- name: {name}\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

fn open(settings: &Settings, cloud: &CloudOptions) -> Demo {
    let target = demo::targets::open_with(settings, Default::default(), cloud).unwrap();
    Demo::new(
        target,
        settings.clone(),
        Narrator::to(Box::new(std::io::sink())),
    )
}

#[tokio::test]
async fn kind_keeps_postgres_password_and_down_removes_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stop) = api_server().await;
    let cloud = CloudOptions {
        kind_cluster: "talk".into(),
        kubeconfig: Some(kind_kubeconfig(dir.path(), port, "talk")),
        ..CloudOptions::default()
    };
    let settings = Settings {
        target: TargetKind::Kind,
        namespace: "shop".into(),
        ..Settings::default()
    };

    // The first run: the namespace is made, a password generated, and the
    // settings step applies both Secrets and PostgreSQL.
    let mut first = open(&settings, &cloud);
    first.cluster().await.unwrap_or_else(|e| panic!("{e:#}"));
    let client = first.client().unwrap().clone();
    let ns = Api::<Namespace>::all(client.clone())
        .get("shop")
        .await
        .unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "workbook-demo"
    );
    let image = first.target.image_name("v1");
    assert_eq!(image, "workbook/demo-app:v1");
    let objects = first
        .target
        .objects(&settings, &image, &AppVersion::good("v1"))
        .unwrap();
    first.settings(&objects).await.unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), "shop");
    let password =
        |s: Secret, key: &str| String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap();
    let initialised = password(secrets.get("postgres").await.unwrap(), "POSTGRES_PASSWORD");
    assert_eq!(initialised.len(), 32, "a generated password");
    assert_eq!(
        password(secrets.get("web-db").await.unwrap(), "password"),
        initialised
    );

    // A second run (`demo deploy` again, another process): PostgreSQL
    // keeps the password it started with, so the demo must too.
    let mut second = open(&settings, &cloud);
    second.cluster().await.unwrap();
    let again = second
        .target
        .objects(&settings, &image, &AppVersion::good("v1"))
        .unwrap();
    second.settings(&again).await.unwrap();
    assert_eq!(
        password(secrets.get("web-db").await.unwrap(), "password"),
        initialised
    );

    // Down: the app's objects (the step machine), PostgreSQL's and the
    // namespace (the target).
    second.down().await.unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), "shop");
    assert!(deployments.get_opt("postgres").await.unwrap().is_none());
    assert!(secrets.get_opt("postgres").await.unwrap().is_none());
    assert!(secrets.get_opt("web-db").await.unwrap().is_none());
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt("shop")
        .await
        .unwrap();
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the namespace the demo made is deleted"
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn kind_without_its_context_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudOptions {
        kind_cluster: "nothere".into(),
        kubeconfig: Some(kind_kubeconfig(dir.path(), 1, "other")),
        tools: demo::tools::Tools {
            path: Some(dir.path().as_os_str().to_owned()),
            ..Default::default()
        },
        ..CloudOptions::default()
    };
    let settings = Settings {
        target: TargetKind::Kind,
        ..Settings::default()
    };
    let mut demo = open(&settings, &cloud);
    let err = format!("{:#}", demo.cluster().await.unwrap_err());
    assert_eq!(
        err,
        "no kubeconfig context kind-nothere: create the cluster with `kind create cluster \
         --name nothere`, or run the demo with --create"
    );
    let mut settings = settings;
    settings.context = Some("kind-nothere".into());
    let cloud = CloudOptions {
        create: true,
        ..cloud
    };
    let mut demo = open(&settings, &cloud);
    let err = format!("{:#}", demo.cluster().await.unwrap_err());
    assert!(err.starts_with("the kind CLI is not installed"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
