//! The process runtime: containers as child processes, no Docker.
//!
//! It knows one image family, the workload's: `workbook/demo-app:<tag>` runs
//! the demo app at version `<tag>`, as a child process of this very binary
//! (`labs app --listen <pod IP>:<port> --app-version <tag>`, a hidden
//! subcommand), so nothing needs building or pulling. Any other image fails
//! the way an image that does not exist fails on a real node: `ErrImagePull`,
//! then `ImagePullBackOff` — the official tutorial's broken-version moment.
//!
//! The container's `command` and `args` work as with the real image, whose
//! `ENTRYPOINT` is `/demo-app` ([`demo_app_argv`]): `args` alone are the
//! entrypoint's arguments, so `args: [proxy, --listen, ..., --to, ...]`
//! runs the proxy sidecar; a `command` must name `/demo-app`, the only
//! program in the image. Without either, the app serves on the pod's
//! address, as above.
//!
//! **No network namespaces.** On a real node the containers of a pod share
//! one network namespace, so an app reaches its sidecar at `127.0.0.1`
//! (the Cloud SQL Auth Proxy on GKE listens there). Here every process
//! shares the host's network, and `127.0.0.1:5432` would be one port for
//! all pods of the machine. So the **pod's own address stands in for
//! localhost**: a sidecar listens on `$(POD_IP):5432` and the app's
//! `DB_HOST` is the pod IP, both from the downward API (`status.podIP`).
//! What the image's `ENV LISTEN=0.0.0.0:8080` means in a container becomes
//! `LISTEN=<pod IP>:<port>` here, for the same reason.
//!
//! What a real runtime isolates, this one does not: the process shares the
//! host's filesystem, users and network namespace. What it keeps is what
//! the lessons need:
//!
//! * **its own IP per pod** on loopback ([`super::LoopbackIpam`]), so every
//!   pod listens on the same port and probes are real HTTP;
//! * **a clean environment**: only `PATH`, `HOSTNAME`, `POD_NAME` and the
//!   container's resolved `env`, not the kubelet's variables;
//! * **logs** of stdout and stderr per instance, kept until removed;
//! * **graceful stop**: SIGTERM, the grace period, then SIGKILL; children
//!   are always reaped, and killed when the runtime is dropped.
//!
//! Exec probes run the command **on the host** with the container's
//! environment (there is no container to enter): `cat /tmp/healthy` reads
//! the host's `/tmp`. So does `kubectl exec` ([`stream::spawn`]): `kubectl
//! exec POD -- /bin/sh` is the host's shell, and `kubectl cp` uses the
//! host's `tar`. `kubectl attach` follows the container's output; its stdin
//! is closed (the lab starts no container with `stdin: true`), and without a
//! terminal device `-t` gives no real terminal (no prompt, no resize).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use super::{
    ContainerConfig, ContainerId, ContainerStats, ContainerStatus, ExecResult, ImageRef,
    LoopbackIpam, PullError, Runtime, RuntimeError, RuntimeState, SandboxConfig, SandboxInfo,
    Sandboxes, container_port, fake_image_id, hex_id, stream,
};
use crate::kubelet::Clock;
use crate::kubelet::logs::{LogBuffer, LogLine, LogStream};
use crate::machinery::remotecommand::{ExecSession, StreamOptions};

/// The repository the process runtime can "pull".
pub const DEMO_APP_REPOSITORY: &str = "workbook/demo-app";

/// How to run the workload.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The executable with the hidden `app` subcommand: the `labs` binary
    /// itself in a cluster (`std::env::current_exe()`), the built `labs`
    /// binary in tests (`env!("CARGO_BIN_EXE_labs")`).
    pub exe: PathBuf,
    /// If set, only these tags exist (`v1`, `v2`): any other tag fails to
    /// pull. By default every tag exists.
    pub tags: Option<Vec<String>>,
}

impl ProcessConfig {
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(ProcessConfig {
            exe: std::env::current_exe()?,
            tags: None,
        })
    }
}

/// `(exit code, finished at)` once the process has exited.
type Exit = Option<(i32, Timestamp)>;

struct Proc {
    status: ContainerStatus,
    pid: u32,
    exit: watch::Receiver<Exit>,
    logs: LogBuffer,
    /// What `kubectl exec` and exec probes run with: the whole environment the container
    /// got, and its `workingDir` (`/`, the image's, when it names none).
    exec_env: Vec<(String, String)>,
    working_dir: String,
}

#[derive(Default)]
struct Inner {
    containers: HashMap<ContainerId, Proc>,
    next_id: u64,
}

