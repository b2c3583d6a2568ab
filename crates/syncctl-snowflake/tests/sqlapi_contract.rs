//! Contract tests: the client's requests and the fake's answers go through Stoplight Prism with
//! Snowflake's own `snowflake/sqlapi.yaml`, which must report no violation for every exchange
//! the COPY command makes (single statement with polling, multi-statement transaction, result
//! partitions, a 422, a submit with `retry=true`, cancel). The canary proves Prism would
//! notice: a fake answering off-spec is flagged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::NaiveDate;
use secrecy::SecretString;
use syncctl_core::{WaitOptions, Waiter};
use syncctl_http::{HttpClient, RetryPolicy};
use syncctl_snowflake::auth::{KeyPairJwt, PrivateKey};
use syncctl_snowflake::quote::ObjectName;
use syncctl_snowflake::{
    CopyPlan, CopySpec, Credentials, FileFormat, Location, PartitionTemplate, RunEnd, RunOptions,
    SessionContext, SnowflakeError, SqlApi, StorageAccess, run_copy,
};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, SnowflakeFakeBuilder, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
};
use syncctl_testkit::prism::PrismProxy;
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

/// Snowflake's sqlapi.yaml with the rowType fields Snowflake sends as `null` made nullable
/// (tests/contracts/vendor/SOURCES.md).
const SPEC: &str = "snowflake/derived/sqlapi.nullable-rowtype.yaml";
const TABLE: &str = "RAW.EVENTS.EVENTS";
const LAKE: &str = "s3://biz-datalake-dev/events/";

fn builder() -> SnowflakeFakeBuilder {
    let mut b = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .table(TABLE)
        .storage_integration("DATALAKE_INT")
        .polls_before_done(1)
        .rows_per_partition(1);
    for (date, n) in [("2025-10-30", 2), ("2025-10-31", 1)] {
        for part in 1..=n {
            b = b.file(FakeFile::new(
                format!("{LAKE}date={date}/part-{part:04}.json"),
                10,
            ));
        }
    }
    b
}

