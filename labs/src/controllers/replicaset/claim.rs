//! Adoption and release: which pods a ReplicaSet counts as its own, and the
//! ownerReference patches that make it so.
//!
//! This mirrors `pkg/controller/controller_ref_manager.go`
//! (`PodControllerRefManager.ClaimPods`, `ownerRefControllerPatch`) and the
//! `deleteOwnerRefStrategicMergePatch` the release sends. Pure: the
//! plumbing ([`super::controller`]) sends the patches.

use std::borrow::Borrow;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::labels;
use crate::machinery::pods::{controller_of, is_pod_active};
use crate::machinery::selector::{SelectorExt, as_selector};

// ANCHOR: claim
/// The outcome of claiming pods (upstream's `PodControllerRefManager.ClaimPods`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimedPods<'a> {
    /// Active pods this ReplicaSet controls, including those about to be adopted.
    pub claimed: Vec<&'a Pod>,
    /// Orphans to adopt.
    pub adopt: Vec<&'a Pod>,
    /// Owned pods to release.
    pub release: Vec<&'a Pod>,
}

/// Decide which pods belong to this ReplicaSet.
///
/// Labels say which pods a ReplicaSet *wants*; the controller ownerReference
/// says which pods it *has*. Two ReplicaSets with overlapping selectors would
/// otherwise both count the same pod and never agree on how many exist, so a
/// pod is counted only by the one controller named in its ownerReferences.
pub fn claim_pods<'a, P: Borrow<Pod>>(rs: &ReplicaSet, pods: &'a [P]) -> ClaimedPods<'a> {
    let mut out = ClaimedPods::default();
    let Some(selector) = rs
        .spec
        .as_ref()
        .and_then(|spec| as_selector(&spec.selector))
    else {
        return out;
    };
    let rs_uid = rs.metadata.uid.as_deref();
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();

    // Pods that are finished or terminating are no replicas: they are neither
    // counted, nor adopted, nor released. A terminating pod is going away
    // whatever we do, and counting it would delay its replacement.
    for pod in pods.iter().map(Borrow::borrow).filter(|p| is_pod_active(p)) {
        let matches = selector.matches(labels(&pod.metadata));
        match controller_of(&pod.metadata) {
            // Controlled by someone else: never touch another controller's pod,
            // even if our selector matches it.
            Some(owner) if Some(owner.uid.as_str()) != rs_uid => {}
            // Ours and still matching. (Allowed even while we are being
            // deleted, because it takes no action.)
            Some(_) if matches => out.claimed.push(pod),
            // Ours but relabelled: let it go, unless we are being deleted, in
            // which case the garbage collector is about to handle it anyway.
            Some(_) => {
                if !rs_deleting {
                    out.release.push(pod);
                }
            }
            // An orphan that matches: adopt it, unless we are being deleted
            // (adopting then would hand the pod straight to the garbage
            // collector) or it lives in another namespace (ownerReferences
            // cannot cross namespaces).
            None => {
                let same_namespace = rs.metadata.namespace.as_deref().is_none_or(str::is_empty)
                    || rs.metadata.namespace == pod.metadata.namespace;
                if matches && !rs_deleting && same_namespace {
                    out.adopt.push(pod);
                    out.claimed.push(pod);
                }
            }
        }
    }
    out
}
// ANCHOR_END: claim

/// The controller ownerReference this ReplicaSet puts on its pods.
///
/// `blockOwnerDeletion` makes a foreground deletion of the ReplicaSet wait
/// until this pod is gone.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The strategic merge patch that adopts `pod` (upstream's
/// `ownerRefControllerPatch`). Its `uid` is a precondition: if the pod was
/// deleted and recreated under the same name meanwhile, the patch fails
/// instead of adopting a pod we never looked at.
pub fn adopt_patch(rs: &ReplicaSet, pod: &Pod) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [controller_ref(rs)],
            "uid": pod.metadata.uid,
        }
    })
}

