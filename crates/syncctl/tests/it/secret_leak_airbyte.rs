//! `syncctl airbyte` and its doctor probe at trace level, on success and failure, with both
//! APIs: the basic-auth password (and its base64 header form), the client secret, a static
//! token and every token the fake issued must appear nowhere: stdout, stderr, the result file
//! or the termination log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assert_cmd::Command;
use base64::Engine;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::airbyte::{FakeAirbyte, JobScript};

const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";
const PASSWORD: &str = "ab-pw-leak-canary-0101";
const CLIENT_SECRET: &str = "ab-secret-leak-canary-0102";
const STATIC_TOKEN: &str = "ab-token-leak-canary-0103";
const ISSUED_PREFIX: &str = "ab-issued-leak-canary";

fn fake() -> FakeAirbyte {
    FakeAirbyte::new()
        .with_basic_auth("airbyte", PASSWORD)
        .with_client("cid", CLIENT_SECRET)
        .with_static_token(STATIC_TOKEN)
        .with_token_prefix(ISSUED_PREFIX)
        // Tokens die early, so the run also goes through 401 and re-authentication.
        .with_tokens_valid_for(Duration::from_millis(250))
        .with_connection_script(
            STRIPE,
            "Stripe → Postgres",
            JobScript::new()
                .running_for(Duration::from_millis(700))
                .failed("upstream said no"),
        )
}

fn assert_clean(what: &str, text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("airbyte:{PASSWORD}"));
    crate::support::assert_no_secrets(
        what,
        text,
        &[
            PASSWORD,
            CLIENT_SECRET,
            STATIC_TOKEN,
            ISSUED_PREFIX,
            basic.as_str(),
        ],
    );
}

/// Runs the binary at trace level and checks every output; returns the exit code and stdout.
async fn leaky_run(server: &FakeServer, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let result_file = dir.path().join("return.json");
    let term = dir.path().join("termination-log");
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SYNCCTL_LOG", "trace")
        .env("SYNCCTL_HTTP_RETRY_BASE", "10ms")
        .env("AIRBYTE_API_URL", server.url())
        .args(args)
        .args([
            "-vv",
            "--output",
            "kestra",
            "--no-progress",
            "--result-file",
        ])
        .arg(&result_file)
        .arg("--termination-log")
        .arg(&term);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_clean("stdout", &stdout);
    assert_clean("stderr", &stderr);
    assert_clean(
        "result file",
        &std::fs::read_to_string(&result_file).unwrap(),
    );
    if let Ok(t) = std::fs::read_to_string(&term) {
        assert_clean("termination log", &t);
    }
    (out.status.code().unwrap_or(-1), stdout)
}

/// The `authorization` headers the fake received, in order (so a test can show the secret
/// under test was actually sent).
fn auth_headers(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

const TRIGGER: [&str; 5] = [
    "airbyte",
    "trigger",
    "--connection-id",
    STRIPE,
    "--poll-interval=50ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_api_runs_leak_nothing() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    let basic = [
        ("AIRBYTE_API_USERNAME", "airbyte"),
        ("AIRBYTE_API_PASSWORD", PASSWORD),
    ];
    let basic_header = |pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("airbyte:{pw}"))
        )
    };
    let (code, out) = leaky_run(&server, &basic, &TRIGGER).await;
    assert_eq!(code, 1, "the job failed remotely: {out}");
    assert!(
        out.contains("upstream said no"),
        "the run got as far as the failure: {out}"
    );
    let sent = auth_headers(&server);
    assert!(!sent.is_empty(), "requests were sent");
    assert!(
        sent.iter().all(|h| *h == basic_header(PASSWORD)),
        "every request carried the password under test"
    );
    let wrong = [
        ("AIRBYTE_API_USERNAME", "airbyte"),
        ("AIRBYTE_API_PASSWORD", "ab-pw-leak-canary-9999"),
    ];
    let before = auth_headers(&server).len();
    let (code, out) = leaky_run(&server, &wrong, &TRIGGER).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("\"auth\""), "{out}");
    assert!(!out.contains("ab-pw-leak-canary-9999"));
    assert_eq!(
        auth_headers(&server)[before..],
        [basic_header("ab-pw-leak-canary-9999")],
        "the wrong password was sent once and refused"
    );
    let before = auth_headers(&server).len();
    let (code, out) = leaky_run(&server, &basic, &["doctor"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        auth_headers(&server).len() > before,
        "doctor called Airbyte with the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_api_runs_leak_nothing() {
    let f = fake();
    let server = FakeServer::start(f.router()).await;
    let creds = [
        ("AIRBYTE_CLIENT_ID", "cid"),
        ("AIRBYTE_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let (code, out) = leaky_run(&server, &creds, &TRIGGER).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"failed\""), "{out}");
    assert!(f.tokens_issued() >= 2, "tokens were issued and renewed");
    assert!(f.rejected_auth() >= 1, "a 401 was answered and retried");
    let issued: Vec<String> = auth_headers(&server)
        .into_iter()
        .filter(|h| h.starts_with(&format!("Bearer {ISSUED_PREFIX}")))
        .collect();
    assert!(issued.len() >= 2, "issued tokens were used: {issued:?}");
    let (code, out) = leaky_run(&server, &creds, &["doctor"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = leaky_run(&server, &[("AIRBYTE_API_TOKEN", STATIC_TOKEN)], &TRIGGER).await;
    assert_eq!(
        code, 1,
        "the static token got as far as the job's failure: {out}"
    );
    assert!(
        auth_headers(&server).contains(&format!("Bearer {STATIC_TOKEN}")),
        "the static token was sent"
    );
    let wrong = [
        ("AIRBYTE_CLIENT_ID", "cid"),
        ("AIRBYTE_CLIENT_SECRET", "ab-secret-leak-canary-9999"),
    ];
    let tokens_before = server
        .requests_to(&axum::http::Method::POST, "/applications/token")
        .len();
    let (code, out) = leaky_run(&server, &wrong, &TRIGGER).await;
    assert_eq!(code, 3, "{out}");
    assert!(!out.contains("ab-secret-leak-canary-9999"));
    assert!(
        server
            .requests_to(&axum::http::Method::POST, "/applications/token")
            .len()
            > tokens_before,
        "the wrong secret was sent to the token endpoint"
    );
}
