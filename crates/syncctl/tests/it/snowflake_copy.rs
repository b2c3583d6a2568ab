//! `syncctl snowflake copy` end to end: the real binary against the stateful SQL API fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command as StdCommand;
use std::time::Duration;

use assert_cmd::Command;
use base64::Engine;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, SnowflakeFakeBuilder, TEST_ENCRYPTED_PRIVATE_KEY_PEM,
    TEST_KEY_PASSPHRASE, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM, public_key_fingerprint,
};
use syncctl_testkit::{FakeServer, Fault};

const TABLE: &str = "RAW.EVENTS.EVENTS";
const LAKE: &str = "s3://biz-datalake-dev/events/";
/// The seed's partition; older than 64 days by now, so it also gets LOAD_UNCERTAIN_FILES.
const SEED_DATE: &str = "2025-10-30";

fn file(date: &str, part: u32, rows: u64) -> FakeFile {
    FakeFile::new(format!("{LAKE}date={date}/part-{part:04}.json"), rows)
}

fn builder() -> SnowflakeFakeBuilder {
    SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .programmatic_access_token("pat-token-1234567")
        .table(TABLE)
        .storage_integration("DATALAKE_INT")
        .stage("RAW.EVENTS.LAKE", "s3://biz-datalake-dev/")
        .polls_before_done(2)
        .file(file(SEED_DATE, 1, 100))
        .file(file(SEED_DATE, 2, 50))
        .file(file("2025-10-31", 1, 10))
}

struct Setup {
    fake: SnowflakeFake,
    server: FakeServer,
}

async fn setup(b: SnowflakeFakeBuilder) -> Setup {
    let fake = b.build();
    let server = FakeServer::start(fake.router()).await;
    Setup { fake, server }
}

/// The binary with a clean environment pointing at the fake with key-pair auth.
fn syncctl(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("NO_COLOR", "1")
        .env("SNOWFLAKE_HOST", url)
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM)
        .env("SNOWFLAKE_WAREHOUSE", "LOAD_WH")
        .env("SYNCCTL_HTTP_RETRY_BASE", "5ms")
        .args(["snowflake", "copy", "--poll-interval", "5ms"]);
    cmd
}

fn copy_args(date: &str) -> Vec<String> {
    [
        "--table",
        TABLE,
        "--from",
        LAKE,
        "--date",
        date,
        "--file-format",
        "TYPE=JSON",
        "--storage-integration",
        "DATALAKE_INT",
    ]
    .map(str::to_owned)
    .to_vec()
}

