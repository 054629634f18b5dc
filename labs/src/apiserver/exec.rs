//! `pods/{name}/exec` and `pods/{name}/attach`: `kubectl exec`, `kubectl cp`
//! (which is `tar` through exec) and `kubectl attach`.
//!
//! The request is an HTTP upgrade: the API server checks it as it checks
//! any request (the pod exists, the container is one of its containers, the
//! pod has a node), switches the connection to WebSocket, and from then on
//! relays the [channel protocol](crate::machinery::remotecommand) between
//! the client and the kubelet of the pod's node. A real API server relays to
//! the kubelet over a second connection (`https://<node>:10250/exec/…`, SPDY
//! since the API server 1.30 translates WebSocket clients); here the
//! kubelet's end is in-process ([`NodeLogs::exec`]) and hands back plain
//! channels.
//!
//! What fails before the upgrade fails as an ordinary request (kubectl
//! prints `Error from server (BadRequest): …`); what fails after — the
//! kubelet cannot find a running container, a command cannot run — arrives
//! as the `metav1.Status` on channel 3, as from the upstream translator.

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Method, StatusCode, header};
use tokio::sync::mpsc;

use super::ApiServer;
use super::logs::{parent_pod, validate_container};
use super::request::{Query, Target};
use super::resources::Subresource;
use super::status::ApiError;
use crate::machinery::remotecommand::{
    self, ClientFrame, ExecSession, Outcome, STDERR, STDIN, STDOUT, StreamOptions, StreamRequest,
    Version,
};

// ANCHOR: pod_exec
/// Answers a `pods/{name}/exec` or `pods/{name}/attach` request.
pub async fn pod_exec(
    api: &ApiServer,
    mut parts: http::request::Parts,
    target: Target,
) -> Response {
    if parts.method != Method::GET && parts.method != Method::POST {
        return ApiError::method_not_allowed(parts.method.as_str()).into_response();
    }
    let (req, node) = match check(api, &parts, &target) {
        Ok(checked) => checked,
        Err(e) => return e.into_response(),
    };
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        // kubectl before 1.30, or a newer one whose WebSocket attempt failed.
        return ApiError::bad_request(
            "this API server streams exec and attach over WebSocket only \
             (v5.channel.k8s.io, kubectl 1.30 and later), not SPDY/3.1",
        )
        .into_response();
    }
    if upgrade != "websocket" {
        return ApiError::bad_request("Upgrade request required").into_response();
    }
    let offered = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let version = match remotecommand::negotiate(offered.as_deref()) {
        Ok(v) => v,
        // Upstream answers a plain-text 400 here.
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    // The WebSocket handshake is a GET; kubectl's is, kube-rs's is, but the
    // API allows POST for the same upgrade.
    parts.method = Method::GET;
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let ws = if offered.is_some() {
        ws.protocols([version.name()])
    } else {
        ws
    };
    let kubelet = api.kubelet(&node);
    ws.on_upgrade(move |socket| async move {
        let session = match kubelet {
            Some(k) => k.exec(req).await,
            // What the API server meets when the kubelet's port does not answer.
            None => Err(format!(
                "dial tcp {node}:10250: connect: connection refused"
            )),
        };
        match session {
            Ok(session) => relay(socket, version, session).await,
            Err(e) => {
                let why = format!("unable to upgrade connection: {e}");
                finish(socket, version, &Outcome::Failed(why)).await;
            }
        }
    })
}
// ANCHOR_END: pod_exec

/// The checks before the upgrade, with upstream's messages; the request for
/// the kubelet and the pod's node.
fn check(
    api: &ApiServer,
    parts: &http::request::Parts,
    target: &Target,
) -> Result<(StreamRequest, String), ApiError> {
    let pod = parent_pod(api, target)?;
    let name = target.name.clone().unwrap_or_default();
    let query = parts.uri.query().unwrap_or("");
    let flags = Query::parse(Some(query));
    // `command` repeats, one parameter per argument.
    let command: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut options = StreamOptions {
        stdin: flags.flag("stdin"),
        stdout: flags.flag("stdout"),
        stderr: flags.flag("stderr"),
        tty: flags.flag("tty"),
    };
    if !(options.stdin || options.stdout || options.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    // A terminal has one output stream (upstream drops stderr too).
    if options.tty {
        options.stderr = false;
    }
    let exec = target.subresource == Some(Subresource::Exec);
    if exec && command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let container = validate_container(&pod, flags.get("container"))?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let req = StreamRequest {
        namespace: target.namespace.clone().unwrap_or_default(),
        pod: name,
        container,
        command: exec.then_some(command),
        options,
    };
    Ok((req, node))
}

async fn recv(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

// ANCHOR: relay
/// Copy between the WebSocket and the session until the command's output
/// has ended, then send its status and close. A client that goes away
/// drops the session, which kills the command.
async fn relay(socket: WebSocket, version: Version, mut session: ExecSession) {
    let mut stdin = session.stdin.take();
    let resize = session.resize.take();
    let mut stdout = session.stdout.take();
    let mut stderr = session.stderr.take();
    let (mut to_client, mut from_client) = socket.split();
    while stdout.is_some() || stderr.is_some() {
        let out = tokio::select! {
            msg = from_client.next() => match msg {
                Some(Ok(Message::Binary(msg))) => {
                    match remotecommand::decode(version, &msg) {
                        ClientFrame::Stdin(data) => {
                            if let Some(tx) = &stdin
                                && tx.send(data).await.is_err()
                            {
                                stdin = None;
                            }
                        }
                        ClientFrame::Resize(size) => {
                            if let Some(tx) = &resize {
                                let _ = tx.try_send(size);
                            }
                        }
                        // v5: stdin is at EOF; the command reads the end.
                        ClientFrame::Close(STDIN) => stdin = None,
                        ClientFrame::Close(_) | ClientFrame::Ignored => {}
                    }
                    continue;
                }
                // Gone (or a close frame): nobody to send the output to.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue, // ping, pong, text: nothing to do
            },
            chunk = recv(&mut stdout) => match chunk {
                Some(data) => remotecommand::encode(STDOUT, &data),
                None => { stdout = None; continue; }
            },
            chunk = recv(&mut stderr) => match chunk {
                Some(data) => remotecommand::encode(STDERR, &data),
                None => { stderr = None; continue; }
            },
        };
        if to_client.send(Message::Binary(out.into())).await.is_err() {
            return;
        }
    }
    drop(stdin);
    let outcome = session.outcome.await;
    let Ok(socket) = to_client.reunite(from_client) else {
        return;
    };
    finish(socket, version, &outcome).await;
}
// ANCHOR_END: relay

/// The status on channel 3 (if this version sends one), then a normal close.
async fn finish(mut socket: WebSocket, version: Version, outcome: &Outcome) {
    if let Some(msg) = remotecommand::status_message(version, outcome) {
        let _ = socket.send(Message::Binary(msg.into())).await;
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}
