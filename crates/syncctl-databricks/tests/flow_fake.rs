//! The Databricks flows against the stateful fake: name lookup across pages, multi-task
//! failures with their get-output error, task pages, idempotent retries and attaching,
//! repairs, unknown states, both clocks, signals, rate limits and OAuth M2M.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use secrecy::SecretString;
use serde_json::json;
use syncctl_core::{Classified, ErrorClass, OnKill, WaitOptions};
use syncctl_databricks::{
    ApiVersion, ClientOptions, Credentials, DatabricksError, Ending, Flow, FlowFailure, FlowResult,
    JobRef, JobsClient, RunNowSpec, Settings,
};
use syncctl_http::{BearerToken, RecordingSleeper, RetryPolicy};
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};
use syncctl_testkit::{FakeServer, Fault};
use tokio_util::sync::CancellationToken;

const PAT: &str = "dapi-flow-test";

fn opts(sleeper: &Arc<RecordingSleeper>) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        sleeper: Some(sleeper.clone()),
    }
}

fn pat_client(url: &str, api: ApiVersion, sleeper: &Arc<RecordingSleeper>) -> JobsClient {
    JobsClient::at(
        &format!("{url}/api"),
        Arc::new(BearerToken::new("databricks", SecretString::from(PAT))),
        api,
        &opts(sleeper),
    )
    .unwrap()
}

fn fast() -> WaitOptions {
    WaitOptions {
        poll_interval: Duration::from_millis(10),
        max_poll_interval: Duration::from_millis(10),
        kill_grace: Duration::from_secs(2),
        ..WaitOptions::default()
    }
}

fn spec(job: JobRef, token: Option<&str>) -> RunNowSpec {
    RunNowSpec {
        job,
        params: serde_json::Map::new(),
        idempotency_token: token.map(str::to_owned),
        rerun_failed: false,
        allow_success_with_failures: false,
    }
}

async fn run_now(
    client: &JobsClient,
    spec: &RunNowSpec,
    wait: Option<&WaitOptions>,
) -> Result<FlowResult, FlowFailure> {
    let mut quiet = |_: &str| {};
    Flow::new(client, CancellationToken::new(), &mut quiet)
        .run_now(spec, wait)
        .await
}

async fn start(fake: &DatabricksFake) -> (FakeServer, Arc<RecordingSleeper>) {
    (
        FakeServer::start(fake.router()).await,
        Arc::new(RecordingSleeper::default()),
    )
}

fn two_task_failing() -> FakeJob {
    FakeJob::new(42, "nightly-etl")
        .task("ingest", TaskOutcome::Success)
        .task(
            "transform",
            TaskOutcome::Failed("ZeroDivisionError: division by zero".into()),
        )
}

#[tokio::test]
async fn job_names_are_looked_up_across_every_page_in_both_versions() {
    let mut fake = DatabricksFake::new().with_pat(PAT).list_page_cap(1);
    for (id, name) in [
        (1, "dup"),
        (2, "other"),
        (3, "dup"),
        (4, "Dup"),
        (5, "Exact"),
        (6, "exact"),
    ] {
        fake = fake.job(FakeJob::new(id, name));
    }
    fake = fake.job(FakeJob::new(7, "Solo"));
    let (server, sleeper) = start(&fake).await;
    for api in [ApiVersion::V2_2, ApiVersion::V2_1] {
        let c = pat_client(&server.url(), api, &sleeper);
        // "dup" and "Dup": the two exact matches are ambiguous (case-sensitive first).
        let e = c.find_job_id("dup").await.unwrap_err();
        assert!(
            matches!(&e, DatabricksError::AmbiguousJobName { ids, .. } if ids == &vec![1, 3]),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::Config);
        assert_eq!(c.find_job_id("Exact").await.unwrap(), 5);
        // No exact-case match: the API's case-insensitive match is used.
        assert_eq!(c.find_job_id("solo").await.unwrap(), 7);
        let e = c.find_job_id("nope").await.unwrap_err();
        assert!(matches!(e, DatabricksError::JobNotFound { .. }), "{e}");
    }
    let lists = server.requests_to(&Method::GET, "/jobs/list");
    assert!(
        lists
            .iter()
            .any(|r| r.path.contains("/2.2/") && r.query.contains("page_token="))
    );
    assert!(
        lists
            .iter()
            .any(|r| r.path.contains("/2.1/") && r.query.contains("offset=2"))
    );
    assert!(lists.iter().all(|r| r.query.contains("name=")));
}

