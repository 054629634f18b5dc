//! Creating (and removing) the Google Cloud side of the demo with `gcloud`.
//!
//! Three rules make it safe to run in front of an audience:
//!
//! 1. **Say what it costs first.** Before anything billable exists, the
//!    demo prints what will be billed and the one command that removes it
//!    ([`cost_warning`]).
//! 2. **Check, then create.** gcloud's `create` commands fail when the
//!    object exists, so each step runs its `describe` first and skips (or,
//!    for the database user, resets the password) when it is there: running
//!    the demo again continues where it stopped.
//! 3. **Remember what was made.** Each resource is recorded *before* its
//!    `create` runs, in a ConfigMap in the app's namespace
//!    ([`STATE_CONFIGMAP`]), so that `demo down` removes exactly what the
//!    demo made, even after a Ctrl-C in the middle of a create, and never
//!    a resource that was there before.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::gcloud::{Exists, Gcloud};
use super::{Created, GcloudStep, GkeParams, TIER, gcloud_steps};
use crate::apply;

/// The ConfigMap listing the cloud resources the demo created.
pub const STATE_CONFIGMAP: &str = "workbook-demo-gke";

/// The command that removes everything the GKE run made.
pub fn cleanup_command(namespace: &str) -> String {
    let ns = if namespace == "default" {
        String::new()
    } else {
        format!(" --namespace {namespace}")
    };
    format!("cargo run -p demo -- down --target gke{ns}")
}

// ANCHOR: cost
/// What the run is going to bill, and how to stop it: printed before the
/// first billable resource is created.
pub fn cost_warning(p: &GkeParams) -> Vec<String> {
    vec![
        format!(
            "Cost: this creates billable Google Cloud resources in project {}: the Cloud SQL \
             instance {} ({TIER}: 1 vCPU, 3.75 GB, Enterprise edition) is billed while it \
             exists (roughly US$0.07-0.10 an hour plus storage, by region; see \
             https://cloud.google.com/sql/pricing), and Artifact Registry storage beyond its \
             free 0.5 GB.",
            p.project, p.instance
        ),
        format!(
            "Clean up afterwards with: {}",
            cleanup_command(&p.namespace)
        ),
    ]
}
// ANCHOR_END: cost

/// The resources recorded so far (key → what).
pub async fn recorded(
    client: &kube::Client,
    namespace: &str,
) -> anyhow::Result<BTreeMap<String, Created>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = api
        .get_opt(STATE_CONFIGMAP)
        .await
        .with_context(|| format!("cannot read ConfigMap {STATE_CONFIGMAP}"))?
    else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (key, value) in cm.data.unwrap_or_default() {
        let created: Created = serde_json::from_str(&value)
            .with_context(|| format!("ConfigMap {STATE_CONFIGMAP}: cannot read {key}"))?;
        out.insert(key, created);
    }
    Ok(out)
}

/// Records `created` in the state ConfigMap (creating the namespace and
/// the ConfigMap when needed). The whole map is applied each time: with
/// server-side apply, a key the manager stops applying is removed.
pub async fn record(
    client: &kube::Client,
    namespace: &str,
    created: &Created,
) -> anyhow::Result<()> {
    apply::apply(
        client,
        &apply::to_value(&crate::manifests::namespace_named(namespace)),
    )
    .await?;
    let mut all = recorded(client, namespace).await?;
    all.insert(created.key(), created.clone());
    let data: BTreeMap<String, String> = all
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_string(v).expect("serializable")))
        .collect();
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(STATE_CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    apply::apply(client, &apply::to_value(&cm)).await
}

/// Runs one step the demo's way: its `describe` first (shown), then the
/// `create` (recorded first when it makes something `down` removes), or
/// the `when_present` command when it exists.
pub async fn run_step(
    gcloud: &Gcloud,
    client: &kube::Client,
    namespace: &str,
    step: &GcloudStep,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "# {}", step.purpose)?;
    if let Some(check) = &step.check {
        writeln!(out, "{}", super::command_line(check))?;
        if gcloud.exists(check)? == Exists::Yes {
            match &step.when_present {
                Some(args) => {
                    writeln!(out, "(exists already) {}", super::command_line(args))?;
                    gcloud.run(args)?;
                }
                None => writeln!(out, "(exists already)")?,
            }
            return Ok(());
        }
    }
    if let Some(created) = &step.creates {
        record(client, namespace, created).await?;
    }
    writeln!(out, "{}", step.line())?;
    gcloud.run(&step.args)?;
    Ok(())
}

