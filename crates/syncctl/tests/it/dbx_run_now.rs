//! `syncctl dbx run-now` end to end: the real binary against the stateful Databricks fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use axum::http::Method;
use serde_json::json;
use syncctl_testkit::cli::{CliRun, volatile_fields};
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};
use syncctl_testkit::{FakeServer, Fault};

const PAT: &str = "dapi-e2e-token";
const DAG_RUN: &str = "scheduled__2025-10-30T00:00:00+00:00";

fn syncctl(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("NO_COLOR", "1")
        .env("DATABRICKS_HOST", url)
        .env("DATABRICKS_TOKEN", PAT)
        .env("SYNCCTL_HTTP_MAX_RETRIES", "2")
        .env("SYNCCTL_HTTP_RETRY_BASE", "10ms");
    cmd
}

/// The Airflow context BashOperator exports (try number 1 or 2: the key ignores it).
fn airflow(cmd: &mut Command, try_number: &str) {
    cmd.env("AIRFLOW_CTX_DAG_ID", "daily_etl")
        .env("AIRFLOW_CTX_DAG_RUN_ID", DAG_RUN)
        .env("AIRFLOW_CTX_TASK_ID", "run_databricks")
        .env("AIRFLOW_CTX_TRY_NUMBER", try_number);
}

use crate::support::run_blocking as run;

fn snap(name: &str, result: &serde_json::Value) {
    let mut settings = insta::Settings::clone_current();
    for (selector, replacement) in volatile_fields() {
        settings.add_redaction(selector, replacement);
    }
    settings.bind(|| insta::assert_json_snapshot!(name, result));
}

fn nightly() -> FakeJob {
    FakeJob::new(42, "nightly-etl")
        .lifecycle(&["QUEUED", "PENDING", "RUNNING", "TERMINATING"])
        .task("ingest", TaskOutcome::Success)
        .task("transform", TaskOutcome::Success)
}

fn failing() -> FakeJob {
    FakeJob::new(43, "daily-report")
        .task("extract", TaskOutcome::Success)
        .task(
            "report",
            TaskOutcome::Failed("ZeroDivisionError: division by zero".into()),
        )
        .task("publish", TaskOutcome::Success)
}

fn endless() -> FakeJob {
    FakeJob::new(44, "streaming").lifecycle(&["RUNNING"; 100_000])
}

