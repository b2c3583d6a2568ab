//! The SQL API client and COPY runner against the stateful fake: async polling, multi-statement
//! transactions with rollback, result partitions, load metadata, lost responses resubmitted with
//! `retry=true`, cancel on signal and deadline, 422 details, and key-pair JWT rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::Method;
use secrecy::SecretString;
use syncctl_core::{Classified, ErrorClass, IdempotencyKey, Stop, WaitOptions, Waiter};
use syncctl_http::{HttpClient, RefreshingToken, RetryPolicy};
use syncctl_snowflake::auth::{JWT_RENEW_BEFORE, KeyPairJwt, PrivateKey};
use syncctl_snowflake::quote::ObjectName;
use syncctl_snowflake::{
    CopyPlan, CopySpec, Credentials, FileFormat, Location, OnError, PartitionTemplate, RunEnd,
    RunOptions, SessionContext, SnowflakeError, SqlApi, StorageAccess, Totals, run_copy,
};
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, TEST_ENCRYPTED_PRIVATE_KEY_PEM, TEST_KEY_PASSPHRASE,
    TEST_PKCS1_PRIVATE_KEY_PEM, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
    UNTRUSTED_PRIVATE_KEY_PEM, public_key_fingerprint,
};
use syncctl_testkit::{FakeServer, Fault};
use tokio_util::sync::CancellationToken;

/// Fast polls (2 ms up to 5 ms) with `o`'s clocks, from now.
fn waiter(o: WaitOptions, cancel: CancellationToken) -> Waiter {
    let o = WaitOptions {
        poll_interval: Duration::from_millis(2),
        max_poll_interval: Duration::from_millis(5),
        ..o
    };
    Waiter::new(o, tokio::time::Instant::now(), cancel)
}

const TABLE: &str = "RAW.EVENTS.EVENTS";
const LAKE: &str = "s3://biz-datalake-dev/events/";

fn url(date: &str, part: u32) -> String {
    format!("{LAKE}date={date}/part-{part:04}.json")
}

fn fake() -> SnowflakeFake {
    SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .oauth_token("oauth-token-1234")
        .programmatic_access_token("pat-token-1234")
        .table(TABLE)
        .storage_integration("DATALAKE_INT")
        .polls_before_done(2)
        .file(FakeFile::new(url("2025-10-30", 1), 100))
        .file(FakeFile::new(url("2025-10-30", 2), 50))
        .file(FakeFile::new(url("2025-10-31", 1), 10))
        .build()
}

fn key(pem: &str) -> PrivateKey {
    PrivateKey::from_pem(&SecretString::from(pem), None).unwrap()
}

fn keypair() -> Credentials {
    Credentials::KeyPair(KeyPairJwt::new(
        "myorg-acct",
        "etl_user",
        key(TEST_PRIVATE_KEY_PEM),
    ))
}

fn api_with(base: &str, creds: &Credentials) -> SqlApi {
    let http = HttpClient::builder("snowflake", base)
        .auth(creds.provider())
        .retry(RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        })
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    SqlApi::new(http, Duration::from_millis(5))
}

fn day(s: &str) -> NaiveDate {
    syncctl_snowflake::partition::parse_date("--date", s).unwrap()
}

fn spec(from: &str, to: &str) -> CopySpec {
    let location = Location::parse(LAKE).unwrap();
    CopySpec {
        table: ObjectName::parse("--table", TABLE).unwrap(),
        location: location.clone(),
        partitions: PartitionTemplate::parse("date={date}/")
            .unwrap()
            .expand(Some((day(from), day(to))))
            .unwrap(),
        files: Vec::new(),
        pattern: None,
        file_format: Some(FileFormat::parse_options("TYPE=JSON").unwrap()),
        on_error: None,
        match_by_column_name: None,
        include_metadata: Vec::new(),
        purge: false,
        force: false,
        load_uncertain: true,
        validate: false,
        access: StorageAccess::resolve(
            &location,
            Some("DATALAKE_INT"),
            &syncctl_config::Env::default(),
            "X",
        )
        .unwrap(),
    }
}

fn plan(s: &CopySpec) -> CopyPlan {
    s.plan(day("2025-11-15")).unwrap()
}

fn opts() -> RunOptions {
    RunOptions {
        transaction: true,
        validate: false,
        context: SessionContext {
            warehouse: Some("LOAD_WH".into()),
            ..SessionContext::default()
        },
        statement_timeout: None,
        query_tag: Some("syncctl test".into()),
        idempotency_key: Some(IdempotencyKey::new("airflow:dag:run:task")),
        retry_first: false,
        wait: waiter(WaitOptions::default(), CancellationToken::new()),
    }
}