// ANCHOR: provision
/// Cloud SQL, the Google service account, its role and the Workload
/// Identity binding: [`gcloud_steps`], each checked first.
pub async fn provision(
    gcloud: &Gcloud,
    client: &kube::Client,
    p: &GkeParams,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for step in gcloud_steps(p) {
        run_step(gcloud, client, &p.namespace, &step, out).await?;
    }
    Ok(())
}
// ANCHOR_END: provision

/// The `gcloud` command that removes `created` (`--quiet`: no prompt).
pub fn delete_args(created: &Created, project: &str) -> Vec<String> {
    let project = format!("--project={project}");
    let args: Vec<String> = match created {
        Created::SqlInstance(name) => vec![
            "sql".into(),
            "instances".into(),
            "delete".into(),
            name.clone(),
        ],
        Created::ServiceAccount(email) => {
            vec![
                "iam".into(),
                "service-accounts".into(),
                "delete".into(),
                email.clone(),
            ]
        }
        Created::ProjectBinding { member, role } => {
            let project_id = project.trim_start_matches("--project=").to_string();
            vec![
                "projects".into(),
                "remove-iam-policy-binding".into(),
                project_id,
                format!("--member={member}"),
                format!("--role={role}"),
                "--condition=None".into(),
            ]
        }
        Created::Repository { name, location } => vec![
            "artifacts".into(),
            "repositories".into(),
            "delete".into(),
            name.clone(),
            format!("--location={location}"),
        ],
    };
    args.into_iter()
        .chain(["--quiet".to_string(), project])
        .collect()
}

/// The order `down` removes things in: the binding before its service
/// account, the instance (the expensive part) first.
fn removal_rank(created: &Created) -> u8 {
    match created {
        Created::SqlInstance(_) => 0,
        Created::ProjectBinding { .. } => 1,
        Created::ServiceAccount(_) => 2,
        Created::Repository { .. } => 3,
    }
}

// ANCHOR: remove
/// Removes every recorded cloud resource (one that is gone already is
/// fine) and then the record itself. Returns what was removed.
pub async fn remove(
    gcloud: &Gcloud,
    client: &kube::Client,
    project: &str,
    namespace: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<Created>> {
    let mut all: Vec<Created> = recorded(client, namespace).await?.into_values().collect();
    all.sort_by_key(removal_rank);
    for created in &all {
        let args = delete_args(created, project);
        writeln!(out, "{}", super::command_line(&args))?;
        if let Err(err) = gcloud.run(&args) {
            let text = err.to_string();
            if !(text.contains("NOT_FOUND") || text.contains("404") || text.contains("not found")) {
                return Err(err);
            }
            writeln!(out, "(gone already)")?;
        }
    }
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(STATE_CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..ConfigMap::default()
    };
    apply::delete(client, &apply::to_value(&cm)).await?;
    Ok(all)
}
// ANCHOR_END: remove

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_removes_the_instance_first_and_the_binding_before_its_account() {
        let mut all = [
            Created::Repository {
                name: "workbook".into(),
                location: "r".into(),
            },
            Created::ServiceAccount("sa".into()),
            Created::ProjectBinding {
                member: "serviceAccount:sa".into(),
                role: "roles/cloudsql.client".into(),
            },
            Created::SqlInstance("db".into()),
        ];
        all.sort_by_key(removal_rank);
        assert!(matches!(all[0], Created::SqlInstance(_)));
        assert!(matches!(all[1], Created::ProjectBinding { .. }));
        assert!(matches!(all[2], Created::ServiceAccount(_)));
        assert_eq!(
            delete_args(&all[0], "p"),
            ["sql", "instances", "delete", "db", "--quiet", "--project=p"]
        );
    }

    #[test]
    fn the_cost_warning_names_the_instance_and_the_clean_up() {
        let p = GkeParams {
            project: "p".into(),
            region: "r".into(),
            instance: "workbook-db".into(),
            database: "app".into(),
            namespace: "talk".into(),
            image: "i:v1".into(),
            replicas: 3,
            db_password: "x".into(),
        };
        let lines = cost_warning(&p);
        assert!(lines[0].starts_with("Cost: ") && lines[0].contains("workbook-db"));
        assert_eq!(
            lines[1],
            "Clean up afterwards with: cargo run -p demo -- down --target gke --namespace talk"
        );
    }
}
