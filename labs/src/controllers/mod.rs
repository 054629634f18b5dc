//! Controllers: the loops that make the cluster's *observed* state match its
//! *desired* state.
//!
//! A Kubernetes object carries both halves. `spec` is what someone asked for
//! ("3 replicas of this pod template"); `status` and the other objects in the
//! cluster are what is actually there ("2 pods exist, 1 is ready"). A
//! controller watches both and, whenever they differ, takes one small step
//! towards the spec: create a pod, delete a pod, write a status.
//!
//! Controllers are **level-triggered**, not edge-triggered. A watch event
//! ("pod web-x deleted") only says *which* object to look at; the controller
//! then reads the whole current state from its cache and recomputes what to
//! do from scratch. It never acts on the event's content alone. That is why a
//! missed event, a restart or a duplicate event is harmless: the next
//! reconcile sees the same level and reaches the same decision. It also means
//! a reconcile must be safe to run any number of times (idempotent).
//!
//! Every controller in the labs is split the same way:
//!
//! * a **pure decision core**: a plain function from objects to decisions,
//!   with no API calls, no clock and no async, e.g.
//!   [`replicaset::reconcile`]. It is what the book explains and what the
//!   table tests pin down;
//! * the **plumbing**: watches feeding a cache, a work queue keyed by object
//!   (`namespace/name`), workers that pop a key, call the core with what the
//!   cache holds, carry out the decisions through the API server, and requeue
//!   the key on error (with backoff) or after a delay the core asked for.

pub mod deployment;
pub mod disruption;
pub mod endpointslice;
pub mod garbagecollector;
pub mod manager;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod replicaset;
pub mod serviceaccount;
