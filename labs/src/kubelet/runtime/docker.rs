//! The Docker runtime: real containers through the Docker Engine API
//! (bollard), laid out as **dockershim** laid them out.
//!
//! Until Kubernetes 1.24 the kubelet carried dockershim, an adapter from the
//! CRI to Docker Engine. It ran each pod as:
//!
//! * one **pause container** (`k8s_POD_<pod>_<namespace>_<uid>_<attempt>`),
//!   the pod *sandbox*: a process that only sleeps, started first, whose
//!   network namespace *is* the pod's network — its address, its ports;
//! * the pod's **app containers** (`k8s_<container>_<pod>_…`), each started
//!   with `NetworkMode: container:<pause id>`: they join the pause
//!   container's network namespace instead of getting their own. That is why
//!   the containers of one pod reach each other on `localhost`, and why an
//!   app container can crash and restart without the pod losing its IP.
//!
//! Here the pod's address is a loopback address of the host (from the
//! shared [`super::LoopbackIpam`]): the pause container publishes the pod's
//! ports on it (`HostIp` = pod IP, same port numbers), so the kubelet, the
//! probes and kube-proxy reach a pod at `<pod IP>:<port>` exactly as with the
//! other runtimes — and nothing ever talks to a container's bridge address.
//! Only declared `containerPort`s (8080 for a container that declares none)
//! are reachable that way; on a real node every port of the pod IP is.
//!
//! **Labels are the runtime's memory.** Every container carries dockershim's
//! labels (`io.kubernetes.pod.uid`, `…pod.name`, `…pod.namespace`,
//! `…container.name`, `io.kubernetes.docker.type`, `io.kubernetes.sandbox.id`)
//! plus `workbook.runtime=docker` and `workbook.node=<node>`. The runtime keeps
//! no state of its own that matters: a kubelet that restarts (a new
//! `DockerRuntime`) lists the labelled containers and adopts them, pod IPs
//! included. `workbook.node` keeps two nodes (or two test clusters) on one
//! engine out of each other's way.
//!
//! Images: [`DockerRuntime::pull_image`] uses an image the engine has, and
//! otherwise asks the engine to pull it; where no registry is reachable that
//! fails with the engine's own message, which the kubelet turns into
//! `ErrImagePull` and then `ImagePullBackOff`. The runtime never builds
//! images: the cluster builds the workbook's (`workbook/demo-app:<tag>`,
//! `workbook/pause:v1`) before it starts the kubelets.
//!
//! `kubectl exec` is a real `docker exec` ([`DockerRuntime::exec`]); the
//! workload's image is `FROM scratch`, so there is no shell and no `tar` in
//! it: `kubectl exec POD -- /demo-app --version` works, `sh` cannot start
//! (exit code 126/127), and `kubectl cp` fails as on any image without tar.
//! `kubectl attach` is a `docker attach` ([`DockerRuntime::attach`]).
//!
//! What dockershim did and this leaves out: per-container log files under
//! `/var/log/pods` (we read logs through the Docker API), security contexts,
//! volumes, DNS settings (`/etc/resolv.conf`), `hostNetwork` pods, and
//! checkpointing the sandbox for a crashed pause container.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummaryStateEnum, ExecConfig,
    HostConfig, PortBinding,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptions,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;

use super::stream::{attach_outcome, write_stdin};
use super::{
    ContainerConfig, ContainerId, ContainerStats, ContainerStatus, ExecResult, ImageRef,
    LoopbackIpam, PullError, Runtime, RuntimeError, RuntimeState, SandboxConfig, SandboxInfo,
    Sandboxes, container_port,
};
use crate::kubelet::logs::{LogLine, LogStream};
use crate::machinery::quantity::{parse_bytes, parse_cpu_millis};
use crate::machinery::remotecommand::{ExecSession, Outcome, StreamOptions, TerminalSize};