async fn run(api: &SqlApi, p: &CopyPlan, o: &RunOptions) -> syncctl_snowflake::CopyReport {
    run_copy(api, p, o, &mut |_| {}).await
}

#[tokio::test]
async fn one_partition_is_submitted_polled_and_reported_per_file() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &opts()).await;
    assert!(matches!(report.end, RunEnd::Completed), "{:?}", report.end);
    assert_eq!(report.files.len(), 2);
    let t = Totals::of(&report.files);
    assert_eq!((t.files_loaded, t.rows_loaded), (2, 150));
    assert_eq!(fake.table_rows(TABLE), 150);
    // One POST, two 202 polls, then the 200.
    assert_eq!(
        server
            .requests_to(&Method::POST, "/api/v2/statements")
            .len(),
        1
    );
    assert_eq!(
        server
            .requests_to(&Method::GET, "/api/v2/statements/")
            .len(),
        3
    );
    let post = &server.requests_to(&Method::POST, "/api/v2/statements")[0];
    assert!(
        post.query.contains("async=true") && post.query.contains("requestId="),
        "{}",
        post.query
    );
    assert!(!post.query.contains("retry=true"));
    assert_eq!(post.json()["warehouse"], "LOAD_WH");
    assert_eq!(post.json()["parameters"]["query_tag"], "syncctl test");
    assert!(
        post.json()["parameters"]
            .get("MULTI_STATEMENT_COUNT")
            .is_none()
    );
    assert_eq!(
        post.header("x-snowflake-authorization-token-type"),
        Some("KEYPAIR_JWT")
    );
    // The same task and statements give the same request id (a rerun reuses it).
    let again = run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &opts()).await;
    assert_eq!(again.requests[0].request_id, report.requests[0].request_id);
}

#[tokio::test]
async fn a_second_copy_loads_zero_files_unless_forced() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let s = spec("2025-10-30", "2025-10-30");
    let first = run(&api, &plan(&s), &opts()).await;
    assert_eq!(first.files.len(), 2);
    let second = run(&api, &plan(&s), &opts()).await;
    assert!(matches!(second.end, RunEnd::Completed));
    assert!(second.files.is_empty());
    assert_eq!(second.statements[0].files, 0);
    assert_eq!(fake.table_rows(TABLE), 150);
    let mut forced = s.clone();
    forced.force = true;
    let third = run(&api, &plan(&forced), &opts()).await;
    assert_eq!(third.files.len(), 2);
    assert_eq!(fake.table_rows(TABLE), 300, "FORCE reloads and duplicates");
}

#[tokio::test]
async fn several_partitions_run_as_one_transaction_with_child_handles() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-31")), &opts()).await;
    assert!(matches!(report.end, RunEnd::Completed), "{:?}", report.end);
    assert_eq!(report.requests.len(), 1);
    assert!(report.requests[0].transaction);
    assert_eq!(report.requests[0].statement_count, 4);
    let post = &server.requests_to(&Method::POST, "/api/v2/statements")[0];
    assert_eq!(post.json()["parameters"]["MULTI_STATEMENT_COUNT"], 4);
    let stmt = post.json()["statement"].as_str().unwrap().to_owned();
    assert!(
        stmt.starts_with("BEGIN;\nCOPY INTO") && stmt.ends_with(";\nCOMMIT"),
        "{stmt}"
    );
    let parent = report.requests[0].handle.clone().unwrap();
    let children: Vec<String> = report
        .statements
        .iter()
        .map(|s| s.handle.clone().unwrap())
        .collect();
    assert!(!children.contains(&parent));
    assert_eq!(children.len(), 2);
    assert_eq!(report.files.len(), 3);
    assert_eq!(fake.table_rows(TABLE), 160);
}