#[tokio::test]
async fn a_failing_task_fails_the_run_with_its_get_output_error() {
    let fake = DatabricksFake::new().with_pat(PAT).job(two_task_failing());
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let r = run_now(&c, &spec(JobRef::Id(42), None), Some(&fast()))
        .await
        .unwrap();
    let Ending::RemoteFailed { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    let run_id = r.report.run_id.unwrap();
    assert_eq!(
        message,
        &format!(
            "Databricks run {run_id} ended FAILED: task transform failed: ZeroDivisionError: division by zero"
        )
    );
    assert_eq!(r.report.result_state.as_deref(), Some("FAILED"));
    assert_eq!(r.report.life_cycle_state.as_deref(), Some("TERMINATED"));
    assert_eq!(r.report.tasks.len(), 2);
    assert_eq!(r.report.tasks[0].result_state.as_deref(), Some("SUCCESS"));
    assert_eq!(r.report.tasks[0].error, None);
    assert_eq!(r.report.tasks[1].duration_ms, Some(60_000));
    assert!(!r.report.attached);
    // get-output only for the failed task, by its task run id.
    let outputs = server.requests_to(&Method::GET, "/runs/get-output");
    assert_eq!(outputs.len(), 1);
    let failed_task_run = r.report.tasks[1].run_id.unwrap();
    assert_eq!(outputs[0].query, format!("run_id={failed_task_run}"));
}

#[tokio::test]
async fn tasks_past_a_page_are_fetched_with_page_tokens() {
    let mut job = FakeJob::new(9, "wide");
    for i in 0..5 {
        job = job.task(&format!("t{i}"), TaskOutcome::Success);
    }
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .task_page_size(2)
        .job(job);
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let r = run_now(&c, &spec(JobRef::Id(9), None), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    let keys: Vec<_> = r.report.tasks.iter().map(|t| t.task_key.as_str()).collect();
    assert_eq!(keys, ["t0", "t1", "t2", "t3", "t4"]);
    assert!(
        r.report
            .tasks
            .iter()
            .all(|t| t.result_state.as_deref() == Some("SUCCESS"))
    );
    let pages = server
        .requests_to(&Method::GET, "/runs/get")
        .into_iter()
        .filter(|r| r.query.contains("page_token=tasks-page-2"))
        .count();
    assert!(pages >= 1, "the third page was requested");
}

#[tokio::test]
async fn the_same_token_attaches_instead_of_starting_a_second_run() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(5, "etl").lifecycle(&["PENDING", "RUNNING", "RUNNING", "RUNNING"]));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let s = spec(JobRef::Id(5), Some("airflow:dag:run:task"));
    let first = run_now(&c, &s, None).await.unwrap();
    assert_eq!(first.ending, Ending::NotWaited);
    assert!(!first.report.attached);
    // The retry comes ten minutes later (the worker died).
    fake.advance_clock(Duration::from_secs(600));
    let second = run_now(&c, &s, Some(&fast())).await.unwrap();
    assert!(second.report.attached);
    assert_eq!(second.report.run_id, first.report.run_id);
    assert_eq!(second.ending, Ending::Succeeded);
    assert_eq!(fake.runs().len(), 1);
    let bodies: Vec<_> = server
        .requests_to(&Method::POST, "/run-now")
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(bodies[0]["idempotency_token"], "airflow:dag:run:task");
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn a_lost_run_now_answer_is_resent_only_with_a_token() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(5, "etl"));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    server.inject_on(Some(Method::POST), "/run-now", Fault::DropAfterHandling, 1);
    let r = run_now(&c, &spec(JobRef::Id(5), Some("tok-1")), None)
        .await
        .unwrap();
    assert_eq!(server.requests_to(&Method::POST, "/run-now").len(), 2);
    assert_eq!(fake.runs().len(), 1, "the resend returned the same run");
    assert_eq!(r.report.run_id, Some(fake.runs()[0].run_id));

    server.inject_on(Some(Method::POST), "/run-now", Fault::DropAfterHandling, 1);
    let e = run_now(&c, &spec(JobRef::Id(5), None), None)
        .await
        .unwrap_err();
    assert_eq!(e.error.class(), ErrorClass::Transient);
    assert_eq!(
        server.requests_to(&Method::POST, "/run-now").len(),
        3,
        "an unkeyed trigger is sent once"
    );
    assert_eq!(fake.runs().len(), 2, "and it did start a run");
    assert_eq!(e.report.unwrap().run_id, None);
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_retry_after_says() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(5, "etl"));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    fake.throttle("/runs/get", 2, 7);
    fake.throttle("/run-now", 1, 3);
    let r = run_now(&c, &spec(JobRef::Id(5), Some("tok")), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    let delays = sleeper.delays();
    assert_eq!(
        delays
            .iter()
            .filter(|d| **d == Duration::from_secs(7))
            .count(),
        2,
        "{delays:?}"
    );
    assert!(delays.contains(&Duration::from_secs(3)), "{delays:?}");
    assert_eq!(fake.runs().len(), 1);

    // Without a token a 429 is still safe to resend: it means nothing started.
    fake.throttle("/run-now", 1, 4);
    let r = run_now(&c, &spec(JobRef::Id(5), None), None).await.unwrap();
    assert!(r.report.run_id.is_some());
    assert!(sleeper.delays().contains(&Duration::from_secs(4)));
    assert_eq!(fake.runs().len(), 2);
}

