//! Container runtimes behind one trait, shaped like the CRI.
//!
//! In the talk's days the kubelet spoke to Docker Engine directly
//! (dockershim). Since Kubernetes 1.24 it speaks only the **Container Runtime
//! Interface**, a gRPC API (`runtime.v1.RuntimeService` and `ImageService`)
//! that containerd and CRI-O implement. [`Runtime`] is a small Rust cut of
//! that API: the method names below say which CRI call each one stands for.
//!
//! Three runtimes implement it (one per lab setting):
//!
//! * [`simulated::SimulatedRuntime`]: no processes at all; start delays,
//!   crashes, readiness are configured; thousands of pods cost nothing.
//! * [`process::ProcessRuntime`]: runs the workload (`demo-app`) as a child
//!   process on the pod's own loopback address; probes are real HTTP.
//! * [`docker::DockerRuntime`]: real containers through the Docker Engine
//!   API (bollard), one pause container per pod holding its network, as
//!   dockershim did.
//!
//! What the CRI has and we leave out: a separate `CreateContainer` (our
//! [`Runtime::start_container`] creates and starts), `PortForward`, stats,
//! `UpdateContainerResources`, checkpoints and the image-service listing
//! calls. `Exec` and `Attach` hand back the process's streams directly
//! ([`ExecSession`]) instead of a URL of the runtime's streaming server.

pub mod docker;
pub mod process;
pub mod simulated;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use super::logs::LogLine;
use super::probe::{self, ProbeAction, ProbeOutcome};
use crate::machinery::remotecommand::{ExecSession, StreamOptions};

/// A container's ID as the pod status shows it: `<runtime>://<id>`, like
/// `containerd://4c1b…`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(pub String);

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pulled image: what the container status shows as `image` (the name the
/// pod asked for) and `imageID` (what it resolved to, a digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub image: String,
    pub image_id: String,
}

/// Why a pull failed. The message is what the pod's waiting container shows
/// with reason `ErrImagePull`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    pub message: String,
}

impl PullError {
    /// containerd's wording for an image that does not exist.
    pub fn not_found(image: &str) -> Self {
        let full = full_image_name(image);
        PullError {
            message: format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": \
                 failed to resolve reference \"{full}\": {full}: not found"
            ),
        }
    }
}

/// Docker Hub's implicit prefix: `nginx:1.27` is `docker.io/library/nginx:1.27`.
pub fn full_image_name(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    }
}

/// Every other runtime failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(ContainerId),
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// What the runtime needs to know about a pod to create its sandbox
/// (`PodSandboxConfig`): who it is, its annotations (the simulated runtime
/// reads its instructions there) and the ports its containers declare
/// (CRI's `port_mappings`: the Docker runtime publishes them on the pod's
/// address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub annotations: BTreeMap<String, String>,
    /// Every container's TCP ports ([`container_port`]: 8080 for a
    /// container that declares none), sorted, without duplicates.
    pub ports: Vec<u16>,
}

impl SandboxConfig {
    pub fn of(pod: &Pod) -> Self {
        let m = &pod.metadata;
        SandboxConfig {
            name: m.name.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: m.uid.clone().unwrap_or_default(),
            annotations: m.annotations.clone().unwrap_or_default(),
            ports: pod_ports(pod),
        }
    }
}

/// The TCP ports a pod's containers listen on, as far as the spec says.
fn pod_ports(pod: &Pod) -> Vec<u16> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| {
            let declared: Vec<u16> = c
                .ports
                .iter()
                .flatten()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .filter_map(|p| u16::try_from(p.container_port).ok())
                .collect();
            if declared.is_empty() {
                vec![container_port(c)]
            } else {
                declared
            }
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A pod's sandbox: on a real node the "pause" container holding the pod's
/// network namespace; here, the pod's own IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub ip: Ipv4Addr,
    pub config: SandboxConfig,
}

/// What [`Runtime::start_container`] needs (`ContainerConfig`): the spec,
/// which attempt this is (CRI's `metadata.attempt`, the restart count), the
/// pulled image and the resolved environment. As in the CRI, the spec's
/// `command` and `args` arrive with `$(VAR)` already expanded by the
/// kubelet.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub container: Container,
    pub attempt: u32,
    pub image: ImageRef,
    pub env: Vec<(String, String)>,
}

/// A container's state as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeState {
    Running,
    Exited {
        exit_code: i32,
        finished_at: Timestamp,
        /// The runtime's own reason, e.g. `OOMKilled`; `None` means the
        /// kubelet picks `Completed` or `Error` from the exit code.
        reason: Option<String>,
    },
}

