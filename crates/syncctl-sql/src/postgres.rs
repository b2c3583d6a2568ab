//! The PostgreSQL connector: one table (or updatable view) of a PostgreSQL database.
//!
//! * Settings: [`SqlSettings`] with `url: postgres://user[:password]@host[:port]/db[?sslmode=…]`
//!   and `object: table` or `schema.table` (unqualified names follow the server's
//!   `search_path`). Nothing is created or altered in the user's database.
//! * Schema: discovered from `pg_catalog` (columns, types, `NOT NULL`, defaults, identity and
//!   generated columns, single-column unique indexes). Every identifier in SQL is quoted and
//!   comes from that discovered schema; record data only ever travels as parameters or `COPY`
//!   data.
//! * Values: every column is read as `col::text` and converted by its type
//!   ([`crate::sql_rows`]); writes send text and let the server cast it to the column's type
//!   (`CAST($1 AS bigint)`, or one text array per column unnested and cast in bulk).
//! * Reads are keyset-paginated: by key, or with `since` by `(updated_at, key)` using a row
//!   comparison that an index on `(updated_at, key)` serves; rows whose cursor is NULL follow
//!   the others in every incremental read.
//! * Writes: one transaction per batch that first marks the session
//!   (`set_config('syncctl.origin', …, true)` and `application_name = 'syncctl'`, both local to
//!   the transaction; plus `origin_column` when configured) and sets `updated_at_column` to
//!   `now()`. Bulk path: ops are grouped by kind and column set; each group of creates is
//!   one `INSERT … SELECT … FROM unnest($1::text[], …) ON CONFLICT (natural key) DO UPDATE …
//!   RETURNING` (creates without a unique natural key use a plain `INSERT`), each group of
//!   updates one `UPDATE … FROM unnest(…) … RETURNING`, deletes one
//!   `DELETE … = ANY($1) RETURNING`. If
//!   any of those statements fails because of a record (a constraint, a cast, a trigger), the
//!   transaction is rolled back and the batch replayed one record per savepoint, so only the
//!   culprits fail.

mod write;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgRow, Postgres};
use sqlx::{AssertSqlSafe, Row};
use syncctl_core::{
    BuildContext, BuildFuture, Connector, ConnectorError, ConnectorFactory, FieldSchema, FieldType,
    ObjectSchema, Page, ReadRequest, Record, RecordError, RecordKey, Sink, Source,
};

use crate::ident::{Dialect, quote};
use crate::registry::parse_settings;
use crate::settings::SqlSettings;
use crate::sql_connector::{SqlCore, auth_error, client_error, pool_options, scrub};
use crate::sql_rows::{
    DecimalDigits, ScanRow, ScanToken, SqlStats, key_value, one_line, record_from_texts, scan_page,
    sql_text, timestamp_text,
};

const KIND: &str = "postgres";
const D: Dialect = Dialect::DoubleQuote;
/// Values per `= ANY($1)` list in key reads and lookups.
const IN_CHUNK: usize = 1000;
/// Write batch cap when settings give none.
const DEFAULT_MAX_BATCH: usize = 1000;

/// Registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "PostgreSQL table (url: postgres://user@host/db, object: [schema.]table, key_column, updated_at_column)",
    build,
};

fn build(_ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let s: SqlSettings = parse_settings(KIND, settings)?;
        let c = PgConnector::new(s)?;
        Ok(Box::new(c) as Box<dyn Connector>)
    })
}

/// A PostgreSQL table as a sync source and sink.
pub struct PgConnector {
    core: SqlCore<Postgres, PgTable>,
}

impl fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("PgConnector", f)
    }
}

/// What `describe` found, in the form the SQL builders need.
#[derive(Debug)]
pub(crate) struct PgTable {
    /// The quoted, qualified table name (`"crm"."contacts"`).
    pub qtable: String,
    /// The object as the engine sees it.
    pub schema: ObjectSchema,
    /// Per field (same order): the type to cast text to, without length or precision
    /// (`character varying`, `numeric`), so that a cast never silently truncates.
    pub types: Vec<String>,
    /// Columns with a single-column, non-partial, immediate unique index: what
    /// `ON CONFLICT (col)` can name.
    pub unique: HashSet<String>,
    /// `x."a"::text, x."b"::text, …` in field order, for tables aliased `x`.
    pub select: String,
    /// `numeric(p, s)` columns: (precision, scale), checked before a write so that a value
    /// the column would round is refused instead of silently changed.
    pub digits: DecimalDigits,
}

