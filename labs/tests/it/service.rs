//! `labs service` end to end: real `demo-app` processes behind a Service,
//! real connections through kube-proxy to the cluster IP, during a real
//! rolling update. The lesson must stay true both ways: with readiness and
//! preStop no request fails; without either, some do.

use std::net::Ipv4Addr;

use labs::lab::service::{ServiceArgs, redact, run};

fn args() -> ServiceArgs {
    ServiceArgs {
        exe: Some(env!("CARGO_BIN_EXE_labs").into()),
        ..ServiceArgs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_under_load_loses_no_request() {
    let mut out = Vec::new();
    let args = ServiceArgs {
        iptables: true,
        ..args()
    };
    let report = run(&args, &mut out).await.expect("the lab runs");
    let output = String::from_utf8(out).unwrap();
    assert_eq!(report.errors, 0, "{output}");
    assert!(report.requests > 300, "{output}");
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0,
        "{output}"
    );
    assert!(
        report.versions.get("v2").copied().unwrap_or(0) > 0,
        "{output}"
    );
    // The chain names are kube-proxy's: sha256 + base32 of "default/web:http" + "tcp".
    assert!(output.contains("-A KUBE-SERVICES -d 127.2.1.1/32 -p tcp -m comment --comment \"default/web:http cluster IP\""), "{output}");
    assert!(output.contains("KUBE-SVC-CDGGSHYLG3RE2FKL"), "{output}");

    // The book shows one real run of this command: same lines, only the
    // numbers (and the per-second rows) may differ.
    let book = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../book/src/generated/labs-service.txt"
    ))
    .unwrap();
    assert_eq!(
        redact(&book),
        redact(&output),
        "book/src/generated/labs-service.txt no longer matches `labs service --iptables`; \
         replace it with this run's output:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_readiness_new_pods_get_traffic_before_they_listen() {
    let mut out = Vec::new();
    let args = ServiceArgs {
        no_readiness: true,
        // Its own addresses: the tests of this binary run in parallel.
        addresses: Some((
            Ipv4Addr::new(127, 0, 201, 1),
            (Ipv4Addr::new(127, 2, 201, 0), 24),
        )),
        ..args()
    };
    let report = run(&args, &mut out).await.expect("the lab runs");
    let output = String::from_utf8(out).unwrap();
    assert!(report.errors > 0, "no request failed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_drain_old_pods_stop_before_the_proxies_know() {
    let mut out = Vec::new();
    let args = ServiceArgs {
        no_drain: true,
        addresses: Some((
            Ipv4Addr::new(127, 0, 202, 1),
            (Ipv4Addr::new(127, 2, 202, 0), 24),
        )),
        ..args()
    };
    let report = run(&args, &mut out).await.expect("the lab runs");
    let output = String::from_utf8(out).unwrap();
    assert!(report.errors > 0, "no request failed:\n{output}");
}

/// The same rolling update on real containers: a pause container per pod
/// holding its 127.x address, the app joining its network, kube-proxy in
/// front. Needs the Docker engine (see `docker.rs` for the skip variable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_docker_runtime_too_no_request_is_lost() {
    if crate::docker::engine().await.is_none() {
        return;
    }
    // One image build at a time on the engine (the Docker tests share it).
    let _engine = crate::docker::ENGINE.lock().await;
    let mut out = Vec::new();
    let args = ServiceArgs {
        runtime: labs::cluster::RuntimeKind::Docker,
        addresses: Some((
            Ipv4Addr::new(127, 0, 203, 1),
            (Ipv4Addr::new(127, 2, 203, 0), 24),
        )),
        ..args()
    };
    let report = run(&args, &mut out).await.expect("the lab runs");
    let output = String::from_utf8(out).unwrap();
    assert_eq!(report.errors, 0, "{output}");
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0,
        "{output}"
    );
    assert!(
        report.versions.get("v2").copied().unwrap_or(0) > 0,
        "{output}"
    );
}
