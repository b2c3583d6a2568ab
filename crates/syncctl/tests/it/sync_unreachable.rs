//! An unreachable SQL source or target (not only the state store) fails within seconds, names
//! the real cause (connection refused, DNS), logs each retry at `-v`, and gets the same class
//! and exit code from `sync run`, `sync plan` and `sync check`. Driven through the binary with
//! a closed port and an unresolvable host for PostgreSQL and MySQL; nothing needs to listen.
//! "Within seconds" is checked by what bounds it, not by a clock: each unreachable endpoint gets
//! the connector's few direct attempts (every retry logged at `-v`) and no more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use syncctl_testkit::cli::CliRun;

/// Direct connection attempts per unreachable endpoint (`CONNECT_ATTEMPTS` in syncctl-sql).
const CONNECT_ATTEMPTS: usize = 3;

/// A config whose source and target both live at `url` (`kind` is the connector); the state
/// store is a local SQLite file, so only the databases can fail.
fn config(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
    let yaml = format!(
        r#"name: kit-unreachable
source: {{connector: {kind}, url: "${{DB_URL}}", object: kit_contacts}}
target: {{connector: {kind}, url: "${{DB_URL}}", object: kit_customers}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
direction: source_to_target
state: "sqlite://state.db"
"#
    );
    let path = dir.join("sync.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sync(dir: &std::path::Path, url: &str, args: &[&str]) -> CliRun {
    let out = crate::support::syncctl()
        .current_dir(dir)
        .env("DB_URL", url)
        .arg("sync")
        .args(args)
        .arg("--config")
        .arg(dir.join("sync.yaml"))
        .output()
        .unwrap();
    CliRun::from_output(&out)
}

/// The retries logged at `-v`: `CONNECT_ATTEMPTS - 1` per endpoint that could not be reached.
fn retries_logged(stderr: &str) -> usize {
    stderr.matches("Connection failed; retrying").count()
}

#[test]
fn an_unreachable_database_names_the_cause_with_one_class_from_run_plan_and_check() {
    let cases = [
        ("postgres", "postgres://kit@127.0.0.1:1/test", "refused"),
        (
            "postgres",
            "postgres://kit@kit-no-such-host.invalid/test",
            "lookup",
        ),
        ("mysql", "mysql://root@127.0.0.1:1/test", "refused"),
        (
            "mysql",
            "mysql://root@kit-no-such-host.invalid/test",
            "lookup",
        ),
    ];
    for (kind, url, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), kind);
        for command in ["run", "plan", "check"] {
            let r = sync(dir.path(), url, &[command, "-v"]);
            let what = format!("{kind} {url} sync {command}");
            assert_eq!(
                (r.code, r.error_class()),
                (4, Some("transient")),
                "{what}: {}",
                r.result
            );
            let message = r.result["error"]["message"].as_str().unwrap().to_owned();
            let detail = r.result.to_string().to_lowercase();
            assert!(
                detail.contains(cause) && !detail.contains("pool timed out"),
                "{what}: the result does not name the cause ({cause}): {}",
                r.result
            );
            assert!(
                !message.is_empty() && detail.contains(&format!("{kind}://")),
                "{what}: the result does not name the endpoint: {}",
                r.result
            );
            // `check` tries both sides and reports both; `run` and `plan` stop at the first
            // unreachable side. Either way each endpoint gets its attempts once, not again.
            let endpoints_tried = if command == "check" { 2 } else { 1 };
            assert_eq!(
                retries_logged(&r.stderr),
                endpoints_tried * (CONNECT_ATTEMPTS - 1),
                "{what}: retries logged at -v:\n{}",
                r.stderr
            );
        }
        // Without -v the retries stay quiet.
        let r = sync(dir.path(), url, &["check"]);
        assert!(!r.stderr.contains("retrying"), "{kind} {url}: {}", r.stderr);
    }
}

#[test]
fn a_wrong_connector_setting_is_a_config_error_even_with_the_state_store_unreachable() {
    // The state store is a closed port: were it opened before the connectors are built, its
    // connection failure (transient, exit 4) would hide the misspelt setting.
    let q = crate::support::Quickstart::new();
    q.edit_config(|c| {
        c.replace(
            "path: work/contacts.csv",
            "path: work/contacts.csv, delimeter: \";\"",
        )
        .replace(
            "state: \"sqlite://work/state.db\"",
            "state: \"postgres://kit@127.0.0.1:1/test\"",
        )
    });
    for command in ["run", "plan", "check"] {
        let r = q.sync(&[command]);
        assert_eq!(
            (r.code, r.error_class()),
            (2, Some("config")),
            "sync {command}: {}",
            r.result
        );
        let message = r.result["error"]["message"].as_str().unwrap();
        assert!(message.contains("delimeter"), "sync {command}: {message}");
    }
    // The store alone unreachable is still transient.
    q.edit_config(|c| c.replace(", delimeter: \";\"", ""));
    let r = q.sync(&["run"]);
    assert_eq!(
        (r.code, r.error_class()),
        (4, Some("transient")),
        "{}",
        r.result
    );
}
