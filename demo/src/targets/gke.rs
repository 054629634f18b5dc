//! The GKE target: the current GKE context, Cloud SQL with the Cloud SQL
//! Auth Proxy sidecar and Workload Identity, the image in Artifact
//! Registry.
//!
//! The pieces are in [`crate::gke`] and [`crate::manifests`]; this file
//! puts them behind the [`Target`] seam. Where the billable parts happen:
//!
//! * the **cluster** step only checks: the context (and the auth plugin
//!   its user logs in with) and `gcloud`. `demo down` runs it too, and must
//!   never create anything;
//! * the **image** step, the first time in a run, prints the cost and the
//!   clean-up command, *then* creates the Artifact Registry repository,
//!   Cloud SQL, the Google service account and the IAM bindings, each
//!   checked with `describe` first and recorded for `down`; then it builds
//!   the image and pushes it with bollard;
//! * `down` removes what the record lists, and nothing else.

use std::path::PathBuf;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{EnvVar, Secret, Service};
use kube::api::Api;

use super::{AnyObject, AppVersion, CloudOptions, ClusterInfo, Objects, Settings, Target};
use crate::gke::context::GkeContext;
use crate::gke::gcloud::Gcloud;
use crate::gke::registry::Repository;
use crate::gke::{GkeParams, cloud, registry};
use crate::narrate::Narrator;
use crate::probe::Probe;
use crate::probe::pod::{POD_PROBE_RPS, PodProbe, service_url};
use crate::steps::Step;
use crate::tools::Tools;

pub struct GkeTarget {
    tools: Tools,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: String,
    instance: String,
    database: String,
    repository: String,
    replicas: i32,
    /// The context, once the cluster step has checked it; before that (the
    /// dry run) what `--context` says, or placeholders.
    gke: Option<GkeContext>,
    client: Option<kube::Client>,
    gcloud: Option<Gcloud>,
    password: Option<String>,
    /// Whether the cloud side exists (checked once per run).
    provisioned: bool,
    probe_image: Option<String>,
}

impl GkeTarget {
    pub fn new(settings: &Settings, cloud: &CloudOptions) -> GkeTarget {
        GkeTarget {
            tools: cloud.tools.clone(),
            kubeconfig: cloud.kubeconfig.clone(),
            context: settings.context.clone(),
            namespace: settings.namespace.clone(),
            instance: cloud.instance.clone(),
            database: cloud.database.clone(),
            repository: cloud.repository.clone(),
            replicas: settings.replicas,
            // Known before the cluster step (for `--dry-run` and the step
            // headers): `--context`, else the kubeconfig's current context.
            gke: settings
                .context
                .clone()
                .or_else(|| current_context(cloud.kubeconfig.as_deref()))
                .as_deref()
                .and_then(GkeContext::parse),
            client: None,
            gcloud: None,
            password: None,
            provisioned: false,
            probe_image: None,
        }
    }

    fn project_and_region(&self) -> (String, String) {
        match &self.gke {
            Some(g) => (g.project.clone(), g.region()),
            None => ("PROJECT_ID".into(), "asia-northeast1".into()),
        }
    }

    fn repo(&self) -> Repository {
        let (project, location) = self.project_and_region();
        Repository {
            project,
            location,
            name: self.repository.clone(),
        }
    }

    /// The one set of parameters the manifests and `gcloud` share.
    pub fn params(&self, image: &str) -> GkeParams {
        let (project, region) = self.project_and_region();
        GkeParams {
            project,
            region,
            instance: self.instance.clone(),
            database: self.database.clone(),
            namespace: self.namespace.clone(),
            image: image.into(),
            replicas: self.replicas,
            db_password: self
                .password
                .clone()
                .unwrap_or_else(|| "GENERATED_PASSWORD".into()),
        }
    }

