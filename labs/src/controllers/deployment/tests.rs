//! The worked examples of the reference (`controllers.md` §1.5–§1.12), run
//! through the whole core on the tick-model cluster of [`super::sim`], and
//! property tests of the rolling update's invariants (§4).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::fenceposts::{max_surge, min_available};
use super::revisions::{
    CHANGE_CAUSE_ANNOTATION, DEPRECATED_ROLLBACK_TO, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
};
use super::sim::{Sim, at};
use super::status::{PROGRESSING, get_deployment_condition};
use super::*;

// --- Object builders shared by the tests of every submodule -----------------

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The pod template of `web` running `image`.
pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn int_or_string(s: &str) -> IntOrString {
    match s.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(s.into()),
    }
}

/// Deployment `web` (image `app:v1`) with `replicas`, RollingUpdate with
/// the given maxSurge/maxUnavailable (`"1"` is a number, `"25%"` a
/// percentage), and the API defaults for the rest.
pub fn deployment(replicas: i32, max_surge: &str, max_unavailable: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("web-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: template("app:v1"),
            strategy: Some(DeploymentStrategy {
                type_: Some(ROLLING_UPDATE.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(int_or_string(max_surge)),
                    max_unavailable: Some(int_or_string(max_unavailable)),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            min_ready_seconds: None,
            paused: None,
        }),
        status: None,
    }
}

/// A ReplicaSet `name` of `web` with template `image`, `replicas` wanted
/// (and counted as existing pods, none ready), created `created` seconds
/// after the epoch.
pub fn rs_at(name: &str, image: &str, replicas: i32, created: i64) -> ReplicaSet {
    let mut t = template(image);
    let hashed = labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, name)]);
    t.metadata.as_mut().unwrap().labels = Some(hashed.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            generation: Some(1),
            creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
            labels: Some(hashed.clone()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(0),
            selector: LabelSelector {
                match_labels: Some(hashed),
                ..Default::default()
            },
            template: Some(t),
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(0),
            available_replicas: Some(0),
            observed_generation: Some(1),
            terminating_replicas: Some(0),
            ..Default::default()
        }),
    }
}

pub fn with_annotation(mut rs: ReplicaSet, key: &str, value: &str) -> ReplicaSet {
    rs.metadata
        .annotations
        .get_or_insert_default()
        .insert(key.into(), value.into());
    rs
}

// --- Running rollouts on the tick model -------------------------------------

/// Version 1 fully rolled out, history cleared: the state at tick 0 of the
/// reference's examples, just before the template changes.
fn settled(d: Deployment, delay: i64) -> Sim {
    let mut sim = Sim::new(d);
    sim.ready_delays = vec![delay];
    sim.run_until_complete(100);
    sim.clear();
    sim
}

/// The (new, old) steps of a rollout from app:v1 to app:v2.
fn rollout(replicas: i32, surge: &str, unavailable: &str, delay: i64) -> Vec<(i32, i32)> {
    let mut sim = settled(deployment(replicas, surge, unavailable), delay);
    sim.set_image("app:v2");
    sim.run_until_complete(500);
    sim.steps()
}

#[test]
fn worked_example_10_replicas_25_percent() {
    let want = [(3, 8), (5, 8), (5, 3), (10, 3), (10, 0)];
    for delay in [0, 1, 3] {
        assert_eq!(
            rollout(10, "25%", "25%", delay),
            want,
            "readiness delay {delay}"
        );
    }
}

#[test]
fn worked_example_3_replicas_surge_1_unavailable_0() {
    let want = [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)];
    for delay in [0, 1, 3] {
        assert_eq!(rollout(3, "1", "0", delay), want, "readiness delay {delay}");
    }
}

#[test]
fn worked_example_10_replicas_surge_0_unavailable_1() {
    // (0,9) -> (1,9) -> (1,8) -> (2,8) -> ... -> (9,1) -> (9,0) -> (10,0):
    // the new RS is created with 0 replicas and old drops to 9 in that sync.
    let mut want = vec![(0, 9)];
    for k in 1..=9 {
        want.push((k, 10 - k));
        want.push((k, 9 - k));
    }
    want.push((10, 0));
    for delay in [0, 1, 3] {
        assert_eq!(
            rollout(10, "0", "1", delay),
            want,
            "readiness delay {delay}"
        );
    }
}

