//! `labs kubelet`: one node's kubelet at work, narrated.
//!
//! In this process: an API server (called in-process), **one kubelet**
//! (`node-1`) on the simulated container runtime, and the lab, which plays
//! kubectl. There is no scheduler: every pod the lab creates already names
//! its node (`spec.nodeName: node-1`), as `kubectl run --overrides` or a
//! DaemonSet's pods do. A pod with a node name is exactly what the scheduler
//! would have produced, so the kubelet cannot tell the difference.
//!
//! What the lab shows, pod by pod, is what `kubectl get pods -w` and
//! `kubectl get events -w` would show side by side: each status the kubelet
//! writes (READY, STATUS, RESTARTS as kubectl computes them, the phase, the
//! container's state, the conditions that changed) and each Event it
//! records, in the order they were written, with the virtual time since the
//! scenario began.
//!
//! The run is deterministic, so its output is a snapshot test:
//!
//! * one thread, tokio's clock paused: time moves only when every task
//!   waits, so "crash after 5 s, back off 10 s" takes no real time and
//!   happens at exactly the same virtual instants on every run;
//! * the lab prints times relative to the start of each scenario, never a
//!   wall-clock timestamp; pod UIDs (which appear in the kubelet's messages)
//!   are printed as `<uid>`; container IDs are not printed;
//! * the pods have fixed names (no `generateName`);
//! * what the kubelet writes is ordered by `resourceVersion`, the store's
//!   global revision: the order the writes happened in, whichever watch
//!   (pods or events) delivered them first.
//!
//! Left out (non-goals): several nodes and the scheduler (their labs come
//! before this one), the process and Docker runtimes (`labs cluster
//! --runtime process` runs real `demo-app` processes; their timings are not
//! deterministic), init containers and sidecars, startup probes. The
//! kubelet does more than the lab shows; `pod_sync`'s table tests cover the
//! rest.

use crate::lab::narration::say;

mod watch;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use watch::*;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apiserver::ApiServer;
use crate::kubelet::Clock;
use crate::kubelet::runtime::LoopbackIpam;
use crate::kubelet::runtime::simulated::{
    Behavior, SIMULATE_ANNOTATION, SimulatedConfig, SimulatedRuntime,
};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::machinery::wellknown::NODE_LEASE_NAMESPACE;
use crate::store::Store;

/// The image every pod runs, and a tag that does not exist (the typo of
/// scenario 6).
const IMAGE: &str = "workbook/demo-app:v1";
const MISSING_IMAGE: &str = "workbook/demo-app:v9";

/// The simulated node's images: every pull takes 2 s (so the first pod has
/// something to wait for), and `v9` does not exist. What each *container*
/// does (start delay, crash, probes) comes from its pod's
/// `labs.workbook/simulate` annotation instead.
fn simulated_config() -> SimulatedConfig {
    let mut config = SimulatedConfig {
        default: Behavior {
            pull_seconds: 2,
            ..Behavior::default()
        },
        ..SimulatedConfig::default()
    };
    config.images.insert(
        MISSING_IMAGE.into(),
        Behavior {
            pull_fails: true,
            ..Behavior::default()
        },
    );
    config
}

/// A pod bound to node-1 running one container `app`. `simulate` is the
/// simulated runtime's script for the container; `container` and `spec`
/// add fields to the container and the pod spec.
pub fn pod(name: &str, simulate: Value, container: Value, spec: Value) -> Pod {
    let mut c = json!({"name": "app", "image": IMAGE});
    merge(&mut c, container);
    let mut s = json!({"nodeName": "node-1", "containers": [c]});
    merge(&mut s, spec);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "annotations": {SIMULATE_ANNOTATION: simulate.to_string()},
        },
        "spec": s,
    }))
    .expect("a valid Pod")
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

/// An HTTP probe of the app's `/healthz`, every `period` seconds.
fn http_probe(period: i32, extra: Value) -> Value {
    let mut p = json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": period});
    merge(&mut p, extra);
    p
}

/// Runs the scenarios, writing the narration to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    run_with_facts(out).await.map(|_| ())
}

