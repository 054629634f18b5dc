//! What the kubelet's own server (`https://<node>:10250`, upstream's
//! `pkg/kubelet/server`) answers the API server: container logs, read from
//! the runtime's log of each container instance, and port-forward
//! connections ([`super::portforward`]). In the labs the API server calls it
//! in-process, through [`NodeLogs`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::logs::LogLine;
use super::runtime::Runtime;
use super::state::{PodRuntimeState, reasons};
use crate::machinery::node_api::{LogRequest, LogStream, NodeLogs, PortForwardRequest};

use super::kubelet::*;

pub(super) fn publish_log_index<R: Runtime>(s: &Shared<R>, key: &str, state: &PodRuntimeState) {
    let containers = state
        .containers
        .iter()
        .map(|(name, rec)| {
            (
                name.clone(),
                (
                    rec.current.as_ref().map(|c| c.id.clone()),
                    rec.previous.as_ref().map(|c| c.id.clone()),
                    rec.waiting.as_ref().map(|w| w.reason.clone()),
                ),
            )
        })
        .collect();
    s.log_index
        .lock()
        .unwrap()
        .insert(key.to_string(), PodLogIndex { containers });
}

/// The kubelet's `/containerLogs` endpoint, reached in-process.
pub(super) struct KubeletLogs<R> {
    pub(super) runtime: Arc<R>,
    pub(super) log_index: Arc<Mutex<HashMap<String, PodLogIndex>>>,
}

// ANCHOR: logs
impl<R: Runtime> NodeLogs for KubeletLogs<R> {
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<LogStream, String>> {
        let runtime = Arc::clone(&self.runtime);
        let entry = self
            .log_index
            .lock()
            .unwrap()
            .get(&format!("{}/{}", req.namespace, req.pod))
            .and_then(|p| p.containers.get(&req.container).cloned());
        async move {
            let (pod, container) = (&req.pod, &req.container);
            let (current, previous, waiting) = entry.unwrap_or_default();
            // Upstream's messages for the two ways there is no log.
            let id = if req.previous {
                previous.ok_or_else(|| {
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    )
                })?
            } else {
                current.ok_or_else(|| {
                    let why = waiting.unwrap_or_else(|| reasons::CONTAINER_CREATING.into());
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {why}")
                })?
            };
            let so_far = runtime.logs(&id).await.map_err(|e| e.to_string())?;
            let skip = req.tail_lines.map_or(0, |n| so_far.len().saturating_sub(n));
            let timestamps = req.timestamps;
            let format = move |l: LogLine| {
                let line = if timestamps {
                    format!("{} {}\n", l.at, l.text)
                } else {
                    format!("{}\n", l.text)
                };
                bytes::Bytes::from(line)
            };
            if req.follow && !req.previous {
                let lines = runtime.follow_logs(&id).await.map_err(|e| e.to_string())?;
                Ok(lines.skip(skip).map(format).boxed())
            } else {
                Ok(futures::stream::iter(so_far.into_iter().skip(skip).map(format)).boxed())
            }
        }
        .boxed()
    }

    fn port_forward(
        &self,
        req: PortForwardRequest,
    ) -> BoxFuture<'static, Result<tokio::net::TcpStream, String>> {
        let runtime = Arc::clone(&self.runtime);
        async move { super::portforward::dial(runtime.as_ref(), &req).await }.boxed()
    }
}
// ANCHOR_END: logs