#[test]
fn worked_example_5_replicas_surge_100_percent() {
    for delay in [0, 1, 3] {
        assert_eq!(
            rollout(5, "100%", "0", delay),
            [(5, 5), (5, 0)],
            "readiness delay {delay}"
        );
    }
}

#[test]
fn min_ready_seconds_delays_but_does_not_change_the_steps() {
    let mut d = deployment(10, "25%", "25%");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(5);
    let mut sim = settled(d, 1);
    sim.set_image("app:v2");
    let start = sim.tick;
    sim.run_until_complete(500);
    assert_eq!(sim.steps(), [(3, 8), (5, 8), (5, 3), (10, 3), (10, 0)]);
    // Two waits for availability, each 1 (ready) + 5 (minReadySeconds) ticks.
    assert!(sim.tick - start >= 12, "took {} ticks", sim.tick - start);
    // minReadySeconds is copied onto the new ReplicaSet only.
    let new = sim.new_rs().unwrap();
    assert_eq!(new.spec.as_ref().unwrap().min_ready_seconds, Some(5));
}

#[test]
fn events_and_annotations_of_a_rollout() {
    let mut sim = settled(deployment(10, "25%", "25%"), 0);
    let v1 = name(&sim.new_rs().unwrap().metadata).to_string();
    sim.edit(|d| {
        d.metadata.annotations.get_or_insert_default().insert(
            CHANGE_CAUSE_ANNOTATION.into(),
            "kubectl set image deployment/web app=app:v2".into(),
        );
    });
    sim.set_image("app:v2");
    sim.step();
    let new = sim.new_rs().unwrap().clone();
    let v2 = name(&new.metadata).to_string();
    assert!(v2.starts_with("web-") && v2 != v1);
    let messages: Vec<String> = sim
        .syncs
        .iter()
        .flat_map(|(_, s)| {
            s.events
                .iter()
                .map(|e| format!("{} {} {}", e.type_.as_str(), e.reason, e.message))
        })
        .collect();
    assert_eq!(
        messages,
        [
            format!("Normal ScalingReplicaSet Scaled up replica set {v2} to 3"),
            format!("Normal ScalingReplicaSet Scaled down replica set {v1} from 10 to 8"),
            format!("Normal ScalingReplicaSet Scaled up replica set {v2} from 3 to 5"),
        ]
    );
    // The new ReplicaSet: hash label everywhere, owner, annotations.
    let hash = v2.strip_prefix("web-").unwrap();
    let spec = new.spec.as_ref().unwrap();
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL],
        hash
    );
    let template_labels = spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(template_labels[POD_TEMPLATE_HASH_LABEL], hash);
    assert_eq!(
        new.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL],
        hash
    );
    let owner = &new.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("Deployment", "web", "web-uid", Some(true))
    );
    let a = new.metadata.annotations.as_ref().unwrap();
    assert_eq!(a[REVISION_ANNOTATION], "2");
    assert_eq!(
        a[CHANGE_CAUSE_ANNOTATION],
        "kubectl set image deployment/web app=app:v2"
    );
    assert_eq!(
        (
            a[revisions::DESIRED_REPLICAS_ANNOTATION].as_str(),
            a[revisions::MAX_REPLICAS_ANNOTATION].as_str()
        ),
        ("10", "13")
    );
    assert_eq!(annotation(&sim.d.metadata, REVISION_ANNOTATION), Some("2"));
    // Conditions after the first tick: a rollout in progress.
    let status = sim.d.status.clone().unwrap();
    let progressing = get_deployment_condition(&status, PROGRESSING).unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("ReplicaSetUpdated"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet {v2:?} is progressing.").as_str())
    );
    sim.run_until_complete(100);
    let status = sim.d.status.clone().unwrap();
    let progressing = get_deployment_condition(&status, PROGRESSING).unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("True", Some("NewReplicaSetAvailable"))
    );
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas,
            status.observed_generation
        ),
        (Some(10), Some(10), Some(10), sim.d.metadata.generation)
    );
}