// ANCHOR: labels
/// dockershim's labels, so `docker ps --filter label=io.kubernetes.pod.name=web`
/// works as it did on a Docker-based node.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// `podsandbox` for the pause container, `container` for the others.
pub const CONTAINER_TYPE_LABEL: &str = "io.kubernetes.docker.type";
/// On an app container: the id of the pause container it joined.
pub const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
/// Which runtime made it: everything the workbook's kubelets create has
/// `workbook.runtime=docker`.
pub const RUNTIME_LABEL: (&str, &str) = ("workbook.runtime", "docker");
/// Which node (of which cluster) it belongs to.
pub const NODE_LABEL: &str = "workbook.node";
/// CRI's `metadata.attempt` (dockershim put it in the container's name).
const ATTEMPT_LABEL: &str = "workbook.attempt";
/// The image as the pod spec names it, and what it resolved to.
const IMAGE_LABEL: &str = "workbook.image";
const IMAGE_ID_LABEL: &str = "workbook.image-id";
/// On the pause container: the pod's address and published ports.
const POD_IP_LABEL: &str = "workbook.pod-ip";
const PORTS_LABEL: &str = "workbook.ports";
// ANCHOR_END: labels

/// The repository whose images are the workload: their `LISTEN` address
/// follows the container's declared port.
const DEMO_APP_REPOSITORY: &str = "workbook/demo-app";

/// How a [`DockerRuntime`] runs its pods.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The value of the `workbook.node` label: which containers on the
    /// engine are this runtime's. The node name in `labs cluster`; a unique
    /// name per test.
    pub node: String,
    /// The sandbox image (`workbook/pause:v1`). It must be present: the
    /// cluster builds it before starting the kubelets.
    pub pause_image: String,
}

impl DockerConfig {
    pub fn new(node: impl Into<String>) -> Self {
        DockerConfig {
            node: node.into(),
            pause_image: "workbook/pause:v1".into(),
        }
    }
}

/// The Docker runtime. Holds a connected, version-negotiated client
/// (connecting is the caller's business: the cluster does it once).
pub struct DockerRuntime {
    docker: Docker,
    config: DockerConfig,
    sandboxes: Sandboxes,
    /// What we last learnt about each container by inspecting it. The
    /// list call says only "running" or "exited"; the exit code, the finish
    /// time and `OOMKilled` need an inspect, done once per state change.
    /// A std Mutex: never held across an await.
    inspected: Mutex<HashMap<String, ContainerStatus>>,
}

/// The engine's own words for a failed call (the Docker CLI's "Error
/// response from daemon: …" is the same text).
fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn failed(what: &str, e: DockerError) -> RuntimeError {
    RuntimeError::Failed(format!("{what}: {}", engine_message(&e)))
}

fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// `docker://<id>` → `<id>`.
fn docker_id(id: &ContainerId) -> &str {
    id.0.strip_prefix("docker://").unwrap_or(&id.0)
}

/// Docker's times (`2026-12-05T11:52:35.307689299Z`); the zero time of a
/// container that never started or never finished is `None`.
fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    let t: Timestamp = s?.parse().ok()?;
    (t > Timestamp::UNIX_EPOCH).then_some(t)
}

/// `workbook/demo-app:v1` or `docker.io/workbook/demo-app:v1`?
fn is_demo_app(image: &str) -> bool {
    let repo = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    };
    repo.strip_prefix("docker.io/").unwrap_or(repo) == DEMO_APP_REPOSITORY
}

/// The filter for this node's containers of one type.
fn filters(node: &str, kind: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={}", RUNTIME_LABEL.0, RUNTIME_LABEL.1),
            format!("{NODE_LABEL}={node}"),
            format!("{CONTAINER_TYPE_LABEL}={kind}"),
        ],
    )])
}

impl DockerRuntime {
    pub fn new(docker: Docker, config: DockerConfig, ipam: LoopbackIpam) -> Self {
        DockerRuntime {
            docker,
            config,
            sandboxes: Sandboxes::new(ipam),
            inspected: Mutex::new(HashMap::new()),
        }
    }

