//! `labs rollout`: a rolling update on the in-process cluster, step by step.
//!
//! In this process: an API server (called in-process), the controller
//! manager (ReplicaSet and Deployment controllers, garbage collector), the
//! scheduler, three kubelets on the simulated runtime
//! ([`crate::cluster::SimulatedNodes`]), and the lab, which plays the user: it creates a Deployment of `workbook/demo-app:v1`,
//! waits until it is available, changes the image to `v2` (as `kubectl set
//! image` does) and prints every Deployment controller sync that changed
//! something, with the new and old ReplicaSets' sizes and the available pods
//! the sync saw.
//!
//! **Deterministic, in lockstep.** The run uses tokio's paused clock on one
//! thread, and [`crate::machinery::clock`] makes the cluster's timestamps follow it.
//! Every simulated container takes `--ready-after` seconds to start (and
//! has no readiness probe, so it is ready once it runs): pods created at the
//! same instant become ready together `--ready-after` seconds later, and the Deployment controller syncs only when the rest of
//! the cluster is quiet ([`wait_until_quiet`](crate::controllers::deployment::controller::wait_until_quiet)),
//! so each sync sees everything that happened before it. The scale steps
//! are then exactly those of the reference's tick model, and the same flags
//! always print the same timeline.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::mpsc;

use crate::apiserver::ApiServer;
use crate::cluster::SimulatedNodes;
use crate::controllers::deployment::controller::{self as deployment_controller, Step};
use crate::controllers::deployment::revisions::{CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION};
use crate::controllers::deployment::{self, POD_TEMPLATE_HASH_LABEL, fenceposts};
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::kubelet::runtime::simulated::{Behavior, SimulatedConfig};
use crate::store::Store;

pub const IMAGE_V1: &str = "workbook/demo-app:v1";
pub const IMAGE_V2: &str = "workbook/demo-app:v2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table, for people.
    Table,
    /// JSON lines, one per sync that changed something, for tools.
    Json,
    /// A mermaid `xychart-beta` chart of the timeline, for the book.
    Mermaid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    RollingUpdate,
    Recreate,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RolloutArgs {
    /// spec.replicas
    #[arg(long, default_value_t = 10)]
    pub replicas: i32,
    /// strategy.rollingUpdate.maxSurge: a number or a percentage.
    #[arg(long, default_value = "25%")]
    pub max_surge: String,
    /// strategy.rollingUpdate.maxUnavailable: a number or a percentage.
    #[arg(long, default_value = "25%")]
    pub max_unavailable: String,
    #[arg(long, default_value_t = 0)]
    pub min_ready_seconds: i32,
    /// Seconds from a pod's creation until it is ready.
    #[arg(long, default_value_t = 5)]
    pub ready_after: u64,
    #[arg(long, value_enum, default_value = "rolling-update")]
    pub strategy: Strategy,
    /// The new version never becomes ready (as an unpullable image): the
    /// rollout stalls and reports ProgressDeadlineExceeded.
    #[arg(long)]
    pub fail_new: bool,
    #[arg(long, default_value_t = 600)]
    pub progress_deadline_seconds: i32,
    /// After the rollout, roll back (`kubectl rollout undo`) and show the
    /// renumbered history.
    #[arg(long)]
    pub undo: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

impl Default for RolloutArgs {
    fn default() -> Self {
        RolloutArgs {
            replicas: 10,
            max_surge: "25%".into(),
            max_unavailable: "25%".into(),
            min_ready_seconds: 0,
            ready_after: 5,
            strategy: Strategy::RollingUpdate,
            fail_new: false,
            progress_deadline_seconds: 600,
            undo: false,
            format: Format::Table,
        }
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A Deployment controller sync that wrote something or changed a
    /// condition; `step` counts only those.
    Sync { t: i64, step: usize, sync: Step },
    /// The kubelets made pods ready (or failed to pull their image).
    Pods { t: i64, became: Became },
}

/// Pods that turned ready, or failed, in one second: what the lab saw by
/// watching pods (as `kubectl get pods -w` would).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Became {
    /// Pods per `pod-template-hash` label, in order of the hash.
    pub ready: BTreeMap<String, usize>,
    /// Pods whose image could not be pulled (`ErrImagePull`).
    pub failed: BTreeMap<String, usize>,
}

/// What happened in one phase (the rollout, or the undo).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub title: String,
    pub entries: Vec<Entry>,
    /// ReplicaSet name → `v1`/`v2` (the image's tag), for readable output.
    pub versions: BTreeMap<String, String>,
    pub start: (i32, i32, i32),
}

