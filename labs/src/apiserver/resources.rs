//! The resource table: one row per kind the API server serves.
//!
//! The real API server builds this table from Go types registered in a
//! scheme; here it is a plain `static` array. One table drives everything
//! that has to agree about a resource: URL routing (`/apis/apps/v1/...`), the
//! etcd key (`/registry/deployments/<ns>/<name>`), discovery documents,
//! OpenAPI, Table rendering and the k8s-openapi type used to decode bodies.

use serde_json::Value;

/// Which subresources a resource has beyond the object itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `.../status`: writes change only `status` (controllers, kubelets).
    Status,
    /// `.../scale`: an `autoscaling/v1` `Scale` view of `spec.replicas`.
    Scale,
    /// `.../binding`: the scheduler assigns a pod to a node.
    Binding,
    /// `.../log`: container logs (answered by the kubelet).
    Log,
    /// `pods/{name}/eviction`: a policy/v1 `Eviction`, the polite delete
    /// that respects PodDisruptionBudgets (what `kubectl drain` posts).
    Eviction,
    /// `.../exec`: run a command in a container (`kubectl exec`, `cp`).
    Exec,
    /// `.../attach`: connect to a container's own process (`kubectl attach`).
    Attach,
    /// `.../portforward`: tunnel connections to a pod's ports (`kubectl
    /// port-forward`); served by its own route, [`super::portforward`].
    PortForward,
}

// ANCHOR: resource
/// One resource type, as discovery describes it and as etcd stores it.
#[derive(Debug)]
pub struct Resource {
    /// API group: `""` for the core group (`/api/v1`), `"apps"` for `/apis/apps/v1`.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower case: the URL segment (`deployments`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `kubectl get all` lists every resource in the `all` category.
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Where the objects live in the store, e.g. `/registry/deployments`.
    /// Kubernetes keeps a few historical names: nodes are `minions`.
    pub etcd_prefix: &'static str,
    /// Whether `metadata.generation` counts spec changes for this kind.
    pub has_generation: bool,
}
// ANCHOR_END: resource

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every resource this server knows, in discovery order.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: NONE,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/namespaces",
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: NONE,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/minions",
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        subresources: &[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Log,
            Subresource::Eviction,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
        ],
        etcd_prefix: "/registry/pods",
        has_generation: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/services/specs",
        has_generation: false,
    },
    // The legacy Endpoints object (one object per Service, every address
    // in it) is stored and served as plain data so that clients which read
    // it get an answer, but no controller of the labs fills it: upstream's
    // endpoints controller is left out. Services are backed by
    // EndpointSlices (below), which is what kube-proxy reads since 1.19.
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/services/endpoints",
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/events",
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/configmaps",
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/secrets",
        has_generation: false,
    },
    // The identities pods run as: `default` in every namespace (the
    // service-account controller creates it), and any the user creates.
    // (On GKE with Workload Identity an annotation also makes one a Google
    // Cloud identity.) This server issues no tokens for them.
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/serviceaccounts",
        has_generation: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        subresources: &[Subresource::Status, Subresource::Scale],
        etcd_prefix: "/registry/deployments",
        has_generation: true,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        subresources: &[Subresource::Status, Subresource::Scale],
        etcd_prefix: "/registry/replicasets",
        has_generation: true,
    },
    // Node heartbeats since Kubernetes 1.17: each kubelet renews the Lease
    // named after its node in `kube-node-lease` (see `crate::kubelet`).
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/leases",
        has_generation: false,
    },
    // After coordination.k8s.io, as upstream orders groups. A Service's
    // endpoints, cut into slices of at most 100 (the EndpointSlice
    // controller writes them, every kube-proxy reads them). No short name,
    // as upstream; `kubectl get endpointslices`. The generation moves on
    // every change of the endpoints, as upstream's strategy does.
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "/registry/endpointslices",
        has_generation: true,
    },
    // Who am I, and may I? Reviews are questions, not objects: `create`
    // is their only verb, the answer comes back in `status`, and nothing
    // is stored (an empty `etcd_prefix`, see [`Resource::is_virtual`]).
    // `kubectl auth whoami` and `kubectl auth can-i` post them.
    Resource {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "",
        has_generation: false,
    },
    Resource {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "",
        has_generation: false,
    },
    Resource {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        etcd_prefix: "",
        has_generation: false,
    },
    // How many of a set of pods may be down at once for voluntary
    // disruptions (a drain, an eviction). The disruption controller keeps
    // its status; the eviction subresource of pods reads and decrements it.
    Resource {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: NONE,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/poddisruptionbudgets",
        has_generation: true,
    },
    // The HorizontalPodAutoscaler, served in two versions over one stored
    // form (see `super::conversion`): autoscaling/v2 is the storage and
    // preferred version; autoscaling/v1 (`targetCPUUtilizationPercentage`)
    // is what kubectl ≤ 1.22's `autoscale` sent and is still served. v2
    // comes first: `by_kind` finds the storage version.
    Resource {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: ALL,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/horizontalpodautoscalers",
        has_generation: true,
    },
    Resource {
        group: "autoscaling",
        version: "v1",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: ALL,
        subresources: &[Subresource::Status],
        etcd_prefix: "/registry/horizontalpodautoscalers",
        has_generation: true,
    },
];

