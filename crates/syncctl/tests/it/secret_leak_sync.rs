//! Secrets never leak from `syncctl sync`: passwords in state URLs (flag, environment, config)
//! and in connector URLs interpolated from `${VAR}`, at trace level, on success and failure,
//! are absent from stdout, stderr and the result file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{Quickstart, pg_url};
use syncctl_testkit::cli::CliRun;

const STATE_PW: &str = "StatePw-9c41e7d2";
const CRM_PW: &str = "CrmPw-55aa91be";

/// The PostgreSQL URL with a password (the local server trusts it, so any password works).
fn with_password(url: &str, pw: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}:{pw}@{host}")
}

fn assert_clean(q: &Quickstart, r: &CliRun, what: &str) {
    let result_file = std::fs::read_to_string(q.path("result.json")).unwrap_or_default();
    for (name, text) in [
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
        ("result file", &result_file),
    ] {
        crate::support::assert_no_secrets(&format!("{what}: {name}"), text, &[STATE_PW, CRM_PW]);
    }
}

fn trace(q: &Quickstart, args: &[&str], envs: &[(&str, String)]) -> CliRun {
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(q.dir.path())
        .env("SYNCCTL_LOG", "trace")
        .args(["-vv", "--result-file"])
        .arg(q.path("result.json"))
        .arg("sync")
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    CliRun::from_output(&cmd.output().unwrap())
}

#[tokio::test]
async fn passwords_in_state_and_connector_urls_never_appear() {
    let q = Quickstart::new();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    // A run's lock on a PostgreSQL store is an advisory lock keyed by the sync's name, which the
    // whole database shares across schemas: under the quickstart's own name, a run here exits 6
    // whenever another test (sync_lock holds it on purpose) or another checkout's test run
    // holds the quickstart's lock in the same database.
    q.edit_config(|t| t.replace("name: quickstart-contacts", &format!("name: leak-{unique}")));
    let schema = format!("syncctl_leak_{unique}");
    let state = format!("{}?schema={schema}", with_password(&pg_url(), STATE_PW));
    let config = q.config();

    // Success paths with the password in SYNCCTL_STATE_URL, then in --state-url.
    let env = [("SYNCCTL_STATE_URL", state.clone())];
    let r = trace(&q, &["run", "--config", &config], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("TRACE") || r.stderr.contains("DEBUG"),
        "trace logging is on"
    );
    assert_clean(&q, &r, "run");
    for args in [
        vec!["plan", "--config", &config],
        vec!["history", "--config", &config],
        vec!["conflicts", "list", "--config", &config],
        vec!["check", "--config", &config],
    ] {
        let r = trace(&q, &args, &env);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_clean(&q, &r, &args.join(" "));
    }
    let r = trace(
        &q,
        &["run", "--config", &config, "--state-url", &state],
        &[],
    );
    assert_eq!(r.code, 0);
    assert_clean(&q, &r, "run --state-url");

    // Failure paths: a database that refuses (fast; an unreachable host is retried for 30 s),
    // a bad scheme, and a connector URL from ${VAR}.
    let base = pg_url();
    let (scheme_host, _) = base.rsplit_once('/').unwrap();
    let missing_db = with_password(&format!("{scheme_host}/no_such_db_syncctl"), STATE_PW);
    let r = trace(
        &q,
        &["run", "--config", &config, "--state-url", &missing_db],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.result);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_db_syncctl")
    );
    assert_clean(&q, &r, "missing state database");
    let r = trace(
        &q,
        &[
            "history",
            "--state-url",
            &format!("mysql://root:{STATE_PW}@127.0.0.1/x"),
        ],
        &[],
    );
    assert_eq!(r.code, 2);
    assert_clean(&q, &r, "bad state scheme");
    q.edit_config(|t| {
        t.replace(
            "target: {connector: sqlite, url: \"sqlite://work/crm.db\", object: customers, updated_at_column: updated_at}",
            "target: {connector: postgres, url: \"postgres://crm:${CRM_DB_PASSWORD}@127.0.0.1:5432/no_such_db_syncctl\", object: customers}",
        )
    });
    let r = trace(
        &q,
        &["run", "--config", &config],
        &[("CRM_DB_PASSWORD", CRM_PW.to_owned())],
    );
    assert_ne!(r.code, 0);
    assert_clean(&q, &r, "connector url");
    let r = trace(
        &q,
        &["check", "--config", &config],
        &[("CRM_DB_PASSWORD", CRM_PW.to_owned())],
    );
    assert_ne!(r.code, 0);
    assert_clean(&q, &r, "check with connector url");

    let admin = sqlx::PgPool::connect(&pg_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}
