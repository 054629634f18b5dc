//! Tests of the decision core as a whole: [`reconcile`](super::reconcile)
//! (`syncReplicaSet`'s decisions), the pod template, slow start, events,
//! selectors, and property tests across every step. The tests of claiming,
//! ranking, expectations and status sit beside their code; the pod and
//! ReplicaSet builders at the top of this file are shared by all of them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::ranking::{node_name, phase_ordinal};
use super::*;
use crate::machinery::selector::SelectorExt;
use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelectorRequirement, OwnerReference, Time,
};

// ---- builders shared by the tests of every file ---------------------------

pub(super) const NS: &str = "default";
pub(super) const RS_UID: &str = "uid-rs-web";

/// Seconds relative to a fixed "now".
pub(super) fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_750_000_000 + seconds).unwrap()
}
pub(super) fn now() -> Timestamp {
    t(0)
}
pub(super) const HOUR: i64 = 3600;

pub(super) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `web`: selector app=web, template labels app=web tier=frontend.
pub(super) fn replica_set(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some(RS_UID.into()),
            generation: Some(4),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: None,
            selector: LabelSelector {
                match_labels: Some(map(&[("app", "web")])),
                match_expressions: None,
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(map(&[("app", "web"), ("tier", "frontend")])),
                    annotations: Some(map(&[("team", "blue")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("workbook/demo-app:v1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
        }),
        status: None,
    }
}

pub(super) fn with_min_ready(mut rs: ReplicaSet, seconds: i32) -> ReplicaSet {
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(seconds);
    rs
}

/// A pod builder: by default owned by `web`, fully labeled, Pending,
/// unscheduled, not ready, created at no particular time.
#[derive(Clone)]
pub(super) struct P(pub(super) Pod);

pub(super) fn pod(name: &str) -> P {
    P(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(map(&[("app", "web"), ("tier", "frontend")])),
            owner_references: Some(vec![controller_ref(&replica_set(1))]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    })
}

impl P {
    pub(super) fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.metadata.labels = Some(map(pairs));
        self
    }
    pub(super) fn orphan(mut self) -> Self {
        self.0.metadata.owner_references = None;
        self
    }
    pub(super) fn owner(mut self, uid: &str, controller: bool) -> Self {
        self.0.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "other".into(),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }]);
        self
    }
    pub(super) fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }
    pub(super) fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.into());
        self
    }
    pub(super) fn no_uid(mut self) -> Self {
        self.0.metadata.uid = None;
        self
    }
    pub(super) fn node(mut self, node: &str) -> Self {
        self.0.spec.as_mut().unwrap().node_name = Some(node.into());
        self
    }
    pub(super) fn phase(mut self, phase: &str) -> Self {
        self.0.status.as_mut().unwrap().phase = Some(phase.into());
        self
    }
    /// Running and ready since `since` (None: no transition time).
    pub(super) fn ready(mut self, since: Option<Timestamp>) -> Self {
        let status = self.0.status.as_mut().unwrap();
        status.phase = Some("Running".into());
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: since.map(Time),
            ..Default::default()
        }]);
        self
    }
    pub(super) fn not_ready_condition(mut self) -> Self {
        self.0.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(t(-100))),
            ..Default::default()
        }]);
        self
    }
    pub(super) fn created(mut self, at: Timestamp) -> Self {
        self.0.metadata.creation_timestamp = Some(Time(at));
        self
    }
    pub(super) fn restarts(mut self, n: i32) -> Self {
        self.0.status.as_mut().unwrap().container_statuses = Some(vec![
            ContainerStatus {
                name: "app".into(),
                restart_count: n,
                ..Default::default()
            },
            ContainerStatus {
                name: "other".into(),
                restart_count: 0,
                ..Default::default()
            },
        ]);
        self
    }
    pub(super) fn sidecar_restarts(mut self, n: i32) -> Self {
        self.0.spec.as_mut().unwrap().init_containers = Some(vec![
            Container {
                name: "proxy".into(),
                restart_policy: Some("Always".into()),
                ..Default::default()
            },
            Container {
                name: "migrate".into(),
                ..Default::default()
            },
        ]);
        self.0.status.as_mut().unwrap().init_container_statuses = Some(vec![
            ContainerStatus {
                name: "proxy".into(),
                restart_count: n,
                ..Default::default()
            },
            // A plain init container's restarts do not count.
            ContainerStatus {
                name: "migrate".into(),
                restart_count: 100,
                ..Default::default()
            },
        ]);
        self
    }
    pub(super) fn cost(mut self, value: &str) -> Self {
        self.0.metadata.annotations = Some(map(&[(POD_DELETION_COST, value)]));
        self
    }
    pub(super) fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(t(-1)));
        self
    }
    pub(super) fn build(self) -> Pod {
        self.0
    }
}

