//! PostgreSQL ⇄ MySQL/MariaDB through the binary (`syncctl sync run --config …`) against the
//! real servers (SYNCCTL_TEST_PG_URL / SYNCCTL_TEST_MYSQL_URL): first sync both ways with
//! echo marks and no echo on reruns, the same field edited on both sides under each conflict
//! strategy (source_wins, target_wins, latest, manual with list and resolve), a record the
//! target database refuses failing alone in its batch, an unreachable server, and passwords in
//! both URLs never printed. Each test has its own PostgreSQL schema and MySQL database,
//! dropped at the end. A server that cannot be reached fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use crate::support::redactions;
use sqlx::{MySqlPool, PgPool};
use syncctl_testkit::cli::CliRun;

use crate::support::{mysql_url, pg_url};

const SEED_PG: &str = "INSERT INTO $S.contacts (email, first_name, last_name, phone) VALUES \
    ('ada@example.com', 'Ada', 'Lovelace', '+442071234567'), \
    ('grace@example.com', 'Grace', 'Hopper', '+12025550143'), \
    ('linus@example.com', 'Linus', 'Torvalds', NULL)";

const SEED_MY: &str = "INSERT INTO $D.customers (email, given_name, family_name, phone) VALUES \
    ('ada@example.com', 'Ada', 'Lovelace', '+442071234567'), \
    ('alan@example.com', 'Alan', 'Turing', '+441619876543'), \
    ('margaret@example.com', 'Margaret', 'Hamilton', NULL)";

/// A PostgreSQL schema with `contacts`, a MySQL database with `customers`, and a directory
/// with the sync config and its SQLite state store.
struct Systems {
    schema: String,
    db: String,
    pg: PgPool,
    my: MySqlPool,
    dir: tempfile::TempDir,
}

type Rows = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// email, first name, last name, phone, origin.
type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Systems {
    async fn new() -> Self {
        let pg = PgPool::connect(&pg_url())
            .await
            .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL, scripts/ensure-services.sh)");
        let my = MySqlPool::connect(&mysql_url())
            .await
            .expect("MariaDB must be running (SYNCCTL_TEST_MYSQL_URL, scripts/ensure-services.sh)");
        let suffix = format!(
            "{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap()
        );
        let s = Self {
            schema: format!("syncctl_e2e_{suffix}"),
            db: format!("syncctl_e2e_{suffix}"),
            pg,
            my,
            dir: tempfile::tempdir().unwrap(),
        };
        s.pg_exec("CREATE SCHEMA $S").await;
        s.pg_exec(
            "CREATE TABLE $S.contacts (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, \
             first_name text, last_name varchar(100), phone text, \
             updated_at timestamptz NOT NULL DEFAULT now(), origin text)",
        )
        .await;
        s.my_exec("CREATE DATABASE $D").await;
        s.my_exec(
            "CREATE TABLE $D.customers (id INT AUTO_INCREMENT PRIMARY KEY, \
             email VARCHAR(200) NOT NULL UNIQUE, given_name VARCHAR(100), \
             family_name VARCHAR(100), phone VARCHAR(30) CHECK (phone NOT LIKE '%x%'), \
             updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), origin VARCHAR(100))",
        )
        .await;
        s.pg_exec(SEED_PG).await;
        s.my_exec(SEED_MY).await;
        s.write_config("manual");
        s
    }

    async fn pg_exec(&self, sql: &str) {
        let sql = sql.replace("$S", &format!("\"{}\"", self.schema));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pg)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn my_exec(&self, sql: &str) {
        let sql = sql.replace("$D", &format!("`{}`", self.db));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.my)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn write_config(&self, strategy: &str) {
        let yaml = format!(
            r#"name: pg-mysql
source: {{connector: postgres, url: "${{PG_URL}}", object: {schema}.contacts, updated_at_column: updated_at, origin_column: origin}}
target: {{connector: mysql, url: "${{MYSQL_URL}}", object: {db}.customers, updated_at_column: updated_at, origin_column: origin}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
  - {{source: first_name, target: given_name}}
  - {{source: last_name, target: family_name}}
  - {{source: phone, target: phone}}
direction: bidirectional
conflict_strategy: {strategy}
batch_size: 100
state: "sqlite://state.db"
"#,
            schema = self.schema,
            db = self.db,
        );
        std::fs::write(self.dir.path().join("sync.yaml"), yaml).unwrap();
    }

    /// `syncctl sync ARGS --config sync.yaml` with the URLs in the environment.
    fn sync(&self, args: &[&str]) -> CliRun {
        self.sync_with(args, &pg_url(), &mysql_url(), &[])
    }

    fn sync_with(&self, args: &[&str], pg: &str, my: &str, envs: &[(&str, &str)]) -> CliRun {
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(self.dir.path())
            .env("PG_URL", pg)
            .env("MYSQL_URL", my)
            .envs(envs.iter().copied())
            .arg("sync")
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("sync.yaml"));
        CliRun::from_output(&cmd.output().unwrap())
    }

    /// PostgreSQL rows by email, in the target's field names for easy comparison.
    async fn pg_rows(&self) -> Rows {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT email, first_name, last_name, phone, origin FROM \"{}\".contacts",
            self.schema
        )))
        .fetch_all(&self.pg)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(email, first, last, phone, origin)| {
                let m = BTreeMap::from([
                    ("given_name".to_owned(), first),
                    ("family_name".to_owned(), last),
                    ("phone".to_owned(), phone),
                    ("origin".to_owned(), origin),
                ]);
                (email, m)
            })
            .collect()
    }

    async fn my_rows(&self) -> Rows {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT email, given_name, family_name, phone, origin FROM `{}`.customers",
            self.db
        )))
        .fetch_all(&self.my)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(email, first, last, phone, origin)| {
                let m = BTreeMap::from([
                    ("given_name".to_owned(), first),
                    ("family_name".to_owned(), last),
                    ("phone".to_owned(), phone),
                    ("origin".to_owned(), origin),
                ]);
                (email, m)
            })
            .collect()
    }

    async fn drop(self) {
        self.pg_exec("DROP SCHEMA IF EXISTS $S CASCADE").await;
        self.my_exec("DROP DATABASE IF EXISTS $D").await;
        self.pg.close().await;
        self.my.close().await;
    }
}

