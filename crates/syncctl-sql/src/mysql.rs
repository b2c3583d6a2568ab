//! The MySQL/MariaDB connector: one table of a MySQL (5.7+) or MariaDB (10.3+) database.
//!
//! * Settings: [`SqlSettings`] with `url: mysql://user[:password]@host[:port]/db` (or
//!   `mariadb://…`) and `object: table` or `database.table`. Nothing is created or altered in
//!   the user's database.
//! * Schema: discovered from `information_schema` (columns, types, `NOT NULL`, defaults,
//!   `auto_increment`, generated columns, single-column unique indexes without a prefix
//!   length). `tinyint(1)` is a boolean. Identifiers are quoted with backticks and come from
//!   that discovered schema; record data only travels as parameters.
//! * Values: columns are read as `CAST(col AS CHAR)` (binary columns as `HEX(col)`) and
//!   converted by type ([`crate::sql_rows`]). The session runs with `time_zone = '+00:00'`, so
//!   `DATETIME` and `TIMESTAMP` values are UTC, and with strict mode added to its `sql_mode`,
//!   so a value that does not fit a column is refused instead of silently truncated.
//! * Reads are keyset-paginated: by key, or with `since` by `(updated_at, key)`; rows whose
//!   cursor is NULL follow the others in every incremental read.
//! * Writes: one transaction per batch, with `@syncctl_origin` set on the session for its
//!   duration (reset to NULL after) for triggers to test, `origin_column` set when configured,
//!   and `updated_at_column` set to `UTC_TIMESTAMP(6)`. Bulk path: records are locked and
//!   looked up first (`SELECT … FOR UPDATE`: tells creates from natural-key updates, stale from
//!   missing), then each group of creates is one multi-row
//!   `INSERT … ON DUPLICATE KEY UPDATE`, each group of updates one
//!   `UPDATE … SET col = CASE key WHEN … END`, deletes one `DELETE … IN (…)`, and the stored
//!   rows are read back in one `SELECT`. When a statement fails because of a record, the
//!   transaction is rolled back and the batch replayed one record per savepoint.

mod write;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnectOptions, MySqlRow};
use sqlx::{AssertSqlSafe, Executor, Row};
use syncctl_core::{
    BuildContext, BuildFuture, Connector, ConnectorError, ConnectorFactory, FieldSchema, FieldType,
    ObjectSchema, Page, ReadRequest, Record, RecordError, RecordKey, Sink, Source,
};
use syncctl_validate::coerce::parse_timestamp;

use crate::ident::{Dialect, quote};
use crate::registry::parse_settings;
use crate::settings::SqlSettings;
use crate::sql_connector::{SqlCore, auth_error, client_error, pool_options, scrub};
use crate::sql_rows::{
    ScanRow, ScanToken, SqlStats, key_value, one_line, record_from_texts, scan_page,
};

const KIND: &str = "mysql";
const D: Dialect = Dialect::Backtick;
/// Values per `IN (…)` list in key reads, lookups and lock probes.
const IN_CHUNK: usize = 1000;
/// Write batch cap when settings give none.
const DEFAULT_MAX_BATCH: usize = 500;
/// Prepared statements take at most 65 535 placeholders; stay clear of it.
const MAX_PARAMS: usize = 60_000;
/// Makes the session refuse what does not fit, whatever the server's default `sql_mode`.
const STRICT: &str =
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')";

/// Registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "MySQL/MariaDB table (url: mysql://user@host/db, object: [database.]table, key_column, updated_at_column)",
    build,
};

fn build(_ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let s: SqlSettings = parse_settings(KIND, settings)?;
        let c = MySqlConnector::new(s)?;
        Ok(Box::new(c) as Box<dyn Connector>)
    })
}

/// A MySQL/MariaDB table as a sync source and sink.
pub struct MySqlConnector {
    core: SqlCore<MySql, MyTable>,
}

impl fmt::Debug for MySqlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("MySqlConnector", f)
    }
}