fn api(base: &str) -> SqlApi {
    let key = PrivateKey::from_pem(&SecretString::from(TEST_PRIVATE_KEY_PEM), None).unwrap();
    let creds = Credentials::KeyPair(KeyPairJwt::new("myorg-acct", "etl_user", key));
    let http = HttpClient::builder("snowflake", base)
        .auth(creds.provider())
        .retry(RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    SqlApi::new(http, Duration::from_millis(5))
}

fn plan(table: &str, from: &str, to: &str) -> CopyPlan {
    let location = Location::parse(LAKE).unwrap();
    let day = |s| syncctl_snowflake::partition::parse_date("d", s).unwrap();
    CopySpec {
        table: ObjectName::parse("--table", table).unwrap(),
        location: location.clone(),
        partitions: PartitionTemplate::parse("date={date}/")
            .unwrap()
            .expand(Some((day(from), day(to))))
            .unwrap(),
        files: Vec::new(),
        pattern: Some(r".*\.json".into()),
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
    .plan(NaiveDate::from_ymd_opt(2025, 11, 15).unwrap())
    .unwrap()
}

fn opts(transaction: bool) -> RunOptions {
    RunOptions {
        transaction,
        validate: false,
        context: SessionContext {
            warehouse: Some("LOAD_WH".into()),
            role: Some("LOADER".into()),
            database: Some("RAW".into()),
            schema: Some("EVENTS".into()),
        },
        statement_timeout: Some(Duration::from_secs(3600)),
        query_tag: Some("syncctl contract".into()),
        idempotency_key: None,
        retry_first: false,
        wait: waiter(WaitOptions::default(), CancellationToken::new()),
    }
}

#[tokio::test]
async fn every_exchange_of_a_copy_conforms_to_the_sql_api_spec() {
    let fake = builder().build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let api = api(&prism.url());

    // Single statement: 202, poll, 200 with a three-file result in three partitions.
    let report = run_copy(
        &api,
        &plan(TABLE, "2025-10-30", "2025-10-30"),
        &opts(true),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(report.end, RunEnd::Completed),
        "{:?}\n{}",
        report.end,
        prism.log().join("\n")
    );
    assert_eq!(report.files.len(), 2);

    // Multi-statement transaction over two partitions, submitted with retry=true (what a
    // resubmit after a lost answer and a task retry send).
    let mut o = opts(true);
    o.retry_first = true;
    let report = run_copy(
        &api,
        &plan(TABLE, "2025-10-30", "2025-10-31"),
        &o,
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(report.end, RunEnd::Completed),
        "{:?}\n{}",
        report.end,
        prism.log().join("\n")
    );
    assert_eq!(report.files.len(), 1, "the 30th was loaded already");
    assert!(fake.submissions().iter().any(|s| s.retry));

    // A SQL error (422 with code and sqlState).
    let report = run_copy(
        &api,
        &plan("RAW.EVENTS.MISSING", "2025-10-30", "2025-10-30"),
        &opts(false),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(report.end, RunEnd::Failed(SnowflakeError::Sql { .. })),
        "{:?}",
        report.end
    );

    prism.assert_no_violations();
}

#[tokio::test]
async fn cancel_conforms_to_the_sql_api_spec() {
    let fake = builder().polls_before_done(1_000_000).build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let api = api(&prism.url());
    let o = opts(true);
    let cancel = o.wait.cancel_token().clone();
    let report = run_copy(
        &api,
        &plan(TABLE, "2025-10-30", "2025-10-30"),
        &o,
        &mut |_| cancel.cancel(),
    )
    .await;
    assert!(
        matches!(report.end, RunEnd::Interrupted { ref cancel_error, .. } if cancel_error.is_none()),
        "{:?}",
        report.end
    );
    assert_eq!(fake.cancelled().len(), 1);
    prism.assert_no_violations();
}

#[tokio::test]
async fn canary_prism_flags_an_off_spec_fake() {
    let fake = builder().off_spec().build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let report = run_copy(
        &api(&prism.url()),
        &plan(TABLE, "2025-10-30", "2025-10-30"),
        &opts(true),
        &mut |_| {},
    )
    .await;
    assert!(matches!(report.end, RunEnd::Failed(_)), "{:?}", report.end);
    assert!(
        !prism.violations().is_empty(),
        "Prism saw nothing wrong:\n{}",
        prism.log().join("\n")
    );
}

/// Why the derived spec: the fake writes `null` where Snowflake does (precision/scale of TEXT,
/// length/byteLength of FIXED), and the vendor file, which types them as plain integers, flags
/// exactly that; the same copy passes the derived file (the tests above).
#[tokio::test]
async fn the_vendor_spec_flags_the_null_row_type_fields_snowflake_sends() {
    let fake = builder().build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start("snowflake/sqlapi.yaml", &server.url()).await;
    let report = run_copy(
        &api(&prism.url()),
        &plan(TABLE, "2025-10-30", "2025-10-30"),
        &opts(true),
        &mut |_| {},
    )
    .await;
    // Prism's 500 names each violation; the first is the first column's (TEXT) precision.
    let end = format!("{:?}", report.end);
    assert!(
        matches!(report.end, RunEnd::Failed(_))
            && end.contains("resultSetMetaData.rowType.0.precision must be integer"),
        "the vendor spec did not flag the null rowType fields: {end}\n{}",
        prism.log().join("\n")
    );
    assert!(!prism.violations().is_empty());
}

/// The SQL API client with `creds` against `base`.
fn api_as(base: &str, creds: &Credentials) -> SqlApi {
    let http = HttpClient::builder("snowflake", base)
        .auth(creds.provider())
        .build()
        .unwrap();
    SqlApi::new(http, Duration::from_millis(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_and_programmatic_access_token_traffic_conforms_too() {
    let fake = builder()
        .oauth_token("oauth-contract-token")
        .programmatic_access_token("pat-contract-token")
        .build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let cases = [
        (
            Credentials::OAuth(SecretString::from("oauth-contract-token")),
            "OAUTH",
            "oauth-contract-token",
        ),
        (
            Credentials::ProgrammaticAccessToken(SecretString::from("pat-contract-token")),
            "PROGRAMMATIC_ACCESS_TOKEN",
            "pat-contract-token",
        ),
    ];
    for (date, (creds, token_type, token)) in ["2025-10-30", "2025-10-31"].into_iter().zip(cases) {
        let before = server.requests().len();
        let report = run_copy(
            &api_as(&prism.url(), &creds),
            &plan(TABLE, date, date),
            &opts(false),
            &mut |_| {},
        )
        .await;
        assert!(
            matches!(report.end, RunEnd::Completed),
            "{token_type}: {:?}\n{}",
            report.end,
            prism.log().join("\n")
        );
        assert!(!report.files.is_empty(), "{token_type}: files were loaded");
        let sent = &server.requests()[before..];
        assert!(!sent.is_empty(), "{token_type}: traffic went through Prism");
        for r in sent {
            assert_eq!(
                r.header("x-snowflake-authorization-token-type"),
                Some(token_type),
                "{} {}",
                r.method,
                r.path
            );
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {token}").as_str())
            );
        }
    }
    prism.assert_no_violations();
}
