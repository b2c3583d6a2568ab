//! `syncctl airbyte` end to end: the real binary against the stateful fake Airbyte, both
//! APIs, every outcome and its exit code, reruns with an idempotency key, and bad input that
//! sends nothing. Polls are 20 ms apart and the fake's clock advances per poll.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};
use syncctl_testkit::{FakeServer, Fault};

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";
const HUBSPOT: &str = "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02";
const SALESFORCE: &str = "a3f9c2d4-7e1b-4f6a-b5c8-1d2e3f4a5b03";

struct Env {
    fake: FakeAirbyte,
    server: FakeServer,
    vars: Vec<(String, String)>,
}

impl Env {
    async fn config(fake: FakeAirbyte) -> Self {
        let server = FakeServer::start(fake.router()).await;
        let vars = vec![
            ("AIRBYTE_API_URL".into(), server.url()),
            ("AIRBYTE_API_USERNAME".into(), "airbyte".into()),
            ("AIRBYTE_API_PASSWORD".into(), "password".into()),
        ];
        Self { fake, server, vars }
    }

    async fn public(fake: FakeAirbyte) -> Self {
        let server = FakeServer::start(fake.router()).await;
        let vars = vec![
            ("AIRBYTE_API_URL".into(), server.url()),
            ("AIRBYTE_CLIENT_ID".into(), "cid".into()),
            ("AIRBYTE_CLIENT_SECRET".into(), "csecret".into()),
        ];
        Self { fake, server, vars }
    }

    fn set(&mut self, k: &str, v: &str) {
        self.vars.retain(|(n, _)| n != k);
        self.vars.push((k.into(), v.into()));
    }

    /// Runs `syncctl <args>` with fast polls and retries.
    async fn run(&self, args: &[&str]) -> CliRun {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let vars = self.vars.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::cargo_bin("syncctl").unwrap();
            cmd.env_clear()
                .env("SYNCCTL_HTTP_RETRY_BASE", "10ms")
                .args(&args)
                .arg("--no-progress");
            if args.first().is_some_and(|a| a == "airbyte")
                && args.get(1).is_some_and(|a| a == "trigger" || a == "status")
                && !args.iter().any(|a| a == "--poll-interval")
            {
                cmd.args(["--poll-interval", "20ms"]);
            }
            for (k, v) in vars {
                cmd.env(k, v);
            }
            CliRun::from_output(&cmd.output().unwrap())
        })
        .await
        .unwrap()
    }
}

fn fake() -> FakeAirbyte {
    FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_client("cid", "csecret")
        .with_connection(STRIPE, "Stripe → Postgres")
        .with_connection(HUBSPOT, "HubSpot → Postgres")
        .with_connection(SALESFORCE, "Salesforce → Postgres")
}

