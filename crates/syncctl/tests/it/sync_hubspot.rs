//! SQLite ⇄ HubSpot end to end through the binary, against the stateful HubSpot fake: a dry
//! run writes nothing anywhere; the run matches existing contacts by email (never a duplicate),
//! creates both ways and survives 429s; a rerun with nothing changed makes no write call and
//! one read call per side; a used-up daily quota stops the run as transient (exit 4) without
//! tripping the breaker; a vendor's per-record refusal reaches the audit with its category.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::{CallKind, HubSpotFake};

use crate::support::{crm_rows_of, sqlite};

const TOKEN: &str = "pat-na1-e2e-secret-token";

const CONFIG: &str = r#"
name: crm-hubspot
source: {connector: sqlite, url: "sqlite://crm.db", object: customers, updated_at_column: updated_at}
target: {connector: hubspot, object: contacts}
key: {source: email, target: email}
fields:
  - {source: email, target: email, transform: lowercase}
  - {source: first_name, target: firstname}
  - {source: last_name, target: lastname}
  - {source: phone, target: phone}
direction: bidirectional
conflict_strategy: source_wins
state: "sqlite://state.db"
"#;

async fn crm(dir: &Path) {
    let pool = sqlite(&dir.join("crm.db")).await;
    for sql in [
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, first_name TEXT, last_name TEXT, phone TEXT, updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
        "INSERT INTO customers (email, first_name, last_name, phone) VALUES ('ada@example.com', 'Ada', 'Lovelace', '+441234567'), ('Grace@Example.com', 'Grace', 'Hopper', NULL)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn exec(dir: &Path, sql: &'static str) {
    let pool = sqlite(&dir.join("crm.db")).await;
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn run(dir: &Path, server: &FakeServer, args: &[&str]) -> CliRun {
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(dir)
        .env("HUBSPOT_API_TOKEN", TOKEN)
        .env("HUBSPOT_BASE_URL", server.url())
        .arg("sync")
        .args(args)
        .args(["--config", "sync.yaml"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let r = CliRun::from_output(&out);
    assert!(
        !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
        "the token leaked"
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_hubspot_sync_both_ways_without_duplicates_or_needless_calls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sync.yaml"), CONFIG).unwrap();
    crm(dir.path()).await;
    let fake = HubSpotFake::new(TOKEN);
    let ada = fake.seed(
        "contacts",
        &[
            ("email", "Ada@example.com"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
        ],
    );
    fake.seed(
        "contacts",
        &[
            ("email", "alan@example.com"),
            ("firstname", "Alan"),
            ("lastname", "Turing"),
            ("phone", "+447700900"),
        ],
    );
    let server = FakeServer::start(fake.router()).await;

    // A dry run reads both sides and writes nothing anywhere.
    let crm_before = std::fs::read(dir.path().join("crm.db")).unwrap();
    let plan = run(dir.path(), &server, &["run", "--dry-run"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(fake.write_calls(), 0);
    assert_eq!(
        std::fs::read(dir.path().join("crm.db")).unwrap(),
        crm_before
    );
    assert!(
        !dir.path().join("state.db").exists(),
        "dry run created state"
    );

    // 429 storms are absorbed (Retry-After honoured) and nothing is lost.
    fake.fail_next(CallKind::BatchUpsert, 429, Some(1), 2);
    let first = run(dir.path(), &server, &["run"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    assert_eq!(first.status(), "succeeded");
    let contacts = fake.all("contacts");
    assert_eq!(contacts.len(), 3, "{contacts:?}");
    assert_eq!(
        fake.find("contacts", "email", "ada@example.com")
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![ada],
        "ada matched by email, not duplicated"
    );
    let grace = fake.find("contacts", "email", "grace@example.com");
    assert_eq!(grace.len(), 1);
    assert_eq!(grace[0].properties["firstname"], "Grace");
    let rows = crm_rows_of(
        &dir.path().join("crm.db"),
        &["email", "first_name", "last_name", "phone"],
    )
    .await;
    assert_eq!(rows["alan@example.com"]["first_name"], "Alan");
    assert_eq!(rows["alan@example.com"]["phone"], "+447700900");
    assert!(fake.refused() >= 2);

    // Nothing changed: no write call, one read call on the HubSpot side.
    let (writes, calls) = (fake.write_calls(), fake.total_calls());
    let again = run(dir.path(), &server, &["run"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(fake.write_calls(), writes, "a rerun wrote");
    assert_eq!(fake.total_calls() - calls, 1, "one read call per side");

    // A change on each side propagates; HubSpot's lower-cased email never flips back.
    exec(dir.path(), "UPDATE customers SET last_name = 'King', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE email = 'ada@example.com'").await;
    fake.edit("contacts", grace[0].id, &[("phone", "+12025550143")]);
    let third = run(dir.path(), &server, &["run"]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        fake.get("contacts", ada).unwrap().properties["lastname"],
        "King"
    );
    let rows = crm_rows_of(
        &dir.path().join("crm.db"),
        &["email", "first_name", "last_name", "phone"],
    )
    .await;
    assert_eq!(rows["Grace@Example.com"]["phone"], "+12025550143");
    let (writes, calls) = (fake.write_calls(), fake.total_calls());
    let quiet = run(dir.path(), &server, &["run"]).await;
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(fake.write_calls(), writes, "values flipped back and forth");
    assert_eq!(fake.total_calls() - calls, 1);

    // A used-up daily quota: the run stops as transient (exit 4), the breaker stays closed.
    exec(dir.path(), "UPDATE customers SET first_name = 'Augusta', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE email = 'ada@example.com'").await;
    fake.exhaust_daily();
    let quota = run(dir.path(), &server, &["run"]).await;
    assert_eq!(quota.code, 4, "{}\n{}", quota.stderr, quota.stdout);
    assert_eq!(quota.status(), "failed");
    assert_eq!(quota.error_class(), Some("transient"));
    let msg = quota.result["error"]["message"].as_str().unwrap();
    assert!(msg.contains("daily"), "{msg}");
    let breakers = quota.result["data"]["breaker"].to_string();
    assert!(!breakers.contains("\"open\""), "{breakers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_keeps_the_vendors_category_and_the_others_are_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sync.yaml"),
        CONFIG.replace(
            "conflict_strategy: source_wins",
            "conflict_strategy: source_wins\nmax_failures: 5",
        ),
    )
    .unwrap();
    crm(dir.path()).await;
    exec(
        dir.path(),
        "INSERT INTO customers (email, first_name) VALUES ('not-an-email', 'Bad')",
    )
    .await;
    let fake = HubSpotFake::new(TOKEN);
    let server = FakeServer::start(fake.router()).await;
    let r = run(dir.path(), &server, &["run"]).await;
    assert_eq!(fake.all("contacts").len(), 2, "{}", r.stdout);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let failed = &r.result["data"]["failed"];
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["side"], "target");
    assert_eq!(
        failed[0]["error"],
        "[VALIDATION_ERROR] Property values were not valid: INVALID_EMAIL \"not-an-email\""
    );
    assert_eq!(r.result["data"]["target"]["created"], 2);
}
