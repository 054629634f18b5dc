//! Table tests of `sync_pod`: a tiny in-test "plumbing" ([`Node`]) carries
//! out each decision the way the real kubelet will, with time in whole
//! seconds.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus as ApiStatus, HTTPGetAction, Pod, PodCondition, PodReadinessGate,
    PodSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::pod_status::statuses_by_name;
use super::pod_sync::{Action, KillReason, grace_period};
use super::probe::{ProbeKind, ProbeTiming};
use super::runtime::{
    ContainerId, ContainerStatus, ImageRef, RuntimeState, SandboxConfig, SandboxInfo,
};
use super::state::PodRuntimeState;
use super::sync_pod;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        ..Default::default()
    }
}

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            node_name: Some("node-a".into()),
            ..Default::default()
        }),
        status: None,
    }
}

fn http_probe(delay: i32, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(8080),
            path: Some("/healthz".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// A fake node: carries out actions instantly, containers run until told.
struct Node {
    pod: Pod,
    state: PodRuntimeState,
    now: i64,
    /// Images whose pull fails.
    bad_images: Vec<String>,
    /// Every decision, for assertions.
    log: Vec<Action>,
}

impl Node {
    fn new(pod: Pod) -> Self {
        Node {
            pod,
            state: PodRuntimeState::new("10.0.0.1"),
            now: 0,
            bad_images: vec![],
            log: vec![],
        }
    }

    /// One sync: decide, write the status, remember, carry out.
    fn sync(&mut self) -> Vec<Action> {
        let d = sync_pod(&self.pod, &self.state, t(self.now));
        self.pod.status = Some(d.status.clone());
        self.state.record_decision(&d, t(self.now));
        for a in &d.actions {
            self.carry_out(a);
        }
        self.log.extend(d.actions.clone());
        d.actions
    }

    fn carry_out(&mut self, a: &Action) {
        let now = t(self.now);
        match a {
            Action::CreateSandbox => self.state.record_sandbox(SandboxInfo {
                id: "sandbox-1".into(),
                ip: Ipv4Addr::new(127, 0, 1, 1),
                config: SandboxConfig::of(&self.pod),
            }),
            Action::StartContainer {
                container, attempt, ..
            } => {
                let spec = self.pod.spec.as_ref().unwrap();
                let c = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .find(|c| &c.name == container)
                    .unwrap();
                let image = c.image.clone().unwrap();
                if self.bad_images.contains(&image) {
                    self.state
                        .record_pull_failure(container, &image, "not found", now);
                    return;
                }
                self.state.record_started(&ContainerStatus {
                    id: ContainerId(format!("sim://{container}-{attempt}")),
                    pod_uid: "uid-1".into(),
                    name: container.clone(),
                    attempt: *attempt,
                    image: ImageRef {
                        image: image.clone(),
                        image_id: format!("{image}@sha256:0"),
                    },
                    started_at: now,
                    state: RuntimeState::Running,
                });
            }
            Action::KillContainer { .. } => {} // the test says when it exits
            Action::RemoveSandbox => self.state.record_sandbox_removed(),
            _ => {}
        }
    }

    fn exit(&mut self, name: &str, code: i32) {
        let mut inst = self.state.current(name).cloned().unwrap();
        assert_eq!(inst.state, RuntimeState::Running, "{name} must be running");
        inst.state = RuntimeState::Exited {
            exit_code: code,
            finished_at: t(self.now),
            reason: None,
        };
        self.state.observe(&[ContainerStatus {
            id: inst.id,
            pod_uid: "uid-1".into(),
            name: name.into(),
            attempt: inst.attempt,
            image: inst.image,
            started_at: inst.started_at,
            state: inst.state,
        }]);
    }

    fn status(&self, name: &str) -> ApiStatus {
        statuses_by_name(self.pod.status.as_ref().unwrap())[name].clone()
    }

    fn phase(&self) -> String {
        self.pod.status.as_ref().unwrap().phase.clone().unwrap()
    }

    fn cond(&self, type_: &str) -> PodCondition {
        self.pod
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap()
    }

    /// "Running", "Error", "CrashLoopBackOff", … as `kubectl get pods`
    /// would show for one container.
    fn shown(&self, name: &str) -> String {
        let s = self.status(name);
        let st = s.state.unwrap();
        if let Some(w) = st.waiting {
            return w.reason.unwrap();
        }
        if let Some(t) = st.terminated {
            return t.reason.unwrap();
        }
        "Running".into()
    }

    fn starts(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::StartContainer { .. }))
            .count()
    }
}

