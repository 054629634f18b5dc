//! The step machine: the talk's demo, one step at a time, on any target.
//!
//! The talk's slide ("やること") lists what the demo does: create the
//! cluster, build the image and register it, set up the account and the
//! connection settings, deploy, deploy the changed app. The workbook adds
//! what the talk then showed on the console — the rollout's history and a
//! rollback — and a summary with the traffic probe's numbers.
//!
//! Every step is **idempotent**: objects are written with server-side
//! apply under one field manager (`workbook-demo`), which creates what is
//! missing and changes only what differs, so a step that is interrupted
//! (Ctrl-C) is simply run again. Nothing here knows which cluster it talks
//! to: what differs is behind [`crate::targets::Target`].

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams};
use serde::Serialize;
use tokio::time::Instant;

use crate::narrate::Narrator;
use crate::probe::{Probe, ProbeReport, thousands};
use crate::rollout::{self, Revision, RolloutStatus, Undone};
use crate::targets::{AnyObject, AppVersion, Objects, Settings, Target};
use crate::{APP, DB_SECRET, FIELD_MANAGER};

/// The steps, in the talk's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Cluster,
    Image,
    Settings,
    Deploy,
    Update,
    History,
    Rollback,
    Summary,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Cluster,
        Step::Image,
        Step::Settings,
        Step::Deploy,
        Step::Update,
        Step::History,
        Step::Rollback,
        Step::Summary,
    ];

    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::Cluster => "The cluster (コンテナ クラスタの作成)",
            Step::Image => "The image (DockerImageを作成し、登録)",
            Step::Settings => "Account and connection settings (アカウント、接続情報を設定)",
            Step::Deploy => "Deploy (デプロイする)",
            Step::Update => {
                "Deploy the changed app: a rolling update (変更したアプリをデプロイする)"
            }
            Step::History => "The history",
            Step::Rollback => "Roll back (履歴からロールバック)",
            Step::Summary => "Summary",
        }
    }

    /// What the step does and why, in a sentence or two.
    pub fn about(self) -> &'static str {
        match self {
            Step::Cluster => {
                "A cluster is an API server that stores what we want, controllers and a \
                 scheduler that make it so, and nodes whose kubelets run the pods. Everything \
                 below talks only to its API (Part II builds each piece)."
            }
            Step::Image => {
                "The app ships as an image with an explicit version tag (never :latest), so \
                 that what runs is always known; the nodes must be able to get it."
            }
            Step::Settings => {
                "The app reaches its database through a proxy sidecar in its pod, as on GKE \
                 with Cloud SQL; the pods run as their own service account (on GKE the one \
                 Workload Identity maps to a Google account), and the connection settings live in \
                 a Secret, not in the image."
            }
            Step::Deploy => {
                "A Deployment keeps the pods running (through a ReplicaSet) and a Service \
                 gives them one stable address. Server-side apply: run it again and nothing \
                 changes."
            }
            Step::Update => {
                "Changing the Deployment's pod template makes a new ReplicaSet; the controller \
                 scales it up and the old one down within maxSurge and maxUnavailable, and the \
                 readiness probe decides when a new pod gets traffic. The probe below keeps \
                 sending requests through the Service the whole time."
            }
            Step::History => {
                "The old ReplicaSet stays, scaled to zero: every change is a revision, with \
                 the change cause the Deployment carried when it was made."
            }
            Step::Rollback => {
                "Undo is done by the client, as kubectl does it: the old ReplicaSet's pod \
                 template is copied back into the Deployment, and the controller scales the \
                 old ReplicaSet up again (no new image, no new ReplicaSet)."
            }
            Step::Summary => {
                "What the traffic probe saw, from the end of the first deploy to the end of the \
                 rollback."
            }
        }
    }
}

/// What a run asks for, beyond the [`Settings`].
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The changed app's version (`--version`, default `v2`).
    pub version: String,
    /// Roll out a version that never becomes ready.
    pub bad_version: bool,
    /// `rollback --to-revision` (0: the previous revision).
    pub to_revision: i64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            version: "v2".into(),
            bad_version: false,
            to_revision: 0,
        }
    }
}

