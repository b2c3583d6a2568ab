//! Contract tests: the client's real traffic against the stateful fake, through Stoplight
//! Prism with `--errors`. Jobs 2.1 goes through the vendor spec
//! (`databricks/derived/jobs-2.1-aws.fixed.yaml`); Jobs 2.2 and the OAuth M2M token endpoint
//! go through our hand-written supplement (`tests/contracts/databricks-jobs-2.2.supplement.yaml`,
//! marked as ours), because Databricks publishes no 2.2 spec. Both directions are checked:
//! requests syncctl sends and responses the fake returns. The canaries prove each spec
//! really catches an off-spec response and an off-spec request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use secrecy::SecretString;
use serde_json::json;
use syncctl_core::WaitOptions;
use syncctl_databricks::{
    ApiVersion, ClientOptions, Credentials, DatabricksError, Ending, Flow, JobRef, JobsClient,
    RunNowSpec, Settings,
};
use syncctl_http::{BearerToken, HttpError, RecordingSleeper, RetryPolicy};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};
use syncctl_testkit::prism::PrismProxy;
use tokio_util::sync::CancellationToken;

const VENDOR_21: &str = "databricks/derived/jobs-2.1-aws.fixed.yaml";
const OURS_22: &str = "syncctl:databricks-jobs-2.2.supplement.yaml";
const PAT: &str = "dapi-contract";

fn opts() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        sleeper: Some(Arc::new(RecordingSleeper::default())),
    }
}

fn pat(root: &str, api: ApiVersion) -> JobsClient {
    JobsClient::at(
        root,
        Arc::new(BearerToken::new("databricks", SecretString::from(PAT))),
        api,
        &opts(),
    )
    .unwrap()
}

fn fast() -> WaitOptions {
    WaitOptions {
        poll_interval: Duration::from_millis(10),
        max_poll_interval: Duration::from_millis(10),
        kill_grace: Duration::from_secs(5),
        ..WaitOptions::default()
    }
}

fn workspace() -> DatabricksFake {
    DatabricksFake::new()
        .with_pat(PAT)
        .with_client("sp-contract", "sp-contract-secret")
        .list_page_cap(1)
        .task_page_size(1)
        .job(FakeJob::new(1, "dup"))
        .job(FakeJob::new(2, "dup"))
        .job(
            FakeJob::new(3, "nightly-etl")
                .task("ingest", TaskOutcome::Success)
                .task(
                    "transform",
                    TaskOutcome::FailsOnce("ZeroDivisionError: division by zero".into()),
                ),
        )
        .job(FakeJob::new(4, "endless").lifecycle(&["RUNNING"; 10_000]))
}

