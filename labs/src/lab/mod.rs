//! The narrated labs and the benches: one file per `labs` subcommand.
//!
//! A lab sits on top of everything: it starts an in-process cluster (the
//! store, the API server, the components it needs, see [`crate::cluster`]),
//! drives it through the API as `kubectl` would, and prints what happens.
//! The components never know they are in a lab.
//!
//! The narrated labs run on tokio's paused clock, so a run is the same every
//! time and is pinned by an insta snapshot that the book includes.

pub mod bench;
pub mod book;
pub mod docker;
pub mod kubelet;
pub mod narration;
pub mod node_failure;
pub mod replicaset;
pub mod rollout;
pub mod scheduler;
pub mod service;
pub mod store;

#[cfg(test)]
mod tests;
