//! `snowflake copy` secrets (private key, passphrase, AWS keys, SAS token, OAuth/PAT tokens, the
//! Airflow connection's password, the JWTs we sign) must appear nowhere: stdout, stderr, the
//! result file, the termination log, at trace level, on success, on failure, in `--dry-run` SQL.
//! Each case also proves the secret was really used (it reached the fake), so a test that
//! passes because the secret never mattered cannot pass here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, TEST_ENCRYPTED_PRIVATE_KEY_PEM, TEST_KEY_PASSPHRASE,
    TEST_PUBLIC_KEY_PEM,
};

const AWS_KEY_ID: &str = "AKIALEAKCANARY0001";
const AWS_SECRET_KEY: &str = "aws-secret-leak-canary-0002";
const SAS: &str = "sv=2024-01-01&sig=sas-leak-canary-0003";
const PAT: &str = "pat-leak-canary-0004";
const CONN_PASSWORD: &str = "conn-pw-leak-canary-0005";

/// Lines of the (test-only) private key: any of them in output is a leak.
fn key_lines() -> Vec<&'static str> {
    TEST_ENCRYPTED_PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn assert_clean(what: &str, text: &str, extra: &[String]) {
    crate::support::assert_no_secrets(
        what,
        text,
        &[
            AWS_KEY_ID,
            AWS_SECRET_KEY,
            SAS,
            PAT,
            CONN_PASSWORD,
            TEST_KEY_PASSPHRASE,
        ],
    );
    for l in key_lines() {
        assert!(
            !text.contains(l),
            "{what} leaked a private key line:\n{text}"
        );
    }
    for s in extra {
        assert!(
            !text.contains(s.as_str()),
            "{what} leaked a bearer token:\n{text}"
        );
    }
}

fn fake() -> SnowflakeFake {
    SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .programmatic_access_token(PAT)
        .table("RAW.EVENTS.EVENTS")
        .file(FakeFile::new(
            "s3://biz-datalake-dev/events/date=2025-10-30/a.json",
            5,
        ))
        .file(FakeFile::new(
            "azure://acct.blob.core.windows.net/lake/events/date=2025-10-30/a.json",
            5,
        ))
        .build()
}

/// Runs the binary at trace level with every secret in the environment; returns what the fake
/// received as bearer tokens so they can be checked too.
async fn leaky_run(
    server: &FakeServer,
    env: &[(&str, String)],
    args: &[&str],
) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa_key.p8");
    std::fs::write(&key, TEST_ENCRYPTED_PRIVATE_KEY_PEM).unwrap();
    let result_file = dir.path().join("return.json");
    let term = dir.path().join("termination-log");
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SYNCCTL_LOG", "trace")
        .env("SYNCCTL_HTTP_RETRY_BASE", "5ms")
        .env("SNOWFLAKE_HOST", server.url())
        .env("SNOWFLAKE_ACCOUNT", "myorg-acct")
        .env("SNOWFLAKE_USER", "etl_user")
        .env("SNOWFLAKE_PRIVATE_KEY_PATH", &key)
        .env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", TEST_KEY_PASSPHRASE)
        .env("AWS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_KEY", AWS_SECRET_KEY)
        .env("AZURE_SAS_TOKEN", SAS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["snowflake", "copy", "--poll-interval", "5ms"])
        .args(args)
        .args(["-vv", "--output", "kestra", "--result-file"])
        .arg(&result_file)
        .arg("--termination-log")
        .arg(&term);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let tokens: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|h| h.trim_start_matches("Bearer ").to_owned())
        })
        .collect();
    assert_clean("stdout", &String::from_utf8_lossy(&out.stdout), &tokens);
    assert_clean("stderr", &String::from_utf8_lossy(&out.stderr), &tokens);
    assert_clean(
        "result file",
        &std::fs::read_to_string(&result_file).unwrap(),
        &tokens,
    );
    if let Ok(t) = std::fs::read_to_string(&term) {
        assert_clean("termination log", &t, &tokens);
    }
    (out.status.code().unwrap_or(-1), tokens)
}

const S3: [&str; 6] = [
    "--table",
    "RAW.EVENTS.EVENTS",
    "--from",
    "s3://biz-datalake-dev/events/",
    "--date",
    "2025-10-30",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_load_with_aws_keys_leaks_nothing() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    let (code, tokens) = leaky_run(&server, &[], &S3).await;
    assert_eq!(code, 0);
    assert!(
        !tokens.is_empty() && f.jwts().len() == tokens.len(),
        "the JWT signed with the encrypted key was used"
    );
    let sql = &f.statement_texts()[0];
    assert!(
        sql.contains(AWS_SECRET_KEY) && sql.contains(AWS_KEY_ID),
        "the keys reached Snowflake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sql_leaks_nothing() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    let (code, _) = leaky_run(&server, &[], &[&S3[..], &["--dry-run"]].concat()).await;
    assert_eq!(code, 0);
    let args = [
        "--table",
        "T",
        "--from",
        "azure://acct.blob.core.windows.net/lake/events/",
        "--date",
        "2025-10-30",
        "--dry-run",
    ];
    let (code, _) = leaky_run(&server, &[], &args).await;
    assert_eq!(code, 0);
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_leak_nothing() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    // Snowflake refuses the statement (missing table): the 422 path.
    let args = [
        "--table",
        "RAW.EVENTS.MISSING",
        "--from",
        "azure://acct.blob.core.windows.net/lake/events/",
        "--date",
        "2025-10-30",
    ];
    let (code, _) = leaky_run(&server, &[], &args).await;
    assert_eq!(code, 1);
    assert!(
        f.statement_texts()[0].contains(SAS),
        "the SAS token reached Snowflake"
    );
    // Snowflake refuses the credential: the 401 path with a programmatic access token.
    let env = [
        (
            "SNOWFLAKE_AUTHENTICATOR",
            "programmatic_access_token".to_owned(),
        ),
        ("SNOWFLAKE_TOKEN", format!("{PAT}-revoked")),
        ("SNOWFLAKE_PRIVATE_KEY_PATH", String::new()),
    ];
    let (code, tokens) = leaky_run(&server, &env, &S3).await;
    assert_eq!(code, 3);
    assert!(
        tokens.contains(&format!("{PAT}-revoked")),
        "the refused token was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_airflow_connection_password_leaks_nothing() {
    // The password is the PAT here; URL-encoded in the URI, so the redactor must learn the
    // decoded value from the settings.
    let f2 = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .programmatic_access_token(CONN_PASSWORD)
        .table("RAW.EVENTS.EVENTS")
        .file(FakeFile::new(
            "s3://biz-datalake-dev/events/date=2025-10-30/a.json",
            5,
        ))
        .build();
    let server2 = FakeServer::start(f2.router()).await;
    let encoded = CONN_PASSWORD.replace('-', "%2D");
    let env = [
        (
            "AIRFLOW_CONN_SNOWFLAKE",
            format!(
                "snowflake://etl_user:{encoded}@/PUBLIC?account=myorg-acct&authenticator=programmatic_access_token"
            ),
        ),
        ("SNOWFLAKE_PRIVATE_KEY_PATH", String::new()),
        ("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", String::new()),
        ("SNOWFLAKE_ACCOUNT", String::new()),
        ("SNOWFLAKE_USER", String::new()),
    ];
    let (code, tokens) = leaky_run(&server2, &env, &S3).await;
    assert_eq!(code, 0);
    assert_eq!(
        tokens[0], CONN_PASSWORD,
        "the decoded password was the bearer token"
    );
}
