//! Table tests of the scheduler core. Expected numbers come from upstream's
//! unit tests where one exists (`least_allocated_test.go`,
//! `balanced_allocation_test.go`) and from the formulas in
//! `shared/reference/controllers.md` §3 otherwise.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};
use serde_json::{Value, json};

use super::filters::{label_requirement_matches, tolerates};
use super::scores::*;
use super::snapshot::{DEFAULT_MEMORY_REQUEST, Resources, pod_requests};
use super::*;

// ---- fixtures: objects written as the manifests a learner would write ----

/// A Ready node with hostname label, 110 pod slots and the given allocatable.
fn node(name: &str, cpu: &str, memory: &str) -> Node {
    node_with(name, cpu, memory, json!({}))
}

/// `extra` is merged into the node (labels, spec, conditions...).
fn node_with(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// A pod with one container requesting `cpu` / `memory` (None: no request).
fn pod(name: &str, cpu: Option<&str>, memory: Option<&str>) -> Pod {
    pod_with(name, cpu, memory, json!({}))
}

fn pod_with(name: &str, cpu: Option<&str>, memory: Option<&str>, extra: Value) -> Pod {
    let mut requests = serde_json::Map::new();
    if let Some(c) = cpu {
        requests.insert("cpu".into(), c.into());
    }
    if let Some(m) = memory {
        requests.insert("memory".into(), m.into());
    }
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "workbook/demo-app:v1",
                                 "resources": {"requests": requests}}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// A pod owned by ReplicaSet `rs`, bound to `node`.
fn rs_pod(name: &str, rs: &str, node: &str) -> Pod {
    pod_with(
        name,
        Some("100m"),
        Some("100Mi"),
        json!({
            "metadata": {"labels": {"app": rs}, "ownerReferences": [owner(rs)]},
            "spec": {"nodeName": node},
        }),
    )
}

fn owner(rs: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
           "uid": format!("uid-{rs}"), "controller": true})
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration {
        key: opt(key),
        operator: opt(op),
        value: opt(value),
        effect: opt(effect),
        toleration_seconds: None,
    }
}

fn decide(p: &Pod, nodes: &[Node], pods: &[Pod]) -> Decision {
    schedule(p, &Snapshot::new(nodes, pods), &mut SplitMix64::new(7))
}

fn verdict<'d>(d: &'d Decision, node: &str) -> &'d NodeVerdict {
    d.examined.iter().find(|v| &*v.node == node).unwrap()
}

/// The (raw, normalized) score of plugin `p` (index into PLUGINS) on `node`.
fn score(d: &Decision, node: &str, p: usize) -> (i64, i64) {
    let s = verdict(d, node).scores.as_ref().expect("scored").plugins[p];
    (s.raw, s.normalized)
}

const TAINT: usize = 0;
const AFFINITY: usize = 1;
const FIT: usize = 2;
const SPREAD: usize = 3;
const BALANCED: usize = 4;

// ---- NodeResourcesFit score: LeastAllocated ----

#[test]
fn least_allocated_matches_upstream_cases() {
    // least_allocated_test.go: node 4000m / 10000 bytes, pod 3000m / 5000.
    let cases = [
        // (requested [cpu, mem], allocatable, weights [cpu, mem], score)
        ([3000, 5000], [4000, 10000], [1, 1], 37), // (25 + 50) / 2
        ([3000, 5000], [6000, 10000], [1, 1], 50), // (50 + 50) / 2
        ([3000, 5000], [4000, 10000], [1, 2], 41), // (25·1 + 50·2) / 3
        ([0, 0], [4000, 10000], [1, 1], 100),
        ([5000, 5000], [4000, 10000], [1, 1], 25), // cpu over capacity scores 0
        ([3000, 5000], [0, 10000], [1, 1], 50),    // no cpu at all: skipped
        ([3000, 5000], [0, 0], [1, 1], 0),         // nothing to score
    ];
    for (requested, allocatable, weights, want) in cases {
        assert_eq!(
            least_allocated(&requested, &allocatable, &weights),
            want,
            "{requested:?} on {allocatable:?} weights {weights:?}"
        );
    }
}

