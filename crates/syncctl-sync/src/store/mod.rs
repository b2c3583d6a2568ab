//! The state store: links and their base values, the per-record audit, conflicts, cursors,
//! breaker state and the run lock (in [`lock`]), in SQLite (default) or PostgreSQL.
//!
//! Both backends run the same SQL (`$1` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING`)
//! through one macro; only the migrations and the lock differ. The schema is embedded with
//! `sqlx::migrate!` and applied when a store is opened for writing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow};
use syncctl_core::RecordKey;
use syncctl_http::BreakerState;

use crate::error::SyncError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to whichever pool the store has.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.db {
            Db::Sqlite($p) => $body,
            Db::Postgres($p) => $body,
        }
    };
}

mod bulk;
mod lock;

use bulk::{BulkConnection as _, LinkOut, Outcome};

pub use lock::RunLock;

/// Which side of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The `source` connector.
    Source,
    /// The `target` connector.
    Target,
}

impl Side {
    /// `source` or `target`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }

    /// The other side.
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Source => Self::Target,
            Self::Target => Self::Source,
        }
    }

    fn key_column(self) -> &'static str {
        match self {
            Self::Source => "source_key",
            Self::Target => "target_key",
        }
    }
}

/// Where the store lives, parsed from a state URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite file (created with its directory when opened for writing).
    SqliteFile(PathBuf),
    /// An in-memory SQLite database (tests).
    SqliteMemory,
    /// A PostgreSQL database; `schema` (from `?schema=`) holds the tables.
    Postgres {
        /// The URL without the `schema` parameter.
        url: String,
        /// The schema for syncctl's tables, created if missing.
        schema: Option<String>,
    },
}

/// Parses `sqlite://rel.db`, `sqlite:///abs.db`, `sqlite::memory:` or
/// `postgres://…[?schema=name]`; relative SQLite paths are taken from `base`.
///
/// # Errors
/// Any other scheme, or an empty path.
pub fn parse_state_url(url: &str, base: &Path) -> Result<StateLocation, SyncError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok(StateLocation::SqliteMemory);
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path.contains('?') {
            return Err(SyncError::StoreConfig(format!(
                "{url:?}: write sqlite://relative/state.db or sqlite:///absolute/state.db"
            )));
        }
        let p = Path::new(path);
        return Ok(StateLocation::SqliteFile(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (head, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", v)) if !v.is_empty() => schema = Some(v.to_owned()),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", rest.join("&"))
        };
        return Ok(StateLocation::Postgres { url, schema });
    }
    Err(SyncError::StoreConfig(format!(
        "{:?} is not a state URL; use sqlite:///path/state.db or postgres://…",
        syncctl_core::redact::redact_userinfo(url)
    )))
}

/// The sync state store.
pub struct StateStore {
    db: Db,
    display: String,
    read_only: bool,
    /// Links and audit rows inserted since PostgreSQL last analyzed them (see `note_growth`).
    grown: AtomicU64,
    /// Rows the tables had (as far as we know) when they were last analyzed.
    analyzed_rows: AtomicU64,
}

/// Analyze after at least this many new rows, and after the tables doubled.
const ANALYZE_MIN_GROWTH: u64 = 5_000;

/// A linked pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Store id.
    pub id: i64,
    /// Key in the source.
    pub source_key: RecordKey,
    /// Key in the target.
    pub target_key: RecordKey,
    /// The natural key value the pair was matched or created on.
    pub natural_key: Option<String>,
    /// Canonical field values as last synced.
    pub base: BTreeMap<String, Value>,
    /// The source record is gone and deletes were not propagated.
    pub source_deleted: bool,
    /// The target record is gone and deletes were not propagated.
    pub target_deleted: bool,
}

impl Link {
    /// The key on `side`.
    #[must_use]
    pub fn key(&self, side: Side) -> &RecordKey {
        match side {
            Side::Source => &self.source_key,
            Side::Target => &self.target_key,
        }
    }
}

/// A link as selected.
#[derive(FromRow)]
struct LinkRow {
    link_id: i64,
    source_key: String,
    target_key: String,
    natural_key: Option<String>,
    base: Json<BTreeMap<String, Value>>,
    source_deleted: bool,
    target_deleted: bool,
}

impl From<LinkRow> for Link {
    fn from(r: LinkRow) -> Self {
        Self {
            id: r.link_id,
            source_key: RecordKey(r.source_key),
            target_key: RecordKey(r.target_key),
            natural_key: r.natural_key,
            base: r.base.0,
            source_deleted: r.source_deleted,
            target_deleted: r.target_deleted,
        }
    }
}

/// One audit row as planned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    /// Plan order.
    pub seq: i64,
    /// The pair's link, if it has one yet.
    pub link_id: Option<i64>,
    /// Which system is written.
    pub side: Side,
    /// The record's key there (absent for creates until done).
    pub record_key: Option<String>,
    /// `create`, `update`, `delete`, `archive`, `link`, `conflict`, `reject`.
    pub action: String,
    /// That side's mapped values before.
    pub before: Option<Value>,
    /// The values written (or conflicting).
    pub after: Option<Value>,
    /// `planned`, or a final status for rows that need no write.
    pub status: String,
    /// Why (rejections, failures).
    pub error: Option<String>,
    /// The key of the record on the other side this change came from.
    pub origin_key: Option<String>,
}

