//! The HorizontalPodAutoscaler controller's decision core: how many
//! replicas a workload should have for its pods' CPU to sit at the target.
//!
//! Every 15 s (`--horizontal-pod-autoscaler-sync-period`) the controller
//! reads the target's `scale` subresource, the pods it selects and their
//! CPU from the metrics API, and decides in three steps, each a function
//! here:
//!
//! 1. [`cpu_replicas`] — the replica calculator: utilisation = the pods' CPU
//!    use / their CPU requests; desired = ceil(current × utilisation /
//!    target), unless the ratio is within the 10 % tolerance. Pods that are
//!    not ready yet, or have no metrics yet, are treated conservatively so
//!    that a scale-up is not undone by pods still starting.
//! 2. [`stabilize`] — the scale-down stabilisation window: use the
//!    *highest* recommendation of the last 5 minutes, so a brief dip in
//!    load does not remove pods that are needed a minute later.
//! 3. [`limit_rate`] — the scaling policies (by default at most double or
//!    +4 pods per 15 s up, anything per 15 s down) and the min/max bounds.
//!
//! Steps 2 and 3 have two forms upstream. An HPA with `spec.behavior` (any
//! part of it) gets the rules above, with the API server filling in the
//! defaults. An HPA without it — what `kubectl autoscale` creates — takes
//! the older path that `behavior` was designed to reproduce:
//! [`stabilize_without_behavior`] (the same 5-minute scale-down window)
//! and [`limit_without_behavior`] (up to max(2 × current, 4) per sync).
//!
//! The plumbing (informer, resync, API calls) is in [`controller`].
//! Upstream: `pkg/controller/podautoscaler/{replica_calculator.go,
//! horizontal.go}`. Left out: Pods/Object/External and memory metrics,
//! `containerResource`, per-HPA `tolerance`, scaling to zero.

pub mod controller;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::machinery::quantity::parse_cpu_millis;

/// `--horizontal-pod-autoscaler-tolerance`: no change while the usage
/// ratio is within 10 % of 1.
pub const TOLERANCE: f64 = 0.1;
/// `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// One pod's CPU use, as the metrics API reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodMetric {
    /// Millicores.
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// What the replica calculator found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calculation {
    pub replicas: i32,
    /// Average utilisation of the ready pods with metrics, in % of requests.
    pub utilization: i32,
    /// Their average use, in millicores.
    pub raw_average: i64,
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The pod's CPU request: the sum over its containers (and restartable
/// init containers, i.e. sidecars). A container without one makes the
/// utilisation undefined — upstream's error text.
fn cpu_request(pod: &Pod) -> Result<i64, String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut total = 0;
    for c in spec.containers.iter().chain(sidecars) {
        let request = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
            .ok_or_else(|| {
                format!(
                    "missing request for cpu in container {} of Pod {name}",
                    c.name
                )
            })?;
        total += parse_cpu_millis(&request.0).map_err(|e| e.to_string())?;
    }
    Ok(total)
}

/// Upstream's `GetResourceUtilizationRatio`: (ratio, utilisation %, raw
/// average in millicores) over the pods in `metrics`.
fn utilization_ratio(
    metrics: &HashMap<String, i64>,
    requests: &HashMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, value) in metrics {
        if let Some(r) = requests.get(pod) {
            used += value;
            requested += r;
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        used / n,
    ))
}