fn snapshot(name: &str, r: &CliRun) {
    insta::assert_json_snapshot!(name, r.result, {
        ".run_id" => "[run_id]",
        ".started_at" => "[timestamp]",
        ".finished_at" => "[timestamp]",
        ".duration_ms" => "[duration]",
        ".data.jobs[].started_at" => "[timestamp]",
        ".data.jobs[].duration_ms" => "[duration]",
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_the_config_api_succeeds() {
    let env = Env::config(fake()).await;
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("airbyte_trigger_config_succeeded", &r);
    let sync = &env
        .server
        .requests_to(&Method::POST, "/api/v1/connections/sync")[0];
    assert_eq!(sync.json()["connectionId"], STRIPE);
    assert!(sync.header("authorization").unwrap().starts_with("Basic "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_the_public_api_by_connection_name_in_env() {
    let mut env = Env::public(fake()).await;
    env.set("AIRBYTE_STRIPE_CONNECTION_ID", STRIPE);
    let r = env
        .run(&["airbyte", "trigger", "--connection", "stripe"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("airbyte_trigger_public_succeeded", &r);
    assert_eq!(env.fake.tokens_issued(), 1);
    assert_eq!(
        env.server
            .requests_to(&Method::POST, "/api/public/v1/jobs")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_exits_1_with_the_reason() {
    let f = fake();
    f.set_script(
        HUBSPOT,
        JobScript::new()
            .running(1)
            .failed("HubSpot returned 401: the private app token was revoked"),
    );
    let env = Env::config(f).await;
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", HUBSPOT])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    snapshot("airbyte_trigger_failed", &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_connections_run_in_parallel_and_one_failure_fails_the_task() {
    let f = fake();
    f.set_script(
        SALESFORCE,
        JobScript::new()
            .running(2)
            .failed("Salesforce session expired"),
    );
    let env = Env::config(f).await;
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--connection-id",
            HUBSPOT,
            "--connection-id",
            SALESFORCE,
            // Long enough that every trigger has answered before the first poll.
            "--poll-interval",
            "300ms",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.error_class(), Some("remote_failed"));
    let d = &r.result["data"];
    assert_eq!(
        (d["succeeded"].as_u64(), d["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Salesforce session expired") && msg.contains(SALESFORCE),
        "{msg}"
    );
    // Parallel: every sync was started before any job was polled.
    let reqs = env.server.requests();
    let last_sync = reqs
        .iter()
        .rposition(|q| q.path.ends_with("/connections/sync"))
        .unwrap();
    let first_poll = reqs
        .iter()
        .position(|q| q.path.ends_with("/jobs/get"))
        .unwrap();
    assert!(
        last_sync < first_poll,
        "syncs were started one after another"
    );
    for c in [STRIPE, HUBSPOT, SALESFORCE] {
        assert_eq!(env.fake.sync_requests(c), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_running_attach_skip_and_fail() {
    let env = Env::public(fake()).await;
    let running = env
        .fake
        .start_job(STRIPE, JobScript::new().running(6).succeeded(42, 4200));

    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--if-running",
            "fail",
        ])
        .await;
    assert_eq!((r.code, r.status()), (6, "failed"), "{}", r.stderr);
    assert_eq!(r.error_class(), Some("conflict"));

    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--if-running",
            "skip",
        ])
        .await;
    assert_eq!((r.code, r.status()), (0, "skipped"), "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["job_id"], running);
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--if-running",
            "skip",
            "--noop-exit-code",
            "99",
        ])
        .await;
    assert_eq!(r.code, 99);

    let r = env
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("airbyte_trigger_attached", &r);
    assert_eq!(
        env.fake.jobs_for(STRIPE).len(),
        1,
        "no second sync was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_incomplete_and_unknown_states_are_waited_through() {
    let f = fake();
    f.set_script(
        STRIPE,
        JobScript::new()
            .queued(2)
            .running(1)
            .incomplete("Stripe rate limit")
            .other("throttled", 1)
            .running(1)
            .succeeded(7, 700),
    );
    let env = Env::config(f).await;
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = &r.result["data"]["jobs"][0];
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["records_synced"], 7);
    let warnings = r.result["warnings"].to_string();
    assert!(
        warnings.contains("throttled") && warnings.contains("incomplete"),
        "{warnings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_leaves_the_job_and_deadline_cancels_it() {
    let f = fake();
    f.set_script(STRIPE, JobScript::new().running_forever());
    f.set_script(HUBSPOT, JobScript::new().running_forever());
    let env = Env::config(f).await;
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--wait-timeout",
            "300ms",
        ])
        .await;
    assert_eq!((r.code, r.status()), (5, "timed_out"), "{}", r.stderr);
    let job = &r.result["data"]["jobs"][0];
    assert_eq!(
        (job["outcome"].as_str(), job["status"].as_str()),
        (Some("timed_out"), Some("running"))
    );
    assert_eq!(job["cancel_requested"], false);
    let id = job["job_id"].as_i64().unwrap();
    assert_eq!(env.fake.job(id).unwrap().status, "running");

    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            HUBSPOT,
            "--deadline",
            "300ms",
        ])
        .await;
    assert_eq!((r.code, r.status()), (5, "timed_out"), "{}", r.stderr);
    snapshot("airbyte_trigger_deadline", &r);
    let id = r.result["data"]["jobs"][0]["job_id"].as_i64().unwrap();
    assert_eq!(env.fake.job(id).unwrap().status, "cancelled");
    assert_eq!(env.fake.job(id).unwrap().cancels, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_airflow_retry_reattaches_instead_of_starting_a_second_sync() {
    let state = tempfile::tempdir().unwrap();
    let f = fake();
    f.set_script(HUBSPOT, JobScript::new().running(3).succeeded(11, 1100));
    let mut env = Env::config(f).await;
    env.set("SYNCCTL_STATE_DIR", state.path().to_str().unwrap());
    env.set("AIRFLOW_CTX_DAG_ID", "crm_sync");
    env.set(
        "AIRFLOW_CTX_DAG_RUN_ID",
        "scheduled__2026-01-02T00:00:00+00:00",
    );
    env.set("AIRFLOW_CTX_TASK_ID", "airbyte_hubspot");
    env.set("AIRFLOW_CTX_TRY_NUMBER", "1");
    // Try 1 starts the sync and is lost (here: --no-wait stands in for the dead worker).
    let r1 = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            HUBSPOT,
            "--no-wait",
        ])
        .await;
    assert_eq!(r1.code, 0, "{}", r1.stderr);
    assert_eq!(r1.result["data"]["jobs"][0]["outcome"], "triggered");
    let job_id = r1.result["data"]["jobs"][0]["job_id"].as_i64().unwrap();
    // Try 2 finds it and waits on it.
    env.set("AIRFLOW_CTX_TRY_NUMBER", "2");
    let r2 = env
        .run(&["airbyte", "trigger", "--connection-id", HUBSPOT])
        .await;
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    let j = &r2.result["data"]["jobs"][0];
    assert_eq!(
        (j["job_id"].as_i64(), j["attached"].as_bool()),
        (Some(job_id), Some(true))
    );
    assert_eq!(
        r2.result["idempotency_key"],
        "airflow:crm_sync:scheduled__2026-01-02T00:00:00+00:00:airbyte_hubspot"
    );
    assert_eq!(
        j["idempotency_key"],
        format!("airflow:crm_sync:scheduled__2026-01-02T00:00:00+00:00:airbyte_hubspot#{HUBSPOT}")
    );
    // Try 3 (a clear after success) reports the finished job; --force syncs again.
    let r3 = env
        .run(&["airbyte", "trigger", "--connection-id", HUBSPOT])
        .await;
    assert_eq!(r3.result["data"]["jobs"][0]["reused"], true);
    assert_eq!(env.fake.sync_requests(HUBSPOT), 1);
    let r4 = env
        .run(&["airbyte", "trigger", "--connection-id", HUBSPOT, "--force"])
        .await;
    assert_eq!(r4.code, 0);
    assert_eq!(env.fake.sync_requests(HUBSPOT), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_trigger_answer_is_found_not_resent() {
    let env = Env::public(fake()).await;
    env.server.inject_on(
        Some(Method::POST),
        "/api/public/v1/jobs",
        Fault::DropAfterHandling,
        1,
    );
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", SALESFORCE])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["reconciled"], true);
    assert_eq!(env.fake.sync_requests(SALESFORCE), 1);
    assert_eq!(env.fake.jobs_for(SALESFORCE).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_looked_up_by_exact_name() {
    let env = Env::public(fake()).await;
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-name",
            "Salesforce → Postgres",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["connection_id"], SALESFORCE);
    assert_eq!(
        r.result["data"]["jobs"][0]["connection"],
        "Salesforce → Postgres"
    );

    let r = env
        .run(&["airbyte", "trigger", "--connection-name", "Stripe"])
        .await;
    assert_eq!(
        (r.code, r.error_class()),
        (2, Some("config")),
        "{}",
        r.stderr
    );
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no Airbyte connection is named \"Stripe\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_sent() {
    let mut env = Env::config(fake()).await;
    env.set("AIRBYTE_HUBSPOT_CONNECTION_ID", "not-a-uuid");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["airbyte", "trigger"], "name at least one connection"),
        (
            vec!["airbyte", "trigger", "--connection-id", "stripe"],
            "not an Airbyte connection id",
        ),
        (
            vec!["airbyte", "trigger", "--connection", "stripe"],
            "AIRBYTE_STRIPE_CONNECTION_ID is not set",
        ),
        (
            vec!["airbyte", "trigger", "--connection", "hubspot"],
            "AIRBYTE_HUBSPOT_CONNECTION_ID is \"not-a-uuid\"",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--connection-id",
                STRIPE,
            ],
            "given twice",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--kill-grace",
                "30s",
            ],
            "--kill-grace",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--poll-interval",
                "0s",
            ],
            "--poll-interval",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--no-wait",
                "--deadline",
                "1m",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--wait-timeout",
                "soon",
            ],
            "invalid duration",
        ),
        (
            vec![
                "airbyte",
                "trigger",
                "--connection-id",
                STRIPE,
                "--api",
                "graphql",
            ],
            "invalid value",
        ),
        (
            vec!["airbyte", "status", "--job-id", "0"],
            "0 is not in 1..",
        ),
        (
            vec!["airbyte", "status", "--job-id", "7", "--deadline", "1m"],
            "need --wait",
        ),
    ];
    for (args, needle) in cases {
        let r = env.run(&args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{args:?}: {msg}");
    }
    let mut env2 = Env::config(fake()).await;
    env2.vars.retain(|(k, _)| k != "AIRBYTE_API_URL");
    let r = env2
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!((r.code, r.error_class()), (2, Some("config")));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AIRBYTE_API_URL")
    );
    assert!(
        env.server.requests().is_empty(),
        "nothing may be sent for bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_exit_3() {
    let mut env = Env::config(fake()).await;
    env.set("AIRBYTE_API_PASSWORD", "wrong-password");
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!((r.code, r.error_class()), (3, Some("auth")), "{}", r.stderr);
    let mut env = Env::public(fake()).await;
    env.set("AIRBYTE_CLIENT_SECRET", "wrong-secret");
    let r = env
        .run(&["airbyte", "trigger", "--connection-id", STRIPE])
        .await;
    assert_eq!((r.code, r.error_class()), (3, Some("auth")), "{}", r.stderr);
    assert!(env.fake.jobs_for(STRIPE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_during_a_long_wait() {
    let f = fake().with_tokens_valid_for(Duration::from_millis(300));
    f.set_script(
        STRIPE,
        JobScript::new()
            .running_for(Duration::from_millis(1200))
            .succeeded(5, 5),
    );
    let env = Env::public(f).await;
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--poll-interval",
            "100ms",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        env.fake.tokens_issued() >= 2,
        "{}",
        env.fake.tokens_issued()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_cancel_commands() {
    let env = Env::config(fake().with_cancel_after_reads(2)).await;
    let done = env
        .fake
        .start_job(STRIPE, JobScript::new().succeeded(3, 30));
    let r = env
        .run(&["airbyte", "status", "--job-id", &done.to_string()])
        .await;
    assert_eq!((r.code, r.status()), (0, "succeeded"), "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["status"], "succeeded");

    let failed = env.fake.start_job(HUBSPOT, JobScript::new().failed("boom"));
    let r = env
        .run(&["airbyte", "status", "--job-id", &failed.to_string()])
        .await;
    assert_eq!((r.code, r.error_class()), (1, Some("remote_failed")));

    let running = env
        .fake
        .start_job(SALESFORCE, JobScript::new().running(3).succeeded(1, 1));
    let r = env
        .run(&["airbyte", "status", "--job-id", &running.to_string()])
        .await;
    assert_eq!(
        (r.code, r.result["data"]["jobs"][0]["outcome"].as_str()),
        (0, Some("left_running"))
    );
    let r = env
        .run(&[
            "airbyte",
            "status",
            "--job-id",
            &running.to_string(),
            "--wait",
        ])
        .await;
    assert_eq!(
        (r.code, r.result["data"]["jobs"][0]["status"].as_str()),
        (0, Some("succeeded"))
    );

    let r = env.run(&["airbyte", "status", "--job-id", "999999"]).await;
    assert_eq!(
        (r.code, r.error_class()),
        (2, Some("config")),
        "{}",
        r.stderr
    );

    let forever = env
        .fake
        .start_job(SALESFORCE, JobScript::new().running_forever());
    let r = env
        .run(&[
            "airbyte",
            "cancel",
            "--job-id",
            &forever.to_string(),
            "--poll-interval",
            "20ms",
        ])
        .await;
    assert_eq!((r.code, r.status()), (0, "succeeded"), "{}", r.stderr);
    snapshot("airbyte_cancel_confirmed", &r);
    let r = env
        .run(&["airbyte", "cancel", "--job-id", &forever.to_string()])
        .await;
    assert_eq!((r.code, r.status()), (0, "skipped"), "already cancelled");
    assert_eq!(env.fake.job(forever).unwrap().cancels, 1);

    // --no-wait only sends the cancel.
    let other = env
        .fake
        .start_job(STRIPE, JobScript::new().running_forever());
    let r = env
        .run(&[
            "airbyte",
            "cancel",
            "--job-id",
            &other.to_string(),
            "--no-wait",
        ])
        .await;
    assert_eq!((r.code, r.status()), (0, "succeeded"), "{}", r.stderr);
    assert_eq!(r.result["data"]["jobs"][0]["cancel_requested"], true);
    assert_eq!(r.result["data"]["jobs"][0]["status"], "running");
    assert_eq!(env.fake.job(other).unwrap().cancels, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kestra_mode_reports_records_as_metrics() {
    let env = Env::config(fake()).await;
    let r = env
        .run(&[
            "airbyte",
            "trigger",
            "--connection-id",
            STRIPE,
            "--output",
            "kestra",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let metrics = r
        .stdout
        .lines()
        .find(|l| l.starts_with("::{\"metrics\""))
        .unwrap();
    assert!(
        metrics.contains("\"records_synced\"") && metrics.contains("1200"),
        "{metrics}"
    );
    assert!(metrics.contains(STRIPE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_configured_connections() {
    let mut env = Env::config(fake()).await;
    env.set("AIRBYTE_STRIPE_CONNECTION_ID", STRIPE);
    let r = env.run(&["doctor", "--service", "airbyte"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = &r.result["data"]["services"][0];
    assert_eq!(s["ok"], true);
    assert_eq!(s["auth"], "basic auth (config API)");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("stripe = \"Stripe → Postgres\""),
        "{s}"
    );
    let r = env
        .run(&["doctor", "--service", "airbyte", "--offline"])
        .await;
    assert_eq!(
        r.result["data"]["services"][0]["ok"],
        serde_json::Value::Null
    );

    env.set("AIRBYTE_API_PASSWORD", "wrong");
    let r = env.run(&["doctor", "--service", "airbyte"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("airbyte_help", vec!["airbyte", "--help"]),
        ("airbyte_trigger_help", vec!["airbyte", "trigger", "--help"]),
        ("airbyte_status_help", vec!["airbyte", "status", "--help"]),
        ("airbyte_cancel_help", vec!["airbyte", "cancel", "--help"]),
    ] {
        let out = Command::cargo_bin("syncctl")
            .unwrap()
            .env_clear()
            .env("COLUMNS", "100")
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success());
        insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout));
    }
}