/// What `describe` found, in the form the SQL builders need.
#[derive(Debug)]
pub(crate) struct MyTable {
    /// The quoted, qualified table name (`` `crm`.`contacts` ``).
    pub qtable: String,
    /// The object as the engine sees it.
    pub schema: ObjectSchema,
    /// Columns with a single-column, full-length unique index.
    pub unique: HashSet<String>,
    /// Whether the key column is `auto_increment` (creates learn it from `LAST_INSERT_ID()`).
    pub auto_increment: bool,
    /// `CAST(x.`a` AS CHAR), …` in field order, for tables aliased `x`.
    pub select: String,
    /// Text columns: (character set, collation), which decide what the table's unique
    /// indexes and lookups hold to be equal.
    pub collations: HashMap<String, (String, String)>,
    /// `decimal(p, s)` columns: (precision, scale), checked before a write so that a value
    /// the column would round is refused instead of silently changed.
    pub digits: crate::sql_rows::DecimalDigits,
}

impl MyTable {
    fn index(&self, column: &str) -> Option<usize> {
        self.schema.fields.iter().position(|f| f.name == column)
    }

    pub(crate) fn field_type(&self, column: &str) -> FieldType {
        self.schema
            .field(column)
            .map_or(FieldType::Text, |f| f.field_type.clone())
    }

    /// The row read as text, converted to a record.
    pub(crate) fn record(&self, row: &MySqlRow, offset: usize) -> Result<Record, sqlx::Error> {
        Ok(record_from_texts(&self.schema, self.texts(row, offset)?))
    }

    fn texts(&self, row: &MySqlRow, offset: usize) -> Result<Vec<Option<String>>, sqlx::Error> {
        (0..self.schema.fields.len())
            .map(|i| row.try_get_unchecked::<Option<String>, _>(offset + i))
            .collect()
    }

    /// `now()` in the form the cursor column holds (the session time zone is UTC).
    pub(crate) fn now_expr(&self) -> &'static str {
        match self
            .schema
            .updated_at
            .as_deref()
            .map(|c| self.field_type(c))
        {
            Some(FieldType::Date) => "UTC_DATE()",
            _ => "UTC_TIMESTAMP(6)",
        }
    }

    /// A converted value as a parameter for `column`.
    pub(crate) fn arg(&self, column: &str, v: &Value) -> Arg {
        let ty = self.field_type(column);
        match v {
            Value::Null => Arg::Null,
            Value::Bool(b) => Arg::Int(i64::from(*b)),
            Value::Number(n) => n
                .as_i64()
                .map(Arg::Int)
                .or_else(|| n.as_f64().map(Arg::Float))
                .unwrap_or_else(|| Arg::Text(n.to_string())),
            Value::String(s) => match ty {
                FieldType::Timestamp => match parse_timestamp(s) {
                    Some(t) => Arg::Text(my_time(t)),
                    None => Arg::Text(s.clone()),
                },
                FieldType::Json if serde_json::from_str::<Value>(s).is_err() => {
                    Arg::Text(v.to_string())
                }
                _ => Arg::Text(s.clone()),
            },
            other => Arg::Text(other.to_string()),
        }
    }

    /// A key given as text (a record key, a token's key) as a parameter.
    pub(crate) fn key_arg(&self, text: &str) -> Arg {
        let ty = self.field_type(&self.schema.key);
        let v = crate::sql_rows::value_from_text(&ty, Some(text.to_owned()));
        self.arg(&self.schema.key, &v)
    }
}

/// A `DATETIME` literal in UTC with microseconds.
pub(crate) fn my_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A parameter in a form sqlx binds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

pub(crate) type Q<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