fn snapshot(name: &str, r: &CliRun) {
    let mut settings = insta::Settings::clone_current();
    for (selector, replacement) in redactions() {
        settings.add_redaction(selector, replacement);
    }
    settings.add_redaction(".data.source.object", "[schema].contacts");
    settings.add_redaction(".data.target.object", "[database].customers");
    settings.bind(|| insta::assert_json_snapshot!(name, r.result));
}

fn writes(r: &CliRun) -> u64 {
    ["source", "target"]
        .iter()
        .flat_map(|s| {
            ["created", "updated", "deleted"]
                .map(|k| r.result["data"][s][k].as_u64().unwrap_or(u64::MAX))
        })
        .sum()
}

fn field<'a>(rows: &'a Rows, email: &str, name: &str) -> Option<&'a str> {
    rows.get(email)
        .and_then(|r| r.get(name))
        .and_then(Option::as_deref)
}

/// The values both sides should hold for mapped fields (origin marks differ by design).
fn mapped(rows: &Rows) -> BTreeMap<String, [Option<String>; 3]> {
    rows.iter()
        .map(|(e, r)| {
            (
                e.clone(),
                [
                    r["given_name"].clone(),
                    r["family_name"].clone(),
                    r["phone"].clone(),
                ],
            )
        })
        .collect()
}