#[test]
fn least_allocated_through_a_decision_uses_non_zero_defaults() {
    let nodes = [node("a", "4", "10000"), node("b", "6", "10000")];
    let d = decide(&pod("p", Some("3000m"), Some("5000")), &nodes, &[]);
    assert_eq!(score(&d, "a", FIT), (37, 37));
    assert_eq!(score(&d, "b", FIT), (50, 50));

    // No requests at all: scored as 100m cpu and 200Mi memory.
    let nodes = [node("a", "1", "1Gi"), node("b", "2", "2Gi")];
    let d = decide(&pod("p", None, None), &nodes, &[]);
    let mem = |alloc: i64| (alloc - DEFAULT_MEMORY_REQUEST) * 100 / alloc;
    assert_eq!(score(&d, "a", FIT).0, (90 + mem(1 << 30)) / 2);
    assert_eq!(score(&d, "b", FIT).0, (95 + mem(2 << 30)) / 2);
}

// ---- NodeResourcesBalancedAllocation ----

#[test]
fn balanced_allocation_cases() {
    let cases: [(&[i64], &[i64], i64); 7] = [
        // balanced_allocation_test.go, "resources requested, differently sized nodes"
        (&[3000, 5000], &[4000, 10000], 87), // std = |0.75 − 0.5| / 2 = 0.125
        (&[3000, 5000], &[6000, 10000], 100),
        (&[0, 0], &[4000, 10000], 100),
        (&[6000, 0], &[4000, 10000], 50), // fraction capped at 1
        (&[1000, 0], &[0, 10000], 100),   // one resource: std 0
        // three resources: population std of (0.5, 0.5, 0.8) ≈ 0.1414
        (&[5, 5, 8], &[10, 10, 10], 85),
        (&[0, 5000], &[4000, 10000], 75),
    ];
    for (requested, allocatable, want) in cases {
        assert_eq!(
            balanced_allocation(requested, allocatable),
            want,
            "{requested:?} on {allocatable:?}"
        );
    }
}

#[test]
fn balanced_allocation_uses_real_requests_and_skips_best_effort_pods() {
    let nodes = [node("a", "4", "10000"), node("b", "6", "10000")];
    let d = decide(&pod("p", Some("3000m"), Some("5000")), &nodes, &[]);
    assert_eq!(score(&d, "a", BALANCED), (87, 87));
    assert_eq!(score(&d, "b", BALANCED), (100, 100));
    assert!(!d.skipped_plugins[BALANCED]);

    let d = decide(&pod("p", None, None), &nodes, &[]);
    assert!(d.skipped_plugins[BALANCED]);
    assert_eq!(score(&d, "a", BALANCED), (0, 0));
}

// ---- filters, each with upstream's message ----

