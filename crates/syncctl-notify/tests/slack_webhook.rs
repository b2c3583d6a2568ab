//! The Slack sender against the testkit's stateful webhook fake: the Block Kit JSON, 429 and
//! 500 handling, and no secret in any error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::Method;
use secrecy::SecretString;
use syncctl_core::Status;
use syncctl_notify::{
    Alert, AlertSettings, Link, MetricsSettings, SlackSender, SlackSettings, deliver,
};
use syncctl_testkit::fakes::slack::SlackFake;
use syncctl_testkit::{FakeServer, Fault};

const PATH: &str = "/services/T01ABCDEF/B02GHIJKL/xq7Secretwebhooktoken";

async fn webhook() -> (FakeServer, SlackFake) {
    let fake = SlackFake::new(PATH);
    (FakeServer::start(fake.router()).await, fake)
}

fn settings(server: &FakeServer, path: &str) -> SlackSettings {
    SlackSettings {
        webhook_url: SecretString::from(format!("{}{path}", server.url())),
    }
}

fn failed_alert() -> Alert {
    let mut a = Alert::new("syncctl dbx run-now failed", Status::Failed);
    a.command = Some("dbx run-now".into());
    a.message = Some("Databricks run 1100 ended FAILED: task report failed".into());
    a.error_class = Some("remote_failed".into());
    a.facts = vec![
        ("Command".into(), "dbx run-now".into()),
        ("Status".into(), "failed".into()),
        ("Failed tasks".into(), "report".into()),
    ];
    a.run_id = Some("7d1c".into());
    a.context
        .insert("airflow_dag_id".into(), "nightly_etl".into());
    a.links.push(Link {
        label: "Databricks run".into(),
        url: "https://fake-workspace.cloud.databricks.com/#job/43/run/1100".into(),
    });
    a
}

#[tokio::test]
async fn the_message_is_block_kit_with_every_part() {
    let (server, fake) = webhook().await;
    let attempts = SlackSender::new(&settings(&server, PATH))
        .unwrap()
        .send(&failed_alert())
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains("syncctl dbx run-now failed")
    );
    let blocks = m["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["header", "section", "section", "context", "actions"]
    );
    assert_eq!(blocks[0]["text"]["text"], "syncctl dbx run-now failed");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Error (remote_failed)*\nDatabricks run 1100")
    );
    assert_eq!(blocks[2]["fields"][2]["text"], "*Failed tasks*\nreport");
    let context = blocks[3]["elements"][0]["text"].as_str().unwrap();
    assert!(context.contains("run id `7d1c`") && context.contains("airflow_dag_id=nightly_etl"));
    assert_eq!(
        blocks[4]["elements"][0]["url"],
        "https://fake-workspace.cloud.databricks.com/#job/43/run/1100"
    );
    let req = &server.requests_to(&Method::POST, PATH)[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_and_then_delivered() {
    let (server, fake) = webhook().await;
    server.inject_on(Some(Method::POST), PATH, Fault::rate_limited(1), 1);
    let attempts = SlackSender::new(&settings(&server, PATH))
        .unwrap()
        .send(&failed_alert())
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(server.requests_to(&Method::POST, PATH).len(), 2);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_then_reported_without_the_webhook_path() {
    let (server, fake) = webhook().await;
    server.inject_on(Some(Method::POST), PATH, Fault::status(500), 10);
    let err = SlackSender::new(&settings(&server, PATH))
        .unwrap()
        .send(&failed_alert())
        .await
        .unwrap_err();
    assert_eq!(
        server.requests_to(&Method::POST, PATH).len(),
        3,
        "1 try + 2 retries"
    );
    assert!(fake.messages().is_empty());
    let text = err.to_string();
    assert!(
        text.starts_with("Slack webhook answered HTTP 500"),
        "{text}"
    );
    assert!(
        !text.contains("xq7Secret") && !text.contains("/services/"),
        "{text}"
    );
}

#[tokio::test]
async fn a_revoked_webhook_is_not_retried() {
    let (server, _fake) = webhook().await;
    let wrong = "/services/T01ABCDEF/B02GHIJKL/revokedtoken";
    let err = SlackSender::new(&settings(&server, wrong))
        .unwrap()
        .send(&failed_alert())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Slack webhook answered HTTP 404: no_service"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn delivery_becomes_a_warning_and_respects_the_deadline() {
    let (server, _fake) = webhook().await;
    // Slower than the deadline: the alert is abandoned with a warning, not waited for.
    server.inject_on(
        Some(Method::POST),
        PATH,
        Fault::Delay(Duration::from_secs(3)),
        5,
    );
    let alerts = AlertSettings {
        slack: Some(settings(&server, PATH)),
        ..AlertSettings::default()
    };
    let started = std::time::Instant::now();
    let report = deliver(
        Some(&failed_alert()),
        &alerts,
        None,
        &MetricsSettings::default(),
        Duration::from_millis(500),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(report.all_failed());
    assert_eq!(
        report.warnings(),
        ["Slack alert not delivered within 0.5 s; gave up so the result is not delayed"]
    );
}
