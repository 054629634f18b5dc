//! `kubectl exec` and `kubectl attach` on the wire: the **channel protocol**
//! over WebSocket, and what a kubelet hands back for one stream.
//!
//! Upstream: `k8s.io/apimachinery/pkg/util/remotecommand` (the constants),
//! `…/util/httpstream/wsstream` (the framing) and `client-go/tools/remotecommand`
//! (the client side kubectl runs).
//!
//! ## The protocol
//!
//! The client asks for `…/pods/NAME/exec?command=sh&command=-c&command=…&stdin=true&stdout=true`
//! with `Upgrade: websocket` and a list of **subprotocols** it speaks, best
//! first: kubectl ≥ 1.30 offers `v5.channel.k8s.io, v4.channel.k8s.io, …`.
//! The server answers `101 Switching Protocols` with the one it picked, and
//! from then on every WebSocket message is binary and starts with one byte,
//! the **channel**:
//!
//! | byte | channel | direction |
//! |---|---|---|
//! | 0 | stdin | client → server |
//! | 1 | stdout | server → client |
//! | 2 | stderr | server → client |
//! | 3 | error / status | server → client, once, at the end |
//! | 4 | resize (`{"Width":80,"Height":24}`) | client → server, v3 and later |
//! | 255 | close: the next byte names a channel that reached EOF | v5 only |
//!
//! The versions differ only at the edges: v1 (`channel.k8s.io`) and v2 send
//! a failure on channel 3 as plain text, v3 adds resize, v4 makes channel 3 a
//! JSON `metav1.Status` (so an exit code can travel: reason
//! `NonZeroExitCode`, a cause `ExitCode` whose message is the number), and v5
//! adds the close signal, so a client can say "stdin is done" (`echo x |
//! kubectl exec -i POD -- cat`) without closing the whole connection — before
//! v5 it could not, and lost the output still on its way.
//!
//! Older kubectl (and a fallback of the newer) speak SPDY/3.1 instead; this
//! server does not, and says so.
//!
//! ## Between the API server and the kubelet
//!
//! On a real cluster the API server proxies the upgraded connection to the
//! kubelet (`https://<node>:10250/exec/{ns}/{pod}/{container}`), which hands
//! it to the container runtime's streaming server. Here the kubelet runs in
//! the API server's process: the API server speaks the WebSocket side, and
//! the kubelet answers a [`StreamRequest`] with an [`ExecSession`] — plain
//! channels for stdin, stdout, stderr and resize, and the exit code.

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

// ANCHOR: channels
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The error/status channel: one message, at the end.
pub const STATUS: u8 = 3;
/// Terminal size changes from the client (`{"Width":…,"Height":…}`).
pub const RESIZE: u8 = 4;
/// v5: "this channel is at EOF"; the next byte names the channel.
pub const CLOSE: u8 = 255;
// ANCHOR_END: channels

/// The subprotocols this server speaks, in its own order of preference.
/// The `base64.channel.k8s.io` variants (text frames, for browsers) are left
/// out.
pub const PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// A negotiated protocol version (1 for `channel.k8s.io`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u8);

impl Version {
    pub fn name(self) -> &'static str {
        PROTOCOLS[PROTOCOLS.len() - usize::from(self.0)]
    }
    /// Channel 3 carries a JSON `metav1.Status` (v4 and later).
    pub fn status_is_json(self) -> bool {
        self.0 >= 4
    }
    /// The client may send terminal sizes (v3 and later).
    pub fn has_resize(self) -> bool {
        self.0 >= 3
    }
    /// The client may signal EOF of one channel (v5).
    pub fn has_close(self) -> bool {
        self.0 >= 5
    }
}