/// What a whole run measured: the summary line and `--output json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub probe: ProbeReport,
    pub from_version: String,
    pub to_version: String,
    /// `complete`, or `stalled` (ProgressDeadlineExceeded, `--bad-version`).
    pub rollout: String,
    pub rollout_seconds: f64,
    pub rolled_back_to: String,
    pub rollback_seconds: f64,
    pub history: Vec<Revision>,
    pub database: bool,
    pub cluster_seconds: f64,
    pub total_seconds: f64,
}

impl Report {
    // ANCHOR: summary
    /// `1,240 requests, 0 errors, v1 → v2 in 9.8 s, rolled back to v1 in
    /// 6.1 s, 37 visits in the database`.
    pub fn summary_line(&self) -> String {
        let p = &self.probe;
        let rollout = match self.rollout.as_str() {
            "stalled" => format!(
                "{} → {} stalled (never ready) for {:.1} s",
                self.from_version, self.to_version, self.rollout_seconds
            ),
            _ => format!(
                "{} → {} in {:.1} s",
                self.from_version, self.to_version, self.rollout_seconds
            ),
        };
        let database = match p.visits {
            Some(n) if self.database => format!("{} visits in the database", thousands(n as usize)),
            _ => "no database".to_string(),
        };
        format!(
            "{} requests, {} errors, {rollout}, rolled back to {} in {:.1} s, {database}",
            thousands(p.requests),
            thousands(p.errors),
            self.rolled_back_to,
            self.rollback_seconds,
        )
    }
    // ANCHOR_END: summary
}

/// One demo session: the target, the client once there is a cluster, and
/// the narrator.
pub struct Demo {
    pub target: Box<dyn Target>,
    pub settings: Settings,
    pub n: Narrator,
    client: Option<kube::Client>,
    database: bool,
}

impl Demo {
    pub fn new(target: Box<dyn Target>, settings: Settings, n: Narrator) -> Demo {
        Demo {
            target,
            settings,
            n,
            client: None,
            database: false,
        }
    }

    /// The client, once [`Demo::cluster`] has run.
    pub fn client(&self) -> anyhow::Result<&kube::Client> {
        self.client.as_ref().context("no cluster yet")
    }

    async fn header(&mut self, step: Step, extra: &[String]) {
        let mut commands = self.target.commands(step, &self.settings);
        commands.extend_from_slice(extra);
        self.n
            .step(step.number(), step.title(), step.about(), &commands);
        self.n.pause().await;
    }

    /// In `--dry-run`, the API calls a step would make.
    fn api_call(&mut self, method: &str, path: String, what: &str) {
        self.n.say(format!("  → {method} {path}   ({what})"));
    }

    /// Step 1.
    pub async fn cluster(&mut self) -> anyhow::Result<()> {
        self.header(Step::Cluster, &[]).await;
        if self.settings.dry_run {
            self.n
                .say("  (dry run: no cluster is started or contacted)");
            return Ok(());
        }
        let (client, info) = self.target.cluster(&mut self.n).await?;
        self.n.say(format!("  {}", info.description));
        for note in &info.notes {
            self.n.say(format!("  {note}"));
        }
        self.database = info.database;
        self.client = Some(client);
        Ok(())
    }

    /// Step 2: both versions' images; returns their references.
    pub async fn image(&mut self, versions: &[&str]) -> anyhow::Result<Vec<String>> {
        self.header(Step::Image, &[]).await;
        let mut images = Vec::new();
        for v in versions {
            let image = if self.settings.dry_run {
                self.target.image_name(v)
            } else {
                self.target.image(v, &mut self.n).await?
            };
            self.n.say(format!("  {v}: {image}"));
            images.push(image);
        }
        Ok(images)
    }

    /// Step 3: the service account and the Secret (and what the target's
    /// database needs), applied in order.
    pub async fn settings(&mut self, objects: &Objects) -> anyhow::Result<()> {
        let kubectl: Vec<String> = objects
            .settings
            .iter()
            .map(|o| match o.resource.kind.as_str() {
                "ServiceAccount" => format!("kubectl create serviceaccount {APP}"),
                "Secret" if o.object.metadata.name.as_deref() == Some(DB_SECRET) => format!(
                    "kubectl create secret generic {DB_SECRET} --from-literal=username=… --from-literal=password=… --from-literal=address=…"
                ),
                _ => format!("kubectl apply --server-side -f {}.yaml", o.describe().replace('/', "-")),
            })
            .collect();
        self.header(Step::Settings, &kubectl).await;
        for o in &objects.settings {
            self.apply_any(o).await?;
        }
        Ok(())
    }

