//! The kind target: an existing kind cluster (or one `--create` makes with
//! the kind CLI), the image loaded into its nodes, PostgreSQL as a pod.
//!
//! The pieces are in [`crate::kind`]; this file puts them behind the
//! [`Target`] seam, so the step machine runs the same steps as on the local
//! target.

use std::path::PathBuf;

use anyhow::Context;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use kube::api::{Api, ListParams, PostParams};

use super::{AppVersion, CloudOptions, ClusterInfo, Objects, Settings, Target, demo_labels};
use crate::kind::manifests::{KindParams, POSTGRES, POSTGRES_IMAGE};
use crate::narrate::Narrator;
use crate::probe::Probe;
use crate::probe::pod::{POD_PROBE_RPS, PodProbe, service_url};
use crate::steps::Step;
use crate::tools::Tools;

pub struct KindTarget {
    cluster: String,
    create: bool,
    tools: Tools,
    kubeconfig: Option<PathBuf>,
    namespace: String,
    database: String,
    client: Option<kube::Client>,
    /// The database password: read back from PostgreSQL's Secret when the
    /// cluster has one (PostgreSQL keeps the password it started with),
    /// else a new one. `None` before the cluster step (`--dry-run`).
    password: Option<String>,
    /// The first image this run loaded: what the probe pod runs.
    probe_image: Option<String>,
}

impl KindTarget {
    pub fn new(settings: &Settings, cloud: &CloudOptions) -> KindTarget {
        // `--context kind-talk` names the cluster as well as `--kind-cluster talk`.
        let cluster = settings
            .context
            .as_deref()
            .and_then(crate::kind::cluster_of_context)
            .unwrap_or(&cloud.kind_cluster)
            .to_string();
        KindTarget {
            cluster,
            create: cloud.create,
            tools: cloud.tools.clone(),
            kubeconfig: cloud.kubeconfig.clone(),
            namespace: settings.namespace.clone(),
            database: cloud.database.clone(),
            client: None,
            password: None,
            probe_image: None,
        }
    }

    fn params(&self) -> KindParams {
        KindParams {
            namespace: self.namespace.clone(),
            database: self.database.clone(),
            db_password: self
                .password
                .clone()
                .unwrap_or_else(|| "GENERATED_PASSWORD".into()),
        }
    }
}

/// Creates the namespace when it does not exist, labelled as the demo's
/// (so `down` removes it, and only then).
pub(crate) async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<bool> {
    let api = Api::<Namespace>::all(client.clone());
    if api.get_opt(name).await?.is_some() {
        return Ok(false);
    }
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(demo_labels()),
            ..Default::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("cannot create namespace {name}"))?;
    Ok(true)
}

/// Deletes the namespace if the demo made it (it carries the demo's label).
pub(crate) async fn remove_namespace(
    client: &kube::Client,
    name: &str,
    n: &mut Narrator,
) -> anyhow::Result<()> {
    let api = Api::<Namespace>::all(client.clone());
    let Some(ns) = api.get_opt(name).await? else {
        return Ok(());
    };
    let ours = ns.metadata.labels.as_ref().and_then(|l| {
        l.get("app.kubernetes.io/managed-by")
            .map(|m| m == crate::FIELD_MANAGER)
    });
    if ours == Some(true) {
        api.delete(name, &Default::default()).await?;
        n.say(format!("  namespace/{name} deleted"));
    }
    Ok(())
}

