//! The quickstart end to end through the binary: CSV "spreadsheet" ⇄ SQLite "CRM". Plan writes
//! nothing; the run creates both ways and rejects the invalid row; a second run changes
//! nothing; edits on both sides merge; the same field edited on both sides is settled by the
//! strategy, or queued with `manual`, listed, resolved (next run, `--apply`, a values file);
//! history and show read the audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{Quickstart, redactions};
use serde_json::json;
use syncctl_testkit::cli::CliRun;

fn snapshot(name: &str, r: &CliRun) {
    let mut settings = insta::Settings::clone_current();
    for (selector, replacement) in redactions() {
        settings.add_redaction(selector, replacement);
    }
    settings.bind(|| insta::assert_json_snapshot!(name, r.result));
}

fn writes(r: &CliRun) -> u64 {
    ["source", "target"]
        .iter()
        .flat_map(|s| {
            ["created", "updated", "deleted"].map(|k| r.result["data"][s][k].as_u64().unwrap())
        })
        .sum()
}

#[tokio::test]
async fn plan_writes_nothing_then_run_syncs_both_ways_and_a_rerun_changes_nothing() {
    let q = Quickstart::new();
    let csv_before = std::fs::read(q.path("work/contacts.csv")).unwrap();
    let crm_before = std::fs::read(q.path("work/crm.db")).unwrap();

    let plan = q.sync(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.status(), "planned");
    assert_eq!(plan.result["dry_run"], true);
    snapshot("sync_quickstart_plan", &plan);
    assert_eq!(
        std::fs::read(q.path("work/contacts.csv")).unwrap(),
        csv_before,
        "plan wrote the CSV"
    );
    assert_eq!(
        std::fs::read(q.path("work/crm.db")).unwrap(),
        crm_before,
        "plan wrote the CRM"
    );
    assert!(
        !q.path("work/state.db").exists(),
        "plan created the state store"
    );

    let run = q.sync(&["run", "--show-plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "succeeded");
    snapshot("sync_quickstart_run", &run);
    // The plan was exactly what the run did.
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for e in v.as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("status");
        }
        v
    };
    assert_eq!(
        strip(&plan.result["data"]["plan"]),
        strip(&run.result["data"]["plan"])
    );

    let csv = q.csv();
    let crm = q.crm().await;
    let emails =
        |m: &std::collections::BTreeMap<String, _>| m.keys().cloned().collect::<Vec<String>>();
    let mut valid = emails(&csv);
    valid.retain(|e| e != "not-an-email");
    assert_eq!(valid, emails(&crm), "same people on both sides");
    assert_eq!(
        crm["grace@example.com"]["phone"], "+12025550143",
        "e164 on the way in"
    );
    assert_eq!(
        crm["grace@example.com"]["stage"], "lead",
        "unmapped columns keep their defaults"
    );
    assert_eq!(csv["linus@example.com"]["company"], "Linux Foundation");
    assert!(!crm.contains_key("not-an-email"));
    assert_eq!(
        run.result["data"]["rejected"][0]["reasons"][0],
        "target: email is not an email address"
    );
    assert!(
        run.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("1 record was rejected")
    );

    let again = q.sync(&["run"]);
    assert_eq!(again.code, 0);
    assert_eq!(writes(&again), 0, "{}", again.result);
    assert_eq!(again.result["data"]["conflicts"]["detected"], 0);
}

