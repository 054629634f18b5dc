//! What `kubectl rollout status`, `rollout history` and `rollout undo` do,
//! as a client of any cluster (the lab's, kind's, GKE's).
//!
//! None of the three is done by the cluster: they are kubectl's own logic
//! over the Deployment and its ReplicaSets, which is why the demo can do
//! them through the API just the same.
//!
//! * **status** reads the Deployment's `status` against its `spec`, with
//!   one rule first: until `status.observedGeneration` has caught up with
//!   `metadata.generation`, the status describes an *older* spec, and
//!   nothing in it can be trusted ([`rollout_status`]).
//! * **history** lists the ReplicaSets the Deployment controls: each is one
//!   revision (`deployment.kubernetes.io/revision`), with the change cause
//!   copied from the Deployment when it was made ([`history`]).
//! * **undo** is client-side: take the ReplicaSet of the revision to go
//!   back to, and JSON-patch its pod template (minus `pod-template-hash`)
//!   into the Deployment. The controller then sees a template that matches
//!   an old ReplicaSet, scales it back up, and gives it the next revision
//!   number ([`undo`]).
//!
//! The revision arithmetic is the same code the lab's Deployment controller
//! uses (`labs::controllers::deployment::revisions`), which follows
//! upstream's `deployment/util`; kubectl calls that package too.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use labs::controllers::deployment::POD_TEMPLATE_HASH_LABEL;
use labs::controllers::deployment::revisions::{
    self, CHANGE_CAUSE_ANNOTATION, equal_ignore_hash, skip_copy_annotation,
};
use serde::Serialize;
use serde_json::json;

/// Where a rollout stands, by kubectl's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Still going, with kubectl's message.
    Waiting(String),
    /// `deployment "web" successfully rolled out`.
    Done(String),
    /// `deployment "web" exceeded its progress deadline`.
    Failed(String),
}

// ANCHOR: rollout_status
/// `kubectl rollout status`'s decision for one observation of the
/// Deployment (upstream `DeploymentStatusViewer.Status`).
pub fn rollout_status(d: &Deployment) -> RolloutStatus {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    // First: has the controller seen the newest spec at all?
    if generation > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        );
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if progressing.and_then(|c| c.reason.as_deref()) == Some("ProgressDeadlineExceeded") {
        return RolloutStatus::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let waiting = |what: String| {
        RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {what}..."
        ))
    };
    if let Some(wanted) = wanted
        && updated < wanted
    {
        return waiting(format!(
            "{updated} out of {wanted} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    RolloutStatus::Done(format!("deployment {name:?} successfully rolled out"))
}
// ANCHOR_END: rollout_status

/// The ReplicaSets `d` controls (an owner reference with `controller:
/// true` and its uid), as kubectl's `GetAllReplicaSets` finds them.
pub async fn replica_sets(
    client: &kube::Client,
    d: &Deployment,
) -> anyhow::Result<Vec<ReplicaSet>> {
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let list = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let uid = d.metadata.uid.as_deref();
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
        })
        .collect())
}

/// The image tag of a ReplicaSet's (or template's) first container: `v1`.
pub fn version_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, tag)| tag.to_string())
        .unwrap_or_else(|| "?".into())
}

/// One line of `kubectl rollout history`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Revision {
    pub revision: i64,
    pub change_cause: String,
    pub replica_set: String,
    pub version: String,
}

/// `kubectl rollout history deployment/web`, oldest first.
pub async fn history(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Vec<Revision>> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("deployment {name:?} not found in namespace {ns:?}"))?;
    // A ReplicaSet whose revision does not parse is left out, as kubectl
    // leaves it out (with a warning); a missing one reads as 0.
    let mut out: Vec<Revision> = replica_sets(client, &d)
        .await?
        .iter()
        .filter_map(|rs| Some((rs, revisions::revision(&rs.metadata).ok()?)))
        .map(|(rs, revision)| Revision {
            revision,
            change_cause: rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
                .cloned()
                .unwrap_or_else(|| "<none>".into()),
            replica_set: rs.metadata.name.clone().unwrap_or_default(),
            version: version_of(rs),
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    Ok(out)
}

/// What an undo did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undone {
    /// Rolled back to this revision (its ReplicaSet's version).
    To { revision: i64, version: String },
    /// The chosen revision's template is the current one: nothing to do
    /// (kubectl: `skipped rollback`).
    Skipped { revision: i64 },
}

// ANCHOR: undo
/// `kubectl rollout undo deployment/web [--to-revision=N]`, as kubectl does
/// it: `to_revision` 0 means the one before the current (the second
/// highest revision).
pub async fn undo(
    client: &kube::Client,
    ns: &str,
    name: &str,
    to_revision: i64,
) -> anyhow::Result<Undone> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let d = deployments
        .get(name)
        .await
        .with_context(|| format!("deployment {name:?} not found in namespace {ns:?}"))?;
    if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        anyhow::bail!(
            "you cannot rollback a paused deployment; resume it first with \
             'kubectl rollout resume' and try again"
        );
    }
    let rss = replica_sets(client, &d).await?;
    let (wanted, rs) = revision_to_restore(&rss, to_revision).ok_or_else(|| match to_revision {
        0 => anyhow::anyhow!("no rollout history found for deployment {name:?}"),
        n => anyhow::anyhow!("unable to find specified revision {n} in history"),
    })?;
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .context("a ReplicaSet without a pod template")?;
    if let Some(current) = d.spec.as_ref().map(|s| &s.template)
        && equal_ignore_hash(current, &template)
    {
        return Ok(Undone::Skipped { revision: wanted });
    }
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    // The Deployment's annotations become the ReplicaSet's (its change
    // cause comes back with it), except the controller's bookkeeping,
    // which stays the Deployment's own.
    let mut annotations: BTreeMap<String, String> = rs
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !skip_copy_annotation(k))
        .collect();
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))?;
    deployments
        .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .context("rolling back")?;
    Ok(Undone::To {
        revision: wanted,
        version: version_of(rs),
    })
}
// ANCHOR_END: undo