#[test]
fn mid_rollout_scaling_is_proportional() {
    // 10 replicas at 25%/25%, state (5,8) after tick 0, the 5 new pods ready
    // at tick 1; then scaled to 20: allowed 25, toAdd 12, old +7 (15) and
    // new +5 (10). The 7 fresh old-template pods are not ready, so
    // cleanupUnhealthyReplicas removes them first: 15 -> 10.
    let mut sim = settled(deployment(10, "25%", "25%"), 1);
    sim.set_image("app:v2");
    sim.step();
    assert_eq!(sim.steps(), [(3, 8), (5, 8)]);
    sim.clear();
    sim.set_replicas(20);
    sim.step();
    assert_eq!(sim.steps(), [(10, 15), (10, 10), (15, 10)]);
    // The scale itself was done by proportional scaling, with events.
    let (_, scaling_sync) = &sim.syncs[0];
    let scales: Vec<(i32, i32)> = scaling_sync
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ScaleReplicaSet { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(scales, [(8, 15), (5, 10)], "largest first");
    sim.run_until_complete(100);
    assert_eq!(
        sim.steps(),
        [(10, 15), (10, 10), (15, 10), (15, 0), (20, 0)]
    );
}

#[test]
fn rollover_to_a_third_template_mid_rollout() {
    let mut sim = settled(deployment(10, "25%", "25%"), 1);
    sim.set_image("app:v2");
    sim.step(); // (5,8)
    sim.clear();
    sim.set_image("app:v3");
    sim.run_until_complete(100);
    // v3 is created with 0 replicas: 13 pods are wanted already, no room to
    // surge. v2's pods are ready by now, so availability (13 > 8) lets the
    // oldest ReplicaSet, v1, go down by 5 in the same sync. Both old
    // versions then drain, oldest first.
    assert_eq!(sim.steps(), [(0, 8), (5, 8), (5, 3), (10, 3), (10, 0)]);
    assert_eq!(sim.rss.len(), 3);
    let revisions: Vec<&str> = sim
        .rss
        .iter()
        .map(|rs| annotation(&rs.metadata, REVISION_ANNOTATION).unwrap())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"]);
}

#[test]
fn rollback_by_template_reuses_the_old_replica_set() {
    // kubectl rollout undo: the old template is written back; the v1
    // ReplicaSet becomes the new one again with revision 3, history "1".
    let mut sim = settled(deployment(3, "1", "0"), 1);
    let v1 = name(&sim.new_rs().unwrap().metadata).to_string();
    sim.set_image("app:v2");
    sim.run_until_complete(100);
    sim.clear();
    sim.set_image("app:v1");
    sim.run_until_complete(100);
    assert_eq!(sim.rss.len(), 2, "no third ReplicaSet");
    let rs = sim.rs_named(&v1);
    assert_eq!(name(&sim.new_rs().unwrap().metadata), v1);
    assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("3"));
    assert_eq!(
        annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION),
        Some("1")
    );
    assert_eq!(annotation(&sim.d.metadata, REVISION_ANNOTATION), Some("3"));
    assert_eq!(
        sim.steps(),
        [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]
    );
}

#[test]
fn rollback_by_annotation() {
    let mut sim = settled(deployment(3, "1", "0"), 1);
    let cause = |sim: &mut Sim, c: &str| {
        let c = c.to_string();
        sim.edit(|d| {
            d.metadata
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.into(), c);
        })
    };
    cause(&mut sim, "v2 please");
    sim.set_image("app:v2");
    sim.run_until_complete(100);
    sim.clear();
    // The deprecated rollbackTo, revision 0 = the previous one.
    sim.edit(|d| {
        d.metadata
            .annotations
            .get_or_insert_default()
            .insert(DEPRECATED_ROLLBACK_TO.into(), "0".into());
    });
    sim.step();
    let (_, first) = &sim.syncs[0];
    assert_eq!(first.events[0].reason, "DeploymentRollback");
    assert_eq!(
        first.events[0].message,
        "Rolled back deployment \"web\" to revision 1"
    );
    assert!(
        annotation(&sim.d.metadata, DEPRECATED_ROLLBACK_TO).is_none(),
        "cleared"
    );
    assert_eq!(
        sim.d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("app:v1")
    );
    // v1 had no change-cause: the Deployment's is replaced by v1's (none).
    assert_eq!(annotation(&sim.d.metadata, CHANGE_CAUSE_ANNOTATION), None);
    sim.run_until_complete(100);
    assert_eq!(
        annotation(&sim.new_rs().unwrap().metadata, REVISION_ANNOTATION),
        Some("3")
    );

    // Nothing to roll back to / unknown revision: a warning, annotation cleared.
    for (to, message) in [
        ("0", "Unable to find last revision."),
        ("42", "Unable to find the revision to rollback to."),
    ] {
        let mut sim = settled(deployment(3, "1", "0"), 0);
        sim.edit(|d| {
            d.metadata
                .annotations
                .get_or_insert_default()
                .insert(DEPRECATED_ROLLBACK_TO.into(), to.into());
        });
        sim.step();
        let e = &sim.syncs[0].1.events[0];
        assert_eq!(
            (e.type_, e.reason.as_str(), e.message.as_str()),
            (
                EventType::Warning,
                "DeploymentRollbackRevisionNotFound",
                message
            )
        );
        assert!(annotation(&sim.d.metadata, DEPRECATED_ROLLBACK_TO).is_none());
    }
}

