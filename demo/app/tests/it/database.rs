//! The app against a real PostgreSQL started by `demo_app::postgres`.

use std::sync::Arc;
use std::time::Duration;

use demo_app::Answer;
use demo_app::postgres::PostgresError;

use crate::support::{App, postgres};

async fn connect(pg: &demo_app::postgres::TempPostgres) -> tokio_postgres::Client {
    let s = pg.settings();
    let mut config = tokio_postgres::Config::new();
    config
        .host(&s.host)
        .port(s.port)
        .dbname(&s.name)
        .user(&s.user);
    if let Some(p) = &s.password {
        config.password(p);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Three replicas starting at the same moment all run the migration; none
/// fails (without the advisory lock one regularly would, on pg_type), and
/// running it again changes nothing.
#[tokio::test]
async fn migration_is_idempotent_under_three_concurrent_starts() {
    let pg = postgres(None).await;
    let admin = connect(&pg).await;
    for round in 0..5 {
        admin
            .batch_execute("DROP TABLE IF EXISTS visits")
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(connect(&pg).await);
        }
        let replicas: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    demo_app::db::migrate(&mut client).await
                })
            })
            .collect();
        for r in replicas {
            r.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
    }
    admin
        .execute("INSERT INTO visits (version, pod) VALUES ('v1', 'p')", &[])
        .await
        .unwrap();
    demo_app::db::migrate(&mut connect(&pg).await)
        .await
        .unwrap();
    let n: i64 = admin
        .query_one("SELECT count(*) FROM visits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "a second migration keeps the data");
}

/// A rollout's two versions write to one table, and each answer shows both.
#[tokio::test]
async fn visits_from_two_versions_land_in_one_table() {
    let pg = postgres(Some("s3cret")).await;
    let env = |pod: &str| {
        let mut env = pg.env();
        env.push(("POD_NAME".into(), pod.into()));
        env
    };
    let v1 = App::start(&["--app-version", "v1"], &env("web-v1-aaaaa")).await;
    let v2 = App::start(&["--app-version", "v2"], &env("web-v2-bbbbb")).await;
    v1.wait_for("/readyz", 200, Duration::from_secs(15)).await;
    v2.wait_for("/readyz", 200, Duration::from_secs(15)).await;

    for _ in 0..2 {
        assert_eq!(v1.get("/").await.0, 200);
    }
    let (status, body) = v2.get("/").await;
    assert_eq!(status, 200, "{body}");
    let answer: Answer = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.info.version, "v2");
    assert_eq!(answer.info.pod, "web-v2-bbbbb");
    assert_eq!(answer.database, format!("app@127.0.0.1:{}/app", pg.port()));
    assert_eq!(answer.total_visits, Some(3));
    let recent = answer.recent_visits.unwrap();
    let pods = |v: &str| recent[v].iter().map(|x| x.pod.as_str()).collect::<Vec<_>>();
    assert_eq!(pods("v1"), ["web-v1-aaaaa", "web-v1-aaaaa"]);
    assert_eq!(pods("v2"), ["web-v2-bbbbb"]);
    assert!(recent["v2"][0].at.ends_with('Z'), "{:?}", recent["v2"][0]);

    let rows = connect(&pg)
        .await
        .query(
            "SELECT version, count(*) FROM visits GROUP BY version ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts, [("v1".to_string(), 2), ("v2".to_string(), 1)]);
}

/// A database outage makes the app unready, never dead; it recovers alone.
#[tokio::test]
async fn readyz_fails_while_the_database_is_down_and_livez_never_does() {
    let mut pg = postgres(None).await;
    let mut app = App::start(&["--app-version", "v1"], &pg.env()).await;
    app.wait_for("/readyz", 200, Duration::from_secs(15)).await;
    assert_eq!(app.get("/").await.0, 200);

    pg.stop();
    let reason = app.wait_for("/readyz", 503, Duration::from_secs(5)).await;
    assert!(reason.starts_with("database: "), "{reason}");
    assert_eq!(app.get("/livez").await, (200, "ok".into()));
    let (status, body) = app.get("/").await;
    assert_eq!(status, 503);
    let answer: Answer = serde_json::from_str(&body).unwrap();
    assert!(answer.database.starts_with("unavailable: "), "{body}");
    // Still down a while later (the app retries with backoff) and alive.
    for _ in 0..10 {
        assert_eq!(app.get("/livez").await.0, 200);
        assert_eq!(app.get("/readyz").await.0, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the app kept running"
    );

    pg.start().await.unwrap();
    app.wait_for("/readyz", 200, Duration::from_secs(20)).await;
    let (status, body) = app.get("/").await;
    assert_eq!(status, 200, "{body}");
    let answer: Answer = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.total_visits, Some(2), "the data survived the outage");
    let logs = app.logs();
    assert!(logs.contains("database: connection lost"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A wrong password: one clear line, repeated with backoff, and the app
/// stays up and unready (no crash loop).
#[tokio::test]
async fn a_wrong_password_is_one_clear_line() {
    let pg = postgres(Some("right")).await;
    let mut env = pg.env();
    env.retain(|(k, _)| k != "DB_PASSWORD");
    env.push(("DB_PASSWORD".into(), "wrong".into()));
    let mut app = App::start(&[], &env).await;
    let expected = r#"database: password authentication failed for user "app" (check DB_PASSWORD)"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.logs().contains(expected) {
        assert!(
            std::time::Instant::now() < deadline,
            "logs:\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.get("/readyz").await, (503, format!("{expected}\n")));
    assert_eq!(app.get("/livez").await.0, 200);
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the app kept running"
    );
    // Each failure is one WARN line that says when the next try comes.
    for line in app.logs().lines().filter(|l| l.contains("password")) {
        assert!(
            line.contains(" WARN ") && line.contains("; retrying in "),
            "{line}"
        );
    }
}

/// Without server binaries the helper's error is one line that says how to
/// install them (what a test needing PostgreSQL then fails with).
#[test]
fn missing_binaries_are_one_line_saying_how_to_install() {
    let text = PostgresError::NotInstalled.to_string();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("apt-get install postgresql"), "{text}");
}
