//! `labs replicaset`: the ReplicaSet controller and the garbage collector at
//! work, narrated.
//!
//! Everything runs in this process: an API server (the router, called
//! in-process), the controller manager (ReplicaSet controller and garbage
//! collector, each with its own `kube::Client`), and the lab itself, which
//! plays the user (kubectl) and, when needed, a scheduler and a kubelet.
//!
//! The run is deterministic, so its output can be snapshot-tested:
//!
//! * it runs on one thread with tokio's clock paused (the binary builds
//!   such a runtime; the test uses `#[tokio::test(start_paused = true)]`).
//!   The clock only moves when every task waits, so "wait 100 ms, then
//!   look" means "look once everything has settled";
//! * the API server names pods `web-` plus 5 random characters. The lab
//!   prints them as `web-#1`, `web-#2`, … in the order the API server
//!   created them (by resourceVersion);
//! * it prints no times.

use std::collections::BTreeMap;

use crate::lab::narration::{self, NameAliases, alias_order, say};
use std::io::Write;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::apiserver::ApiServer;
use crate::controllers::manager::{ControllerManager, ManagerOptions};
use crate::controllers::replicaset::controller::Step;
use crate::controllers::replicaset::{self, pod_deletion_cost};
use crate::store::Store;

/// The ReplicaSet the lab creates (what `kubectl create -f rs.yaml` sends).
/// `terminationGracePeriodSeconds: 0`: there is no real kubelet to stop
/// containers, so a deleted pod goes at once even after the fake kubelet
/// below has marked it Running.
pub fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": "workbook/demo-app:v1"}],
                },
            },
        },
    }))
    .expect("a valid ReplicaSet")
}

/// Runs the scenario, writing the narration to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    let api = ApiServer::new(Store::new());
    let (steps_tx, steps) = mpsc::unbounded_channel();
    let manager = ControllerManager::start(
        api.client(),
        ManagerOptions {
            replicaset_steps: Some(steps_tx),
            ..ManagerOptions::default()
        },
    );
    let mut lab = Lab {
        out,
        client: api.client(),
        steps,
        aliases: NameAliases::default(),
    };
    let result = lab.scenario().await;
    manager.shutdown().await?;
    result
}

struct Lab<'a> {
    out: &'a mut dyn Write,
    /// The lab's own client: it plays kubectl (and a fake scheduler and kubelet).
    client: kube::Client,
    steps: mpsc::UnboundedReceiver<Step>,
    /// Generated pod name → stable alias (`web-#3`).
    aliases: NameAliases,
}

