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
//! ConfigMap, Secret (others → [`ProtobufError::UnsupportedKind`], 415).
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

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value, json};

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
        "the body of the request was in an unknown format - protobuf is supported here only for Deployment, ReplicaSet, Pod, Service, Namespace, ConfigMap and Secret (got {api_version} {kind}); send application/json"
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
        _ => return Err(ProtobufError::UnsupportedKind { api_version, kind }),
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

/// A small builder for JSON objects that knows Go's zero-value rules.
struct Obj(Map<String, Value>);

fn obj() -> Obj {
    Obj(Map::new())
}

impl Obj {
    fn build(self) -> Value {
        Value::Object(self.0)
    }
    fn put(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.to_string(), v);
        self
    }
    /// A non-pointer string: `""` means unset.
    fn str(self, key: &str, v: &Option<String>) -> Self {
        match v.as_deref() {
            Some(s) if !s.is_empty() => self.put(key, json!(s)),
            _ => self,
        }
    }
    /// A non-pointer number: `0` means unset.
    fn int(self, key: &str, v: Option<impl Into<i64>>) -> Self {
        match v.map(Into::into) {
            Some(n) if n != 0 => self.put(key, json!(n)),
            _ => self,
        }
    }
    /// A pointer number: present means set, even to `0`.
    fn opt_int(self, key: &str, v: Option<impl Into<i64>>) -> Self {
        match v {
            Some(n) => self.put(key, json!(n.into())),
            None => self,
        }
    }
    /// A non-pointer bool: `false` means unset.
    fn bool(self, key: &str, v: Option<bool>) -> Self {
        if v == Some(true) {
            self.put(key, json!(true))
        } else {
            self
        }
    }
    /// A pointer bool: present means set, even to `false`.
    fn opt_bool(self, key: &str, v: Option<bool>) -> Self {
        match v {
            Some(b) => self.put(key, json!(b)),
            None => self,
        }
    }
    fn val(self, key: &str, v: Option<Value>) -> Self {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
    fn strs(self, key: &str, v: &[String]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, json!(v))
        }
    }
    fn list(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::Array(v))
        }
    }
    fn map(self, key: &str, v: &BTreeMap<String, String>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, json!(v))
        }
    }
}

fn base64_map(m: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                base64::engine::general_purpose::STANDARD.encode(v),
            )
        })
        .collect()
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) as Unix seconds.
const GO_ZERO_TIME: i64 = -62_135_596_800;

fn time(t: &meta::Time) -> Option<Value> {
    let secs = t.seconds.unwrap_or(GO_ZERO_TIME);
    if secs <= GO_ZERO_TIME {
        return None;
    }
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).ok()?;
    Some(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn object_meta(m: &meta::ObjectMeta) -> Value {
    let owners = m
        .owner_references
        .iter()
        .map(|o| {
            obj()
                .str("apiVersion", &o.api_version)
                .str("kind", &o.kind)
                .str("name", &o.name)
                .str("uid", &o.uid)
                .opt_bool("controller", o.controller)
                .opt_bool("blockOwnerDeletion", o.block_owner_deletion)
                .build()
        })
        .collect();
    obj()
        .str("name", &m.name)
        .str("generateName", &m.generate_name)
        .str("namespace", &m.namespace)
        .str("uid", &m.uid)
        .str("resourceVersion", &m.resource_version)
        .int("generation", m.generation)
        .val(
            "creationTimestamp",
            m.creation_timestamp.as_ref().and_then(time),
        )
        .map("labels", &m.labels)
        .map("annotations", &m.annotations)
        .list("ownerReferences", owners)
        .strs("finalizers", &m.finalizers)
        .build()
}

fn label_selector(s: &meta::LabelSelector) -> Value {
    let exprs = s
        .match_expressions
        .iter()
        .map(|e| {
            obj()
                .str("key", &e.key)
                .str("operator", &e.operator)
                .strs("values", &e.values)
                .build()
        })
        .collect();
    obj()
        .map("matchLabels", &s.match_labels)
        .list("matchExpressions", exprs)
        .build()
}

fn int_or_string(v: &IntOrString) -> Value {
    if v.r#type == Some(1) {
        json!(v.str_val.clone().unwrap_or_default())
    } else {
        json!(v.int_val.unwrap_or(0))
    }
}

