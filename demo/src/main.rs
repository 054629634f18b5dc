//! `demo`: the talk's live demo, step by step.
//!
//! The talk ended with a demo on GKE: build the app image, register it,
//! give the app its account and database settings, deploy it, change the
//! app and roll the change out with a rolling update, then look at the
//! history and roll back. This binary performs that demo against one of
//! three targets; the embedded lab cluster (the default) needs neither
//! Docker nor a cloud account. `demo` alone runs every step
//! (`demo run`); each step also exists on its own.

use std::io::Write;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use demo::gke::GkeParams;
use demo::narrate::Narrator;
use demo::steps::{Demo, RunOptions};
use demo::targets::local::LocalOptions;
use demo::targets::{AppVersion, CloudOptions, LocalRuntime, Settings, TargetKind};

/// The talk's rolling-update demo: build, deploy, roll out under traffic,
/// watch, look at the history, roll back.
#[derive(Parser, Debug)]
#[command(version, about, name = "demo")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The flags every step understands.
#[derive(clap::Args, Debug, Clone)]
struct Global {
    /// Where to run the demo.
    #[arg(long, value_enum, default_value_t = TargetKind::Local, global = true)]
    target: TargetKind,
    /// The kubeconfig context (default: the current one; local: the cluster
    /// this process starts, or the one `demo up` runs).
    #[arg(long, global = true)]
    context: Option<String>,
    /// The namespace of the app's objects.
    #[arg(long, default_value = "default", global = true)]
    namespace: String,
    /// The Deployment's replicas.
    #[arg(long, default_value_t = 3, global = true)]
    replicas: i32,
    /// How many pods above `replicas` a rollout may add (number or percentage).
    #[arg(long, default_value = "25%", global = true)]
    max_surge: String,
    /// How many pods below `replicas` may be unavailable during a rollout.
    #[arg(long, default_value = "25%", global = true)]
    max_unavailable: String,
    /// The local cluster's container runtime.
    #[arg(long, value_enum, default_value_t = LocalRuntime::Process, global = true)]
    runtime: LocalRuntime,
    /// Do not wait for Enter before each step (never waits when stdin is not a terminal).
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    /// Print the manifests and the API calls instead of making them.
    #[arg(long, global = true)]
    dry_run: bool,
    /// `json`: the narration goes to stderr, a JSON report to stdout.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    /// Roll out a version that never becomes ready: the rollout stalls, the
    /// old pods keep serving, and the rollback restores it.
    #[arg(long, global = true)]
    bad_version: bool,
    /// Leave the local cluster running at the end and print `export KUBECONFIG=…`.
    #[arg(long, global = true)]
    keep: bool,
    /// kind: the cluster's name (its context is `kind-<name>`).
    #[arg(long, default_value = demo::kind::DEFAULT_CLUSTER, global = true)]
    kind_cluster: String,
    /// kind: create the cluster with the kind CLI when there is none.
    #[arg(long, global = true)]
    create: bool,
    /// GKE: the gcloud program (default: `$WORKBOOK_GCLOUD`, else `gcloud` on the PATH).
    #[arg(long, global = true, value_name = "PATH")]
    gcloud: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every step, in order (the default).
    Run(VersionArg),
    /// Step 1: the cluster. On local it starts the lab cluster and keeps it
    /// in the foreground, for the single steps in another terminal.
    Up,
    /// Step 2: build the image (and load or push it, on kind and GKE).
    Build(VersionArg),
    /// Steps 3 and 4: the account, the connection settings, the Deployment and the Service.
    Deploy,
    /// Step 5: deploy the changed app (a rolling update) and watch it.
    Update(VersionArg),
    /// The rollout's state, by `kubectl rollout status`'s rules.
    Status,
    /// Step 6: the revisions, as `kubectl rollout history` shows them.
    History,
    /// Step 7: roll back, as `kubectl rollout undo` does.
    Rollback {
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Remove everything the demo made.
    Down,
    /// Print the manifests the demo applies (`--target gke`: with the Cloud
    /// SQL Auth Proxy, then the `gcloud` commands that create what they need).
    Manifests(ManifestArgs),
    /// Print each step and what it does on the target.
    Plan,
    /// Run the whole local demo quietly and report its times (a benchmark).
    Bench {
        /// How many runs.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// Print a shell completion script (`demo completions bash > demo.bash`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `demo man | man -l -`.
    Man,
    /// Run the workload (`demo-app`) as a child process: how the process
    /// runtime starts a container. `demo-app`'s command line.
    #[command(hide = true)]
    App(demo_app::cli::Cli),
}

#[derive(clap::Args, Debug, Clone)]
struct VersionArg {
    /// The changed app's version (the image tag; never `latest`).
    #[arg(long, default_value = "v2")]
    version: String,
}

/// The GKE run's settings (placeholders by default, as the book shows them).
#[derive(clap::Args, Debug)]
struct ManifestArgs {
    #[arg(long, default_value = "PROJECT_ID")]
    project: String,
    #[arg(long, default_value = "asia-northeast1")]
    region: String,
    /// The Cloud SQL instance.
    #[arg(long, default_value = "workbook-db")]
    instance: String,
    #[arg(long, default_value = "app")]
    database: String,
    /// The app's version (the image tag; never `latest`).
    #[arg(long, default_value = "v1")]
    version: String,
}

fn settings(g: &Global) -> Settings {
    Settings {
        target: g.target,
        context: g.context.clone(),
        namespace: g.namespace.clone(),
        replicas: g.replicas,
        max_surge: g.max_surge.clone(),
        max_unavailable: g.max_unavailable.clone(),
        runtime: g.runtime,
        dry_run: g.dry_run,
        ..Settings::default()
    }
}

/// The kind and GKE targets' own flags.
fn cloud_options(g: &Global) -> CloudOptions {
    let mut cloud = CloudOptions {
        kind_cluster: g.kind_cluster.clone(),
        create: g.create,
        ..CloudOptions::default()
    };
    if let Some(gcloud) = &g.gcloud {
        cloud.tools.gcloud = Some(gcloud.clone());
    }
    cloud
}

fn main() {
    let cli = Cli::parse();
    if let Some(Command::App(app)) = cli.command {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
        let result = tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(demo_app::cli::run(app)));
        exit_on_error("demo-app", result);
        return;
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli)));
    exit_on_error("demo", result);
}