impl Lab<'_> {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::default_namespaced(self.client.clone())
    }

    fn pod_api(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    fn alias(&mut self, name: &str) -> String {
        self.aliases.alias(name)
    }

    fn aliases(&mut self, names: &[String]) -> String {
        names
            .iter()
            .map(|n| self.alias(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Lets the cluster settle (tokio's paused clock advances only when
    /// every task waits), until `done` holds. Then prints what the
    /// ReplicaSet controller did meanwhile.
    async fn settle<F, Fut>(&mut self, what: &str, done: F) -> anyhow::Result<()>
    where
        F: FnMut(kube::Client) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        narration::settle(&self.client, what, done).await?;
        self.print_steps()?;
        Ok(())
    }

    fn print_steps(&mut self) -> anyhow::Result<()> {
        while let Ok(step) = self.steps.try_recv() {
            match step {
                Step::Created {
                    replica_set,
                    batches,
                    pods,
                } => {
                    let count: usize = batches.iter().sum();
                    let batches: Vec<String> = batches.iter().map(usize::to_string).collect();
                    let pods = self.aliases(&pods);
                    say!(
                        self,
                        "  replicaset-controller: {replica_set}: created {count} in slow-start batches [{}]: {pods}",
                        batches.join(", ")
                    );
                }
                Step::CreateFailed {
                    replica_set, error, ..
                } => say!(
                    self,
                    "  replicaset-controller: {replica_set}: create failed: {error}"
                ),
                Step::Deleted { replica_set, pods } => {
                    let pods = self.aliases(&pods);
                    say!(
                        self,
                        "  replicaset-controller: {replica_set}: deleted {pods}"
                    );
                }
                Step::Adopted { replica_set, pod } => {
                    let pod = self.alias(&pod);
                    say!(
                        self,
                        "  replicaset-controller: {replica_set}: adopted {pod}"
                    );
                }
                Step::Released { replica_set, pod } => {
                    let pod = self.alias(&pod);
                    say!(
                        self,
                        "  replicaset-controller: {replica_set}: released {pod}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits until ReplicaSet `name` has `replicas` pods and says so in its
    /// status.
    async fn converge(&mut self, name: &str, replicas: i32) -> anyhow::Result<()> {
        let name_owned = name.to_string();
        self.settle(&format!("{name} has {replicas} pods"), move |client| {
            let name = name_owned.clone();
            async move {
                let rs = Api::<ReplicaSet>::default_namespaced(client.clone())
                    .get(&name)
                    .await?;
                let pods = owned_pods(&client, &rs).await?;
                let status = rs.status.unwrap_or_default();
                Ok(pods.len() == replicas as usize
                    && status.replicas == replicas
                    && status.observed_generation == rs.metadata.generation)
            }
        })
        .await
    }

    /// Prints the pods of a ReplicaSet, one per line, by alias.
    async fn print_pods(&mut self, selector: &str) -> anyhow::Result<()> {
        let pods = self
            .pod_api()
            .list(&ListParams::default().labels(selector))
            .await?;
        let mut lines = BTreeMap::new();
        for pod in &pods.items {
            let alias = self.alias(pod.metadata.name.as_deref().unwrap_or_default());
            let owner = match replicaset::controller_of(&pod.metadata) {
                Some(o) => format!("controlled by {} {}", o.kind, o.name),
                None => "no ownerReferences".to_string(),
            };
            lines.insert(
                alias_order(&alias),
                format!("{alias:<10} {:<46} {owner}", describe(pod)),
            );
        }
        if lines.is_empty() {
            say!(self, "    (no pods)");
        }
        for line in lines.values() {
            say!(self, "    {line}");
        }
        Ok(())
    }

    async fn print_status(&mut self, name: &str) -> anyhow::Result<()> {
        let rs = self.rs_api().get(name).await?;
        let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = rs.status.unwrap_or_default();
        say!(
            self,
            "    status: replicas={} readyReplicas={} availableReplicas={} (spec.replicas={spec}, observedGeneration={} of generation {})",
            st.replicas,
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
            st.observed_generation.unwrap_or(0),
            rs.metadata.generation.unwrap_or(0)
        );
        Ok(())
    }

    /// A fake scheduler and kubelet: bind the pod to `node-1`, then write
    /// its status as a kubelet would.
    async fn fake_kubelet(
        &mut self,
        alias: &str,
        phase: &str,
        ready: bool,
        cost: Option<i32>,
    ) -> anyhow::Result<()> {
        let name = self.name_of(alias)?;
        let pods = self.pod_api();
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
        });
        pods.create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
        .with_context(|| format!("binding {alias}"))?;
        if phase != "Pending" {
            let now = crate::machinery::clock::now().to_string();
            let status = json!({"status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                "lastTransitionTime": now}],
            }});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .with_context(|| format!("writing the status of {alias}"))?;
        }
        if let Some(cost) = cost {
            let patch = json!({"metadata": {"annotations": {replicaset::POD_DELETION_COST: cost.to_string()}}});
            pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    fn name_of(&self, alias: &str) -> anyhow::Result<String> {
        self.aliases
            .name_of(alias)
            .with_context(|| format!("no pod {alias}"))
    }

    async fn scale(&mut self, name: &str, replicas: i32) -> anyhow::Result<()> {
        say!(self, "  $ kubectl scale rs {name} --replicas={replicas}");
        self.rs_api()
            .patch_scale(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await?;
        Ok(())
    }

    async fn scenario(&mut self) -> anyhow::Result<()> {
        say!(
            self,
            "Lab: controllers — the ReplicaSet controller and the garbage collector"
        );
        say!(self);
        say!(
            self,
            "In this process: an API server, a controller manager running the"
        );
        say!(
            self,
            "replicaset-controller and the garbage-collector (each with its own client),"
        );
        say!(
            self,
            "and this lab, which plays kubectl — and, when asked, a scheduler and a kubelet."
        );
        say!(
            self,
            "Pod names are random (web-7x2kq); they are printed as web-#1, web-#2, ..."
        );
        say!(self, "in the order the API server created them.");

        // 1 ---------------------------------------------------------------
        say!(self);
        say!(self, "1. Desired state: a ReplicaSet of 3");
        say!(
            self,
            "  $ kubectl create -f rs.yaml      # replicas: 3, selector app=web"
        );
        self.rs_api()
            .create(&PostParams::default(), &replica_set("web", 3))
            .await?;
        self.converge("web", 3).await?;
        say!(
            self,
            "  Slow start: one pod first; only when it succeeds, two more."
        );
        self.print_pods("app=web").await?;
        self.print_status("web").await?;
        say!(
            self,
            "  Nobody schedules the pods (there is no scheduler yet), so they stay Pending."
        );

        // 2 ---------------------------------------------------------------
        say!(self);
        say!(self, "2. Observed state drifts: delete a pod");
        let victim = self.name_of("web-#2")?;
        say!(self, "  $ kubectl delete pod web-#2");
        self.pod_api()
            .delete(&victim, &DeleteParams::default())
            .await?;
        self.converge("web", 3).await?;
        say!(
            self,
            "  The controller does not know *why* there are 2 pods, only that 2 < 3."
        );
        self.print_pods("app=web").await?;

        // 3 ---------------------------------------------------------------
        say!(self);
        say!(self, "3. Scale up to 5");
        self.scale("web", 5).await?;
        self.converge("web", 5).await?;
        say!(
            self,
            "  A fake scheduler binds some pods to node-1 and a fake kubelet writes their"
        );
        say!(
            self,
            "  status (what the real ones will do in the next labs):"
        );
        self.fake_kubelet("web-#1", "Running", true, Some(100))
            .await?;
        self.fake_kubelet("web-#3", "Running", true, None).await?;
        self.fake_kubelet("web-#4", "Running", false, None).await?;
        self.fake_kubelet("web-#5", "Pending", false, None).await?;
        self.settle("pod status seen", |_| async { Ok(true) })
            .await?;
        self.print_pods("app=web").await?;
        self.print_status("web").await?;

        // 4 ---------------------------------------------------------------
        say!(self);
        say!(self, "4. Scale down to 1: which pods go first?");
        self.scale("web", 1).await?;
        self.converge("web", 1).await?;
        say!(
            self,
            "  Deleted in this order: the unscheduled pod (rule 1), the Pending one (rule 2),"
        );
        say!(
            self,
            "  the one not ready (rule 3), then of the two ready pods the one with the lower"
        );
        say!(
            self,
            "  pod-deletion-cost (rule 4). Losing a pod that serves nobody costs nothing."
        );
        self.print_pods("app=web").await?;

        // 5 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "5. Adoption: a hand-made pod with the ReplicaSet's labels"
        );
        say!(
            self,
            "  $ kubectl run handmade --image=workbook/demo-app:v1 --labels=app=web"
        );
        let handmade: Pod = serde_json::from_value(json!({
            "metadata": {"name": "handmade", "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "workbook/demo-app:v1"}]},
        }))?;
        self.pod_api()
            .create(&PostParams::default(), &handmade)
            .await?;
        self.converge("web", 1).await?;
        say!(
            self,
            "  The orphan matched the selector, so the controller adopted it (an"
        );
        say!(
            self,
            "  ownerReference to web). That made 2 pods for 1 replica, and the worst-ranked"
        );
        say!(
            self,
            "  one went: the hand-made pod, which was not even scheduled."
        );
        self.print_pods("app=web").await?;

        // 6 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "6. Delete the ReplicaSet (background propagation, the default)"
        );
        say!(self, "  $ kubectl delete rs web");
        self.delete_rs("web", DeleteParams::background()).await?;
        self.gone("web").await?;
        say!(
            self,
            "  The API server deleted only the ReplicaSet. Its pod named it as owner, and the"
        );
        say!(
            self,
            "  garbage-collector, seeing the owner gone, deleted the pod:"
        );
        self.print_pods("app=web").await?;

        // 7 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "7. Delete with --cascade=orphan: the pods stay, without their owner"
        );
        say!(
            self,
            "  $ kubectl create -f api.yaml      # a ReplicaSet api of 2"
        );
        self.rs_api()
            .create(&PostParams::default(), &replica_set("api", 2))
            .await?;
        self.converge("api", 2).await?;
        say!(self, "  $ kubectl delete rs api --cascade=orphan");
        self.delete_rs("api", DeleteParams::orphan()).await?;
        self.gone("api").await?;
        say!(
            self,
            "  The garbage-collector removed the ownerReferences, then the finalizer; then the"
        );
        say!(
            self,
            "  API server deleted the ReplicaSet. Nothing will replace these pods now:"
        );
        self.print_pods("app=api").await?;

        // 8 ---------------------------------------------------------------
        say!(self);
        say!(
            self,
            "8. Delete with --cascade=foreground: the pods first, then the owner"
        );
        say!(
            self,
            "  $ kubectl create -f db.yaml       # a ReplicaSet db of 2"
        );
        self.rs_api()
            .create(&PostParams::default(), &replica_set("db", 2))
            .await?;
        self.converge("db", 2).await?;
        let deletions = self.record_deletions().await?;
        say!(self, "  $ kubectl delete rs db --cascade=foreground");
        self.delete_rs("db", DeleteParams::foreground()).await?;
        self.gone("db").await?;
        let mut deletions = deletions.await??;
        deletions.sort();
        // The pods go concurrently (in any order among themselves); what
        // matters is that every one went before the ReplicaSet.
        let rs_deleted_at = deletions
            .iter()
            .find(|(_, what)| what.starts_with("ReplicaSet"))
            .map(|(rv, _)| *rv)
            .context("the ReplicaSet's deletion was not seen")?;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (rv, what) in deletions {
            if what.starts_with("ReplicaSet") {
                continue;
            }
            let alias = self.alias(&what);
            if rv < rs_deleted_at {
                before.push(alias);
            } else {
                after.push(alias);
            }
        }
        before.sort_by_key(|a| alias_order(a));
        say!(
            self,
            "  Deleted first: {}; then ReplicaSet db. (Deleted after it: {}.)",
            before.join(", "),
            if after.is_empty() {
                "none".to_string()
            } else {
                after.join(", ")
            }
        );

        say!(self);
        say!(
            self,
            "What is left: the orphaned pods, still Pending: no scheduler has placed them."
        );
        say!(self, "That is the next lab.");
        Ok(())
    }

    /// DELETE a ReplicaSet and show what the API server answered.
    async fn delete_rs(&mut self, name: &str, params: DeleteParams) -> anyhow::Result<()> {
        let answer = self.rs_api().delete(name, &params).await?;
        match answer.left() {
            Some(rs) if rs.metadata.deletion_timestamp.is_some() => {
                let finalizers = rs.metadata.finalizers.unwrap_or_default().join(", ");
                say!(
                    self,
                    "  The API server answers with the ReplicaSet, now with a deletionTimestamp and the"
                );
                say!(
                    self,
                    "  finalizer [{finalizers}]: it stays until the garbage-collector removes that."
                );
            }
            _ => say!(self, "  The API server deletes the ReplicaSet at once."),
        }
        Ok(())
    }

    async fn gone(&mut self, name: &str) -> anyhow::Result<()> {
        let name_owned = name.to_string();
        self.settle(
            &format!("{name} is gone and its pods handled"),
            move |client| {
                let name = name_owned.clone();
                async move {
                    let gone = Api::<ReplicaSet>::default_namespaced(client.clone())
                        .get_opt(&name)
                        .await?
                        .is_none();
                    // And no pod names it as owner any more.
                    let pods = Api::<Pod>::default_namespaced(client)
                        .list(&ListParams::default().labels(&format!("app={name}")))
                        .await?;
                    let owned = pods.items.iter().any(|p| {
                        p.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.name == name)
                    });
                    Ok(gone && !owned)
                }
            },
        )
        .await
    }

    /// Watches pods and ReplicaSets from now on and returns, when awaited,
    /// every deletion seen as (resourceVersion of the delete, what).
    async fn record_deletions(
        &self,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Vec<(u64, String)>>>> {
        let rv = self
            .pod_api()
            .list(&ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let pods = self
            .pod_api()
            .watch(&WatchParams::default().timeout(5), &rv)
            .await?;
        let rss = self
            .rs_api()
            .watch(&WatchParams::default().timeout(5), &rv)
            .await?;
        let pods = tokio::spawn(collect_deletions(pods.boxed(), |p: &Pod| {
            p.metadata.name.clone().unwrap_or_default()
        }));
        let rss = tokio::spawn(collect_deletions(rss.boxed(), |r: &ReplicaSet| {
            format!(
                "ReplicaSet {}",
                r.metadata.name.as_deref().unwrap_or_default()
            )
        }));
        Ok(tokio::spawn(async move {
            let mut all = pods.await??;
            all.extend(rss.await??);
            Ok(all)
        }))
    }
}

async fn collect_deletions<K: kube::Resource>(
    mut events: futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>,
    what: fn(&K) -> String,
) -> anyhow::Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    while let Some(event) = events.next().await {
        if let WatchEvent::Deleted(obj) = event? {
            let rv = obj
                .meta()
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.push((rv, what(&obj)));
        }
    }
    Ok(out)
}

/// The active pods controlled by `rs`.
async fn owned_pods(client: &kube::Client, rs: &ReplicaSet) -> anyhow::Result<Vec<Pod>> {
    let pods = Api::<Pod>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            replicaset::is_pod_active(p)
                && replicaset::controller_of(&p.metadata)
                    .is_some_and(|o| Some(&o.uid) == rs.metadata.uid.as_ref())
        })
        .collect())
}

/// What the deletion ranking looks at, in words.
fn describe(pod: &Pod) -> String {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let mut words = vec![match node {
        Some(n) => format!("on {n}"),
        None => "unscheduled".into(),
    }];
    words.push(phase);
    if replicaset::is_pod_ready(pod) {
        words.push("ready".into());
    } else {
        words.push("not ready".into());
    }
    let cost = pod_deletion_cost(pod);
    if cost != 0 {
        words.push(format!("deletion cost {cost}"));
    }
    words.join(", ")
}
