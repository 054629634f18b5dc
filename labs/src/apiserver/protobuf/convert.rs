//! The message types kubectl sends, translated field by field into the
//! JSON of the same object, with Go's zero-value rules (see the module
//! above for the subset and the rules).
//!
//! Upstream: the generated `generated.pb.go` of `k8s.io/api/{core,apps}/v1`
//! and `k8s.io/apimachinery/pkg/apis/meta/v1`, read the other way.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

/// A small builder for JSON objects that knows Go's zero-value rules.
pub(super) struct Obj(pub(super) Map<String, Value>);

pub(super) fn obj() -> Obj {
    Obj(Map::new())
}

impl Obj {
    pub(super) fn build(self) -> Value {
        Value::Object(self.0)
    }
    pub(super) fn put(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.to_string(), v);
        self
    }
    /// A non-pointer string: `""` means unset.
    pub(super) fn str(self, key: &str, v: &Option<String>) -> Self {
        match v.as_deref() {
            Some(s) if !s.is_empty() => self.put(key, json!(s)),
            _ => self,
        }
    }
    /// A non-pointer number: `0` means unset.
    pub(super) fn int(self, key: &str, v: Option<impl Into<i64>>) -> Self {
        match v.map(Into::into) {
            Some(n) if n != 0 => self.put(key, json!(n)),
            _ => self,
        }
    }
    /// A pointer number: present means set, even to `0`.
    pub(super) fn opt_int(self, key: &str, v: Option<impl Into<i64>>) -> Self {
        match v {
            Some(n) => self.put(key, json!(n.into())),
            None => self,
        }
    }
    /// A non-pointer bool: `false` means unset.
    pub(super) fn bool(self, key: &str, v: Option<bool>) -> Self {
        if v == Some(true) {
            self.put(key, json!(true))
        } else {
            self
        }
    }
    /// A pointer bool: present means set, even to `false`.
    pub(super) fn opt_bool(self, key: &str, v: Option<bool>) -> Self {
        match v {
            Some(b) => self.put(key, json!(b)),
            None => self,
        }
    }
    pub(super) fn val(self, key: &str, v: Option<Value>) -> Self {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
    pub(super) fn strs(self, key: &str, v: &[String]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, json!(v))
        }
    }
    pub(super) fn list(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::Array(v))
        }
    }
    pub(super) fn map(self, key: &str, v: &BTreeMap<String, String>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, json!(v))
        }
    }
}

pub(super) fn base64_map(m: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
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
pub(super) const GO_ZERO_TIME: i64 = -62_135_596_800;

fn time(t: &meta::Time) -> Option<Value> {
    let secs = t.seconds.unwrap_or(GO_ZERO_TIME);
    if secs <= GO_ZERO_TIME {
        return None;
    }
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).ok()?;
    Some(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

pub(super) fn object_meta(m: &meta::ObjectMeta) -> Value {
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

pub(super) fn label_selector(s: &meta::LabelSelector) -> Value {
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

pub(super) fn int_or_string(v: &IntOrString) -> Value {
    if v.r#type == Some(1) {
        json!(v.str_val.clone().unwrap_or_default())
    } else {
        json!(v.int_val.unwrap_or(0))
    }
}

pub(super) fn deployment_spec(s: &apps::DeploymentSpec) -> Value {
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

pub(super) fn replica_set_spec(s: &apps::ReplicaSetSpec) -> Value {
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

pub(super) fn local_ref(r: &core::LocalObjectReference) -> Value {
    obj().str("name", &r.name).build()
}

pub(super) fn pod_spec(s: &core::PodSpec) -> Value {
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

pub(super) fn service_spec(s: &core::ServiceSpec) -> Value {
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