#[test]
fn each_filter_rejects_with_upstreams_message() {
    struct Case {
        name: &'static str,
        node: Value,
        pod: Value,
        cpu: &'static str,
        want: Option<(&'static str, &'static str)>,
    }
    let cases = [
        Case {
            name: "fits",
            node: json!({}),
            pod: json!({}),
            cpu: "1",
            want: None,
        },
        Case {
            name: "cordoned",
            node: json!({"spec": {"unschedulable": true}}),
            pod: json!({}),
            cpu: "1",
            want: Some(("NodeUnschedulable", "node(s) were unschedulable")),
        },
        Case {
            name: "cordoned, but the pod tolerates it",
            node: json!({"spec": {"unschedulable": true}}),
            pod: json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                                  "operator": "Exists", "effect": "NoSchedule"}]}}),
            cpu: "1",
            want: None,
        },
        Case {
            name: "nodeName elsewhere",
            node: json!({}),
            pod: json!({"spec": {"nodeName": "other"}}),
            cpu: "1",
            want: Some(("NodeName", "node(s) didn't match the requested node name")),
        },
        Case {
            name: "nodeName here",
            node: json!({}),
            pod: json!({"spec": {"nodeName": "n"}}),
            cpu: "1",
            want: None,
        },
        Case {
            name: "NoSchedule taint",
            node: json!({"spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}}),
            pod: json!({}),
            cpu: "1",
            want: Some((
                "TaintToleration",
                "node(s) had untolerated taint {gpu: yes}",
            )),
        },
        Case {
            name: "NoExecute taint",
            node: json!({"spec": {"taints": [{"key": "dedicated", "effect": "NoExecute"}]}}),
            pod: json!({}),
            cpu: "1",
            want: Some((
                "TaintToleration",
                "node(s) had untolerated taint {dedicated: }",
            )),
        },
        Case {
            name: "PreferNoSchedule taint only scores",
            node: json!({"spec": {"taints": [{"key": "gpu", "effect": "PreferNoSchedule"}]}}),
            pod: json!({}),
            cpu: "1",
            want: None,
        },
        Case {
            name: "Ready=False",
            node: json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            pod: json!({}),
            cpu: "1",
            want: Some((
                "TaintToleration",
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            )),
        },
        Case {
            name: "Ready=Unknown",
            node: json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            pod: json!({}),
            cpu: "1",
            want: Some((
                "TaintToleration",
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
            )),
        },
        Case {
            name: "no Ready condition at all",
            node: json!({"status": {"conditions": []}}),
            pod: json!({}),
            cpu: "1",
            want: Some((
                "TaintToleration",
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
            )),
        },
        Case {
            name: "Ready=Unknown, tolerated (a DaemonSet pod)",
            node: json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            pod: json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable",
                                                  "operator": "Exists"}]}}),
            cpu: "1",
            want: None,
        },
        Case {
            name: "nodeSelector",
            node: json!({"metadata": {"labels": {"disk": "hdd"}}}),
            pod: json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
            cpu: "1",
            want: Some((
                "NodeAffinity",
                "node(s) didn't match Pod's node affinity/selector",
            )),
        },
        Case {
            name: "required node affinity",
            node: json!({"metadata": {"labels": {"disk": "ssd"}}}),
            pod: json!({"spec": {"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}}}),
            cpu: "1",
            want: Some((
                "NodeAffinity",
                "node(s) didn't match Pod's node affinity/selector",
            )),
        },
        Case {
            name: "insufficient cpu",
            node: json!({}),
            pod: json!({}),
            cpu: "2001m",
            want: Some(("NodeResourcesFit", "Insufficient cpu")),
        },
        Case {
            name: "exactly full fits",
            node: json!({}),
            pod: json!({}),
            cpu: "2",
            want: None,
        },
        Case {
            name: "no pod slots",
            node: json!({"status": {"allocatable": {"pods": "0"}}}),
            pod: json!({}),
            cpu: "1",
            want: Some(("NodeResourcesFit", "Too many pods")),
        },
        Case {
            // The taint is checked before resources, and only the first
            // failing plugin is reported.
            name: "first failing plugin wins",
            node: json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
            pod: json!({}),
            cpu: "64",
            want: Some(("TaintToleration", "node(s) had untolerated taint {k: }")),
        },
    ];
    for case in cases {
        let n = node_with("n", "2", "4Gi", case.node);
        let p = pod_with("p", Some(case.cpu), Some("1Gi"), case.pod);
        let d = decide(&p, &[n], &[]);
        let got = verdict(&d, "n").filter.as_ref().err().map(|r| {
            assert_eq!(r.reasons.len(), 1, "{}", case.name);
            (r.plugin, r.reasons[0].to_string())
        });
        let got = got.as_ref().map(|(p, r)| (*p, r.as_str()));
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn resources_fit_reports_every_shortfall_and_counts_existing_requests() {
    let n = node_with(
        "n",
        "2",
        "4Gi",
        json!({"status": {"allocatable": {"pods": "2"}}}),
    );
    let existing = [
        pod_with(
            "a",
            Some("1500m"),
            Some("3Gi"),
            json!({"spec": {"nodeName": "n"}}),
        ),
        pod_with("b", None, None, json!({"spec": {"nodeName": "n"}})),
    ];
    let d = decide(
        &pod("p", Some("1"), Some("2Gi")),
        std::slice::from_ref(&n),
        &existing,
    );
    let reasons: Vec<String> = verdict(&d, "n")
        .filter
        .as_ref()
        .unwrap_err()
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        reasons,
        ["Too many pods", "Insufficient cpu", "Insufficient memory"]
    );

    // Finished pods hold nothing; a pod without requests fits anywhere with a slot.
    let finished = pod_with(
        "c",
        Some("2"),
        Some("4Gi"),
        json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}}),
    );
    let d = decide(
        &pod("p", Some("2"), Some("4Gi")),
        std::slice::from_ref(&n),
        &[finished],
    );
    assert_eq!(d.node(), Some("n"));
    let d = decide(&pod("p", None, None), &[n], &existing[..1]);
    assert_eq!(d.node(), Some("n"));
}

