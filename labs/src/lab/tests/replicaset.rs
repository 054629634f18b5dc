//! The `labs replicaset` lab's output, as the book shows it.
//!
//! The lab runs with tokio's clock paused on one thread and prints pod names
//! as stable aliases, so its whole transcript is a snapshot: a change in the
//! controller's behaviour (a batch size, the deletion order, a pod not
//! adopted, a pod the garbage collector missed) shows up here as a diff.

#[tokio::test(start_paused = true)]
async fn replicaset_lab_output() {
    let mut out = Vec::new();
    crate::lab::replicaset::run(&mut out).await.unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

/// Run it again: the same transcript (no randomness leaks into the output).
#[tokio::test(start_paused = true)]
async fn replicaset_lab_is_deterministic() {
    let mut first = Vec::new();
    crate::lab::replicaset::run(&mut first).await.unwrap();
    let mut second = Vec::new();
    crate::lab::replicaset::run(&mut second).await.unwrap();
    assert_eq!(String::from_utf8(first), String::from_utf8(second));
}

/// The chapter "Controllers and the ReplicaSet" includes `book/src/generated/labs-replicaset.txt` as the output of its
/// "Try it" command; it must be what the lab prints now.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let mut out = Vec::new();
    crate::lab::replicaset::run(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    crate::lab::book::check_generated("labs-replicaset.txt", &output)
        .unwrap_or_else(|e| panic!("{e}"));
}
