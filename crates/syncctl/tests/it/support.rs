//! Shared helpers of the end-to-end tests (mostly the `sync_*` modules): a quickstart copy in a
//! temp dir, the binary, and readers for the CSV and SQLite sides.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use axum::http::Method;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

/// The repository's `examples/quickstart`.
pub(crate) fn quickstart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

/// A copy of the quickstart: `sync.yaml` and `work/` seeded from `seed/`.
pub(crate) struct Quickstart {
    pub(crate) dir: tempfile::TempDir,
}

impl Quickstart {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let q = quickstart_dir();
        std::fs::copy(q.join("sync.yaml"), dir.path().join("sync.yaml")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        for f in ["contacts.csv", "crm.db"] {
            std::fs::copy(q.join("seed").join(f), dir.path().join("work").join(f)).unwrap();
        }
        Self { dir }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn config(&self) -> String {
        self.path("sync.yaml").display().to_string()
    }

    /// Rewrites the config through `f`.
    pub(crate) fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let p = self.path("sync.yaml");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, f(text)).unwrap();
    }

    /// `syncctl ARGS --config sync.yaml` with a clean environment, run in the temp dir.
    pub(crate) fn sync(&self, args: &[&str]) -> CliRun {
        let mut cmd = syncctl();
        cmd.current_dir(self.dir.path())
            .arg("sync")
            .args(args)
            .arg("--config")
            .arg(self.config());
        CliRun::from_output(&cmd.output().unwrap())
    }

    /// The spreadsheet: email → row.
    pub(crate) fn csv(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        read_csv(&self.path("work/contacts.csv"))
    }

    /// The CRM: email → row (text values).
    pub(crate) async fn crm(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        crm_rows(&self.path("work/crm.db")).await
    }

    /// Runs SQL on the CRM, as a CRM user would.
    pub(crate) async fn crm_exec(&self, sql: &str) {
        let pool = sqlite(&self.path("work/crm.db")).await;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    /// Replaces `from` by `to` in the spreadsheet, as a spreadsheet user would.
    pub(crate) fn csv_edit(&self, from: &str, to: &str) {
        let p = self.path("work/contacts.csv");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{from:?} not in the CSV:\n{text}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }
}

/// The binary with a clean environment.
pub(crate) fn syncctl() -> Command {
    let mut cmd = Command::cargo_bin("syncctl").unwrap();
    cmd.env_clear().env("NO_COLOR", "1").env("USER", "tester");
    cmd
}

/// Runs `cmd` to the end on a blocking thread, so the fakes it talks to (served by the test's
/// own runtime) keep answering meanwhile.
pub(crate) async fn run_blocking(mut cmd: Command) -> CliRun {
    tokio::task::spawn_blocking(move || CliRun::from_output(&cmd.output().unwrap()))
        .await
        .unwrap()
}

/// The HubSpot and QuickBooks fakes, served in-process, and a working directory for the binary
/// (the `sync_hubspot_qbo` and `sync_deals_invoice` modules).
pub(crate) struct HubSpotQuickBooks {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) hs: HubSpotFake,
    pub(crate) qb: QuickBooksFake,
    pub(crate) hs_srv: FakeServer,
    pub(crate) qb_srv: FakeServer,
    /// The token `hs` accepts; no output of the binary may hold it.
    pub(crate) hs_token: &'static str,
}

impl HubSpotQuickBooks {
    /// Serves both fakes.
    pub(crate) async fn new(hs_token: &'static str, hs: HubSpotFake, qb: QuickBooksFake) -> Self {
        let hs_srv = FakeServer::start(hs.router()).await;
        let qb_srv = FakeServer::start(qb.router()).await;
        Self::served(hs_token, hs, qb, hs_srv, qb_srv)
    }

    /// Both fakes already served (a router with a test's own layer).
    pub(crate) fn served(
        hs_token: &'static str,
        hs: HubSpotFake,
        qb: QuickBooksFake,
        hs_srv: FakeServer,
        qb_srv: FakeServer,
    ) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            hs,
            qb,
            hs_srv,
            qb_srv,
            hs_token,
        }
    }

    /// The binary with the settings of both systems in its environment, in the work dir.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = syncctl();
        cmd.current_dir(self.dir.path())
            .env("HUBSPOT_API_TOKEN", self.hs_token)
            .env("HUBSPOT_BASE_URL", self.hs_srv.url())
            .env("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)
            .env("QUICKBOOKS_REALM_ID", DEMO_REALM)
            .env("QUICKBOOKS_BASE_URL", self.qb_srv.url());
        cmd
    }

    /// `syncctl sync ARGS` (no config file unless ARGS name one); fails if a token leaks.
    pub(crate) async fn sync(&self, args: &[&str]) -> CliRun {
        let mut cmd = self.command();
        cmd.arg("sync").args(args);
        let r = run_blocking(cmd).await;
        assert_output_has_no_secrets(&r, &[self.hs_token, DEMO_ACCESS_TOKEN]);
        r
    }

    /// QuickBooks write calls: batches and single-entity posts (every POST but a long query).
    pub(crate) fn qb_writes(&self) -> usize {
        self.qb_srv
            .requests()
            .iter()
            .filter(|r| r.method == Method::POST && !r.path.ends_with("/query"))
            .count()
    }
}

