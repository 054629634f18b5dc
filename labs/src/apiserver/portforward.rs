//! `/api/v1/namespaces/{ns}/pods/{name}/portforward`: `kubectl port-forward`.
//!
//! kubectl listens on a local port; for every connection it accepts it
//! opens a *stream* to the API server, which relays it to the kubelet of
//! the pod's node, which connects to the port inside the pod. All the
//! connections of one `kubectl port-forward` share one upgraded HTTP
//! connection, so the bytes need a multiplexing protocol. Three are spoken
//! here, chosen as upstream chooses them, by the upgrade the client asks for:
//!
//! | client asks | protocol | who |
//! |---|---|---|
//! | `Upgrade: websocket`, `Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io` | SPDY/3.1 frames inside WebSocket binary messages (KEP-4006) | kubectl ≥ 1.31 |
//! | `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io` | SPDY/3.1 on the raw connection | older kubectl, and the fallback |
//! | `Upgrade: websocket`, `Sec-WebSocket-Protocol: v4.channel.k8s.io` | one WebSocket channel pair per `ports=` entry | kube-rs, client-go's WebSocket client |
//!
//! **SPDY** ([`spdy_session`]): per local connection kubectl opens two SPDY
//! streams with headers `streamtype: error|data`, `port: 8080` and
//! `requestid: N` (the pair's id). Bytes on the data stream go to the pod's
//! port and back; a failure is written as text on the error stream. Either
//! side closing half-closes the stream (`FLAG_FIN`).
//!
//! **WebSocket channels** ([`channel_session`]): the ports are fixed by the
//! query (`ports=8080,9090`); port *i* has data channel `2i` and error
//! channel `2i+1`, every binary message starts with its channel byte, and
//! the server's first message on each channel carries the port number
//! (two bytes, little-endian). One connection per port per WebSocket.
//!
//! Where upstream differs: its API server does not read these protocols at
//! all. It proxies the upgraded connection to the kubelet's streaming
//! server (after unwrapping the WebSocket tunnel), and the kubelet speaks
//! SPDY or channels. Our kubelets run in this process and have no HTTP
//! server, so the API server terminates the protocol and asks the pod's
//! kubelet for one plain connection per stream
//! ([`NodeLogs::port_forward`](crate::machinery::node_api::NodeLogs::port_forward)).
//! The bytes on the wire, and what kubectl sees, are the same.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Sink, SinkExt, StreamExt};
use http::{HeaderValue, Method, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ApiServer;
use super::logs::parent_pod;
use super::request::parse_path;
use super::status::ApiError;
use crate::machinery::node_api::{NodeLogs, PortForwardRequest};
use crate::machinery::remotecommand::encode;
use crate::machinery::spdy::{self, Decoder, Encoder, FLAG_FIN, Frame};

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket (KEP-4006).
pub const SPDY_WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The SPDY stream protocol of port-forward (`X-Stream-Protocol-Version`).
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket channel protocol (upstream also knows a base64 variant
/// for browsers, which no client here uses).
pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

/// Where a SPDY session writes its bytes: a WebSocket or a raw connection.
type ByteSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// How many bytes a read from the pod sends at most in one frame.
const CHUNK: usize = 32 * 1024;

/// The pod a forward goes to, and the kubelet that reaches it.
#[derive(Clone)]
struct Target {
    kubelet: Arc<dyn NodeLogs>,
    namespace: String,
    pod: String,
    uid: String,
}

impl Target {
    fn request(&self, port: u16) -> PortForwardRequest {
        PortForwardRequest {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            uid: self.uid.clone(),
            port,
        }
    }
}

// ANCHOR: handler
/// Answers `GET|POST pods/{name}/portforward`: find the pod's kubelet, then
/// upgrade the connection to the protocol the client asked for.
pub async fn portforward(
    State(api): State<ApiServer>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    match upgrade(api, namespace, name, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn upgrade(
    api: ApiServer,
    namespace: String,
    name: String,
    req: Request,
) -> Result<Response, ApiError> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(req.method().as_str()));
    }
    let target = resolve(&api, &namespace, &name)?;
    let upgrade_to = header_str(&req, header::UPGRADE).to_ascii_lowercase();
    if upgrade_to == "websocket" {
        let ports = query_ports(req.uri().query());
        let (mut parts, _) = req.into_parts();
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("unable to upgrade connection: {e}")))?
            .protocols([SPDY_WEBSOCKET_PROTOCOL, CHANNEL_PROTOCOL]);
        let protocol = ws
            .selected_protocol()
            .and_then(|p| p.to_str().ok())
            .map(str::to_string);
        return match protocol.as_deref() {
            Some(SPDY_WEBSOCKET_PROTOCOL) => Ok(ws.on_upgrade(move |socket| {
                let (sink, stream) = socket.split();
                let incoming = stream.filter_map(|m| async move {
                    match m {
                        Ok(Message::Binary(b)) => Some(b),
                        _ => None,
                    }
                });
                let outgoing = sink
                    .sink_map_err(io::Error::other)
                    .with(|b: Bytes| async move { Ok::<_, io::Error>(Message::Binary(b)) });
                spdy_session(incoming.boxed(), Box::pin(outgoing), target)
            })),
            Some(CHANNEL_PROTOCOL) => {
                let ports = ports?;
                Ok(ws.on_upgrade(move |socket| channel_session(socket, target, ports)))
            }
            _ => Err(ApiError::bad_request(format!(
                "unable to upgrade: none of the requested WebSocket subprotocols is \
                 supported: [{SPDY_WEBSOCKET_PROTOCOL} {CHANNEL_PROTOCOL}]"
            ))),
        };
    }
    if upgrade_to == "spdy/3.1" {
        return raw_spdy(req, target);
    }
    Err(ApiError::bad_request("Upgrade request required"))
}
// ANCHOR_END: handler