#[test]
fn pod_requests_follow_init_container_and_overhead_rules() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [
                {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
                {"name": "proxy", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "warm", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0"}}},
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        },
    }))
    .unwrap();
    let mi = 1 << 20;
    // cpu: max(500 + 0 + 100 sidecar, 2000, 1000 + 100) + 10
    // memory: max(256 + 64, 1024, 2048 + 64) + 1
    assert_eq!(
        pod_requests(&p, false),
        Resources {
            milli_cpu: 2010,
            memory: 2113 * mi,
            ephemeral_storage: 0
        }
    );
    // Non-zero: "b" has an explicit cpu 0 (kept) and no memory (200Mi).
    assert_eq!(
        pod_requests(&p, true),
        Resources {
            milli_cpu: 2010,
            memory: 2113 * mi,
            ephemeral_storage: 0
        }
    );
    let bare = pod("p", None, None);
    assert_eq!(pod_requests(&bare, false), Resources::default());
    assert_eq!(pod_requests(&bare, true).milli_cpu, 100);
    assert_eq!(pod_requests(&bare, true).memory, 200 * mi);
}

#[test]
fn readiness_taint_is_not_duplicated() {
    let n = node_with(
        "n",
        "1",
        "1Gi",
        json!({"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]},
               "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    assert_eq!(NodeInfo::new(&n).taints.len(), 1);
}

// ---- taints and tolerations ----

#[test]
fn toleration_matching() {
    let t = taint("gpu", "nvidia", "NoSchedule");
    let cases = [
        // (key, operator, value, effect, tolerates?)
        ("gpu", "Equal", "nvidia", "NoSchedule", true),
        ("gpu", "", "nvidia", "NoSchedule", true), // "" operator means Equal
        ("gpu", "Equal", "amd", "NoSchedule", false),
        ("gpu", "Equal", "", "NoSchedule", false),
        ("gpu", "Exists", "", "NoSchedule", true),
        ("gpu", "Exists", "", "", true), // empty effect: every effect
        ("gpu", "Exists", "", "NoExecute", false),
        ("", "Exists", "", "", true), // empty key + Exists: everything
        ("", "Exists", "", "NoSchedule", true),
        ("cpu", "Exists", "", "", false),
        ("gpu", "Gt", "1", "", false), // unknown operator
    ];
    for (key, op, value, effect, want) in cases {
        let tol = toleration(key, op, value, effect);
        assert_eq!(tolerates(&tol, &t), want, "{key} {op} {value} {effect}");
    }
}

#[test]
fn taint_toleration_score_counts_prefer_no_schedule_and_reverses() {
    let taints = [
        taint("a", "", "PreferNoSchedule"),
        taint("b", "x", "PreferNoSchedule"),
        taint("c", "", "NoSchedule"),
    ];
    let cases: [(&[Toleration], i64); 4] = [
        (&[], 2),
        (&[toleration("a", "Exists", "", "PreferNoSchedule")], 1),
        (&[toleration("b", "Equal", "x", "")], 1),
        // A NoSchedule toleration does not help with PreferNoSchedule taints.
        (&[toleration("", "Exists", "", "NoSchedule")], 2),
    ];
    for (tols, want) in cases {
        assert_eq!(
            intolerable_prefer_no_schedule(&taints, tols),
            want,
            "{tols:?}"
        );
    }

    let nodes = [
        node("clean", "2", "2Gi"),
        node_with(
            "one",
            "2",
            "2Gi",
            json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}}),
        ),
        node_with(
            "two",
            "2",
            "2Gi",
            json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"},
                                       {"key": "b", "effect": "PreferNoSchedule"}]}}),
        ),
    ];
    let d = decide(&pod("p", Some("1"), Some("1Gi")), &nodes, &[]);
    assert_eq!(score(&d, "clean", TAINT), (0, 100));
    assert_eq!(score(&d, "one", TAINT), (1, 50));
    assert_eq!(score(&d, "two", TAINT), (2, 0));
    assert_eq!(d.node(), Some("clean"));
}

// ---- node affinity ----