/// Which ReplicaSet `rollout undo --to-revision=N` goes back to, and its
/// revision (kubectl's `deploymentRevision`): revision `N`, or for `0` the
/// one with the second-highest revision — the one before the current. A
/// ReplicaSet whose revision does not parse is never chosen.
fn revision_to_restore(rss: &[ReplicaSet], to_revision: i64) -> Option<(i64, &ReplicaSet)> {
    let parsed = rss
        .iter()
        .filter_map(|rs| Some((revisions::revision(&rs.metadata).ok()?, rs)));
    if to_revision != 0 {
        return parsed.into_iter().find(|(v, _)| *v == to_revision);
    }
    let mut latest: Option<(i64, &ReplicaSet)> = None;
    let mut previous = None;
    for (v, rs) in parsed {
        if latest.is_none_or(|(l, _)| l < v) {
            previous = latest;
            latest = Some((v, rs));
        } else if previous.is_none_or(|(p, _)| p < v) {
            previous = Some((v, rs));
        }
    }
    previous
}

/// The live view's line: each ReplicaSet with its version and ready pods,
/// newest revision first. `web-6d4f… v2 2/3 ready | web-59c8… v1 1/1`.
pub async fn live_line(client: &kube::Client, d: &Deployment) -> anyhow::Result<String> {
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let mut rss = replica_sets(client, d).await?;
    rss.sort_by_key(|rs| std::cmp::Reverse(revisions::revision(&rs.metadata).unwrap_or(0)));
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={}", crate::APP)))
        .await?;
    let mut parts = Vec::new();
    for rs in &rss {
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let hash = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
            .cloned()
            .unwrap_or_default();
        let mine: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                    == Some(&hash)
            })
            .collect();
        if want == 0 && mine.is_empty() {
            continue;
        }
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        let terminating = mine
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count();
        let mut part = format!(
            "{} {} {ready}/{want} ready",
            rs.metadata.name.as_deref().unwrap_or("?"),
            version_of(rs)
        );
        if terminating > 0 {
            part.push_str(&format!(", {terminating} terminating"));
        }
        parts.push(part);
    }
    Ok(parts.join(" | "))
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(
        generation: i64,
        observed: i64,
        spec: i32,
        status: serde_json::Value,
    ) -> Deployment {
        let mut status = status;
        status["observedGeneration"] = json!(observed);
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": spec, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn rs(name: &str, revision: &str) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name,
            "annotations": {"deployment.kubernetes.io/revision": revision}}}))
        .unwrap()
    }

    #[test]
    fn undo_picks_the_revision_kubectl_picks() {
        let pick = |rss: &[ReplicaSet], n| {
            revision_to_restore(rss, n).map(|(v, rs)| (v, rs.metadata.name.clone().unwrap()))
        };
        let three = [rs("a", "1"), rs("c", "3"), rs("b", "2"), rs("x", "oops")];
        // 0: the one before the current, whatever the list's order.
        assert_eq!(pick(&three, 0), Some((2, "b".into())));
        assert_eq!(pick(&three, 1), Some((1, "a".into())));
        assert_eq!(
            pick(&three, 42),
            None,
            "unable to find specified revision 42"
        );
        // One revision: no history to go back to.
        assert_eq!(pick(&three[..1], 0), None);
        // A missing revision reads as 0, and is one to go back to.
        let unnumbered = [rs("new", "1"), {
            let mut r = rs("old", "0");
            r.metadata.annotations = None;
            r
        }];
        assert_eq!(pick(&unnumbered, 0), Some((0, "old".into())));
    }

    #[test]
    fn kubectl_rollout_status_rules() {
        let w = |s: &str| {
            RolloutStatus::Waiting(format!(
                "Waiting for deployment \"web\" rollout to finish: {s}..."
            ))
        };
        assert_eq!(
            rollout_status(&deployment(
                2,
                1,
                3,
                json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})
            )),
            RolloutStatus::Waiting("Waiting for deployment spec update to be observed...".into()),
            "an old observation says nothing, even when it looks done"
        );
        assert_eq!(
            rollout_status(&deployment(
                2,
                2,
                3,
                json!({"replicas": 4, "updatedReplicas": 1})
            )),
            w("1 out of 3 new replicas have been updated")
        );
        assert_eq!(
            rollout_status(&deployment(
                2,
                2,
                3,
                json!({"replicas": 4, "updatedReplicas": 3})
            )),
            w("1 old replicas are pending termination")
        );
        assert_eq!(
            rollout_status(&deployment(
                2,
                2,
                3,
                json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2})
            )),
            w("2 of 3 updated replicas are available")
        );
        assert_eq!(
            rollout_status(&deployment(
                2,
                2,
                3,
                json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})
            )),
            RolloutStatus::Done("deployment \"web\" successfully rolled out".into())
        );
        let stuck = json!({"replicas": 4, "updatedReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        assert_eq!(
            rollout_status(&deployment(2, 2, 3, stuck)),
            RolloutStatus::Failed("deployment \"web\" exceeded its progress deadline".into())
        );
    }
}
