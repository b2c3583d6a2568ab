//! Alerts and metrics end to end through the one shared path: the real binary against the
//! Databricks fake, the Slack webhook fake, a real SMTP server (aiosmtpd, STARTTLS + AUTH) and
//! a real Prometheus Pushgateway, scraped after failing and succeeding runs.

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};
use syncctl_testkit::fakes::slack::SlackFake;
use syncctl_testkit::receivers::{PushgatewayServer, SmtpMode, SmtpServer};
use syncctl_testkit::{FakeServer, Fault};

const PAT: &str = "dapi-alerts-e2e";
const HOOK: &str = "/services/T0ALERTS/B0ALERTS/hookSecret9f8e7d";
const SMTP_PASSWORD: &str = "Smtp-e2e-Secret-77";

struct Receivers {
    _dbx: DatabricksFake,
    dbx: FakeServer,
    slack: SlackFake,
    slack_server: FakeServer,
}

async fn receivers() -> Receivers {
    let dbx = DatabricksFake::new().with_pat(PAT).job(
        FakeJob::new(45, "flaky").task("load", TaskOutcome::FailsOnce("KeyError: 'date'".into())),
    );
    let dbx_server = FakeServer::start(dbx.router()).await;
    let slack = SlackFake::new(HOOK);
    let slack_server = FakeServer::start(slack.router()).await;
    Receivers {
        _dbx: dbx,
        dbx: dbx_server,
        slack,
        slack_server,
    }
}

fn syncctl(r: &Receivers) -> Command {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("NO_COLOR", "1")
        .env("DATABRICKS_HOST", r.dbx.url())
        .env("DATABRICKS_TOKEN", PAT)
        .env("SYNCCTL_HTTP_MAX_RETRIES", "1")
        .env("SYNCCTL_HTTP_RETRY_BASE", "10ms")
        .env("ENABLE_SLACK", "true")
        .env(
            "SLACK_WEBHOOK_URL",
            format!("{}{HOOK}", r.slack_server.url()),
        )
        .env("AIRFLOW_CTX_DAG_ID", "nightly_etl")
        .env("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2026-01-01")
        .env("AIRFLOW_CTX_TASK_ID", "load")
        .env("AIRFLOW_CTX_TRY_NUMBER", "1")
        .env(
            "AIRFLOW__WEBSERVER__BASE_URL",
            "https://airflow.example.com",
        );
    cmd
}

/// The SMTP settings as an External Secrets env file would mount them.
fn smtp_env_file(dir: &std::path::Path, smtp: &SmtpServer) -> std::path::PathBuf {
    let path = dir.join("alerts.env");
    std::fs::write(
        &path,
        format!(
            "ENABLE_EMAIL=true\nALERT_EMAILS=ops@example.com,data@example.com\nSMTP_HOST=localhost\n\
             SMTP_PORT={}\nSMTP_USERNAME=alerts\nSMTP_PASSWORD={SMTP_PASSWORD}\n\
             SMTP_FROM=syncctl <alerts@example.com>\nSMTP_TLS=starttls\nSMTP_CA_FILE={}\n",
            smtp.port,
            smtp.ca_file.display()
        ),
    )
    .unwrap();
    path
}

use crate::support::run_blocking as run;