/// `ContainerStatus` in CRI terms: one container instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: ContainerId,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image: ImageRef,
    pub started_at: Timestamp,
    pub state: RuntimeState,
}

/// Where to reach a container for a probe.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    pub id: ContainerId,
    pub pod_ip: Ipv4Addr,
}

/// The output of a command run in a container (`ExecSyncResponse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub output: String,
}

/// `ContainerStats` in CRI terms: what the runtime measured of one running
/// container. CPU comes as a cumulative counter (core-nanoseconds used since
/// the start, like cgroup's `cpuacct.usage`); the kubelet turns two readings
/// into a rate. A runtime that knows the rate itself (the simulated one,
/// whose load is set, not measured) gives `usage_nano_cores` directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStats {
    pub usage_core_nano_seconds: u64,
    pub usage_nano_cores: Option<u64>,
    pub memory_working_set_bytes: u64,
}

// ANCHOR: runtime_trait
/// A container runtime, as the kubelet sees it through the CRI.
///
/// Methods return `impl Future + Send` (not `async fn`) so that the kubelet
/// can run them on any tokio task; the kubelet is generic over its runtime.
pub trait Runtime: Send + Sync + 'static {
    /// A short name, also the scheme of container IDs (`process://…`).
    fn name(&self) -> &'static str;

    /// `ImageService.PullImage`. Like CRI's `PullImageRequest`, it may be
    /// told the pod it pulls for (`sandbox_config`): a runtime can use the
    /// pod's annotations, as the simulated one does.
    fn pull_image(
        &self,
        image: &str,
        sandbox: Option<&SandboxConfig>,
    ) -> impl Future<Output = Result<ImageRef, PullError>> + Send;

    /// `RunPodSandbox`: give the pod its network identity.
    fn run_pod_sandbox(
        &self,
        config: &SandboxConfig,
    ) -> impl Future<Output = Result<SandboxInfo, RuntimeError>> + Send;

    /// `ListPodSandbox`: the sandboxes that exist. A kubelet that restarts
    /// adopts the sandbox of each of its pods from this list (and the
    /// containers from [`Runtime::list_containers`]) instead of creating
    /// them again.
    fn list_pod_sandboxes(&self) -> impl Future<Output = Vec<SandboxInfo>> + Send;

    /// `StopPodSandbox` + `RemovePodSandbox`: release the pod's IP. Its
    /// containers must have been stopped.
    fn remove_pod_sandbox(
        &self,
        sandbox_id: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// `CreateContainer` + `StartContainer`.
    fn start_container(
        &self,
        sandbox: &SandboxInfo,
        config: &ContainerConfig,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send;

    /// `StopContainer` with a timeout: SIGTERM, wait up to `grace`, then
    /// SIGKILL. Returns once the container has exited.
    fn stop_container(
        &self,
        id: &ContainerId,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// `RemoveContainer`: forget an exited container and its logs.
    fn remove_container(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// `ContainerStatus`.
    fn container_status(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerStatus, RuntimeError>> + Send;

    /// `ListContainers`: every container of every pod, running or exited. The
    /// kubelet relists periodically to notice exits (the "generic PLEG") and,
    /// after a restart of its own, to adopt what is already running.
    fn list_containers(&self) -> impl Future<Output = Vec<ContainerStatus>> + Send;

    /// The log kept so far (the runtime's log file, read by the kubelet).
    fn logs(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<Vec<LogLine>, RuntimeError>> + Send;

    /// The log so far, then new lines until the container exits.
    fn follow_logs(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<BoxStream<'static, LogLine>, RuntimeError>> + Send;

    /// `ExecSync`: run a command in the container, for exec probes.
    fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecResult, RuntimeError>> + Send;

    /// CRI `Exec` (streaming): run a command in the container with its
    /// streams connected to the client's (`kubectl exec`). The default: this
    /// runtime has no processes to run one in.
    fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        options: StreamOptions,
    ) -> impl Future<Output = Result<ExecSession, RuntimeError>> + Send {
        let _ = (id, command, options);
        let name = self.name();
        async move {
            Err(RuntimeError::Failed(format!(
                "the {name} runtime runs no processes: there is nothing to exec into"
            )))
        }
    }

    /// CRI `Attach`: connect to the streams of the container's own process
    /// (`kubectl attach`).
    fn attach(
        &self,
        id: &ContainerId,
        options: StreamOptions,
    ) -> impl Future<Output = Result<ExecSession, RuntimeError>> + Send {
        let _ = (id, options);
        let name = self.name();
        async move {
            Err(RuntimeError::Failed(format!(
                "the {name} runtime runs no processes: there is nothing to attach to"
            )))
        }
    }

    /// `ContainerStats`: CPU and memory of a running container, or `None`
    /// when this runtime does not measure (the Docker runtime, here).
    fn container_stats(
        &self,
        _id: &ContainerId,
    ) -> impl Future<Output = Option<ContainerStats>> + Send {
        async { None }
    }

    /// Run one probe. Not a CRI call: on a real node the kubelet itself sends
    /// HTTP and TCP probes to the pod IP and only exec goes through the
    /// runtime. That is this default; the simulated runtime, which has no
    /// network, answers every probe itself.
    fn probe(
        &self,
        target: &ProbeTarget,
        action: &ProbeAction,
        timeout: Duration,
    ) -> impl Future<Output = ProbeOutcome> + Send {
        async move {
            match action {
                ProbeAction::HttpGet {
                    scheme,
                    host,
                    port,
                    path,
                    headers,
                } => probe::http_get(scheme, host, *port, path, headers, timeout).await,
                ProbeAction::TcpSocket { host, port } => {
                    probe::tcp_socket(host, *port, timeout).await
                }
                ProbeAction::Exec { command } => {
                    match self.exec_sync(&target.id, command, timeout).await {
                        Ok(r) if r.exit_code == 0 => ProbeOutcome::success(r.output),
                        Ok(r) => ProbeOutcome::failure(format!(
                            "command {command:?} exited with {}: {}",
                            r.exit_code, r.output
                        )),
                        Err(e) => ProbeOutcome::failure(e.to_string()),
                    }
                }
            }
        }
    }
}
// ANCHOR_END: runtime_trait

// ANCHOR: loopback_ipam
/// Pod IPs on loopback: `127.0.1.1`, `127.0.1.2`, … (skipping `.0` and
/// `.255` in the last byte).
///
/// Linux routes the whole of `127.0.0.0/8` to the `lo` interface, so any of
/// these addresses can be bound without configuring anything, and every pod
/// can listen on the same port (8080) at its own address, as pods do on
/// their own network namespaces. (macOS only configures `127.0.0.1`; there
/// each address needs `ifconfig lo0 alias` first.)
///
/// The allocator is a cheap-to-clone handle: runtimes of several simulated
/// nodes can share one, so pod IPs stay unique across the cluster. The same
/// pod UID always gets the same address while it holds one.
#[derive(Clone, Debug)]
pub struct LoopbackIpam {
    inner: Arc<Mutex<Ipam>>,
}

#[derive(Debug)]
struct Ipam {
    next: u32,
    by_uid: HashMap<String, Ipv4Addr>,
    free: Vec<Ipv4Addr>,
}

impl Default for LoopbackIpam {
    fn default() -> Self {
        Self::starting_at(Ipv4Addr::new(127, 0, 1, 1))
    }
}

impl LoopbackIpam {
    pub fn starting_at(first: Ipv4Addr) -> Self {
        LoopbackIpam {
            inner: Arc::new(Mutex::new(Ipam {
                next: u32::from(first),
                by_uid: HashMap::new(),
                free: Vec::new(),
            })),
        }
    }

    /// The pod's address: the one it already has, a released one, or the
    /// next unused one.
    pub fn allocate(&self, pod_uid: &str) -> Result<Ipv4Addr, RuntimeError> {
        let mut ipam = self.inner.lock().unwrap();
        if let Some(ip) = ipam.by_uid.get(pod_uid) {
            return Ok(*ip);
        }
        let ip = match ipam.free.pop() {
            Some(ip) => ip,
            None => loop {
                let ip = Ipv4Addr::from(ipam.next);
                if ip.octets()[0] != 127 {
                    return Err(RuntimeError::Failed("loopback pod IPs exhausted".into()));
                }
                ipam.next += 1;
                let claimed = ipam.by_uid.values().any(|used| *used == ip);
                if !matches!(ip.octets()[3], 0 | 255) && !claimed {
                    break ip;
                }
            },
        };
        ipam.by_uid.insert(pod_uid.to_string(), ip);
        Ok(ip)
    }

    /// Record that `pod_uid` already holds `ip` (a sandbox a restarted
    /// kubelet found running), so the address is not handed out again.
    pub fn claim(&self, pod_uid: &str, ip: Ipv4Addr) {
        let mut ipam = self.inner.lock().unwrap();
        ipam.free.retain(|f| *f != ip);
        ipam.by_uid.insert(pod_uid.to_string(), ip);
    }

    pub fn release(&self, pod_uid: &str) {
        let mut ipam = self.inner.lock().unwrap();
        if let Some(ip) = ipam.by_uid.remove(pod_uid) {
            ipam.free.push(ip);
        }
    }
}
// ANCHOR_END: loopback_ipam

/// The pod sandboxes of one runtime: what `RunPodSandbox` made and
/// `RemovePodSandbox` has not yet removed. Here a sandbox is only a network
/// identity (an address on loopback, from the shared [`LoopbackIpam`]), so
/// every runtime keeps them the same way; a clone shares the same sandboxes.
#[derive(Clone)]
pub(crate) struct Sandboxes {
    ipam: LoopbackIpam,
    // (sandboxes by id, the last id handed out). A std Mutex: never held
    // across an await.
    inner: Arc<Mutex<(HashMap<String, SandboxInfo>, u64)>>,
}

impl Sandboxes {
    pub fn new(ipam: LoopbackIpam) -> Self {
        Sandboxes {
            ipam,
            inner: Arc::default(),
        }
    }

    /// `RunPodSandbox`: the pod's address, and an id for the sandbox.
    pub fn run(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let ip = self.ipam.allocate(&config.uid)?;
        let mut inner = self.inner.lock().unwrap();
        inner.1 += 1;
        let info = SandboxInfo {
            id: hex_id("", inner.1),
            ip,
            config: config.clone(),
        };
        inner.0.insert(info.id.clone(), info.clone());
        Ok(info)
    }

    pub fn list(&self) -> Vec<SandboxInfo> {
        self.inner.lock().unwrap().0.values().cloned().collect()
    }

    /// An address for a sandbox whose id comes from elsewhere (the Docker
    /// runtime's pause container): [`Sandboxes::insert`] it once made.
    pub fn allocate_ip(&self, config: &SandboxConfig) -> Result<Ipv4Addr, RuntimeError> {
        self.ipam.allocate(&config.uid)
    }

    /// Give back an address from [`Sandboxes::allocate_ip`] whose sandbox
    /// could not be made.
    pub fn release_ip(&self, config: &SandboxConfig) {
        self.ipam.release(&config.uid)
    }

    /// Keep a sandbox made with [`Sandboxes::allocate_ip`], or one that
    /// existed before this runtime did (adoption: its address is claimed).
    pub fn insert(&self, info: SandboxInfo) {
        self.ipam.claim(&info.config.uid, info.ip);
        self.inner.lock().unwrap().0.insert(info.id.clone(), info);
    }

    /// `RemovePodSandbox`: the address goes back to the pool. Removing a
    /// sandbox that is gone already is not an error (CRI: idempotent).
    pub fn remove(&self, sandbox_id: &str) {
        let removed = self.inner.lock().unwrap().0.remove(sandbox_id);
        if let Some(s) = removed {
            self.ipam.release(&s.config.uid);
        }
    }
}

/// The first `containerPort` of a container, else 8080 (the workload's
/// default).
pub fn container_port(c: &Container) -> u16 {
    c.ports
        .iter()
        .flatten()
        .find_map(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(8080)
}

/// A short random-looking hex ID from a counter (stable under test, unique
/// within one runtime), like the 64-hex IDs of containerd, shortened.
pub(crate) fn hex_id(prefix: &str, n: u64) -> String {
    // SplitMix64 scrambles the counter so IDs do not look sequential.
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{prefix}{z:016x}")
}

/// An `imageID` for a runtime without a registry: the repository plus a
/// stable, made-up digest of the image name (not a real content digest).
pub(crate) fn fake_image_id(image: &str) -> String {
    let full = full_image_name(image);
    let repo = match full.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => full.clone(),
    };
    // FNV-1a of the name seeds four rounds of `hex_id`: 64 hex digits.
    let seed = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let digest: String = (0..4).map(|i| hex_id("", seed.wrapping_add(i))).collect();
    format!("{repo}@sha256:{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_skip_0_and_255_and_are_stable() {
        let ipam = LoopbackIpam::starting_at(Ipv4Addr::new(127, 0, 1, 254));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(127, 0, 1, 254));
        assert_eq!(ipam.allocate("b").unwrap(), Ipv4Addr::new(127, 0, 2, 1));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(127, 0, 1, 254));
        ipam.release("a");
        assert_eq!(ipam.allocate("c").unwrap(), Ipv4Addr::new(127, 0, 1, 254));
        assert_eq!(ipam.allocate("d").unwrap(), Ipv4Addr::new(127, 0, 2, 2));
    }

    #[test]
    fn image_names() {
        assert_eq!(
            full_image_name("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            full_image_name("workbook/demo-app:v1"),
            "docker.io/workbook/demo-app:v1"
        );
        assert_eq!(
            full_image_name("gcr.io/google-samples/kubernetes-bootcamp:v10"),
            "gcr.io/google-samples/kubernetes-bootcamp:v10"
        );
    }
}
