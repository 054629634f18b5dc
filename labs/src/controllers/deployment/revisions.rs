//! Revisions: which ReplicaSet is the new one, which are old, and the
//! annotations that make `kubectl rollout history` and `undo` work.
//!
//! Kubernetes keeps no separate history object. The history *is* the old
//! ReplicaSets, scaled to zero but kept (up to `revisionHistoryLimit`), each
//! carrying its pod template and a `deployment.kubernetes.io/revision`
//! annotation. Rolling back means making an old template the Deployment's
//! template again: the matching old ReplicaSet becomes the new one, with the
//! next revision number, and its former number goes into
//! `deployment.kubernetes.io/revision-history`.
//!
//! Upstream: `util/deployment_util.go` (revisions and annotations),
//! `sync.go getNewReplicaSet`, and `rollback.go`.

use std::collections::BTreeMap;
use std::num::ParseIntError;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::Value;

use super::status::{PROGRESSING, has_progress_deadline, new_deployment_condition};
use super::{
    Action, EventType, POD_TEMPLATE_HASH_LABEL, SyncError, Syncer, annotation, annotations_mut,
    by_creation_timestamp, hash, min_ready_seconds, name, replicas, rolling, rs_replicas,
};

/// The ReplicaSet's (and the Deployment's) revision number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Former revision numbers of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when this ReplicaSet was last sized.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment when this ReplicaSet was last sized.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// What `extensions/v1beta1`'s `spec.rollbackTo` became in `apps/v1`.
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's client-side apply record; it describes the Deployment, not the
/// ReplicaSet, so it is never copied.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The reason `kubectl rollout history` prints as CHANGE-CAUSE; copied like
/// any other Deployment annotation.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// Upstream `maxRevHistoryLengthInChars`: the revision-history annotation is
/// kept under 2000 characters by dropping the oldest entries.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Upstream `Revision`: a missing annotation is revision 0, a malformed one an
/// error (callers decide whether to skip it).
pub fn revision(meta: &ObjectMeta) -> Result<i64, ParseIntError> {
    match annotation(meta, REVISION_ANNOTATION) {
        None => Ok(0),
        Some(v) => v.parse(),
    }
}

