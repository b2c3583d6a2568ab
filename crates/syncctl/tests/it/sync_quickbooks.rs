//! SQLite ⇄ QuickBooks end to end through the binary, against the stateful QuickBooks fake
//! (with Intuit's OAuth endpoint): a refresh token Intuit rotated in one process is the one the
//! next process uses (the fake refuses the old one), sealed in the state store with
//! `SYNCCTL_STATE_KEY`; a wrong key is refused before anything is called; an access token that
//! expires mid-run is refreshed and the run completes; a concurrent editor's change between
//! our read and our write (a stale SyncToken, 5010) survives and ours lands too. No secret
//! appears in any output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

use crate::support::sqlite;

const CLIENT_ID: &str = "syncctl-e2e-app";
const CLIENT_SECRET: &str = "e2e-client-secret-value";
const FIRST_REFRESH: &str = "qbo-refresh-initial-e2e";
const STATE_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const OTHER_KEY: &str = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";

const CONFIG: &str = r#"
name: crm-quickbooks
source: {connector: sqlite, url: "sqlite://crm.db", object: customers, updated_at_column: updated_at}
target: {connector: quickbooks, object: Customer}
key: {source: email, target: PrimaryEmailAddr.Address}
fields:
  - {source: email, target: PrimaryEmailAddr.Address}
  - {source: first_name, target: GivenName}
  - {source: last_name, target: FamilyName}
  - {source: phone, target: PrimaryPhone.FreeFormNumber}
  - {source: company, target: CompanyName}
direction: bidirectional
conflict_strategy: source_wins
state: "sqlite://state.db"
"#;