/// The strategic merge patch that releases `pod`: delete our ownerReference
/// (matched by uid), keep any others.
pub fn release_patch(rs: &ReplicaSet, pod: &Pod) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": rs.metadata.uid}],
            "uid": pod.metadata.uid,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::replicaset::tests::{NO_PODS, RS_UID, names, now, pod, replica_set};
    use crate::controllers::replicaset::{Scale, reconcile};

    // ---- ClaimPods: adoption and release --------------------------------

    #[derive(Debug, PartialEq)]
    enum Claim {
        Keep,
        Adopt,
        Release,
        Ignore,
    }

    #[test]
    fn claiming_pods() {
        use Claim::*;
        let cases = [
            ("owned and matching", pod("p").build(), Keep),
            ("orphan, matching", pod("p").orphan().build(), Adopt),
            (
                "orphan, matching the selector but not the whole template",
                pod("p").orphan().labels(&[("app", "web")]).build(),
                Adopt,
            ),
            (
                "orphan, not matching",
                pod("p").orphan().labels(&[("app", "db")]).build(),
                Ignore,
            ),
            (
                "orphan with a non-controller owner",
                pod("p").owner("uid-someone", false).build(),
                Adopt,
            ),
            (
                "owned but relabelled",
                pod("p").labels(&[("app", "web-debug")]).build(),
                Release,
            ),
            (
                "owned, labels removed",
                pod("p").labels(&[]).build(),
                Release,
            ),
            (
                "controlled by another ReplicaSet",
                pod("p").owner("uid-rs-other", true).build(),
                Ignore,
            ),
            (
                "orphan, terminating",
                pod("p").orphan().terminating().build(),
                Ignore,
            ),
            (
                "orphan, succeeded",
                pod("p").orphan().phase("Succeeded").build(),
                Ignore,
            ),
            ("owned, terminating", pod("p").terminating().build(), Ignore),
            ("owned, failed", pod("p").phase("Failed").build(), Ignore),
            (
                "owned, relabelled and terminating",
                pod("p").labels(&[]).terminating().build(),
                Ignore,
            ),
            (
                "orphan in another namespace",
                pod("p").orphan().namespace("other").build(),
                Ignore,
            ),
        ];
        let rs = replica_set(1);
        for (case, pod, expected) in cases {
            let all = [pod];
            let claim = claim_pods(&rs, &all);
            let got = match (claim.claimed.len(), claim.adopt.len(), claim.release.len()) {
                (1, 0, 0) => Keep,
                (1, 1, 0) => Adopt,
                (0, 0, 1) => Release,
                (0, 0, 0) => Ignore,
                other => panic!("{case}: inconsistent claim {other:?}"),
            };
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn adopted_pods_count_and_released_pods_are_replaced() {
        let rs = replica_set(3);
        let all = vec![
            pod("owned").build(),
            pod("orphan").orphan().build(),
            pod("relabelled").labels(&[("app", "other")]).build(),
            pod("foreign").owner("uid-rs-other", true).build(),
        ];
        let r = reconcile(&rs, &all, NO_PODS, now());
        assert_eq!(names(&r.adopt), ["orphan"]);
        assert_eq!(names(&r.release), ["relabelled"]);
        assert_eq!(names(&r.active), ["owned", "orphan"]);
        assert_eq!(r.diff, -1);
        assert!(matches!(r.scale, Scale::Create { count: 1, .. }));
    }

    #[test]
    fn adopt_and_release_patches() {
        let rs = replica_set(1);
        let p = pod("web-a").orphan().build();
        assert_eq!(
            adopt_patch(&rs, &p),
            serde_json::json!({"metadata": {
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": RS_UID, "controller": true, "blockOwnerDeletion": true,
                }],
                "uid": "uid-web-a",
            }})
        );
        assert_eq!(
            release_patch(&rs, &p),
            serde_json::json!({"metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": RS_UID}],
                "uid": "uid-web-a",
            }})
        );
    }
}
