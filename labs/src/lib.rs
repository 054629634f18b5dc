//! The labs: a small but real Kubernetes control plane, one module per
//! component.
//!
//! Every component talks to the others only through the API server, exactly
//! as in Kubernetes. Each component is a pure decision core (a plain function
//! over objects, which the book explains line by line) plus the plumbing that
//! feeds it (watches, work queues, API calls).
//!
//! # Layers, and who may import whom
//!
//! ```text
//!  lab/          the narrated labs and benches, one file per `labs` subcommand
//!  cluster       wires everything into one process (in-process or on loopback)
//!  components    controllers · scheduler · kubelet · proxy  (each alone)
//!  machinery     informer, work queue, events, clock, quantities, well-known names
//!  apiserver  →  store                                       (the only door to it)
//! ```
//!
//! * The **store** (etcd's role) is used only by the **API server**.
//! * A **component** uses only the [`machinery`], kube-rs and k8s-openapi:
//!   never the API server, the store or another component. Components talk
//!   only through the API, as in Kubernetes, so any of them could run in a
//!   process of its own.
//! * [`cluster`] wires them together; the [`lab`]s sit on top.
//!
//! The rule is checked, not only written down: the `layers` test below reads
//! every component's source and fails, naming the file and the path, when one
//! reaches across.

pub mod apiserver;
pub mod cluster;
pub mod controllers;
pub mod images;
pub mod kubelet;
pub mod lab;
pub mod machinery;
pub mod proxy;
pub mod scheduler;
pub mod store;

#[cfg(test)]
mod layers;
