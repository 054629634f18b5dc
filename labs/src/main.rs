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
    /// It takes exactly `demo-app`'s command line (the same type).
    #[command(hide = true)]
    App(demo_app::cli::Cli),
    /// Lab: etcd, the cluster's memory — a versioned key-value store with watch.
    Store,
    /// Lab: the API server — serve the Kubernetes API on loopback for kubectl.
    Apiserver(ServerArgs),
    /// Start the lab cluster — API server, controller manager, scheduler,
    /// node lifecycle controller, and a kubelet and a kube-proxy per node —
    /// and print `export KUBECONFIG=...`.
    Cluster(ClusterArgs),
    /// Lab: controllers — the ReplicaSet controller and the garbage
    /// collector, narrated on an in-process cluster.
    Replicaset,
    /// Lab: the Deployment controller — a rolling update step by step on an
    /// in-process cluster (virtual time), then history and undo.
    Rollout(labs::lab::rollout::RolloutArgs),
    /// Lab: the scheduler — nodes of different sizes, where each pod goes
    /// and why, an unschedulable pod, taints and a nodeSelector.
    Scheduler,
    /// Lab: the kubelet — one node, simulated containers: a pod's life,
    /// CrashLoopBackOff, probes, ImagePullBackOff, graceful deletion.
    Kubelet,
    /// Lab: Services and kube-proxy — a rolling update v1 → v2 under load
    /// through a Service's cluster IP, counting failed requests (real
    /// processes, real time). `--no-readiness` and `--no-drain` show why
    /// readiness probes and preStop hooks matter; `--iptables` prints the
    /// rules kube-proxy's iptables and nftables modes would program.
    Service(labs::lab::service::ServiceArgs),
    /// Lab: when a node dies — a kubelet stops, the node lifecycle
    /// controller marks its node Unknown and taints it, its pods are
    /// evicted and replaced elsewhere (in-process, virtual time).
    NodeFailure,
    /// Lab: the HorizontalPodAutoscaler — load goes up, the HPA adds pods
    /// until their CPU is at the target; load goes away, and 5 minutes
    /// later so do the pods (in-process, virtual time).
    Autoscale,
    /// Lab: the Docker recap for real, through the Docker Engine API —
    /// images, build, run, exec, commit, a compose-style pair, cleanup.
    Docker,
    /// Run the controllers against a running API server (kubeconfig from
    /// --kubeconfig, else $KUBECONFIG or ~/.kube/config).
    ControllerManager {
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
        /// Leave a controller out, to see what breaks without it.
        #[arg(long, value_enum)]
        without: Vec<labs::cluster::Component>,
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
    /// Seed of the scheduler's random choice among equally good nodes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How long a node may stay silent before it is marked Unknown
    /// (the node lifecycle controller's --node-monitor-grace-period).
    #[arg(long, default_value = "40s", value_parser = parse_seconds)]
    node_monitor_grace_period: std::time::Duration,
    /// How long pods stay on a not-ready or unreachable node before they
    /// are evicted: the tolerationSeconds every new pod gets (the API
    /// server's DefaultTolerationSeconds; 300 upstream).
    #[arg(long, default_value_t = 300)]
    toleration_seconds: i64,
    /// How many nodes (each with its kubelet): node-1..node-N.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The kubelets' container runtime.
    #[arg(long, value_enum, default_value_t = labs::cluster::RuntimeKind::Process)]
    runtime: labs::cluster::RuntimeKind,
}

impl ClusterArgs {
    /// What the flags ask of the cluster: the components, and the nodes.
    fn options(&self) -> (labs::cluster::ClusterOptions, labs::cluster::NodeOptions) {
        let options = labs::cluster::ClusterOptions {
            without: self.without.clone(),
            seed: self.seed,
            node_monitor_grace_period: self.node_monitor_grace_period,
        };
        let nodes = labs::cluster::NodeOptions {
            nodes: self.nodes,
            runtime: self.runtime,
        };
        (options, nodes)
    }
}

