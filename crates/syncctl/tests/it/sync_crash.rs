//! Crash safety: runs killed with SIGKILL at many points (at least 20 kills that land mid-run)
//! while both sides keep changing, then runs to completion. It must converge: no duplicate
//! creates, no lost update, the audit consistent (killed runs `interrupted`, nothing left
//! `planned`), and the lock of a killed run taken over at once.
//!
//! Kill points are chosen two ways: after a random number of audit rows appear (progress
//! inside batches), and after a random delay from start (startup, lock, reads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{crm_rows_of, read_csv, sqlite};

const CONFIG: &str = r#"
name: crash-test
source: {connector: csv, path: contacts.csv}
target: {connector: sqlite, url: "sqlite://crm.db", object: customers, updated_at_column: updated_at}
key: {source: email, target: email}
fields:
  - {source: email, target: email}
  - {source: name, target: name}
  - {source: company, target: company}
  - {source: phone, target: phone}
direction: bidirectional
conflict_strategy: source_wins
batch_size: 4
state: "sqlite://state.db"
"#;

/// A small deterministic generator (no dependency, reproducible from the seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What both sides must hold once synced: email → (name, company, phone).
type Model = BTreeMap<String, (String, String, String)>;

struct World {
    dir: tempfile::TempDir,
    model: Model,
    next_email: usize,
}

impl World {
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// Appends rows to the spreadsheet.
    fn csv_append(&mut self, n: usize) {
        let mut text = std::fs::read_to_string(self.path("contacts.csv")).unwrap();
        for _ in 0..n {
            let e = format!("s{}@x.io", self.next_email);
            self.next_email += 1;
            text.push_str(&format!(
                "{e},Name {e},Co 0,+1555000{:04}\n",
                self.next_email
            ));
            self.model.insert(
                e.clone(),
                (
                    format!("Name {e}"),
                    "Co 0".into(),
                    format!("+1555000{:04}", self.next_email),
                ),
            );
        }
        std::fs::write(self.path("contacts.csv"), text).unwrap();
    }

    /// Sets `company` of some spreadsheet rows (the source owns these edits).
    fn csv_edit_companies(&mut self, rng: &mut Rng, n: usize, round: usize) {
        let path = self.path("contacts.csv");
        let mut rdr = csv::Reader::from_path(&path).unwrap();
        let headers = rdr.headers().unwrap().clone();
        let mut rows: Vec<Vec<String>> = rdr
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        for _ in 0..n {
            let i = rng.below(rows.len() as u64) as usize;
            let company = format!("Co {round}-{i}");
            rows[i][2].clone_from(&company);
            if let Some(m) = self.model.get_mut(&rows[i][0]) {
                m.1 = company;
            }
        }
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(&headers).unwrap();
        for r in rows {
            w.write_record(&r).unwrap();
        }
        w.flush().unwrap();
    }

    /// Sets `phone` of some CRM rows and inserts new customers (the target owns these).
    async fn crm_edit(&mut self, rng: &mut Rng, n: usize, new: usize, round: usize) {
        let pool = sqlite(&self.path("crm.db")).await;
        let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM customers ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        for _ in 0..n {
            let e = &emails[rng.below(emails.len() as u64) as usize];
            let phone = format!("+4420{round:03}{:05}", rng.below(100_000));
            sqlx::query(
                "UPDATE customers SET phone = ?1, updated_at = CURRENT_TIMESTAMP WHERE email = ?2",
            )
            .bind(&phone)
            .bind(e)
            .execute(&pool)
            .await
            .unwrap();
            if let Some(m) = self.model.get_mut(e) {
                m.2 = phone;
            }
        }
        for _ in 0..new {
            let e = format!("t{}@x.io", self.next_email);
            self.next_email += 1;
            sqlx::query("INSERT INTO customers (email, name, company, phone) VALUES (?1, ?2, 'CRM', '+33100000000')")
                .bind(&e)
                .bind(format!("Name {e}"))
                .execute(&pool)
                .await
                .unwrap();
            self.model.insert(
                e.clone(),
                (format!("Name {e}"), "CRM".into(), "+33100000000".into()),
            );
        }
        pool.close().await;
    }
}

fn spawn(dir: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .current_dir(dir)
        .args(["sync", "run", "--config", "sync.yaml", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How many rows the SQLite target holds (0 while it cannot be read).
async fn target_rows(dir: &Path) -> i64 {
    let p = dir.join("crm.db");
    let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.display())).await
    else {
        return 0;
    };
    let n = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    n
}

async fn change_rows(dir: &Path) -> i64 {
    let p = dir.join("state.db");
    if !p.exists() {
        return 0;
    }
    let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.display())).await
    else {
        return 0;
    };
    let n = sqlx::query_scalar("SELECT count(*) FROM sync_change")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    n
}

