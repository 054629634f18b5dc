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
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::kubelet::logs::{LogLine, LogStream};
use crate::machinery::remotecommand::{ExecSession, Outcome, StreamOptions, TerminalSize};

/// A command to run for `kubectl exec`, with the container's environment
/// and working directory.
pub struct HostExec<'a> {
    pub command: &'a [String],
    pub env: &'a [(String, String)],
    pub working_dir: &'a str,
}

impl HostExec<'_> {
    /// The child as the container would see it: only the container's
    /// environment (not the kubelet's), in its working directory. `None`
    /// for an empty command. Used for `kubectl exec` and for exec probes
    /// alike, as the CRI's `Exec` and `ExecSync` run the same way.
    pub fn command(&self) -> Option<Command> {
        let (program, args) = self.command.split_first()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.working_dir)
            // Whoever holds the child owns it: dropping it (a client
            // that went away, a probe that timed out) kills the command.
            .kill_on_drop(true);
        Some(cmd)
    }
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

/// Copy a pipe into a channel, chunk by chunk, until EOF. Without a reader
/// (`tx` is `None`, or the API server stopped listening) the pipe is still
/// read to its end: a command whose output nobody reads must not block on
/// a full pipe.
fn forward(pipe: impl AsyncRead + Send + Unpin + 'static, mut tx: Option<mpsc::Sender<Bytes>>) {
    tokio::spawn(async move {
        let mut chunks = tokio_util::io::ReaderStream::new(pipe);
        while let Some(Ok(chunk)) = chunks.next().await {
            if let Some(out) = &tx
                && out.send(chunk).await.is_err()
            {
                tx = None;
            }
        }
    });
}

/// The client's stdin, written into a pipe (a child's stdin, the hijacked
/// connection of a `docker exec`). When the sender is dropped — the
/// client's end of input — the pipe is shut down and closed, and the
/// command reads EOF.
pub(super) fn write_stdin(
    mut pipe: impl AsyncWrite + Send + Unpin + 'static,
) -> mpsc::Sender<Bytes> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if pipe.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = pipe.shutdown().await;
    });
    tx
}

/// How an attach ends: when the container's output does, successfully
/// (`kubectl attach` exits 0 once the container has exited).
pub(super) fn attach_outcome(output_done: oneshot::Receiver<()>) -> BoxFuture<'static, Outcome> {
    async move {
        let _ = output_done.await;
        Outcome::Exited {
            code: 0,
            command: Vec::new(),
        }
    }
    .boxed()
}

// ANCHOR: host_exec
/// Start `exec` as a child process and connect its pipes — or, when the
/// client asked for a terminal (`kubectl exec -it`), its
/// [pseudo-terminal](spawn_tty).
pub fn spawn(exec: HostExec<'_>, options: StreamOptions) -> Result<ExecSession, String> {
    let Some((program, args)) = exec.command.split_first() else {
        return Err("you must specify at least one command for the container".into());
    };
    if options.tty {
        return spawn_tty(program, args, &exec, options);
    }
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut cmd = exec.command().expect("not empty, checked above");
    cmd.stdin(piped(options.stdin))
        .stdout(piped(options.stdout))
        .stderr(piped(options.stderr))
        .process_group(0);
    let (out_tx, out_rx) = mpsc::channel(16);
    let (err_tx, err_rx) = mpsc::channel(16);
    let command = exec.command.to_vec();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(not_started(program, &e, command, options)),
    };
    if let Some(out) = child.stdout.take() {
        forward(out, Some(out_tx));
    }
    if let Some(err) = child.stderr.take() {
        forward(err, Some(err_tx));
    }
    Ok(ExecSession {
        stdin: child.stdin.take().map(write_stdin),
        stdout: options.stdout.then_some(out_rx),
        stderr: options.stderr.then_some(err_rx),
        resize: None,
        outcome: exit_code(child, command),
    })
}
// ANCHOR_END: host_exec

/// No process: runc's message on the error stream (the only stream, with
/// a terminal) and the exit code as Docker gives it.
fn not_started(
    program: &str,
    e: &std::io::Error,
    command: Vec<String>,
    options: StreamOptions,
) -> ExecSession {
    let (out_tx, out_rx) = mpsc::channel(1);
    let (err_tx, err_rx) = mpsc::channel(1);
    let (code, message) = exec_failure(program, e.kind(), &e.to_string());
    let tx = if options.stderr { &err_tx } else { &out_tx };
    let _ = tx.try_send(Bytes::from(message));
    ExecSession {
        stdin: None,
        stdout: options.stdout.then_some(out_rx),
        stderr: options.stderr.then_some(err_rx),
        resize: None,
        outcome: futures::future::ready(Outcome::Exited { code, command }).boxed(),
    }
}

