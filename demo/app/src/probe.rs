//! `demo-app probe URL [--rps N]`: the demo's traffic probe, as a pod.
//!
//! During a rolling update the demo sends a steady stream of requests to
//! the app's Service and counts who answered (v1 or v2) and what failed. On
//! the local target it does that from its own process; on kind and GKE a
//! Service's cluster IP is reachable only from inside the cluster, so the
//! probe runs there as a pod, and the demo reads its results back through
//! the pod's **logs** (`GET .../pods/NAME/log?follow=true`, what `kubectl
//! logs -f` does). Nothing has to be exposed: no LoadBalancer, no
//! port-forward.
//!
//! The log is the protocol: one JSON object per line, one line per request
//! — `{"version":"v1","ms":1.8,"visits":42,"in_database":["v1","v2"]}` for
//! an answer, `{"error":"connection refused"}` for a failure — and a last
//! `{"done":true}` after SIGTERM (what the kubelet sends when the demo
//! deletes the pod), once every request in flight has ended. Every request
//! opens a new connection, so kube-proxy (or GKE's dataplane) chooses a pod
//! for each one.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::get::{Target, get};

/// A request without an answer after this long counts as failed.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `rps` requests a second to `url` until SIGTERM or SIGINT, writing
/// one line per request to `out`, then `{"done":true}`.
pub async fn run(url: &str, rps: u32, out: &mut impl Write) -> anyhow::Result<()> {
    let target = std::sync::Arc::new(Target::parse(url)?);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rps.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                let target = std::sync::Arc::clone(&target);
                inflight.spawn(async move { one(&target).await });
            }
            Some(line) = inflight.join_next() => {
                writeln!(out, "{}", line?)?;
            }
        }
    }
    // Told to stop: finish what is in flight, so every request sent is
    // counted, then say so.
    while let Some(line) = inflight.join_next().await {
        writeln!(out, "{}", line?)?;
    }
    writeln!(out, "{}", json!({"done": true}))?;
    out.flush()?;
    Ok(())
}

/// One request, as its log line.
async fn one(target: &Target) -> serde_json::Value {
    let began = Instant::now();
    match tokio::time::timeout(TIMEOUT, get(target)).await {
        Ok(Ok((status, body))) if (200..300).contains(&status) => {
            answer_line(&body, began.elapsed())
        }
        Ok(Ok((status, _))) => json!({"error": format!("HTTP {status}")}),
        Ok(Err(e)) => json!({"error": failure_kind(&e)}),
        Err(_) => json!({"error": "timed out"}),
    }
}

/// The fields of the app's answer the demo counts.
fn answer_line(body: &[u8], took: Duration) -> serde_json::Value {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return json!({"error": "a broken answer"});
    };
    let in_database: Vec<&String> = v["recent_visits"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    json!({
        "version": v["version"].as_str().unwrap_or("?"),
        "ms": (took.as_secs_f64() * 10_000.0).round() / 10.0,
        "visits": v["total_visits"],
        "in_database": in_database,
    })
}

/// A failed request in a few words, as the in-process probe names them.
fn failure_kind(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_kind(io.kind());
        }
    }
    // `get` names the connection error in its message.
    let text = e.to_string().to_lowercase();
    if text.contains("connection refused") {
        "connection refused".into()
    } else if text.contains("connection reset") {
        "connection reset".into()
    } else {
        "connection closed before an answer".into()
    }
}

fn io_kind(kind: std::io::ErrorKind) -> String {
    match kind {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        kind => format!("{kind}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_one_line_each() {
        let body =
            br#"{"version":"v2","pod":"web-1","total_visits":7,"recent_visits":{"v1":[],"v2":[]}}"#;
        let line = answer_line(body, Duration::from_micros(1840));
        assert_eq!(
            line,
            json!({"version":"v2","ms":1.8,"visits":7,"in_database":["v1","v2"]})
        );
        let line = answer_line(br#"{"version":"v1","pod":"p"}"#, Duration::ZERO);
        assert_eq!(line["visits"], serde_json::Value::Null);
        assert_eq!(
            answer_line(b"<html>", Duration::ZERO)["error"],
            "a broken answer"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_named() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert_eq!(one(&target).await, json!({"error": "connection refused"}));
    }
}