    /// Step 4: the Deployment and the Service, then wait until the rollout
    /// is complete.
    pub async fn deploy(&mut self, objects: &Objects) -> anyhow::Result<()> {
        let kubectl = vec![
            format!("kubectl apply --server-side --field-manager={FIELD_MANAGER} -f web.yaml"),
            format!("kubectl rollout status deployment/{APP}"),
        ];
        self.header(Step::Deploy, &kubectl).await;
        if self.settings.dry_run {
            self.n
                .say("  The manifests (`demo manifests` prints them too):");
            let yaml = crate::workload::yaml(objects)?;
            for line in yaml.lines() {
                self.n.say(format!("    {line}"));
            }
        }
        self.apply_deployment(&objects.deployment).await?;
        self.apply_any(&AnyObject::from(&objects.service)?).await?;
        if self.settings.dry_run {
            return Ok(());
        }
        let (status, _) = self.watch(None, Duration::from_secs(120)).await?;
        if let RolloutStatus::Failed(why) = status {
            anyhow::bail!("the rollout does not progress: {why}");
        }
        Ok(())
    }

    /// Step 5: apply the changed Deployment and watch the rolling update
    /// with the probe running. Returns whether it completed, and how long
    /// it took.
    pub async fn update(
        &mut self,
        objects: &Objects,
        version: &AppVersion,
        probe: Option<&dyn Probe>,
    ) -> anyhow::Result<(bool, Duration)> {
        let kubectl = update_commands(&objects.deployment, version, &self.settings);
        self.header(Step::Update, &kubectl).await;
        self.apply_deployment(&objects.deployment).await?;
        if self.settings.dry_run {
            return Ok((true, Duration::ZERO));
        }
        let (status, took) = self.watch(probe, Duration::from_secs(120)).await?;
        match status {
            RolloutStatus::Done(_) => Ok((true, took)),
            RolloutStatus::Failed(why) if version.broken => {
                self.n.say(format!("  {why}"));
                self.n.say(
                    "  The rollout stalled: the new pod never became ready, so maxUnavailable \
                     kept every old pod serving. Kubernetes does not roll back by itself; we do.",
                );
                Ok((false, took))
            }
            RolloutStatus::Failed(why) | RolloutStatus::Waiting(why) => {
                anyhow::bail!("the rollout does not progress: {why}")
            }
        }
    }

    /// Step 6: `kubectl rollout history`.
    pub async fn history(&mut self) -> anyhow::Result<Vec<Revision>> {
        self.header(
            Step::History,
            &[format!("kubectl rollout history deployment/{APP}")],
        )
        .await;
        if self.settings.dry_run {
            let ns = self.settings.namespace.clone();
            self.api_call(
                "GET",
                format!("/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=app%3D{APP}"),
                "the Deployment's ReplicaSets, one per revision",
            );
            return Ok(Vec::new());
        }
        let revisions = rollout::history(self.client()?, &self.settings.namespace, APP).await?;
        // kubectl's own table, then what it does not print: which
        // ReplicaSet (kept at zero replicas) holds each revision.
        self.n.say(format!("  deployment.apps/{APP}"));
        self.n.say("  REVISION  CHANGE-CAUSE");
        for r in &revisions {
            self.n
                .say(format!("  {:<9} {}", r.revision, r.change_cause));
        }
        let holders: Vec<String> = revisions
            .iter()
            .map(|r| format!("{} = {} ({})", r.revision, r.replica_set, r.version))
            .collect();
        self.n.say(format!(
            "  Each revision is a ReplicaSet: {}.",
            holders.join(", ")
        ));
        Ok(revisions)
    }

