//! What the kubelet's own server (`https://<node>:10250`, upstream's
//! `pkg/kubelet/server`) answers the API server: container logs, read from
//! the runtime's log of each container instance, port-forward connections
//! ([`super::portforward`]) and exec/attach streams ([`super::exec`]). In
//! the labs the API server calls it in-process, through [`NodeLogs`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::logs::LogLine;
use super::runtime::ContainerId;
use super::runtime::Runtime;
use super::state::{PodRuntimeState, reasons};
use crate::machinery::node_api::{
    ContainerUsage, LogRequest, LogStream, NodeLogs, NodeStats, NodeUsage, PodUsage,
    PortForwardRequest,
};
use crate::machinery::remotecommand::{ExecSession, StreamRequest};

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

    fn exec(&self, req: StreamRequest) -> BoxFuture<'static, Result<ExecSession, String>> {
        super::exec::exec(self, req)
    }
}
// ANCHOR_END: logs

// ANCHOR: stats
/// The kubelet's resource metrics endpoint (`/metrics/resource`), reached
/// in-process. Upstream the kubelet's stats provider asks cAdvisor or the
/// CRI; metrics-server turns two scrapes into a CPU rate. Here the kubelet
/// keeps the previous reading of each container and reports the rate
/// itself (a runtime that knows the rate gives it directly).
pub(super) struct KubeletStats<R> {
    pub(super) runtime: Arc<R>,
    pub(super) log_index: Arc<Mutex<HashMap<String, PodLogIndex>>>,
    pub(super) clock: crate::machinery::clock::Clock,
    /// The last reading per container: (when, cumulative core-nanoseconds).
    pub(super) previous: Arc<Mutex<HashMap<ContainerId, (tokio::time::Instant, u64)>>>,
}

/// The window over which a CPU rate is averaged: metrics-server's
/// resolution, 15 s by default.
pub const METRICS_WINDOW: std::time::Duration = std::time::Duration::from_secs(15);

impl<R: Runtime> NodeStats for KubeletStats<R> {
    fn stats(&self) -> BoxFuture<'static, NodeUsage> {
        let runtime = Arc::clone(&self.runtime);
        let previous = Arc::clone(&self.previous);
        let clock = self.clock;
        let pods: Vec<(String, Vec<(String, ContainerId)>)> = self
            .log_index
            .lock()
            .unwrap()
            .iter()
            .map(|(key, p)| {
                let running = p
                    .containers
                    .iter()
                    .filter_map(|(name, (current, _, waiting))| {
                        current
                            .clone()
                            .filter(|_| waiting.is_none())
                            .map(|id| (name.clone(), id))
                    })
                    .collect();
                (key.clone(), running)
            })
            .collect();
        async move {
            let now = tokio::time::Instant::now();
            let mut out = Vec::new();
            for (key, containers) in pods {
                let (namespace, name) = key.split_once('/').unwrap_or(("", &key));
                let mut usage = Vec::new();
                for (cname, id) in containers {
                    let Some(s) = runtime.container_stats(&id).await else {
                        continue;
                    };
                    let rate = match s.usage_nano_cores {
                        Some(rate) => rate,
                        None => {
                            let last = previous
                                .lock()
                                .unwrap()
                                .insert(id.clone(), (now, s.usage_core_nano_seconds));
                            match last {
                                // Two readings: the rate between them.
                                Some((at, used)) if now > at => {
                                    let secs = (now - at).as_secs_f64();
                                    (s.usage_core_nano_seconds.saturating_sub(used) as f64 / secs)
                                        as u64
                                }
                                // The first: the average since the start.
                                _ => match runtime.container_status(&id).await {
                                    Ok(st) => {
                                        let up = clock.now().duration_since(st.started_at);
                                        let secs = up.as_secs_f64().max(0.001);
                                        (s.usage_core_nano_seconds as f64 / secs) as u64
                                    }
                                    Err(_) => 0,
                                },
                            }
                        }
                    };
                    usage.push(ContainerUsage {
                        name: cname,
                        cpu_nano_cores: rate,
                        memory_working_set_bytes: s.memory_working_set_bytes,
                    });
                }
                if !usage.is_empty() {
                    out.push(PodUsage {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        containers: usage,
                    });
                }
            }
            out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            let containers = out.iter().flat_map(|p| &p.containers);
            NodeUsage {
                cpu_nano_cores: containers.clone().map(|c| c.cpu_nano_cores).sum(),
                memory_working_set_bytes: containers.map(|c| c.memory_working_set_bytes).sum(),
                pods: out,
                timestamp: clock.now(),
                window: METRICS_WINDOW,
            }
        }
        .boxed()
    }
}
// ANCHOR_END: stats
