//! The orchestrator contract, end to end through the real binary: one JSON result as the last
//! stdout line on every path, result file and termination log, Kestra lines, exit codes,
//! settings precedence and the committed JSON Schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use assert_cmd::Command;
use syncctl_testkit::cli::CliRun;

fn syncctl() -> Command {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    // A clean environment: the developer's own SYNCCTL_* or Airflow variables must not leak in.
    cmd.env_clear().env("NO_COLOR", "1");
    cmd
}

fn run(cmd: &mut Command) -> CliRun {
    CliRun::from_output(&cmd.output().unwrap())
}

#[test]
fn help_lists_every_group_and_the_exit_codes() {
    let out = syncctl().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("help", help);
    for group in [
        "airbyte",
        "dbx",
        "snowflake",
        "sync",
        "notify",
        "doctor",
        "schema",
        "Exit codes:",
        "143",
    ] {
        assert!(help.contains(group), "{group} missing from --help");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error_with_a_result_line() {
    let r = run(syncctl().args(["doctor", "--no-such-flag"]));
    assert_eq!(r.code, 2);
    assert_eq!(r.status(), "failed");
    assert_eq!(r.error_class(), Some("usage"));
    assert_eq!(r.result["command"], "doctor");
    assert_eq!(r.result["error"]["retryable"], false);
    assert!(
        r.stderr.contains("unexpected argument '--no-such-flag'"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "exactly one line on stdout: {}",
        r.stdout
    );
}

#[test]
fn no_command_at_all_is_a_usage_error() {
    let r = run(&mut syncctl());
    assert_eq!(r.code, 2);
    assert_eq!(r.error_class(), Some("usage"));
    assert!(
        r.stderr.contains("Usage:"),
        "help goes to stderr: {}",
        r.stderr
    );
}

#[test]
fn a_usage_error_still_writes_the_result_file_and_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let result_file = dir.path().join("xcom/return.json");
    let term = dir.path().join("termination-log");
    let r = run(syncctl()
        .args(["doctor", "--bogus"])
        .arg(format!("--result-file={}", result_file.display()))
        .args(["--termination-log", term.to_str().unwrap()]));
    assert_eq!(r.code, 2);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(
        file, r.result,
        "the file holds the same result as the last line"
    );
    let reason = std::fs::read_to_string(&term).unwrap();
    assert!(
        reason.starts_with("failed (usage): unexpected argument"),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1);
}

#[test]
fn the_result_file_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let result_file = dir.path().join("r.json");
    let r = run(syncctl()
        .arg("doctor")
        .env("SYNCCTL_RESULT_FILE", &result_file));
    assert_eq!(r.code, 0);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(file["run_id"], r.result["run_id"]);
}

#[test]
fn notify_without_a_channel_is_a_config_error() {
    let r = run(syncctl().args(["notify", "--title", "x"]));
    assert_eq!(r.code, 2);
    assert_eq!(r.result["command"], "notify");
    assert_eq!(r.error_class(), Some("config"));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no alert channel is configured")
    );
}

#[test]
fn doctor_succeeds_with_nothing_configured_and_says_so() {
    let r = run(syncctl().arg("doctor"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.status(), "succeeded");
    assert!(r.result["error"].is_null());
    insta::assert_json_snapshot!("doctor_unconfigured", r.result, {
        ".run_id" => "[run_id]", ".started_at" => "[ts]", ".finished_at" => "[ts]", ".duration_ms" => "[ms]",
        ".data.services" => "[services]",
    });
}

#[test]
fn kestra_mode_prints_outputs_and_metrics_then_the_result_with_logs_on_stdout() {
    let r = run(syncctl().args(["doctor", "--output", "kestra", "-v"]));
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 3, "{}", r.stdout);
    let outputs = lines[n - 3]
        .strip_prefix("::")
        .and_then(|l| l.strip_suffix("::"))
        .expect("outputs line");
    let outputs: serde_json::Value = serde_json::from_str(outputs).unwrap();
    assert_eq!(outputs["outputs"]["status"], "succeeded");
    assert_eq!(outputs["outputs"]["run_id"], r.result["run_id"]);
    let metrics = lines[n - 2]
        .strip_prefix("::")
        .and_then(|l| l.strip_suffix("::"))
        .expect("metrics line");
    let metrics: serde_json::Value = serde_json::from_str(metrics).unwrap();
    assert_eq!(metrics["metrics"][0]["name"], "duration");
    assert_eq!(metrics["metrics"][0]["type"], "timer");
    assert!(
        r.stdout.contains("DEBUG"),
        "logs go to stdout in Kestra mode: {}",
        r.stdout
    );
    assert!(
        !r.stderr.contains("DEBUG"),
        "and not to stderr: {}",
        r.stderr
    );
}

#[test]
fn kestra_mode_from_the_environment() {
    let r = run(syncctl().arg("doctor").env("SYNCCTL_OUTPUT", "kestra"));
    assert!(
        r.stdout.lines().any(|l| l.starts_with("::{\"outputs\"")),
        "{}",
        r.stdout
    );
}