    /// Step 7: `kubectl rollout undo`, watched like the update.
    pub async fn rollback(
        &mut self,
        to_revision: i64,
        probe: Option<&dyn Probe>,
    ) -> anyhow::Result<(String, Duration)> {
        let flag = match to_revision {
            0 => String::new(),
            n => format!(" --to-revision={n}"),
        };
        self.header(
            Step::Rollback,
            &[format!("kubectl rollout undo deployment/{APP}{flag}")],
        )
        .await;
        if self.settings.dry_run {
            let ns = self.settings.namespace.clone();
            self.api_call(
                "PATCH",
                format!("/apis/apps/v1/namespaces/{ns}/deployments/{APP}"),
                "JSON patch: the old ReplicaSet's template and annotations",
            );
            return Ok(("v1".into(), Duration::ZERO));
        }
        let started = Instant::now();
        let client = self.client()?.clone();
        match rollout::undo(&client, &self.settings.namespace, APP, to_revision).await? {
            Undone::Skipped { revision } => {
                self.n.say(format!(
                    "  deployment.apps/{APP} skipped rollback (current template already matches revision {revision})"
                ));
                Ok(("(unchanged)".into(), Duration::ZERO))
            }
            Undone::To { revision, version } => {
                self.n.say(format!(
                    "  deployment.apps/{APP} rolled back (to revision {revision}, {version})"
                ));
                let (status, _) = self.watch(probe, Duration::from_secs(120)).await?;
                if let RolloutStatus::Failed(why) = status {
                    anyhow::bail!("the rollback does not progress: {why}");
                }
                Ok((version, started.elapsed()))
            }
        }
    }

    /// `demo status`: one observation, by kubectl's rules, and the live line.
    pub async fn status(&mut self) -> anyhow::Result<RolloutStatus> {
        let client = self.client()?.clone();
        let d = Api::<Deployment>::namespaced(client.clone(), &self.settings.namespace)
            .get(APP)
            .await
            .with_context(|| format!("no deployment {APP:?}: run `demo deploy` first"))?;
        let status = rollout::rollout_status(&d);
        let text = match &status {
            RolloutStatus::Waiting(s) | RolloutStatus::Done(s) | RolloutStatus::Failed(s) => s,
        };
        self.n.say(format!("  {text}"));
        self.n
            .say(format!("  {}", rollout::live_line(&client, &d).await?));
        Ok(status)
    }

    /// `demo down`: delete what the demo made (the target removes its own
    /// extras). Deleting is idempotent too: what is gone stays gone.
    pub async fn down(&mut self) -> anyhow::Result<()> {
        let ns = self.settings.namespace.clone();
        if self.settings.dry_run {
            for (kind, path) in [
                (
                    "deployment",
                    format!("/apis/apps/v1/namespaces/{ns}/deployments/{APP}"),
                ),
                ("service", format!("/api/v1/namespaces/{ns}/services/{APP}")),
                (
                    "secret",
                    format!("/api/v1/namespaces/{ns}/secrets/{DB_SECRET}"),
                ),
                (
                    "serviceaccount",
                    format!("/api/v1/namespaces/{ns}/serviceaccounts/{APP}"),
                ),
            ] {
                self.api_call("DELETE", path, kind);
            }
            return Ok(());
        }
        let client = self.client()?.clone();
        let dp = DeleteParams::background();
        let gone = |r: Result<_, kube::Error>| match r {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        };
        let mut deleted = Vec::new();
        if gone(
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .delete(APP, &dp)
                .await
                .map(|_| ()),
        )? {
            deleted.push(format!("deployment.apps/{APP}"));
        }
        if gone(
            Api::<Service>::namespaced(client.clone(), &ns)
                .delete(APP, &dp)
                .await
                .map(|_| ()),
        )? {
            deleted.push(format!("service/{APP}"));
        }
        if gone(
            Api::<Secret>::namespaced(client.clone(), &ns)
                .delete(DB_SECRET, &dp)
                .await
                .map(|_| ()),
        )? {
            deleted.push(format!("secret/{DB_SECRET}"));
        }
        if gone(
            Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .delete(APP, &dp)
                .await
                .map(|_| ()),
        )? {
            deleted.push(format!("serviceaccount/{APP}"));
        }
        for d in &deleted {
            self.n.say(format!("  {d} deleted"));
        }
        if deleted.is_empty() {
            self.n.say("  nothing of the demo's was left");
        }
        self.target.down(&client, &mut self.n).await
    }

