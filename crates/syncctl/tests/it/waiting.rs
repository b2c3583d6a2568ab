//! One waiter: `airbyte trigger`, `dbx run-now` and `snowflake copy` read the same waiting
//! flags and variables the same way. Each case runs against all three services' fakes with
//! work that never finishes, and checks the exit code and whether a cancel was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob};
use syncctl_testkit::fakes::snowflake::{
    FakeFile, SnowflakeFake, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
};

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";

/// One service with work that never finishes: where it runs, how to start the command, and
/// the path of its cancel call.
struct Service {
    name: &'static str,
    server: FakeServer,
    vars: Vec<(&'static str, String)>,
    args: Vec<&'static str>,
    cancel_path: &'static str,
    /// What starts the remote work (the first write the command sends).
    start_path: &'static str,
}

async fn airbyte() -> Service {
    let fake = FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_connection(STRIPE, "Stripe → Postgres");
    fake.set_script(STRIPE, JobScript::new().running_forever());
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
        cancel_path: "/api/v1/jobs/cancel",
        start_path: "/api/v1/connections/sync",
    }
}

async fn databricks() -> Service {
    let fake = DatabricksFake::new()
        .with_pat("dapi-wait")
        .job(FakeJob::new(44, "streaming").lifecycle(&["RUNNING"; 100_000]));
    let server = FakeServer::start(fake.router()).await;
    Service {
        name: "dbx",
        vars: vec![
            ("DATABRICKS_HOST", server.url()),
            ("DATABRICKS_TOKEN", "dapi-wait".into()),
        ],
        server,
        args: vec!["dbx", "run-now", "--job-id", "44", "--fresh-run"],
        cancel_path: "/jobs/runs/cancel",
        start_path: "/jobs/run-now",
    }
}

async fn snowflake() -> Service {
    let fake = SnowflakeFake::builder()
        .account("MYORG-ACCT")
        .user("ETL_USER")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .table("RAW.EVENTS.EVENTS")
        .storage_integration("DATALAKE_INT")
        .polls_before_done(1_000_000)
        .file(FakeFile::new(
            "s3://lake/events/date=2025-10-30/part-0001.json",
            10,
        ))
        .build();
    let server = FakeServer::start(fake.router()).await;
    Service {
        name: "snowflake",
        vars: vec![
            ("SNOWFLAKE_HOST", server.url()),
            ("SNOWFLAKE_ACCOUNT", "myorg-acct".into()),
            ("SNOWFLAKE_USER", "etl_user".into()),
            ("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM.into()),
            ("SNOWFLAKE_WAREHOUSE", "LOAD_WH".into()),
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
        cancel_path: "/cancel",
        start_path: "/api/v2/statements",
    }
}

async fn run(s: &Service, extra: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("NO_COLOR", "1")
        .env("SYNCCTL_HTTP_RETRY_BASE", "10ms")
        .args(&s.args)
        .arg("--no-progress")
        .args(extra);
    if !extra.contains(&"--poll-interval") {
        cmd.args(["--poll-interval", "20ms"]);
    }
    for (k, v) in &s.vars {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || CliRun::from_output(&cmd.output().unwrap()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiting_command_reads_the_clocks_the_same_way() {
    // (flags, variables, exit code, status, whether a cancel is sent)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        i32,
        &'static str,
        bool,
    );
    let cases: [Case; 4] = [
        // --wait-timeout stops waiting and leaves the work running.
        (&["--wait-timeout", "300ms"], &[], 5, "timed_out", false),
        // The same through the variable.
        (
            &[],
            &[("SYNCCTL_WAIT_TIMEOUT", "300ms")],
            5,
            "timed_out",
            false,
        ),
        // --deadline cancels it; given as a variable here, with the grace from a variable.
        (
            &[],
            &[("SYNCCTL_DEADLINE", "300ms"), ("SYNCCTL_KILL_GRACE", "2s")],
            5,
            "timed_out",
            true,
        ),
        // A flag wins over its variable.
        (
            &["--deadline", "300ms"],
            &[("SYNCCTL_DEADLINE", "1h")],
            5,
            "timed_out",
            true,
        ),
    ];
    for (flags, vars, code, status, cancels) in cases {
        for service in [airbyte().await, databricks().await, snowflake().await] {
            let r = run(&service, flags, vars).await;
            let what = format!("{} {flags:?} {vars:?}", service.name);
            assert_eq!(r.code, code, "{what}: {}", r.stderr);
            assert_eq!(r.status(), status, "{what}");
            let starts = service
                .server
                .requests_to(&Method::POST, service.start_path)
                .into_iter()
                .filter(|r| !r.path.ends_with(service.cancel_path))
                .count();
            assert_eq!(starts, 1, "{what}: the work was started once");
            let cancel_calls = service
                .server
                .requests_to(&Method::POST, service.cancel_path)
                .len();
            assert_eq!(
                cancel_calls > 0,
                cancels,
                "{what}: {cancel_calls} cancel call(s)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_waiting_values_exit_2_before_anything_is_sent() {
    // (flags, variables, what the message says)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            &["--kill-grace", "30s"],
            &[],
            "--kill-grace must be at most 27s",
        ),
        (
            &["--poll-interval", "0s"],
            &[],
            "--poll-interval must be longer than 0s",
        ),
        (&[], &[("SYNCCTL_DEADLINE", "soon")], "SYNCCTL_DEADLINE"),
        (
            &[],
            &[("SYNCCTL_ON_KILL", "stop")],
            "SYNCCTL_ON_KILL must be cancel or leave",
        ),
    ];
    for (flags, vars, message) in cases {
        for service in [airbyte().await, databricks().await, snowflake().await] {
            let r = run(&service, flags, vars).await;
            let what = format!("{} {flags:?} {vars:?}", service.name);
            assert_eq!(r.code, 2, "{what}: {}", r.stderr);
            let got = r.result["error"]["message"].as_str().unwrap_or_default();
            assert!(got.contains(message), "{what}: {got}");
            assert!(
                service.server.requests().is_empty(),
                "{what}: nothing is sent"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_commands_take_kill_grace_not_wait_timeout() {
    for args in [
        ["airbyte", "cancel", "--job-id", "1", "--wait-timeout", "1m"],
        ["dbx", "cancel", "--run-id", "1", "--wait-timeout", "1m"],
    ] {
        let mut cmd = Command::cargo_bin("syncctl").unwrap();
        cmd.env_clear().args(args);
        let r = CliRun::from_output(&cmd.output().unwrap());
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("--wait-timeout"), "{}", r.stderr);
    }
}