pub(super) fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

pub(super) fn pods(n: usize, f: impl Fn(P) -> P) -> Vec<Pod> {
    (0..n)
        .map(|i| f(pod(&format!("web-{i:03}"))).build())
        .collect()
}

pub(super) const NO_PODS: &[Pod] = &[];

// ---- manageReplicas: how many to create or delete -------------------

#[test]
fn create_and_delete_counts() {
    // (spec.replicas, active owned pods, extra terminating/finished pods,
    //  expected diff, expected creates, expected deletes)
    let cases = [
        (3, 0, 0, -3, 3, 0),
        (3, 3, 0, 0, 0, 0),
        (3, 5, 0, 2, 0, 2),
        (0, 4, 0, 4, 0, 4),
        // Terminating and finished pods are not replicas: they are replaced.
        (3, 1, 2, -2, 2, 0),
        // Burst cap: never more than 500 in one sync.
        (1000, 0, 0, -1000, 500, 0),
        (600, 99, 0, -501, 500, 0),
        (0, 600, 0, 600, 0, 500),
        (100, 600, 0, 500, 0, 500),
    ];
    for (replicas, active, inactive, diff, creates, deletes) in cases {
        let rs = replica_set(replicas);
        let mut all = pods(active, |p| p);
        all.extend((0..inactive).map(|i| {
            let p = pod(&format!("gone-{i}"));
            if i % 2 == 0 {
                p.terminating().build()
            } else {
                p.phase("Succeeded").build()
            }
        }));
        let r = reconcile(&rs, &all, NO_PODS, now());
        let case = format!("replicas={replicas} active={active} inactive={inactive}");
        assert_eq!(r.diff, diff, "{case}");
        assert_eq!(r.active.len(), active, "{case}");
        match r.scale {
            Scale::None => assert_eq!((creates, deletes), (0, 0), "{case}"),
            Scale::Create { count, .. } => {
                assert_eq!((count, 0), (creates, deletes), "{case}")
            }
            Scale::Delete { pods } => {
                assert_eq!((0, pods.len()), (creates, deletes), "{case}");
                assert!(pods.iter().all(|p| is_pod_active(p)), "{case}");
            }
        }
    }
}

#[test]
fn missing_replicas_defaults_to_one() {
    let mut rs = replica_set(0);
    rs.spec.as_mut().unwrap().replicas = None;
    let r = reconcile(&rs, NO_PODS, NO_PODS, now());
    assert!(matches!(r.scale, Scale::Create { count: 1, .. }));
}

#[test]
fn created_pod_comes_from_the_template() {
    let rs = replica_set(2);
    let r = reconcile(&rs, NO_PODS, NO_PODS, now());
    let Scale::Create { count, pod } = r.scale else {
        panic!("expected creates, got {:?}", r.scale);
    };
    assert_eq!(count, 2);
    let template = rs.spec.as_ref().unwrap().template.clone().unwrap();
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(pod.metadata.name, None, "the API server picks the name");
    assert_eq!(pod.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        pod.metadata.labels,
        template.metadata.as_ref().unwrap().labels
    );
    assert_eq!(
        pod.metadata.annotations,
        template.metadata.as_ref().unwrap().annotations
    );
    assert_eq!(pod.spec, template.spec);
    assert_eq!(
        pod.metadata.owner_references,
        Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: RS_UID.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }])
    );
    assert_eq!(pod.status, None);
}

#[test]
fn very_long_names_get_no_dash() {
    assert_eq!(pods_prefix("web"), "web-");
    let long = "a".repeat(253);
    assert_eq!(pods_prefix(&long), long);
    let almost = "a".repeat(252);
    assert_eq!(pods_prefix(&almost), format!("{almost}-"));
}

#[test]
fn a_replica_set_being_deleted_neither_scales_nor_adopts() {
    let mut rs = replica_set(5);
    rs.metadata.deletion_timestamp = Some(Time(t(-5)));
    let all = vec![
        pod("owned").build(),
        pod("orphan").orphan().build(),
        pod("relabelled").labels(&[("app", "db")]).build(),
    ];
    let r = reconcile(&rs, &all, NO_PODS, now());
    assert_eq!(r.scale, Scale::None);
    assert!(r.adopt.is_empty());
    assert!(r.release.is_empty(), "the garbage collector handles it");
    assert_eq!(names(&r.active), ["owned"]);
    // The status is still kept up to date.
    assert_eq!(r.status.replicas, 1);
}

