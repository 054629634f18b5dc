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

/// The chapter "etcd: the cluster's memory" shows the lab's output in its
/// "Try it" section. It is pasted, not included (the book's include check
/// works on anchors, and a snapshot file cannot carry them), so this test
/// keeps the two equal: change the lab, and this fails until the chapter
/// shows the new output.
#[tokio::test]
async fn the_book_shows_the_real_output() {
    let chapter =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../book/src/etcd.md"))
            .unwrap();
    let mut out = Vec::new();
    crate::lab::store::run(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    assert!(
        chapter.contains(&format!("```text\n{output}```\n")),
        "book/src/etcd.md must show the output of `cargo run -p labs -- store`:\n{output}"
    );
}