/// One audit row as stored.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct StoredChange {
    /// Store id.
    pub change_id: i64,
    /// Plan order.
    pub seq: i32,
    /// The pair's link.
    pub link_id: Option<i64>,
    /// `source` or `target`.
    pub side: String,
    /// The record's key.
    pub record_key: Option<String>,
    /// What was done.
    pub action: String,
    /// Values before.
    pub before: Option<Json<Value>>,
    /// Values after.
    pub after: Option<Json<Value>>,
    /// Outcome.
    pub status: String,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// The other side's record it came from.
    pub origin_key: Option<String>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct RunRow {
    /// The run id.
    pub run_id: String,
    /// The sync.
    pub sync_name: String,
    /// Direction.
    pub direction: String,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub status: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Who ran it.
    pub invoked_by: String,
    /// Effective settings.
    pub args: Json<Value>,
    /// Counts.
    pub counts: Option<Json<Value>>,
    /// The error message.
    pub error: Option<String>,
}

/// A conflict as stored.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct ConflictRow {
    /// Id for `sync conflicts resolve`.
    pub conflict_id: i64,
    /// The sync.
    pub sync_name: String,
    /// The pair.
    pub link_id: i64,
    /// Source record.
    pub source_key: String,
    /// Target record.
    pub target_key: String,
    /// `{field: {base, source, target}}`.
    pub fields: Json<Value>,
    /// The strategy in force when detected.
    pub strategy: String,
    /// `open`, `resolved`, `applied`, `auto_resolved`, `superseded`.
    pub status: String,
    /// How it was resolved.
    pub resolution: Option<Json<Value>>,
    /// Run that found it.
    pub detected_run: String,
    /// When.
    pub detected_at: DateTime<Utc>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Run that applied the resolution.
    pub applied_run: Option<String>,
}

/// How a run started.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// New run id.
    pub run_id: String,
    /// The sync.
    pub sync_name: String,
    /// Direction.
    pub direction: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Who.
    pub invoked_by: String,
    /// Effective settings.
    pub args: Value,
}

/// What to do with a pair's link when committing.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkWrite {
    /// Leave it.
    Keep,
    /// Create or update it (by id when it exists).
    Upsert {
        /// Existing id.
        id: Option<i64>,
        /// Source key.
        source_key: RecordKey,
        /// Target key.
        target_key: RecordKey,
        /// Natural key.
        natural_key: Option<String>,
        /// New base.
        base: BTreeMap<String, Value>,
        /// Source's modified time.
        source_updated_at: Option<DateTime<Utc>>,
        /// Target's modified time.
        target_updated_at: Option<DateTime<Utc>>,
        /// Tombstones.
        source_deleted: bool,
        /// Tombstones.
        target_deleted: bool,
    },
    /// Forget it (both records gone).
    Remove(i64),
}

/// What to do with a pair's conflict when committing.
#[derive(Debug, Clone, PartialEq)]
pub enum ConflictWrite {
    /// Nothing.
    None,
    /// Queue a new conflict (an open one for the link is updated instead).
    Open {
        /// `{field: {base, source, target}}`.
        fields: Value,
        /// Strategy name.
        strategy: String,
        /// Source record.
        source_key: String,
        /// Target record.
        target_key: String,
    },
    /// Record a conflict the strategy settled (status `auto_resolved`), for the audit.
    Settled {
        /// `{field: {base, source, target, winner}}`.
        fields: Value,
        /// Strategy name.
        strategy: String,
        /// Source record.
        source_key: String,
        /// Target record.
        target_key: String,
    },
    /// Close the open/resolved conflict of this link.
    Close {
        /// Final status: `applied`, `auto_resolved` or `superseded`.
        status: &'static str,
    },
}

/// Everything to store for one pair after its writes.
#[derive(Debug, Clone, PartialEq)]
pub struct PairCommit {
    /// The pair's existing link, if any.
    pub link_id: Option<i64>,
    /// The link.
    pub link: LinkWrite,
    /// The conflict.
    pub conflict: ConflictWrite,
    /// Audit rows to finish: `(change_id, status, error, record_key)`.
    pub changes: Vec<(i64, String, Option<String>, Option<String>)>,
    /// Records to re-read next run.
    pub pending_add: Vec<(Side, RecordKey, String)>,
    /// Records no longer pending.
    pub pending_remove: Vec<(Side, RecordKey)>,
}

/// What a commit produced per pair: `(link id, conflict id)`.
pub type CommitIds = Vec<(Option<i64>, Option<i64>)>;