#[tokio::test]
async fn a_failing_statement_rolls_the_transaction_back_with_code_and_sql_state() {
    let fake = fake();
    fake.add_file(FakeFile::new(url("2025-10-31", 2), 10).with_bad_row(
        3,
        "PAYLOAD",
        "Error parsing JSON: unknown keyword \"nul\"",
    ));
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-31")), &opts()).await;
    let RunEnd::Failed(e) = &report.end else {
        panic!("expected a failure, got {:?}", report.end);
    };
    let SnowflakeError::Sql {
        code,
        sql_state,
        message,
        handle,
    } = e
    else {
        panic!("{e:?}");
    };
    assert_eq!((code.as_str(), sql_state.as_str()), ("100069", "22P02"));
    assert!(
        message.contains("part-0002.json") && message.contains("ON_ERROR"),
        "{message}"
    );
    assert!(handle.is_some());
    assert_eq!(e.class(), ErrorClass::RemoteFailed);
    assert_eq!(e.details().unwrap()["sqlState"], "22P02");
    assert!(report.statements.iter().all(|s| s.status == "failed"));
    assert_eq!(
        fake.table_rows(TABLE),
        0,
        "the first partition was rolled back too"
    );
    assert!(fake.loaded_files(TABLE).is_empty());

    // Without a transaction the first partition stays loaded and the run stops at the second.
    let mut o = opts();
    o.transaction = false;
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-31")), &o).await;
    assert!(matches!(
        report.end,
        RunEnd::Failed(SnowflakeError::Sql { .. })
    ));
    assert_eq!(report.requests.len(), 2);
    assert_eq!(report.statements[0].status, "succeeded");
    assert_eq!(report.statements[1].status, "failed");
    assert_eq!(fake.table_rows(TABLE), 150);
}

#[tokio::test]
async fn on_error_continue_reports_partial_files() {
    let fake = fake();
    fake.add_file(
        FakeFile::new(url("2025-10-30", 3), 10)
            .with_bad_row(3, "PAYLOAD", "bad row")
            .with_bad_row(7, "TS", "bad ts"),
    );
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let mut s = spec("2025-10-30", "2025-10-30");
    s.on_error = Some(OnError::Continue);
    let report = run(&api, &plan(&s), &opts()).await;
    assert!(matches!(report.end, RunEnd::Completed));
    let partial = report
        .files
        .iter()
        .find(|f| f.file.ends_with("part-0003.json"))
        .unwrap();
    assert_eq!(partial.status, "PARTIALLY_LOADED");
    assert_eq!(
        (
            partial.rows_parsed,
            partial.rows_loaded,
            partial.errors_seen
        ),
        (10, 8, 2)
    );
    assert_eq!(partial.first_error.as_deref(), Some("bad row"));
    assert_eq!(partial.first_error_line, Some(3));
    assert_eq!(
        partial.first_error_column_name.as_deref(),
        Some("\"EVENTS\"[\"PAYLOAD\":1]")
    );
    assert_eq!(fake.table_rows(TABLE), 158);
}

#[tokio::test]
async fn validation_mode_reports_errors_and_loads_nothing() {
    let fake = fake();
    fake.add_file(FakeFile::new(url("2025-10-30", 3), 10).with_bad_row(4, "PAYLOAD", "bad row"));
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let mut s = spec("2025-10-30", "2025-10-30");
    s.validate = true;
    let mut o = opts();
    o.validate = true;
    let report = run(&api, &plan(&s), &o).await;
    assert!(matches!(report.end, RunEnd::Completed), "{:?}", report.end);
    assert_eq!(report.validation_errors.len(), 1);
    let e = &report.validation_errors[0];
    assert_eq!((e.error.as_str(), e.line), ("bad row", Some(4)));
    assert!(e.file.as_deref().unwrap().ends_with("part-0003.json"));
    assert_eq!(fake.table_rows(TABLE), 0);
}

#[tokio::test]
async fn result_partitions_are_followed() {
    // Plain and, as Snowflake sends them, gzip-encoded partitions after the first.
    for gzip in [false, true] {
        let mut b = SnowflakeFake::builder()
            .account("MYORG-ACCT")
            .user("ETL_USER")
            .public_key_pem(TEST_PUBLIC_KEY_PEM)
            .table(TABLE)
            .storage_integration("DATALAKE_INT")
            .rows_per_partition(2);
        if gzip {
            b = b.gzip_partitions();
        }
        for part in 1..=5 {
            b = b.file(FakeFile::new(url("2025-10-30", part), 1));
        }
        let fake = b.build();
        let server = FakeServer::start(fake.router()).await;
        let api = api_with(&server.url(), &keypair());
        let report = run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &opts()).await;
        assert_eq!(report.files.len(), 5, "gzip {gzip}: {:?}", report.end);
        let mut files: Vec<&str> = report.files.iter().map(|f| f.file.as_str()).collect();
        files.dedup();
        assert_eq!(files.len(), 5, "gzip {gzip}: every file once");
        let partitions: Vec<String> = server
            .requests_to(&Method::GET, "/api/v2/statements/")
            .into_iter()
            .filter(|r| r.query.contains("partition="))
            .map(|r| {
                assert!(
                    r.header("accept-encoding")
                        .is_some_and(|e| e.contains("gzip")),
                    "the client says it reads gzip"
                );
                r.query
            })
            .collect();
        assert_eq!(partitions, ["partition=1", "partition=2"], "gzip {gzip}");
    }
}