impl Timeline {
    /// The (new, old) `spec.replicas` after each sync that scaled something:
    /// the notation of the reference's worked examples.
    pub fn scale_steps(&self) -> Vec<(i32, i32)> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Sync { sync, .. }
                    if sync
                        .actions
                        .iter()
                        .any(|a| a.starts_with("create") || a.starts_with("scale")) =>
                {
                    Some((sync.new_replicas, sync.old_replicas))
                }
                _ => None,
            })
            .collect()
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub header: Vec<String>,
    pub timelines: Vec<Timeline>,
    pub history: Vec<String>,
    /// Totals for benches.
    pub syncs: u64,
}

/// `labs rollout`: runs the scenario and prints it in the chosen format.
pub async fn run(args: &RolloutArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let result = rollout(args).await?;
    out.write_all(render(&result, args.format).as_bytes())?;
    Ok(())
}

/// The Deployment the lab creates.
pub fn deployment(args: &RolloutArgs) -> Deployment {
    let strategy = match args.strategy {
        Strategy::RollingUpdate => json!({
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": int_or_percent(&args.max_surge),
                              "maxUnavailable": int_or_percent(&args.max_unavailable)},
        }),
        Strategy::Recreate => json!({"type": "Recreate"}),
    };
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"},
                     "annotations": {CHANGE_CAUSE_ANNOTATION: format!("kubectl create deployment web --image={IMAGE_V1}")}},
        "spec": {
            "replicas": args.replicas,
            "minReadySeconds": args.min_ready_seconds,
            "progressDeadlineSeconds": args.progress_deadline_seconds,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    // No real containers to stop: deleted pods go at once.
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": IMAGE_V1}],
                },
            },
        },
    }))
    .expect("a valid Deployment")
}

fn int_or_percent(v: &str) -> serde_json::Value {
    match v.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(v),
    }
}

/// Runs the scenario on a fresh in-process cluster. Must run on a
/// single-threaded runtime with tokio's clock paused (the binary builds
/// one; tests use `#[tokio::test(start_paused = true)]`).
pub async fn rollout(args: &RolloutArgs) -> anyhow::Result<Run> {
    let api = ApiServer::new(Store::new());
    let (steps_tx, steps) = mpsc::unbounded_channel();
    let metrics = std::sync::Arc::new(deployment_controller::Metrics::default());
    let manager = ControllerManager::start(
        api.client(),
        ManagerOptions {
            deployment_steps: Some(steps_tx),
            deployment_metrics: Some(metrics.clone()),
            lockstep: true,
            ..ManagerOptions::default()
        },
    );
    let nodes = SimulatedNodes::start(&api, &api.client(), NODES, simulated(args), 1);
    let pods = watcher(
        Api::<Pod>::default_namespaced(api.client()),
        watcher::Config::default(),
    )
    .applied_objects()
    .boxed();
    let mut lab = Lab {
        client: api.client(),
        steps,
        pods,
        seen: PodsSeen::default(),
        args: args.clone(),
    };
    let result = lab.scenario().await;
    nodes.stop().await?;
    manager.shutdown().await?;
    let mut run = result?;
    run.syncs = metrics.syncs.load(std::sync::atomic::Ordering::Relaxed);
    Ok(run)
}

/// The nodes the lab's pods run on.
const NODES: usize = 3;

// ANCHOR: simulated
/// How the simulated containers behave: every container takes
/// `--ready-after` seconds to start and, with no readiness probe, is ready
/// as soon as it runs; with `--fail-new`, v2's image cannot be pulled, as
/// a typo in a tag would leave it (`ErrImagePull`, then `ImagePullBackOff`).
pub fn simulated(args: &RolloutArgs) -> SimulatedConfig {
    let mut config = SimulatedConfig {
        default: Behavior {
            start_delay_seconds: args.ready_after,
            ..Behavior::default()
        },
        // The tick model: pods created within one second (by syncs a few
        // milliseconds apart) become ready in the same instant.
        whole_seconds: true,
        ..SimulatedConfig::default()
    };
    if args.fail_new {
        let broken = Behavior {
            pull_fails: true,
            ..Behavior::default()
        };
        config.images.insert(IMAGE_V2.to_string(), broken);
    }
    config
}
// ANCHOR_END: simulated

