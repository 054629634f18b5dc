//! A container's environment: `env` and `envFrom`, resolved.
//!
//! The kubelet, not the API server, reads the ConfigMaps and Secrets a
//! container refers to, right before starting it. If a required one (or a
//! required key) is missing, the container cannot start and waits with
//! reason `CreateContainerConfigError`; the kubelet keeps retrying, so
//! creating the ConfigMap later fixes the pod without touching it.
//!
//! Order follows `makeEnvironmentVariables` (`kubelet_pods.go`): first every
//! `envFrom` source in order, then `env` in order; a later name overrides an
//! earlier one; a literal `value` may refer to the variables defined before
//! it as `$(NAME)` ([`super::expansion`]). Not done here: `resourceFieldRef`,
//! `fileKeyRef`, and the Event upstream emits for `envFrom` keys that are not
//! valid variable names (we skip them silently).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::expansion::{expand, lookup_in};

/// Why an environment could not be built; the message is the waiting
/// container's `message`, worded as upstream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("unsupported env source for {0} (only value, configMapKeyRef, secretKeyRef, fieldRef)")]
    UnsupportedSource(String),
}

impl EnvError {
    /// The waiting reason the container shows.
    pub const REASON: &'static str = "CreateContainerConfigError";
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    // `stringData` is folded into `data` by the API server; accept both.
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key)).cloned())
}

fn secret_pairs(s: &Secret) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = s.string_data.clone().unwrap_or_default();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out.into_iter().collect()
}