#[test]
fn a_pod_starts_and_runs() {
    let mut n = Node::new(pod(vec![container("app", "workbook/demo-app:v1")]));
    let first = n.sync();
    assert_eq!(
        first,
        [
            Action::CreateSandbox,
            Action::StartContainer {
                container: "app".into(),
                init: false,
                attempt: 0,
                restart_after_exit_at: None
            }
        ]
    );
    // The status written with that first decision: Pending, creating.
    let st = n.pod.status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert_eq!(n.shown("app"), "ContainerCreating");
    assert_eq!(n.cond("Ready").status, "False");
    assert_eq!(
        n.cond("Ready").reason.as_deref(),
        Some("ContainersNotReady")
    );
    assert_eq!(
        n.cond("Ready").message.as_deref(),
        Some("containers with unready status: [app]")
    );
    assert_eq!(n.cond("PodScheduled").status, "True");
    assert_eq!(n.cond("Initialized").status, "True");
    assert_eq!(st.start_time, Some(Time(t(0))));
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));

    n.now = 1;
    assert_eq!(n.sync(), []);
    let st = n.pod.status.clone().unwrap();
    assert_eq!(n.phase(), "Running");
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.1.1"));
    assert_eq!(st.host_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(st.start_time, Some(Time(t(0))), "startTime is kept");
    let app = n.status("app");
    assert!(app.ready);
    assert_eq!(app.started, Some(true));
    assert_eq!(app.restart_count, 0);
    assert_eq!(app.container_id.as_deref(), Some("sim://app-0"));
    assert_eq!(app.image_id, "workbook/demo-app:v1@sha256:0");
    assert_eq!(n.cond("Ready").status, "True");
    assert_eq!(n.cond("Ready").last_transition_time, Some(Time(t(1))));

    // Nothing changes: lastTransitionTime is kept.
    n.now = 50;
    n.sync();
    assert_eq!(n.cond("Ready").last_transition_time, Some(Time(t(1))));
    assert_eq!(
        n.cond("PodScheduled").last_transition_time,
        Some(Time(t(0)))
    );
}

// ANCHOR: test_backoff
#[test]
fn crash_loop_backoff_doubles_to_five_minutes() {
    let mut n = Node::new(pod(vec![container("app", "crash:1")]));
    n.sync();
    let mut restart_delays = vec![];
    let mut messages = vec![];
    // The container crashes one second after every start; the kubelet syncs
    // every second.
    for _ in 0..9 {
        n.now += 1;
        n.exit("app", 1);
        let crashed_at = n.now;
        loop {
            let actions = n.sync();
            if Node::starts(&actions) == 1 {
                restart_delays.push(n.now - crashed_at);
                break;
            }
            if n.shown("app") == "CrashLoopBackOff"
                && !messages.contains(
                    &n.status("app")
                        .state
                        .unwrap()
                        .waiting
                        .unwrap()
                        .message
                        .unwrap(),
                )
            {
                messages.push(
                    n.status("app")
                        .state
                        .unwrap()
                        .waiting
                        .unwrap()
                        .message
                        .unwrap(),
                );
            }
            n.now += 1;
        }
    }
    assert_eq!(restart_delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(
        messages[..2],
        [
            "back-off 10s restarting failed container=app pod=web_default(uid-1)",
            "back-off 20s restarting failed container=app pod=web_default(uid-1)"
        ]
    );
    assert!(messages.last().unwrap().starts_with("back-off 5m0s"));
    n.sync();
    assert_eq!(n.status("app").restart_count, 9);
}
// ANCHOR_END: test_backoff

#[test]
fn crash_shows_error_then_crash_loop_back_off() {
    let mut n = Node::new(pod(vec![container("app", "crash:1")]));
    n.sync();
    n.now = 1;
    n.exit("app", 1);
    n.sync(); // first crash: restarted at once
    n.now = 2;
    n.sync();
    assert_eq!(n.shown("app"), "Running");
    let last = n.status("app").last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

    n.now = 3;
    n.exit("app", 2);
    let backoff = n.sync();
    assert!(
        matches!(&backoff[..], [Action::BackOff { reason: "CrashLoopBackOff", until, .. }] if *until == t(13))
    );
    assert_eq!(
        n.shown("app"),
        "Error",
        "the sync that decides shows the exit"
    );
    assert_eq!(n.phase(), "Running", "restartPolicy Always: restarting");
    n.now = 4;
    n.sync();
    assert_eq!(n.shown("app"), "CrashLoopBackOff");
    let s = n.status("app");
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 2);
    assert!(!s.ready);
    assert_eq!(s.restart_count, 1);
    assert_eq!(n.cond("Ready").status, "False");
    n.now = 13;
    assert_eq!(Node::starts(&n.sync()), 1);
    n.now = 14;
    n.sync();
    assert_eq!(
        (n.shown("app").as_str(), n.status("app").restart_count),
        ("Running", 2)
    );
}