#[tokio::test]
async fn a_lost_submit_response_is_resubmitted_with_retry_true_and_runs_once() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    server.inject_on(
        Some(Method::POST),
        "/api/v2/statements",
        Fault::DropAfterHandling,
        1,
    );
    let api = api_with(&server.url(), &keypair());
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-31")), &opts()).await;
    assert!(matches!(report.end, RunEnd::Completed), "{:?}", report.end);
    assert!(report.requests[0].resubmitted);
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].request_id, subs[1].request_id, "same requestId");
    assert!(
        !subs[0].retry && subs[1].retry,
        "retry=true only on the resubmit"
    );
    assert!(
        subs[0].executed && !subs[1].executed,
        "Snowflake found the first execution"
    );
    assert_eq!(subs[0].handle, subs[1].handle);
    assert_eq!(
        fake.copy_executions(),
        2,
        "two COPY statements, each executed once"
    );
    assert_eq!(fake.table_rows(TABLE), 160);
}

#[tokio::test]
async fn a_rate_limited_submit_is_resubmitted_after_retry_after() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    server.inject_on(
        Some(Method::POST),
        "/api/v2/statements",
        Fault::rate_limited(0),
        2,
    );
    let api = api_with(&server.url(), &keypair());
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &opts()).await;
    assert!(matches!(report.end, RunEnd::Completed), "{:?}", report.end);
    let posts = server.requests_to(&Method::POST, "/api/v2/statements");
    assert_eq!(posts.len(), 3);
    assert!(!posts[0].query.contains("retry=true"));
    assert!(posts[1].query.contains("retry=true") && posts[2].query.contains("retry=true"));
    assert_eq!(fake.copy_executions(), 1);
}

#[tokio::test]
async fn a_signal_cancels_the_running_statement() {
    let fake = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .table(TABLE)
        .storage_integration("DATALAKE_INT")
        .polls_before_done(1_000_000)
        .file(FakeFile::new(url("2025-10-30", 1), 1))
        .build();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let o = opts();
    let cancel = o.wait.cancel_token().clone();
    let p = plan(&spec("2025-10-30", "2025-10-30"));
    let mut polls = 0;
    let report = run_copy(&api, &p, &o, &mut |_| {
        polls += 1;
        if polls == 3 {
            cancel.cancel();
        }
    })
    .await;
    let RunEnd::Interrupted {
        why,
        cancelled,
        cancel_error,
        ..
    } = &report.end
    else {
        panic!("{:?}", report.end);
    };
    assert_eq!(*why, Stop::Signal);
    assert_eq!(cancel_error, &None);
    assert_eq!(cancelled, &fake.cancelled());
    assert_eq!(cancelled.len(), 1);
    assert_eq!(server.requests_to(&Method::POST, "/cancel").len(), 1);
    assert_eq!(report.statements[0].status, "cancelled");
    // The cancelled statement now reports Snowflake's cancellation error.
    let err = api.status(&cancelled[0]).await.unwrap_err();
    assert!(
        matches!(err, SnowflakeError::Sql { ref code, .. } if code == "000604"),
        "{err:?}"
    );
    assert_eq!(fake.table_rows(TABLE), 0);
}

#[tokio::test]
async fn the_deadline_cancels_the_running_statement() {
    let fake = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .table(TABLE)
        .storage_integration("DATALAKE_INT")
        .polls_before_done(1_000_000)
        .build();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let mut o = opts();
    o.wait = waiter(
        WaitOptions {
            deadline: Some(Duration::from_millis(40)),
            ..WaitOptions::default()
        },
        CancellationToken::new(),
    );
    let report = run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &o).await;
    let RunEnd::Interrupted { why, cancelled, .. } = &report.end else {
        panic!("{:?}", report.end);
    };
    assert_eq!(*why, Stop::Deadline);
    assert_eq!(cancelled, &fake.cancelled());
}

