//! The `labs kubelet` lab's output, as the book shows it.
//!
//! One kubelet on the simulated runtime, on paused time: the whole
//! transcript is a snapshot. A change in the kubelet's behaviour (a reason,
//! a back-off step, an event, a probe's timing) shows up here as a diff.

#[tokio::test(start_paused = true)]
async fn kubelet_lab_output() {
    let mut out = Vec::new();
    let facts = crate::lab::kubelet::run_with_facts(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    // A few facts checked directly, so that a failure says what broke.
    // The first restart is immediate, then the waits double from 10 s.
    assert_eq!(facts.crash_loop_waits, [0, 10, 20, 40], "{output}");
    assert_eq!(facts.restart_counts, [1, 2, 3, 4], "{output}");
    // Pulls of the missing image: at once, then after 10 s, then 20 s more.
    assert_eq!(facts.pull_attempts, [0, 10, 30], "{output}");
    // Graceful deletion: exits 0 within the grace period, else SIGKILL.
    assert_eq!(facts.exit_codes.get("web"), Some(&0), "{output}");
    assert_eq!(facts.exit_codes.get("stuck"), Some(&137), "{output}");
    assert!(output.contains("CrashLoopBackOff"), "{output}");
    assert!(output.contains("ImagePullBackOff"), "{output}");
    assert!(
        output.contains("exiting with code 1"),
        "logs --previous: {output}"
    );
    insta::assert_snapshot!(output);
}

/// Run it again: the same transcript (no randomness leaks into the output).
#[tokio::test(start_paused = true)]
async fn kubelet_lab_is_deterministic() {
    let mut first = Vec::new();
    crate::lab::kubelet::run(&mut first).await.unwrap();
    let mut second = Vec::new();
    crate::lab::kubelet::run(&mut second).await.unwrap();
    assert_eq!(String::from_utf8(first), String::from_utf8(second));
}

/// The chapter "The kubelet and the container runtime" includes `book/src/generated/labs-kubelet.txt` as the output of its
/// "Try it" command; it must be what the lab prints now.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let mut out = Vec::new();
    crate::lab::kubelet::run(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    crate::lab::book::check_generated("labs-kubelet.txt", &output)
        .unwrap_or_else(|e| panic!("{e}"));
}