#[tokio::test]
async fn unknown_states_keep_the_wait_going_with_a_warning() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(5, "etl").lifecycle(&[
            "QUEUED",
            "HIBERNATING",
            "RUNNING",
            "TERMINATING",
        ]));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let r = run_now(&c, &spec(JobRef::Id(5), None), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    assert_eq!(
        r.warnings,
        vec![
            "Databricks reported a life-cycle state syncctl does not know (HIBERNATING); treated as still running"
        ]
    );
}

#[tokio::test]
async fn status_only_runs_are_read_through_termination_details() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .status_only()
        .job(two_task_failing())
        .job(FakeJob::new(6, "ok"));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let r = run_now(&c, &spec(JobRef::Id(42), None), Some(&fast()))
        .await
        .unwrap();
    let Ending::RemoteFailed { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert!(
        message.contains("ended RUN_EXECUTION_ERROR: task transform failed: ZeroDivisionError"),
        "{message}"
    );
    assert_eq!(r.report.tasks[0].result_state.as_deref(), Some("SUCCESS"));
    let r = run_now(&c, &spec(JobRef::Id(6), None), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    assert_eq!(r.report.result_state.as_deref(), Some("SUCCESS"));
}

#[tokio::test]
async fn success_with_failures_fails_unless_accepted() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(two_task_failing().ends("TERMINATED", Some("SUCCESS_WITH_FAILURES")));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_1, &sleeper);
    let r = run_now(&c, &spec(JobRef::Id(42), None), Some(&fast()))
        .await
        .unwrap();
    let Ending::RemoteFailed { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert!(
        message.contains("SUCCESS_WITH_FAILURES")
            && message.contains("--allow-success-with-failures"),
        "{message}"
    );
    let mut allow = spec(JobRef::Id(42), None);
    allow.allow_success_with_failures = true;
    let r = run_now(&c, &allow, Some(&fast())).await.unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    assert!(r.warnings.iter().any(|w| w.contains("accepted")));
}

