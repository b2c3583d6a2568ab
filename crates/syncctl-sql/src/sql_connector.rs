//! What the PostgreSQL and MySQL connectors hold and do alike around their SQL: connection
//! options and a lazy pool, the described table cached once, statement counters, the checks
//! that fail fast with the real cause of a connection failure, the mapping of client-side
//! sqlx errors, and the settings checks every discovered table goes through.
//!
//! Each driver module keeps what differs: its catalog queries, its SQL dialect and how its
//! server's error codes classify.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database, Executor, IntoArguments, Pool};
use syncctl_core::{
    Capabilities, ConnectorError, FieldSchema, FieldType, ObjectSchema, RecordError,
};

use syncctl_validate::coerce::coerce;

use crate::ident::TableName;
use crate::settings::SqlSettings;
use crate::sql_rows::SqlStats;

/// The connect options of a database's connections.
pub(crate) type ConnectOptionsOf<DB> = <<DB as Database>::Connection as Connection>::Options;

/// How a driver turns an sqlx error into a whole-call error, given the endpoint.
pub(crate) type DbErrorFn = fn(&str, &sqlx::Error) -> ConnectorError;

/// How a driver tells a statement failure that is a record's fault (`Ok`) from one that is the
/// whole batch's (`Err`), given the endpoint.
pub(crate) type RecordErrorFn = fn(&str, &sqlx::Error) -> Result<RecordError, ConnectorError>;

/// The state a SQL server connector keeps: one per connector, `T` being the driver's
/// described table.
pub(crate) struct SqlCore<DB: Database, T> {
    kind: &'static str,
    /// Options of the direct connections (`check`, `probe`) and of the pool.
    pub options: ConnectOptionsOf<DB>,
    /// `kind://host:port/database`: never credentials.
    pub endpoint: String,
    /// The table as the settings name it.
    pub table: TableName,
    pub settings: SqlSettings,
    pub pool: Pool<DB>,
    pub stats: SqlStats,
    described: Mutex<Option<Arc<T>>>,
    db_error: DbErrorFn,
    record_error: RecordErrorFn,
}

impl<DB: Database, T> SqlCore<DB, T> {
    /// The state of a connector built from `settings`; nothing is opened yet.
    ///
    /// # Errors
    /// A malformed table name.
    pub(crate) fn new(
        kind: &'static str,
        options: ConnectOptionsOf<DB>,
        endpoint: String,
        settings: SqlSettings,
        pool: Pool<DB>,
        db_error: DbErrorFn,
        record_error: RecordErrorFn,
    ) -> Result<Self, ConnectorError> {
        let table = TableName::parse(&settings.object)
            .map_err(|e| ConnectorError::config(kind, format!("object {e}")))?;
        Ok(Self {
            kind,
            options,
            endpoint,
            table,
            settings,
            pool,
            stats: SqlStats::default(),
            described: Mutex::new(None),
            db_error,
            record_error,
        })
    }

    /// The connector kind.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// A whole-call error from sqlx, with the endpoint (never credentials) for context.
    pub(crate) fn db_error(&self, e: &sqlx::Error) -> ConnectorError {
        (self.db_error)(&self.endpoint, e)
    }

    /// A statement failure: the record's fault (`Ok`) or the whole batch's (`Err`).
    pub(crate) fn record_error(&self, e: &sqlx::Error) -> Result<RecordError, ConnectorError> {
        (self.record_error)(&self.endpoint, e)
    }

    /// Like `db_error`, but when the pool only says it timed out (it retries refused
    /// connections until then), one direct connection attempt names the real cause.
    pub(crate) async fn explain(&self, e: &sqlx::Error) -> ConnectorError {
        if matches!(e, sqlx::Error::PoolTimedOut)
            && let Err(cause) = self.connect_direct().await
        {
            return cause;
        }
        self.db_error(e)
    }

