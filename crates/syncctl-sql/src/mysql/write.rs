//! The MySQL/MariaDB sink: a batch in one transaction, records locked and looked up first,
//! one multi-row statement per group of like ops, the stored rows read back in one `SELECT`,
//! and a replay one record per savepoint when a statement fails because of a record.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::mysql::{MySql, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection, Row};
use syncctl_core::{
    ConnectorError, ObjectSchema, Record, RecordError, RecordKey, Sink, WriteContext, WriteOp,
    WriteOutcome,
};
use syncctl_validate::coerce::parse_timestamp;

use super::{Arg, D, IN_CHUNK, MAX_PARAMS, MySqlConnector, MyTable, bind, marks};
use crate::batch_replay::{
    BatchSink, BulkError, delete_outcome, finish_bulk, matched_outcome, replay_one_by_one,
    several_matches, stored_outcome, update_of_match, write_batch,
};
use crate::ident::quote;
use crate::sql_connector::SqlCore;
use crate::sql_rows::{
    BatchPlan, CreateOp, DecimalDigits, GroupKind, Managed, Prepared, UpdateOp, identity_text,
    managed, value_from_text,
};

/// Groups smaller than this are sent one record at a time inside the batch transaction: the
/// bulk path costs three statements (lock, write, read back) whatever its size.
const BULK_MIN: usize = 4;

/// Why the bulk attempt stopped.
enum Stop {
    /// A statement failed.
    Sql(sqlx::Error),
    /// The stored rows could not be matched to the ops (a collation that equates values
    /// syncctl tells apart, a trigger): replay record by record for exact outcomes.
    Unmatched(String),
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

/// The identity of a column value read back as text, comparable with [`identity_text`] of
/// the value written.
fn read_identity(t: &MyTable, column: &str, text: Option<String>) -> String {
    identity_text(&value_from_text(&t.field_type(column), text))
}

/// Rows per statement so that `params_per_row` parameters each stay under the limit.
fn rows_per_statement(params_per_row: usize) -> usize {
    (MAX_PARAMS / params_per_row.max(1)).clamp(1, IN_CHUNK)
}

impl MySqlConnector {
    fn note(&self, n: u64) {
        self.core.stats.statements(n);
    }

    /// `SELECT … FOR UPDATE` of `column IN (values)`: locks the matching rows (and, on a
    /// unique index, the gaps where missing ones would go) and returns identity → cursor
    /// text of the rows found.
    async fn lock(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        column: &str,
        values: &[&Value],
    ) -> Result<HashMap<String, Option<String>>, sqlx::Error> {
        let mut found = HashMap::new();
        let cursor = t.schema.updated_at.as_ref().map_or_else(
            || "NULL".to_owned(),
            |c| format!("CAST(x.{} AS CHAR)", quote(c, D)),
        );
        for chunk in values.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT CAST(x.{c} AS CHAR), {cursor} FROM {} AS x WHERE x.{c} IN ({}) FOR UPDATE",
                t.qtable,
                marks(chunk.len()),
                c = quote(column, D),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for v in chunk {
                q = bind(q, t.arg(column, v));
            }
            self.note(1);
            for row in q.fetch_all(&mut *conn).await? {
                let text: Option<String> = row.try_get_unchecked(0)?;
                let cur: Option<String> = row.try_get_unchecked(1)?;
                found.insert(read_identity(t, column, text), cur);
            }
        }
        Ok(found)
    }

    /// The stored rows whose `column` is one of `values`, by identity.
    async fn read_back(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        column: &str,
        values: &[&Value],
    ) -> Result<HashMap<String, Record>, sqlx::Error> {
        let mut out = HashMap::new();
        for chunk in values.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {} FROM {} AS x WHERE x.{} IN ({})",
                t.select,
                t.qtable,
                quote(column, D),
                marks(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for v in chunk {
                q = bind(q, t.arg(column, v));
            }
            self.note(1);
            for row in q.fetch_all(&mut *conn).await? {
                let rec = t.record(&row, 0)?;
                let id = identity_text(rec.fields.get(column).unwrap_or(&Value::Null));
                out.insert(id, rec);
            }
        }
        Ok(out)
    }

