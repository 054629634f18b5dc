//! The single steps, as a learner runs them in two terminals: `demo up`
//! keeps the local cluster in the foreground, and `demo deploy`, `demo
//! update`, `demo history`, `demo rollback`, `demo down` find it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn demo(state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .env("DEMO_STATE_DIR", state)
        .output()
        .expect("the demo binary runs")
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn single_steps_against_a_cluster_demo_up_keeps_running() {
    let state = tempfile::tempdir().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("up")
        .env("DEMO_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !state.path().join("local.json").exists() {
        assert!(Instant::now() < deadline, "demo up did not start a cluster");
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = std::panic::catch_unwind(|| {
        let s = state.path();
        ok(demo(s, &["deploy"]));
        // Idempotent: the second apply changes nothing and succeeds.
        ok(demo(s, &["deploy"]));
        // A version that never becomes ready: one clear line, exit 1.
        let stalled = demo(s, &["update", "--bad-version"]);
        let err = String::from_utf8_lossy(&stalled.stderr).into_owned();
        assert_eq!(stalled.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("the rollout does not progress"), "{err}");
        ok(demo(s, &["rollback"]));
        let history = ok(demo(s, &["history", "--output", "json"]));
        let revisions: serde_json::Value = serde_json::from_str(&history).unwrap();
        let versions: Vec<(i64, &str)> = revisions
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["revision"].as_i64().unwrap(),
                    r["version"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(versions, [(2, "v2"), (3, "v1")], "{history}");
        let down = ok(demo(s, &["down"]));
        assert!(down.contains("deployment.apps/web deleted"), "{down}");
        let again = ok(demo(s, &["down"]));
        assert!(again.contains("nothing of the demo's was left"), "{again}");
    });
    // Ctrl-C for `demo up`: it stops the cluster and its processes.
    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let stopped = Instant::now() + Duration::from_secs(30);
    loop {
        if up.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > stopped {
            let _ = up.kill();
            panic!("demo up did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        !state.path().join("local.json").exists(),
        "the state file is removed"
    );
}
