//! The garbage collector: deleting an owner deletes what it owns.
//!
//! A ReplicaSet's pods name it in `metadata.ownerReferences`. Nothing else
//! links them: the API server deletes exactly the object it is asked to
//! delete. This controller (upstream's `pkg/controller/garbagecollector`)
//! watches every kind that can own or be owned, keeps the **dependency
//! graph** of ownerReferences in memory, and acts when an owner goes. What
//! it does depends on the `propagationPolicy` of the DELETE:
//!
//! | policy | API server | garbage collector |
//! |---|---|---|
//! | `Background` (default for apps/v1) | deletes the owner at once | deletes every dependent whose owners are all gone |
//! | `Orphan` (`kubectl delete --cascade=orphan`) | adds finalizer `orphan`, sets `deletionTimestamp` | removes the owner's ownerReference from each dependent, then the finalizer; the API server then deletes the owner |
//! | `Foreground` (`--cascade=foreground`) | adds finalizer `foregroundDeletion`, sets `deletionTimestamp` | deletes the dependents; once no dependent with `blockOwnerDeletion` is left, removes the finalizer |
//!
//! Two work queues, keyed by uid, as upstream: `attempt_to_delete` (is this
//! object garbage? if so delete it) and `attempt_to_orphan` (strip the
//! dependents of an owner that is being deleted with `orphan`).
//!
//! Simplifications, on purpose: upstream discovers every resource kind and
//! watches them all with metadata-only informers; we watch a fixed list
//! ([`KINDS`]: the kinds the labs' controllers create). Upstream keeps
//! "virtual" graph nodes for owners it has not seen; we check such owners
//! with a GET when a dependent is processed. An owner may be cluster-scoped
//! while its dependent is namespaced (a Node owns its Lease in
//! `kube-node-lease`: deleting the Node deletes the Lease), never the other
//! way round, as upstream.
//!
//! This file is what the collector *knows*: the kinds it watches, the two
//! finalizers, and the dependency graph with its pure bookkeeping
//! (upstream's `graph.go`). The plumbing, [`controller`], builds the graph
//! from informer events (`graph_builder.go`) and runs the two queues'
//! workers, which decide on the live objects and send the deletes and
//! patches (`garbagecollector.go`, `operations.go`, `patch.go`).

pub mod controller;

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// The kinds the collector watches: `(apiVersion, kind)`.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("v1", "Node"),
    ("coordination.k8s.io/v1", "Lease"),
];

/// The cluster-scoped kinds of [`KINDS`]: their objects are looked up
/// without a namespace, whatever the dependent's.
const CLUSTER_SCOPED: &[&str] = &["Node"];
/// One object in the graph: what the collector needs to know about it.
#[derive(Debug, Clone)]
struct Node {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    /// `deletionTimestamp` is set.
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waiting for its dependents.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_FOREGROUND)
    }
}

// ANCHOR: graph
/// The dependency graph: every watched object by uid, and for every owner
/// uid the uids of its dependents. An owner's entry in `dependents` may
/// exist before (or after) the owner itself is in `nodes`: the watches of
/// different kinds arrive in any order.
#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    /// Owners verified to be gone (upstream's `absentOwnerCache`), so that
    /// 10,000 pods of a deleted ReplicaSet cost one GET, not 10,000.
    absent: HashSet<String>,
}

impl Graph {
    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn set(&mut self, uid: &str, node: Node) -> Option<Node> {
        let old = self.nodes.insert(uid.to_string(), node.clone());
        if let Some(old) = &old {
            for owner in &old.owners {
                if let Some(d) = self.dependents.get_mut(&owner.uid) {
                    d.remove(uid);
                }
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        old
    }

    fn remove(&mut self, uid: &str) -> Option<Node> {
        let node = self.nodes.remove(uid)?;
        for owner in &node.owners {
            if let Some(d) = self.dependents.get_mut(&owner.uid) {
                d.remove(uid);
                if d.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        Some(node)
    }
}
// ANCHOR_END: graph
/// What an ownerReference points to, as far as this dependent is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Gone, or replaced by another object with the same name (other uid).
    Dangling,
    /// Being deleted in the foreground, waiting for its dependents.
    WaitingForDependents,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn pod(name: &str, owners: &[&str]) -> Node {
        Node {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("default".into()),
            name: name.into(),
            owners: owners.iter().map(|uid| owner_ref(uid, true)).collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn sorted(mut uids: Vec<String>) -> Vec<String> {
        uids.sort();
        uids
    }

    #[test]
    fn the_graph_follows_owner_references_as_they_change() {
        let mut g = Graph::default();
        // Dependents may arrive before their owner is known.
        g.set("p1", pod("web-1", &["rs-a"]));
        g.set("p2", pod("web-2", &["rs-a", "rs-b"]));
        assert_eq!(sorted(g.dependents_of("rs-a")), ["p1", "p2"]);
        assert_eq!(g.dependents_of("rs-b"), ["p2"]);
        assert!(g.dependents_of("rs-c").is_empty());

        // A changed ownerReference moves the dependent; the old entry goes.
        let old = g.set("p2", pod("web-2", &["rs-c"])).expect("p2 was known");
        assert_eq!(old.owners.len(), 2);
        assert_eq!(g.dependents_of("rs-a"), ["p1"]);
        assert!(g.dependents_of("rs-b").is_empty());
        assert_eq!(g.dependents_of("rs-c"), ["p2"]);

        // Removing the last dependent of an owner drops the owner's entry.
        assert!(g.remove("p1").is_some());
        assert!(!g.dependents.contains_key("rs-a"));
        assert!(g.remove("p1").is_none(), "already gone");
        assert_eq!(g.nodes.len(), 1);
    }

    #[test]
    fn only_a_foreground_deletion_waits_for_dependents() {
        let mut rs = pod("web", &[]);
        assert!(!rs.deleting_dependents());
        rs.deleting = true;
        assert!(
            !rs.deleting_dependents(),
            "a background delete waits for nothing"
        );
        rs.finalizers = vec![FINALIZER_ORPHAN.into()];
        assert!(!rs.deleting_dependents());
        rs.finalizers.push(FINALIZER_FOREGROUND.into());
        assert!(rs.has_finalizer(FINALIZER_ORPHAN) && rs.deleting_dependents());
    }
}