use crate::support::run_blocking as run;

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".run_id" => "[run_id]", ".started_at" => "[ts]", ".finished_at" => "[ts]", ".duration_ms" => "[ms]",
            ".data.statements[].handle" => "[handle]", ".data.statements[].request_id" => "[request_id]",
            ".data.requests[].handle" => "[handle]", ".data.requests[].request_id" => "[request_id]",
        })
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_a_partition_and_reports_every_file() {
    let s = setup(builder()).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s.fake.table_rows(TABLE), 150);
    snapshot!("snowflake_copy_loaded", r.result);
    let sub = &s.fake.submissions()[0];
    assert_eq!(sub.context[0].as_deref(), Some("LOAD_WH"));
    assert!(!sub.retry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_finds_nothing_new_and_is_skipped() {
    let s = setup(builder()).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE));
    assert_eq!(run(cmd).await.code, 0);
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE))
        .args(["--noop-exit-code", "99"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 99, "{}", r.stderr);
    assert_eq!(r.status(), "skipped");
    assert_eq!(r.result["data"]["files"], serde_json::json!([]));
    assert_eq!(
        r.result["data"]["message"],
        "Copy executed with 0 files processed."
    );
    assert_eq!(r.result["data"]["statements"][0]["files"], 0);
    assert_eq!(
        s.fake.table_rows(TABLE),
        150,
        "load metadata kept the files from loading twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_range_runs_as_one_transaction_through_a_stage() {
    let s = setup(builder()).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args([
        "--table",
        "raw.events.events",
        "--from",
        "@raw.events.lake/events/",
        "--from-date",
        "20251030",
        "--to-date",
        "20251031",
        "--file-format-name",
        "RAW.EVENTS.JSON_FMT",
        "--pattern",
        r".*\.json",
        "--idempotency-key",
        "daily-load-2025-10-30",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = &r.result["data"];
    assert_eq!(
        d["partitions"],
        serde_json::json!(["date=2025-10-30/", "date=2025-10-31/"])
    );
    assert_eq!(d["requests"].as_array().unwrap().len(), 1);
    assert_eq!(d["requests"][0]["transaction"], true);
    assert_eq!(d["requests"][0]["statement_count"], 4);
    assert_eq!(d["totals"]["files_loaded"], 3);
    assert_eq!(d["totals"]["rows_loaded"], 160);
    assert_eq!(r.result["idempotency_key"], "daily-load-2025-10-30");
    let sub = &s.fake.submissions()[0];
    assert_eq!(sub.statement_count, Some(4));
    assert_eq!(
        sub.query_tag.as_deref(),
        Some("syncctl snowflake copy daily-load-2025-10-30")
    );
    let sql = &s.fake.statement_texts()[0];
    assert!(
        sql.contains(r#"FROM '@"RAW"."EVENTS"."LAKE"/events/date=2025-10-31/'"#),
        "{sql}"
    );
    assert_eq!(
        r.result["warnings"].as_array().unwrap().len(),
        1,
        "{}",
        r.result["warnings"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transaction_sends_one_request_per_partition() {
    let s = setup(builder()).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args([
        "--table",
        TABLE,
        "--from",
        LAKE,
        "--from-date",
        SEED_DATE,
        "--to-date",
        "2025-10-31",
    ])
    .args(["--storage-integration", "DATALAKE_INT", "--no-transaction"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["requests"].as_array().unwrap().len(), 2);
    assert!(
        s.fake
            .submissions()
            .iter()
            .all(|s| s.statement_count.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_remote_failure_with_snowflakes_code() {
    let s = setup(builder()).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args([
        "--table",
        "RAW.EVENTS.NOPE",
        "--from",
        LAKE,
        "--date",
        SEED_DATE,
        "--storage-integration",
        "DATALAKE_INT",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.error_class(), Some("remote_failed"));
    let e = &r.result["error"];
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Table 'RAW.EVENTS.NOPE' does not exist"),
        "{e}"
    );
    assert_eq!(e["details"]["code"], "002003");
    assert_eq!(e["details"]["sqlState"], "42S02");
    assert!(e["details"]["statementHandle"].is_string());
    assert_eq!(r.result["data"]["statements"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_do_not_load_fail_the_command_unless_on_error_continue() {
    let s = setup(builder().file(file(SEED_DATE, 3, 10).with_bad_row(
        2,
        "PAYLOAD",
        "Error parsing JSON: truncated",
    )))
    .await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE))
        .args(["--on-error", "SKIP_FILE"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.error_class(), Some("remote_failed"));
    assert_eq!(r.result["data"]["totals"]["files_failed"], 1);
    assert_eq!(r.result["data"]["totals"]["files_loaded"], 2);
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("part-0003.json LOAD_FAILED") && msg.contains("truncated"),
        "{msg}"
    );

    // ABORT_STATEMENT (the default) fails the statement itself with Snowflake's message.
    let s = setup(builder().file(file(SEED_DATE, 3, 10).with_bad_row(
        2,
        "PAYLOAD",
        "Error parsing JSON: truncated",
    )))
    .await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.result["error"]["details"]["sqlState"], "22P02");
    assert_eq!(s.fake.table_rows(TABLE), 0);

    // CONTINUE: loaded with warnings.
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE))
        .args(["--on-error", "continue"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["totals"]["files_partially_loaded"], 1);
    let warnings = r.result["warnings"].to_string();
    assert!(
        warnings.contains("PARTIALLY_LOADED: 9 of 10 rows loaded"),
        "{warnings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_errors_and_loads_nothing() {
    let s = setup(builder().file(file(SEED_DATE, 3, 10).with_bad_row(
        4,
        "TS",
        "Timestamp 'x' is not recognized",
    )))
    .await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE)).arg("--validate");
    let r = run(cmd).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.result["data"]["mode"], "validate");
    assert_eq!(r.result["data"]["validation_errors"][0]["line"], 4);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("validation found 1 error(s) in 1 file(s)")
    );
    assert!(s.fake.statement_texts()[0].contains("VALIDATION_MODE = RETURN_ERRORS"));
    assert_eq!(s.fake.table_rows(TABLE), 0);

    let clean = setup(builder()).await;
    let mut cmd = syncctl(&clean.server.url());
    cmd.args(copy_args(SEED_DATE)).arg("--validate");
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["validation_errors"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_the_running_statement_and_exits_143() {
    let s = setup(builder().polls_before_done(1_000_000)).await;
    let dir = tempfile::tempdir().unwrap();
    let result_file = dir.path().join("return.json");
    let bin = assert_cmd::cargo::cargo_bin("syncctl");
    let mut cmd = StdCommand::new(bin);
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM)
        .args(["snowflake", "copy", "--poll-interval", "20ms"])
        .args(copy_args(SEED_DATE))
        .arg("--result-file")
        .arg(&result_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    // Wait (bounded) until the statement is running and being polled.
    for _ in 0..500 {
        if s.server
            .requests_to(&axum::http::Method::GET, "/api/v2/statements/")
            .len()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let r = CliRun::from_output(&out);
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(r.status(), "cancelled");
    assert_eq!(r.error_class(), Some("cancelled"));
    let cancelled = s.fake.cancelled();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(r.result["data"]["cancelled"], serde_json::json!(cancelled));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(written["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_cancels_and_exits_5() {
    let s = setup(builder().polls_before_done(1_000_000)).await;
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE)).args(["--deadline", "300ms"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(r.status(), "timed_out");
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("deadline 300ms reached; cancelled statement")
    );
    assert_eq!(s.fake.cancelled().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_during_the_submit_still_cancels_the_statement_it_started() {
    let s = setup(builder().polls_before_done(1_000_000)).await;
    // The submit's answer (with the handle) arrives after the deadline.
    s.server.inject_on(
        Some(axum::http::Method::POST),
        "/api/v2/statements",
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE)).args(["--deadline", "200ms"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(s.fake.submissions().len(), 1, "the statement was submitted");
    assert_eq!(
        s.fake.cancelled().len(),
        1,
        "the statement it started was cancelled: {}",
        r.result
    );
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("deadline 200ms reached; cancelled statement"),
        "{}",
        r.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_sends_nothing() {
    let s = setup(builder()).await;
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--table",
            "RAW.EVENTS.T; DROP TABLE RAW.EVENTS.T",
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            r#"RAW."T"";DROP""#,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            "s3://biz-datalake-dev/x'); DROP TABLE T; --",
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            "@stage/x\\",
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--partition",
            "date={date}/';--",
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--files",
            "a.json,b.json'); DROP TABLE T; --",
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--file-format",
            "TYPE=JSON) FORCE=TRUE; --",
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--storage-integration",
            "X; DROP",
        ],
        vec!["--table", TABLE, "--from", LAKE, "--date", "30/10/2025"],
        vec!["--table", TABLE, "--from", LAKE],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--from-date",
            SEED_DATE,
            "--to-date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--files",
            "a",
            "--pattern",
            ".*",
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--on-error",
            "sometimes",
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
            "--include-metadata",
            "F=METADATA$FILENAME",
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            "gcs://lake/x/",
            "--date",
            SEED_DATE,
        ],
        vec![
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--from-date",
            "2020-01-01",
            "--to-date",
            "2025-01-01",
        ],
    ];
    for args in cases {
        let mut cmd = syncctl(&s.server.url());
        cmd.args(&args);
        let r = run(cmd).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.error_class(), Some("usage"), "{args:?}");
        assert_eq!(r.result["command"], "snowflake copy");
    }
    assert!(
        s.server.requests().is_empty(),
        "nothing may be sent for bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_a_config_error() {
    let s = setup(builder()).await;
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_HOST", s.server.url())
        .args(["snowflake", "copy"])
        .args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert_eq!(r.error_class(), Some("config"));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SNOWFLAKE_PRIVATE_KEY_PATH")
    );
    assert!(s.server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_exact_sql_with_secrets_starred_and_sends_nothing() {
    let s = setup(builder()).await;
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("AWS_KEY", "AKIADRYRUNKEY0001")
        .env("AWS_SECRET", "dry-run-secret-0002")
        .args([
            "snowflake",
            "copy",
            "--table",
            TABLE,
            "--from",
            LAKE,
            "--from-date",
            SEED_DATE,
            "--to-date",
            "2025-10-31",
        ])
        .args([
            "--file-format",
            "TYPE=JSON STRIP_OUTER_ARRAY=TRUE",
            "--on-error",
            "CONTINUE",
            "--dry-run",
        ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "planned");
    assert!(!r.stdout.contains("dry-run-secret-0002") && !r.stdout.contains("AKIADRYRUNKEY0001"));
    assert!(r.result["data"]["statements"][0]["handle"].is_null());
    snapshot!("snowflake_copy_dry_run", r.result);
    assert!(s.server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_airflow_connection_supplies_the_settings() {
    let s = setup(builder()).await;
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(TEST_PRIVATE_KEY_PEM);
    let uri = format!(
        "snowflake://etl_user@/EVENTS?account=myorg-acct&warehouse=CONN_WH&role=LOADER&database=RAW&private_key_content={}",
        key_b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("AIRFLOW_CONN_SNOWFLAKE", uri)
        .args([
            "snowflake",
            "copy",
            "--poll-interval",
            "5ms",
            "--table",
            "events",
            "--from",
            LAKE,
            "--date",
            SEED_DATE,
        ])
        .args(["--storage-integration", "DATALAKE_INT"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sub = &s.fake.submissions()[0];
    assert_eq!(
        sub.context,
        [
            Some("CONN_WH".into()),
            Some("LOADER".into()),
            Some("RAW".into()),
            Some("EVENTS".into())
        ]
    );
    assert_eq!(
        s.fake.table_rows(TABLE),
        150,
        "the one-part table name resolved in RAW.EVENTS"
    );

    // JSON form with a programmatic access token in the password; the flag beats the connection.
    let json = serde_json::json!({
        "conn_type": "snowflake", "login": "etl_user", "password": "pat-token-1234567", "schema": "EVENTS",
        "extra": {"account": "myorg-acct", "warehouse": "CONN_WH", "database": "RAW", "authenticator": "programmatic_access_token"},
    });
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("AIRFLOW_CONN_SNOWFLAKE", json.to_string())
        .args([
            "snowflake",
            "copy",
            "--poll-interval",
            "5ms",
            "--warehouse",
            "FLAG_WH",
        ])
        .args(copy_args("2025-10-31"));
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        s.fake.token_types().last().map(String::as_str),
        Some("PROGRAMMATIC_ACCESS_TOKEN")
    );
    assert_eq!(
        s.fake.submissions().last().unwrap().context[0].as_deref(),
        Some("FLAG_WH")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_file_with_its_passphrase_signs_valid_jwts() {
    let s = setup(builder()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa_key.p8");
    std::fs::write(&key, TEST_ENCRYPTED_PRIVATE_KEY_PEM).unwrap();
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct.us-east-1")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY_PATH", &key)
        .env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", TEST_KEY_PASSPHRASE)
        .args(["snowflake", "copy", "--poll-interval", "5ms"])
        .args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let jwt = &s.fake.jwts()[0];
    assert_eq!(
        jwt.iss,
        format!(
            "MYORG-ACCT.ETL_USER.{}",
            public_key_fingerprint(TEST_PUBLIC_KEY_PEM)
        )
    );

    // The wrong passphrase is a config error, and nothing is sent.
    let before = s.server.requests().len();
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY_PATH", &key)
        .env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "wrong-passphrase")
        .args(["snowflake", "copy"])
        .args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase")
    );
    assert_eq!(s.server.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_snowflake_with_one_authenticated_call() {
    let s = setup(builder()).await;
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM)
        .args(["doctor", "--service", "snowflake"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let svc = &r.result["data"]["services"][0];
    assert_eq!(svc["name"], "snowflake");
    assert_eq!(svc["ok"], true);
    assert_eq!(svc["base_url"], s.server.url());
    assert_eq!(
        svc["auth"],
        format!(
            "key-pair JWT ({})",
            public_key_fingerprint(TEST_PUBLIC_KEY_PEM)
        )
    );
    assert_eq!(svc["message"], "authenticated; Snowflake 9.30.0");

    // A key Snowflake does not trust: exit 3.
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SNOWFLAKE_HOST", s.server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "someone_else")
        .env("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM)
        .args(["doctor", "--service", "snowflake"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.result["data"]["services"][0]["ok"], false);
}

#[test]
fn help_text() {
    let out = Command::cargo_bin("syncctl")
        .unwrap()
        .env_clear()
        .args(["snowflake", "copy", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(
        "snowflake_copy_help",
        String::from_utf8(out.stdout).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_submit_answer_is_resubmitted_with_retry_true() {
    let s = setup(builder()).await;
    s.server.inject_on(
        Some(axum::http::Method::POST),
        "/api/v2/statements",
        syncctl_testkit::Fault::DropAfterHandling,
        1,
    );
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["requests"][0]["resubmitted"], true);
    let subs = s.fake.submissions();
    assert_eq!(subs.len(), 2);
    assert!(subs[1].retry && !subs[1].executed);
    assert_eq!(s.fake.copy_executions(), 1);
    assert_eq!(s.fake.table_rows(TABLE), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_airflow_retry_reattaches_to_the_copy_its_first_try_ran() {
    let s = setup(builder()).await;
    let airflow = |cmd: &mut Command, try_number: &str| {
        cmd.env("AIRFLOW_CTX_DAG_ID", "events_daily")
            .env(
                "AIRFLOW_CTX_DAG_RUN_ID",
                "scheduled__2025-10-30T00:00:00+00:00",
            )
            .env("AIRFLOW_CTX_TASK_ID", "copy_events")
            .env("AIRFLOW_CTX_TRY_NUMBER", try_number);
    };
    let mut cmd = syncctl(&s.server.url());
    airflow(&mut cmd, "1");
    cmd.args(copy_args(SEED_DATE));
    let first = run(cmd).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Try 2 (say the worker died before Airflow saw try 1 finish) sends the same requestId
    // with retry=true, so Snowflake hands back the statement try 1 ran: its real per-file
    // results, not "0 files processed", and no second execution.
    let mut cmd = syncctl(&s.server.url());
    airflow(&mut cmd, "2");
    cmd.args(copy_args(SEED_DATE));
    let second = run(cmd).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let subs = s.fake.submissions();
    assert_eq!(subs[0].request_id, subs[1].request_id);
    assert!(!subs[0].retry && subs[1].retry && !subs[1].executed);
    assert_eq!(s.fake.copy_executions(), 1);
    assert_eq!(
        second.result["data"]["files"],
        first.result["data"]["files"]
    );
    assert_eq!(
        second.result["idempotency_key"],
        "airflow:events_daily:scheduled__2025-10-30T00:00:00+00:00:copy_events"
    );
    // A different day is a different request.
    let mut cmd = syncctl(&s.server.url());
    airflow(&mut cmd, "2");
    cmd.args(copy_args("2025-10-31"));
    let other = run(cmd).await;
    assert_eq!(other.code, 0);
    assert_ne!(s.fake.submissions()[2].request_id, subs[0].request_id);
    assert_eq!(s.fake.copy_executions(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflakes_statement_timeout_is_exit_5_with_the_handle() {
    let s = setup(builder().polls_before_done(3)).await;
    // The statement outlives its STATEMENT_TIMEOUT_IN_SECONDS: Snowflake cancels it and the
    // status call answers 408 with code 000630.
    s.server.inject_on(
        Some(axum::http::Method::GET),
        "/api/v2/statements/",
        Fault::Answer {
            status: 408,
            headers: Vec::new(),
            body: serde_json::json!({
                "code": "000630",
                "sqlState": "57014",
                "message": "Statement reached its statement or warehouse timeout of 1 second(s) and was canceled.",
                "statementHandle": "01b2c3d4-0000-0001-0000-000000000630",
                "statementStatusUrl": "/api/v2/statements/01b2c3d4-0000-0001-0000-000000000630",
            })
            .to_string(),
        },
        1,
    );
    let mut cmd = syncctl(&s.server.url());
    cmd.args(copy_args(SEED_DATE))
        .args(["--statement-timeout", "1s"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(r.status(), "timed_out");
    assert_eq!(r.result["error"]["class"], "timeout");
    let message = r.result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("statement or warehouse timeout"),
        "{message}"
    );
    assert_eq!(
        r.result["error"]["details"]["statementHandle"],
        "01b2c3d4-0000-0001-0000-000000000630"
    );
    assert_eq!(
        s.server
            .requests_to(&axum::http::Method::GET, "/api/v2/statements/")
            .len(),
        1,
        "a 408 is final: the status call is not repeated"
    );
    let submit = &s
        .server
        .requests_to(&axum::http::Method::POST, "/api/v2/statements")[0];
    assert_eq!(submit.json()["timeout"], 1, "the timeout was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_ride_out_503s_and_a_lasting_503_is_exit_4() {
    // Two 503s on the status polls: retried (a GET is safe to repeat), the load completes.
    let s = setup(builder().polls_before_done(2)).await;
    s.server.inject_on(
        Some(axum::http::Method::GET),
        "/api/v2/statements/",
        syncctl_testkit::fakes::snowflake::error_fault(503),
        2,
    );
    let r = run({
        let mut cmd = syncctl(&s.server.url());
        cmd.args(copy_args(SEED_DATE));
        cmd
    })
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let polls = s
        .server
        .requests_to(&axum::http::Method::GET, "/api/v2/statements/")
        .len();
    assert!(polls >= 3, "the 503s were retried ({polls} status calls)");
    // A 503 that lasts: exit 4, retryable, after the client's retries.
    let s = setup(builder().polls_before_done(2)).await;
    s.server.inject_on(
        Some(axum::http::Method::GET),
        "/api/v2/statements/",
        syncctl_testkit::fakes::snowflake::error_fault(503),
        1_000,
    );
    let mut cmd = syncctl(&s.server.url());
    cmd.env("SYNCCTL_HTTP_MAX_RETRIES", "2")
        .args(copy_args(SEED_DATE));
    let r = run(cmd).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.result["error"]["retryable"], true);
    assert!(
        s.server
            .requests_to(&axum::http::Method::GET, "/api/v2/statements/")
            .len()
            >= 3,
        "the status call was retried before giving up"
    );
}
