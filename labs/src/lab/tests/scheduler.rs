//! `labs scheduler`'s narration, snapshot-tested: the run is deterministic
//! (one thread, paused clock, seeded tie-breaking, aliased pod names), so
//! any change in a decision or a message shows up here.

#[tokio::test(start_paused = true)]
async fn labs_scheduler_output() {
    let mut out = Vec::new();
    crate::lab::scheduler::run(&mut out)
        .await
        .expect("the lab runs");
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}
