//! `lifecycle.preStop`: what a container gets to do before its SIGTERM.
//!
//! When the kubelet stops a container — the pod is being deleted, or a
//! liveness/startup probe failed — it first runs the container's preStop
//! hook, *then* sends SIGTERM, and the hook's time counts against the
//! same `terminationGracePeriodSeconds`: the hook runs for at most the
//! grace period, and what is left of it (but never less than 2 s) is the
//! time between SIGTERM and SIGKILL. Upstream: `killContainer` and
//! `executePreStopHook` in `pkg/kubelet/kuberuntime/kuberuntime_container.go`,
//! the handlers in `pkg/kubelet/lifecycle/handlers.go`.
//!
//! Why it matters for Services: a deleted pod's endpoint is removed by the
//! endpointslice controller and then by every kube-proxy, in parallel with
//! the kubelet stopping the container. A process that exits at once on
//! SIGTERM loses the connections the proxies still send it; a preStop
//! `sleep` keeps the app serving (unaware, SIGTERM not yet sent) until the
//! proxies have caught up.
//!
//! The three handlers: `sleep` (the kubelet waits; nothing runs in the
//! container — PodLifecycleSleepAction, GA in 1.34), `httpGet` (the kubelet
//! sends the request to the pod's address, as for an HTTP probe) and
//! `exec` (a command in the container, where the runtime can run one).
//! `tcpSocket` is accepted by the API for compatibility and does nothing,
//! as upstream.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use super::pod_sync::MINIMUM_GRACE_PERIOD;
use super::probe::{ProbeAction, probe_action};

/// A resolved preStop hook: what the plumbing runs before SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreStop {
    /// `sleep: {seconds: N}`: the kubelet waits N seconds.
    Sleep(Duration),
    /// `httpGet` or `exec`, run as a probe is run (same address
    /// resolution, same runtime call); a failure is only an event.
    Run(ProbeAction),
    /// A hook that cannot run (a named port the container does not have):
    /// reported as a failed hook, then the container is stopped anyway.
    Invalid(String),
}

// ANCHOR: pre_stop
/// The container's preStop hook, resolved against the pod's IP. `None`
/// when it has none (or only `tcpSocket`, which does nothing).
pub fn pre_stop(c: &Container, pod_ip: &str) -> Option<PreStop> {
    let handler: &LifecycleHandler = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
    if let Some(sleep) = &handler.sleep {
        return Some(PreStop::Sleep(Duration::from_secs(
            sleep.seconds.max(0) as u64
        )));
    }
    if handler.http_get.is_none() && handler.exec.is_none() {
        return None;
    }
    // The hook's httpGet and exec are the probe's: resolve them the same way.
    let as_probe = Probe {
        http_get: handler.http_get.clone(),
        exec: handler.exec.clone(),
        ..Default::default()
    };
    Some(match probe_action(&as_probe, c, pod_ip) {
        Ok(action) => PreStop::Run(action),
        Err(msg) => PreStop::Invalid(msg),
    })
}
// ANCHOR_END: pre_stop

// ANCHOR: grace_after_hook
/// What is left of the grace period for SIGTERM → SIGKILL once the hook
/// took `hook_took` (upstream: `gracePeriod - time spent`, but at least
/// `minimumGracePeriodInSeconds`, 2 s, so that SIGTERM always gets a
/// chance even when the hook used up the whole period).
pub fn grace_after_hook(grace: Duration, hook_took: Duration) -> Duration {
    grace.saturating_sub(hook_took).max(MINIMUM_GRACE_PERIOD)
}
// ANCHOR_END: grace_after_hook

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ExecAction, HTTPGetAction, Lifecycle, SleepAction, TCPSocketAction,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

    fn with_hook(h: LifecycleHandler) -> Container {
        Container {
            name: "app".into(),
            lifecycle: Some(Lifecycle {
                pre_stop: Some(h),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hooks_resolve_like_probes() {
        let sleep = with_hook(LifecycleHandler {
            sleep: Some(SleepAction { seconds: 5 }),
            ..Default::default()
        });
        assert_eq!(
            pre_stop(&sleep, "127.0.1.2"),
            Some(PreStop::Sleep(Duration::from_secs(5)))
        );
        let http = with_hook(LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(8080),
                path: Some("/drain".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            pre_stop(&http, "127.0.1.2"),
            Some(PreStop::Run(ProbeAction::HttpGet {
                scheme: "http".into(),
                host: "127.0.1.2".into(),
                port: 8080,
                path: "/drain".into(),
                headers: vec![],
            }))
        );
        let exec = with_hook(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sleep".into(), "1".into()]),
            }),
            ..Default::default()
        });
        assert!(matches!(
            pre_stop(&exec, "127.0.1.2"),
            Some(PreStop::Run(ProbeAction::Exec { .. }))
        ));
        let named = with_hook(LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            pre_stop(&named, "127.0.1.2"),
            Some(PreStop::Invalid("couldn't find port: http in app".into()))
        );
        let tcp = with_hook(LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(1),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(pre_stop(&tcp, "127.0.1.2"), None);
        assert_eq!(pre_stop(&Container::default(), "127.0.1.2"), None);
    }

    #[test]
    fn the_hook_spends_the_grace_period() {
        let s = Duration::from_secs;
        for (grace, took, left) in [
            (s(30), s(0), s(30)),
            (s(30), s(5), s(25)),
            (s(30), s(29), s(2)), // at least 2 s for SIGTERM
            (s(30), s(30), s(2)), // the hook was cut off at the grace period
            (s(2), s(1), s(2)),
        ] {
            assert_eq!(grace_after_hook(grace, took), left, "{grace:?} {took:?}");
        }
    }
}
