//! `labs node-failure`: a node dies, and the cluster notices, narrated.
//!
//! Kubernetes' liveness management of nodes (the talk's 死活管理) rests on
//! silence: a dead node says nothing, so the control plane watches for
//! heartbeats that stop. This lab runs the whole story on a cluster in this
//! process — the API server, the controller manager (Deployment and
//! ReplicaSet controllers), the default-scheduler, the node lifecycle
//! controller, and three real kubelets (`node-1..3`) on the simulated
//! runtime — and plays the user with kubectl and the operator who stops
//! node-2's kubelet:
//!
//! 1. a Deployment of 6 spreads 2/2/2 over the nodes;
//! 2. node-2's kubelet stops (`systemctl stop kubelet`, or a pulled network
//!    cable): its heartbeats (the renewals of its Lease in `kube-node-lease`)
//!    stop, its containers keep running;
//! 3. after `--node-monitor-grace-period` the node lifecycle controller
//!    marks node-2 `Ready=Unknown`, taints it `unreachable`, and marks its
//!    pods not ready;
//! 4. after the pods' `tolerationSeconds` it evicts them; the ReplicaSet
//!    replaces them and the scheduler keeps the replacements off node-2;
//! 5. node-2's kubelet starts again: `Ready=True`, the taints go, and the
//!    kubelet finishes the deletion of the pods evicted from it.
//!
//! Deterministic like the other narrated labs: one thread, tokio's clock
//! paused (times are virtual, printed as `t=…s` from the start), the
//! scheduler seeded, pod names printed as `web-#1`, `web-#2`, … in the
//! order they were created.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::apiserver::ApiServer;
use crate::cluster::{ClusterOptions, Components, api_config};
use crate::controllers::nodelifecycle::ready_status;
use crate::kubelet::Clock;
use crate::kubelet::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use crate::kubelet::runtime::{LoopbackIpam, Runtime};
use crate::kubelet::{Kubelet, KubeletConfig, NODE_LEASE_NAMESPACE};
use crate::lab::narration::{self, NameAliases, alias_order, say};
use crate::scheduler::schedule_one::DECISION_ANNOTATION;
use crate::store::Store;

// ANCHOR: settings
/// `--node-monitor-grace-period`: upstream's long-standing default (50 s
/// since Kubernetes 1.32), kept.
pub const NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(40);
/// The API server's `default-unreachable-toleration-seconds` (and
/// not-ready): 300 upstream, shortened so the lab's story has less waiting.
pub const TOLERATION_SECONDS: i64 = 30;
// ANCHOR_END: settings

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
/// The node that dies (index into `NODES`).
const VICTIM: usize = 1;

/// How long any one step may take (virtual time) before the lab gives up.
const LIMIT: Duration = Duration::from_secs(300);

/// What the lab saw, read from the API server at the moments that matter
/// (for the tests, which check the story's facts apart from its wording).
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// node-2's taints once its grace period ran out (`key:effect`).
    pub taints_after_grace: Vec<String>,
    /// node-2's `Ready` condition status then.
    pub ready_after_grace: String,
    /// Pods of `web` on node-2 that are not terminating, once the
    /// Deployment is back to 6 available.
    pub active_on_node_2_after_eviction: usize,
    /// Pods of `web` (terminating or not) on node-2 at the end.
    pub on_node_2_at_end: usize,
    /// The Deployment's available replicas at the end.
    pub available_at_end: i32,
    /// node-2's taints at the end.
    pub taints_at_end: Vec<String>,
}

/// Runs the scenario, writing the narration to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    run_checked(out).await.map(|_| ())
}