/// The PostgreSQL server of the tests (`SYNCCTL_TEST_PG_URL`, else the local one).
pub(crate) fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The MySQL/MariaDB server of the tests (`SYNCCTL_TEST_MYSQL_URL`, else the local one).
pub(crate) fn mysql_url() -> String {
    std::env::var("SYNCCTL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Fails, naming `what` and the secret, when `text` contains any of `secrets`.
pub(crate) fn assert_no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} leaked {secret}:\n{text}");
    }
}

/// [`assert_no_secrets`] on a run's stdout and stderr.
pub(crate) fn assert_output_has_no_secrets(r: &CliRun, secrets: &[&str]) {
    assert_no_secrets("stdout", &r.stdout, secrets);
    assert_no_secrets("stderr", &r.stderr, secrets);
}

/// The Airbyte connection the three waiting services' fixtures start.
pub(crate) const STRIPE: &str = "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01";

/// One of the three services with a waiting command (`airbyte trigger`, `dbx run-now`,
/// `snowflake copy`), whose fake starts work that never finishes: the fake's server, the
/// variables pointing the binary at it, the command, and its vendor's calls and errors.
pub(crate) struct WaitingService {
    pub(crate) name: &'static str,
    pub(crate) server: syncctl_testkit::FakeServer,
    pub(crate) vars: Vec<(&'static str, String)>,
    pub(crate) args: Vec<&'static str>,
    /// The path of its cancel call.
    pub(crate) cancel_path: &'static str,
    /// What starts the remote work (the first write the command sends).
    pub(crate) start_path: &'static str,
    /// The vendor's own answer with an HTTP status (status, headers and body as it words them).
    pub(crate) fault: fn(u16) -> syncctl_testkit::Fault,
}

impl WaitingService {
    /// All three, in the order airbyte, dbx, snowflake.
    pub(crate) async fn all() -> [Self; 3] {
        [
            Self::airbyte().await,
            Self::dbx().await,
            Self::snowflake().await,
        ]
    }

    /// Airbyte OSS (basic auth) with the [`STRIPE`] connection, whose job runs forever.
    pub(crate) async fn airbyte() -> Self {
        use syncctl_testkit::fakes::airbyte::{self, FakeAirbyte, JobScript};
        let fake = FakeAirbyte::new()
            .with_basic_auth("airbyte", "password")
            .with_connection(STRIPE, "Stripe → Postgres");
        fake.set_script(STRIPE, JobScript::new().running_forever());
        let server = syncctl_testkit::FakeServer::start(fake.router()).await;
        Self {
            name: "airbyte",
            vars: vec![
                ("AIRBYTE_API_URL", server.url()),
                ("AIRBYTE_API_USERNAME", "airbyte".into()),
                ("AIRBYTE_API_PASSWORD", "password".into()),
            ],
            server,
            args: vec!["airbyte", "trigger", "--connection-id", STRIPE],
            cancel_path: "/api/v1/jobs/cancel",
            start_path: "/api/v1/connections/sync",
            fault: airbyte::error_fault,
        }
    }

    /// Databricks (a personal access token) with job 44, whose run stays RUNNING.
    pub(crate) async fn dbx() -> Self {
        use syncctl_testkit::fakes::databricks::{self, DatabricksFake, FakeJob};
        let fake = DatabricksFake::new()
            .with_pat("dapi-wait")
            .job(FakeJob::new(44, "streaming").lifecycle(&["RUNNING"; 100_000]));
        let server = syncctl_testkit::FakeServer::start(fake.router()).await;
        Self {
            name: "dbx",
            vars: vec![
                ("DATABRICKS_HOST", server.url()),
                ("DATABRICKS_TOKEN", "dapi-wait".into()),
            ],
            server,
            args: vec!["dbx", "run-now", "--job-id", "44", "--fresh-run"],
            cancel_path: "/jobs/runs/cancel",
            start_path: "/jobs/run-now",
            fault: databricks::error_fault,
        }
    }