/// The exit code once the child is gone: killed by signal N → 128 + N, as
/// runtimes report it (Ctrl-C in a terminal: 130).
fn exit_code(mut child: Child, command: Vec<String>) -> BoxFuture<'static, Outcome> {
    async move {
        match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .or(status.signal().map(|s| 128 + s))
                    .unwrap_or(-1);
                Outcome::Exited { code, command }
            }
            Err(e) => Outcome::Failed(format!("error executing command in container: {e}")),
        }
    }
    .boxed()
}

// ANCHOR: host_tty
/// `kubectl exec -it`: the command runs on a **pseudo-terminal**, as runc
/// gives it one (`tty: true` in the exec's process spec).
///
/// A pty is a pair of devices. The command gets the *slave* end
/// (`/dev/pts/N`) as its stdin, stdout and stderr, and as the controlling
/// terminal of a new session, so `tty` names it and a shell turns on line
/// editing and job control. The kubelet keeps the *master* end: what the
/// client types is written to it, what the command prints is read from it
/// — one stream, which is why a terminal has no separate stderr. Between
/// the two sits the kernel's line discipline, which echoes what is typed
/// and turns control characters into signals: the byte 0x03 (Ctrl-C)
/// becomes SIGINT for the terminal's foreground process group. The window
/// size lives on the terminal too (`TIOCSWINSZ`): a resize from the client
/// sets it, and the kernel sends the command SIGWINCH so it redraws.
fn spawn_tty(
    program: &str,
    args: &[String],
    exec: &HostExec<'_>,
    options: StreamOptions,
) -> Result<ExecSession, String> {
    let command = exec.command.to_vec();
    let (pty, pts) = pty_process::open().map_err(|e| format!("cannot allocate a tty: {e}"))?;
    let mut env: Vec<(String, String)> = exec.env.to_vec();
    // Docker's exec sets TERM for a terminal when the container does not.
    if !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    let spawned = pty_process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(exec.working_dir)
        .kill_on_drop(true)
        // Consumes the command, and with it our copies of the slave end:
        // once the command (and whatever it started) has closed the
        // terminal, reading the master ends.
        .spawn(pts);
    let child = match spawned {
        Ok(child) => child,
        Err(pty_process::Error::Io(e)) => return Ok(not_started(program, &e, command, options)),
        Err(e) => return Err(format!("cannot start {program:?} on a tty: {e}")),
    };
    let (master_out, master_in) = pty.into_split();
    let (out_tx, out_rx) = mpsc::channel(16);
    // After the last slave fd closes, Linux answers a read of the master
    // with EIO: the end of the output. Without a reader (`stdout=false`)
    // the terminal is read all the same, so the command never blocks.
    forward(master_out, options.stdout.then_some(out_tx));
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<TerminalSize>(4);
    let stdin_rx = options.stdin.then_some(stdin_rx);
    tokio::spawn(terminal_input(master_in, stdin_rx, resize_rx));
    Ok(ExecSession {
        stdin: options.stdin.then_some(stdin_tx),
        stdout: options.stdout.then_some(out_rx),
        stderr: None,
        resize: Some(resize_tx),
        outcome: exit_code(child, command),
    })
}

/// What goes *into* the terminal: keystrokes, and window sizes. One task
/// for both keeps their order — kubectl sends the size before the first
/// keystroke, and `stty size` must see it. At the end of the client's
/// stdin the terminal gets its end-of-file character (Ctrl-D), as from a
/// keyboard: closing the master would hang up the whole session instead.
async fn terminal_input(
    mut master: pty_process::OwnedWritePty,
    stdin: Option<mpsc::Receiver<Bytes>>,
    mut resize: mpsc::Receiver<TerminalSize>,
) {
    // No stdin (`exec -t` without `-i`): nothing is ever typed, and no
    // end-of-file either.
    let mut stdin_open = stdin.is_some();
    let mut stdin = stdin.unwrap_or_else(|| mpsc::channel(1).1);
    loop {
        tokio::select! {
            // A size that arrived before a keystroke is applied first.
            biased;
            size = resize.recv() => match size {
                Some(size) => {
                    let _ = master.resize(pty_process::Size::new(size.height, size.width));
                }
                None if !stdin_open => return,
                None => {}
            },
            data = stdin.recv(), if stdin_open => match data {
                Some(data) => {
                    if master.write_all(&data).await.is_err() {
                        return;
                    }
                }
                None => {
                    stdin_open = false;
                    let _ = master.write_all(&[CTRL_D]).await;
                }
            },
        }
    }
}