/// During a long back-off the kubelet looks again every 10 s: the status
/// moves from `Error` to `CrashLoopBackOff` within 10 s of the crash (not
/// only when the wait ends), and the `BackOff` event keeps one message, so
/// its repeats add up as one Event's count, as upstream's do.
#[test]
fn long_backoff_is_resynced_and_its_event_message_is_stable() {
    let mut n = Node::new(pod(vec![container("app", "crash:1")]));
    n.sync();
    // Crashes at 1 (restarted at once), 2 (waits 10 s), 13 (waits 20 s).
    for (crash, restart) in [(1, 1), (2, 12), (13, 33)] {
        n.now = crash;
        n.exit("app", 1);
        n.now = restart;
        n.sync();
    }
    n.now = 34;
    n.exit("app", 1);
    let d = sync_pod(&n.pod, &n.state, t(34));
    let [Action::BackOff { until, event, .. }] = &d.actions[..] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(*until, t(34 + 40), "the fourth crash waits 40 s");
    assert_eq!(
        event,
        "Back-off restarting failed container app in pod web_default(uid-1)"
    );
    assert_eq!(d.next_sync_at, Some(t(44)), "looks again after 10 s");
    n.sync();
    assert_eq!(n.shown("app"), "Error");
    n.now = 44;
    let again = n.sync();
    assert_eq!(n.shown("app"), "CrashLoopBackOff");
    assert!(matches!(&again[..], [Action::BackOff { event: e, .. }] if e == event));
}

#[test]
fn backoff_resets_after_ten_minutes_of_running() {
    let mut n = Node::new(pod(vec![container("app", "crash:1")]));
    n.sync();
    // Crash quickly three times: waits 0, 10, 20.
    for wait in [0, 10, 20] {
        n.now += 1;
        n.exit("app", 1);
        n.now += wait;
        assert_eq!(Node::starts(&n.sync()), 1);
    }
    // Now it runs for 11 minutes before crashing: no wait, and the next
    // crash waits 10 s again, not 40 s.
    n.now += 660;
    n.exit("app", 1);
    assert_eq!(Node::starts(&n.sync()), 1, "backoff was reset");
    n.now += 1;
    n.exit("app", 1);
    let a = n.sync();
    assert!(matches!(&a[..], [Action::BackOff { until, .. }] if *until == t(n.now + 10)));
}

#[test]
fn restart_policies() {
    // (restartPolicy, exit code) → (restarted, phase)
    let table = [
        ("Always", 0, true, "Running"),
        ("Always", 1, true, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 1, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 1, false, "Failed"),
    ];
    for (policy, code, restarted, phase) in table {
        let mut p = pod(vec![container("app", "job:1")]);
        p.spec.as_mut().unwrap().restart_policy = Some(policy.into());
        let mut n = Node::new(p);
        n.sync();
        n.now = 5;
        n.exit("app", code);
        let actions = n.sync();
        assert_eq!(
            Node::starts(&actions) == 1,
            restarted,
            "{policy} exit {code}"
        );
        if !restarted {
            assert_eq!(n.phase(), phase, "{policy} exit {code}");
            let reason = n.cond("Ready").reason;
            let want = if phase == "Succeeded" {
                "PodCompleted"
            } else {
                "PodFailed"
            };
            assert_eq!(reason.as_deref(), Some(want));
        } else {
            n.now = 6;
            n.sync();
            assert_eq!(n.phase(), phase, "{policy} exit {code}");
        }
    }
}