#[test]
fn invalid_selector_changes_nothing() {
    let mut rs = replica_set(3);
    rs.spec.as_mut().unwrap().selector.match_expressions = Some(vec![LabelSelectorRequirement {
        key: "app".into(),
        operator: "Matches".into(),
        values: None,
    }]);
    let all = vec![pod("a").build()];
    let r = reconcile(&rs, &all, NO_PODS, now());
    assert_eq!(r.scale, Scale::None);
    assert!(r.release.is_empty() && r.adopt.is_empty());
}
#[test]
fn requeue_after_min_ready_seconds() {
    // (minReadySeconds, replicas, pods ready since, expected requeue)
    let cases: [(i32, i32, &[i64], Option<u64>); 6] = [
        (10, 2, &[-60, -5], Some(10)), // all ready, one not yet available
        (10, 2, &[-60, -60], None),    // all available
        (10, 3, &[-60, -5], None),     // not all ready: a pod event will come
        (0, 2, &[-60, -5], None),      // available as soon as ready
        (30, 1, &[-30], Some(30)),     // exactly at the boundary
        (30, 1, &[-31], None),
    ];
    for (min_ready, replicas, since, expected) in cases {
        let rs = with_min_ready(replica_set(replicas), min_ready);
        let all: Vec<Pod> = since
            .iter()
            .enumerate()
            .map(|(i, s)| pod(&format!("p{i}")).ready(Some(t(*s))).build())
            .collect();
        let r = reconcile(&rs, &all, NO_PODS, now());
        assert_eq!(
            r.requeue_after,
            expected.map(Duration::from_secs),
            "minReadySeconds={min_ready} replicas={replicas} since={since:?}"
        );
    }
}
// ---- slow start -------------------------------------------------------

#[test]
fn slow_start_batch_sizes() {
    let cases: [(usize, &[usize]); 7] = [
        (0, &[]),
        (1, &[1]),
        (2, &[1, 1]),
        (3, &[1, 2]),
        (7, &[1, 2, 4]),
        (10, &[1, 2, 4, 3]),
        (500, &[1, 2, 4, 8, 16, 32, 64, 128, 245]),
    ];
    for (count, batches) in cases {
        assert_eq!(slow_start_batches(count), batches, "count={count}");
        assert_eq!(slow_start_batches(count).iter().sum::<usize>(), count);
    }
}

#[test]
fn slow_start_stops_after_the_first_failing_batch() {
    // (count, calls that fail, expected successes, expected calls made)
    let cases: [(usize, &[usize], usize, usize); 6] = [
        (10, &[], 10, 10),
        (10, &[0], 0, 1),    // the first create fails: one call, not ten
        (10, &[1], 2, 3),    // batch 2 (calls 1-2): both are made
        (10, &[4], 6, 7),    // batch 3 (calls 3-6) runs to its end
        (10, &[3, 5], 5, 7), // two failures in one batch
        (10, &[9], 9, 10),   // the last batch
    ];
    for (count, failing, successes, calls) in cases {
        let mut made = 0;
        let (ok, err) = futures::executor::block_on(slow_start_batch(count, || {
            let call = made;
            made += 1;
            let fails = failing.contains(&call);
            async move {
                if fails {
                    Err(format!("call {call}"))
                } else {
                    Ok(())
                }
            }
        }));
        let case = format!("count={count} failing={failing:?}");
        assert_eq!(ok, successes, "{case}");
        assert_eq!(made, calls, "{case}");
        assert_eq!(err, failing.first().map(|c| format!("call {c}")), "{case}");
    }
}

#[test]
fn slow_start_runs_a_batch_concurrently() {
    // Each create records, when it runs, how many creates had been
    // started by then. A whole batch is started before any of it runs,
    // and the next batch only after it has finished.
    use std::cell::{Cell, RefCell};
    let started = Cell::new(0);
    let seen = RefCell::new(Vec::new());
    let (ok, err) = futures::executor::block_on(slow_start_batch(10, || {
        started.set(started.get() + 1);
        let (started, seen) = (&started, &seen);
        async move {
            seen.borrow_mut().push(started.get());
            Ok::<(), ()>(())
        }
    }));
    assert_eq!((ok, err), (10, None));
    assert_eq!(seen.into_inner(), [1, 3, 3, 7, 7, 7, 7, 10, 10, 10]);
}
// ---- events and selectors ---------------------------------------------