    /// One direct connection, retried a few times on network failures (each retry logged at
    /// debug, `-v`) and bounded per try, so that an unreachable server fails within seconds
    /// naming the real cause (connection refused, DNS, TLS) instead of hanging on a
    /// black-holed address; the server's own refusals (auth, unknown database) are final.
    pub(crate) async fn connect_direct(&self) -> Result<DB::Connection, ConnectorError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let err = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                DB::Connection::connect_with(&self.options),
            )
            .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_)))) => {
                    let err = self.db_error(&e);
                    if matches!(e, sqlx::Error::Tls(_)) {
                        // A TLS mismatch does not heal on a retry.
                        return Err(err);
                    }
                    err
                }
                Ok(Err(e)) => return Err(self.db_error(&e)),
                Err(_) => ConnectorError::unavailable(
                    self.kind,
                    format!(
                        "{}: no answer within {} s (connect timeout)",
                        self.endpoint,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ),
            };
            if attempt == CONNECT_ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(
                connector = self.kind,
                attempt,
                of = CONNECT_ATTEMPTS,
                error = %err,
                "Connection failed; retrying in {} ms.",
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// Before the pool's first connection, one direct connection: an unreachable server or
    /// refused credentials fail at once with their real cause, where the pool would retry
    /// until its timeout.
    pub(crate) async fn probe_before_first_use(&self) -> Result<(), ConnectorError> {
        if self.pool.size() == 0 {
            let conn = self.connect_direct().await?;
            let _ = conn.close().await;
        }
        Ok(())
    }

    /// `Connector::check`: a direct connection and `SELECT 1`; fails fast with the real
    /// cause, where the pool would retry a refused connection until its timeout.
    pub(crate) async fn check(&self) -> Result<(), ConnectorError>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
    {
        let mut conn = self.connect_direct().await?;
        self.stats.statements(1);
        let probe = sqlx::query::<DB>("SELECT 1").execute(&mut conn).await;
        let _ = conn.close().await;
        probe.map_err(|e| self.db_error(&e))?;
        Ok(())
    }

    /// The values of a lookup on `field`, converted to its type; values that do not convert
    /// or are null match nothing and are dropped.
    ///
    /// # Errors
    /// `field` is not a column.
    pub(crate) fn lookup_values(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Value>, ConnectorError> {
        let f = schema.field(field).ok_or_else(|| {
            ConnectorError::config(
                self.kind,
                format!("{field} is not a column of {}", self.table),
            )
        })?;
        Ok(values
            .iter()
            .filter_map(|v| coerce(v, &f.field_type).ok())
            .filter(|v| !v.is_null())
            .collect())
    }

    /// The described table if `describe` ran already.
    pub(crate) fn described(&self) -> Result<Option<Arc<T>>, ConnectorError> {
        Ok(self
            .described
            .lock()
            .map_err(|_| ConnectorError::failed(self.kind, "schema cache poisoned"))?
            .clone())
    }

    /// Keeps a freshly described table for later calls.
    pub(crate) fn remember(&self, table: &Arc<T>) {
        if let Ok(mut slot) = self.described.lock() {
            *slot = Some(Arc::clone(table));
        }
    }

    /// `Debug` of the connector named `name`: endpoint and object only.
    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("endpoint", &self.endpoint)
            .field("object", &self.settings.object)
            .finish_non_exhaustive()
    }

    /// The key column (`key_column`, else the single-column primary key `pk`) after
    /// checking that every configured column exists and that the cursor and origin columns
    /// have usable types (`cursor_types` and `text_types` name them in the server's words);
    /// marks the key field unique.
    pub(crate) fn checked_key(
        &self,
        pk: &[String],
        fields: &mut [FieldSchema],
        cursor_types: &str,
        text_types: &str,
    ) -> Result<String, ConnectorError> {
        let kind = self.kind;
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let key = match (&self.settings.key_column, pk) {
            (Some(k), _) => k.clone(),
            (None, [one]) => one.clone(),
            (None, _) => {
                return Err(ConnectorError::config(
                    kind,
                    format!(
                        "table {} has no single-column primary key; set key_column",
                        self.table
                    ),
                ));
            }
        };
        for (setting, col) in self
            .settings
            .configured_columns()
            .into_iter()
            .chain([("key", key.as_str())])
        {
            if !names.contains(&col) {
                return Err(ConnectorError::config(
                    kind,
                    format!(
                        "{setting} {col:?} is not a column of {}; columns: {}",
                        self.table,
                        names.join(", ")
                    ),
                ));
            }
        }
        let type_of = |c: &str| fields.iter().find(|f| f.name == c).map(|f| &f.field_type);
        if let Some(u) = &self.settings.updated_at_column
            && !matches!(type_of(u), Some(FieldType::Timestamp | FieldType::Date))
        {
            return Err(ConnectorError::config(
                kind,
                format!("updated_at_column {u:?} must be a {cursor_types} column"),
            ));
        }
        if let Some(o) = &self.settings.origin_column
            && !matches!(type_of(o), Some(FieldType::Text))
        {
            return Err(ConnectorError::config(
                kind,
                format!("origin_column {o:?} must be a {text_types} column"),
            ));
        }
        for f in fields.iter_mut() {
            if f.name == key {
                f.unique = true;
            }
        }
        Ok(key)
    }

    /// The object as the engine sees it: the discovered fields with the configured columns
    /// and what a SQL table can do.
    pub(crate) fn object_schema(
        &self,
        object: String,
        key: String,
        fields: Vec<FieldSchema>,
        generated_keys: bool,
        default_max_batch: usize,
    ) -> ObjectSchema {
        let s = &self.settings;
        let has_cursor = s.updated_at_column.is_some();
        ObjectSchema {
            object,
            key,
            updated_at: s.updated_at_column.clone(),
            deleted: s.deleted_column.clone(),
            origin: s.origin_column.clone(),
            fields,
            capabilities: Capabilities {
                create: true,
                update: true,
                delete: true,
                archive: s.deleted_column.is_some(),
                incremental: has_cursor,
                generated_keys,
                conditional_update: has_cursor,
                returns_stored: true,
                versioned: false,
                reports_deletes: false,
                page_order: syncctl_core::PageOrder::Keyset,
            },
            max_batch: s.max_batch.unwrap_or(default_max_batch).max(1),
        }
    }
}