impl PgTable {
    fn index(&self, column: &str) -> Option<usize> {
        self.schema.fields.iter().position(|f| f.name == column)
    }

    /// The cast type of a discovered column (`text` for unknown names, which never reach SQL:
    /// ops naming them are refused first).
    pub(crate) fn ty(&self, column: &str) -> &str {
        self.index(column)
            .and_then(|i| self.types.get(i))
            .map_or("text", String::as_str)
    }

    fn field_type(&self, column: &str) -> FieldType {
        self.schema
            .field(column)
            .map_or(FieldType::Text, |f| f.field_type.clone())
    }

    /// `now()` in the form the cursor column holds.
    pub(crate) fn now_expr(&self) -> &'static str {
        match self.schema.updated_at.as_deref().map(|c| self.ty(c)) {
            Some("timestamp without time zone") => "(now() AT TIME ZONE 'UTC')",
            Some("date") => "((now() AT TIME ZONE 'UTC')::date)",
            _ => "now()",
        }
    }

    /// A converted value as the text PostgreSQL's input functions read for `column`.
    pub(crate) fn text_of(&self, column: &str, v: &Value) -> Option<String> {
        if self.field_type(column) == FieldType::Json {
            return match v {
                Value::Null => None,
                // A JSON document sent as text (CSV sources) is stored as that document.
                Value::String(s) if serde_json::from_str::<Value>(s).is_ok() => Some(s.clone()),
                other => Some(other.to_string()),
            };
        }
        sql_text(v)
    }

    /// The row read as text, converted to a record.
    pub(crate) fn record(&self, row: &PgRow, offset: usize) -> Result<Record, sqlx::Error> {
        Ok(record_from_texts(&self.schema, self.texts(row, offset)?))
    }

    fn texts(&self, row: &PgRow, offset: usize) -> Result<Vec<Option<String>>, sqlx::Error> {
        (0..self.schema.fields.len())
            .map(|i| row.try_get::<Option<String>, _>(offset + i))
            .collect()
    }
}