    /// The labels every container of a pod carries.
    fn pod_labels(&self, pod: &SandboxConfig, container: &str) -> HashMap<String, String> {
        HashMap::from([
            (RUNTIME_LABEL.0.into(), RUNTIME_LABEL.1.into()),
            (NODE_LABEL.into(), self.config.node.clone()),
            (POD_UID_LABEL.into(), pod.uid.clone()),
            (POD_NAME_LABEL.into(), pod.name.clone()),
            (POD_NAMESPACE_LABEL.into(), pod.namespace.clone()),
            (CONTAINER_NAME_LABEL.into(), container.into()),
        ])
    }

    /// Create a container by name; a leftover of the same name (a kubelet
    /// that died between create and start) is removed first.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, RuntimeError> {
        for retry in [false, true] {
            let options = CreateContainerOptionsBuilder::default().name(name).build();
            match self
                .docker
                .create_container(Some(options), body.clone())
                .await
            {
                Ok(created) => return Ok(created.id),
                Err(e) if status_code(&e) == Some(409) && !retry => {
                    self.force_remove(name).await;
                }
                Err(e) => return Err(failed(&format!("cannot create {name}"), e)),
            }
        }
        unreachable!("the second attempt returns")
    }

    async fn force_remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let _ = self.docker.remove_container(id, Some(options)).await;
    }

    /// Every container of this node of one kind (`podsandbox`, `container`).
    async fn list(&self, kind: &str) -> Vec<bollard::models::ContainerSummary> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters(&self.config.node, kind))
            .build();
        match self.docker.list_containers(Some(options)).await {
            Ok(list) => list,
            Err(e) => {
                // The kubelet relists again in a second; a failed relist
                // must not look like "every container is gone" for long.
                tracing::warn!(error = %engine_message(&e), "docker: listing containers failed");
                Vec::new()
            }
        }
    }

    /// Stops and removes every container of this node (sandboxes last),
    /// and releases their addresses: what `labs cluster` does on its way
    /// out, and what tests do at the end. A kubelet that merely restarts
    /// must not call it: its containers are to be adopted.
    pub async fn remove_all(&self) {
        for kind in ["container", "podsandbox"] {
            let ids: Vec<String> = self
                .list(kind)
                .await
                .into_iter()
                .filter_map(|c| c.id)
                .collect();
            futures::future::join_all(ids.iter().map(|id| self.force_remove(id))).await;
        }
        for sandbox in self.sandboxes.list() {
            self.sandboxes.remove(&sandbox.id);
        }
        self.inspected.lock().unwrap().clear();
    }

    /// A container's status from an inspect (labels say whose it is).
    fn status_of(inspect: &ContainerInspectResponse) -> Option<ContainerStatus> {
        let id = inspect.id.clone()?;
        let labels = inspect.config.as_ref()?.labels.clone().unwrap_or_default();
        let state = inspect.state.clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let started_at = parse_time(state.started_at.as_deref()).unwrap_or(Timestamp::UNIX_EPOCH);
        let running = state.running == Some(true);
        let state = if running {
            RuntimeState::Running
        } else {
            let never_started = parse_time(state.started_at.as_deref()).is_none();
            RuntimeState::Exited {
                exit_code: state.exit_code.unwrap_or(-1) as i32,
                finished_at: parse_time(state.finished_at.as_deref()).unwrap_or(started_at),
                // Docker records the kernel's OOM kill of a container past
                // its memory limit: the reason Kubernetes shows.
                reason: if state.oom_killed == Some(true) {
                    Some("OOMKilled".into())
                } else if never_started {
                    Some("ContainerCannotRun".into())
                } else {
                    None
                },
            }
        };
        Some(ContainerStatus {
            id: ContainerId(format!("docker://{id}")),
            pod_uid: label(POD_UID_LABEL),
            name: label(CONTAINER_NAME_LABEL),
            attempt: label(ATTEMPT_LABEL).parse().unwrap_or(0),
            image: ImageRef {
                image: label(IMAGE_LABEL),
                image_id: label(IMAGE_ID_LABEL),
            },
            started_at,
            state,
        })
    }

    async fn inspect(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let inspect =
            self.docker
                .inspect_container(id, None)
                .await
                .map_err(|e| match status_code(&e) {
                    Some(404) => RuntimeError::NotFound(ContainerId(format!("docker://{id}"))),
                    _ => failed("cannot inspect container", e),
                })?;
        let status = Self::status_of(&inspect)
            .ok_or_else(|| RuntimeError::Failed(format!("container {id} has no labels")))?;
        self.inspected
            .lock()
            .unwrap()
            .insert(id.to_string(), status.clone());
        Ok(status)
    }

    /// The container's log through the Docker API (`GET
    /// /containers/<id>/logs?timestamps=1`): each line comes prefixed with
    /// the time the engine read it, which becomes the line's timestamp.
    fn log_stream(&self, id: &ContainerId, follow: bool) -> BoxStream<'static, LogLine> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(follow)
            .build();
        self.docker
            .logs(docker_id(id), Some(options))
            .take_while(|r| futures::future::ready(r.is_ok()))
            .flat_map(|r| futures::stream::iter(log_lines(r.ok())))
            .boxed()
    }
}

