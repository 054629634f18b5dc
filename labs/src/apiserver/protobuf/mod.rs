//! Decoding the protobuf request bodies that kubectl ≥ 1.32 sends.
//!
//! Kubernetes speaks two wire formats: JSON (what everyone reads) and
//! protobuf (smaller and faster, used between the cluster's own
//! components). Since 1.32, kubectl's typed clients *send* protobuf too, so
//! `kubectl create deployment`, `kubectl run`, `kubectl create service`,
//! `create namespace/configmap/secret` arrive as
//! `Content-Type: application/vnd.kubernetes.protobuf` — and kubectl does not
//! retry with JSON if the server refuses. Our server stores JSON, so it
//! translates the few message types those commands send into the JSON the
//! same command would have sent with kubectl ≤ 1.31.
//!
//! The envelope: 4 magic bytes `k8s\0`, then a `runtime.Unknown` message
//! whose `typeMeta` names the kind and whose `raw` holds the object's own
//! protobuf encoding. The message types come from the `k8s-pb` crate
//! (prost). k8s-pb has no serde support and no conversion to k8s-openapi, so
//! the conversions below are written by hand, field by field, with
//! k8s-openapi's (= the JSON API's) field names.
//!
//! **The subset.** Kinds: Deployment, ReplicaSet, Pod, Service, Namespace,
//! ConfigMap, Secret, HorizontalPodAutoscaler, and (in [`policy`]) PodDisruptionBudget, Eviction,
//! ServiceAccount and the authentication/authorization reviews (others → [`ProtobufError::UnsupportedKind`], 415).
//! Fields: all of `metadata` that a client may set (name, generateName,
//! namespace, labels, annotations, ownerReferences, finalizers); Deployment
//! and ReplicaSet `spec`; the pod spec's containers (name, image, command,
//! args, workingDir, ports, env incl. `valueFrom` field/configMap/secret refs,
//! envFrom, resources, volumeMounts, probes, pull policy, stdin/tty, basic
//! securityContext), init containers, volumes (emptyDir, hostPath, configMap,
//! secret, persistentVolumeClaim), restart and DNS policies, grace period,
//! nodeName, nodeSelector, serviceAccountName, hostNetwork, imagePullSecrets,
//! tolerations, schedulerName, enableServiceLinks; Service ports, selector,
//! type, clusterIP(s), externalName, externalIPs, sessionAffinity; ConfigMap
//! and Secret data. `status` is ignored (the server ignores it on create
//! anyway). Fields outside the subset (affinity, topology spread, lifecycle
//! hooks, ...) are dropped silently — kubectl's generators never set them;
//! only `kubectl run --overrides` could.
//!
//! **Zero values.** Go's protobuf encoder writes every non-pointer field,
//! zero or not, while Go's JSON encoder omits zero values of `omitempty`
//! fields. So an empty string, a `0` or a `false` in a non-pointer field
//! means "not set" and is dropped; for pointer fields (`replicas`,
//! `terminationGracePeriodSeconds`, `enableServiceLinks`, ...) a zero is a
//! real value and is kept. A zero `metav1.Time` is encoded as the Unix time
//! of 0001-01-01 and is dropped too.

//!
//! This file holds the envelope ([`decode`], [`encode`]); [`convert`]
//! translates each message type to JSON. Upstream:
//! `k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go` (the
//! envelope) and the generated `generated.pb.go` of each API group.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use prost::Message;
use serde_json::{Map, Value, json};

mod autoscaling;
mod convert;
mod policy;

