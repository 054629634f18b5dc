//! The Kubernetes objects of the talk's app on kind: the same app as on
//! the local target ([`crate::workload`]), with PostgreSQL running *in*
//! the cluster, where GKE has Cloud SQL.
//!
//! What changes from GKE ([`crate::manifests`]), and why:
//!
//! * the **database** is a Deployment of the official `postgres:17` image
//!   (the nodes pull it from Docker Hub, as any node pulls a public image),
//!   with its own Secret and a Service `postgres` in front of it;
//! * the **sidecar** is the workbook's own TCP proxy (`demo-app proxy`,
//!   in the app's image) instead of the Cloud SQL Auth Proxy: it listens on
//!   the pod's `127.0.0.1:5432` and forwards to the `postgres` Service (the
//!   `address` in the app's Secret). The app cannot tell the difference:
//!   `DB_HOST=127.0.0.1` on every target;
//! * **no Workload Identity**: there is no cloud identity to map to, so the
//!   ServiceAccount carries no annotation;
//! * the app's image was *loaded* into the nodes, not pulled from a
//!   registry: `imagePullPolicy: IfNotPresent` makes the kubelet use the
//!   loaded copy (with `Always` it would try Docker Hub and fail).
//!
//! In apply order: the app's ServiceAccount and Secret, PostgreSQL's
//! Secret, Deployment and Service, then the app's Deployment and Service.
//! (The namespace is made by the cluster step when it is not `default`.)

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, ExecAction, PodSpec,
    PodTemplateSpec, Probe, Secret, SecretEnvSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::gke::DB_USER;
use crate::manifests::{DB_PORT, resources, value};
use crate::targets::{AnyObject, AppVersion, Objects, Settings};
use crate::workload::{DatabaseSettings, Workload};

/// The app's Service port on kind and GKE: plain HTTP's.
pub const SERVICE_PORT: u16 = 80;

/// The official PostgreSQL image, pinned to a major version (never
/// `latest`: a new major version cannot read the old one's files).
pub const POSTGRES_IMAGE: &str = "postgres:17";
/// PostgreSQL's Deployment, Service and Secret.
pub const POSTGRES: &str = "postgres";

// ANCHOR: params
/// What PostgreSQL's objects depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindParams {
    /// The namespace of the app and its database.
    pub namespace: String,
    /// The database's name.
    pub database: String,
    /// The password of the database user: PostgreSQL's Secret sets it when
    /// the database is first initialised, the app's Secret hands it to the
    /// app. The demo generates one per cluster and keeps it (the cluster
    /// step reads it back from PostgreSQL's Secret).
    pub db_password: String,
}
// ANCHOR_END: params

fn postgres_labels() -> BTreeMap<String, String> {
    [("app".to_string(), POSTGRES.to_string())].into()
}

/// PostgreSQL's objects carry the demo's managed-by label too (a reader
/// with kubectl finds everything the demo made with one selector); their
/// pods only `app: postgres`, which the Service selects.
fn postgres_meta(namespace: &str) -> ObjectMeta {
    let mut labels = postgres_labels();
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        crate::FIELD_MANAGER.into(),
    );
    ObjectMeta {
        name: Some(POSTGRES.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels),
        ..ObjectMeta::default()
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

// ANCHOR: objects
/// Every object of the kind target, in apply order: the app's objects as
/// on the local target, its proxy forwarding to the `postgres` Service, and
/// PostgreSQL's own three objects with the step-3 settings.
pub fn objects(
    settings: &Settings,
    image: &str,
    version: &AppVersion,
    p: &KindParams,
) -> anyhow::Result<Objects> {
    let workload = Workload {
        service_port: SERVICE_PORT,
        pod_ip_as_localhost: false,
        service_account: true,
        database: Some(DatabaseSettings {
            address: format!("{POSTGRES}:{DB_PORT}"),
            user: DB_USER.into(),
            password: p.db_password.clone(),
            database: p.database.clone(),
        }),
    };
    let mut objects = workload.objects(settings, image, version)?;
    objects.settings.extend([
        AnyObject::from(&postgres_secret(p))?,
        AnyObject::from(&postgres_deployment(p))?,
        AnyObject::from(&postgres_service(p))?,
    ]);
    Ok(objects)
}
// ANCHOR_END: objects
