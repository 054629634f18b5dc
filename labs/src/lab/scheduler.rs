//! `labs scheduler`: the scheduler at work, narrated.
//!
//! In this process: an API server (called in-process), the controller
//! manager (for a ReplicaSet), the scheduler (seed 1), and the lab, which
//! plays kubectl — and registers the nodes itself by creating Node objects,
//! which is what each node's kubelet does in a real cluster (next lab).
//! The node lifecycle controller is left out: nobody posts heartbeats for
//! these nodes, and it would (rightly) declare them dead after 40 s.
//!
//! Deterministic like `labs replicaset`: one thread, tokio's clock paused,
//! random pod names printed as `web-#1`, `web-#2`, … in scheduling order,
//! no times printed.

use crate::lab::narration::{self, NameAliases, alias_order, say};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::apiserver::ApiServer;
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::scheduler::schedule_one::{self, DECISION_ANNOTATION, DefaultScheduler, Step};
use crate::store::Store;

/// A Node as a kubelet registers it: capacity = allocatable, 110 pods,
/// `Ready=True`, the hostname label, plus `labels` and `taints`.
pub fn node(name: &str, cpu: &str, memory: &str, labels: Value, taints: Value) -> Node {
    let mut all_labels = json!({"kubernetes.io/hostname": name});
    if let (Some(all), Some(extra)) = (all_labels.as_object_mut(), labels.as_object()) {
        all.extend(extra.clone());
    }
    let resources = json!({"cpu": cpu, "memory": memory, "pods": "110"});
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"taints": taints},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .expect("a valid Node")
}

/// A pod requesting `cpu` and `memory`, with extra `spec` fields.
pub fn pod(name: &str, cpu: &str, memory: &str, spec: Value) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "app", "image": "workbook/demo-app:v1",
            "resources": {"requests": {"cpu": cpu, "memory": memory}},
        }]},
    });
    if let (Some(s), Some(extra)) = (pod["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(pod).expect("a valid Pod")
}

/// Runs the scenario, writing the narration to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let manager = ControllerManager::start(api.client(), ManagerOptions::default());
    let (steps_tx, steps) = mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = DefaultScheduler::new(
        api.client(),
        schedule_one::Options {
            seed: 1,
            steps: Some(steps_tx),
        },
    );
    let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));
    let mut lab = Lab {
        out,
        client: api.client(),
        steps,
        aliases: NameAliases::default(),
    };
    let result = lab.scenario().await;
    shutdown.cancel();
    scheduler.await??;
    manager.shutdown().await?;
    result
}

struct Lab<'a> {
    out: &'a mut dyn Write,
    client: kube::Client,
    steps: mpsc::UnboundedReceiver<Step>,
    /// Generated pod name → stable alias (`web-#3`).
    aliases: NameAliases,
}

