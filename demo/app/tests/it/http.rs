//! The workload answers over real HTTP, and shuts down cleanly.

use std::time::Duration;

use demo_app::{App, AppInfo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test]
async fn answers_root_and_probes_over_http_then_drains() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let info = AppInfo {
        version: "v2".into(),
        pod: "web-6b7f9c-x2x4z".into(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(demo_app::serve(listener, App::new(info.clone()), async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let root = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert!(
        root.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "GET / is JSON"
    );
    let body: serde_json::Value = root.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"version": "v2", "pod": "web-6b7f9c-x2x4z", "database": "no database"})
    );

    // Liveness under its two names, and readiness (no database, not
    // draining: ready).
    for (path, body) in [("livez", "ok"), ("healthz", "ok"), ("readyz", "ok\n")] {
        let probe = http
            .get(format!("http://{addr}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 200, "/{path}");
        assert_eq!(probe.text().await.unwrap(), body, "/{path}");
    }

    let missing = http
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The kubelet's SIGTERM, as a future: the server stops and returns Ok.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server drains promptly")
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/livez")).await.is_err(),
        "nothing listens after shutdown"
    );
}
