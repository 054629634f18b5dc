//! The status a pod's sync reports (upstream's `generateAPIPodStatus` and
//! `getPhase` in `pkg/kubelet/kubelet_pods.go`, and `convertToAPIContainerStatuses`):
//! each container's state and restart count, the pod's phase, and its
//! conditions (`PodScheduled`, `Initialized`, `ContainersReady`, `Ready`),
//! computed from the kubelet's memory of the pod alone. Pure, like
//! [`super::pod_sync`], which calls it first in every sync.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::pod_sync::*;
use super::probe::{ProbeKind, ProbeResult};
use super::qos::qos_class;
use super::runtime::RuntimeState;
use super::state::{ContainerInstance, PodRuntimeState, reasons};

pub(super) fn time(t: Timestamp) -> Time {
    Time(t)
}

pub(super) fn terminated(inst: &ContainerInstance) -> Option<ContainerState> {
    let RuntimeState::Exited {
        exit_code,
        finished_at,
        reason,
    } = &inst.state
    else {
        return None;
    };
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: *exit_code,
            reason: Some(reason.clone().unwrap_or_else(|| {
                if *exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string()
            })),
            started_at: Some(time(inst.started_at)),
            finished_at: Some(time(*finished_at)),
            container_id: Some(inst.id.0.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(super) fn waiting_state(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

// ANCHOR: container_status
/// One container's status (`convertToAPIContainerStatuses` plus the probe
/// manager's `ready`/`started`).
pub(super) fn container_status(
    pod: &Pod,
    c: &Container,
    state: &PodRuntimeState,
    init: bool,
) -> ContainerStatus {
    let rec = state.container(&c.name);
    let current = rec.and_then(|r| r.current.as_ref());
    let previous = rec.and_then(|r| r.previous.as_ref());
    let cached = rec.and_then(|r| r.waiting.as_ref());
    let has_init = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.init_containers.as_ref().is_some_and(|i| !i.is_empty()));
    let default_reason = if has_init {
        reasons::POD_INITIALIZING
    } else {
        reasons::CONTAINER_CREATING
    };
    let sidecar = init && is_sidecar(c);

    let mut s = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        restart_count: current.map_or(0, |i| i.attempt as i32),
        ..Default::default()
    };
    match current {
        None => {
            let (reason, message) = match cached {
                Some(w) => (w.reason.as_str(), Some(w.message.as_str())),
                None => (default_reason, None),
            };
            s.state = Some(waiting_state(reason, message));
            s.started = Some(false);
        }
        Some(inst) => {
            s.image_id = inst.image.image_id.clone();
            s.container_id = Some(inst.id.0.clone());
            s.last_state = previous.and_then(terminated);
            match &inst.state {
                RuntimeState::Running => {
                    s.state = Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(time(inst.started_at)),
                        }),
                        ..Default::default()
                    });
                    let started = is_started(c, rec);
                    s.started = Some(started);
                    // An init container is ready once it has succeeded, not
                    // while it runs.
                    s.ready = (!init || sidecar)
                        && started
                        && (c.readiness_probe.is_none()
                            || probe_result(rec.expect("has instance"), ProbeKind::Readiness)
                                == ProbeResult::Success);
                }
                RuntimeState::Exited { exit_code, .. } => {
                    s.started = Some(false);
                    s.ready = init && !sidecar && *exit_code == 0;
                    s.state = terminated(inst);
                    // Going to be restarted and the kubelet knows why it is
                    // not yet: waiting, with the exit as lastState.
                    if let Some(w) = cached
                        && should_restart(pod, sidecar, *exit_code)
                    {
                        s.last_state = terminated(inst);
                        s.state = Some(waiting_state(&w.reason, Some(&w.message)));
                    }
                }
            }
        }
    }
    if s.last_state.is_none() {
        s.last_state = Some(ContainerState::default());
    }
    s
}
// ANCHOR_END: container_status

pub(super) fn has_any_regular_container_started(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
) -> bool {
    spec.containers.iter().any(|c| {
        statuses.iter().find(|s| s.name == c.name).is_some_and(|s| {
            let st = s.state.as_ref();
            st.is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                || s.last_state
                    .as_ref()
                    .is_some_and(|l| l.terminated.is_some())
        })
    })
}