#[test]
fn text_mode_adds_a_summary_on_stderr() {
    let r = run(syncctl().args(["doctor", "--output", "text"]));
    assert!(
        r.stderr.contains("syncctl doctor: succeeded (exit 0)"),
        "{}",
        r.stderr
    );
}

#[test]
fn flags_beat_env_and_env_beats_env_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.env");
    std::fs::write(&file, "SYNCCTL_IDEMPOTENCY_KEY=from-file\n").unwrap();
    let key = |cmd: &mut Command| {
        run(cmd).result["data"]["idempotency_key"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        key(syncctl().args(["doctor", "--env-file"]).arg(&file)).as_deref(),
        Some("from-file")
    );
    assert_eq!(
        key(syncctl()
            .args(["doctor", "--env-file"])
            .arg(&file)
            .env("SYNCCTL_IDEMPOTENCY_KEY", "from-env"))
        .as_deref(),
        Some("from-env")
    );
    assert_eq!(
        key(syncctl()
            .args(["doctor", "--idempotency-key", "from-flag", "--env-file"])
            .arg(&file)
            .env("SYNCCTL_IDEMPOTENCY_KEY", "from-env"))
        .as_deref(),
        Some("from-flag")
    );
    // SYNCCTL_ENV_FILE names a file when no flag does.
    assert_eq!(
        key(syncctl().arg("doctor").env("SYNCCTL_ENV_FILE", &file)).as_deref(),
        Some("from-file")
    );
}

#[test]
fn the_airflow_context_derives_the_idempotency_key() {
    let r = run(syncctl()
        .arg("doctor")
        .env("AIRFLOW_CTX_DAG_ID", "daily_etl")
        .env(
            "AIRFLOW_CTX_DAG_RUN_ID",
            "scheduled__2025-10-30T00:00:00+00:00",
        )
        .env("AIRFLOW_CTX_TASK_ID", "load")
        .env("AIRFLOW_CTX_TRY_NUMBER", "2"));
    assert_eq!(r.result["data"]["orchestrator"], "airflow");
    assert_eq!(
        r.result["idempotency_key"],
        "airflow:daily_etl:scheduled__2025-10-30T00:00:00+00:00:load"
    );
}

#[test]
fn a_missing_env_file_is_a_config_error() {
    let r = run(syncctl().args(["doctor", "--env-file", "/nonexistent/secrets.env"]));
    assert_eq!(r.code, 2);
    assert_eq!(r.error_class(), Some("config"));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read env file")
    );
}

#[test]
fn an_invalid_noop_exit_code_is_a_usage_error() {
    let r = run(syncctl()
        .arg("doctor")
        .env("SYNCCTL_NOOP_EXIT_CODE", "ninety-nine"));
    assert_eq!(r.code, 2);
    assert_eq!(r.error_class(), Some("usage"));
}

#[test]
fn help_and_version_go_to_stdout_and_exit_0() {
    let out = syncctl().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("syncctl "));
}

fn schema_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/result.v1.schema.json")
}

#[test]
fn the_committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(schema_file()).unwrap_or_default();
    let generated = syncctl_core::RunResult::json_schema();
    assert!(
        committed == generated,
        "docs/result.v1.schema.json is stale; regenerate it with\n  cargo run -p syncctl -- schema --raw > docs/result.v1.schema.json"
    );
    // `syncctl schema` reports the same document as its data; `--raw` prints it bare.
    let r = run(syncctl().arg("schema"));
    assert_eq!(
        r.result["data"],
        serde_json::from_str::<serde_json::Value>(&committed).unwrap()
    );
    let raw = syncctl().args(["schema", "--raw"]).output().unwrap();
    assert_eq!(String::from_utf8(raw.stdout).unwrap(), committed);
}

#[test]
fn every_result_field_is_in_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_file()).unwrap()).unwrap();
    let r = run(syncctl().args(["doctor", "--bogus"]));
    let props = schema["properties"].as_object().unwrap();
    for key in r.result.as_object().unwrap().keys() {
        assert!(props.contains_key(key), "{key} is not in the schema");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "schema",
        "command",
        "status",
        "exit_code",
        "run_id",
        "started_at",
        "finished_at",
        "duration_ms",
        "data",
        "warnings",
        "error",
    ] {
        assert!(required.contains(&key), "{key} must be required");
    }
}

#[test]
fn syncctl_log_takes_a_full_filter() {
    let r = run(syncctl()
        .arg("doctor")
        .env("SYNCCTL_LOG", "warn,syncctl=debug"));
    assert!(
        r.stderr.contains("Starting."),
        "the debug line passes the filter: {}",
        r.stderr
    );
    let r = run(syncctl().arg("doctor").env("SYNCCTL_LOG", "error"));
    assert!(!r.stderr.contains("Starting."), "{}", r.stderr);
}
