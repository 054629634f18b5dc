//! The `labs store` lab's output, as the book shows it.
//!
//! The lab is deterministic, so its whole transcript is a snapshot: a change
//! to the store's semantics (a revision off by one, a lost event, a different
//! error) shows up here as a diff, and the book chapter, which includes the
//! same output, must be updated with it.

#[tokio::test]
async fn store_lab_output() {
    let mut out = Vec::new();
    labs::store::lab::run(&mut out).await.unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}
