//! One waiter: `airbyte trigger`, `dbx run-now` and `snowflake copy` read the same waiting
//! flags and variables the same way. Each case runs against all three services' fakes with
//! work that never finishes, and checks the exit code and whether a cancel was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::cli::CliRun;

use crate::support::WaitingService;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiting_command_reads_the_clocks_the_same_way() {
    // (flags, variables, exit code, status, whether a cancel is sent)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        i32,
        &'static str,
        bool,
    );
    let cases: [Case; 4] = [
        // --wait-timeout stops waiting and leaves the work running.
        (&["--wait-timeout", "300ms"], &[], 5, "timed_out", false),
        // The same through the variable.
        (
            &[],
            &[("SYNCCTL_WAIT_TIMEOUT", "300ms")],
            5,
            "timed_out",
            false,
        ),
        // --deadline cancels it; given as a variable here, with the grace from a variable.
        (
            &[],
            &[("SYNCCTL_DEADLINE", "300ms"), ("SYNCCTL_KILL_GRACE", "2s")],
            5,
            "timed_out",
            true,
        ),
        // A flag wins over its variable.
        (
            &["--deadline", "300ms"],
            &[("SYNCCTL_DEADLINE", "1h")],
            5,
            "timed_out",
            true,
        ),
    ];
    for (flags, vars, code, status, cancels) in cases {
        for service in WaitingService::all().await {
            let r = service.run(flags, vars).await;
            let what = format!("{} {flags:?} {vars:?}", service.name);
            assert_eq!(r.code, code, "{what}: {}", r.stderr);
            assert_eq!(r.status(), status, "{what}");
            let starts = service
                .server
                .requests_to(&Method::POST, service.start_path)
                .into_iter()
                .filter(|r| !r.path.ends_with(service.cancel_path))
                .count();
            assert_eq!(starts, 1, "{what}: the work was started once");
            let cancel_calls = service
                .server
                .requests_to(&Method::POST, service.cancel_path)
                .len();
            assert_eq!(
                cancel_calls > 0,
                cancels,
                "{what}: {cancel_calls} cancel call(s)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_waiting_values_exit_2_before_anything_is_sent() {
    // (flags, variables, what the message says)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            &["--kill-grace", "30s"],
            &[],
            "--kill-grace must be at most 27s",
        ),
        (
            &["--poll-interval", "0s"],
            &[],
            "--poll-interval must be longer than 0s",
        ),
        (&[], &[("SYNCCTL_DEADLINE", "soon")], "SYNCCTL_DEADLINE"),
        (
            &[],
            &[("SYNCCTL_ON_KILL", "stop")],
            "SYNCCTL_ON_KILL must be cancel or leave",
        ),
    ];
    for (flags, vars, message) in cases {
        for service in WaitingService::all().await {
            let r = service.run(flags, vars).await;
            let what = format!("{} {flags:?} {vars:?}", service.name);
            assert_eq!(r.code, 2, "{what}: {}", r.stderr);
            let got = r.result["error"]["message"].as_str().unwrap_or_default();
            assert!(got.contains(message), "{what}: {got}");
            assert!(
                service.server.requests().is_empty(),
                "{what}: nothing is sent"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_commands_take_kill_grace_not_wait_timeout() {
    for args in [
        ["airbyte", "cancel", "--job-id", "1", "--wait-timeout", "1m"],
        ["dbx", "cancel", "--run-id", "1", "--wait-timeout", "1m"],
    ] {
        let mut cmd = Command::cargo_bin("syncctl").unwrap();
        cmd.env_clear().args(args);
        let r = CliRun::from_output(&cmd.output().unwrap());
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("--wait-timeout"), "{}", r.stderr);
    }
}
