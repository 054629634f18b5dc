//! The kubelet's `/exec/{ns}/{pod}/{container}` and `/attach/…` endpoints:
//! find the container's running instance and ask the runtime for a stream
//! (CRI `Exec` / `Attach`).
//!
//! Upstream the kubelet only looks the container up (`findContainer`, among
//! the *running* containers of the pod) and redirects the stream to the
//! runtime's own streaming server; the runtime does the rest. A container
//! that is not running — still being created, crash-looping, exited — is
//! simply not found, so kubectl shows `container not found ("app")`.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::runtime::{Runtime, RuntimeState};
use super::server::KubeletLogs;
use crate::machinery::remotecommand::{ExecSession, StreamRequest};

// ANCHOR: kubelet_exec
pub(super) fn exec<R: Runtime>(
    kubelet: &KubeletLogs<R>,
    req: StreamRequest,
) -> BoxFuture<'static, Result<ExecSession, String>> {
    let runtime = Arc::clone(&kubelet.runtime);
    let current = kubelet
        .log_index
        .lock()
        .unwrap()
        .get(&format!("{}/{}", req.namespace, req.pod))
        .and_then(|p| p.containers.get(&req.container).cloned())
        .and_then(|(current, _, _)| current);
    async move {
        let not_found = || format!("container not found ({:?})", req.container);
        let id = current.ok_or_else(not_found)?;
        match runtime.container_status(&id).await {
            Ok(s) if s.state == RuntimeState::Running => {}
            _ => return Err(not_found()),
        }
        let session = match &req.command {
            Some(command) => runtime.exec(&id, command, req.options).await,
            None => runtime.attach(&id, req.options).await,
        };
        session.map_err(|e| e.to_string())
    }
    .boxed()
}
// ANCHOR_END: kubelet_exec