impl Resource {
    /// `apps/v1`, or just `v1` for the core group: the `apiVersion` field.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how error messages
    /// name a resource (`deployments.apps "web" not found`).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod`: how validation errors name a kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// A resource with no storage: `create` answers a question (the
    /// authentication and authorization reviews) and stores nothing.
    pub fn is_virtual(&self) -> bool {
        self.etcd_prefix.is_empty()
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    // ANCHOR: keys
    /// The store key of one object: `/registry/pods/default/web-1`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/{name}", self.etcd_prefix),
            _ => format!("{}/{name}", self.etcd_prefix),
        }
    }

    /// The prefix a list or watch reads: one namespace, or all of them.
    /// The trailing `/` keeps `default` from also matching `default2`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/", self.etcd_prefix),
            _ => format!("{}/", self.etcd_prefix),
        }
    }
    // ANCHOR_END: keys

    /// Checks that a decoded body really is this kind: the body is decoded
    /// into the k8s-openapi type and encoded again. That is what the real
    /// server does with its Go types, and it has the same effects: wrong
    /// types are rejected, JSON `null`s and unknown fields disappear, and
    /// the stored JSON has one canonical shape.
    pub fn round_trip(&self, obj: Value) -> Result<Value, serde_json::Error> {
        // The visitor takes the body out of the slot only when the kind
        // has a type; an untyped kind gets its body back unchanged.
        struct RoundTrip<'a>(&'a mut Option<Value>);
        impl TypeVisitor for RoundTrip<'_> {
            type Output = Result<Value, serde_json::Error>;
            fn visit<T: KindType>(self) -> Self::Output {
                let obj = self.0.take().unwrap_or_default();
                serde_json::to_value(serde_json::from_value::<T>(obj)?)
            }
        }
        let mut slot = Some(obj);
        match self.with_type(RoundTrip(&mut slot)) {
            Some(typed) => typed,
            None => Ok(slot.take().unwrap_or_default()),
        }
    }

    // ANCHOR: with_type
    /// The one place that says which k8s-openapi type holds each kind: the
    /// scheme of the real API server, where every Go type is registered
    /// under its group/version/kind. Everything typed follows from this
    /// match: decoding bodies ([`Resource::round_trip`], and with it strict
    /// field validation) and the OpenAPI schemas `kubectl explain` reads
    /// ([`super::openapi`]). Serving a new kind is a row in [`RESOURCES`]
    /// and one line here.
    pub fn with_type<V: TypeVisitor>(&self, v: V) -> Option<V::Output> {
        use k8s_openapi::api::{
            apps::v1 as apps, authentication::v1 as authentication,
            authorization::v1 as authorization, coordination::v1 as coordination, core::v1 as core,
            discovery::v1 as discovery, policy::v1 as policy,
        };
        Some(match self.kind {
            "Namespace" => v.visit::<core::Namespace>(),
            "Node" => v.visit::<core::Node>(),
            "Pod" => v.visit::<core::Pod>(),
            "Service" => v.visit::<core::Service>(),
            "Endpoints" => v.visit::<core::Endpoints>(),
            "Event" => v.visit::<core::Event>(),
            "ConfigMap" => v.visit::<core::ConfigMap>(),
            "Secret" => v.visit::<core::Secret>(),
            "Deployment" => v.visit::<apps::Deployment>(),
            "ReplicaSet" => v.visit::<apps::ReplicaSet>(),
            "Lease" => v.visit::<coordination::Lease>(),
            "EndpointSlice" => v.visit::<discovery::EndpointSlice>(),
            // One kind in two versions: each version decodes (and is
            // described) as its own type; `super::conversion` maps between.
            "HorizontalPodAutoscaler" if self.version == "v1" => {
                v.visit::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>()
            }
            "HorizontalPodAutoscaler" => {
                v.visit::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>()
            }
            "ServiceAccount" => v.visit::<core::ServiceAccount>(),
            "PodDisruptionBudget" => v.visit::<policy::PodDisruptionBudget>(),
            "SelfSubjectReview" => v.visit::<authentication::SelfSubjectReview>(),
            "SelfSubjectAccessReview" => v.visit::<authorization::SelfSubjectAccessReview>(),
            "SelfSubjectRulesReview" => v.visit::<authorization::SelfSubjectRulesReview>(),
            _ => return None,
        })
    }
    // ANCHOR_END: with_type
}