/// Upstream `MaxRevision`: the highest revision, skipping malformed ones.
pub fn max_revision(rss: &[&ReplicaSet]) -> i64 {
    rss.iter()
        .filter_map(|rs| revision(&rs.metadata).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Upstream `LastRevision`: the *second* highest revision, i.e. the one
/// before the current. This is what "roll back" without a revision means.
pub fn last_revision(rss: &[&ReplicaSet]) -> i64 {
    let (mut max, mut second) = (0, 0);
    for rs in rss {
        let Ok(v) = revision(&rs.metadata) else {
            continue;
        };
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

/// Upstream `EqualIgnoreHash`: are two pod templates the same version?
///
/// The `pod-template-hash` label is removed from both first (the
/// ReplicaSet's template has it, the Deployment's does not). Then upstream
/// compares with `apiequality.Semantic.DeepEqual`, under which a nil and an
/// empty map or list are equal. We compare the JSON of both with nulls, empty
/// lists and empty objects removed, which gives the same answer for templates
/// copied from one another (the only ones ever compared). Two known
/// differences, both irrelevant here: Go tells a nil struct pointer from a
/// pointer to an empty struct, and compares resource quantities by value
/// (`1000m` equals `1`).
pub fn equal_ignore_hash(t1: &PodTemplateSpec, t2: &PodTemplateSpec) -> bool {
    semantic_json(&without_hash(t1)) == semantic_json(&without_hash(t2))
}

fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    t
}

fn semantic_json(t: &PodTemplateSpec) -> Value {
    fn prune(v: Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(Value::Array(
                // Keep positions: an element that prunes away becomes null.
                items
                    .into_iter()
                    .map(|i| prune(i).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(map) => {
                let map: serde_json::Map<String, Value> = map
                    .into_iter()
                    .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            other => Some(other),
        }
    }
    prune(serde_json::to_value(t).expect("a PodTemplateSpec always serializes"))
        .unwrap_or(Value::Null)
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn d_template(d: &Deployment) -> &PodTemplateSpec {
    &d.spec.as_ref().expect("defaulted").template
}

/// Upstream `FindNewReplicaSet`: the *oldest* ReplicaSet whose template equals
/// the Deployment's. Oldest, because if the same template somehow got two
/// ReplicaSets (e.g. a hash collision with an older cluster), the one that
/// has been the new one all along keeps that role.
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|&a, &b| by_creation_timestamp(&rss[a], &rss[b]));
    order
        .into_iter()
        .find(|&i| equal_ignore_hash(&rs_template(&rss[i]), d_template(d)))
}

/// Upstream `FindOldReplicaSets`: every ReplicaSet except the new one, oldest
/// first; returns (those with `spec.replicas != 0`, all of them).
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> (Vec<usize>, Vec<usize>) {
    let new = find_new_replica_set(d, rss);
    let mut all: Vec<usize> = (0..rss.len()).filter(|&i| Some(i) != new).collect();
    all.sort_by(|&a, &b| by_creation_timestamp(&rss[a], &rss[b]));
    let required = all
        .iter()
        .copied()
        .filter(|&i| rs_replicas(&rss[i]) != 0)
        .collect();
    (required, all)
}

/// Upstream `skipCopyAnnotation`: annotations that belong to the Deployment
/// or to one ReplicaSet, never copied between them.
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO
    )
}

/// Upstream `copyDeploymentAnnotationsToReplicaSet`: the Deployment's
/// annotations (e.g. `kubernetes.io/change-cause`) are copied onto its new
/// ReplicaSet, which is how each revision remembers why it was made. Only
/// adds and overwrites; an annotation removed from the Deployment stays on
/// the ReplicaSet.
pub fn copy_deployment_annotations_to_replica_set(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let rs_annotations = annotations_mut(&mut rs.metadata);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || rs_annotations.get(k) == Some(v) {
            continue;
        }
        rs_annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Upstream `SetNewReplicaSetAnnotations`: brings the new ReplicaSet's
/// annotations up to date; returns whether anything changed.
///
/// The revision only ever goes *up*: an existing new ReplicaSet already at a
/// revision ≥ `new_revision` (possible when old ReplicaSets were deleted) keeps
/// it. When an existing revision is raised, the ReplicaSet is being reused by
/// a rollback, and its former number is appended to `revision-history`, oldest
/// entries dropped to stay within `limit_in_chars`.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    limit_in_chars: usize,
) -> bool {
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    let annotations = annotations_mut(&mut rs.metadata);
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision_int: i64 = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse() {
            Ok(n) => n,
            // Upstream logs and gives up on a malformed revision.
            Err(_) => return false,
        },
    };
    let Ok(new_revision_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_revision_int < new_revision_int {
        annotations.insert(REVISION_ANNOTATION.into(), new_revision.into());
        changed = true;
        if let Some(old) = old_revision {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.into(), old);
            } else {
                let mut entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > limit_in_chars && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= limit_in_chars {
                    entries = entries.split_off(start);
                    entries.push(&old);
                    let joined = entries.join(",");
                    annotations.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
                }
            }
        }
    }
    if !exists
        && set_replicas_annotations(
            rs,
            replicas(d),
            replicas(d) + super::fenceposts::max_surge(d),
        )
    {
        changed = true;
    }
    changed
}

/// Upstream `SetReplicasAnnotations`.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = annotations_mut(&mut rs.metadata);
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// Upstream `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

/// Upstream `getNonNegativeInt32FromAnnotation` (newest code): an unsigned
/// decimal that fits an int32; anything else counts as missing.
fn non_negative_int32_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    let v = annotation(&rs.metadata, key)?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<i32>().ok()
}