    async fn apply_any(&mut self, o: &AnyObject) -> anyhow::Result<()> {
        let name = o.object.metadata.name.clone().unwrap_or_default();
        let ns = self.settings.namespace.clone();
        if self.settings.dry_run {
            let base = if o.resource.group.is_empty() {
                format!("/api/{}", o.resource.version)
            } else {
                format!("/apis/{}/{}", o.resource.group, o.resource.version)
            };
            self.api_call(
                "PATCH",
                format!(
                    "{base}/namespaces/{ns}/{}/{name}?fieldManager={FIELD_MANAGER}&force=true",
                    o.resource.plural
                ),
                "server-side apply",
            );
            return Ok(());
        }
        let mut object = serde_json::to_value(&o.object)?;
        object["apiVersion"] = o.resource.api_version.clone().into();
        object["kind"] = o.resource.kind.clone().into();
        if object.pointer("/metadata/namespace").is_none() {
            object["metadata"]["namespace"] = ns.into();
        }
        crate::apply::apply(self.client()?, &object)
            .await
            .with_context(|| format!("applying {}", o.describe()))?;
        self.n.say(format!("  {} serverside-applied", o.describe()));
        Ok(())
    }

    async fn apply_deployment(&mut self, d: &Deployment) -> anyhow::Result<()> {
        self.apply_any(&AnyObject::from(d)?).await
    }