#[tokio::test]
async fn a_missing_table_is_a_422_with_snowflake_details() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let mut s = spec("2025-10-30", "2025-10-30");
    s.table = ObjectName::parse("--table", "RAW.EVENTS.MISSING").unwrap();
    let report = run(&api, &plan(&s), &opts()).await;
    let RunEnd::Failed(SnowflakeError::Sql {
        code,
        sql_state,
        message,
        ..
    }) = &report.end
    else {
        panic!("{:?}", report.end);
    };
    assert_eq!((code.as_str(), sql_state.as_str()), ("002003", "42S02"));
    assert!(message.contains("RAW.EVENTS.MISSING"), "{message}");
}

#[tokio::test]
async fn key_pair_jwts_follow_snowflakes_rules() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let k = key(TEST_PRIVATE_KEY_PEM);
    assert_eq!(k.fingerprint(), public_key_fingerprint(TEST_PUBLIC_KEY_PEM));
    let api = api_with(&server.url(), &keypair());
    run(&api, &plan(&spec("2025-10-30", "2025-10-30")), &opts()).await;
    let jwts = fake.jwts();
    assert!(!jwts.is_empty());
    let j = &jwts[0];
    assert_eq!(j.sub, "MYORG-ACCT.ETL_USER");
    assert_eq!(j.iss, format!("MYORG-ACCT.ETL_USER.{}", k.fingerprint()));
    assert_eq!(j.exp - j.iat, 59 * 60);
    assert!(
        jwts.iter().all(|x| x == j),
        "one token reused until renewal"
    );

    // A key Snowflake does not know is refused: exit class auth.
    let untrusted = Credentials::KeyPair(KeyPairJwt::new(
        "myorg-acct",
        "etl_user",
        key(UNTRUSTED_PRIVATE_KEY_PEM),
    ));
    let report = run(
        &api_with(&server.url(), &untrusted),
        &plan(&spec("2025-10-31", "2025-10-31")),
        &opts(),
    )
    .await;
    let RunEnd::Failed(e) = &report.end else {
        panic!("{:?}", report.end)
    };
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    // So is the right key for the wrong user.
    let wrong_user = Credentials::KeyPair(KeyPairJwt::new(
        "myorg-acct",
        "someone_else",
        key(TEST_PRIVATE_KEY_PEM),
    ));
    let report = run(
        &api_with(&server.url(), &wrong_user),
        &plan(&spec("2025-10-31", "2025-10-31")),
        &opts(),
    )
    .await;
    assert!(matches!(&report.end, RunEnd::Failed(e) if e.class() == ErrorClass::Auth));
}

#[tokio::test]
async fn the_fake_refuses_jwts_living_over_an_hour() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let k = key(TEST_PRIVATE_KEY_PEM);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": format!("MYORG-ACCT.ETL_USER.{}", k.fingerprint()),
        "sub": "MYORG-ACCT.ETL_USER",
        "iat": now,
        "exp": now + 7200,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let resp = reqwest_free_post(&server.url(), &token).await;
    assert_eq!(resp, 401);
}

/// A raw POST through the HTTP core with a hand-made token.
async fn reqwest_free_post(base: &str, token: &str) -> u16 {
    let auth = syncctl_http::BearerToken::new("snowflake", SecretString::from(token.to_owned()))
        .with_header(
            "x-snowflake-authorization-token-type".parse().unwrap(),
            "KEYPAIR_JWT".parse().unwrap(),
        );
    let http = HttpClient::builder("snowflake", base)
        .auth(Arc::new(auth))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    http.send_raw(
        syncctl_http::Request::post("/api/v2/statements")
            .json(serde_json::json!({"statement": "SELECT 1"})),
    )
    .await
    .unwrap()
    .status
    .as_u16()
}

#[tokio::test]
async fn encrypted_and_pkcs1_keys_have_the_same_fingerprint() {
    let plain = key(TEST_PRIVATE_KEY_PEM);
    let enc = PrivateKey::from_pem(
        &SecretString::from(TEST_ENCRYPTED_PRIVATE_KEY_PEM),
        Some(&SecretString::from(TEST_KEY_PASSPHRASE)),
    )
    .unwrap();
    let pkcs1 = key(TEST_PKCS1_PRIVATE_KEY_PEM);
    assert_eq!(plain.fingerprint(), enc.fingerprint());
    assert_eq!(plain.fingerprint(), pkcs1.fingerprint());
    let wrong = PrivateKey::from_pem(
        &SecretString::from(TEST_ENCRYPTED_PRIVATE_KEY_PEM),
        Some(&SecretString::from("not-the-passphrase")),
    )
    .unwrap_err();
    assert!(matches!(wrong, SnowflakeError::Config(_)), "{wrong}");
    assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    // Keys pasted into a variable with literal \n still load.
    let escaped = TEST_PRIVATE_KEY_PEM.replace('\n', "\\n");
    assert_eq!(key(&escaped).fingerprint(), plain.fingerprint());
}

