//! A tiny deterministic cluster for the tests: the tick model of the
//! reference (`controllers.md` §4).
//!
//! * Each tick: the kubelet marks pods ready (a pod created at tick `t` is
//!   ready from tick `t + delay`, checked at the start of each tick) and
//!   finishes terminations; then the Deployment is synced again and again
//!   until a sync changes no replica count.
//! * After every sync the ReplicaSet controller acts *instantly*: it creates
//!   or deletes pods (not-ready first, then the most recently ready, then the
//!   newest) and refreshes every ReplicaSet's status.
//! * A pod is available at `tick >= ready_since + minReadySeconds`; one tick
//!   is one second of `now`.
//!
//! No API, no latency, no expectations: exactly what the worked examples
//! assume.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::revisions::find_new_replica_set;
use super::{Action, Sync, name, replicas, rs_replicas, sync_deployment};

#[derive(Clone, Debug)]
pub struct SimPod {
    pub name: String,
    pub rs: String,
    pub created: i64,
    pub ready_since: Option<i64>,
    pub never_ready: bool,
    /// Set when deleted with a grace period: terminating until then.
    pub gone_at: Option<i64>,
    delay: i64,
}

/// What the cluster looked like after one sync and the ReplicaSet
/// controller's reaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub tick: i64,
    /// new RS `spec.replicas` (0 while there is none), Σ old `spec.replicas`
    pub new: i32,
    pub old: i32,
    /// pods not terminating, and available pods
    pub pods: i32,
    pub available: i32,
    /// true if the sync created or scaled a ReplicaSet
    pub changed: bool,
}

pub struct Sim {
    pub d: Deployment,
    pub rss: Vec<ReplicaSet>,
    pub pods: Vec<SimPod>,
    pub tick: i64,
    /// Readiness delays in ticks, used in turn for each new pod (one value:
    /// uniform).
    pub ready_delays: Vec<i64>,
    /// Pods whose template has one of these images never become ready.
    pub never_ready_images: Vec<String>,
    /// Ticks a deleted pod stays terminating (0: gone at once).
    pub termination_ticks: i64,
    pub observations: Vec<Observation>,
    pub syncs: Vec<(i64, Sync)>,
    counter: i64,
}

pub fn at(tick: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + tick).unwrap()
}

impl Sim {
    pub fn new(d: Deployment) -> Self {
        Sim {
            d,
            rss: vec![],
            pods: vec![],
            tick: 0,
            ready_delays: vec![0],
            never_ready_images: vec![],
            termination_ticks: 0,
            observations: vec![],
            syncs: vec![],
            counter: 0,
        }
    }

    /// The (new, old) pairs after each sync that changed a replica count.
    pub fn steps(&self) -> Vec<(i32, i32)> {
        self.observations
            .iter()
            .filter(|o| o.changed)
            .map(|o| (o.new, o.old))
            .collect()
    }

