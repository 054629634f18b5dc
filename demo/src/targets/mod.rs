//! Where the demo runs: the seam between the step machine and a cluster.
//!
//! The talk's demo is the same on every cluster — build an image, give the
//! app its connection settings, deploy, roll out a change, look at the
//! history, roll back — and so is most of this crate's code: every step
//! talks only to the Kubernetes API (kube-rs). What differs per cluster is
//! small, and it is all in the [`Target`] trait:
//!
//! | step | local | kind | GKE |
//! |---|---|---|---|
//! | [`Target::cluster`] | start the lab cluster in-process | the `kind-<name>` context | the GKE context |
//! | [`Target::image`] | nothing to build (process runtime) or bollard | bollard, then load into the nodes | bollard, then push to Artifact Registry |
//! | [`Target::objects`] | proxy sidecar to a throwaway PostgreSQL | proxy sidecar to a PostgreSQL pod | Cloud SQL Auth Proxy, Workload Identity |
//! | [`Target::start_probe`] | in this process, through the cluster IP | a pod in the cluster | a pod in the cluster |
//!
//! Everything else — server-side apply, kubectl's rollout-status rules, the
//! history and the client-side undo — is in [`crate::rollout`] and
//! [`crate::steps`], shared by all three.
//!
//! Why a trait object and not generics: the target is chosen on the command
//! line at run time, and the step machine is written once against
//! `Box<dyn Target>`. The methods are `async` (through `async-trait`, since
//! native async trait methods cannot be called on a trait object yet),
//! without a `Send` bound (`?Send`): the demo runs its steps on one task,
//! and some of what a target awaits (bollard builds writing to a
//! `&mut dyn Write`) is not `Send`.

pub mod gke;
pub mod kind;
pub mod local;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject};
use serde::Serialize;

use crate::narrate::Narrator;
use crate::probe::Probe;

/// The clusters the demo can drive (`--target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The embedded lab cluster, started in this process: no Docker, no cloud.
    Local,
    /// An existing kind cluster (context `kind-<name>`).
    Kind,
    /// An existing GKE cluster (context from `gcloud container clusters get-credentials`).
    Gke,
}

/// The container runtime of the local target's kubelets (`--runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalRuntime {
    /// `workbook/demo-app:<tag>` runs as a child process of this binary.
    Process,
    /// Real containers on the Docker engine, images built with bollard.
    Docker,
}

/// What every target needs to know about the run: the command line's
/// settings that shape the objects.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub target: TargetKind,
    /// The kubeconfig context (kind, GKE, or a local cluster left running
    /// by `demo up`); `None`: the current context.
    pub context: Option<String>,
    pub namespace: String,
    pub replicas: i32,
    /// `spec.strategy.rollingUpdate.maxSurge`: a number or a percentage.
    pub max_surge: String,
    /// `spec.strategy.rollingUpdate.maxUnavailable`.
    pub max_unavailable: String,
    /// `spec.progressDeadlineSeconds`: after this long without progress the
    /// Deployment controller reports `ProgressDeadlineExceeded`.
    pub progress_deadline_seconds: i32,
    pub runtime: LocalRuntime,
    /// Print the manifests and the API calls instead of making them.
    pub dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target: TargetKind::Local,
            context: None,
            namespace: "default".into(),
            replicas: 3,
            max_surge: "25%".into(),
            max_unavailable: "25%".into(),
            progress_deadline_seconds: 60,
            runtime: LocalRuntime::Process,
            dry_run: false,
        }
    }
}

/// One version of the app, as the demo deploys it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppVersion {
    /// `v1`, `v2`: the image tag, and what `GET /` reports.
    pub version: String,
    /// `--bad-version`: a version that never becomes ready (the app waits an
    /// hour before it listens, so its readiness probe never passes).
    pub broken: bool,
}

impl AppVersion {
    pub fn good(version: &str) -> AppVersion {
        AppVersion {
            version: version.into(),
            broken: false,
        }
    }