impl PgConnector {
    /// A connector for the settings; nothing is opened until first use.
    ///
    /// # Errors
    /// A malformed URL or table name.
    pub fn new(settings: SqlSettings) -> Result<Self, ConnectorError> {
        use secrecy::ExposeSecret;
        let url = settings.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConnectorError::config(
                KIND,
                "url must start with postgres:// (postgres://user[:password]@host[:port]/database)",
            ));
        }
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            ConnectorError::config(KIND, format!("invalid url: {}", scrub(&e.to_string(), url)))
        })?;
        if !url.contains("application_name=") {
            options = options.application_name("syncctl");
        }
        let endpoint = format!(
            "postgres://{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = pool_options().connect_lazy_with(options.clone());
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
    pub(crate) async fn table(&self) -> Result<Arc<PgTable>, ConnectorError> {
        match self.core.described()? {
            Some(t) => Ok(t),
            None => self.discover().await,
        }
    }

    #[allow(clippy::too_many_lines)] // one catalog walk, kept together
    async fn discover(&self) -> Result<Arc<PgTable>, ConnectorError> {
        self.core.probe_before_first_use().await?;
        let qname = self.core.table.quoted(D);
        self.core.stats.statements(1);
        let rel = sqlx::query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1)",
        )
        .bind(&qname)
        .fetch_optional(&self.core.pool)
        .await;
        let rel = match rel {
            Ok(r) => r,
            Err(e) => return Err(self.core.explain(&e).await),
        };
        let Some(rel) = rel else {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "table {} not found in {}",
                    self.core.table, self.core.endpoint
                ),
            ));
        };
        let oid: i64 = rel.try_get(0).map_err(|e| self.core.db_error(&e))?;
        let nsp: String = rel.try_get(1).map_err(|e| self.core.db_error(&e))?;
        let relname: String = rel.try_get(2).map_err(|e| self.core.db_error(&e))?;
        let relkind: String = rel.try_get(3).map_err(|e| self.core.db_error(&e))?;
        if !matches!(relkind.as_str(), "r" | "p" | "v" | "f") {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "{} is not a table or view (relkind {relkind})",
                    self.core.table
                ),
            ));
        }
        self.core.stats.statements(1);
        let cols = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, NULL), \
                    COALESCE(bt.typname, t.typname)::text, t.typtype::text, \
                    a.attnotnull, a.atthasdef, a.attidentity::text, a.attgenerated::text, \
                    CASE WHEN a.atttypmod > 4 AND t.typname IN ('varchar', 'bpchar') \
                         THEN a.atttypmod - 4 END, \
                    CASE WHEN a.atttypmod >= 4 AND t.typname = 'numeric' \
                         THEN ((a.atttypmod - 4) >> 16) & 65535 END, \
                    CASE WHEN a.atttypmod >= 4 AND t.typname = 'numeric' \
                         THEN (a.atttypmod - 4) & 65535 END \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(oid)
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| self.core.db_error(&e))?;
        self.core.stats.statements(1);
        let indexes = sqlx::query(
            "SELECT i.indisprimary, i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL \
                    AND i.indexprs IS NULL AND i.indimmediate, \
                    ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                          ORDER BY k.o) \
             FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisunique",
        )
        .bind(oid)
        .fetch_all(&self.core.pool)
        .await
        .map_err(|e| self.core.db_error(&e))?;
        let mut pk: Vec<String> = Vec::new();
        let mut unique = HashSet::new();
        for ix in &indexes {
            let primary: bool = ix.try_get(0).map_err(|e| self.core.db_error(&e))?;
            let single: bool = ix.try_get(1).map_err(|e| self.core.db_error(&e))?;
            let names: Vec<String> = ix.try_get(2).map_err(|e| self.core.db_error(&e))?;
            if primary {
                pk.clone_from(&names);
            }
            if single && let Some(n) = names.first() {
                unique.insert(n.clone());
            }
        }
        let mut fields = Vec::with_capacity(cols.len());
        let mut types = Vec::with_capacity(cols.len());
        let mut digits = DecimalDigits::new();
        for c in &cols {
            let get_s = |i: usize| -> Result<String, ConnectorError> {
                c.try_get::<String, _>(i)
                    .map_err(|e| self.core.db_error(&e))
            };
            let name = get_s(0)?;
            let cast_type = get_s(1)?;
            let base = get_s(2)?;
            let typtype = get_s(3)?;
            let notnull: bool = c.try_get(4).map_err(|e| self.core.db_error(&e))?;
            let hasdef: bool = c.try_get(5).map_err(|e| self.core.db_error(&e))?;
            let identity = get_s(6)?;
            let generated = get_s(7)?;
            let maxlen: Option<i32> = c.try_get(8).map_err(|e| self.core.db_error(&e))?;
            let precision: Option<i32> = c.try_get(9).map_err(|e| self.core.db_error(&e))?;
            let scale: Option<i32> = c.try_get(10).map_err(|e| self.core.db_error(&e))?;
            // A negative scale (PostgreSQL 15+) shows as > 1000 here: left unchecked.
            if let (Some(p), Some(sc)) = (precision, scale)
                && let (Ok(p), Ok(sc)) = (u32::try_from(p), u32::try_from(sc))
                && sc <= p
            {
                digits.insert(name.clone(), (p, sc));
            }
            let field_type = field_type_of(&base, &typtype, &cast_type);
            fields.push(FieldSchema {
                unique: unique.contains(&name),
                nullable: !notnull,
                writable: generated.is_empty() && identity != "a",
                max_length: maxlen.and_then(|n| u32::try_from(n).ok()),
                has_default: hasdef || !identity.is_empty(),
                normalisation: Vec::new(),
                field_type,
                name,
            });
            types.push(cast_type);
        }
        let key =
            self.core
                .checked_key(&pk, &mut fields, "timestamp, timestamptz or date", "text")?;
        let generated_keys = fields.iter().any(|f| f.name == key && f.has_default);
        let select = fields
            .iter()
            .map(|f| format!("x.{}::text", quote(&f.name, D)))
            .collect::<Vec<_>>()
            .join(", ");
        let schema = self.core.object_schema(
            format!("{nsp}.{relname}"),
            key,
            fields,
            generated_keys,
            DEFAULT_MAX_BATCH,
        );
        let table = Arc::new(PgTable {
            qtable: format!("{}.{}", quote(&nsp, D), quote(&relname, D)),
            schema,
            types,
            unique,
            select,
            digits,
        });
        self.core.remember(&table);
        Ok(table)
    }

    async fn select_in(
        &self,
        t: &PgTable,
        column: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in texts.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {} FROM {} AS x WHERE x.{} = ANY(CAST($1 AS {}[])) ORDER BY x.{}",
                t.select,
                t.qtable,
                quote(column, D),
                t.ty(column),
                quote(&t.schema.key, D)
            );
            self.core.stats.statements(1);
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(chunk)
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

