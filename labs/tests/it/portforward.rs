//! `kubectl port-forward` and kube-rs's `Portforwarder` against a cluster of
//! real `demo-app` processes: HTTP through the forward, the `svc/` and
//! `deploy/` forms kubectl resolves itself, many connections at once, a
//! port nothing listens on, and both SPDY transports kubectl knows
//! (SPDY-in-WebSocket since 1.31, raw SPDY before). Loopback only.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use labs::apiserver::{ApiServer, kubeconfig};
use labs::cluster::{ClusterOptions, Components, start_process_kubelets};
use labs::kubelet::Kubelet;
use labs::kubelet::runtime::LoopbackIpam;
use labs::kubelet::runtime::process::ProcessConfig;
use labs::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::kubectl;

/// A one-node cluster served on a free loopback port, its pods on their
/// own address range (`127.6.x.*`), and a kubeconfig for kubectl.
struct Cluster {
    api: ApiServer,
    components: Option<Components>,
    kubelets: Vec<Kubelet>,
    stop: Option<oneshot::Sender<()>>,
    kubeconfig: tempfile::TempDir,
    addr: std::net::SocketAddr,
}

impl Cluster {
    async fn start(offset: u8) -> Cluster {
        let api = ApiServer::new(Store::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kubeconfig = tempfile::tempdir().unwrap();
        kubeconfig::write_kubeconfig(&kubeconfig.path().join("config"), addr).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(api.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        let components = Components::start(&api, &ClusterOptions::default());
        let third = 10 + ((std::process::id() % 120) as u8) * 2 + offset;
        let kubelets = start_process_kubelets(
            &api,
            &api.client(),
            1,
            ProcessConfig {
                exe: env!("CARGO_BIN_EXE_labs").into(),
                tags: None,
            },
            LoopbackIpam::starting_at(Ipv4Addr::new(127, 6, third, 1)),
        );
        Cluster {
            api,
            components: Some(components),
            kubelets,
            stop: Some(stop),
            kubeconfig,
            addr,
        }
    }

    /// kubectl (`bin`) against this cluster; panics with its output unless
    /// it succeeds.
    fn kubectl_with(&self, bin: &str, args: &[&str]) -> String {
        let out = Command::new(bin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig.path().join("config"))
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with(&kubectl(), args)
    }

    /// `kubectl port-forward TARGET :PORT` in the background, once it
    /// says where it listens.
    fn port_forward(&self, bin: &str, target: &str, port: u16, env: &[(&str, &str)]) -> Forward {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(bin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig.path().join("config"))
            .args(["port-forward", "--address", "127.0.0.1", target])
            .arg(format!(":{port}"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("kubectl runs");
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep reading ("Handling connection for …"): a Go program whose
        // stdout pipe is closed dies of SIGPIPE on its next line.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let local = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "kubectl port-forward {target}: {line:?} {}",
                    std::fs::read_to_string(stderr.path()).unwrap_or_default()
                )
            });
        Forward {
            child,
            local,
            stderr,
        }
    }

    async fn stop(mut self) {
        for k in std::mem::take(&mut self.kubelets) {
            k.stop().await;
        }
        if let Some(c) = self.components.take() {
            c.shutdown().await.unwrap();
        }
        let _ = self.stop.take().unwrap().send(());
    }
}

/// A running `kubectl port-forward`, killed when dropped.
struct Forward {
    child: Child,
    local: u16,
    stderr: tempfile::NamedTempFile,
}

impl Forward {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /` on its own connection (`Connection: close`): the whole answer.
async fn get(port: u16) -> std::io::Result<String> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer in 20 s"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Polls until `cond` holds (generous: the machine is shared).
async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deploy_web(c: &Cluster) -> String {
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=workbook/demo-app:v1",
    ]);
    c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=60s",
    ]);
    let pods: Api<Pod> = Api::default_namespaced(c.api.client());
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    list.items[0].metadata.name.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_port_forward_reaches_the_pod() {
    let c = Cluster::start(0).await;
    let pod = deploy_web(&c).await;
    let bin = kubectl();

    // The pod form, over SPDY-in-WebSocket (kubectl ≥ 1.31's default).
    let fwd = c.port_forward(&bin, &format!("pod/{pod}"), 8080, &[]);
    // Available is not listening yet (the Deployment has no readiness
    // probe): the first connections may find nothing.
    let mut answer = String::new();
    wait_for("the pod to answer through the forward", async || {
        answer = get(fwd.local).await.unwrap_or_default();
        !answer.is_empty()
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""version":"v1""#), "{answer}");
    assert!(answer.contains(&pod), "another pod answered: {answer}");

    // Ten connections at once through the one forward.
    let answers = futures::future::join_all((0..10).map(|_| get(fwd.local))).await;
    for a in answers {
        let a = a.unwrap();
        assert!(a.contains(r#""version":"v1""#), "{a}");
    }
    drop(fwd);

    // The same through raw SPDY (the fallback, and kubectl before 1.31).
    let fwd = c.port_forward(
        &bin,
        &format!("pod/{pod}"),
        8080,
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
    );
    let a = get(fwd.local).await.unwrap();
    assert!(a.contains(r#""version":"v1""#), "{a}");
    drop(fwd);

    // A Service and a Deployment: kubectl picks the pod itself and maps the
    // Service port (80) to the pod's target port (8080).
    c.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    for target in ["svc/web", "deploy/web"] {
        let port = if target == "svc/web" { 80 } else { 8080 };
        let fwd = c.port_forward(&bin, target, port, &[]);
        let a = get(fwd.local).await.unwrap();
        assert!(a.contains(r#""version":"v1""#), "{target}: {a}");
    }

    // A port nothing listens on: the kubelet's error arrives on the error
    // stream and kubectl prints it. Then kubectl (client-go's port-forward
    // since 1.23) closes the whole connection on any error-stream message
    // and exits with "lost connection to pod": upstream's client, not the
    // server, ends the forward.
    let mut fwd = c.port_forward(&bin, &format!("pod/{pod}"), 9999, &[]);
    let _ = get(fwd.local).await;
    wait_for("kubectl to report the error", async || {
        fwd.stderr().contains("error forwarding port 9999 to pod")
    })
    .await;
    let err = fwd.stderr();
    assert!(err.contains("connect: connection refused"), "{err}");
    wait_for("kubectl to end the forward", async || !fwd.alive()).await;
    assert!(
        fwd.stderr().contains("lost connection to pod"),
        "{}",
        fwd.stderr()
    );
    drop(fwd);

    // The machine's kubectl dispatcher, if there is one (an older minor).
    if std::path::Path::new("/usr/bin/kubectl").exists() {
        let fwd = c.port_forward("/usr/bin/kubectl", &format!("pod/{pod}"), 8080, &[]);
        let a = get(fwd.local).await.unwrap();
        assert!(a.contains(r#""version":"v1""#), "{a}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_rs_portforwarder_agrees() {
    let c = Cluster::start(1).await;
    let pod = deploy_web(&c).await;
    // kube-rs needs a real connection to upgrade: the HTTP server, not the
    // in-process router.
    let config = kube::Config::new(format!("http://{}", c.addr).parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);

    let mut pf = pods.portforward(&pod, &[8080, 9999]).await.unwrap();
    let mut conn = pf.take_stream(8080).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer))
        .await
        .expect("an answer in 20 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains(r#""version":"v1""#), "{answer}");
    assert!(answer.contains(&pod), "{answer}");
    // Port 9999: the same kubelet error kubectl prints, on the error channel.
    let error = tokio::time::timeout(Duration::from_secs(20), pf.take_error(9999).unwrap())
        .await
        .expect("an error in 20 s")
        .expect("an error message");
    assert!(
        error.starts_with("error forwarding port 9999 to pod ")
            && error.contains("connect: connection refused"),
        "{error}"
    );
    drop(conn);
    pf.abort();
    c.stop().await;
}