fn endless() -> FakeJob {
    FakeJob::new(5, "endless").lifecycle(&["RUNNING"; 100_000])
}

#[tokio::test]
async fn the_wait_timeout_leaves_the_run_going() {
    let fake = DatabricksFake::new().with_pat(PAT).job(endless());
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let w = WaitOptions {
        wait_timeout: Some(Duration::from_millis(150)),
        ..fast()
    };
    let r = run_now(&c, &spec(JobRef::Id(5), None), Some(&w))
        .await
        .unwrap();
    let Ending::WaitTimedOut { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert!(message.contains("left running"), "{message}");
    assert!(server.requests_to(&Method::POST, "/runs/cancel").is_empty());
    assert!(!fake.runs()[0].cancelled);
}

#[tokio::test]
async fn the_deadline_cancels_the_run_and_sees_it_stop() {
    let fake = DatabricksFake::new().with_pat(PAT).job(endless());
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let w = WaitOptions {
        deadline: Some(Duration::from_millis(150)),
        wait_timeout: Some(Duration::from_secs(60)),
        ..fast()
    };
    let r = run_now(&c, &spec(JobRef::Id(5), None), Some(&w))
        .await
        .unwrap();
    let Ending::DeadlineReached { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert!(message.contains("cancelled Databricks run"), "{message}");
    assert_eq!(r.report.result_state.as_deref(), Some("CANCELED"));
    let runs = fake.runs();
    assert!(runs[0].cancelled && runs[0].terminal);
    assert_eq!(server.requests_to(&Method::POST, "/runs/cancel").len(), 1);
}

#[tokio::test]
async fn a_signal_cancels_the_run_unless_told_to_leave_it() {
    for (on_kill, expect_cancel) in [(OnKill::Cancel, true), (OnKill::Leave, false)] {
        let fake = DatabricksFake::new().with_pat(PAT).job(endless());
        let (server, sleeper) = start(&fake).await;
        let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
        let token = CancellationToken::new();
        let t2 = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            t2.cancel();
        });
        let w = WaitOptions { on_kill, ..fast() };
        let mut quiet = |_: &str| {};
        let r = Flow::new(&c, token, &mut quiet)
            .run_now(&spec(JobRef::Id(5), None), Some(&w))
            .await
            .unwrap();
        let Ending::Interrupted { message } = &r.ending else {
            panic!("{:?}", r.ending)
        };
        assert_eq!(fake.runs()[0].cancelled, expect_cancel, "{message}");
        if expect_cancel {
            assert!(message.contains("cancelled Databricks run"), "{message}");
            assert!(fake.runs()[0].terminal);
        } else {
            assert!(message.contains("left running"), "{message}");
        }
    }
}

#[tokio::test]
async fn attaching_to_a_failed_run_reports_it_and_rerun_failed_repairs_it() {
    let fake = DatabricksFake::new().with_pat(PAT).job(
        FakeJob::new(42, "flaky")
            .task("ingest", TaskOutcome::Success)
            .task("report", TaskOutcome::FailsOnce("KeyError: 'date'".into())),
    );
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let mut s = spec(JobRef::Id(42), Some("airflow:d:r:t"));
    s.params
        .insert("job_parameters".into(), json!({"date": "2025-10-30"}));
    let first = run_now(&c, &s, Some(&fast())).await.unwrap();
    assert!(matches!(first.ending, Ending::RemoteFailed { .. }));
    fake.advance_clock(Duration::from_secs(300));

    let second = run_now(&c, &s, Some(&fast())).await.unwrap();
    let Ending::AttachedToFailed { message } = &second.ending else {
        panic!("{:?}", second.ending)
    };
    assert!(
        message.contains("KeyError: 'date'") && message.contains("--rerun-failed"),
        "{message}"
    );
    assert!(second.report.attached);
    assert_eq!(fake.runs().len(), 1);
    assert!(fake.runs()[0].repairs.is_empty());

    s.rerun_failed = true;
    let third = run_now(&c, &s, Some(&fast())).await.unwrap();
    assert_eq!(third.ending, Ending::Succeeded, "{:?}", third.warnings);
    assert!(third.report.attached);
    let repairs = fake.runs()[0].repairs.clone();
    assert_eq!(repairs.len(), 1);
    assert_eq!(third.report.repair_id, Some(repairs[0]));
    let report_task = &third.report.tasks[1];
    assert_eq!(report_task.result_state.as_deref(), Some("SUCCESS"));
    let repair = &server.requests_to(&Method::POST, "/runs/repair")[0];
    assert_eq!(
        repair.json(),
        json!({"run_id": fake.runs()[0].run_id, "rerun_all_failed_tasks": true, "job_parameters": {"date": "2025-10-30"}})
    );
}