#[test]
fn node_selector_operators() {
    let labels: BTreeMap<String, String> = [("zone", "a"), ("cores", "8")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    };
    let cases = [
        (req("zone", "In", &["a", "b"]), true),
        (req("zone", "In", &["b"]), false),
        (req("nope", "In", &["a"]), false),
        (req("zone", "NotIn", &["b"]), true),
        (req("zone", "NotIn", &["a"]), false),
        (req("nope", "NotIn", &["a"]), true), // absent label is not in any set
        (req("zone", "Exists", &[]), true),
        (req("nope", "Exists", &[]), false),
        (req("nope", "DoesNotExist", &[]), true),
        (req("zone", "DoesNotExist", &[]), false),
        (req("cores", "Gt", &["4"]), true),
        (req("cores", "Gt", &["8"]), false),
        (req("cores", "Lt", &["16"]), true),
        (req("cores", "Lt", &["8"]), false),
        (req("zone", "Gt", &["1"]), false), // label not an integer
        (req("cores", "Gt", &["1", "2"]), false), // needs exactly one value
        (req("nope", "Lt", &["100"]), false), // absent label
        (req("zone", "Near", &["a"]), false), // unknown operator
    ];
    for (r, want) in cases {
        assert_eq!(label_requirement_matches(&r, &labels), want, "{r:?}");
    }
}

#[test]
fn node_affinity_terms_are_or_of_ands_with_match_fields() {
    let nodes = [
        node_with(
            "a",
            "2",
            "2Gi",
            json!({"metadata": {"labels": {"zone": "z1", "disk": "ssd"}}}),
        ),
        node_with(
            "b",
            "2",
            "2Gi",
            json!({"metadata": {"labels": {"zone": "z1", "disk": "hdd"}}}),
        ),
        node_with(
            "c",
            "2",
            "2Gi",
            json!({"metadata": {"labels": {"zone": "z2", "disk": "hdd"}}}),
        ),
    ];
    let feasible = |terms: Value| -> Vec<String> {
        let p = pod_with(
            "p",
            Some("1"),
            None,
            json!({"spec": {"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
        );
        decide(&p, &nodes, &[])
            .examined
            .iter()
            .filter(|v| v.filter.is_ok())
            .map(|v| v.node.to_string())
            .collect()
    };
    // One term, two expressions: AND.
    assert_eq!(
        feasible(json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1"]},
            {"key": "disk", "operator": "In", "values": ["hdd"]}]}])),
        ["b"]
    );
    // Two terms: OR.
    assert_eq!(
        feasible(json!([
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}])),
        ["a", "c"]
    );
    // matchFields on metadata.name, ANDed with the expressions of its term.
    assert_eq!(
        feasible(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "NotIn", "values": ["a"]}],
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}])),
        ["b"]
    );
    assert_eq!(
        feasible(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["c"]}]}])),
        ["c"]
    );
    // An empty term, or no terms, matches nothing.
    assert!(feasible(json!([{}])).is_empty());
    assert!(feasible(json!([])).is_empty());
}

#[test]
fn preferred_node_affinity_scores_matched_weights() {
    let nodes = [
        node_with(
            "a",
            "2",
            "2Gi",
            json!({"metadata": {"labels": {"disk": "ssd", "gpu": "1"}}}),
        ),
        node_with(
            "b",
            "2",
            "2Gi",
            json!({"metadata": {"labels": {"disk": "ssd"}}}),
        ),
        node("c", "2", "2Gi"),
    ];
    let p = pod_with(
        "p",
        Some("1"),
        None,
        json!({"spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 30, "preference": {"matchExpressions": [
                    {"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 50, "preference": {"matchExpressions": [
                    {"key": "gpu", "operator": "Exists"}]}}]}}}}),
    );
    let d = decide(&p, &nodes, &[]);
    assert_eq!(score(&d, "a", AFFINITY), (80, 100));
    assert_eq!(score(&d, "b", AFFINITY), (30, 37)); // 100 · 30 / 80
    assert_eq!(score(&d, "c", AFFINITY), (0, 0));
    assert_eq!(d.node(), Some("a"));
}

// ---- normalisation ----

