//! The `demo-app` binary as the kubelet sees it.

use std::time::Duration;

use crate::support::{App, BIN};

/// The binary itself: started as a child, it answers, and SIGTERM makes it
/// exit 0 — what the kubelet relies on for a graceful rolling update.
#[tokio::test]
async fn the_binary_exits_zero_on_sigterm() {
    let mut app = App::start(
        &["--app-version", "v7"],
        &[("POD_NAME".into(), "web-abc12".into())],
    )
    .await;
    let (status, body) = app.get("/").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"version": "v7", "pod": "web-abc12", "database": "no database"})
    );

    app.signal(libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(5), app.child.wait())
        .await
        .expect("exits promptly after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// `demo-app get`: one line per request, `error: ...` lines and exit 1 when
/// a request fails.
#[tokio::test]
async fn get_prints_one_line_per_request() {
    let app = App::start(&["--app-version", "v3"], &[("POD_NAME".into(), "p".into())]).await;
    let out = tokio::process::Command::new(BIN)
        .args(["get", &format!("http://{}/", app.addr), "--count", "3"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["version"], "v3");
    }

    let out = tokio::process::Command::new(BIN)
        .args(["get", &format!("http://{}/nope", app.addr)])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "error: HTTP 404: \n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

/// A bad flag is one readable line from clap, no panic.
#[tokio::test]
async fn incomplete_database_settings_are_one_line() {
    let out = tokio::process::Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env("DB_HOST", "127.0.0.1")
        .env_remove("DB_USER")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().lines().last(),
        Some("demo-app: DB_HOST is set but DB_USER is not: set both (or neither)")
    );
}