    /// `(columns, value expressions, args)` of one row of `fields` plus the managed columns.
    fn row_parts(
        t: &MyTable,
        fields: &[(String, Value)],
        m: Managed<'_>,
        ctx: &WriteContext,
    ) -> (Vec<String>, Vec<&'static str>, Vec<Arg>) {
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        let mut args = Vec::new();
        for (n, v) in fields {
            cols.push(quote(n, D));
            vals.push("?");
            args.push(t.arg(n, v));
        }
        if let Some(c) = m.cursor {
            cols.push(quote(c, D));
            vals.push(t.now_expr());
        }
        if let Some(o) = m.origin {
            cols.push(quote(o, D));
            vals.push("?");
            args.push(Arg::Text(ctx.origin.clone()));
        }
        (cols, vals, args)
    }

    async fn select_key(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        key: &Value,
    ) -> Result<Option<Record>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM {} AS x WHERE x.{} = ?",
            t.select,
            t.qtable,
            quote(&t.schema.key, D)
        );
        self.note(1);
        let row = bind(sqlx::query(AssertSqlSafe(sql)), t.arg(&t.schema.key, key))
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| t.record(&r, 0)).transpose()
    }

    /// One create: lookup by natural key (locked), then update or insert, then read back.
    async fn create_row(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        c: &CreateOp,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, sqlx::Error> {
        let key_col = &t.schema.key;
        if let Some((nk, v)) = &c.natural_key {
            let sql = format!(
                "SELECT CAST(x.{} AS CHAR) FROM {} AS x WHERE x.{} = ? LIMIT 2 FOR UPDATE",
                quote(key_col, D),
                t.qtable,
                quote(nk, D)
            );
            self.note(1);
            let found = bind(sqlx::query(AssertSqlSafe(sql)), t.arg(nk, v))
                .fetch_all(&mut *conn)
                .await?;
            if found.len() > 1 {
                return Ok(several_matches(nk));
            }
            if let Some(row) = found.first() {
                let text: Option<String> = row.try_get_unchecked(0)?;
                let key = value_from_text(&t.field_type(key_col), text);
                let u = update_of_match(c, key_col, key);
                return Ok(matched_outcome(self.update_row(conn, t, &u, ctx).await?));
            }
        }
        let m = managed(&t.schema, &c.fields);
        let (cols, vals, args) = Self::row_parts(t, &c.fields, m, ctx);
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.qtable,
            cols.join(", "),
            vals.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for a in args {
            q = bind(q, a);
        }
        self.note(1);
        let done = q.execute(&mut *conn).await?;
        let given = c
            .fields
            .iter()
            .find(|(n, v)| n == key_col && !v.is_null())
            .map(|(_, v)| v.clone());
        let key = match given {
            Some(k) => k,
            None if t.auto_increment => Value::from(done.last_insert_id()),
            None => {
                return Ok(WriteOutcome::Failed(RecordError::invalid(
                    format!("{key_col} is neither given nor auto_increment"),
                    Some(key_col),
                )));
            }
        };
        Ok(match self.select_key(conn, t, &key).await? {
            Some(rec) => stored_outcome(rec, true),
            None => WriteOutcome::Failed(RecordError::invalid(
                "the database did not store the record (a trigger may have skipped it)",
                None,
            )),
        })
    }

    /// One update: lock and check the record, update it, read it back.
    async fn update_row(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        u: &UpdateOp,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, sqlx::Error> {
        let key_col = &t.schema.key;
        let found = self.lock(conn, t, key_col, &[&u.key]).await?;
        let Some(cursor) = found.values().next() else {
            return Ok(WriteOutcome::NotFound {
                key: u.record_key.clone(),
            });
        };
        if let Some(exp) = u.expected
            && cursor.as_deref().and_then(parse_timestamp) != Some(exp)
        {
            return Ok(WriteOutcome::Stale {
                key: u.record_key.clone(),
            });
        }
        if !u.fields.is_empty() {
            let m = managed(&t.schema, &u.fields);
            let (cols, vals, mut args) = Self::row_parts(t, &u.fields, m, ctx);
            let sets: Vec<String> = cols
                .iter()
                .zip(&vals)
                .map(|(c, v)| format!("x.{c} = {v}"))
                .collect();
            args.push(t.arg(key_col, &u.key));
            let sql = format!(
                "UPDATE {} AS x SET {} WHERE x.{} = ?",
                t.qtable,
                sets.join(", "),
                quote(key_col, D)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in args {
                q = bind(q, a);
            }
            self.note(1);
            q.execute(&mut *conn).await?;
        }
        Ok(match self.select_key(conn, t, &u.key).await? {
            Some(rec) => stored_outcome(rec, false),
            None => WriteOutcome::NotFound {
                key: u.record_key.clone(),
            },
        })
    }

    /// A group of creates: lock and look up the natural keys, one multi-row
    /// `INSERT … ON DUPLICATE KEY UPDATE` (or plain `INSERT` for creates that carry their key),
    /// one `SELECT` of what was stored.
    #[allow(clippy::too_many_arguments)]
    async fn bulk_creates(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        conflict: Option<&str>,
        ops: &[usize],
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), Stop> {
        let creates: Vec<(usize, &CreateOp)> = ops
            .iter()
            .filter_map(|&i| match &prepared[i] {
                Prepared::Create(c) => Some((i, c)),
                _ => None,
            })
            .collect();
        let Some((_, first)) = creates.first() else {
            return Ok(());
        };
        let m = managed(&t.schema, &first.fields);
        let match_col = conflict.unwrap_or(&t.schema.key);
        let match_value = |c: &CreateOp| -> Option<Value> {
            c.fields
                .iter()
                .find(|(n, _)| n == match_col)
                .map(|(_, v)| v.clone())
        };
        let values: Vec<Value> = creates.iter().filter_map(|(_, c)| match_value(c)).collect();
        let refs: Vec<&Value> = values.iter().collect();
        let existing = match conflict {
            Some(nk) => self.lock(conn, t, nk, &refs).await?,
            None => HashMap::new(),
        };
        let (target, row_vals, _) = Self::row_parts(t, &first.fields, m, ctx);
        let per_row = row_vals.iter().filter(|v| **v == "?").count();
        let row_sql = format!("({})", row_vals.join(", "));
        let on_dup = match conflict {
            Some(nk) => {
                let guard = format!("{0} <=> VALUES({0})", quote(nk, D));
                let skip = [quote(nk, D), quote(&t.schema.key, D)];
                let sets: Vec<String> = target
                    .iter()
                    .filter(|c| !skip.contains(c))
                    .map(|c| format!("{c} = IF({guard}, VALUES({c}), {c})"))
                    .collect();
                // A duplicate on another unique column leaves that other row untouched (the
                // guard), and the op is then found missing below.
                if sets.is_empty() {
                    format!(" ON DUPLICATE KEY UPDATE {0} = {0}", quote(nk, D))
                } else {
                    format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
                }
            }
            None => String::new(),
        };
        for chunk in creates.chunks(rows_per_statement(per_row)) {
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}{on_dup}",
                t.qtable,
                target.join(", "),
                vec![row_sql.as_str(); chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (_, c) in chunk {
                let (_, _, args) = Self::row_parts(t, &c.fields, m, ctx);
                for a in args {
                    q = bind(q, a);
                }
            }
            self.note(1);
            q.execute(&mut *conn).await?;
        }
        let stored = self.read_back(conn, t, match_col, &refs).await?;
        for (i, c) in creates {
            let id = match_value(c)
                .map(|v| identity_text(&v))
                .unwrap_or_default();
            let Some(rec) = stored.get(&id) else {
                return Err(Stop::Unmatched(format!(
                    "no stored row matches the {match_col} of op {i}"
                )));
            };
            out.insert(i, stored_outcome(rec.clone(), !existing.contains_key(&id)));
        }
        Ok(())
    }

    /// A group of updates setting the same columns: lock and check, one
    /// `UPDATE … SET col = CASE key WHEN … END … WHERE key IN (…)`, one `SELECT` back.
    #[allow(clippy::too_many_arguments)]
    async fn bulk_updates(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        cols: &[String],
        ops: &[usize],
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), Stop> {
        let key_col = &t.schema.key;
        let updates: Vec<(usize, &UpdateOp)> = ops
            .iter()
            .filter_map(|&i| match &prepared[i] {
                Prepared::Update(u) => Some((i, u)),
                _ => None,
            })
            .collect();
        let keys: Vec<&Value> = updates.iter().map(|(_, u)| &u.key).collect();
        let found = self.lock(conn, t, key_col, &keys).await?;
        let mut apply = Vec::new();
        for (i, u) in &updates {
            let id = identity_text(&u.key);
            match found.get(&id) {
                None => {
                    out.insert(
                        *i,
                        WriteOutcome::NotFound {
                            key: u.record_key.clone(),
                        },
                    );
                }
                Some(cur)
                    if u.expected.is_some()
                        && cur.as_deref().and_then(parse_timestamp) != u.expected =>
                {
                    out.insert(
                        *i,
                        WriteOutcome::Stale {
                            key: u.record_key.clone(),
                        },
                    );
                }
                Some(_) => apply.push((*i, *u)),
            }
        }
        let Some((_, first)) = apply.first() else {
            return Ok(());
        };
        let m = managed(&t.schema, &first.fields);
        let kq = quote(key_col, D);
        let per_row = 1 + 2 * cols.len();
        for chunk in apply.chunks(rows_per_statement(per_row)) {
            let mut args = Vec::new();
            let mut sets = Vec::new();
            for (ci, c) in cols.iter().enumerate() {
                let whens = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
                sets.push(format!("x.{} = CASE x.{kq} {whens} END", quote(c, D)));
                for (_, u) in chunk {
                    args.push(t.arg(key_col, &u.key));
                    let v = u.fields.get(ci).map_or(&Value::Null, |(_, v)| v);
                    args.push(t.arg(c, v));
                }
            }
            if let Some(c) = m.cursor {
                sets.push(format!("x.{} = {}", quote(c, D), t.now_expr()));
            }
            if let Some(o) = m.origin {
                sets.push(format!("x.{} = ?", quote(o, D)));
                args.push(Arg::Text(ctx.origin.clone()));
            }
            for (_, u) in chunk {
                args.push(t.arg(key_col, &u.key));
            }
            let sql = format!(
                "UPDATE {} AS x SET {} WHERE x.{kq} IN ({})",
                t.qtable,
                sets.join(", "),
                marks(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in args {
                q = bind(q, a);
            }
            self.note(1);
            q.execute(&mut *conn).await?;
        }
        let applied_keys: Vec<&Value> = apply.iter().map(|(_, u)| &u.key).collect();
        let stored = self.read_back(conn, t, key_col, &applied_keys).await?;
        for (i, u) in apply {
            let Some(rec) = stored.get(&identity_text(&u.key)) else {
                return Err(Stop::Unmatched(format!(
                    "updated record {} not read back",
                    u.record_key
                )));
            };
            out.insert(i, stored_outcome(rec.clone(), false));
        }
        Ok(())
    }

    /// All hard deletes of the batch: lock to learn which exist, one `DELETE … IN (…)`.
    async fn bulk_deletes(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        ops: &[usize],
        prepared: &[Prepared],
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), Stop> {
        let key_col = &t.schema.key;
        let dels: Vec<(usize, &RecordKey, &Value)> = ops
            .iter()
            .filter_map(|&i| match &prepared[i] {
                Prepared::Delete { record_key, key } => Some((i, record_key, key)),
                _ => None,
            })
            .collect();
        let keys: Vec<&Value> = dels.iter().map(|(_, _, k)| *k).collect();
        let found = self.lock(conn, t, key_col, &keys).await?;
        let existing: Vec<&Value> = dels
            .iter()
            .filter(|(_, _, k)| found.contains_key(&identity_text(k)))
            .map(|(_, _, k)| *k)
            .collect();
        for chunk in existing.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM {} WHERE {} IN ({})",
                t.qtable,
                quote(key_col, D),
                marks(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = bind(q, t.arg(key_col, k));
            }
            self.note(1);
            q.execute(&mut *conn).await?;
        }
        for (i, record_key, k) in dels {
            let deleted = found.contains_key(&identity_text(k));
            out.insert(i, delete_outcome(record_key, deleted));
        }
        Ok(())
    }

    async fn bulk_body(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        plan: &BatchPlan,
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), Stop> {
        for ((kind, cols), ops) in &plan.groups {
            match kind {
                GroupKind::Upsert(nk) => {
                    self.bulk_creates(conn, t, Some(nk), ops, prepared, ctx, out)
                        .await?;
                }
                GroupKind::Insert => {
                    self.bulk_creates(conn, t, None, ops, prepared, ctx, out)
                        .await?;
                }
                GroupKind::Update => {
                    self.bulk_updates(conn, t, cols, ops, prepared, ctx, out)
                        .await?;
                }
            }
        }
        if !plan.deletes.is_empty() {
            self.bulk_deletes(conn, t, &plan.deletes, prepared, out)
                .await?;
        }
        for &i in &plan.singles {
            let o = self.apply_row(conn, t, &prepared[i], ctx).await?;
            out.insert(i, o);
        }
        Ok(())
    }

    /// Sets `@syncctl_origin` for the duration of `f`'s transaction on one connection and
    /// resets it after; a connection whose reset failed is closed, not returned to the pool.
    async fn with_origin<T>(
        &self,
        ctx: &WriteContext,
        body: impl AsyncFnOnce(&mut MySqlConnection) -> T,
    ) -> Result<T, ConnectorError> {
        let mut conn = self
            .core
            .pool
            .acquire()
            .await
            .map_err(|e| self.core.db_error(&e))?;
        self.note(1);
        sqlx::query("SET @syncctl_origin = ?")
            .bind(&ctx.origin)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.core.db_error(&e))?;
        let result = body(&mut conn).await;
        self.note(1);
        if sqlx::query("SET @syncctl_origin = NULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            conn.close_on_drop();
        }
        Ok(result)
    }
}

impl BatchSink for MySqlConnector {
    type Db = MySql;
    type Table = MyTable;

    fn core(&self) -> &SqlCore<MySql, MyTable> {
        &self.core
    }

    fn digits<'t>(&self, t: &'t MyTable) -> &'t DecimalDigits {
        &t.digits
    }

    /// One prepared op as its own statements.
    async fn apply_row(
        &self,
        conn: &mut MySqlConnection,
        t: &MyTable,
        p: &Prepared,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, sqlx::Error> {
        match p {
            Prepared::Refused(e) => Ok(WriteOutcome::Failed(e.clone())),
            Prepared::Missing(k) => Ok(WriteOutcome::NotFound { key: k.clone() }),
            Prepared::Create(c) => self.create_row(conn, t, c, ctx).await,
            Prepared::Update(u) => self.update_row(conn, t, u, ctx).await,
            Prepared::Delete { record_key, key } => {
                let sql = format!(
                    "DELETE FROM {} WHERE {} = ?",
                    t.qtable,
                    quote(&t.schema.key, D)
                );
                self.note(1);
                let done = bind(sqlx::query(AssertSqlSafe(sql)), t.arg(&t.schema.key, key))
                    .execute(&mut *conn)
                    .await?;
                Ok(delete_outcome(record_key, done.rows_affected() > 0))
            }
        }
    }

    /// The batch in one transaction with bulk statements.
    async fn write_bulk(
        &self,
        t: &MyTable,
        plan: &BatchPlan,
        prepared: &[Prepared],
        ctx: &WriteContext,
    ) -> Result<HashMap<usize, WriteOutcome>, BulkError> {
        let result = self
            .with_origin(ctx, async |conn: &mut MySqlConnection| {
                self.note(1);
                let mut tx = Connection::begin(&mut *conn)
                    .await
                    .map_err(|e| BulkError::Batch(self.core.db_error(&e)))?;
                let mut out = HashMap::new();
                let body = self
                    .bulk_body(&mut tx, t, plan, prepared, ctx, &mut out)
                    .await
                    .map_err(|stop| match stop {
                        Stop::Sql(e) => BulkError::of(self, &e),
                        Stop::Unmatched(why) => BulkError::Record(why),
                    });
                finish_bulk(self, tx, body.map(|()| out)).await
            })
            .await;
        match result {
            Ok(r) => r,
            Err(e) => Err(BulkError::Batch(e)),
        }
    }

    /// The batch one record per savepoint: exact per-record outcomes at any cost.
    async fn write_rows(
        &self,
        t: &MyTable,
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut [Option<WriteOutcome>],
    ) -> Result<(), ConnectorError> {
        self.with_origin(ctx, async |conn: &mut MySqlConnection| {
            self.note(1);
            let tx = Connection::begin(&mut *conn)
                .await
                .map_err(|e| self.core.db_error(&e))?;
            replay_one_by_one(self, tx, t, prepared, ctx, out).await
        })
        .await?
    }
}

#[async_trait::async_trait]
impl Sink for MySqlConnector {
    async fn write(
        &self,
        _schema: &ObjectSchema,
        ops: &[WriteOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let t = self.table().await?;
        write_batch(self, &*t, &t.schema, &t.unique, ops, ctx, BULK_MIN).await
    }
}
