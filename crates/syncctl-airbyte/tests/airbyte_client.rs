//! The Airbyte client against the stateful fake over loopback: both APIs, job lifecycles,
//! 409 handling, lost trigger answers, both clocks, cancellation, token refresh and
//! idempotent reruns. Polls are 20 ms apart and the fake's clock advances per poll, so
//! nothing here sleeps for long; retry delays are recorded, never slept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use syncctl_airbyte::{
    AirbyteClient, AirbyteError, Api, Auth, ClientOptions, Idempotency, IfRunning, NoObserver,
    RunOptions, StateStore, Trigger, Verdict, run_connection,
};
use syncctl_config::SecretString;
use syncctl_core::{Classified, ErrorClass, IdempotencyKey, OnKill, WaitOptions};
use syncctl_http::{RecordingSleeper, RetryPolicy};
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};
use syncctl_testkit::{FakeServer, Fault};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";
const HUBSPOT: &str = "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02";

struct Setup {
    fake: FakeAirbyte,
    server: FakeServer,
    sleeper: Arc<RecordingSleeper>,
}

impl Setup {
    async fn new(fake: FakeAirbyte) -> Self {
        let server = FakeServer::start(fake.router()).await;
        Self {
            fake,
            server,
            sleeper: Arc::new(RecordingSleeper::default()),
        }
    }

    fn client(&self, api: Api, auth: Auth) -> AirbyteClient {
        let base = match api {
            Api::Config => format!("{}/api/v1", self.server.url()),
            Api::Public => format!("{}/api/public/v1", self.server.url()),
        };
        AirbyteClient::new(ClientOptions {
            api,
            base_url: base,
            auth,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_retries: 3,
                ..RetryPolicy::default()
            },
            sleeper: Some(self.sleeper.clone()),
            on_token: None,
        })
        .unwrap()
    }

    fn config(&self) -> AirbyteClient {
        self.client(
            Api::Config,
            Auth::Basic {
                username: "airbyte".into(),
                password: SecretString::from("password"),
            },
        )
    }

    fn public(&self) -> AirbyteClient {
        self.client(
            Api::Public,
            Auth::ClientCredentials {
                client_id: "cid".into(),
                client_secret: SecretString::from("csecret"),
                token_url: format!("{}/api/public/v1/applications/token", self.server.url()),
            },
        )
    }
}

fn fake() -> FakeAirbyte {
    FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_client("cid", "csecret")
        .with_connection(STRIPE, "Stripe → Postgres")
        .with_connection(HUBSPOT, "HubSpot → Postgres")
}

fn waiting() -> WaitOptions {
    WaitOptions {
        poll_interval: Duration::from_millis(20),
        max_poll_interval: Duration::from_millis(20),
        wait_timeout: None,
        deadline: None,
        kill_grace: Duration::from_secs(5),
        on_kill: OnKill::Cancel,
    }
}

fn run_opts(if_running: IfRunning) -> RunOptions {
    RunOptions {
        if_running,
        wait: Some(waiting()),
        started: Instant::now(),
        force: false,
    }
}

async fn run(client: &AirbyteClient, conn: &str, opts: &RunOptions) -> syncctl_airbyte::JobReport {
    run_connection(
        client,
        conn,
        opts,
        None,
        &CancellationToken::new(),
        &NoObserver,
    )
    .await
}