/// The process runtime. Not `Clone`: dropping it kills every container it
/// started (share it with an `Arc`).
pub struct ProcessRuntime {
    config: ProcessConfig,
    clock: Clock,
    sandboxes: Sandboxes,
    // A std Mutex: held for map operations only, never across an await.
    inner: Arc<Mutex<Inner>>,
}

/// `workbook/demo-app:v1` (or `docker.io/workbook/demo-app:v1`) → `v1`.
fn demo_app_tag(image: &str) -> Option<&str> {
    let (repo, tag) = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    };
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    (repo == DEMO_APP_REPOSITORY && !tag.is_empty()).then_some(tag)
}

/// The image's `ENTRYPOINT`: the one program in `workbook/demo-app`.
pub const DEMO_APP_ENTRYPOINT: &str = "/demo-app";

// ANCHOR: demo_app_argv
/// The arguments for `<exe> app …` that run `container`, following
/// Kubernetes' rules for an image whose `ENTRYPOINT` is `/demo-app` and
/// which has no `CMD`:
///
/// * no `command`, no `args`: the entrypoint alone — the app serving on the
///   pod's address (`--listen <pod IP>:<port> --app-version <tag>`);
/// * `args` only: the entrypoint with these arguments (`proxy --listen …`);
/// * `command` (and `args`): `command[0]` must be `/demo-app`, the rest of
///   `command` then `args` are its arguments. Any other program does not
///   exist in the image, and the start fails as runc's would.
///
/// `$(VAR)` references have been expanded by the kubelet already.
pub fn demo_app_argv(
    container: &k8s_openapi::api::core::v1::Container,
    listen: &str,
    tag: &str,
) -> Result<Vec<String>, RuntimeError> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    if command.is_empty() && args.is_empty() {
        return Ok(["--listen", listen, "--app-version", tag]
            .map(String::from)
            .to_vec());
    }
    let mut argv = Vec::new();
    if let Some((program, rest)) = command.split_first() {
        if program != DEMO_APP_ENTRYPOINT {
            return Err(RuntimeError::Failed(format!(
                "failed to create containerd task: exec: \"{program}\": executable file not \
                 found in $PATH (the image has only {DEMO_APP_ENTRYPOINT})"
            )));
        }
        argv.extend(rest.iter().cloned());
    }
    argv.extend(args);
    Ok(argv)
}
// ANCHOR_END: demo_app_argv

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions. The pid is one of
    // our children that has not been reaped yet (we check the exit channel
    // first), so it cannot have been reused by another process.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

impl ProcessRuntime {
    pub fn new(config: ProcessConfig, clock: Clock, ipam: LoopbackIpam) -> Self {
        ProcessRuntime {
            config,
            clock,
            sandboxes: Sandboxes::new(ipam),
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// SIGKILL every running container and wait for them to be reaped.
    pub async fn shutdown(&self) {
        let running: Vec<watch::Receiver<Exit>> = {
            let inner = self.inner.lock().unwrap();
            inner
                .containers
                .values()
                .filter(|p| p.exit.borrow().is_none())
                .map(|p| {
                    signal(p.pid, libc::SIGKILL);
                    p.exit.clone()
                })
                .collect()
        };
        for mut exit in running {
            let _ = exit.wait_for(|e| e.is_some()).await;
        }
    }

    fn proc<T>(&self, id: &ContainerId, f: impl FnOnce(&Proc) -> T) -> Result<T, RuntimeError> {
        let inner = self.inner.lock().unwrap();
        let p = inner
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        Ok(f(p))
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        // The waiter tasks reap them (or tokio does, if the tokio runtime is
        // going away too: the children are `kill_on_drop`).
        if let Ok(inner) = self.inner.lock() {
            for p in inner
                .containers
                .values()
                .filter(|p| p.exit.borrow().is_none())
            {
                signal(p.pid, libc::SIGKILL);
            }
        }
    }
}

/// Copy one pipe into the log, line by line.
async fn pump(pipe: impl AsyncRead + Unpin, logs: LogBuffer, stream: LogStream, clock: Clock) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push(clock.now(), stream, line);
    }
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn pull_image(
        &self,
        image: &str,
        _sandbox: Option<&SandboxConfig>,
    ) -> Result<ImageRef, PullError> {
        match demo_app_tag(image) {
            Some(tag)
                if self
                    .config
                    .tags
                    .as_ref()
                    .is_none_or(|tags| tags.iter().any(|t| t == tag)) =>
            {
                Ok(ImageRef {
                    image: image.to_string(),
                    image_id: fake_image_id(image),
                })
            }
            _ => Err(PullError::not_found(image)),
        }
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

    // ANCHOR: start_process
    async fn start_container(
        &self,
        sandbox: &SandboxInfo,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let tag = demo_app_tag(&config.image.image).ok_or_else(|| {
            RuntimeError::Failed(format!("cannot run image {}", config.image.image))
        })?;
        let listen = format!("{}:{}", sandbox.ip, container_port(&config.container));
        let argv = demo_app_argv(&config.container, &listen, tag)?;
        let exec_env: Vec<(String, String)> = [
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOSTNAME", sandbox.config.name.clone()),
            ("POD_NAME", sandbox.config.name.clone()),
            ("NO_COLOR", "1".into()), // plain logs, as a log file would hold
            // The image's own `ENV` (the container's `env` overrides it, as
            // in Docker), with the pod's address for `0.0.0.0`.
            ("LISTEN", listen.clone()),
            ("APP_VERSION", tag.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(config.env.iter().cloned())
        .collect();
        let mut cmd = Command::new(&self.config.exe);
        cmd.arg("app")
            .args(&argv)
            // A container sees its own environment, not the kubelet's.
            .env_clear()
            .envs(exec_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C in the terminal reaches the
            // kubelet, which then decides how to stop its containers.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            RuntimeError::Failed(format!(
                "failed to start {}: {e}",
                self.config.exe.display()
            ))
        })?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let started_at = self.clock.now();
        let logs = LogBuffer::default();
        let clock = self.clock;
        let out = tokio::spawn(pump(
            child.stdout.take().expect("piped"),
            logs.clone(),
            LogStream::Stdout,
            clock,
        ));
        let err = tokio::spawn(pump(
            child.stderr.take().expect("piped"),
            logs.clone(),
            LogStream::Stderr,
            clock,
        ));
        let (exit_tx, exit_rx) = watch::channel(None);

        let id = {
            let mut inner = self.inner.lock().unwrap();
            inner.next_id += 1;
            let id = ContainerId(hex_id("process://", inner.next_id));
            inner.containers.insert(
                id.clone(),
                Proc {
                    status: ContainerStatus {
                        id: id.clone(),
                        pod_uid: sandbox.config.uid.clone(),
                        name: config.container.name.clone(),
                        attempt: config.attempt,
                        image: config.image.clone(),
                        started_at,
                        state: RuntimeState::Running,
                    },
                    pid,
                    exit: exit_rx,
                    logs: logs.clone(),
                    exec_env,
                    working_dir: config
                        .container
                        .working_dir
                        .clone()
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| "/".into()),
                },
            );
            id
        };