/// The default `VEOF` character of a terminal.
const CTRL_D: u8 = 0x04;
// ANCHOR_END: host_tty

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
    let (done_tx, done_rx) = oneshot::channel();
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
        outcome: attach_outcome(done_rx),
    }
}
// ANCHOR_END: attach_logs

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Start `command` as `kubectl exec` would, in `/`, with a container
    /// environment of `PATH` and `GREETING`; the session and the argv.
    fn start(command: &[&str], options: StreamOptions) -> (ExecSession, Vec<String>) {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let env = [
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("GREETING".into(), "hello".into()),
        ];
        let exec = HostExec {
            command: &command,
            env: &env,
            working_dir: "/",
        };
        (spawn(exec, options).unwrap(), command)
    }

    fn pipes() -> StreamOptions {
        StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        }
    }

    fn tty() -> StreamOptions {
        StreamOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        }
    }

    /// `what` within 30 s (generous: the machine is shared).
    async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .unwrap_or_else(|_| panic!("no {what} within 30 s"))
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

    /// Read the terminal until `want` shows up (the output of a terminal
    /// comes in pieces, with the echo of what was typed mixed in).
    async fn read_until(rx: &mut mpsc::Receiver<Bytes>, want: &str) -> String {
        let mut seen = String::new();
        let read = async {
            while !seen.contains(want) {
                match rx.recv().await {
                    Some(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                    None => break,
                }
            }
        };
        within(want, read).await;
        assert!(seen.contains(want), "no {want:?}; saw {seen:?}");
        seen
    }

    #[tokio::test]
    async fn runs_with_the_containers_environment_and_stdin() {
        let shell = ["/bin/sh", "-c", "echo $GREETING from $(pwd); cat; exit 4"];
        let (s, command) = start(&shell, pipes());
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
        let (s, command) = start(&["no-such-program"], pipes());
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

    #[tokio::test]
    async fn a_terminal_with_its_size_and_the_exit_code() {
        let (s, command) = start(&["/bin/sh"], tty());
        assert!(s.stderr.is_none(), "a terminal has one output stream");
        let (stdin, resize) = (s.stdin.unwrap(), s.resize.unwrap());
        let mut out = s.stdout.unwrap();
        let size = |width, height| TerminalSize { width, height };
        resize.send(size(100, 30)).await.unwrap();
        stdin
            .send(Bytes::from_static(b"tty; stty size; echo $TERM\n"))
            .await
            .unwrap();
        let seen = read_until(&mut out, "xterm").await;
        assert!(seen.contains("/dev/pts/"), "{seen:?}");
        assert!(seen.contains("30 100"), "{seen:?}");
        // A new size, and the kernel tells the terminal's programs.
        resize.send(size(132, 43)).await.unwrap();
        stdin
            .send(Bytes::from_static(b"stty size; exit 5\n"))
            .await
            .unwrap();
        read_until(&mut out, "43 132").await;
        // The end of the output once the shell has closed the terminal.
        within("end of the output", async {
            while out.recv().await.is_some() {}
        })
        .await;
        assert_eq!(s.outcome.await, Outcome::Exited { code: 5, command });
    }

    #[tokio::test]
    async fn ctrl_c_is_sigint_and_ctrl_d_is_the_end() {
        let (s, command) = start(&["sleep", "60"], tty());
        let stdin = s.stdin.unwrap();
        stdin.send(Bytes::from_static(b"\x03")).await.unwrap();
        // 128 + SIGINT (2), as a shell reports it.
        let outcome = within("end of the interrupted sleep", s.outcome).await;
        assert_eq!(outcome, Outcome::Exited { code: 130, command });

        // The end of stdin is Ctrl-D: `cat` on a terminal reads EOF.
        let (s, command) = start(&["cat"], tty());
        let mut out = s.stdout.unwrap();
        let stdin = s.stdin.unwrap();
        stdin.send(Bytes::from_static(b"typed\n")).await.unwrap();
        drop(stdin);
        // Echoed by the terminal, then written back by cat: with \r\n,
        // the terminal's line ending.
        read_until(&mut out, "typed\r\ntyped\r\n").await;
        let outcome = within("end of cat", s.outcome).await;
        assert_eq!(outcome, Outcome::Exited { code: 0, command });

        // A missing program on a terminal: runc's words on the one stream.
        let (s, command) = start(&["no-such-program"], tty());
        let out = drain(s.stdout).await;
        assert!(out.contains("executable file not found in $PATH"), "{out}");
        assert_eq!(s.outcome.await, Outcome::Exited { code: 127, command });
    }

    #[tokio::test]
    async fn a_terminal_nobody_reads_does_not_block_the_command() {
        // `exec -t` with neither stdin nor stdout: the output (more than a
        // terminal buffers) is read and dropped, and the command ends.
        let options = StreamOptions {
            stdin: false,
            stdout: false,
            ..tty()
        };
        let (s, command) = start(&["/bin/sh", "-c", "seq 1 100000; exit 2"], options);
        assert!(s.stdout.is_none() && s.stdin.is_none());
        let outcome = within("end of the unread command", s.outcome).await;
        assert_eq!(outcome, Outcome::Exited { code: 2, command });
    }
}