/// Upstream `GetDesiredReplicasAnnotation`.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// Upstream `getMaxReplicasAnnotation`.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Upstream `SetDeploymentRevision`: the Deployment shows its new
/// ReplicaSet's revision (`kubectl describe` prints it).
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = annotations_mut(&mut d.metadata);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.into(), revision.into());
    true
}

/// Upstream `SetFromReplicaSetTemplate`: a rollback copies the old
/// ReplicaSet's template, minus its `pod-template-hash` label.
pub fn set_from_replica_set_template(d: &mut Deployment, template: &PodTemplateSpec) {
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_default();
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.remove(POD_TEMPLATE_HASH_LABEL);
    meta.labels = Some(labels);
    d.spec.get_or_insert_default().template = template;
}

/// Upstream `SetDeploymentAnnotationsTo`: a rollback also takes the old
/// ReplicaSet's annotations, so the change-cause of the revision rolled back
/// to comes back with it, while the skip-list annotations keep the
/// Deployment's own values.
pub fn set_deployment_annotations_to(d: &mut Deployment, rs: &ReplicaSet) {
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| skip_copy_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !skip_copy_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(annotations);
}

/// Upstream `getRollbackTo`: the revision asked for by the deprecated
/// rollback annotation (0 = the previous one); malformed means none.
pub fn get_rollback_to(d: &Deployment) -> Option<i64> {
    match annotation(&d.metadata, DEPRECATED_ROLLBACK_TO) {
        None | Some("") => None,
        Some(v) => v.parse().ok(),
    }
}

/// Upstream `generateReplicaSetName`: `<deployment>-<hash>`, the Deployment
/// name shortened if the result would exceed 253 characters.
pub fn generate_replica_set_name(deployment_name: &str, hash: &str) -> String {
    const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
    let max = DNS1123_SUBDOMAIN_MAX_LENGTH.saturating_sub(hash.len() + 1);
    let prefix = match deployment_name.char_indices().nth(max) {
        Some((cut, _)) if max > 0 => &deployment_name[..cut],
        _ => deployment_name,
    };
    format!("{prefix}-{hash}")
}

/// What to do when creating the new ReplicaSet failed with `AlreadyExists`
/// (the plumbing's side of upstream `getNewReplicaSet`).
#[derive(Clone, Debug, PartialEq)]
pub enum AlreadyExists {
    /// The ReplicaSet is ours and has our template: our cache was stale. Use it.
    Ours,
    /// A hash collision: store this status (collisionCount raised) and sync
    /// again; the next hash differs.
    Collision(k8s_openapi::api::apps::v1::DeploymentStatus),
}

/// Decides an `AlreadyExists` answer to the create of the new ReplicaSet.
/// (A collision with a ReplicaSet the Deployment already owns is detected by
/// [`sync_deployment`](super::sync_deployment) itself.)
pub fn on_already_exists(d: &Deployment, existing: &ReplicaSet) -> AlreadyExists {
    let ours = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == d.metadata.uid.as_ref());
    if ours && equal_ignore_hash(d_template(d), &rs_template(existing)) {
        return AlreadyExists::Ours;
    }
    let mut status = d.status.clone().unwrap_or_default();
    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
    AlreadyExists::Collision(status)
}