    /// How `kubectl rollout history` will show it (`kubernetes.io/change-cause`).
    pub fn change_cause(&self, image: &str) -> String {
        if self.broken {
            format!("demo update --bad-version: {image}, never ready")
        } else {
            format!("demo: {image}")
        }
    }
}

/// A typed object made untyped, so that a target can hand over any kind
/// (a ServiceAccount, a Secret, a PostgreSQL Deployment on kind) and the
/// step machine applies them all the same way.
#[derive(Clone, Debug)]
pub struct AnyObject {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl AnyObject {
    pub fn from<K>(object: &K) -> anyhow::Result<AnyObject>
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        Ok(AnyObject {
            resource: ApiResource::erase::<K>(&()),
            object: serde_json::from_value(serde_json::to_value(object)?)?,
        })
    }

    /// `serviceaccount/web`, as kubectl names what it applied.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}",
            self.resource.kind.to_lowercase(),
            self.object.metadata.name.as_deref().unwrap_or("?")
        )
    }
}

/// What the demo applies, in order.
#[derive(Clone, Debug)]
pub struct Objects {
    /// Step 3, "account and connection settings": the service account, the
    /// Secret with the database settings, and whatever the target's
    /// database needs in the cluster (kind: PostgreSQL as a pod).
    pub settings: Vec<AnyObject>,
    /// Step 4: the app (with its database proxy as a native sidecar)...
    pub deployment: Deployment,
    /// ...and the Service in front of it.
    pub service: Service,
}

/// What a target says about itself in the cluster step and in `--keep`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterInfo {
    /// `the embedded lab cluster (3 nodes, process runtime)`.
    pub description: String,
    /// Lines to show after the cluster step (the kubeconfig, the database).
    pub notes: Vec<String>,
    /// Whether the app gets a database (a local run without PostgreSQL's
    /// server binaries runs without one).
    pub database: bool,
}

/// One cluster the demo can run on. See the module docs for what each
/// target does in each method.
#[async_trait(?Send)]
pub trait Target: Send {
    /// Step 1: make sure there is a cluster and return a client for it.
    /// Idempotent: a second call returns the same cluster.
    async fn cluster(&mut self, n: &mut Narrator) -> anyhow::Result<(kube::Client, ClusterInfo)>;

    /// The image reference of `version` the pods use (never `:latest`),
    /// without building anything: what `--dry-run` shows.
    fn image_name(&self, version: &str) -> String;

    /// Step 2: make `version` of the app available to the nodes; returns the
    /// image reference the pods use (never `:latest`).
    async fn image(&mut self, version: &str, n: &mut Narrator) -> anyhow::Result<String>;

    /// The objects for the app at `image` (steps 3 and 4). Pure: no API
    /// calls, so `--dry-run` and `demo manifests` show exactly these.
    fn objects(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Objects>;

    /// Starts sending requests to the Service (the traffic probe).
    async fn start_probe(
        &mut self,
        client: &kube::Client,
        service: &Service,
    ) -> anyhow::Result<Box<dyn Probe>>;

    /// The shell commands that do what `step` does on this target, shown
    /// before the step runs (`kubectl`, `docker`, `gcloud`, `kind`).
    fn commands(&self, step: crate::steps::Step, settings: &Settings) -> Vec<String>;

    /// `demo down`: remove what the target made outside the app's objects
    /// (which the step machine deletes itself).
    async fn down(&mut self, client: &kube::Client, n: &mut Narrator) -> anyhow::Result<()>;

    /// The end of the run: stop what the target started (the local cluster),
    /// unless `keep`, in which case say how to reach it and wait.
    async fn finish(self: Box<Self>, keep: bool, n: &mut Narrator) -> anyhow::Result<()>;
}

/// What the kind and GKE targets need beyond [`Settings`]: their own
/// flags (`--kind-cluster`, `--create`, `--gcloud`, `--instance`, …).
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// The kind cluster's name (context `kind-<name>`).
    pub kind_cluster: String,
    /// kind: create the cluster with the kind CLI when it does not exist.
    pub create: bool,
    /// Where `gcloud`, `kind` and the GKE auth plugin are found.
    pub tools: crate::tools::Tools,
    /// The kubeconfig (default: as kubectl finds it).
    pub kubeconfig: Option<PathBuf>,
    /// GKE: the Cloud SQL instance.
    pub instance: String,
    /// The database's name (Cloud SQL, or PostgreSQL on kind).
    pub database: String,
    /// GKE: the Artifact Registry repository.
    pub repository: String,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            kind_cluster: crate::kind::DEFAULT_CLUSTER.into(),
            create: false,
            tools: crate::tools::Tools::from_env(),
            kubeconfig: None,
            instance: "workbook-db".into(),
            database: "app".into(),
            repository: crate::gke::registry::DEFAULT_REPOSITORY.into(),
        }
    }
}