pub(crate) fn bind(q: Q<'_>, a: Arg) -> Q<'_> {
    match a {
        Arg::Null => q.bind(Option::<String>::None),
        Arg::Int(i) => q.bind(i),
        Arg::Float(f) => q.bind(f),
        Arg::Text(s) => q.bind(s),
    }
}

/// `?, ?, ?` for `n` parameters.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl MySqlConnector {
    /// A connector for the settings; nothing is opened until first use.
    ///
    /// # Errors
    /// A malformed URL or table name.
    pub fn new(settings: SqlSettings) -> Result<Self, ConnectorError> {
        use secrecy::ExposeSecret;
        let raw = settings.url.expose_secret();
        let url = match raw.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => raw.to_owned(),
        };
        if !url.starts_with("mysql://") {
            return Err(ConnectorError::config(
                KIND,
                "url must start with mysql:// or mariadb:// (mysql://user[:password]@host[:port]/database)",
            ));
        }
        let options = MySqlConnectOptions::from_str(&url).map_err(|e| {
            ConnectorError::config(
                KIND,
                format!("invalid url: {}", scrub(&e.to_string(), &url)),
            )
        })?;
        let endpoint = format!(
            "mysql://{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = pool_options::<MySql>()
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(STRICT).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Ok(Self {
            core: SqlCore::new(
                KIND,
                options,
                endpoint,
                settings,
                pool,
                db_error,
                record_error,
            )?,
        })
    }

    /// Statements and rows sent so far.
    #[must_use]
    pub fn stats(&self) -> &SqlStats {
        &self.core.stats
    }

    /// The described table, describing it first if needed.
    pub(crate) async fn table(&self) -> Result<Arc<MyTable>, ConnectorError> {
        match self.core.described()? {
            Some(t) => Ok(t),
            None => self.discover().await,
        }
    }

    #[allow(clippy::too_many_lines)] // one catalog walk, kept together
    async fn discover(&self) -> Result<Arc<MyTable>, ConnectorError> {
        self.core.probe_before_first_use().await?;
        self.core.stats.statements(1);
        let found = sqlx::query(
            "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
        )
        .bind(self.core.table.schema.as_deref())
        .bind(&self.core.table.table)
        .fetch_optional(&self.core.pool)
        .await;
        let found = match found {
            Ok(f) => f,
            Err(e) => return Err(self.core.explain(&e).await),
        };
        let Some(found) = found else {
            let hint =
                if self.core.table.schema.is_none() && self.core.options.get_database().is_none() {
                    " (the url names no database: write database.table or add /database to the url)"
                } else {
                    ""
                };
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "table {} not found in {}{hint}",
                    self.core.table, self.core.endpoint
                ),
            ));
        };
        let db: String = found.try_get(0).map_err(|e| self.core.db_error(&e))?;
        let name: String = found.try_get(1).map_err(|e| self.core.db_error(&e))?;
        self.core.stats.statements(1);
        let cols = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(LOWER(DATA_TYPE) AS CHAR), \
                    CAST(LOWER(COLUMN_TYPE) AS CHAR), CAST(IS_NULLABLE AS CHAR), \
                    CAST(COLUMN_DEFAULT AS CHAR), CAST(LOWER(EXTRA) AS CHAR), \
                    CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR), \
                    CAST(COLLATION_NAME AS CHAR), CAST(NUMERIC_PRECISION AS CHAR), \
                    CAST(NUMERIC_SCALE AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
        )
        .bind(&db)
        .bind(&name)
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| self.core.db_error(&e))?;
        self.core.stats.statements(1);
        let stats = sqlx::query(
            "SELECT CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR), \
                    CAST(COLUMN_NAME AS CHAR), CAST(SUB_PART AS CHAR) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        )
        .bind(&db)
        .bind(&name)
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| self.core.db_error(&e))?;
        // index → (unique, columns, any prefix part)
        let mut indexes: Vec<(String, bool, Vec<String>, bool)> = Vec::new();
        for r in &stats {
            let get = |i: usize| -> Result<Option<String>, ConnectorError> {
                r.try_get_unchecked::<Option<String>, _>(i)
                    .map_err(|e| self.core.db_error(&e))
            };
            let ix = get(0)?.unwrap_or_default();
            let unique = get(1)?.as_deref() == Some("0");
            let col = get(2)?.unwrap_or_default();
            let prefix = get(3)?.is_some();
            match indexes.iter_mut().find(|(n, ..)| *n == ix) {
                Some(e) => {
                    e.2.push(col);
                    e.3 |= prefix;
                }
                None => indexes.push((ix, unique, vec![col], prefix)),
            }
        }
        let pk: Vec<String> = indexes
            .iter()
            .find(|(n, ..)| n == "PRIMARY")
            .map(|(_, _, c, _)| c.clone())
            .unwrap_or_default();
        let unique: HashSet<String> = indexes
            .iter()
            .filter(|(_, u, c, prefix)| *u && c.len() == 1 && !prefix)
            .map(|(_, _, c, _)| c[0].clone())
            .collect();
        let mut fields = Vec::with_capacity(cols.len());
        let mut exprs = Vec::with_capacity(cols.len());
        let mut auto_cols = Vec::new();
        let mut collations = HashMap::new();
        let mut digits = HashMap::new();
        for c in &cols {
            let get = |i: usize| -> Result<Option<String>, ConnectorError> {
                c.try_get_unchecked::<Option<String>, _>(i)
                    .map_err(|e| self.core.db_error(&e))
            };
            let name = get(0)?.unwrap_or_default();
            let data_type = get(1)?.unwrap_or_default();
            let column_type = get(2)?.unwrap_or_default();
            let nullable = get(3)?.as_deref() == Some("YES");
            let default = get(4)?.filter(|d| !d.eq_ignore_ascii_case("NULL"));
            let extra = get(5)?.unwrap_or_default();
            let maxlen = get(6)?.and_then(|n| n.parse::<u32>().ok());
            if let (Some(cs), Some(coll)) = (get(7)?, get(8)?) {
                collations.insert(name.clone(), (cs, coll));
            }
            let field_type = field_type_of(&data_type, &column_type);
            if field_type == FieldType::Decimal
                && let (Some(p), Some(sc)) = (get(9)?, get(10)?)
                && let (Ok(p), Ok(sc)) = (p.parse::<u32>(), sc.parse::<u32>())
            {
                digits.insert(name.clone(), (p, sc));
            }
            let auto = extra.contains("auto_increment");
            if auto {
                auto_cols.push(name.clone());
            }
            let generated =
                extra.contains("generated") || extra == "virtual" || extra == "persistent";
            let q = quote(&name, D);
            exprs.push(match &field_type {
                FieldType::Other(t) if t == "binary" => format!("HEX(x.{q})"),
                FieldType::Other(t) if t == "bit" => format!("CAST(x.{q} + 0 AS CHAR)"),
                _ => format!("CAST(x.{q} AS CHAR)"),
            });
            fields.push(FieldSchema {
                unique: unique.contains(&name),
                nullable,
                writable: !generated,
                max_length: if matches!(data_type.as_str(), "char" | "varchar") {
                    maxlen
                } else {
                    None
                },
                has_default: auto || default.is_some(),
                normalisation: Vec::new(),
                field_type,
                name,
            });
        }
        let key = self.core.checked_key(
            &pk,
            &mut fields,
            "DATETIME, TIMESTAMP or DATE",
            "text (CHAR/VARCHAR/TEXT)",
        )?;
        let auto_increment = auto_cols.contains(&key);
        let schema = self.core.object_schema(
            format!("{db}.{name}"),
            key,
            fields,
            auto_increment,
            DEFAULT_MAX_BATCH,
        );
        let table = Arc::new(MyTable {
            qtable: format!("{}.{}", quote(&db, D), quote(&name, D)),
            schema,
            unique,
            auto_increment,
            select: exprs.join(", "),
            collations,
            digits,
        });
        self.core.remember(&table);
        Ok(table)
    }

    async fn select_in(
        &self,
        t: &MyTable,
        column: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in args.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {} FROM {} AS x WHERE x.{} IN ({}) ORDER BY x.{}",
                t.select,
                t.qtable,
                quote(column, D),
                marks(chunk.len()),
                quote(&t.schema.key, D)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = bind(q, a.clone());
            }
            self.core.stats.statements(1);
            let rows = q
                .fetch_all(&self.core.pool)
                .await
                .map_err(|e| self.core.db_error(&e))?;
            for r in &rows {
                out.push(t.record(r, 0).map_err(|e| self.core.db_error(&e))?);
            }
        }
        self.core.stats.read(out.len() as u64);
        Ok(out)
    }
}

