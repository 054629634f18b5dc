//! The workspace's cross-crate tests, in one binary: the real kubectl and the
//! kube-rs client against the labs' API server and cluster, the API server's
//! answers as snapshots, and the book build. Shared helpers (starting servers,
//! running kubectl) are the `workbook` library in `tests/support`.

mod apiserver_bad_input;
mod apiserver_kube;
mod apiserver_kubectl;
mod apiserver_snapshots;
mod book;
mod deployment_kube;
mod deployment_kubectl;
mod kubectl_oldest;
mod kubelet_kubectl;
mod node_lease;
mod openapi_kubectl;
mod replicaset_kube;
mod replicaset_kubectl;
mod scheduler_kube;
mod scheduler_kubectl;
mod service_kube;
mod service_kubectl;