/// The value of the sample whose line starts with `prefix` (name and labels up to a label).
fn sample(scrape: &str, name: &str, must_contain: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| must_contain.iter().all(|c| l.contains(c)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn assert_no_secrets(r: &CliRun) {
    crate::support::assert_output_has_no_secrets(r, &["hookSecret9f8e7d", HOOK, SMTP_PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_alerts_everywhere_and_metrics_keep_the_last_success() {
    let Some(gateway) = PushgatewayServer::start() else {
        return;
    };
    let Some(smtp) = SmtpServer::start(SmtpMode::StartTls, Some(("alerts", SMTP_PASSWORD))) else {
        return;
    };
    let r = receivers().await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = smtp_env_file(dir.path(), &smtp);
    let metrics_file = dir.path().join("syncctl_flaky.prom");
    let group = [
        "command=\"dbx run-now\"",
        "job=\"syncctl\"",
        "name=\"flaky\"",
    ];
    let base = |extra: &[&str]| {
        let mut cmd = syncctl(&r);
        cmd.args([
            "dbx",
            "run-now",
            "--job-name",
            "flaky",
            "--poll-interval",
            "10ms",
        ])
        .args(["--pushgateway", &gateway.url])
        .arg("--metrics-file")
        .arg(&metrics_file)
        .arg("--env-file")
        .arg(&env_file)
        .args(extra);
        cmd
    };

    // 1. The job fails: exit 1 as always, Slack and both mailboxes alerted, status 0 pushed.
    let first = run(base(&["--idempotency-key", "k1", "-vv"])).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert_eq!(
        first.result["warnings"],
        serde_json::json!([]),
        "{}",
        first.stderr
    );
    assert_no_secrets(&first);
    let msgs = r.slack.messages();
    assert_eq!(msgs.len(), 1);
    let blocks = msgs[0]["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["text"]["text"], "syncctl dbx run-now failed");
    let all = msgs[0].to_string();
    assert!(all.contains("KeyError"), "{all}");
    assert!(all.contains("airflow_dag_id=nightly_etl"), "{all}");
    assert!(
        all.contains(first.result["run_id"].as_str().unwrap()),
        "{all}"
    );
    assert!(
        all.contains("https://fake-workspace.cloud.databricks.com/#job/45/run/"),
        "{all}"
    );
    assert!(
        all.contains("https://airflow.example.com/dags/nightly_etl/grid"),
        "{all}"
    );
    let mails = smtp.received();
    assert_eq!(mails.len(), 2);
    assert!(
        mails
            .iter()
            .all(|m| m.tls && m.login.as_deref() == Some("alerts"))
    );
    assert!(mails[0].raw.contains("Subject: syncctl dbx run-now failed"));
    let scrape = gateway.scrape();
    assert_eq!(
        sample(&scrape, "syncctl_run_status", &group),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "syncctl_run_exit_code", &group), Some(1.0));
    assert_eq!(
        sample(&scrape, "syncctl_last_success_timestamp_seconds", &group),
        None
    );
    assert!(
        sample(
            &scrape,
            "syncctl_api_requests_total",
            &["service=\"databricks\"", "status=\"200\""]
        )
        .is_some_and(|v| v >= 2.0),
        "{scrape}"
    );

    // 2. The repair succeeds: no alert (on-failure), status 1 and a last-success time pushed.
    let second = run(base(&["--idempotency-key", "k1", "--rerun-failed"])).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(r.slack.messages().len(), 1);
    assert_eq!(smtp.received().len(), 2);
    let scrape = gateway.scrape();
    assert_eq!(sample(&scrape, "syncctl_run_status", &group), Some(1.0));
    let success = sample(&scrape, "syncctl_last_success_timestamp_seconds", &group)
        .expect("last success pushed");
    let finished =
        chrono::DateTime::parse_from_rfc3339(second.result["finished_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0;
    assert!((success - finished).abs() < 0.01, "{success} vs {finished}");

    // 3. A later run fails (token revoked): status 0, the last success survives.
    let mut third = base(&["--idempotency-key", "k3"]);
    third.env("DATABRICKS_TOKEN", "dapi-revoked");
    let third = run(third).await;
    assert_eq!(third.code, 3, "{}", third.stderr);
    assert_eq!(r.slack.messages().len(), 2);
    assert_eq!(smtp.received().len(), 4);
    let scrape = gateway.scrape();
    assert_eq!(sample(&scrape, "syncctl_run_status", &group), Some(0.0));
    assert_eq!(sample(&scrape, "syncctl_run_exit_code", &group), Some(3.0));
    assert_eq!(
        sample(&scrape, "syncctl_last_success_timestamp_seconds", &group),
        Some(success),
        "{scrape}"
    );
    let text = std::fs::read_to_string(&metrics_file).unwrap();
    assert!(text.contains(&format!(
        "syncctl_last_success_timestamp_seconds{{command=\"dbx run-now\",name=\"flaky\"}} {success}"
    )), "{text}");
    assert!(text.contains("syncctl_run_status{command=\"dbx run-now\",name=\"flaky\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_alerts_are_warnings_and_never_change_the_exit_code() {
    let r = receivers().await;
    r.slack_server
        .inject_on(Some(Method::POST), HOOK, Fault::status(500), 10);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = syncctl(&r);
    cmd.args([
        "dbx",
        "run-now",
        "--job-name",
        "flaky",
        "--poll-interval",
        "10ms",
        "-vv",
    ])
    .args(["--idempotency-key", "w1", "--enable-email", "true"])
    .args([
        "--alert-emails",
        "ops@example.com",
        "--smtp-host",
        "127.0.0.1",
    ])
    .args([
        "--smtp-port",
        &closed_port.to_string(),
        "--smtp-tls",
        "none",
    ])
    .args([
        "--smtp-from",
        "alerts@example.com",
        "--smtp-username",
        "alerts",
    ])
    .args(["--smtp-password", SMTP_PASSWORD])
    .args(["--pushgateway", &format!("http://127.0.0.1:{closed_port}")]);
    let out = run(cmd).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.status(), "failed");
    assert_eq!(out.error_class(), Some("remote_failed"));
    let warnings: Vec<&str> = out.result["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("Slack webhook answered HTTP 500")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("email to ops@example.com not sent")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("metrics not pushed to the Pushgateway")),
        "{warnings:?}"
    );
    assert_eq!(r.slack_server.requests_to(&Method::POST, HOOK).len(), 3);
    assert_no_secrets(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_sends_a_failed_tasks_result_on_demand() {
    let r = receivers().await;
    let dir = tempfile::tempdir().unwrap();
    // The failed task's result, as KubernetesPodOperator's XCom file or a captured stdout.
    let mut failed = syncctl(&r);
    failed
        .args([
            "dbx",
            "run-now",
            "--job-name",
            "flaky",
            "--poll-interval",
            "10ms",
        ])
        .args(["--idempotency-key", "n1", "--notify", "never"]);
    let failed = run(failed).await;
    assert_eq!(failed.code, 1);
    assert!(
        r.slack.messages().is_empty(),
        "--notify never sends nothing"
    );
    let result_file = dir.path().join("return.json");
    std::fs::write(
        &result_file,
        format!("some log line\n{}\n", failed.stdout.trim()),
    )
    .unwrap();

    let mut cmd = syncctl(&r);
    cmd.args(["notify", "--from-result"])
        .arg(&result_file)
        .args(["--message", "load failed; see the Airflow log"])
        .args(["--link", "Runbook=https://wiki.example.com/runbooks/load"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result["data"]["delivered"], 1);
    let msg = r.slack.messages()[0].to_string();
    assert!(msg.contains("syncctl dbx run-now failed"), "{msg}");
    assert!(msg.contains("load failed; see the Airflow log"), "{msg}");
    assert!(msg.contains("remote_failed: Databricks run"), "{msg}");
    assert!(
        msg.contains("https://wiki.example.com/runbooks/load"),
        "{msg}"
    );
    assert!(
        msg.contains(failed.result["run_id"].as_str().unwrap()),
        "{msg}"
    );

    let mut bare = syncctl(&r);
    bare.args([
        "notify",
        "--status",
        "failed",
        "--title",
        "nightly_etl failed",
    ])
    .args(["--message", "task load exited 1"]);
    let out = run(bare).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let blocks = r.slack.messages()[1]["blocks"].clone();
    assert_eq!(blocks[0]["text"]["text"], "nightly_etl failed");
    assert_eq!(blocks[1]["text"]["text"], "*Message*\ntask load exited 1");

    let mut nothing = Command::cargo_bin("syncctl").unwrap();
    nothing.env_clear().args(["notify", "--title", "x"]);
    let out = run(nothing).await;
    assert_eq!(out.code, 2);
    assert!(
        out.result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no alert channel is configured")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_alert_setup_is_refused_before_the_command_runs() {
    let r = receivers().await;
    let mut cmd = syncctl(&r);
    cmd.env("ENABLE_EMAIL", "true")
        .env("ALERT_EMAILS", "ops@example.com")
        .args([
            "dbx",
            "run-now",
            "--job-name",
            "flaky",
            "--idempotency-key",
            "b1",
        ]);
    let out = run(cmd).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.result["error"]["message"],
        "email is enabled but SMTP_HOST (--smtp-host) is not set"
    );
    assert!(
        r.dbx.requests().is_empty(),
        "nothing was sent to Databricks"
    );
}