impl StateStore {
    /// Opens the store for a run: creates the SQLite file (and its directory) if needed and
    /// applies pending migrations.
    ///
    /// # Errors
    /// Bad URL, unreachable database, failed migration.
    pub async fn open(url: &str, base: &Path) -> Result<Self, SyncError> {
        let loc = parse_state_url(url, base)?;
        let store = match &loc {
            StateLocation::SqliteMemory => Self::sqlite_memory().await?,
            StateLocation::SqliteFile(p) => {
                if let Some(dir) = p.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        SyncError::StoreConfig(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(p)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(|e| SyncError::StoreConfig(format!("{}: {e}", p.display())))?;
                Self {
                    db: Db::Sqlite(pool),
                    display: format!("sqlite://{}", p.display()),
                    read_only: false,
                    grown: AtomicU64::new(0),
                    analyzed_rows: AtomicU64::new(0),
                }
            }
            StateLocation::Postgres { url, schema } => {
                Self::postgres(url, schema.as_deref(), false).await?
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store without writing anything (dry runs, `plan`, listings): an existing store
    /// read-only, or an empty in-memory store when none exists yet.
    ///
    /// # Errors
    /// Bad URL, unreachable database, or a store from an older syncctl that needs migrating.
    pub async fn open_read_only(url: &str, base: &Path) -> Result<Self, SyncError> {
        let loc = parse_state_url(url, base)?;
        match &loc {
            StateLocation::SqliteMemory => Self::memory().await,
            StateLocation::SqliteFile(p) => {
                if !p.exists() {
                    return Self::memory().await;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(p)
                    .read_only(true)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts)
                    .await
                    .map_err(|e| SyncError::StoreConfig(format!("{}: {e}", p.display())))?;
                let store = Self {
                    db: Db::Sqlite(pool),
                    display: format!("sqlite://{}", p.display()),
                    read_only: true,
                    grown: AtomicU64::new(0),
                    analyzed_rows: AtomicU64::new(0),
                };
                store.check_migrated().await?;
                Ok(store)
            }
            StateLocation::Postgres { url, schema } => {
                let store = Self::postgres(url, schema.as_deref(), true).await?;
                if !store.pg_has_tables().await? {
                    return Self::memory().await;
                }
                store.check_migrated().await?;
                Ok(store)
            }
        }
    }

    /// An empty, migrated in-memory store.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn memory() -> Result<Self, SyncError> {
        let s = Self::sqlite_memory().await?;
        s.migrate().await?;
        Ok(s)
    }

    async fn sqlite_memory() -> Result<Self, SyncError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| SyncError::StoreConfig(e.to_string()))?;
        // One connection: every connection to :memory: is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        Ok(Self {
            db: Db::Sqlite(pool),
            display: "sqlite::memory:".to_owned(),
            read_only: false,
            grown: AtomicU64::new(0),
            analyzed_rows: AtomicU64::new(0),
        })
    }

    async fn postgres(url: &str, schema: Option<&str>, read_only: bool) -> Result<Self, SyncError> {
        let mut opts = PgConnectOptions::from_str(url).map_err(|e| {
            SyncError::StoreConfig(format!(
                "{}: {e}",
                syncctl_core::redact::redact_userinfo(url)
            ))
        })?;
        let mut settings = vec![("application_name", "syncctl".to_owned())];
        if let Some(s) = schema {
            settings.push(("search_path", format!("\"{}\"", s.replace('"', "\"\""))));
        }
        if read_only {
            settings.push(("default_transaction_read_only", "on".to_owned()));
        }
        opts = opts.options(settings);
        let display = format!(
            "postgres://{}:{}/{}{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(""),
            schema.map(|s| format!("?schema={s}")).unwrap_or_default()
        );
        probe_postgres(&opts, &display).await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| pg_connect_error(&display, &e))?;
        if let (Some(s), false) = (schema, read_only) {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", s.replace('"', "\"\""));
            sqlx::query(AssertSqlSafe(sql)).execute(&pool).await?;
        }
        Ok(Self {
            db: Db::Postgres(pool),
            display,
            read_only,
            grown: AtomicU64::new(0),
            analyzed_rows: AtomicU64::new(0),
        })
    }

    async fn pg_has_tables(&self) -> Result<bool, SyncError> {
        match &self.db {
            Db::Postgres(p) => {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('sync_link')::text")
                        .fetch_one(p)
                        .await?;
                Ok(found.is_some())
            }
            Db::Sqlite(_) => Ok(true),
        }
    }

    async fn migrate(&self) -> Result<(), SyncError> {
        match &self.db {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    async fn check_migrated(&self) -> Result<(), SyncError> {
        let (latest, applied): (i64, Option<i64>) = match &self.db {
            Db::Sqlite(p) => (
                SQLITE_MIGRATIONS
                    .iter()
                    .map(|m| m.version)
                    .max()
                    .unwrap_or(0),
                sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(p)
                    .await
                    .ok()
                    .flatten(),
            ),
            Db::Postgres(p) => (
                POSTGRES_MIGRATIONS
                    .iter()
                    .map(|m| m.version)
                    .max()
                    .unwrap_or(0),
                sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(p)
                    .await
                    .ok()
                    .flatten(),
            ),
        };
        if applied.unwrap_or(0) < latest {
            return Err(SyncError::StoreConfig(format!(
                "{} was created by an older syncctl; a real `sync run` upgrades it",
                self.display
            )));
        }
        Ok(())
    }

    /// Where the store is, safe to print.
    #[must_use]
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether the store refuses writes (dry runs).
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether this is PostgreSQL.
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await);
    }

    // ---------------------------------------------------------------- runs

    /// Records a run as `running`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn begin_run(&self, r: &RunStart) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sync_run (run_id, sync_name, direction, status, started_at, invoked_by, args) \
                 VALUES ($1, $2, $3, 'running', $4, $5, $6)",
            )
            .bind(&r.run_id)
            .bind(&r.sync_name)
            .bind(&r.direction)
            .bind(r.started_at)
            .bind(&r.invoked_by)
            .bind(Json(&r.args))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Records how a run ended.
    ///
    /// # Errors
    /// Database failure.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        counts: &Value,
        error: Option<&str>,
    ) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query(
                "UPDATE sync_run SET status = $2, finished_at = $3, counts = $4, error = $5 WHERE run_id = $1",
            )
            .bind(run_id)
            .bind(status)
            .bind(Utc::now())
            .bind(Json(counts))
            .bind(error)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Marks runs of `sync` still `running` (killed: the caller holds the lock, so they are
    /// dead) as `interrupted`, and their planned changes too. Returns their ids.
    ///
    /// # Errors
    /// Database failure.
    pub async fn mark_interrupted(&self, sync: &str) -> Result<Vec<String>, SyncError> {
        let ids: Vec<String> = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE sync_run SET status = 'interrupted', finished_at = $2, \
                 error = 'the process stopped before the run finished (killed or crashed)' \
                 WHERE sync_name = $1 AND status = 'running' RETURNING run_id",
            )
            .bind(sync)
            .bind(Utc::now())
            .fetch_all(&mut *tx)
            .await?;
            for id in &ids {
                sqlx::query(
                    "UPDATE sync_change SET status = 'interrupted', finished_at = $2 \
                     WHERE run_id = $1 AND status = 'planned'",
                )
                .bind(id)
                .bind(Utc::now())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            ids
        });
        Ok(ids)
    }

    /// Marks this run's audit rows still `planned` (never sent: the run stopped on an error or
    /// a signal) as `skipped`; returns how many.
    ///
    /// # Errors
    /// Database failure.
    pub async fn settle_planned(&self, run_id: &str, why: &str) -> Result<u64, SyncError> {
        let n = with_pool!(self, p => {
            sqlx::query(
                "UPDATE sync_change SET status = 'skipped', error = $2, finished_at = $3 \
                 WHERE run_id = $1 AND status = 'planned'",
            )
            .bind(run_id)
            .bind(why)
            .bind(Utc::now())
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Create and update audit rows of `sync` left `interrupted` by killed runs, oldest first:
    /// the writes whose outcome nobody recorded, for the next run to reconcile.
    ///
    /// # Errors
    /// Database failure.
    pub async fn interrupted_writes(&self, sync: &str) -> Result<Vec<StoredChange>, SyncError> {
        let rows = with_pool!(self, p => {
            sqlx::query_as::<_, StoredChange>(
                "SELECT c.change_id, c.seq, c.link_id, c.side, c.record_key, c.action, c.before, c.after, c.status, c.error, c.origin_key \
                 FROM sync_change c JOIN sync_run r ON r.run_id = c.run_id \
                 WHERE r.sync_name = $1 AND c.status = 'interrupted' AND c.action IN ('create', 'update') \
                 ORDER BY c.change_id",
            )
            .bind(sync)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Recent runs, newest first.
    ///
    /// # Errors
    /// Database failure.
    pub async fn history(&self, sync: Option<&str>, limit: i64) -> Result<Vec<RunRow>, SyncError> {
        let rows = with_pool!(self, p => {
            sqlx::query_as::<_, RunRow>(
                "SELECT run_id, sync_name, direction, status, started_at, finished_at, invoked_by, args, counts, error \
                 FROM sync_run WHERE ($1 IS NULL OR sync_name = $1) ORDER BY started_at DESC, run_id LIMIT $2",
            )
            .bind(sync)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// One run.
    ///
    /// # Errors
    /// Database failure.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRow>, SyncError> {
        let row = with_pool!(self, p => {
            sqlx::query_as::<_, RunRow>(
                "SELECT run_id, sync_name, direction, status, started_at, finished_at, invoked_by, args, counts, error \
                 FROM sync_run WHERE run_id = $1",
            )
            .bind(run_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row)
    }

    /// A run's audit rows in plan order.
    ///
    /// # Errors
    /// Database failure.
    pub async fn changes(&self, run_id: &str) -> Result<Vec<StoredChange>, SyncError> {
        let rows = with_pool!(self, p => {
            sqlx::query_as::<_, StoredChange>(
                "SELECT change_id, seq, link_id, side, record_key, action, before, after, status, error, origin_key \
                 FROM sync_change WHERE run_id = $1 ORDER BY seq, change_id",
            )
            .bind(run_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Inserts planned audit rows (a few multi-row statements); returns their ids in order.
    ///
    /// Rows of one call must be unique by `(seq, side, action)`, which is how the ids are
    /// matched back (`RETURNING` order is not guaranteed).
    ///
    /// # Errors
    /// Database failure.
    pub async fn insert_changes(
        &self,
        run_id: &str,
        rows: &[ChangeRow],
    ) -> Result<Vec<i64>, SyncError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let mut by_slot: HashMap<(i32, String, String), i64> = HashMap::new();
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for (id, seq, side, action) in bulk::insert_change_rows(&mut *tx, run_id, now, rows).await? {
                by_slot.insert((seq, side, action), id);
            }
            tx.commit().await?;
        });
        rows.iter()
            .map(|r| {
                let slot = (
                    i32::try_from(r.seq).unwrap_or(i32::MAX),
                    r.side.as_str().to_owned(),
                    r.action.clone(),
                );
                by_slot.get(&slot).copied().ok_or_else(|| {
                    SyncError::Store(format!(
                        "audit row {} {} {} was not returned",
                        slot.0, slot.1, slot.2
                    ))
                })
            })
            .collect()
    }

    // ---------------------------------------------------------------- links

    /// Links of `sync` whose key on `side` is one of `keys`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn links_for(
        &self,
        sync: &str,
        side: Side,
        keys: &[RecordKey],
    ) -> Result<HashMap<RecordKey, Link>, SyncError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = with_pool!(self, p => {
            let mut conn = p.acquire().await?;
            bulk::links_for(&mut *conn, sync, side, keys).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                let l = Link::from(r);
                (l.key(side).clone(), l)
            })
            .collect())
    }

    /// Links by id.
    ///
    /// # Errors
    /// Database failure.
    pub async fn links_by_id(&self, sync: &str, ids: &[i64]) -> Result<Vec<Link>, SyncError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = with_pool!(self, p => {
            let mut conn = p.acquire().await?;
            bulk::links_by_id(&mut *conn, sync, ids).await?
        });
        Ok(rows.into_iter().map(Link::from).collect())
    }

    /// Every live (not tombstoned on `side`) link's key on `side`, with its id.
    ///
    /// # Errors
    /// Database failure.
    pub async fn linked_keys(
        &self,
        sync: &str,
        side: Side,
    ) -> Result<HashMap<RecordKey, i64>, SyncError> {
        let deleted = match side {
            Side::Source => "source_deleted",
            Side::Target => "target_deleted",
        };
        let sql = format!(
            "SELECT {}, link_id FROM sync_link WHERE sync_name = $1 AND NOT {deleted}",
            side.key_column()
        );
        let rows: Vec<(String, i64)> = with_pool!(self, p => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(sync).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(|(k, id)| (RecordKey(k), id)).collect())
    }

    /// Number of links of `sync`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn count_links(&self, sync: &str) -> Result<i64, SyncError> {
        let n = with_pool!(self, p => {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_link WHERE sync_name = $1")
                .bind(sync)
                .fetch_one(p)
                .await?
        });
        Ok(n)
    }

    /// Applies the results of a batch of pairs in one transaction, in a handful of multi-row
    /// statements whatever the batch size; returns each pair's link id and (when one was
    /// stored) conflict id.
    ///
    /// # Errors
    /// Database failure (nothing of the batch is stored then).
    #[allow(clippy::too_many_lines)]
    pub async fn commit(
        &self,
        sync: &str,
        run_id: &str,
        pairs: &[PairCommit],
    ) -> Result<CommitIds, SyncError> {
        let now = Utc::now();
        let mut link_ids: Vec<Option<i64>> = pairs.iter().map(|p| p.link_id).collect();
        let mut conflict_ids: Vec<Option<i64>> = vec![None; pairs.len()];
        let mut removes = Vec::new();
        let mut updates = Vec::new();
        let mut inserts = Vec::new();
        for (i, pc) in pairs.iter().enumerate() {
            match &pc.link {
                LinkWrite::Keep => {}
                LinkWrite::Remove(id) => {
                    removes.push(*id);
                    link_ids[i] = Some(*id);
                }
                LinkWrite::Upsert { id: Some(id), .. } => {
                    updates.push(i);
                    link_ids[i] = Some(*id);
                }
                LinkWrite::Upsert { id: None, .. } => inserts.push(i),
            }
        }
        // Later entries for the same pending key win; a key is removed before it is re-added.
        let mut pending_add: BTreeMap<(Side, RecordKey), &str> = BTreeMap::new();
        let mut pending_remove: BTreeMap<Side, Vec<RecordKey>> = BTreeMap::new();
        for pc in pairs {
            for (side, key) in &pc.pending_remove {
                pending_add.remove(&(*side, key.clone()));
                pending_remove.entry(*side).or_default().push(key.clone());
            }
            for (side, key, reason) in &pc.pending_add {
                pending_add.insert((*side, key.clone()), reason.as_str());
            }
        }
        with_pool!(self, p => {
            let mut conn = p.acquire().await?;
            // Only the plan must outlive a power loss (it is committed, synced, before anything
            // is written). A commit of outcomes lost with the machine leaves that plan's rows
            // `planned`, which the next run recovers as it does after a kill -9; it survives
            // this process being killed either way. Not waiting for the disk here saves a
            // sync per page.
            conn.lazy_commits(true).await?;
            let stored = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            bulk::remove_links(&mut *tx, &removes).await?;
            let out = |i: &usize| match &pairs[*i].link {
                LinkWrite::Upsert { id, source_key, target_key, natural_key, base, source_updated_at, target_updated_at, source_deleted, target_deleted } => Some(LinkOut {
                    id: *id,
                    source_key: source_key.as_str(),
                    target_key: target_key.as_str(),
                    natural_key: natural_key.as_deref(),
                    base,
                    source_updated_at: *source_updated_at,
                    target_updated_at: *target_updated_at,
                    source_deleted: *source_deleted,
                    target_deleted: *target_deleted,
                }),
                _ => None,
            };
            let updated: Vec<LinkOut<'_>> = updates.iter().filter_map(out).collect();
            bulk::update_links(&mut *tx, sync, run_id, now, &updated).await?;
            let inserted: Vec<LinkOut<'_>> = inserts.iter().filter_map(out).collect();
            let got = bulk::insert_links(&mut *tx, sync, run_id, now, &inserted).await?;
            let by_key: HashMap<String, i64> = got.into_iter().map(|(id, k)| (k, id)).collect();
            for i in &inserts {
                if let LinkWrite::Upsert { source_key, .. } = &pairs[*i].link {
                    link_ids[*i] = by_key.get(source_key.as_str()).copied();
                }
            }
            // Conflicts are rare: one statement each.
            for (i, pc) in pairs.iter().enumerate() {
                let Some(lid) = link_ids[i] else { continue };
                match &pc.conflict {
                    ConflictWrite::None => {}
                    ConflictWrite::Open { fields, strategy, source_key: sk, target_key: tk } => {
                        let existing: Option<i64> = sqlx::query_scalar(
                            "SELECT conflict_id FROM sync_conflict WHERE link_id = $1 AND status IN ('open', 'resolved')",
                        )
                        .bind(lid)
                        .fetch_optional(&mut *tx)
                        .await?;
                        conflict_ids[i] = Some(match existing {
                            Some(cid) => {
                                sqlx::query(
                                    "UPDATE sync_conflict SET fields = $2, source_key = $3, target_key = $4 WHERE conflict_id = $1",
                                )
                                .bind(cid)
                                .bind(Json(fields))
                                .bind(sk)
                                .bind(tk)
                                .execute(&mut *tx)
                                .await?;
                                cid
                            }
                            None => {
                                sqlx::query_scalar(
                                    "INSERT INTO sync_conflict (sync_name, link_id, source_key, target_key, fields, strategy, status, detected_run, detected_at) \
                                     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) RETURNING conflict_id",
                                )
                                .bind(sync)
                                .bind(lid)
                                .bind(sk)
                                .bind(tk)
                                .bind(Json(fields))
                                .bind(strategy)
                                .bind(run_id)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await?
                            }
                        });
                    }
                    ConflictWrite::Settled { fields, strategy, source_key: sk, target_key: tk } => {
                        let cid: i64 = sqlx::query_scalar(
                            "INSERT INTO sync_conflict (sync_name, link_id, source_key, target_key, fields, strategy, status, resolution, \
                             detected_run, detected_at, resolved_by, resolved_at, applied_run, applied_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, 'auto_resolved', $7, $8, $9, $6, $9, $8, $9) RETURNING conflict_id",
                        )
                        .bind(sync)
                        .bind(lid)
                        .bind(sk)
                        .bind(tk)
                        .bind(Json(fields))
                        .bind(strategy)
                        .bind(Json(serde_json::json!({"strategy": strategy})))
                        .bind(run_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        conflict_ids[i] = Some(cid);
                    }
                    ConflictWrite::Close { status } => {
                        sqlx::query(
                            "UPDATE sync_conflict SET status = $2, applied_run = $3, applied_at = $4 \
                             WHERE link_id = $1 AND status IN ('open', 'resolved')",
                        )
                        .bind(lid)
                        .bind(*status)
                        .bind(run_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            // Audit rows: their outcomes and the keys and links they learnt, in one statement
            // (a later entry for the same row wins).
            let mut outcomes: Vec<Outcome<'_>> = Vec::new();
            let mut at: HashMap<i64, usize> = HashMap::new();
            for (i, pc) in pairs.iter().enumerate() {
                for (cid, status, error, key) in &pc.changes {
                    let o = (*cid, status.as_str(), error.as_deref(), key.as_deref(), link_ids[i]);
                    match at.get(cid) {
                        Some(&j) => outcomes[j] = o,
                        None => {
                            at.insert(*cid, outcomes.len());
                            outcomes.push(o);
                        }
                    }
                }
            }
            bulk::set_outcomes(&mut *tx, now, &outcomes).await?;
            for (side, keys) in &pending_remove {
                bulk::remove_pending(&mut *tx, sync, *side, keys).await?;
            }
            let adds: Vec<(Side, &str, &str)> = pending_add
                .iter()
                .map(|((side, key), reason)| (*side, key.as_str(), *reason))
                .collect();
            bulk::add_pending(&mut *tx, sync, run_id, &adds).await?;
            tx.commit().await?;
            Ok::<(), SyncError>(())
            }
            .await;
            if conn.lazy_commits(false).await.is_err() {
                // Never hand a lazily committing connection to the next plan.
                conn.close_on_drop();
            }
            stored?;
        });
        self.note_growth(pairs.len()).await;
        Ok(link_ids.into_iter().zip(conflict_ids).collect())
    }

    /// Keeps PostgreSQL's statistics current while a first load fills the tables.
    ///
    /// The link lookup (`sync_name = $1 AND source_key IN (…)`) is planned from statistics
    /// taken when `sync_link` was empty; autovacuum does not catch up within one long run, so the
    /// planner keeps scanning every link of the sync and a first load turns quadratic (measured:
    /// 11 000 rows/min at 290 000 links, 152 500 rows/min right after an ANALYZE). Analyzing
    /// whenever the tables have doubled (and at least every 5 000 new rows) costs a handful of
    /// ANALYZE runs per million rows.
    async fn note_growth(&self, added: usize) {
        let Db::Postgres(pool) = &self.db else { return };
        let grown = self.grown.fetch_add(added as u64, Ordering::Relaxed) + added as u64;
        let base = self.analyzed_rows.load(Ordering::Relaxed);
        if grown < ANALYZE_MIN_GROWTH.max(base) {
            return;
        }
        self.grown.store(0, Ordering::Relaxed);
        self.analyzed_rows.store(base + grown, Ordering::Relaxed);
        // Only the columns the run's lookups filter on: statistics of the JSON columns cost most
        // of an ANALYZE and no query plan uses them.
        match sqlx::query(
            "ANALYZE sync_link (sync_name, source_key, target_key), sync_change (change_id, run_id, link_id)",
        )
            .execute(pool)
            .await
        {
            Ok(_) => tracing::debug!(rows = base + grown, "Analyzed the state store's tables."),
            // Not being the tables' owner only makes PostgreSQL skip them with a warning;
            // anything else is worth a line but never worth failing a sync over.
            Err(e) => {
                tracing::warn!(error = %e, "Could not ANALYZE the state store's tables; large first loads may slow down.")
            }
        }
    }

    // ---------------------------------------------------------------- pending, cursors

    /// Keys to re-read on `side`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn pending(&self, sync: &str, side: Side) -> Result<Vec<RecordKey>, SyncError> {
        let keys: Vec<String> = with_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT record_key FROM sync_pending WHERE sync_name = $1 AND side = $2 ORDER BY record_key",
            )
            .bind(sync)
            .bind(side.as_str())
            .fetch_all(p)
            .await?
        });
        Ok(keys.into_iter().map(RecordKey).collect())
    }

    /// The incremental cursor of `side`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn cursor(&self, sync: &str, side: Side) -> Result<Option<DateTime<Utc>>, SyncError> {
        let v = with_pool!(self, p => {
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT value FROM sync_cursor WHERE sync_name = $1 AND side = $2",
            )
            .bind(sync)
            .bind(side.as_str())
            .fetch_optional(p)
            .await?
        });
        Ok(v)
    }

    /// Stores the incremental cursor of `side`.
    ///
    /// # Errors
    /// Database failure.
    pub async fn set_cursor(
        &self,
        sync: &str,
        side: Side,
        value: DateTime<Utc>,
        run_id: &str,
    ) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sync_cursor (sync_name, side, value, run_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sync_name, side) DO UPDATE SET value = excluded.value, run_id = excluded.run_id, updated_at = excluded.updated_at",
            )
            .bind(sync)
            .bind(side.as_str())
            .bind(value)
            .bind(run_id)
            .bind(Utc::now())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    // ---------------------------------------------------------------- conflicts

    /// Conflicts, newest first; `statuses` empty means all.
    ///
    /// # Errors
    /// Database failure.
    pub async fn conflicts(
        &self,
        sync: Option<&str>,
        statuses: &[&str],
        limit: i64,
    ) -> Result<Vec<ConflictRow>, SyncError> {
        let filter = if statuses.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..statuses.len()).map(|i| format!("${}", i + 3)).collect();
            format!(" AND status IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT conflict_id, sync_name, link_id, source_key, target_key, fields, strategy, status, resolution, \
             detected_run, detected_at, resolved_by, resolved_at, applied_run FROM sync_conflict \
             WHERE ($1 IS NULL OR sync_name = $1){filter} ORDER BY conflict_id DESC LIMIT $2"
        );
        let rows = with_pool!(self, p => {
            let mut q = sqlx::query_as::<_, ConflictRow>(AssertSqlSafe(sql.clone()))
                .bind(sync)
                .bind(limit);
            for st in statuses {
                q = q.bind(*st);
            }
            q.fetch_all(p).await?
        });
        Ok(rows)
    }

    /// One conflict.
    ///
    /// # Errors
    /// Database failure.
    pub async fn conflict(&self, id: i64) -> Result<Option<ConflictRow>, SyncError> {
        let row = with_pool!(self, p => {
            sqlx::query_as::<_, ConflictRow>(
                "SELECT conflict_id, sync_name, link_id, source_key, target_key, fields, strategy, status, resolution, \
                 detected_run, detected_at, resolved_by, resolved_at, applied_run FROM sync_conflict WHERE conflict_id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(row)
    }

    /// Records a resolution for an open (or re-resolves a resolved) conflict.
    ///
    /// # Errors
    /// Unknown id, a conflict already applied, or a database failure.
    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &Value,
        by: &str,
    ) -> Result<ConflictRow, SyncError> {
        let done = with_pool!(self, p => {
            sqlx::query(
                "UPDATE sync_conflict SET status = 'resolved', resolution = $2, resolved_by = $3, resolved_at = $4 \
                 WHERE conflict_id = $1 AND status IN ('open', 'resolved')",
            )
            .bind(id)
            .bind(Json(resolution))
            .bind(by)
            .bind(Utc::now())
            .execute(p)
            .await?
            .rows_affected()
        });
        let row = self.conflict(id).await?;
        match row {
            Some(r) if done == 1 => Ok(r),
            Some(r) => Err(SyncError::NotFound(format!(
                "conflict {id} is {} and can no longer be resolved",
                r.status
            ))),
            None => Err(SyncError::NotFound(format!("no conflict with id {id}"))),
        }
    }

    // ---------------------------------------------------------------- breakers

    /// The stored breaker state of a connector endpoint.
    ///
    /// # Errors
    /// Database failure.
    pub async fn breaker(&self, endpoint: &str) -> Result<Option<BreakerState>, SyncError> {
        let v: Option<Json<BreakerState>> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT state FROM sync_breaker WHERE endpoint = $1")
                .bind(endpoint)
                .fetch_optional(p)
                .await?
        });
        Ok(v.map(|j| j.0))
    }

    /// Stores a breaker state.
    ///
    /// # Errors
    /// Database failure.
    pub async fn save_breaker(
        &self,
        endpoint: &str,
        state: &BreakerState,
    ) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sync_breaker (endpoint, state, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(endpoint)
            .bind(Json(state))
            .bind(Utc::now())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    // ---------------------------------------------------------------- credentials

    /// The stored form of credential `name` (see [`crate::credentials`]), if any.
    ///
    /// # Errors
    /// Database failure.
    pub async fn credential(&self, name: &str) -> Result<Option<String>, SyncError> {
        Ok(with_pool!(self, p => {
            sqlx::query_scalar("SELECT value FROM sync_credential WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await?
        }))
    }

    /// The names of every stored credential.
    ///
    /// # Errors
    /// Database failure.
    pub async fn credential_names(&self) -> Result<Vec<String>, SyncError> {
        Ok(with_pool!(self, p => {
            sqlx::query_scalar("SELECT name FROM sync_credential ORDER BY name")
                .fetch_all(p)
                .await?
        }))
    }

    /// Stores the stored form of credential `name`, replacing the previous one; durable (the
    /// statement committed) when it returns.
    ///
    /// # Errors
    /// Database failure, or a read-only store.
    pub async fn save_credential(&self, name: &str, stored: &str) -> Result<(), SyncError> {
        if self.read_only {
            return Err(SyncError::StoreConfig(format!(
                "{} is open read-only; a credential cannot be saved",
                self.display
            )));
        }
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sync_credential (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(stored)
            .bind(Utc::now())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    // ---------------------------------------------------------------- binding

    /// What `sync` is bound to ([`crate::binding::Binding`]), if a run recorded it.
    ///
    /// # Errors
    /// Database failure, or a binding row that is not valid JSON.
    pub async fn binding(&self, sync: &str) -> Result<Option<crate::binding::Binding>, SyncError> {
        let v: Option<Json<crate::binding::Binding>> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT binding FROM sync_binding WHERE sync_name = $1")
                .bind(sync)
                .fetch_optional(p)
                .await?
        });
        Ok(v.map(|j| j.0))
    }

    /// Records (or replaces, for `--rebind`) what `sync` is bound to.
    ///
    /// # Errors
    /// Database failure.
    pub async fn save_binding(
        &self,
        sync: &str,
        binding: &crate::binding::Binding,
        run_id: &str,
    ) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sync_binding (sync_name, binding, fingerprint, bound_run, bound_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sync_name) DO UPDATE SET binding = excluded.binding, \
                 fingerprint = excluded.fingerprint, bound_run = excluded.bound_run, \
                 bound_at = excluded.bound_at",
            )
            .bind(sync)
            .bind(Json(binding))
            .bind(binding.fingerprint())
            .bind(run_id)
            .bind(Utc::now())
            .execute(p)
            .await?;
        });
        Ok(())
    }
}