fn valid_env_name(name: &str) -> bool {
    // Kubernetes ≥ 1.32 accepts any printable ASCII except '='.
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The value of a `fieldRef` (the downward API).
fn field_value(pod: &Pod, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let labelled = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|k| map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    if let Some(v) = labelled("metadata.labels['", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = labelled("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(v);
    }
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => s(meta.name.as_ref()),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => s(meta.uid.as_ref()),
        "spec.nodeName" => s(spec.and_then(|sp| sp.node_name.as_ref())),
        "spec.serviceAccountName" => s(spec.and_then(|sp| sp.service_account_name.as_ref())),
        "status.hostIP" => s(status.and_then(|st| st.host_ip.as_ref())),
        "status.podIP" => s(status.and_then(|st| st.pod_ip.as_ref())),
        "status.podIPs" => status
            .and_then(|st| st.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|st| st.host_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        other => return Err(EnvError::UnsupportedFieldPath(other.to_string())),
    })
}

// ANCHOR: resolve_env
/// The environment of `container` in `pod`. `configmaps` and `secrets` are
/// the objects of the pod's namespace, by name (the caller fetches those
/// that [`referenced_objects`] lists). The caller passes the pod with
/// `status.podIP` and `status.hostIP` already filled in from the sandbox: the
/// kubelet knows the IP before it has written it to the API.
pub fn resolve_env(
    container: &Container,
    configmaps: &BTreeMap<String, ConfigMap>,
    secrets: &BTreeMap<String, Secret>,
    pod: &Pod,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    // Insertion order matters for the reader; a name set later wins.
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let pairs: Vec<(String, String)> = if let Some(r) = &from.config_map_ref {
            match configmaps.get(&r.name) {
                Some(cm) => cm.data.clone().unwrap_or_default().into_iter().collect(),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match secrets.get(&r.name) {
                Some(s) => secret_pairs(s),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            continue;
        };
        for (k, v) in pairs {
            let name = format!("{prefix}{k}");
            if valid_env_name(&name) {
                set(&mut env, name, v);
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            // Only literal values are expanded, from what is defined so far.
            None => expand(var.value.as_deref().unwrap_or_default(), lookup_in(&env)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match configmaps.get(&r.name) {
                        None if optional => continue,
                        None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(EnvError::ConfigMapKeyNotFound {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match secrets.get(&r.name) {
                        None if optional => continue,
                        None => return Err(EnvError::SecretNotFound(r.name.clone())),
                        Some(s) => match secret_value(s, &r.key) {
                            Some(v) => v,
                            None if optional => continue,
                            None => {
                                return Err(EnvError::SecretKeyNotFound {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path)?
                } else {
                    return Err(EnvError::UnsupportedSource(var.name.clone()));
                }
            }
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}
// ANCHOR_END: resolve_env

/// The ConfigMaps and Secrets (by name) that `container` refers to, so the
/// caller knows what to fetch before calling [`resolve_env`].
pub fn referenced_objects(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(from) = &var.value_from {
            if let Some(r) = &from.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (cms, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, PodStatus, SecretEnvSource, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("127.0.1.7".into()),
                ..Default::default()
            }),
        }
    }

    fn cms() -> BTreeMap<String, ConfigMap> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("settings".into()),
                ..Default::default()
            },
            data: Some(
                [
                    ("MODE".to_string(), "fast".to_string()),
                    ("COLOR".into(), "blue".into()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        [("settings".to_string(), cm)].into()
    }

    fn secrets() -> BTreeMap<String, Secret> {
        let s = Secret {
            data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()),
            ..Default::default()
        };
        [("db".to_string(), s)].into()
    }

    fn value(name: &str, v: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(v.into()),
            ..Default::default()
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(src),
            ..Default::default()
        }
    }

    fn cm_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }
    }

    fn container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> Container {
        Container {
            name: "app".into(),
            env: Some(env),
            env_from: Some(env_from),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_every_source_in_order() {
        let c = container(
            vec![
                value("GREETING", "hello"),
                from("DB_PASSWORD", secret_key("db", "password", None)),
                from("MODE_ONLY", cm_key("settings", "MODE", None)),
                from("POD_NAME", field("metadata.name")),
                from("POD_NAMESPACE", field("metadata.namespace")),
                from("POD_IP", field("status.podIP")),
                from("NODE_NAME", field("spec.nodeName")),
                value("CFG_COLOR", "red"), // overrides envFrom's
            ],
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "settings".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }],
        );
        let env = resolve_env(&c, &cms(), &secrets(), &pod()).unwrap();
        let want: Vec<(String, String)> = [
            ("CFG_COLOR", "red"),
            ("CFG_MODE", "fast"),
            ("GREETING", "hello"),
            ("DB_PASSWORD", "hunter2"),
            ("MODE_ONLY", "fast"),
            ("POD_NAME", "web-1"),
            ("POD_NAMESPACE", "shop"),
            ("POD_IP", "127.0.1.7"),
            ("NODE_NAME", "node-a"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    /// A literal value reads the variables defined before it; a later one,
    /// an undefined one, and values from other sources are not expanded.
    #[test]
    fn literal_values_expand_earlier_variables() {
        let c = container(
            vec![
                value("EARLY", "$(POD_IP)"), // POD_IP is not defined yet
                from("POD_IP", field("status.podIP")),
                value("DB_ADDR", "$(POD_IP):5432"),
                value("FROM_ENVFROM", "$(CFG_MODE)-$$(POD_IP)-$(NOPE)"),
                from("TAGGED", cm_key("settings", "MODE", None)),
            ],
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "settings".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }],
        );
        let env: BTreeMap<String, String> = resolve_env(&c, &cms(), &secrets(), &pod())
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["EARLY"], "$(POD_IP)");
        assert_eq!(env["DB_ADDR"], "127.0.1.7:5432");
        assert_eq!(env["FROM_ENVFROM"], "fast-$(POD_IP)-$(NOPE)");
        assert_eq!(env["TAGGED"], "fast");
    }

    #[test]
    fn errors_and_optional_sources() {
        let ns = || "shop".to_string();
        let table: Vec<(&str, Container, Result<usize, EnvError>)> = vec![
            (
                "missing configmap",
                container(vec![from("X", cm_key("nope", "k", None))], vec![]),
                Err(EnvError::ConfigMapNotFound("nope".into())),
            ),
            (
                "missing configmap key",
                container(vec![from("X", cm_key("settings", "k", None))], vec![]),
                Err(EnvError::ConfigMapKeyNotFound {
                    namespace: ns(),
                    name: "settings".into(),
                    key: "k".into(),
                }),
            ),
            (
                "optional configmap key",
                container(vec![from("X", cm_key("settings", "k", Some(true)))], vec![]),
                Ok(0),
            ),
            (
                "optional missing configmap",
                container(vec![from("X", cm_key("nope", "k", Some(true)))], vec![]),
                Ok(0),
            ),
            (
                "missing secret",
                container(vec![from("X", secret_key("nope", "k", None))], vec![]),
                Err(EnvError::SecretNotFound("nope".into())),
            ),
            (
                "missing secret key",
                container(vec![from("X", secret_key("db", "user", None))], vec![]),
                Err(EnvError::SecretKeyNotFound {
                    namespace: ns(),
                    name: "db".into(),
                    key: "user".into(),
                }),
            ),
            (
                "missing envFrom secret",
                container(
                    vec![],
                    vec![EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: "nope".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }],
                ),
                Err(EnvError::SecretNotFound("nope".into())),
            ),
            (
                "optional envFrom secret",
                container(
                    vec![],
                    vec![EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: "nope".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }],
                ),
                Ok(0),
            ),
            (
                "envFrom secret",
                container(
                    vec![],
                    vec![EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: "db".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }],
                ),
                Ok(1),
            ),
            (
                "unsupported field",
                container(vec![from("X", field("spec.hostname"))], vec![]),
                Err(EnvError::UnsupportedFieldPath("spec.hostname".into())),
            ),
        ];
        for (name, c, want) in table {
            let got = resolve_env(&c, &cms(), &secrets(), &pod()).map(|e| e.len());
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            EnvError::ConfigMapKeyNotFound {
                namespace: ns(),
                name: "settings".into(),
                key: "k".into()
            }
            .to_string(),
            "couldn't find key k in ConfigMap shop/settings"
        );
    }

    #[test]
    fn lists_references() {
        let c = container(
            vec![
                from("A", cm_key("a", "k", None)),
                from("B", secret_key("b", "k", None)),
            ],
            vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "c".into(),
                    optional: None,
                }),
                ..Default::default()
            }],
        );
        let (cms, secrets) = referenced_objects(&c);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["b"]);
    }
}