/// The validation type of a MySQL column.
fn field_type_of(data_type: &str, column_type: &str) -> FieldType {
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => FieldType::Boolean,
        "bool" | "boolean" => FieldType::Boolean,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => FieldType::Integer,
        "decimal" | "numeric" => FieldType::Decimal,
        "float" | "double" | "real" => FieldType::Float,
        "date" => FieldType::Date,
        "datetime" | "timestamp" => FieldType::Timestamp,
        "json" => FieldType::Json,
        "uuid" => FieldType::Uuid,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => FieldType::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            FieldType::Other("binary".into())
        }
        "bit" => FieldType::Other("bit".into()),
        _ => FieldType::Other(column_type.to_owned()),
    }
}

/// The MySQL error number of a server error.
fn number(db: &dyn sqlx::error::DatabaseError) -> u16 {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map_or(0, sqlx::mysql::MySqlDatabaseError::number)
}

/// A whole-call error from sqlx, with the endpoint (never credentials) for context.
pub(crate) fn db_error(endpoint: &str, e: &sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => {
            let n = number(db.as_ref());
            let msg = format!("{endpoint}: {} (error {n})", one_line(db.message()));
            match n {
                1044 | 1045 | 1142 | 1143 | 1227 | 1698 => auth_error(KIND, msg),
                1046 | 1049 | 1054 | 1146 => ConnectorError::config(KIND, msg),
                1040 | 1053 | 1205 | 1213 | 1317 | 2002 | 2003 | 2006 | 2013 => {
                    ConnectorError::unavailable(KIND, msg)
                }
                _ => ConnectorError::failed(KIND, msg),
            }
        }
        other => client_error(KIND, endpoint, other),
    }
}

