//! `labs`: one subcommand per lab. `labs --help` lists them.

use clap::{Parser, Subcommand};

/// The workbook's labs: a small Kubernetes control plane, one component at a
/// time. Each lab prints what it does; the book explains every line.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    lab: Lab,
}

#[derive(Subcommand, Debug)]
enum Lab {
    /// Run the workload (`demo-app`) as a child process: this is how the
    /// "process" container runtime starts a container without Docker.
    #[command(hide = true)]
    App(AppArgs),
}

#[derive(clap::Args, Debug)]
struct AppArgs {
    /// Address to listen on (a pod's own loopback address and port).
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The version the app reports (the image tag it was started for).
    #[arg(long = "app-version", env = "APP_VERSION", default_value = demo_app::BUILD_VERSION)]
    app_version: String,
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.lab {
        Lab::App(args) => {
            demo_app::run(args.listen, demo_app::AppInfo::from_env(args.app_version)).await
        }
    };
    if let Err(err) = result {
        // The CLIs print one readable line, not a backtrace.
        eprintln!("labs: {err:#}");
        std::process::exit(1);
    }
}
