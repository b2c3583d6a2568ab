//! One run of a sync at a time: a second process exits 6 while the first holds the lock, with
//! the SQLite lease (default store) and with the PostgreSQL advisory lock.
//!
//! The first process is held inside its run, after taking the lock, by an exclusive
//! transaction this test keeps on the CRM database (the first process waits on SQLite's busy
//! timeout); the test releases it once the second process has been refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::Quickstart;
use sqlx::Connection;
use syncctl_testkit::cli::CliRun;

fn spawn(q: &Quickstart, state_url: &str) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .env("USER", "tester")
        .current_dir(q.dir.path())
        .args([
            "sync",
            "run",
            "--config",
            &q.config(),
            "--state-url",
            state_url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls (no fixed sleep decides the outcome) until `probe` says the lock is held.
async fn wait_for<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn contend(
    q: &Quickstart,
    sync_name: &str,
    state_url: &str,
    lock_held: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>,
) {
    // Hold the CRM so the first run blocks inside its lock.
    let mut crm =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", q.path("work/crm.db").display()))
            .await
            .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut crm)
        .await
        .unwrap();
    let first = spawn(q, state_url);
    wait_for("the first run to take the lock", &lock_held).await;

    let second = crate::support::syncctl()
        .current_dir(q.dir.path())
        .args([
            "sync",
            "run",
            "--config",
            &q.config(),
            "--state-url",
            state_url,
        ])
        .output()
        .unwrap();
    let second = CliRun::from_output(&second);
    assert_eq!(second.code, 6, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(second.error_class(), Some("conflict"));
    assert_eq!(second.result["error"]["retryable"], true);
    let msg = second.result["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("sync {sync_name:?} is already running")),
        "{msg}"
    );

    sqlx::query("COMMIT").execute(&mut crm).await.unwrap();
    crm.close().await.unwrap();
    let out = first.wait_with_output().unwrap();
    let first = CliRun::from_output(&out);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.result["data"]["target"]["created"], 3);

    // Released: a third run goes through and has nothing left to do.
    let third = q.sync(&["run", "--state-url", state_url]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.result["data"]["target"]["created"], 0);
}

#[tokio::test]
async fn a_second_run_exits_6_while_the_first_holds_the_sqlite_lease() {
    let q = Quickstart::new();
    let state = q.path("work/state.db");
    let url = format!("sqlite://{}", state.display());
    let state2 = state.clone();
    contend(&q, "quickstart-contacts", &url, move || {
        let state = state2.clone();
        Box::pin(async move {
            if !state.exists() {
                return false;
            }
            let Ok(pool) =
                sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", state.display())).await
            else {
                return false;
            };
            let n: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM sync_lock")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            n == Some(1)
        })
    })
    .await;
}

#[tokio::test]
async fn a_second_run_exits_6_while_the_first_holds_the_postgres_advisory_lock() {
    let pg = crate::support::pg_url();
    let schema = format!("syncctl_lock_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&pg)
        .await
        .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL)");
    let q = Quickstart::new();
    // The advisory lock is keyed by the sync's name across the whole database, not per schema:
    // a name of its own keeps a quickstart run elsewhere in the database (another test, another
    // checkout's test run) from holding it first.
    let sync_name = format!("lock-{}", uuid::Uuid::new_v4().simple());
    q.edit_config(|t| t.replace("name: quickstart-contacts", &format!("name: {sync_name}")));
    let url = format!("{pg}?schema={schema}");
    let (admin2, schema2) = (admin.clone(), schema.clone());
    contend(&q, &sync_name, &url, move || {
        let (admin, schema) = (admin2.clone(), schema2.clone());
        Box::pin(async move {
            let sql = format!("SELECT count(*) FROM \"{schema}\".sync_lock");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&admin)
                .await
                .ok()
                == Some(1)
        })
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}