/// Every flow syncctl runs, against whatever client and fake it is given.
async fn exercise(client: &JobsClient, fake: &DatabricksFake) {
    let mut quiet = |_: &str| {};
    let mut flow = Flow::new(client, CancellationToken::new(), &mut quiet);

    // Name lookup across pages, ambiguity.
    let e = client.find_job_id("dup").await.unwrap_err();
    assert!(matches!(e, DatabricksError::AmbiguousJobName { .. }), "{e}");

    // Trigger by name with every parameter kind and a token; a task fails.
    let mut params = serde_json::Map::new();
    params.insert("job_parameters".into(), json!({"date": "2025-10-30"}));
    params.insert("notebook_params".into(), json!({"mode": "full"}));
    params.insert("python_named_params".into(), json!({"env": "dev"}));
    params.insert("sql_params".into(), json!({"schema": "raw"}));
    params.insert("python_params".into(), json!(["--verbose"]));
    let mut spec = RunNowSpec {
        job: JobRef::Name("nightly-etl".into()),
        params,
        idempotency_token: Some("airflow:contract:run:task".into()),
        rerun_failed: false,
        allow_success_with_failures: false,
    };
    let r = flow.run_now(&spec, Some(&fast())).await.unwrap();
    let Ending::RemoteFailed { message } = &r.ending else {
        panic!("{:?}", r.ending)
    };
    assert!(message.contains("ZeroDivisionError"), "{message}");

    // The retry attaches to the failed run and repairs it.
    spec.rerun_failed = true;
    let r = flow.run_now(&spec, Some(&fast())).await.unwrap();
    assert_eq!(r.ending, Ending::Succeeded, "{:?}", r.warnings);
    assert!(r.report.attached && r.report.repair_id.is_some());
    assert_eq!(fake.runs().len(), 1);

    // Status, then cancel a long run and see it stop.
    let status = flow
        .status(r.report.run_id.unwrap(), None, false)
        .await
        .unwrap();
    assert_eq!(status.ending, Ending::Succeeded);
    let long = RunNowSpec {
        job: JobRef::Id(4),
        params: serde_json::Map::new(),
        idempotency_token: None,
        rerun_failed: false,
        allow_success_with_failures: false,
    };
    let started = flow.run_now(&long, None).await.unwrap();
    assert_eq!(started.ending, Ending::NotWaited);
    let cancelled = flow
        .cancel(started.report.run_id.unwrap(), Some(&fast()))
        .await
        .unwrap();
    assert!(
        matches!(
            cancelled.ending,
            Ending::CancelRequested {
                confirmed: true,
                ..
            }
        ),
        "{:?}",
        cancelled.ending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_2_1_traffic_conforms_to_the_vendor_spec() {
    let fake = workspace();
    let server = FakeServer::start(fake.router_at_root()).await;
    let prism = PrismProxy::start(VENDOR_21, &server.url()).await;
    let client = pat(&prism.url(), ApiVersion::V2_1);
    exercise(&client, &fake).await;
    prism.assert_no_violations();
    // Everything really went through to the fake.
    for path in [
        "/2.1/jobs/list",
        "/2.1/jobs/run-now",
        "/2.1/jobs/runs/get",
        "/2.1/jobs/runs/get-output",
        "/2.1/jobs/runs/repair",
        "/2.1/jobs/runs/cancel",
    ] {
        assert!(
            server.requests().iter().any(|r| r.path == path),
            "{path} never reached the fake"
        );
    }
    assert!(
        server
            .requests_to(&Method::GET, "/2.1/jobs/list")
            .iter()
            .any(|r| r.query.contains("offset=1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_2_2_and_oauth_traffic_conforms_to_our_supplement() {
    let fake = workspace();
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(OURS_22, &server.url()).await;
    let settings = Settings {
        host: prism.url(),
        credentials: Credentials::ClientCredentials {
            client_id: "sp-contract".into(),
            client_secret: SecretString::from("sp-contract-secret"),
        },
        profile: None,
        config_file: None,
    };
    let client = JobsClient::connect(&settings, ApiVersion::V2_2, &opts()).unwrap();
    fake.throttle("/runs/get", 1, 0);
    exercise(&client, &fake).await;
    prism.assert_no_violations();
    assert_eq!(fake.token_requests(), 1);
    // A revoked token: the gateway's 403 "Invalid access token." (numeric error_code, reason
    // header) conforms too, and the client fetches a new token once and carries on.
    fake.revoke_tokens();
    let run = client.run_now(&json!({"job_id": 3})).await.unwrap();
    assert_eq!(fake.token_requests(), 2);
    let bad = JobsClient::at(
        &format!("{}/api", prism.url()),
        Arc::new(BearerToken::new(
            "databricks",
            SecretString::from("dapi-revoked"),
        )),
        ApiVersion::V2_2,
        &opts(),
    )
    .unwrap();
    let e = bad.get_run(run.run_id, false).await.unwrap_err();
    assert!(
        matches!(&e, DatabricksError::Api { status: 403, error_code, message, .. }
            if error_code == "403" && message == "Invalid access token."),
        "{e}"
    );
    prism.assert_no_violations();
    let reqs = server.requests();
    assert!(reqs.iter().any(|r| r.path == "/oidc/v1/token"));
    assert!(
        reqs.iter()
            .any(|r| r.path == "/api/2.2/jobs/runs/get" && r.query.contains("page_token=")),
        "task pages were followed"
    );
    assert!(
        reqs.iter()
            .any(|r| r.path == "/api/2.2/jobs/list" && r.query.contains("page_token=")),
        "job pages were followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_both_specs_catch_off_spec_responses_and_requests() {
    for (spec, api, at_root) in [
        (VENDOR_21, ApiVersion::V2_1, true),
        (OURS_22, ApiVersion::V2_2, false),
    ] {
        let fake = workspace();
        fake.answer_run_now_off_spec();
        let server = FakeServer::start(if at_root {
            fake.router_at_root()
        } else {
            fake.router()
        })
        .await;
        let prism = PrismProxy::start(spec, &server.url()).await;
        let root = if at_root {
            prism.url()
        } else {
            format!("{}/api", prism.url())
        };
        let client = pat(&root, api);
        // Off-spec response: run_id as a string.
        let e = client.run_now(&json!({"job_id": 3})).await.unwrap_err();
        match &e {
            DatabricksError::Http(HttpError::Status {
                status: 500, body, ..
            }) => {
                assert!(body.contains("VIOLATIONS"), "{spec}: {body}");
            }
            other => panic!("{spec}: expected Prism's 500, got {other}"),
        }
        assert!(!prism.violations().is_empty(), "{spec}: {:?}", prism.log());
        // Off-spec request: job_id must be an integer; Prism refuses it unforwarded.
        let before = server.requests().len();
        let e = client
            .run_now(&json!({"job_id": "three"}))
            .await
            .unwrap_err();
        assert!(
            matches!(e.status(), Some(400 | 422)),
            "{spec}: expected Prism to refuse the request, got {e}"
        );
        assert_eq!(
            server.requests().len(),
            before,
            "{spec}: the bad request was forwarded"
        );
    }
}

/// Jobs API 2.2 `runs/get` pages every long array of a run, 100 elements each, and repeats the
/// rest of the run on each page: the client must keep all of them, not only the tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_get_pages_past_100_lose_no_job_cluster_parameter_or_iteration() {
    let mut job = FakeJob::new(9, "wide")
        .task("ingest", TaskOutcome::Success)
        .for_each_iterations(101);
    for i in 0..130 {
        job = job.job_cluster(&format!("cluster_{i:03}"));
    }
    let fake = DatabricksFake::new().with_pat(PAT).job(job);
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start(OURS_22, &server.url()).await;
    let client = pat(&format!("{}/api", prism.url()), ApiVersion::V2_2);
    let params: serde_json::Map<String, serde_json::Value> = (0..250)
        .map(|i| (format!("p{i:03}"), json!(format!("v{i}"))))
        .collect();
    let started = client
        .run_now(&json!({"job_id": 9, "job_parameters": params}))
        .await
        .unwrap();

    let run = client.get_run(started.run_id, true).await.unwrap();
    prism.assert_no_violations();
    let pages = server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/2.2/jobs/runs/get")
        .count();
    assert_eq!(pages, 3, "250 job parameters take three pages of 100");
    assert_eq!(run.tasks.len(), 1);
    assert_eq!(run.repair_history.len(), 1);
    let clusters: Vec<&str> = run
        .job_clusters
        .iter()
        .map(|c| c.job_cluster_key.as_str())
        .collect();
    let expected: Vec<String> = (0..130).map(|i| format!("cluster_{i:03}")).collect();
    assert_eq!(clusters, expected);
    let got: Vec<(String, String)> = run
        .job_parameters
        .iter()
        .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
        .collect();
    let expected: Vec<(String, String)> = (0..250)
        .map(|i| (format!("p{i:03}"), format!("v{i}")))
        .collect();
    assert_eq!(got, expected);
    let iteration_ids: std::collections::BTreeSet<i64> =
        run.iterations.iter().filter_map(|t| t.run_id).collect();
    assert_eq!(run.iterations.len(), 101);
    assert_eq!(iteration_ids.len(), 101, "no iteration twice");
    assert!(run.next_page_token.is_none());
}