#[tokio::test]
async fn config_api_sync_succeeds_with_stats() {
    let s = Setup::new(fake()).await;
    let r = run(&s.config(), STRIPE, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    let job = r.job.as_ref().unwrap();
    assert_eq!(job.status, "succeeded");
    assert_eq!(job.attempts, Some(1));
    assert_eq!(job.records_synced, Some(1200));
    assert_eq!(job.bytes_synced, Some(48_000));
    assert_eq!(job.streams.len(), 2);
    assert!(!r.attached && !r.reconciled);
    assert_eq!(s.fake.sync_requests(STRIPE), 1);
    // Reads go through POST with a body, authenticated.
    let gets = s.server.requests_to(&Method::POST, "/api/v1/jobs/get");
    assert!(gets.len() >= 3, "{}", gets.len());
    assert!(
        gets[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let v = r.to_json();
    assert_eq!(v["outcome"], "succeeded");
    assert_eq!(v["records_synced"], 1200);
    assert_eq!(v["streams"][0]["stream"], "users");
}

#[tokio::test]
async fn public_api_sync_succeeds_with_client_credentials() {
    let s = Setup::new(fake()).await;
    let r = run(&s.public(), HUBSPOT, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    let job = r.job.as_ref().unwrap();
    assert_eq!(job.records_synced, Some(1200));
    assert_eq!(job.connection_id, HUBSPOT);
    assert_eq!(
        job.attempts, None,
        "the public API does not report attempts"
    );
    assert_eq!(s.fake.tokens_issued(), 1);
    let token_req = &s.server.requests_to(&Method::POST, "/applications/token")[0];
    assert_eq!(token_req.json()["grant_type"], "client_credentials");
    assert!(
        s.server.requests_to(&Method::GET, "/api/public/v1/jobs/")[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer fake-airbyte-token-")
    );
}

#[tokio::test]
async fn failure_carries_the_reason_from_the_last_attempt() {
    let f = fake();
    f.set_script(
        STRIPE,
        JobScript::new()
            .running(1)
            .incomplete("Stripe API timed out")
            .running(1)
            .failed("Invalid API key for Stripe"),
    );
    let s = Setup::new(f).await;
    let r = run(&s.config(), STRIPE, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Failed);
    let job = r.job.as_ref().unwrap();
    assert_eq!(job.attempts, Some(2));
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap()
            .starts_with("Invalid API key for Stripe"),
        "{job:?}"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("incomplete")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test]
async fn queued_incomplete_and_unknown_states_keep_waiting() {
    let f = fake();
    f.set_script(
        HUBSPOT,
        JobScript::new()
            .queued(2)
            .running(1)
            .incomplete("worker lost")
            .other("waiting_for_quota", 2)
            .running(1)
            .succeeded(10, 100),
    );
    let s = Setup::new(f).await;
    for client in [s.config(), s.public()] {
        let r = run(&client, HUBSPOT, &run_opts(IfRunning::Attach)).await;
        assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("\"waiting_for_quota\"") && w.contains("does not know")),
            "{:?}",
            r.warnings
        );
        assert!(r.warnings.iter().any(|w| w.contains("incomplete")));
    }
}

#[tokio::test]
async fn already_running_attach_skip_fail() {
    let s = Setup::new(fake()).await;
    let running = s
        .fake
        .start_job(STRIPE, JobScript::new().running(4).succeeded(7, 70));
    for client in [s.config(), s.public()] {
        let r = run(&client, STRIPE, &run_opts(IfRunning::Fail)).await;
        assert_eq!(r.verdict, Verdict::Conflict);
        assert_eq!(r.error.as_ref().unwrap().class(), ErrorClass::Conflict);
        assert_eq!(r.job.as_ref().map(|j| j.id), Some(running));

        let r = run(&client, STRIPE, &run_opts(IfRunning::Skip)).await;
        assert_eq!(r.verdict, Verdict::Skipped);
        assert_eq!(r.job.as_ref().map(|j| j.id), Some(running));
    }
    let r = run(&s.public(), STRIPE, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(r.attached);
    assert_eq!(r.job.as_ref().unwrap().id, running);
    assert_eq!(
        s.fake.jobs_for(STRIPE).len(),
        1,
        "no second job was started"
    );
    assert_eq!(s.fake.sync_requests(STRIPE), 5);
}

#[tokio::test]
async fn a_conflict_said_only_in_the_body_is_a_conflict() {
    // Older servers answered 500 "A sync is already running for: …".
    let s = Setup::new(fake()).await;
    let running = s
        .fake
        .start_job(HUBSPOT, JobScript::new().running(1).succeeded(1, 1));
    s.server.inject_on(
        Some(Method::POST),
        "/connections/sync",
        Fault::Status {
            status: 500,
            retry_after: None,
            body: serde_json::json!({"message": format!("Internal Server Error: A sync is already running for: {HUBSPOT}")}),
        },
        1,
    );
    let r = run(&s.config(), HUBSPOT, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(r.attached);
    assert_eq!(r.job.unwrap().id, running);
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/connections/sync")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_lost_trigger_answer_is_reconciled_not_resent() {
    let s = Setup::new(fake()).await;
    s.server.inject_on(
        Some(Method::POST),
        "/connections/sync",
        Fault::DropAfterHandling,
        1,
    );
    let r = run(&s.config(), STRIPE, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(r.reconciled);
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/connections/sync")
            .len(),
        1
    );
    assert_eq!(s.fake.jobs_for(STRIPE).len(), 1);
    assert_eq!(s.server.requests_to(&Method::POST, "/jobs/list").len(), 1);

    s.server.inject_on(
        Some(Method::POST),
        "/api/public/v1/jobs",
        Fault::DropAfterHandling,
        1,
    );
    let r = run(&s.public(), HUBSPOT, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(r.reconciled);
    assert_eq!(s.fake.jobs_for(HUBSPOT).len(), 1);
}

#[tokio::test]
async fn a_gateway_error_that_started_nothing_is_asked_again_once_checked() {
    let s = Setup::new(fake()).await;
    // The 502 comes from "the proxy": the fake never saw the request.
    s.server.inject_on(
        Some(Method::POST),
        "/connections/sync",
        Fault::status(502),
        1,
    );
    let client = s.config();
    let t = client.trigger(STRIPE).await.unwrap();
    assert!(
        matches!(
            t,
            Trigger::Started {
                reconciled: false,
                ..
            }
        ),
        "{t:?}"
    );
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/connections/sync")
            .len(),
        2
    );
    assert_eq!(
        s.server.requests_to(&Method::POST, "/jobs/list").len(),
        1,
        "checked before asking again"
    );
    assert_eq!(s.fake.jobs_for(STRIPE).len(), 1);
}

#[tokio::test]
async fn a_rate_limited_trigger_waits_for_retry_after() {
    let s = Setup::new(fake()).await;
    s.server.inject_on(
        Some(Method::POST),
        "/api/public/v1/jobs",
        Fault::rate_limited(7),
        1,
    );
    let t = s.public().trigger(STRIPE).await.unwrap();
    assert!(matches!(t, Trigger::Started { .. }));
    assert_eq!(s.sleeper.delays(), vec![Duration::from_secs(7)]);
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/api/public/v1/jobs")
            .len(),
        2
    );
    assert!(
        s.server.requests_to(&Method::GET, "/jobs").is_empty(),
        "429 needs no reconciliation"
    );
}

#[tokio::test]
async fn a_trigger_is_never_sent_more_than_three_times() {
    let s = Setup::new(fake()).await;
    s.server.inject_on(
        Some(Method::POST),
        "/connections/sync",
        Fault::status(503),
        10,
    );
    let e = s.config().trigger(STRIPE).await.unwrap_err();
    assert!(matches!(e, AirbyteError::TriggerUnconfirmed { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/connections/sync")
            .len(),
        3
    );
}

#[tokio::test]
async fn definite_refusals_are_not_retried() {
    let s = Setup::new(fake()).await;
    let bad = s.client(
        Api::Config,
        Auth::Basic {
            username: "airbyte".into(),
            password: SecretString::from("wrong"),
        },
    );
    let e = bad.trigger(STRIPE).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    let e = s
        .config()
        .trigger("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert_eq!(
        s.server
            .requests_to(&Method::POST, "/connections/sync")
            .len(),
        2
    );
}

#[tokio::test]
async fn polls_retry_429_and_5xx_with_retry_after() {
    let s = Setup::new(fake()).await;
    s.server.inject_on(
        Some(Method::GET),
        "/api/public/v1/jobs/",
        Fault::rate_limited(3),
        1,
    );
    s.server.inject_on(
        Some(Method::GET),
        "/api/public/v1/jobs/",
        Fault::status(502),
        1,
    );
    let r = run(&s.public(), STRIPE, &run_opts(IfRunning::Attach)).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    let delays = s.sleeper.delays();
    assert_eq!(delays[0], Duration::from_secs(3), "{delays:?}");
    assert_eq!(delays.len(), 2);
}

#[tokio::test]
async fn wait_timeout_leaves_the_job_running_and_deadline_cancels_it() {
    let f = fake();
    f.set_script(STRIPE, JobScript::new().running_forever());
    f.set_script(HUBSPOT, JobScript::new().running_forever());
    let s = Setup::new(f).await;
    let mut opts = run_opts(IfRunning::Attach);
    opts.wait.as_mut().unwrap().wait_timeout = Some(Duration::from_millis(150));
    let r = run(&s.config(), STRIPE, &opts).await;
    assert_eq!(r.verdict, Verdict::TimedOut);
    assert!(!r.cancel_requested);
    let id = r.job.unwrap().id;
    assert_eq!(s.fake.job(id).unwrap().status, "running");
    assert_eq!(s.fake.job(id).unwrap().cancels, 0);

    let mut opts = run_opts(IfRunning::Attach);
    opts.wait.as_mut().unwrap().deadline = Some(Duration::from_millis(150));
    let r = run(&s.public(), HUBSPOT, &opts).await;
    assert_eq!(r.verdict, Verdict::TimedOut);
    assert!(r.cancel_requested && r.cancel_confirmed, "{r:?}");
    let job = r.job.unwrap();
    assert_eq!(job.status, "cancelled");
    assert_eq!(s.fake.job(job.id).unwrap().cancels, 1);
    assert_eq!(s.server.requests_to(&Method::DELETE, "/jobs/").len(), 1);
}

#[tokio::test]
async fn a_signal_cancels_the_job_and_waits_for_confirmation() {
    let f = fake().with_cancel_after_reads(3);
    f.set_script(STRIPE, JobScript::new().running_forever());
    let s = Setup::new(f).await;
    let cancel = CancellationToken::new();
    let trip = cancel.clone();
    let fake = s.fake.clone();
    tokio::spawn(async move {
        while fake.jobs_for(STRIPE).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        trip.cancel();
    });
    let r = run_connection(
        &s.config(),
        STRIPE,
        &run_opts(IfRunning::Attach),
        None,
        &cancel,
        &NoObserver,
    )
    .await;
    assert_eq!(r.verdict, Verdict::Cancelled);
    assert!(
        r.interrupted && r.cancel_requested && r.cancel_confirmed,
        "{r:?}"
    );
    let job = s.fake.jobs_for(STRIPE).remove(0);
    assert_eq!(job.status, "cancelled");
    assert_eq!(job.cancels, 1);

    // --on-kill leave: no cancel is sent.
    let f2 = s.fake.clone();
    f2.set_script(HUBSPOT, JobScript::new().running_forever());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut opts = run_opts(IfRunning::Attach);
    opts.wait.as_mut().unwrap().on_kill = OnKill::Leave;
    let r = run_connection(&s.config(), HUBSPOT, &opts, None, &cancel, &NoObserver).await;
    assert_eq!(
        r.verdict,
        Verdict::Cancelled,
        "a signal before the trigger starts nothing"
    );
    assert!(s.fake.jobs_for(HUBSPOT).is_empty());
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire_and_after_a_401() {
    // Tokens say they live 61 s; with the 60 s lead the client renews them after 1 s.
    let f = fake().with_token_lifetime(Duration::from_secs(61));
    f.set_script(
        STRIPE,
        JobScript::new()
            .running_for(Duration::from_millis(2500))
            .succeeded(3, 30),
    );
    let s = Setup::new(f).await;
    let mut opts = run_opts(IfRunning::Attach);
    opts.wait.as_mut().unwrap().poll_interval = Duration::from_millis(100);
    opts.wait.as_mut().unwrap().max_poll_interval = Duration::from_millis(100);
    let r = run(&s.public(), STRIPE, &opts).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(
        s.fake.tokens_issued() >= 2,
        "refreshed mid-wait: {}",
        s.fake.tokens_issued()
    );
    assert_eq!(
        s.fake.rejected_auth(),
        0,
        "refreshed before expiry, never refused"
    );

    // Tokens that die early (revoked, clock skew) are replaced after one 401.
    let f = fake().with_tokens_valid_for(Duration::from_millis(300));
    f.set_script(
        HUBSPOT,
        JobScript::new()
            .running_for(Duration::from_millis(1200))
            .succeeded(3, 30),
    );
    let s = Setup::new(f).await;
    let r = run(&s.public(), HUBSPOT, &opts).await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(s.fake.rejected_auth() >= 1);
    assert!(s.fake.tokens_issued() >= 2);
}

#[tokio::test]
async fn idempotent_reruns_reattach_or_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let f = fake();
    f.set_script(STRIPE, JobScript::new().running(2).succeeded(5, 50));
    let s = Setup::new(f).await;
    let client = s.config();
    let idem = Idempotency {
        key: IdempotencyKey::new("airflow:dag:run1:sync").scoped(STRIPE),
        store: Some(StateStore::new(dir.path())),
    };
    let no_wait = RunOptions {
        if_running: IfRunning::Fail,
        wait: None,
        started: Instant::now(),
        force: false,
    };
    let cancel = CancellationToken::new();
    // Try 1 starts the job and dies (no wait).
    let r1 = run_connection(&client, STRIPE, &no_wait, Some(&idem), &cancel, &NoObserver).await;
    assert_eq!(r1.verdict, Verdict::Triggered);
    let job_id = r1.job.unwrap().id;
    // Try 2 reattaches, even with --if-running fail: it is our own job.
    let waiting = RunOptions {
        if_running: IfRunning::Fail,
        ..run_opts(IfRunning::Fail)
    };
    let r2 = run_connection(&client, STRIPE, &waiting, Some(&idem), &cancel, &NoObserver).await;
    assert_eq!(r2.verdict, Verdict::Succeeded, "{r2:?}");
    assert!(r2.attached);
    assert_eq!(r2.job.unwrap().id, job_id);
    // Try 3 reports the finished job instead of syncing again.
    let r3 = run_connection(&client, STRIPE, &waiting, Some(&idem), &cancel, &NoObserver).await;
    assert_eq!(r3.verdict, Verdict::Succeeded);
    assert!(r3.reused);
    assert_eq!(r3.job.unwrap().id, job_id);
    assert_eq!(s.fake.sync_requests(STRIPE), 1);
    // --force syncs again.
    let forced = RunOptions {
        force: true,
        ..waiting.clone()
    };
    let r4 = run_connection(&client, STRIPE, &forced, Some(&idem), &cancel, &NoObserver).await;
    assert_eq!(r4.verdict, Verdict::Succeeded);
    assert_ne!(r4.job.unwrap().id, job_id);
    assert_eq!(s.fake.sync_requests(STRIPE), 2);
    // Another task's key starts its own sync.
    let other = Idempotency {
        key: IdempotencyKey::new("airflow:dag:run2:sync").scoped(STRIPE),
        store: Some(StateStore::new(dir.path())),
    };
    let r5 = run_connection(
        &client,
        STRIPE,
        &waiting,
        Some(&other),
        &cancel,
        &NoObserver,
    )
    .await;
    assert!(!r5.reused);
    assert_eq!(s.fake.sync_requests(STRIPE), 3);
}

#[tokio::test]
async fn a_crash_between_trigger_and_record_is_matched_by_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new(fake()).await;
    let client = s.public();
    let store = StateStore::new(dir.path());
    let key = IdempotencyKey::new("kestra:exec1:sync").scoped(HUBSPOT);
    // The earlier try wrote its intent, sent the trigger and died before the answer.
    store
        .save(&StateStore::record(
            &key,
            HUBSPOT,
            client.base_url(),
            None,
            Some(chrono::Utc::now()),
        ))
        .unwrap();
    let started = s
        .fake
        .start_job(HUBSPOT, JobScript::new().running(2).succeeded(1, 1));
    let idem = Idempotency {
        key,
        store: Some(store.clone()),
    };
    let r = run_connection(
        &client,
        HUBSPOT,
        &run_opts(IfRunning::Fail),
        Some(&idem),
        &CancellationToken::new(),
        &NoObserver,
    )
    .await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    assert!(r.attached);
    assert_eq!(r.job.unwrap().id, started);
    assert_eq!(s.fake.sync_requests(HUBSPOT), 0);
    assert_eq!(
        store.load(&idem.key).unwrap().unwrap().job_id,
        Some(started)
    );
}

#[tokio::test]
async fn connections_are_found_by_exact_name() {
    let mut f = fake();
    for i in 0..130 {
        f = f.with_connection(
            &format!("00000000-0000-4000-8000-{i:012}"),
            &format!("filler {i}"),
        );
    }
    let f = f
        .with_connection("11111111-0000-4000-8000-000000000001", "Twin")
        .with_connection("11111111-0000-4000-8000-000000000002", "Twin");
    let s = Setup::new(f).await;
    let public = s.public();
    assert_eq!(
        public
            .find_connection("HubSpot → Postgres", &[])
            .await
            .unwrap(),
        HUBSPOT
    );
    assert!(
        s.server
            .requests_to(&Method::GET, "/api/public/v1/connections")
            .len()
            >= 2,
        "paged"
    );
    let e = public.find_connection("Twin", &[]).await.unwrap_err();
    assert!(matches!(e, AirbyteError::AmbiguousConnection { .. }), "{e}");
    let e = public
        .find_connection("stripe → postgres", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, AirbyteError::ConnectionNotFound { .. }), "{e}");

    let config = s.config();
    let e = config
        .find_connection("Stripe → Postgres", &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("AIRBYTE_WORKSPACE_ID"), "{e}");
    let ws = vec![FakeAirbyte::workspace_id().to_owned()];
    assert_eq!(
        config
            .find_connection("Stripe → Postgres", &ws)
            .await
            .unwrap(),
        STRIPE
    );
}

#[tokio::test]
async fn unknown_routes_are_404_never_501() {
    let s = Setup::new(fake()).await;
    let c = status_of_unknown_route(&s.server.url()).await;
    assert_eq!(c, 404);
}

/// A GET through the project's HTTP client to a path no API has.
async fn status_of_unknown_route(base: &str) -> u16 {
    let http = syncctl_http::HttpClient::builder("t", base)
        .build()
        .unwrap();
    http.send_raw(syncctl_http::Request::get("/api/v2/nothing"))
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test]
async fn cancelling_an_existing_job() {
    let s = Setup::new(fake().with_cancel_after_reads(2)).await;
    let id = s.fake.start_job(STRIPE, JobScript::new().running_forever());
    let client = s.config();
    let r = syncctl_airbyte::cancel_existing(&client, id, &waiting(), true).await;
    assert_eq!(r.verdict, Verdict::Cancelled, "{r:?}");
    assert!(r.cancel_confirmed);
    // Cancelling a finished job sends nothing.
    let r = syncctl_airbyte::cancel_existing(&client, id, &waiting(), true).await;
    assert!(!r.cancel_requested);
    assert_eq!(s.fake.job(id).unwrap().cancels, 1);
}