#[test]
fn events() {
    let cases = [
        (
            ReplicaSetEvent::SuccessfulCreate {
                pod: "web-abcde".into(),
            },
            "SuccessfulCreate",
            "Normal",
            "Created pod: web-abcde",
        ),
        (
            ReplicaSetEvent::FailedCreate {
                error: "pods \"web-\" is forbidden: exceeded quota".into(),
            },
            "FailedCreate",
            "Warning",
            "Error creating: pods \"web-\" is forbidden: exceeded quota",
        ),
        (
            ReplicaSetEvent::SuccessfulDelete {
                pod: "web-abcde".into(),
            },
            "SuccessfulDelete",
            "Normal",
            "Deleted pod: web-abcde",
        ),
        (
            ReplicaSetEvent::FailedDelete {
                pod: "web-abcde".into(),
                error: "boom".into(),
            },
            "FailedDelete",
            "Warning",
            "Error deleting: boom",
        ),
    ];
    for (event, reason, type_, message) in cases {
        assert_eq!(
            (event.reason(), event.type_(), event.message().as_str()),
            (reason, type_, message)
        );
    }
}

fn req(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    as_selector(selector).is_some_and(|s| s.matches(labels))
}

fn selector_is_valid(selector: &LabelSelector) -> bool {
    as_selector(selector).is_some()
}

#[test]
fn selectors() {
    let web = map(&[("app", "web"), ("tier", "frontend")]);
    let none = map(&[]);
    let sel = |labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
        match_labels: (!labels.is_empty()).then(|| map(labels)),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    };
    // (selector, labels, matches)
    let cases = [
        (sel(&[], vec![]), &web, true),
        (sel(&[], vec![]), &none, true),
        (sel(&[("app", "web")], vec![]), &web, true),
        (
            sel(&[("app", "web"), ("tier", "frontend")], vec![]),
            &web,
            true,
        ),
        (sel(&[("app", "db")], vec![]), &web, false),
        (sel(&[("app", "web"), ("env", "prod")], vec![]), &web, false),
        (sel(&[], vec![req("app", "In", &["db", "web"])]), &web, true),
        (sel(&[], vec![req("app", "In", &["db"])]), &web, false),
        (sel(&[], vec![req("env", "In", &["prod"])]), &web, false),
        (sel(&[], vec![req("app", "NotIn", &["db"])]), &web, true),
        (sel(&[], vec![req("app", "NotIn", &["web"])]), &web, false),
        (sel(&[], vec![req("env", "NotIn", &["prod"])]), &web, true),
        (sel(&[], vec![req("tier", "Exists", &[])]), &web, true),
        (sel(&[], vec![req("env", "Exists", &[])]), &web, false),
        (sel(&[], vec![req("env", "DoesNotExist", &[])]), &web, true),
        (sel(&[], vec![req("app", "DoesNotExist", &[])]), &web, false),
        (
            sel(
                &[("app", "web")],
                vec![
                    req("tier", "In", &["frontend"]),
                    req("env", "DoesNotExist", &[]),
                ],
            ),
            &web,
            true,
        ),
        (
            sel(&[("app", "web")], vec![req("tier", "NotIn", &["frontend"])]),
            &web,
            false,
        ),
    ];
    for (i, (selector, labels, matches)) in cases.iter().enumerate() {
        assert_eq!(
            selector_matches(selector, labels),
            *matches,
            "case {i}: {selector:?}"
        );
        assert!(selector_is_valid(selector), "case {i}");
    }
    for invalid in [
        req("app", "In", &[]),
        req("app", "NotIn", &[]),
        req("app", "Exists", &["x"]),
        req("app", "DoesNotExist", &["x"]),
        req("app", "Gt", &["1"]),
    ] {
        assert!(
            !selector_is_valid(&sel(&[], vec![invalid.clone()])),
            "{invalid:?}"
        );
    }
}

