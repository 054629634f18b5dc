//! Streams of an exec or attach for the runtimes that run host processes:
//! a child's pipes turned into the channels of an [`ExecSession`].
//!
//! What a real runtime does here, runc does: it enters the container's
//! namespaces (`setns`), switches to the container's user and working
//! directory, and `execve`s the command found on the container's `PATH`.
//! When that `execve` fails there is no process to report an exit code, so
//! runc reports the failure itself, in words every Kubernetes user has met:
//! `exec: "x": executable file not found in $PATH` — and Docker's exec gives
//! exit code 127 (126 when the file is there but cannot be executed), the
//! codes a shell uses for the same two failures.

use std::io::ErrorKind;
use std::process::Stdio;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::kubelet::logs::{LogLine, LogStream};
use crate::machinery::remotecommand::{ExecSession, Outcome, StreamOptions};

/// A command to run for `kubectl exec`, with the container's environment
/// and working directory.
pub struct HostExec<'a> {
    pub command: &'a [String],
    pub env: &'a [(String, String)],
    pub working_dir: &'a str,
}

// ANCHOR: missing_binary
/// runc's message when the `execve` of an exec fails, and the exit code
/// Docker reports for it.
pub fn exec_failure(program: &str, kind: ErrorKind, detail: &str) -> (i32, String) {
    let (code, why) = match kind {
        ErrorKind::NotFound => (127, "executable file not found in $PATH".to_string()),
        ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
        _ => (126, detail.to_string()),
    };
    (
        code,
        format!(
            "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"{program}\": {why}: unknown\r\n"
        ),
    )
}
// ANCHOR_END: missing_binary

/// Copy a pipe into a channel, chunk by chunk, until EOF (or until the API
/// server stops listening).
fn forward(pipe: impl AsyncRead + Send + Unpin + 'static, tx: mpsc::Sender<Bytes>) {
    tokio::spawn(async move {
        let mut chunks = tokio_util::io::ReaderStream::new(pipe);
        while let Some(Ok(chunk)) = chunks.next().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
}

// ANCHOR: host_exec
/// Start `exec` as a child process and connect its pipes. Without a
/// terminal to give it (`tty`), its stderr joins stdout as a terminal would
/// join them, and resizes are ignored.
pub fn spawn(exec: HostExec<'_>, options: StreamOptions) -> Result<ExecSession, String> {
    let Some((program, args)) = exec.command.split_first() else {
        return Err("you must specify at least one command for the container".into());
    };
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let want_stderr = options.stderr || (options.tty && options.stdout);
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(exec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(exec.working_dir)
        .stdin(piped(options.stdin))
        .stdout(piped(options.stdout))
        .stderr(piped(want_stderr))
        .process_group(0)
        // The session owns the child: a client that goes away drops it,
        // and the command is killed.
        .kill_on_drop(true);
    let (out_tx, out_rx) = mpsc::channel(16);
    let (err_tx, err_rx) = mpsc::channel(16);
    let command = exec.command.to_vec();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            // No process: report runc's message on the error stream and the
            // exit code as Docker does.
            let (code, message) = exec_failure(program, e.kind(), &e.to_string());
            let tx = if options.stderr { &err_tx } else { &out_tx };
            let _ = tx.try_send(Bytes::from(message));
            return Ok(ExecSession {
                stdin: None,
                stdout: options.stdout.then_some(out_rx),
                stderr: options.stderr.then_some(err_rx),
                resize: None,
                outcome: futures::future::ready(Outcome::Exited { code, command }).boxed(),
            });
        }
    };
    if let Some(out) = child.stdout.take() {
        forward(out, out_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        // With a tty the output is one stream.
        forward(err, if options.stderr { err_tx } else { out_tx });
    }
    let stdin = child.stdin.take().map(|mut pipe| {
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if pipe.write_all(&data).await.is_err() {
                    break;
                }
            }
            // The sender is gone: close the pipe, the command reads EOF.
            drop(pipe);
        });
        tx
    });
    let outcome = async move {
        match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                // Killed by signal N → 128 + N, as runtimes report it.
                let code = status
                    .code()
                    .or(status.signal().map(|s| 128 + s))
                    .unwrap_or(-1);
                Outcome::Exited { code, command }
            }
            Err(e) => Outcome::Failed(format!("error executing command in container: {e}")),
        }
    }
    .boxed();
    Ok(ExecSession {
        stdin,
        stdout: options.stdout.then_some(out_rx),
        stderr: options.stderr.then_some(err_rx),
        resize: None,
        outcome,
    })
}
// ANCHOR_END: host_exec

