//! `labs autoscale`: the HorizontalPodAutoscaler closes a loop — load goes
//! up, the pods' CPU goes up, the HPA adds pods, the load spreads over
//! them, the CPU per pod comes down to the target; load goes away and,
//! five minutes later, so do the extra pods.
//!
//! An in-process cluster on the simulated runtime and tokio's paused clock:
//! the minutes pass instantly and the run is the same every time. The CPU
//! is not measured but *set*: the simulated runtime's [`CpuLoad`] is the
//! total demand on the app's image, spread evenly over its running pods,
//! as a Service spreads requests. Everything else is the real thing: the
//! kubelets report the usage, the API server serves it as
//! `metrics.k8s.io` (what `kubectl top` reads), and the HPA controller
//! reads it from there every 15 s and scales the Deployment through its
//! `scale` subresource.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use crate::apiserver::ApiServer;
use crate::apiserver::table::hpa::targets;
use crate::cluster::SimulatedNodes;
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::kubelet::runtime::simulated::{CpuLoad, SimulatedConfig};
use crate::lab::narration::say;
use crate::store::Store;

const IMAGE: &str = "workbook/demo-app:v1";

/// What the run saw, for the tests.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The most replicas the HPA asked for under load.
    pub peak: i32,
    /// Seconds after the load dropped when the first scale-down happened.
    pub scaled_down_after: Option<u64>,
    /// Replicas at the end.
    pub end: i32,
}

pub async fn run(out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let api = ApiServer::new(Store::new());
    let client = api.client();
    let load = CpuLoad::default();
    let config = SimulatedConfig {
        load: load.clone(),
        ..SimulatedConfig::default()
    };
    let nodes = SimulatedNodes::start(&api, &client, 2, config, 1);
    let manager = ControllerManager::start(client.clone(), ManagerOptions::default());
    let mut lab = Lab {
        out,
        client,
        load,
        outcome: Outcome::default(),
    };
    let result = lab.scenario().await;
    manager.shutdown().await?;
    nodes.stop().await?;
    result.map(|()| lab.outcome)
}

struct Lab<'a> {
    out: &'a mut dyn Write,
    client: kube::Client,
    load: CpuLoad,
    outcome: Outcome,
}

/// One line of the timeline: what `kubectl get hpa` and
/// `kubectl get deploy` would show.
#[derive(PartialEq)]
struct Seen {
    targets: String,
    desired: i32,
    deployment: i32,
    ready: i32,
}

impl Lab<'_> {
    async fn scenario(&mut self) -> anyhow::Result<()> {
        let deployments: Api<Deployment> = Api::default_namespaced(self.client.clone());
        let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(self.client.clone());
        say!(
            self,
            "Lab: the HorizontalPodAutoscaler — virtual time, simulated CPU load"
        );
        say!(self);
        say!(
            self,
            "In this process: an API server, the controller manager (with the HPA controller),"
        );
        say!(
            self,
            "the scheduler and two kubelets on the simulated runtime, which report the CPU the"
        );
        say!(
            self,
            "lab sets. Times are virtual seconds since each step began (+Ns)."
        );
        say!(self);
        say!(
            self,
            "# A Deployment `web`: 1 replica, each pod requests 100m of CPU."
        );
        let deploy = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "demo-app", "image": IMAGE,
                        "resources": {"requests": {"cpu": "100m"}}}]},
                },
            },
        }))?;
        deployments.create(&PostParams::default(), &deploy).await?;
        say!(
            self,
            "# An HPA: keep the pods' CPU at 50% of their request, with 1 to 10 pods."
        );
        say!(
            self,
            "#   (kubectl autoscale deployment web --cpu=50% --min=1 --max=10)"
        );
        let hpa = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50}}}],
            },
        }))?;
        hpas.create(&PostParams::default(), &hpa).await?;
        self.watch("no load", Duration::from_secs(40)).await?;

        say!(self);
        say!(
            self,
            "# Traffic arrives: the app needs 400m of CPU in all, shared by its pods."
        );
        say!(
            self,
            "# The HPA syncs every 15 s; each sync may go to at most max(2 x current, 4) pods."
        );
        self.load.set(IMAGE, 400);
        let peak_seen = self.watch("400m", Duration::from_secs(120)).await?;
        self.outcome.peak = peak_seen;

        say!(self);
        say!(
            self,
            "# Traffic drops to 40m. The HPA computes 1 pod at once, but scales down only"
        );
        say!(
            self,
            "# to the highest recommendation of the last 5 minutes (the stabilization"
        );
        say!(
            self,
            "# window): at its first sync over 5 minutes after its last one under load, 8 becomes 1."
        );
        self.load.set(IMAGE, 40);
        let dropped = Instant::now();
        let mut last = None;
        let mut t = 0;
        while t <= 420 {
            let seen = self.seen().await?;
            if last.as_ref() != Some(&seen) {
                if last
                    .as_ref()
                    .is_some_and(|l: &Seen| seen.deployment < l.deployment)
                    && self.outcome.scaled_down_after.is_none()
                {
                    self.outcome.scaled_down_after = Some(dropped.elapsed().as_secs());
                }
                self.print(t, &seen)?;
                last = Some(seen);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            t += 1;
        }
        self.outcome.end = last.map_or(0, |l| l.deployment);

        say!(self);
        say!(self, "# The HPA's Events (kubectl describe hpa web):");
        let events: Api<Event> = Api::default_namespaced(self.client.clone());
        let mut list = events
            .list(&ListParams::default().fields("involvedObject.kind=HorizontalPodAutoscaler"))
            .await?
            .items;
        list.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
        for e in list {
            say!(
                self,
                "  {:<8} {:<24} {}",
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn seen(&self) -> anyhow::Result<Seen> {
        let hpa = Api::<HorizontalPodAutoscaler>::default_namespaced(self.client.clone())
            .get("web")
            .await?;
        let deploy = Api::<Deployment>::default_namespaced(self.client.clone())
            .get("web")
            .await?;
        let targets = targets(&serde_json::to_value(&hpa)?);
        let status = hpa.status.unwrap_or_default();
        Ok(Seen {
            targets,
            desired: status.desired_replicas,
            deployment: deploy.spec.and_then(|s| s.replicas).unwrap_or(0),
            ready: deploy.status.and_then(|s| s.ready_replicas).unwrap_or(0),
        })
    }

    fn print(&mut self, t: u64, seen: &Seen) -> anyhow::Result<()> {
        say!(
            self,
            "  +{t:>3}s  TARGETS {:<16} desired {:>2}   deployment/web {:>2} replicas, {:>2} ready",
            seen.targets,
            seen.desired,
            seen.deployment,
            seen.ready
        );
        Ok(())
    }

    /// Prints every change for `how_long`, seconds counted from now;
    /// returns the most replicas the deployment had.
    async fn watch(&mut self, _what: &str, how_long: Duration) -> anyhow::Result<i32> {
        let mut last: Option<Seen> = None;
        let mut peak = 0;
        for t in 0..=how_long.as_secs() {
            let seen = self.seen().await?;
            peak = peak.max(seen.deployment);
            if last.as_ref() != Some(&seen) {
                self.print(t, &seen)?;
                last = Some(seen);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(peak)
    }
}