fn deployment_spec(s: &apps::DeploymentSpec) -> Value {
    let strategy = s.strategy.as_ref().map(|st| {
        let rolling = st.rolling_update.as_ref().map(|r| {
            obj()
                .val(
                    "maxUnavailable",
                    r.max_unavailable.as_ref().map(int_or_string),
                )
                .val("maxSurge", r.max_surge.as_ref().map(int_or_string))
                .build()
        });
        obj()
            .str("type", &st.r#type)
            .val("rollingUpdate", rolling)
            .build()
    });
    obj()
        .opt_int("replicas", s.replicas)
        .val("selector", s.selector.as_ref().map(label_selector))
        .val("template", s.template.as_ref().map(pod_template_spec))
        .val("strategy", strategy)
        .int("minReadySeconds", s.min_ready_seconds)
        .opt_int("revisionHistoryLimit", s.revision_history_limit)
        .bool("paused", s.paused)
        .opt_int("progressDeadlineSeconds", s.progress_deadline_seconds)
        .build()
}

fn replica_set_spec(s: &apps::ReplicaSetSpec) -> Value {
    obj()
        .opt_int("replicas", s.replicas)
        .int("minReadySeconds", s.min_ready_seconds)
        .val("selector", s.selector.as_ref().map(label_selector))
        .val("template", s.template.as_ref().map(pod_template_spec))
        .build()
}

fn pod_template_spec(t: &core::PodTemplateSpec) -> Value {
    obj()
        .val("metadata", t.metadata.as_ref().map(object_meta))
        .val("spec", t.spec.as_ref().map(pod_spec))
        .build()
}

fn local_ref(r: &core::LocalObjectReference) -> Value {
    obj().str("name", &r.name).build()
}

fn pod_spec(s: &core::PodSpec) -> Value {
    let security = s.security_context.as_ref().map(|c| {
        obj()
            .opt_int("runAsUser", c.run_as_user)
            .opt_int("runAsGroup", c.run_as_group)
            .opt_bool("runAsNonRoot", c.run_as_non_root)
            .opt_int("fsGroup", c.fs_group)
            .build()
    });
    let tolerations = s
        .tolerations
        .iter()
        .map(|t| {
            obj()
                .str("key", &t.key)
                .str("operator", &t.operator)
                .str("value", &t.value)
                .str("effect", &t.effect)
                .opt_int("tolerationSeconds", t.toleration_seconds)
                .build()
        })
        .collect();
    obj()
        .list("volumes", s.volumes.iter().map(volume).collect())
        .list(
            "initContainers",
            s.init_containers.iter().map(container).collect(),
        )
        .list("containers", s.containers.iter().map(container).collect())
        .str("restartPolicy", &s.restart_policy)
        .opt_int(
            "terminationGracePeriodSeconds",
            s.termination_grace_period_seconds,
        )
        .opt_int("activeDeadlineSeconds", s.active_deadline_seconds)
        .str("dnsPolicy", &s.dns_policy)
        .map("nodeSelector", &s.node_selector)
        .str("serviceAccountName", &s.service_account_name)
        .str("serviceAccount", &s.service_account)
        .opt_bool(
            "automountServiceAccountToken",
            s.automount_service_account_token,
        )
        .str("nodeName", &s.node_name)
        .bool("hostNetwork", s.host_network)
        .val("securityContext", security)
        .list(
            "imagePullSecrets",
            s.image_pull_secrets.iter().map(local_ref).collect(),
        )
        .str("hostname", &s.hostname)
        .str("subdomain", &s.subdomain)
        .str("schedulerName", &s.scheduler_name)
        .list("tolerations", tolerations)
        .str("priorityClassName", &s.priority_class_name)
        .opt_bool("enableServiceLinks", s.enable_service_links)
        .build()
}

fn volume(v: &core::Volume) -> Value {
    let mut o = obj().str("name", &v.name);
    if let Some(src) = &v.volume_source {
        let items = |items: &[core::KeyToPath]| -> Vec<Value> {
            items
                .iter()
                .map(|i| {
                    obj()
                        .str("key", &i.key)
                        .str("path", &i.path)
                        .opt_int("mode", i.mode)
                        .build()
                })
                .collect()
        };
        if let Some(e) = &src.empty_dir {
            let size = e.size_limit.as_ref().and_then(|q| q.string.clone());
            o = o.put(
                "emptyDir",
                obj()
                    .str("medium", &e.medium)
                    .str("sizeLimit", &size)
                    .build(),
            );
        }
        if let Some(h) = &src.host_path {
            // `type` is a pointer in Go: "" is a real value (no check).
            let ty = h.r#type.as_ref().map(|t| json!(t));
            o = o.put(
                "hostPath",
                obj().str("path", &h.path).val("type", ty).build(),
            );
        }
        if let Some(c) = &src.config_map {
            let name = c
                .local_object_reference
                .as_ref()
                .and_then(|r| r.name.clone());
            o = o.put(
                "configMap",
                obj()
                    .str("name", &name)
                    .list("items", items(&c.items))
                    .opt_int("defaultMode", c.default_mode)
                    .opt_bool("optional", c.optional)
                    .build(),
            );
        }
        if let Some(s) = &src.secret {
            o = o.put(
                "secret",
                obj()
                    .str("secretName", &s.secret_name)
                    .list("items", items(&s.items))
                    .opt_int("defaultMode", s.default_mode)
                    .opt_bool("optional", s.optional)
                    .build(),
            );
        }
        if let Some(p) = &src.persistent_volume_claim {
            o = o.put(
                "persistentVolumeClaim",
                obj()
                    .str("claimName", &p.claim_name)
                    .bool("readOnly", p.read_only)
                    .build(),
            );
        }
    }
    o.build()
}

fn quantities(
    m: &BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>,
) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, q)| (k.clone(), q.string.clone().unwrap_or_default()))
        .collect()
}

