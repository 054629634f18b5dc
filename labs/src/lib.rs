//! The labs: a small but real Kubernetes control plane, one module per
//! component.
//!
//! Every component talks to the others only through the API server, exactly
//! as in Kubernetes. Each component is a pure decision core (a plain function
//! over objects, which the book explains line by line) plus the plumbing that
//! feeds it (watches, work queues, API calls).

pub mod apiserver;
pub mod clock;
pub mod cluster;
pub mod controllers;
pub mod images;
pub mod kubelet;
pub mod lab;
pub mod narration;
pub mod scheduler;
pub mod store;
