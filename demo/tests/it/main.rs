//! The demo crate's integration tests, one binary with a module per
//! subject.

mod gke;
mod gke_run;
mod kind;
mod kind_load;
