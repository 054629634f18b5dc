//! The app's objects on the local and kind targets: the talk's
//! architecture with the workbook's own pieces.
//!
//! On GKE ([`crate::manifests`]) the app reaches Cloud SQL through the
//! Cloud SQL Auth Proxy running next to it in the pod. Here the database is
//! an ordinary PostgreSQL and the proxy is the workbook's TCP forwarder
//! (`demo-app proxy`), but the *shape* is the same, which is the point:
//!
//! * a **ServiceAccount** `web` the pods run as (on GKE it carries the
//!   Workload Identity annotation; here it carries nothing, and says so);
//! * a **Secret** `web-db` with the connection settings: user, password,
//!   and where the proxy forwards to;
//! * a **Deployment** `web`: the app, and the proxy as a *native sidecar*
//!   (an init container with `restartPolicy: Always`: started before the
//!   app, stopped after it); a readiness probe so that a pod gets traffic
//!   only once it answers, and a `preStop` pause so that a pod that is
//!   told to go keeps serving until every kube-proxy has stopped choosing
//!   it — the two halves of a rolling update that drops no request (the
//!   Services chapter shows what breaks without each);
//! * a **Service** `web` in front of the pods.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use serde_json::json;

use crate::targets::{AnyObject, AppVersion, Objects, Settings, demo_labels};
use crate::{APP, DB_SECRET};

/// Where the app listens in its pod.
pub const APP_PORT: u16 = 8080;
/// Where the proxy sidecar listens, on the pod's localhost.
pub const PROXY_PORT: u16 = 5432;

/// What differs between the local and the kind target's pods.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The Service's port. Locally a high one: kube-proxy binds it on a
    /// loopback cluster IP, and ports below 1024 need root.
    pub service_port: u16,
    /// What "the pod's localhost" is. On a real node the containers of a pod
    /// share one network namespace, so `127.0.0.1`. The process runtime has
    /// no namespaces: there the pod's own IP (`status.podIP`, from the
    /// downward API) stands in for it.
    pub pod_ip_as_localhost: bool,
    /// Whether the pods run as the demo's own ServiceAccount `web` (every
    /// target does; without it they run as the namespace's `default`). The
    /// lab cluster's ServiceAccount admission checks that it exists, but
    /// mounts no token: the lab API server authenticates nobody.
    pub service_account: bool,
    /// The database: `(host:port the proxy forwards to, user, password)`;
    /// `None`: the app runs without one (and without the sidecar).
    pub database: Option<DatabaseSettings>,
}