/// Tries of a direct connection, and how long each may take (see `SqlCore::connect_direct`).
const CONNECT_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// The pool settings of every SQL server connector: a few connections, and a bounded wait for
/// one so that an unreachable server fails instead of hanging.
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
}

/// Logs what the connector sent over its life (`SYNCCTL_LOG=syncctl_sql::stats=debug`): the
/// statement counts the benchmarks report.
impl<DB: Database, T> Drop for SqlCore<DB, T> {
    fn drop(&mut self) {
        let s = self.stats.snapshot();
        tracing::debug!(
            target: "syncctl_sql::stats",
            connector = self.kind,
            endpoint = %self.endpoint,
            object = %self.settings.object,
            statements = s.statements,
            bulk_batches = s.bulk_batches,
            row_by_row_batches = s.row_by_row_batches,
            rows_read = s.rows_read,
            rows_written = s.rows_written,
            "connector statistics"
        );
    }
}

/// A whole-call error that sqlx raised itself (no server error): connection and pool
/// failures are transient, bad options are configuration.
pub(crate) fn client_error(kind: &str, endpoint: &str, e: &sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => {
            ConnectorError::unavailable(kind, format!("{endpoint}: {e}"))
        }
        sqlx::Error::Configuration(_) => ConnectorError::config(kind, format!("{endpoint}: {e}")),
        other => ConnectorError::failed(kind, format!("{endpoint}: {other}")),
    }
}

/// An authentication or permission error of `kind`.
pub(crate) fn auth_error(kind: &str, message: String) -> ConnectorError {
    ConnectorError::Auth {
        connector: kind.to_owned(),
        message,
    }
}

/// Hides the password of a connection URL in a message about it.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    match syncctl_core::redact::url_password(url) {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_scrubbed_from_url_errors() {
        assert_eq!(
            scrub(
                "bad port in postgres://u:s3cret@h:x/db",
                "postgres://u:s3cret@h:x/db"
            ),
            "bad port in postgres://u:***@h:x/db"
        );
        assert_eq!(
            scrub("x mysql://u:pw@h", "mysql://u:pw@h"),
            "x mysql://u:***@h"
        );
        assert_eq!(scrub("no password", "postgres://u@h/db"), "no password");
    }
}
