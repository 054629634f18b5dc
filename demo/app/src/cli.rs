//! The command line, shared by the `demo-app` binary and the `labs`/`demo`
//! binaries' hidden `app` subcommand.
//!
//! Why one type for both: the process runtime of the labs starts a container
//! as `labs app --listen ADDR --app-version TAG`, and the Docker runtime runs
//! the real `demo-app` binary in an image. Both must accept exactly the same
//! command line, so a manifest written for one works on the other; defining
//! it once here makes that true by construction.
//!
//! With no subcommand the app serves HTTP (what a pod's main container does).
//! The subcommands are the other programs a pod of the workbook needs, all in
//! one static binary so a `FROM scratch` image holds everything:
//!
//! * `proxy`: the stand-in for the Cloud SQL Auth Proxy sidecar;
//! * `pause`: the pod sandbox process of the Docker runtime;
//! * `get`: a tiny HTTP client, because a scratch image has no `curl`;
//! * `probe`: the demo's traffic probe, run as a pod on kind and GKE.

use std::net::SocketAddr;

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::db::DbSettings;
use crate::{AppInfo, BUILD_VERSION, ServeOptions};

/// The workbook's demo workload: a tiny HTTP service that reports its
/// version and pod name, and records visits in PostgreSQL when told where
/// it is.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The programs besides the web app.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Forward TCP connections from --listen to --to: the workbook's stand-in
    /// for the Cloud SQL Auth Proxy sidecar.
    Proxy(ProxyArgs),
    /// Sleep until SIGTERM/SIGINT and reap orphaned children: the pod
    /// sandbox ("pause") process of the Docker runtime.
    Pause,
    /// GET a URL and print the answer's body, one line per request (a
    /// scratch image has no curl).
    Get(GetArgs),
    /// Send requests to a URL until SIGTERM, each on a new connection, and
    /// print one JSON line per answer: the traffic probe as a pod.
    Probe(ProbeArgs),
}

/// Serving flags (the default command). Every flag can also come from the
/// environment, which is how a Kubernetes manifest usually configures an
/// app (`env:` from literals, the downward API or a Secret).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on. Pods in the labs get their own loopback
    /// address (127.x.y.z), so every pod can use the same port.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The version to report (defaults to the one compiled in).
    #[arg(long = "app-version", env = "APP_VERSION", default_value = BUILD_VERSION)]
    pub app_version: String,
    /// After SIGTERM, keep serving for this many seconds while /readyz
    /// fails, so load balancers stop sending traffic before the app stops
    /// accepting it. 0 stops accepting at once.
    #[arg(long = "drain-seconds", env = "DRAIN_SECONDS", default_value_t = 0)]
    pub drain_seconds: u64,
    /// Wait this many seconds before listening, as a real app does while it
    /// loads its configuration and warms its caches. A pod without a
    /// readiness probe gets traffic during that time, and refuses it.
    #[arg(long = "startup-seconds", env = "STARTUP_SECONDS", default_value_t = 0)]
    pub startup_seconds: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Where the database is, named as on GKE: the Cloud SQL Auth Proxy listens
/// on the pod's localhost, so `DB_HOST` is `127.0.0.1` there; the user and
/// password come from a Secret. No `DB_HOST` means no database.
#[derive(Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// Database host (the proxy sidecar's address). Unset: run without a
    /// database.
    #[arg(long = "db-host", env = "DB_HOST")]
    pub host: Option<String>,
    /// Database port.
    #[arg(long = "db-port", env = "DB_PORT", default_value_t = 5432)]
    pub port: u16,
    /// Database name (defaults to the user name, as libpq does).
    #[arg(long = "db-name", env = "DB_NAME")]
    pub name: Option<String>,
    /// Database user.
    #[arg(long = "db-user", env = "DB_USER")]
    pub user: Option<String>,
    /// Database password. Prefer the environment (from a Secret) to the
    /// flag, which other users of the machine can read in `ps`.
    #[arg(long = "db-password", env = "DB_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl DbArgs {
    /// The settings, `None` without `DB_HOST`, or one readable error line
    /// when they are incomplete.
    pub fn settings(&self) -> anyhow::Result<Option<DbSettings>> {
        let Some(host) = self.host.clone().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let Some(user) = self.user.clone().filter(|u| !u.is_empty()) else {
            anyhow::bail!("DB_HOST is set but DB_USER is not: set both (or neither)");
        };
        Ok(Some(DbSettings {
            host,
            port: self.port,
            name: self.name.clone().unwrap_or_else(|| user.clone()),
            user,
            password: self.password.clone(),
        }))
    }
}

/// `demo-app proxy`.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Address to accept connections on (the pod's localhost, where the app
    /// expects its database).
    #[arg(long, env = "LISTEN")]
    pub listen: SocketAddr,
    /// Address to forward each connection to (host:port of the database).
    #[arg(long, env = "PROXY_TO")]
    pub to: String,
}

/// `demo-app get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The URL, `http://HOST[:PORT]/PATH` (plain HTTP only).
    pub url: String,
    /// How many requests to send, one after the other.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

/// `demo-app probe`.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The URL, `http://HOST[:PORT]/PATH` (the Service's).
    pub url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 20)]
    pub rps: u32,
}

/// Runs what the command line asks for, until it is done or told to stop.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let args = cli.serve;
            let options = ServeOptions {
                drain: Duration::from_secs(args.drain_seconds),
                startup: Duration::from_secs(args.startup_seconds),
                database: args.db.settings()?,
            };
            crate::run(args.listen, AppInfo::from_env(args.app_version), options).await
        }
        Some(Command::Proxy(args)) => crate::proxy::run(args.listen, args.to).await,
        Some(Command::Pause) => crate::pause::run().await,
        Some(Command::Probe(args)) => {
            crate::probe::run(&args.url, args.rps, &mut std::io::stdout()).await
        }
        Some(Command::Get(args)) => {
            crate::get::run(&args.url, args.count, &mut std::io::stdout()).await
        }
    }
}
