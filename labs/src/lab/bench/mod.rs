//! Benchmarks (`labs bench …`), run by hand rather than in the tests: timing
//! claims belong here, not in assertions. Each prints what it measured.

pub mod apiserver;
pub mod docker;
pub mod proxy;
pub mod replicaset;
pub mod rollout;
pub mod scheduler;