    /// The checked context and a client for it (once per run), and the
    /// database password: an existing Secret's is kept, since the running
    /// pods use it (provisioning sets Cloud SQL's user to the Secret's
    /// password every time), a new one is made only the first time.
    async fn connect(&mut self) -> anyhow::Result<kube::Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let (gke, client) = crate::gke::context::connect(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
            &self.tools,
        )
        .await?;
        client.apiserver_version().await.map_err(|e| {
            anyhow::anyhow!(
                "GKE cluster {} (context {}) does not answer: {}",
                gke.cluster,
                gke.name,
                super::one_line(&e)
            )
        })?;
        self.gke = Some(gke);
        let existing = Api::<Secret>::namespaced(client.clone(), &self.namespace)
            .get_opt(crate::DB_SECRET)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.data)
            .and_then(|d| d.get("password").cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        self.password = Some(existing.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()));
        self.client = Some(client.clone());
        Ok(client)
    }

    // ANCHOR: provision
    /// The cost and the clean-up command, then everything billable: the
    /// Artifact Registry repository, Cloud SQL, the Google service account
    /// and the Workload Identity binding (each checked first, recorded for
    /// `down` before it is created).
    async fn provision(
        &mut self,
        gcloud: &Gcloud,
        client: &kube::Client,
        n: &mut Narrator,
    ) -> anyhow::Result<()> {
        let p = self.params(&self.image_name("v1"));
        for line in cloud::cost_warning(&p) {
            n.say(format!("  {line}"));
        }
        let spinner = n.spinner("Artifact Registry, Cloud SQL, the Google service account");
        let mut out = Vec::new();
        let made = async {
            registry::ensure_repository(gcloud, client, &self.namespace, &self.repo(), &mut out)
                .await?;
            cloud::provision(gcloud, client, &p, &mut out).await
        }
        .await;
        spinner.finish_and_clear();
        for line in String::from_utf8_lossy(&out).lines() {
            n.say(format!("  {line}"));
        }
        made?;
        self.provisioned = true;
        Ok(())
    }
    // ANCHOR_END: provision

    fn gcloud(&mut self) -> anyhow::Result<Gcloud> {
        if self.gcloud.is_none() {
            self.gcloud = Some(Gcloud::find(&self.tools)?);
        }
        Ok(self.gcloud.clone().expect("just set"))
    }
}

/// The kubeconfig's current context, if there is a kubeconfig.
fn current_context(path: Option<&std::path::Path>) -> Option<String> {
    let config = match path {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    config.current_context
}

/// The GKE manifests' Deployment, with what the step machine adds on every
/// target: the demo's labels, the change cause `rollout history` shows,
/// the rollout strategy and deadline of the command line, and for
/// `--bad-version` an app that never becomes ready.
fn deployment(
    p: &GkeParams,
    settings: &Settings,
    version: &AppVersion,
) -> anyhow::Result<Deployment> {
    let mut d = crate::manifests::deployment(p);
    d.metadata
        .labels
        .get_or_insert_default()
        .extend(super::demo_labels());
    d.metadata.annotations = Some(
        [(
            "kubernetes.io/change-cause".to_string(),
            version.change_cause(&p.image),
        )]
        .into(),
    );
    let mut spec = serde_json::to_value(d.spec.take())?;
    spec["replicas"] = settings.replicas.into();
    spec["progressDeadlineSeconds"] = settings.progress_deadline_seconds.into();
    let int_or_percent = |v: &str| {
        v.parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| v.into())
    };
    spec["strategy"] = serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": int_or_percent(&settings.max_surge),
        "maxUnavailable": int_or_percent(&settings.max_unavailable),
    }});
    d.spec = Some(serde_json::from_value(spec)?);
    if version.broken
        && let Some(app) = d
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.first_mut())
    {
        app.env.get_or_insert_default().push(EnvVar {
            name: "STARTUP_SECONDS".into(),
            value: Some("3600".into()),
            ..EnvVar::default()
        });
    }
    Ok(d)
}

#[async_trait(?Send)]
impl Target for GkeTarget {
    async fn cluster(&mut self, _n: &mut Narrator) -> anyhow::Result<(kube::Client, ClusterInfo)> {
        let client = self.connect().await?;
        // `gcloud` is needed by every later step (and by `down`): say now,
        // in one line, when it is missing.
        self.gcloud()?;
        let gke = self.gke.clone().expect("connected");
        let p = self.params(&self.image_name("v1"));
        Ok((
            client,
            ClusterInfo {
                description: format!(
                    "GKE cluster {} in {} (project {}, context {})",
                    gke.cluster, gke.location, gke.project, gke.name
                ),
                notes: vec![format!(
                    "database: Cloud SQL instance {} ({}), reached through the Cloud SQL Auth \
                     Proxy sidecar as Google service account {} (made in the image step)",
                    p.instance,
                    p.instance_connection_name(),
                    p.google_service_account()
                )],
                database: true,
            },
        ))
    }

    fn image_name(&self, version: &str) -> String {
        self.repo().image(version)
    }