#[test]
fn normalize_helpers() {
    let cases: [(&[i64], bool, &[i64]); 5] = [
        (&[0, 5, 10], false, &[0, 50, 100]),
        (&[0, 5, 10], true, &[100, 50, 0]),
        (&[0, 0], false, &[0, 0]),
        (&[0, 0], true, &[100, 100]),
        (&[1, 3], false, &[33, 100]), // integer division
    ];
    for (input, reverse, want) in cases {
        let mut s = input.to_vec();
        default_normalize_score(100, reverse, &mut s);
        assert_eq!(s, want, "{input:?} reverse={reverse}");
    }

    let cases: [(&[i64], &[i64]); 4] = [
        (&[2, 5, 8], &[100, 62, 25]), // 100·(8+2−s)/8
        (&[6, 6], &[100, 100]),
        (&[0, 0], &[100, 100]),
        (&[0, 4], &[100, 0]),
    ];
    for (input, want) in cases {
        let mut s = input.to_vec();
        spread_normalize_score(&mut s);
        assert_eq!(s, want, "{input:?}");
    }
    assert!((topology_normalizing_weight(1) - 3f64.ln()).abs() < 1e-12);
}

// ---- spreading ----

#[test]
fn spreading_prefers_the_node_with_fewer_pods_of_the_same_owner() {
    let nodes = [
        node("a", "4", "8Gi"),
        node("b", "4", "8Gi"),
        node("c", "4", "8Gi"),
    ];
    let existing = [
        rs_pod("web-1", "web", "a"),
        rs_pod("web-2", "web", "a"),
        rs_pod("web-3", "web", "b"),
        // Other owners' pods balance the resources but are not "ours".
        rs_pod("db-1", "db", "b"),
        rs_pod("db-2", "db", "c"),
        rs_pod("db-3", "db", "c"),
    ];
    let p = pod_with(
        "web-4",
        Some("100m"),
        Some("100Mi"),
        json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [owner("web")]}}),
    );
    let d = decide(&p, &nodes, &existing);
    // hostname only (no zone labels): w = ln(3 + 2); raw = round(cnt·w + 2)
    let w = 5f64.ln();
    let raw = |cnt: f64| (cnt * w + 2.0).round() as i64;
    assert_eq!(score(&d, "a", SPREAD).0, raw(2.0)); // 5
    assert_eq!(score(&d, "b", SPREAD).0, raw(1.0)); // 4
    assert_eq!(score(&d, "c", SPREAD), (2, 100)); // 100·(5+2−2)/5
    assert_eq!(score(&d, "a", SPREAD).1, 40);
    assert_eq!(d.node(), Some("c"));
}

#[test]
fn spreading_counts_only_live_pods_of_the_same_group_and_namespace() {
    let nodes = [node("a", "4", "8Gi"), node("b", "4", "8Gi")];
    let mut terminating = rs_pod("web-1", "web", "a");
    terminating.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap());
    let mut elsewhere = rs_pod("web-2", "web", "a");
    elsewhere.metadata.namespace = Some("other".into());
    let labelled_no_owner = pod_with(
        "x",
        Some("100m"),
        Some("100Mi"),
        json!({"metadata": {"labels": {"app": "x"}}, "spec": {"nodeName": "b"}}),
    );
    let d = decide(
        &rs_pod("web-3", "web", ""),
        &nodes,
        &[terminating, elsewhere, labelled_no_owner.clone()],
    );
    assert_eq!(score(&d, "a", SPREAD).0, score(&d, "b", SPREAD).0);

    // An owner-less pod spreads away from pods with the same labels.
    let mut p = labelled_no_owner;
    p.metadata.name = Some("y".into());
    p.spec.as_mut().unwrap().node_name = None;
    let d = decide(
        &p,
        &nodes,
        &[pod_with(
            "x",
            Some("100m"),
            Some("100Mi"),
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"nodeName": "b"}}),
        )],
    );
    assert!(score(&d, "a", SPREAD).1 > score(&d, "b", SPREAD).1);

    // No owner and no labels: no constraints, the plugin skips.
    let d = decide(&pod("p", Some("1"), None), &nodes, &[]);
    assert!(d.skipped_plugins[SPREAD]);
}