#[test]
fn recreate_scales_down_waits_for_pods_then_creates() {
    let mut d = deployment(3, "1", "0");
    let strategy = d.spec.as_mut().unwrap().strategy.as_mut().unwrap();
    strategy.type_ = Some(RECREATE.into());
    strategy.rolling_update = None;
    let mut sim = settled(d, 1);
    sim.termination_ticks = 2;
    sim.set_image("app:v2");
    let start = sim.tick;
    sim.run_until_complete(100);
    // Old to 0 first (no new ReplicaSet yet), then the new one at full size.
    assert_eq!(sim.steps(), [(0, 0), (3, 0)]);
    let created_at = sim
        .syncs
        .iter()
        .find(|(_, s)| {
            s.actions
                .iter()
                .any(|a| matches!(a, Action::CreateReplicaSet(_)))
        })
        .map(|(t, _)| *t)
        .unwrap();
    assert_eq!(created_at, start + 2, "waited for the terminating pods");
    // While pods are terminating, the sync only writes status.
    let waiting: Vec<&Sync> = sim
        .syncs
        .iter()
        .filter(|(t, _)| *t == start + 1)
        .map(|(_, s)| s)
        .collect();
    assert!(waiting.iter().all(|s| s.actions.is_empty()));
    // No surge: never more than 3 pods.
    assert!(sim.observations.iter().all(|o| o.pods <= 3));
}

