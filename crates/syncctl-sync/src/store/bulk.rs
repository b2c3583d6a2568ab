//! The per-page statements of the hot path (audit rows, links, audit outcomes, pending keys),
//! one statement per page and table, built once for both backends.
//!
//! Every statement reads the page's rows from a common table expression `v`:
//! `WITH v(col, …) AS (<rows>) <body>`, where the body is the same SQL on both backends and
//! only `<rows>` differs by [`Dialect`]. PostgreSQL gets whole columns as arrays
//! (`SELECT * FROM UNNEST($3::int4[], …)`): one short statement whatever the page size,
//! prepared once per connection, instead of a multi-row `VALUES` list of thousands of
//! parameters that the server parses and plans anew for every page (measured: the audit and
//! link statements were most of a first load's wall time with the state store in PostgreSQL).
//! SQLite, in process, gets a multi-row `VALUES` list (its parameter limit bounds it); a page
//! of the same size reuses the statement its first page prepared.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments as _, AssertSqlSafe, FromRow};

use syncctl_core::RecordKey;

use super::{ChangeRow, LinkRow, Side};

/// Rows per SQLite statement: a page of the engine; the parameter limit may lower it.
const SQLITE_ROWS: usize = 1_000;
/// SQLite's bound on parameters per statement (`SQLITE_MAX_VARIABLE_NUMBER` since 3.32).
const SQLITE_PARAMS: usize = 32_766;
/// Rows per PostgreSQL array statement: a page or two.
const PG_ROWS: usize = 5_000;

/// Which SQL a connection speaks, for the one thing that differs: how a page's rows become `v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `SELECT * FROM UNNEST($n::type[], …)`: one array parameter per column.
    Postgres,
    /// `VALUES ($n, …), (…)`: one parameter per value.
    Sqlite,
}

/// A link to write, borrowed from a [`super::LinkWrite::Upsert`].
pub(super) struct LinkOut<'a> {
    pub id: Option<i64>,
    pub source_key: &'a str,
    pub target_key: &'a str,
    pub natural_key: Option<&'a str>,
    pub base: &'a BTreeMap<String, Value>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub target_updated_at: Option<DateTime<Utc>>,
    pub source_deleted: bool,
    pub target_deleted: bool,
}

/// The outcome of one audit row: `(change_id, status, error, record_key learnt, link_id learnt)`.
pub(super) type Outcome<'a> = (i64, &'a str, Option<&'a str>, Option<&'a str>, Option<i64>);

/// A parameter bound once per statement (`$1`, `$2`, … of the body).
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Text(&'a str),
    Time(DateTime<Utc>),
}

/// One column of a page's rows.
enum Column<'a> {
    Int4(Vec<i32>),
    Int8(Vec<Option<i64>>),
    Text(Vec<Option<&'a str>>),
    /// JSON text (stored as `jsonb` in PostgreSQL, text in SQLite).
    Json(Vec<Option<String>>),
    Time(Vec<Option<DateTime<Utc>>>),
    Bool(Vec<bool>),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Int4(v) => v.len(),
            Self::Int8(v) => v.len(),
            Self::Text(v) => v.len(),
            Self::Json(v) => v.len(),
            Self::Time(v) => v.len(),
            Self::Bool(v) => v.len(),
        }
    }

    /// The array parameter's cast in PostgreSQL's `UNNEST`.
    fn pg_array(&self) -> &'static str {
        match self {
            Self::Int4(_) => "int4[]",
            Self::Int8(_) => "int8[]",
            Self::Text(_) => "text[]",
            Self::Json(_) => "text[]::jsonb[]",
            Self::Time(_) => "timestamptz[]",
            Self::Bool(_) => "bool[]",
        }
    }

    fn bind_pg(
        &self,
        args: &mut PgArguments,
        rows: std::ops::Range<usize>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Int4(v) => args.add(&v[rows]),
            Self::Int8(v) => args.add(&v[rows]),
            Self::Text(v) => args.add(&v[rows]),
            Self::Json(v) => args.add(&v[rows]),
            Self::Time(v) => args.add(&v[rows]),
            Self::Bool(v) => args.add(&v[rows]),
        }
        .map_err(sqlx::Error::Encode)
    }

    fn bind_sqlite(&self, args: &mut SqliteArguments, row: usize) -> Result<(), sqlx::Error> {
        match self {
            Self::Int4(v) => args.add(v[row]),
            Self::Int8(v) => args.add(v[row]),
            Self::Text(v) => args.add(v[row].map(str::to_owned)),
            Self::Json(v) => args.add(v[row].clone()),
            Self::Time(v) => args.add(v[row]),
            Self::Bool(v) => args.add(v[row]),
        }
        .map_err(sqlx::Error::Encode)
    }
}