#[test]
fn image_pull_failure_then_backoff() {
    let mut n = Node::new(pod(vec![container("app", "workbook/demo-app:v10")]));
    n.bad_images = vec!["workbook/demo-app:v10".into()];
    let mut shown = vec![];
    let mut pulls = vec![];
    for now in 0..=40 {
        n.now = now;
        let actions = n.sync();
        if Node::starts(&actions) == 1 {
            pulls.push(now);
        }
        let s = n.shown("app");
        if shown.last() != Some(&s) {
            shown.push(s);
        }
    }
    assert_eq!(
        shown,
        [
            "ContainerCreating",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImagePull",
            "ImagePullBackOff"
        ]
    );
    // Pulls at 0, then after 10 s, then after 20 s more.
    assert_eq!(pulls, [0, 10, 30]);
    assert_eq!(n.phase(), "Pending");
    let w = n.status("app").state.unwrap().waiting.unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some("Back-off pulling image \"workbook/demo-app:v10\"")
    );

    // The image is fixed (it exists now): the next pull after the backoff works.
    n.bad_images.clear();
    n.now = 70;
    assert_eq!(Node::starts(&n.sync()), 1);
    n.now = 71;
    n.sync();
    assert_eq!(n.shown("app"), "Running");
}

#[test]
fn config_error_is_retried() {
    let mut n = Node::new(pod(vec![container("app", "workbook/demo-app:v1")]));
    n.sync();
    // Pretend the environment could not be built for the first start.
    n.state = PodRuntimeState::new("10.0.0.1");
    n.carry_out(&Action::CreateSandbox);
    n.state.record_start_failure(
        "app",
        "CreateContainerConfigError",
        "configmap \"settings\" not found",
        t(0),
    );
    n.now = 1;
    let d = sync_pod(&n.pod, &n.state, t(1));
    assert!(d.actions.is_empty());
    assert_eq!(d.next_sync_at, Some(t(10)));
    n.sync();
    let w = n.status("app").state.unwrap().waiting.unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(
        w.message.as_deref(),
        Some("configmap \"settings\" not found")
    );
    n.now = 10;
    assert_eq!(Node::starts(&n.sync()), 1);
}

#[test]
fn deletion_kills_with_grace_then_deletes() {
    let mut p = pod(vec![container("app", "workbook/demo-app:v1")]);
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(30);
    let mut n = Node::new(p);
    n.sync();
    n.now = 1;
    n.sync();
    n.now = 100;
    n.pod.metadata.deletion_timestamp = Some(Time(t(100)));
    n.pod.metadata.deletion_grace_period_seconds = Some(20);
    let kill = n.sync();
    assert_eq!(
        kill,
        [Action::KillContainer {
            container: "app".into(),
            id: ContainerId("sim://app-0".into()),
            grace_period: Duration::from_secs(20),
            pre_stop: None,
            reason: KillReason::PodDeleted,
            message: "Stopping container app".into()
        }]
    );
    n.now = 101;
    assert_eq!(n.sync(), [], "the kill is in flight: not sent twice");
    assert_eq!(n.phase(), "Running");
    n.exit("app", 0); // SIGTERM handled: exit 0
    assert_eq!(n.sync(), [Action::RemoveSandbox]);
    assert_eq!(n.phase(), "Succeeded");
    n.now = 102;
    assert_eq!(n.sync(), [Action::DeletePod]);
    // Not restarted even though restartPolicy is Always.
    assert_eq!(n.status("app").restart_count, 0);
}

#[test]
fn grace_periods() {
    let mut p = pod(vec![container("app", "x:1")]);
    let c = {
        let mut c = container("app", "x:1");
        let mut probe = http_probe(0, 10, 3);
        probe.termination_grace_period_seconds = Some(5);
        c.liveness_probe = Some(probe);
        c
    };
    let g = |p: &Pod, r| grace_period(p, &c, r).as_secs();
    assert_eq!(g(&p, KillReason::PodDeleted), 30, "default");
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(60);
    assert_eq!(g(&p, KillReason::PodDeleted), 60);
    assert_eq!(g(&p, KillReason::LivenessProbe), 5, "the probe's own");
    p.metadata.deletion_grace_period_seconds = Some(0);
    assert_eq!(g(&p, KillReason::PodDeleted), 2, "never below 2 s");
}

