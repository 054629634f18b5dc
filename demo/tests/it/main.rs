//! The demo crate's integration tests, one binary with a module per
//! subject.

mod cli;
mod gke;
mod gke_run;
mod gke_target;
mod kind;
mod kind_load;
mod kind_target;
mod probe_pod;
mod registry_push;
mod run;
mod steps;

/// The addresses of a test's own local cluster: pods from `127.8.N.1`,
/// Services in `127.9.N.0/24`, where `N` comes from this process's id and
/// `test` (each test that starts a cluster passes its own, 0–4). The pods'
/// ports are fixed (8080, 5432), so two worktrees running the same test at
/// once must not share addresses: with fixed ones they did, and failed.
pub fn test_addresses(test: u8) -> (std::net::Ipv4Addr, (std::net::Ipv4Addr, u8)) {
    assert!(test < 5, "five clusters per test process");
    let third = 10 + (std::process::id() % 48) as u8 * 5 + test;
    (
        std::net::Ipv4Addr::new(127, 8, third, 1),
        (std::net::Ipv4Addr::new(127, 9, third, 0), 24),
    )
}
