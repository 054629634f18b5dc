//! The protobuf bodies of `kubectl drain` (Eviction), `kubectl create pdb`,
//! `kubectl create serviceaccount` and `kubectl auth can-i / whoami`
//! (the reviews), translated as [`super::convert`] does the others.
//!
//! Upstream: the generated `generated.pb.go` of `k8s.io/api/{policy,
//! authorization,authentication}/v1` and `core/v1` (ServiceAccount).

use k8s_pb::api::authentication::v1 as authentication;
use k8s_pb::api::authorization::v1 as authorization;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::policy::{v1 as policy, v1beta1 as policy_beta};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use serde_json::Value;

use super::ProtobufError;
use super::convert::{Obj, int_or_string, label_selector, local_ref, obj};

/// Decodes one of this file's kinds: its metadata and the rest of the
/// object, or `None` for a kind that is not among them.
pub(super) fn decode(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Option<Result<(Option<meta::ObjectMeta>, Obj), ProtobufError>> {
    let d = |e: prost::DecodeError| ProtobufError::Decode(e.to_string());
    let decoded = match (api_version, kind) {
        ("policy/v1", "PodDisruptionBudget") => policy::PodDisruptionBudget::decode(raw)
            .map_err(d)
            .map(|o| {
                let spec = o.spec.as_ref().map(|s| {
                    obj()
                        .val("minAvailable", s.min_available.as_ref().map(int_or_string))
                        .val(
                            "maxUnavailable",
                            s.max_unavailable.as_ref().map(int_or_string),
                        )
                        .val("selector", s.selector.as_ref().map(label_selector))
                        .str(
                            "unhealthyPodEvictionPolicy",
                            &s.unhealthy_pod_eviction_policy,
                        )
                        .build()
                });
                (o.metadata, obj().val("spec", spec))
            }),
        ("policy/v1", "Eviction") => policy::Eviction::decode(raw)
            .map_err(d)
            .map(|o| (o.metadata, eviction(o.delete_options.as_ref()))),
        ("policy/v1beta1", "Eviction") => policy_beta::Eviction::decode(raw)
            .map_err(d)
            .map(|o| (o.metadata, eviction(o.delete_options.as_ref()))),
        ("v1", "ServiceAccount") => core::ServiceAccount::decode(raw).map_err(d).map(|o| {
            let secrets = o
                .secrets
                .iter()
                .map(|s| {
                    obj()
                        .str("kind", &s.kind)
                        .str("namespace", &s.namespace)
                        .str("name", &s.name)
                        .str("uid", &s.uid)
                        .str("apiVersion", &s.api_version)
                        .build()
                })
                .collect();
            let rest = obj()
                .list("secrets", secrets)
                .list(
                    "imagePullSecrets",
                    o.image_pull_secrets.iter().map(local_ref).collect(),
                )
                .opt_bool(
                    "automountServiceAccountToken",
                    o.automount_service_account_token,
                );
            (o.metadata, rest)
        }),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            authorization::SelfSubjectAccessReview::decode(raw)
                .map_err(d)
                .map(|o| {
                    let spec = o.spec.as_ref().map(|s| {
                        let resource = s.resource_attributes.as_ref().map(|a| {
                            obj()
                                .str("namespace", &a.namespace)
                                .str("verb", &a.verb)
                                .str("group", &a.group)
                                .str("version", &a.version)
                                .str("resource", &a.resource)
                                .str("subresource", &a.subresource)
                                .str("name", &a.name)
                                .build()
                        });
                        let non_resource = s
                            .non_resource_attributes
                            .as_ref()
                            .map(|a| obj().str("path", &a.path).str("verb", &a.verb).build());
                        obj()
                            .val("resourceAttributes", resource)
                            .val("nonResourceAttributes", non_resource)
                            .build()
                    });
                    (o.metadata, obj().val("spec", spec))
                })
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            authorization::SelfSubjectRulesReview::decode(raw)
                .map_err(d)
                .map(|o| {
                    let spec = o
                        .spec
                        .as_ref()
                        .map(|s| obj().str("namespace", &s.namespace).build());
                    (o.metadata, obj().val("spec", spec))
                })
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            authentication::SelfSubjectReview::decode(raw)
                .map_err(d)
                .map(|o| (o.metadata, obj()))
        }
        _ => return None,
    };
    Some(decoded)
}

/// An Eviction's `deleteOptions`.
fn eviction(opts: Option<&meta::DeleteOptions>) -> Obj {
    let opts = opts.map(|o| {
        let preconditions = o.preconditions.as_ref().map(|p| {
            obj()
                .str("uid", &p.uid)
                .str("resourceVersion", &p.resource_version)
                .build()
        });
        obj()
            .opt_int("gracePeriodSeconds", o.grace_period_seconds)
            .val("preconditions", preconditions)
            .opt_bool("orphanDependents", o.orphan_dependents)
            .str("propagationPolicy", &o.propagation_policy)
            .strs("dryRun", &o.dry_run)
            .build()
    });
    obj().val("deleteOptions", opts.filter(|v: &Value| v.is_object()))
}

#[cfg(test)]
mod tests {
    use k8s_pb::api::policy::v1 as policy;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    use crate::apiserver::protobuf::{decode, encode};

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        })
    }

    #[test]
    fn kubectl_create_pdb_body() {
        // What `kubectl create pdb web --selector=app=web --min-available=50%` sends.
        let pdb = policy::PodDisruptionBudget {
            metadata: meta("web"),
            spec: Some(policy::PodDisruptionBudgetSpec {
                min_available: Some(IntOrString {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: Some("50%".into()),
                }),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        };
        let v = decode(&encode("policy/v1", "PodDisruptionBudget", &pdb)).unwrap();
        assert_eq!(v["kind"], "PodDisruptionBudget");
        assert_eq!(
            v["spec"],
            json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}})
        );
    }

    #[test]
    fn kubectl_drain_eviction_body() {
        let eviction = policy::Eviction {
            metadata: meta("web-1"),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(0),
                dry_run: vec!["All".into()],
                ..Default::default()
            }),
        };
        let v = decode(&encode("policy/v1", "Eviction", &eviction)).unwrap();
        assert_eq!(v["metadata"]["name"], "web-1");
        assert_eq!(
            v["deleteOptions"],
            json!({"gracePeriodSeconds": 0, "dryRun": ["All"]})
        );
    }
}