#[test]
fn progress_deadline_exceeded_while_availability_holds() {
    let mut d = deployment(10, "25%", "25%");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    let mut sim = settled(d, 1);
    sim.never_ready_images = vec!["app:broken".into()];
    sim.set_image("app:broken");
    let start = sim.tick;
    let reason = |sim: &Sim| {
        let status = sim.d.status.clone().unwrap();
        let c = get_deployment_condition(&status, PROGRESSING)
            .unwrap()
            .clone();
        (c.status, c.reason.unwrap())
    };
    while sim.tick <= start + 10 {
        sim.step();
        assert_eq!(
            reason(&sim),
            ("True".into(), "ReplicaSetUpdated".into()),
            "tick {}",
            sim.tick
        );
    }
    // A stalled rollout asks to be woken when its deadline expires:
    // lastUpdate (start) + 10 s - now + 1 s.
    let (t, s) = sim.syncs.iter().find(|(t, _)| *t == start + 1).unwrap();
    assert_eq!(
        (*t, s.requeue_after),
        (start + 1, Some(std::time::Duration::from_secs(10)))
    );
    let (_, s) = sim.syncs.iter().find(|(t, _)| *t == start + 10).unwrap();
    assert_eq!(
        s.requeue_after,
        Some(std::time::Duration::ZERO),
        "less than a second left"
    );
    sim.step(); // start + 11: strictly after the deadline
    assert_eq!(
        reason(&sim),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    let status = sim.d.status.clone().unwrap();
    let c = get_deployment_condition(&status, PROGRESSING).unwrap();
    let new_name = name(&sim.new_rs().unwrap().metadata).to_string();
    assert_eq!(
        c.message.as_deref(),
        Some(format!("ReplicaSet {new_name:?} has timed out progressing.").as_str())
    );
    // The rollout stalled within maxUnavailable: (5,8), 8 available, the
    // Deployment still Available.
    assert_eq!(sim.steps(), [(3, 8), (5, 8)]);
    assert!(sim.observations.iter().all(|o| o.available >= 8));
    let available = get_deployment_condition(&status, status::AVAILABLE).unwrap();
    assert_eq!(available.status, "True");
    // Not stopped: nothing is requeued for a timed-out rollout, but an undo
    // (the old template again) completes.
    for _ in 0..3 {
        sim.step();
        assert_eq!(reason(&sim).1, "ProgressDeadlineExceeded");
    }
    sim.set_image("app:v1");
    sim.run_until_complete(100);
    assert_eq!(
        reason(&sim),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
}

#[test]
fn paused_deployments_do_not_roll_out_but_still_scale() {
    let mut sim = settled(deployment(4, "1", "0"), 1);
    sim.edit(|d| d.spec.as_mut().unwrap().paused = Some(true));
    sim.set_image("app:v2");
    for _ in 0..3 {
        sim.step();
    }
    assert_eq!(sim.rss.len(), 1, "template change held while paused");
    let status = sim.d.status.clone().unwrap();
    let c = get_deployment_condition(&status, PROGRESSING).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("Unknown", Some("DeploymentPaused"))
    );
    sim.set_replicas(6);
    sim.step();
    assert_eq!(rs_replicas(&sim.rss[0]), 6, "scaling still happens");
    sim.edit(|d| d.spec.as_mut().unwrap().paused = Some(false));
    sim.step();
    assert_eq!(sim.rss.len(), 2, "resumed: the new ReplicaSet is created");
    sim.run_until_complete(100);
}

#[test]
fn resume_records_deployment_resumed() {
    let mut d = deployment(2, "1", "0");
    d.spec.as_mut().unwrap().paused = Some(true);
    let sync = sync_deployment(&d, &[], &[], at(0));
    let s = sync.status.unwrap();
    assert_eq!(
        get_deployment_condition(&s, PROGRESSING)
            .unwrap()
            .reason
            .as_deref(),
        Some("DeploymentPaused")
    );
    d.status = Some(s);
    d.spec.as_mut().unwrap().paused = Some(false);
    let sync = sync_deployment(&d, &[], &[], at(5));
    let s = sync.status.unwrap();
    // Resumed, then the new ReplicaSet is created in the same sync.
    let c = get_deployment_condition(&s, PROGRESSING).unwrap();
    assert_eq!(c.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(c.last_update_time, Some(Time(at(5))));
}

#[test]
fn revision_history_limit_cleanup_after_completion() {
    let mut d = deployment(2, "1", "0");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut sim = settled(d, 0);
    for image in ["app:v2", "app:v3", "app:v4"] {
        sim.set_image(image);
        sim.run_until_complete(100);
        // Cleanup runs in a sync after completion.
        sim.step();
    }
    // The new one plus one old one.
    assert_eq!(sim.rss.len(), 2);
    let revisions: Vec<&str> = sim
        .rss
        .iter()
        .map(|rs| annotation(&rs.metadata, REVISION_ANNOTATION).unwrap())
        .collect();
    assert_eq!(revisions, ["3", "4"]);
}

#[test]
fn hash_collision_raises_collision_count() {
    let d = deployment(2, "1", "0");
    let hash = hash::compute_hash(&d.spec.as_ref().unwrap().template, None);
    // An RS we own has our would-be name but another template.
    let squatter = rs_at(&format!("web-{hash}"), "app:other", 0, 0);
    let sync = sync_deployment(&d, std::slice::from_ref(&squatter), &[], at(0));
    assert!(matches!(
        sync.error,
        Some(SyncError::HashCollision {
            collision_count: 1,
            ..
        })
    ));
    assert!(sync.actions.is_empty());
    let status = sync.status.unwrap();
    assert_eq!(status.collision_count, Some(1));
    let mut d = d;
    d.status = Some(status);
    let sync = sync_deployment(&d, &[squatter], &[], at(1));
    let Some(Action::CreateReplicaSet(rs)) = sync.actions.first() else {
        panic!("{:?}", sync.actions)
    };
    let expected = format!(
        "web-{}",
        hash::compute_hash(&d.spec.as_ref().unwrap().template, Some(1))
    );
    assert_eq!(rs.metadata.name.as_deref(), Some(expected.as_str()));

    // AlreadyExists from the API server for a ReplicaSet we do not own.
    let foreign = rs_at("web-x", "app:v1", 0, 0);
    let mut foreign_ours = foreign.clone();
    foreign_ours.metadata.owner_references = rs.metadata.owner_references.clone();
    assert!(
        matches!(revisions::on_already_exists(&d, &foreign), revisions::AlreadyExists::Collision(s) if s.collision_count == Some(2))
    );
    assert_eq!(
        revisions::on_already_exists(&d, &foreign_ours),
        revisions::AlreadyExists::Ours
    );
}

#[test]
fn selecting_everything_is_refused() {
    let mut d = deployment(2, "1", "0");
    d.metadata.generation = Some(3);
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let sync = sync_deployment(&d, &[], &[], at(0));
    assert!(sync.actions.is_empty());
    assert_eq!(sync.events[0].reason, "SelectingAll");
    assert_eq!(sync.status.unwrap().observed_generation, Some(3));
}

#[test]
fn a_quiet_deployment_writes_nothing() {
    let mut sim = settled(deployment(3, "25%", "25%"), 0);
    sim.step();
    sim.step();
    let (_, last) = sim.syncs.last().unwrap();
    assert_eq!(last, &Sync::default(), "level-triggered, but idempotent");
}

// --- Properties (reference §4) ----------------------------------------------

fn percent_or_int(max_int: i32) -> impl Strategy<Value = String> {
    prop_oneof![
        (0..=max_int).prop_map(|n| n.to_string()),
        (0..=100i32).prop_map(|p| format!("{p}%")),
    ]
}

fn is_zero(v: &str) -> bool {
    v.trim_end_matches('%') == "0"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Σ spec.replicas and the pods never exceed replicas + maxSurge;
    /// available pods never drop below minAvailable while the old pods are
    /// healthy; the rollout completes; and the steps do not depend on how
    /// long pods take to become ready.
    #[test]
    fn rolling_update_invariants(
        replicas in 0..30i32,
        surge in percent_or_int(5),
        unavailable in percent_or_int(5),
        delay in 0..4i64,
        min_ready in 0..3i32,
    ) {
        // Validation: both zero is rejected; a percentage above 100% is
        // rejected for maxUnavailable (ours never are).
        prop_assume!(!(is_zero(&surge) && is_zero(&unavailable)));
        let run = |delay: i64, min_ready: i32| {
            let mut d = deployment(replicas, &surge, &unavailable);
            d.spec.as_mut().unwrap().min_ready_seconds = Some(min_ready);
            let mut sim = settled(d, delay);
            sim.set_image("app:v2");
            sim.run_until_complete(1000);
            sim
        };
        let sim = run(delay, min_ready);
        let max_total = replicas + max_surge(&sim.d);
        let min_avail = min_available(&sim.d);
        for o in &sim.observations {
            prop_assert!(o.new + o.old <= max_total, "Σ spec {} > {max_total} at {o:?}", o.new + o.old);
            prop_assert!(o.pods <= max_total, "pods {} > {max_total} at {o:?}", o.pods);
            prop_assert!(o.available >= min_avail, "available {} < {min_avail} at {o:?}", o.available);
        }
        prop_assert_eq!(rs_replicas(sim.new_rs().unwrap()), replicas);
        let reference = run(0, 0).steps();
        prop_assert_eq!(sim.steps(), reference);
    }

    /// With pods that take different times to become ready, the limits still
    /// hold and the rollout still completes.
    #[test]
    fn staggered_readiness(
        replicas in 1..20i32,
        surge in percent_or_int(4),
        unavailable in percent_or_int(4),
        delays in proptest::collection::vec(0..5i64, 1..6),
    ) {
        prop_assume!(!(is_zero(&surge) && is_zero(&unavailable)));
        let mut sim = Sim::new(deployment(replicas, &surge, &unavailable));
        sim.ready_delays = delays;
        sim.run_until_complete(200);
        sim.clear();
        sim.set_image("app:v2");
        sim.run_until_complete(2000);
        let max_total = replicas + max_surge(&sim.d);
        let min_avail = min_available(&sim.d);
        for o in &sim.observations {
            prop_assert!(o.new + o.old <= max_total);
            prop_assert!(o.available >= min_avail, "{o:?}");
        }
    }
}