#[test]
fn readiness_probe_gates_ready() {
    let mut c = container("app", "workbook/demo-app:v1");
    c.readiness_probe = Some(http_probe(5, 10, 3));
    let mut n = Node::new(pod(vec![c.clone()]));
    n.sync();
    n.now = 1;
    let d = sync_pod(&n.pod, &n.state, t(1));
    assert_eq!(
        d.next_sync_at,
        Some(t(5)),
        "first probe after initialDelaySeconds"
    );
    n.sync();
    assert_eq!(n.phase(), "Running");
    assert!(!n.status("app").ready, "not ready before the first success");
    n.now = 5;
    let id = ContainerId("sim://app-0".into());
    assert_eq!(
        n.sync(),
        [Action::RunProbe {
            container: "app".into(),
            id: id.clone(),
            kind: ProbeKind::Readiness
        }]
    );
    n.now = 6;
    assert_eq!(n.sync(), [], "probe in flight");
    let timing = ProbeTiming::of(c.readiness_probe.as_ref().unwrap());
    n.state
        .record_probe("app", &id, ProbeKind::Readiness, true, &timing, t(6));
    n.sync();
    assert!(n.status("app").ready);
    assert_eq!(n.cond("Ready").status, "True");
    // Three failures in a row: unready, but not restarted.
    for now in [16, 26, 36] {
        n.now = now;
        assert_eq!(n.sync().len(), 1);
        n.state
            .record_probe("app", &id, ProbeKind::Readiness, false, &timing, t(now));
    }
    n.sync();
    assert!(!n.status("app").ready);
    assert_eq!(n.cond("Ready").status, "False");
    assert_eq!(n.cond("Ready").last_transition_time, Some(Time(t(36))));
    assert_eq!(n.shown("app"), "Running");
}

#[test]
fn liveness_failure_restarts() {
    let mut c = container("app", "workbook/demo-app:v1");
    c.liveness_probe = Some(http_probe(0, 10, 1));
    let timing = ProbeTiming::of(c.liveness_probe.as_ref().unwrap());
    let mut n = Node::new(pod(vec![c]));
    n.sync();
    n.now = 1;
    let id = ContainerId("sim://app-0".into());
    assert!(matches!(
        &n.sync()[..],
        [Action::RunProbe {
            kind: ProbeKind::Liveness,
            ..
        }]
    ));
    assert!(
        n.status("app").ready,
        "no readiness probe: ready once running"
    );
    n.state
        .record_probe("app", &id, ProbeKind::Liveness, false, &timing, t(1));
    let a = n.sync();
    assert!(
        matches!(&a[..], [Action::KillContainer { reason: KillReason::LivenessProbe, message, .. }]
            if message == "Container app failed liveness probe, will be restarted")
    );
    n.now = 2;
    n.exit("app", 137);
    assert_eq!(Node::starts(&n.sync()), 1, "first restart is immediate");
    n.now = 3;
    let a = n.sync();
    let s = n.status("app");
    assert_eq!(s.restart_count, 1);
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 137);
    // The new instance has fresh probes.
    assert!(matches!(&a[..], [Action::RunProbe { id, .. }] if id.0 == "sim://app-1"));
}

#[test]
fn startup_probe_gates_the_others() {
    let mut c = container("app", "workbook/demo-app:v1");
    c.startup_probe = Some(http_probe(0, 5, 30));
    c.liveness_probe = Some(http_probe(0, 10, 3));
    c.readiness_probe = Some(http_probe(0, 10, 3));
    let startup = ProbeTiming::of(c.startup_probe.as_ref().unwrap());
    let mut n = Node::new(pod(vec![c]));
    n.sync();
    n.now = 1;
    let id = ContainerId("sim://app-0".into());
    let kinds = |a: Vec<Action>| -> Vec<ProbeKind> {
        a.into_iter()
            .filter_map(|a| match a {
                Action::RunProbe { kind, .. } => Some(kind),
                _ => None,
            })
            .collect()
    };
    assert_eq!(kinds(n.sync()), [ProbeKind::Startup]);
    assert_eq!(n.status("app").started, Some(false));
    n.state
        .record_probe("app", &id, ProbeKind::Startup, false, &startup, t(1));
    n.now = 6;
    assert_eq!(kinds(n.sync()), [ProbeKind::Startup]);
    n.state
        .record_probe("app", &id, ProbeKind::Startup, true, &startup, t(6));
    assert_eq!(kinds(n.sync()), [ProbeKind::Liveness, ProbeKind::Readiness]);
    assert_eq!(n.status("app").started, Some(true));
    assert!(!n.status("app").ready, "readiness not yet probed");
}