impl Lab<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn alias(&mut self, name: &str) -> String {
        self.aliases.alias(name)
    }

    /// `text` with every generated pod name replaced by its alias.
    fn with_aliases(&self, text: &str) -> String {
        self.aliases.replace_in(text)
    }

    fn print_block(&mut self, text: &str, indent: &str) -> anyhow::Result<()> {
        let text = self.with_aliases(text);
        Ok(narration::print_block(self.out, &text, indent)?)
    }

    /// Lets the cluster run until `done` holds (paused clock: instantly),
    /// then a second more so that nothing is still on its way.
    async fn settle<F, Fut>(&mut self, what: &str, done: F) -> anyhow::Result<()>
    where
        F: FnMut(kube::Client) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        narration::settle(&self.client, what, done).await
    }

    /// Waits until pod `name` is bound (or, with `bound = false`, marked
    /// unschedulable).
    async fn wait_pod(&mut self, name: &str, bound: bool) -> anyhow::Result<()> {
        let owned = name.to_string();
        self.settle(&format!("pod {name} decided"), move |client| {
            let name = owned.clone();
            async move {
                let pod = Api::<Pod>::default_namespaced(client).get(&name).await?;
                Ok(if bound {
                    node_of(&pod).is_some()
                } else {
                    scheduled_condition(&pod).is_some_and(|c| c.0 == "False")
                })
            }
        })
        .await
    }

    /// The decisions made since the last call, in order.
    fn decisions(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Ok(step) = self.steps.try_recv() {
            if let Step::Scheduled { decision } | Step::Unschedulable { decision } = &step
                && let Some((_, name)) = decision.pod.split_once('/')
            {
                self.alias(name);
            }
            steps.push(step);
        }
        steps
    }

    /// Prints every decision made since the last call: the summary, or
    /// with `tables` the whole per-node table.
    fn print_decisions(&mut self, tables: bool) -> anyhow::Result<()> {
        for step in self.decisions() {
            match step {
                Step::Scheduled { decision } | Step::Unschedulable { decision } => {
                    if tables {
                        let text = decision.explain();
                        self.print_block(&text, "    ")?;
                    } else {
                        let text = decision.summary();
                        self.print_block(&text, "    ")?;
                    }
                }
                Step::BindFailed { pod, error } => {
                    let pod = self.with_aliases(&pod);
                    say!(self, "    binding {pod} failed: {error}");
                }
            }
        }
        Ok(())
    }

    async fn create_node(&mut self, node: Node, what: &str) -> anyhow::Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        say!(self, "  + node {name:<7} {what}");
        self.nodes().create(&PostParams::default(), &node).await?;
        Ok(())
    }

    async fn create_pod(&mut self, pod: Pod, what: &str) -> anyhow::Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        say!(self, "  $ kubectl create -f {name}.yaml      # {what}");
        self.pods().create(&PostParams::default(), &pod).await?;
        Ok(())
    }

    /// What `kubectl describe pod`'s Events section shows for `name`.
    async fn print_events(&mut self, name: &str) -> anyhow::Result<()> {
        let events = Api::<Event>::default_namespaced(self.client.clone())
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await?;
        let mut lines: Vec<(String, String)> = events
            .items
            .iter()
            .map(|e| {
                let count = e.count.unwrap_or(1);
                let times = if count > 1 {
                    format!(" (x{count})")
                } else {
                    String::new()
                };
                (
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default()
                        + e.metadata.name.as_deref().unwrap_or_default(),
                    format!(
                        "{:<8} {:<17} {:<18} {}{times}",
                        e.type_.as_deref().unwrap_or_default(),
                        e.reason.as_deref().unwrap_or_default(),
                        e.source
                            .as_ref()
                            .and_then(|s| s.component.as_deref())
                            .unwrap_or_default(),
                        e.message.as_deref().unwrap_or_default(),
                    ),
                )
            })
            .collect();
        lines.sort();
        say!(
            self,
            "    Type     Reason            From               Message"
        );
        for (_, line) in lines {
            self.print_block(&line, "    ")?;
        }
        Ok(())
    }

    /// `kubectl get pods -o wide`, reduced to what this lab is about.
    async fn print_pods(&mut self) -> anyhow::Result<()> {
        let mut pods = self.pods().list(&ListParams::default()).await?.items;
        pods.sort_by_key(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let alias = self.aliases.get(&name).map(str::to_string).unwrap_or(name);
            alias_order(&alias)
        });
        say!(self, "    NAME       STATUS    NODE");
        for p in &pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            let alias = self.alias(&name);
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into());
            let node = node_of(p).unwrap_or_else(|| "<none>".into());
            say!(self, "    {alias:<10} {phase:<9} {node}");
        }
        Ok(())
    }

    async fn scenario(&mut self) -> anyhow::Result<()> {
        say!(self, "Lab: the scheduler — filter, score, bind");
        say!(self);
        say!(
            self,
            "In this process: an API server, the controller manager, the default-scheduler"
        );
        say!(
            self,
            "(tie-breaking seed 1), and this lab, which plays kubectl. There are no kubelets"
        );
        say!(
            self,
            "yet: the lab registers the nodes itself by creating Node objects, as each"
        );
        say!(
            self,
            "node's kubelet does when it starts (next lab). Generated pod names are printed"
        );
        say!(
            self,
            "as web-#1, web-#2, ... in the order they were scheduled."
        );

        // 1 ---------------------------------------------------------------
        say!(self);
        say!(self, "1. Three nodes of different sizes");
        self.create_node(
            node("node-1", "2", "4Gi", json!({}), json!([])),
            "2 cpu, 4Gi",
        )
        .await?;
        self.create_node(
            node("node-2", "4", "8Gi", json!({}), json!([])),
            "4 cpu, 8Gi",
        )
        .await?;
        self.create_node(
            node("node-3", "4", "8Gi", json!({}), json!([])),
            "4 cpu, 8Gi",
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;

        // 2 ---------------------------------------------------------------
        say!(self);
        say!(self, "2. One pod: where does it go, and why?");
        self.create_pod(
            pod("api", "1", "1Gi", json!({})),
            "requests cpu 1, memory 1Gi",
        )
        .await?;
        self.wait_pod("api", true).await?;
        self.decisions();
        say!(
            self,
            "  Every node passes the filters, so all three are scored. The scheduler wrote its"
        );
        say!(
            self,
            "  reasoning on the pod (an annotation of this workbook, not of Kubernetes):"
        );
        say!(
            self,
            "  $ kubectl get pod api -o jsonpath='{{.metadata.annotations.labs\\.workbook/scheduling-decision}}'"
        );
        let api_pod = self.pods().get("api").await?;
        let why = api_pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DECISION_ANNOTATION))
            .cloned()
            .context("the decision annotation is missing")?;
        self.print_block(&why, "    ")?;
        say!(
            self,
            "  Each cell is a plugin's score 0-100 (the raw score in brackets where it was"
        );
        say!(
            self,
            "  normalised), TOTAL = sum of score x weight. FIT (LeastAllocated) prefers the"
        );
        say!(
            self,
            "  emptiest node, BALANCED prefers cpu and memory used in equal shares. SPREAD is"
        );
        say!(
            self,
            "  '-': a pod with no owner and no labels has no one to spread away from."
        );
        say!(self, "  $ kubectl describe pod api   (Events)");
        self.print_events("api").await?;

        // 3 ---------------------------------------------------------------
        say!(self);
        say!(self, "3. A ReplicaSet of 4: its pods spread out");
        say!(
            self,
            "  $ kubectl create -f web.yaml      # replicas: 4, each requests cpu 500m, memory 512Mi"
        );
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "app", "image": "workbook/demo-app:v1",
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    }]},
                },
            },
        }))?;
        Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &rs)
            .await?;
        self.settle("4 web pods bound", |client| async move {
            let pods = Api::<Pod>::default_namespaced(client)
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(pods.items.len() == 4 && pods.items.iter().all(|p| node_of(p).is_some()))
        })
        .await?;
        self.print_decisions(false)?;
        say!(
            self,
            "  The second one, in full: PodTopologySpread (SPREAD) counts the ReplicaSet's"
        );
        say!(
            self,
            "  pods already on each node (raw score) and normalises so that the node with the"
        );
        say!(
            self,
            "  fewest gets 100. web-#1 is on node-3, which pushes web-#2 elsewhere:"
        );
        self.print_web_table("web-#2").await?;

        // 4 ---------------------------------------------------------------
        say!(self);
        say!(self, "4. A pod that fits nowhere");
        self.create_pod(pod("batch", "6", "2Gi", json!({})), "requests cpu 6")
            .await?;
        self.wait_pod("batch", false).await?;
        self.print_decisions(true)?;
        say!(
            self,
            "  $ kubectl get pod batch -o jsonpath='{{.status.conditions}}'"
        );
        let batch = self.pods().get("batch").await?;
        if let Some((status, reason, message)) = scheduled_condition(&batch) {
            say!(
                self,
                "    PodScheduled={status} reason={reason} message=\"{message}\""
            );
        }
        say!(self, "  $ kubectl describe pod batch   (Events)");
        self.print_events("batch").await?;
        say!(
            self,
            "  The pod waits in the queue's unschedulablePods. Retrying would give the same"
        );
        say!(
            self,
            "  answer, so the scheduler waits for a change. A minute passes:"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.print_decisions(false)?;
        let placed = node_of(&self.pods().get("batch").await?);
        say!(
            self,
            "    batch is still {}",
            placed.map_or("Pending, with no node".to_string(), |n| format!("on {n}"))
        );

        // 5 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "5. A node with room appears: the pod is retried at once"
        );
        self.create_node(
            node("node-4", "8", "16Gi", json!({}), json!([])),
            "8 cpu, 16Gi",
        )
        .await?;
        self.wait_pod("batch", true).await?;
        self.print_decisions(true)?;

        // 6 ---------------------------------------------------------------
        say!(self);
        say!(self, "6. Taints and tolerations, and a nodeSelector");
        self.create_node(
            node(
                "gpu-1",
                "8",
                "32Gi",
                json!({"accelerator": "gpu"}),
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            ),
            "8 cpu, 32Gi, label accelerator=gpu, taint dedicated=gpu:NoSchedule",
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        say!(
            self,
            "  A pod without a toleration: gpu-1 is the emptiest node, but the taint keeps it off."
        );
        self.create_pod(pod("cache", "1", "1Gi", json!({})), "no toleration")
            .await?;
        self.wait_pod("cache", true).await?;
        self.print_decisions(true)?;
        say!(
            self,
            "  A pod that tolerates the taint and selects the label: only gpu-1 passes, so it"
        );
        say!(self, "  is chosen without scoring.");
        self.create_pod(
            pod(
                "trainer",
                "2",
                "4Gi",
                json!({
                    "nodeSelector": {"accelerator": "gpu"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                }),
            ),
            "nodeSelector accelerator=gpu, tolerates dedicated=gpu",
        )
        .await?;
        self.wait_pod("trainer", true).await?;
        self.print_decisions(true)?;
        say!(
            self,
            "  A nodeSelector no node matches: the reasons of all five nodes, summed up."
        );
        self.create_pod(
            pod(
                "ssd",
                "100m",
                "128Mi",
                json!({"nodeSelector": {"disktype": "ssd"}}),
            ),
            "nodeSelector disktype=ssd",
        )
        .await?;
        self.wait_pod("ssd", false).await?;
        self.print_decisions(false)?;

        say!(self);
        say!(self, "Where everything is:");
        say!(self, "  $ kubectl get pods -o wide");
        self.print_pods().await?;
        say!(self);
        say!(
            self,
            "Every pod that fits has a node, yet all of them stay Pending: a binding only"
        );
        say!(
            self,
            "writes spec.nodeName. Nothing on the nodes reads it and starts containers —"
        );
        say!(self, "there is no kubelet. That is the next lab.");
        Ok(())
    }

    /// The table of a web pod, from its annotation.
    async fn print_web_table(&mut self, alias: &str) -> anyhow::Result<()> {
        let name = self
            .aliases
            .name_of(alias)
            .with_context(|| format!("no pod {alias}"))?;
        let pod = self.pods().get(&name).await?;
        let why = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DECISION_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        self.print_block(&why, "    ")
    }
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// The PodScheduled condition: (status, reason, message).
fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}
