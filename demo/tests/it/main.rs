//! The demo crate's integration tests, one binary with a module per
//! subject.

mod gke;
mod kind;
mod kind_load;
