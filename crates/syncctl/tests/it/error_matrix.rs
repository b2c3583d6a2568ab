//! Every service's refusals as the service words them, through the binary: 403 is auth
//! (exit 3), 404 is config (exit 2), 500 and 503 are transient (exit 4). The fakes' own
//! `error_fault` gives each vendor's status, headers and body; each case also checks that the
//! command reached the service (the fake's request log) and that the result quotes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::{airbyte, databricks, snowflake};
use syncctl_testkit::{FakeServer, Fault};

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";

/// One service: its fake, the command, and the variables pointing the binary at it.
struct Service {
    name: &'static str,
    server: FakeServer,
    vars: Vec<(&'static str, String)>,
    args: Vec<&'static str>,
    fault: fn(u16) -> Fault,
}

async fn airbyte_service() -> Service {
    let fake = airbyte::FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_connection(STRIPE, "Stripe → Postgres");
    let server = FakeServer::start(fake.router()).await;
    Service {
        name: "airbyte",
        vars: vec![
            ("AIRBYTE_API_URL", server.url()),
            ("AIRBYTE_API_USERNAME", "airbyte".into()),
            ("AIRBYTE_API_PASSWORD", "password".into()),
        ],
        server,
        args: vec!["airbyte", "trigger", "--connection-id", STRIPE],
        fault: airbyte::error_fault,
    }
}

async fn databricks_service() -> Service {
    let fake = databricks::DatabricksFake::new()
        .with_pat("dapi-matrix")
        .job(databricks::FakeJob::new(44, "etl"));
    let server = FakeServer::start(fake.router()).await;
    Service {
        name: "dbx",
        vars: vec![
            ("DATABRICKS_HOST", server.url()),
            ("DATABRICKS_TOKEN", "dapi-matrix".into()),
        ],
        server,
        args: vec!["dbx", "run-now", "--job-id", "44", "--fresh-run"],
        fault: databricks::error_fault,
    }
}

async fn snowflake_service() -> Service {
    let fake = snowflake::SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(snowflake::TEST_PUBLIC_KEY_PEM)
        .table("RAW.EVENTS.EVENTS")
        .storage_integration("DATALAKE_INT")
        .build();
    let server = FakeServer::start(fake.router()).await;
    Service {
        name: "snowflake",
        vars: vec![
            ("SNOWFLAKE_HOST", server.url()),
            ("SNOWFLAKE_ACCOUNT", "myorg-acct".into()),
            ("SNOWFLAKE_USER", "etl_user".into()),
            (
                "SNOWFLAKE_PRIVATE_KEY",
                snowflake::TEST_PRIVATE_KEY_PEM.into(),
            ),
        ],
        server,
        args: vec![
            "snowflake",
            "copy",
            "--table",
            "RAW.EVENTS.EVENTS",
            "--from",
            "s3://lake/events/",
            "--date",
            "2025-10-30",
            "--storage-integration",
            "DATALAKE_INT",
        ],
        fault: snowflake::error_fault,
    }
}

async fn run(s: &Service) -> CliRun {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("NO_COLOR", "1")
        .env("SYNCCTL_HTTP_MAX_RETRIES", "1")
        .env("SYNCCTL_HTTP_RETRY_BASE", "5ms")
        .args(&s.args)
        .args(["--no-progress", "--poll-interval", "20ms"]);
    for (k, v) in &s.vars {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || CliRun::from_output(&cmd.output().unwrap()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_refusals_map_to_their_exit_codes() {
    // (status, exit code, error class)
    let cases = [
        (403, 3, "auth"),
        (404, 2, "config"),
        (500, 4, "transient"),
        (503, 4, "transient"),
    ];
    let mut checked = 0;
    for (status, code, class) in cases {
        for service in [
            airbyte_service().await,
            databricks_service().await,
            snowflake_service().await,
        ] {
            let what = format!("{} HTTP {status}", service.name);
            // Every request from here on gets the vendor's answer (retries included).
            service
                .server
                .inject_on(None, "/", (service.fault)(status), 1_000);
            let r = run(&service).await;
            assert_eq!(r.code, code, "{what}: {}\n{}", r.result, r.stderr);
            assert_eq!(r.result["error"]["class"], class, "{what}: {}", r.result);
            assert_eq!(
                r.result["error"]["retryable"],
                class == "transient",
                "{what}: {}",
                r.result
            );
            // The command got as far as the service: the refusal came from the fake.
            let sent = service.server.requests();
            assert!(!sent.is_empty(), "{what}: nothing was sent");
            let message = r.result["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&status.to_string()),
                "{what}: the message names the status: {message}"
            );
            // ... and quotes what the service said.
            let Fault::Answer { body, .. } = (service.fault)(status) else {
                unreachable!("error_fault answers")
            };
            let said = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            let said: String = said.chars().take(40).collect();
            assert!(
                message.contains(&said),
                "{what}: {message} does not quote {said:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_invalid_token_is_auth_and_quotes_databricks() {
    let service = databricks_service().await;
    let mut bad = service;
    bad.vars.retain(|(k, _)| *k != "DATABRICKS_TOKEN");
    bad.vars.push(("DATABRICKS_TOKEN", "dapi-revoked".into()));
    let r = run(&bad).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let message = r.result["error"]["message"].as_str().unwrap();
    assert!(message.contains("Invalid access token."), "{message}");
    // A personal access token cannot be refreshed: one request, no retry.
    assert_eq!(bad.server.requests().len(), 1);
    assert!(!r.stderr.contains("dapi-revoked") && !r.result.to_string().contains("dapi-revoked"));
}
