//! The app's image in **Artifact Registry**, where GKE's nodes pull it from.
//!
//! A GKE node cannot see the images of the machine that built them: they
//! have to be pushed to a registry the node can pull from. Artifact Registry
//! is Google Cloud's; a Docker repository in region `REGION` of project
//! `PROJECT` is the host `REGION-docker.pkg.dev` with paths
//! `PROJECT/REPOSITORY/IMAGE:TAG`. GKE's nodes may pull from repositories
//! of their own project without any further setup.
//!
//! Pushing is the Docker engine's job (`docker push`, through bollard);
//! the engine needs credentials, which `gcloud auth print-access-token`
//! gives: a short-lived OAuth token, sent as the password of the fixed user
//! name `oauth2accesstoken` (what `gcloud auth configure-docker` sets up
//! for the CLI).

use std::io::Write;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;

use super::Created;
use super::GcloudStep;
use super::cloud::run_step;
use super::gcloud::Gcloud;

/// The repository the demo creates for its images.
pub const DEFAULT_REPOSITORY: &str = "workbook";
/// The app's image name inside the repository.
pub const IMAGE_NAME: &str = "demo-app";
/// The user name that says "the password is an OAuth access token".
pub const TOKEN_USER: &str = "oauth2accesstoken";

/// Where the repository lives and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    pub project: String,
    /// The region (`asia-northeast1`): the same as the cluster's, so pulls
    /// stay in the region.
    pub location: String,
    pub name: String,
}

impl Repository {
    /// The registry's host name, `REGION-docker.pkg.dev`.
    pub fn host(&self) -> String {
        format!("{}-docker.pkg.dev", self.location)
    }

    /// `REGION-docker.pkg.dev/PROJECT/REPO/demo-app:VERSION`.
    pub fn image(&self, version: &str) -> String {
        format!(
            "{}/{}/{}/{IMAGE_NAME}:{version}",
            self.host(),
            self.project,
            self.name
        )
    }

    // ANCHOR: repository_step
    /// `gcloud artifacts repositories create`, checked with `describe`.
    pub fn step(&self) -> GcloudStep {
        let project = format!("--project={}", self.project);
        let location = format!("--location={}", self.location);
        let args = |a: &[&str]| -> Vec<String> {
            a.iter()
                .map(|s| s.to_string())
                .chain([location.clone(), project.clone()])
                .collect()
        };
        GcloudStep {
            purpose: "the Artifact Registry repository the nodes pull the app from",
            args: args(&[
                "artifacts",
                "repositories",
                "create",
                &self.name,
                "--repository-format=docker",
            ]),
            check: Some(args(&["artifacts", "repositories", "describe", &self.name])),
            when_present: None,
            creates: Some(Created::Repository {
                name: self.name.clone(),
                location: self.location.clone(),
            }),
        }
    }
    // ANCHOR_END: repository_step
}

/// Creates the repository unless it exists (recording it for `down`).
pub async fn ensure_repository(
    gcloud: &Gcloud,
    client: &kube::Client,
    namespace: &str,
    repository: &Repository,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    run_step(gcloud, client, namespace, &repository.step(), out).await
}

/// An access token for the registry, from `gcloud auth print-access-token`.
pub fn credentials(gcloud: &Gcloud, repository: &Repository) -> anyhow::Result<DockerCredentials> {
    let token = gcloud
        .run(&["auth".into(), "print-access-token".into()])?
        .trim()
        .to_string();
    if token.is_empty() {
        bail!("gcloud auth print-access-token printed no token: run `gcloud auth login`");
    }
    Ok(DockerCredentials {
        username: Some(TOKEN_USER.into()),
        password: Some(token),
        serveraddress: Some(repository.host()),
        ..DockerCredentials::default()
    })
}

// ANCHOR: push
/// `docker tag LOCAL REMOTE` and `docker push REMOTE`, through the engine.
pub async fn push(
    docker: &Docker,
    credentials: DockerCredentials,
    local: &str,
    remote: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (repo, tag) = remote
        .rsplit_once(':')
        .with_context(|| format!("{remote} has no tag"))?;
    let options = TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    docker
        .tag_image(local, Some(options))
        .await
        .with_context(|| format!("cannot tag {local} as {remote}"))?;
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(repo, Some(options), Some(credentials));
    let mut last = String::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("docker push {remote} failed"))?;
        if let Some(status) = info.status {
            // One line per state, not every progress tick.
            let line = status;
            if line != last {
                writeln!(out, "{line}")?;
                last = line;
            }
        }
    }
    Ok(())
}
// ANCHOR_END: push

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let r = Repository {
            project: "my-proj".into(),
            location: "asia-northeast1".into(),
            name: "workbook".into(),
        };
        assert_eq!(
            r.image("v2"),
            "asia-northeast1-docker.pkg.dev/my-proj/workbook/demo-app:v2"
        );
        assert_eq!(
            r.step().line(),
            "gcloud artifacts repositories create workbook --repository-format=docker \
             --location=asia-northeast1 --project=my-proj"
        );
    }
}