impl Syncer<'_> {
    /// Upstream `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created
    /// if allowed and missing) and all old ones, oldest first.
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create_if_not_existed: bool,
    ) -> Result<(Option<usize>, Vec<usize>), SyncError> {
        let (_, all_old) = find_old_replica_sets(&self.d, &self.rss);
        let new = self.get_new_replica_set(&all_old, create_if_not_existed)?;
        Ok((new, all_old))
    }

    /// Upstream `getNewReplicaSet`: finds the ReplicaSet for the current
    /// template and syncs its revision, or creates it.
    fn get_new_replica_set(
        &mut self,
        old: &[usize],
        create_if_not_existed: bool,
    ) -> Result<Option<usize>, SyncError> {
        let existing = find_new_replica_set(&self.d, &self.rss);
        let max_old_revision = max_revision(&self.rs_list(old));
        let new_revision = (max_old_revision + 1).to_string();

        if let Some(i) = existing {
            // Bring its annotations and minReadySeconds up to date. If that
            // needs a write, upstream returns right after it, and the
            // Deployment's own revision is updated by the next sync.
            let mut rs = self.rss[i].clone();
            let annotations_updated = set_new_replica_set_annotations(
                &self.d,
                &mut rs,
                &new_revision,
                true,
                MAX_REV_HISTORY_LENGTH_IN_CHARS,
            );
            let min_ready = min_ready_seconds(&self.d);
            let rs_min_ready = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if annotations_updated || rs_min_ready != min_ready {
                rs.spec.get_or_insert_default().min_ready_seconds = Some(min_ready);
                self.rss[i] = rs.clone();
                self.out.actions.push(Action::UpdateReplicaSet(rs));
                return Ok(Some(i));
            }
            let rs_revision = annotation(&self.rss[i].metadata, REVISION_ANNOTATION)
                .unwrap_or("")
                .to_string();
            let revision_updated = set_deployment_revision(&mut self.d, &rs_revision);
            // A Deployment that had no Progressing condition (e.g. the deadline
            // was just set) starts its clock when the new ReplicaSet is found.
            if has_progress_deadline(&self.d)
                && super::status::get_deployment_condition(self.status(), PROGRESSING).is_none()
            {
                let message = format!("Found new replica set {:?}", name(&self.rss[i].metadata));
                let cond = new_deployment_condition(
                    PROGRESSING,
                    "True",
                    "FoundNewReplicaSet",
                    message,
                    self.now,
                );
                super::status::set_deployment_condition(self.status_mut(), cond);
            }
            if revision_updated {
                self.update_deployment();
            }
            return Ok(Some(i));
        }

        if !create_if_not_existed {
            return Ok(None);
        }

        // The new ReplicaSet: the Deployment's template with the hash label
        // added to the template, the ReplicaSet's labels and its selector.
        let d = &self.d;
        let spec = d.spec.as_ref().expect("defaulted");
        let collision_count = self.status().collision_count;
        let pod_template_hash = hash::compute_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let labels = with_label(
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            &pod_template_hash,
        );
        template.metadata.get_or_insert_default().labels = Some(labels.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector.match_labels = Some(with_label(
            selector.match_labels.as_ref(),
            &pod_template_hash,
        ));
        let rs_name = generate_replica_set_name(name(&d.metadata), &pod_template_hash);
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: Some(labels),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: name(&d.metadata).to_string(),
                    uid: d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready_seconds(d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().map(|&i| &self.rss[i]).chain([&new_rs]).collect();
        let new_replicas = rolling::new_rs_new_replicas(d, &all, &new_rs)?;
        new_rs.spec.as_mut().expect("built above").replicas = Some(new_replicas);
        set_new_replica_set_annotations(
            d,
            &mut new_rs,
            &new_revision,
            false,
            MAX_REV_HISTORY_LENGTH_IN_CHARS,
        );

        // Our name is taken by one of our ReplicaSets with another template
        // (find_new_replica_set did not pick it): a hash collision. Upstream
        // learns this from the create's AlreadyExists; raise collisionCount so
        // the next sync hashes differently.
        if self.rss.iter().any(|rs| name(&rs.metadata) == rs_name) {
            let status = self.status_mut();
            let count = status.collision_count.unwrap_or(0) + 1;
            status.collision_count = Some(count);
            return Err(SyncError::HashCollision {
                name: rs_name,
                collision_count: count,
            });
        }

        self.out
            .actions
            .push(Action::CreateReplicaSet(new_rs.clone()));
        self.rss.push(new_rs);
        let i = self.rss.len() - 1;
        if new_replicas > 0 {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} to {new_replicas}"),
            );
        }
        if set_deployment_revision(&mut self.d, &new_revision) {
            self.update_deployment();
        }
        if has_progress_deadline(&self.d) {
            let message = format!("Created new replica set {rs_name:?}");
            let cond = new_deployment_condition(
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                message,
                self.now,
            );
            super::status::set_deployment_condition(self.status_mut(), cond);
        }
        Ok(Some(i))
    }

    // ANCHOR: rollback
    /// Upstream `rollback`: the controller's side of the deprecated
    /// `rollbackTo`. (`kubectl rollout undo` does the same client-side: it
    /// writes the old template into the Deployment, and the next sync finds
    /// the old ReplicaSet as the new one.)
    pub(super) fn rollback(&mut self) -> Result<(), SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let mut to = get_rollback_to(&self.d).expect("checked by the caller");
        if to == 0 {
            to = last_revision(&self.rs_list(&all));
            if to == 0 {
                self.event(
                    EventType::Warning,
                    "DeploymentRollbackRevisionNotFound",
                    "Unable to find last revision.".into(),
                );
                return self.update_deployment_and_clear_rollback_to();
            }
        }
        let target = all
            .iter()
            .copied()
            .find(|&i| revision(&self.rss[i].metadata) == Ok(to));
        let Some(i) = target else {
            self.event(
                EventType::Warning,
                "DeploymentRollbackRevisionNotFound",
                "Unable to find the revision to rollback to.".into(),
            );
            return self.update_deployment_and_clear_rollback_to();
        };
        let rs = self.rss[i].clone();
        if !equal_ignore_hash(d_template(&self.d), &rs_template(&rs)) {
            // The revision number is raised by the next sync, when this
            // ReplicaSet is found as the new one.
            set_from_replica_set_template(&mut self.d, &rs_template(&rs));
            set_deployment_annotations_to(&mut self.d, &rs);
            let message = format!(
                "Rolled back deployment {:?} to revision {to}",
                name(&self.d.metadata)
            );
            self.event(EventType::Normal, "DeploymentRollback", message);
        } else {
            let message = format!(
                "The rollback revision contains the same template as current deployment {:?}",
                name(&self.d.metadata)
            );
            self.event(
                EventType::Warning,
                "DeploymentRollbackTemplateUnchanged",
                message,
            );
        }
        self.update_deployment_and_clear_rollback_to()
    }
    // ANCHOR_END: rollback

    /// Upstream `updateDeploymentAndClearRollbackTo`.
    fn update_deployment_and_clear_rollback_to(&mut self) -> Result<(), SyncError> {
        if let Some(annotations) = self.d.metadata.annotations.as_mut() {
            annotations.remove(DEPRECATED_ROLLBACK_TO);
        }
        self.update_deployment();
        Ok(())
    }
}