/// What the server needs from the Rust type of a kind: serde both ways
/// (to decode and store bodies) and a JSON schema (k8s-openapi's
/// `schemars` feature, generated from the same upstream OpenAPI
/// definitions as the types, descriptions included) for `/openapi`.
pub trait KindType:
    serde::de::DeserializeOwned + serde::Serialize + k8s_openapi::schemars::JsonSchema
{
}
impl<T> KindType for T where
    T: serde::de::DeserializeOwned + serde::Serialize + k8s_openapi::schemars::JsonSchema
{
}

/// Something to do with the type of a kind, whatever the type is: Rust
/// has no types as values, so [`Resource::with_type`] calls back with the
/// type as a generic parameter instead of returning it.
pub trait TypeVisitor {
    type Output;
    fn visit<T: KindType>(self) -> Self::Output;
}

/// Finds a resource by group, version and plural (the URL segments).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource and object name a store key belongs to: the inverse of
/// [`Resource::key`], so that a store error (which names only its key) can
/// be reported as Kubernetes reports it, by resource and name.
pub fn parse_key(key: &str) -> Option<(&'static Resource, &str)> {
    let r = RESOURCES
        .iter()
        .filter(|r| !r.is_virtual())
        .filter(|r| {
            key.strip_prefix(r.etcd_prefix)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        // The longest prefix wins; among rows sharing one (the versions of
        // a resource) the first, the storage version.
        .rev()
        .max_by_key(|r| r.etcd_prefix.len())?;
    let name = key.rsplit('/').next().unwrap_or_default();
    Some((r, name))
}

/// Finds a resource by kind (`"Deployment"`).
pub fn by_kind(kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The group/versions served, in discovery order: `("", "v1")`, `("apps", "v1")`,
/// `("coordination.k8s.io", "v1")`.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kubernetes_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(pods.prefix(None), "/registry/pods/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/minions/n1");
        let svc = by_kind("Service").unwrap();
        assert_eq!(svc.key(Some("a"), "b"), "/registry/services/specs/a/b");
        assert_eq!(
            find("apps", "v1", "deployments")
                .unwrap()
                .qualified_plural(),
            "deployments.apps"
        );
    }

    #[test]
    fn keys_parse_back_into_resource_and_name() {
        for (r, ns) in [
            ("Pod", Some("default")),
            ("Node", None),
            ("Service", Some("a")),
        ] {
            let r = by_kind(r).unwrap();
            let key = r.key(ns, "web-1");
            let (back, name) = parse_key(&key).unwrap();
            assert_eq!((back.kind, name), (r.kind, "web-1"));
        }
        // `services/endpoints` is not `services/specs`, nor a prefix match.
        let (ep, _) = parse_key("/registry/services/endpoints/default/web").unwrap();
        assert_eq!(ep.kind, "Endpoints");
        assert!(parse_key("/registry/podsx/default/web").is_none());
    }

    #[test]
    fn round_trip_drops_nulls_and_rejects_bad_types() {
        let d = by_kind("Deployment").unwrap();
        let v = d
            .round_trip(serde_json::json!({"metadata":{"name":"a","creationTimestamp":null},"spec":{"replicas":1}}))
            .unwrap();
        assert!(v["metadata"].get("creationTimestamp").is_none());
        assert_eq!(v["kind"], "Deployment");
        assert!(
            d.round_trip(serde_json::json!({"spec":{"replicas":"x"}}))
                .is_err()
        );
    }
}
