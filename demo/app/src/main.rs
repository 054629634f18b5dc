//! `demo-app`: the workload the demo deploys. See the library docs.

use std::net::SocketAddr;

use clap::Parser;
use demo_app::{AppInfo, BUILD_VERSION};

/// The workbook's demo workload: a tiny HTTP service that reports its
/// version and pod name.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on. Pods in the labs get their own loopback
    /// address (127.x.y.z), so every pod can use the same port.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The version to report (defaults to the one compiled in).
    #[arg(long = "app-version", env = "APP_VERSION", default_value = BUILD_VERSION)]
    app_version: String,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let info = AppInfo::from_env(args.app_version);
    if let Err(err) = demo_app::run(args.listen, info).await {
        // One readable line, not a backtrace.
        eprintln!("demo-app: {err:#}");
        std::process::exit(1);
    }
}
