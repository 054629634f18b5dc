//! The demo crate's integration tests, one binary with a module per
//! subject.

mod cli;
mod gke;
mod run;
mod steps;
