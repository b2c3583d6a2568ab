//! Crash safety of the bulk first load (an empty target, no links): first loads killed with
//! SIGKILL at random points (before, during and after the target writes), then run again to
//! the end. Each must converge: every source row in the target exactly once with its values,
//! one link per row, killed runs `interrupted` and nothing left `planned`. The target has no
//! unique constraint on the natural key, so a duplicate create shows up instead of failing.
//!
//! Once with the state store and both tables in SQLite, once all in PostgreSQL. The killed
//! run must have taken the bulk path (its log says so before the first write).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{pg_url, sqlite};

/// Source rows per round: several write batches, one bulk window.
const ROWS: i64 = 900;
/// Rounds (fresh source, target and state each) per store.
const ROUNDS: u64 = 6;

/// A small deterministic generator (no dependency, reproducible from the seed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Where one round keeps its tables and state.
enum World {
    Sqlite(tempfile::TempDir),
    Postgres {
        dir: tempfile::TempDir,
        pool: sqlx::PgPool,
        schema: String,
    },
}

impl World {
    async fn new(postgres: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("first-load-{}", uuid::Uuid::new_v4().simple());
        let rows = "SELECT i, 'SKU-' || i, 'Item ' || i, i * 7 FROM g";
        if postgres {
            let schema = format!("syncctl_fl_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&pg_url())
                .await
                .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL)");
            for sql in [
                format!("CREATE SCHEMA {schema}"),
                format!(
                    "CREATE TABLE {schema}.source (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, \
                     qty integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
                ),
                format!(
                    "WITH g(i) AS (SELECT generate_series(1, {ROWS})) INSERT INTO {schema}.source (id, sku, name, qty) {rows}"
                ),
                format!(
                    "CREATE TABLE {schema}.target (id bigserial PRIMARY KEY, sku text NOT NULL, name text, qty integer, \
                     updated_at timestamptz NOT NULL DEFAULT now())"
                ),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            let url = pg_url();
            let config = format!(
                "name: {name}\n\
                 source: {{connector: postgres, url: \"{url}\", object: {schema}.source, updated_at_column: updated_at}}\n\
                 target: {{connector: postgres, url: \"{url}\", object: {schema}.target, updated_at_column: updated_at}}\n\
                 state: \"{url}?schema={schema}\"\n"
            );
            std::fs::write(dir.path().join("sync.yaml"), config + COMMON).unwrap();
            World::Postgres { dir, pool, schema }
        } else {
            let src = sqlite(&dir.path().join("src.db")).await;
            sqlx::query(
                "CREATE TABLE source (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, \
                 qty INTEGER NOT NULL, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            )
            .execute(&src)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS}) \
                 INSERT INTO source (id, sku, name, qty) {rows}"
            )))
            .execute(&src)
            .await
            .unwrap();
            src.close().await;
            let dst = sqlite(&dir.path().join("dst.db")).await;
            sqlx::query(
                "CREATE TABLE target (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, name TEXT, qty INTEGER, \
                 updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            )
            .execute(&dst)
            .await
            .unwrap();
            dst.close().await;
            let config = format!(
                "name: {name}\n\
                 source: {{connector: sqlite, url: \"sqlite://src.db\", object: source, updated_at_column: updated_at}}\n\
                 target: {{connector: sqlite, url: \"sqlite://dst.db\", object: target, updated_at_column: updated_at}}\n\
                 state: \"sqlite://state.db\"\n"
            );
            std::fs::write(dir.path().join("sync.yaml"), config + COMMON).unwrap();
            World::Sqlite(dir)
        }
    }

    fn dir(&self) -> &Path {
        match self {
            World::Sqlite(dir) | World::Postgres { dir, .. } => dir.path(),
        }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir().join(f)
    }

    /// One number from the round's tables (`{s}` is the schema prefix; 0 while unreadable).
    async fn count(&self, db: &str, sql: &str) -> i64 {
        match self {
            World::Postgres { pool, schema, .. } => {
                let sql = sql.replace("{s}", &format!("{schema}."));
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
                    .unwrap_or(0)
            }
            World::Sqlite(_) => {
                let p = self.path(db);
                if !p.exists() {
                    return 0;
                }
                let Ok(pool) =
                    sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.display())).await
                else {
                    return 0;
                };
                let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("{s}", "")))
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0);
                pool.close().await;
                n
            }
        }
    }

    async fn target_rows(&self) -> i64 {
        self.count("dst.db", "SELECT count(*) FROM {s}target").await
    }

    async fn state(&self, sql: &str) -> i64 {
        self.count("state.db", sql).await
    }

    /// Target rows that are not exactly one copy of a source row (duplicates, strays, wrong
    /// values), plus source rows missing from the target.
    async fn differences(&self) -> i64 {
        let (target, source, differs) = match self {
            World::Postgres { schema, .. } => (
                format!("{schema}.target"),
                format!("{schema}.source"),
                "IS DISTINCT FROM",
            ),
            World::Sqlite(_) => ("target".to_owned(), "src.source".to_owned(), "IS NOT"),
        };
        let queries = [
            format!(
                "SELECT count(*) FROM (SELECT sku FROM {target} GROUP BY sku HAVING count(*) > 1) d"
            ),
            format!(
                "SELECT count(*) FROM {source} s LEFT JOIN {target} t ON t.sku = s.sku \
                 WHERE t.sku IS NULL OR t.name {differs} s.name OR t.qty {differs} s.qty"
            ),
            format!(
                "SELECT count(*) FROM {target} t LEFT JOIN {source} s ON s.sku = t.sku WHERE s.sku IS NULL"
            ),
        ];
        let mut n = 0;
        match self {
            World::Postgres { pool, .. } => {
                for q in queries {
                    n += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(q))
                        .fetch_one(pool)
                        .await
                        .unwrap();
                }
            }
            World::Sqlite(_) => {
                use sqlx::Connection;
                // Both files in one connection.
                let mut conn = sqlx::SqliteConnection::connect(&format!(
                    "sqlite://{}",
                    self.path("dst.db").display()
                ))
                .await
                .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ATTACH DATABASE '{}' AS src",
                    self.path("src.db").display()
                )))
                .execute(&mut conn)
                .await
                .unwrap();
                for q in queries {
                    n += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(q))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                }
                conn.close().await.unwrap();
            }
        }
        n
    }

    async fn drop(self) {
        if let World::Postgres { pool, schema, .. } = self {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

const COMMON: &str = "key: {source: sku, target: sku}\n\
fields:\n  - {source: sku, target: sku}\n  - {source: name, target: name}\n  - {source: qty, target: qty}\n\
direction: source_to_target\nconflict_strategy: source_wins\nbatch_size: 40\n";

fn spawn(dir: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .env("SYNCCTL_LOG", "info")
        .current_dir(dir)
        .args(["sync", "run", "--config", "sync.yaml"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn run(dir: &Path) -> syncctl_testkit::cli::CliRun {
    let out = crate::support::syncctl()
        .current_dir(dir)
        .args(["sync", "run", "--config", "sync.yaml"])
        .output()
        .unwrap();
    syncctl_testkit::cli::CliRun::from_output(&out)
}

/// Kills first loads at random points and checks each converges on the next run.
async fn killed_first_loads_converge(postgres: bool, seed: u64) {
    let mut rng = Rng(seed);
    let mut killed_while_writing = 0;
    for round in 0..ROUNDS {
        let world = World::new(postgres).await;
        let log = world.path("killed.log");
        let mut child = spawn(world.dir(), &log);
        if round % 3 == 2 {
            // Startup, lock, the emptiness probe, the plan's audit rows.
            tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        } else {
            let threshold = 1 + rng.below(ROWS as u64 - 1) as i64;
            let start = Instant::now();
            while world.target_rows().await < threshold
                && child.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(120)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let written = world.target_rows().await;
        let killed = status.signal() == Some(9);
        if killed && written > 0 {
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(
                text.contains("bulk mode"),
                "round {round}: the killed first load wrote {written} rows without the bulk path:\n{text}"
            );
            if written < ROWS {
                killed_while_writing += 1;
            }
        }

        let done = run(world.dir());
        assert_eq!(
            done.code, 0,
            "round {round}: {}\n{}",
            done.result, done.stderr
        );
        if written > 0 {
            assert!(
                done.result["data"].get("bulk_load").is_none(),
                "round {round}: a target that holds rows is matched, not bulk-loaded: {}",
                done.result
            );
        }
        let again = run(world.dir());
        assert_eq!(again.code, 0, "{}", again.stderr);
        for k in ["created", "updated", "deleted", "failed"] {
            assert_eq!(
                again.result["data"]["target"][k], 0,
                "round {round}: target.{k} after convergence: {}",
                again.result
            );
        }

        assert_eq!(world.target_rows().await, ROWS, "round {round}");
        assert_eq!(world.differences().await, 0, "round {round}");
        assert_eq!(
            world.state("SELECT count(*) FROM {s}sync_link").await,
            ROWS,
            "round {round}: one link per row"
        );
        assert_eq!(
            world
                .state("SELECT count(*) FROM {s}sync_change WHERE status = 'planned'")
                .await,
            0,
            "round {round}"
        );
        assert_eq!(
            world
                .state("SELECT count(*) FROM {s}sync_run WHERE status = 'running'")
                .await,
            0,
            "round {round}"
        );
        if killed && written > 0 {
            assert_eq!(
                world
                    .state("SELECT count(*) FROM {s}sync_run WHERE status = 'interrupted'")
                    .await,
                1,
                "round {round}: the killed run is marked interrupted"
            );
        }
        world.drop().await;
    }
    assert!(
        killed_while_writing >= 2,
        "only {killed_while_writing} kills landed while the bulk load was writing"
    );
}

#[tokio::test]
async fn killed_bulk_first_loads_converge_with_a_sqlite_state_store() {
    killed_first_loads_converge(false, 0x5eed_f1a5_7b0c_0001).await;
}

#[tokio::test]
async fn killed_bulk_first_loads_converge_with_a_postgres_state_store() {
    killed_first_loads_converge(true, 0x5eed_f1a5_7b0c_0002).await;
}

#[tokio::test]
async fn an_uninterrupted_first_load_into_an_empty_target_is_bulk_and_the_rerun_is_not() {
    let world = World::new(false).await;
    let first = run(world.dir());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.result["data"]["bulk_load"], "target",
        "{}",
        first.result
    );
    assert_eq!(first.result["data"]["target"]["created"], ROWS);
    let dry = crate::support::syncctl()
        .current_dir(world.dir())
        .args(["sync", "run", "--config", "sync.yaml", "--dry-run"])
        .output()
        .unwrap();
    let dry = syncctl_testkit::cli::CliRun::from_output(&dry);
    assert!(dry.result["data"].get("bulk_load").is_none());
    let again = run(world.dir());
    assert_eq!(again.code, 0);
    assert!(again.result["data"].get("bulk_load").is_none());
    assert_eq!(again.result["data"]["target"]["created"], 0);
    assert_eq!(world.differences().await, 0);
    world.drop().await;
}

#[tokio::test]
async fn a_first_load_into_a_target_that_holds_rows_matches_them_instead_of_loading_in_bulk() {
    let world = World::new(false).await;
    let dst = sqlite(&world.path("dst.db")).await;
    sqlx::query(
        "INSERT INTO target (sku, name, qty) VALUES ('SKU-1', 'old', 0), ('SKU-2', 'old', 0), ('SKU-3', NULL, NULL)",
    )
    .execute(&dst)
    .await
    .unwrap();
    dst.close().await;
    let first = run(world.dir());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.result["data"].get("bulk_load").is_none(),
        "{}",
        first.result
    );
    assert_eq!(first.result["data"]["target"]["created"], ROWS - 3);
    assert_eq!(first.result["data"]["target"]["updated"], 3);
    assert_eq!(world.differences().await, 0, "matched, not created twice");
    world.drop().await;
}
