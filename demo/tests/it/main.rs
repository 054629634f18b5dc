//! The demo crate's integration tests, one binary with a module per
//! subject.

mod cli;
mod gke;
mod gke_run;
mod gke_target;
mod kind;
mod kind_load;
mod kind_target;
mod probe_pod;
mod registry_push;
mod run;
mod steps;
