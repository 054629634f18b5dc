//! The `labs node-failure` lab's output, as the book shows it, and the facts
//! it demonstrates checked directly on a run of its own.
//!
//! The lab runs with tokio's clock paused on one thread, the scheduler
//! seeded and pod names aliased, so its whole transcript is a snapshot: a
//! change in the node lifecycle controller, the scheduler or the kubelet
//! (a later taint, a pod evicted early, a replacement on the dead node)
//! shows up here as a diff.

async fn transcript() -> String {
    let mut out = Vec::new();
    crate::lab::node_failure::run(&mut out)
        .await
        .expect("the lab runs");
    String::from_utf8(out).unwrap()
}

#[tokio::test(start_paused = true)]
async fn node_failure_lab_output() {
    insta::assert_snapshot!(transcript().await);
}

/// Run it again: the same transcript (no randomness leaks into the output).
#[tokio::test(start_paused = true)]
async fn node_failure_lab_is_deterministic() {
    let first = transcript().await;
    let second = transcript().await;
    assert_eq!(first, second);
}

/// The chapter "When a node dies" includes `book/src/generated/labs-node-failure.txt` as the output of its
/// "Try it" command; it must be what the lab prints now.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let output = transcript().await;
    crate::lab::book::check_generated("labs-node-failure.txt", &output)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The story's facts, read from the API server by the lab at the moments
/// that matter, apart from how they are narrated.
#[tokio::test(start_paused = true)]
async fn the_dead_nodes_pods_move_and_the_taint_comes_and_goes() {
    let mut out = Vec::new();
    let seen = crate::lab::node_failure::run_checked(&mut out)
        .await
        .expect("the lab runs");
    assert_eq!(seen.ready_after_grace, "Unknown");
    assert_eq!(
        seen.taints_after_grace,
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    assert_eq!(
        seen.active_on_node_2_after_eviction, 0,
        "no running pod of web is left on node-2, and none was put there"
    );
    assert_eq!(seen.available_at_end, 6);
    assert_eq!(seen.on_node_2_at_end, 0, "the evicted pods are gone");
    assert!(seen.taints_at_end.is_empty(), "{:?}", seen.taints_at_end);
}
