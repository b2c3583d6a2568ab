//! `syncctl dbx status`, `syncctl dbx cancel`, the doctor probe and the `--help` texts, end to
//! end against the stateful Databricks fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::volatile_fields;
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};

const PAT: &str = "dapi-e2e-token";

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

use crate::support::run_blocking as run;

fn snap(name: &str, result: &serde_json::Value) {
    let mut settings = insta::Settings::clone_current();
    for (selector, replacement) in volatile_fields() {
        settings.add_redaction(selector, replacement);
    }
    settings.bind(|| insta::assert_json_snapshot!(name, result));
}

async fn workspace() -> (DatabricksFake, FakeServer) {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(44, "streaming").lifecycle(&["RUNNING"; 100_000]))
        .job(
            FakeJob::new(43, "daily-report")
                .lifecycle(&["PENDING", "RUNNING"])
                .task("extract", TaskOutcome::Success)
                .task(
                    "report",
                    TaskOutcome::Failed("ValueError: empty partition".into()),
                ),
        );
    let server = FakeServer::start(fake.router()).await;
    (fake, server)
}

/// Starts a run of `job` without waiting and returns its id.
async fn start(server: &FakeServer, job: &str) -> String {
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "run-now",
        "--job-id",
        job,
        "--no-wait",
        "--fresh-run",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.result["data"]["run_id"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_active_runs_and_fails_for_failed_ones() {
    let (_fake, server) = workspace().await;
    let running = start(&server, "44").await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "status", "--run-id", &running]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["command"], "dbx status");
    assert_eq!(r.result["data"]["life_cycle_state"], "RUNNING");

    let failing = start(&server, "43").await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "status",
        "--run-id",
        &failing,
        "--wait",
        "--poll-interval",
        "10ms",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    snap("dbx_status_failed", &r.result);

    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "status", "--run-id", "424242"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Run 424242 does not exist.")
    );
    assert_eq!(r.result["data"]["run_id"], 424_242);

    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "status", "--run-id", &running, "--deadline", "1m"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only apply with --wait")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wait_timeout_leaves_the_run_alone() {
    let (fake, server) = workspace().await;
    let running = start(&server, "44").await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "status",
        "--run-id",
        &running,
        "--wait",
        "--poll-interval",
        "10ms",
    ])
    .args(["--wait-timeout", "200ms"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(!fake.runs()[0].cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_run_and_skips_one_that_already_ended() {
    let (fake, server) = workspace().await;
    let running = start(&server, "44").await;
    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "cancel",
        "--run-id",
        &running,
        "--poll-interval",
        "10ms",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snap("dbx_cancel_confirmed", &r.result);
    assert!(fake.runs()[0].cancelled && fake.runs()[0].terminal);
    assert_eq!(
        server.requests_to(&Method::POST, "/api/2.2/jobs/runs/cancel")[0].json(),
        serde_json::json!({"run_id": running.parse::<i64>().unwrap()})
    );

    let mut cmd = syncctl(&server.url());
    cmd.args([
        "dbx",
        "cancel",
        "--run-id",
        &running,
        "--noop-exit-code",
        "99",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 99, "{}", r.stderr);
    assert_eq!(r.status(), "skipped");
    assert!(
        r.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("nothing to cancel")
    );

    let other = start(&server, "44").await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["dbx", "cancel", "--run-id", &other, "--no-wait"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fake.runs()[1].cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_workspace_with_one_cheap_call() {
    let (_fake, server) = workspace().await;
    let mut cmd = syncctl(&server.url());
    cmd.args(["doctor", "--service", "databricks"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let svc = &r.result["data"]["services"][0];
    assert_eq!(svc["name"], "databricks");
    assert_eq!(svc["configured"], true);
    assert_eq!(svc["ok"], true);
    assert_eq!(svc["base_url"], server.url());
    assert_eq!(svc["auth"], "personal access token");
    assert_eq!(
        server.requests_to(&Method::GET, "/api/2.2/jobs/list")[0].query,
        "limit=1"
    );

    let mut cmd = syncctl(&server.url());
    cmd.env("DATABRICKS_TOKEN", "dapi-revoked")
        .args(["doctor", "--service", "databricks"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.result["data"]["services"][0]["ok"], false);

    let mut cmd = syncctl(&server.url());
    cmd.env_remove("DATABRICKS_HOST")
        .args(["doctor", "--service", "databricks", "--offline"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 2, "a token without a host is a config error");
    assert!(
        r.result["data"]["services"][0]["message"]
            .as_str()
            .unwrap()
            .contains("missing Databricks host")
    );
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("dbx_help", vec!["dbx", "--help"]),
        ("dbx_run_now_help", vec!["dbx", "run-now", "--help"]),
        ("dbx_status_help", vec!["dbx", "status", "--help"]),
        ("dbx_cancel_help", vec!["dbx", "cancel", "--help"]),
    ] {
        let out = Command::cargo_bin("syncctl")
            .unwrap()
            .env_clear()
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success());
        insta::assert_snapshot!(name, String::from_utf8(out.stdout).unwrap());
    }
}