async fn crm(dir: &Path, rows: &[(&str, &str, &str, &str)]) {
    std::fs::write(dir.join("sync.yaml"), CONFIG).unwrap();
    let pool = sqlite(&dir.join("crm.db")).await;
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, first_name TEXT, last_name TEXT, phone TEXT, company TEXT, updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))")
        .execute(&pool)
        .await
        .unwrap();
    for (email, first, last, company) in rows {
        sqlx::query(
            "INSERT INTO customers (email, first_name, last_name, company) VALUES (?, ?, ?, ?)",
        )
        .bind(email)
        .bind(first)
        .bind(last)
        .bind(company)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

async fn exec(dir: &Path, sql: &'static str) {
    let pool = sqlite(&dir.join("crm.db")).await;
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn column(dir: &Path, sql: &'static str) -> Option<String> {
    let pool = sqlite(&dir.join("crm.db")).await;
    let v: Option<String> = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    v
}

/// Runs `syncctl sync run` with the OAuth refresh settings (and `extra` variables), checking
/// that no secret the fake knows of appears in any output.
async fn run(
    dir: &Path,
    server: &FakeServer,
    fake: &QuickBooksFake,
    extra: &[(&str, &str)],
) -> CliRun {
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(dir)
        .env("QUICKBOOKS_REALM_ID", DEMO_REALM)
        .env("QUICKBOOKS_BASE_URL", server.url())
        .env(
            "QUICKBOOKS_TOKEN_URL",
            format!("{}/oauth2/v1/tokens/bearer", server.url()),
        )
        .env("QUICKBOOKS_CLIENT_ID", CLIENT_ID)
        .env("QUICKBOOKS_CLIENT_SECRET", CLIENT_SECRET)
        .env("QUICKBOOKS_REFRESH_TOKEN", FIRST_REFRESH)
        .env_remove("SYNCCTL_STATE_KEY")
        .args(["sync", "run", "--config", "sync.yaml", "-v"]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let r = CliRun::from_output(&out);
    let mut secrets: Vec<String> = vec![
        CLIENT_SECRET.into(),
        FIRST_REFRESH.into(),
        STATE_KEY.into(),
        OTHER_KEY.into(),
        DEMO_ACCESS_TOKEN.into(),
        "qbo-access-".into(),
        "qbo-refresh-".into(),
    ];
    secrets.extend(fake.valid_refresh_tokens());
    for s in &secrets {
        assert!(
            !r.stdout.contains(s.as_str()) && !r.stderr.contains(s.as_str()),
            "a secret leaked ({s}):\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    r
}

async fn stored_credential(dir: &Path) -> String {
    let pool = sqlite(&dir.join("state.db")).await;
    let v: String = sqlx::query_scalar("SELECT value FROM sync_credential")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_sealed_in_the_state_store_and_used_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    crm(
        dir.path(),
        &[("ada@example.com", "Ada", "Lovelace", "Analytical")],
    )
    .await;
    let fake = QuickBooksFake::new().with_oauth_client(CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH);
    let server = FakeServer::start(fake.router()).await;
    let key = [("SYNCCTL_STATE_KEY", STATE_KEY)];

    // No access token configured: the first call needs a refresh, which rotates.
    let r = run(dir.path(), &server, &fake, &key).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.tokens_issued(), 1);
    let rotated = fake.valid_refresh_tokens();
    assert_eq!(rotated.len(), 1);
    assert_ne!(
        rotated[0], FIRST_REFRESH,
        "Intuit rotated the refresh token"
    );
    let sealed = stored_credential(dir.path()).await;
    assert!(sealed.starts_with("aes-256-gcm:"), "{sealed}");
    assert!(!sealed.contains(&rotated[0]) && !sealed.contains(FIRST_REFRESH));
    assert_eq!(fake.all("Customer").len(), 1);

    // The next process still has only the configured (now dead) refresh token: it must use
    // the stored one, or the fake answers invalid_grant.
    exec(dir.path(), "UPDATE customers SET phone = '+44 1', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now', '+1 second')").await;
    let r = run(dir.path(), &server, &fake, &key).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.tokens_issued(), 2);
    let c = &fake.all("Customer")[0];
    assert_eq!(c["PrimaryPhone"]["FreeFormNumber"], json!("+44 1"));

    // A wrong key: refused as a config error before QuickBooks is asked anything.
    let before = fake.tokens_issued();
    let r = run(
        dir.path(),
        &server,
        &fake,
        &[("SYNCCTL_STATE_KEY", OTHER_KEY)],
    )
    .await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.result.clone()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SYNCCTL_STATE_KEY"),
        "{}",
        r.stdout
    );
    // No key at all for a sealed credential: the same refusal.
    let r = run(dir.path(), &server, &fake, &[]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    // A key that is not 32 bytes: refused too, without repeating it.
    let r = run(
        dir.path(),
        &server,
        &fake,
        &[("SYNCCTL_STATE_KEY", "a passphrase is not a key")],
    )
    .await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("passphrase is not") && !r.stderr.contains("passphrase is not"));
    assert_eq!(fake.tokens_issued(), before, "nothing was refreshed");
    assert_eq!(fake.valid_refresh_tokens(), vec![rotated_last(&fake)]);
}

fn rotated_last(fake: &QuickBooksFake) -> String {
    fake.valid_refresh_tokens().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_expiring_mid_run_is_refreshed_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(String, String)> = (0..40)
        .map(|i| (format!("p{i:02}@example.com"), format!("Person{i:02}")))
        .collect();
    let refs: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(e, n)| (e.as_str(), n.as_str(), "Tester", "Acme"))
        .collect();
    crm(dir.path(), &refs).await;
    let fake = QuickBooksFake::new().with_oauth_client(CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH);
    let server = FakeServer::start(fake.router()).await;
    // The configured access token works for three calls, then its hour is over.
    fake.expire_access_tokens_after(3);
    let r = run(
        dir.path(),
        &server,
        &fake,
        &[("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.result.clone();
    assert_eq!(v["data"]["target"]["created"], json!(40), "{v}");
    assert_eq!(fake.all("Customer").len(), 40);
    assert_eq!(fake.tokens_issued(), 1, "one refresh mid-run");
    // The rotated refresh token was kept (unencrypted without a key): the next process,
    // whose access token is dead, refreshes with it.
    assert!(stored_credential(dir.path()).await.starts_with("plain:"));
    assert!(
        r.stderr.contains("SYNCCTL_STATE_KEY is not set"),
        "{}",
        r.stderr
    );
    fake.expire_access_tokens();
    let r = run(
        dir.path(),
        &server,
        &fake,
        &[("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.all("Customer").len(), 40, "no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_editors_change_survives_a_stale_sync_token_and_ours_lands() {
    let dir = tempfile::tempdir().unwrap();
    crm(
        dir.path(),
        &[("grace@example.com", "Grace", "Hopper", "Navy")],
    )
    .await;
    let fake = QuickBooksFake::new().with_oauth_client(CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH);
    let server = FakeServer::start(fake.router()).await;
    let token = [("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)];
    let r = run(dir.path(), &server, &fake, &token).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let id = fake.all("Customer")[0]["Id"].as_str().unwrap().to_owned();

    // We change the phone; between our read and our write a QuickBooks user changes the
    // company name, so our update carries a stale SyncToken.
    exec(dir.path(), "UPDATE customers SET phone = '+1 555 0100', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now', '+1 second')").await;
    fake.edit_before_next_batch("Customer", &id, json!({"CompanyName": "US Navy"}));
    let r = run(dir.path(), &server, &fake, &token).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        fake.responses()
            .iter()
            .any(|e| e.path.ends_with("/batch") && e.body.to_string().contains("\"5010\"")),
        "QuickBooks refused the first update as stale"
    );
    let c = fake.get("Customer", &id).unwrap();
    assert_eq!(
        c["CompanyName"],
        json!("US Navy"),
        "the editor's change survives"
    );
    assert_eq!(
        c["PrimaryPhone"]["FreeFormNumber"],
        json!("+1 555 0100"),
        "ours lands"
    );
    assert_eq!(
        column(dir.path(), "SELECT company FROM customers")
            .await
            .as_deref(),
        Some("US Navy"),
        "and the editor's change reaches the other side"
    );
    let v = r.result.clone();
    assert_eq!(v["data"]["target"]["failed"], json!(0), "{v}");
    assert_eq!(v["data"]["target"]["updated"], json!(1), "{v}");
}
