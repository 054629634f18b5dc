//! The workload: the small web app the talk deploys, rolls out and rolls back.
//!
//! It is deliberately tiny, but everything it does is something Kubernetes
//! looks at:
//!
//! * `GET /` answers with the app's **version** and the **pod name**, so a
//!   traffic probe during a rolling update can count which version served
//!   each request (the "v1 → v2" moment of the demo). With a database
//!   ([`db`], PostgreSQL as on GKE) it also records the visit and shows the
//!   total and the last visits per version: during a rollout v1 and v2 pods
//!   write to the same table, and the data outlives every pod;
//! * `GET /livez` says the process is alive: the kubelet's **liveness
//!   probe** calls it and restarts the container when it fails. It checks
//!   nothing else on purpose: restarting cannot fix a database outage, it
//!   only turns one into a crash loop. (`/healthz`, the older name, is kept
//!   as an alias for old manifests.)
//! * `GET /readyz` says whether to send it traffic: the **readiness probe**
//!   calls it, and a pod that fails it is taken out of its Service's
//!   endpoints, without a restart. It fails while the app drains, and
//!   while the database does not answer;
//! * on `SIGTERM` (what the kubelet sends when a pod is deleted) it can keep
//!   serving for a **drain period** (`--drain-seconds`) while `/readyz`
//!   fails, because the endpoint removal that the deletion triggers reaches
//!   the load balancers only a moment later; then it stops accepting
//!   connections, lets in-flight requests finish and exits 0, so a rolling
//!   update drops no requests.
//!
//! It is a library as well as a binary so that the `labs` and `demo`
//! binaries can run it as a child process of themselves (a hidden `app`
//! subcommand, with the same command line: [`cli`]): the "process" container
//! runtime then needs no separate build.
//!
//! The same binary holds the other small programs a pod of the workbook
//! needs, so one `FROM scratch` image is enough for all of them:
//! [`proxy`] (the database proxy sidecar), [`pause`] (the pod sandbox of the
//! Docker runtime), [`get`] (an HTTP client, since scratch has no curl) and
//! [`probe`] (the demo's traffic probe, as a pod).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub mod cli;
pub mod db;
pub mod get;
pub mod pause;
pub mod postgres;
pub mod probe;
pub mod proxy;

use db::{Database, DbSettings, Visits};

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

/// How to serve, beyond who the app is.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// How long to keep serving after SIGTERM while `/readyz` fails.
    pub drain: Duration,
    /// How long to wait before listening (a slow start, see `--startup-seconds`).
    pub startup: Duration,
    /// Where the database is; `None`: serve without one.
    pub database: Option<DbSettings>,
}

// ANCHOR: state
/// The state every request handler shares: who the app is, and whether it
/// is draining. Cloning is cheap (an `Arc` inside), as axum needs.
#[derive(Debug, Clone)]
pub struct App {
    info: AppInfo,
    /// Set once, on SIGTERM; read by every `/readyz`. An atomic flag is all
    /// it takes: nothing waits on it, probes just look.
    draining: Arc<AtomicBool>,
    /// `None` when no `DB_HOST` is set: the app serves as before.
    database: Option<Database>,
}
// ANCHOR_END: state

impl App {
    pub fn new(info: AppInfo) -> App {
        App {
            info,
            draining: Arc::new(AtomicBool::new(false)),
            database: None,
        }
    }

    /// Connects to the database in the background (see [`Database::start`]);
    /// needs a tokio runtime.
    pub fn with_database(mut self, settings: DbSettings) -> App {
        self.database = Some(Database::start(settings));
        self
    }

    pub fn info(&self) -> &AppInfo {
        &self.info
    }

    /// From now on `/readyz` fails; everything else keeps working.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

// ANCHOR: router
/// The app's HTTP routes. Returned as a plain `Router` so tests can drive it
/// in-process and the binary can serve it on a socket.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/livez", get(livez))
        .route("/healthz", get(livez))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// The answer to `GET /`: today's `version` and `pod` (which probes and
/// tests parse) plus what the database says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(flatten)]
    pub info: AppInfo,
    /// `"no database"`, `user@host:port/name`, or `"unavailable: why"`.
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_visits: Option<i64>,
    /// Per version, the last few visits, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_visits: Option<std::collections::BTreeMap<String, Vec<db::Visit>>>,
}