    /// Watches the Deployment by kubectl's rollout-status rules until it is
    /// done or failed (or `limit` passes), printing each new status message
    /// and each change of the ReplicaSets and pods, with the probe's counts.
    async fn watch(
        &mut self,
        probe: Option<&dyn Probe>,
        limit: Duration,
    ) -> anyhow::Result<(RolloutStatus, Duration)> {
        let client = self.client()?.clone();
        let api = Api::<Deployment>::namespaced(client.clone(), &self.settings.namespace);
        let started = Instant::now();
        let spinner = self.n.spinner("waiting for the rollout");
        let (mut last_status, mut last_view) = (String::new(), String::new());
        let outcome = loop {
            let d = api.get(APP).await.context("reading the Deployment")?;
            let status = rollout::rollout_status(&d);
            let text = match &status {
                RolloutStatus::Waiting(s) | RolloutStatus::Done(s) | RolloutStatus::Failed(s) => {
                    s.clone()
                }
            };
            if let RolloutStatus::Waiting(_) = status {
                if text != last_status {
                    self.n.live(&text);
                    last_status = text.clone();
                }
                let view = rollout::live_line(&client, &d).await?;
                if view != last_view {
                    let counts = probe
                        .map(|p| probe_counts(&p.snapshot()))
                        .unwrap_or_default();
                    self.n.live(format!("{view}{counts}"));
                    last_view = view;
                }
                let counts = probe
                    .map(|p| probe_counts(&p.snapshot()))
                    .unwrap_or_default();
                spinner.set_message(format!("{text}{counts}"));
            } else {
                break status;
            }
            if started.elapsed() > limit {
                break RolloutStatus::Failed(format!(
                    "still not rolled out after {} s: {text}",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        spinner.finish_and_clear();
        let took = started.elapsed();
        if let RolloutStatus::Done(text) = &outcome {
            self.n.say(format!("  {text}"));
        }
        Ok((outcome, took))
    }
}

/// The kubectl commands that make the same change as applying `d`, the
/// changed Deployment: a new image for every container that runs the app's
/// image (the app, and on local and kind the proxy sidecar, which is the
/// same binary; GKE's Cloud SQL Auth Proxy keeps its own image), what
/// `--bad-version` changes besides, and the change cause. `annotate` needs
/// `--overwrite`: the Deployment already carries a change cause.
fn update_commands(d: &Deployment, version: &AppVersion, settings: &Settings) -> Vec<String> {
    let spec = d.spec.as_ref();
    let pod = spec.and_then(|s| s.template.spec.as_ref());
    let app = pod
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let same_image: Vec<String> = pod
        .into_iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .chain(p.init_containers.iter().flatten())
        })
        .filter(|c| c.image.as_deref() == Some(app.as_str()))
        .map(|c| format!("{}={app}", c.name))
        .collect();
    let mut commands = vec![format!(
        "kubectl set image deployment/{APP} {}",
        same_image.join(" ")
    )];
    if version.broken {
        commands.push(format!(
            "kubectl set env deployment/{APP} -c app STARTUP_SECONDS=3600"
        ));
        let deadline = spec.and_then(|s| s.progress_deadline_seconds);
        if let Some(seconds) = deadline
            && seconds != settings.progress_deadline_seconds
        {
            commands.push(format!(
                "kubectl patch deployment/{APP} -p '{{\"spec\":{{\"progressDeadlineSeconds\":{seconds}}}}}'"
            ));
        }
    }
    commands.push(format!(
        "kubectl annotate deployment/{APP} --overwrite kubernetes.io/change-cause='{}'",
        version.change_cause(&app)
    ));
    commands.push(format!("kubectl rollout status deployment/{APP}"));
    commands
}

/// `   · probe: v1 412, v2 120, 0 errors`.
fn probe_counts(r: &ProbeReport) -> String {
    let versions: Vec<String> = r.versions.iter().map(|(v, n)| format!("{v} {n}")).collect();
    format!(
        "   · probe: {}{}{} errors",
        versions.join(", "),
        if versions.is_empty() { "" } else { ", " },
        r.errors
    )
}

/// `demo run`: every step in order, the probe running from the first
/// deploy to the end. Leaves the target for the caller to finish.
pub async fn run_all(demo: &mut Demo, opts: &RunOptions) -> anyhow::Result<Report> {
    let started = Instant::now();
    demo.n.say(format!(
        "The talk's demo: build, deploy, roll out a change under traffic, look at the history, roll back.{}",
        if demo.settings.dry_run { " (dry run: nothing is changed)" } else { "" }
    ));
    demo.cluster().await?;
    let cluster_seconds = started.elapsed().as_secs_f64();
    let v1 = AppVersion::good("v1");
    let v2 = AppVersion {
        version: opts.version.clone(),
        broken: opts.bad_version,
    };
    let images = demo.image(&["v1", &v2.version]).await?;
    let first = demo.target.objects(&demo.settings, &images[0], &v1)?;
    let changed = demo.target.objects(&demo.settings, &images[1], &v2)?;
    demo.settings(&first).await?;
    demo.deploy(&first).await?;

    let mut probe = None;
    if !demo.settings.dry_run {
        let client = demo.client()?.clone();
        let p = demo.target.start_probe(&client, &first.service).await?;
        demo.n.say(format!(
            "  The traffic probe is running: requests to service/{APP}, a new connection each."
        ));
        probe = Some(p);
    }
    let (completed, rollout_took) = demo.update(&changed, &v2, probe.as_deref()).await?;
    let history = demo.history().await?;
    let (rolled_back_to, rollback_took) = demo.rollback(opts.to_revision, probe.as_deref()).await?;
    let probe_report = match probe {
        Some(p) => {
            // A moment of the rolled-back version only, then stop.
            tokio::time::sleep(Duration::from_millis(500)).await;
            p.stop().await?
        }
        None => ProbeReport::default(),
    };
    let report = Report {
        probe: probe_report,
        from_version: v1.version.clone(),
        to_version: v2.version.clone(),
        rollout: if completed { "complete" } else { "stalled" }.into(),
        rollout_seconds: round1(rollout_took),
        rolled_back_to,
        rollback_seconds: round1(rollback_took),
        history,
        database: demo.database,
        cluster_seconds: (cluster_seconds * 10.0).round() / 10.0,
        total_seconds: round1(started.elapsed()),
    };
    demo.n.step(
        Step::Summary.number(),
        Step::Summary.title(),
        Step::Summary.about(),
        &[],
    );
    demo.n.pause().await;
    if !demo.settings.dry_run {
        let p = &report.probe;
        let versions: Vec<String> = p
            .versions
            .iter()
            .map(|(v, n)| format!("{v}: {}", thousands(*n)))
            .collect();
        demo.n
            .say(format!("  answers by version: {}", versions.join(", ")));
        for (kind, n) in &p.failures {
            demo.n.say(format!("  failed: {n} × {kind}"));
        }
        demo.n.say(format!(
            "  latency: p50 {:.1} ms, p99 {:.1} ms",
            p.p50_ms, p.p99_ms
        ));
        if report.database {
            let in_db: Vec<&str> = p.versions_in_database.iter().map(String::as_str).collect();
            demo.n.say(format!(
                "  the database holds visits of: {}",
                in_db.join(", ")
            ));
        }
        demo.n.say(format!(
            "  the whole run: {:.1} s (the cluster step {:.1} s)",
            report.total_seconds, report.cluster_seconds
        ));
        demo.n.say(report.summary_line());
    }
    Ok(report)
}

fn round1(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}
