//! A throwaway PostgreSQL server, for the demo, the labs and the tests.
//!
//! On GKE the database is Cloud SQL; locally it is a real PostgreSQL
//! started from the server binaries installed on the machine (Debian's
//! `postgresql` package), the way test tools such as `pg_tmp` or
//! testcontainers do it without Docker:
//!
//! 1. `initdb` a new cluster into a temporary directory, with one superuser
//!    `app` (trust, or a password so that a wrong one can be shown);
//! 2. start `postgres` on a loopback address and a free port, its Unix
//!    socket in the same directory (not `/var/run/postgresql`, which may not
//!    exist or may belong to a system server);
//! 3. wait until it accepts connections, create the database;
//! 4. on drop: fast shutdown (SIGINT: roll back open transactions,
//!    disconnect, checkpoint, exit) and remove the directory.
//!
//! `initdb` and `postgres` refuse to run as root (a server holding every
//! file of the machine would be a gift to an attacker). Containers, CI and
//! this project's machines run as root, so there the helper runs them as the
//! package's `postgres` system user on a directory that user owns. On a
//! learner's normal account none of that happens.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::DbSettings;

/// The one user the cluster has: a superuser named like the app's user.
pub const USER: &str = "app";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: trust authentication (any password is accepted). `Some`:
    /// SCRAM password authentication, so a wrong password is refused.
    pub password: Option<String>,
    /// The database to create.
    pub database: String,
    /// The loopback address to listen on.
    pub host: IpAddr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            password: None,
            database: "app".into(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// Why no server could be started.
#[derive(Debug)]
pub enum PostgresError {
    /// No server binaries on this machine: the message says how to install.
    NotInstalled,
    /// Running as root, but there is no `postgres` user to run as.
    NoPostgresUser,
    /// Anything else, as one line (with the server's last log line).
    Failed(String),
}

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostgresError::NotInstalled => write!(
                f,
                "no PostgreSQL server binaries found (looked at PG_BIN_DIR, /usr/lib/postgresql/*/bin \
                 and initdb on PATH); install them with `apt-get install postgresql`"
            ),
            PostgresError::NoPostgresUser => write!(
                f,
                "initdb and postgres refuse to run as root and there is no `postgres` user to run \
                 them as; install Debian's package with `apt-get install postgresql`, which creates it"
            ),
            PostgresError::Failed(why) => write!(f, "PostgreSQL: {why}"),
        }
    }
}

impl std::error::Error for PostgresError {}

fn failed(what: impl std::fmt::Display) -> PostgresError {
    PostgresError::Failed(what.to_string())
}

/// A running throwaway server. Stopped, and its directory removed, on drop.
#[derive(Debug)]
pub struct TempPostgres {
    options: Options,
    port: u16,
    bin_dir: PathBuf,
    /// Removed (recursively) when dropped, after the server has stopped.
    dir: tempfile::TempDir,
    /// `Some((uid, gid))` of the `postgres` user when we are root.
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
}

