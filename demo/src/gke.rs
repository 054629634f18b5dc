//! The talk's architecture on Google Cloud: what the demo creates there.
//!
//! On GKE the app's database is **Cloud SQL for PostgreSQL**, reached
//! through the **Cloud SQL Auth Proxy v2** running in every pod as a native
//! sidecar (see [`crate::manifests`]). The proxy needs an identity that may
//! connect to the instance; with **Workload Identity** that identity is the
//! pod's Kubernetes service account, mapped to a Google service account that
//! holds `roles/cloudsql.client` — no key file anywhere.
//!
//! This module holds the one set of parameters ([`GkeParams`]) both halves
//! are made from, and the `gcloud` commands that create the Google Cloud
//! side ([`gcloud_steps`]): the instance, the database, the user, the Google
//! service account with its role, and the IAM binding that lets the
//! Kubernetes service account act as it. The demo shows them and runs them;
//! the book includes them from a file a test checks.
//!
//! What the commands assume: a GKE cluster that exists already, with
//! Workload Identity enabled (Autopilot always has it; on Standard,
//! `--workload-pool=PROJECT.svc.id.goog`), and `gcloud` logged in.
//!
//! Running them is [`cloud`]'s job (check, create, record what was made,
//! and remove it again); [`registry`] pushes the app's image to Artifact
//! Registry; [`context`] finds and checks the cluster's kubeconfig context;
//! [`gcloud`] runs the program.

pub mod cloud;
pub mod context;
pub mod gcloud;
pub mod registry;

/// The Cloud SQL Auth Proxy image, pinned: never a floating tag.
/// v2.28.0 is the newest release on the project's GitHub releases page
/// (2026-11-11) at the time of writing; update it deliberately.
pub const CLOUD_SQL_PROXY_IMAGE: &str = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.28.0";

/// The name of the app's Deployment, Service, Kubernetes service account,
/// and the prefix of the other objects.
pub const APP: &str = "web";
/// The database user the app logs in as.
pub const DB_USER: &str = "app";
/// The Secret with the database user and password.
pub const DB_SECRET: &str = "web-db";
/// The Google service account the pods act as (its account id).
pub const GOOGLE_SERVICE_ACCOUNT: &str = "web-sql";
/// Cloud SQL's PostgreSQL version.
pub const DATABASE_VERSION: &str = "POSTGRES_17";
/// A small dedicated-core machine (1 vCPU, 3.75 GB): enough for a demo.
/// The Enterprise edition is named explicitly, because newer PostgreSQL
/// versions default to Enterprise Plus, which has no machines this small.
pub const TIER: &str = "db-custom-1-3840";

// ANCHOR: params
/// Everything the GKE manifests and the `gcloud` commands depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkeParams {
    /// The Google Cloud project id.
    pub project: String,
    /// The region of the cluster and the instance (e.g. `asia-northeast1`).
    pub region: String,
    /// The Cloud SQL instance name.
    pub instance: String,
    /// The database the app uses on it.
    pub database: String,
    /// The Kubernetes namespace of the app.
    pub namespace: String,
    /// The app's image, e.g.
    /// `asia-northeast1-docker.pkg.dev/PROJECT/workbook/demo-app:v1`.
    pub image: String,
    pub replicas: i32,
    /// The database user's password: it goes into the Secret and into
    /// `gcloud sql users create`. The demo generates one per run.
    pub db_password: String,
}
// ANCHOR_END: params

impl GkeParams {
    /// `PROJECT:REGION:INSTANCE`, how the proxy names the instance.
    pub fn instance_connection_name(&self) -> String {
        format!("{}:{}:{}", self.project, self.region, self.instance)
    }

    /// The Google service account's e-mail address.
    pub fn google_service_account(&self) -> String {
        format!(
            "{GOOGLE_SERVICE_ACCOUNT}@{}.iam.gserviceaccount.com",
            self.project
        )
    }

    /// The Workload Identity member for the app's Kubernetes service
    /// account: `PROJECT.svc.id.goog[NAMESPACE/KSA]`.
    pub fn workload_identity_member(&self) -> String {
        format!(
            "serviceAccount:{}.svc.id.goog[{}/{APP}]",
            self.project, self.namespace
        )
    }
}

/// One `gcloud` command: why, and its arguments (without the `gcloud`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcloudStep {
    pub purpose: &'static str,
    pub args: Vec<String>,
    /// A `describe` that succeeds when what the step creates exists
    /// already; `None` when the command is idempotent by itself (enabling
    /// an API, adding an IAM binding).
    pub check: Option<Vec<String>>,
    /// What to run instead when it exists (the user's password is set
    /// again, so that it matches the Secret); `None`: nothing.
    pub when_present: Option<Vec<String>>,
    /// What `demo down` must remove because this step made it.
    pub creates: Option<Created>,
}

/// A cloud resource the demo made, as `demo down` removes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Created {
    /// The Cloud SQL instance (its databases and users go with it). The
    /// one resource billed by the hour.
    SqlInstance(String),
    /// The Google service account.
    ServiceAccount(String),
    /// The project-level role binding of the service account.
    ProjectBinding { member: String, role: String },
    /// The Artifact Registry repository (`name`, `location`).
    Repository { name: String, location: String },
}

