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
    /// Start the lab cluster (API server and controllers) and print
    /// `export KUBECONFIG=...`.
    Cluster(ClusterArgs),
    /// Lab: controllers — the ReplicaSet controller and the garbage
    /// collector, narrated on an in-process cluster.
    Replicaset,
    /// Run the controllers against a running API server (kubeconfig from
    /// --kubeconfig, else $KUBECONFIG or ~/.kube/config).
    ControllerManager {
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
    },
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

#[derive(clap::Args, Debug)]
struct ClusterArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Leave a component out, to see what breaks without it.
    #[arg(long, value_enum)]
    without: Vec<labs::cluster::Component>,
    /// How many nodes (each with its kubelet): node-1..node-N.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The kubelets' container runtime.
    #[arg(long, value_enum, default_value_t = labs::cluster::RuntimeKind::Process)]
    runtime: labs::cluster::RuntimeKind,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// API server: 10,000 pod creates (in-process and over HTTP), lists and
    /// 100 concurrent watchers.
    Apiserver(labs::apiserver::bench::BenchArgs),
    /// ReplicaSet controller: scale 0 → 10,000 → 0 on the in-process
    /// cluster; time to converge and API calls made.
    Replicaset(labs::controllers::bench::BenchArgs),
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

fn init_tracing(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.lab {
        // The narrated lab runs on one thread with tokio's clock paused: time
        // only moves when every task is waiting, so the run is the same every
        // time (and a 5-minute timeout takes no time at all).
        Lab::Replicaset => {
            init_tracing("warn");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(labs::controllers::lab::run(&mut std::io::stdout())))
        }
        lab => {
            init_tracing("info");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run(lab)))
        }
    };
    if let Err(err) = result {
        // The CLIs print one readable line, not a backtrace.
        eprintln!("labs: {err:#}");
        std::process::exit(1);
    }
}

async fn run(lab: Lab) -> anyhow::Result<()> {
    match lab {
        Lab::App(args) => {
            demo_app::run(args.listen, demo_app::AppInfo::from_env(args.app_version)).await
        }
        Lab::Store => labs::store::lab::run(&mut std::io::stdout()).await,
        Lab::Apiserver(args) => labs::apiserver::run(args.port, &args.kubeconfig).await,
        Lab::Cluster(args) => {
            let nodes = labs::cluster::NodeOptions {
                nodes: args.nodes,
                runtime: args.runtime,
            };
            labs::cluster::run(
                args.server.port,
                &args.server.kubeconfig,
                &args.without,
                nodes,
            )
            .await
        }
        Lab::Replicaset => unreachable!("runs on its own runtime"),
        Lab::ControllerManager { kubeconfig } => labs::controllers::manager::run(kubeconfig).await,
        Lab::Bench {
            which: Bench::Apiserver(args),
        } => labs::apiserver::bench::run(args).await,
        Lab::Bench {
            which: Bench::Replicaset(args),
        } => labs::controllers::bench::run(args).await,
    }
}