    /// Snowflake (key-pair JWT) with one file to load, whose COPY never finishes.
    pub(crate) async fn snowflake() -> Self {
        use syncctl_testkit::fakes::snowflake::{
            self, FakeFile, SnowflakeFake, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
        };
        let fake = SnowflakeFake::builder()
            .account("MYORG-ACCT")
            .user("ETL_USER")
            .public_key_pem(TEST_PUBLIC_KEY_PEM)
            .table("RAW.EVENTS.EVENTS")
            .storage_integration("DATALAKE_INT")
            .polls_before_done(1_000_000)
            .file(FakeFile::new(
                "s3://lake/events/date=2025-10-30/part-0001.json",
                10,
            ))
            .build();
        let server = syncctl_testkit::FakeServer::start(fake.router()).await;
        Self {
            name: "snowflake",
            vars: vec![
                ("SNOWFLAKE_HOST", server.url()),
                ("SNOWFLAKE_ACCOUNT", "myorg-acct".into()),
                ("SNOWFLAKE_USER", "etl_user".into()),
                ("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM.into()),
                ("SNOWFLAKE_WAREHOUSE", "LOAD_WH".into()),
            ],
            server,
            args: vec![
                "snowflake",
                "copy",
                "--table",
                "RAW.EVENTS.EVENTS",
                "--from",
                "s3://lake/events/",
                "--date",
                "2025-10-30",
                "--storage-integration",
                "DATALAKE_INT",
            ],
            cancel_path: "/cancel",
            start_path: "/api/v2/statements",
            fault: snowflake::error_fault,
        }
    }

    /// Runs the command with `extra` flags and `env` on top of the service's variables, fast
    /// retries, no progress bars and a 20 ms poll interval (unless `extra` sets one).
    pub(crate) async fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> CliRun {
        let mut cmd = Command::cargo_bin("syncctl").unwrap();
        cmd.env_clear()
            .env("NO_COLOR", "1")
            .env("SYNCCTL_HTTP_RETRY_BASE", "10ms")
            .args(&self.args)
            .arg("--no-progress")
            .args(extra);
        if !extra.contains(&"--poll-interval") {
            cmd.args(["--poll-interval", "20ms"]);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_blocking(cmd).await
    }
}

pub(crate) fn read_csv(p: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut rdr = csv::Reader::from_path(p).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            let row: BTreeMap<String, String> = headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect();
            (row["email"].clone(), row)
        })
        .collect()
}

pub(crate) async fn sqlite(p: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(p)
        .create_if_missing(true);
    sqlx::SqlitePool::connect_with(opts).await.unwrap()
}

pub(crate) async fn crm_rows(p: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    use sqlx::Row;
    let pool = sqlite(p).await;
    let rows = sqlx::query(
        "SELECT CAST(id AS TEXT), email, given_name, family_name, phone, company, stage FROM customers",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let names = [
        "id",
        "email",
        "given_name",
        "family_name",
        "phone",
        "company",
        "stage",
    ];
    let mut out = BTreeMap::new();
    for r in rows {
        let row: BTreeMap<String, String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    (*n).to_owned(),
                    r.get::<Option<String>, _>(i).unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            out.insert(row["email"].clone(), row.clone()).is_none(),
            "duplicate email in the CRM: {row:?}"
        );
    }
    out
}

/// Rows of a `customers` table keyed by email, with the given columns as text; fails on a
/// duplicate email.
pub(crate) async fn crm_rows_of(
    p: &Path,
    columns: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    use sqlx::Row;
    let pool = sqlite(p).await;
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS TEXT)"))
        .collect();
    let sql = format!("SELECT {} FROM customers", list.join(", "));
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut out = BTreeMap::new();
    for r in rows {
        let row: BTreeMap<String, String> = columns
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    (*n).to_owned(),
                    r.get::<Option<String>, _>(i).unwrap_or_default(),
                )
            })
            .collect();
        let email = row["email"].clone();
        assert!(
            out.insert(email, row.clone()).is_none(),
            "duplicate email: {row:?}"
        );
    }
    out
}

/// Redactions for sync results in snapshots (ids, times, paths that change per run).
pub(crate) fn redactions() -> Vec<(&'static str, &'static str)> {
    let mut v = syncctl_testkit::cli::volatile_fields();
    v.extend([
        (".data.run", "[sync-run]"),
        (".data.source.endpoint", "[endpoint]"),
        (".data.target.endpoint", "[endpoint]"),
        (".data.breaker.*.endpoint", "[endpoint]"),
        (".data.source.cursor.*", "[cursor]"),
        (".data.target.cursor.*", "[cursor]"),
    ]);
    v
}
