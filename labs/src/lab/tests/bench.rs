//! The benches' outputs the book shows are recorded runs
//! (`book/src/generated/bench-*.txt`); these run each bench small and check
//! that the recording still has the shape of what the bench prints
//! ([`check_recorded_shape`]), so a bench that changes its report fails here
//! until the book shows a new run.

use crate::lab::bench;
use crate::lab::book::check_recorded_shape;

fn check(name: &str, out: Vec<u8>) {
    let out = String::from_utf8(out).unwrap();
    check_recorded_shape(name, &out).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_bench_as_recorded() {
    let mut out = Vec::new();
    let args = bench::apiserver::BenchArgs {
        pods: 200,
        concurrency: 4,
        watchers: 4,
        watch_events: 20,
    };
    bench::apiserver::run(args, &mut out).await.unwrap();
    check("bench-apiserver.txt", out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_bench_as_recorded() {
    let mut out = Vec::new();
    let args = bench::replicaset::BenchArgs {
        replicas: 100,
        timeout: 60,
    };
    bench::replicaset::run(args, &mut out).await.unwrap();
    check("bench-replicaset.txt", out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_bench_as_recorded() {
    let mut out = Vec::new();
    let args = bench::rollout::BenchArgs {
        replicas: 40,
        nodes: 4,
    };
    bench::rollout::run(args, &mut out).await.unwrap();
    check("bench-rollout.txt", out);
}