/// Reads the pod (a plain GET, so a missing pod is the usual 404) and finds
/// its node's kubelet.
fn resolve(api: &ApiServer, namespace: &str, name: &str) -> Result<Target, ApiError> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
    let target = parse_path(&path).ok_or_else(ApiError::no_route)?;
    let pod = parent_pod(api, &target)?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if node.is_empty() {
        // Upstream's words (`PortForwardLocation` in the pod registry).
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let kubelet = api.kubelet(node).ok_or_else(|| {
        ApiError::internal(format!(
            "error dialing backend: dial tcp {node}:10250: connect: connection refused"
        ))
    })?;
    Ok(Target {
        kubelet,
        namespace: namespace.to_string(),
        pod: name.to_string(),
        uid: pod["metadata"]["uid"].as_str().unwrap_or("").to_string(),
    })
}

fn header_str(req: &Request, name: header::HeaderName) -> String {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ports=8080,9090` or `ports=8080&ports=9090` (both forms upstream
/// accepts). Only the WebSocket channel protocol needs them up front.
fn query_ports(query: Option<&str>) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                // Upstream's validation (`portforward.NewV4Options`).
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unable to parse \"{p}\" as a port: invalid port"
                    )));
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request("at least one port must be specified"));
    }
    Ok(ports)
}

/// `Upgrade: SPDY/3.1`: answer 101 with the agreed stream protocol, then
/// speak SPDY on the bare connection hyper hands over.
fn raw_spdy(mut req: Request, target: Target) -> Result<Response, ApiError> {
    let offered = header_str(
        &req,
        http::HeaderName::from_static("x-stream-protocol-version"),
    );
    if !offered
        .split(',')
        .any(|p| p.trim() == PORT_FORWARD_PROTOCOL)
    {
        // Upstream's negotiation failure (`httpstream.Handshake`).
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{offered}], \
                 server accepts [{PORT_FORWARD_PROTOCOL}]"
            ),
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (rd, wr) = tokio::io::split(io);
        let incoming = tokio_util::io::ReaderStream::new(rd)
            .take_while(|r| std::future::ready(r.is_ok()))
            .filter_map(|r| std::future::ready(r.ok()));
        let outgoing = futures::sink::unfold(wr, |mut wr, b: Bytes| async move {
            wr.write_all(&b).await?;
            wr.flush().await?;
            Ok::<_, std::io::Error>(wr)
        });
        spdy_session(incoming.boxed(), Box::pin(outgoing), target).await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PORT_FORWARD_PROTOCOL),
    );
    Ok(resp)
}

/// One pair of SPDY streams kubectl opened for one local connection.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: String,
    /// The client's bytes for the pod, until the forward task takes them.
    from_client: Option<mpsc::Receiver<Bytes>>,
    task: Option<JoinHandle<()>>,
}

// ANCHOR: spdy_session
/// Serves one SPDY port-forward connection: frames in from `incoming`,
/// frames out through a single writer (which owns the header compressor,
/// so frames are encoded in the order they are sent).
async fn spdy_session(mut incoming: BoxStream<'static, Bytes>, outgoing: ByteSink, target: Target) {
    let (out, rx) = mpsc::channel::<Frame>(256);
    let writer = tokio::spawn(write_frames(rx, outgoing));
    let mut decoder = Decoder::default();
    // requestid → its pair; stream id → (requestid, sender to the pod).
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut to_pod: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut request_of: HashMap<u32, String> = HashMap::new();
    'conn: while let Some(bytes) = incoming.next().await {
        decoder.push(&bytes);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY input");
                    let _ = out
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: spdy::status::PROTOCOL_ERROR,
                        })
                        .await;
                    break 'conn;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    // Accept every stream (spdystream's server does the
                    // same: an empty SYN_REPLY).
                    let _ = out
                        .send(Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: vec![],
                        })
                        .await;
                    let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                    // Old clients sent no requestid: the kubelet pairs the
                    // data stream with the error stream opened just before.
                    let request = spdy::header(&headers, "requestid")
                        .map(str::to_string)
                        .unwrap_or_else(|| match kind {
                            "data" => stream_id.saturating_sub(2).to_string(),
                            _ => stream_id.to_string(),
                        });
                    let pair = pairs.entry(request.clone()).or_default();
                    pair.port = spdy::header(&headers, "port").unwrap_or("").to_string();
                    match kind {
                        "error" => pair.error = Some(stream_id),
                        "data" => {
                            let (tx, rx) = mpsc::channel(64);
                            pair.data = Some(stream_id);
                            pair.from_client = Some(rx);
                            to_pod.insert(stream_id, tx);
                        }
                        other => {
                            tracing::debug!(streamtype = other, "port-forward: unknown stream");
                            let _ = out
                                .send(Frame::RstStream {
                                    stream_id,
                                    status: spdy::status::PROTOCOL_ERROR,
                                })
                                .await;
                            continue;
                        }
                    }
                    request_of.insert(stream_id, request);
                    if let (Some(error), Some(data), None) = (pair.error, pair.data, &pair.task) {
                        let rx = pair.from_client.take().expect("set with data");
                        pair.task = Some(tokio::spawn(forward_spdy(
                            target.clone(),
                            pair.port.clone(),
                            error,
                            data,
                            rx,
                            out.clone(),
                        )));
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    if let Some(tx) = to_pod.get(&stream_id)
                        && !data.is_empty()
                    {
                        // A slow pod slows this connection down: the
                        // backpressure spdystream would give.
                        let _ = tx.send(data).await;
                    }
                    if flags & FLAG_FIN != 0 {
                        // The client's half-close: end of input for the pod.
                        to_pod.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    // kubectl resets both streams once a connection is done
                    // (`RemoveStreams`), or to abort one.
                    to_pod.remove(&stream_id);
                    // Once both streams of a pair are reset, the pair is done.
                    if let Some(request) = request_of.remove(&stream_id)
                        && let Some(pair) = pairs.get(&request)
                        && [pair.error, pair.data]
                            .iter()
                            .flatten()
                            .all(|id| !request_of.contains_key(id))
                        && let Some(task) = pairs.remove(&request).and_then(|p| p.task)
                    {
                        task.abort();
                    }
                }
                // kubectl's keep-alive: answer with the same id.
                Frame::Ping { id } => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => break 'conn,
                // No flow control: kubectl's spdystream does not do it
                // either, so SETTINGS and WINDOW_UPDATE change nothing.
                Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Headers { .. }
                | Frame::SynReply { .. } => {}
            }
        }
    }
    for (_, pair) in pairs {
        if let Some(task) = pair.task {
            task.abort();
        }
    }
    drop(out);
    let _ = writer.await;
}
// ANCHOR_END: spdy_session

/// The single writer: encode frames in order, batching what is queued.
async fn write_frames(mut rx: mpsc::Receiver<Frame>, mut outgoing: ByteSink) {
    let mut encoder = Encoder::default();
    while let Some(frame) = rx.recv().await {
        let mut buf = BytesMut::new();
        encoder.encode(&frame, &mut buf);
        while buf.len() < CHUNK {
            match rx.try_recv() {
                Ok(f) => encoder.encode(&f, &mut buf),
                Err(_) => break,
            }
        }
        if outgoing.send(buf.freeze()).await.is_err() {
            return;
        }
    }
    let _ = outgoing.close().await;
}

// ANCHOR: forward_spdy
/// One local connection of kubectl: dial the pod through its kubelet and
/// copy both ways. Ends when the pod closes its side (as containerd's copy
/// does), then half-closes both streams, which is what kubectl waits for.
async fn forward_spdy(
    target: Target,
    port: String,
    error: u32,
    data: u32,
    from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
) {
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    // Upstream's kubelet ignores a port header that does not parse and
    // dials port 0, which fails like any port nothing listens on.
    let port = port.parse::<u16>().unwrap_or(0);
    match target.kubelet.port_forward(target.request(port)).await {
        Err(why) => {
            let _ = out
                .send(Frame::Data {
                    stream_id: error,
                    flags: 0,
                    data: Bytes::from(why),
                })
                .await;
        }
        Ok(conn) => {
            copy(
                conn,
                from_client,
                |chunk| Frame::Data {
                    stream_id: data,
                    flags: 0,
                    data: chunk,
                },
                &out,
            )
            .await;
        }
    }
    let _ = out.send(fin(data)).await;
    let _ = out.send(fin(error)).await;
}
// ANCHOR_END: forward_spdy

/// Copy `from_client` into the pod connection and the pod's bytes out as
/// `wrap(chunk)`, until the pod closes (or fails).
async fn copy<M>(
    conn: tokio::net::TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    wrap: impl Fn(Bytes) -> M,
    out: &mpsc::Sender<M>,
) {
    let (mut rd, mut wr) = conn.into_split();
    let up = tokio::spawn(async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        // The client half-closed: so does the pod's input (a TCP FIN).
        let _ = wr.shutdown().await;
        // Keep the write half (and so the socket) open until aborted.
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    up.abort();
}

// ANCHOR: channel_session
/// Serves the WebSocket channel protocol (kube-rs): one connection per
/// port, dialled at once; the WebSocket closes when every port is done.
async fn channel_session(socket: WebSocket, target: Target, ports: Vec<u16>) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut rx) = mpsc::channel::<Message>(256);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let message = |channel: u8, data: &[u8]| Message::Binary(encode(channel, data).into());
    // Every channel's first message names its port.
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            let _ = out.send(message(ch, &port.to_le_bytes())).await;
        }
    }
    let (done_tx, mut done_rx) = mpsc::channel::<usize>(ports.len());
    let mut to_pod = Vec::new();
    let mut tasks = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (tx, from_client) = mpsc::channel::<Bytes>(64);
        to_pod.push(Some(tx));
        let (target, out, done) = (target.clone(), out.clone(), done_tx.clone());
        tasks.push(tokio::spawn(async move {
            let (data, error) = (2 * i as u8, 2 * i as u8 + 1);
            match target.kubelet.port_forward(target.request(port)).await {
                Err(why) => {
                    let _ = out.send(message(error, why.as_bytes())).await;
                }
                Ok(conn) => copy(conn, from_client, |b| message(data, &b), &out).await,
            }
            let _ = done.send(i).await;
        }));
    }
    drop(done_tx);
    let mut open = ports.len();
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    let ch = b[0] as usize;
                    // Only data channels carry the client's bytes.
                    if ch.is_multiple_of(2)
                        && let Some(Some(tx)) = to_pod.get(ch / 2)
                    {
                        let _ = tx.send(b.slice(1..)).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(i) = done_rx.recv() => {
                to_pod[i] = None;
                open -= 1;
                if open == 0 {
                    break;
                }
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    let _ = out.send(Message::Close(None)).await;
    drop(out);
    let _ = writer.await;
}
// ANCHOR_END: channel_session

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_in_both_query_forms() {
        assert_eq!(query_ports(Some("ports=80%2C1234")).unwrap(), [80, 1234]);
        assert_eq!(query_ports(Some("ports=80&ports=90")).unwrap(), [80, 90]);
        assert!(query_ports(Some("ports=http")).is_err());
        assert!(query_ports(None).is_err());
    }
}
