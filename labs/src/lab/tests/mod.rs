//! The narrated labs' transcripts, pinned: each lab is deterministic (one
//! thread, tokio's paused clock, aliased names), so its whole output is an
//! insta snapshot in `snapshots/` here, and a change in any component's
//! behaviour shows up as a diff of what the learner will see. Several also
//! check that the book's chapter shows the current output.

mod bench;
mod kubelet;
mod node_failure;
mod replicaset;
mod rollout;
mod scheduler;
mod store;
