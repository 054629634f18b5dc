//! `demo`: the talk's live demo, step by step.
//!
//! The talk ended with a demo on GKE: build the app image, push it, give the
//! app its database settings, deploy it, change the app and roll the change
//! out with a rolling update, then look at the history and roll back. This
//! binary performs that demo against one of three targets. The embedded lab
//! cluster (the default) needs neither Docker nor a cloud account.
//!
//! What exists today is the plan: each step, and what it does on the chosen
//! target. The steps run for real as the labs they rely on land (the API
//! server, the controllers, the kubelet, the Deployment controller).

mod plan;

use clap::{Parser, Subcommand, ValueEnum};
use demo::gke::GkeParams;

/// The talk's rolling-update demo: build, deploy, roll out, watch, roll back.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where to run the demo.
    #[arg(long, value_enum, default_value_t = Target::Local, global = true)]
    target: Target,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the plan: each step and what it does on the target (the default).
    Plan,
    /// Print the Kubernetes manifests the demo applies (today: `--target gke`,
    /// the app with the Cloud SQL Auth Proxy as a native sidecar), then the
    /// `gcloud` commands that create what they need.
    Manifests(ManifestArgs),
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
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value_t = 3)]
    replicas: i32,
    /// The app's version (the image tag; never `latest`).
    #[arg(long, default_value = "v1")]
    version: String,
}

/// The clusters the demo can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The embedded lab cluster: no Docker, no cloud.
    Local,
    /// An existing kind cluster (context `kind-<name>`).
    Kind,
    /// An existing GKE cluster (context from `gcloud container clusters get-credentials`).
    Gke,
}

fn main() {
    let args = Args::parse();
    match args.command {
        None | Some(Command::Plan) => print!("{}", plan::render(args.target)),
        Some(Command::Manifests(m)) => {
            if args.target != Target::Gke {
                eprintln!(
                    "demo: manifests: only --target gke is generated so far (the local and kind \
                     targets come with the live demo)"
                );
                std::process::exit(2);
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
                namespace: m.namespace,
                replicas: m.replicas,
                db_password: "GENERATED_PASSWORD".into(),
            };
            match demo::manifests::manifests_yaml(&params) {
                Ok(yaml) => print!("{yaml}"),
                Err(e) => {
                    eprintln!("demo: cannot render the manifests: {e}");
                    std::process::exit(1);
                }
            }
            eprintln!("# The gcloud commands that create what these manifests need:");
            for line in demo::gke::gcloud_commands(&params) {
                eprintln!("{line}");
            }
        }
    }
}