/// One frame of Docker's log stream → its lines.
fn log_lines(frame: Option<LogOutput>) -> Vec<LogLine> {
    let (stream, bytes) = match frame {
        Some(LogOutput::StdOut { message }) => (LogStream::Stdout, message),
        Some(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
        _ => return Vec::new(),
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| {
            let (at, text) = line
                .split_once(' ')
                .and_then(|(t, rest)| Some((t.parse::<Timestamp>().ok()?, rest)))
                .unwrap_or((Timestamp::now(), line));
            LogLine {
                at,
                stream,
                text: text.to_string(),
            }
        })
        .collect()
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    // ANCHOR: pull
    async fn pull_image(
        &self,
        image: &str,
        _sandbox: Option<&SandboxConfig>,
    ) -> Result<ImageRef, PullError> {
        let image_ref = |inspect: bollard::models::ImageInspect| ImageRef {
            image: image.to_string(),
            // dockershim's imageID: the registry digest when the image came
            // from a registry, else the local image id.
            image_id: match inspect.repo_digests.unwrap_or_default().first() {
                Some(digest) => format!("docker-pullable://{digest}"),
                None => format!("docker://{}", inspect.id.unwrap_or_default()),
            },
        };
        // Present already: nothing to pull. (The kubelet applies
        // `imagePullPolicy`; a locally built image cannot be pulled anyway.)
        if let Ok(inspect) = self.docker.inspect_image(image).await {
            return Ok(image_ref(inspect));
        }
        // `POST /images/create?fromImage=<repo>&tag=<tag>`, as `docker pull`.
        // Without a tag the engine would pull every tag of the repository.
        let (repo, tag) = match image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ if image.contains('@') => (image, ""),
            _ => (image, "latest"),
        };
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let pulled: Result<Vec<_>, _> = self
            .docker
            .create_image(Some(options), None, None)
            .try_collect()
            .await;
        if let Err(e) = pulled {
            return Err(PullError {
                message: format!("Error response from daemon: {}", engine_message(&e)),
            });
        }
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(image_ref(inspect)),
            Err(e) => Err(PullError {
                message: format!("Error response from daemon: {}", engine_message(&e)),
            }),
        }
    }
    // ANCHOR_END: pull

    // ANCHOR: run_pod_sandbox
    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let ip = self.sandboxes.allocate_ip(config)?;
        // The pod's ports, published on the pod's own loopback address.
        let port_bindings = config
            .ports
            .iter()
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some(ip.to_string()),
                    host_port: Some(p.to_string()),
                };
                (format!("{p}/tcp"), Some(vec![binding]))
            })
            .collect();
        let mut labels = self.pod_labels(config, "POD");
        labels.insert(CONTAINER_TYPE_LABEL.into(), "podsandbox".into());
        labels.insert(POD_IP_LABEL.into(), ip.to_string());
        let ports: Vec<String> = config.ports.iter().map(u16::to_string).collect();
        labels.insert(PORTS_LABEL.into(), ports.join(","));
        let body = ContainerCreateBody {
            image: Some(self.config.pause_image.clone()),
            // The containers that join its network share its hostname too:
            // the pod's name, as on a real node.
            hostname: Some(config.name.clone()),
            labels: Some(labels),
            exposed_ports: Some(config.ports.iter().map(|p| format!("{p}/tcp")).collect()),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "k8s_POD_{}_{}_{}_0",
            config.name, config.namespace, config.uid
        );
        let made = async {
            let id = self.create(&name, body).await?;
            if let Err(e) = self.docker.start_container(&id, None).await {
                self.force_remove(&id).await;
                return Err(failed("cannot start the pause container", e));
            }
            Ok(id)
        }
        .await;
        let id = match made {
            Ok(id) => id,
            Err(e) => {
                self.sandboxes.release_ip(config);
                return Err(e);
            }
        };
        let info = SandboxInfo {
            id,
            ip,
            config: config.clone(),
        };
        self.sandboxes.insert(info.clone());
        Ok(info)
    }
    // ANCHOR_END: run_pod_sandbox

    /// The pause containers on the engine, not a list kept in memory: after
    /// a kubelet restart this is how the new runtime finds the old pods,
    /// and their addresses are claimed again.
    async fn list_pod_sandboxes(&self) -> Vec<SandboxInfo> {
        let mut found = Vec::new();
        for c in self.list("podsandbox").await {
            let labels = c.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let (Some(id), Ok(ip)) = (c.id, label(POD_IP_LABEL).parse::<Ipv4Addr>()) else {
                continue;
            };
            let info = SandboxInfo {
                id,
                ip,
                config: SandboxConfig {
                    name: label(POD_NAME_LABEL),
                    namespace: label(POD_NAMESPACE_LABEL),
                    uid: label(POD_UID_LABEL),
                    annotations: Default::default(),
                    ports: label(PORTS_LABEL)
                        .split(',')
                        .filter_map(|p| p.parse().ok())
                        .collect(),
                },
            };
            self.sandboxes.insert(info.clone());
            found.push(info);
        }
        found
    }

    /// Removes the pause container and whatever containers of the pod are
    /// left (the exited instances kept for `kubectl logs --previous`).
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([(
                "label".to_string(),
                vec![format!("{SANDBOX_ID_LABEL}={sandbox_id}")],
            )]))
            .build();
        let members = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| failed("cannot list the pod's containers", e))?;
        for c in members.into_iter().filter_map(|c| c.id) {
            self.force_remove(&c).await;
        }
        // The pause process ends on SIGTERM at once; no grace needed.
        let stop = StopContainerOptionsBuilder::default().t(1).build();
        let _ = self.docker.stop_container(sandbox_id, Some(stop)).await;
        self.force_remove(sandbox_id).await;
        self.sandboxes.remove(sandbox_id);
        Ok(())
    }

    // ANCHOR: start_container
    async fn start_container(
        &self,
        sandbox: &SandboxInfo,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let c = &config.container;
        let image = &config.image.image;
        let mut env = Vec::new();
        if is_demo_app(image) {
            // The workload listens where the pod says it does.
            env.push(format!("LISTEN=0.0.0.0:{}", container_port(c)));
        }
        env.extend(config.env.iter().map(|(k, v)| format!("{k}={v}")));

        // `resources.limits` become the container's cgroup limits: memory
        // in bytes (no swap beyond it, as the kubelet sets it), cpu as
        // `NanoCpus` (a CFS quota: 500m = half of one core's time).
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        let limit = |name: &str| limits.and_then(|l| l.get(name)).map(|q| q.0.clone());
        let memory = match limit("memory") {
            Some(q) => Some(
                parse_bytes(&q).map_err(|e| RuntimeError::Failed(format!("memory limit: {e}")))?,
            ),
            None => None,
        };
        let nano_cpus = match limit("cpu") {
            Some(q) => Some(
                parse_cpu_millis(&q)
                    .map_err(|e| RuntimeError::Failed(format!("cpu limit: {e}")))?
                    * 1_000_000,
            ),
            None => None,
        };

        let mut labels = self.pod_labels(&sandbox.config, &c.name);
        labels.insert(CONTAINER_TYPE_LABEL.into(), "container".into());
        labels.insert(SANDBOX_ID_LABEL.into(), sandbox.id.clone());
        labels.insert(ATTEMPT_LABEL.into(), config.attempt.to_string());
        labels.insert(IMAGE_LABEL.into(), image.clone());
        labels.insert(IMAGE_ID_LABEL.into(), config.image.image_id.clone());
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            // Kubernetes' `command` replaces the image's ENTRYPOINT, `args`
            // its CMD (and a `command` alone drops the image's CMD, as
            // Docker does when the entrypoint is overridden).
            entrypoint: c.command.clone(),
            cmd: c.args.clone(),
            env: Some(env),
            working_dir: c.working_dir.clone(),
            // `stdin: true` in the pod spec keeps the container's stdin
            // open for `kubectl attach -i` (`stdinOnce`: closed after the
            // first client leaves), as dockershim mapped them.
            open_stdin: c.stdin,
            attach_stdin: c.stdin,
            stdin_once: c.stdin_once,
            labels: Some(labels),
            host_config: Some(HostConfig {
                // Join the pause container's network namespace: the pod's
                // IP, ports and `localhost` are shared.
                network_mode: Some(format!("container:{}", sandbox.id)),
                memory,
                memory_swap: memory,
                nano_cpus,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "k8s_{}_{}_{}_{}_{}",
            c.name,
            sandbox.config.name,
            sandbox.config.namespace,
            sandbox.config.uid,
            config.attempt
        );
        let id = self.create(&name, body).await?;
        if let Err(e) = self.docker.start_container(&id, None).await {
            self.force_remove(&id).await;
            return Err(failed("cannot start container", e));
        }
        Ok(ContainerId(format!("docker://{id}")))
    }
    // ANCHOR_END: start_container

    // ANCHOR: stop_container
    /// `docker stop -t <grace>`: the engine sends SIGTERM (the image's
    /// `STOPSIGNAL`), waits up to the grace period, then SIGKILL, and
    /// answers once the container has exited.
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let t = grace.as_secs_f64().ceil() as i32;
        let options = StopContainerOptionsBuilder::default().t(t).build();
        match self
            .docker
            .stop_container(docker_id(id), Some(options))
            .await
        {
            Ok(()) => Ok(()),
            // 304: it had stopped already.
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Err(RuntimeError::NotFound(id.clone())),
            Err(e) => Err(failed("cannot stop container", e)),
        }
    }
    // ANCHOR_END: stop_container

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default().v(true).build();
        let removed = self
            .docker
            .remove_container(docker_id(id), Some(options))
            .await;
        self.inspected.lock().unwrap().remove(docker_id(id));
        match removed {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(failed("cannot remove container", e)),
        }
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.inspect(docker_id(id)).await
    }

    /// One list call, plus an inspect for each container whose state
    /// changed since we last looked (new, or no longer running).
    async fn list_containers(&self) -> Vec<ContainerStatus> {
        let summaries = self.list("container").await;
        let mut out = Vec::new();
        for s in &summaries {
            let Some(id) = s.id.as_deref() else { continue };
            let running = matches!(
                s.state,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::PAUSED
                        | ContainerSummaryStateEnum::RESTARTING
                )
            );
            let cached = self.inspected.lock().unwrap().get(id).cloned();
            let fresh = cached.filter(|c| (c.state == RuntimeState::Running) == running);
            let status = match fresh {
                Some(c) => Ok(c),
                None => self.inspect(id).await,
            };
            // Removed between the list and the inspect: gone.
            if let Ok(status) = status {
                out.push(status);
            }
        }
        let ids: Vec<&str> = summaries.iter().filter_map(|s| s.id.as_deref()).collect();
        self.inspected
            .lock()
            .unwrap()
            .retain(|id, _| ids.contains(&id.as_str()));
        out
    }

    async fn logs(&self, id: &ContainerId) -> Result<Vec<LogLine>, RuntimeError> {
        // Check it exists first: a missing container's log stream is an
        // error the stream would only end on.
        self.inspect(docker_id(id)).await?;
        Ok(self.log_stream(id, false).collect().await)
    }

    async fn follow_logs(
        &self,
        id: &ContainerId,
    ) -> Result<BoxStream<'static, LogLine>, RuntimeError> {
        self.inspect(docker_id(id)).await?;
        Ok(self.log_stream(id, true))
    }

    // ANCHOR: docker_exec
    /// `kubectl exec` on Docker: `docker exec` through the Engine API. The
    /// engine creates the exec (`POST /containers/{id}/exec`), starts it on
    /// a hijacked connection carrying stdin one way and the multiplexed
    /// stdout/stderr (or, with a TTY, one terminal stream) the other;
    /// resizes go to `POST /exec/{id}/resize`, and the exit code is read
    /// afterwards from `GET /exec/{id}/json`. A program the image lacks
    /// cannot start; the engine reports that as exit code 126 or 127
    /// (depending on its version), which kubectl passes on.
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        options: StreamOptions,
    ) -> Result<ExecSession, RuntimeError> {
        let exec = self
            .docker
            .create_exec(
                docker_id(id),
                ExecConfig {
                    cmd: Some(command.to_vec()),
                    attach_stdin: Some(options.stdin),
                    attach_stdout: Some(options.stdout),
                    attach_stderr: Some(options.stderr),
                    tty: Some(options.tty),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed("cannot exec", e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: options.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| failed("cannot exec", e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Failed("the exec started detached".into()));
        };
        let (out_rx, err_rx, done_rx) = demultiplex(output);
        let stdin = options.stdin.then(|| write_stdin(input));
        let resize = options.tty.then(|| {
            let (tx, mut rx) = mpsc::channel::<TerminalSize>(4);
            let (docker, exec_id) = (self.docker.clone(), exec.id.clone());
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    let opts = ResizeExecOptions {
                        height: size.height,
                        width: size.width,
                    };
                    let _ = docker.resize_exec(&exec_id, opts).await;
                }
            });
            tx
        });
        let docker = self.docker.clone();
        let command = command.to_vec();
        let outcome = async move {
            let _ = done_rx.await;
            // The stream ends as the process does; the engine records the
            // exit code a moment later.
            for _ in 0..100 {
                match docker.inspect_exec(&exec.id).await {
                    Ok(i) if i.running != Some(true) => {
                        let code = i.exit_code.unwrap_or(-1) as i32;
                        return Outcome::Exited { code, command };
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(e) => return Outcome::Failed(engine_message(&e)),
                }
            }
            Outcome::Failed("the exec did not finish".into())
        }
        .boxed();
        Ok(ExecSession {
            stdin,
            stdout: options.stdout.then_some(out_rx),
            stderr: options.stderr.then_some(err_rx),
            resize,
            outcome,
        })
    }
    // ANCHOR_END: docker_exec

    // ANCHOR: docker_attach
    /// `kubectl attach` on Docker: `docker attach` through the Engine API
    /// (`POST /containers/{id}/attach?stream=1`, without `logs`, so only
    /// what the container writes from now on). The container's output is
    /// always there to attach to. Its stdin is only if the pod asked for
    /// one (`stdin: true` in the container's spec, Docker's `OpenStdin`):
    /// otherwise the client's input is dropped, as containerd drops it.
    /// The stream ends when the container exits.
    async fn attach(
        &self,
        id: &ContainerId,
        options: StreamOptions,
    ) -> Result<ExecSession, RuntimeError> {
        let inspect = self
            .docker
            .inspect_container(docker_id(id), None)
            .await
            .map_err(|e| failed("cannot attach", e))?;
        let open_stdin = inspect.config.and_then(|c| c.open_stdin).unwrap_or(false);
        let stdin = options.stdin && open_stdin;
        let attached = self
            .docker
            .attach_container(
                docker_id(id),
                Some(AttachContainerOptions {
                    stream: true,
                    logs: false,
                    stdin,
                    stdout: options.stdout,
                    stderr: options.stderr,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(|e| failed("cannot attach", e))?;
        let (out_rx, err_rx, done_rx) = demultiplex(attached.output);
        Ok(ExecSession {
            stdin: stdin.then(|| write_stdin(attached.input)),
            stdout: options.stdout.then_some(out_rx),
            stderr: options.stderr.then_some(err_rx),
            resize: None,
            outcome: attach_outcome(done_rx),
        })
    }
    // ANCHOR_END: docker_attach

    // ANCHOR: docker_stats
    /// CRI `ContainerStats`, from `GET /containers/{id}/stats` (one sample,
    /// `one-shot`): the engine reads the container's cgroup, which is what
    /// cAdvisor reads on a real node. CPU is the cgroup's cumulative
    /// `cpuacct` usage in nanoseconds (the metrics API derives a rate from
    /// two samples); memory is the working set as the kubelet defines it,
    /// usage minus the page cache the kernel can take back
    /// (`inactive_file`; `total_inactive_file` on cgroup v1).
    async fn container_stats(&self, id: &ContainerId) -> Option<ContainerStats> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let sample = self
            .docker
            .stats(docker_id(id), Some(options))
            .next()
            .await?
            .ok()?;
        let cpu = sample.cpu_stats?.cpu_usage?.total_usage?;
        let memory = sample.memory_stats.unwrap_or_default();
        let inactive = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        Some(ContainerStats {
            usage_core_nano_seconds: cpu,
            usage_nano_cores: None,
            memory_working_set_bytes: memory.usage.unwrap_or(0).saturating_sub(inactive),
        })
    }
    // ANCHOR_END: docker_stats

    // ANCHOR: exec_sync
    /// `docker exec`: a second process in the container's namespaces, its
    /// output collected, its exit code asked for afterwards.
    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let run = async {
            let exec = self
                .docker
                .create_exec(
                    docker_id(id),
                    ExecConfig {
                        cmd: Some(command.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| failed("cannot exec", e))?;
            let mut output = String::new();
            if let StartExecResults::Attached {
                output: mut out, ..
            } = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| failed("cannot exec", e))?
            {
                while let Some(Ok(chunk)) = out.next().await {
                    output.push_str(&chunk.to_string());
                }
            }
            let inspect = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| failed("cannot inspect exec", e))?;
            Ok(ExecResult {
                exit_code: inspect.exit_code.unwrap_or(-1) as i32,
                output,
            })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Failed(format!(
                "command {command:?} timed out"
            ))),
        }
    }
    // ANCHOR_END: exec_sync
}