// ANCHOR: cpu_replicas
/// The replica calculator for a CPU utilisation target (upstream's
/// `GetResourceReplicas` with `groupPods`).
pub fn cpu_replicas(
    current: i32,
    target_utilization: i32,
    pods: &[Pod],
    metrics: &HashMap<String, PodMetric>,
    now: Timestamp,
) -> Result<Calculation, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    // groupPods: which pods count.
    let (mut ready, mut unready, mut missing) = (0usize, Vec::new(), Vec::new());
    let mut usable: HashMap<String, i64> = HashMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        // Terminating and terminal (Failed or Succeeded) pods are ignored
        // altogether.
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Failed" | "Succeeded"))
        {
            continue;
        }
        if phase == Some("Pending") {
            unready.push(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            missing.push(name);
            continue;
        };
        let condition = ready_condition(pod);
        let start = pod.status.as_ref().and_then(|s| s.start_time.as_ref());
        let is_unready = match (condition, start) {
            (Some(c), Some(start)) => {
                let transition = c.last_transition_time.as_ref().map_or(start.0, |t| t.0);
                if start.0 + CPU_INITIALIZATION_PERIOD > now {
                    // Still starting: a sample taken before it had been
                    // ready for a whole window says nothing (start-up CPU).
                    c.status == "False" || metric.timestamp < transition + metric.window
                } else {
                    // Long started, never ready since its first readiness
                    // check: ignore it.
                    c.status == "False" && start.0 + INITIAL_READINESS_DELAY > transition
                }
            }
            _ => true,
        };
        if is_unready {
            unready.push(name);
            continue;
        }
        ready += 1;
        usable.insert(name, metric.value);
    }
    if usable.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests: HashMap<String, i64> = pods
        .iter()
        .map(|p| Ok((p.metadata.name.clone().unwrap_or_default(), cpu_request(p)?)))
        .collect::<Result<_, String>>()?;
    let (ratio, utilization, raw_average) =
        utilization_ratio(&usable, &requests, target_utilization)?;
    let result = |replicas| Calculation {
        replicas,
        utilization,
        raw_average,
    };
    let within = |r: f64| (1.0 - r).abs() <= TOLERANCE;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if within(ratio) {
            return Ok(result(current));
        }
        return Ok(result((ratio * ready as f64).ceil() as i32));
    }
    // Conservative assumptions: on a scale-down a pod without metrics
    // counts as using 100 % of its request (or the target, if higher); on a
    // scale-up as using nothing. Unready pods count as using nothing.
    if ratio < 1.0 {
        let fallback = i64::from(target_utilization.max(100));
        for p in &missing {
            usable.insert(
                p.clone(),
                requests.get(p).copied().unwrap_or(0) * fallback / 100,
            );
        }
    } else if ratio > 1.0 {
        for p in &missing {
            usable.insert(p.clone(), 0);
        }
    }
    if scale_up_with_unready {
        for p in &unready {
            usable.insert(p.clone(), 0);
        }
    }
    let (new_ratio, _, _) = utilization_ratio(&usable, &requests, target_utilization)?;
    // No change if it is now small, or if the assumptions flipped the
    // direction.
    if within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(result(current));
    }
    let replicas = (new_ratio * usable.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(result(current));
    }
    Ok(result(replicas))
}
// ANCHOR_END: cpu_replicas

/// A scaling policy: at most `value` pods, or `value` percent, per
/// `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Pods { value: i32, period_seconds: i64 },
    Percent { value: i32, period_seconds: i64 },
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub stabilization_window_seconds: i64,
    /// `Max` (the default: the policy allowing the biggest change),
    /// `Min`, or `Disabled`.
    pub select_policy: String,
    pub policies: Vec<Policy>,
}

// ANCHOR: default_rules
/// Scale-up default: no stabilisation; at most +4 pods or +100 % per 15 s,
/// whichever allows more.
pub fn default_scale_up() -> Rules {
    Rules {
        stabilization_window_seconds: 0,
        select_policy: "Max".into(),
        policies: vec![
            Policy::Pods {
                value: 4,
                period_seconds: 15,
            },
            Policy::Percent {
                value: 100,
                period_seconds: 15,
            },
        ],
    }
}

/// Scale-down default: the highest recommendation of the last 300 s;
/// then down to it at once (100 % per 15 s).
pub fn default_scale_down() -> Rules {
    Rules {
        stabilization_window_seconds: 300,
        select_policy: "Max".into(),
        policies: vec![Policy::Percent {
            value: 100,
            period_seconds: 15,
        }],
    }
}
// ANCHOR_END: default_rules

/// What the controller remembers per HPA between syncs (upstream keeps the
/// same in memory: a restart forgets it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Every recommendation, with when it was made.
    pub recommendations: Vec<(Timestamp, i32)>,
    /// Scale changes made: (when, +n up or −n down).
    pub scale_events: Vec<(Timestamp, i32)>,
}

// ANCHOR: stabilize
/// Upstream's `stabilizeRecommendationWithBehaviors`: the lowest
/// recommendation inside the scale-up window bounds a scale-up, the
/// highest inside the scale-down window bounds a scale-down. Records
/// `desired` as a new recommendation.
pub fn stabilize(
    desired: i32,
    current: i32,
    history: &mut History,
    up: &Rules,
    down: &Rules,
    now: Timestamp,
) -> i32 {
    let up_cutoff = now - Duration::from_secs(up.stabilization_window_seconds.max(0) as u64);
    let down_cutoff = now - Duration::from_secs(down.stabilization_window_seconds.max(0) as u64);
    let (mut up_rec, mut down_rec) = (desired, desired);
    for &(at, rec) in &history.recommendations {
        if at > up_cutoff {
            up_rec = up_rec.min(rec);
        }
        if at > down_cutoff {
            down_rec = down_rec.max(rec);
        }
    }
    // Forget what is older than both windows.
    history
        .recommendations
        .retain(|&(at, _)| at >= up_cutoff || at >= down_cutoff);
    history.recommendations.push((now, desired));
    current.max(up_rec).min(down_rec)
}
// ANCHOR_END: stabilize