/// Which pods the lab has already reported ready or failed (by UID).
#[derive(Default)]
struct PodsSeen {
    ready: HashSet<String>,
    failed: HashSet<String>,
}

impl PodsSeen {
    /// What `pod` newly shows: `Some((hash, true))` the first time it is
    /// ready, `Some((hash, false))` the first time its image failed.
    fn observe(&mut self, pod: &Pod) -> Option<(String, bool)> {
        let uid = pod.metadata.uid.clone()?;
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL).cloned())
            .unwrap_or_default();
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let failed = status.container_statuses.iter().flatten().any(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
        });
        if ready && self.ready.insert(uid.clone()) {
            Some((hash, true))
        } else if failed && self.failed.insert(uid) {
            Some((hash, false))
        } else {
            None
        }
    }
}

struct Lab {
    client: kube::Client,
    steps: mpsc::UnboundedReceiver<Step>,
    pods: BoxStream<'static, Result<Pod, watcher::Error>>,
    seen: PodsSeen,
    args: RolloutArgs,
}

/// How long (virtual time) a phase may take before the lab gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(3600);

impl Lab {
    fn deployments(&self) -> Api<Deployment> {
        Api::default_namespaced(self.client.clone())
    }

    async fn scenario(&mut self) -> anyhow::Result<Run> {
        let args = self.args.clone();
        let d = deployment(&args);
        let mut run = Run {
            header: self.header(&d)?,
            ..Run::default()
        };
        // The API server validates the flags (e.g. maxSurge and
        // maxUnavailable both 0): show its message, as kubectl would.
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) => anyhow::anyhow!("{}", status.message),
                other => anyhow::Error::from(other).context("creating the deployment"),
            })?;
        // v1 first, quietly: its pods must be available before the update.
        self.phase("create").await?;

        // `kubectl set image deployment/web app=...:v2` plus its
        // change-cause, as one patch.
        self.align_to_second().await;
        let patch = json!({
            "metadata": {"annotations": {CHANGE_CAUSE_ANNOTATION: format!("kubectl set image deployment/web app={IMAGE_V2}")}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_V2}]}}},
        });
        let start = self.counts().await?;
        self.deployments()
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .context("changing the image")?;
        let mut timeline = self.phase("set image").await?;
        timeline.title = format!("$ kubectl set image deployment/web app={IMAGE_V2}");
        timeline.start = start;
        run.timelines.push(timeline);

        if args.undo {
            self.align_to_second().await;
            let start = self.counts().await?;
            self.undo().await?;
            let mut timeline = self.phase("undo").await?;
            timeline.title = "$ kubectl rollout undo deployment/web".into();
            timeline.start = start;
            run.timelines.push(timeline);
        }
        run.history = self.history().await?;
        Ok(run)
    }

    fn header(&self, d: &Deployment) -> anyhow::Result<Vec<String>> {
        let a = &self.args;
        let mut lines = vec![];
        match a.strategy {
            Strategy::RollingUpdate => {
                let (surge, unavailable) = fenceposts::resolve_fenceposts(
                    fenceposts::rolling_params(d).0,
                    fenceposts::rolling_params(d).1,
                    a.replicas,
                )
                .context("bad --max-surge or --max-unavailable")?;
                lines.push(format!(
                    "Deployment web: {} replicas, RollingUpdate maxSurge {} ({surge}), maxUnavailable {} ({unavailable})",
                    a.replicas, a.max_surge, a.max_unavailable
                ));
                lines.push(format!(
                    "  at most {} pods (replicas + maxSurge), at least {} available (replicas - maxUnavailable)",
                    a.replicas + surge,
                    a.replicas - unavailable
                ));
            }
            Strategy::Recreate => lines.push(format!(
                "Deployment web: {} replicas, Recreate (all old pods go before any new one starts)",
                a.replicas
            )),
        }
        lines.push(format!(
            "  pods ready {}s after creation; minReadySeconds {}; progressDeadlineSeconds {}{}",
            a.ready_after,
            a.min_ready_seconds,
            a.progress_deadline_seconds,
            if a.fail_new {
                "; v2 never becomes ready (--fail-new)"
            } else {
                ""
            }
        ));
        lines.push(
            "  columns: new/old = the new/old ReplicaSets' spec.replicas after the sync;".into(),
        );
        lines.push(
            "  available = the available pods the sync saw; Progressing = the condition's reason after it".into(),
        );
        Ok(lines)
    }

    /// Waits for the next whole second of the cluster's clock, so the
    /// timeline starts at t=0 and "the same second" means the same tick.
    async fn align_to_second(&self) {
        let now = crate::machinery::clock::now();
        let next = Timestamp::from_second(now.as_second() + 1).expect("in range");
        tokio::time::sleep_until(crate::machinery::clock::instant_at(next)).await;
    }

    /// (new, old, available) now.
    async fn counts(&self) -> anyhow::Result<(i32, i32, i32)> {
        let d = self.deployments().get("web").await?;
        let rss = self.replica_sets(&d).await?;
        // Called just before the template changes: what is running now
        // is about to be old.
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        Ok((
            0,
            deployment::replica_count(&refs),
            deployment::available_replica_count(&refs),
        ))
    }

    async fn replica_sets(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let list = Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .list(&ListParams::default().labels("app=web"))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter(|rs| {
                crate::controllers::replicaset::controller_of(&rs.metadata)
                    .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref())
            })
            .collect())
    }

    /// Collects what the controller and the kubelets report until the
    /// rollout is complete or has missed its deadline.
    async fn phase(&mut self, what: &str) -> anyhow::Result<Timeline> {
        let t0 = crate::machinery::clock::now().as_second();
        let mut timeline = Timeline::default();
        let mut step = 0;
        let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
        loop {
            tokio::select! {
                biased;
                Some(pod) = self.pods.next() => {
                    let Ok(pod) = pod else { continue };
                    let Some((hash, ready)) = self.seen.observe(&pod) else { continue };
                    let t = crate::machinery::clock::now().as_second() - t0;
                    // Pods of one second make one line.
                    if !matches!(timeline.entries.last(), Some(Entry::Pods { t: last, .. }) if *last == t) {
                        timeline.entries.push(Entry::Pods { t, became: Became::default() });
                    }
                    if let Some(Entry::Pods { became, .. }) = timeline.entries.last_mut() {
                        let counts = if ready { &mut became.ready } else { &mut became.failed };
                        *counts.entry(hash).or_default() += 1;
                    }
                }
                Some(sync) = self.steps.recv() => {
                    step += 1;
                    let done = match sync.progressing.as_deref() {
                        // (Recreate's first sync keeps the old reason while
                        // nothing new exists yet: hence the sizes too.)
                        Some("NewReplicaSetAvailable") => {
                            sync.old_replicas == 0 && sync.new_replicas == self.args.replicas
                        }
                        // The sync that notices the deadline changes only the
                        // condition; a sync that also scaled is mid-recovery.
                        Some("ProgressDeadlineExceeded") => sync.actions.is_empty(),
                        _ => false,
                    };
                    timeline.entries.push(Entry::Sync { t: sync.at.as_second() - t0, step, sync });
                    if done {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    anyhow::bail!("the {what} phase did not finish within {PHASE_LIMIT:?} of virtual time");
                }
            }
        }
        // Let the cluster settle (cleanup, last status writes) and keep
        // what it reported meanwhile.
        deployment_controller::wait_until_quiet().await;
        while let Ok(sync) = self.steps.try_recv() {
            step += 1;
            let t = sync.at.as_second() - t0;
            timeline.entries.push(Entry::Sync { t, step, sync });
        }
        // Name the ReplicaSets by their image's tag.
        let d = self.deployments().get("web").await?;
        for rs in self.replica_sets(&d).await? {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let tag = image.rsplit(':').next().unwrap_or_default().to_string();
            let hash = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL).cloned())
                .unwrap_or_default();
            timeline
                .versions
                .insert(rs.metadata.name.clone().unwrap_or_default(), tag.clone());
            timeline.versions.insert(hash, tag);
        }
        Ok(timeline)
    }

    /// `kubectl rollout undo deployment/web`, done as kubectl does it (on
    /// the client): take the ReplicaSet with the second-highest revision,
    /// and JSON-patch its template (without pod-template-hash) and its
    /// annotations into the Deployment.
    async fn undo(&self) -> anyhow::Result<()> {
        let d = self.deployments().get("web").await?;
        let rss = self.replica_sets(&d).await?;
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        let to = deployment::revisions::last_revision(&refs);
        let rs = rss
            .iter()
            .find(|rs| deployment::revisions::revision(&rs.metadata) == Ok(to))
            .context("no previous revision to roll back to")?;
        let mut template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .context("a ReplicaSet without a template")?;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        let mut annotations: BTreeMap<String, String> = rs
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !deployment::revisions::skip_copy_annotation(k))
            .collect();
        for (k, v) in d.metadata.annotations.iter().flatten() {
            if deployment::revisions::skip_copy_annotation(k) {
                annotations.insert(k.clone(), v.clone());
            }
        }
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]))?;
        self.deployments()
            .patch("web", &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .context("rolling back")?;
        Ok(())
    }

    /// `kubectl rollout history deployment/web`, plus which ReplicaSet each
    /// revision is.
    async fn history(&self) -> anyhow::Result<Vec<String>> {
        let d = self.deployments().get("web").await?;
        let mut rss = self.replica_sets(&d).await?;
        rss.sort_by_key(|rs| deployment::revisions::revision(&rs.metadata).unwrap_or(0));
        let mut lines = vec!["$ kubectl rollout history deployment/web".to_string()];
        lines.push(format!(
            "{:<9} {:<60} {:<22} {:<9} {}",
            "REVISION", "CHANGE-CAUSE", "REPLICASET", "REPLICAS", "REVISION-HISTORY"
        ));
        for rs in &rss {
            let meta = &rs.metadata;
            let get = |k: &str| {
                deployment::annotation(meta, k)
                    .unwrap_or("<none>")
                    .to_string()
            };
            lines.push(format!(
                "{:<9} {:<60} {:<22} {:<9} {}",
                get(REVISION_ANNOTATION),
                get(CHANGE_CAUSE_ANNOTATION),
                version_of(rs),
                deployment::rs_replicas(rs),
                deployment::annotation(meta, deployment::revisions::REVISION_HISTORY_ANNOTATION)
                    .unwrap_or("")
            ));
        }
        Ok(lines)
    }
}