// ANCHOR: attach_logs
/// `kubectl attach` to a process runtime container: its output from now on,
/// line by line as the runtime reads it, each line on the stream it came
/// from (one stream with a tty). The container was started with its stdin
/// closed, so there is nothing to write to; the stream ends, successfully,
/// when the container exits.
pub fn attach_to_log(
    lines: impl futures::Stream<Item = LogLine> + Send + 'static,
    options: StreamOptions,
) -> ExecSession {
    let (out_tx, out_rx) = mpsc::channel(16);
    let (err_tx, err_rx) = mpsc::channel(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = std::pin::pin!(lines);
        while let Some(line) = lines.next().await {
            let to = match line.stream {
                LogStream::Stderr if options.stderr => &err_tx,
                LogStream::Stderr if !options.tty => continue,
                _ if options.stdout => &out_tx,
                _ => continue,
            };
            if to.send(Bytes::from(line.text + "\n")).await.is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    ExecSession {
        stdin: None,
        stdout: options.stdout.then_some(out_rx),
        stderr: options.stderr.then_some(err_rx),
        resize: None,
        outcome: async move {
            let _ = done_rx.await;
            Outcome::Exited {
                code: 0,
                command: Vec::new(),
            }
        }
        .boxed(),
    }
}
// ANCHOR_END: attach_logs

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("GREETING".into(), "hello".into()),
        ]
    }

    fn both() -> StreamOptions {
        StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        }
    }

    async fn drain(rx: Option<mpsc::Receiver<Bytes>>) -> String {
        let mut out = Vec::new();
        if let Some(mut rx) = rx {
            while let Some(b) = rx.recv().await {
                out.extend_from_slice(&b);
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn runs_with_the_containers_environment_and_stdin() {
        let command: Vec<String> = ["/bin/sh", "-c", "echo $GREETING from $(pwd); cat; exit 4"]
            .map(String::from)
            .to_vec();
        let env = env();
        let s = spawn(
            HostExec {
                command: &command,
                env: &env,
                working_dir: "/",
            },
            both(),
        )
        .unwrap();
        let stdin = s.stdin.unwrap();
        stdin.send(Bytes::from_static(b"piped\n")).await.unwrap();
        drop(stdin);
        let (out, err) = tokio::join!(drain(s.stdout), drain(s.stderr));
        assert_eq!(out, "hello from /\npiped\n");
        assert_eq!(err, "");
        assert_eq!(s.outcome.await, Outcome::Exited { code: 4, command });
    }

    #[tokio::test]
    async fn a_missing_program_is_127_with_runcs_message() {
        let command = vec!["no-such-program".to_string()];
        let env = env();
        let s = spawn(
            HostExec {
                command: &command,
                env: &env,
                working_dir: "/",
            },
            both(),
        )
        .unwrap();
        let (out, err) = tokio::join!(drain(s.stdout), drain(s.stderr));
        assert_eq!(out, "");
        assert_eq!(
            err,
            "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"no-such-program\": executable file not found in $PATH: unknown\r\n"
        );
        assert_eq!(s.outcome.await, Outcome::Exited { code: 127, command });
        let (code, message) = exec_failure("/etc/passwd", ErrorKind::PermissionDenied, "");
        assert_eq!(code, 126);
        assert!(message.contains("exec: \"/etc/passwd\": permission denied"));
    }
}
