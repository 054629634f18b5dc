//! The `demo-app` binary as the kubelet sees it.

use std::time::Duration;

/// The binary itself: started as a child, it answers, and SIGTERM makes it
/// exit 0 — what the kubelet relies on for a graceful rolling update.
#[tokio::test]
async fn the_binary_exits_zero_on_sigterm() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bin = env!("CARGO_BIN_EXE_demo-app");
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--app-version",
            "v7",
        ])
        .env("POD_NAME", "web-abc12")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let mut body = None;
    for _ in 0..100 {
        if let Ok(resp) = reqwest::get(&url).await {
            body = Some(resp.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        body,
        Some(serde_json::json!({"version": "v7", "pod": "web-abc12"}))
    );

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits promptly after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}