// ---- properties ---------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A random pod: owned, orphaned or foreign; matching or not;
    /// scheduled or not; in any phase; ready or not; with or without a
    /// deletion cost, restarts, creation time; sometimes terminating.
    fn any_pod(index: usize) -> impl Strategy<Value = Pod> {
        (
            (
                0u8..4,
                any::<bool>(),
                0u8..4,
                0u8..5,
                proptest::option::of(-3i64..3),
            ),
            (
                proptest::option::weighted(0.8, 0i64..40 * 24 * HOUR),
                proptest::option::of(-2i32..3),
                0i32..3,
                proptest::option::of(0i64..40 * 24 * HOUR),
                0u8..10,
            ),
        )
            .prop_map(
                move |(
                    (owner, matching, node, phase, ready),
                    (since, cost, restarts, created, rare),
                )| {
                    let mut p = pod(&format!("p{index:03}"));
                    p = match owner {
                        0 | 1 => p,
                        2 => p.orphan(),
                        _ => p.owner("uid-rs-other", true),
                    };
                    if !matching {
                        p = p.labels(&[("app", "db")]);
                    }
                    if node > 0 {
                        p = p.node(&format!("n{node}"));
                    }
                    p = match phase {
                        0 => p,
                        1 => p.phase("Unknown"),
                        2 => p.phase("Running"),
                        3 => p.phase("Succeeded"),
                        _ => p.phase("Failed"),
                    };
                    if ready.is_some() && phase == 2 {
                        p = p.ready(since.map(|s| t(-s)));
                    }
                    if let Some(cost) = cost {
                        p = p.cost(&cost.to_string());
                    }
                    p = p.restarts(restarts);
                    if let Some(c) = created {
                        p = p.created(t(-c));
                    }
                    if rare == 0 {
                        p = p.terminating();
                    }
                    p.build()
                },
            )
    }

    fn any_pods() -> impl Strategy<Value = Vec<Pod>> {
        (0usize..60).prop_flat_map(|n| (0..n).map(any_pod).collect::<Vec<_>>())
    }

    /// The part of the order that is a plain key (rules 1 to 5), which
    /// every correct sort must respect even when later rules are not
    /// transitive.
    fn key(
        ranked: &ActivePodsWithRanks,
        i: usize,
    ) -> (bool, u8, bool, i32, std::cmp::Reverse<usize>) {
        let p = ranked.pods[i];
        (
            !node_name(p).is_empty(),
            phase_ordinal(p),
            is_pod_ready(p),
            pod_deletion_cost(p),
            std::cmp::Reverse(ranked.rank[i]),
        )
    }

    proptest! {
        #[test]
        fn creates_fill_the_gap(all in any_pods(), replicas in 0i32..700) {
            let rs = replica_set(replicas);
            let r = reconcile(&rs, &all, NO_PODS, now());
            let active = r.active.len();
            match r.scale {
                Scale::Create { count, .. } => {
                    prop_assert!(active < replicas as usize);
                    prop_assert_eq!(count, (replicas as usize - active).min(BURST_REPLICAS));
                }
                Scale::Delete { ref pods } => {
                    prop_assert!(active > replicas as usize);
                    prop_assert_eq!(pods.len(), (active - replicas as usize).min(BURST_REPLICAS));
                }
                Scale::None => prop_assert_eq!(active, replicas as usize),
            }
            // Every counted pod is active and ours (or adopted), and matches.
            for p in &r.active {
                prop_assert!(is_pod_active(p));
                prop_assert!(selector_matches(&rs.spec.as_ref().unwrap().selector, labels(&p.metadata)));
            }
        }

        #[test]
        fn deletes_are_top_ranked_and_never_terminating(
            all in any_pods(),
            related in any_pods(),
            replicas in 0i32..60,
        ) {
            let rs = replica_set(replicas);
            let r = reconcile(&rs, &all, &related, now());
            if let Scale::Delete { pods } = &r.scale {
                for p in pods {
                    prop_assert!(p.metadata.deletion_timestamp.is_none());
                    prop_assert!(is_pod_active(p));
                    prop_assert!(r.active.iter().any(|a| std::ptr::eq(*a, *p)));
                }
                // No pod kept has a strictly better claim to deletion on
                // rules 1-5 than a pod deleted.
                let ranked = pods_ranked_by_related_pods_on_same_node(&r.active, &related, now());
                let deleted: Vec<usize> = (0..ranked.pods.len())
                    .filter(|&i| pods.iter().any(|p| std::ptr::eq(*p, ranked.pods[i])))
                    .collect();
                let kept: Vec<usize> = (0..ranked.pods.len()).filter(|i| !deleted.contains(i)).collect();
                for &d in &deleted {
                    for &k in &kept {
                        prop_assert!(key(&ranked, d) <= key(&ranked, k));
                    }
                }
            }
        }

        #[test]
        fn sorting_keeps_every_pod(all in any_pods()) {
            let active: Vec<&Pod> = all.iter().collect();
            let mut ranked = pods_ranked_by_related_pods_on_same_node(&active, &all, now());
            ranked.sort();
            let mut before = names(&active);
            let mut after = names(&ranked.pods);
            before.sort();
            after.sort();
            prop_assert_eq!(before, after);
        }
    }
}