/// A statement over a page of rows: `WITH v(<columns>) AS (<rows>) <body>`; the body names the
/// scalars `$1`, `$2`, … and the rows' columns as `v.<name>`.
pub(super) struct Bulk<'a> {
    body: String,
    scalars: Vec<Scalar<'a>>,
    columns: Vec<(&'static str, Column<'a>)>,
}

impl<'a> Bulk<'a> {
    fn new(body: impl Into<String>, scalars: Vec<Scalar<'a>>) -> Self {
        Self {
            body: body.into(),
            scalars,
            columns: Vec::new(),
        }
    }

    fn column(mut self, name: &'static str, column: Column<'a>) -> Self {
        self.columns.push((name, column));
        self
    }

    fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// Rows per statement.
    fn chunk(&self, dialect: Dialect) -> usize {
        match dialect {
            Dialect::Postgres => PG_ROWS,
            Dialect::Sqlite => {
                ((SQLITE_PARAMS - self.scalars.len()) / self.columns.len().max(1)).min(SQLITE_ROWS)
            }
        }
    }

    /// The statement for `rows` rows.
    fn sql(&self, dialect: Dialect, rows: usize) -> String {
        use std::fmt::Write as _;
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        let mut sql = format!("WITH v({}) AS (", names.join(", "));
        match dialect {
            Dialect::Postgres => {
                // The scalars take the first parameters; one array per column follows them.
                let first = self.scalars.len() + 1;
                sql.push_str("SELECT * FROM UNNEST(");
                for (i, (_, c)) in self.columns.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(sql, "{sep}${}::{}", first + i, c.pg_array());
                }
                sql.push_str(")) ");
                sql.push_str(&self.body);
            }
            Dialect::Sqlite => {
                // Anonymous `?`s: SQLite looks a named parameter up by a linear scan of all
                // the names, so thousands of `$n`s cost quadratic time at every execution.
                // The rows take the first parameters; the body's scalars follow them.
                sql.push_str("VALUES ");
                let width = self.columns.len();
                for r in 0..rows {
                    sql.push_str(if r == 0 { "(" } else { ", (" });
                    for c in 0..width {
                        sql.push_str(if c == 0 { "?" } else { ", ?" });
                    }
                    sql.push(')');
                }
                sql.push_str(") ");
                renumber(&mut sql, &self.body, rows * width);
            }
        }
        sql
    }

    fn pg_args(&self, rows: std::ops::Range<usize>) -> Result<PgArguments, sqlx::Error> {
        let mut args = PgArguments::default();
        self.bind_scalars(&mut args)?;
        for (_, c) in &self.columns {
            c.bind_pg(&mut args, rows.clone())?;
        }
        Ok(args)
    }

    fn sqlite_args(&self, rows: std::ops::Range<usize>) -> Result<SqliteArguments, sqlx::Error> {
        let mut args = SqliteArguments::default();
        args.reserve(self.scalars.len() + rows.len() * self.columns.len(), 0);
        for r in rows {
            for (_, c) in &self.columns {
                c.bind_sqlite(&mut args, r)?;
            }
        }
        self.bind_scalars(&mut args)?;
        Ok(args)
    }

    fn bind_scalars<A>(&self, args: &mut A) -> Result<(), sqlx::Error>
    where
        A: sqlx::Arguments,
        for<'q> &'q str: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
        for<'q> DateTime<Utc>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    {
        for s in &self.scalars {
            match s {
                Scalar::Text(t) => args.add(*t),
                Scalar::Time(t) => args.add(*t),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(())
    }
}

