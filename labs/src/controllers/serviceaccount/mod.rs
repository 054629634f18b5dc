//! The service-account controller: every namespace has a ServiceAccount
//! named `default`.
//!
//! A pod runs *as* a ServiceAccount — the identity its processes use when
//! they call the API server (a token mounted into the pod proves it, and
//! RBAC bindings say what it may do). A pod that names none runs as
//! `default`, so `default` must exist in every namespace, including the ones
//! created later, and come back if someone deletes it. That is all this
//! controller does; it is level-triggered like every other: a namespace
//! added or changed, or a ServiceAccount deleted, queues the namespace, and
//! the sync creates whatever of [`MANAGED`] is missing.
//!
//! Upstream: `pkg/controller/serviceaccount/serviceaccounts_controller.go`
//! (`ServiceAccountsController.syncNamespace`). [`controller`] is the
//! plumbing; the decision is [`missing`].

pub mod controller;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};

/// The accounts the controller keeps in every namespace
/// (`--service-account-names` upstream, `default` by default).
pub const MANAGED: &[&str] = &["default"];

// ANCHOR: missing
/// Which managed accounts to create in `namespace`, given the names that
/// exist there. None in a namespace that is being deleted: its contents are
/// on their way out, and a create would be refused anyway.
pub fn missing(namespace: &Namespace, existing: &BTreeSet<String>) -> Vec<ServiceAccount> {
    let terminating = namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Vec::new();
    }
    MANAGED
        .iter()
        .filter(|name| !existing.contains(**name))
        .map(|name| ServiceAccount {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: namespace.metadata.name.clone(),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}
// ANCHOR_END: missing

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(name: &str) -> Namespace {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n
    }

    #[test]
    fn creates_default_where_it_is_missing_only() {
        let none = BTreeSet::new();
        let created = missing(&ns("team-a"), &none);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].metadata.name.as_deref(), Some("default"));
        assert_eq!(created[0].metadata.namespace.as_deref(), Some("team-a"));
        let has = BTreeSet::from(["default".to_string(), "sa1".to_string()]);
        assert!(missing(&ns("team-a"), &has).is_empty());
    }

    #[test]
    fn leaves_a_terminating_namespace_alone() {
        let mut n = ns("going");
        n.metadata.deletion_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
        assert!(missing(&n, &BTreeSet::new()).is_empty());
    }
}
