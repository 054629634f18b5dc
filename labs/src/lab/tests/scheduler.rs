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

/// The chapter "The scheduler" shows three parts of the run, each cut from
/// the real output here into `book/src/generated/`, so no excerpt can drift:
/// the score table of step 3's second pod (`labs-scheduler-web-2.txt`, its
/// worked example), steps 4 and 5 (the pod that fits nowhere, and the node
/// that rescues it) and the closing table of where every pod went.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let mut out = Vec::new();
    crate::lab::scheduler::run(&mut out)
        .await
        .expect("the lab runs");
    let output = String::from_utf8(out).unwrap();

    // Step 3's table in full: web-#2's decision line, the one followed by a
    // `NODE  FILTER` header, down to its `top:` line, unindented.
    let lines: Vec<&str> = output.lines().collect();
    let decision = lines
        .windows(2)
        .position(|w| {
            w[0].trim_start().starts_with("default/web-#2 -> ")
                && w[1].trim_start().starts_with("NODE    FILTER")
        })
        .expect("the lab shows web-#2's score table");
    let top = decision
        + lines[decision..]
            .iter()
            .position(|l| l.trim_start().starts_with("top:"))
            .expect("the table ends with its top scores");
    let table: String = lines[decision..=top]
        .iter()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    crate::lab::book::check_generated("labs-scheduler-web-2.txt", &table)
        .unwrap_or_else(|e| panic!("{e}"));

    let start = output.find("\n4. ").expect("the lab has a step 4") + 1;
    let end = output.find("\n6. ").expect("the lab has a step 6") + 1;
    crate::lab::book::check_generated("labs-scheduler-steps-4-5.txt", &output[start..end])
        .unwrap_or_else(|e| panic!("{e}"));

    let start = output
        .find("\nWhere everything is:")
        .expect("the lab ends with where the pods went")
        + 1;
    let end = start
        + output[start..]
            .find("\n\n")
            .expect("a blank line ends the table")
        + 1;
    crate::lab::book::check_generated("labs-scheduler-where.txt", &output[start..end])
        .unwrap_or_else(|e| panic!("{e}"));
}
