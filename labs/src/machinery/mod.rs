//! The machinery every component shares: what client-go and apimachinery give
//! Kubernetes' own components (kube-rs calls the same layer kube-runtime and
//! kube-core).
//!
//! Nothing here is a component. It is the toolbox they are built from:
//!
//! * [`informer`] and [`workqueue`]: the controller pattern (list + watch + a
//!   cache, a queue of keys, workers, backoff). Hand-written, because the
//!   queue's rules are the lesson; the watching itself is kube-runtime's.
//! * [`events`]: the event recorder (`kubectl get events`), with upstream's
//!   correlation and spam filter.
//! * [`clock`]: the cluster's wall clock, which follows tokio's (paused) clock.
//! * [`quantity`]: `250m`, `128Mi` as integers. Hand-written: its rules are
//!   what a learner reads when a pod does not fit.
//! * [`wellknown`]: well-known labels, taints, the node Lease namespace, and
//!   whether a toleration tolerates a taint.
//! * [`pods`]: owner and pod helpers (`controller_of`, `is_pod_available`).
//! * [`selector`]: label-selector matching (kube-core's `Selector`).
//! * [`node_api`]: what the API server asks a kubelet directly (logs).
//! * [`spdy`]: SPDY/3.1 framing, which `kubectl port-forward` speaks
//!   (apimachinery's `httpstream/spdy`). Hand-written: no Apache-licensed
//!   Rust crate speaks it, and the frames are short enough to read.
//! * [`signal`]: Ctrl-C / SIGTERM.
//!
//! The machinery imports nothing else from the labs: every layer above may
//! use it, and it uses none of them.

pub mod clock;
pub mod events;
pub mod informer;
pub mod node_api;
pub mod pods;
pub mod quantity;
pub mod selector;
pub mod signal;
pub mod spdy;
pub mod wellknown;
pub mod workqueue;