#[test]
fn a_key_encrypted_the_way_snowflakes_guide_does_it_loads() {
    // `openssl pkcs8 -topk8 -v2 des3`: PBES2 with DES-EDE3-CBC.
    let des3 = PrivateKey::from_pem(
        &SecretString::from(include_str!("fixtures/test_key_des3.p8")),
        Some(&SecretString::from(TEST_KEY_PASSPHRASE)),
    )
    .unwrap();
    assert_eq!(des3.fingerprint(), key(TEST_PRIVATE_KEY_PEM).fingerprint());
    assert_eq!(
        des3.fingerprint(),
        public_key_fingerprint(TEST_PUBLIC_KEY_PEM),
        "the fingerprint is the SHA-256 of the public key's DER, as DESC USER shows it"
    );
}

#[test]
fn unreadable_keys_say_why_without_key_material() {
    let refuse = |pem: &str, pass: Option<&str>| {
        let pass = pass.map(SecretString::from);
        let e = PrivateKey::from_pem(&SecretString::from(pem), pass.as_ref()).unwrap_err();
        assert!(matches!(e, SnowflakeError::Config(_)), "{e}");
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!body.is_empty());
        for line in body {
            assert!(!e.to_string().contains(line.trim()), "{e}");
        }
        e.to_string()
    };
    let pbes1 = refuse(
        include_str!("fixtures/test_key_pbes1.p8"),
        Some(TEST_KEY_PASSPHRASE),
    );
    assert!(pbes1.contains("PBES2"), "{pbes1}");
    let ec = refuse(include_str!("fixtures/test_key_ec.p8"), None);
    assert!(ec.contains("not an RSA key"), "{ec}");
    let wrong = refuse(
        include_str!("fixtures/test_key_des3.p8"),
        Some("not-the-passphrase"),
    );
    assert!(wrong.contains("wrong passphrase"), "{wrong}");
}

#[tokio::test(start_paused = true)]
async fn jwts_are_renewed_five_minutes_before_they_expire() {
    let jwt = KeyPairJwt::new("myorg-acct", "etl_user", key(TEST_PRIVATE_KEY_PEM));
    let cache = RefreshingToken::new("snowflake", jwt, JWT_RENEW_BEFORE);
    cache.token().await.unwrap();
    assert_eq!(cache.fetch_count(), 1);
    tokio::time::advance(Duration::from_secs(53 * 60)).await;
    cache.token().await.unwrap();
    assert_eq!(cache.fetch_count(), 1, "still fresh after 53 minutes");
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    cache.token().await.unwrap();
    assert_eq!(cache.fetch_count(), 2, "renewed after 55 of its 59 minutes");
}

#[tokio::test]
async fn oauth_and_programmatic_access_tokens_name_their_type() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    for (creds, kind) in [
        (
            Credentials::OAuth(SecretString::from("oauth-token-1234")),
            "OAUTH",
        ),
        (
            Credentials::ProgrammaticAccessToken(SecretString::from("pat-token-1234")),
            "PROGRAMMATIC_ACCESS_TOKEN",
        ),
    ] {
        let version = api_with(&server.url(), &creds)
            .probe(&SessionContext::default())
            .await
            .unwrap();
        assert_eq!(version.as_deref(), Some("9.30.0"));
        assert_eq!(fake.token_types().last().map(String::as_str), Some(kind));
    }
    let wrong = Credentials::OAuth(SecretString::from("pat-token-1234"));
    let e = api_with(&server.url(), &wrong)
        .probe(&SessionContext::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
}

#[tokio::test]
async fn statement_count_must_match() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let api = api_with(&server.url(), &keypair());
    let text = SecretString::from("SELECT 1; SELECT 2".to_owned());
    let ctx = SessionContext::default();
    let req = syncctl_snowflake::StatementRequest {
        text: &text,
        count: 1,
        context: &ctx,
        timeout: None,
        query_tag: None,
    };
    let e = api
        .submit(&req, uuid::Uuid::new_v4(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SnowflakeError::Sql { ref code, .. } if code == "000008"),
        "{e:?}"
    );
}
