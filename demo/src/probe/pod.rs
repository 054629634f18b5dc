//! The traffic probe as a pod: how the demo watches a rollout on kind and
//! GKE without exposing anything.
//!
//! The Service's cluster IP answers only inside the cluster, so the probe
//! goes there: a pod running `demo-app probe URL --rps N` (the app's own
//! image, which every node already has), its results read back through
//! the pod's log, followed as `kubectl logs -f` follows it. Each line is one
//! request (see `demo-app`'s `probe` module for the format). To stop, the
//! demo deletes the pod: the kubelet sends SIGTERM, the probe finishes the
//! requests in flight, writes `{"done":true}` and exits, and the log ends.
//!
//! What this costs compared with the in-process probe: the pod must be
//! scheduled and started (a second or two), and the counts arrive with the
//! log's delay. What it gains: it measures what another pod in the cluster
//! sees, which is what the app's real clients inside the cluster see.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use super::{Outcome, Probe, ProbeReport, Stats};

/// Requests per second of the probe pod: enough to see every pod of a
/// small Deployment answer during a rollout, little enough for a laptop.
pub const POD_PROBE_RPS: u32 = 20;
/// The label the probe pods carry (with the demo's managed-by label).
pub const COMPONENT: &str = "probe";

/// A probe pod and the task reading its log.
pub struct PodProbe {
    api: Api<Pod>,
    name: String,
    stats: Arc<Mutex<Stats>>,
    task: tokio::task::JoinHandle<anyhow::Result<bool>>,
}

/// The probe pod's manifest: the app's image with the `probe` argument,
/// never restarted (a probe that restarted would count from zero again).
pub fn manifest(name: &str, namespace: &str, image: &str, url: &str, rps: u32) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": crate::FIELD_MANAGER,
                "app.kubernetes.io/component": COMPONENT,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 15,
            "containers": [{
                "name": "probe",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["probe", url, "--rps", rps.to_string()],
            }],
        },
    }))
    .expect("a valid Pod")
}

/// `http://CLUSTER-IP:PORT/`: the Service's address as a pod reaches it.
/// (The cluster IP rather than the DNS name: the lab cluster has no DNS,
/// and on kind and GKE the address is the same Service.)
pub async fn service_url(client: &kube::Client, service: &Service) -> anyhow::Result<String> {
    let ns = service.metadata.namespace.as_deref().unwrap_or("default");
    let name = service.metadata.name.as_deref().unwrap_or(crate::APP);
    let live = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("no Service {name} to probe"))?;
    let spec = live.spec.context("the Service has no spec")?;
    let ip = spec.cluster_ip.context("the Service has no cluster IP")?;
    let port = spec
        .ports
        .and_then(|p| p.first().map(|p| p.port))
        .context("the Service has no port")?;
    Ok(format!("http://{ip}:{port}/"))
}

impl PodProbe {
    // ANCHOR: start
    /// Starts a probe pod sending `rps` requests a second to `url`, waits
    /// until it runs, and follows its log.
    pub async fn start(
        client: &kube::Client,
        namespace: &str,
        image: &str,
        url: &str,
        rps: u32,
    ) -> anyhow::Result<PodProbe> {
        let api = Api::<Pod>::namespaced(client.clone(), namespace);
        let name = format!(
            "{}-probe-{}",
            crate::APP,
            fastrand::u32(..)
                .to_string()
                .chars()
                .take(5)
                .collect::<String>()
        );
        api.create(
            &PostParams::default(),
            &manifest(&name, namespace, image, url, rps),
        )
        .await
        .with_context(|| format!("cannot create the probe pod {name}"))?;
        if let Err(e) = wait_running(&api, &name).await {
            let _ = api.delete(&name, &DeleteParams::default()).await;
            return Err(e);
        }
        let stats = Arc::new(Mutex::new(Stats::default()));
        let (shared, logs, pod) = (Arc::clone(&stats), api.clone(), name.clone());
        let task = tokio::spawn(async move {
            let params = LogParams {
                follow: true,
                container: Some("probe".into()),
                ..LogParams::default()
            };
            let stream = logs
                .log_stream(&pod, &params)
                .await
                .with_context(|| format!("cannot follow the log of {pod}"))?;
            let mut lines = stream.lines();
            while let Some(line) = lines.next().await {
                let line = line.with_context(|| format!("reading the log of {pod}"))?;
                match parse_line(&line) {
                    Line::Outcome(o) => shared.lock().unwrap_or_else(|e| e.into_inner()).record(o),
                    Line::Done => return Ok(true),
                    Line::Other => {}
                }
            }
            // The log ended without the last line: the pod was stopped
            // before it could finish (or the log was cut).
            Ok(false)
        });
        Ok(PodProbe {
            api,
            name,
            stats,
            task,
        })
    }
    // ANCHOR_END: start

