//! The Kubernetes objects of the talk's app on GKE, built as typed
//! k8s-openapi values and written out as one multi-document YAML.
//!
//! Why typed objects and not a YAML template: a misspelt field
//! (`restartpolicy`) is a compile error instead of a field the API server
//! silently drops, and the values (the instance connection name, the
//! service account) come from one [`GkeParams`] that the `gcloud` commands
//! use too, so the two halves cannot disagree.
//!
//! The objects, in the order they must be applied:
//!
//! 1. the **Namespace**;
//! 2. the **ServiceAccount** `web`, annotated with the Google service
//!    account it acts as (Workload Identity): the proxy's credentials, with
//!    no key file;
//! 3. the **Secret** `web-db` with the database user and password (the
//!    proxy authenticates the *connection*; the database still checks its
//!    own user);
//! 4. the **Deployment** `web`: the app, and the Cloud SQL Auth Proxy as a
//!    *native sidecar* — an init container with `restartPolicy: Always`, so
//!    it starts before the app (once its startup probe passes), runs as long
//!    as the pod, and stops after the app;
//! 5. the **Service** `web` in front of the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    SecretKeySelector, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::gke::{APP, CLOUD_SQL_PROXY_IMAGE, DB_SECRET, DB_USER, GkeParams};

/// The port the app serves on, in the container.
pub const APP_PORT: i32 = 8080;
/// The port the proxy listens on, on the pod's `127.0.0.1`.
pub const DB_PORT: i32 = 5432;
/// The proxy's health-check port (`--health-check`).
pub const PROXY_HEALTH_PORT: i32 = 9090;

pub(crate) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

pub(crate) fn labels() -> BTreeMap<String, String> {
    [("app".to_string(), APP.to_string())].into()
}

pub(crate) fn value(name: &str, v: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(v.into()),
        ..EnvVar::default()
    }
}

pub(crate) fn from_secret(name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: DB_SECRET.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(crate) fn from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(crate) fn http_probe(
    path: &str,
    port: IntOrString,
    period: i32,
    failure_threshold: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port,
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

pub(crate) fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity(cpu.into())),
                ("memory".to_string(), Quantity(memory.into())),
            ]
            .into(),
        ),
        limits: Some([("memory".to_string(), Quantity(memory_limit.into()))].into()),
        ..ResourceRequirements::default()
    }
}

/// Neither container needs to write its image's files or gain privileges.
pub(crate) fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

// ANCHOR: proxy_sidecar
/// The Cloud SQL Auth Proxy v2 as a native sidecar. It listens on the
/// pod's `127.0.0.1:5432` (its default address: only the pod's own
/// containers can reach it) and opens an authenticated, encrypted (TLS 1.3)
/// connection to the instance for every connection the app makes.
fn cloud_sql_proxy(p: &GkeParams) -> Container {
    Container {
        name: "cloud-sql-proxy".into(),
        image: Some(CLOUD_SQL_PROXY_IMAGE.into()),
        // This one field is what makes an init container a sidecar.
        restart_policy: Some("Always".into()),
        args: Some(vec![
            format!("--port={DB_PORT}"),
            // JSON log lines, which Cloud Logging parses into fields.
            "--structured-logs".into(),
            // /startup, /liveness and /readiness on port 9090, reachable by
            // the kubelet's probes (which do not come from the pod's
            // loopback, hence 0.0.0.0; the database port stays on
            // 127.0.0.1).
            "--health-check".into(),
            "--http-address=0.0.0.0".into(),
            p.instance_connection_name(),
        ]),
        // The app starts only once this passes: its first connection finds
        // the proxy ready.
        startup_probe: Some(http_probe(
            "/startup",
            IntOrString::Int(PROXY_HEALTH_PORT),
            1,
            60,
        )),
        liveness_probe: Some(http_probe(
            "/liveness",
            IntOrString::Int(PROXY_HEALTH_PORT),
            10,
            3,
        )),
        resources: Some(resources("100m", "64Mi", "256Mi")),
        security_context: Some(locked_down()),
        ..Container::default()
    }
}
// ANCHOR_END: proxy_sidecar

