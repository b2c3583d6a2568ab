//! The binary's Snowflake traffic through Stoplight Prism with Snowflake's `sqlapi.yaml`: every
//! request `snowflake copy` and `doctor` send, and every answer the fake gives, must conform.
//! The canary proves Prism is really checking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, SnowflakeFakeBuilder, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
};
use syncctl_testkit::prism::PrismProxy;

/// Snowflake's sqlapi.yaml with the rowType fields Snowflake sends as `null` made nullable
/// (tests/contracts/vendor/SOURCES.md).
const SPEC: &str = "snowflake/derived/sqlapi.nullable-rowtype.yaml";
const LAKE: &str = "s3://biz-datalake-dev/events/";

fn builder() -> SnowflakeFakeBuilder {
    let mut b = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .table("RAW.EVENTS.EVENTS")
        .storage_integration("DATALAKE_INT")
        .rows_per_partition(1);
    for date in ["2025-10-30", "2025-10-31"] {
        b = b
            .file(FakeFile::new(format!("{LAKE}date={date}/a.json"), 3))
            .file(
                FakeFile::new(format!("{LAKE}date={date}/b.json"), 4).with_bad_row(2, "V", "bad"),
            );
    }
    b
}

async fn syncctl(url: &str, args: &[&str]) -> CliRun {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", url)
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM)
        .env("SNOWFLAKE_WAREHOUSE", "LOAD_WH")
        .env("SNOWFLAKE_ROLE", "LOADER")
        .env("SYNCCTL_HTTP_RETRY_BASE", "5ms")
        .args(args);
    tokio::task::spawn_blocking(move || CliRun::from_output(&cmd.output().unwrap()))
        .await
        .unwrap()
}

const COPY: [&str; 11] = [
    "snowflake",
    "copy",
    "--poll-interval",
    "5ms",
    "--from",
    LAKE,
    "--storage-integration",
    "DATALAKE_INT",
    "--file-format",
    "TYPE=JSON",
    "--statement-timeout=1h",
];
const TABLE: [&str; 2] = ["--table", "RAW.EVENTS.EVENTS"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_copy_and_doctor_traffic_conforms_to_the_sql_api_spec() {
    let fake = builder().build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let url = prism.url();

    let r = syncctl(
        &url,
        &[&COPY[..], &TABLE, &["--validate", "--date", "2025-10-30"]].concat(),
    )
    .await;
    assert_eq!(r.code, 1, "validation finds the bad row: {}", r.stderr);
    let r = syncctl(
        &url,
        &[
            &COPY[..],
            &TABLE,
            &[
                "--from-date",
                "2025-10-30",
                "--to-date",
                "2025-10-31",
                "--on-error",
                "CONTINUE",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["files"].as_array().unwrap().len(), 4);
    let r = syncctl(
        &url,
        &[
            &COPY[..],
            &TABLE,
            &[
                "--from-date",
                "2025-10-30",
                "--to-date",
                "2025-10-31",
                "--no-transaction",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.status(), "skipped", "{}", r.stderr);
    let r = syncctl(
        &url,
        &[
            &COPY[..],
            &["--date", "2025-10-30", "--table", "RAW.EVENTS.MISSING"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(r.result["error"]["details"]["code"], "002003");
    let r = syncctl(&url, &["doctor", "--service", "snowflake"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    prism.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cancel_conforms_to_the_sql_api_spec() {
    let fake = builder().polls_before_done(1_000_000).build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let r = syncctl(
        &prism.url(),
        &[
            &COPY[..],
            &TABLE,
            // Long enough for the submit to pass through Prism on a loaded machine: the
            // deadline must fire while the statement runs, when it has a handle to cancel.
            &["--date", "2025-10-30", "--deadline", "3s"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(fake.cancelled().len(), 1);
    prism.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_an_off_spec_fake_is_flagged() {
    let fake = builder().off_spec().build();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(SPEC, &server.url()).await;
    let r = syncctl(
        &prism.url(),
        &[&COPY[..], &TABLE, &["--date", "2025-10-30"]].concat(),
    )
    .await;
    assert_ne!(r.code, 0);
    assert!(!prism.violations().is_empty(), "{}", prism.log().join("\n"));
}
