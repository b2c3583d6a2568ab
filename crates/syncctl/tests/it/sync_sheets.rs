//! Google Sheets ⇄ PostgreSQL through the binary, the sheet served by the testkit's Sheets fake
//! (service-account JWT, A1 ranges, quotas) and PostgreSQL the real local server: first sync
//! both ways, a rerun that writes nothing, a hand edit and rows inserted in the sheet during a
//! run, `conflict_strategy: latest` refused before anything runs, and a run killed with
//! SIGKILL mid-write then rerun without duplicate rows on either side.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::sheets::{Edit, SheetsFake, service_account_json};
use syncctl_testkit::{FakeServer, Fault};

const ID: &str = "1SheetsE2E_syncctl";

use crate::support::pg_url;

/// email, first name, last name, company.
type PgRow = (String, Option<String>, Option<String>, Option<String>);

struct World {
    fake: SheetsFake,
    server: FakeServer,
    pg: PgPool,
    schema: String,
    dir: tempfile::TempDir,
}

fn header() -> Vec<Value> {
    vec![
        json!("email"),
        json!("first_name"),
        json!("last_name"),
        json!("company"),
    ]
}

impl World {
    async fn new(sheet_rows: Vec<Vec<Value>>, grid_rows: usize) -> Self {
        let fake = SheetsFake::new(ID).tab("Contacts", sheet_rows, grid_rows);
        let server = FakeServer::start(fake.router()).await;
        let pg = PgPool::connect(&pg_url())
            .await
            .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL, scripts/ensure-services.sh)");
        let schema = format!(
            "syncctl_sheets_{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap()
        );
        let w = Self {
            fake,
            server,
            pg,
            schema,
            dir: tempfile::tempdir().unwrap(),
        };
        w.exec("CREATE SCHEMA $S").await;
        w.exec(
            "CREATE TABLE $S.contacts (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, \
             first_name text, last_name text, company text, \
             updated_at timestamptz NOT NULL DEFAULT now(), origin text)",
        )
        .await;
        w.config("source_wins", 100);
        w
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$S", &format!("\"{}\"", self.schema));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pg)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn config(&self, strategy: &str, batch: usize) {
        let yaml = format!(
            r#"name: sheets-pg
source: {{connector: google_sheets, object: Contacts, key_column: email}}
target: {{connector: postgres, url: "${{PG_URL}}", object: {schema}.contacts, updated_at_column: updated_at, origin_column: origin}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
  - {{source: first_name, target: first_name}}
  - {{source: last_name, target: last_name}}
  - {{source: company, target: company}}
direction: bidirectional
conflict_strategy: {strategy}
batch_size: {batch}
state: "sqlite://state.db"
"#,
            schema = self.schema
        );
        std::fs::write(self.dir.path().join("sync.yaml"), yaml).unwrap();
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"));
        cmd.env_clear()
            .env("NO_COLOR", "1")
            .env("USER", "tester")
            .current_dir(self.dir.path())
            .env("PG_URL", pg_url())
            .env(
                "GOOGLE_SHEETS_CREDENTIALS_JSON",
                service_account_json(&format!("{}/token", self.server.url())),
            )
            .env("GOOGLE_SHEETS_SPREADSHEET_ID", ID)
            .env("GOOGLE_SHEETS_BASE_URL", self.server.url())
            .arg("sync")
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("sync.yaml"));
        cmd
    }

    async fn sync(&self, args: &[&str]) -> CliRun {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || CliRun::from_output(&cmd.output().unwrap()))
            .await
            .unwrap()
    }

    /// email → [first, last, company] in PostgreSQL.
    async fn pg_rows(&self) -> BTreeMap<String, Vec<Option<String>>> {
        let rows: Vec<PgRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT email, first_name, last_name, company FROM \"{}\".contacts",
            self.schema
        )))
        .fetch_all(&self.pg)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(e, f, l, c)| (e, vec![f, l, c]))
            .collect()
    }

    /// email → [first, last, company] in the sheet; panics on a duplicated email.
    fn sheet_rows(&self) -> BTreeMap<String, Vec<Option<String>>> {
        let mut out = BTreeMap::new();
        for row in self.fake.rows("Contacts").into_iter().skip(1) {
            if row.iter().all(|v| v.as_str() == Some("")) || row.is_empty() {
                continue;
            }
            let cell = |i: usize| {
                row.get(i)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let email = cell(0).unwrap();
            let prev = out.insert(email.clone(), vec![cell(1), cell(2), cell(3)]);
            assert!(prev.is_none(), "{email} is on two rows of the sheet");
        }
        out
    }

    fn batch_updates(&self) -> usize {
        self.server
            .requests_to(&Method::POST, "values:batchUpdate")
            .len()
    }

    async fn drop(self) {
        self.exec("DROP SCHEMA IF EXISTS $S CASCADE").await;
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_and_postgres_sync_both_ways_and_survive_hand_edits() {
    let w = World::new(
        vec![
            header(),
            vec![
                json!("ada@example.com"),
                json!("Ada"),
                json!("Lovelace"),
                json!("Analytical"),
            ],
            vec![json!("grace@example.com"), json!("Grace"), json!("Hopper")],
        ],
        4,
    )
    .await;
    w.exec(
        "INSERT INTO $S.contacts (email, first_name, last_name, company) VALUES \
         ('linus@example.com', 'Linus', 'Torvalds', 'Linux'), \
         ('margaret@example.com', 'Margaret', 'Hamilton', NULL)",
    )
    .await;

    // latest needs a modified time per row, which a sheet does not keep.
    w.config("latest", 100);
    let refused = w.sync(&["run"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert_eq!(refused.error_class(), Some("config"));
    assert!(
        refused.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("updated_at_column"),
        "{}",
        refused.result
    );
    assert_eq!(w.batch_updates(), 0);
    w.config("source_wins", 100);

    let first = w.sync(&["run"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        first.result["data"]["target"]["created"], 2,
        "{}",
        first.result
    );
    assert_eq!(
        first.result["data"]["source"]["created"], 2,
        "{}",
        first.result
    );
    let sheet = w.sheet_rows();
    assert_eq!(sheet, w.pg_rows().await);
    assert_eq!(
        sheet["grace@example.com"],
        vec![s("Grace"), s("Hopper"), None]
    );
    assert_eq!(
        sheet["linus@example.com"],
        vec![s("Linus"), s("Torvalds"), s("Linux")]
    );
    assert!(
        w.fake.row_count("Contacts") >= 5,
        "the grid grew before rows were written past it"
    );
    assert_eq!(w.fake.appends(), 0, "values.append is never used");

    // A rerun writes nothing to either side.
    let writes = w.batch_updates();
    let again = w.sync(&["run"]).await;
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(w.batch_updates(), writes, "{}", again.result);
    for side in ["source", "target"] {
        for k in ["created", "updated"] {
            assert_eq!(
                again.result["data"][side][k], 0,
                "{side}.{k}: {}",
                again.result
            );
        }
    }

    // During the next run, right after it read the tab, someone inserts a row at the top
    // and edits Ada's company by hand; meanwhile PostgreSQL changed Linus.
    w.exec("UPDATE $S.contacts SET company = 'Linux Foundation' WHERE email = 'linus@example.com'")
        .await;
    let after_scan = w.fake.read_count() + 3; // spreadsheets.get, header row, whole tab
    w.fake.edit_after_read(
        after_scan,
        Edit::InsertRows {
            tab: "Contacts".into(),
            at: 2,
            rows: vec![vec![
                json!("alan@example.com"),
                json!("Alan"),
                json!("Turing"),
            ]],
        },
    );
    w.fake.edit_after_read(
        after_scan,
        Edit::SetCell {
            tab: "Contacts".into(),
            row: 3,
            column: 3,
            value: json!("Babbage & Co"),
        },
    );
    let during = w.sync(&["run"]).await;
    assert_eq!(during.code, 0, "{}\n{}", during.stdout, during.stderr);
    let sheet = w.sheet_rows();
    assert_eq!(
        sheet["linus@example.com"][2],
        s("Linux Foundation"),
        "written to Linus's row wherever it moved"
    );
    assert_eq!(
        sheet["ada@example.com"][2],
        s("Babbage & Co"),
        "the hand edit survived the run"
    );
    assert_eq!(
        sheet["alan@example.com"],
        vec![s("Alan"), s("Turing"), None]
    );
    // The next run carries the hand edit and the new row to PostgreSQL.
    let next = w.sync(&["run"]).await;
    assert_eq!(next.code, 0, "{}", next.stdout);
    assert_eq!(w.sheet_rows(), w.pg_rows().await);
    assert_eq!(w.pg_rows().await.len(), 5);
    w.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_write_reruns_without_duplicate_rows() {
    use std::os::unix::process::ExitStatusExt;
    let w = World::new(vec![header()], 10).await;
    w.exec(
        "INSERT INTO $S.contacts (email, first_name, last_name) \
         SELECT 'p' || i || '@example.com', 'P' || i, 'L' || i FROM generate_series(1, 30) i",
    )
    .await;
    w.config("source_wins", 3);
    // Slow writes so the kill lands between batches.
    w.server.inject_on(
        Some(Method::POST),
        "values:batchUpdate",
        Fault::Delay(Duration::from_millis(300)),
        100,
    );
    let mut child = w
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while w.batch_updates() < 4 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    let partial = w.sheet_rows().len();
    assert!(
        partial < 30,
        "the kill landed mid-run ({partial} rows written)"
    );

    let rerun = w.sync(&["run"]).await;
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    let sheet = w.sheet_rows(); // panics on a duplicated email
    assert_eq!(sheet.len(), 30);
    assert_eq!(sheet, w.pg_rows().await);
    let again = w.sync(&["run"]).await;
    assert_eq!(
        again.result["data"]["source"]["created"], 0,
        "{}",
        again.result
    );
    assert_eq!(
        again.result["data"]["target"]["created"], 0,
        "{}",
        again.result
    );
    w.drop().await;
}
