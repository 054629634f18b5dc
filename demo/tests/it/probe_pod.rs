//! The traffic probe as a pod (what kind and GKE use), tried on the lab
//! cluster: its process runtime runs `workbook/demo-app` images as child
//! processes, so the probe pod is a real `demo-app probe` sending real
//! requests through kube-proxy to the app's Service, and its counts come
//! back through the pod's log, followed through the API server as `kubectl
//! logs -f` does. A rolling update runs while it counts.

use std::time::Duration;

use demo::narrate::Narrator;
use demo::probe::Probe;
use demo::probe::pod::{PodProbe, service_url};
use demo::steps::Demo;
use demo::targets::local::LocalOptions;
use demo::targets::{AppVersion, Settings};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_probe_pod_counts_a_rolling_update_through_its_log() {
    let state = tempfile::tempdir().unwrap();
    // A generous progress deadline: this test shares the machine with the
    // end-to-end runs, and it measures the probe, not the deadline.
    let settings = Settings {
        progress_deadline_seconds: 120,
        ..Settings::default()
    };
    let local = LocalOptions {
        exe: Some(env!("CARGO_BIN_EXE_demo").into()),
        addresses: Some(crate::test_addresses(3)),
        state_dir: state.path().to_path_buf(),
        attach: false,
    };
    let target = demo::targets::open(&settings, local).unwrap();
    let mut demo = Demo::new(
        target,
        settings.clone(),
        Narrator::to(Box::new(std::io::sink())),
    );
    let outcome = async {
        demo.cluster().await?;
        let images = demo.image(&["v1", "v2"]).await?;
        let (v1, v2) = (AppVersion::good("v1"), AppVersion::good("v2"));
        let first = demo.target.objects(&settings, &images[0], &v1)?;
        demo.settings(&first).await?;
        demo.deploy(&first).await?;
        let client = demo.client()?.clone();
        let url = service_url(&client, &first.service).await?;
        let probe = PodProbe::start(&client, "default", &images[0], &url, 20).await?;
        let name = probe.name().to_string();
        // Counting has begun once the first lines arrive through the log.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while probe.snapshot().requests < 20 {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no probe lines after 60 s: {:?}",
                probe.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let second = demo.target.objects(&settings, &images[1], &v2)?;
        let (completed, _) = demo.update(&second, &v2, Some(&probe)).await?;
        anyhow::ensure!(completed, "the rollout did not complete");
        let report = Box::new(probe).stop().await?;
        // The stop deleted the pod: nothing of the probe stays behind.
        let pods = Api::<Pod>::default_namespaced(client.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while pods.get_opt(&name).await?.is_some() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the probe pod {name} is still there"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=probe"))
            .await?;
        anyhow::ensure!(left.items.is_empty(), "probe pods left");
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    let Demo { target, mut n, .. } = demo;
    target.finish(false, &mut n).await.unwrap();
    let report = outcome.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.requests >= 40, "{report:?}");
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0
            && report.versions.get("v2").copied().unwrap_or(0) > 0,
        "both versions answered the probe pod: {report:?}"
    );
    assert_eq!(
        report.versions.values().sum::<usize>(),
        report.requests,
        "every request sent was counted (the pod finished what was in flight)"
    );
}
