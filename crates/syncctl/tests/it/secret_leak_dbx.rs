//! Databricks secrets (a PAT, an OAuth client secret, the OAuth access tokens syncctl obtains,
//! and credentials read from a ~/.databrickscfg profile rather than the environment) appear
//! nowhere: stdout, stderr at trace level, the result file, the termination log, Kestra lines,
//! on success and on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use assert_cmd::Command;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::databricks::{DatabricksFake, FakeJob, TaskOutcome};

const PAT: &str = "dapi-leak-canary-dbx-0001";
const CLIENT_SECRET: &str = "dbx-client-secret-leak-canary-0002";
const PROFILE_TOKEN: &str = "dapi-profile-leak-canary-0003";
const PROFILE_SECRET: &str = "profile-secret-leak-canary-0004";
const WRONG_PAT: &str = "dapi-wrong-leak-canary-0005";

const ALL: [&str; 5] = [PAT, CLIENT_SECRET, PROFILE_TOKEN, PROFILE_SECRET, WRONG_PAT];

fn assert_clean(what: &str, text: &str) {
    crate::support::assert_no_secrets(what, text, &ALL);
    // OAuth access tokens the fake issued (never known to the user) must not show either.
    crate::support::assert_no_secrets(what, text, &["fake-oauth-"]);
}

async fn fake() -> (DatabricksFake, FakeServer) {
    let fake = DatabricksFake::new()
        .with_pat(PAT)
        .with_pat(PROFILE_TOKEN)
        .with_client("sp-env", CLIENT_SECRET)
        .with_client("sp-profile", PROFILE_SECRET)
        .job(FakeJob::new(1, "ok"))
        .job(FakeJob::new(2, "bad").task("t", TaskOutcome::Failed("boom".into())));
    let server = FakeServer::start(fake.router()).await;
    (fake, server)
}

/// Runs syncctl at trace level with every transport on and checks every output.
async fn leaky_run(env: Vec<(&'static str, String)>, args: Vec<String>, dir: &Path) -> i32 {
    let result_file = dir.join("return.json");
    let term = dir.join("termination-log");
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SYNCCTL_LOG", "trace")
        .env("SYNCCTL_HTTP_MAX_RETRIES", "0")
        .args(&args)
        .args(["-vv", "--output", "kestra", "--result-file"])
        .arg(&result_file)
        .arg("--termination-log")
        .arg(&term);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_clean("stdout", &String::from_utf8_lossy(&out.stdout));
    assert_clean("stderr", &String::from_utf8_lossy(&out.stderr));
    assert_clean(
        "result file",
        &std::fs::read_to_string(&result_file).unwrap(),
    );
    if let Ok(t) = std::fs::read_to_string(&term) {
        assert_clean("termination log", &t);
    }
    out.status.code().unwrap_or(-1)
}

/// How many requests the fake received with `Bearer {token}`.
fn sent_with(server: &FakeServer, token: &str) -> usize {
    let want = format!("Bearer {token}");
    server
        .requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(want.as_str()))
        .count()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pat_never_shows_on_success_failure_or_refusal() {
    let (_fake, server) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let env = |token: &str| {
        vec![
            ("DATABRICKS_HOST", server.url()),
            ("DATABRICKS_TOKEN", token.to_owned()),
        ]
    };
    let run_now = |job: &str| {
        args(&[
            "dbx",
            "run-now",
            "--job-id",
            job,
            "--poll-interval",
            "10ms",
            "--fresh-run",
        ])
    };
    assert_eq!(leaky_run(env(PAT), run_now("1"), dir.path()).await, 0);
    assert_eq!(leaky_run(env(PAT), run_now("2"), dir.path()).await, 1);
    assert!(sent_with(&server, PAT) >= 2, "the PAT was used");
    assert_eq!(leaky_run(env(WRONG_PAT), run_now("1"), dir.path()).await, 3);
    assert_eq!(
        sent_with(&server, WRONG_PAT),
        1,
        "the wrong PAT was sent once and refused"
    );
    assert_eq!(
        leaky_run(
            env(PAT),
            args(&["doctor", "--service", "databricks"]),
            dir.path()
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_secrets_and_access_tokens_never_show() {
    let (fake, server) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let env = |secret: &str| {
        vec![
            ("DATABRICKS_HOST", server.url()),
            ("DATABRICKS_CLIENT_ID", "sp-env".to_owned()),
            ("DATABRICKS_CLIENT_SECRET", secret.to_owned()),
        ]
    };
    let run_now = args(&[
        "dbx",
        "run-now",
        "--job-id",
        "2",
        "--poll-interval",
        "10ms",
        "--fresh-run",
    ]);
    assert_eq!(
        leaky_run(env(CLIENT_SECRET), run_now.clone(), dir.path()).await,
        1
    );
    assert!(fake.token_requests() >= 1);
    let issued = server
        .requests()
        .iter()
        .filter(|r| {
            r.header("authorization")
                .is_some_and(|h| h.starts_with("Bearer fake-oauth-"))
        })
        .count();
    assert!(
        issued >= 2,
        "the issued access token was used ({issued} calls)"
    );
    // A refused secret is an auth error whose message does not echo it.
    let token_calls = || {
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/oidc/v1/token")
            .count()
    };
    let before = token_calls();
    assert_eq!(leaky_run(env(PROFILE_SECRET), run_now, dir.path()).await, 3);
    assert!(
        token_calls() > before,
        "the refused secret was sent to the token endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_read_from_a_profile_are_scrubbed_too() {
    let (_fake, server) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("databrickscfg");
    std::fs::write(
        &cfg,
        format!(
            "[pat]\nhost = {url}\ntoken = {PROFILE_TOKEN}\n\n[m2m]\nhost = {url}\nclient_id = sp-profile\nclient_secret = {PROFILE_SECRET}\n",
            url = server.url()
        ),
    )
    .unwrap();
    let env = vec![("DATABRICKS_CONFIG_FILE", cfg.to_string_lossy().into_owned())];
    for profile in ["pat", "m2m"] {
        let code = leaky_run(
            env.clone(),
            args(&[
                "dbx",
                "run-now",
                "--job-id",
                "2",
                "--poll-interval",
                "10ms",
                "--fresh-run",
                "--profile",
                profile,
            ]),
            dir.path(),
        )
        .await;
        assert_eq!(code, 1, "profile {profile}");
    }
    assert!(
        sent_with(&server, PROFILE_TOKEN) >= 2,
        "the profile's token was used"
    );
    assert!(
        server.requests().iter().any(|r| r.path == "/oidc/v1/token"),
        "the profile's client secret was used"
    );
}