impl TempPostgres {
    /// initdb + start + create the database. Takes a second or two.
    pub async fn new(options: Options) -> Result<TempPostgres, PostgresError> {
        let bin_dir = find_bin_dir()?;
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user().ok_or(PostgresError::NoPostgresUser)?)
        } else {
            None
        };
        remove_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| failed(format!("cannot create a temporary directory: {e}")))?;
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| failed(format!("chown {}: {e}", dir.path().display())))?;
        }
        let mut pg = TempPostgres {
            port: free_port(options.host)?,
            options,
            bin_dir,
            dir,
            run_as,
            server: None,
        };
        pg.initdb().await?;
        pg.start().await?;
        pg.create_database().await?;
        Ok(pg)
    }

    /// The settings the app needs to reach this server directly.
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            host: self.options.host.to_string(),
            port: self.port,
            name: self.options.database.clone(),
            user: USER.into(),
            password: self.options.password.clone(),
        }
    }

    pub fn host(&self) -> IpAddr {
        self.options.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `DB_*` environment variables for the app, as a Secret and a
    /// ConfigMap would set them.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = self.settings();
        let mut env = vec![
            ("DB_HOST".to_string(), s.host),
            ("DB_PORT".to_string(), s.port.to_string()),
            ("DB_NAME".to_string(), s.name),
            ("DB_USER".to_string(), s.user),
        ];
        if let Some(password) = s.password {
            env.push(("DB_PASSWORD".to_string(), password));
        }
        env
    }

    /// A `Command` for one of the server binaries, as the right user, that
    /// dies with us.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill)
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // If the process that started the server dies, however it
                // dies (Ctrl-C, SIGKILL, a panic), the kernel sends the
                // server SIGINT: a fast shutdown, no orphan left listening.
                // (The signal follows the *thread* that forked, so start
                // the server from a long-lived thread, as tokio's workers
                // and a test's main thread are.) Set after the switch to
                // the postgres user, which would otherwise clear it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGINT);
                }
                Ok(())
            });
        }
        cmd
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    async fn initdb(&self) -> Result<(), PostgresError> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", USER, "-E", "UTF8", "--locale=C"])
            // No fsync: the data is thrown away anyway, and it is faster.
            .arg("--no-sync");
        match &self.options.password {
            None => {
                cmd.args(["-A", "trust"]);
            }
            Some(password) => {
                let pwfile = self.dir.path().join("pwfile");
                std::fs::write(&pwfile, password).map_err(failed)?;
                if let Some((uid, gid)) = self.run_as {
                    chown(&pwfile, Some(uid), Some(gid)).map_err(failed)?;
                }
                cmd.args(["-A", "scram-sha-256", "--pwfile"]).arg(pwfile);
            }
        }
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .map_err(|e| failed(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "initdb failed: {}",
                last_line(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(())
    }

    /// Starts the server (again, after [`stop`](Self::stop)) on the same
    /// address and port, and waits until it accepts connections.
    pub async fn start(&mut self) -> Result<(), PostgresError> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(failed)?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-h", &self.options.host.to_string()])
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(log.try_clone().map_err(failed)?)
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| failed(format!("cannot run postgres: {e}")))?;
        self.server = Some(child);
        self.wait_until_ready("postgres").await
    }

    /// Tries to connect until the server answers (it refuses connections,
    /// or answers "the database system is starting up", until then).
    async fn wait_until_ready(&mut self, database: &str) -> Result<(), PostgresError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut config = self.settings().config_for(database);
        config.connect_timeout(Duration::from_secs(2));
        loop {
            if let Some(server) = &mut self.server
                && let Ok(Some(status)) = server.try_wait()
            {
                self.server = None;
                return Err(failed(format!(
                    "postgres exited ({status}): {}",
                    last_line(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
                )));
            }
            match config.connect(tokio_postgres::NoTls).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(failed(format!("not accepting connections after 30 s: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn create_database(&self) -> Result<(), PostgresError> {
        let (client, connection) = self
            .settings()
            .config_for("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        let connection = tokio::spawn(connection);
        // An identifier, not a value: quoted by hand (doubling quotes).
        let name = self.options.database.replace('"', "\"\"");
        if self.options.database != "postgres" {
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .map_err(|e| failed(format!("creating database {name}: {e}")))?;
        }
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// Fast shutdown, waiting for the server to exit (the outage test's
    /// "database down"). [`start`](Self::start) brings it back.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
        // Then `dir` drops, removing the data directory.
    }
}

impl DbSettings {
    /// The same settings for another database of the server.
    fn config_for(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(database)
            .user(&self.user);
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }
}

/// Where the server binaries are: `PG_BIN_DIR` if set; else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian installs them there, off
/// PATH, and `pg_config --bindir` is not always installed); else the
/// directory of `initdb` on PATH.
pub fn find_bin_dir() -> Result<PathBuf, PostgresError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(failed(format!(
                "PG_BIN_DIR={} has no initdb and postgres",
                dir.display()
            )))
        };
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter_map(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|dir| has_server(dir))
        .ok_or(PostgresError::NotInstalled)
}

/// The `postgres` system user's uid and gid, if there is one.
fn postgres_user() -> Option<(u32, u32)> {
    let name = CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns null or a pointer to a static record that we
    // read at once, before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// A port nobody listens on right now (the kernel picks it).
fn free_port(host: IpAddr) -> Result<u16, PostgresError> {
    let listener = TcpListener::bind((host, 0)).map_err(|e| failed(format!("bind {host}: {e}")))?;
    Ok(listener.local_addr().map_err(failed)?.port())
}

const DIR_PREFIX: &str = "demo-app-pg-";

/// Directories left by a process that was SIGKILLed (no `Drop` ran; its
/// server died with it through PDEATHSIG): removed when their pid is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
}
