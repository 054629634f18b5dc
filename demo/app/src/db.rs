//! The app's database: PostgreSQL, reached the way it is on GKE.
//!
//! On GKE the app connects to Cloud SQL for PostgreSQL through the Cloud SQL
//! Auth Proxy sidecar on the pod's localhost; locally, to a throwaway
//! PostgreSQL ([`crate::postgres`]) through the workbook's proxy
//! ([`crate::proxy`]). Either way the app only sees `DB_HOST`, `DB_PORT`,
//! `DB_NAME`, `DB_USER` and `DB_PASSWORD`, the last two from a Secret.
//!
//! The driver is **tokio-postgres**, because:
//! * it is async, on the same tokio runtime as axum, so a slow query holds
//!   a task, not a thread;
//! * it is pure Rust with no C library and no OpenSSL (`NoTls`), so the
//!   binary links statically and runs in a `FROM scratch` image;
//! * it builds small and fast (no compile-time query checking, no ORM), on a
//!   2-core machine that matters;
//! * it is maintained by the rust-postgres project, and the sync `postgres`
//!   crate and many pools are built on it.
//!
//! It speaks no TLS here on purpose: as on GKE, encryption and
//! authentication to the instance are the proxy's job, and the hop from the
//! app to the proxy never leaves the pod.
//!
//! What Kubernetes cares about is how the app behaves when the database is
//! *not* there, so that is most of this file: a background task connects
//! and reconnects with backoff, logs one readable line per failure, and
//! keeps the reason for `/readyz`. The app never exits because of the
//! database: a crash would make the kubelet restart it again and again
//! (CrashLoopBackOff) without fixing anything, while "not ready" simply
//! takes the pod out of the Service until the database is back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::AppInfo;

/// Where the database is (from `DB_*`, see [`crate::cli::DbArgs`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DbSettings {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: Option<String>,
}

/// Never prints the password, so settings can be logged.
impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl DbSettings {
    /// `user@host:port/name`: what the answers and logs show (no password).
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.name)
    }

    fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.name)
            .user(&self.user)
            .application_name("demo-app")
            // A proxy that accepts but cannot reach the instance would
            // otherwise leave us waiting for the kernel's TCP timeout.
            .connect_timeout(Duration::from_secs(5));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }
}

// ANCHOR: migrate
/// An arbitrary, fixed key for the advisory lock below ("visits" in ASCII).
const MIGRATION_LOCK: i64 = 0x7669_7369_7473;

/// Creates the `visits` table if it is missing. Every replica runs this when
/// it starts, so it must be idempotent *and* safe when three replicas of a
/// Deployment start at the same moment.
///
/// `CREATE TABLE IF NOT EXISTS` alone is not: two sessions can both see no
/// table and both create one; the loser fails with `duplicate key value
/// violates unique constraint "pg_type_typname_nsp_index"` (the table's row
/// type). So each replica first takes a transaction-scoped advisory lock:
/// the others wait, then find the table there. The lock is released by the
/// commit, even if the pod dies halfway.
pub async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS visits (
             id      bigserial   PRIMARY KEY,
             version text        NOT NULL,
             pod     text        NOT NULL,
             at      timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    tx.commit().await
}
// ANCHOR_END: migrate

/// How many recent visits per version `GET /` shows.
pub const RECENT_PER_VERSION: i64 = 3;

/// One visit, as `GET /` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub pod: String,
    /// UTC, RFC 3339 with milliseconds.
    pub at: String,
}

/// What the table holds, seen from one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visits {
    pub total: i64,
    /// The last few visits per version, newest first. During a rollout v1
    /// and v2 pods both appear here: they share one database.
    pub recent: BTreeMap<String, Vec<Visit>>,
}

/// The app's handle on its database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    settings: Arc<DbSettings>,
    state: Arc<Mutex<State>>,
}

/// A `std::sync::Mutex`, not tokio's: it is held only to copy a field in or
/// out, never across an `.await`.
#[derive(Debug)]
struct State {
    /// `Some` while connected (and migrated).
    client: Option<Arc<Client>>,
    /// Why not, when not: what `/readyz` reports.
    reason: String,
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// A query slower than this counts as a failure (for readiness and `GET /`).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

impl Database {
    /// Starts connecting in the background and returns at once: the app
    /// serves (and answers `/livez`) whether or not the database is there.
    pub fn start(settings: DbSettings) -> Database {
        let settings = Arc::new(settings);
        let state = Arc::new(Mutex::new(State {
            client: None,
            reason: format!("connecting to {}", settings.describe()),
        }));
        tokio::spawn(keep_connected(settings.clone(), Arc::downgrade(&state)));
        Database { settings, state }
    }

    pub fn settings(&self) -> &DbSettings {
        &self.settings
    }

    fn client(&self) -> Result<Arc<Client>, String> {
        let state = self.state.lock().unwrap();
        state.client.clone().ok_or_else(|| state.reason.clone())
    }

