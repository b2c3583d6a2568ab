//! Contract tests: the client's requests and the fake's answers run through Stoplight Prism
//! (`prism proxy --errors`) with Airbyte's own specs, for every call syncctl makes:
//!
//! * config API: `airbyte/config.yaml` (Prism routes its paths without the `/api` server
//!   prefix, so the client talks to `{prism}/v1` and Prism forwards to `{fake}/api/v1`);
//! * public API jobs: `airbyte/derived/api_documentation_jobs.subset.yaml` (bearer checked);
//! * token endpoint: `airbyte/derived/api_documentation_applications.subset.yaml`;
//! * public connections listing (name lookups): the public API copy inside `config.yaml`.
//!
//! Each spec also gets a canary: the fake answers off-spec and Prism must say so.
//!
//! Two spec gaps are handled in the open rather than hidden. The public jobs subset does not
//! declare the 409 Airbyte sends for "a sync is already running" (Prism warns that the status
//! is undeclared; the test checks those are the only warnings). `config.yaml` declares no
//! authentication (`security: [{}]`) and no 409 on `/v1/connections/sync`: the config API
//! and public-connections test runs against a derived copy (`config.secured.yaml`, made by
//! `tests/contracts/derive_airbyte_config_secured.py`) that declares Basic auth for the config
//! API, the bearer token for `/public/v1/` calls and the server's 409 `KnownExceptionInfo`,
//! so Prism checks both headers (and refuses calls without them) and the 409 body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use syncctl_airbyte::{
    AirbyteClient, Api, Auth, ClientOptions, IfRunning, NoObserver, RunOptions, Trigger, Verdict,
    cancel_existing, run_connection,
};
use syncctl_config::SecretString;
use syncctl_core::{OnKill, WaitOptions};
use syncctl_http::RetryPolicy;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};
use syncctl_testkit::prism::PrismProxy;
use tokio_util::sync::CancellationToken;

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";
const HUBSPOT: &str = "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02";
const TOKEN: &str = "static-contract-token";
/// config.yaml with its authentication declared (tests/contracts/vendor/SOURCES.md).
const SECURED_CONFIG: &str = "airbyte/derived/config.secured.yaml";

fn fake() -> FakeAirbyte {
    with_connections(
        FakeAirbyte::new()
            .with_client("cid", "csecret")
            .with_static_token(TOKEN),
    )
}

fn with_connections(f: FakeAirbyte) -> FakeAirbyte {
    f.with_connection_script(
        STRIPE,
        "Stripe → Postgres",
        JobScript::new()
            .pending(1)
            .running(1)
            .incomplete("Stripe timed out")
            .running(1)
            .succeeded(1200, 48_000),
    )
    .with_connection_script(
        HUBSPOT,
        "HubSpot → Postgres",
        JobScript::new()
            .queued(1)
            .running(1)
            .failed("Invalid HubSpot token"),
    )
}

fn client(api: Api, base: String, auth: Auth) -> AirbyteClient {
    AirbyteClient::new(ClientOptions {
        api,
        base_url: base,
        auth,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy::none(),
        sleeper: None,
        on_token: None,
    })
    .unwrap()
}

fn opts(if_running: IfRunning) -> RunOptions {
    RunOptions {
        if_running,
        wait: Some(WaitOptions {
            poll_interval: Duration::from_millis(20),
            max_poll_interval: Duration::from_millis(20),
            wait_timeout: None,
            deadline: None,
            kill_grace: Duration::from_secs(10),
            on_kill: OnKill::Cancel,
        }),
        started: tokio::time::Instant::now(),
        force: false,
    }
}

/// Runs every call syncctl makes against one API through Prism.
async fn exercise(c: &AirbyteClient, f: &FakeAirbyte) {
    let cancel = CancellationToken::new();
    let r = run_connection(
        c,
        STRIPE,
        &opts(IfRunning::Attach),
        None,
        &cancel,
        &NoObserver,
    )
    .await;
    assert_eq!(r.verdict, Verdict::Succeeded, "{r:?}");
    let r = run_connection(
        c,
        HUBSPOT,
        &opts(IfRunning::Attach),
        None,
        &cancel,
        &NoObserver,
    )
    .await;
    assert_eq!(r.verdict, Verdict::Failed, "{r:?}");

    assert!(!c.recent_jobs(STRIPE, 20).await.unwrap().is_empty());
    let id = f.start_job(HUBSPOT, JobScript::new().running_forever());
    let r = cancel_existing(c, id, &opts(IfRunning::Attach).wait.unwrap(), true).await;
    assert_eq!(r.verdict, Verdict::Cancelled, "{r:?}");
}