/// Tries of the first PostgreSQL connection, and how long each may take. An unreachable state
/// store fails within seconds naming the real cause (connection refused, DNS, TLS, auth)
/// instead of after the pool's 30 s wait with "pool timed out".
const PG_CONNECT_ATTEMPTS: u32 = 3;
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// One direct connection before the pool is built, retried on network errors (each retry
/// logged at debug, `-v`); the server's own refusals (auth, unknown database) are not retried.
async fn probe_postgres(opts: &PgConnectOptions, display: &str) -> Result<(), SyncError> {
    use sqlx::Connection as _;
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=PG_CONNECT_ATTEMPTS {
        let err =
            match tokio::time::timeout(PG_CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(opts))
                .await
            {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Ok(Err(e)) => pg_connect_error(display, &e),
                Err(_) => SyncError::Store(format!(
                    "{display}: no answer within {} s (connect timeout)",
                    PG_CONNECT_TIMEOUT.as_secs()
                )),
            };
        if !matches!(err, SyncError::Store(_)) || attempt == PG_CONNECT_ATTEMPTS {
            return Err(err);
        }
        tracing::debug!(
            attempt,
            of = PG_CONNECT_ATTEMPTS,
            error = %err,
            "State store connection failed; retrying in {} ms.",
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    Ok(())
}

/// A PostgreSQL connection error with its real cause: the server's refusal (auth: class auth;
/// anything else it said: config), or the network/TLS failure (transient).
fn pg_connect_error(display: &str, e: &sqlx::Error) -> SyncError {
    match e {
        // The server answered: retrying will not help.
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = format!("{display}: {}", db.message());
            if code.starts_with("28") {
                SyncError::StoreAuth(msg)
            } else {
                SyncError::StoreConfig(msg)
            }
        }
        sqlx::Error::Io(io) => SyncError::Store(format!("{display}: cannot connect: {io}")),
        sqlx::Error::Tls(tls) => SyncError::Store(format!("{display}: TLS failed: {tls}")),
        _ => SyncError::Store(format!("{display}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_urls() {
        let base = Path::new("/cfg");
        assert_eq!(
            parse_state_url("sqlite://.syncctl/state.db", base).unwrap(),
            StateLocation::SqliteFile("/cfg/.syncctl/state.db".into())
        );
        assert_eq!(
            parse_state_url("sqlite:///abs/state.db", base).unwrap(),
            StateLocation::SqliteFile("/abs/state.db".into())
        );
        assert_eq!(
            parse_state_url("postgres://u:p@h/db?schema=s1&sslmode=disable", base).unwrap(),
            StateLocation::Postgres {
                url: "postgres://u:p@h/db?sslmode=disable".into(),
                schema: Some("s1".into())
            }
        );
        let e = parse_state_url("mysql://u:secret@h/db", base)
            .unwrap_err()
            .to_string();
        assert!(e.contains("***@h/db") && !e.contains("secret"), "{e}");
    }
}