#[test]
fn spreading_across_zones() {
    let zone = |name: &str, z: &str| {
        node_with(
            name,
            "4",
            "8Gi",
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}}),
        )
    };
    let nodes = [zone("a1", "a"), zone("a2", "a"), zone("b1", "b")];
    let existing = [rs_pod("web-1", "web", "a1")];
    let d = decide(&rs_pod("web-2", "web", ""), &nodes, &existing);
    // hostname: 3 domains, w_h = ln 5; zone: 2 domains, w_z = ln 4.
    let (wh, wz) = (5f64.ln(), 4f64.ln());
    let raw = |host: f64, zone: f64| (host * wh + 2.0 + zone * wz + 4.0).round() as i64;
    assert_eq!(score(&d, "a1", SPREAD).0, raw(1.0, 1.0)); // 9
    assert_eq!(score(&d, "a2", SPREAD).0, raw(0.0, 1.0)); // 7
    assert_eq!(score(&d, "b1", SPREAD).0, raw(0.0, 0.0)); // 6
    assert_eq!(score(&d, "b1", SPREAD).1, 100);
    assert_eq!(d.node(), Some("b1"));

    // A node with no zone label scores on hostname only, and its "" zone
    // still counts as a domain for the zone weight.
    let nodes = [zone("a1", "a"), node("bare", "4", "8Gi")];
    let d = decide(&rs_pod("web-2", "web", ""), &nodes, &existing);
    // Two feasible nodes (w_h = ln 4) and two zone domains, "a" and "" (w_z = ln 4).
    let w = 4f64.ln();
    assert_eq!(
        score(&d, "a1", SPREAD).0,
        (w + 2.0 + w + 4.0).round() as i64
    ); // 9
    assert_eq!(score(&d, "bare", SPREAD).0, 2);
}

// ---- selectHost ----

#[test]
fn ties_are_broken_by_the_seed_deterministically() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), "2", "2Gi")).collect();
    let snapshot = Snapshot::new(&nodes, []);
    let p = pod("p", Some("1"), Some("1Gi"));
    for seed in 0..20 {
        let a = schedule(&p, &snapshot, &mut SplitMix64::new(seed));
        let b = schedule(&p, &snapshot, &mut SplitMix64::new(seed));
        assert_eq!(a, b);
        assert_eq!(a.result.as_ref().unwrap().ties, 4);
    }
}

#[test]
fn ties_are_broken_uniformly() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), "2", "2Gi")).collect();
    let snapshot = Snapshot::new(&nodes, []);
    let p = pod("p", Some("1"), Some("1Gi"));
    let mut counts = BTreeMap::new();
    for seed in 0..4000 {
        let d = schedule(&p, &snapshot, &mut SplitMix64::new(seed));
        *counts.entry(d.node().unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 4);
    for (node, count) in counts {
        assert!((850..=1150).contains(&count), "{node}: {count} of 4000");
    }

    // select_host itself: only the maximum is ever picked.
    let mut rng = SplitMix64::new(3);
    let mut picked = [0; 5];
    for _ in 0..3000 {
        let (i, ties) = select_host(&[5, 9, 1, 9, 9], &mut rng).unwrap();
        assert_eq!(ties, 3);
        picked[i] += 1;
    }
    assert_eq!((picked[0], picked[2]), (0, 0));
    assert!(
        picked[1] > 850 && picked[3] > 850 && picked[4] > 850,
        "{picked:?}"
    );
    assert_eq!(select_host(&[], &mut rng), None);
}

#[test]
fn a_single_feasible_node_is_chosen_without_scoring() {
    let nodes = [node("small", "1", "1Gi"), node("big", "8", "8Gi")];
    let d = decide(&pod("p", Some("2"), None), &nodes, &[]);
    let placement = d.result.as_ref().unwrap();
    assert_eq!(&*placement.node, "big");
    assert!(placement.top.is_empty());
    assert!(d.examined.iter().all(|v| v.scores.is_none()));
}

// ---- unschedulable pods ----