/// Docker's multiplexed stream (an 8-byte header per frame naming stdout
/// or stderr; a TTY's output has no header, one "console" stream) split
/// into the two channels; `done` fires when it ends.
fn demultiplex(
    mut output: impl futures::Stream<Item = Result<LogOutput, DockerError>> + Send + Unpin + 'static,
) -> (
    mpsc::Receiver<Bytes>,
    mpsc::Receiver<Bytes>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(16);
    let (err_tx, err_rx) = mpsc::channel::<Bytes>(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = output.next().await {
            let sent = match frame {
                LogOutput::StdErr { message } => err_tx.send(message).await,
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out_tx.send(message).await
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    (out_rx, err_rx, done_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_app_images() {
        assert!(is_demo_app("workbook/demo-app:v1"));
        assert!(is_demo_app("docker.io/workbook/demo-app:v2"));
        assert!(!is_demo_app("workbook/pause:v1"));
        assert!(!is_demo_app("localhost:5000/workbook/demo-app:v1"));
    }

    #[test]
    fn log_frames_become_timestamped_lines() {
        let frame = LogOutput::StdErr {
            message: "2026-12-05T11:52:35.307689299Z listening\n".into(),
        };
        let lines = log_lines(Some(frame));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "listening");
        assert_eq!(lines[0].stream, LogStream::Stderr);
        assert_eq!(lines[0].at.to_string(), "2026-12-05T11:52:35.307689299Z");
    }

    #[test]
    fn docker_zero_times_are_none() {
        assert_eq!(parse_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(parse_time(Some("2026-12-05T11:52:35.3Z")).is_some());
    }
}