/// `40s`, `5m` or a plain number of seconds.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = match s.strip_suffix('s') {
        Some(d) => (d, 1),
        None => match s.strip_suffix('m') {
            Some(d) => (d, 60),
            None => (s, 1),
        },
    };
    digits
        .parse::<u64>()
        .map(|n| std::time::Duration::from_secs(n * unit))
        .map_err(|_| format!("not a duration: {s:?} (try 40s or 5m)"))
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// API server: 10,000 pod creates (in-process and over HTTP), lists and
    /// 100 concurrent watchers.
    Apiserver(labs::lab::bench::apiserver::BenchArgs),
    /// kube-proxy (userspace mode): requests/s and p50/p99 through the
    /// proxy vs straight to the pods; time from a pod turning not-ready to
    /// the proxy no longer choosing it.
    Proxy(labs::lab::bench::proxy::BenchArgs),
    /// Docker runtime: pod start to Ready on Docker vs the process runtime
    /// (ratio, same run); image build cold and cached.
    Docker(labs::lab::bench::docker::BenchArgs),
    /// ReplicaSet controller: scale 0 → 10,000 → 0 on the in-process
    /// cluster; time to converge and API calls made.
    Replicaset(labs::lab::bench::replicaset::BenchArgs),
    /// Deployment controller: a 1,000-replica Deployment rolled from v1 to
    /// v2 on 100 simulated nodes; wall time, syncs and API calls.
    Rollout(labs::lab::bench::rollout::BenchArgs),
    /// Scheduler: 10,000 pending pods on 1,000 simulated nodes, scheduled
    /// and bound through the in-process API; and the core's decisions/s.
    Scheduler(labs::lab::bench::scheduler::BenchArgs),
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
        Lab::Replicaset | Lab::Scheduler | Lab::Kubelet | Lab::NodeFailure | Lab::Autoscale => {
            init_tracing("warn");
            let lab = cli.lab;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async {
                        let out = &mut std::io::stdout();
                        match lab {
                            Lab::Scheduler => labs::lab::scheduler::run(out).await,
                            Lab::Kubelet => labs::lab::kubelet::run(out).await,
                            Lab::NodeFailure => labs::lab::node_failure::run(out).await,
                            Lab::Autoscale => labs::lab::autoscale::run(out).await.map(|_| ()),
                            _ => labs::lab::replicaset::run(out).await,
                        }
                    })
                })
        }
        Lab::Rollout(args) => {
            init_tracing("warn");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(labs::lab::rollout::run(&args, &mut std::io::stdout())))
        }
        // The Service lab prints its own story; the components' retries
        // (conflicts, caches catching up) are normal and would only be noise.
        Lab::Service(args) => {
            init_tracing("error");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(labs::lab::service::run(&args, &mut std::io::stdout()))
                        .map(|_| ())
                })
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
        Lab::App(cli) => demo_app::cli::run(cli).await,
        Lab::Docker => labs::lab::docker::run(&mut std::io::stdout()).await,
        Lab::Store => labs::lab::store::run(&mut std::io::stdout()).await,
        Lab::Apiserver(args) => labs::apiserver::run(args.port, &args.kubeconfig).await,
        Lab::Cluster(args) => {
            let (options, nodes) = args.options();
            labs::cluster::run(
                args.server.port,
                &args.server.kubeconfig,
                &options,
                args.toleration_seconds,
                nodes,
            )
            .await
        }
        Lab::Replicaset
        | Lab::Scheduler
        | Lab::Kubelet
        | Lab::NodeFailure
        | Lab::Autoscale
        | Lab::Rollout(_)
        | Lab::Service(_) => {
            unreachable!("runs on its own runtime")
        }
        Lab::ControllerManager {
            kubeconfig,
            without,
        } => {
            let mut controllers = Vec::new();
            for c in without {
                match c.controller() {
                    Some(controller) => controllers.push(controller),
                    None => anyhow::bail!(
                        "--without {}: not a controller of the controller manager \
                         (replicaset, deployment, endpointslice, garbage-collector, disruption, serviceaccount)",
                        clap::ValueEnum::to_possible_value(&c)
                            .map(|v| v.get_name().to_string())
                            .unwrap_or_default()
                    ),
                }
            }
            labs::controllers::manager::run(kubeconfig, &controllers).await
        }
        Lab::Bench {
            which: Bench::Apiserver(args),
        } => labs::lab::bench::apiserver::run(args, &mut std::io::stdout()).await,
        Lab::Bench {
            which: Bench::Proxy(args),
        } => labs::lab::bench::proxy::run(args).await,
        Lab::Bench {
            which: Bench::Docker(args),
        } => labs::lab::bench::docker::run(args).await,
        Lab::Bench {
            which: Bench::Replicaset(args),
        } => labs::lab::bench::replicaset::run(args, &mut std::io::stdout()).await,
        Lab::Bench {
            which: Bench::Rollout(args),
        } => labs::lab::bench::rollout::run(args, &mut std::io::stdout()).await,
        Lab::Bench {
            which: Bench::Scheduler(args),
        } => labs::lab::bench::scheduler::run(args, &mut std::io::stdout()).await,
    }
}

