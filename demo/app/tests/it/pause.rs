//! `demo-app pause`: the pod sandbox process sleeps until told to stop.

use std::time::Duration;

use crate::support::BIN;

#[tokio::test]
async fn pause_sleeps_then_exits_zero_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child = tokio::process::Command::new(BIN)
            .arg("pause")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // It keeps running: a sandbox that exits would take the pod's
        // network with it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "pause exited by itself"
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id().unwrap() as libc::pid_t, signal) };
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .expect("pause exits promptly")
            .unwrap();
        assert!(status.success(), "signal {signal}: {status:?}");
    }
}