    /// For `/readyz`: does the database answer a query right now? A
    /// connection that looks fine may be dead (a network partition sends no
    /// close), so this asks.
    pub async fn check(&self) -> Result<(), String> {
        let client = self.client()?;
        match tokio::time::timeout(QUERY_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(explain(&e, &self.settings)),
            Err(_) => Err(format!("no answer within {} s", QUERY_TIMEOUT.as_secs())),
        }
    }

    // ANCHOR: record_visit
    /// For `GET /`: records this visit and reads back the totals.
    pub async fn record_visit(&self, info: &AppInfo) -> Result<Visits, String> {
        let client = self.client()?;
        let work = async {
            client
                .execute(
                    "INSERT INTO visits (version, pod) VALUES ($1, $2)",
                    &[&info.version, &info.pod],
                )
                .await?;
            let total: i64 = client
                .query_one("SELECT count(*) FROM visits", &[])
                .await?
                .get(0);
            let rows = client
                .query(
                    "SELECT version, pod,
                            to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                     FROM (SELECT *, row_number() OVER (PARTITION BY version ORDER BY id DESC) AS n
                           FROM visits) v
                     WHERE n <= $1
                     ORDER BY version, id DESC",
                    &[&RECENT_PER_VERSION],
                )
                .await?;
            let mut recent: BTreeMap<String, Vec<Visit>> = BTreeMap::new();
            for row in rows {
                recent.entry(row.get(0)).or_default().push(Visit {
                    pod: row.get(1),
                    at: row.get(2),
                });
            }
            Ok::<_, tokio_postgres::Error>(Visits { total, recent })
        };
        match tokio::time::timeout(QUERY_TIMEOUT, work).await {
            Ok(Ok(visits)) => Ok(visits),
            Ok(Err(e)) => Err(explain(&e, &self.settings)),
            Err(_) => Err(format!("no answer within {} s", QUERY_TIMEOUT.as_secs())),
        }
    }
    // ANCHOR_END: record_visit
}

// ANCHOR: keep_connected
/// The background task: connect, migrate, wait for the connection to end,
/// repeat. Failures are retried after 0.5 s, doubling up to 10 s, with one
/// log line each. It ends when the app drops its [`Database`].
async fn keep_connected(settings: Arc<DbSettings>, state: Weak<Mutex<State>>) {
    let mut delay = FIRST_RETRY;
    loop {
        let outcome = connect(&settings).await;
        let Some(shared) = state.upgrade() else {
            return;
        };
        match outcome {
            Ok((client, connection)) => {
                delay = FIRST_RETRY;
                shared.lock().unwrap().client = Some(Arc::new(client));
                drop(shared);
                tracing::info!("database: connected to {}", settings.describe());
                // The connection task ends when the server goes away.
                let reason = match connection.await {
                    Ok(Err(e)) => explain(&e, &settings),
                    _ => "the server closed the connection".to_string(),
                };
                let Some(shared) = state.upgrade() else {
                    return;
                };
                *shared.lock().unwrap() = State {
                    client: None,
                    reason: format!("connection lost: {reason}"),
                };
                tracing::warn!("database: connection lost: {reason}; reconnecting");
            }
            Err(reason) => {
                shared.lock().unwrap().reason = reason.clone();
                drop(shared);
                tracing::warn!("database: {reason}; retrying in {} s", delay.as_secs_f64());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}
// ANCHOR_END: keep_connected

type ConnectionTask = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

/// One attempt: connect, and make sure the table exists.
async fn connect(settings: &DbSettings) -> Result<(Client, ConnectionTask), String> {
    let (mut client, connection) = settings
        .config()
        .connect(NoTls)
        .await
        .map_err(|e| explain(&e, settings))?;
    // tokio-postgres splits a connection in two: the `Client` sends
    // queries, the `Connection` future does the socket I/O and must be
    // polled, so it gets a task of its own.
    let connection = tokio::spawn(connection);
    migrate(&mut client)
        .await
        .map_err(|e| format!("creating table visits: {}", explain(&e, settings)))?;
    Ok((client, connection))
}

// ANCHOR: explain
/// One readable line for a database error, with a hint at the setting to
/// check: what an operator reading `kubectl logs` needs, not a debug dump.
pub fn explain(err: &tokio_postgres::Error, settings: &DbSettings) -> String {
    if let Some(db) = err.as_db_error() {
        let hint = match db.code() {
            c if *c == SqlState::INVALID_PASSWORD => " (check DB_PASSWORD)",
            c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => " (check DB_USER)",
            c if *c == SqlState::INVALID_CATALOG_NAME => " (check DB_NAME)",
            _ => "",
        };
        return format!("{}{hint}", db.message());
    }
    // The Display of a tokio-postgres error is its kind ("error connecting
    // to server"); the cause ("Connection refused") is in its sources.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    if text.contains("password missing") {
        return format!(
            "the server asks for a password for user \"{}\" (set DB_PASSWORD)",
            settings.user
        );
    }
    if text.starts_with("error connecting to server") || text.contains("timeout") {
        return format!(
            "cannot connect to {}:{}: {} (is the database, or its proxy, running? check DB_HOST and DB_PORT)",
            settings.host,
            settings.port,
            text.trim_start_matches("error connecting to server: ")
        );
    }
    text
}
// ANCHOR_END: explain
