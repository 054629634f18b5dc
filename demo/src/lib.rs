//! The demo's library half: the talk's live demo as a step machine over
//! the Kubernetes API, and the targets it runs on. The `demo` binary is a
//! thin command line over it; tests drive it in-process and check the
//! cluster afterwards through kube-rs.
//!
//! * [`steps`]: the steps (cluster → image → account and connection
//!   settings → deploy → rolling update → history → rollback → summary);
//! * [`targets`]: the seam where the clusters plug in ([`targets::Target`]):
//!   the local one ([`targets::local`]), kind and GKE;
//! * [`rollout`]: kubectl's client side — rollout status, history, undo;
//! * [`probe`]: the traffic probe;
//! * [`workload`]: the app's objects on the local and kind targets;
//! * [`narrate`]: step headers, pauses, the progress display;
//! * [`gke`], [`manifests`]: the GKE parameters, `gcloud` commands and
//!   manifests (Cloud SQL Auth Proxy, Workload Identity);
//! * [`kind`]: the kind target's pieces: its context, its objects
//!   (PostgreSQL in the cluster), and loading images into its nodes as
//!   `kind load` does;
//! * [`apply`]: server-side apply of the objects (field manager
//!   `workbook-demo`); [`tools`]: finding `gcloud`, `kind` and the GKE auth
//!   plugin on the `PATH`;
//! * [`plan`]: the DESIGN table "The demo's targets" as data.

pub mod apply;
pub mod gke;
pub mod kind;
pub mod manifests;
pub mod narrate;
pub mod plan;
pub mod probe;
pub mod rollout;
pub mod steps;
pub mod targets;
pub mod tools;
pub mod workload;

/// The name of the app's Deployment, Service and service account.
pub const APP: &str = gke::APP;
/// The Secret with the database connection settings.
pub const DB_SECRET: &str = gke::DB_SECRET;
/// The field manager of every server-side apply the demo makes.
pub const FIELD_MANAGER: &str = "workbook-demo";