        // The waiter: reaps the child (no zombies), records how it ended.
        // It holds the runtime weakly, so dropping the runtime is not
        // prevented by its own children.
        let weak: Weak<Mutex<Inner>> = Arc::downgrade(&self.inner);
        let waiter_id = id.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    // Like container runtimes: killed by signal N → 128 + N.
                    status
                        .code()
                        .or(status.signal().map(|s| 128 + s))
                        .unwrap_or(-1)
                }
                Err(_) => -1,
            };
            let finished_at = clock.now();
            let _ = out.await;
            let _ = err.await;
            logs.close();
            if let Some(inner) = weak.upgrade()
                && let Some(p) = inner.lock().unwrap().containers.get_mut(&waiter_id)
            {
                p.status.state = RuntimeState::Exited {
                    exit_code: code,
                    finished_at,
                    reason: None,
                };
            }
            let _ = exit_tx.send(Some((code, finished_at)));
        });
        Ok(id)
    }
    // ANCHOR_END: start_process

    // ANCHOR: stop_process
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let (pid, mut exit) = self.proc(id, |p| (p.pid, p.exit.clone()))?;
        if exit.borrow().is_some() {
            return Ok(());
        }
        signal(pid, libc::SIGTERM);
        let exited = tokio::time::timeout(grace, exit.wait_for(|e| e.is_some()))
            .await
            .is_ok();
        if !exited {
            // The grace period is over.
            if exit.borrow().is_none() {
                signal(pid, libc::SIGKILL);
            }
            let _ = exit.wait_for(|e| e.is_some()).await;
        }
        Ok(())
    }
    // ANCHOR_END: stop_process

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let running = self
            .proc(id, |p| p.exit.borrow().is_none())
            .unwrap_or(false);
        if running {
            return Err(RuntimeError::Failed(format!(
                "container {id} is running; stop it first"
            )));
        }
        self.inner.lock().unwrap().containers.remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.proc(id, |p| p.status.clone())
    }

    async fn list_containers(&self) -> Vec<ContainerStatus> {
        let inner = self.inner.lock().unwrap();
        inner
            .containers
            .values()
            .map(|p| p.status.clone())
            .collect()
    }

    async fn logs(&self, id: &ContainerId) -> Result<Vec<LogLine>, RuntimeError> {
        self.proc(id, |p| p.logs.lines())
    }

    async fn follow_logs(
        &self,
        id: &ContainerId,
    ) -> Result<BoxStream<'static, LogLine>, RuntimeError> {
        self.proc(id, |p| p.logs.follow().boxed())
    }

    // ANCHOR: process_exec
    /// `kubectl exec`: the command runs **on the host**, as a child of the
    /// kubelet, with the container's environment (its `env`, `HOSTNAME`,
    /// `LISTEN` on the pod's address) and working directory. There is no
    /// container to enter: it sees the host's files, users and processes.
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        options: StreamOptions,
    ) -> Result<ExecSession, RuntimeError> {
        let (env, working_dir) = self.proc(id, |p| (p.exec_env.clone(), p.working_dir.clone()))?;
        stream::spawn(
            stream::HostExec {
                command,
                env: &env,
                working_dir: &working_dir,
            },
            options,
        )
        .map_err(RuntimeError::Failed)
    }
    // ANCHOR_END: process_exec

    async fn attach(
        &self,
        id: &ContainerId,
        options: StreamOptions,
    ) -> Result<ExecSession, RuntimeError> {
        let lines = self.proc(id, |p| p.logs.live())?;
        Ok(stream::attach_to_log(lines, options))
    }

    // ANCHOR: proc_stats
    /// What cAdvisor reads from the container's cgroup, read here from the
    /// one process: CPU time from `/proc/<pid>/stat` (fields 14 and 15,
    /// `utime` + `stime`, in clock ticks) and the resident set from
    /// `/proc/<pid>/status` (`VmRSS`, a stand-in for the cgroup's working
    /// set). Children the app might start are not counted: a process is
    /// not a cgroup.
    async fn container_stats(&self, id: &ContainerId) -> Option<ContainerStats> {
        let pid = self
            .proc(id, |p| {
                (p.status.state == RuntimeState::Running).then_some(p.pid)
            })
            .ok()??;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces: count from its `)`.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Some(ContainerStats {
            usage_core_nano_seconds: ticks * 1_000_000_000 / hz,
            usage_nano_cores: None,
            memory_working_set_bytes: rss_kib * 1024,
        })
    }
    // ANCHOR_END: proc_stats

    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let (env, working_dir) = self.proc(id, |p| (p.exec_env.clone(), p.working_dir.clone()))?;
        let exec = stream::HostExec {
            command,
            env: &env,
            working_dir: &working_dir,
        };
        let Some(mut cmd) = exec.command() else {
            return Err(RuntimeError::Failed("empty command".into()));
        };
        let run = cmd.stdin(Stdio::null()).output();
        match tokio::time::timeout(timeout, run).await {
            Err(_) => Err(RuntimeError::Failed(format!(
                "command {command:?} timed out"
            ))),
            Ok(Err(e)) => Err(RuntimeError::Failed(format!(
                "command {command:?} failed: {e}"
            ))),
            Ok(Ok(out)) => Ok(ExecResult {
                exit_code: out.status.code().unwrap_or(-1),
                output: String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_args_as_for_the_image_entrypoint() {
        use k8s_openapi::api::core::v1::Container;
        let c = |command: &[&str], args: &[&str]| Container {
            name: "c".into(),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let argv = |c: &Container| demo_app_argv(c, "127.0.1.4:8080", "v2");
        assert_eq!(
            argv(&c(&[], &[])).unwrap(),
            ["--listen", "127.0.1.4:8080", "--app-version", "v2"],
            "today's default: the app on the pod's address"
        );
        let proxy = [
            "proxy",
            "--listen",
            "127.0.1.4:5432",
            "--to",
            "127.0.0.9:6000",
        ];
        assert_eq!(argv(&c(&[], &proxy)).unwrap(), proxy, "args alone");
        assert_eq!(
            argv(&c(&["/demo-app", "proxy"], &proxy[1..])).unwrap(),
            proxy,
            "command names the entrypoint"
        );
        assert_eq!(
            argv(&c(&["/demo-app"], &["--drain-seconds", "5"])).unwrap(),
            ["--drain-seconds", "5"]
        );
        let err = argv(&c(&["sh", "-c"], &["echo hi"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("exec: \"sh\": executable file not found"),
            "{err}"
        );
    }

    #[test]
    fn demo_app_tags() {
        assert_eq!(demo_app_tag("workbook/demo-app:v1"), Some("v1"));
        assert_eq!(demo_app_tag("docker.io/workbook/demo-app:v2"), Some("v2"));
        assert_eq!(demo_app_tag("workbook/demo-app"), Some("latest"));
        assert_eq!(demo_app_tag("nginx:1.27"), None);
        assert_eq!(
            demo_app_tag("gcr.io/google-samples/kubernetes-bootcamp:v10"),
            None
        );
    }
}
