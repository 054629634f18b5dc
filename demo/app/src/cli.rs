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
//! * `get`: a tiny HTTP client, because a scratch image has no `curl`.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use crate::{AppInfo, BUILD_VERSION};

/// The workbook's demo workload: a tiny HTTP service that reports its
/// version and pod name.
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

/// Runs what the command line asks for, until it is done or told to stop.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let args = cli.serve;
            crate::run(args.listen, AppInfo::from_env(args.app_version)).await
        }
        Some(Command::Proxy(args)) => crate::proxy::run(args.listen, args.to).await,
        Some(Command::Pause) => crate::pause::run().await,
        Some(Command::Get(args)) => {
            crate::get::run(&args.url, args.count, &mut std::io::stdout()).await
        }
    }
}