use convert::{
    base64_map, deployment_spec, obj, object_meta, pod_spec, replica_set_spec, service_spec,
};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be turned into JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`. → 400 BadRequest.
    #[error(
        "the body of the request is not a Kubernetes protobuf message (missing the k8s\\0 prefix)"
    )]
    NotProtobuf,
    /// The envelope or the object does not decode. → 400 BadRequest.
    #[error("unable to decode the protobuf body: {0}")]
    Decode(String),
    /// A kind this server does not decode from protobuf. → 415
    /// UnsupportedMediaType, so the message tells the user to send JSON.
    #[error(
        "the body of the request was in an unknown format - protobuf is supported here only for Deployment, ReplicaSet, Pod, Service, Namespace, ConfigMap, Secret, HorizontalPodAutoscaler, PodDisruptionBudget, Eviction, ServiceAccount and the auth reviews (got {api_version} {kind}); send application/json"
    )]
    UnsupportedKind { api_version: String, kind: String },
}

impl ProtobufError {
    /// The HTTP status the API server answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            ProtobufError::UnsupportedKind { .. } => 415,
            _ => 400,
        }
    }
}

/// Decodes a `k8s\0` + `runtime.Unknown` body into the equivalent JSON
/// object, with `apiVersion` and `kind` set from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NotProtobuf)?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest)
        .map_err(|e| ProtobufError::Decode(e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let d = |e: prost::DecodeError| ProtobufError::Decode(e.to_string());
    let (metadata, mut rest) = match (api_version.as_str(), kind.as_str()) {
        ("apps/v1", "Deployment") => {
            let o = apps::Deployment::decode(raw.as_slice()).map_err(d)?;
            (
                o.metadata,
                obj().val("spec", o.spec.as_ref().map(deployment_spec)),
            )
        }
        ("apps/v1", "ReplicaSet") => {
            let o = apps::ReplicaSet::decode(raw.as_slice()).map_err(d)?;
            (
                o.metadata,
                obj().val("spec", o.spec.as_ref().map(replica_set_spec)),
            )
        }
        ("v1", "Pod") => {
            let o = core::Pod::decode(raw.as_slice()).map_err(d)?;
            (o.metadata, obj().val("spec", o.spec.as_ref().map(pod_spec)))
        }
        ("v1", "Service") => {
            let o = core::Service::decode(raw.as_slice()).map_err(d)?;
            (
                o.metadata,
                obj().val("spec", o.spec.as_ref().map(service_spec)),
            )
        }
        ("v1", "Namespace") => {
            let o = core::Namespace::decode(raw.as_slice()).map_err(d)?;
            let spec = o
                .spec
                .as_ref()
                .map(|s| obj().strs("finalizers", &s.finalizers).build());
            (o.metadata, obj().val("spec", spec))
        }
        ("v1", "ConfigMap") => {
            let o = core::ConfigMap::decode(raw.as_slice()).map_err(d)?;
            let rest = obj()
                .opt_bool("immutable", o.immutable)
                .map("data", &o.data)
                .map("binaryData", &base64_map(&o.binary_data));
            (o.metadata, rest)
        }
        ("v1", "Secret") => {
            let o = core::Secret::decode(raw.as_slice()).map_err(d)?;
            let rest = obj()
                .opt_bool("immutable", o.immutable)
                .map("data", &base64_map(&o.data))
                .map("stringData", &o.string_data)
                .str("type", &o.r#type);
            (o.metadata, rest)
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            let o = k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler::decode(raw.as_slice())
                .map_err(d)?;
            let spec = o.spec.as_ref().map(autoscaling::hpa_v2_spec);
            (o.metadata, obj().val("spec", spec))
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => {
            let o = k8s_pb::api::autoscaling::v1::HorizontalPodAutoscaler::decode(raw.as_slice())
                .map_err(d)?;
            let spec = o.spec.as_ref().map(autoscaling::hpa_v1_spec);
            (o.metadata, obj().val("spec", spec))
        }
        (av, k) => match policy::decode(av, k, raw.as_slice()) {
            Some(decoded) => decoded?,
            None => return Err(ProtobufError::UnsupportedKind { api_version, kind }),
        },
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    out.insert(
        "metadata".into(),
        metadata.as_ref().map_or_else(|| json!({}), object_meta),
    );
    out.append(&mut rest.0);
    Ok(Value::Object(out))
}

/// Encodes a k8s-pb object in the `k8s\0` envelope, as client-go does.
/// The server never needs this; tests (and curious readers) use it to
/// produce the bodies kubectl sends.
pub fn encode<M: Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

#[cfg(test)]
mod tests;