/// What the lab measured, for the tests to check directly.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Scenario 3: seconds from each crash of `crash` to its restart.
    pub crash_loop_waits: Vec<u64>,
    /// Scenario 3: the restart count after each restart.
    pub restart_counts: Vec<i32>,
    /// Scenario 6: seconds (since the pod was created) of each pull of the
    /// missing image.
    pub pull_attempts: Vec<u64>,
    /// Scenario 7: the exit code of each deleted pod's container.
    pub exit_codes: BTreeMap<String, i32>,
}

/// Runs the lab and returns what it measured (for the tests).
pub async fn run_with_facts(out: &mut dyn Write) -> anyhow::Result<Facts> {
    let api = ApiServer::new(Store::new());
    // The kubelet's clock is the cluster's (virtual, on paused time).
    let clock = Clock::cluster();
    let runtime = Arc::new(SimulatedRuntime::new(
        simulated_config(),
        clock,
        LoopbackIpam::default(),
    ));
    let kubelet = Kubelet::start(api.client(), runtime, KubeletConfig::new("node-1"), clock);
    // `kubectl logs` reaches the kubelet through the API server.
    api.register_kubelet("node-1", kubelet.logs());

    let shutdown = CancellationToken::new();
    let (tx, seen) = mpsc::unbounded_channel();
    let observer = tokio::spawn(observe(api.client(), tx, shutdown.clone()));
    let mut lab = Lab {
        out,
        api: &api,
        client: api.client(),
        seen,
        start: Instant::now(),
        rows: HashMap::new(),
        uids: HashSet::new(),
        facts: Facts::default(),
    };
    let result = lab.scenario().await;
    let facts = std::mem::take(&mut lab.facts);
    shutdown.cancel();
    let _ = observer.await;
    kubelet.stop().await;
    result.map(|()| facts)
}

struct Lab<'a> {
    out: &'a mut dyn Write,
    api: &'a ApiServer,
    /// The lab's own client: it plays kubectl.
    client: kube::Client,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// When the current scenario began: times are printed from here.
    start: Instant,
    /// The last row printed per pod, to print only changes (as `-w` does).
    rows: HashMap<String, PodRow>,
    /// Pod UIDs to hide in messages.
    uids: HashSet<String>,
    facts: Facts,
}

