//! SIGTERM/SIGINT while `syncctl airbyte trigger` waits: the real binary is spawned, the
//! signal is sent once the fake has seen it poll, and the test checks that the fake received
//! the cancel, that the job ended cancelled, and that the result says `cancelled` with exit
//! 143 (130 for SIGINT). `--on-kill leave` sends no cancel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";
const HUBSPOT: &str = "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02";

fn fake() -> FakeAirbyte {
    // Airbyte cancels asynchronously: the job stays `running` for two more reads.
    FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_cancel_after_reads(2)
        .with_connection_script(
            STRIPE,
            "Stripe → Postgres",
            JobScript::new().running_forever(),
        )
        .with_connection_script(
            HUBSPOT,
            "HubSpot → Postgres",
            JobScript::new().running_forever(),
        )
}

fn spawn(server: &FakeServer, extra: &[&str]) -> Child {
    spawn_cmd(server, "trigger", extra)
}

fn spawn_cmd(server: &FakeServer, sub: &str, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .env("AIRBYTE_API_URL", server.url())
        .env("AIRBYTE_API_USERNAME", "airbyte")
        .env("AIRBYTE_API_PASSWORD", "password")
        .args(["airbyte", sub, "--poll-interval", "50ms", "--no-progress"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until every connection has a job that was polled at least once.
async fn wait_until_polled(server: &FakeServer, fake: &FakeAirbyte, conns: &[&str]) {
    for _ in 0..400 {
        let started = conns.iter().all(|c| !fake.jobs_for(c).is_empty());
        if started && server.requests_to(&Method::POST, "/jobs/get").len() >= conns.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the jobs were never polled: {:?}", server.requests().len());
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn finish(child: Child) -> CliRun {
    tokio::task::spawn_blocking(move || CliRun::from_output(&child.wait_with_output().unwrap()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_every_running_job_and_reports_cancelled() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let child = spawn(
        &server,
        &["--connection-id", STRIPE, "--connection-id", HUBSPOT],
    );
    wait_until_polled(&server, &fake, &[STRIPE, HUBSPOT]).await;
    signal(&child, "-TERM");
    let r = finish(child).await;
    assert_eq!((r.code, r.status()), (143, "cancelled"), "{}", r.stderr);
    assert_eq!(r.error_class(), Some("cancelled"));
    for (i, conn) in [STRIPE, HUBSPOT].into_iter().enumerate() {
        let job = &r.result["data"]["jobs"][i];
        assert_eq!(job["outcome"], "cancelled", "{job}");
        assert_eq!(job["status"], "cancelled", "Airbyte confirmed it: {job}");
        assert_eq!(job["cancel_confirmed"], true);
        let seen = fake.jobs_for(conn).remove(0);
        assert_eq!((seen.status.as_str(), seen.cancels), ("cancelled", 1));
    }
    assert_eq!(server.requests_to(&Method::POST, "/jobs/cancel").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_130() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let child = spawn(&server, &["--connection-id", STRIPE]);
    wait_until_polled(&server, &fake, &[STRIPE]).await;
    signal(&child, "-INT");
    let r = finish(child).await;
    assert_eq!((r.code, r.status()), (130, "cancelled"), "{}", r.stderr);
    assert_eq!(fake.jobs_for(STRIPE)[0].status, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kill_leave_reports_without_cancelling() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let child = spawn(&server, &["--connection-id", STRIPE, "--on-kill", "leave"]);
    wait_until_polled(&server, &fake, &[STRIPE]).await;
    signal(&child, "-TERM");
    let r = finish(child).await;
    assert_eq!((r.code, r.status()), (143, "cancelled"), "{}", r.stderr);
    let job = &r.result["data"]["jobs"][0];
    assert_eq!(
        (job["outcome"].as_str(), job["status"].as_str()),
        (Some("left_running"), Some("running"))
    );
    let seen = fake.jobs_for(STRIPE).remove(0);
    assert_eq!((seen.status.as_str(), seen.cancels), ("running", 0));
    assert!(server.requests_to(&Method::POST, "/jobs/cancel").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_cancel_is_bounded_by_kill_grace() {
    // The job never acknowledges the cancel; syncctl stops waiting after --kill-grace.
    let fake = fake().with_cancel_after_reads(u32::MAX);
    let server = FakeServer::start(fake.router()).await;
    let child = spawn(
        &server,
        &["--connection-id", STRIPE, "--kill-grace", "400ms"],
    );
    wait_until_polled(&server, &fake, &[STRIPE]).await;
    signal(&child, "-TERM");
    let r = finish(child).await;
    assert_eq!((r.code, r.status()), (143, "cancelled"), "{}", r.stderr);
    let job = &r.result["data"]["jobs"][0];
    assert_eq!(
        (
            job["cancel_requested"].as_bool(),
            job["cancel_confirmed"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("had not confirmed"),
        "{}",
        r.result
    );
    assert_eq!(fake.jobs_for(STRIPE)[0].cancels, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_watcher_leaves_the_job_alone_by_default() {
    let fake = fake();
    let server = FakeServer::start(fake.router()).await;
    let id = fake.start_job(STRIPE, JobScript::new().running_forever());
    let child = spawn_cmd(&server, "status", &["--job-id", &id.to_string(), "--wait"]);
    wait_until_polled(&server, &fake, &[STRIPE]).await;
    signal(&child, "-TERM");
    let r = finish(child).await;
    assert_eq!((r.code, r.status()), (143, "cancelled"), "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["outcome"], "left_running");
    assert_eq!(fake.job(id).unwrap().cancels, 0);
}