/// Appends `body` to `sql` with each parameter `$n` written `$(n + offset)`.
fn renumber(sql: &mut String, body: &str, offset: usize) {
    let mut rest = body;
    while let Some(at) = rest.find('$') {
        sql.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => sql.push_str(&(n + offset).to_string()),
            Err(_) => sql.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    sql.push_str(rest);
}

/// A connection that runs [`Bulk`] statements, a chunk of rows at a time.
pub(super) trait BulkConnection: Send {
    /// How this connection's rows become `v`.
    const DIALECT: Dialect;

    /// Whether this connection's commits return before the disk has them (`lazy`): such a
    /// commit survives this process being killed, not the machine losing power.
    async fn lazy_commits(&mut self, lazy: bool) -> Result<(), sqlx::Error>;

    /// Runs `bulk` for rows `rows`.
    async fn execute_chunk(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<(), sqlx::Error>;

    /// Runs `bulk` for rows `rows` and returns what it selects.
    async fn fetch_chunk<T>(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin;
}

impl BulkConnection for PgConnection {
    const DIALECT: Dialect = Dialect::Postgres;

    async fn lazy_commits(&mut self, lazy: bool) -> Result<(), sqlx::Error> {
        let sql = if lazy {
            "SET synchronous_commit = off"
        } else {
            "RESET synchronous_commit"
        };
        sqlx::query(sql).execute(self).await?;
        Ok(())
    }

    async fn execute_chunk(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<(), sqlx::Error> {
        let sql = bulk.sql(Self::DIALECT, rows.len());
        let args = bulk.pg_args(rows)?;
        sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn fetch_chunk<T>(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = bulk.sql(Self::DIALECT, rows.len());
        let args = bulk.pg_args(rows)?;
        sqlx::query_as_with(AssertSqlSafe(sql), args)
            .fetch_all(self)
            .await
    }
}

impl BulkConnection for SqliteConnection {
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn lazy_commits(&mut self, lazy: bool) -> Result<(), sqlx::Error> {
        // In WAL mode NORMAL writes each commit to the log without syncing it; the next FULL
        // commit (the next plan) syncs the log, and these commits with it.
        let sql = if lazy {
            "PRAGMA synchronous = NORMAL"
        } else {
            "PRAGMA synchronous = FULL"
        };
        sqlx::query(sql).execute(self).await?;
        Ok(())
    }

    async fn execute_chunk(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<(), sqlx::Error> {
        let sql = bulk.sql(Self::DIALECT, rows.len());
        let args = bulk.sqlite_args(rows)?;
        sqlx::query_with(AssertSqlSafe(sql), args)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn fetch_chunk<T>(
        &mut self,
        bulk: &Bulk<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = bulk.sql(Self::DIALECT, rows.len());
        let args = bulk.sqlite_args(rows)?;
        sqlx::query_as_with(AssertSqlSafe(sql), args)
            .fetch_all(self)
            .await
    }
}

/// The chunks of `bulk`'s rows, one statement each.
fn chunks(bulk: &Bulk<'_>, dialect: Dialect) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (rows, size) = (bulk.rows(), bulk.chunk(dialect));
    (0..rows)
        .step_by(size)
        .map(move |start| start..(start + size).min(rows))
}

async fn execute<C: BulkConnection>(conn: &mut C, bulk: &Bulk<'_>) -> Result<(), sqlx::Error> {
    for rows in chunks(bulk, C::DIALECT) {
        conn.execute_chunk(bulk, rows).await?;
    }
    Ok(())
}

async fn fetch<C, T>(conn: &mut C, bulk: &Bulk<'_>) -> Result<Vec<T>, sqlx::Error>
where
    C: BulkConnection,
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    let mut out = Vec::with_capacity(bulk.rows());
    for rows in chunks(bulk, C::DIALECT) {
        out.extend(conn.fetch_chunk(bulk, rows).await?);
    }
    Ok(out)
}

fn json_text(v: Option<&Value>) -> Option<String> {
    v.map(Value::to_string)
}

const LINK_COLUMNS: &str =
    "link_id, source_key, target_key, natural_key, base, source_deleted, target_deleted";

/// The links of `sync` whose key on `side` is one of `keys`.
pub(super) async fn links_for<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    side: Side,
    keys: &[RecordKey],
) -> Result<Vec<LinkRow>, sqlx::Error> {
    let bulk = Bulk::new(
        format!(
            "SELECT {LINK_COLUMNS} FROM sync_link WHERE sync_name = $1 AND {} IN (SELECT k FROM v)",
            side.key_column()
        ),
        vec![Scalar::Text(sync)],
    )
    .column(
        "k",
        Column::Text(keys.iter().map(|k| Some(k.as_str())).collect()),
    );
    fetch(conn, &bulk).await
}

/// The links of `sync` with these ids.
pub(super) async fn links_by_id<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    ids: &[i64],
) -> Result<Vec<LinkRow>, sqlx::Error> {
    let bulk = Bulk::new(
        format!(
            "SELECT {LINK_COLUMNS} FROM sync_link WHERE sync_name = $1 AND link_id IN (SELECT id FROM v)"
        ),
        vec![Scalar::Text(sync)],
    )
    .column("id", Column::Int8(ids.iter().copied().map(Some).collect()));
    fetch(conn, &bulk).await
}

/// Inserts audit rows; returns `(change_id, seq, side, action)` of each.
pub(super) async fn insert_change_rows<C: BulkConnection>(
    conn: &mut C,
    run_id: &str,
    now: DateTime<Utc>,
    rows: &[ChangeRow],
) -> Result<Vec<(i64, i32, String, String)>, sqlx::Error> {
    let bulk = Bulk::new(
        "INSERT INTO sync_change (run_id, seq, link_id, side, record_key, action, before, after, status, error, \
         created_at, finished_at, origin_key) \
         SELECT $1, seq, link_id, side, record_key, action, before, after, status, error, $2, finished_at, origin_key \
         FROM v RETURNING change_id, seq, side, action",
        vec![Scalar::Text(run_id), Scalar::Time(now)],
    )
    .column(
        "seq",
        Column::Int4(rows.iter().map(|r| i32::try_from(r.seq).unwrap_or(i32::MAX)).collect()),
    )
    .column("link_id", Column::Int8(rows.iter().map(|r| r.link_id).collect()))
    .column("side", Column::Text(rows.iter().map(|r| Some(r.side.as_str())).collect()))
    .column("record_key", Column::Text(rows.iter().map(|r| r.record_key.as_deref()).collect()))
    .column("action", Column::Text(rows.iter().map(|r| Some(r.action.as_str())).collect()))
    .column("before", Column::Json(rows.iter().map(|r| json_text(r.before.as_ref())).collect()))
    .column("after", Column::Json(rows.iter().map(|r| json_text(r.after.as_ref())).collect()))
    .column("status", Column::Text(rows.iter().map(|r| Some(r.status.as_str())).collect()))
    .column("error", Column::Text(rows.iter().map(|r| r.error.as_deref()).collect()))
    .column(
        "finished_at",
        Column::Time(rows.iter().map(|r| (r.status != "planned").then_some(now)).collect()),
    )
    .column("origin_key", Column::Text(rows.iter().map(|r| r.origin_key.as_deref()).collect()));
    fetch(conn, &bulk).await
}

/// The columns of links, after `prefix` (the link ids of an update).
fn link_bulk<'a>(
    body: &str,
    scalars: Vec<Scalar<'a>>,
    links: &[LinkOut<'a>],
    with_ids: bool,
) -> Bulk<'a> {
    let mut bulk = Bulk::new(body, scalars);
    if with_ids {
        bulk = bulk.column(
            "link_id",
            Column::Int8(links.iter().map(|l| l.id).collect()),
        );
    }
    bulk.column(
        "source_key",
        Column::Text(links.iter().map(|l| Some(l.source_key)).collect()),
    )
    .column(
        "target_key",
        Column::Text(links.iter().map(|l| Some(l.target_key)).collect()),
    )
    .column(
        "natural_key",
        Column::Text(links.iter().map(|l| l.natural_key).collect()),
    )
    .column(
        "base",
        Column::Json(
            links
                .iter()
                .map(|l| Some(serde_json::to_string(l.base).unwrap_or_else(|_| "{}".to_owned())))
                .collect(),
        ),
    )
    .column(
        "source_updated_at",
        Column::Time(links.iter().map(|l| l.source_updated_at).collect()),
    )
    .column(
        "target_updated_at",
        Column::Time(links.iter().map(|l| l.target_updated_at).collect()),
    )
    .column(
        "source_deleted",
        Column::Bool(links.iter().map(|l| l.source_deleted).collect()),
    )
    .column(
        "target_deleted",
        Column::Bool(links.iter().map(|l| l.target_deleted).collect()),
    )
}

/// Writes links that exist (by id; one deleted meanwhile is stored again under its id).
pub(super) async fn update_links<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    run_id: &str,
    now: DateTime<Utc>,
    links: &[LinkOut<'_>],
) -> Result<(), sqlx::Error> {
    // `WHERE true`: SQLite needs it to tell the upsert's `ON CONFLICT` from a join's `ON`.
    let bulk = link_bulk(
        "INSERT INTO sync_link (link_id, sync_name, source_key, target_key, natural_key, base, \
         source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) \
         SELECT link_id, $1, source_key, target_key, natural_key, base, source_updated_at, target_updated_at, \
         source_deleted, target_deleted, $2, $2, $3 FROM v WHERE true \
         ON CONFLICT (link_id) DO UPDATE SET source_key = excluded.source_key, target_key = excluded.target_key, \
         natural_key = COALESCE(excluded.natural_key, sync_link.natural_key), base = excluded.base, \
         source_updated_at = COALESCE(excluded.source_updated_at, sync_link.source_updated_at), \
         target_updated_at = COALESCE(excluded.target_updated_at, sync_link.target_updated_at), \
         source_deleted = excluded.source_deleted, target_deleted = excluded.target_deleted, \
         updated_run = excluded.updated_run, updated_at = excluded.updated_at",
        vec![Scalar::Text(sync), Scalar::Text(run_id), Scalar::Time(now)],
        links,
        true,
    );
    execute(conn, &bulk).await
}

/// Inserts new links; returns `(link_id, source_key)` of each.
pub(super) async fn insert_links<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    run_id: &str,
    now: DateTime<Utc>,
    links: &[LinkOut<'_>],
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let bulk = link_bulk(
        "INSERT INTO sync_link (sync_name, source_key, target_key, natural_key, base, \
         source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) \
         SELECT $1, source_key, target_key, natural_key, base, source_updated_at, target_updated_at, \
         source_deleted, target_deleted, $2, $2, $3 FROM v RETURNING link_id, source_key",
        vec![Scalar::Text(sync), Scalar::Text(run_id), Scalar::Time(now)],
        links,
        false,
    );
    fetch(conn, &bulk).await
}

/// Deletes links by id.
pub(super) async fn remove_links<C: BulkConnection>(
    conn: &mut C,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    let bulk = Bulk::new(
        "DELETE FROM sync_link WHERE link_id IN (SELECT id FROM v)",
        Vec::new(),
    )
    .column("id", Column::Int8(ids.iter().copied().map(Some).collect()));
    execute(conn, &bulk).await
}

/// Sets the outcome of audit rows (each id at most once): status, error and finish time,
/// the record key when one was learnt, the link id when the row had none.
pub(super) async fn set_outcomes<C: BulkConnection>(
    conn: &mut C,
    now: DateTime<Utc>,
    outcomes: &[Outcome<'_>],
) -> Result<(), sqlx::Error> {
    let bulk = Bulk::new(
        "UPDATE sync_change SET status = v.status, error = v.error, finished_at = $1, \
         record_key = COALESCE(v.record_key, sync_change.record_key), \
         link_id = COALESCE(sync_change.link_id, v.link_id) \
         FROM v WHERE sync_change.change_id = v.change_id",
        vec![Scalar::Time(now)],
    )
    .column(
        "change_id",
        Column::Int8(outcomes.iter().map(|o| Some(o.0)).collect()),
    )
    .column(
        "status",
        Column::Text(outcomes.iter().map(|o| Some(o.1)).collect()),
    )
    .column(
        "error",
        Column::Text(outcomes.iter().map(|o| o.2).collect()),
    )
    .column(
        "record_key",
        Column::Text(outcomes.iter().map(|o| o.3).collect()),
    )
    .column(
        "link_id",
        Column::Int8(outcomes.iter().map(|o| o.4).collect()),
    );
    execute(conn, &bulk).await
}

/// Removes these keys of `side` from the pending list.
pub(super) async fn remove_pending<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    side: Side,
    keys: &[RecordKey],
) -> Result<(), sqlx::Error> {
    let bulk = Bulk::new(
        "DELETE FROM sync_pending WHERE sync_name = $1 AND side = $2 AND record_key IN (SELECT k FROM v)",
        vec![Scalar::Text(sync), Scalar::Text(side.as_str())],
    )
    .column("k", Column::Text(keys.iter().map(|k| Some(k.as_str())).collect()));
    execute(conn, &bulk).await
}

/// Adds keys to the pending list with why (each `(side, key)` at most once); a key already
/// pending counts one more attempt.
pub(super) async fn add_pending<C: BulkConnection>(
    conn: &mut C,
    sync: &str,
    run_id: &str,
    pending: &[(Side, &str, &str)],
) -> Result<(), sqlx::Error> {
    let bulk = Bulk::new(
        "INSERT INTO sync_pending (sync_name, side, record_key, reason, run_id, attempts) \
         SELECT $1, side, record_key, reason, $2, 1 FROM v WHERE true \
         ON CONFLICT (sync_name, side, record_key) DO UPDATE SET reason = excluded.reason, \
         run_id = excluded.run_id, attempts = sync_pending.attempts + 1",
        vec![Scalar::Text(sync), Scalar::Text(run_id)],
    )
    .column(
        "side",
        Column::Text(pending.iter().map(|p| Some(p.0.as_str())).collect()),
    )
    .column(
        "record_key",
        Column::Text(pending.iter().map(|p| Some(p.1)).collect()),
    )
    .column(
        "reason",
        Column::Text(pending.iter().map(|p| Some(p.2)).collect()),
    );
    execute(conn, &bulk).await
}
