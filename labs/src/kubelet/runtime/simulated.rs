//! The simulated runtime: containers without processes.
//!
//! A simulated container is a record with a start time and a
//! [`Behavior`]: how long it takes to start, whether and when it crashes,
//! when it answers its probes, how long it takes to stop. Its state is
//! *computed* from the clock whenever someone asks ("has it crashed by
//! now?"), so there is no task per container and no timer per container:
//! ten thousand pods cost ten thousand small records. All waiting uses tokio
//! time, so under `tokio::time::pause()` a run is deterministic.
//!
//! Behaviour comes from the runtime's configuration per image, or from the
//! pod annotation `labs.workbook/simulate` (JSON, same fields), e.g.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     labs.workbook/simulate: '{"crashAfterSeconds": 5, "exitCode": 1}'
//! ```
//!
//! Any image is accepted unless configured otherwise ([`SimulatedConfig`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use tokio::time::Instant;

use super::{
    ContainerConfig, ContainerId, ContainerStats, ContainerStatus, ExecResult, ImageRef,
    LoopbackIpam, ProbeTarget, PullError, Runtime, RuntimeError, RuntimeState, SandboxConfig,
    SandboxInfo, Sandboxes, container_port, fake_image_id, hex_id,
};
use crate::kubelet::Clock;
use crate::kubelet::logs::{LogBuffer, LogLine, LogStream};
use crate::kubelet::probe::{ProbeAction, ProbeOutcome};

/// The pod annotation that overrides the behaviour of its containers.
pub const SIMULATE_ANNOTATION: &str = "labs.workbook/simulate";

// ANCHOR: behavior
/// How a simulated container behaves. Every field is optional in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Behavior {
    /// How long `PullImage` takes. (In the annotation, the two pull fields
    /// override the image's configuration only where they are given.)
    pub pull_seconds: u64,
    /// The pull fails (`ErrImagePull`).
    pub pull_fails: bool,
    /// How long `CreateContainer` + `StartContainer` take.
    pub start_delay_seconds: u64,
    /// The container exits by itself this long after starting...
    pub crash_after_seconds: Option<u64>,
    /// ...with this code (default 1; 0 makes it a completed job).
    pub exit_code: Option<i32>,
    /// Probes succeed from this long after the start (default 0).
    pub ready_after_seconds: u64,
    /// Probes never succeed.
    pub never_ready: bool,
    /// Probes fail again from this long after the start (a hung app: its
    /// liveness probe fails).
    pub unhealthy_after_seconds: Option<u64>,
    /// How long the app takes to exit after SIGTERM (default 0). Longer than
    /// the grace period means it is SIGKILLed (exit code 137).
    pub stop_seconds: u64,
}
// ANCHOR_END: behavior

/// The simulated runtime's configuration.
#[derive(Clone, Debug, Default)]
pub struct SimulatedConfig {
    /// Behaviour of images not listed in `images`.
    pub default: Behavior,
    /// Behaviour per image (`workbook/demo-app:v2`).
    pub images: HashMap<String, Behavior>,
    /// Only images listed in `images` can be pulled; others fail as
    /// unknown images do on a real node.
    pub only_listed_images: bool,
    /// Count the pull and start delays in whole seconds of the clock, as a
    /// timestamp with one-second resolution would: a 5-second start begun
    /// at 0.002 s ends at 5 s, together with one begun at 0.000 s. This is
    /// the "tick" of `labs rollout`'s lockstep model (pods created in one
    /// tick become ready together); off, every delay is exact.
    pub whole_seconds: bool,
    /// The CPU the simulated containers use: set by a lab, not measured.
    pub load: CpuLoad,
}

// ANCHOR: cpu_load
/// The CPU demand on each image, in millicores, spread evenly over the
/// running containers of that image on every node that shares this handle
/// (clones share it): as if a Service sent each pod the same share of the
/// requests and each request cost the same CPU. One pod of an image with a
/// demand of 600m uses 600m; three use 200m each. This is what lets the
/// HPA lab show the loop close: more pods, less CPU per pod.
#[derive(Clone, Debug, Default)]
pub struct CpuLoad {
    inner: Arc<Mutex<LoadInner>>,
}