fn probe(p: &core::Probe) -> Value {
    let mut o = obj();
    if let Some(h) = &p.handler {
        if let Some(e) = &h.exec {
            o = o.put("exec", obj().strs("command", &e.command).build());
        }
        if let Some(g) = &h.http_get {
            o = o.put(
                "httpGet",
                obj()
                    .str("path", &g.path)
                    .val("port", g.port.as_ref().map(int_or_string))
                    .str("host", &g.host)
                    .str("scheme", &g.scheme)
                    .build(),
            );
        }
        if let Some(t) = &h.tcp_socket {
            o = o.put(
                "tcpSocket",
                obj()
                    .val("port", t.port.as_ref().map(int_or_string))
                    .str("host", &t.host)
                    .build(),
            );
        }
    }
    o.int("initialDelaySeconds", p.initial_delay_seconds)
        .int("timeoutSeconds", p.timeout_seconds)
        .int("periodSeconds", p.period_seconds)
        .int("successThreshold", p.success_threshold)
        .int("failureThreshold", p.failure_threshold)
        .opt_int(
            "terminationGracePeriodSeconds",
            p.termination_grace_period_seconds,
        )
        .build()
}

fn container(c: &core::Container) -> Value {
    let ports = c
        .ports
        .iter()
        .map(|p| {
            obj()
                .str("name", &p.name)
                .int("hostPort", p.host_port)
                .int("containerPort", p.container_port)
                .str("protocol", &p.protocol)
                .str("hostIP", &p.host_ip)
                .build()
        })
        .collect();
    let env = c
        .env
        .iter()
        .map(|e| {
            let value_from = e.value_from.as_ref().map(|v| {
                let key_ref = |r: &Option<core::LocalObjectReference>,
                               key: &Option<String>,
                               optional: Option<bool>| {
                    let name = r.as_ref().and_then(|r| r.name.clone());
                    obj()
                        .str("name", &name)
                        .str("key", key)
                        .opt_bool("optional", optional)
                        .build()
                };
                obj()
                    .val(
                        "fieldRef",
                        v.field_ref.as_ref().map(|f| {
                            obj()
                                .str("apiVersion", &f.api_version)
                                .str("fieldPath", &f.field_path)
                                .build()
                        }),
                    )
                    .val(
                        "configMapKeyRef",
                        v.config_map_key_ref
                            .as_ref()
                            .map(|r| key_ref(&r.local_object_reference, &r.key, r.optional)),
                    )
                    .val(
                        "secretKeyRef",
                        v.secret_key_ref
                            .as_ref()
                            .map(|r| key_ref(&r.local_object_reference, &r.key, r.optional)),
                    )
                    .build()
            });
            obj()
                .str("name", &e.name)
                .str("value", &e.value)
                .val("valueFrom", value_from)
                .build()
        })
        .collect();
    let env_from = c
        .env_from
        .iter()
        .map(|e| {
            let cm = e.config_map_ref.as_ref().map(|r| {
                let name = r
                    .local_object_reference
                    .as_ref()
                    .and_then(|l| l.name.clone());
                obj()
                    .str("name", &name)
                    .opt_bool("optional", r.optional)
                    .build()
            });
            let secret = e.secret_ref.as_ref().map(|r| {
                let name = r
                    .local_object_reference
                    .as_ref()
                    .and_then(|l| l.name.clone());
                obj()
                    .str("name", &name)
                    .opt_bool("optional", r.optional)
                    .build()
            });
            obj()
                .str("prefix", &e.prefix)
                .val("configMapRef", cm)
                .val("secretRef", secret)
                .build()
        })
        .collect();
    // `resources` is a struct in Go, so JSON always has it (`{}` when empty).
    let resources = c.resources.as_ref().map(|r| {
        obj()
            .map("limits", &quantities(&r.limits))
            .map("requests", &quantities(&r.requests))
            .build()
    });
    let mounts = c
        .volume_mounts
        .iter()
        .map(|m| {
            obj()
                .str("name", &m.name)
                .bool("readOnly", m.read_only)
                .str("mountPath", &m.mount_path)
                .str("subPath", &m.sub_path)
                .build()
        })
        .collect();
    let security = c.security_context.as_ref().map(|s| {
        obj()
            .opt_bool("privileged", s.privileged)
            .opt_int("runAsUser", s.run_as_user)
            .opt_int("runAsGroup", s.run_as_group)
            .opt_bool("runAsNonRoot", s.run_as_non_root)
            .opt_bool("readOnlyRootFilesystem", s.read_only_root_filesystem)
            .opt_bool("allowPrivilegeEscalation", s.allow_privilege_escalation)
            .build()
    });
    obj()
        .str("name", &c.name)
        .str("image", &c.image)
        .strs("command", &c.command)
        .strs("args", &c.args)
        .str("workingDir", &c.working_dir)
        .list("ports", ports)
        .list("envFrom", env_from)
        .list("env", env)
        .val("resources", resources)
        .str("restartPolicy", &c.restart_policy)
        .list("volumeMounts", mounts)
        .val("livenessProbe", c.liveness_probe.as_ref().map(probe))
        .val("readinessProbe", c.readiness_probe.as_ref().map(probe))
        .val("startupProbe", c.startup_probe.as_ref().map(probe))
        .str("terminationMessagePath", &c.termination_message_path)
        .str("terminationMessagePolicy", &c.termination_message_policy)
        .str("imagePullPolicy", &c.image_pull_policy)
        .val("securityContext", security)
        .bool("stdin", c.stdin)
        .bool("stdinOnce", c.stdin_once)
        .bool("tty", c.tty)
        .build()
}

