//! The HorizontalPodAutoscaler controller's plumbing: an informer on HPAs,
//! a queue that syncs each HPA every 15 s, and a sync that reads the
//! target's `scale` subresource, its pods and their metrics, asks the core
//! ([`super`]) and writes the new scale, the HPA's status and an Event.
//!
//! Unlike most controllers it is driven by time, not by events: load
//! changes without any object changing, so every HPA is resynced on a
//! period. It reaches the workload only through `…/scale` (so it works for
//! anything with a scale subresource) and the metrics only through the
//! `metrics.k8s.io` API, as upstream's does.
//! Upstream: `pkg/controller/podautoscaler/horizontal.go`
//! (`reconcileAutoscaler`, `normalizeDesiredReplicasWithBehaviors`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use super::{
    History, PodMetric, Policy, Rules, cpu_replicas, default_scale_down, default_scale_up,
    limit_rate, limit_without_behavior, stabilize, stabilize_without_behavior,
};
use crate::machinery::events::EventRecorder;
use crate::machinery::informer::{EventHandler, Informer, key_of};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The component name on its Events, as upstream.
pub const COMPONENT: &str = "horizontal-pod-autoscaler";

/// `--horizontal-pod-autoscaler-sync-period`.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct Options {
    pub sync_period: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_period: SYNC_PERIOD,
        }
    }
}

struct Shared {
    client: kube::Client,
    hpas: kube::runtime::reflector::Store<HorizontalPodAutoscaler>,
    history: Mutex<HashMap<String, History>>,
    recorder: Mutex<Option<EventRecorder>>,
    options: Options,
}

pub struct HorizontalController {
    shared: Arc<Shared>,
    informer: Informer<HorizontalPodAutoscaler>,
    queue: Arc<WorkQueue>,
}

impl HorizontalController {
    pub fn new(client: kube::Client, options: Options) -> Self {
        let informer = Informer::new(Api::<HorizontalPodAutoscaler>::all(client.clone()));
        HorizontalController {
            shared: Arc::new(Shared {
                client,
                hpas: informer.store(),
                history: Mutex::default(),
                recorder: Mutex::new(None),
                options,
            }),
            informer,
            queue: WorkQueue::new(),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        *shared.recorder.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventRecorder::new(
            shared.client.clone(),
            COMPONENT,
            shutdown.clone(),
        ));
        let every_period = Arc::new(EveryPeriod {
            queue: Arc::clone(&self.queue),
            period: shared.options.sync_period,
            waiting: Mutex::default(),
            shutdown: shutdown.clone(),
        });
        let informer = tokio::spawn(
            self.informer
                .run(Arc::new(Arc::clone(&every_period)), shutdown.clone()),
        );
        let store = shared.hpas.clone();
        let workers = Arc::clone(&shared);
        run_controller(
            COMPONENT,
            self.queue,
            async move { store.wait_until_ready().await },
            1,
            shutdown,
            move |key: String| {
                let shared = Arc::clone(&workers);
                let every_period = Arc::clone(&every_period);
                async move {
                    // Whatever happened, the next sync is one period away
                    // (upstream re-adds the key after every sync, errors
                    // included, unless the HPA is gone).
                    match shared.sync(&key).await {
                        Ok(Action::AwaitChange) => {}
                        Ok(Action::RequeueAfter(_)) => every_period.enqueue(key),
                        Err(err) => {
                            tracing::warn!(%key, %err, "HPA sync failed; retrying next period");
                            every_period.enqueue(key);
                        }
                    }
                    Ok::<_, anyhow::Error>(Action::AwaitChange)
                }
            },
        )
        .await?;
        let _ = informer.await;
        Ok(())
    }
}

// ANCHOR: every_period
/// How HPAs reach the queue: every add, change or delete, and every
/// finished sync, queues the key **one sync period later**, and a key
/// already waiting is not queued twice. So an HPA is synced every 15 s and
/// no more often — not even right after its own status write, or right
/// after it is created (its first status appears after 15 s). Upstream gets
/// this from a work queue whose rate limiter always answers "one resync
/// period" (`NewDefaultHPARateLimiter`, `enqueueHPA`). It matters: each
/// sync may scale up to max(2 × current, 4), so extra syncs would scale
/// faster than the rules allow.
struct EveryPeriod {
    queue: Arc<WorkQueue>,
    period: Duration,
    /// Keys with a delayed add pending.
    waiting: Mutex<HashSet<String>>,
    shutdown: CancellationToken,
}