#[derive(Debug, Default)]
struct LoadInner {
    demand: HashMap<String, u64>,
    /// The running containers of each image, by `pod uid/container name`.
    running: HashMap<String, std::collections::BTreeSet<String>>,
}

/// The working set every simulated container reports.
pub const SIMULATED_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

impl CpuLoad {
    /// Sets the total demand on `image` (`workbook/demo-app:v1`).
    pub fn set(&self, image: &str, millicores: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.demand.insert(image.to_string(), millicores);
    }

    fn started(&self, image: &str, key: String) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .running
            .entry(image.to_string())
            .or_default()
            .insert(key);
    }

    fn stopped(&self, image: &str, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(set) = inner.running.get_mut(image) {
            set.remove(key);
        }
    }

    /// One running container's share, in nanocores.
    fn share_nano_cores(&self, image: &str) -> u64 {
        let inner = self.inner.lock().unwrap();
        let n = inner.running.get(image).map_or(0, |s| s.len()) as u64;
        let demand = inner.demand.get(image).copied().unwrap_or(0);
        (demand * 1_000_000).checked_div(n).unwrap_or(0)
    }
}
// ANCHOR_END: cpu_load

struct SimContainer {
    status: ContainerStatus,
    behavior: Behavior,
    started: Instant,
    /// Set by `stop_container`: when it exited and with which code.
    stopped: Option<(Instant, i32)>,
    logs: LogBuffer,
}

impl SimContainer {
    /// Bring the record up to `now`: a configured crash that is due happens
    /// now (with its real time), and its log line is written.
    fn advance(&mut self, now: Instant, clock: &Clock) {
        if self.status.state != RuntimeState::Running {
            return;
        }
        let exit = match (self.stopped, self.behavior.crash_after_seconds) {
            (Some((at, code)), _) if at <= now => Some((at, code)),
            (_, Some(secs)) if self.started + Duration::from_secs(secs) <= now => Some((
                self.started + Duration::from_secs(secs),
                self.behavior.exit_code.unwrap_or(1),
            )),
            _ => None,
        };
        if let Some((at, code)) = exit {
            let finished_at = clock.at(at);
            if self.stopped.is_none() {
                self.logs.push(
                    finished_at,
                    LogStream::Stderr,
                    format!("exiting with code {code}"),
                );
            }
            self.logs.close();
            self.status.state = RuntimeState::Exited {
                exit_code: code,
                finished_at,
                reason: None,
            };
        }
    }

    fn healthy(&self, now: Instant) -> bool {
        let up = now.saturating_duration_since(self.started);
        let b = &self.behavior;
        !b.never_ready
            && up >= Duration::from_secs(b.ready_after_seconds)
            && b.unhealthy_after_seconds
                .is_none_or(|s| up < Duration::from_secs(s))
    }
}

#[derive(Default)]
struct Inner {
    containers: HashMap<ContainerId, SimContainer>,
    next_id: u64,
}

/// The simulated runtime. Cheap to clone; clones share the same containers.
#[derive(Clone)]
pub struct SimulatedRuntime {
    config: Arc<SimulatedConfig>,
    clock: Clock,
    sandboxes: Sandboxes,
    // A std Mutex: held for map operations only, never across an await.
    inner: Arc<Mutex<Inner>>,
}

impl SimulatedRuntime {
    pub fn new(config: SimulatedConfig, clock: Clock, ipam: LoopbackIpam) -> Self {
        SimulatedRuntime {
            config: Arc::new(config),
            clock,
            sandboxes: Sandboxes::new(ipam),
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// The behaviour for `image` in a pod with `annotations`.
    fn behavior(&self, image: &str, sandbox: Option<&SandboxConfig>) -> Result<Behavior, String> {
        if let Some(json) = sandbox.and_then(|s| s.annotations.get(SIMULATE_ANNOTATION)) {
            return serde_json::from_str(json)
                .map_err(|e| format!("invalid {SIMULATE_ANNOTATION} annotation: {e}"));
        }
        Ok(self
            .config
            .images
            .get(image)
            .cloned()
            .unwrap_or_else(|| self.config.default.clone()))
    }

    /// Waits `seconds` (from the start of the current second if the
    /// config counts whole seconds).
    async fn delay(&self, seconds: u64) {
        let now = Instant::now();
        let from = if self.config.whole_seconds {
            let t = self.clock.at(now);
            let into_second = t.duration_since(
                k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t),
            );
            now.checked_sub(into_second.unsigned_abs()).unwrap_or(now)
        } else {
            now
        };
        tokio::time::sleep_until(from + Duration::from_secs(seconds)).await;
    }

    fn with<T>(
        &self,
        id: &ContainerId,
        f: impl FnOnce(&mut SimContainer) -> T,
    ) -> Result<T, RuntimeError> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let c = inner
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        c.advance(now, &self.clock);
        Ok(f(c))
    }
}