async fn root(State(app): State<App>) -> (StatusCode, Json<Answer>) {
    // One line per request, so `kubectl logs -f` and `kubectl attach` show
    // traffic arriving. The probes' paths are not logged: the kubelet calls
    // them every few seconds, and they would drown everything else.
    tracing::info!(pod = %app.info.pod, "GET /");
    let info = app.info.clone();
    let Some(db) = &app.database else {
        let database = "no database".to_string();
        return (
            StatusCode::OK,
            Json(Answer {
                info,
                database,
                total_visits: None,
                recent_visits: None,
            }),
        );
    };
    match db.record_visit(&app.info).await {
        Ok(Visits { total, recent }) => (
            StatusCode::OK,
            Json(Answer {
                info,
                database: db.settings().describe(),
                total_visits: Some(total),
                recent_visits: Some(recent),
            }),
        ),
        // Readiness fails too, so the Service should not send us this
        // request; if it still arrives, say why rather than pretend.
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Answer {
                info,
                database: format!("unavailable: {reason}"),
                total_visits: None,
                recent_visits: None,
            }),
        ),
    }
}

/// Liveness: if the process can answer HTTP at all, it is alive. Nothing
/// else is checked here, on purpose (see the module docs).
async fn livez() -> &'static str {
    "ok"
}

/// Readiness: `200 ok`, or `503` with one line saying why not, which is what
/// `kubectl describe pod` shows in the probe's failure event.
async fn readyz(State(app): State<App>) -> (StatusCode, String) {
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: SIGTERM received, finishing requests\n".into(),
        );
    }
    if let Some(db) = &app.database
        && let Err(reason) = db.check().await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {reason}\n"),
        );
    }
    (StatusCode::OK, "ok\n".into())
}
// ANCHOR_END: router

/// Serves the app on `listener` until `shutdown` completes, then stops
/// accepting connections, finishes the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

// ANCHOR: drain
/// What happens between the kubelet's SIGTERM and the moment the app stops
/// accepting connections. Completes when it is time to stop accepting.
///
/// Why wait at all: deleting a pod does two things at once. The kubelet
/// sends SIGTERM, and the EndpointSlice controller removes the pod from its
/// Service, after which every node's kube-proxy reprograms its rules. The
/// second path is slower. An app that stops accepting the instant SIGTERM
/// arrives refuses the requests still routed to it in between. So: fail
/// readiness at once (no new traffic should be chosen for us), keep serving
/// for `period`, and only then stop. (A `preStop: sleep` hook in the
/// manifest achieves the same for apps that cannot do this themselves.)
pub async fn drain(app: &App, period: Duration, signal: impl Future<Output = ()>) {
    signal.await;
    app.start_draining();
    if !period.is_zero() {
        tracing::info!(
            seconds = period.as_secs_f64(),
            "SIGTERM: draining (readyz fails, still serving)"
        );
        tokio::time::sleep(period).await;
    }
    tracing::info!("no longer accepting connections; finishing requests in flight");
}
// ANCHOR_END: drain
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

/// Binds `addr` and serves until SIGTERM/Ctrl-C and the drain period that
/// follows. Logs one line when ready and one when it has stopped, which is
/// what `kubectl logs` will show.
pub async fn run(addr: SocketAddr, info: AppInfo, options: ServeOptions) -> anyhow::Result<()> {
    if !options.startup.is_zero() {
        tracing::info!(seconds = options.startup.as_secs(), "demo-app starting up");
        tokio::time::sleep(options.startup).await;
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        version = %info.version,
        pod = %info.pod,
        "demo-app listening"
    );
    let mut app = App::new(info);
    match options.database {
        Some(settings) => {
            tracing::info!(
                "database: {} (connecting in the background)",
                settings.describe()
            );
            app = app.with_database(settings);
        }
        None => tracing::info!("no database (set DB_HOST, DB_USER, DB_PASSWORD to use one)"),
    }
    let stop = {
        let app = app.clone();
        async move { drain(&app, options.drain, termination_signal()).await }
    };
    serve(listener, app, stop).await?;
    tracing::info!("demo-app stopped");
    Ok(())
}