    /// Forget what happened so far (e.g. after setting up version 1).
    pub fn clear(&mut self) {
        self.observations.clear();
        self.syncs.clear();
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut Deployment)) {
        let before = self.d.spec.clone();
        f(&mut self.d);
        if self.d.spec != before {
            self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
        }
    }

    pub fn set_image(&mut self, image: &str) {
        self.edit(|d| {
            d.spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0]
                .image = Some(image.into());
        });
    }

    pub fn set_replicas(&mut self, n: i32) {
        self.edit(|d| d.spec.as_mut().unwrap().replicas = Some(n));
    }

    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        find_new_replica_set(&self.d, &self.rss).map(|i| &self.rss[i])
    }

    pub fn rs_named(&self, name_: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|rs| name(&rs.metadata) == name_)
            .unwrap()
    }

    /// Done: the new ReplicaSet has every replica available, nothing old is
    /// left, and the stored status says so.
    pub fn complete(&self) -> bool {
        let n = replicas(&self.d);
        let Some(new) = self.new_rs() else {
            return false;
        };
        let new_name = name(&new.metadata);
        let status = self.d.status.clone().unwrap_or_default();
        rs_replicas(new) == n
            && super::rs_available(new) == n
            && self
                .pods
                .iter()
                .all(|p| p.rs == new_name && p.gone_at.is_none())
            && self
                .rss
                .iter()
                .all(|rs| name(&rs.metadata) == new_name || rs_replicas(rs) == 0)
            && super::status::deployment_complete(&self.d, &status)
    }

    pub fn run_until_complete(&mut self, max_ticks: i64) {
        let start = self.tick;
        while !self.complete() {
            assert!(
                self.tick - start < max_ticks,
                "not complete after {max_ticks} ticks"
            );
            self.step();
        }
    }

    /// One tick: kubelet, then syncs until quiet.
    pub fn step(&mut self) {
        self.kubelet();
        self.refresh_status();
        for _ in 0..100 {
            let pods = self.pod_objects();
            let sync = sync_deployment(&self.d, &self.rss, &pods, at(self.tick));
            assert!(sync.error.is_none(), "tick {}: {:?}", self.tick, sync.error);
            let changed = self.apply(&sync);
            self.replica_set_controller();
            self.observe(changed);
            self.syncs.push((self.tick, sync));
            if !changed {
                self.tick += 1;
                return;
            }
        }
        panic!("tick {}: no quiet state after 100 syncs", self.tick);
    }

    fn observe(&mut self, changed: bool) {
        let new = find_new_replica_set(&self.d, &self.rss);
        let new_count = new.map(|i| rs_replicas(&self.rss[i])).unwrap_or(0);
        let old_count: i32 = (0..self.rss.len())
            .filter(|&i| Some(i) != new)
            .map(|i| rs_replicas(&self.rss[i]))
            .sum();
        self.observations.push(Observation {
            tick: self.tick,
            new: new_count,
            old: old_count,
            pods: self.pods.iter().filter(|p| p.gone_at.is_none()).count() as i32,
            available: self.rss.iter().map(super::rs_available).sum(),
            changed,
        });
    }

    fn kubelet(&mut self) {
        let tick = self.tick;
        self.pods.retain(|p| p.gone_at.is_none_or(|t| t > tick));
        for p in &mut self.pods {
            if p.ready_since.is_none()
                && !p.never_ready
                && p.gone_at.is_none()
                && tick >= p.created + p.delay
            {
                p.ready_since = Some(tick);
            }
        }
    }

    /// Applies one sync's writes as the API server would; returns whether a
    /// replica count changed.
    fn apply(&mut self, sync: &Sync) -> bool {
        let mut changed = false;
        for action in &sync.actions {
            match action {
                Action::CreateReplicaSet(rs) => {
                    let mut rs = rs.clone();
                    self.counter += 1;
                    rs.metadata.uid = Some(format!("rs-uid-{}", self.counter));
                    // Creation order must survive ties: nanoseconds.
                    rs.metadata.creation_timestamp = Some(Time(
                        at(self.tick) + SignedDuration::from_nanos(self.counter),
                    ));
                    rs.metadata.generation = Some(1);
                    rs.status = Some(ReplicaSetStatus::default());
                    self.rss.push(rs);
                    changed = true;
                }
                Action::ScaleReplicaSet { replica_set, .. } => {
                    self.update_rs(replica_set);
                    changed = true;
                }
                Action::UpdateReplicaSet(replica_set) => self.update_rs(replica_set),
                Action::DeleteReplicaSet { name: n } => {
                    self.rss.retain(|rs| name(&rs.metadata) != n);
                    // The garbage collector removes its pods.
                    let gone: Vec<usize> = (0..self.pods.len())
                        .filter(|&i| &self.pods[i].rs == n)
                        .collect();
                    self.delete_pods(gone);
                }
                Action::UpdateDeployment(d) => {
                    self.d.metadata.annotations = d.metadata.annotations.clone();
                    let spec = d.spec.clone();
                    self.edit(|me| me.spec = spec);
                }
            }
        }
        if let Some(status) = &sync.status {
            self.d.status = Some(status.clone());
        }
        changed
    }

    fn update_rs(&mut self, new: &ReplicaSet) {
        let rs = self
            .rss
            .iter_mut()
            .find(|rs| rs.metadata.name == new.metadata.name)
            .expect("updating an existing ReplicaSet");
        if rs.spec != new.spec {
            rs.metadata.generation = Some(rs.metadata.generation.unwrap_or(0) + 1);
        }
        rs.spec = new.spec.clone();
        rs.metadata.annotations = new.metadata.annotations.clone();
    }

    /// The ReplicaSet controller, instantly: make each ReplicaSet's pods match
    /// its spec, then refresh statuses.
    fn replica_set_controller(&mut self) {
        for rs in self.rss.clone() {
            let rs_name = name(&rs.metadata).to_string();
            let mut active: Vec<usize> = (0..self.pods.len())
                .filter(|&i| self.pods[i].rs == rs_name && self.pods[i].gone_at.is_none())
                .collect();
            let want = rs_replicas(&rs) as usize;
            if active.len() < want {
                let image = rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .and_then(|s| s.containers[0].image.clone())
                    .unwrap_or_default();
                for _ in active.len()..want {
                    self.counter += 1;
                    let delay =
                        self.ready_delays[(self.counter as usize) % self.ready_delays.len()];
                    self.pods.push(SimPod {
                        name: format!("{rs_name}-{}", self.counter),
                        rs: rs_name.clone(),
                        created: self.tick,
                        ready_since: None,
                        never_ready: self.never_ready_images.contains(&image),
                        gone_at: None,
                        delay,
                    });
                }
            } else if active.len() > want {
                // Reference §2.4, the rules that differ between our pods:
                // not ready first, then more recently ready, then newer.
                active.sort_by_key(|&i| {
                    let p = &self.pods[i];
                    (
                        p.ready_since.is_some(),
                        std::cmp::Reverse(p.ready_since),
                        std::cmp::Reverse(p.created),
                        std::cmp::Reverse(p.name.clone()),
                    )
                });
                let victims = active[..active.len() - want].to_vec();
                self.delete_pods(victims);
            }
        }
        self.refresh_status();
    }

    fn delete_pods(&mut self, victims: Vec<usize>) {
        let tick = self.tick;
        if self.termination_ticks == 0 {
            let mut i = 0;
            self.pods.retain(|_| {
                i += 1;
                !victims.contains(&(i - 1))
            });
        } else {
            for v in victims {
                self.pods[v]
                    .gone_at
                    .get_or_insert(tick + self.termination_ticks);
            }
        }
    }

    fn refresh_status(&mut self) {
        let tick = self.tick;
        for rs in &mut self.rss {
            let rs_name = name(&rs.metadata).to_string();
            let min_ready = i64::from(
                rs.spec
                    .as_ref()
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0),
            );
            let mine = || self.pods.iter().filter(|p| p.rs == rs_name);
            let active = || mine().filter(|p| p.gone_at.is_none());
            let count = |n: usize| n as i32;
            rs.status = Some(ReplicaSetStatus {
                replicas: count(active().count()),
                ready_replicas: Some(count(active().filter(|p| p.ready_since.is_some()).count())),
                available_replicas: Some(count(
                    active()
                        .filter(|p| p.ready_since.is_some_and(|t| tick >= t + min_ready))
                        .count(),
                )),
                terminating_replicas: Some(count(mine().filter(|p| p.gone_at.is_some()).count())),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }

    fn pod_objects(&self) -> Vec<Pod> {
        self.pods
            .iter()
            .map(|p| {
                let rs = self.rs_named_opt(&p.rs);
                Pod {
                    metadata: ObjectMeta {
                        name: Some(p.name.clone()),
                        deletion_timestamp: p.gone_at.map(|_| Time(at(self.tick))),
                        owner_references: Some(vec![OwnerReference {
                            api_version: "apps/v1".into(),
                            kind: "ReplicaSet".into(),
                            name: p.rs.clone(),
                            uid: rs
                                .and_then(|rs| rs.metadata.uid.clone())
                                .unwrap_or_default(),
                            controller: Some(true),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    spec: None,
                    status: Some(PodStatus {
                        phase: Some(
                            if p.ready_since.is_some() {
                                "Running"
                            } else {
                                "Pending"
                            }
                            .into(),
                        ),
                        ..Default::default()
                    }),
                }
            })
            .collect()
    }

    fn rs_named_opt(&self, name_: &str) -> Option<&ReplicaSet> {
        self.rss.iter().find(|rs| name(&rs.metadata) == name_)
    }
}