/// The connection settings the Secret holds.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// Where the proxy forwards to (`host:port`), as Cloud SQL's instance
    /// connection name tells the real proxy.
    pub address: String,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Workload {
    pub fn objects(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Objects> {
        let mut objects = Vec::new();
        if self.service_account {
            objects.push(AnyObject::from(&self.service_account(settings)?)?);
        }
        if let Some(db) = &self.database {
            objects.push(AnyObject::from(&self.secret(settings, db)?)?);
        }
        Ok(Objects {
            settings: objects,
            deployment: self.deployment(settings, image, version)?,
            service: self.service(settings)?,
        })
    }

    fn metadata(&self, settings: &Settings, name: &str) -> serde_json::Value {
        json!({"name": name, "namespace": settings.namespace, "labels": demo_labels()})
    }

    fn service_account(&self, settings: &Settings) -> anyhow::Result<ServiceAccount> {
        let mut metadata = self.metadata(settings, APP);
        // On GKE this is where Workload Identity's annotation goes
        // (`iam.gke.io/gcp-service-account`); here the proxy needs no
        // cloud identity.
        metadata["annotations"] = json!({
            "workbook.dev/note": "on GKE: iam.gke.io/gcp-service-account (Workload Identity)"
        });
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata,
        }))?)
    }

    fn secret(&self, settings: &Settings, db: &DatabaseSettings) -> anyhow::Result<Secret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": self.metadata(settings, DB_SECRET),
            "type": "Opaque",
            "stringData": {
                "username": db.user,
                "password": db.password,
                "database": db.database,
                "address": db.address,
            },
        }))?)
    }

    // ANCHOR: deployment
    fn deployment(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Deployment> {
        let localhost = if self.pod_ip_as_localhost {
            json!({"name": "DB_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        } else {
            json!({"name": "DB_HOST", "value": "127.0.0.1"})
        };
        let secret = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": key}}});
        let mut env = vec![json!({"name": "POD_NAME",
                                  "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})];
        let mut init_containers = vec![];
        if self.database.is_some() {
            env.extend([
                localhost.clone(),
                json!({"name": "DB_PORT", "value": PROXY_PORT.to_string()}),
                secret("DB_NAME", "database"),
                secret("DB_USER", "username"),
                secret("DB_PASSWORD", "password"),
            ]);
            // The sidecar: listens on the pod's localhost, forwards to the
            // address in the Secret. Same image, another entrypoint argument.
            let mut listen = localhost.clone();
            listen["name"] = json!("POD_LOCALHOST");
            init_containers.push(json!({
                "name": "db-proxy",
                "image": image,
                "restartPolicy": "Always",
                "args": ["proxy", "--listen", format!("$(POD_LOCALHOST):{PROXY_PORT}")],
                "env": [listen, secret("PROXY_TO", "address")],
                "startupProbe": {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 1,
                                 "failureThreshold": 30},
            }));
        }
        if version.broken {
            // The broken version: an app that takes an hour to start, so
            // its readiness probe never passes within the demo.
            env.push(json!({"name": "STARTUP_SECONDS", "value": "3600"}));
        }
        // A stall is declared after the deadline without progress. A minute
        // covers a loaded machine's slowest healthy start; the broken
        // version gets a third of that so the demo shows the stall without
        // a long wait (upstream's default is ten minutes).
        let progress_deadline = if version.broken {
            settings.progress_deadline_seconds.min(20)
        } else {
            settings.progress_deadline_seconds
        };
        let labels = json!({"app": APP});
        let service_account = self.service_account.then_some(APP);
        Ok(serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": APP, "namespace": settings.namespace, "labels": demo_labels(),
                // What `kubectl rollout history` shows as CHANGE-CAUSE.
                "annotations": {"kubernetes.io/change-cause": version.change_cause(image)},
            },
            "spec": {
                "replicas": settings.replicas,
                "selector": {"matchLabels": labels},
                "progressDeadlineSeconds": progress_deadline,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "maxSurge": int_or_percent(&settings.max_surge),
                    "maxUnavailable": int_or_percent(&settings.max_unavailable),
                }},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": service_account,
                        "terminationGracePeriodSeconds": 10,
                        "initContainers": init_containers,
                        "containers": [{
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": APP_PORT}],
                            "env": env,
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                                               "periodSeconds": 1},
                            "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"},
                                              "periodSeconds": 5, "initialDelaySeconds": 5},
                            // Keep serving while every kube-proxy learns
                            // that this pod is going (they sync at most
                            // once a second).
                            "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
                        }],
                    },
                },
            },
        }))?)
    }
    // ANCHOR_END: deployment

    fn service(&self, settings: &Settings) -> anyhow::Result<Service> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.metadata(settings, APP),
            "spec": {
                "selector": {"app": APP},
                "ports": [{"name": "http", "port": self.service_port, "targetPort": "http"}],
            },
        }))?)
    }
}

/// `1` → the number 1, `25%` → the string: what the API expects.
fn int_or_percent(v: &str) -> serde_json::Value {
    v.parse::<i64>()
        .map(|n| json!(n))
        .unwrap_or_else(|_| json!(v))
}

/// Every object as one multi-document YAML, in apply order: what
/// `demo manifests` and `--dry-run` print.
pub fn yaml(objects: &Objects) -> anyhow::Result<String> {
    let mut docs = Vec::new();
    for o in &objects.settings {
        let mut value = serde_json::to_value(&o.object)?;
        value["apiVersion"] = json!(o.resource.api_version);
        value["kind"] = json!(o.resource.kind);
        docs.push(serde_yaml::to_string(&reorder(value))?);
    }
    docs.push(serde_yaml::to_string(&objects.deployment)?);
    docs.push(serde_yaml::to_string(&objects.service)?);
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}

/// `apiVersion` and `kind` first, as people write manifests.
fn reorder(value: serde_json::Value) -> serde_yaml::Value {
    let mut map = serde_yaml::Mapping::new();
    if let serde_json::Value::Object(obj) = &value {
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = obj.get(key) {
                map.insert(key.into(), serde_yaml::to_value(v).unwrap_or_default());
            }
        }
        for (k, v) in obj {
            if !["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                map.insert(
                    k.as_str().into(),
                    serde_yaml::to_value(v).unwrap_or_default(),
                );
            }
        }
    }
    serde_yaml::Value::Mapping(map)
}