/// A statement failure: the record's fault (`Ok`) or the whole batch's (`Err`). A deadlock is
/// the batch's: InnoDB rolls the whole transaction back, savepoints included.
pub(crate) fn record_error(endpoint: &str, e: &sqlx::Error) -> Result<RecordError, ConnectorError> {
    let sqlx::Error::Database(db) = e else {
        return Err(db_error(endpoint, e));
    };
    let n = number(db.as_ref());
    let state = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // Messages like "Duplicate entry 'x@y' for key …" quote the value: keep only the error.
    let message = match n {
        1062 => format!("duplicate value for a unique key (error {n})"),
        _ => format!("{} (error {n})", one_line(db.message())),
    };
    match n {
        1205 | 3572 => Ok(RecordError::transient(message)),
        1213 => Err(db_error(endpoint, e)),
        1048 | 1062 | 1064 | 1265 | 1264 | 1292 | 1364 | 1366 | 1367 | 1406 | 1411 | 1451
        | 1452 | 1644 | 1690 | 3140 | 3819 | 4025 | 4078 => Ok(RecordError::invalid(message, None)),
        _ if matches!(state.get(..2).unwrap_or_default(), "22" | "23" | "45") => {
            Ok(RecordError::invalid(message, None))
        }
        _ => Err(db_error(endpoint, e)),
    }
}