impl Lab<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    /// Seconds since the scenario began, rounded (tokio rounds timers to
    /// the millisecond; everything here happens on whole seconds).
    fn secs(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_millis() as u64 + 500) / 1000
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for uid in &self.uids {
            text = text.replace(uid.as_str(), "<uid>");
        }
        text
    }

    /// A new scenario: time starts again at 0, with a header.
    fn begin(&mut self, title: &str) -> anyhow::Result<()> {
        self.start = Instant::now();
        say!(self);
        say!(self, "{title}");
        Ok(())
    }

    /// `kubectl apply -f` of a pod.
    async fn create(&mut self, pod: &Pod, comment: &str) -> anyhow::Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        say!(self, "  $ kubectl apply -f {name}.yaml   # {comment}");
        let created = self.pods().create(&PostParams::default(), pod).await?;
        self.uids
            .insert(created.metadata.uid.clone().unwrap_or_default());
        Ok(())
    }

    /// Lets `secs` seconds of virtual time pass, then prints what happened
    /// to `pods` meanwhile.
    async fn watch(&mut self, secs: u64, pods: &[&str]) -> anyhow::Result<Vec<Line>> {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.print_timeline(pods)
    }

    /// Prints (and returns) what was seen about `pods` since the last call,
    /// in the order it was written.
    fn print_timeline(&mut self, pods: &[&str]) -> anyhow::Result<Vec<Line>> {
        let lines = self.timeline(pods);
        if !lines.is_empty() {
            say!(
                self,
                "   TIME  POD      READY STATUS            RESTARTS PHASE     CONTAINER"
            );
        }
        for line in &lines {
            let text = line.render();
            say!(self, "{text}");
        }
        Ok(lines)
    }

    /// What was seen about `pods` since the last call, in the order it was
    /// written, as timeline lines; what was seen about other pods is
    /// dropped.
    fn timeline(&mut self, pods: &[&str]) -> Vec<Line> {
        let mut all = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            all.push(s);
        }
        all.sort_by_key(Seen::rv);
        let mut lines = Vec::new();
        for s in all {
            match s {
                Seen::Pod {
                    at, pod, deleted, ..
                } => {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if !pods.contains(&name.as_str()) {
                        continue;
                    }
                    let t = self.secs(at);
                    if deleted {
                        lines.push(Line::Deleted { t, pod: name });
                        self.rows
                            .remove(&pod.metadata.name.clone().unwrap_or_default());
                        continue;
                    }
                    let row = row_of(&pod);
                    let old = self.rows.insert(name.clone(), row.clone());
                    if old.as_ref() == Some(&row) {
                        continue; // a write that changed nothing kubectl shows
                    }
                    let changed: Vec<(String, String)> = row
                        .conditions
                        .iter()
                        .filter(|c| old.as_ref().is_none_or(|o| !o.conditions.contains(c)))
                        .cloned()
                        .collect();
                    lines.push(Line::Pod {
                        t,
                        pod: name,
                        row,
                        changed,
                    });
                }
                Seen::Event { at, event, .. } => {
                    let about = event.involved_object.name.clone().unwrap_or_default();
                    if !pods.contains(&about.as_str()) {
                        continue;
                    }
                    lines.push(Line::Event {
                        t: self.secs(at),
                        type_: event.type_.clone().unwrap_or_default(),
                        reason: event.reason.clone().unwrap_or_default(),
                        message: self.redact(&event.message.clone().unwrap_or_default()),
                        count: event.count.unwrap_or(1),
                    });
                }
            }
        }
        lines
    }

    /// `kubectl delete pod`, then wait until the kubelet has let it go.
    async fn delete(&mut self, name: &str, quiet: bool) -> anyhow::Result<()> {
        say!(self, "  $ kubectl delete pod {name}");
        self.pods().delete(name, &DeleteParams::default()).await?;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.pods().get_opt(name).await?.is_none() {
                if quiet {
                    self.timeline(&[name]);
                }
                return Ok(());
            }
        }
        anyhow::bail!("pod {name} was not deleted")
    }

    /// `GET pods/{name}/log`, through the API server's router, as kubectl
    /// sends it.
    async fn logs(&mut self, name: &str, query: &str) -> anyhow::Result<String> {
        use tower::ServiceExt;
        let req = http::Request::get(format!("/api/v1/namespaces/default/pods/{name}/log{query}"))
            .body(axum::body::Body::empty())?;
        let resp = self.api.router().oneshot(req).await?;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn scenario(&mut self) -> anyhow::Result<()> {
        say!(
            self,
            "Lab: the kubelet — what one node does with the pods bound to it"
        );
        say!(self);
        say!(
            self,
            "In this process: an API server, one kubelet (node-1) on the simulated"
        );
        say!(
            self,
            "container runtime (containers without processes: each pod's annotation"
        );
        say!(
            self,
            "labs.workbook/simulate scripts its container), and this lab, which plays"
        );
        say!(
            self,
            "kubectl. No scheduler: each pod is created with spec.nodeName: node-1, as"
        );
        say!(
            self,
            "`kubectl run --overrides` could do. The kubelet cannot tell the difference."
        );
        say!(self);
        say!(
            self,
            "Times are virtual (tokio's clock is paused) and counted from the start of"
        );
        say!(
            self,
            "each step. A timeline merges `kubectl get pods -w` (READY, STATUS,"
        );
        say!(
            self,
            "RESTARTS, then the phase and the container's state) and `kubectl get"
        );
        say!(
            self,
            "events -w`, in the order the kubelet wrote them; `conditions:` lists the"
        );
        say!(
            self,
            "pod conditions that changed. Pod UIDs are printed as <uid>."
        );

        self.node().await?;
        self.lifecycle().await?;
        self.crash_loop().await?;
        self.readiness().await?;
        self.liveness().await?;
        self.image_pull().await?;
        self.deletion().await?;

        say!(self);
        say!(
            self,
            "The kubelet only ever did what the pod objects asked, and wrote back what"
        );
        say!(
            self,
            "it saw. Nothing here knows about ReplicaSets or Services: a pod that is not"
        );
        say!(
            self,
            "Ready is only reported so; taking it out of a Service is the EndpointSlice"
        );
        say!(
            self,
            "controller's job, and kube-proxy follows (the Services lab)."
        );
        Ok(())
    }

    // 1 -------------------------------------------------------------------
    async fn node(&mut self) -> anyhow::Result<()> {
        self.begin("1. The node registers itself")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get("node-1").await.context("node-1 registered")?;
        let st = node.status.clone().unwrap_or_default();
        let ready = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .context("a Ready condition")?;
        let info = st.node_info.clone().unwrap_or_default();
        say!(self, "  $ kubectl get nodes");
        say!(self, "  NAME     STATUS   ROLES    VERSION");
        say!(
            self,
            "  node-1   {:<8} <none>   {}",
            if ready.status == "True" {
                "Ready"
            } else {
                "NotReady"
            },
            info.kubelet_version
        );
        say!(
            self,
            "  The kubelet created its own Node object when it started (POST /api/v1/nodes):"
        );
        let cap = st.capacity.clone().unwrap_or_default();
        let q = |k: &str| cap.get(k).map(|q| q.0.clone()).unwrap_or_default();
        say!(
            self,
            "    capacity: cpu={} memory={} pods={}   (what the scheduler fits pods into)",
            q("cpu"),
            q("memory"),
            q("pods")
        );
        say!(self, "    runtime:  {}", info.container_runtime_version);
        let conditions: Vec<String> = st
            .conditions
            .iter()
            .flatten()
            .map(|c| format!("{}={}", c.type_, c.status))
            .collect();
        say!(self, "    conditions: {}", conditions.join(" "));

        // The heartbeat: the Lease the kubelet renews, and the node status
        // it only writes when something changed.
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
        let lease = leases.get("node-1").await.context("node-1's Lease")?;
        let spec = lease.spec.clone().unwrap_or_default();
        let first_renew = spec.renew_time.clone().context("a renewTime")?;
        let first_beat = ready.last_heartbeat_time.clone().context("a heartbeat")?;
        say!(
            self,
            "  It also created a Lease named after the node, in the namespace kube-node-lease:"
        );
        say!(self, "  $ kubectl get leases -n kube-node-lease");
        say!(self, "  NAME     HOLDER   AGE");
        say!(
            self,
            "  node-1   {:<8} {}s",
            spec.holder_identity.as_deref().unwrap_or("<none>"),
            crate::machinery::clock::now()
                .duration_since(lease.metadata.creation_timestamp.context("created")?.0)
                .as_secs()
        );
        say!(
            self,
            "    leaseDurationSeconds: {}   ownerReferences: {}",
            spec.lease_duration_seconds.unwrap_or_default(),
            lease
                .metadata
                .owner_references
                .iter()
                .flatten()
                .map(|o| format!("{}/{}", o.kind, o.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        let lease = leases.get("node-1").await?;
        let renew_moved = lease
            .spec
            .and_then(|s| s.renew_time)
            .context("a renewTime")?
            .0
            .duration_since(first_renew.0)
            .as_secs();
        let node = nodes.get("node-1").await?;
        let ready2 = node
            .status
            .unwrap_or_default()
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .context("Ready")?;
        let beat_moved = ready2
            .last_heartbeat_time
            .context("a heartbeat")?
            .0
            .duration_since(first_beat.0)
            .as_secs();
        say!(
            self,
            "  20 s later the Lease's renewTime has moved {renew_moved}s: the kubelet renews it every"
        );
        say!(
            self,
            "  10 s (a quarter of its 40 s duration). That renewal is the heartbeat. The node"
        );
        say!(
            self,
            "  status was computed twice meanwhile but not written, since nothing changed:"
        );
        say!(
            self,
            "  Ready's lastHeartbeatTime has moved {beat_moved}s. An unchanged status is written"
        );
        say!(
            self,
            "  only every 5 minutes. A renewal is a few hundred bytes; a node status is"
        );
        say!(
            self,
            "  kilobytes, and every component that watches nodes would receive it from every"
        );
        say!(
            self,
            "  node every 10 s. Without renewals, the node lifecycle controller would mark"
        );
        say!(
            self,
            "  node-1's Ready condition Unknown (kubectl shows NotReady)."
        );
        Ok(())
    }

    // 2 -------------------------------------------------------------------
    async fn lifecycle(&mut self) -> anyhow::Result<()> {
        self.begin("2. A pod's life: Pending, ContainerCreating, Running, Ready")?;
        let web = pod(
            "web",
            json!({"startDelaySeconds": 1, "readyAfterSeconds": 3, "stopSeconds": 3}),
            json!({"readinessProbe": http_probe(5, json!({"initialDelaySeconds": 5}))}),
            json!({}),
        );
        self.create(
            &web,
            "nodeName: node-1; readinessProbe after 5 s, every 5 s",
        )
        .await?;
        say!(
            self,
            "  The pull takes 2 s (the image is not on the node yet), the start 1 s:"
        );
        self.watch(12, &["web"]).await?;
        say!(
            self,
            "  The API server wrote the first line (phase Pending, nothing else). Then the"
        );
        say!(
            self,
            "  kubelet, at each step: ContainerCreating while it creates the pod's sandbox"
        );
        say!(
            self,
            "  (its IP) and pulls; Running once the container runs — but READY 0/1: a"
        );
        say!(
            self,
            "  readiness probe starts out failed, and the first one is only due 5 s after"
        );
        say!(
            self,
            "  the start (initialDelaySeconds). It passes, and the pod is Ready: now, and"
        );
        say!(self, "  only now, a Service would send it traffic.");
        let p = self.pods().get("web").await?;
        let st = p.status.clone().unwrap_or_default();
        say!(self, "  $ kubectl get pod web -o wide");
        say!(
            self,
            "  NAME   READY   STATUS    RESTARTS   IP          NODE"
        );
        let (ready, status, restarts) = kubectl_status(&p);
        say!(
            self,
            "  web    {ready:<7} {status:<9} {restarts:<10} {:<11} {}",
            st.pod_ip.clone().unwrap_or_default(),
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default()
        );
        say!(
            self,
            "  $ kubectl describe pod web   # the Conditions, in describe's order"
        );
        for c in st.conditions.iter().flatten() {
            say!(self, "    {:<27} {}", c.type_, c.status);
        }
        say!(self, "  $ kubectl logs web");
        let logs = self.logs("web", "").await?;
        for line in logs.lines() {
            say!(self, "    {line}");
        }
        Ok(())
    }

    // 3 -------------------------------------------------------------------
    async fn crash_loop(&mut self) -> anyhow::Result<()> {
        self.begin("3. A container that crashes: restarts and CrashLoopBackOff")?;
        let crash = pod(
            "crash",
            json!({"crashAfterSeconds": 5}),
            json!({}),
            json!({}),
        );
        self.create(&crash, "exits with code 1 five seconds after each start")
            .await?;
        say!(
            self,
            "  restartPolicy is Always (the default), so the kubelet restarts it, each"
        );
        say!(self, "  time after a longer wait:");
        let lines = self.watch(106, &["crash"]).await?;
        // Each crash (an exit seen) and each restart (the count going up).
        let (mut crashes, mut restarts) = (Vec::new(), Vec::new());
        let mut last_restarts = 0;
        for line in &lines {
            if let Line::Pod { t, row, .. } = line {
                if row.container.starts_with("terminated") && crashes.len() == restarts.len() {
                    crashes.push(*t);
                }
                if row.restarts > last_restarts {
                    last_restarts = row.restarts;
                    restarts.push(*t);
                    self.facts.restart_counts.push(row.restarts);
                }
            }
        }
        let waits: Vec<u64> = crashes.iter().zip(&restarts).map(|(c, r)| r - c).collect();
        self.facts.crash_loop_waits = waits.clone();
        let list = |v: &[u64]| {
            v.iter()
                .map(|s| format!("{s}s"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        say!(
            self,
            "  Crashes at t={}; restarts at t={}:",
            list(&crashes),
            list(&restarts)
        );
        say!(
            self,
            "  waits of {}. The first restart is immediate; then the wait",
            list(&waits)
        );
        say!(
            self,
            "  doubles from 10 s, up to 5 minutes (reset after 10 minutes without a crash)."
        );
        say!(
            self,
            "  The STATUS goes Error (the exit, as the crash is seen) → CrashLoopBackOff"
        );
        say!(
            self,
            "  (the kubelet has decided to wait; it looks again every 10 s, and each look"
        );
        say!(
            self,
            "  is one more BackOff in the Event's count) → Running. The phase stays"
        );
        say!(
            self,
            "  Running throughout: the pod is being restarted, it has not failed. The image"
        );
        say!(
            self,
            "  is on the node now, so restarts do not pull it (imagePullPolicy IfNotPresent)."
        );

        let p = self.pods().get("crash").await?;
        let cs = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default()
            .into_iter()
            .next()
            .context("a container status")?;
        say!(self, "  $ kubectl describe pod crash   # the container");
        say!(
            self,
            "    State:          {}",
            describe_state(cs.state.as_ref())
        );
        if let Some(m) = cs
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.clone())
        {
            say!(self, "      Message:      {}", self.redact(&m));
        }
        say!(
            self,
            "    Last State:     {}",
            describe_state(cs.last_state.as_ref())
        );
        say!(self, "    Ready:          {}", cs.ready);
        say!(self, "    Restart Count:  {}", cs.restart_count);
        say!(
            self,
            "  $ kubectl logs crash --previous   # the instance before the last restart"
        );
        let logs = self.logs("crash", "?previous=true").await?;
        for line in logs.lines() {
            say!(self, "    {line}");
        }
        self.delete("crash", true).await?;
        Ok(())
    }

    // 4 -------------------------------------------------------------------
    async fn readiness(&mut self) -> anyhow::Result<()> {
        self.begin("4. A readiness probe that never passes: Running, but not Ready")?;
        let unready = pod(
            "unready",
            json!({"neverReady": true}),
            json!({"readinessProbe": http_probe(5, json!({}))}),
            json!({}),
        );
        self.create(&unready, "its /healthz always answers 503")
            .await?;
        self.watch(21, &["unready"]).await?;
        say!(
            self,
            "  The container runs; only its readiness probe fails, every 5 s (one Event,"
        );
        say!(
            self,
            "  its count going up). A failing readiness probe restarts nothing: it keeps"
        );
        say!(
            self,
            "  the pod out of its Services' endpoints until it passes. READY 0/1 is the"
        );
        say!(
            self,
            "  symptom to look for: Running is not the same as working."
        );
        let p = self.pods().get("unready").await?;
        if let Some(c) = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
        {
            say!(
                self,
                "  Ready={} reason={} message={:?}",
                c.status,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default()
            );
        }
        self.delete("unready", true).await?;
        Ok(())
    }

    // 5 -------------------------------------------------------------------
    async fn liveness(&mut self) -> anyhow::Result<()> {
        self.begin(
            "5. A liveness probe that starts failing: the container is killed and restarted",
        )?;
        let hung = pod(
            "hung",
            json!({"unhealthyAfterSeconds": 15, "stopSeconds": 60}),
            json!({
                "readinessProbe": http_probe(5, json!({})),
                "livenessProbe": http_probe(5, json!({"terminationGracePeriodSeconds": 5})),
            }),
            json!({}),
        );
        self.create(
            &hung,
            "hangs 15 s after each start, ignores SIGTERM; livenessProbe every 5 s",
        )
        .await?;
        self.watch(36, &["hung"]).await?;
        say!(
            self,
            "  At 15 s the app hangs: both probes fail. Readiness takes the pod out of"
        );
        say!(
            self,
            "  service after 3 failures (failureThreshold); liveness, after 3 failures,"
        );
        say!(
            self,
            "  has the kubelet kill the container: SIGTERM, then — the app ignores it —"
        );
        say!(
            self,
            "  SIGKILL after the probe's terminationGracePeriodSeconds (5 s): exit code"
        );
        say!(
            self,
            "  137 (128 + signal 9). restartPolicy Always starts a fresh instance, whose"
        );
        say!(self, "  probes start over.");
        self.delete("hung", true).await?;
        Ok(())
    }

    // 6 -------------------------------------------------------------------
    async fn image_pull(&mut self) -> anyhow::Result<()> {
        self.begin("6. An image that cannot be pulled: ErrImagePull and ImagePullBackOff")?;
        let typo = pod(
            "typo",
            json!({}),
            json!({"image": MISSING_IMAGE}),
            json!({}),
        );
        self.create(
            &typo,
            &format!("image: {MISSING_IMAGE}, a tag that does not exist"),
        )
        .await?;
        let lines = self.watch(45, &["typo"]).await?;
        for line in &lines {
            if let Line::Event { t, reason, .. } = line
                && reason == "Pulling"
            {
                self.facts.pull_attempts.push(*t);
            }
        }
        say!(
            self,
            "  Each failed pull makes the next wait longer (10 s, 20 s, 40 s…, the same"
        );
        say!(
            self,
            "  back-off as crashes, kept per image); meanwhile the container waits with"
        );
        say!(
            self,
            "  reason ImagePullBackOff, and the pod stays Pending: it never ran."
        );
        say!(
            self,
            "  Fix the tag (a pod's image is one of the few fields that may change):"
        );
        say!(self, "  $ kubectl set image pod/typo app={IMAGE}");
        let patch = json!({"spec": {"containers": [{"name": "app", "image": IMAGE}]}});
        self.pods()
            .patch("typo", &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
        self.start = Instant::now();
        say!(self, "  (times from the fix)");
        self.watch(5, &["typo"]).await?;
        say!(
            self,
            "  The changed pod woke the kubelet at once; the new image has no back-off,"
        );
        say!(self, "  and it is already on the node.");
        self.delete("typo", true).await?;
        Ok(())
    }

    // 7 -------------------------------------------------------------------
    async fn deletion(&mut self) -> anyhow::Result<()> {
        self.begin("7. Deleting pods: SIGTERM, the grace period, SIGKILL")?;
        say!(
            self,
            "  web (from step 2) exits 3 s after SIGTERM; its grace period is the default 30 s."
        );
        self.start = Instant::now();
        self.pods().delete("web", &DeleteParams::default()).await?;
        say!(self, "  $ kubectl delete pod web");
        let lines = self.watch(5, &["web"]).await?;
        self.record_exit("web", &lines);
        say!(
            self,
            "  The API server only set deletionTimestamp (STATUS Terminating). The kubelet"
        );
        say!(
            self,
            "  stopped the container (Killing), which exited by itself with 0 within the"
        );
        say!(
            self,
            "  grace period; then the kubelet deleted the object for good."
        );
        say!(self);
        let stuck = pod(
            "stuck",
            json!({"stopSeconds": 60}),
            json!({}),
            json!({"terminationGracePeriodSeconds": 10}),
        );
        self.create(&stuck, "ignores SIGTERM; terminationGracePeriodSeconds: 10")
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.timeline(&["stuck"]); // (its start, as in step 2: not shown again)
        self.start = Instant::now();
        say!(
            self,
            "  $ kubectl delete pod stuck   # (times from the delete)"
        );
        self.pods()
            .delete("stuck", &DeleteParams::default())
            .await?;
        let lines = self.watch(12, &["stuck"]).await?;
        self.record_exit("stuck", &lines);
        say!(
            self,
            "  The app did not exit on SIGTERM, so after the 10 s grace period the runtime"
        );
        say!(
            self,
            "  sent SIGKILL: exit code 137. Only then did the pod object go away."
        );
        Ok(())
    }

    fn record_exit(&mut self, pod: &str, lines: &[Line]) {
        for line in lines {
            if let Line::Pod { row, .. } = line
                && let Some(code) = row
                    .container
                    .rsplit_once("exit code ")
                    .and_then(|(_, c)| c.trim_end_matches(')').parse().ok())
            {
                self.facts.exit_codes.insert(pod.to_string(), code);
            }
        }
    }
}

/// One line of a timeline.
#[derive(Clone, Debug)]
enum Line {
    Pod {
        t: u64,
        pod: String,
        row: PodRow,
        changed: Vec<(String, String)>,
    },
    Event {
        t: u64,
        type_: String,
        reason: String,
        message: String,
        count: i32,
    },
    Deleted {
        t: u64,
        pod: String,
    },
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Pod {
                t,
                pod,
                row,
                changed,
            } => {
                let mut s = format!(
                    "  {:>5}  {pod:<8} {:<5} {:<17} {:<8} {:<9} app: {}",
                    format!("{t}s"),
                    row.ready,
                    row.status,
                    row.restarts,
                    row.phase,
                    row.container
                );
                if !changed.is_empty() {
                    let c: Vec<String> = changed.iter().map(|(t, s)| format!("{t}={s}")).collect();
                    s.push_str(&format!(
                        "\n  {:>5}  {:<8} conditions: {}",
                        "",
                        "",
                        c.join(" ")
                    ));
                }
                s
            }
            Line::Event {
                t,
                type_,
                reason,
                message,
                count,
            } => {
                let count = if *count > 1 {
                    format!(" (x{count})")
                } else {
                    String::new()
                };
                format!(
                    "  {:>5}  {:<8} event: {type_} {reason}: {message}{count}",
                    format!("{t}s"),
                    ""
                )
            }
            Line::Deleted { t, pod } => {
                format!(
                    "  {:>5}  {pod:<8} (deleted: the object is gone)",
                    format!("{t}s")
                )
            }
        }
    }
}