impl EveryPeriod {
    fn enqueue(self: &Arc<Self>, key: String) {
        if !self.waiting.lock().unwrap().insert(key.clone()) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(this.period) => {
                    this.waiting.lock().unwrap().remove(&key);
                    this.queue.add(key);
                }
                _ = this.shutdown.cancelled() => {}
            }
        });
    }
}

impl EventHandler<HorizontalPodAutoscaler> for Arc<EveryPeriod> {
    fn on_add(&self, obj: &HorizontalPodAutoscaler) {
        self.enqueue(key_of(obj));
    }
    fn on_update(&self, _old: &HorizontalPodAutoscaler, obj: &HorizontalPodAutoscaler) {
        self.enqueue(key_of(obj));
    }
    fn on_delete(&self, obj: &HorizontalPodAutoscaler) {
        // The sync finds it gone and forgets its history.
        self.enqueue(key_of(obj));
    }
}
// ANCHOR_END: every_period

/// `spec.behavior` with upstream's defaults for what is not given.
fn rules(given: Option<&HPAScalingRules>, default: Rules) -> Rules {
    let Some(g) = given else {
        return default;
    };
    let policies = g.policies.as_ref().map(|ps| {
        ps.iter()
            .map(|p| match p.type_.as_str() {
                "Pods" => Policy::Pods {
                    value: p.value,
                    period_seconds: i64::from(p.period_seconds),
                },
                _ => Policy::Percent {
                    value: p.value,
                    period_seconds: i64::from(p.period_seconds),
                },
            })
            .collect()
    });
    Rules {
        stabilization_window_seconds: g
            .stabilization_window_seconds
            .map_or(default.stabilization_window_seconds, i64::from),
        select_policy: g.select_policy.clone().unwrap_or(default.select_policy),
        policies: policies.unwrap_or(default.policies),
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> HorizontalPodAutoscalerCondition {
    HorizontalPodAutoscalerCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(crate::machinery::clock::now())),
    }
}

/// Keeps a condition's transition time when its status did not change.
fn merge_conditions(
    old: Option<&Vec<HorizontalPodAutoscalerCondition>>,
    new: Vec<HorizontalPodAutoscalerCondition>,
) -> Vec<HorizontalPodAutoscalerCondition> {
    new.into_iter()
        .map(|mut c| {
            if let Some(o) = old.into_iter().flatten().find(|o| o.type_ == c.type_)
                && o.status == c.status
            {
                c.last_transition_time = o.last_transition_time.clone();
            }
            c
        })
        .collect()
}

impl Shared {
    // ANCHOR: sync
    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let resync = Action::RequeueAfter(self.options.sync_period);
        let Some(hpa) = self
            .hpas
            .get(&crate::machinery::informer::ref_from_key(key))
        else {
            self.history.lock().unwrap().remove(key);
            return Ok(Action::AwaitChange);
        };
        let hpa = (*hpa).clone();
        let ns = hpa.metadata.namespace.clone().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let now = crate::machinery::clock::now();
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let target = &spec.scale_target_ref;
        let mut conditions = Vec::new();

        // 1. The target's scale: current replicas and the pod selector.
        let scale_path = scale_path(&ns, &target.api_version, &target.kind, &target.name);
        let scale: serde_json::Value = match self.get_json(&scale_path).await {
            Ok(s) => s,
            Err(e) => {
                conditions.push(condition(
                    "AbleToScale",
                    false,
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                ));
                self.record(&hpa, "Warning", "FailedGetScale", e.to_string());
                self.write_status(&hpa, None, None, conditions, None)
                    .await?;
                return Ok(resync);
            }
        };
        conditions.push(condition(
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        ));
        let current = scale["spec"]["replicas"].as_i64().unwrap_or(0) as i32;
        let selector = scale["status"]["selector"]
            .as_str()
            .unwrap_or("")
            .to_string();

