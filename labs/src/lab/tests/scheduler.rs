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

/// The chapter "The scheduler" shows steps 4 and 5 of the run (the pod that
/// fits nowhere, and the node that rescues it) from
/// `book/src/generated/labs-scheduler-steps-4-5.txt`: cut from the real
/// output here, so the excerpt cannot drift either.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let mut out = Vec::new();
    crate::lab::scheduler::run(&mut out)
        .await
        .expect("the lab runs");
    let output = String::from_utf8(out).unwrap();
    let start = output.find("\n4. ").expect("the lab has a step 4") + 1;
    let end = output.find("\n6. ").expect("the lab has a step 6") + 1;
    crate::lab::book::check_generated("labs-scheduler-steps-4-5.txt", &output[start..end])
        .unwrap_or_else(|e| panic!("{e}"));
}