/// The target for `settings.target`, the cloud targets with their default
/// options.
pub fn open(settings: &Settings, local: local::LocalOptions) -> anyhow::Result<Box<dyn Target>> {
    open_with(settings, local, &CloudOptions::default())
}

/// The target for `settings.target`.
pub fn open_with(
    settings: &Settings,
    local: local::LocalOptions,
    cloud: &CloudOptions,
) -> anyhow::Result<Box<dyn Target>> {
    Ok(match settings.target {
        TargetKind::Local => Box::new(local::LocalTarget::new(settings, local)),
        TargetKind::Kind => Box::new(kind::KindTarget::new(settings, cloud)),
        TargetKind::Gke => Box::new(gke::GkeTarget::new(settings, cloud)),
    })
}

/// `docker build` of `workbook/demo-app:VERSION` with bollard (a static
/// binary in a scratch image): what every target that runs real containers
/// needs first — local with `--runtime docker`, kind before it loads the
/// image into its nodes, GKE before it pushes it to Artifact Registry.
pub(crate) async fn build_app_image(
    docker: &bollard::Docker,
    version: &str,
    n: &mut Narrator,
) -> anyhow::Result<String> {
    let spec = labs::images::ImageSpec::app(version);
    let image = format!("{}:{version}", labs::images::APP_REPOSITORY);
    let spinner = n.spinner(format!("docker build {image}"));
    let mut log = Vec::new();
    let built = async {
        let binary = labs::images::static_binary(&mut log)?;
        labs::images::build(docker, &spec, &binary, &mut log).await
    }
    .await
    .map_err(|e| e.context(format!("the image build failed: {image}")));
    spinner.finish_and_clear();
    let built = built?;
    n.say(format!(
        "  built {image}: {} steps, {} from the cache, {:.1} s",
        built.steps,
        built.cached_steps,
        built.elapsed.as_secs_f64()
    ));
    Ok(image)
}

/// A client for an existing cluster: the kubeconfig's `context` (or its
/// current context), checked with `GET /version` so that "no cluster"
/// is one clear line here, not a connection error in the middle of a step.
pub async fn connect(context: Option<&str>) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let name = context.unwrap_or("the current context");
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .map_err(|e| anyhow::anyhow!("no cluster at {name}: {e}"))?;
    let server = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config).map_err(|e| anyhow::anyhow!("no cluster at {name}: {e}"))?;
    client.apiserver_version().await.map_err(|e| {
        anyhow::anyhow!(
            "no cluster at {name} ({server} does not answer: {})",
            one_line(&e)
        )
    })?;
    Ok(client)
}

/// An error and its causes on one line, without repeating what the outer
/// message already says.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The labels every object of the demo carries, so `demo down` and a
/// reader with kubectl can find them.
pub fn demo_labels() -> BTreeMap<String, String> {
    [
        ("app".to_string(), crate::APP.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            crate::FIELD_MANAGER.to_string(),
        ),
    ]
    .into()
}
