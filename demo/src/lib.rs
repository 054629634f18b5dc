//! The demo's library half: what the `demo` binary deploys, kept apart from
//! the command line so that tests (and the book, through files the tests
//! check) see exactly what the demo would apply.
//!
//! * [`gke`]: the parameters of a GKE run and the `gcloud` commands that
//!   create Cloud SQL, the Google service account and its IAM bindings;
//! * [`manifests`]: the Kubernetes objects of the app on GKE (the Cloud SQL
//!   Auth Proxy as a native sidecar, Workload Identity), as YAML;
//! * [`kind`]: the kind target: its context, its objects (PostgreSQL in the
//!   cluster), and loading images into its nodes as `kind load` does;
//! * [`apply`]: server-side apply of the objects (field manager
//!   `workbook-demo`); [`tools`]: finding `gcloud`, `kind` and the GKE auth
//!   plugin on the `PATH`.

pub mod apply;
pub mod gke;
pub mod kind;
pub mod manifests;
pub mod tools;
