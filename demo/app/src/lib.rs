//! The workload: the small web app the talk deploys, rolls out and rolls back.
//!
//! It is deliberately tiny, but everything it does is something Kubernetes
//! looks at:
//!
//! * `GET /` answers with the app's **version** and the **pod name**, so a
//!   traffic probe during a rolling update can count which version served
//!   each request (the "v1 → v2" moment of the demo);
//! * `GET /healthz` is what liveness and readiness probes call;
//! * on `SIGTERM` (what the kubelet sends when a pod is deleted) it stops
//!   accepting connections, lets in-flight requests finish and exits 0, so a
//!   rolling update drops no requests.
//!
//! It is a library as well as a binary so that the `labs` and `demo`
//! binaries can run it as a child process of themselves (a hidden `app`
//! subcommand, with the same command line: [`cli`]): the "process" container
//! runtime then needs no separate build.
//!
//! The same binary holds the other small programs a pod of the workbook
//! needs, so one `FROM scratch` image is enough for all of them:
//! [`proxy`] (the database proxy sidecar), [`pause`] (the pod sandbox of the
//! Docker runtime) and [`get`] (an HTTP client, since scratch has no curl).

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub mod cli;
pub mod get;
pub mod pause;
pub mod proxy;

// ANCHOR: info
/// What one running copy of the app knows about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// The app's version, e.g. `v1`. In Kubernetes this usually matches the
    /// image tag (`workbook/demo-app:v1`), which is how a rolling update
    /// becomes visible from outside.
    pub version: String,
    /// The pod this copy runs in. Kubernetes tells a container its pod name
    /// through the downward API (`POD_NAME`) and the hostname (`HOSTNAME`).
    pub pod: String,
}
// ANCHOR_END: info

/// The version compiled in: `DEMO_APP_VERSION` at build time if set
/// (`DEMO_APP_VERSION=v2 cargo build -p demo-app`), else `v` + the crate
/// version. The `--app-version` flag overrides it at run time.
pub const BUILD_VERSION: &str = match option_env!("DEMO_APP_VERSION") {
    Some(v) => v,
    None => concat!("v", env!("CARGO_PKG_VERSION")),
};

impl AppInfo {
    /// Reads the pod name the way a container sees it: `POD_NAME` (set from
    /// the downward API in our manifests), else `HOSTNAME` (the pod name on
    /// every Kubernetes node), else `"unknown"`.
    pub fn from_env(version: impl Into<String>) -> Self {
        let pod = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        AppInfo {
            version: version.into(),
            pod,
        }
    }
}

// ANCHOR: router
/// The app's HTTP routes. Returned as a plain `Router` so tests can drive it
/// in-process and the binary can serve it on a socket.
pub fn router(info: AppInfo) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .with_state(info)
}

async fn root(State(info): State<AppInfo>) -> Json<AppInfo> {
    Json(info)
}

/// Liveness and readiness: if the process can answer HTTP at all, it is
/// healthy. (A real app would check its database connection here for
/// readiness, but never for liveness: a database outage must not make the
/// kubelet restart every pod.)
async fn healthz() -> &'static str {
    "ok"
}
// ANCHOR_END: router

/// Serves the app on `listener` until `shutdown` completes, then finishes
/// the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    info: AppInfo,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(info))
        .with_graceful_shutdown(shutdown)
        .await
}

// ANCHOR: shutdown
/// Completes on SIGTERM or Ctrl-C (SIGINT). The kubelet sends SIGTERM, waits
/// `terminationGracePeriodSeconds` (30 by default) and only then SIGKILLs.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
// ANCHOR_END: shutdown

/// Binds `addr` and serves until SIGTERM/Ctrl-C. Logs one line when ready
/// and one when it has drained, which is what `kubectl logs` will show.
pub async fn run(addr: SocketAddr, info: AppInfo) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        version = %info.version,
        pod = %info.pod,
        "demo-app listening"
    );
    serve(listener, info, termination_signal()).await?;
    tracing::info!("demo-app stopped");
    Ok(())
}
