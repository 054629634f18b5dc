//! `demo-app pause`: the pod sandbox process.
//!
//! Containers in one Kubernetes pod share a network namespace: the app and
//! its proxy sidecar both see the pod's `localhost`. With Docker, the
//! kubelet (dockershim, and today containerd and CRI-O the same way) first
//! starts a tiny "pause" container that owns the namespaces, then starts
//! every container of the pod with `--network container:<pause>`. The pause
//! container does nothing but exist, so the pod's network outlives any
//! restart of its containers.
//!
//! It has one more job when the pod shares its PID namespace: it is PID 1,
//! and PID 1 inherits every orphaned process, which stays a zombie until
//! its parent calls `wait`. So it reaps them, as Kubernetes' `pause.c` does.
//! And as PID 1 it gets no default signal handling from the kernel: a
//! SIGTERM without a handler would be ignored, so it installs handlers and
//! exits 0 on SIGTERM or SIGINT.

use tokio::signal::unix::{SignalKind, signal};

/// Sleeps until SIGTERM or SIGINT, reaping children whenever one exits.
pub async fn run() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut child = signal(SignalKind::child())?;
    // Children may have exited before the handler was installed.
    reap_children();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = child.recv() => reap_children(),
        }
    }
    Ok(())
}

/// Collects the exit status of every child that has exited, without
/// blocking. (This process starts no children of its own, so taking any
/// child's status, `waitpid(-1)`, cannot steal one someone else waits for.)
fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG only writes the status integer we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        // 0: children remain, none has exited; -1: no children at all.
        if pid <= 0 {
            break;
        }
    }
}
