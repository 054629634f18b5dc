//! The Kubernetes objects of the talk's app on kind: the same app as on
//! GKE, with PostgreSQL running *in* the cluster instead of Cloud SQL.
//!
//! What changes from GKE ([`crate::manifests`]), and why:
//!
//! * the **database** is a Deployment of the official `postgres:17` image
//!   (the nodes pull it from Docker Hub, as any node pulls a public image),
//!   with its own Secret and a Service `postgres` in front of it;
//! * the **sidecar** is the workbook's own TCP proxy (`demo-app proxy`,
//!   in the app's image) instead of the Cloud SQL Auth Proxy: it listens on
//!   the pod's `127.0.0.1:5432` and forwards to the `postgres` Service. The
//!   app cannot tell the difference: `DB_HOST=127.0.0.1` on every target;
//! * **no Workload Identity**: there is no cloud identity to map to, so no
//!   annotated ServiceAccount;
//! * the app's image was *loaded* into the nodes, not pulled from a
//!   registry: `imagePullPolicy: IfNotPresent` makes the kubelet use the
//!   loaded copy (with `Always` it would try Docker Hub and fail).
//!
//! In apply order: Namespace, the two Secrets, PostgreSQL's Deployment and
//! Service, the app's Deployment and Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, ExecAction, Namespace,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, SecretEnvSource, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::apply::to_value;
use crate::gke::{APP, DB_SECRET, DB_USER};
use crate::manifests::{
    APP_PORT, DB_PORT, from_field, from_secret, http_probe, labels, locked_down, meta, resources,
    value,
};

/// The official PostgreSQL image, pinned to a major version (never
/// `latest`: a new major version cannot read the old one's files).
pub const POSTGRES_IMAGE: &str = "postgres:17";
/// PostgreSQL's Deployment, Service and Secret.
pub const POSTGRES: &str = "postgres";

// ANCHOR: params
/// Everything the kind manifests depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindParams {
    /// The namespace of the app and its database.
    pub namespace: String,
    /// The app's image as loaded into the nodes, e.g. `workbook/demo-app:v1`.
    pub image: String,
    pub replicas: i32,
    /// The database's name.
    pub database: String,
    /// The password of the database user: PostgreSQL's Secret sets it when
    /// the database is first initialised, the app's Secret hands it to the
    /// app. The demo generates one per cluster and keeps it.
    pub db_password: String,
}
// ANCHOR_END: params

fn postgres_labels() -> BTreeMap<String, String> {
    [("app".to_string(), POSTGRES.to_string())].into()
}

fn postgres_meta(namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(POSTGRES.into()),
        namespace: Some(namespace.into()),
        labels: Some(postgres_labels()),
        ..ObjectMeta::default()
    }
}

pub fn namespace(p: &KindParams) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(p.namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The app's database login (`web-db`: `username`, `password`), as on GKE.
pub fn app_secret(p: &KindParams) -> Secret {
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

/// The official image's settings: it creates this user and database on
/// its first start (and ignores them afterwards: the data directory wins).
pub fn postgres_secret(p: &KindParams) -> Secret {
    Secret {
        metadata: postgres_meta(&p.namespace),
        type_: Some("Opaque".into()),
        string_data: Some(
            [
                ("POSTGRES_USER".to_string(), DB_USER.to_string()),
                ("POSTGRES_PASSWORD".to_string(), p.db_password.clone()),
                ("POSTGRES_DB".to_string(), p.database.clone()),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

// ANCHOR: postgres
/// PostgreSQL as one pod. `Recreate`: two database servers must never run
/// on the same data at once, which a rolling update would do for a moment.
/// The data lives in an `emptyDir`, as long as the pod: enough for a demo
/// (a real one would use a PersistentVolumeClaim, or Cloud SQL).
pub fn postgres_deployment(p: &KindParams) -> Deployment {
    let ready = Probe {
        exec: Some(ExecAction {
            command: Some(
                ["pg_isready", "-U", DB_USER, "-d", &p.database]
                    .map(String::from)
                    .to_vec(),
            ),
        }),
        period_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: POSTGRES.into(),
        image: Some(POSTGRES_IMAGE.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: DB_PORT,
            ..ContainerPort::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: POSTGRES.into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(vec![value("PGDATA", "/var/lib/postgresql/data/pgdata")]),
        readiness_probe: Some(ready),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/var/lib/postgresql/data".into(),
            ..VolumeMount::default()
        }]),
        resources: Some(resources("100m", "128Mi", "512Mi")),
        ..Container::default()
    };
    Deployment {
        metadata: postgres_meta(&p.namespace),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(postgres_labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(postgres_labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "data".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
// ANCHOR_END: postgres

pub fn postgres_service(p: &KindParams) -> Service {
    Service {
        metadata: postgres_meta(&p.namespace),
        spec: Some(ServiceSpec {
            selector: Some(postgres_labels()),
            ports: Some(vec![ServicePort {
                name: Some("postgres".into()),
                port: DB_PORT,
                target_port: Some(IntOrString::String("postgres".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

// ANCHOR: proxy_sidecar
/// The workbook's TCP proxy as a native sidecar (an init container with
/// `restartPolicy: Always`), from the app's own image: `demo-app proxy`
/// accepts on the pod's `127.0.0.1:5432` and forwards each connection to
/// the `postgres` Service, where the Cloud SQL Auth Proxy would open an
/// encrypted connection to Cloud SQL.
fn db_proxy(p: &KindParams) -> Container {
    Container {
        name: "db-proxy".into(),
        image: Some(p.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        restart_policy: Some("Always".into()),
        args: Some(vec![
            "proxy".into(),
            format!("--listen=127.0.0.1:{DB_PORT}"),
            format!("--to={POSTGRES}:{DB_PORT}"),
        ]),
        resources: Some(resources("50m", "16Mi", "64Mi")),
        security_context: Some(locked_down()),
        ..Container::default()
    }
}
// ANCHOR_END: proxy_sidecar

/// The app: the same settings as on GKE, its image loaded into the nodes.
fn app(p: &KindParams) -> Container {
    Container {
        name: "app".into(),
        image: Some(p.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
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

/// The app's Deployment: `replicas` pods of the app plus its proxy.
pub fn deployment(p: &KindParams) -> Deployment {
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
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![db_proxy(p)]),
                    containers: vec![app(p)],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The app's Service (port 80 → the pods' `http` port).
pub fn service(p: &KindParams) -> Service {
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

/// Every object, in apply order, as the JSON the API server takes.
pub fn objects(p: &KindParams) -> Vec<Value> {
    vec![
        to_value(&namespace(p)),
        to_value(&app_secret(p)),
        to_value(&postgres_secret(p)),
        to_value(&postgres_deployment(p)),
        to_value(&postgres_service(p)),
        to_value(&deployment(p)),
        to_value(&service(p)),
    ]
}

/// Every object as one multi-document YAML in apply order (`demo manifests
/// --target kind`), fields in the order the API documents them.
pub fn manifests_yaml(p: &KindParams) -> Result<String, serde_yaml::Error> {
    let docs = [
        serde_yaml::to_string(&namespace(p))?,
        serde_yaml::to_string(&app_secret(p))?,
        serde_yaml::to_string(&postgres_secret(p))?,
        serde_yaml::to_string(&postgres_deployment(p))?,
        serde_yaml::to_string(&postgres_service(p))?,
        serde_yaml::to_string(&deployment(p))?,
        serde_yaml::to_string(&service(p))?,
    ];
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}