/// The book and this command line must agree: every `cargo run -p labs -- …`
/// a chapter shows parses here, and what `labs cluster` and `labs
/// apiserver` print at start-up is shown from files generated from the
/// same code that prints it.
#[cfg(test)]
mod book {
    use super::*;
    use labs::lab::book::{check_generated, commands};

    #[test]
    fn every_command_the_book_shows_exists() {
        let mut wrong = Vec::new();
        for command in commands("labs") {
            // `cargo run -p labs -- <lab>` is a pattern, not a command.
            if command.args.iter().any(|a| a.starts_with('<')) {
                continue;
            }
            let argv = std::iter::once("labs".to_string()).chain(command.args.clone());
            if let Err(e) = Cli::try_parse_from(argv)
                && e.kind() != clap::error::ErrorKind::DisplayHelp
            {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                wrong.push(format!(
                    "{}: labs {}: {first}",
                    command.place,
                    command.args.join(" ")
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "the book shows commands that do not exist:\n{}",
            wrong.join("\n")
        );
    }

    /// Each start-up the book shows is included from
    /// `generated/labs-<the arguments>.txt`, written from the banner the
    /// command would print.
    #[test]
    fn the_book_shows_the_real_banners() {
        let mut shown = 0;
        for command in commands("labs") {
            let Some(output) = &command.output else {
                continue;
            };
            let argv = std::iter::once("labs".to_string()).chain(command.args.clone());
            let banner = match Cli::try_parse_from(argv).map(|cli| cli.lab) {
                Ok(Lab::Apiserver(server)) => labs::apiserver::banner(
                    fixed_port(&command.place, &server),
                    &shown_path(&server),
                ),
                Ok(Lab::Cluster(args)) => {
                    let (options, nodes) = args.options();
                    let without = |c| args.without.contains(&c);
                    let kubelets = if without(labs::cluster::Component::Kubelet) {
                        0
                    } else {
                        nodes.nodes
                    };
                    let proxies = if without(labs::cluster::Component::Proxy) {
                        0
                    } else {
                        nodes.nodes
                    };
                    let addr = fixed_port(&command.place, &args.server);
                    let path = shown_path(&args.server);
                    labs::cluster::banner(addr, &path, &options, nodes, kubelets, proxies)
                }
                _ => continue,
            };
            let name = format!("labs-{}.txt", command.args.join("-").replace("--", ""));
            assert_eq!(
                output.trim(),
                format!("{{{{#include generated/{name}}}}}"),
                "{}: the output of `labs {}` must be included from generated/{name}",
                command.place,
                command.args.join(" ")
            );
            check_generated(&name, &banner).unwrap_or_else(|e| panic!("{}: {e}", command.place));
            shown += 1;
        }
        assert!(
            shown >= 3,
            "the book shows the cluster starting in several chapters"
        );
    }

    /// The default kubeconfig is in the temporary directory, `/tmp` unless
    /// `$TMPDIR` says otherwise: the book shows `/tmp`.
    fn shown_path(server: &ServerArgs) -> std::path::PathBuf {
        if server.kubeconfig == labs::apiserver::kubeconfig::default_path() {
            "/tmp/labs/kubeconfig".into()
        } else {
            server.kubeconfig.clone()
        }
    }

    /// A banner shown in the book names its port: with the default (0, any
    /// free port) it would differ on every run.
    fn fixed_port(place: &str, server: &ServerArgs) -> std::net::SocketAddr {
        assert_ne!(
            server.port, 0,
            "{place}: a start-up shown in the book needs --port (e.g. --port 6443)"
        );
        std::net::SocketAddr::from(([127, 0, 0, 1], server.port))
    }
}
