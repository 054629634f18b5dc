//! `demo-app proxy`: the workbook's stand-in for the Cloud SQL Auth Proxy.
//!
//! On GKE the app does not talk to Cloud SQL directly. A second container in
//! its pod, the Cloud SQL Auth Proxy, listens on the pod's localhost
//! (`127.0.0.1:5432`); the app connects there as if the database were local,
//! and the proxy opens an authenticated (IAM, through Workload Identity),
//! encrypted connection to the instance. The app needs no certificates and
//! no knowledge of where the instance is: the **sidecar pattern**.
//!
//! Locally there is no Cloud SQL and nothing to authenticate, so what is left
//! of the pattern is the forwarding: accept on one address, connect to
//! another, copy bytes both ways. That is the whole lesson, and all this
//! module does. (TLS and IAM are the real proxy's job; we leave them out
//! because they would teach nothing about Kubernetes.)

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Binds `listen` and forwards every connection to `to` until SIGTERM or
/// Ctrl-C, then exits 0 (the kubelet stops a native sidecar after the app).
pub async fn run(listen: SocketAddr, to: String) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(listen = %listener.local_addr()?, to = %to, "proxy listening");
    forward(listener, to, crate::termination_signal()).await?;
    tracing::info!("proxy stopped");
    Ok(())
}

// ANCHOR: forward
/// Accepts connections on `listener` and forwards each to `to`, each in its
/// own task, so one slow client never holds up another. Returns when
/// `shutdown` completes; open connections are then dropped (closed), as the
/// process is about to exit anyway.
pub async fn forward(
    listener: TcpListener,
    to: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (client, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Too many open files and the like: say so, keep serving.
                Err(e) => {
                    tracing::warn!("proxy: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let to = to.clone();
        connections.spawn(async move {
            if let Err(e) = pipe(client, &to).await {
                // One line per failed connection: enough to see "the
                // database is down" in `kubectl logs`, never a backtrace.
                tracing::warn!("proxy: connection from {peer} to {to}: {e}");
            }
        });
        // Forget the connections that have finished, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
    Ok(())
}

/// One connection: dial the destination, then copy both ways.
///
/// `copy_bidirectional` copies until each direction has seen end-of-file,
/// and passes an EOF on: when one side closes, the other side's writing half
/// is shut down, so it sees the close too, and the copy ends when it closes
/// in turn. A reset on either side ends the copy at once.
async fn pipe(mut client: TcpStream, to: &str) -> std::io::Result<()> {
    let mut server = match TcpStream::connect(to).await {
        Ok(server) => server,
        Err(e) => {
            // The client sees its connection close at once, as with a
            // database that is down.
            let _ = client.shutdown().await;
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot connect: {e}"),
            ));
        }
    };
    // Small protocol messages (a query, its answer) should not wait for
    // Nagle's algorithm.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
// ANCHOR_END: forward
