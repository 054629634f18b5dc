//! `demo run --yes --target local` end to end, in-process: the real lab
//! cluster, real `demo-app` processes (or containers), a real PostgreSQL,
//! real connections through kube-proxy. Afterwards the cluster is checked
//! through kube-rs before it is stopped: the rollout and the rollback
//! really happened, as the Deployment controller records them.

use std::io::Write;
use std::sync::{Arc, Mutex};

use demo::narrate::{LIVE, Narrator};
use demo::steps::{Demo, Report, RunOptions};
use demo::targets::local::LocalOptions;
use demo::targets::{LocalRuntime, Settings};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams};

/// A `Write` the test can read back while the narrator owns it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Run {
    report: Report,
    output: String,
    deployment: Deployment,
    replica_sets: Vec<ReplicaSet>,
}

/// Runs every step on a local cluster of its own (addresses of its own,
/// [`crate::test_addresses`]`(test)`, and a state directory of its own),
/// reads the cluster back, then stops it.
async fn run(runtime: LocalRuntime, bad_version: bool, test: u8) -> Run {
    let state = tempfile::tempdir().unwrap();
    let settings = Settings {
        runtime,
        ..Settings::default()
    };
    let local = LocalOptions {
        exe: Some(env!("CARGO_BIN_EXE_demo").into()),
        addresses: Some(crate::test_addresses(test)),
        state_dir: state.path().to_path_buf(),
        attach: false,
    };
    let out = Shared::default();
    let target = demo::targets::open(&settings, local).unwrap();
    let mut demo = Demo::new(target, settings, Narrator::to(Box::new(out.clone())));
    let opts = RunOptions {
        bad_version,
        ..RunOptions::default()
    };
    let report = demo::steps::run_all(&mut demo, &opts).await;
    let output = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let output = output.replace(&state.path().display().to_string(), "/tmp/workbook-demo");
    let checked = match &report {
        Ok(_) => {
            let client = demo.client().unwrap().clone();
            let deployment = Api::<Deployment>::default_namespaced(client.clone())
                .get("web")
                .await
                .unwrap();
            let replica_sets = Api::<ReplicaSet>::default_namespaced(client)
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items;
            Some((deployment, replica_sets))
        }
        Err(_) => None,
    };
    let Demo { target, mut n, .. } = demo;
    target.finish(false, &mut n).await.unwrap();
    let report = report.unwrap_or_else(|e| panic!("{e:#}\n{output}"));
    let (deployment, replica_sets) = checked.unwrap();
    Run {
        report,
        output,
        deployment,
        replica_sets,
    }
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

/// The Deployment is back on v1 as revision 3 — the v1 ReplicaSet reused
/// (its old revision 1 in revision-history), not a new one — and the v2
/// ReplicaSet is scaled to zero.
fn assert_rolled_back(r: &Run) {
    assert_eq!(image(&r.deployment), "workbook/demo-app:v1", "{}", r.output);
    assert_eq!(
        annotation(&r.deployment.metadata, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    assert_eq!(
        r.replica_sets.len(),
        2,
        "no third ReplicaSet for the rollback"
    );
    for rs in &r.replica_sets {
        let tag = demo::rollout::version_of(rs);
        let replicas = rs.spec.as_ref().unwrap().replicas;
        let revision = annotation(&rs.metadata, "deployment.kubernetes.io/revision");
        match tag.as_str() {
            "v1" => {
                assert_eq!((replicas, revision), (Some(3), Some("3")), "{rs:?}");
                assert_eq!(
                    annotation(&rs.metadata, "deployment.kubernetes.io/revision-history"),
                    Some("1")
                );
            }
            _ => assert_eq!((replicas, revision), (Some(0), Some("2")), "{rs:?}"),
        }
    }
}

/// What may differ between two runs: the live lines (their number follows
/// timing), numbers, and the ReplicaSets' hashes.
pub fn redact(output: &str) -> String {
    let mut lines = Vec::new();
    for line in output.lines() {
        if line.starts_with(LIVE) {
            continue;
        }
        let mut redacted = String::new();
        let mut in_number = false;
        for word in line.split_inclusive(' ') {
            // web-6df75dd959 → web-HASH
            let trimmed = word.trim_end();
            if let Some(hash) = trimmed.strip_prefix("web-")
                && hash.len() >= 8
                && hash.chars().all(|c| c.is_ascii_alphanumeric())
            {
                redacted.push_str(&word.replace(hash, "HASH"));
                continue;
            }
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !in_number {
                        redacted.push('N');
                    }
                    in_number = true;
                } else if in_number && (c == '.' || c == ',') {
                } else {
                    in_number = false;
                    redacted.push(c);
                }
            }
        }
        lines.push(redacted);
    }
    lines.join("\n")
}

// ANCHOR: e2e
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_on_local_loses_no_request_and_rolls_back() {
    let r = run(LocalRuntime::Process, false, 0).await;
    let p = &r.report.probe;
    assert_eq!(p.errors, 0, "{:?}\n{}", p.failures, r.output);
    assert!(p.requests > 200, "{}", r.output);
    assert!(p.versions["v1"] > 0 && p.versions["v2"] > 0, "{p:?}");
    assert_eq!(r.report.rollout, "complete");
    assert_eq!(r.report.rolled_back_to, "v1");
    // Both versions wrote visits into the one database.
    assert!(r.report.database, "{}", r.output);
    assert!(p.visits.unwrap_or(0) >= p.requests as i64, "{p:?}");
    let in_db: Vec<&str> = p.versions_in_database.iter().map(String::as_str).collect();
    assert_eq!(in_db, ["v1", "v2"], "{p:?}");
    assert_rolled_back(&r);
    let history: Vec<(i64, &str)> = r
        .report
        .history
        .iter()
        .map(|h| (h.revision, h.version.as_str()))
        .collect();
    assert_eq!(history, [(1, "v1"), (2, "v2")], "history before the undo");
    assert!(r.output.contains(&r.report.summary_line()));
    assert!(r.report.summary_line().contains(" 0 errors"));

    // The book shows one real run: the same lines, only what varies may
    // differ. UPDATE_GENERATED=1 writes this run instead.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/generated/demo-run.txt");
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &r.output).unwrap();
    }
    let book = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        redact(&book),
        redact(&r.output),
        "book/src/generated/demo-run.txt no longer matches `demo run --yes`; run \
         `UPDATE_GENERATED=1 cargo test -p demo --test it run_on_local` and review the diff"
    );
}
// ANCHOR_END: e2e

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_version_stalls_keeps_serving_and_is_undone() {
    let r = run(LocalRuntime::Process, true, 1).await;
    let p = &r.report.probe;
    assert_eq!(r.report.rollout, "stalled", "{}", r.output);
    assert!(
        r.output.contains("exceeded its progress deadline"),
        "{}",
        r.output
    );
    assert_eq!(p.errors, 0, "the old pods kept serving: {:?}", p.failures);
    assert_eq!(p.versions.keys().collect::<Vec<_>>(), ["v1"], "{p:?}");
    assert_rolled_back(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_on_local_with_docker_containers() {
    if std::env::var_os("WORKBOOK_SKIP_DOCKER").is_some() {
        return;
    }
    let r = run(LocalRuntime::Docker, false, 2).await;
    let p = &r.report.probe;
    assert_eq!(p.errors, 0, "{:?}\n{}", p.failures, r.output);
    assert!(p.versions["v1"] > 0 && p.versions["v2"] > 0, "{p:?}");
    assert!(!r.report.database, "no database on the Docker runtime");
    assert_rolled_back(&r);
}
