//! Decisions per second of the scheduler's pure core.
//!
//! ```text
//! cargo run --release -p labs --example scheduler_core -- [nodes] [pods]
//! ```
//!
//! Defaults to the issue's benchmark size: 10,000 pods onto 1,000 nodes.

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let nodes = args.next().and_then(Result::ok).unwrap_or(1000);
    let pods = args.next().and_then(Result::ok).unwrap_or(10_000);
    let (decisions, elapsed) = labs::lab::bench::scheduler::bench_core(nodes, pods);
    println!(
        "{decisions} decisions on {nodes} nodes in {:.3}s: {:.0} decisions/s",
        elapsed.as_secs_f64(),
        decisions as f64 / elapsed.as_secs_f64()
    );
}
