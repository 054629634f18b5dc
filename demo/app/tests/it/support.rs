//! What the tests share: starting the app binary and a PostgreSQL, probing.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo_app::postgres::{Options, TempPostgres};
use tokio::io::AsyncReadExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_demo-app");

/// A loopback address with a port nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A throwaway PostgreSQL; when the server binaries are missing the test
/// fails with the helper's one line ("install them with `apt-get install
/// postgresql`"), never passes without a database.
pub async fn postgres(password: Option<&str>) -> TempPostgres {
    TempPostgres::new(Options {
        password: password.map(str::to_string),
        ..Options::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The app binary, running as a container would: its stderr (the logs)
/// collected for assertions.
pub struct App {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl App {
    /// Starts `demo-app --listen ADDR` with `args` and `env` and waits until
    /// it answers `/livez`.
    pub async fn start(args: &[&str], env: &[(String, String)]) -> App {
        let addr = free_addr();
        let mut child = tokio::process::Command::new(BIN)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .envs(env.iter().cloned())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let app = App { child, addr, logs };
        app.wait_for("/livez", 200, Duration::from_secs(10)).await;
        app
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        get(self.addr, path).await
    }

    /// Polls `path` until it answers `status`; panics with the logs if not.
    pub async fn wait_for(&self, path: &str, status: u16, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let (s, body) = self.get(path).await;
            if s == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {s} {body:?}, not {status}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("still running") as libc::pid_t;
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }
}

/// One GET; status 0 when nothing answers.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}