/// [`run`], returning what it saw.
pub async fn run_checked(out: &mut dyn Write) -> anyhow::Result<Outcome> {
    // Start on a whole second of the cluster's clock, so that the
    // (whole-second) times in objects convert to the same `t=…s` every run.
    let nanos = crate::machinery::clock::now().subsec_nanosecond();
    if nanos > 0 {
        tokio::time::sleep(Duration::from_nanos(1_000_000_000 - nanos as u64)).await;
    }
    let start = Instant::now();
    let start_time = crate::machinery::clock::now();

    let api = ApiServer::with_config(Store::new(), api_config(TOLERATION_SECONDS));
    let components = Components::start(
        &api,
        &ClusterOptions {
            seed: 1,
            node_monitor_grace_period: NODE_MONITOR_GRACE_PERIOD,
            ..ClusterOptions::default()
        },
    );
    // One simulated runtime per node, kept apart from its kubelet: a
    // kubelet that stops leaves its containers there, and one started again
    // on the same runtime adopts them.
    let clock = Clock::cluster();
    let ipam = LoopbackIpam::default();
    let runtimes: Vec<Arc<SimulatedRuntime>> = NODES
        .iter()
        .map(|_| {
            Arc::new(SimulatedRuntime::new(
                SimulatedConfig::default(),
                clock,
                ipam.clone(),
            ))
        })
        .collect();

    // Every pod the API server creates, in order, for the aliases.
    let (created_tx, created) = mpsc::unbounded_channel();
    let watch = tokio::spawn({
        let pods: Api<Pod> = Api::default_namespaced(api.client());
        async move {
            let mut events = watcher(pods, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                if let Ok(pod) = event
                    && created_tx
                        .send(pod.metadata.name.unwrap_or_default())
                        .is_err()
                {
                    return;
                }
            }
        }
    });

    let mut lab = Lab {
        out,
        client: api.client(),
        api,
        clock,
        runtimes,
        kubelets: Vec::new(),
        start,
        start_time,
        created,
        aliases: NameAliases::default(),
        rs_name: None,
        outcome: Outcome::default(),
    };
    let result = lab.scenario().await;
    watch.abort();
    components.shutdown().await?;
    for kubelet in lab.kubelets.drain(..).flatten() {
        kubelet.stop().await;
    }
    result.map(|()| lab.outcome)
}

struct Lab<'a> {
    out: &'a mut dyn Write,
    /// The lab's own client: it plays kubectl.
    client: kube::Client,
    api: ApiServer,
    clock: Clock,
    runtimes: Vec<Arc<SimulatedRuntime>>,
    /// Per node; `None` while its kubelet is stopped.
    kubelets: Vec<Option<Kubelet>>,
    start: Instant,
    start_time: Timestamp,
    created: mpsc::UnboundedReceiver<String>,
    aliases: NameAliases,
    /// The Deployment's ReplicaSet (`web-<pod-template-hash>`).
    rs_name: Option<String>,
    outcome: Outcome,
}

