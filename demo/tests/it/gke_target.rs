//! The GKE target behind the step machine's seam, against the lab API
//! server (a GKE-style kubeconfig whose user logs in with an exec plugin)
//! and the recorded gcloud: the cluster step only checks, and `demo down`
//! removes the app's objects and exactly the cloud resources the record
//! lists, then the record. Also the dry runs of kind and GKE, which the
//! book shows.

use demo::apply::{apply, to_value};
use demo::gke::Created;
use demo::gke::cloud::{STATE_CONFIGMAP, record};
use demo::narrate::Narrator;
use demo::steps::Demo;
use demo::targets::{AppVersion, CloudOptions, Settings, TargetKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::gke::check_generated;
use crate::gke_run::{api_server, executable, kubeconfig, recorded_gcloud_playing};

/// A `Write` the test reads back while the narrator owns it.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn gke_down_through_the_step_machine_removes_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stop) = api_server().await;
    let plugin = dir.path().join("gke-gcloud-auth-plugin");
    executable(
        &plugin,
        "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\
         \"kind\":\"ExecCredential\",\"status\":{\"token\":\"recorded-gke-token\"}}'\n",
    );
    let config = kubeconfig(dir.path(), port, &plugin.display().to_string());
    let cloud = CloudOptions {
        tools: recorded_gcloud_playing(dir.path(), "gcloud-down.tape"),
        kubeconfig: Some(config),
        ..CloudOptions::default()
    };
    let settings = Settings {
        target: TargetKind::Gke,
        namespace: "talk".into(),
        ..Settings::default()
    };
    let target = demo::targets::open_with(&settings, Default::default(), &cloud).unwrap();
    let out = Shared::default();
    let mut demo = Demo::new(
        target,
        settings.clone(),
        Narrator::to(Box::new(out.clone())),
    );
    demo.cluster().await.unwrap_or_else(|e| panic!("{e:#}"));
    let client = demo.client().unwrap().clone();

    // What an earlier `demo run --target gke` left: the app's objects and
    // the record of the cloud resources it made.
    let image = demo.target.image_name("v1");
    assert_eq!(
        image,
        "asia-northeast1-docker.pkg.dev/my-proj/workbook/demo-app:v1"
    );
    let objects = demo
        .target
        .objects(&settings, &image, &AppVersion::good("v1"))
        .unwrap();
    let ns = to_value(&demo::manifests::namespace_named("talk"));
    apply(&client, &ns).await.unwrap();
    for o in &objects.settings {
        let mut v = serde_json::to_value(&o.object).unwrap();
        v["apiVersion"] = o.resource.api_version.clone().into();
        v["kind"] = o.resource.kind.clone().into();
        apply(&client, &v).await.unwrap();
    }
    apply(&client, &to_value(&objects.deployment))
        .await
        .unwrap();
    apply(&client, &to_value(&objects.service)).await.unwrap();
    let d: Deployment = Api::namespaced(client.clone(), "talk")
        .get("web")
        .await
        .unwrap();
    let annotations = d.metadata.annotations.unwrap();
    assert_eq!(
        annotations["kubernetes.io/change-cause"],
        format!("demo: {image}"),
        "rollout history shows the GKE image"
    );
    assert_eq!(d.spec.unwrap().progress_deadline_seconds, Some(60));
    for created in [
        Created::SqlInstance("workbook-db".into()),
        Created::ServiceAccount("web-sql@my-proj.iam.gserviceaccount.com".into()),
        Created::ProjectBinding {
            member: "serviceAccount:web-sql@my-proj.iam.gserviceaccount.com".into(),
            role: "roles/cloudsql.client".into(),
        },
    ] {
        record(&client, "talk", &created).await.unwrap();
    }

    demo.down().await.unwrap_or_else(|e| panic!("{e:#}"));
    let Demo { target, mut n, .. } = demo;
    target.finish(false, &mut n).await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let text = text.replace(&port.to_string(), "PORT");
    check_generated("demo-gke-down.txt", &text);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "talk");
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "talk");
    assert!(cms.get_opt(STATE_CONFIGMAP).await.unwrap().is_none());
    // Exactly the recorded deletes, in order: the tape was played whole.
    let log = std::fs::read_to_string(dir.path().join("gcloud.log")).unwrap();
    let tape = std::fs::read_to_string(dir.path().join("gcloud.tape")).unwrap();
    let expected: Vec<&str> = tape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(log.lines().collect::<Vec<_>>(), expected, "{text}");
    let _ = stop.send(());
}

/// `demo run --dry-run --yes` on kind and on GKE: every step's commands and
/// manifests, nothing contacted. The book includes both.
#[test]
fn kind_and_gke_dry_runs() {
    for (target, extra, file) in [
        ("kind", vec![], "demo-kind-dry-run.txt"),
        (
            "gke",
            vec!["--context", "gke_my-proj_asia-northeast1_talk"],
            "demo-gke-dry-run.txt",
        ),
    ] {
        let mut args = vec!["run", "--dry-run", "--yes", "--target", target];
        args.extend(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(&args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("demo-app:latest"), "{text}");
        check_generated(file, &text);
    }
}