#[tokio::test]
async fn edits_on_both_sides_merge_and_the_latest_edit_of_a_field_wins() {
    let q = Quickstart::new();
    assert_eq!(q.sync(&["run"]).code, 0);
    // Different fields of one record: both changes survive.
    q.csv_edit("US Navy", "Yale");
    q.crm_exec("UPDATE customers SET phone = '+12025550199', updated_at = '2099-01-01 00:00:00' WHERE email = 'grace@example.com'").await;
    // The same field on both sides: the CRM's edit is later (its updated_at) than the file's.
    q.csv_edit("Ada,Lovelace", "Ada,King");
    q.crm_exec("UPDATE customers SET family_name = 'Byron', updated_at = '2099-01-01 00:00:00' WHERE email = 'ada@example.com'").await;
    let r = q.sync(&["run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (csv, crm) = (q.csv(), q.crm().await);
    assert_eq!(crm["grace@example.com"]["company"], "Yale");
    assert_eq!(csv["grace@example.com"]["phone"], "+12025550199");
    assert_eq!(csv["ada@example.com"]["last_name"], "Byron");
    assert_eq!(crm["ada@example.com"]["family_name"], "Byron");
    let c = &r.result["data"]["conflicts"];
    assert_eq!(
        (
            c["detected"].as_u64(),
            c["resolved"].as_u64(),
            c["queued"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(c["items"][0]["outcome"], "target");
    assert_eq!(
        c["items"][0]["fields"]["last_name"],
        json!({"base": "Lovelace", "source": "King", "target": "Byron", "winner": "target"})
    );
    assert!(
        c["items"][0]["id"].is_i64(),
        "settled conflicts are audited too"
    );
    let closed = q.sync(&["conflicts", "list", "--status", "closed"]);
    assert_eq!(
        closed.result["data"]["conflicts"][0]["status"],
        "auto_resolved"
    );
    assert_eq!(writes(&q.sync(&["run"])), 0);
}

#[tokio::test]
async fn manual_conflicts_are_queued_listed_and_resolved_on_the_next_run_or_at_once() {
    let q = Quickstart::new();
    q.edit_config(|t| t.replace("conflict_strategy: latest", "conflict_strategy: manual"));
    assert_eq!(q.sync(&["run"]).code, 0);
    q.csv_edit("Ada,Lovelace", "Ada,King");
    q.crm_exec("UPDATE customers SET family_name = 'Byron', company = 'Babbage & Co' WHERE email = 'ada@example.com'").await;
    q.csv_edit("Alan,Turing", "Alan M.,Turing");
    q.crm_exec("UPDATE customers SET given_name = 'A. M.' WHERE email = 'alan@example.com'")
        .await;

    let r = q.sync(&["run"]);
    assert_eq!(
        r.code, 0,
        "queued conflicts do not fail a run: {}",
        r.stderr
    );
    assert_eq!(r.result["data"]["conflicts"]["queued"], 2);
    assert!(
        r.result["warnings"]
            .to_string()
            .contains("2 conflicts are queued")
    );
    // Untouched on both sides, the non-conflicting company change included.
    assert_eq!(q.csv()["ada@example.com"]["company"], "Analytical Engines");
    assert_eq!(q.crm().await["ada@example.com"]["family_name"], "Byron");

    let list = q.sync(&["conflicts", "list"]);
    assert_eq!(list.code, 0);
    let items = list.result["data"]["conflicts"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let id_of = |email: &str| {
        items.iter().find(|c| c["source_key"] == email).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (ada, alan) = (id_of("ada@example.com"), id_of("alan@example.com"));
    assert_eq!(
        items.iter().find(|c| c["id"] == ada).unwrap()["fields"]["last_name"]["target"],
        "Byron"
    );
    // The ids in the run's result are the same, for scripts.
    let from_run: Vec<i64> = r.result["data"]["conflicts"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(from_run.contains(&ada) && from_run.contains(&alan));

    // Keep the source for Ada: applied by the next run, with the CRM's company merged.
    let res = q.sync(&["conflicts", "resolve", &ada.to_string(), "--keep", "source"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.result["data"]["conflict"]["status"], "resolved");
    let r = q.sync(&["run"]);
    assert_eq!(r.code, 0);
    assert_eq!(q.crm().await["ada@example.com"]["family_name"], "King");
    assert_eq!(q.csv()["ada@example.com"]["company"], "Babbage & Co");
    assert_eq!(
        r.result["data"]["conflicts"]["queued"], 1,
        "Alan still waits"
    );

    // Alan: explicit values from a file, applied at once.
    let values = q.path("alan.json");
    std::fs::write(&values, r#"{"given_name": "Alan Mathison"}"#).unwrap();
    let res = q.sync(&[
        "conflicts",
        "resolve",
        &alan.to_string(),
        "--keep",
        values.to_str().unwrap(),
        "--apply",
    ]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.result["data"]["conflict"]["status"], "applied");
    assert_eq!(q.csv()["alan@example.com"]["first_name"], "Alan Mathison");
    assert_eq!(
        q.crm().await["alan@example.com"]["given_name"],
        "Alan Mathison"
    );
    assert_eq!(q.sync(&["conflicts", "list"]).result["data"]["count"], 0);
    assert_eq!(writes(&q.sync(&["run"])), 0);

    // An unknown or already applied conflict is a usage error.
    let bad = q.sync(&[
        "conflicts",
        "resolve",
        &alan.to_string(),
        "--keep",
        "source",
    ]);
    assert_eq!((bad.code, bad.error_class()), (2, Some("usage")));
    assert!(
        bad.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is applied")
    );
    let bad = q.sync(&["conflicts", "resolve", "999", "--keep", "source"]);
    assert_eq!(bad.code, 2);
}

#[tokio::test]
async fn a_values_file_must_cover_every_conflicting_field() {
    let q = Quickstart::new();
    q.edit_config(|t| t.replace("conflict_strategy: latest", "conflict_strategy: manual"));
    assert_eq!(q.sync(&["run"]).code, 0);
    q.csv_edit("Ada,Lovelace", "Ada,King");
    q.crm_exec("UPDATE customers SET family_name = 'Byron' WHERE email = 'ada@example.com'")
        .await;
    let r = q.sync(&["run"]);
    let id = r.result["data"]["conflicts"]["items"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let values = q.path("v.json");
    std::fs::write(&values, r#"{"first_name": "x"}"#).unwrap();
    let bad = q.sync(&[
        "conflicts",
        "resolve",
        &id,
        "--keep",
        values.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing: last_name"),
        "{}",
        bad.result
    );
    // Target field names work too, with --config.
    std::fs::write(&values, r#"{"family_name": "Lovelace-Byron"}"#).unwrap();
    let ok = q.sync(&[
        "conflicts",
        "resolve",
        &id,
        "--keep",
        values.to_str().unwrap(),
        "--apply",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        q.crm().await["ada@example.com"]["family_name"],
        "Lovelace-Byron"
    );
}

#[tokio::test]
async fn history_and_show_read_the_audit() {
    let q = Quickstart::new();
    let first = q.sync(&["run"]);
    q.sync(&["run"]);
    let h = q.sync(&["history", "--limit", "5"]);
    assert_eq!(h.code, 0);
    let runs = h.result["data"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["run"], first.result["data"]["run"]);
    assert_eq!(runs[1]["status"], "succeeded");
    assert_eq!(runs[1]["counts"]["target"]["created"], 3);
    assert_eq!(
        runs[1]["invoked_by"].as_str().unwrap().split('@').next(),
        Some("tester")
    );
    // One id per run: the result's run_id is the state store's id, the one `sync show` takes.
    assert_eq!(first.result["run_id"], first.result["data"]["run"]);
    let show = q.sync(&["show", first.result["run_id"].as_str().unwrap()]);
    let changes = show.result["data"]["changes"].as_array().unwrap();
    let creates: Vec<_> = changes.iter().filter(|c| c["action"] == "create").collect();
    assert_eq!(creates.len(), 5);
    assert!(
        creates
            .iter()
            .all(|c| c["status"] == "applied" && c["key"].is_string())
    );
    let reject = changes.iter().find(|c| c["action"] == "reject").unwrap();
    assert_eq!(reject["status"], "rejected");
    assert!(
        reject["error"]
            .as_str()
            .unwrap()
            .contains("not an email address")
    );
    let missing = q.sync(&["show", "no-such-run"]);
    assert_eq!((missing.code, missing.error_class()), (2, Some("usage")));
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let q = Quickstart::new();
    let csv_before = std::fs::read(q.path("work/contacts.csv")).unwrap();
    q.edit_config(|t| t.replace("batch_size: 50", "batch_size: 50\nbatchsize: 5"));
    let r = q.sync(&["run"]);
    assert_eq!((r.code, r.error_class()), (2, Some("config")));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batchsize"),
        "{}",
        r.result
    );
    q.edit_config(|t| {
        t.replace("\nbatchsize: 5", "")
            .replace(
                "{source: last_name, target: family_name}",
                "{source: surname, target: family_name}",
            )
            .replace(
                "given_name: [{max_length: 100}]",
                "given_name: [{max_length: 100}, emial]",
            )
    });
    let r = q.sync(&["run"]);
    assert_eq!(r.code, 2, "{}", r.result);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("emial"),
        "{}",
        r.result
    );
    q.edit_config(|t| t.replace(", emial]", "]"));
    let r = q.sync(&["run"]);
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("source field \"surname\" is not a field of contacts"),
        "{}",
        r.result
    );
    assert_eq!(
        std::fs::read(q.path("work/contacts.csv")).unwrap(),
        csv_before
    );
}

#[test]
fn check_lists_every_problem_at_once() {
    let q = Quickstart::new();
    let ok = q.sync(&["check"]);
    assert_eq!(ok.code, 0, "{}", ok.result);
    assert_eq!(ok.result["data"]["target"]["key"], "id");
    assert_eq!(ok.result["data"]["problems"], json!([]));
    q.edit_config(|t| {
        t.replace(
            "{source: last_name, target: family_name}",
            "{source: surname, target: family_name}",
        )
        .replace(
            "updated_at_column: updated_at",
            "updated_at_column: modified_at",
        )
    });
    let bad = q.sync(&["check"]);
    assert_eq!((bad.code, bad.error_class()), (2, Some("config")));
    let problems = bad.result["data"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].as_str().unwrap().contains("modified_at"));
    assert!(
        bad.result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("2 problems found")
    );
    std::fs::remove_file(q.path("work/contacts.csv")).unwrap();
    let bad = q.sync(&["check"]);
    assert!(
        bad.result["data"]["problems"]
            .to_string()
            .contains("contacts.csv does not exist")
    );
}

#[test]
fn hubspot_to_quickbooks_has_a_default_mapping_and_names_what_is_missing() {
    let q = Quickstart::new();
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(q.dir.path()).args([
        "sync",
        "run",
        "--source",
        "hubspot",
        "--target",
        "quickbooks",
        "--direction",
        "bidirectional",
        "--batch-size",
        "50",
        "--dry-run",
    ]);
    let r = CliRun::from_output(&cmd.output().unwrap());
    assert_eq!((r.code, r.error_class()), (2, Some("config")));
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(msg.contains("HUBSPOT_API_TOKEN is not set"), "{msg}");
    assert!(!q.path(".syncctl").exists(), "nothing written");
    cmd.env("HUBSPOT_API_TOKEN", "pat-na1-unused");
    let r = CliRun::from_output(&cmd.output().unwrap());
    assert_eq!((r.code, r.error_class()), (2, Some("config")));
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("target connector") && msg.contains("QUICKBOOKS_REALM_ID"),
        "{msg}"
    );
    assert!(!q.path(".syncctl").exists(), "nothing written");
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(q.dir.path())
        .args(["sync", "run", "--source", "csv", "--target", "sqlite"]);
    let r = CliRun::from_output(&cmd.output().unwrap());
    assert_eq!((r.code, r.error_class()), (2, Some("usage")));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no built-in mapping for csv → sqlite")
    );
}

#[test]
fn overrides_beat_the_config() {
    let q = Quickstart::new();
    let r = q.sync(&[
        "plan",
        "--direction",
        "source_to_target",
        "--batch-size",
        "2",
        "--conflict-strategy",
        "manual",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = &r.result["data"];
    assert_eq!(d["direction"], "source_to_target");
    assert_eq!(d["conflict_strategy"], "manual");
    assert_eq!(d["target"]["batch_size"], 2);
    assert_eq!(
        d["source"]["created"], 0,
        "one way: nothing created in the spreadsheet"
    );
    let r = q.sync(&["plan", "--source", "sqlite"]);
    assert_eq!(r.code, 2, "--source must match the config");
    let r = q.sync(&["plan", "--object", "contacts:people"]);
    assert_eq!(r.code, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("table people not found"),
        "{}",
        r.result
    );
    let state = q.path("elsewhere/state.db");
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(q.dir.path())
        .env(
            "SYNCCTL_STATE_URL",
            format!("sqlite://{}", q.path("env/state.db").display()),
        )
        .args([
            "sync",
            "run",
            "--config",
            &q.config(),
            "--state-url",
            &format!("sqlite://{}", state.display()),
        ]);
    let r = CliRun::from_output(&cmd.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        state.exists(),
        "--state-url beats SYNCCTL_STATE_URL and the config"
    );
    assert!(!q.path("env").exists() && !q.path("work/state.db").exists());
}

#[tokio::test]
async fn the_seed_crm_is_what_its_sql_builds() {
    async fn dump(p: &std::path::Path) -> Vec<String> {
        let pool = crate::support::sqlite(p).await;
        let mut out: Vec<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master ORDER BY name")
                .fetch_all(&pool)
                .await
                .unwrap();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT json_array(id, email, given_name, family_name, phone, company, stage, updated_at) \
             FROM customers ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        out.extend(rows);
        pool.close().await;
        out
    }
    let dir = tempfile::tempdir().unwrap();
    let built = dir.path().join("crm.db");
    let pool = crate::support::sqlite(&built).await;
    let sql =
        std::fs::read_to_string(crate::support::quickstart_dir().join("seed/crm.sql")).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        dump(&built).await,
        dump(&crate::support::quickstart_dir().join("seed/crm.db")).await
    );
}

#[tokio::test]
async fn an_open_breaker_left_by_another_pod_stops_the_run_until_its_probe_time() {
    let q = Quickstart::new();
    assert_eq!(q.sync(&["run"]).code, 0, "creates the state store");
    let crm = std::fs::canonicalize(q.path("work/crm.db")).unwrap();
    let endpoint = format!("sqlite://{}", crm.display());
    let state = crate::support::sqlite(&q.path("work/state.db")).await;
    let open = |probe: &str| {
        json!({"phase": "open", "consecutive_failures": 5, "opened_at": "2026-01-01T00:00:00Z",
               "next_probe_at": probe, "probe_in_flight": false})
        .to_string()
    };
    sqlx::query(
        "INSERT OR REPLACE INTO sync_breaker (endpoint, state, updated_at) VALUES ($1, $2, $3)",
    )
    .bind(&endpoint)
    .bind(open("2999-01-01T00:00:00Z"))
    .bind("2026-01-01T00:00:00Z")
    .execute(&state)
    .await
    .unwrap();
    q.csv_edit("US Navy", "Yale");
    let r = q.sync(&["run"]);
    assert_eq!(
        (r.code, r.error_class()),
        (4, Some("transient")),
        "{}",
        r.result
    );
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is open after 5 consecutive failures")
    );
    assert_eq!(r.result["data"]["breaker"]["target"]["phase"], "open");
    assert_eq!(
        q.crm().await["grace@example.com"]["company"],
        "US Navy",
        "nothing written"
    );
    // Past the cool-down this run is the probe: it goes through and closes the breaker.
    sqlx::query("UPDATE sync_breaker SET state = $1 WHERE endpoint = $2")
        .bind(open("2000-01-01T00:00:00Z"))
        .bind(&endpoint)
        .execute(&state)
        .await
        .unwrap();
    let r = q.sync(&["run"]);
    assert_eq!(r.code, 0, "{}", r.result);
    assert_eq!(r.result["data"]["breaker"]["target"]["phase"], "closed");
    assert_eq!(q.crm().await["grace@example.com"]["company"], "Yale");
    let saved: String = sqlx::query_scalar("SELECT state FROM sync_breaker WHERE endpoint = $1")
        .bind(&endpoint)
        .fetch_one(&state)
        .await
        .unwrap();
    assert!(saved.contains("\"closed\""), "{saved}");
    state.close().await;
}

#[test]
fn a_plan_is_capped_by_plan_limit_and_the_counts_stay_complete() {
    let q = Quickstart::new();
    let full = q.sync(&["plan"]);
    let all = full.result["data"]["plan"].as_array().unwrap().len();
    assert!(all > 2);
    let capped = q.sync(&["plan", "--plan-limit", "2"]);
    assert_eq!(capped.code, 0);
    assert_eq!(capped.result["data"]["plan"].as_array().unwrap().len(), 2);
    assert_eq!(capped.result["data"]["plan_omitted"], all - 2);
    assert_eq!(
        capped.result["data"]["target"]["created"],
        full.result["data"]["target"]["created"]
    );
}

#[test]
fn a_dry_run_says_so_on_every_path_failures_included() {
    let q = Quickstart::new();
    // Fails inside the command (the config names a key that does not exist).
    q.edit_config(|t| t.replace("batch_size: 50", "batch_size: 50\nbatchsize: 5"));
    for args in [vec!["plan"], vec!["run", "--dry-run"]] {
        let r = q.sync(&args);
        assert_eq!((r.code, r.error_class()), (2, Some("config")), "{args:?}");
        assert_eq!(r.result["dry_run"], true, "{args:?}: {}", r.result);
    }
    // Rejected by the parser before any command ran.
    let r = q.sync(&["run", "--dry-run", "--no-such-flag"]);
    assert_eq!((r.code, r.error_class()), (2, Some("usage")));
    assert_eq!(r.result["dry_run"], true, "{}", r.result);
    // And a real run that fails is not a dry run.
    let r = q.sync(&["run"]);
    assert_eq!(r.result["dry_run"], false);
}

#[test]
fn an_unreachable_state_store_names_the_cause_with_one_class_everywhere() {
    let q = Quickstart::new();
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let url = "postgres://postgres@127.0.0.1:1/test";
    for args in [
        vec!["run", "--state-url", url],
        vec!["check", "--state-url", url],
        vec!["history", "--state-url", url],
        vec!["conflicts", "list", "--state-url", url],
    ] {
        let r = q.sync(&args);
        assert_eq!(
            (r.code, r.error_class()),
            (4, Some("transient")),
            "{args:?}"
        );
        let message = r.result["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("Connection refused") && !message.contains("pool timed out"),
            "{args:?}: {message}"
        );
    }
    let r = q.sync(&[
        "history",
        "--state-url",
        "postgres://postgres@no-such-host.invalid/x",
    ]);
    assert_eq!(r.code, 4);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lookup"),
        "{}",
        r.result
    );
}

#[test]
fn without_a_state_url_the_store_goes_to_syncctl_state_dir_when_it_is_set() {
    // The container image sets SYNCCTL_STATE_DIR to its one writable directory; the default
    // next to the config would be in a read-only mount there.
    let q = Quickstart::new();
    q.edit_config(|c| c.replace("state: \"sqlite://work/state.db\"\n", ""));
    let state_dir = tempfile::tempdir().unwrap();
    let sync = |args: &[&str], state_dir: Option<&std::path::Path>| {
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(q.dir.path())
            .arg("sync")
            .args(args)
            .arg("--config")
            .arg(q.config());
        if let Some(d) = state_dir {
            cmd.env("SYNCCTL_STATE_DIR", d);
        }
        CliRun::from_output(&cmd.output().unwrap())
    };
    let r = sync(&["run"], Some(state_dir.path()));
    assert_eq!(r.code, 0, "{}", r.result);
    assert!(state_dir.path().join("state.db").is_file());
    assert!(
        !q.path(".syncctl").exists(),
        "the default store was used too"
    );
    // The runs are recorded there: history reads them back through the same default.
    let r = sync(&["history"], Some(state_dir.path()));
    assert_eq!(r.code, 0, "{}", r.result);
    assert_eq!(r.result["data"]["runs"].as_array().map(Vec::len), Some(1));
    // Without the variable the default is next to the config, as before.
    let r = sync(&["run"], None);
    assert_eq!(r.code, 0, "{}", r.result);
    assert!(q.path(".syncctl/state.db").is_file());
}

#[test]
fn without_a_config_or_a_pair_the_usage_error_lists_every_built_in_pair() {
    let q = Quickstart::new();
    let out = crate::support::syncctl()
        .current_dir(q.dir.path())
        .args(["sync", "plan"])
        .output()
        .unwrap();
    let r = CliRun::from_output(&out);
    assert_eq!(r.code, 2, "{}", r.result);
    let msg = r.result["error"]["message"].as_str().unwrap();
    for b in syncctl_sync::builtin::BUILTINS {
        let pair = format!("{} → {}", b.source, b.target);
        assert!(msg.contains(&pair), "{pair} missing: {msg}");
    }
}
