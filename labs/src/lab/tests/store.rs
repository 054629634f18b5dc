//! The `labs store` lab's output, as the book shows it.
//!
//! The lab is deterministic, so its whole transcript is a snapshot: a change
//! to the store's semantics (a revision off by one, a lost event, a different
//! error) shows up here as a diff, and the book chapter, which includes the
//! same output, must be updated with it.

#[tokio::test]
async fn store_lab_output() {
    let mut out = Vec::new();
    crate::lab::store::run(&mut out).await.unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

/// The chapter "etcd: the cluster's memory" includes `book/src/generated/labs-store.txt` as the output of its
/// "Try it" command; it must be what the lab prints now.
#[tokio::test]
async fn the_book_shows_the_real_output() {
    let mut out = Vec::new();
    crate::lab::store::run(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    crate::lab::book::check_generated("labs-store.txt", &output).unwrap_or_else(|e| panic!("{e}"));
}
