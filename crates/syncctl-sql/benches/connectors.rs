//! The SQL connectors alone, side by side with the databases' own bulk tools, in one run and
//! on the same generated rows (`syncctl_testkit::bench_rows`): PostgreSQL read and write
//! against `psql \copy` out and in, MariaDB/MySQL write against `LOAD DATA LOCAL INFILE`
//! (through the `mariadb` client with `--local-infile`), SQLite read and write in rows/s.
//! Every written table is compared with the source afterwards and every read record with the
//! generated row, so a fast path that stores or returns something else fails the run.
//!
//! ```text
//! scripts/bench/connectors.sh                                  # this and the CSV bench
//! cargo bench -p syncctl-sql --bench connectors                # 100 000 rows, all three
//! cargo bench -p syncctl-sql --bench connectors -- 20000 pg    # any size, some of pg/mysql/sqlite
//! ```
//!
//! Reads pages and writes batches of `SYNCCTL_BENCH_PAGE` records (default 1000, the SQL
//! connectors' batch cap), creates matched on the natural key `sku` as a first load sends them.
//! Uses SYNCCTL_TEST_PG_URL / SYNCCTL_TEST_MYSQL_URL (the test databases), a schema
//! `bench_connectors` and tables `bench_connectors_*` that it drops first and keeps after, and
//! files under target/bench/connectors/. Prints one Markdown table row per measurement.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;
use syncctl_core::{BuildContext, Connector, ReadRequest, Record, WriteContext, WriteOutcome};
use syncctl_sql::mysql::MySqlConnector;
use syncctl_sql::postgres::PgConnector;
use syncctl_sql::settings::SqlSettings;
use syncctl_sql::sqlite::SqliteConnector;
use syncctl_testkit::bench_rows::{BenchRow, COLUMNS, TimestampStyle, check_all, rows};

fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn mysql_url() -> String {
    std::env::var("SYNCCTL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

fn page() -> usize {
    std::env::var("SYNCCTL_BENCH_PAGE")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000)
}

fn settings(url: &str, object: &str, cursor: bool) -> SqlSettings {
    let mut s = json!({"url": url, "object": object, "max_batch": page()});
    if cursor {
        s["updated_at_column"] = json!("modified_at");
    }
    serde_json::from_value(s).unwrap()
}

fn work_dir() -> PathBuf {
    // Benches run with the package as working directory; keep files in the workspace target.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/connectors");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tsv(rows: &[BenchRow], style: TimestampStyle) -> String {
    let mut buf = String::with_capacity(rows.len() * 80);
    for r in rows {
        r.push_tsv(&mut buf, style);
    }
    buf
}

/// One line of the result table.
struct Line {
    connector: &'static str,
    op: &'static str,
    rows: usize,
    secs: f64,
    reference: Option<(&'static str, f64)>,
    /// The least rows/s (no reference) or the least share of the reference's speed.
    target: Target,
}

enum Target {
    RowsPerSec(f64),
    ShareOfReference(f64),
}

impl Line {
    fn print(&self) {
        let rate = self.rows as f64 / self.secs;
        let (reference, ratio, pass) = match (&self.reference, &self.target) {
            (Some((tool, secs)), Target::ShareOfReference(min)) => {
                let ratio = secs / self.secs;
                (
                    format!("{tool} {secs:.2} s ({:.0} rows/s)", self.rows as f64 / secs),
                    format!("{:.0} %", ratio * 100.0),
                    format!("≥ {:.0} %: {}", min * 100.0, verdict(ratio >= *min)),
                )
            }
            (_, Target::RowsPerSec(min)) => (
                "-".to_owned(),
                "-".to_owned(),
                format!("≥ {min:.0} rows/s: {}", verdict(rate >= *min)),
            ),
            (None, Target::ShareOfReference(_)) => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {:.2} | {rate:.0} | {reference} | {ratio} | {pass} |",
            self.connector, self.op, self.rows, self.secs
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// Runs a reference tool and returns its wall time; panics (failing the bench) if it fails.
fn timed_command(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().expect("reference tool runs");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// Reads every record of `source` page by page; returns them and the seconds taken.
async fn read_all(c: &dyn Connector) -> (Vec<Record>, f64) {
    let schema = c.describe().await.unwrap();
    let src = c.source().unwrap();
    let start = Instant::now();
    let mut req = ReadRequest::full(page());
    let mut all = Vec::new();
    loop {
        let p = src.read_page(&schema, &req).await.unwrap();
        all.extend(p.records);
        match p.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    (all, start.elapsed().as_secs_f64())
}

/// Writes every row as a natural-key create, batch by batch; returns the seconds taken.
async fn write_all(c: &dyn Connector, rows: &[BenchRow]) -> f64 {
    let schema = c.describe().await.unwrap();
    let sink = c.sink().unwrap();
    let ctx = WriteContext::new("bench", "00000000-0000-0000-0000-00000000beef");
    let ops: Vec<_> = rows.iter().map(BenchRow::create_op).collect();
    let start = Instant::now();
    for batch in ops.chunks(page().min(schema.max_batch)) {
        let out = sink.write(&schema, batch, &ctx).await.unwrap();
        assert_eq!(out.len(), batch.len());
        for o in &out {
            assert!(
                matches!(o, WriteOutcome::Applied { created: true, .. }),
                "{o:?}"
            );
        }
    }
    start.elapsed().as_secs_f64()
}

async fn postgres(n: usize, rows: &[BenchRow], lines: &mut Vec<Line>) {
    let url = pg_url();
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL)");
    let table = |name: &str| {
        format!(
            "CREATE TABLE bench_connectors.{name} (id bigserial PRIMARY KEY, sku text NOT NULL UNIQUE, \
             name text NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL, \
             modified_at timestamptz NOT NULL, note text);"
        )
    };
    let setup = format!(
        "DROP SCHEMA IF EXISTS bench_connectors CASCADE; CREATE SCHEMA bench_connectors; {}{}{}",
        table("copy_in"),
        table("source"),
        table("target")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&pool)
        .await
        .unwrap();
    let dir = work_dir();
    let file_in = dir.join("pg_rows.tsv");
    let file_out = dir.join("pg_out.tsv");
    std::fs::write(&file_in, tsv(rows, TimestampStyle::Rfc3339)).unwrap();
    let cols = COLUMNS.join(", ");
    let psql = |meta: String| {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c", &meta]);
        c
    };
    // The references: the rows into an empty table of the same shape, and the table out.
    let copy_in = timed_command(&mut psql(format!(
        "\\copy bench_connectors.copy_in ({cols}) FROM '{}'",
        file_in.display()
    )));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bench_connectors.source ({cols}) SELECT {cols} FROM bench_connectors.copy_in ORDER BY sku"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE bench_connectors.source")
        .execute(&pool)
        .await
        .unwrap();
    let copy_out = timed_command(&mut psql(format!(
        "\\copy bench_connectors.source TO '{}'",
        file_out.display()
    )));

    let source = PgConnector::new(settings(&url, "bench_connectors.source", true)).unwrap();
    let (read, read_secs) = read_all(&source).await;
    check_all(rows, &read).unwrap();
    lines.push(Line {
        connector: "postgres",
        op: "read",
        rows: n,
        secs: read_secs,
        reference: Some(("psql \\copy out", copy_out)),
        target: Target::ShareOfReference(0.5),
    });

    let target = PgConnector::new(settings(&url, "bench_connectors.target", false)).unwrap();
    let write_secs = write_all(&target, rows).await;
    let differ: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM (SELECT {cols} FROM bench_connectors.target EXCEPT ALL \
                 SELECT {cols} FROM bench_connectors.copy_in) a) \
              + (SELECT count(*) FROM (SELECT {cols} FROM bench_connectors.copy_in EXCEPT ALL \
                 SELECT {cols} FROM bench_connectors.target) b)"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(differ, 0, "postgres: the written table differs from psql's");
    lines.push(Line {
        connector: "postgres",
        op: "write (natural-key creates)",
        rows: n,
        secs: write_secs,
        reference: Some(("psql \\copy in", copy_in)),
        target: Target::ShareOfReference(0.5),
    });
    pool.close().await;
}

/// The parts of `mysql://user[:password]@host[:port]/database` the `mariadb` client takes.
struct MysqlUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    database: String,
}

impl MysqlUrl {
    fn parse(url: &str) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (auth, rest) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (auth.to_owned(), None),
        };
        let (hostport, database) = rest.split_once('/').unwrap_or((rest, "test"));
        let database = database.split('?').next().unwrap_or("test").to_owned();
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(3306)),
            None => (hostport.to_owned(), 3306),
        };
        Self {
            user,
            password,
            host,
            port,
            database,
        }
    }
}

