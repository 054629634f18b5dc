//! demo-app's integration tests, one binary (one link, one run) with a
//! module per subject. Everything is real: the app's own binary as the
//! kubelet would start it, a real PostgreSQL from the machine's server
//! binaries (the tests fail with one line saying how to install them when
//! they are missing), real TCP on loopback.

mod binary;
mod database;
mod drain;
mod http;
mod pause;
mod proxy;
mod support;
