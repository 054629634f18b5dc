//! `kubectl exec`, `kubectl cp` and `kubectl attach` against an API server
//! and a kubelet with the process runtime, through the real kubectl — and
//! the same stream protocol through kube-rs's `Api::<Pod>::exec`/`attach`,
//! a second, independent client, down to its channel bytes (v5's close,
//! resize, the status channel). `kubectl exec -it` runs on a
//! pseudo-terminal the test opens for it, so kubectl has a terminal to put
//! in raw mode. Loopback only; every child is stopped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use labs::apiserver::{ApiServer, kubeconfig};
use labs::kubelet::Clock;
use labs::kubelet::runtime::LoopbackIpam;
use labs::kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use labs::kubelet::{Kubelet, KubeletConfig};
use labs::store::Store;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;

struct Setup {
    api: ApiServer,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    kubelet: Option<Kubelet>,
    runtime: Arc<ProcessRuntime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The app's port on the pod's address.
    port: u16,
}

impl Setup {
    /// An API server on a free port, one kubelet (`node-1`, process
    /// runtime) and a Running pod `web` with one container `app`.
    async fn start() -> Setup {
        let api = ApiServer::new(Store::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        kubeconfig::write_kubeconfig(&dir.path().join("kubeconfig"), addr).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        // A per-process range of pod addresses (parallel test binaries),
        // apart from the other tests' ranges in this binary.
        let third = 10 + (std::process::id() % 200) as u8;
        let runtime = Arc::new(ProcessRuntime::new(
            ProcessConfig {
                exe: env!("CARGO_BIN_EXE_labs").into(),
                tags: None,
            },
            Clock::cluster(),
            LoopbackIpam::starting_at(Ipv4Addr::new(127, 5, third, 1)),
        ));
        let mut config = KubeletConfig::new("node-1");
        config.relist_period = Duration::from_millis(200);
        let kubelet = Kubelet::start(api.client(), Arc::clone(&runtime), config, Clock::cluster());
        api.register_kubelet("node-1", kubelet.logs());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let setup = Setup {
            api,
            addr,
            dir,
            kubelet: Some(kubelet),
            runtime,
            stop: Some(stop),
            port,
        };
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": "node-1",
                "terminationGracePeriodSeconds": 5,
                "containers": [{
                    "name": "app", "image": "workbook/demo-app:v1",
                    "ports": [{"containerPort": port}],
                    "env": [{"name": "GREETING", "value": "hello from the pod"}],
                }],
            },
        }))
        .unwrap();
        setup
            .pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let p = setup.pods().get("web").await.unwrap();
            let running = p
                .status
                .and_then(|s| s.container_statuses)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                });
            if running {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "web never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        setup
    }

    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.api.client())
    }

    /// kube-rs over real HTTP: the upgrade needs a connection.
    fn http_pods(&self) -> Api<Pod> {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        Api::default_namespaced(kube::Client::try_from(config).unwrap())
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `binary` pointed at this cluster, with a cache of its own.
    fn kubectl_command(&self, binary: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env_remove("KUBECONFIG")
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        cmd
    }

    /// Run kubectl; stdout, stderr and the exit code.
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (String, String, i32) {
        self.kubectl_with(&crate::kubectl(), args, stdin).await
    }

    async fn kubectl_with(
        &self,
        binary: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (String, String, i32) {
        let mut child = self
            .kubectl_command(binary)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).await.unwrap();
        }
        drop(pipe);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished within 60 s")
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// A bare WebSocket client on `pods/web/exec?{query}`, offering
    /// `protocols`.
    async fn exec_socket(
        &self,
        query: &str,
        protocols: &str,
    ) -> Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error> {
        use tungstenite::client::IntoClientRequest;
        let url = format!(
            "ws://{}/api/v1/namespaces/default/pods/web/exec?{query}",
            self.addr
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        tokio_tungstenite::connect_async(req).await
    }

    async fn stop(mut self) {
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
        self.runtime.shutdown().await;
        let _ = self.stop.take().unwrap().send(());
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every binary message until the server closes (30 s at most): the
/// output, each message still with its channel byte, then the status on
/// channel 3, decoded; and the close code.
async fn until_close(ws: &mut Socket) -> (Vec<Vec<u8>>, serde_json::Value, Option<u16>) {
    use tungstenite::Message;
    let mut frames = Vec::new();
    let mut code = None;
    let read = async {
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Binary(b) => frames.push(b.to_vec()),
                Message::Close(frame) => {
                    code = frame.map(|f| u16::from(f.code));
                    break;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server closes within 30 s");
    let status = frames.pop().expect("a status message");
    assert_eq!(status[0], 3, "the status comes last, on channel 3");
    let status = serde_json::from_slice(&status[1..]).unwrap();
    (frames, status, code)
}

/// The data of `frames`, each of which must be on `channel`.
fn on_channel(channel: u8, frames: &[Vec<u8>]) -> String {
    let data: Vec<u8> = frames
        .iter()
        .flat_map(|f| {
            assert_eq!(f[0], channel, "output on channel {channel} only");
            f[1..].to_vec()
        })
        .collect();
    String::from_utf8_lossy(&data).into_owned()
}

// ANCHOR: kubectl_exec_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_and_cp_on_the_process_runtime() {
    let s = Setup::start().await;

    // Output, the container's environment, the exit code.
    let (out, err, code) = s
        .kubectl(
            &[
                "exec",
                "web",
                "--",
                "/bin/sh",
                "-c",
                "echo hi; echo $GREETING; echo oops >&2",
            ],
            None,
        )
        .await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("hi\nhello from the pod\n", "oops\n", 0)
    );
    let (_, err, code) = s
        .kubectl(&["exec", "web", "--", "/bin/sh", "-c", "exit 3"], None)
        .await;
    assert_eq!(code, 3, "kubectl exits with the command's code");
    assert_eq!(err, "command terminated with exit code 3\n");

    // stdin, closed at its end (v5's close signal): cat sees EOF and exits.
    let (out, _, code) = s
        .kubectl(&["exec", "-i", "web", "--", "cat"], Some("x\ny\n"))
        .await;
    assert_eq!((out.as_str(), code), ("x\ny\n", 0));

    // runc's words and Docker's codes for a command that cannot run.
    let (_, err, code) = s
        .kubectl(&["exec", "web", "--", "no-such-program"], None)
        .await;
    assert_eq!(code, 127);
    assert!(
        err.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
    let plain = s.dir.path().join("not-executable");
    std::fs::write(&plain, "data").unwrap();
    let plain = plain.to_str().unwrap();
    let (_, err, code) = s.kubectl(&["exec", "web", "--", plain], None).await;
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains(&format!("exec: \"{plain}\": permission denied")),
        "{err}"
    );

    // A container the pod does not have: the API server's 400.
    let (_, err, code) = s
        .kubectl(&["exec", "web", "-c", "nope", "--", "true"], None)
        .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error from server (BadRequest): container nope is not valid for pod web\n"
    );

    // `kubectl cp` both ways: tar through exec (the host's tar).
    let local = s.dir.path().join("payload");
    std::fs::write(&local, "payload\n").unwrap();
    let remote = s.dir.path().join("in-pod");
    let (_, err, code) = s
        .kubectl(
            &[
                "cp",
                local.to_str().unwrap(),
                &format!("web:{}", remote.display()),
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "payload\n");
    let back = s.dir.path().join("back");
    let (_, err, code) = s
        .kubectl(
            &[
                "cp",
                &format!("web:{}", remote.display()),
                back.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "payload\n");

    // Once more with the dispatcher's kubectl, which picks a client by the
    // server's minor version.
    if Path::new("/usr/bin/kubectl").exists() {
        let (out, err, code) = s
            .kubectl_with(
                "/usr/bin/kubectl",
                &["exec", "web", "--", "/bin/sh", "-c", "echo hi; exit 3"],
                None,
            )
            .await;
        assert_eq!((out.as_str(), code), ("hi\n", 3), "{err}");
    }
    s.stop().await;
}
// ANCHOR_END: kubectl_exec_test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_speaks_the_same_protocol() {
    let s = Setup::start().await;
    let pods = s.http_pods();

    // stdout and stderr on their channels, then a Success status.
    let mut p = pods
        .exec(
            "web",
            ["/bin/sh", "-c", "echo out; echo err >&2"],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = p.stdout().unwrap();
    let mut stderr = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    let (r1, r2) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    r1.unwrap();
    r2.unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let status = status.await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    p.join().await.unwrap();

    // A non-zero exit: the NonZeroExitCode status with the code as a cause.
    let mut p = pods
        .exec("web", ["/bin/sh", "-c", "exit 7"], &AttachParams::default())
        .await
        .unwrap();
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (Some("ExitCode"), Some("7"))
    );

    // stdin, then v5's close: `wc -c` counts and exits.
    let mut p = pods
        .exec("web", ["wc", "-c"], &AttachParams::default().stdin(true))
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    stdin.write_all(b"12345").await.unwrap();
    // The end of stdin (a dropped half of kube-rs's pipe is not an EOF).
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    assert_eq!(out.trim(), "5");
    p.join().await.unwrap();

    // A stopped kubelet: the status says so, as a refused connection.
    s.api.unregister_kubelet("node-1");
    let mut p = pods
        .exec("web", ["true"], &AttachParams::default())
        .await
        .unwrap();
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    assert_eq!(
        status.message.as_deref(),
        Some(
            "Internal error occurred: unable to upgrade connection: \
             dial tcp node-1:10250: connect: connection refused"
        )
    );
    s.stop().await;
}

// ANCHOR: raw_frames_test
/// The channel bytes themselves, with a bare WebSocket client: the
/// subprotocol answer, stdout on channel 1, resize accepted on channel 4,
/// v5's `[255, 0]` closing stdin, the status on channel 3, then a close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_bytes_on_the_wire() {
    use tungstenite::Message;
    let s = Setup::start().await;
    let cat = "command=cat&stdin=true&stdout=true";
    let (mut ws, resp) = s
        .exec_socket(cat, "v5.channel.k8s.io, v4.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v5.channel.k8s.io"
    );
    ws.send(Message::binary(
        b"\x04{\"Width\":100,\"Height\":30}".to_vec(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(b"\x00ping".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let (output, status, close) = until_close(&mut ws).await;
    assert_eq!(on_channel(1, &output), "ping");
    assert_eq!(status, json!({"metadata": {}, "status": "Success"}));
    assert_eq!(close, Some(1000), "a normal close");

    // v5 and v4 word a non-zero exit as their upstream roads do (the API
    // server's translator, the kubelet); the exit code is the same.
    for (protocol, message) in [
        ("v5.channel.k8s.io", "command terminated with exit code 3"),
        (
            "v4.channel.k8s.io",
            "error executing command [sh -c exit 3], exit code 3",
        ),
    ] {
        let exit3 = "command=sh&command=-c&command=exit%203&stdout=true";
        let (mut ws, _) = s.exec_socket(exit3, protocol).await.unwrap();
        let (_, status, _) = until_close(&mut ws).await;
        assert_eq!(
            status["message"],
            format!("command terminated with non-zero exit code: {message}")
        );
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }

    // A protocol this server does not speak: refused before the upgrade.
    let err = s
        .exec_socket(cat, "base64.channel.k8s.io")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    s.stop().await;
}
// ANCHOR_END: raw_frames_test

// ANCHOR: tty_test
/// `kubectl exec -it` without a terminal to drive kubectl from: the same
/// requests through kube-rs (`AttachParams::interactive_tty()`) and as raw
/// frames. The command gets a terminal (`tty` names a `/dev/pts/N`), the
/// size the client sends on channel 4 (`stty size`), one output stream,
/// and its exit code on channel 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_through_kube_rs_and_raw_frames() {
    use kube::api::TerminalSize;
    let s = Setup::start().await;
    let pods = s.http_pods();
    let mut p = pods
        .exec("web", ["/bin/sh"], &AttachParams::interactive_tty())
        .await
        .unwrap();
    assert!(p.stderr().is_none(), "a terminal has one output stream");
    let mut size = p.terminal_size().unwrap();
    let mut stdin = p.stdin().unwrap();
    let mut stdout = p.stdout().unwrap();
    let status = p.take_status().unwrap();
    size.send(TerminalSize {
        width: 100,
        height: 30,
    })
    .await
    .unwrap();
    stdin.write_all(b"tty\n").await.unwrap();
    let seen = read_until(&mut stdout, "/dev/pts/").await;
    assert!(seen.contains("tty"), "the terminal echoes: {seen:?}");
    // kube-rs sends the size and the keystrokes from one task in no fixed
    // order: ask until the answer shows the size.
    let mut seen = String::new();
    for _ in 0..30 {
        stdin.write_all(b"stty size\n").await.unwrap();
        seen += &read_for(&mut stdout, Duration::from_secs(1)).await;
        if seen.contains("30 100") {
            break;
        }
    }
    assert!(seen.contains("30 100"), "{seen:?}");
    stdin.write_all(b"exit 5\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .expect("a status")
        .unwrap();
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.message.as_deref(), Some("5"));

    // The same as frames: resize on channel 4 before the keystrokes on 0.
    use tungstenite::Message;
    let shell = "command=/bin/sh&stdin=true&stdout=true&tty=true";
    let (mut ws, _) = s.exec_socket(shell, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::binary(
        b"\x04{\"Width\":132,\"Height\":43}".to_vec(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(b"\x00stty size; exit 7\n".to_vec()))
        .await
        .unwrap();
    let (output, status, _) = until_close(&mut ws).await;
    // A terminal writes only to stdout's channel.
    let out = on_channel(1, &output);
    assert!(out.contains("43 132\r\n"), "{out:?}");
    assert_eq!(status["details"]["causes"][0]["message"], "7");
    s.stop().await;
}
// ANCHOR_END: tty_test

/// The real `kubectl exec -it`, given a terminal of its own: the test
/// opens a pseudo-terminal of 40 rows × 120 columns and runs kubectl on it,
/// as a shell runs it in a terminal window. kubectl sees a terminal, puts it
/// in raw mode, sends its size on channel 4 and every keystroke on channel
/// 0; the shell in the pod answers on a terminal of the same size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_it_on_a_terminal() {
    let s = Setup::start().await;
    let (pty, pts) = pty_process::open().unwrap();
    pty.resize(pty_process::Size::new(40, 120)).unwrap();
    let mut kubectl = pty_process::Command::new(crate::kubectl())
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache"))
        .args(["exec", "-it", "web", "--", "/bin/sh"])
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .spawn(pts)
        .unwrap();
    let (mut screen, mut keyboard) = pty.into_split();
    keyboard.write_all(b"tty\r").await.unwrap();
    read_until(&mut screen, "/dev/pts/").await;
    // kubectl sends its size and the first keystrokes concurrently: ask
    // until the shell sees the size.
    let mut seen = String::new();
    for _ in 0..30 {
        keyboard.write_all(b"stty size\r").await.unwrap();
        seen += &read_for(&mut screen, Duration::from_secs(1)).await;
        if seen.contains("40 120") {
            break;
        }
    }
    assert!(seen.contains("40 120"), "{seen:?}");
    keyboard.write_all(b"exit 4\r").await.unwrap();
    read_until(&mut screen, "command terminated with exit code 4").await;
    let status = tokio::time::timeout(Duration::from_secs(30), kubectl.wait())
        .await
        .expect("kubectl exits")
        .unwrap();
    assert_eq!(status.code(), Some(4));
    s.stop().await;
}

/// Read until `want` shows up (30 s at most); all that was read.
pub(crate) async fn read_until(r: &mut (impl AsyncReadExt + Unpin), want: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !seen.contains(want) {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    assert!(seen.contains(want), "no {want:?} within 30 s: {seen:?}");
    seen
}

/// What arrives within `period`.
async fn read_for(r: &mut (impl AsyncReadExt + Unpin), period: Duration) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(period, async {
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

// ANCHOR: attach_test
/// `kubectl attach`: the container's own output from the moment of
/// attaching — here the line the demo-app logs for each `GET /`, sent to
/// the pod's address while attached — through the real kubectl and through
/// kube-rs's `Api::<Pod>::attach`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_through_kubectl_and_kube_rs() {
    let s = Setup::start().await;
    let ip = s
        .pods()
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let url = format!("http://{ip}:{}/", s.port);
    // Requests to the pod until the attached client shows one.
    let poke = |url: String| async move {
        loop {
            let _ = reqwest::get(&url).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let mut kubectl = s
        .kubectl_command(&crate::kubectl())
        .args(["attach", "web", "-c", "app"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    // The app logs to its stderr, and kubectl writes the container's
    // stderr to its own.
    let mut err = kubectl.stderr.take().unwrap();
    let seen = tokio::select! {
        seen = read_until(&mut err, "GET /") => seen,
        _ = poke(url.clone()) => unreachable!(),
    };
    assert!(
        !seen.contains("demo-app listening"),
        "only what comes after attaching: {seen}"
    );
    kubectl.kill().await.unwrap();

    let mut p = s
        .http_pods()
        .attach(
            "web",
            &AttachParams::default()
                .container("app")
                .stdout(true)
                .stderr(true),
        )
        .await
        .unwrap();
    let (mut stdout, mut stderr) = (p.stdout().unwrap(), p.stderr().unwrap());
    let seen = tokio::select! {
        seen = read_until(&mut stderr, "GET /") => seen,
        _ = poke(url) => unreachable!(),
    };
    assert!(seen.contains("INFO demo_app: GET / pod=web"), "{seen}");
    // Keep reading, so the app's last lines do not fill kube-rs's buffers.
    tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
    tokio::spawn(async move { tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await });
    // The container exits (the pod is deleted): the attach ends with it,
    // successfully, after the app's last words.
    let status = p.take_status().unwrap();
    s.pods().delete("web", &Default::default()).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), status)
        .await
        .expect("the attach ended with the container")
        .unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    s.stop().await;
}
// ANCHOR_END: attach_test
