//! `kubectl logs` against the real kubelet, through the real kubectl: the
//! API server's `pods/{name}/log` asks the pod's node's kubelet, which
//! reads its runtime's log of the container.
//!
//! * `kubectl logs -f` follows: it prints lines written after it started,
//!   and ends by itself when the container exits;
//! * `kubectl logs --previous` reads the instance before the last restart,
//!   and says so, as upstream does, when there is none.
//!
//! The container is simulated (one line when it starts, one when it
//! crashes, `crashAfterSeconds` after the start). Real time and real
//! sockets, so every wait is bounded.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use labs::cluster::SimulatedNodes;
use labs::kubelet::runtime::simulated::SimulatedConfig;
use workbook::apiserver::TestServer;
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(30);

const CRASHING_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
  annotations:
    labs.workbook/simulate: '{"crashAfterSeconds": 3}'
spec:
  containers:
  - name: app
    image: workbook/demo-app:v1
"#;

/// (phase, restart count, container running?)
async fn state(pods: &Api<Pod>, name: &str) -> (String, i32, bool) {
    let Ok(pod) = pods.get(name).await else {
        return (String::new(), 0, false);
    };
    let status = pod.status.unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().pop();
    (
        status.phase.unwrap_or_default(),
        container.as_ref().map_or(0, |c| c.restart_count),
        container
            .and_then(|c| c.state)
            .is_some_and(|s| s.running.is_some()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_follows_and_reads_the_previous_instance() {
    let s = TestServer::start().await;
    let nodes = SimulatedNodes::start(&s.api, &s.client(), 1, SimulatedConfig::default(), 1);
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let f = s.file("crash.yaml", &CRASHING_POD.replace("NAME", "crash"));
    s.kubectl(&["create", "-f", &f]).await.ok();
    wait_for("the first instance running", LIMIT, || async {
        let (phase, restarts, running) = state(&pods, "crash").await;
        phase == "Running" && restarts == 0 && running
    })
    .await;

    // No previous instance yet: upstream's message, exit code 1.
    let out = s.kubectl(&["logs", "crash", "--previous"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains(r#"previous terminated container "app" in pod "crash" not found"#),
        "{out:?}"
    );

    // Follow the running instance: the start line at once, the crash line
    // when it happens (up to 3 s later), then the stream ends by itself.
    let started = Instant::now();
    let out = s.kubectl(&["logs", "-f", "crash"]).await;
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("started v1 in pod crash"), "{text}");
    assert_eq!(lines[1], "exiting with code 1", "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "-f ended when the container exited"
    );

    // Restarted: --previous reads the instance that crashed, and the plain
    // log is the new instance's (its start line only, so far).
    wait_for("a restart", LIMIT, || async {
        let (_, restarts, running) = state(&pods, "crash").await;
        restarts >= 1 && running
    })
    .await;
    let previous = s.kubectl(&["logs", "crash", "--previous"]).await;
    assert!(
        previous.ok().ends_with("exiting with code 1\n"),
        "{previous:?}"
    );
    let current = s.kubectl(&["logs", "crash"]).await;
    let current = current.ok();
    assert!(current.starts_with("started v1 in pod crash"), "{current}");

    // --timestamps and --tail go through to the kubelet too.
    let out = s
        .kubectl(&["logs", "crash", "--previous", "--tail=1", "--timestamps"])
        .await;
    let text = out.ok();
    assert_eq!(text.lines().count(), 1, "{text}");
    let (stamp, line) = text.trim_end().split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{text}");
    assert_eq!(line, "exiting with code 1");

    nodes.stop().await.unwrap();
    s.stop().await;
}
