//! Container logs: what `kubectl logs` reads.
//!
//! On a real node the runtime writes each container's stdout and stderr to a
//! file under `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log`,
//! and the kubelet reads that file for `kubectl logs`. We keep the same
//! shape in memory: one [`LogBuffer`] per container *instance* (per
//! attempt), bounded like the kubelet's log rotation
//! (`containerLogMaxSize`, 10 MiB upstream; 1 MiB here), and followed through
//! a broadcast channel for `kubectl logs -f`.
//!
//! `kubectl logs --previous` works because the kubelet does not remove a dead
//! container straight away: it keeps the last exited instance (and so its
//! log) until the next one exits. The runtimes keep a buffer until the
//! container is removed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::broadcast;

/// The default bound of one container's log, in bytes of text.
pub const DEFAULT_LOG_LIMIT: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line a container wrote (without its newline), stamped when the
/// runtime read it, as the CRI log format stamps each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub at: Timestamp,
    pub stream: LogStream,
    pub text: String,
}

/// A bounded, followable log of one container instance. Cheap to clone (all
/// clones share one buffer).
#[derive(Clone, Debug)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    limit: usize,
    /// `None` once the container has exited: followers then end.
    tx: Option<broadcast::Sender<LogLine>>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_LIMIT)
    }
}

impl LogBuffer {
    pub fn new(limit: usize) -> Self {
        let (tx, _) = broadcast::channel(1024);
        LogBuffer {
            inner: Arc::new(Mutex::new(Inner {
                lines: VecDeque::new(),
                bytes: 0,
                limit,
                tx: Some(tx),
            })),
        }
    }

    /// Append a line; the oldest lines are dropped beyond the limit.
    pub fn push(&self, at: Timestamp, stream: LogStream, text: impl Into<String>) {
        let line = LogLine {
            at,
            stream,
            text: text.into(),
        };
        // A std Mutex (not tokio's): it is held for a few pointer moves and
        // never across an await.
        let mut inner = self.inner.lock().unwrap();
        if let Some(tx) = &inner.tx {
            // No followers is not an error.
            let _ = tx.send(line.clone());
        }
        inner.bytes += line.text.len() + 1;
        inner.lines.push_back(line);
        while inner.bytes > inner.limit {
            match inner.lines.pop_front() {
                Some(old) => inner.bytes -= old.text.len() + 1,
                None => break,
            }
        }
    }

    /// The container has exited: no more lines, followers end.
    pub fn close(&self) {
        self.inner.lock().unwrap().tx = None;
    }

    /// Everything kept so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.inner.lock().unwrap().lines.iter().cloned().collect()
    }

    /// The kept text, one line per line, as `kubectl logs` prints it.
    pub fn text(&self) -> String {
        self.lines()
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect()
    }

    /// Only the lines written from now on, until the container exits: what
    /// `kubectl attach` sees of the container's own output.
    pub fn live(&self) -> impl Stream<Item = LogLine> + Send + use<> {
        let rx = self
            .inner
            .lock()
            .unwrap()
            .tx
            .as_ref()
            .map(|tx| tx.subscribe());
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(line) => return Some((line, Some(rx))),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Everything kept so far, then every new line until the container
    /// exits (`kubectl logs -f`). A follower too slow to keep up with 1024
    /// lines of backlog skips the lines it missed rather than block the
    /// container.
    pub fn follow(&self) -> impl Stream<Item = LogLine> + Send + use<> {
        // Snapshot and subscribe under one lock, so no line falls between.
        let (backlog, rx) = {
            let inner = self.inner.lock().unwrap();
            let rx = inner.tx.as_ref().map(|tx| tx.subscribe());
            (inner.lines.iter().cloned().collect::<Vec<_>>(), rx)
        };
        let live = futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(line) => return Some((line, Some(rx))),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures::StreamExt::chain(futures::stream::iter(backlog), live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn t() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[test]
    fn bounded() {
        let b = LogBuffer::new(10);
        b.push(t(), LogStream::Stdout, "aaaa"); // 5 bytes
        b.push(t(), LogStream::Stdout, "bbbb"); // 10
        b.push(t(), LogStream::Stderr, "cc"); // 13 → drop "aaaa"
        assert_eq!(b.text(), "bbbb\ncc\n");
    }

    #[tokio::test]
    async fn follow_sees_backlog_then_new_lines_then_ends() {
        let b = LogBuffer::default();
        b.push(t(), LogStream::Stdout, "one");
        let follower = b.follow();
        b.push(t(), LogStream::Stdout, "two");
        b.close();
        let got: Vec<String> = follower.map(|l| l.text).collect().await;
        assert_eq!(got, ["one", "two"]);
        // Following a closed log returns what there is and ends.
        let again: Vec<String> = b.follow().map(|l| l.text).collect().await;
        assert_eq!(again, ["one", "two"]);
    }
}