#[test]
fn init_containers_run_in_order() {
    let mut p = pod(vec![container("app", "workbook/demo-app:v1")]);
    p.spec.as_mut().unwrap().init_containers = Some(vec![
        container("migrate", "tools:1"),
        container("warm", "tools:1"),
    ]);
    let mut n = Node::new(p);
    let a = n.sync();
    assert!(
        matches!(&a[1], Action::StartContainer { container, init: true, .. } if container == "migrate")
    );
    assert_eq!(a.len(), 2);
    n.now = 1;
    n.sync();
    assert_eq!(n.phase(), "Pending");
    assert_eq!(n.shown("app"), "PodInitializing");
    let init = n.cond("Initialized");
    assert_eq!(init.status, "False");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [migrate warm]")
    );
    n.exit("migrate", 0);
    let a = n.sync();
    assert!(matches!(&a[..], [Action::StartContainer { container, .. }] if container == "warm"));
    n.now = 2;
    n.exit("warm", 0);
    let a = n.sync();
    assert!(
        matches!(&a[..], [Action::StartContainer { container, init: false, .. }] if container == "app")
    );
    n.now = 3;
    n.sync();
    assert_eq!(n.cond("Initialized").status, "True");
    assert_eq!(n.phase(), "Running");
    assert!(
        n.status("migrate").ready,
        "a succeeded init container is ready"
    );
}

#[test]
fn failed_init_container() {
    for (policy, phase, retried) in [("Never", "Failed", false), ("Always", "Pending", true)] {
        let mut p = pod(vec![container("app", "x:1")]);
        let spec = p.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![container("migrate", "tools:1")]);
        spec.restart_policy = Some(policy.into());
        let mut n = Node::new(p);
        n.sync();
        n.now = 1;
        n.exit("migrate", 1);
        let a = n.sync();
        assert_eq!(Node::starts(&a) == 1, retried, "{policy}");
        n.now = 2;
        n.sync();
        assert_eq!(n.phase(), phase, "{policy}");
    }
}

#[test]
fn sidecars_start_first_and_stop_last() {
    let mut p = pod(vec![container("job", "job:1")]);
    let mut sidecar = container("proxy", "proxy:1");
    sidecar.restart_policy = Some("Always".into());
    sidecar.startup_probe = Some(http_probe(0, 1, 3));
    let startup = ProbeTiming::of(sidecar.startup_probe.as_ref().unwrap());
    let spec = p.spec.as_mut().unwrap();
    spec.init_containers = Some(vec![sidecar, container("migrate", "tools:1")]);
    spec.restart_policy = Some("Never".into());
    let mut n = Node::new(p);
    n.sync();
    n.now = 1;
    // The sidecar runs but has not started (startup probe): migrate waits.
    assert!(matches!(
        &n.sync()[..],
        [Action::RunProbe {
            kind: ProbeKind::Startup,
            ..
        }]
    ));
    let id = ContainerId("sim://proxy-0".into());
    n.state
        .record_probe("proxy", &id, ProbeKind::Startup, true, &startup, t(1));
    let a = n.sync();
    assert!(matches!(&a[..], [Action::StartContainer { container, .. }] if container == "migrate"));
    n.now = 2;
    n.exit("migrate", 0);
    n.sync();
    n.now = 3;
    n.sync();
    assert_eq!(n.phase(), "Running");
    assert_eq!(n.cond("Initialized").status, "True");
    // The job finishes: the sidecar is stopped, the pod succeeds although
    // the sidecar was killed (sidecar exits do not count).
    n.now = 10;
    n.exit("job", 0);
    let a = n.sync();
    assert!(
        matches!(&a[..], [Action::KillContainer { container, reason: KillReason::PodCompleted, .. }] if container == "proxy")
    );
    n.now = 11;
    n.exit("proxy", 137);
    assert_eq!(n.sync(), []);
    assert_eq!(n.phase(), "Succeeded");
}