fn tag(image: &str) -> &str {
    match image.rsplit_once(':') {
        Some((_, t)) if !t.contains('/') => t,
        _ => "latest",
    }
}

impl Runtime for SimulatedRuntime {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn pull_image(
        &self,
        image: &str,
        sandbox: Option<&SandboxConfig>,
    ) -> Result<ImageRef, PullError> {
        if self.config.only_listed_images && !self.config.images.contains_key(image) {
            return Err(PullError::not_found(image));
        }
        // The image's pull, unless the pod's annotation says otherwise
        // about it. (A bad annotation is the container's problem, reported
        // when it starts, not the pull's.)
        let mut b = self.behavior(image, None).unwrap_or_default();
        let annotation = sandbox
            .and_then(|s| s.annotations.get(SIMULATE_ANNOTATION))
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok());
        if let Some(a) = annotation {
            if let Some(secs) = a.get("pullSeconds").and_then(|v| v.as_u64()) {
                b.pull_seconds = secs;
            }
            if let Some(fails) = a.get("pullFails").and_then(|v| v.as_bool()) {
                b.pull_fails = fails;
            }
        }
        self.delay(b.pull_seconds).await;
        if b.pull_fails {
            return Err(PullError::not_found(image));
        }
        Ok(ImageRef {
            image: image.to_string(),
            image_id: fake_image_id(image),
        })
    }

    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        self.sandboxes.run(config)
    }

    async fn list_pod_sandboxes(&self) -> Vec<SandboxInfo> {
        self.sandboxes.list()
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        self.sandboxes.remove(sandbox_id);
        Ok(())
    }

    async fn start_container(
        &self,
        sandbox: &SandboxInfo,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let image = &config.image.image;
        let behavior = self
            .behavior(image, Some(&sandbox.config))
            .map_err(RuntimeError::Failed)?;
        self.delay(behavior.start_delay_seconds).await;
        let started = Instant::now();
        let started_at = self.clock.at(started);
        let logs = LogBuffer::default();
        logs.push(
            started_at,
            LogStream::Stdout,
            format!(
                "started {} in pod {} on {}:{} (simulated)",
                tag(image),
                sandbox.config.name,
                sandbox.ip,
                container_port(&config.container)
            ),
        );
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let id = ContainerId(hex_id("simulated://", inner.next_id));
        let status = ContainerStatus {
            id: id.clone(),
            pod_uid: sandbox.config.uid.clone(),
            name: config.container.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            started_at,
            state: RuntimeState::Running,
        };
        self.config
            .load
            .started(image, format!("{}/{}", status.pod_uid, status.name));
        inner.containers.insert(
            id.clone(),
            SimContainer {
                status,
                behavior,
                started,
                stopped: None,
                logs,
            },
        );
        Ok(id)
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        // A stopping container gets no more requests (its endpoint is
        // gone): its share goes to the others.
        if let Ok((image, key)) = self.with(id, |c| {
            let s = &c.status;
            (s.image.image.clone(), format!("{}/{}", s.pod_uid, s.name))
        }) {
            self.config.load.stopped(&image, &key);
        }
        let now = Instant::now();
        let clock = self.clock;
        let exit_at = self.with(id, |c| {
            if c.status.state != RuntimeState::Running {
                return None;
            }
            c.logs.push(
                clock.at(now),
                LogStream::Stderr,
                "received SIGTERM, shutting down",
            );
            let wanted = Duration::from_secs(c.behavior.stop_seconds);
            // Exits 0 by itself within the grace period, else SIGKILL: 137.
            let (after, code) = if wanted <= grace {
                (wanted, 0)
            } else {
                (grace, 137)
            };
            c.stopped = Some((now + after, code));
            Some(now + after)
        })?;
        if let Some(at) = exit_at {
            tokio::time::sleep_until(at).await;
            self.with(id, |_| ())?;
        }
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let removed = self.inner.lock().unwrap().containers.remove(id);
        if let Some(c) = removed {
            let s = &c.status;
            let key = format!("{}/{}", s.pod_uid, s.name);
            self.config.load.stopped(&s.image.image, &key);
        }
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.with(id, |c| c.status.clone())
    }

    async fn list_containers(&self) -> Vec<ContainerStatus> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        inner
            .containers
            .values_mut()
            .map(|c| {
                c.advance(now, &self.clock);
                c.status.clone()
            })
            .collect()
    }

    async fn logs(&self, id: &ContainerId) -> Result<Vec<LogLine>, RuntimeError> {
        self.with(id, |c| c.logs.lines())
    }

    async fn follow_logs(
        &self,
        id: &ContainerId,
    ) -> Result<BoxStream<'static, LogLine>, RuntimeError> {
        // A configured crash closes the log only when observed; a follower
        // would wait forever for it. Ending the stream at the crash time
        // instead needs one timer per follower, not per container.
        let (stream, crash_at) = self.with(id, |c| {
            let crash = c
                .behavior
                .crash_after_seconds
                .map(|s| c.started + Duration::from_secs(s));
            (c.logs.follow(), crash)
        })?;
        let this = self.clone();
        let id = id.clone();
        let Some(at) = crash_at else {
            return Ok(stream.boxed());
        };
        let closer = futures::stream::once(async move {
            tokio::time::sleep_until(at).await;
            let _ = this.with(&id, |_| ());
        })
        .filter_map(|_| async { None::<LogLine> });
        Ok(futures::stream::select(stream, closer).boxed())
    }

    /// The container's share of its image's [`CpuLoad`], as a rate; the
    /// counter grows as if it had used that much since its start.
    async fn container_stats(&self, id: &ContainerId) -> Option<ContainerStats> {
        let (image, started) = self
            .with(id, |c| {
                (c.status.state == RuntimeState::Running)
                    .then(|| (c.status.image.image.clone(), c.started))
            })
            .ok()??;
        let rate = self.config.load.share_nano_cores(&image);
        let up = Instant::now()
            .saturating_duration_since(started)
            .as_secs_f64();
        Some(ContainerStats {
            usage_core_nano_seconds: (rate as f64 * up) as u64,
            usage_nano_cores: Some(rate),
            memory_working_set_bytes: SIMULATED_MEMORY_BYTES,
        })
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let now = Instant::now();
        let healthy = self.with(id, |c| {
            c.status.state == RuntimeState::Running && c.healthy(now)
        })?;
        Ok(ExecResult {
            exit_code: if healthy { 0 } else { 1 },
            output: String::new(),
        })
    }

    async fn probe(
        &self,
        target: &ProbeTarget,
        action: &ProbeAction,
        _timeout: Duration,
    ) -> ProbeOutcome {
        let now = Instant::now();
        match self.with(&target.id, |c| {
            c.status.state == RuntimeState::Running && c.healthy(now)
        }) {
            Ok(true) => ProbeOutcome::success(""),
            Ok(false) => ProbeOutcome::failure(match action {
                ProbeAction::HttpGet { .. } => "HTTP probe failed with statuscode: 503".to_string(),
                ProbeAction::TcpSocket { host, port } => {
                    format!("dial tcp {host}:{port}: connect: connection refused")
                }
                ProbeAction::Exec { .. } => "command exited with 1 (simulated)".to_string(),
            }),
            Err(e) => ProbeOutcome::failure(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeMap;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn runtime(config: SimulatedConfig) -> SimulatedRuntime {
        SimulatedRuntime::new(config, Clock::starting_at(t(0)), LoopbackIpam::default())
    }

    fn sandbox_config(uid: &str, annotation: Option<&str>) -> SandboxConfig {
        SandboxConfig {
            name: format!("pod-{uid}"),
            namespace: "default".into(),
            uid: uid.into(),
            annotations: annotation
                .map(|a| BTreeMap::from([(SIMULATE_ANNOTATION.to_string(), a.to_string())]))
                .unwrap_or_default(),
            ports: vec![8080],
        }
    }

    async fn start(
        rt: &SimulatedRuntime,
        sandbox: &SandboxInfo,
        image: &str,
        attempt: u32,
    ) -> ContainerId {
        let image = rt.pull_image(image, None).await.unwrap();
        let config = ContainerConfig {
            container: Container {
                name: "app".into(),
                ..Default::default()
            },
            attempt,
            image,
            env: vec![],
        };
        rt.start_container(sandbox, &config).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_on_schedule_and_keeps_logs() {
        let rt = runtime(SimulatedConfig::default());
        let sb = rt
            .run_pod_sandbox(&sandbox_config(
                "u1",
                Some(r#"{"startDelaySeconds": 2, "crashAfterSeconds": 5, "exitCode": 3}"#),
            ))
            .await
            .unwrap();
        assert_eq!(sb.ip.to_string(), "127.0.1.1");
        let id = start(&rt, &sb, "workbook/demo-app:v1", 0).await;
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!(s.started_at, t(2), "start took the configured 2 s");
        assert_eq!(s.state, RuntimeState::Running);
        assert!(
            s.image
                .image_id
                .starts_with("docker.io/workbook/demo-app@sha256:")
        );
        let follower = rt.follow_logs(&id).await.unwrap();

        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!(
            s.state,
            RuntimeState::Exited {
                exit_code: 3,
                finished_at: t(7),
                reason: None
            }
        );
        let text: Vec<String> = rt
            .logs(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            text,
            [
                "started v1 in pod pod-u1 on 127.0.1.1:8080 (simulated)",
                "exiting with code 3"
            ]
        );
        // A follower ends when the container exits.
        assert_eq!(follower.collect::<Vec<_>>().await.len(), 2);

        // The next attempt has its own log; the previous one is still there.
        let id2 = start(&rt, &sb, "workbook/demo-app:v1", 1).await;
        assert_eq!(rt.logs(&id2).await.unwrap().len(), 1);
        assert_eq!(rt.logs(&id).await.unwrap().len(), 2);
        rt.remove_container(&id).await.unwrap();
        assert!(rt.logs(&id).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn follow_ends_at_a_configured_crash() {
        let rt = runtime(SimulatedConfig::default());
        let sb = rt
            .run_pod_sandbox(&sandbox_config("u1", Some(r#"{"crashAfterSeconds": 5}"#)))
            .await
            .unwrap();
        let id = start(&rt, &sb, "x:1", 0).await;
        let lines: Vec<String> = rt
            .follow_logs(&id)
            .await
            .unwrap()
            .map(|l| l.text)
            .collect()
            .await;
        assert_eq!(
            lines,
            [
                "started 1 in pod pod-u1 on 127.0.1.1:8080 (simulated)",
                "exiting with code 1"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_and_probes() {
        let rt = runtime(SimulatedConfig::default());
        let sb = rt
            .run_pod_sandbox(&sandbox_config(
                "u1",
                Some(r#"{"readyAfterSeconds": 3, "unhealthyAfterSeconds": 20}"#),
            ))
            .await
            .unwrap();
        let id = start(&rt, &sb, "x:1", 0).await;
        let target = ProbeTarget {
            id: id.clone(),
            pod_ip: sb.ip,
        };
        let http = ProbeAction::HttpGet {
            scheme: "http".into(),
            host: sb.ip.to_string(),
            port: 8080,
            path: "/healthz".into(),
            headers: vec![],
        };
        let probe = |rt: SimulatedRuntime, target: ProbeTarget, http: ProbeAction| async move {
            rt.probe(&target, &http, Duration::from_secs(1))
                .await
                .success
        };
        assert!(!probe(rt.clone(), target.clone(), http.clone()).await);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(probe(rt.clone(), target.clone(), http.clone()).await);
        let exec = rt
            .exec_sync(&id, &["true".into()], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(exec.exit_code, 0);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            !probe(rt.clone(), target.clone(), http.clone()).await,
            "hung after 20 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_within_grace_or_killed() {
        let rt = runtime(SimulatedConfig::default());
        for (stop_seconds, grace, code, took) in [(3, 30, 0, 3), (60, 10, 137, 10)] {
            let annotation = format!(r#"{{"stopSeconds": {stop_seconds}}}"#);
            let uid = format!("u{stop_seconds}");
            let sb = rt
                .run_pod_sandbox(&sandbox_config(&uid, Some(&annotation)))
                .await
                .unwrap();
            let id = start(&rt, &sb, "x:1", 0).await;
            let before = Instant::now();
            rt.stop_container(&id, Duration::from_secs(grace))
                .await
                .unwrap();
            assert_eq!(before.elapsed(), Duration::from_secs(took));
            let s = rt.container_status(&id).await.unwrap();
            assert!(matches!(s.state, RuntimeState::Exited { exit_code, .. } if exit_code == code));
            // Stopping again is a no-op.
            rt.stop_container(&id, Duration::from_secs(grace))
                .await
                .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pull_failures() {
        let mut config = SimulatedConfig {
            only_listed_images: true,
            ..Default::default()
        };
        config
            .images
            .insert("workbook/demo-app:v1".into(), Behavior::default());
        config.images.insert(
            "workbook/demo-app:v3".into(),
            Behavior {
                pull_fails: true,
                ..Default::default()
            },
        );
        let rt = runtime(config);
        assert!(rt.pull_image("workbook/demo-app:v1", None).await.is_ok());
        let err = rt
            .pull_image("workbook/demo-app:v2", None)
            .await
            .unwrap_err();
        assert!(
            err.message
                .ends_with("docker.io/workbook/demo-app:v2: not found"),
            "{err}"
        );
        assert!(rt.pull_image("workbook/demo-app:v3", None).await.is_err());
    }

    /// The pod's annotation reaches the pull too (CRI passes the sandbox
    /// config to PullImage): its pull delay and failure apply.
    #[tokio::test(start_paused = true)]
    async fn the_annotation_sets_the_pull() {
        let rt = runtime(SimulatedConfig::default());
        let slow = sandbox_config("u1", Some(r#"{"pullSeconds": 7}"#));
        let before = Instant::now();
        assert!(rt.pull_image("x:1", Some(&slow)).await.is_ok());
        assert_eq!(before.elapsed(), Duration::from_secs(7));
        let broken = sandbox_config("u2", Some(r#"{"pullFails": true}"#));
        assert!(rt.pull_image("x:1", Some(&broken)).await.is_err());
        // A bad annotation does not break the pull (the start reports it).
        let bad = sandbox_config("u3", Some("{nope"));
        assert!(rt.pull_image("x:1", Some(&bad)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn bad_annotation_fails_the_start() {
        let rt = runtime(SimulatedConfig::default());
        let sb = rt
            .run_pod_sandbox(&sandbox_config("u1", Some("{nope")))
            .await
            .unwrap();
        let image = rt.pull_image("x:1", None).await.unwrap();
        let config = ContainerConfig {
            container: Container::default(),
            attempt: 0,
            image,
            env: vec![],
        };
        assert!(rt.start_container(&sb, &config).await.is_err());
    }

    /// Thousands of pods: no task or timer per container, so this is quick
    /// even in a debug build.
    #[tokio::test(start_paused = true)]
    async fn scales_to_thousands_of_pods() {
        let rt = runtime(SimulatedConfig {
            default: Behavior {
                crash_after_seconds: Some(60),
                ..Default::default()
            },
            ..Default::default()
        });
        for i in 0..5000 {
            let sb = rt
                .run_pod_sandbox(&sandbox_config(&format!("u{i}"), None))
                .await
                .unwrap();
            start(&rt, &sb, "workbook/demo-app:v1", 0).await;
        }
        let all = rt.list_containers().await;
        assert_eq!(all.len(), 5000);
        assert!(all.iter().all(|c| c.state == RuntimeState::Running));
        tokio::time::sleep(Duration::from_secs(61)).await;
        let all = rt.list_containers().await;
        assert!(
            all.iter()
                .all(|c| matches!(c.state, RuntimeState::Exited { exit_code: 1, .. }))
        );
    }
}