// ANCHOR: app_container
/// The app: the same settings as everywhere in the workbook. `DB_HOST` is
/// the sidecar on the pod's localhost; the user and password come from the
/// Secret; `LISTEN` is all of the container's addresses, where the
/// Service's traffic and the kubelet's probes arrive.
fn app(p: &GkeParams) -> Container {
    Container {
        name: "app".into(),
        image: Some(p.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: APP_PORT,
            ..ContainerPort::default()
        }]),
        env: Some(vec![
            value("LISTEN", &format!("0.0.0.0:{APP_PORT}")),
            from_field("POD_NAME", "metadata.name"),
            value("DB_HOST", "127.0.0.1"),
            value("DB_PORT", &DB_PORT.to_string()),
            value("DB_NAME", &p.database),
            from_secret("DB_USER", "username"),
            from_secret("DB_PASSWORD", "password"),
        ]),
        // Ready: the database answers through the proxy. A database outage
        // makes the pods unready, it does not restart them: liveness only
        // asks whether the process is alive.
        readiness_probe: Some(http_probe(
            "/readyz",
            IntOrString::String("http".into()),
            2,
            3,
        )),
        liveness_probe: Some(http_probe(
            "/livez",
            IntOrString::String("http".into()),
            10,
            3,
        )),
        resources: Some(resources("100m", "64Mi", "128Mi")),
        security_context: Some(locked_down()),
        ..Container::default()
    }
}
// ANCHOR_END: app_container

/// The Deployment: `replicas` pods, each the app plus its proxy sidecar,
/// running as the Workload Identity service account.
pub fn deployment(p: &GkeParams) -> Deployment {
    Deployment {
        metadata: meta(APP, Some(&p.namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(p.replicas),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(APP.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![cloud_sql_proxy(p)]),
                    containers: vec![app(p)],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service in front of the pods (a cluster IP: the demo's traffic
/// probe runs as a pod in the cluster).
pub fn service(p: &GkeParams) -> Service {
    Service {
        metadata: meta(APP, Some(&p.namespace)),
        spec: Some(ServiceSpec {
            selector: Some(labels()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The database login, as the app reads it (`DB_USER`, `DB_PASSWORD`).
pub fn secret(p: &GkeParams) -> Secret {
    Secret {
        metadata: meta(DB_SECRET, Some(&p.namespace)),
        type_: Some("Opaque".into()),
        string_data: Some(
            [
                ("username".to_string(), DB_USER.to_string()),
                ("password".to_string(), p.db_password.clone()),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

// ANCHOR: service_account
/// The pods' identity. GKE's metadata server gives a pod running as this
/// Kubernetes service account tokens of the Google service account named
/// in the annotation — once IAM allows it (`roles/iam.workloadIdentityUser`,
/// see [`crate::gke::gcloud_steps`]).
pub fn service_account(p: &GkeParams) -> ServiceAccount {
    let mut metadata = meta(APP, Some(&p.namespace));
    metadata.annotations = Some(
        [(
            "iam.gke.io/gcp-service-account".to_string(),
            p.google_service_account(),
        )]
        .into(),
    );
    ServiceAccount {
        metadata,
        ..ServiceAccount::default()
    }
}
// ANCHOR_END: service_account

pub fn namespace(p: &GkeParams) -> Namespace {
    namespace_named(&p.namespace)
}

/// The Namespace object called `name`.
pub fn namespace_named(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Every object, as one multi-document YAML in apply order.
pub fn manifests_yaml(p: &GkeParams) -> Result<String, serde_yaml::Error> {
    let docs = [
        serde_yaml::to_string(&namespace(p))?,
        serde_yaml::to_string(&service_account(p))?,
        serde_yaml::to_string(&secret(p))?,
        serde_yaml::to_string(&deployment(p))?,
        serde_yaml::to_string(&service(p))?,
    ];
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect::<String>())
}