#[tokio::test]
async fn a_token_that_belongs_to_another_job_is_a_conflict() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(1, "a"))
        .job(FakeJob::new(2, "b"));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    run_now(&c, &spec(JobRef::Id(1), Some("shared")), None)
        .await
        .unwrap();
    let e = run_now(&c, &spec(JobRef::Id(2), Some("shared")), None)
        .await
        .unwrap_err();
    assert_eq!(e.error.class(), ErrorClass::Conflict);
    assert!(e.error.to_string().contains("not job 2"), "{}", e.error);
}

#[tokio::test]
async fn status_and_cancel_flows() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(endless())
        .job(two_task_failing());
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    let started = run_now(&c, &spec(JobRef::Id(5), None), None).await.unwrap();
    let run_id = started.report.run_id.unwrap();
    let mut quiet = |_: &str| {};
    let mut flow = Flow::new(&c, CancellationToken::new(), &mut quiet);
    let st = flow.status(run_id, None, false).await.unwrap();
    assert_eq!(st.ending, Ending::NotWaited);
    assert_eq!(st.report.life_cycle_state.as_deref(), Some("RUNNING"));
    let cancelled = flow.cancel(run_id, Some(&fast())).await.unwrap();
    assert_eq!(
        cancelled.ending,
        Ending::CancelRequested {
            confirmed: true,
            message: String::new()
        }
    );
    let again = flow.cancel(run_id, Some(&fast())).await.unwrap();
    assert_eq!(again.ending, Ending::AlreadyEnded);
    let e = flow.status(999_999, None, false).await.unwrap_err();
    assert_eq!(e.error.class(), ErrorClass::Config);
    // status --wait on a failing run reports the failure.
    let failing = run_now(&c, &spec(JobRef::Id(42), None), None)
        .await
        .unwrap();
    let r = flow
        .status(failing.report.run_id.unwrap(), Some(&fast()), false)
        .await
        .unwrap();
    assert!(
        matches!(r.ending, Ending::RemoteFailed { .. }),
        "{:?}",
        r.ending
    );
}

fn m2m_settings(url: &str) -> Settings {
    Settings {
        host: url.to_owned(),
        credentials: Credentials::ClientCredentials {
            client_id: "sp-1".into(),
            client_secret: SecretString::from("sp-secret"),
        },
        profile: None,
        config_file: None,
    }
}

