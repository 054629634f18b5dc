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

use clap::{Parser, ValueEnum};

/// The talk's rolling-update demo: build, deploy, roll out, watch, roll back.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where to run the demo.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    target: Target,
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
    print!("{}", plan::render(args.target));
}