#[async_trait(?Send)]
impl Target for KindTarget {
    async fn cluster(&mut self, n: &mut Narrator) -> anyhow::Result<(kube::Client, ClusterInfo)> {
        if let Some(client) = &self.client {
            return Ok((client.clone(), ClusterInfo::default()));
        }
        let mut out = Vec::new();
        let found = crate::kind::ensure_cluster(
            &self.tools,
            self.kubeconfig.as_deref(),
            &self.cluster,
            self.create,
            &mut out,
        );
        for line in String::from_utf8_lossy(&out).lines() {
            n.say(format!("  {line}"));
        }
        let config = found?;
        let context = crate::kind::context_name(&self.cluster);
        let client = crate::kind::client(config, &context).await?;
        client.apiserver_version().await.map_err(|e| {
            anyhow::anyhow!(
                "kind cluster {:?} (context {context}) does not answer: {}; is its node \
                 container running (`docker start {}-control-plane`)?",
                self.cluster,
                super::one_line(&e),
                self.cluster
            )
        })?;
        if !crate::apply::is_shared_namespace(&self.namespace)
            && ensure_namespace(&client, &self.namespace).await?
        {
            n.say(format!("  namespace/{} created", self.namespace));
        }
        // PostgreSQL set its password when it first started: keep it.
        let existing = Api::<Secret>::namespaced(client.clone(), &self.namespace)
            .get_opt(POSTGRES)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get("POSTGRES_PASSWORD").cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        self.password = Some(existing.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()));
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        self.client = Some(client.clone());
        Ok((
            client,
            ClusterInfo {
                description: format!(
                    "kind cluster {:?} (context {context}): {nodes} node(s), each a Docker \
                     container with its own containerd",
                    self.cluster
                ),
                notes: vec![format!(
                    "database: PostgreSQL ({POSTGRES_IMAGE}) as a pod in the cluster, behind \
                     the app's proxy sidecar"
                )],
                database: true,
            },
        ))
    }

    fn image_name(&self, version: &str) -> String {
        format!("{}:{version}", labs::images::APP_REPOSITORY)
    }

    // ANCHOR: image
    async fn image(&mut self, version: &str, n: &mut Narrator) -> anyhow::Result<String> {
        let docker = labs::images::connect().await?;
        let image = super::build_app_image(&docker, version, n).await?;
        let spinner = n.spinner(format!(
            "kind load docker-image {image} --name {}",
            self.cluster
        ));
        let mut out = Vec::new();
        let loaded = crate::kind::load::load_image(&docker, &self.cluster, &image, &mut out).await;
        spinner.finish_and_clear();
        for line in String::from_utf8_lossy(&out).lines() {
            n.say(format!("  {line}"));
        }
        let loaded = loaded?;
        n.say(format!(
            "  loaded {image} ({:.1} MB) into {}",
            loaded.archive_bytes as f64 / 1e6,
            loaded.nodes.join(", ")
        ));
        self.probe_image.get_or_insert(image.clone());
        Ok(image)
    }
    // ANCHOR_END: image

    fn objects(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Objects> {
        crate::kind::manifests::objects(settings, image, version, &self.params())
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
        match step {
            Step::Cluster => {
                let mut c = Vec::new();
                if self.create {
                    c.push(format!("kind create cluster --name {}", self.cluster));
                }
                c.push(format!(
                    "kubectl config use-context {}",
                    crate::kind::context_name(&self.cluster)
                ));
                c
            }
            Step::Image => ["v1", "v2"]
                .iter()
                .flat_map(|v| {
                    [
                        labs::images::ImageSpec::app(v).cli(),
                        format!(
                            "kind load docker-image {} --name {}",
                            self.image_name(v),
                            self.cluster
                        ),
                    ]
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    async fn down(&mut self, client: &kube::Client, n: &mut Narrator) -> anyhow::Result<()> {
        let p = self.params();
        let objects = [
            crate::apply::to_value(&crate::kind::manifests::postgres_deployment(&p)),
            crate::apply::to_value(&crate::kind::manifests::postgres_service(&p)),
            crate::apply::to_value(&crate::kind::manifests::postgres_secret(&p)),
        ];
        for o in &objects {
            if crate::apply::delete(client, o).await? {
                n.say(format!(
                    "  {}/{POSTGRES} deleted",
                    o["kind"].as_str().unwrap_or("?").to_lowercase()
                ));
            }
        }
        remove_namespace(client, &self.namespace, n).await?;
        n.say(format!(
            "  the kind cluster stays; remove it with `kind delete cluster --name {}`",
            self.cluster
        ));
        Ok(())
    }

    async fn finish(self: Box<Self>, keep: bool, n: &mut Narrator) -> anyhow::Result<()> {
        if keep {
            n.say(format!(
                "The app keeps running on kind cluster {:?}: kubectl --context {} get pods",
                self.cluster,
                crate::kind::context_name(&self.cluster)
            ));
        }
        Ok(())
    }
}