impl Created {
    /// The key it is recorded under in the demo's state ConfigMap (a
    /// ConfigMap key allows only `[-._a-zA-Z0-9]`: the rest becomes `_`).
    pub fn key(&self) -> String {
        let raw = match self {
            Created::SqlInstance(n) => format!("sql-instance.{n}"),
            Created::ServiceAccount(n) => format!("service-account.{n}"),
            Created::ProjectBinding { member, role } => format!("binding.{role}.{member}"),
            Created::Repository { name, location } => format!("repository.{location}.{name}"),
        };
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

impl GcloudStep {
    /// The command as one line a shell accepts (arguments quoted where
    /// needed).
    pub fn line(&self) -> String {
        command_line(&self.args)
    }
}

/// `gcloud ARGS…` as one line a shell accepts.
pub fn command_line(args: &[String]) -> String {
    std::iter::once("gcloud".to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quote an argument for a POSIX shell if it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=.,:/@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

// ANCHOR: gcloud_steps
/// The Google Cloud side, in order. Each `create` fails if its object
/// exists already (gcloud has no "create or keep"), so each comes with the
/// `describe` the demo runs first.
pub fn gcloud_steps(p: &GkeParams) -> Vec<GcloudStep> {
    let project = format!("--project={}", p.project);
    let with_project = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(std::iter::once(project.clone()))
            .collect()
    };
    let step = |purpose, args: &[&str]| GcloudStep {
        purpose,
        args: with_project(args),
        check: None,
        when_present: None,
        creates: None,
    };
    let gsa = p.google_service_account();
    let instance = format!("--instance={}", p.instance);
    let password = format!("--password={}", p.db_password);
    let gsa_member = format!("serviceAccount:{gsa}");
    vec![
        step(
            "the Cloud SQL Admin API, which the proxy calls for certificates",
            &["services", "enable", "sqladmin.googleapis.com"],
        ),
        GcloudStep {
            check: Some(with_project(&["sql", "instances", "describe", &p.instance])),
            creates: Some(Created::SqlInstance(p.instance.clone())),
            ..step(
                "the Cloud SQL for PostgreSQL instance (takes several minutes)",
                &[
                    "sql",
                    "instances",
                    "create",
                    &p.instance,
                    &format!("--database-version={DATABASE_VERSION}"),
                    "--edition=ENTERPRISE",
                    &format!("--tier={TIER}"),
                    &format!("--region={}", p.region),
                ],
            )
        },
        GcloudStep {
            check: Some(with_project(&[
                "sql",
                "databases",
                "describe",
                &p.database,
                &instance,
            ])),
            ..step(
                "the app's database",
                &["sql", "databases", "create", &p.database, &instance],
            )
        },
        GcloudStep {
            check: Some(with_project(&[
                "sql", "users", "describe", DB_USER, &instance,
            ])),
            when_present: Some(with_project(&[
                "sql",
                "users",
                "set-password",
                DB_USER,
                &instance,
                &password,
            ])),
            ..step(
                "the database user, with the password the Secret holds",
                &["sql", "users", "create", DB_USER, &instance, &password],
            )
        },
        GcloudStep {
            check: Some(with_project(&["iam", "service-accounts", "describe", &gsa])),
            creates: Some(Created::ServiceAccount(gsa.clone())),
            ..step(
                "the Google service account the pods act as",
                &[
                    "iam",
                    "service-accounts",
                    "create",
                    GOOGLE_SERVICE_ACCOUNT,
                    "--display-name=workbook app: Cloud SQL client",
                ],
            )
        },
        GcloudStep {
            creates: Some(Created::ProjectBinding {
                member: gsa_member.clone(),
                role: "roles/cloudsql.client".into(),
            }),
            ..step(
                "which may connect to Cloud SQL instances of the project",
                &[
                    "projects",
                    "add-iam-policy-binding",
                    &p.project,
                    &format!("--member={gsa_member}"),
                    "--role=roles/cloudsql.client",
                    "--condition=None",
                ],
            )
        },
        step(
            "Workload Identity: the Kubernetes service account may act as it",
            &[
                "iam",
                "service-accounts",
                "add-iam-policy-binding",
                &gsa,
                "--role=roles/iam.workloadIdentityUser",
                &format!("--member={}", p.workload_identity_member()),
            ],
        ),
    ]
}
// ANCHOR_END: gcloud_steps

/// The commands as lines, each preceded by a `#` comment saying why: what
/// the demo prints and the book shows.
pub fn gcloud_commands(p: &GkeParams) -> Vec<String> {
    gcloud_steps(p)
        .into_iter()
        .flat_map(|s| [format!("# {}", s.purpose), s.line()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("--role=roles/cloudsql.client"),
            "--role=roles/cloudsql.client"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_quote("serviceAccount:p.svc.id.goog[ns/web]"),
            "'serviceAccount:p.svc.id.goog[ns/web]'",
            "brackets are a glob"
        );
        assert_eq!(shell_quote(""), "''");
    }
}