async fn workspace() -> (DatabricksFake, FakeServer) {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(nightly())
        .job(failing())
        .job(endless())
        .job(
            FakeJob::new(45, "flaky")
                .task("load", TaskOutcome::FailsOnce("KeyError: 'date'".into())),
        );
    let server = FakeServer::start(fake.router()).await;
    (fake, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_job_by_name_with_every_parameter_kind_and_reports_each_task() {
    let (fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-name",
        "nightly-etl",
        "--job-param",
        "date=2025-10-30",
        "--notebook-param",
        "mode=full",
        "--python-param",
        "--verbose",
        "--python-param",
        "x",
        "--python-named-param",
        "env=dev",
        "--sql-param",
        "schema=raw",
        "--json",
        r#"{"queue":{"enabled":true},"notebook_params":{"mode":"json","extra":"1"},"job_id":999}"#,
        "--poll-interval",
        "20ms",
    ]);
    airflow(&mut cmd, "1");
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snap("dbx_run_now_succeeded", &r.result);
    let body = server.requests_to(&Method::POST, "/api/2.2/jobs/run-now")[0].json();
    let token = body["idempotency_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sc1-") && token.len() == 64, "{token}");
    assert_eq!(
        body,
        json!({
            "job_id": 42,
            "idempotency_token": token,
            "job_parameters": {"date": "2025-10-30"},
            "notebook_params": {"mode": "full", "extra": "1"},
            "python_params": ["--verbose", "x"],
            "python_named_params": {"env": "dev"},
            "sql_params": {"schema": "raw"},
            "queue": {"enabled": true},
        })
    );
    assert_eq!(fake.runs().len(), 1);
    assert!(
        r.stderr.contains("Databricks run 1100: RUNNING"),
        "progress is logged: {}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_fails_the_command_with_its_get_output_error() {
    let (_fake, server) = workspace().await;
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("termination-log");
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "43",
        "--poll-interval",
        "20ms",
    ])
    .args(["--idempotency-key", "manual-key-1", "--termination-log"])
    .arg(&term);
    let r = run(cmd).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.error_class(), Some("remote_failed"));
    snap("dbx_run_now_task_failed", &r.result);
    let log = std::fs::read_to_string(&term).unwrap();
    assert!(
        log.contains("task report failed: ZeroDivisionError"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_with_failures_fails_unless_allowed() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(failing().ends("TERMINATED", Some("SUCCESS_WITH_FAILURES")));
    let server = FakeServer::start(fake.router()).await;
    let base = [
        "dbx",
        "run-now",
        "--job-id",
        "43",
        "--poll-interval",
        "10ms",
        "--fresh-run",
    ];
    let mut cmd = syncctl(&server.url());
    cmd.args(base);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("SUCCESS_WITH_FAILURES") && msg.contains("--allow-success-with-failures"),
        "{msg}"
    );
    let mut cmd = syncctl(&server.url());
    cmd.args(base).arg("--allow-success-with-failures");
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["result_state"], "SUCCESS_WITH_FAILURES");
    assert!(
        r.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("accepted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_task_attaches_reports_an_earlier_failure_and_repairs_it_when_asked() {
    let (fake, server) = workspace().await;
    let base = [
        "dbx",
        "run-now",
        "--job-id",
        "45",
        "--poll-interval",
        "10ms",
    ];
    let mut first = syncctl(&server.url());
    first.args(base);
    airflow(&mut first, "1");
    let r = run(first).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.result["data"]["attached"], false);
    let run_id = r.result["data"]["run_id"].clone();

    // Airflow retries five minutes later with the next try number.
    fake.advance_clock(Duration::from_secs(300));
    let mut second = syncctl(&server.url());
    second.args(base);
    airflow(&mut second, "2");
    let r = run(second).await;
    assert_eq!(r.code, 1);
    snap("dbx_run_now_attached_to_failed_run", &r.result);
    assert_eq!(fake.runs().len(), 1, "nothing new was started");

    let mut third = syncctl(&server.url());
    third.args(base).arg("--rerun-failed");
    airflow(&mut third, "3");
    let r = run(third).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["attached"], true);
    assert_eq!(r.result["data"]["run_id"], run_id);
    assert_eq!(
        r.result["data"]["repair_id"],
        json!(fake.runs()[0].repairs[0])
    );
    assert_eq!(r.result["data"]["tasks"][0]["result_state"], "SUCCESS");
    assert_eq!(fake.runs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_timeout_exits_5_and_leaves_the_run_going() {
    let (fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "run-now", "--job-id", "44", "--fresh-run"])
        .args(["--poll-interval", "20ms", "--wait-timeout", "300ms"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(r.status(), "timed_out");
    assert_eq!(r.error_class(), Some("timeout"));
    assert_eq!(r.result["error"]["retryable"], true);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("left running")
    );
    assert_eq!(r.result["data"]["life_cycle_state"], "RUNNING");
    assert!(!fake.runs()[0].cancelled);
    assert!(server.requests_to(&Method::POST, "/runs/cancel").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_cancels_the_run_and_exits_5() {
    let (fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "run-now", "--job-id", "44", "--fresh-run"])
        .args(["--poll-interval", "20ms", "--deadline", "300ms"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(r.status(), "timed_out");
    assert_eq!(r.result["data"]["result_state"], "CANCELED");
    assert!(fake.runs()[0].cancelled && fake.runs()[0].terminal);
}

/// Starts `syncctl` as a child, waits until it is polling, sends SIGTERM and collects it.
async fn terminate_while_waiting(server: &FakeServer, extra: &[&str]) -> CliRun {
    let bin = assert_cmd::cargo::cargo_bin("syncctl");
    let child = std::process::Command::new(bin)
        .env_clear()
        .env("DATABRICKS_HOST", server.url())
        .env("DATABRICKS_TOKEN", PAT)
        .args([
            "dbx",
            "run-now",
            "--job-id",
            "44",
            "--fresh-run",
            "--poll-interval",
            "20ms",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if server.requests_to(&Method::GET, "/runs/get").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    CliRun::from_output(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_the_run_and_exits_143() {
    let (fake, server) = workspace().await;
    let r = terminate_while_waiting(&server, &[]).await;
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(r.status(), "cancelled");
    assert_eq!(r.error_class(), Some("cancelled"));
    assert_eq!(r.result["data"]["result_state"], "CANCELED");
    assert!(fake.runs()[0].cancelled && fake.runs()[0].terminal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_on_kill_leave_leaves_the_run_going() {
    let (fake, server) = workspace().await;
    let r = terminate_while_waiting(&server, &["--on-kill", "leave"]).await;
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(r.status(), "cancelled");
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("left running")
    );
    assert!(!fake.runs()[0].cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_reports_the_started_run_at_once() {
    let (fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "44",
        "--no-wait",
        "--idempotency-key",
        "k-no-wait",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snap("dbx_run_now_no_wait", &r.result);
    assert!(!fake.runs()[0].terminal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_2_1_is_used_when_asked() {
    let (_fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-name",
        "nightly-etl",
        "--api-version",
        "2.1",
    ])
    .args(["--poll-interval", "10ms", "--fresh-run"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| p.starts_with("/api/2.1/")),
        "{paths:?}"
    );
    assert!(server.requests()[0].query.contains("offset=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_m2m_credentials_from_a_named_profile() {
    let fake = DatabricksFake::new()
        .with_client("sp-etl", "sp-etl-secret")
        .job(nightly());
    let server = FakeServer::start(fake.router()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("databrickscfg");
    std::fs::write(
        &cfg,
        format!(
            "[DEFAULT]\nhost = https://wrong.example.com\ntoken = dapi-unused\n\n[etl]\nhost = {}\nclient_id = sp-etl\nclient_secret = sp-etl-secret\n",
            server.url()
        ),
    )
    .unwrap();
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("DATABRICKS_CONFIG_FILE", &cfg)
        .env("DATABRICKS_CONFIG_PROFILE", "etl")
        .args([
            "dbx",
            "run-now",
            "--job-id",
            "42",
            "--poll-interval",
            "10ms",
            "--fresh-run",
        ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fake.token_requests(), 1);
    // --profile beats DATABRICKS_CONFIG_PROFILE: DEFAULT points elsewhere and fails.
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("DATABRICKS_CONFIG_FILE", &cfg)
        .env("DATABRICKS_CONFIG_PROFILE", "etl")
        .env("SYNCCTL_HTTP_MAX_RETRIES", "0")
        .env("SYNCCTL_HTTP_TIMEOUT", "2s")
        .args(["dbx", "run-now", "--job-id", "42", "--profile", "missing"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"missing\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_sent() {
    let (fake, server) = workspace().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let missing = format!("@{}", missing.display());
    let long_token = format!(r#"{{"idempotency_token":"{}"}}"#, "x".repeat(65));
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![], "usage", "say which job to run"),
        (
            vec!["--job-id", "42", "--job-param", "nokey"],
            "usage",
            "KEY=VALUE",
        ),
        (
            vec!["--job-id", "42", "--job-param", "a=1", "--job-param", "a=2"],
            "usage",
            "given twice",
        ),
        (
            vec!["--job-id", "42", "--json", "{"],
            "usage",
            "not valid JSON",
        ),
        (
            vec!["--job-id", "42", "--json", "[1]"],
            "usage",
            "JSON object",
        ),
        (
            vec!["--job-id", "42", "--json", &missing],
            "config",
            "cannot read the --json file",
        ),
        (
            vec!["--json", r#"{"job_id":"42"}"#],
            "usage",
            "must be an integer",
        ),
        (
            vec!["--job-id", "42", "--json", &long_token],
            "usage",
            "1 to 64 characters",
        ),
        (
            vec!["--job-id", "42", "--poll-interval", "0s"],
            "usage",
            "longer than 0s",
        ),
        (
            vec!["--job-id", "42", "--poll-interval", "soon"],
            "usage",
            "invalid duration",
        ),
        (
            vec!["--job-id", "42", "--no-wait", "--deadline", "1m"],
            "usage",
            "cannot be used with",
        ),
        (
            vec!["--job-id", "42", "--job-name", "x"],
            "usage",
            "cannot be used with",
        ),
        (
            vec!["--job-id", "42", "--rerun-failed", "--fresh-run"],
            "usage",
            "cannot be used with",
        ),
        (
            vec!["--job-id", "42", "--api-version", "3.0"],
            "usage",
            "invalid value",
        ),
    ];
    for (args, class, text) in cases {
        let mut cmd = syncctl(&server.url());
        cmd.args(["dbx", "run-now"]).args(&args);
        let r = run(cmd).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.error_class(), Some(class), "{args:?}");
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(msg.contains(text), "{args:?}: {msg}");
    }
    assert!(server.requests().is_empty(), "nothing was sent");
    assert!(fake.runs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refusals_map_to_exit_codes() {
    let (_fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "run-now", "--job-id", "7", "--fresh-run"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2, "unknown job");
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Job 7 does not exist.")
    );
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "run-now", "--job-name", "no-such-job", "--fresh-run"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no Databricks job is named")
    );
    let mut cmd = syncctl(&server.url());
    cmd.env("DATABRICKS_TOKEN", "dapi-wrong").args([
        "dbx",
        "run-now",
        "--job-id",
        "42",
        "--fresh-run",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 3, "bad token");
    assert_eq!(r.error_class(), Some("auth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resent_with_a_token_but_not_without() {
    let (fake, server) = workspace().await;
    server.inject_on(Some(Method::POST), "/run-now", Fault::DropAfterHandling, 1);
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "42",
        "--no-wait",
        "--idempotency-key",
        "lost-1",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fake.runs().len(), 1);
    assert_eq!(server.requests_to(&Method::POST, "/run-now").len(), 2);

    server.inject_on(Some(Method::POST), "/run-now", Fault::DropAfterHandling, 1);
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "42",
        "--no-wait",
        "--fresh-run",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.error_class(), Some("transient"));
    assert!(
        r.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("a run may have started")
    );
    assert_eq!(server.requests_to(&Method::POST, "/run-now").len(), 3);
    assert_eq!(fake.runs().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_unknown_states_do_not_fail_the_run() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(46, "new-states").lifecycle(&["QUEUED", "HIBERNATING", "RUNNING"]));
    let server = FakeServer::start(fake.router()).await;
    fake.throttle("/runs/get", 1, 1);
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "46",
        "--poll-interval",
        "10ms",
        "--fresh-run",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snap("dbx_run_now_unknown_state", &r.result);
    assert!(r.stderr.contains("Retrying request"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_beats_a_token_in_the_json_body() {
    let (_fake, server) = workspace().await;
    let json_body = r#"{"idempotency_token":"from-json"}"#;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "44",
        "--no-wait",
        "--json",
        json_body,
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["idempotency_key"], "from-json");
    assert!(r.result["warnings"].as_array().unwrap().is_empty());
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        "44",
        "--no-wait",
        "--json",
        json_body,
    ])
    .args(["--idempotency-key", "from-key"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("was replaced")
    );
    let tokens: Vec<_> = server
        .requests_to(&Method::POST, "/run-now")
        .iter()
        .map(|r| r.json()["idempotency_token"].clone())
        .collect();
    assert_eq!(tokens, vec![json!("from-json"), json!("from-key")]);
}
