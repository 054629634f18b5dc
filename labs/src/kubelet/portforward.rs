//! The node's half of `kubectl port-forward`: open a connection to a port of
//! one of this node's pods.
//!
//! Upstream, the kubelet's streaming server accepts the port-forward
//! streams and calls the CRI runtime's `PortForward(sandbox, port, stream)`;
//! containerd then enters the pod's network namespace and dials
//! `localhost:port` there, so a forward reaches a process that listens only
//! on the pod's loopback, and a port no container declared. Here a pod's
//! network is its own loopback address (`127.0.1.x`), so the node dials
//! `pod IP:port` — the same socket the process listens on. (On the Docker
//! runtime only the ports the pod declares are published on that address;
//! another port answers "connection refused", where a real node would
//! reach it.)
//!
//! A failure is reported as upstream's kubelet words it on the error
//! stream: `error forwarding port 9999 to pod <sandbox id>, uid : …`. The
//! `uid` is empty upstream too: the CRI streaming server knows the sandbox,
//! not the pod.

use std::io;

use tokio::net::TcpStream;

use super::runtime::Runtime;
use crate::machinery::node_api::PortForwardRequest;

// ANCHOR: dial
/// Connects to `req.port` of the pod's sandbox (the CRI's `PortForward`).
pub(super) async fn dial<R: Runtime>(
    runtime: &R,
    req: &PortForwardRequest,
) -> Result<TcpStream, String> {
    let port = req.port;
    let sandbox = runtime
        .list_pod_sandboxes()
        .await
        .into_iter()
        .find(|s| s.config.uid == req.uid)
        .ok_or_else(|| {
            // The pod has no sandbox (yet, or any more) on this node.
            format!(
                "error forwarding port {port} to pod {}/{}, uid {}: pod sandbox not found",
                req.namespace, req.pod, req.uid
            )
        })?;
    let fail = |why: String| {
        format!(
            "error forwarding port {port} to pod {}, uid : failed to connect to \
             {}:{port} inside the pod's network: {why}",
            sandbox.id, sandbox.ip
        )
    };
    if runtime.name() == "simulated" {
        // Nothing listens: a simulated container is a record, not a process.
        return Err(fail("the simulated runtime runs no processes".into()));
    }
    TcpStream::connect((sandbox.ip, port))
        .await
        .map_err(|e| fail(go_dial_error(&e, &format!("{}:{port}", sandbox.ip))))
}
// ANCHOR_END: dial

/// A connect error as Go's `net.Dial` prints it (`dial tcp4 …: connect:
/// connection refused`), which is what users search for.
fn go_dial_error(e: &io::Error, addr: &str) -> String {
    let why = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::TimedOut => "connection timed out".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp4 {addr}: connect: {why}")
}
