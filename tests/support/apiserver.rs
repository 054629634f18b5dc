//! Starting a lab API server for a test and driving it with the real
//! clients: kubectl (as a child process, against a kubeconfig in a temporary
//! directory; see [`kubectl_binary`] for which one) and kube-rs (in-process,
//! or over loopback HTTP).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use labs::apiserver::{ApiServer, Config, kubeconfig};
use labs::store::Store;
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// The kubectl the tests drive: `$WORKBOOK_KUBECTL` if set, else the first
/// `kubectl` on the PATH. CI (`.ci/run`) puts the upstream kubectl 1.35.2
/// first on the PATH, so the suites run with the kubectl a learner installs
/// today; without it the machine's Cloud SDK dispatcher (`/usr/bin/kubectl`,
/// 1.27-1.33, which picks the binary closest to the server's minor) is found.
/// A missing kubectl is one clear panic line, never a silent pass.
pub fn kubectl_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("WORKBOOK_KUBECTL").filter(|v| !v.is_empty()) {
        return PathBuf::from(explicit);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| panic!("kubectl is not on the PATH (or set WORKBOOK_KUBECTL); the kubectl tests need the real one"))
}

/// The oldest kubectl the README promises: the oldest the machine's
/// dispatcher ships. One test module runs with it as well. 1.27 and 1.28
/// differ from newer ones in reading the Swagger 2.0 document `/openapi/v2`
/// (in protobuf) for `create -f` and `apply`, where 1.29 and newer read
/// `/openapi/v3`; the lab server serves both.
pub const OLDEST_KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A running API server on 127.0.0.1 with its kubeconfig.
pub struct TestServer {
    pub api: ApiServer,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "kubectl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts success and returns what `kubectl delete` printed, in the
    /// form every tested kubectl agrees on (see [`deleted_message`]).
    #[track_caller]
    pub fn deleted(&self) -> String {
        deleted_message(self.ok())
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Store::new(), Config::default()).await
    }

    pub async fn start_with(store: Store, config: Config) -> TestServer {
        let api = ApiServer::with_config(store, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        kubeconfig::write_kubeconfig(&kubeconfig, addr).expect("write kubeconfig");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            api,
            addr,
            dir,
            kubeconfig,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// kube-rs, in-process (no socket).
    pub fn client(&self) -> kube::Client {
        self.api.client()
    }

    /// kube-rs over loopback HTTP, as a separate program would connect.
    pub fn http_client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    /// A kubectl command with this server's kubeconfig and a private
    /// discovery cache.
    pub fn kubectl_command(&self, args: &[&str]) -> tokio::process::Command {
        self.kubectl_command_with(&kubectl_binary(), args)
    }

    /// The same with a given kubectl binary (e.g. [`OLDEST_KUBECTL`]).
    pub fn kubectl_command_with(
        &self,
        binary: &std::path::Path,
        args: &[&str],
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl to the end (at most 60 s).
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None).await
    }

    /// Runs kubectl with `stdin` fed from a string (`-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.kubectl_stdin_with(&kubectl_binary(), args, stdin)
            .await
    }

    /// Runs a given kubectl binary to the end, `stdin` as above.
    pub async fn kubectl_stdin_with(
        &self,
        binary: &std::path::Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        let mut cmd = self.kubectl_command_with(binary, args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished within 60 s")
            .expect("kubectl output");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes a file into the test's temporary directory; returns its path.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path.to_string_lossy().into_owned()
    }

    /// The stored object at a store key, as JSON.
    pub fn stored(&self, key: &str) -> Option<Value> {
        self.api
            .store()
            .get(key)
            .map(|kv| serde_json::from_slice(&kv.value).expect("JSON in the store"))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// Reads from a child's stdout until `pattern` shows up or `timeout`
/// passes; returns everything read so far.
pub async fn read_until(
    out: &mut tokio::process::ChildStdout,
    pattern: &str,
    timeout: Duration,
) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(pattern) {
        match tokio::time::timeout_at(deadline, out.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// One request straight into the router (no socket): status, headers and
/// body. For tests of raw HTTP behaviour (error bodies, bad input).
pub async fn raw(
    api: &ApiServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<axum::body::Body>,
) -> (u16, http::HeaderMap, bytes::Bytes) {
    use tower::ServiceExt;
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.into()).expect("request");
    let resp = api.router().oneshot(req).await.expect("infallible router");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, body)
}

/// The deployment every example uses (reference §16).
pub const DEPLOYMENT_YAML: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: app:v1
        ports:
        - containerPort: 8080
";

/// What `kubectl delete` printed, without the namespace clause that kubectl
/// 1.35 appends (`pod "p" deleted from default namespace`; 1.33 and older
/// print `pod "p" deleted`), so one assertion holds for every kubectl the
/// tests run with. Each line trimmed, lines joined with `\n`.
pub fn deleted_message(stdout: &str) -> String {
    stdout
        .lines()
        .map(|line| {
            let line = line.trim();
            match line.rsplit_once(" deleted from ") {
                Some((head, ns)) if ns.ends_with(" namespace") => format!("{head} deleted"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