/// The validation type of a PostgreSQL type (its base type for domains).
fn field_type_of(base: &str, typtype: &str, cast_type: &str) -> FieldType {
    match base {
        "int2" | "int4" | "int8" | "oid" => FieldType::Integer,
        "numeric" => FieldType::Decimal,
        "float4" | "float8" => FieldType::Float,
        "bool" => FieldType::Boolean,
        "date" => FieldType::Date,
        "timestamp" | "timestamptz" => FieldType::Timestamp,
        "json" | "jsonb" => FieldType::Json,
        "uuid" => FieldType::Uuid,
        "text" | "varchar" | "bpchar" | "name" | "citext" => FieldType::Text,
        _ if typtype == "e" => FieldType::Other(format!("enum {cast_type}")),
        _ => FieldType::Other(cast_type.to_owned()),
    }
}

/// A whole-call error from sqlx, with the endpoint (never credentials) for context.
pub(crate) fn db_error(endpoint: &str, e: &sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = format!("{endpoint}: {} (SQLSTATE {code})", one_line(db.message()));
            match code.get(..2).unwrap_or_default() {
                "28" => auth_error(KIND, msg),
                "42" if code == "42501" => auth_error(KIND, msg),
                "3D" | "3F" | "42" => ConnectorError::config(KIND, msg),
                "08" | "40" | "53" | "55" | "57" | "58" => ConnectorError::unavailable(KIND, msg),
                _ => ConnectorError::failed(KIND, msg),
            }
        }
        other => client_error(KIND, endpoint, other),
    }
}

/// A statement failure: the record's fault (`Ok`: constraint, cast, trigger, lock timeout) or
/// the whole batch's (`Err`: connection, permissions).
pub(crate) fn record_error(endpoint: &str, e: &sqlx::Error) -> Result<RecordError, ConnectorError> {
    let sqlx::Error::Database(db) = e else {
        return Err(db_error(endpoint, e));
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let message = format!("{} (SQLSTATE {code})", one_line(db.message()));
    let column = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|p| p.column().map(str::to_owned));
    match code.as_str() {
        "40001" | "40P01" | "55P03" | "57014" => Ok(RecordError::transient(message)),
        "42501" => Err(db_error(endpoint, e)),
        c if matches!(
            c.get(..2).unwrap_or_default(),
            "22" | "23" | "42" | "P0" | "44" | "2F" | "39" | "0A" | "09" | "27"
        ) =>
        {
            Ok(RecordError::invalid(message, column.as_deref()))
        }
        _ => Err(db_error(endpoint, e)),
    }
}