#[test]
fn unschedulable_message_counts_and_sorts_reasons() {
    let nodes = [
        node_with(
            "down",
            "8",
            "8Gi",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        ),
        node("n1", "1", "1Gi"),
        node("n2", "1", "1Gi"),
    ];
    let d = decide(&pod("p", Some("2"), Some("512Mi")), &nodes, &[]);
    assert_eq!(d.node(), None);
    assert_eq!(
        d.message().unwrap(),
        "0/3 nodes are available: 1 node(s) had untolerated taint \
         {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."
    );

    // A node short of two resources counts under both.
    let d = decide(&pod("p", Some("2"), Some("2Gi")), &nodes[1..], &[]);
    assert_eq!(
        d.message().unwrap(),
        "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
    );

    // Sorted as strings, like Go's sort.Strings: "10 ..." before "2 ...".
    let e = FitError {
        num_all_nodes: 12,
        reasons: [(Reason::TooManyPods, 2), (Reason::Insufficient("cpu"), 10)].into(),
    };
    assert_eq!(
        e.to_string(),
        "0/12 nodes are available: 10 Insufficient cpu, 2 Too many pods."
    );
    let d = decide(&pod("p", None, None), &[], &[]);
    assert_eq!(d.message().unwrap(), "no nodes available to schedule pods");
}

// ---- sampling: numFeasibleNodesToFind and nextStartNodeIndex ----

#[test]
fn num_feasible_nodes_to_find_cases() {
    let cases = [
        (0, 0, 0),
        (5, 0, 5),
        (99, 0, 99),
        (100, 0, 100),
        (500, 0, 230),
        (1000, 0, 420),
        (5000, 0, 500),
        (6000, 0, 300), // 5% floor
        (1000, 10, 100),
        (1000, 50, 500),
        (1000, 100, 1000),
    ];
    for (nodes, pct, want) in cases {
        assert_eq!(
            num_feasible_nodes_to_find(nodes, pct),
            want,
            "{nodes} @ {pct}%"
        );
    }
}

#[test]
fn scheduler_rotates_its_start_node() {
    let nodes: Vec<Node> = (0..250)
        .map(|i| node(&format!("n{i:03}"), "2", "2Gi"))
        .collect();
    let snapshot = Snapshot::new(&nodes, []);
    let p = pod("p", Some("1"), Some("1Gi"));
    let mut s = Scheduler::new(1);
    // 250 nodes: max(100, 250 · 48%) = 120 feasible are enough.
    let d = s.schedule(&p, &snapshot);
    assert_eq!(d.examined.len(), 120);
    assert_eq!(&*d.examined[0].node, "n000");
    assert_eq!(s.next_start_node_index, 120);
    let d = s.schedule(&p, &snapshot);
    assert_eq!(&*d.examined[0].node, "n120");
    assert_eq!(&*d.examined[119].node, "n239");
    // The third cycle wraps around the end of the list.
    let d = s.schedule(&p, &snapshot);
    assert_eq!(&*d.examined[0].node, "n240");
    assert_eq!(&*d.examined[10].node, "n000");
    assert_eq!(s.next_start_node_index, 110);
    assert!(d.explain().contains("130 more nodes not examined"));

    // Rejected nodes count as processed too.
    let mut nodes = nodes;
    for n in &mut nodes[..50] {
        n.spec.as_mut().unwrap().unschedulable = Some(true);
    }
    let snapshot = Snapshot::new(&nodes, []);
    let mut s = Scheduler::new(1);
    let d = s.schedule(&p, &snapshot);
    assert_eq!(d.examined.len(), 170);
    assert_eq!(s.next_start_node_index, 170);
}

// ---- explain ----

#[test]
fn explain_is_a_deterministic_table() {
    let nodes = [
        node("a", "4", "10000"),
        node("b", "6", "10000"),
        node("small", "1", "10000"),
    ];
    let d = decide(&pod("p", Some("3000m"), Some("5000")), &nodes, &[]);
    let want = "\
default/p -> b (2/3 nodes feasible; score 450)
NODE   FILTER  TAINT×3  AFFINITY×2  FIT×1  SPREAD×2  BALANCED×1  TOTAL
a      ok      100(0)   0           37     -         87          424
b      ok      100(0)   0           50     -         100         450
small  NodeResourcesFit: Insufficient cpu
top: b 450, a 424
";
    assert_eq!(d.explain(), want);
    assert_eq!(
        d.explain(),
        decide(&pod("p", Some("3000m"), Some("5000")), &nodes, &[]).explain()
    );

    let d = decide(&pod("p", Some("64"), None), &nodes, &[]);
    assert_eq!(
        d.explain().lines().next().unwrap(),
        "default/p: 0/3 nodes are available: 3 Insufficient cpu."
    );
}