#[tokio::test]
async fn first_sync_creates_both_ways_marks_its_writes_and_never_echoes() {
    let s = Systems::new().await;
    let pg_before = s.pg_rows().await;
    let my_before = s.my_rows().await;

    let plan = s.sync(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.status(), "planned");
    assert_eq!(s.pg_rows().await, pg_before, "plan wrote PostgreSQL");
    assert_eq!(s.my_rows().await, my_before, "plan wrote MySQL");

    let run = s.sync(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "succeeded");
    snapshot("sync_pg_mysql_first_run", &run);
    let (pg, my) = (s.pg_rows().await, s.my_rows().await);
    assert_eq!(pg.len(), 5, "{pg:?}");
    assert_eq!(mapped(&pg), mapped(&my), "both sides hold the same people");
    assert_eq!(
        field(&my, "grace@example.com", "phone"),
        Some("+12025550143")
    );
    assert_eq!(
        field(&pg, "alan@example.com", "family_name"),
        Some("Turing")
    );
    // syncctl's own rows carry its origin mark; rows people wrote do not.
    assert_eq!(
        field(&pg, "alan@example.com", "origin"),
        Some("syncctl:pg-mysql")
    );
    assert_eq!(
        field(&my, "linus@example.com", "origin"),
        Some("syncctl:pg-mysql")
    );
    assert_eq!(field(&pg, "ada@example.com", "origin"), None);
    assert_eq!(field(&my, "ada@example.com", "origin"), None);

    // Reading its own writes back is not a change: nothing to do.
    let again = s.sync(&["run"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(writes(&again), 0, "{}", again.result);

    // A change on one side goes across once, and only once.
    s.my_exec("UPDATE $D.customers SET family_name = 'Hopper-Murray', updated_at = UTC_TIMESTAMP(6) WHERE email = 'grace@example.com'").await;
    let one = s.sync(&["run"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.result["data"]["source"]["updated"], 1, "{}", one.result);
    assert_eq!(writes(&one), 1);
    assert_eq!(
        field(&s.pg_rows().await, "grace@example.com", "family_name"),
        Some("Hopper-Murray")
    );
    assert_eq!(writes(&s.sync(&["run"])), 0);
    s.drop().await;
}

/// Links everything, then edits: the same field of ada and grace on both sides (ada's MySQL
/// edit later, grace's PostgreSQL edit later), different fields of linus.
async fn conflicting_edits(strategy: &str) -> (Systems, CliRun) {
    let s = Systems::new().await;
    s.write_config(strategy);
    let first = s.sync(&["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    s.pg_exec("UPDATE $S.contacts SET first_name = 'Augusta', updated_at = now() + interval '1 hour' WHERE email = 'ada@example.com'").await;
    s.my_exec("UPDATE $D.customers SET given_name = 'Ada-Lady', updated_at = UTC_TIMESTAMP(6) + INTERVAL 2 HOUR WHERE email = 'ada@example.com'").await;
    s.pg_exec("UPDATE $S.contacts SET last_name = 'Hopper-PG', updated_at = now() + interval '2 hours' WHERE email = 'grace@example.com'").await;
    s.my_exec("UPDATE $D.customers SET family_name = 'Hopper-MY', updated_at = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR WHERE email = 'grace@example.com'").await;
    s.pg_exec("UPDATE $S.contacts SET phone = '+15550001111', updated_at = now() + interval '1 hour' WHERE email = 'linus@example.com'").await;
    s.my_exec("UPDATE $D.customers SET given_name = 'Linus B.', updated_at = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR WHERE email = 'linus@example.com'").await;
    let r = s.sync(&["run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (s, r)
}

async fn assert_settled(s: &Systems, r: &CliRun, ada: &str, grace: &str) {
    let (pg, my) = (s.pg_rows().await, s.my_rows().await);
    assert_eq!(mapped(&pg), mapped(&my), "both sides agree");
    assert_eq!(field(&pg, "ada@example.com", "given_name"), Some(ada));
    assert_eq!(field(&pg, "grace@example.com", "family_name"), Some(grace));
    // Different fields merged.
    assert_eq!(
        field(&pg, "linus@example.com", "given_name"),
        Some("Linus B.")
    );
    assert_eq!(
        field(&my, "linus@example.com", "phone"),
        Some("+15550001111")
    );
    let c = &r.result["data"]["conflicts"];
    assert_eq!(
        (
            c["detected"].as_u64(),
            c["resolved"].as_u64(),
            c["queued"].as_u64()
        ),
        (Some(2), Some(2), Some(0)),
        "{c}"
    );
    assert_eq!(
        writes(&s.sync(&["run"])),
        0,
        "settled: a rerun writes nothing"
    );
}

#[tokio::test]
async fn source_wins_settles_both_conflicts_for_postgres() {
    let (s, r) = conflicting_edits("source_wins").await;
    assert_settled(&s, &r, "Augusta", "Hopper-PG").await;
    s.drop().await;
}

#[tokio::test]
async fn target_wins_settles_both_conflicts_for_mysql() {
    let (s, r) = conflicting_edits("target_wins").await;
    assert_settled(&s, &r, "Ada-Lady", "Hopper-MY").await;
    s.drop().await;
}

#[tokio::test]
async fn latest_lets_the_later_edit_win_on_each_record() {
    let (s, r) = conflicting_edits("latest").await;
    assert_settled(&s, &r, "Ada-Lady", "Hopper-PG").await;
    let items = r.result["data"]["conflicts"]["items"].as_array().unwrap();
    let outcomes: Vec<&str> = items
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"source") && outcomes.contains(&"target"),
        "{outcomes:?}"
    );
    s.drop().await;
}

#[tokio::test]
async fn manual_queues_both_conflicts_untouched_then_applies_the_resolutions() {
    let (s, r) = conflicting_edits("manual").await;
    snapshot("sync_pg_mysql_manual_run", &r);
    let c = &r.result["data"]["conflicts"];
    assert_eq!(
        (c["detected"].as_u64(), c["queued"].as_u64()),
        (Some(2), Some(2)),
        "{c}"
    );
    assert!(
        r.result["warnings"]
            .to_string()
            .contains("2 conflicts are queued"),
        "{}",
        r.result
    );
    let (pg, my) = (s.pg_rows().await, s.my_rows().await);
    assert_eq!(field(&pg, "ada@example.com", "given_name"), Some("Augusta"));
    assert_eq!(
        field(&my, "ada@example.com", "given_name"),
        Some("Ada-Lady")
    );
    assert_eq!(
        field(&pg, "grace@example.com", "family_name"),
        Some("Hopper-PG")
    );
    assert_eq!(
        field(&my, "grace@example.com", "family_name"),
        Some("Hopper-MY")
    );
    // The other record merged as usual.
    assert_eq!(
        field(&pg, "linus@example.com", "given_name"),
        Some("Linus B.")
    );

    let list = s.sync(&["conflicts", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let items = list.result["data"]["conflicts"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{}", list.result);
    let id_of = |field: &str| {
        items
            .iter()
            .find(|c| !c["fields"][field].is_null())
            .unwrap()["id"]
            .as_i64()
            .unwrap()
            .to_string()
    };
    let (ada, grace) = (id_of("first_name"), id_of("last_name"));
    let keep_target = s.sync(&["conflicts", "resolve", &ada, "--keep", "target"]);
    assert_eq!(keep_target.code, 0, "{}", keep_target.stderr);
    let keep_source = s.sync(&["conflicts", "resolve", &grace, "--keep", "source"]);
    assert_eq!(keep_source.code, 0, "{}", keep_source.stderr);

    let applied = s.sync(&["run"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let (pg, my) = (s.pg_rows().await, s.my_rows().await);
    assert_eq!(
        mapped(&pg),
        mapped(&my),
        "resolutions applied to both sides"
    );
    assert_eq!(
        field(&pg, "ada@example.com", "given_name"),
        Some("Ada-Lady")
    );
    assert_eq!(
        field(&my, "grace@example.com", "family_name"),
        Some("Hopper-PG")
    );
    assert_eq!(s.sync(&["conflicts", "list"]).result["data"]["count"], 0);
    assert_eq!(writes(&s.sync(&["run"])), 0);
    s.drop().await;
}

#[tokio::test]
async fn a_record_the_target_database_refuses_fails_alone() {
    let s = Systems::new().await;
    // Six new PostgreSQL contacts go to MySQL in one batch; the CHECK constraint there
    // refuses one phone. Only MySQL knows: syncctl's validation lets it through.
    s.pg_exec(
        "INSERT INTO $S.contacts (email, first_name, phone) \
         SELECT 'new' || i || '@example.com', 'New ' || i, \
                CASE WHEN i = 3 THEN '+1555x0003' ELSE '+1555000000' || i END \
         FROM generate_series(1, 6) i",
    )
    .await;
    let r = s.sync(&["run"]);
    assert_eq!(r.code, 1, "a failed write fails the run: {}", r.stderr);
    assert_eq!(r.status(), "failed");
    let t = &r.result["data"]["target"];
    assert_eq!(
        (t["created"].as_u64(), t["failed"].as_u64()),
        (Some(7), Some(1)),
        "{t}"
    );
    let failed = &r.result["data"]["failed"][0];
    assert_eq!(failed["side"], "target");
    assert!(
        failed["error"].as_str().unwrap().contains("CONSTRAINT"),
        "{failed}"
    );
    let my = s.my_rows().await;
    assert!(!my.contains_key("new3@example.com"));
    for i in [1, 2, 4, 5, 6] {
        assert!(
            my.contains_key(&format!("new{i}@example.com")),
            "new{i} lost"
        );
    }
    // The refused record is retried next run and fails again, alone.
    s.pg_exec("UPDATE $S.contacts SET phone = '+15550000003' WHERE email = 'new3@example.com'")
        .await;
    let fixed = s.sync(&["run"]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    assert!(s.my_rows().await.contains_key("new3@example.com"));
    s.drop().await;
}

#[tokio::test]
async fn an_unreachable_database_stops_the_run_before_anything_is_written() {
    let s = Systems::new().await;
    let pg_before = s.pg_rows().await;
    let r = s.sync_with(&["run"], &pg_url(), "mysql://root@127.0.0.1:1/nowhere", &[]);
    assert_eq!(r.code, 4, "{}", r.result);
    assert_eq!(r.error_class(), Some("transient"));
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{}",
        r.result
    );
    assert_eq!(s.pg_rows().await, pg_before);
    let check = s.sync_with(
        &["check"],
        &pg_url(),
        "mysql://root@127.0.0.1:1/nowhere",
        &[],
    );
    assert_ne!(check.code, 0);
    assert!(
        check.result.to_string().contains("127.0.0.1:1"),
        "{}",
        check.result
    );
    s.drop().await;
}

#[tokio::test]
async fn passwords_in_both_urls_never_appear_even_at_trace_level() {
    const PG_PW: &str = "PgPw-3b7e0c11";
    const MY_PW: &str = "MyPw-81f0aa42";
    let s = Systems::new().await;
    // The local PostgreSQL trusts local connections, so any password is accepted; MySQL gets
    // a user with a real password.
    let user = format!("sl_{}", &s.db[s.db.len() - 8..]);
    for host in ["%", "localhost", "127.0.0.1"] {
        s.my_exec(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{MY_PW}'"
        ))
        .await;
        s.my_exec(&format!("GRANT ALL ON $D.* TO '{user}'@'{host}'"))
            .await;
    }
    let (scheme, rest) = pg_url()
        .split_once("://")
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let pg = format!(
        "{scheme}://{}:{PG_PW}@{host}",
        userinfo.split(':').next().unwrap()
    );
    // The user may use its own database only: the URL names it.
    let my_host = mysql_url()
        .rsplit_once('@')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let my = format!("mysql://{user}:{MY_PW}@{my_host}/{}", s.db);
    let result_file = s.dir.path().join("result.json");
    let mut runs = Vec::new();
    for args in [vec!["check"], vec!["plan"], vec!["run"]] {
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(s.dir.path())
            .env("PG_URL", &pg)
            .env("MYSQL_URL", &my)
            .env("SYNCCTL_LOG", "trace")
            .args(["-vv", "--result-file"])
            .arg(&result_file)
            .arg("sync")
            .args(&args)
            .arg("--config")
            .arg(s.dir.path().join("sync.yaml"));
        let r = CliRun::from_output(&cmd.output().unwrap());
        assert_eq!(r.code, 0, "{args:?}: {}", r.result);
        let file = std::fs::read_to_string(&result_file).unwrap();
        runs.push((args, r, file));
    }
    // A wrong MySQL password: refused, reported, and still not printed.
    let bad = s.sync_with(
        &["run"],
        &pg,
        &format!("mysql://{user}:{MY_PW}-wrong@{my_host}/{}", s.db),
        &[("SYNCCTL_LOG", "trace")],
    );
    assert_eq!(bad.code, 3, "{}", bad.result);
    assert_eq!(bad.error_class(), Some("auth"));
    for (args, r, file) in runs
        .iter()
        .map(|(a, r, f)| (a.clone(), r, f.clone()))
        .chain([(vec!["run (wrong password)"], &bad, String::new())])
    {
        for secret in [PG_PW, MY_PW] {
            for (name, text) in [
                ("stdout", &r.stdout),
                ("stderr", &r.stderr),
                ("result file", &file),
            ] {
                assert!(
                    !text.contains(secret),
                    "{args:?}: password in {name}:\n{text}"
                );
            }
        }
    }
    assert!(runs[2].1.stderr.len() > 1000, "trace logging was on");
    assert_eq!(s.my_rows().await.len(), 5);
    for host in ["%", "localhost", "127.0.0.1"] {
        s.my_exec(&format!("DROP USER '{user}'@'{host}'")).await;
    }
    s.drop().await;
}

/// The `connector statistics` debug line each SQL connector logs when dropped, by object.
fn connector_stats(stderr: &str) -> BTreeMap<String, serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|ev| ev["fields"]["message"] == "connector statistics")
        .map(|ev| {
            let f = ev["fields"].clone();
            (f["object"].as_str().unwrap_or_default().to_owned(), f)
        })
        .collect()
}

/// The benchmark's shape in small (scripts/bench/sync_pg_to_pg.sh runs it at 100 000 and
/// 1 000 000 rows): PostgreSQL → PostgreSQL through the bulk path, a handful of statements
/// per batch rather than one per row.
#[tokio::test]
async fn postgres_to_postgres_loads_and_updates_through_the_bulk_path() {
    let s = Systems::new().await;
    s.pg_exec(
        "CREATE TABLE $S.source (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text, \
         amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now()); \
         CREATE TABLE $S.target (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text, \
         amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO $S.source (email, name, amount, updated_at) \
           SELECT 'user' || i || '@example.com', 'User ' || i, (i % 10000) / 100.0, \
                  timestamptz '2025-01-01' + i * interval '1 second' \
           FROM generate_series(1, 1000) i",
    )
    .await;
    let yaml = format!(
        r#"name: pg-to-pg
source: {{connector: postgres, url: "${{PG_URL}}", object: {schema}.source, updated_at_column: updated_at}}
target: {{connector: postgres, url: "${{PG_URL}}", object: {schema}.target, updated_at_column: updated_at}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
  - {{source: name, target: name}}
  - {{source: amount, target: amount}}
direction: source_to_target
conflict_strategy: source_wins
batch_size: 1000
state: "sqlite://state.db"
"#,
        schema = s.schema
    );
    std::fs::write(s.dir.path().join("sync.yaml"), yaml).unwrap();
    // `syncctl=info` too: with only `warn` the CLI's last info event is filtered out and the
    // first stats event after it goes missing (tracing-subscriber per-layer filter state).
    let stats_log = [("SYNCCTL_LOG", "warn,syncctl=info,syncctl_sql::stats=debug")];
    let run = |args: &[&str]| {
        let mut a = vec!["--log-format", "json", "sync"];
        a.extend_from_slice(args);
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(s.dir.path())
            .env("PG_URL", pg_url())
            .envs(stats_log)
            .args(&a)
            .arg("--config")
            .arg(s.dir.path().join("sync.yaml"));
        CliRun::from_output(&cmd.output().unwrap())
    };
    let target = format!("{}.target", s.schema);

    let load = run(&["run"]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    assert_eq!(load.result["data"]["target"]["created"], 1000);
    let st = &connector_stats(&load.stderr)[&target];
    assert_eq!(st["rows_written"], 1000, "{st}");
    assert_eq!(st["row_by_row_batches"], 0, "{st}");
    // Two read pages of 500 are paired as one window of 1000: one batch of 1000 creates.
    assert_eq!(st["bulk_batches"], 1, "{st}");
    // Describe, lookups and, per batch, BEGIN/mark/stage/COPY/INSERT/COMMIT.
    assert!(st["statements"].as_u64().unwrap() < 40, "{st}");

    s.pg_exec(
        "UPDATE $S.source SET name = name || ' (changed)', updated_at = now() WHERE id % 100 = 0",
    )
    .await;
    let changed = run(&["run"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(
        changed.result["data"]["target"]["updated"], 10,
        "{}",
        changed.result
    );
    let st = &connector_stats(&changed.stderr)[&target];
    assert_eq!(
        (
            st["bulk_batches"].as_u64(),
            st["row_by_row_batches"].as_u64()
        ),
        (Some(1), Some(0)),
        "{st}"
    );
    let differ: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{0}\".source s FULL JOIN \"{0}\".target t USING (email) \
         WHERE s.email IS NULL OR t.email IS NULL OR s.name IS DISTINCT FROM t.name \
            OR s.amount IS DISTINCT FROM t.amount",
        s.schema
    )))
    .fetch_one(&s.pg)
    .await
    .unwrap();
    assert_eq!(differ, 0);
    assert_eq!(writes(&run(&["run"])), 0);
    s.drop().await;
}