// ANCHOR: negotiate
/// Pick the protocol: the client's first choice that the server speaks, as
/// upstream's `wsstream` handshake does. A client that names none gets the
/// original `channel.k8s.io`. A client that names only unknown ones is
/// refused with upstream's message (a 400; kubectl then tries SPDY).
pub fn negotiate(header: Option<&str>) -> Result<Version, String> {
    let offered: Vec<&str> = header
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(Version(1));
    }
    offered
        .iter()
        .find_map(|p| PROTOCOLS.iter().position(|s| s == p))
        .map(|i| Version((PROTOCOLS.len() - i) as u8))
        .ok_or_else(|| {
            format!(
                "requested protocol(s) are not supported: [{}]; supports [{}]",
                offered.join(" "),
                PROTOCOLS.join(" ")
            )
        })
}
// ANCHOR_END: negotiate

/// One message from the client, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    Stdin(Bytes),
    Resize(TerminalSize),
    /// v5: the client will send nothing more on this channel.
    Close(u8),
    /// Anything else (an empty message, an unknown channel, a resize that
    /// does not parse): upstream ignores these, and so do we.
    Ignored,
}

/// A terminal's size in characters, as the resize channel spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

// ANCHOR: framing
/// Decode a binary message from the client.
pub fn decode(version: Version, msg: &[u8]) -> ClientFrame {
    match msg.split_first() {
        Some((&STDIN, data)) => ClientFrame::Stdin(Bytes::copy_from_slice(data)),
        Some((&RESIZE, json)) if version.has_resize() => serde_json::from_slice(json)
            .map(ClientFrame::Resize)
            .unwrap_or(ClientFrame::Ignored),
        Some((&CLOSE, [channel])) if version.has_close() => ClientFrame::Close(*channel),
        _ => ClientFrame::Ignored,
    }
}

/// A message for the client: the channel byte, then the data.
pub fn encode(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(data.len() + 1);
    msg.push(channel);
    msg.extend_from_slice(data);
    msg
}
// ANCHOR_END: framing

/// How a stream ended, as the kubelet reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and exited with this code (0: success). `command` is
    /// what upstream's message repeats (`[sh -c exit 3]`).
    Exited { code: i32, command: Vec<String> },
    /// It could not run at all, or the stream broke: an internal error.
    Failed(String),
}

// ANCHOR: status
/// The final message on channel 3, or `None` when this version sends
/// nothing (success before v4).
///
/// A non-zero exit becomes upstream's `NonZeroExitCode` Status, whose cause
/// carries the code: kubectl prints `command terminated with exit code 3`
/// and exits 3. A failure is an `InternalError` Status (500), as the API
/// server's stream translator writes one.
///
/// The message's wording tells which road the stream took upstream. A v5
/// stream is *translated* by the API server (WebSocket from the client,
/// SPDY to the kubelet: `StreamTranslatorHandler`), which wraps the exit
/// error its own SPDY client decoded. Older versions are proxied to the
/// kubelet untouched, so the message is the kubelet's, wrapping the
/// runtime's (containerd: `error executing command [sh -c exit 3], exit
/// code 3`).
pub fn status_message(version: Version, outcome: &Outcome) -> Option<Vec<u8>> {
    let status = match outcome {
        Outcome::Exited { code: 0, .. } => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited { code, command } => {
            let exit_error = if version.has_close() {
                format!("command terminated with exit code {code}")
            } else {
                format!(
                    "error executing command [{}], exit code {code}",
                    command.join(" ")
                )
            };
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {exit_error}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Outcome::Failed(why) => internal_error(why),
    };
    if version.status_is_json() {
        return Some(encode(STATUS, status.to_string().as_bytes()));
    }
    // v1–v3: only a failure is written, as text.
    let text = status["message"].as_str()?;
    Some(encode(STATUS, text.as_bytes()))
}
// ANCHOR_END: status

fn internal_error(why: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {why}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": why}]},
        "code": 500,
    })
}

/// What the API server asks of the kubelet: `exec` a command in a
/// container, or `attach` to the one it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `Some(argv)` for exec, `None` for attach.
    pub command: Option<Vec<String>>,
    pub options: StreamOptions,
}