        // 2. Decide.
        let mut metric_status = None;
        let (desired, reason) = if current == 0 && min != 0 {
            conditions.push(condition(
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ));
            (0, String::new())
        } else if current > max {
            (
                max,
                "Current number of replicas above Spec.MaxReplicas".to_string(),
            )
        } else if current < min {
            (
                min,
                "Current number of replicas below Spec.MinReplicas".to_string(),
            )
        } else {
            let target_util = spec
                .metrics
                .iter()
                .flatten()
                .find_map(|m| m.resource.as_ref().filter(|r| r.name == "cpu"))
                .and_then(|r| r.target.average_utilization)
                .unwrap_or(80);
            let calc = match self.pods_and_metrics(&ns, &selector).await {
                Ok((pods, metrics)) => cpu_replicas(current, target_util, &pods, &metrics, now),
                Err(e) => Err(format!("unable to get metrics for resource cpu: {e}")),
            };
            let calc = match calc {
                Ok(c) => c,
                Err(e) => {
                    let message = format!("failed to get cpu utilization: {e}");
                    conditions.push(condition(
                        "ScalingActive",
                        false,
                        "FailedGetResourceMetric",
                        format!("the HPA was unable to compute the replica count: {message}"),
                    ));
                    // Upstream's two Events, as `kubectl describe hpa`
                    // shows them when metrics are missing.
                    self.record(&hpa, "Warning", "FailedGetResourceMetric", message.clone());
                    self.record(
                        &hpa,
                        "Warning",
                        "FailedComputeMetricsReplicas",
                        format!(
                            "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {message}"
                        ),
                    );
                    self.write_status(&hpa, Some(current), None, conditions, None)
                        .await?;
                    return Ok(resync);
                }
            };
            metric_status = Some((calc.utilization, calc.raw_average));
            conditions.push(condition(
                "ScalingActive",
                true,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)".into(),
            ));
            let behavior = spec.behavior.as_ref();
            let up = rules(
                behavior.and_then(|b| b.scale_up.as_ref()),
                default_scale_up(),
            );
            let down = rules(
                behavior.and_then(|b| b.scale_down.as_ref()),
                default_scale_down(),
            );
            let mut all = self.history.lock().unwrap();
            let history = all.entry(key.to_string()).or_insert_with(|| History {
                // A new HPA starts its scale-down window with the current
                // count: nothing is removed in its first 5 minutes.
                recommendations: vec![(now, current)],
                scale_events: Vec::new(),
            });
            // Without `spec.behavior` (as `kubectl autoscale` creates it)
            // upstream takes its older path; with it, the rules.
            let stabilized = match behavior {
                None => stabilize_without_behavior(calc.replicas, history, now),
                Some(_) => stabilize(calc.replicas, current, history, &up, &down, now),
            };
            // AbleToScale says whether the window held the count back.
            conditions[0] = if stabilized == calc.replicas {
                condition(
                    "AbleToScale",
                    true,
                    "ReadyForNewScale",
                    "recommended size matches current size".into(),
                )
            } else if calc.replicas >= current {
                condition(
                    "AbleToScale",
                    true,
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation".into(),
                )
            } else {
                condition(
                    "AbleToScale",
                    true,
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest recent recommendation".into(),
                )
            };
            let (desired, limit_reason, limit_message) = match behavior {
                None => limit_without_behavior(stabilized, current, (min, max)),
                Some(_) => limit_rate(stabilized, current, (min, max), history, &up, &down, now),
            };
            conditions.push(condition(
                "ScalingLimited",
                desired != stabilized,
                limit_reason,
                limit_message.into(),
            ));
            let reason = if desired > current {
                "cpu resource utilization (percentage of request) above target".to_string()
            } else {
                "All metrics below target".to_string()
            };
            (desired, reason)
        };

        // 3. Act.
        let mut last_scale_time = hpa.status.as_ref().and_then(|s| s.last_scale_time.clone());
        if desired != current && !(current == 0 && min != 0) {
            let patch = serde_json::json!({"spec": {"replicas": desired}});
            let api: Api<kube::core::DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &ns,
                &scale_resource(&target.api_version, &target.kind),
            );
            let result = api
                .patch_subresource(
                    "scale",
                    &target.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            match result {
                Ok(_) => {
                    conditions[0] = condition(
                        "AbleToScale",
                        true,
                        "SucceededRescale",
                        format!(
                            "the HPA controller was able to update the target scale to {desired}"
                        ),
                    );
                    // Only the behavior rules look back at past changes
                    // (upstream's `storeScaleEvent`).
                    if spec.behavior.is_some() {
                        self.history
                            .lock()
                            .unwrap()
                            .entry(key.to_string())
                            .or_default()
                            .scale_events
                            .push((now, desired - current));
                    }
                    last_scale_time = Some(Time(now));
                    self.record(
                        &hpa,
                        "Normal",
                        "SuccessfulRescale",
                        format!("New size: {desired}; reason: {reason}"),
                    );
                }
                Err(e) => {
                    conditions[0] = condition(
                        "AbleToScale",
                        false,
                        "FailedUpdateScale",
                        format!("the HPA controller was unable to update the target scale: {e}"),
                    );
                    self.record(
                        &hpa,
                        "Warning",
                        "FailedRescale",
                        format!("New size: {desired}; reason: {reason}; error: {e}"),
                    );
                }
            }
        }
        // Forget scale events older than any policy period (15 s by
        // default; keep 30 min as an upper bound).
        if let Some(h) = self.history.lock().unwrap().get_mut(key) {
            let cutoff = now - Duration::from_secs(1800);
            h.scale_events.retain(|(at, _)| *at > cutoff);
        }
        self.write_status(
            &hpa,
            Some(current),
            Some(desired),
            conditions,
            metric_status.map(|m| (m, last_scale_time.clone())),
        )
        .await?;
        Ok(resync)
    }
    // ANCHOR_END: sync

    async fn get_json(&self, path: &str) -> Result<serde_json::Value, kube::Error> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .expect("a valid request");
        self.client.request::<serde_json::Value>(req).await
    }

    /// The pods the target selects, and their CPU from `metrics.k8s.io`.
    async fn pods_and_metrics(
        &self,
        ns: &str,
        selector: &str,
    ) -> Result<(Vec<Pod>, HashMap<String, PodMetric>), String> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| e.to_string())?
            .items;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", selector)
            .finish();
        let list = self
            .get_json(&format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?{query}"
            ))
            .await
            .map_err(|e| e.to_string())?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Err("no metrics returned from resource metrics API".into());
        }
        let mut metrics = HashMap::new();
        for m in items {
            let name = m["metadata"]["name"].as_str().unwrap_or("").to_string();
            // A pod with no containers reported, or a container without a
            // cpu figure, has no metric: the calculator counts it as
            // missing (upstream's `getPodMetrics`).
            let containers = m["containers"].as_array().cloned().unwrap_or_default();
            let cpu: Option<i64> = containers
                .iter()
                .map(|c| {
                    c["usage"]["cpu"]
                        .as_str()
                        .and_then(|q| crate::machinery::quantity::parse_cpu_millis(q).ok())
                })
                .sum();
            let (Some(total), false) = (cpu, containers.is_empty()) else {
                continue;
            };
            let timestamp = m["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or_else(crate::machinery::clock::now);
            let window = m["window"]
                .as_str()
                .and_then(|w| w.trim_end_matches('s').parse::<u64>().ok())
                .unwrap_or(15);
            metrics.insert(
                name,
                PodMetric {
                    value: total,
                    timestamp,
                    window: Duration::from_secs(window),
                },
            );
        }
        Ok((pods, metrics))
    }

    fn record(
        &self,
        hpa: &HorizontalPodAutoscaler,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        if let Some(r) = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            r.record(hpa, type_, reason, message);
        }
    }

    async fn write_status(
        &self,
        hpa: &HorizontalPodAutoscaler,
        current: Option<i32>,
        desired: Option<i32>,
        conditions: Vec<HorizontalPodAutoscalerCondition>,
        metric: Option<((i32, i64), Option<Time>)>,
    ) -> anyhow::Result<()> {
        let old = hpa.status.clone().unwrap_or_default();
        let (current_metrics, last_scale_time) = match metric {
            Some(((utilization, raw), last)) => (
                Some(vec![MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: "cpu".into(),
                        current: MetricValueStatus {
                            average_utilization: Some(utilization),
                            average_value: Some(Quantity(format!("{raw}m"))),
                            value: None,
                        },
                    }),
                    ..MetricStatus::default()
                }]),
                last,
            ),
            None => (None, old.last_scale_time.clone()),
        };
        let status = HorizontalPodAutoscalerStatus {
            current_replicas: current.or(old.current_replicas),
            desired_replicas: desired.unwrap_or(old.desired_replicas),
            current_metrics,
            last_scale_time,
            observed_generation: hpa.metadata.generation,
            conditions: Some(merge_conditions(old.conditions.as_ref(), conditions)),
        };
        let mut new = hpa.clone();
        new.status = Some(status);
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
            self.client.clone(),
            hpa.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = hpa.metadata.name.clone().unwrap_or_default();
        match api
            .replace_status(&name, &PostParams::default(), &new)
            .await
        {
            Ok(_) => Ok(()),
            // Someone changed it since the cache saw it: the next sync
            // writes again.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `/apis/apps/v1/namespaces/default/deployments/web/scale`
fn scale_path(ns: &str, api_version: &Option<String>, kind: &str, name: &str) -> String {
    let r = scale_resource(api_version, kind);
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    format!("{base}/namespaces/{ns}/{}/{name}/scale", r.plural)
}

/// The resource of a `scaleTargetRef` (kind → plural as a RESTMapper would,
/// for the kinds with a scale subresource).
fn scale_resource(api_version: &Option<String>, kind: &str) -> kube::core::ApiResource {
    let gv = api_version.clone().unwrap_or_else(|| "apps/v1".into());
    let (group, version) = gv.split_once('/').unwrap_or(("", gv.as_str()));
    let plural = format!("{}s", kind.to_lowercase());
    kube::core::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: gv.clone(),
        kind: kind.into(),
        plural,
    }
}