fn service_spec(s: &core::ServiceSpec) -> Value {
    let ports = s
        .ports
        .iter()
        .map(|p| {
            obj()
                .str("name", &p.name)
                .str("protocol", &p.protocol)
                .str("appProtocol", &p.app_protocol)
                .int("port", p.port)
                .val("targetPort", p.target_port.as_ref().map(int_or_string))
                .int("nodePort", p.node_port)
                .build()
        })
        .collect();
    obj()
        .list("ports", ports)
        .map("selector", &s.selector)
        .str("clusterIP", &s.cluster_ip)
        .strs("clusterIPs", &s.cluster_ips)
        .str("type", &s.r#type)
        .strs("externalIPs", &s.external_ips)
        .str("sessionAffinity", &s.session_affinity)
        .str("externalName", &s.external_name)
        .str("externalTrafficPolicy", &s.external_traffic_policy)
        .bool("publishNotReadyAddresses", s.publish_not_ready_addresses)
        .strs("ipFamilies", &s.ip_families)
        .str("ipFamilyPolicy", &s.ip_family_policy)
        .str("internalTrafficPolicy", &s.internal_traffic_policy)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;

    /// Go's encoder writes every non-pointer field, zero or not; this is
    /// the ObjectMeta kubectl sends for `metadata: {name, labels}`.
    fn go_meta(name: &str, labels: &[(&str, &str)]) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time {
                seconds: Some(GO_ZERO_TIME),
                nanos: Some(0),
            }),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn go_container(name: &str, image: &str) -> core::Container {
        core::Container {
            name: Some(name.into()),
            image: Some(image.into()),
            working_dir: Some(String::new()),
            resources: Some(Default::default()),
            termination_message_path: Some(String::new()),
            termination_message_policy: Some(String::new()),
            image_pull_policy: Some(String::new()),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            ..Default::default()
        }
    }

    fn go_pod_spec(containers: Vec<core::Container>) -> core::PodSpec {
        core::PodSpec {
            containers,
            restart_policy: Some(String::new()),
            dns_policy: Some(String::new()),
            service_account_name: Some(String::new()),
            node_name: Some(String::new()),
            host_network: Some(false),
            scheduler_name: Some(String::new()),
            ..Default::default()
        }
    }

    #[test]
    fn kubectl_create_deployment() {
        // `kubectl create deployment api --image=app:v1 --replicas=2`
        let d = apps::Deployment {
            metadata: Some(go_meta("api", &[("app", "api")])),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(2),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "api".to_string())].into(),
                    match_expressions: vec![],
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(go_meta("", &[("app", "api")])),
                    spec: Some(go_pod_spec(vec![go_container("app", "app:v1")])),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some(String::new()),
                    rolling_update: None,
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        let json = decode(&encode("apps/v1", "Deployment", &d)).unwrap();
        // The JSON body kubectl 1.31 sends for the same command, minus
        // `creationTimestamp: null` and `status: {}`.
        assert_eq!(
            json,
            json!({"kind":"Deployment","apiVersion":"apps/v1",
                "metadata":{"name":"api","labels":{"app":"api"}},
                "spec":{"replicas":2,"selector":{"matchLabels":{"app":"api"}},
                    "template":{"metadata":{"labels":{"app":"api"}},
                        "spec":{"containers":[{"name":"app","image":"app:v1","resources":{}}]}},
                    "strategy":{}}})
        );
        // And it round-trips into k8s-openapi's type.
        let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json).unwrap();
        assert_eq!(typed.spec.unwrap().replicas, Some(2));
    }

    #[test]
    fn pointer_zeros_are_kept() {
        let d = apps::Deployment {
            metadata: Some(go_meta("zero", &[])),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                revision_history_limit: Some(0),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(0),
                            str_val: Some(String::new()),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("50%".into()),
                        }),
                    }),
                }),
                paused: Some(true),
                ..Default::default()
            }),
            status: None,
        };
        let json = decode(&encode("apps/v1", "Deployment", &d)).unwrap();
        assert_eq!(
            json["spec"],
            json!({"replicas":0,"revisionHistoryLimit":0,"paused":true,
                "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0,"maxSurge":"50%"}}})
        );
    }

    #[test]
    fn kubectl_run() {
        // `kubectl run web --image=app:v1 --port=8080 --env=MODE=prod --labels=run=web -- --verbose`
        let mut c = go_container("web", "app:v1");
        c.args = vec!["--verbose".into()];
        c.ports = vec![core::ContainerPort {
            name: Some(String::new()),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: Some(String::new()),
            host_ip: Some(String::new()),
        }];
        c.env = vec![
            core::EnvVar {
                name: Some("MODE".into()),
                value: Some("prod".into()),
                value_from: None,
            },
            core::EnvVar {
                name: Some("POD".into()),
                value: Some(String::new()),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: Some("metadata.name".into()),
                    }),
                    ..Default::default()
                }),
            },
        ];
        c.resources = Some(core::ResourceRequirements {
            limits: [(
                "cpu".to_string(),
                Quantity {
                    string: Some("500m".into()),
                },
            )]
            .into(),
            ..Default::default()
        });
        c.readiness_probe = Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: Some("/healthz".into()),
                    port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(0),
            ..Default::default()
        });
        let mut spec = go_pod_spec(vec![c]);
        spec.restart_policy = Some("Always".into());
        spec.dns_policy = Some("ClusterFirst".into());
        spec.termination_grace_period_seconds = Some(0);
        spec.volumes = vec![core::Volume {
            name: Some("cfg".into()),
            volume_source: Some(core::VolumeSource {
                config_map: Some(core::ConfigMapVolumeSource {
                    local_object_reference: Some(core::LocalObjectReference {
                        name: Some("app".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }];
        let pod = core::Pod {
            metadata: Some(go_meta("web", &[("run", "web")])),
            spec: Some(spec),
            status: Some(Default::default()),
        };
        let json = decode(&encode("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            json,
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"run":"web"}},
                "spec":{
                    "volumes":[{"name":"cfg","configMap":{"name":"app"}}],
                    "containers":[{"name":"web","image":"app:v1","args":["--verbose"],
                        "ports":[{"containerPort":8080}],
                        "env":[{"name":"MODE","value":"prod"},
                               {"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],
                        "resources":{"limits":{"cpu":"500m"}},
                        "readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":5}}],
                    "restartPolicy":"Always","dnsPolicy":"ClusterFirst","terminationGracePeriodSeconds":0}})
        );
        let _: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json).unwrap();
    }

    #[test]
    fn services_namespaces_configmaps_secrets() {
        // `kubectl create service clusterip web --tcp=80:8080`
        let svc = core::Service {
            metadata: Some(go_meta("web", &[("app", "web")])),
            spec: Some(core::ServiceSpec {
                ports: vec![core::ServicePort {
                    name: Some("80-8080".into()),
                    protocol: Some("TCP".into()),
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    node_port: Some(0),
                    ..Default::default()
                }],
                selector: [("app".to_string(), "web".to_string())].into(),
                cluster_ip: Some(String::new()),
                r#type: Some("ClusterIP".into()),
                session_affinity: Some(String::new()),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        assert_eq!(
            decode(&encode("v1", "Service", &svc)).unwrap(),
            json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","labels":{"app":"web"}},
                "spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080}],
                    "selector":{"app":"web"},"type":"ClusterIP"}})
        );
        let ns = core::Namespace {
            metadata: Some(go_meta("dev", &[])),
            spec: Some(Default::default()),
            status: Some(Default::default()),
        };
        assert_eq!(
            decode(&encode("v1", "Namespace", &ns)).unwrap(),
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"},"spec":{}})
        );
        let cm = core::ConfigMap {
            metadata: Some(go_meta("cfg", &[])),
            immutable: None,
            data: [("a".to_string(), "1".to_string())].into(),
            binary_data: [("b".to_string(), vec![0u8, 1, 2])].into(),
        };
        assert_eq!(
            decode(&encode("v1", "ConfigMap", &cm)).unwrap(),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"1"},"binaryData":{"b":"AAEC"}})
        );
        let secret = core::Secret {
            metadata: Some(go_meta("db", &[])),
            immutable: None,
            data: [("password".to_string(), b"s3cret".to_vec())].into(),
            string_data: Default::default(),
            r#type: Some("Opaque".into()),
        };
        assert_eq!(
            decode(&encode("v1", "Secret", &secret)).unwrap(),
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"czNjcmV0"},"type":"Opaque"})
        );
    }

    #[test]
    fn metadata_details() {
        let mut m = go_meta("web-abc", &[("app", "web")]);
        m.namespace = Some("default".into());
        m.creation_timestamp = Some(meta::Time {
            seconds: Some(1_767_268_800),
            nanos: Some(0),
        });
        m.owner_references = vec![meta::OwnerReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("web".into()),
            uid: Some("u1".into()),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }];
        m.annotations = [("a".to_string(), "b".to_string())].into();
        m.finalizers = vec!["f".into()];
        let rs = apps::ReplicaSet {
            metadata: Some(m),
            spec: Some(Default::default()),
            status: None,
        };
        assert_eq!(
            decode(&encode("apps/v1", "ReplicaSet", &rs)).unwrap()["metadata"],
            json!({"name":"web-abc","namespace":"default","creationTimestamp":"2026-01-01T12:00:00Z",
                "labels":{"app":"web"},"annotations":{"a":"b"},"finalizers":["f"],
                "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"u1","controller":true,"blockOwnerDeletion":true}]})
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode(b"{\"kind\":\"Pod\"}").unwrap_err(),
            ProtobufError::NotProtobuf
        );
        assert_eq!(ProtobufError::NotProtobuf.status_code(), 400);
        let err = decode(b"k8s\0\xff\xff\xff").unwrap_err();
        assert!(matches!(err, ProtobufError::Decode(_)), "{err:?}");
        assert_eq!(err.status_code(), 400);
        let job = encode("batch/v1", "Job", &core::Namespace::default());
        let err = decode(&job).unwrap_err();
        assert_eq!(
            err,
            ProtobufError::UnsupportedKind {
                api_version: "batch/v1".into(),
                kind: "Job".into()
            }
        );
        assert_eq!(err.status_code(), 415);
        // A valid envelope around a broken object.
        let mut body = encode("v1", "Pod", &core::Pod::default());
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
            }),
            raw: Some(vec![0x0a, 0x05, 0x01]),
            ..Default::default()
        };
        body.truncate(4);
        body.extend(unknown.encode_to_vec());
        assert!(matches!(decode(&body), Err(ProtobufError::Decode(_))));
        // An empty Pod decodes to the bare type and an empty metadata.
        let empty = decode(&encode("v1", "Pod", &core::Pod::default())).unwrap();
        assert_eq!(empty, json!({"apiVersion":"v1","kind":"Pod","metadata":{}}));
    }

    proptest::proptest! {
        /// Random bytes after the magic never panic the decoder.
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode(&body);
            let mut framed = MAGIC.to_vec();
            framed.extend(&body);
            let _ = decode(&framed);
        }
    }
}