/// Errors are one readable line, never a backtrace.
fn exit_on_error(who: &str, result: anyhow::Result<()>) {
    if let Err(err) = result {
        eprintln!("{who}: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    let command = cli.command.unwrap_or(Command::Run(VersionArg {
        version: "v2".into(),
    }));
    let s = settings(&g);
    let json = g.output == Output::Json;
    match command {
        Command::Plan => {
            print!("{}", demo::plan::render(g.target));
            return Ok(());
        }
        Command::Manifests(m) => return manifests(&s, m),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "demo", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        Command::Bench { runs } => return bench(&s, runs).await,
        Command::App(_) => unreachable!("handled before the runtime starts"),
        _ => {}
    }
    // The single steps on local use the cluster `demo up` runs; `run` and
    // `up` start their own.
    let starts_cluster = matches!(command, Command::Run(_) | Command::Up);
    let local = LocalOptions {
        attach: !starts_cluster,
        ..LocalOptions::default()
    };
    let target = demo::targets::open_with(&s, local, &cloud_options(&g))?;
    let mut demo = Demo::new(target, s.clone(), Narrator::terminal(g.yes, json));
    let keep = g.keep || matches!(command, Command::Up);
    let mut report = serde_json::Value::Null;
    // Ctrl-C ends the step in progress; what was applied stays applied
    // (server-side apply: re-running continues from there), and the local
    // cluster is stopped properly below, its processes with it.
    let outcome = tokio::select! {
        r = step(&mut demo, command, &g, &mut report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "interrupted: what was applied stays; run the command again to continue"
        )),
    };
    let Demo { target, mut n, .. } = demo;
    let finished = target
        .finish(keep && outcome.is_ok() && !s.dry_run, &mut n)
        .await;
    outcome?;
    finished?;
    if json {
        let mut out = std::io::stdout();
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

async fn step(
    demo: &mut Demo,
    command: Command,
    g: &Global,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    let v1 = AppVersion::good("v1");
    match command {
        Command::Run(v) => {
            let opts = RunOptions {
                version: v.version,
                bad_version: g.bad_version,
                ..RunOptions::default()
            };
            *report = serde_json::to_value(demo::steps::run_all(demo, &opts).await?)?;
        }
        Command::Up => demo.cluster().await?,
        Command::Build(v) => {
            demo.image(&[&v.version]).await?;
        }
        Command::Deploy => {
            demo.cluster().await?;
            let image = demo.image(&["v1"]).await?.remove(0);
            let objects = demo.target.objects(&demo.settings, &image, &v1)?;
            demo.settings(&objects).await?;
            demo.deploy(&objects).await?;
        }
        Command::Update(v) => {
            demo.cluster().await?;
            let version = AppVersion {
                version: v.version.clone(),
                broken: g.bad_version,
            };
            let image = demo.image(&[&v.version]).await?.remove(0);
            let objects = demo.target.objects(&demo.settings, &image, &version)?;
            let (completed, took) = demo.update(&objects, &version, None).await?;
            // On its own, a stalled rollout is a failure, as for `kubectl
            // rollout status` (exit 1).
            anyhow::ensure!(
                completed,
                "the rollout does not progress: deployment \"{}\" exceeded its progress \
                 deadline (roll back with `demo rollback`)",
                demo::APP
            );
            *report = serde_json::json!({"completed": completed, "seconds": took.as_secs_f64()});
        }
        Command::Status => {
            demo.cluster().await?;
            let status = demo.status().await?;
            *report = serde_json::json!({"status": format!("{status:?}")});
        }
        Command::History => {
            demo.cluster().await?;
            *report = serde_json::to_value(demo.history().await?)?;
        }
        Command::Rollback { to_revision } => {
            demo.cluster().await?;
            let (version, took) = demo.rollback(to_revision, None).await?;
            *report = serde_json::json!({"version": version, "seconds": took.as_secs_f64()});
        }
        Command::Down => {
            demo.cluster().await?;
            demo.down().await?;
        }
        _ => unreachable!("handled in run"),
    }
    Ok(())
}

fn manifests(s: &Settings, m: ManifestArgs) -> anyhow::Result<()> {
    if s.target != TargetKind::Gke {
        let target = demo::targets::open(s, LocalOptions::default())?;
        let image = target.image_name(&m.version);
        let objects = target.objects(s, &image, &AppVersion::good(&m.version))?;
        print!("{}", demo::workload::yaml(&objects)?);
        return Ok(());
    }
    let params = GkeParams {
        image: format!(
            "{}-docker.pkg.dev/{}/workbook/demo-app:{}",
            m.region, m.project, m.version
        ),
        project: m.project,
        region: m.region,
        instance: m.instance,
        database: m.database,
        namespace: s.namespace.clone(),
        replicas: s.replicas,
        db_password: "GENERATED_PASSWORD".into(),
    };
    let yaml = demo::manifests::manifests_yaml(&params)
        .map_err(|e| anyhow::anyhow!("cannot render the manifests: {e}"))?;
    print!("{yaml}");
    eprintln!("# The gcloud commands that create what these manifests need:");
    for line in demo::gke::gcloud_commands(&params) {
        eprintln!("{line}");
    }
    Ok(())
}

// ANCHOR: bench
/// `demo bench`: the whole local demo, `runs` times, narration discarded;
/// one line per run and the mean. The target the issue sets: under 45 s
/// per run on the project's 2-core machine, cluster start included.
async fn bench(s: &Settings, runs: usize) -> anyhow::Result<()> {
    let mut totals = Vec::new();
    println!("run  total    cluster  rollout  rollback  requests  errors");
    for i in 1..=runs.max(1) {
        let target = demo::targets::open(s, LocalOptions::default())?;
        let mut demo = Demo::new(target, s.clone(), Narrator::to(Box::new(std::io::sink())));
        let report = demo::steps::run_all(&mut demo, &RunOptions::default()).await;
        let Demo { target, mut n, .. } = demo;
        target.finish(false, &mut n).await?;
        let r = report?;
        println!(
            "{i:<4} {:>5.1} s  {:>5.1} s  {:>5.1} s  {:>6.1} s  {:>8}  {:>6}",
            r.total_seconds,
            r.cluster_seconds,
            r.rollout_seconds,
            r.rollback_seconds,
            r.probe.requests,
            r.probe.errors
        );
        totals.push(Duration::from_secs_f64(r.total_seconds));
    }
    let mean = totals.iter().sum::<Duration>() / totals.len() as u32;
    println!("mean {:.1} s per run (target: < 45 s)", mean.as_secs_f64());
    Ok(())
}
// ANCHOR_END: bench

/// Every `cargo run -p demo -- …` a chapter shows must parse here: a
/// renamed subcommand or flag fails this test, not a reader.
#[cfg(test)]
mod book {
    use super::*;

    #[test]
    fn every_command_the_book_shows_exists() {
        let commands = labs::lab::book::commands("demo");
        assert!(!commands.is_empty(), "the book shows the demo's commands");
        let mut wrong = Vec::new();
        for command in commands {
            if command.args.iter().any(|a| a.starts_with('<')) {
                continue;
            }
            let argv = std::iter::once("demo".to_string()).chain(command.args.clone());
            if let Err(e) = Cli::try_parse_from(argv)
                && e.kind() != clap::error::ErrorKind::DisplayHelp
            {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                wrong.push(format!(
                    "{}: demo {}: {first}",
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
}