#[test]
fn readiness_gates() {
    let mut p = pod(vec![container("app", "x:1")]);
    p.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
        condition_type: "example.com/lb".into(),
    }]);
    let mut n = Node::new(p);
    n.sync();
    n.now = 1;
    n.sync();
    assert_eq!(n.cond("ContainersReady").status, "True");
    let ready = n.cond("Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    // Another controller sets the gate's condition; the kubelet keeps it.
    let status = n.pod.status.as_mut().unwrap();
    status.conditions.as_mut().unwrap().push(PodCondition {
        type_: "example.com/lb".into(),
        status: "True".into(),
        ..Default::default()
    });
    n.now = 2;
    n.sync();
    assert_eq!(n.cond("Ready").status, "True");
    assert_eq!(n.cond("example.com/lb").status, "True");
}

#[test]
fn previous_instance_is_kept_and_older_ones_collected() {
    let mut n = Node::new(pod(vec![container("app", "crash:1")]));
    n.sync();
    let mut garbage = vec![];
    for i in 1..=3 {
        n.now += 100;
        n.exit("app", 1);
        n.now += 300;
        n.sync();
        let inst = n.state.current("app").unwrap();
        assert_eq!(inst.attempt, i);
        garbage.extend(n.state.observe(&[]));
    }
    let rec = n.state.container("app").unwrap();
    assert_eq!(rec.previous.as_ref().unwrap().id.0, "sim://app-2");
    // record_started returned the instance that fell off: check directly.
    let mut s = n.state.clone();
    let dropped = s.record_started(&ContainerStatus {
        id: ContainerId("sim://app-9".into()),
        pod_uid: "uid-1".into(),
        name: "app".into(),
        attempt: 9,
        image: ImageRef {
            image: "crash:1".into(),
            image_id: "x".into(),
        },
        started_at: t(0),
        state: RuntimeState::Running,
    });
    assert_eq!(dropped, [ContainerId("sim://app-2".into())]);
    assert!(garbage.is_empty());
}

/// A pod with two sidecars (`proxy`, then `logs`) before its app.
fn pod_with_sidecars(policy: &str) -> Pod {
    let sidecar = |name: &str| {
        let mut c = container(name, &format!("{name}:1"));
        c.restart_policy = Some("Always".into());
        c
    };
    let mut p = pod(vec![container("app", "app:1")]);
    let spec = p.spec.as_mut().unwrap();
    spec.init_containers = Some(vec![sidecar("proxy"), sidecar("logs")]);
    spec.restart_policy = Some(policy.into());
    spec.termination_grace_period_seconds = Some(30);
    p
}

/// The names of the containers an action list starts / kills, with the
/// grace period of each kill.
fn started(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartContainer { container, .. } => Some(container.clone()),
            _ => None,
        })
        .collect()
}

fn killed(actions: &[Action]) -> Vec<(String, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::KillContainer {
                container,
                grace_period,
                ..
            } => Some((container.clone(), grace_period.as_secs())),
            _ => None,
        })
        .collect()
}

#[test]
fn sidecars_start_in_order_before_the_app_and_count_in_ready() {
    let mut n = Node::new(pod_with_sidecars("Always"));
    let order: Vec<Vec<String>> = (0..4)
        .map(|i| {
            n.now = i;
            started(&n.sync())
        })
        .collect();
    assert_eq!(order, [vec!["proxy"], vec!["logs"], vec!["app"], vec![]]);
    assert_eq!(n.phase(), "Running");
    assert_eq!(n.cond("Ready").status, "True");
    for name in ["proxy", "logs", "app"] {
        assert!(n.status(name).ready, "{name}");
    }
    let status = n.pod.status.as_ref().unwrap();
    assert_eq!(status.init_container_statuses.as_ref().unwrap().len(), 2);

    // A sidecar that is not ready makes the pod unready (2/3 in kubectl):
    // the status written as the crashed one is restarted says so.
    n.now = 10;
    n.exit("logs", 1);
    assert_eq!(started(&n.sync()), ["logs"]);
    assert_eq!(n.cond("Ready").status, "False");
    assert_eq!(
        n.cond("ContainersReady").message.as_deref(),
        Some("containers with unready status: [logs]")
    );
}