/// Which streams the client wants (`PodExecOptions` / `PodAttachOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// A terminal: output is one stream (stderr joins stdout), and the
    /// client may resize it.
    pub tty: bool,
}

/// One running exec or attach, as the kubelet hands it to the API server.
/// Dropping `stdin` closes the process's standard input (EOF).
pub struct ExecSession {
    pub stdin: Option<mpsc::Sender<Bytes>>,
    pub stdout: Option<mpsc::Receiver<Bytes>>,
    pub stderr: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Sender<TerminalSize>>,
    /// Resolves when the process has exited; the API server waits for the
    /// output channels to end first, so no output comes after the status.
    pub outcome: BoxFuture<'static, Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_clients_first_known_protocol() {
        let kubectl = "v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io";
        assert_eq!(negotiate(Some(kubectl)), Ok(Version(5)));
        assert_eq!(negotiate(Some("v4.channel.k8s.io")), Ok(Version(4)));
        assert_eq!(
            negotiate(Some("base64.channel.k8s.io, v3.channel.k8s.io")),
            Ok(Version(3))
        );
        assert_eq!(negotiate(None), Ok(Version(1)));
        assert_eq!(Version(5).name(), "v5.channel.k8s.io");
        assert_eq!(Version(1).name(), "channel.k8s.io");
        assert_eq!(
            negotiate(Some("SPDY/3.1+portforward.k8s.io")).unwrap_err(),
            "requested protocol(s) are not supported: [SPDY/3.1+portforward.k8s.io]; \
             supports [v5.channel.k8s.io v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
        );
    }

    #[test]
    fn client_frames() {
        let v5 = Version(5);
        assert_eq!(
            decode(v5, b"\x00hi\n"),
            ClientFrame::Stdin(Bytes::from_static(b"hi\n"))
        );
        assert_eq!(
            decode(v5, b"\x04{\"Width\":80,\"Height\":24}"),
            ClientFrame::Resize(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(decode(v5, &[CLOSE, STDIN]), ClientFrame::Close(STDIN));
        // Before v5 there is no close signal, before v3 no resize.
        assert_eq!(decode(Version(4), &[CLOSE, STDIN]), ClientFrame::Ignored);
        assert_eq!(
            decode(Version(2), b"\x04{\"Width\":80,\"Height\":24}"),
            ClientFrame::Ignored
        );
        assert_eq!(decode(v5, b""), ClientFrame::Ignored);
        assert_eq!(decode(v5, b"\x04not json"), ClientFrame::Ignored);
        assert_eq!(encode(STDOUT, b"hi"), b"\x01hi");
    }

    #[test]
    fn status_on_channel_3() {
        let exited = |code| Outcome::Exited {
            code,
            command: vec!["sh".into(), "-c".into(), format!("exit {code}")],
        };
        let json = |msg: Vec<u8>| {
            assert_eq!(msg[0], STATUS);
            serde_json::from_slice::<Value>(&msg[1..]).unwrap()
        };
        let ok = json(status_message(Version(5), &exited(0)).unwrap());
        assert_eq!(ok["status"], "Success");
        let three = json(status_message(Version(4), &exited(3)).unwrap());
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(
            three["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            three["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "v4: the kubelet's words"
        );
        let translated = json(status_message(Version(5), &exited(3)).unwrap());
        assert_eq!(
            translated["message"],
            "command terminated with non-zero exit code: command terminated with exit code 3",
            "v5: the API server's translator's words"
        );
        assert_eq!(translated["details"], three["details"]);
        let failed = json(status_message(Version(5), &Outcome::Failed("boom".into())).unwrap());
        assert_eq!(failed["reason"], "InternalError");
        assert_eq!(failed["code"], 500);
        assert_eq!(failed["message"], "Internal error occurred: boom");
        // v1–v3: nothing on success, text on failure.
        assert_eq!(status_message(Version(3), &exited(0)), None);
        assert_eq!(
            status_message(Version(2), &Outcome::Failed("boom".into())).unwrap(),
            b"\x03Internal error occurred: boom"
        );
    }
}