    /// The probe pod's name (`web-probe-12345`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Polls the pod until its container runs (up to two minutes: on GKE the
/// node may pull the image first), failing with the kubelet's reason.
async fn wait_running(api: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pod = api.get(name).await?;
        let status = pod.status.unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        let waiting = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| c.state.and_then(|s| s.waiting))
            .and_then(|w| w.reason);
        match phase.as_str() {
            "Running" => return Ok(()),
            "Failed" | "Succeeded" => {
                anyhow::bail!("the probe pod {name} ended at once ({phase})")
            }
            _ => {}
        }
        if let Some(reason) = &waiting
            && matches!(
                reason.as_str(),
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "CreateContainerError"
            )
        {
            anyhow::bail!("the probe pod {name} cannot start: {reason}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the probe pod {name} is not running after 120 s (phase {phase:?}{})",
            waiting.map(|w| format!(", {w}")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

enum Line {
    Outcome(Outcome),
    Done,
    Other,
}

/// One log line of `demo-app probe`.
fn parse_line(line: &str) -> Line {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Line::Other;
    };
    if v["done"] == true {
        return Line::Done;
    }
    if let Some(error) = v["error"].as_str() {
        return Line::Outcome(Outcome::Failed(error.to_string()));
    }
    match v["version"].as_str() {
        Some(version) => Line::Outcome(Outcome::Answered {
            version: version.to_string(),
            latency: Duration::from_secs_f64(v["ms"].as_f64().unwrap_or(0.0) / 1000.0),
            visits: v["visits"].as_i64(),
            in_database: v["in_database"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        None => Line::Other,
    }
}

#[async_trait]
impl Probe for PodProbe {
    fn snapshot(&self) -> ProbeReport {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report()
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<ProbeReport> {
        let PodProbe {
            api,
            name,
            stats,
            task,
        } = *self;
        // Deleting the pod is the stop signal (SIGTERM from the kubelet).
        api.delete(&name, &DeleteParams::default())
            .await
            .with_context(|| format!("cannot delete the probe pod {name}"))?;
        let finished = tokio::time::timeout(Duration::from_secs(45), task).await;
        let complete = match finished {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => anyhow::bail!("the probe's log reader failed: {e}"),
            Err(_) => false,
        };
        anyhow::ensure!(
            complete,
            "the probe pod {name} stopped without its last line: its counts are incomplete"
        );
        let report = stats.lock().unwrap_or_else(|e| e.into_inner()).report();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_become_outcomes() {
        let mut stats = Stats::default();
        for line in [
            r#"{"version":"v1","ms":2.0,"visits":3,"in_database":["v1"]}"#,
            r#"{"error":"connection refused"}"#,
            "a line from somewhere else",
        ] {
            if let Line::Outcome(o) = parse_line(line) {
                stats.record(o);
            }
        }
        let r = stats.report();
        assert_eq!((r.requests, r.errors, r.visits), (2, 1, Some(3)));
        assert_eq!(r.p50_ms, 2.0);
        assert!(matches!(parse_line(r#"{"done":true}"#), Line::Done));
    }

    #[test]
    fn the_pod_is_never_restarted_and_uses_the_loaded_image() {
        let pod = manifest(
            "web-probe-1",
            "talk",
            "workbook/demo-app:v1",
            "http://10.0.0.9:80/",
            20,
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.args.clone().unwrap(),
            ["probe", "http://10.0.0.9:80/", "--rps", "20"]
        );
    }
}
