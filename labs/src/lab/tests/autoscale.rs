//! `labs autoscale`'s narration, snapshot-tested, and what it must show:
//! the HPA scales up under load, keeps the pods for the 5-minute
//! stabilization window after the load drops, and scales down after it.

#[tokio::test(start_paused = true)]
async fn labs_autoscale_output() {
    let mut out = Vec::new();
    let outcome = crate::lab::autoscale::run(&mut out)
        .await
        .expect("the lab runs");
    let text = String::from_utf8(out).unwrap();
    // 400m over pods requesting 100m at a 50% target: 8 pods (1 → 4 → 8:
    // without `behavior`, at most max(2 × current, 4) per sync). The window
    // runs from the last recommendation under load (a sync up to 15 s
    // before the drop); the first sync once it is more than 300 s old (a
    // recommendation exactly 300 s old still counts, as upstream's
    // `stabilizeRecommendation` has it) scales down: 285-315 s after the
    // drop.
    assert_eq!(outcome.peak, 8, "{text}");
    let after = outcome.scaled_down_after.expect("it scaled down");
    assert!(
        (285..=315).contains(&after),
        "scaled down {after} s after the load dropped:\n{text}"
    );
    assert_eq!(outcome.end, 1, "{text}");
    insta::assert_snapshot!(text);
}
