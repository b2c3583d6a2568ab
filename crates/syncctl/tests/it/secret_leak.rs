//! Known secret values, set the ways users set them (environment, env files, URLs with
//! passwords), must appear nowhere: stdout, stderr, the result file, the termination log, at
//! trace log level, on success and on failure. Each command group adds its own cases in
//! `secret_leak_<group>.rs`; this file covers the shared paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

const SECRETS: [(&str, &str); 6] = [
    ("DATABRICKS_TOKEN", "dapi-leak-canary-0001"),
    ("AIRBYTE_CLIENT_SECRET", "airbyte-leak-canary-0002"),
    ("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "sf-leak-canary-0003"),
    (
        "SLACK_WEBHOOK_URL",
        // A closed loopback port: alerts are attempted and fail fast, without any network.
        "http://127.0.0.1:9/services/T0/B0/leak-canary-0004",
    ),
    ("AWS_SECRET_KEY", "aws-leak-canary-0005"),
    ("AIRBYTE_API_PASSWORD", "airbyte-pw-leak-canary-0006"),
];
const URL_PASSWORD: &str = "pg-leak-canary-0007";
const FILE_SECRET: &str = "file-leak-canary-0008";

fn assert_clean(what: &str, text: &str) {
    let mut secrets: Vec<&str> = SECRETS.iter().map(|(_, secret)| *secret).collect();
    secrets.extend([URL_PASSWORD, FILE_SECRET]);
    crate::support::assert_no_secrets(what, text, &secrets);
}

fn leaky_run(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("secrets.env");
    std::fs::write(&env_file, format!("HUBSPOT_ACCESS_TOKEN={FILE_SECRET}\n")).unwrap();
    let result_file = dir.path().join("return.json");
    let term = dir.path().join("termination-log");
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear()
        .env("SYNCCTL_LOG", "trace")
        .env(
            "SYNCCTL_STATE_URL",
            format!("postgres://syncctl:{URL_PASSWORD}@127.0.0.1:1/state"),
        )
        .args(args)
        .args(["-vv", "--output", "kestra", "--env-file"])
        .arg(&env_file)
        .arg("--result-file")
        .arg(&result_file)
        .arg("--termination-log")
        .arg(&term);
    for (k, v) in SECRETS {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_clean("stdout", &String::from_utf8_lossy(&out.stdout));
    assert_clean("stderr", &String::from_utf8_lossy(&out.stderr));
    assert_clean(
        "result file",
        &std::fs::read_to_string(&result_file).unwrap(),
    );
    if let Ok(t) = std::fs::read_to_string(&term) {
        assert_clean("termination log", &t);
    }
}

#[test]
fn doctor_at_trace_level_leaks_nothing() {
    leaky_run(&["doctor"]);
}

#[test]
fn usage_errors_that_echo_arguments_leak_nothing() {
    // The user pasted a secret where a flag was expected; clap echoes it back.
    leaky_run(&["doctor", "dapi-leak-canary-0001"]);
    leaky_run(&["doctor", "--idempotency-key", "airbyte-leak-canary-0002"]);
}

#[test]
fn notify_leaks_nothing() {
    leaky_run(&[
        "notify",
        "--message",
        "dapi-leak-canary-0001",
        "--alert-emails",
        "ops@example.com",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        "9",
        "--smtp-from",
        "alerts@example.com",
        "--smtp-username",
        "alerts",
        "--smtp-password",
        "airbyte-pw-leak-canary-0006",
    ]);
}

/// A password typed as a flag is redacted even when the alert settings around it are invalid
/// (here the same value lands in a setting that is echoed back in the config error).
#[test]
fn a_flag_password_is_redacted_when_the_alert_settings_do_not_resolve() {
    const PW: &str = "flag-pw-leak-canary-0009";
    let out = Command::cargo_bin("syncctl")
        .unwrap()
        .env_clear()
        .env("SYNCCTL_LOG", "trace")
        .args([
            "--smtp-port",
            PW,
            "--smtp-password",
            PW,
            "--enable-email",
            "true",
        ])
        .args([
            "--alert-emails",
            "ops@example.com",
            "--smtp-host",
            "127.0.0.1",
        ])
        .args(["-vv", "schema"])
        .output()
        .unwrap();
    let run = syncctl_testkit::cli::CliRun::from_output(&out);
    assert_eq!(
        run.code, 2,
        "the bad port is a config error: {}",
        run.result
    );
    let message = run.result["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("SMTP_PORT"),
        "it reached the setting: {message}"
    );
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), run.stderr);
    assert!(!all.contains(PW), "the flag password leaked:\n{all}");
}
