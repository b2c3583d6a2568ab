//! Shared helpers of the end-to-end tests (mostly the `sync_*` modules): a quickstart copy in a
//! temp dir, the binary, and readers for the CSV and SQLite sides.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use syncctl_testkit::cli::CliRun;

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
