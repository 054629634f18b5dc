//! The kind target: the demo on a Kubernetes cluster whose nodes are
//! Docker containers ([kind](https://kind.sigs.k8s.io), "Kubernetes in
//! Docker").
//!
//! kind is the closest thing to GKE a laptop runs: real kubelets, real
//! containerd, the real API server. What the demo needs from it:
//!
//! * **the cluster**: `kind create cluster --name NAME` writes a kubeconfig
//!   context called `kind-NAME`; the demo talks to that context with
//!   kube-rs ([`client`]). It creates the cluster only when asked
//!   (`--create`), and then with the `kind` CLI itself ([`create_cluster`]);
//! * **the image**: no registry is involved; the image built with bollard
//!   is copied into every node ([`load`]);
//! * **the database**: PostgreSQL as a pod in the cluster, behind the same
//!   proxy sidecar the app uses everywhere ([`manifests`]).

pub mod load;
pub mod manifests;

use std::path::Path;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::tools::Tools;

/// The label kind puts on every node container, with the cluster's name.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// kind's default cluster name (`kind create cluster` without `--name`).
pub const DEFAULT_CLUSTER: &str = "kind";

/// The kubeconfig context kind writes for cluster `name`.
pub fn context_name(cluster: &str) -> String {
    format!("kind-{cluster}")
}

/// The cluster's name from a `kind-NAME` context.
pub fn cluster_of_context(context: &str) -> Option<&str> {
    context.strip_prefix("kind-").filter(|n| !n.is_empty())
}

/// The kubeconfig: `path` if given, else as kubectl finds it (`KUBECONFIG`,
/// then `~/.kube/config`). Missing entirely reads as empty.
pub fn read_kubeconfig(path: Option<&Path>) -> anyhow::Result<Kubeconfig> {
    match path {
        Some(path) => Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display())),
        None => Ok(Kubeconfig::read().unwrap_or_default()),
    }
}

/// Whether the kubeconfig has context `name`.
pub fn has_context(kubeconfig: &Kubeconfig, name: &str) -> bool {
    kubeconfig.contexts.iter().any(|c| c.name == name)
}

/// A kube-rs client for context `context` of `kubeconfig`.
pub async fn client(kubeconfig: Kubeconfig, context: &str) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("cannot use kubeconfig context {context}"))?;
    kube::Client::try_from(config).with_context(|| format!("cannot connect to context {context}"))
}

// ANCHOR: cluster
/// The context to use for kind cluster `cluster`: its `kind-NAME` context
/// if the kubeconfig has it; otherwise, with `create`, the cluster is made
/// with `kind create cluster --name NAME` (which writes the context);
/// otherwise one line saying how to make it.
pub fn ensure_cluster(
    tools: &Tools,
    kubeconfig: Option<&Path>,
    cluster: &str,
    create: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Kubeconfig> {
    let context = context_name(cluster);
    let config = read_kubeconfig(kubeconfig)?;
    if has_context(&config, &context) {
        writeln!(out, "Using kind cluster {cluster:?} (context {context})")?;
        return Ok(config);
    }
    if !create {
        bail!(
            "no kubeconfig context {context}: create the cluster with `kind create cluster \
             --name {cluster}`, or run the demo with --create"
        );
    }
    create_cluster(tools, kubeconfig, cluster, out)?;
    let config = read_kubeconfig(kubeconfig)?;
    if !has_context(&config, &context) {
        bail!("kind created cluster {cluster:?} but the kubeconfig has no context {context}");
    }
    Ok(config)
}
// ANCHOR_END: cluster

/// `kind create cluster --name NAME [--kubeconfig PATH] --wait 2m`: the one
/// thing the demo leaves to the kind CLI, because it is what knows how to
/// boot a node image.
pub fn create_cluster(
    tools: &Tools,
    kubeconfig: Option<&Path>,
    cluster: &str,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let explicit = tools.kind.as_ref().map(|p| p.display().to_string());
    let Some(kind) = tools.find(explicit.as_deref().unwrap_or("kind")) else {
        bail!(
            "the kind CLI is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/\
             #installation): install it, or create the cluster some other way and pass --context"
        );
    };
    let mut args = vec![
        "create".to_string(),
        "cluster".into(),
        format!("--name={cluster}"),
        "--wait=2m".into(),
    ];
    if let Some(path) = kubeconfig {
        args.push(format!("--kubeconfig={}", path.display()));
    }
    writeln!(out, "kind {}", args.join(" "))?;
    let output = std::process::Command::new(&kind)
        .args(&args)
        .output()
        .with_context(|| format!("cannot run {}", kind.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("kind create cluster failed: {last}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names() {
        assert_eq!(context_name("kind"), "kind-kind");
        assert_eq!(cluster_of_context("kind-talk"), Some("talk"));
        assert_eq!(cluster_of_context("gke_p_z_c"), None);
        assert_eq!(cluster_of_context("kind-"), None);
    }

    #[test]
    fn without_a_context_or_kind_one_line_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").unwrap();
        let tools = Tools {
            path: Some(dir.path().as_os_str().to_owned()),
            ..Tools::default()
        };
        let mut out = Vec::new();
        let err = ensure_cluster(&tools, Some(&kubeconfig), "talk", false, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind create cluster --name talk"), "{err}");
        let err = ensure_cluster(&tools, Some(&kubeconfig), "talk", true, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("the kind CLI is not installed"), "{err}");
        assert!(!err.contains('\n'));
    }
}