#[tokio::test]
async fn oauth_m2m_fetches_one_token_and_reauthenticates_once_after_an_invalid_token_403() {
    let fake = DatabricksFake::new()
        .with_client("sp-1", "sp-secret")
        .job(FakeJob::new(5, "etl"));
    let (server, sleeper) = start(&fake).await;
    let c = JobsClient::connect(
        &m2m_settings(&server.url()),
        ApiVersion::V2_2,
        &opts(&sleeper),
    )
    .unwrap();
    assert_eq!(c.auth_method(), Some("OAuth client credentials"));
    let r = run_now(&c, &spec(JobRef::Id(5), None), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    assert_eq!(fake.token_requests(), 1);
    let token_req = &server.requests_to(&Method::POST, "/oidc/v1/token")[0];
    let body = String::from_utf8_lossy(&token_req.body).into_owned();
    assert!(
        body.contains("grant_type=client_credentials") && body.contains("scope=all-apis"),
        "{body}"
    );
    assert!(
        token_req
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );

    fake.revoke_tokens();
    c.get_run(r.report.run_id.unwrap(), false).await.unwrap();
    assert_eq!(
        fake.token_requests(),
        2,
        "the 403 Invalid access token fetched a fresh token once"
    );
}

#[tokio::test]
async fn oauth_tokens_close_to_expiry_are_renewed_before_use() {
    // Tokens that live less than the refresh lead are renewed before every call.
    let fake = DatabricksFake::new()
        .with_client("sp-1", "sp-secret")
        .token_ttl(60)
        .job(FakeJob::new(5, "etl"));
    let (server, sleeper) = start(&fake).await;
    let c = JobsClient::connect(
        &m2m_settings(&server.url()),
        ApiVersion::V2_2,
        &opts(&sleeper),
    )
    .unwrap();
    let r = run_now(&c, &spec(JobRef::Id(5), None), Some(&fast()))
        .await
        .unwrap();
    assert_eq!(r.ending, Ending::Succeeded);
    let api_calls = server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert_eq!(fake.token_requests() as usize, api_calls);
    assert!(server.requests().iter().all(|r| {
        r.path.starts_with("/oidc")
            || r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer fake-oauth-"))
    }));
}

#[tokio::test]
async fn wrong_client_secret_is_an_auth_error() {
    let fake = DatabricksFake::new().with_client("sp-1", "right");
    let (server, sleeper) = start(&fake).await;
    let c = JobsClient::connect(
        &m2m_settings(&server.url()),
        ApiVersion::V2_2,
        &opts(&sleeper),
    )
    .unwrap();
    let e = c.ping().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(!e.to_string().contains("sp-secret"));
    let bad_pat = pat_client(&server.url(), ApiVersion::V2_2, &sleeper);
    assert_eq!(bad_pat.ping().await.unwrap_err().class(), ErrorClass::Auth);
}

#[tokio::test]
async fn the_fake_answers_unknown_routes_and_versions_with_404_never_501() {
    let fake = DatabricksFake::new().with_pat(PAT);
    let (server, _sleeper) = start(&fake).await;
    let http = syncctl_http::HttpClient::builder("probe", server.url())
        .auth(Arc::new(BearerToken::new(
            "databricks",
            SecretString::from(PAT),
        )))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    for path in ["/api/2.2/jobs/nope", "/api/3.0/jobs/list", "/nothing/here"] {
        let resp = http
            .send_raw(syncctl_http::Request::get(path))
            .await
            .unwrap();
        assert_eq!(resp.status.as_u16(), 404, "{path}");
        assert!(resp.text().contains("ENDPOINT_NOT_FOUND"), "{path}");
    }
}

#[tokio::test]
async fn json_files_and_bodies_with_every_parameter_reach_the_fake_unchanged() {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .job(FakeJob::new(5, "etl"));
    let (server, sleeper) = start(&fake).await;
    let c = pat_client(&server.url(), ApiVersion::V2_1, &sleeper);
    let mut s = spec(JobRef::Id(5), Some("t"));
    s.params.insert("jar_params".into(), json!(["a", "b"]));
    s.params.insert("job_parameters".into(), json!({"k": "v"}));
    run_now(&c, &s, None).await.unwrap();
    assert_eq!(
        fake.runs()[0].body,
        json!({"job_id": 5, "idempotency_token": "t", "jar_params": ["a", "b"], "job_parameters": {"k": "v"}})
    );
    // The fake enforces the API's parameter types.
    s.params.remove("jar_params");
    s.params.insert("notebook_params".into(), json!({"n": 1}));
    let e = run_now(&c, &s, None).await.unwrap_err();
    assert_eq!(e.error.class(), ErrorClass::Config);
    assert!(
        e.error
            .to_string()
            .contains("notebook_params must be a map from strings to strings"),
        "{}",
        e.error
    );
}