#[async_trait::async_trait]
impl Connector for PgConnector {
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

/// The text a `since` bound is compared as, for the cursor column's type.
fn since_text(t: &PgTable, since: chrono::DateTime<chrono::Utc>) -> String {
    match t.schema.updated_at.as_deref().map(|c| t.field_type(c)) {
        Some(FieldType::Date) => since.format("%Y-%m-%d").to_string(),
        _ => timestamp_text(since),
    }
}

#[async_trait::async_trait]
impl Source for PgConnector {
    async fn read_page(
        &self,
        _schema: &ObjectSchema,
        req: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let t = self.table().await?;
        let token = ScanToken::of_request(KIND, req)?;
        let limit = req.limit.max(1);
        let key = quote(&t.schema.key, D);
        let kty = t.ty(&t.schema.key).to_owned();
        let key_idx = t.index(&t.schema.key).unwrap_or(0);
        let cursor = match (&req.since, &t.schema.updated_at) {
            (Some(since), Some(u)) if t.schema.capabilities.incremental => Some((*since, u)),
            _ => None,
        };
        // (phase, row texts) in page order.
        let mut rows: Vec<ScanRow> = Vec::new();
        let fetch = |sql: String, binds: Vec<String>, n: usize| {
            let pool = &self.core.pool;
            async move {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for b in binds {
                    q = q.bind(b);
                }
                q.bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .fetch_all(pool)
                    .await
            }
        };
        if let Some((since, u)) = cursor {
            let cur = quote(u, D);
            let cty = t.ty(u).to_owned();
            let cursor_idx = t.index(u).unwrap_or(0);
            let in_null_phase = token.as_ref().and_then(|k| k.phase.as_deref()) == Some("n");
            if !in_null_phase {
                let mut sql = format!(
                    "SELECT {} FROM {} AS x WHERE x.{cur} >= CAST($1 AS {cty})",
                    t.select, t.qtable
                );
                let mut binds = vec![since_text(&t, since)];
                if let Some(tok) = &token {
                    sql.push_str(&format!(
                        " AND (x.{cur}, x.{key}) > (CAST($2 AS {cty}), CAST($3 AS {kty}))"
                    ));
                    binds.push(tok.cursor.clone().unwrap_or_default());
                    binds.push(tok.key.clone());
                }
                let n = binds.len() + 1;
                sql.push_str(&format!(" ORDER BY x.{cur}, x.{key} LIMIT ${n}"));
                self.core.stats.statements(1);
                let got = fetch(sql, binds, limit)
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
                let mut binds = Vec::new();
                if let Some(tok) = token.as_ref().filter(|_| in_null_phase) {
                    sql.push_str(&format!(" AND x.{key} > CAST($1 AS {kty})"));
                    binds.push(tok.key.clone());
                }
                let n = binds.len() + 1;
                sql.push_str(&format!(" ORDER BY x.{key} LIMIT ${n}"));
                self.core.stats.statements(1);
                let got = fetch(sql, binds, limit - rows.len())
                    .await
                    .map_err(|e| self.core.db_error(&e))?;
                for r in &got {
                    rows.push((
                        Some("n"),
                        t.texts(r, 0).map_err(|e| self.core.db_error(&e))?,
                    ));
                }
            }
            return Ok(scan_page(
                &t.schema,
                rows,
                limit,
                Some(cursor_idx),
                key_idx,
                &self.core.stats,
            ));
        }
        let mut sql = format!("SELECT {} FROM {} AS x", t.select, t.qtable);
        let mut binds = Vec::new();
        if let Some(tok) = &token {
            sql.push_str(&format!(" WHERE x.{key} > CAST($1 AS {kty})"));
            binds.push(tok.key.clone());
        }
        let n = binds.len() + 1;
        sql.push_str(&format!(" ORDER BY x.{key} LIMIT ${n}"));
        self.core.stats.statements(1);
        let got = fetch(sql, binds, limit)
            .await
            .map_err(|e| self.core.db_error(&e))?;
        for r in &got {
            rows.push((None, t.texts(r, 0).map_err(|e| self.core.db_error(&e))?));
        }
        Ok(scan_page(
            &t.schema,
            rows,
            limit,
            None,
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
        let texts: Vec<String> = keys
            .iter()
            .filter_map(|k| key_value(&t.schema, k))
            .filter_map(|v| t.text_of(&t.schema.key, &v))
            .collect();
        self.select_in(&t, &t.schema.key, texts).await
    }

    async fn lookup(
        &self,
        _schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        let t = self.table().await?;
        let texts: Vec<String> = self
            .core
            .lookup_values(&t.schema, field, values)?
            .iter()
            .filter_map(|v| t.text_of(field, v))
            .collect();
        self.select_in(&t, field, texts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn settings_are_checked_without_touching_the_network() {
        let bad = (FACTORY.build)(
            BuildContext::new("."),
            json!({"connector": "postgres", "url": "mysql://h/db", "object": "t"}),
        )
        .await
        .err()
        .map(|e| e.to_string());
        assert!(bad.is_some_and(|m| m.contains("postgres://")));
        let unknown = (FACTORY.build)(
            BuildContext::new("."),
            json!({"connector": "postgres", "url": "postgres://h/db", "object": "t", "tabel": 1}),
        )
        .await
        .err()
        .map(|e| e.to_string());
        assert!(unknown.is_some_and(|m| m.contains("tabel")));
        let ok = (FACTORY.build)(
            BuildContext::new("."),
            json!({"connector": "postgres", "url": "postgres://u:pw@db.example.com:6543/crm",
                   "object": "crm.contacts"}),
        )
        .await
        .map(|c| c.endpoint());
        assert_eq!(
            ok.ok().as_deref(),
            Some("postgres://db.example.com:6543/crm")
        );
    }

    #[test]
    fn types_map_to_validation_types() {
        assert_eq!(field_type_of("int8", "b", "bigint"), FieldType::Integer);
        assert_eq!(
            field_type_of("timestamptz", "b", "timestamp with time zone"),
            FieldType::Timestamp
        );
        assert_eq!(
            field_type_of("varchar", "d", "email_address"),
            FieldType::Text
        );
        assert_eq!(
            field_type_of("mood", "e", "mood"),
            FieldType::Other("enum mood".into())
        );
    }
}
