//! The labs crate's integration tests, in one binary (one link instead of
//! one per file): the runtimes against real processes, the kubelet on both
//! runtimes, the store's properties, and the Docker lab against the real
//! engine. Unit tests live beside the code, the labs' transcripts beside the
//! labs (`labs/src/lab/tests`).

mod cli;
mod docker;
mod docker_runtime;
mod kubelet_prestop;
mod kubelet_process;
mod kubelet_simulated;
mod portforward;
mod process_runtime;
mod proxy;
mod service;
mod sidecar;
mod store_props;

/// The kubectl the tests drive: `$WORKBOOK_KUBECTL`, else the first
/// `kubectl` on the PATH (CI puts upstream kubectl 1.35 there).
fn kubectl() -> String {
    std::env::var("WORKBOOK_KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}