#[async_trait::async_trait]
impl Connector for MySqlConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn endpoint(&self) -> String {
        self.core.endpoint.clone()
    }

    fn object(&self) -> &str {
        &self.core.settings.object
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.core.check().await
    }

    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        Ok(self.discover().await?.schema.clone())
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn sink(&self) -> Option<&dyn Sink> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Source for MySqlConnector {
    async fn read_page(
        &self,
        _schema: &ObjectSchema,
        req: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let t = self.table().await?;
        let token = ScanToken::of_request(KIND, req)?;
        let limit = req.limit.max(1);
        let key = quote(&t.schema.key, D);
        let key_idx = t.index(&t.schema.key).unwrap_or(0);
        let cursor = match (&req.since, &t.schema.updated_at) {
            (Some(since), Some(u)) if t.schema.capabilities.incremental => Some((*since, u)),
            _ => None,
        };
        let mut rows: Vec<ScanRow> = Vec::new();
        let fetch = |sql: String, args: Vec<Arg>, n: usize| {
            let pool = &self.core.pool;
            async move {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for a in args {
                    q = bind(q, a);
                }
                q.bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .fetch_all(pool)
                    .await
            }
        };
        let mut cursor_idx = None;
        if let Some((since, u)) = cursor {
            let cur = quote(u, D);
            cursor_idx = t.index(u);
            let in_null_phase = token.as_ref().and_then(|k| k.phase.as_deref()) == Some("n");
            if !in_null_phase {
                let since_arg = match t.field_type(u) {
                    FieldType::Date => since.format("%Y-%m-%d").to_string(),
                    _ => my_time(since),
                };
                let mut sql = format!(
                    "SELECT {} FROM {} AS x WHERE x.{cur} >= ?",
                    t.select, t.qtable
                );
                let mut args = vec![Arg::Text(since_arg)];
                if let Some(tok) = &token {
                    sql.push_str(&format!(
                        " AND (x.{cur} > ? OR (x.{cur} = ? AND x.{key} > ?))"
                    ));
                    let c = tok.cursor.clone().unwrap_or_default();
                    args.push(Arg::Text(c.clone()));
                    args.push(Arg::Text(c));
                    args.push(t.key_arg(&tok.key));
                }
                sql.push_str(&format!(" ORDER BY x.{cur}, x.{key} LIMIT ?"));
                self.core.stats.statements(1);
                let got = fetch(sql, args, limit)
                    .await
                    .map_err(|e| self.core.db_error(&e))?;
                for r in &got {
                    rows.push((
                        Some("c"),
                        t.texts(r, 0).map_err(|e| self.core.db_error(&e))?,
                    ));
                }
            }
            if rows.len() < limit {
                let mut sql = format!(
                    "SELECT {} FROM {} AS x WHERE x.{cur} IS NULL",
                    t.select, t.qtable
                );
                let mut args = Vec::new();
                if let Some(tok) = token.as_ref().filter(|_| in_null_phase) {
                    sql.push_str(&format!(" AND x.{key} > ?"));
                    args.push(t.key_arg(&tok.key));
                }
                sql.push_str(&format!(" ORDER BY x.{key} LIMIT ?"));
                self.core.stats.statements(1);
                let got = fetch(sql, args, limit - rows.len())
                    .await
                    .map_err(|e| self.core.db_error(&e))?;
                for r in &got {
                    rows.push((
                        Some("n"),
                        t.texts(r, 0).map_err(|e| self.core.db_error(&e))?,
                    ));
                }
            }
        } else {
            let mut sql = format!("SELECT {} FROM {} AS x", t.select, t.qtable);
            let mut args = Vec::new();
            if let Some(tok) = &token {
                sql.push_str(&format!(" WHERE x.{key} > ?"));
                args.push(t.key_arg(&tok.key));
            }
            sql.push_str(&format!(" ORDER BY x.{key} LIMIT ?"));
            self.core.stats.statements(1);
            let got = fetch(sql, args, limit)
                .await
                .map_err(|e| self.core.db_error(&e))?;
            for r in &got {
                rows.push((None, t.texts(r, 0).map_err(|e| self.core.db_error(&e))?));
            }
        }
        Ok(scan_page(
            &t.schema,
            rows,
            limit,
            cursor_idx,
            key_idx,
            &self.core.stats,
        ))
    }

    async fn read_keys(
        &self,
        _schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        let t = self.table().await?;
        let args: Vec<Arg> = keys
            .iter()
            .filter_map(|k| key_value(&t.schema, k))
            .map(|v| t.arg(&t.schema.key, &v))
            .collect();
        self.select_in(&t, &t.schema.key, args).await
    }

    async fn lookup(
        &self,
        _schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        let t = self.table().await?;
        let args: Vec<Arg> = self
            .core
            .lookup_values(&t.schema, field, values)?
            .iter()
            .map(|v| t.arg(field, v))
            .collect();
        self.select_in(&t, field, args).await
    }

    /// Keys as the column's collation compares them: trailing spaces dropped unless the
    /// collation is `NO PAD`, then `WEIGHT_STRING` under the collation (case and, for most
    /// collations, accents folded), computed by the server so that no collation is emulated.
    async fn comparison_keys(
        &self,
        _schema: &ObjectSchema,
        field: &str,
        values: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let t = self.table().await?;
        let Some((charset, collation)) = t.collations.get(field) else {
            return Ok(values.to_vec());
        };
        let padded: Vec<String> = values
            .iter()
            .map(|v| {
                if collation.contains("nopad") {
                    v.clone()
                } else {
                    v.trim_end_matches(' ').to_owned()
                }
            })
            .collect();
        let safe =
            |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if collation.ends_with("_bin") || !safe(charset) || !safe(collation) {
            return Ok(padded);
        }
        let mut out = Vec::with_capacity(padded.len());
        for chunk in padded.chunks(IN_CHUNK) {
            // Numbered, because a UNION promises no row order.
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT {i}, HEX(WEIGHT_STRING(CONVERT(? USING {charset}) COLLATE {collation}))"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for v in chunk {
                q = q.bind(v.as_str());
            }
            self.core.stats.statements(1);
            let rows = q
                .fetch_all(&self.core.pool)
                .await
                .map_err(|e| self.core.db_error(&e))?;
            let mut keys = vec![None; chunk.len()];
            for r in &rows {
                let i: i64 = r.try_get_unchecked(0).map_err(|e| self.core.db_error(&e))?;
                let k: Option<String> =
                    r.try_get_unchecked(1).map_err(|e| self.core.db_error(&e))?;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| keys.get_mut(i)) {
                    *slot = Some(k.unwrap_or_default());
                }
            }
            for k in keys {
                out.push(k.ok_or_else(|| {
                    ConnectorError::failed(KIND, "comparison keys: a value has no key")
                })?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_map_to_validation_types() {
        assert_eq!(field_type_of("tinyint", "tinyint(1)"), FieldType::Boolean);
        assert_eq!(field_type_of("tinyint", "tinyint(4)"), FieldType::Integer);
        assert_eq!(
            field_type_of("bigint", "bigint(20) unsigned"),
            FieldType::Integer
        );
        assert_eq!(
            field_type_of("datetime", "datetime(6)"),
            FieldType::Timestamp
        );
        assert_eq!(
            field_type_of("enum", "enum('a','b')"),
            FieldType::Other("enum('a','b')".into())
        );
    }

    #[tokio::test]
    async fn settings_are_checked_without_touching_the_network() {
        let ctx = || BuildContext::new(".");
        let bad = (FACTORY.build)(
            ctx(),
            json!({"connector": "mysql", "url": "postgres://h/db", "object": "t"}),
        )
        .await
        .err()
        .map(|e| e.to_string());
        assert!(bad.is_some_and(|m| m.contains("mysql://")));
        let ok = (FACTORY.build)(
            ctx(),
            json!({"connector": "mysql", "url": "mariadb://u:pw@db.example.com:3307/crm",
                   "object": "crm.contacts"}),
        )
        .await
        .map(|c| c.endpoint());
        assert_eq!(ok.ok().as_deref(), Some("mysql://db.example.com:3307/crm"));
    }

    #[test]
    fn timestamps_are_sent_as_utc_datetime_literals() {
        let t = parse_timestamp("2026-01-31T10:11:12.5+02:00").unwrap_or_default();
        assert_eq!(my_time(t), "2026-01-31 08:11:12.500000");
    }
}
