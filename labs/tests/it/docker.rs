//! The workbook's images and `labs docker`, against the real Docker engine.
//!
//! These tests need a Docker engine (`DOCKER_HOST` or the local socket).
//! Without one they fail with one line saying so; `WORKBOOK_SKIP_DOCKER=1`
//! skips them explicitly (CI does not set it: its machines have Docker).
//!
//! They share the engine, and the lab removes everything labelled
//! `workbook.lab=docker` when it starts, so they run one at a time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    TopOptionsBuilder,
};
use labs::images::{self, ImageSpec};
use labs::lab::docker as lab;

pub(crate) static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The engine, or `None` when explicitly skipped. Panics with one clear
/// line when there is no engine and no skip.
pub(crate) async fn engine() -> Option<Docker> {
    if std::env::var("WORKBOOK_SKIP_DOCKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: WORKBOOK_SKIP_DOCKER=1");
        return None;
    }
    match images::connect().await {
        Ok(docker) => Some(docker),
        Err(err) => {
            panic!("these tests need a Docker engine: {err:#} (WORKBOOK_SKIP_DOCKER=1 skips them)")
        }
    }
}

/// Runs a labelled container of `image` with 8080 published on a free
/// loopback port; returns the port (0 when nothing is published).
async fn run_container(docker: &Docker, name: &str, image: &str, publish: bool) -> u16 {
    let bindings = HashMap::from([(
        "8080/tcp".to_string(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_string()),
            host_port: Some(String::new()),
        }]),
    )]);
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(name.to_string()),
        labels: Some(HashMap::from([(
            lab::LABEL.0.to_string(),
            lab::LABEL.1.to_string(),
        )])),
        host_config: Some(HostConfig {
            port_bindings: publish.then_some(bindings),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .unwrap();
    docker.start_container(name, None).await.unwrap();
    if !publish {
        return 0;
    }
    let inspect = docker.inspect_container(name, None).await.unwrap();
    inspect.network_settings.unwrap().ports.unwrap()["8080/tcp"]
        .as_ref()
        .unwrap()[0]
        .host_port
        .as_ref()
        .unwrap()
        .parse()
        .unwrap()
}

/// `GET /` until it answers (the process needs a moment to listen).
async fn get_root(port: u16) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..100 {
        if let Ok(response) = reqwest::Client::new().get(&url).send().await {
            return response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no answer from {url}");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_build_cache_and_run_as_non_root() {
    let _engine = ENGINE.lock().await;
    let Some(docker) = engine().await else { return };
    lab::cleanup(&docker).await.unwrap();

    let mut log = Vec::new();
    let first = images::ensure_all(&docker, &mut log).await.unwrap();
    // Unchanged: every step after FROM comes from the cache, same image ids.
    let mut log = Vec::new();
    let again = images::ensure_all(&docker, &mut log).await.unwrap();
    let log = String::from_utf8(log).unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.id, b.id, "{log}");
        assert!(b.fully_cached(), "{b:?}\n{log}");
    }
    assert!(log.contains("Step 1/8 : FROM scratch"), "{log}");
    assert!(log.contains(" ---> Using cache"), "{log}");
    assert!(
        log.contains("Successfully tagged workbook/demo-app:v2"),
        "{log}"
    );
    assert_ne!(first[0].id, first[1].id, "v1 and v2 are different images");

    // Non-root, by the image's config and by the running process' uid.
    for spec in [
        ImageSpec::app("v1"),
        ImageSpec::app("v2"),
        ImageSpec::pause(),
    ] {
        let config = docker
            .inspect_image(&spec.reference)
            .await
            .unwrap()
            .config
            .unwrap();
        let user = config.user.unwrap_or_default();
        assert!(
            !user.is_empty() && !user.starts_with("0") && !user.starts_with("root"),
            "{}: USER {user:?}",
            spec.reference
        );
        let labels = config.labels.unwrap_or_default();
        assert_eq!(
            labels.get("org.opencontainers.image.version"),
            Some(&spec.version),
            "{}",
            spec.reference
        );
    }

    let v1 = run_container(
        &docker,
        "workbook-docker-test-v1",
        "workbook/demo-app:v1",
        true,
    )
    .await;
    let v2 = run_container(
        &docker,
        "workbook-docker-test-v2",
        "workbook/demo-app:v2",
        true,
    )
    .await;
    run_container(
        &docker,
        "workbook-docker-test-pause",
        images::PAUSE_IMAGE,
        false,
    )
    .await;
    assert_eq!(get_root(v1).await["version"], "v1");
    let answer = get_root(v2).await;
    assert_eq!(answer["version"], "v2");
    assert_eq!(answer["pod"], "workbook-docker-test-v2");

    for (name, uid) in [
        ("workbook-docker-test-v2", "10001"),
        ("workbook-docker-test-pause", "65535"),
    ] {
        let top = docker
            .top_processes(
                name,
                Some(
                    TopOptionsBuilder::default()
                        .ps_args("-o pid,uid,args")
                        .build(),
                ),
            )
            .await
            .unwrap();
        let processes = top.processes.unwrap();
        assert_eq!(processes.len(), 1, "{name}: {processes:?}");
        assert_eq!(processes[0][1], uid, "{name}: {processes:?}");
    }

    // Both exit 0 on SIGTERM well before the engine's SIGKILL (10 s).
    for name in ["workbook-docker-test-v1", "workbook-docker-test-pause"] {
        let started = std::time::Instant::now();
        docker
            .stop_container(
                name,
                Some(StopContainerOptionsBuilder::default().t(10).build()),
            )
            .await
            .unwrap();
        let state = docker
            .inspect_container(name, None)
            .await
            .unwrap()
            .state
            .unwrap();
        assert_eq!(state.exit_code, Some(0), "{name}");
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
    for name in [
        "workbook-docker-test-v1",
        "workbook-docker-test-v2",
        "workbook-docker-test-pause",
    ] {
        docker
            .remove_container(
                name,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await
            .unwrap();
    }
    assert_eq!(lab::leftovers(&docker).await.unwrap(), (0, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn lab_runs_end_to_end_and_leaves_nothing() {
    let _engine = ENGINE.lock().await;
    let Some(docker) = engine().await else { return };
    // The images exist first: the lab's builds are then cache hits, and the
    // transcript is the same on every run.
    images::ensure_all(&docker, &mut std::io::sink())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let facts = lab::run_with_facts(&mut out).await.unwrap();
    let output = String::from_utf8(out).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );

    let answer = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
    assert_eq!(answer(&facts.web_answer)["version"], "v1", "{output}");
    assert_eq!(answer(&facts.web_answer)["pod"], "web", "{output}");
    // The committed image answers differently: its ENV was changed.
    assert_eq!(
        answer(&facts.hotfix_answer)["version"],
        "v1-hotfix",
        "{output}"
    );
    // The client found the app by name on the user-defined network.
    assert_eq!(answer(&facts.pair_answer)["version"], "v2", "{output}");
    assert_eq!(answer(&facts.pair_answer)["pod"], "app", "{output}");
    assert!(output.contains("A /hotfix.txt"), "{output}");

    assert_eq!(
        lab::leftovers(&docker).await.unwrap(),
        (0, 0, 0, 0),
        "(containers, networks, volumes, images) labelled workbook.lab=docker"
    );
    insta::assert_snapshot!(lab::redact(&output));
}

/// Ctrl-C in the middle of the lab (a container running, more to come):
/// the real `labs docker` binary removes everything it created and fails
/// with one line.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_mid_way_removes_everything() {
    let _engine = ENGINE.lock().await;
    let Some(docker) = engine().await else { return };
    images::ensure_all(&docker, &mut std::io::sink())
        .await
        .unwrap();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_labs"))
        .arg("docker")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read on (never close the pipe: the lab would fail on its next line
    // instead of being interrupted), and say when the web container runs.
    let (running_tx, running_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("  published: ") {
                running_tx.send(()).unwrap();
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    tokio::task::spawn_blocking(move || running_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the lab runs its first container");
    let (containers, ..) = lab::leftovers(&docker).await.unwrap();
    assert_eq!(containers, 1, "the web container runs");

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let seen = reader.join().unwrap();
    assert!(!output.status.success(), "{stderr}");
    assert!(
        !seen.contains("== 5."),
        "interrupted before the commit: {seen}"
    );
    assert!(stderr.contains("labs: interrupted"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("labs:")).count(),
        1,
        "one error line: {stderr}"
    );
    assert_eq!(
        lab::leftovers(&docker).await.unwrap(),
        (0, 0, 0, 0),
        "{stderr}"
    );
}

/// A writer that says (once) when a line starting with `needle` was written.
struct NotifyOn {
    text: String,
    needle: &'static str,
    tx: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::io::Write for NotifyOn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.push_str(&String::from_utf8_lossy(buf));
        if self.text.contains(self.needle)
            && let Some(tx) = self.tx.take()
        {
            let _ = tx.send(());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lab's future dropped half-way (a caller's timeout, a panic up the
/// stack): its guard removes everything, though it cannot await.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_mid_way_removes_everything() {
    let _engine = ENGINE.lock().await;
    let Some(docker) = engine().await else { return };
    images::ensure_all(&docker, &mut std::io::sink())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut out = NotifyOn {
        text: String::new(),
        needle: "  published: ",
        tx: Some(tx),
    };
    tokio::select! {
        result = lab::run(&mut out) => panic!("the lab finished first: {result:?}"),
        _ = rx => {}
    }
    // The lab's future is gone: its guard has run.
    assert!(!out.text.contains("== 7."), "{}", out.text);
    assert_eq!(lab::leftovers(&docker).await.unwrap(), (0, 0, 0, 0));
}

/// The book shows `demo/app/compose.yaml` as the file form of the lab's
/// pair: it must describe what the lab runs.
#[test]
fn compose_file_describes_the_labs_pair() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/app/compose.yaml");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let services = &compose["services"];
    let strings = |v: &serde_yaml::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(services["app"]["image"].as_str(), Some(lab::PAIR_IMAGE));
    assert_eq!(services["client"]["image"].as_str(), Some(lab::PAIR_IMAGE));
    assert_eq!(
        strings(&services["client"]["command"]),
        lab::PAIR_CLIENT_ARGS
    );
    assert_eq!(
        strings(&services["app"]["healthcheck"]["test"]),
        [&["CMD"][..], &lab::PAIR_HEALTH_CMD[..]].concat()
    );
    assert_eq!(
        services["client"]["depends_on"]["app"]["condition"].as_str(),
        Some("service_healthy")
    );
}