impl Lab<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn start_kubelet(&mut self, i: usize) {
        let kubelet = Kubelet::start(
            self.api.client(),
            Arc::clone(&self.runtimes[i]),
            KubeletConfig::new(NODES[i]),
            self.clock,
        );
        self.api
            .register_kubelet(kubelet.node_name(), kubelet.logs());
        if self.kubelets.len() <= i {
            self.kubelets.resize_with(i + 1, || None);
        }
        self.kubelets[i] = Some(kubelet);
    }

    /// Virtual seconds since the start of the lab.
    fn t(&self) -> String {
        format!("t={}s", (Instant::now() - self.start).as_secs())
    }

    /// A time written into an object, as `t=…s`.
    fn t_of(&self, time: Option<&Time>) -> String {
        match time {
            Some(t) => format!("t={}s", t.0.as_second() - self.start_time.as_second()),
            None => "<none>".into(),
        }
    }

    /// [`Self::t_of`] for a Lease's `MicroTime`.
    fn t_of_micro(&self, time: Option<&MicroTime>) -> String {
        self.t_of(time.map(|t| Time(t.0)).as_ref())
    }

    /// Gives every pod created so far its alias, in order of creation.
    fn alias_new_pods(&mut self) {
        while let Ok(name) = self.created.try_recv() {
            self.aliases.alias(&name);
        }
    }

    /// `text` with pod names replaced by aliases: `web-7d7cfc4df-x2kq9` →
    /// `web-#1` (the ReplicaSet's hash is the same for all of them).
    fn show(&mut self, text: &str) -> String {
        self.alias_new_pods();
        let text = self.aliases.replace_in(text);
        match &self.rs_name {
            Some(rs) => text.replace(&format!("{rs}-#"), "web-#"),
            None => text,
        }
    }

    fn print_block(&mut self, text: &str, indent: &str) -> anyhow::Result<()> {
        let text = self.show(text);
        Ok(narration::print_block(self.out, &text, indent)?)
    }

    /// Lets the cluster run (on the paused clock: instantly) until `done`.
    async fn wait_until<F, Fut>(&mut self, what: &str, done: F) -> anyhow::Result<()>
    where
        F: FnMut(kube::Client) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        narration::wait_until(&self.client, what, LIMIT, done).await
    }

    /// Waits until the Deployment `web` has `n` available pods.
    async fn wait_available(&mut self, what: &str, n: i32) -> anyhow::Result<()> {
        self.wait_until(what, |client| async move {
            let d = Api::<Deployment>::default_namespaced(client)
                .get("web")
                .await?;
            Ok(d.status.and_then(|s| s.available_replicas) == Some(n))
        })
        .await
    }

    async fn web_pods(&self) -> anyhow::Result<Vec<Pod>> {
        Ok(self
            .pods()
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items)
    }

    async fn deployment(&self) -> anyhow::Result<Deployment> {
        Ok(Api::<Deployment>::default_namespaced(self.client.clone())
            .get("web")
            .await?)
    }

    /// `kubectl get nodes`.
    async fn print_nodes(&mut self) -> anyhow::Result<()> {
        let t = self.t();
        say!(self, "{t}  $ kubectl get nodes");
        say!(self, "    NAME     STATUS");
        for node in self.nodes().list(&ListParams::default()).await?.items {
            let status = match ready_status(&node) {
                Some("True") => "Ready",
                _ => "NotReady",
            };
            let name = node.metadata.name.unwrap_or_default();
            say!(self, "    {name:<8} {status}");
        }
        Ok(())
    }

    /// `kubectl get pods -o wide`, reduced to what this lab is about.
    async fn print_pods(&mut self) -> anyhow::Result<()> {
        let t = self.t();
        say!(self, "{t}  $ kubectl get pods -o wide");
        let mut rows = Vec::new();
        for p in self.web_pods().await? {
            let name = self.show(p.metadata.name.as_deref().unwrap_or_default());
            let status = if p.metadata.deletion_timestamp.is_some() {
                "Terminating".to_string()
            } else {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Pending".into())
            };
            let ready = pod_ready(&p).unwrap_or("-").to_string();
            let node = node_of(&p).unwrap_or_else(|| "<none>".into());
            rows.push((alias_order(&name), name, status, ready, node));
        }
        rows.sort();
        say!(self, "    NAME     STATUS       READY   NODE");
        for (_, name, status, ready, node) in rows {
            say!(self, "    {name:<8} {status:<12} {ready:<7} {node}");
        }
        Ok(())
    }

    /// `kubectl get deployment web`.
    async fn print_deployment(&mut self) -> anyhow::Result<()> {
        let t = self.t();
        let d = self.deployment().await?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        say!(self, "{t}  $ kubectl get deployment web");
        say!(self, "    NAME   READY   UP-TO-DATE   AVAILABLE");
        say!(
            self,
            "    web    {:<7} {updated:<12} {available}",
            format!("{ready}/{want}")
        );
        Ok(())
    }

    /// Pods per node, not terminating.
    async fn per_node(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut count: BTreeMap<String, usize> = NODES.iter().map(|n| (n.to_string(), 0)).collect();
        for p in self.web_pods().await? {
            if p.metadata.deletion_timestamp.is_none()
                && let Some(n) = node_of(&p)
            {
                *count.entry(n).or_default() += 1;
            }
        }
        Ok(count)
    }

    async fn print_per_node(&mut self, what: &str) -> anyhow::Result<()> {
        let counts = self.per_node().await?;
        let text: Vec<String> = counts.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        say!(self, "    {what}: {}", text.join(", "));
        Ok(())
    }

    /// `kubectl get events` with these reasons, since `since`: in order of
    /// time, then of `reasons` (cause before effect), then object.
    async fn print_events(&mut self, reasons: &[&str], since: Instant) -> anyhow::Result<()> {
        let since = crate::machinery::clock::timestamp_at(since).as_second();
        let events = Api::<Event>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let mut rows = Vec::new();
        for e in events {
            let reason = e.reason.clone().unwrap_or_default();
            if !reasons.contains(&reason.as_str()) {
                continue;
            }
            let object = format!(
                "{}/{}",
                e.involved_object
                    .kind
                    .as_deref()
                    .unwrap_or_default()
                    .to_lowercase(),
                self.show(e.involved_object.name.as_deref().unwrap_or_default())
            );
            let when = e.first_timestamp.as_ref().map(|t| t.0.as_second());
            if when.is_some_and(|w| w < since) {
                continue;
            }
            let message = self.show(e.message.as_deref().unwrap_or_default());
            let rank = reasons.iter().position(|r| *r == reason);
            rows.push((
                when,
                rank,
                alias_order(&object),
                self.t_of(e.first_timestamp.as_ref()),
                e.type_.clone().unwrap_or_default(),
                reason,
                object,
                message,
            ));
        }
        rows.sort();
        say!(
            self,
            "    {:<7} {:<8} {:<21} {:<25} MESSAGE",
            "TIME",
            "TYPE",
            "REASON",
            "OBJECT"
        );
        for (_, _, _, when, type_, reason, object, message) in rows {
            say!(
                self,
                "    {when:<7} {type_:<8} {reason:<21} {object:<25} {message}"
            );
        }
        Ok(())
    }

    /// `kubectl describe node`: its taints and conditions.
    async fn describe_node(&mut self, name: &str) -> anyhow::Result<()> {
        let t = self.t();
        let node = self.nodes().get(name).await?;
        say!(self, "{t}  $ kubectl describe node {name}    (excerpt)");
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if taints.is_empty() {
            say!(self, "    Taints:             <none>");
        }
        for (i, taint) in taints.iter().enumerate() {
            let label = if i == 0 { "Taints:" } else { "" };
            let value = taint
                .value
                .as_deref()
                .map(|v| format!("={v}"))
                .unwrap_or_default();
            say!(
                self,
                "    {label:<19} {}{value}:{}",
                taint.key,
                taint.effect
            );
        }
        // kubectl describe node shows the node's Lease too.
        let lease = self.leases().get_opt(name).await?;
        let spec = lease.and_then(|l| l.spec).unwrap_or_default();
        say!(self, "    Lease:");
        say!(
            self,
            "      HolderIdentity:  {}",
            spec.holder_identity.as_deref().unwrap_or("<unset>")
        );
        say!(
            self,
            "      RenewTime:       {}",
            self.t_of_micro(spec.renew_time.as_ref())
        );
        say!(self, "    Conditions:");
        say!(
            self,
            "      Type            Status   LastHeartbeat  LastTransition  Reason                     Message"
        );
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conditions {
            say!(
                self,
                "      {:<15} {:<8} {:<14} {:<15} {:<26} {}",
                c.type_,
                c.status,
                self.t_of(c.last_heartbeat_time.as_ref()),
                self.t_of(c.last_transition_time.as_ref()),
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            );
        }
        Ok(())
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE)
    }

    /// The heartbeat: the `renewTime` of a node's Lease.
    async fn heartbeat(&self, name: &str) -> anyhow::Result<Option<MicroTime>> {
        Ok(self
            .leases()
            .get_opt(name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time))
    }

    /// What `crictl ps` on a node would list: the containers its runtime
    /// runs.
    async fn running_on(&self, i: usize) -> usize {
        self.runtimes[i]
            .list_containers()
            .await
            .iter()
            .filter(|c| c.state == crate::kubelet::runtime::RuntimeState::Running)
            .count()
    }

    async fn scenario(&mut self) -> anyhow::Result<()> {
        let victim = NODES[VICTIM];
        say!(self, "Lab: when a node dies — heartbeats, taints, eviction");
        say!(self);
        say!(
            self,
            "In this process: an API server, the controller manager, the default-scheduler"
        );
        say!(
            self,
            "(seed 1), the node lifecycle controller, and three kubelets, node-1..node-3, on"
        );
        say!(
            self,
            "the simulated runtime. The lab plays kubectl, and the operator who stops"
        );
        say!(
            self,
            "node-2's kubelet. Times are virtual seconds since the start (t=…s); pods are"
        );
        say!(
            self,
            "printed as web-#1, web-#2, ... in the order they were created."
        );
        say!(self);
        say!(
            self,
            "The settings that decide how fast a dead node is noticed:"
        );
        say!(
            self,
            "    kubelet node Lease renewal interval      10s  (the heartbeat; upstream 10s)"
        );
        say!(
            self,
            "    --node-monitor-period                     5s  (how often nodes are checked; upstream 5s)"
        );
        say!(
            self,
            "    --node-monitor-grace-period              {}s  (upstream 40s; 50s since 1.32)",
            NODE_MONITOR_GRACE_PERIOD.as_secs()
        );
        say!(
            self,
            "    --default-unreachable-toleration-seconds {}s  (upstream 300s; shortened here)",
            TOLERATION_SECONDS
        );

        // 1 ---------------------------------------------------------------
        say!(self);
        say!(self, "1. Three nodes, six pods");
        for i in 0..NODES.len() {
            self.start_kubelet(i);
        }
        self.wait_until("three nodes Ready", |client| async move {
            let nodes = Api::<Node>::all(client)
                .list(&ListParams::default())
                .await?;
            Ok(nodes.items.len() == NODES.len()
                && nodes.items.iter().all(|n| ready_status(n) == Some("True")))
        })
        .await?;
        say!(
            self,
            "  Each kubelet registers its Node object and creates a Lease named after it"
        );
        say!(
            self,
            "  in the namespace kube-node-lease, the node's heartbeat:"
        );
        self.wait_until("three Leases", |client| async move {
            let leases = Api::<Lease>::namespaced(client, NODE_LEASE_NAMESPACE)
                .list(&ListParams::default())
                .await?;
            Ok(leases.items.len() == NODES.len())
        })
        .await?;
        say!(self, "  $ kubectl get leases -n kube-node-lease");
        say!(self, "    NAME     HOLDER");
        let mut leases = self.leases().list(&ListParams::default()).await?.items;
        leases.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for lease in leases {
            say!(
                self,
                "    {:<8} {}",
                lease.metadata.name.unwrap_or_default(),
                lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_else(|| "<none>".into())
            );
        }
        self.print_nodes().await?;
        let t = self.t();
        say!(
            self,
            "{t}  $ kubectl create deployment web --image=workbook/demo-app:v1 --replicas=6"
        );
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 6,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "demo-app", "image": "workbook/demo-app:v1"}]},
                },
            },
        }))?;
        Api::<Deployment>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &deployment)
            .await?;
        self.wait_available("6 web pods available", 6).await?;
        let rs = Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        self.rs_name = rs.first().and_then(|rs| rs.metadata.name.clone());
        self.print_deployment().await?;
        self.print_pods().await?;
        self.print_per_node("spread").await?;
        say!(
            self,
            "  (READY is the pod's Ready condition, which Services and the Deployment's"
        );
        say!(
            self,
            "  count go by. kubectl's own READY column counts ready containers instead.)"
        );
        say!(
            self,
            "  Every pod was given two tolerations by the API server (DefaultTolerationSeconds"
        );
        say!(
            self,
            "  admission): it may stay on a not-ready or unreachable node for 30 s."
        );
        let first = self
            .aliases
            .name_of(&format!(
                "{}-#1",
                self.rs_name
                    .clone()
                    .context("the Deployment has no ReplicaSet")?
            ))
            .context("no first pod")?;
        say!(
            self,
            "  $ kubectl get pod web-#1 -o jsonpath='{{.spec.tolerations}}'"
        );
        let pod = self.pods().get(&first).await?;
        for tol in pod.spec.and_then(|s| s.tolerations).unwrap_or_default() {
            say!(
                self,
                "    {} {} {} tolerationSeconds={}",
                tol.key.as_deref().unwrap_or_default(),
                tol.operator.as_deref().unwrap_or("Equal"),
                tol.effect.as_deref().unwrap_or_default(),
                tol.toleration_seconds
                    .map_or("<none>".to_string(), |s| s.to_string())
            );
        }
        say!(
            self,
            "  The heartbeat: node-2's kubelet writes a new renewTime into its Lease every"
        );
        say!(
            self,
            "  10 s. (Its node status, unchanged, is written only every 5 minutes.)"
        );
        for _ in 0..2 {
            let t = self.t();
            let beat = self.heartbeat(victim).await?;
            let beat = self.t_of_micro(beat.as_ref());
            say!(
                self,
                "{t}  $ kubectl get lease -n kube-node-lease node-2 -o jsonpath='{{.spec.renewTime}}'"
            );
            say!(self, "    {beat}");
            tokio::time::sleep(Duration::from_secs(10)).await;
        }

        // 2 ---------------------------------------------------------------
        say!(self);
        say!(self, "2. node-2 goes silent");
        let stopped_at = Instant::now();
        let t = self.t();
        say!(
            self,
            "{t}  $ ssh node-2 sudo systemctl stop kubelet    # or: pull its network cable"
        );
        let last_beat = self.heartbeat(victim).await?;
        if let Some(kubelet) = self.kubelets[VICTIM].take() {
            kubelet.stop().await;
        }
        let running = self.running_on(VICTIM).await;
        let beat = self.t_of_micro(last_beat.as_ref());
        say!(
            self,
            "  Its Lease was last renewed at {beat}. Nothing tells the API server that anything"
        );
        say!(
            self,
            "  happened: a dead machine sends no message. Its containers are still there —"
        );
        say!(
            self,
            "  `crictl ps` on node-2 lists {running} running — but nobody reports on them."
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        say!(
            self,
            "  20 s later the node still looks fine: a few missed renewals may be a busy"
        );
        say!(self, "  network, and moving pods is expensive.");
        self.print_nodes().await?;

        // 3 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "3. The grace period runs out: Unknown, tainted, pods not ready"
        );
        self.wait_until("node-2 Unknown", |client| async move {
            let node = Api::<Node>::all(client).get(NODES[VICTIM]).await?;
            Ok(ready_status(&node) == Some("Unknown"))
        })
        .await?;
        say!(
            self,
            "  The node lifecycle controller checks every node every 5 s. node-2's Lease has"
        );
        say!(
            self,
            "  not been renewed, nor its status written, for longer than"
        );
        say!(
            self,
            "  --node-monitor-grace-period (40 s), so it sets every condition to Unknown and"
        );
        say!(self, "  turns that into taints:");
        let node = self.nodes().get(victim).await?;
        self.outcome.taints_after_grace = taint_keys(&node);
        self.outcome.ready_after_grace = ready_status(&node).unwrap_or_default().to_string();
        self.print_nodes().await?;
        self.describe_node(victim).await?;
        say!(
            self,
            "  (LastHeartbeat is t=0s: the status was last written when node-2 registered."
        );
        say!(
            self,
            "  Since then, the Lease's RenewTime has carried the heartbeat.)"
        );
        say!(
            self,
            "  unreachable:NoSchedule keeps new pods off node-2; unreachable:NoExecute says"
        );
        say!(
            self,
            "  the pods on it must go, each after its tolerationSeconds. Meanwhile they are"
        );
        say!(
            self,
            "  marked not ready, so they stop counting as available (and a Service would"
        );
        say!(self, "  stop sending them traffic):");
        self.wait_until("node-2's pods not ready", |client| async move {
            let pods = Api::<Pod>::default_namespaced(client)
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(pods
                .items
                .iter()
                .filter(|p| node_of(p).as_deref() == Some(NODES[VICTIM]))
                .all(|p| pod_ready(p) == Some("False")))
        })
        .await?;
        self.print_pods().await?;
        self.print_deployment().await?;
        say!(self, "  $ kubectl get events    (excerpt)");
        self.print_events(&["NodeNotReady"], stopped_at).await?;

        // 4 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "4. tolerationSeconds run out: eviction, replacements elsewhere"
        );
        self.wait_until("node-2's pods evicted", |client| async move {
            let pods = Api::<Pod>::default_namespaced(client)
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(pods
                .items
                .iter()
                .filter(|p| node_of(p).as_deref() == Some(NODES[VICTIM]))
                .all(|p| p.metadata.deletion_timestamp.is_some()))
        })
        .await?;
        self.wait_available("6 web pods available again", 6).await?;
        self.outcome.active_on_node_2_after_eviction = self.per_node().await?[victim];
        say!(
            self,
            "  30 s after the taint, the taint manager deletes the pods on node-2. The"
        );
        say!(
            self,
            "  ReplicaSet sees 4 of 6 and creates two more; the scheduler places them."
        );
        say!(self, "  $ kubectl get events    (excerpt)");
        self.print_events(
            &["TaintManagerEviction", "SuccessfulCreate", "Scheduled"],
            stopped_at,
        )
        .await?;
        // The first replacement's decision, in full: node-2 is filtered out.
        let replacement = format!("{}-#7", self.rs_name.clone().unwrap_or_default());
        if let Some(name) = self.aliases.name_of(&replacement) {
            say!(
                self,
                "  Why not node-2? The scheduler's reasoning for web-#7:"
            );
            let pod = self.pods().get(&name).await?;
            let why = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DECISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            self.print_block(&why, "    ")?;
        }
        self.print_pods().await?;
        self.print_deployment().await?;
        self.print_per_node("running, not terminating").await?;
        say!(
            self,
            "  The evicted pods stay Terminating: a graceful deletion ends when the kubelet"
        );
        say!(
            self,
            "  confirms that the containers stopped, and node-2's kubelet is not there to"
        );
        say!(
            self,
            "  confirm. (Their containers may in fact still run: `crictl ps` on node-2"
        );
        let running = self.running_on(VICTIM).await;
        say!(
            self,
            "  lists {running}. This is why a StatefulSet never replaces a pod until it is gone.)"
        );

        // 5 ---------------------------------------------------------------
        say!(self);
        say!(self, "5. node-2's kubelet starts again");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let restarted_at = Instant::now();
        let t = self.t();
        say!(self, "{t}  $ ssh node-2 sudo systemctl start kubelet");
        self.start_kubelet(VICTIM);
        self.wait_until("node-2 Ready and untainted", |client| async move {
            let node = Api::<Node>::all(client).get(NODES[VICTIM]).await?;
            let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
            Ok(ready_status(&node) == Some("True") && taints.is_none_or(|t| t.is_empty()))
        })
        .await?;
        self.wait_until("the evicted pods gone", |client| async move {
            let pods = Api::<Pod>::default_namespaced(client)
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(!pods
                .items
                .iter()
                .any(|p| node_of(p).as_deref() == Some(NODES[VICTIM])))
        })
        .await?;
        say!(
            self,
            "  It renews its Lease again, and writes its node status at once: Ready=True"
        );
        say!(
            self,
            "  differs from the Unknown the API server holds. The node lifecycle controller"
        );
        say!(
            self,
            "  removes the taints. The kubelet finds its pods being deleted,"
        );
        say!(self, "  stops their containers and deletes the objects:");
        self.print_nodes().await?;
        self.describe_node(victim).await?;
        say!(self, "  $ kubectl get events    (excerpt)");
        self.print_events(&["NodeReady", "Killing"], restarted_at)
            .await?;
        self.print_pods().await?;
        self.print_deployment().await?;
        self.print_per_node("running").await?;
        self.outcome.on_node_2_at_end = self
            .web_pods()
            .await?
            .iter()
            .filter(|p| node_of(p).as_deref() == Some(victim))
            .count();
        self.outcome.available_at_end = self
            .deployment()
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        self.outcome.taints_at_end = taint_keys(&self.nodes().get(victim).await?);
        let running = self.running_on(VICTIM).await;
        say!(
            self,
            "  node-2 is healthy and empty (`crictl ps` lists {running}): Kubernetes does not"
        );
        say!(
            self,
            "  move running pods back. New pods will use it; the descheduler, an add-on,"
        );
        say!(self, "  can evict pods to rebalance.");
        Ok(())
    }
}

/// A node's taints as `key:effect`.
fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// The pod's `Ready` condition status.
fn pod_ready(pod: &Pod) -> Option<&str> {
    crate::controllers::replicaset::ready_condition(pod).map(|c| c.status.as_str())
}