#[test]
fn sidecars_restart_whatever_the_restart_policy() {
    for policy in ["Never", "OnFailure", "Always"] {
        let mut n = Node::new(pod_with_sidecars(policy));
        for i in 0..3 {
            n.now = i;
            n.sync();
        }
        // The proxy exits, successfully or not: it comes back.
        for (attempt, code) in [(1, 0), (2, 1)] {
            n.now += 1;
            n.exit("proxy", code);
            let crashed_at = n.now;
            loop {
                if started(&n.sync()) == ["proxy"] {
                    break;
                }
                n.now += 1;
                assert!(n.now < crashed_at + 30, "{policy}: never restarted");
            }
            assert_eq!(n.state.current("proxy").unwrap().attempt, attempt);
        }
        n.sync();
        assert_eq!(n.status("proxy").restart_count, 2, "{policy}");
        assert_eq!(n.status("app").restart_count, 0, "{policy}");
        assert_eq!(n.phase(), "Running", "{policy}");
    }
}

// ANCHOR: test_sidecar_termination
#[test]
fn deletion_stops_the_app_then_the_sidecars_in_reverse_within_one_grace_period() {
    let mut n = Node::new(pod_with_sidecars("Always"));
    for i in 0..3 {
        n.now = i;
        n.sync();
    }
    n.now = 100;
    n.pod.metadata.deletion_timestamp = Some(Time(t(130)));
    n.pod.metadata.deletion_grace_period_seconds = Some(30);
    // (time, who exits just before the sync, what the sync stops)
    type Step<'a> = (i64, Option<&'a str>, Vec<(&'a str, u64)>);
    let steps: [Step; 6] = [
        (100, None, vec![("app", 30)]),         // the app first, alone
        (103, None, vec![]),                    // the sidecars wait for it
        (105, Some("app"), vec![("logs", 25)]), // then the last sidecar...
        (106, None, vec![]),
        (111, Some("logs"), vec![("proxy", 19)]), // ...then the first
        (140, Some("proxy"), vec![]),
    ];
    for (now, exits, want) in steps {
        n.now = now;
        if let Some(name) = exits {
            n.exit(name, 0);
        }
        let actions = n.sync();
        let want: Vec<(String, u64)> = want.into_iter().map(|(c, g)| (c.into(), g)).collect();
        assert_eq!(killed(&actions), want, "at {now}");
        if now == 140 {
            assert_eq!(actions, [Action::RemoveSandbox]);
        }
    }
    assert_eq!(n.status("proxy").restart_count, 0, "not restarted");
}
// ANCHOR_END: test_sidecar_termination

#[test]
fn a_sidecar_whose_turn_comes_late_still_gets_the_minimum_grace() {
    let mut n = Node::new(pod_with_sidecars("Always"));
    for i in 0..3 {
        n.now = i;
        n.sync();
    }
    n.now = 100;
    n.pod.metadata.deletion_timestamp = Some(Time(t(110)));
    n.pod.metadata.deletion_grace_period_seconds = Some(10);
    assert_eq!(killed(&n.sync()), [("app".to_string(), 10)]);
    n.now = 110; // SIGKILLed at the end of the grace period
    n.exit("app", 137);
    assert_eq!(killed(&n.sync()), [("logs".to_string(), 2)]);
}

#[test]
fn a_job_with_sidecars_completes_and_stops_them_in_reverse() {
    let mut n = Node::new(pod_with_sidecars("Never"));
    for i in 0..3 {
        n.now = i;
        n.sync();
    }
    n.now = 20;
    n.exit("app", 0);
    assert_eq!(killed(&n.sync()), [("logs".to_string(), 30)]);
    assert_eq!(n.phase(), "Running", "while the sidecars stop");
    n.now = 21;
    n.exit("logs", 0);
    assert_eq!(killed(&n.sync()), [("proxy".to_string(), 29)]);
    n.now = 22;
    n.exit("proxy", 143);
    let a = n.sync();
    assert!(started(&a).is_empty(), "nothing restarts: {a:?}");
    assert_eq!(n.phase(), "Succeeded");
    assert_eq!(n.cond("Ready").reason.as_deref(), Some("PodCompleted"));
}