async fn mysql(n: usize, rows: &[BenchRow], lines: &mut Vec<Line>) {
    let url = mysql_url();
    let pool = sqlx::MySqlPool::connect(&url)
        .await
        .expect("MariaDB/MySQL must be running (SYNCCTL_TEST_MYSQL_URL)");
    for name in ["bench_connectors_load", "bench_connectors_target"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {name} (id bigint AUTO_INCREMENT PRIMARY KEY, sku varchar(32) NOT NULL UNIQUE, \
             name varchar(200) NOT NULL, qty int NOT NULL, price decimal(12,2) NOT NULL, \
             modified_at datetime(3) NOT NULL, note text) ENGINE=InnoDB"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    let file = work_dir().join("mysql_rows.tsv");
    std::fs::write(&file, tsv(rows, TimestampStyle::Naive)).unwrap();
    let u = MysqlUrl::parse(&url);
    let mut load = Command::new("mariadb");
    load.arg("--local-infile=1")
        .arg(format!("--host={}", u.host))
        .arg(format!("--port={}", u.port))
        .arg(format!("--user={}", u.user))
        .arg(&u.database)
        .arg("-e")
        .arg(format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE bench_connectors_load ({})",
            file.display(),
            COLUMNS.join(", ")
        ));
    if let Some(p) = &u.password {
        // The environment, not the command line: other users can read argv.
        load.env("MYSQL_PWD", p);
    }
    let load_secs = timed_command(&mut load);

    let target = MySqlConnector::new(settings(&url, "bench_connectors_target", false)).unwrap();
    let write_secs = write_all(&target, rows).await;
    let cols = COLUMNS.join(", ");
    let differ: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM (SELECT {cols} FROM bench_connectors_target EXCEPT ALL \
                 SELECT {cols} FROM bench_connectors_load) a) \
              + (SELECT count(*) FROM (SELECT {cols} FROM bench_connectors_load EXCEPT ALL \
                 SELECT {cols} FROM bench_connectors_target) b)"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    let loaded: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_connectors_load")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(loaded, n as i64, "LOAD DATA loaded every row");
    assert_eq!(
        differ, 0,
        "mysql: the written table differs from LOAD DATA's"
    );
    lines.push(Line {
        connector: "mysql",
        op: "write (natural-key creates)",
        rows: n,
        secs: write_secs,
        reference: Some(("LOAD DATA LOCAL INFILE", load_secs)),
        target: Target::ShareOfReference(0.5),
    });

    let (read, read_secs) = read_all(&target).await;
    check_all(rows, &read).unwrap();
    lines.push(Line {
        connector: "mysql",
        op: "read",
        rows: n,
        secs: read_secs,
        reference: None,
        target: Target::ShareOfReference(0.0),
    });
    pool.close().await;
}

async fn sqlite(n: usize, rows: &[BenchRow], lines: &mut Vec<Line>) {
    let dir = work_dir();
    let path = dir.join("sqlite.db");
    let _ = std::fs::remove_file(&path);
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    for name in ["source", "target"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {name} (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, \
             qty INTEGER NOT NULL, price NUMERIC(12,2) NOT NULL, modified_at TIMESTAMP NOT NULL, note TEXT)"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut tx = pool.begin().await.unwrap();
    for r in rows {
        sqlx::query("INSERT INTO source (sku, name, qty, price, modified_at, note) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&r.sku)
            .bind(&r.name)
            .bind(r.qty)
            .bind(r.price())
            .bind(r.modified())
            .bind(&r.note)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let ctx = BuildContext::new(&dir);
    let source =
        SqliteConnector::new(&ctx, settings("sqlite://sqlite.db", "source", true)).unwrap();
    let (read, read_secs) = read_all(&source).await;
    check_all(rows, &read).unwrap();
    lines.push(Line {
        connector: "sqlite",
        op: "read",
        rows: n,
        secs: read_secs,
        reference: None,
        target: Target::RowsPerSec(100_000.0),
    });
    let target =
        SqliteConnector::new(&ctx, settings("sqlite://sqlite.db", "target", false)).unwrap();
    let write_secs = write_all(&target, rows).await;
    let (written, _) = read_all(&target).await;
    check_all(rows, &written).unwrap();
    lines.push(Line {
        connector: "sqlite",
        op: "write (natural-key creates)",
        rows: n,
        secs: write_secs,
        reference: None,
        target: Target::RowsPerSec(100_000.0),
    });
    pool.close().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(100_000);
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| matches!(*a, "pg" | "mysql" | "sqlite"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.contains(&name);
    let rows = rows(n);
    let mut lines = Vec::new();
    if run("pg") {
        postgres(n, &rows, &mut lines).await;
    }
    if run("mysql") {
        mysql(n, &rows, &mut lines).await;
    }
    if run("sqlite") {
        sqlite(n, &rows, &mut lines).await;
    }
    println!(
        "| connector | operation | rows | seconds | rows/s | reference | share of reference | target met |"
    );
    println!("|---|---|---:|---:|---:|---|---:|---|");
    for l in &lines {
        l.print();
    }
}
