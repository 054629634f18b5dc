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
    /// Lab: etcd, the cluster's memory — a versioned key-value store with watch.
    Store,
    /// Lab: the API server — serve the Kubernetes API on loopback for kubectl.
    Apiserver(ServerArgs),
    /// Start the lab cluster and print `export KUBECONFIG=...`. (For now the
    /// cluster is the API server alone; later labs add the controllers.)
    Cluster(ServerArgs),
    /// Benchmarks (run by hand, not part of the tests).
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value_os_t = labs::apiserver::kubeconfig::default_path())]
    kubeconfig: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// API server: 10,000 pod creates (in-process and over HTTP), lists and
    /// 100 concurrent watchers.
    Apiserver(labs::apiserver::bench::BenchArgs),
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
        Lab::Store => labs::store::lab::run(&mut std::io::stdout()).await,
        Lab::Apiserver(args) | Lab::Cluster(args) => {
            labs::apiserver::run(args.port, &args.kubeconfig).await
        }
        Lab::Bench {
            which: Bench::Apiserver(args),
        } => labs::apiserver::bench::run(args).await,
    };
    if let Err(err) = result {
        // The CLIs print one readable line, not a backtrace.
        eprintln!("labs: {err:#}");
        std::process::exit(1);
    }
}
