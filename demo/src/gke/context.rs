//! The GKE cluster the demo uses: the kubeconfig's current context (or
//! `--context`), as `gcloud container clusters get-credentials` wrote it.
//!
//! `get-credentials` names the context `gke_PROJECT_LOCATION_CLUSTER` and
//! gives it a user that logs in by running **`gke-gcloud-auth-plugin`**
//! (a client-go *exec credential plugin*: kubectl, and kube-rs, run it and
//! send the token it prints). Without that plugin every request fails with
//! a confusing "executable not found"; the demo checks first and says so in
//! one line.

use std::path::Path;

use anyhow::{Context, bail};
use kube::config::Kubeconfig;

use crate::tools::Tools;

/// The exec plugin GKE contexts log in with.
pub const AUTH_PLUGIN: &str = "gke-gcloud-auth-plugin";

/// A GKE context, read from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkeContext {
    /// The context's name, `gke_PROJECT_LOCATION_CLUSTER`.
    pub name: String,
    pub project: String,
    /// The cluster's zone or region (`asia-northeast1-a`, `asia-northeast1`).
    pub location: String,
    pub cluster: String,
}

impl GkeContext {
    /// Parses `gke_PROJECT_LOCATION_CLUSTER`. Project ids and locations
    /// have no `_`; cluster names neither, but the split keeps any rest in
    /// the cluster's name.
    pub fn parse(name: &str) -> Option<GkeContext> {
        let rest = name.strip_prefix("gke_")?;
        let mut parts = rest.splitn(3, '_');
        let (project, location, cluster) = (parts.next()?, parts.next()?, parts.next()?);
        if project.is_empty() || location.is_empty() || cluster.is_empty() {
            return None;
        }
        Some(GkeContext {
            name: name.to_string(),
            project: project.into(),
            location: location.into(),
            cluster: cluster.into(),
        })
    }

    /// The region of the location: a zone (`asia-northeast1-a`) without its
    /// letter; a region as it is. Cloud SQL and Artifact Registry live in
    /// regions.
    pub fn region(&self) -> String {
        let parts: Vec<&str> = self.location.split('-').collect();
        match parts.as_slice() {
            [.., last] if parts.len() == 3 && last.len() == 1 => parts[..2].join("-"),
            _ => self.location.clone(),
        }
    }
}

// ANCHOR: context
/// The GKE context to use (`context`, else the current one), checked: it
/// is a GKE context, and the auth plugin its user runs is installed.
pub fn gke_context(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
    tools: &Tools,
) -> anyhow::Result<GkeContext> {
    let name = match context
        .map(str::to_string)
        .or(kubeconfig.current_context.clone())
    {
        Some(name) => name,
        None => bail!(
            "no current kubeconfig context: run `gcloud container clusters get-credentials \
             CLUSTER --location LOCATION` (or pass --context)"
        ),
    };
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == name) else {
        bail!("the kubeconfig has no context {name:?}");
    };
    let Some(gke) = GkeContext::parse(&name) else {
        bail!(
            "context {name:?} is not a GKE cluster's (gke_PROJECT_LOCATION_CLUSTER): run \
             `gcloud container clusters get-credentials CLUSTER --location LOCATION` (or pass \
             --context)"
        );
    };
    let user = named.context.as_ref().and_then(|c| c.user.clone());
    let command = user
        .and_then(|u| kubeconfig.auth_infos.iter().find(|a| a.name == u))
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.exec.as_ref())
        .and_then(|e| e.command.clone());
    if let Some(command) = command
        && tools.find(&command).is_none()
    {
        let shown = Path::new(&command)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or(command.clone());
        if shown == AUTH_PLUGIN {
            bail!(
                "{AUTH_PLUGIN} is not installed, and context {name:?} logs in with it: \
                 `gcloud components install {AUTH_PLUGIN}` (or apt-get install \
                 google-cloud-cli-gke-gcloud-auth-plugin)"
            );
        }
        bail!("context {name:?} logs in with {command}, which is not installed");
    }
    Ok(gke)
}
// ANCHOR_END: context

/// Reads the kubeconfig (`path`, or as kubectl finds it) and returns the
/// checked GKE context and a client for it.
pub async fn connect(
    kubeconfig_path: Option<&Path>,
    context: Option<&str>,
    tools: &Tools,
) -> anyhow::Result<(GkeContext, kube::Client)> {
    let kubeconfig = match kubeconfig_path {
        Some(p) => Kubeconfig::read_from(p)
            .with_context(|| format!("cannot read the kubeconfig {}", p.display()))?,
        None => Kubeconfig::read().context(
            "no kubeconfig: run `gcloud container clusters get-credentials CLUSTER --location \
             LOCATION`",
        )?,
    };
    let gke = gke_context(&kubeconfig, context, tools)?;
    let client = crate::kind::client(kubeconfig, &gke.name).await?;
    Ok((gke, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_and_regions() {
        let c = GkeContext::parse("gke_my-proj_asia-northeast1-a_talk").unwrap();
        assert_eq!(
            (c.project.as_str(), c.location.as_str(), c.cluster.as_str()),
            ("my-proj", "asia-northeast1-a", "talk")
        );
        assert_eq!(c.region(), "asia-northeast1");
        let c = GkeContext::parse("gke_p_europe-west1_autopilot-1").unwrap();
        assert_eq!(c.region(), "europe-west1");
        assert_eq!(c.cluster, "autopilot-1");
        assert!(GkeContext::parse("kind-kind").is_none());
        assert!(GkeContext::parse("gke_p_loc").is_none());
    }
}
