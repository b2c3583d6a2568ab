//! Every service's refusals as the service words them, through the binary: 403 is auth
//! (exit 3), 404 is config (exit 2), 500 and 503 are transient (exit 4). The fakes' own
//! `error_fault` gives each vendor's status, headers and body; each case also checks that the
//! command reached the service (the fake's request log) and that the result quotes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use syncctl_testkit::Fault;
use syncctl_testkit::cli::CliRun;

use crate::support::WaitingService;

/// The service's command with one retry: each refusal is final soon.
async fn run(s: &WaitingService) -> CliRun {
    s.run(
        &[],
        &[
            ("SYNCCTL_HTTP_MAX_RETRIES", "1"),
            ("SYNCCTL_HTTP_RETRY_BASE", "5ms"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_refusals_map_to_their_exit_codes() {
    // (status, exit code, error class)
    let cases = [
        (403, 3, "auth"),
        (404, 2, "config"),
        (500, 4, "transient"),
        (503, 4, "transient"),
    ];
    let mut checked = 0;
    for (status, code, class) in cases {
        for service in WaitingService::all().await {
            let what = format!("{} HTTP {status}", service.name);
            // Every request from here on gets the vendor's answer (retries included).
            service
                .server
                .inject_on(None, "/", (service.fault)(status), 1_000);
            let r = run(&service).await;
            assert_eq!(r.code, code, "{what}: {}\n{}", r.result, r.stderr);
            assert_eq!(r.result["error"]["class"], class, "{what}: {}", r.result);
            assert_eq!(
                r.result["error"]["retryable"],
                class == "transient",
                "{what}: {}",
                r.result
            );
            // The command got as far as the service: the refusal came from the fake.
            let sent = service.server.requests();
            assert!(!sent.is_empty(), "{what}: nothing was sent");
            let message = r.result["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&status.to_string()),
                "{what}: the message names the status: {message}"
            );
            // ... and quotes what the service said.
            let Fault::Answer { body, .. } = (service.fault)(status) else {
                unreachable!("error_fault answers")
            };
            let said = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            let said: String = said.chars().take(40).collect();
            assert!(
                message.contains(&said),
                "{what}: {message} does not quote {said:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_invalid_token_is_auth_and_quotes_databricks() {
    let mut bad = WaitingService::dbx().await;
    bad.vars.retain(|(k, _)| *k != "DATABRICKS_TOKEN");
    bad.vars.push(("DATABRICKS_TOKEN", "dapi-revoked".into()));
    let r = run(&bad).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let message = r.result["error"]["message"].as_str().unwrap();
    assert!(message.contains("Invalid access token."), "{message}");
    // A personal access token cannot be refreshed: one request, no retry.
    assert_eq!(bad.server.requests().len(), 1);
    assert!(!r.stderr.contains("dapi-revoked") && !r.result.to_string().contains("dapi-revoked"));
}