#[tokio::test]
async fn runs_killed_at_random_points_converge_without_duplicates_or_lost_updates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sync.yaml"), CONFIG).unwrap();
    std::fs::write(
        dir.path().join("contacts.csv"),
        "email,name,company,phone\n",
    )
    .unwrap();
    let pool = sqlite(&dir.path().join("crm.db")).await;
    // No UNIQUE on email: a duplicate create would show up instead of failing.
    sqlx::query(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, company TEXT, phone TEXT, \
         updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut world = World {
        dir,
        model: Model::new(),
        next_email: 0,
    };
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    world.csv_append(120);
    world.crm_edit(&mut rng, 0, 40, 0).await;

    let mut killed_mid_run: i64 = 0;
    let mut finished: i64 = 0;
    let mut killed_with_rows: i64 = 0;
    let mut round: usize = 0;
    while killed_mid_run < 24 {
        round += 1;
        assert!(
            round < 120,
            "could not land enough kills mid-run ({killed_mid_run})"
        );
        if round.is_multiple_of(2) {
            world.csv_edit_companies(&mut rng, 12, round);
            world.crm_edit(&mut rng, 12, 3, round).await;
            world.csv_append(3);
        }
        let before = change_rows(world.dir.path()).await;
        let mut child = spawn(world.dir.path());
        let mut run_started = false;
        if round.is_multiple_of(3) {
            tokio::time::sleep(Duration::from_millis(rng.below(250))).await;
        } else {
            let threshold = before + 1 + rng.below(60) as i64;
            let start = Instant::now();
            while change_rows(world.dir.path()).await < threshold
                && child.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            run_started = change_rows(world.dir.path()).await > before;
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed_mid_run += 1;
            // Audit rows of this run exist, so it has a run row that must end up interrupted.
            killed_with_rows += i64::from(run_started);
        } else {
            finished += 1;
        }
    }

    // Now let it finish: one run converges, the next has nothing to do.
    let done = crate::support::syncctl()
        .current_dir(world.dir.path())
        .args(["sync", "run", "--config", "sync.yaml"])
        .output()
        .unwrap();
    let done = syncctl_testkit::cli::CliRun::from_output(&done);
    assert_eq!(done.code, 0, "{}\n{}", done.result, done.stderr);
    let again = crate::support::syncctl()
        .current_dir(world.dir.path())
        .args(["sync", "run", "--config", "sync.yaml"])
        .output()
        .unwrap();
    let again = syncctl_testkit::cli::CliRun::from_output(&again);
    assert_eq!(again.code, 0);
    for side in ["source", "target"] {
        for k in ["created", "updated", "deleted", "failed"] {
            assert_eq!(
                again.result["data"][side][k], 0,
                "{side}.{k} on the run after convergence: {}",
                again.result
            );
        }
    }

    // Both sides hold exactly the model: every record once, every update kept.
    let csv = read_csv(&world.path("contacts.csv"));
    let crm = crm_rows_of(
        &world.path("crm.db"),
        &["email", "name", "company", "phone"],
    )
    .await;
    let as_model = |m: &BTreeMap<String, BTreeMap<String, String>>| -> Model {
        m.iter()
            .map(|(e, r)| {
                (
                    e.clone(),
                    (r["name"].clone(), r["company"].clone(), r["phone"].clone()),
                )
            })
            .collect()
    };
    assert_eq!(as_model(&crm), world.model, "CRM differs from the model");
    assert_eq!(
        as_model(&csv),
        world.model,
        "spreadsheet differs from the model"
    );

    // The audit: killed runs are interrupted, nothing is left planned or running, one link per record.
    let pool = sqlite(&world.path("state.db")).await;
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM sync_run GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .unwrap();
    let count = |s: &str| statuses.iter().find(|(x, _)| x == s).map_or(0, |(_, n)| *n);
    assert_eq!(count("running"), 0, "{statuses:?}");
    assert!(
        count("interrupted") >= killed_with_rows && killed_with_rows >= 10,
        "{statuses:?} after {killed_mid_run} kills, {killed_with_rows} of them with audit rows"
    );
    let planned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_change WHERE status = 'planned'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(planned, 0);
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_link")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(links as usize, world.model.len());
    let lock: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_lock")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lock, 0, "the last run released its lock");
    pool.close().await;
    assert!(killed_mid_run >= 24 && (finished + killed_mid_run) as usize == round);
}

#[tokio::test]
async fn sigterm_stops_between_batches_reports_cancelled_and_a_rerun_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sync.yaml"), CONFIG).unwrap();
    std::fs::write(
        dir.path().join("contacts.csv"),
        "email,name,company,phone\n",
    )
    .unwrap();
    let pool = sqlite(&dir.path().join("crm.db")).await;
    sqlx::query(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, company TEXT, phone TEXT, \
         updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut world = World {
        dir,
        model: Model::new(),
        next_email: 0,
    };
    world.csv_append(400);

    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .current_dir(world.dir.path())
        .args(["sync", "run", "--config", "sync.yaml", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Wait for rows the target really holds: the plan for a whole window is persisted before
    // the first write, so planned changes alone do not mean a batch went out.
    while target_rows(world.dir.path()).await < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never started writing"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let r = syncctl_testkit::cli::CliRun::from_output(&out);
    assert_eq!(r.code, 143, "{}\n{}", r.result, r.stderr);
    assert_eq!(r.status(), "cancelled");
    let created = r.result["data"]["target"]["created"].as_u64().unwrap();
    assert!(created > 0 && created < 400, "stopped part-way: {created}");

    let pool = sqlite(&world.path("state.db")).await;
    let status: String = sqlx::query_scalar("SELECT status FROM sync_run")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    let planned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_change WHERE status = 'planned'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(planned, 0, "unsent changes are settled as skipped");
    let lock: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_lock")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lock, 0, "the lock is released on the way out");
    pool.close().await;

    let again = crate::support::syncctl()
        .current_dir(world.dir.path())
        .args(["sync", "run", "--config", "sync.yaml"])
        .output()
        .unwrap();
    let again = syncctl_testkit::cli::CliRun::from_output(&again);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.result["data"]["target"]["created"].as_u64().unwrap() + created,
        400
    );
    let crm = crm_rows_of(
        &world.path("crm.db"),
        &["email", "name", "company", "phone"],
    )
    .await;
    assert_eq!(crm.len(), 400);
}
