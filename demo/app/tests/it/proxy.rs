//! The proxy sidecar's stand-in: bytes both ways, closes passed on, many
//! connections at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{BIN, free_addr};

/// Starts `forward` in-process from a fresh port to `to`; returns the port's
/// address and a sender that stops it.
async fn start_proxy(to: String) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(demo_app::proxy::forward(listener, to, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn forwards_bytes_both_ways_and_passes_closes_on() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (proxy, _stop) = start_proxy(upstream.local_addr().unwrap().to_string()).await;

    // Client → server and back.
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client.write_all(b"SELECT 1").await.unwrap();
    let (mut server, _) = tokio::time::timeout(T, upstream.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 8];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"SELECT 1");
    server.write_all(b"1 row").await.unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"1 row");

    // The server closes: the client sees the end of the stream.
    drop(server);
    let n = tokio::time::timeout(T, client.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "client sees the server's close");

    // The client closes: the server sees the end of the stream.
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let (mut server, _) = tokio::time::timeout(T, upstream.accept())
        .await
        .unwrap()
        .unwrap();
    drop(client);
    let n = tokio::time::timeout(T, server.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "server sees the client's close");

    // Nothing listens at the destination: the client's connection closes.
    let dead = free_addr();
    let (proxy, _stop2) = start_proxy(dead.to_string()).await;
    client = TcpStream::connect(proxy).await.unwrap();
    let n = tokio::time::timeout(T, client.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// 200 clients at once, each with its own payload through an echo server:
/// every one gets exactly its own bytes back.
#[tokio::test]
async fn survives_200_concurrent_connections() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = upstream.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = upstream.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let (proxy, _stop) = start_proxy(to).await;
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            tokio::spawn(async move {
                let payload: Vec<u8> = format!("client {i}: ").bytes().cycle().take(4096).collect();
                let mut c = TcpStream::connect(proxy).await.unwrap();
                c.write_all(&payload).await.unwrap();
                c.shutdown().await.unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).await.unwrap();
                assert_eq!(back, payload, "client {i}");
            })
        })
        .collect();
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .unwrap()
            .unwrap();
    }
}

/// The binary, configured from the environment as a sidecar container is,
/// forwards and exits 0 on SIGTERM.
#[tokio::test]
async fn the_proxy_binary_exits_zero_on_sigterm() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = free_addr();
    let mut child = tokio::process::Command::new(BIN)
        .arg("proxy")
        .env("LISTEN", listen.to_string())
        .env("PROXY_TO", upstream.local_addr().unwrap().to_string())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut client = loop {
        if let Ok(c) = TcpStream::connect(listen).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    client.write_all(b"hi").await.unwrap();
    let (mut server, _) = tokio::time::timeout(T, upstream.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 2];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
