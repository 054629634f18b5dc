//! What the API server asks of a node's kubelet directly, not through
//! objects: a container's logs (and, as the labs grow, exec, attach and
//! port-forward). A real API server opens an HTTPS connection to the kubelet
//! (`https://<node>:10250/containerLogs/...`); in the labs every kubelet runs
//! in the API server's process and registers an implementation of these
//! traits instead. The traits live here, between the two, so that neither
//! the kubelet imports the API server nor the API server the kubelet.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// What `kubectl logs` asked for (`PodLogOptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `--previous`: the instance before the current one.
    pub previous: bool,
    /// `-f`: keep the response open and stream new lines until the
    /// container exits.
    pub follow: bool,
    /// `--tail=N`.
    pub tail_lines: Option<usize>,
    /// `--timestamps`: each line starts with its RFC 3339 time.
    pub timestamps: bool,
}

/// The lines of a log, each ending in `\n`.
pub type LogStream = BoxStream<'static, Bytes>;

/// The kubelet's log endpoint, as the API server reaches it. An error is a
/// message for a 400 answer ("container \"app\" in pod \"web\" is waiting to
/// start: ContainerCreating"), as the kubelet's own errors come back.
pub trait NodeLogs: Send + Sync + 'static {
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<LogStream, String>>;

    /// `kubectl port-forward`: a connection to `port` of the pod, opened
    /// from the node (see [`PortForwardRequest`]). An error is the text the
    /// kubelet writes on the port-forward error stream.
    fn port_forward(
        &self,
        req: PortForwardRequest,
    ) -> BoxFuture<'static, Result<tokio::net::TcpStream, String>>;
}

/// One connection of a port-forward. Upstream, the kubelet's streaming
/// server hands the CRI runtime's `PortForward(sandbox, port, stream)` a
/// stream for each connection and the runtime connects inside the pod's
/// network namespace; here the pod's network is its own loopback address,
/// so the node dials `pod IP:port`. The SPDY or WebSocket framing around
/// the bytes is the API server's ([`crate::machinery::spdy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub namespace: String,
    pub pod: String,
    /// The pod's UID: which sandbox, should a pod of the same name have
    /// been recreated meanwhile.
    pub uid: String,
    pub port: u16,
}
