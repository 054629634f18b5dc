//! Draining (issue 11): after SIGTERM `/readyz` fails at once while `/`
//! still answers for the drain period; then the app exits 0.

use std::time::{Duration, Instant};

use crate::support::App;

#[tokio::test]
async fn after_sigterm_readyz_fails_while_serving_for_the_drain_period() {
    let mut app = App::start(&["--drain-seconds", "2", "--app-version", "v1"], &[]).await;
    assert_eq!(app.get("/readyz").await, (200, "ok\n".into()));

    app.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let reason = app.wait_for("/readyz", 503, Duration::from_secs(1)).await;
    assert_eq!(reason, "draining: SIGTERM received, finishing requests\n");

    // Traffic the load balancer still sends is served, not refused.
    let mut served = 0;
    while signalled.elapsed() < Duration::from_millis(1500) {
        let (status, body) = app.get("/").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(app.get("/livez").await.0, 200, "livez never fails");
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 10, "{served}");

    let status = tokio::time::timeout(Duration::from_secs(5), app.child.wait())
        .await
        .expect("exits after the drain period")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1900),
        "exited after {:?}, before the 2 s drain period",
        signalled.elapsed()
    );
    assert_eq!(app.get("/").await.0, 0, "nothing listens after exit");
}