// ANCHOR: phase
/// The pod's phase from its containers' statuses (`getPhase`).
pub(super) fn pod_phase(
    pod: &Pod,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let policy = restart_policy(pod);
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let state_of = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_terminated =
        |s: &ContainerStatus| s.last_state.as_ref().and_then(|l| l.terminated.clone());

    let (mut pending_init, mut failed_init) = (0, 0);
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init, &c.name) else {
            if is_sidecar(c) {
                unknown += 1;
            }
            pending_init += 1;
            continue;
        };
        let st = state_of(&s);
        if is_sidecar(c) {
            // Sidecars count as running containers, but their exits do not
            // decide the phase.
            if st.running.is_some() {
                if s.started != Some(true) {
                    pending_init += 1;
                }
                running += 1;
            } else if st.waiting.is_some() && last_terminated(&s).is_none() {
                pending_init += 1;
                waiting += 1;
            }
            continue;
        }
        if st.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(&s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(regular, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = state_of(&s);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(&s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if (pending_init > 0 && !has_any_regular_container_started(spec, regular)) || waiting > 0 {
        return "Pending"; // one or more containers has not been started
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return match policy {
            "Always" => "Running", // restarting
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running", // OnFailure, restarting the failed ones
        };
    }
    "Pending"
}
// ANCHOR_END: phase

/// A condition, keeping `lastTransitionTime` from the old status when its
/// status did not change.
pub(super) fn condition(
    old: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
pub(super) fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

// ANCHOR: conditions
/// The kubelet's conditions, in the order `kubectl describe` shows them.
pub(super) fn pod_conditions(
    pod: &Pod,
    state: &PodRuntimeState,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
    phase: &str,
    now: Timestamp,
) -> Vec<PodCondition> {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let terminal_reason = if phase == "Succeeded" {
        "PodCompleted"
    } else {
        "PodFailed"
    };

    // PodReadyToStartContainers: the sandbox (network) is up.
    let sandbox = condition(
        &old,
        "PodReadyToStartContainers",
        state.sandbox.is_some(),
        None,
        None,
        now,
    );

    // Initialized: every init container has succeeded, every sidecar started.
    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let done = find(init, &c.name).is_some_and(|s| {
            if is_sidecar(c) {
                s.started == Some(true)
            } else {
                s.ready
            }
        });
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    let initialized = if phase == "Succeeded" {
        condition(&old, "Initialized", true, Some("PodCompleted"), None, now)
    } else if incomplete.is_empty() || has_any_regular_container_started(spec, regular) {
        condition(&old, "Initialized", true, None, None, now)
    } else {
        condition(
            &old,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            )),
            now,
        )
    };

    // ContainersReady: every app container (and sidecar) is ready.
    let mut unready = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
    {
        if !find(init, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    for c in &spec.containers {
        if !find(regular, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    let containers_ready = if terminal {
        condition(
            &old,
            "ContainersReady",
            false,
            Some(terminal_reason),
            None,
            now,
        )
    } else if unready.is_empty() {
        condition(&old, "ContainersReady", true, None, None, now)
    } else {
        condition(
            &old,
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
            now,
        )
    };

    // Ready: ContainersReady, and every readiness gate's condition True.
    // (Gates are conditions other controllers set, e.g. a load balancer.)
    let ready = if containers_ready.status != "True" {
        condition(
            &old,
            "Ready",
            false,
            containers_ready.reason.as_deref(),
            containers_ready.message.clone(),
            now,
        )
    } else {
        let mut gate_messages = Vec::new();
        for gate in spec.readiness_gates.iter().flatten() {
            match old.iter().find(|c| c.type_ == gate.condition_type) {
                None => gate_messages.push(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => gate_messages.push(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => {}
            }
        }
        if gate_messages.is_empty() {
            condition(&old, "Ready", true, None, None, now)
        } else {
            condition(
                &old,
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(gate_messages.join(", ")),
                now,
            )
        }
    };

    // PodScheduled is the scheduler's; keep it, or say True (we run here).
    let scheduled = old
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&old, "PodScheduled", true, None, None, now));

    vec![sandbox, initialized, ready, containers_ready, scheduled]
}
// ANCHOR_END: conditions

pub(super) const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// The pod's status as the kubelet reports it (`generateAPIPodStatus`).
/// Fields the kubelet does not own (other controllers' conditions,
/// `nominatedNodeName`, …) are kept from the old status.
pub fn generate_pod_status(pod: &Pod, state: &PodRuntimeState, now: Timestamp) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old = pod.status.clone().unwrap_or_default();

    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(pod, c, state, true))
        .collect();
    let mut regular: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(pod, c, state, false))
        .collect();
    regular.sort_by(|a, b| a.name.cmp(&b.name)); // upstream sorts by name

    let pod_is_terminal = pod.metadata.deletion_timestamp.is_some() && !state.any_running();
    let mut phase = pod_phase(pod, &init, &regular, pod_is_terminal);
    // A terminal phase is final.
    if let Some(p @ ("Succeeded" | "Failed")) = old.phase.as_deref() {
        phase = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }

    let mut conditions = pod_conditions(pod, state, &init, &regular, phase, now);
    conditions.extend(
        old.conditions
            .iter()
            .flatten()
            .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );

    let pod_ip = state
        .sandbox
        .as_ref()
        .map(|s| s.ip.to_string())
        .or(old.pod_ip.clone());
    let host_ip = state.host_ip.clone().or(old.host_ip.clone());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(time(now))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(regular),
        qos_class: Some(qos_class(pod).to_string()),
        ..old
    }
}

/// The container statuses by name, handy for tests and the lab's printing.
pub fn statuses_by_name(status: &PodStatus) -> BTreeMap<String, ContainerStatus> {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|s| (s.name.clone(), s.clone()))
        .collect()
}