    // ANCHOR: image
    async fn image(&mut self, version: &str, n: &mut Narrator) -> anyhow::Result<String> {
        let client = self.connect().await?;
        let gcloud = self.gcloud()?;
        let docker = labs::images::connect().await?;
        if !self.provisioned {
            self.provision(&gcloud, &client, n).await?;
        }
        let local = super::build_app_image(&docker, version, n).await?;
        let repository = self.repo();
        let remote = repository.image(version);
        let credentials = registry::credentials(&gcloud, &repository)?;
        n.say(format!("  docker push {remote}"));
        let spinner = n.spinner(format!("docker push {remote}"));
        let mut out = Vec::new();
        let pushed = registry::push(&docker, credentials, &local, &remote, &mut out).await;
        spinner.finish_and_clear();
        for line in String::from_utf8_lossy(&out).lines() {
            n.say(format!("    {line}"));
        }
        pushed?;
        self.probe_image.get_or_insert(remote.clone());
        Ok(remote)
    }
    // ANCHOR_END: image

    fn objects(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Objects> {
        let p = self.params(image);
        let labelled = |mut meta: kube::api::ObjectMeta| {
            meta.labels
                .get_or_insert_default()
                .extend(super::demo_labels());
            meta
        };
        let mut account = crate::manifests::service_account(&p);
        account.metadata = labelled(account.metadata);
        let mut secret = crate::manifests::secret(&p);
        secret.metadata = labelled(secret.metadata);
        let mut service = crate::manifests::service(&p);
        service.metadata = labelled(service.metadata);
        Ok(Objects {
            settings: vec![AnyObject::from(&account)?, AnyObject::from(&secret)?],
            deployment: deployment(&p, settings, version)?,
            service,
        })
    }

    async fn start_probe(
        &mut self,
        client: &kube::Client,
        service: &Service,
    ) -> anyhow::Result<Box<dyn Probe>> {
        let url = service_url(client, service).await?;
        let image = self
            .probe_image
            .clone()
            .unwrap_or_else(|| self.image_name("v1"));
        Ok(Box::new(
            PodProbe::start(client, &self.namespace, &image, &url, POD_PROBE_RPS).await?,
        ))
    }

    fn commands(&self, step: Step, _settings: &Settings) -> Vec<String> {
        let p = self.params(&self.image_name("v1"));
        match step {
            Step::Cluster => vec![format!(
                "gcloud container clusters get-credentials {} --location {}",
                self.gke
                    .as_ref()
                    .map(|g| g.cluster.as_str())
                    .unwrap_or("CLUSTER"),
                self.gke
                    .as_ref()
                    .map(|g| g.location.clone())
                    .unwrap_or_else(|| p.region.clone())
            )],
            Step::Image => {
                // What it costs and how to remove it, before anything
                // billable; then the repository, Cloud SQL and the
                // identities; then the images.
                let mut c: Vec<String> = cloud::cost_warning(&p)
                    .into_iter()
                    .map(|l| format!("# {l}"))
                    .collect();
                c.push(format!("# {}", self.repo().step().purpose));
                c.push(self.repo().step().line());
                c.extend(crate::gke::gcloud_commands(&p));
                for v in ["v1", "v2"] {
                    c.push(labs::images::ImageSpec::app(v).cli());
                    c.push(format!(
                        "docker tag {}:{v} {}",
                        labs::images::APP_REPOSITORY,
                        self.image_name(v)
                    ));
                    c.push(format!("docker push {}", self.image_name(v)));
                }
                c
            }
            _ => Vec::new(),
        }
    }

    // ANCHOR: down
    async fn down(&mut self, client: &kube::Client, n: &mut Narrator) -> anyhow::Result<()> {
        let gcloud = self.gcloud()?;
        let (project, _) = self.project_and_region();
        let mut out = Vec::new();
        let removed = cloud::remove(&gcloud, client, &project, &self.namespace, &mut out).await;
        for line in String::from_utf8_lossy(&out).lines() {
            n.say(format!("  {line}"));
        }
        let removed = removed?;
        if removed.is_empty() {
            n.say("  no cloud resource of the demo's was recorded: nothing billable is left");
        }
        Ok(())
    }
    // ANCHOR_END: down

    async fn finish(self: Box<Self>, keep: bool, n: &mut Narrator) -> anyhow::Result<()> {
        if keep {
            n.say(format!(
                "The app keeps running on GKE, and Cloud SQL keeps billing: {}",
                cloud::cleanup_command(&self.namespace)
            ));
        }
        Ok(())
    }
}