// ANCHOR: without_behavior
/// `--horizontal-pod-autoscaler-downscale-stabilization`: the scale-down
/// window of an HPA without `spec.behavior`.
pub const DOWNSCALE_STABILIZATION_WINDOW: Duration = Duration::from_secs(300);

/// Upstream's `stabilizeRecommendation`, for an HPA without
/// `spec.behavior` (what `kubectl autoscale` creates): the highest
/// recommendation of the last 5 minutes, with no window on the way up.
/// Records `desired` as a new recommendation.
pub fn stabilize_without_behavior(desired: i32, history: &mut History, now: Timestamp) -> i32 {
    let cutoff = now - DOWNSCALE_STABILIZATION_WINDOW;
    history.recommendations.retain(|&(at, _)| at >= cutoff);
    let highest = history
        .recommendations
        .iter()
        .map(|&(_, rec)| rec)
        .fold(desired, i32::max);
    history.recommendations.push((now, desired));
    highest
}

/// Upstream's `convertDesiredReplicasWithRules`, for an HPA without
/// `spec.behavior`: the older rate limit — at most max(2 × current, 4)
/// replicas after any one sync, nothing remembered between syncs — and the
/// `(minReplicas, maxReplicas)` bounds. (The documented `behavior`
/// defaults, +4 pods or +100 % per 15 s, apply once `behavior` is set.)
pub fn limit_without_behavior(
    desired: i32,
    current: i32,
    (min, max): (i32, i32),
) -> (i32, &'static str, &'static str) {
    let scale_up_limit = (2 * current).max(4);
    let (allowed, reason, message) = if max > scale_up_limit {
        (
            scale_up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        (
            min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    } else if desired > allowed {
        (allowed, reason, message)
    } else {
        (
            desired,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    }
}
// ANCHOR_END: without_behavior

/// Net pods added (positive) or removed (negative, as a positive number)
/// within the last `period_seconds`.
fn changed_within(history: &History, period_seconds: i64, now: Timestamp, up: bool) -> i32 {
    let cutoff = now - Duration::from_secs(period_seconds.max(0) as u64);
    history
        .scale_events
        .iter()
        .filter(|(at, _)| *at > cutoff)
        .map(|&(_, n)| if up { n.max(0) } else { (-n).max(0) })
        .sum()
}

// ANCHOR: limit_rate
/// Upstream's `convertDesiredReplicasWithBehaviorRate`: how far the
/// policies let the count move from `current` now, given the changes of
/// the last periods; then the `(minReplicas, maxReplicas)` bounds. Returns
/// the count and the ScalingLimited reason and message.
pub fn limit_rate(
    desired: i32,
    current: i32,
    (min, max): (i32, i32),
    history: &History,
    up: &Rules,
    down: &Rules,
    now: Timestamp,
) -> (i32, &'static str, &'static str) {
    if desired > current {
        let mut limit = if up.select_policy == "Disabled" {
            current
        } else {
            let proposals = up.policies.iter().map(|p| {
                let (period, proposed): (i64, Box<dyn Fn(i32) -> i32>) = match *p {
                    Policy::Pods {
                        value,
                        period_seconds,
                    } => (period_seconds, Box::new(move |start| start + value)),
                    Policy::Percent {
                        value,
                        period_seconds,
                    } => (
                        period_seconds,
                        Box::new(move |start| {
                            (f64::from(start) * (1.0 + f64::from(value) / 100.0)).ceil() as i32
                        }),
                    ),
                };
                let start = current - changed_within(history, period, now, true)
                    + changed_within(history, period, now, false);
                proposed(start)
            });
            if up.select_policy == "Min" {
                proposals.min().unwrap_or(current)
            } else {
                proposals.max().unwrap_or(current)
            }
        };
        limit = limit.max(current);
        let (allowed, reason, message) = if max > limit {
            (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > allowed {
            return (allowed, reason, message);
        }
    } else if desired < current {
        let mut limit = if down.select_policy == "Disabled" {
            current
        } else {
            let proposals = down.policies.iter().map(|p| {
                let period = match *p {
                    Policy::Pods { period_seconds, .. }
                    | Policy::Percent { period_seconds, .. } => period_seconds,
                };
                let start = current + changed_within(history, period, now, false)
                    - changed_within(history, period, now, true);
                match *p {
                    Policy::Pods { value, .. } => start - value,
                    Policy::Percent { value, .. } => {
                        (f64::from(start) * (1.0 - f64::from(value) / 100.0)) as i32
                    }
                }
            });
            if down.select_policy == "Min" {
                proposals.max().unwrap_or(current)
            } else {
                proposals.min().unwrap_or(current)
            }
        };
        limit = limit.min(current);
        let (allowed, reason, message) = if min < limit {
            (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < allowed {
            return (allowed, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}
// ANCHOR_END: limit_rate
