//! A pod's row: READY, STATUS (a waiting or terminated container's reason
//! wins over the phase), RESTARTS, IP, NODE, and the row's conditions.
//!
//! Upstream: `printPod` in `pkg/printers/internalversion/printers.go`.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{i, list, or_none, s, since};

fn is_restartable_init_container(c: Option<&Value>) -> bool {
    c.is_some_and(|c| s(c, "/restartPolicy") == "Always")
}

/// The terminated reason, or `Signal:N` / `ExitCode:N` when there is none.
fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = s(t, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = i(t, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", i(t, "/exitCode"))
    }
}

/// Upstream's `printPod`: what `kubectl get pods` shows in READY, STATUS
/// and RESTARTS. The STATUS column is not the phase alone: a waiting or
/// terminated container's reason (`ContainerCreating`, `ImagePullBackOff`,
/// `CrashLoopBackOff`, `Completed`) is more useful, so it wins.
pub(super) fn pod_cells(pod: &Value, now: Timestamp) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let conditions = list(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type":"Completed","status":"True","reason":"Succeeded","message":"The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type":"Completed","status":"True","reason":"Failed","message":"The pod failed."}]),
        ),
        _ => None,
    };

    let init_specs = list(pod, "/spec/initContainers");
    let init_spec = |name: &str| init_specs.iter().find(|c| s(c, "/name") == name);
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init_container(Some(c)))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    // Timestamps compare correctly as RFC 3339 strings of the same format.
    let mut last_restart = String::new();
    let mut last_sidecar_restart = String::new();
    let later = |current: &mut String, t: &str| {
        if t > current.as_str() {
            *current = t.to_string();
        }
    };

    let mut initializing = false;
    let init_statuses = list(pod, "/status/initContainerStatuses");
    for (idx, c) in init_statuses.iter().enumerate() {
        let count = i(c, "/restartCount");
        restarts += count;
        let finished = s(c, "/lastState/terminated/finishedAt");
        later(&mut last_restart, finished);
        let spec = init_spec(s(c, "/name"));
        if is_restartable_init_container(spec) {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, finished);
        }
        let terminated = c.pointer("/state/terminated").filter(|v| !v.is_null());
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if is_restartable_init_container(spec) && c.pointer("/started") == Some(&json!(true)) {
            if c.pointer("/ready") == Some(&json!(true)) {
                ready += 1;
            }
            continue;
        }
        initializing = true;
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{idx}/{}", init_specs.len())
        };
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Upstream walks the statuses backwards, so the *first* container's
        // reason is the one left in `reason`.
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            later(&mut last_restart, s(c, "/lastState/terminated/finishedAt"));
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated").filter(|v| !v.is_null());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if c.pointer("/ready") == Some(&json!(true))
                && c.pointer("/state/running").is_some_and(|v| !v.is_null())
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }

    let restarts_cell = if restarts != 0 && !last_restart.is_empty() {
        format!(
            "{restarts} ({} ago)",
            since(Some(&json!(last_restart)), now)
        )
    } else {
        restarts.to_string()
    };

    let ip = list(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == ty)
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    let cells = vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(since(pod.pointer("/metadata/creationTimestamp"), now)),
        json!(or_none(ip)),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ];
    (cells, row_conditions)
}