/// `web-<hash> (v1)`: the name with the image's tag, since hashes are
/// opaque. (Hashes are deterministic: a template always hashes the same.)
fn version_of(rs: &ReplicaSet) -> String {
    let tag = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(|i| i.rsplit(':').next())
        .unwrap_or_default()
        .to_string();
    format!(
        "{} ({tag})",
        rs.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Replaces each ReplicaSet name in an action by `<tag>`.
fn readable(action: &str, versions: &BTreeMap<String, String>) -> String {
    let mut words: Vec<String> = action.split(' ').map(str::to_string).collect();
    if let Some(word) = words.get_mut(1)
        && let Some(tag) = versions.get(word.as_str())
    {
        *word = tag.clone();
    }
    words.join(" ")
}

// ANCHOR: render
/// The run in the chosen format.
pub fn render(run: &Run, format: Format) -> String {
    match format {
        Format::Table => render_table(run),
        Format::Json => render_json(run),
        Format::Mermaid => render_mermaid(run),
    }
}
// ANCHOR_END: render

fn render_table(run: &Run) -> String {
    let mut s = String::new();
    for line in &run.header {
        let _ = writeln!(s, "{line}");
    }
    for timeline in &run.timelines {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", timeline.title);
        let _ = writeln!(
            s,
            "{:>5}  {:>4}  {:<40} {:>3} {:>3} {:>9}  Progressing",
            "t", "sync", "what happened", "new", "old", "available"
        );
        let (new, old, available) = timeline.start;
        let _ = writeln!(
            s,
            "{:>5}  {:>4}  {:<40} {:>3} {:>3} {:>9}",
            "", "", "(before)", new, old, available
        );
        for entry in &timeline.entries {
            match entry {
                Entry::Pods { t, became } => {
                    let mut parts = vec![];
                    for (hash, n) in &became.ready {
                        let tag = timeline.versions.get(hash).map_or("?", String::as_str);
                        parts.push(format!("{n} {tag} pod{} ready", plural(*n)));
                    }
                    for (hash, n) in &became.failed {
                        let tag = timeline.versions.get(hash).map_or("?", String::as_str);
                        parts.push(format!("{n} {tag} pod{} ErrImagePull", plural(*n)));
                    }
                    let _ = writeln!(
                        s,
                        "{:>5}  {:>4}  kubelet: {}",
                        format!("{t}s"),
                        "",
                        parts.join(", ")
                    );
                }
                Entry::Sync { t, step, sync } => {
                    let what = if sync.actions.is_empty() {
                        "(status only)".to_string()
                    } else {
                        sync.actions
                            .iter()
                            .map(|a| readable(a, &timeline.versions))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let _ = writeln!(
                        s,
                        "{:>5}  {:>4}  {:<40} {:>3} {:>3} {:>9}  {}",
                        format!("{t}s"),
                        step,
                        what,
                        sync.new_replicas,
                        sync.old_replicas,
                        sync.available,
                        sync.progressing.as_deref().unwrap_or("")
                    );
                }
            }
        }
        let steps: Vec<String> = timeline
            .scale_steps()
            .iter()
            .map(|(n, o)| format!("({n},{o})"))
            .collect();
        let _ = writeln!(s, "(new, old) scale steps: {}", steps.join(" → "));
    }
    let _ = writeln!(s);
    for line in &run.history {
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One JSON object per sync that changed something.
fn render_json(run: &Run) -> String {
    let mut s = String::new();
    for (phase, timeline) in run.timelines.iter().enumerate() {
        for entry in &timeline.entries {
            if let Entry::Sync { t, step, sync } = entry {
                let line = json!({
                    "phase": if phase == 0 { "rollout" } else { "undo" },
                    "t": t,
                    "sync": step,
                    "actions": sync.actions.iter().map(|a| readable(a, &timeline.versions)).collect::<Vec<_>>(),
                    "new_replicas": sync.new_replicas,
                    "old_replicas": sync.old_replicas,
                    "available": sync.available,
                    "ready": sync.ready,
                    "progressing": sync.progressing,
                    "available_condition": sync.available_reason,
                });
                let _ = writeln!(s, "{line}");
            }
        }
    }
    s
}

// ANCHOR: mermaid
/// The first timeline as a mermaid chart: bars are the available pods each
/// sync saw, the lines the new and the old ReplicaSets' sizes after it.
fn render_mermaid(run: &Run) -> String {
    let Some(timeline) = run.timelines.first() else {
        return String::new();
    };
    let (mut labels, mut new, mut old, mut available) = (vec![], vec![], vec![], vec![]);
    let (n0, o0, a0) = timeline.start;
    labels.push("\"start\"".to_string());
    new.push(n0);
    old.push(o0);
    available.push(a0);
    for entry in &timeline.entries {
        if let Entry::Sync { t, step, sync } = entry {
            labels.push(format!("\"{step} ({t}s)\""));
            new.push(sync.new_replicas);
            old.push(sync.old_replicas);
            available.push(sync.available);
        }
    }
    let max = new
        .iter()
        .zip(&old)
        .map(|(n, o)| n + o)
        .chain(available.iter().copied())
        .max()
        .unwrap_or(1);
    let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let mut s = String::new();
    let _ = writeln!(s, "xychart-beta");
    let _ = writeln!(
        s,
        "    title \"{}: new ReplicaSet (rising line), old (falling line), available (bars)\"",
        run.header
            .first()
            .map(|h| h.trim_start_matches("Deployment web: "))
            .unwrap_or("rollout")
    );
    let _ = writeln!(s, "    x-axis \"sync (time)\" [{}]", labels.join(", "));
    let _ = writeln!(s, "    y-axis \"replicas\" 0 --> {max}");
    let _ = writeln!(s, "    bar [{}]", list(&available));
    let _ = writeln!(s, "    line [{}]", list(&new));
    let _ = writeln!(s, "    line [{}]", list(&old));
    s
}
// ANCHOR_END: mermaid