/// The 409 path: Airbyte refuses, the client finds the running job and attaches. Returns
/// the Prism warnings this caused, which must only be about the undeclared 409.
async fn exercise_conflict(c: &AirbyteClient, f: &FakeAirbyte, prism: &PrismProxy) {
    let before = prism.violations().len();
    f.set_script(STRIPE, JobScript::new().running(2).succeeded(1, 1));
    let running = f.start_job(STRIPE, JobScript::new().running(2).succeeded(1, 1));
    let t = c.trigger(STRIPE).await.unwrap();
    assert!(matches!(t, Trigger::AlreadyRunning { .. }), "{t:?}");
    let cancel = CancellationToken::new();
    let r = run_connection(
        c,
        STRIPE,
        &opts(IfRunning::Attach),
        None,
        &cancel,
        &NoObserver,
    )
    .await;
    assert_eq!(r.job.as_ref().map(|j| j.id), Some(running), "{r:?}");
    assert!(r.attached);
    let new: Vec<String> = prism.violations().into_iter().skip(before).collect();
    assert!(
        new.iter()
            .all(|v| v.contains("Unable to match the returned status code")),
        "only the undeclared 409 may be reported: {new:#?}"
    );
}

#[tokio::test]
async fn config_api_and_public_connections_conform_to_config_yaml() {
    // The derived copy of config.yaml declares Basic auth for the config API and the bearer
    // token for the public API's connections calls, so Prism checks both headers.
    let f = with_connections(FakeAirbyte::new())
        .with_basic_auth("airbyte", "contract-password")
        .with_static_token(TOKEN);
    let server = FakeServer::start(f.router()).await;
    let prism = PrismProxy::start(SECURED_CONFIG, &format!("{}/api", server.url())).await;
    let basic = || Auth::Basic {
        username: "airbyte".into(),
        password: SecretString::from("contract-password"),
    };
    let c = client(Api::Config, format!("{}/v1", prism.url()), basic());
    exercise(&c, &f).await;
    let ws = vec![FakeAirbyte::workspace_id().to_owned()];
    assert_eq!(
        c.find_connection("Stripe → Postgres", &ws).await.unwrap(),
        STRIPE
    );
    assert_eq!(
        c.probe(&[STRIPE.to_owned()]).await.unwrap(),
        vec!["Stripe → Postgres".to_owned()]
    );
    c.probe(&[]).await.unwrap();
    // A second sync of a busy connection: the 409 and its KnownExceptionInfo body conform.
    exercise_conflict(&c, &f, &prism).await;
    prism.assert_no_violations();

    // The public API's connection listing, as config.yaml's copy of the public API has it.
    let p = client(
        Api::Public,
        format!("{}/public/v1", prism.url()),
        Auth::Token(SecretString::from(TOKEN)),
    );
    assert_eq!(
        p.find_connection("HubSpot → Postgres", &ws).await.unwrap(),
        HUBSPOT
    );
    assert_eq!(
        p.probe(&[HUBSPOT.to_owned()]).await.unwrap(),
        vec!["HubSpot → Postgres".to_owned()]
    );
    prism.assert_no_violations();
    // Without credentials Prism refuses both APIs itself: nothing reaches the fake.
    let before = server.requests().len();
    let anonymous = client(Api::Config, format!("{}/v1", prism.url()), Auth::None);
    let e = anonymous.get_job(1).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let anonymous = client(
        Api::Public,
        format!("{}/public/v1", prism.url()),
        Auth::None,
    );
    let e = anonymous.probe(&[HUBSPOT.to_owned()]).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert_eq!(
        server.requests().len(),
        before,
        "Prism forwarded an unauthenticated call"
    );
    let refused = prism.violations();
    assert!(
        refused.len() == 2 && refused.iter().all(|v| v.contains("UNAUTHORIZED")),
        "{refused:#?}"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/api/")),
        "everything was forwarded to the fake"
    );

    // Canary: job ids as strings break JobInfoRead, and Prism says so.
    f.set_off_spec(true);
    let id = f.start_job(STRIPE, JobScript::new().running_forever());
    let e = c.get_job(id).await.unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    assert!(
        prism.violations().len() > refused.len(),
        "Prism must flag the off-spec answer: {:?}",
        prism.log()
    );
}

#[tokio::test]
async fn public_api_conforms_to_the_jobs_and_applications_specs() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    let upstream = format!("{}/api/public/v1", server.url());
    let jobs = PrismProxy::start(
        "airbyte/derived/api_documentation_jobs.subset.yaml",
        &upstream,
    )
    .await;
    let apps = PrismProxy::start(
        "airbyte/derived/api_documentation_applications.subset.yaml",
        &upstream,
    )
    .await;
    let c = client(
        Api::Public,
        jobs.url(),
        Auth::ClientCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("csecret"),
            token_url: format!("{}/applications/token", apps.url()),
        },
    );
    exercise(&c, &f).await;
    assert!(f.tokens_issued() >= 1);
    jobs.assert_no_violations();
    apps.assert_no_violations();
    exercise_conflict(&c, &f, &jobs).await;

    // Prism checks the bearer token the spec demands: without one nothing is forwarded.
    let anonymous = client(Api::Public, jobs.url(), Auth::None);
    let before = server.requests().len();
    let e = anonymous.get_job(100).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert_eq!(server.requests().len(), before);

    // Canary: jobId as a string breaks JobResponse.
    f.set_off_spec(true);
    let id = f.start_job(HUBSPOT, JobScript::new().running_forever());
    let e = c.get_job(id).await.unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    assert!(
        !jobs.violations().is_empty(),
        "Prism must flag the off-spec answer: {:?}",
        jobs.log()
    );
}