/// Upstream `labelsutil.CloneAndAddLabel` with the hash label.
fn with_label(labels: Option<&BTreeMap<String, String>>, hash: &str) -> BTreeMap<String, String> {
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::tests::{deployment, rs_at, template};

    fn with_revision(mut rs: ReplicaSet, rev: &str) -> ReplicaSet {
        annotations_mut(&mut rs.metadata).insert(REVISION_ANNOTATION.into(), rev.into());
        rs
    }

    #[test]
    fn revisions_max_and_last() {
        let a = with_revision(rs_at("a", "app:v1", 1, 0), "1");
        let b = with_revision(rs_at("b", "app:v2", 1, 1), "3");
        let c = with_revision(rs_at("c", "app:v3", 1, 2), "x");
        let d = rs_at("d", "app:v4", 1, 3); // no annotation: revision 0
        let e = with_revision(rs_at("e", "app:v5", 1, 4), "2");
        let all = [&a, &b, &c, &d, &e];
        assert_eq!(max_revision(&all), 3, "malformed revisions are skipped");
        assert_eq!(last_revision(&all), 2);
        assert_eq!(last_revision(&[&a]), 0, "no previous revision");
        assert!(revision(&c.metadata).is_err());
        assert_eq!(revision(&d.metadata), Ok(0));
    }

    #[test]
    fn new_replica_set_is_the_oldest_with_an_equal_template() {
        let d = deployment(3, "25%", "25%");
        // The Deployment's template is app:v1; two RSs carry it, with
        // different hash labels.
        let rss = vec![
            rs_at("web-new", "app:v1", 1, 5),
            rs_at("web-old", "app:v2", 1, 1),
            rs_at("web-first", "app:v1", 1, 2),
        ];
        assert_eq!(find_new_replica_set(&d, &rss), Some(2));
        let (required, all) = find_old_replica_sets(&d, &rss);
        assert_eq!(all, vec![1, 0]);
        assert_eq!(required, vec![1, 0]);
        assert_eq!(find_new_replica_set(&d, &rss[1..2]), None);
    }

    #[test]
    fn equality_ignores_the_hash_and_nil_versus_empty() {
        let t = template("app:v1");
        let mut hashed = t.clone();
        hashed
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&t, &hashed));
        let mut empty_lists = t.clone();
        let spec = empty_lists.spec.as_mut().unwrap();
        spec.volumes = Some(vec![]);
        spec.node_selector = Some(BTreeMap::new());
        empty_lists.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignore_hash(&t, &empty_lists), "nil == empty");
        assert!(!equal_ignore_hash(&t, &template("app:v2")));
    }

    #[test]
    fn annotations_of_a_new_replica_set() {
        let mut d = deployment(10, "25%", "25%");
        let annotations = annotations_mut(&mut d.metadata);
        annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), "kubectl set image".into());
        annotations.insert(LAST_APPLIED_CONFIG_ANNOTATION.into(), "{}".into());
        annotations.insert(REVISION_ANNOTATION.into(), "7".into());
        annotations.insert(DEPRECATED_ROLLBACK_TO.into(), "1".into());
        let mut rs = ReplicaSet::default();
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "3", false, 2000
        ));
        let got = rs.metadata.annotations.unwrap();
        let want: BTreeMap<String, String> = [
            (CHANGE_CAUSE_ANNOTATION, "kubectl set image"),
            (REVISION_ANNOTATION, "3"),
            (DESIRED_REPLICAS_ANNOTATION, "10"),
            (MAX_REPLICAS_ANNOTATION, "13"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            got, want,
            "skip list not copied; desired/max set on creation"
        );
    }

    #[test]
    fn revisions_only_go_up_and_reuse_records_history() {
        let d = deployment(1, "25%", "25%");
        // Already at a higher revision: untouched.
        let mut rs = with_revision(ReplicaSet::default(), "5");
        assert!(!set_new_replica_set_annotations(
            &d, &mut rs, "4", true, 2000
        ));
        assert_eq!(revision(&rs.metadata), Ok(5));
        // Rolled back to: 1 -> 3, history "1"; then 3 -> 5, history "1,3".
        let mut rs = with_revision(ReplicaSet::default(), "1");
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "3", true, 2000
        ));
        assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("3"));
        assert_eq!(
            annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION),
            Some("1")
        );
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "5", true, 2000
        ));
        assert_eq!(
            annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION),
            Some("1,3")
        );
        // Existing RSs do not get desired/max annotations here.
        assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION), None);
        // A malformed revision on the RS: upstream gives up.
        let mut rs = with_revision(ReplicaSet::default(), "x");
        assert!(!set_new_replica_set_annotations(
            &d, &mut rs, "2", true, 2000
        ));
    }

    #[test]
    fn revision_history_drops_oldest_entries_beyond_the_limit() {
        let d = deployment(1, "25%", "25%");
        let mut rs = with_revision(ReplicaSet::default(), "40");
        annotations_mut(&mut rs.metadata)
            .insert(REVISION_HISTORY_ANNOTATION.into(), "10,20,30".into());
        // "10,20,30,40" would be 11 chars; with a limit of 9 the oldest entry
        // goes ("20,30,40" is 8).
        assert!(set_new_replica_set_annotations(&d, &mut rs, "50", true, 9));
        assert_eq!(
            annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION),
            Some("20,30,40")
        );
        // With a limit of 5, two go.
        let mut rs = with_revision(ReplicaSet::default(), "40");
        annotations_mut(&mut rs.metadata)
            .insert(REVISION_HISTORY_ANNOTATION.into(), "10,20,30".into());
        assert!(set_new_replica_set_annotations(&d, &mut rs, "50", true, 5));
        assert_eq!(
            annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION),
            Some("30,40")
        );
        // The real limit: a long history stays within 2000 characters.
        let long: Vec<String> = (1..=600).map(|n| n.to_string()).collect();
        let mut rs = with_revision(ReplicaSet::default(), "601");
        annotations_mut(&mut rs.metadata)
            .insert(REVISION_HISTORY_ANNOTATION.into(), long.join(","));
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "602", true, 2000
        ));
        let history = annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION).unwrap();
        assert!(history.len() <= 2000, "{}", history.len());
        assert!(history.ends_with(",599,600,601"));
    }

    #[test]
    fn rollback_annotations() {
        let mut d = deployment(1, "25%", "25%");
        let a = annotations_mut(&mut d.metadata);
        a.insert(CHANGE_CAUSE_ANNOTATION.into(), "v2".into());
        a.insert(REVISION_ANNOTATION.into(), "2".into());
        a.insert("team".into(), "x".into());
        let mut rs = rs_at("web-1", "app:v1", 0, 0);
        let a = annotations_mut(&mut rs.metadata);
        a.insert(CHANGE_CAUSE_ANNOTATION.into(), "v1".into());
        a.insert(REVISION_ANNOTATION.into(), "1".into());
        a.insert(DESIRED_REPLICAS_ANNOTATION.into(), "1".into());
        set_deployment_annotations_to(&mut d, &rs);
        let got = d.metadata.annotations.clone().unwrap();
        assert_eq!(got.get(CHANGE_CAUSE_ANNOTATION).unwrap(), "v1");
        assert_eq!(
            got.get(REVISION_ANNOTATION).unwrap(),
            "2",
            "skip list keeps the Deployment's"
        );
        assert!(!got.contains_key("team"), "replaced, not merged");
        assert!(!got.contains_key(DESIRED_REPLICAS_ANNOTATION));

        set_from_replica_set_template(&mut d, rs.spec.as_ref().unwrap().template.as_ref().unwrap());
        assert!(equal_ignore_hash(
            &d.spec.as_ref().unwrap().template,
            &template("app:v1")
        ));
        let labels = d
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(!labels.contains_key(POD_TEMPLATE_HASH_LABEL));

        for (value, want) in [
            (None, None),
            (Some(""), None),
            (Some("0"), Some(0)),
            (Some("3"), Some(3)),
            (Some("x"), None),
        ] {
            let mut d = deployment(1, "25%", "25%");
            if let Some(v) = value {
                annotations_mut(&mut d.metadata).insert(DEPRECATED_ROLLBACK_TO.into(), v.into());
            }
            assert_eq!(get_rollback_to(&d), want, "{value:?}");
        }
    }

    #[test]
    fn replicas_annotations_parse_like_upstream() {
        let mut rs = ReplicaSet::default();
        for (value, want) in [
            ("10", Some(10)),
            ("0", Some(0)),
            ("-1", None),
            ("+1", None),
            ("x", None),
            ("", None),
            ("2147483647", Some(i32::MAX)),
            ("2147483648", None),
        ] {
            annotations_mut(&mut rs.metadata)
                .insert(DESIRED_REPLICAS_ANNOTATION.into(), value.into());
            assert_eq!(desired_replicas_annotation(&rs), want, "{value:?}");
        }
    }

    #[test]
    fn replica_set_names() {
        assert_eq!(
            generate_replica_set_name("web", "5c7bcb456d"),
            "web-5c7bcb456d"
        );
        let long = "a".repeat(300);
        let n = generate_replica_set_name(&long, "5c7bcb456d");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("a-5c7bcb456d"));
    }
}
