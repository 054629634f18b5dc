//! The kubeconfig that points kubectl (and kube-rs) at the lab cluster.
//!
//! One cluster, one user, one context named `labs`. The server listens on
//! plain HTTP on loopback; kubectl sends no credentials over `http://`
//! (kube-rs does send the token), and the lab server does no
//! authentication, so the token is only there because a user entry needs
//! something.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The context name in the kubeconfig.
pub const CONTEXT: &str = "labs";

// ANCHOR: kubeconfig
pub fn kubeconfig_yaml(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: http://{addr}
users:
- name: {CONTEXT}
  user:
    token: labs-token
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
"
    )
}
// ANCHOR_END: kubeconfig

/// Writes the kubeconfig to `path`, creating its directory.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, kubeconfig_yaml(addr))
}

/// Where `labs cluster` writes its kubeconfig unless told otherwise.
pub fn default_path() -> PathBuf {
    std::env::temp_dir().join("labs").join("kubeconfig")
}
