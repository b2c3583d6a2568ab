//! The PostgreSQL sink: a batch in one transaction, bulk statements per group of like ops,
//! and a replay one record per savepoint when a bulk statement fails because of a record.
//!
//! A group's values travel as one text array per column, unnested and cast to the columns'
//! types inside the statement that applies them (`INSERT … SELECT … FROM unnest($1, …)`):
//! one round trip per group, no temporary table. Not `COPY`: sqlx's client socket leaves
//! Nagle's algorithm on and sends `CopyDone` as a write of its own after the data, which
//! then waits for the server's delayed acknowledgement (about 40 ms per batch on loopback,
//! measured: 45–50 ms per `COPY` of 1 000 rows, most of a batch's time).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{AssertSqlSafe, Row};
use syncctl_core::{
    ConnectorError, ObjectSchema, RecordError, Sink, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_validate::coerce::canonical_text;

use super::{D, PgConnector, PgTable};
use crate::batch_replay::{
    BatchSink, BulkError, delete_outcome, finish_bulk, matched_outcome, replay_one_by_one,
    several_matches, stored_outcome, update_of_match, write_batch,
};
use crate::ident::quote;
use crate::sql_connector::SqlCore;
use crate::sql_rows::{
    BatchPlan, CreateOp, DecimalDigits, GroupKind, Managed, Prepared, UpdateOp, managed,
    value_from_text,
};

/// Groups smaller than this are sent one statement per record inside the batch transaction.
const BULK_MIN: usize = 4;

fn key_text(t: &PgTable, v: &Value) -> Option<String> {
    canonical_text(&value_from_text(
        &t.field_type(&t.schema.key),
        t.text_of(&t.schema.key, v),
    ))
}

impl PgConnector {
    fn note(&self, n: u64) {
        self.core.stats.statements(n);
    }

    /// Marks the transaction as syncctl's (read by capture triggers).
    async fn mark(&self, conn: &mut PgConnection, ctx: &WriteContext) -> Result<(), sqlx::Error> {
        self.note(1);
        sqlx::query(
            "SELECT set_config('syncctl.origin', $1, true), \
                    set_config('application_name', 'syncctl', true)",
        )
        .bind(&ctx.origin)
        .execute(conn)
        .await
        .map(|_| ())
    }

    /// `(columns, values, binds)` of an insert of `fields` plus the managed columns.
    fn insert_parts(
        t: &PgTable,
        fields: &[(String, Value)],
        m: Managed<'_>,
        ctx: &WriteContext,
    ) -> (Vec<String>, Vec<String>, Vec<Option<String>>) {
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        let mut binds = Vec::new();
        for (n, v) in fields {
            cols.push(quote(n, D));
            binds.push(t.text_of(n, v));
            vals.push(format!("CAST(${} AS {})", binds.len(), t.ty(n)));
        }
        if let Some(c) = m.cursor {
            cols.push(quote(c, D));
            vals.push(t.now_expr().to_owned());
        }
        if let Some(o) = m.origin {
            cols.push(quote(o, D));
            binds.push(Some(ctx.origin.clone()));
            vals.push(format!("CAST(${} AS {})", binds.len(), t.ty(o)));
        }
        (cols, vals, binds)
    }

    /// `SET` items of a natural-key match: every written column but the natural key and the
    /// key, taking the value the insert would have stored.
    fn conflict_sets(t: &PgTable, cols: &[String], nk: &str) -> String {
        let skip = [quote(nk, D), quote(&t.schema.key, D)];
        let sets: Vec<String> = cols
            .iter()
            .filter(|c| !skip.contains(c))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        if sets.is_empty() {
            // Still an update, so that RETURNING reports the matched row.
            format!("{0} = EXCLUDED.{0}", quote(nk, D))
        } else {
            sets.join(", ")
        }
    }

    /// One create, one statement (plus a lookup for a natural key without a unique index).
    async fn create_row(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        c: &CreateOp,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, sqlx::Error> {
        if let Some((nk, v)) = c
            .natural_key
            .as_ref()
            .filter(|(f, _)| !t.unique.contains(f))
        {
            let sql = format!(
                "SELECT x.{key}::text FROM {q} AS x WHERE x.{f} = CAST($1 AS {ty}) LIMIT 2 FOR UPDATE",
                key = quote(&t.schema.key, D),
                q = t.qtable,
                f = quote(nk, D),
                ty = t.ty(nk)
            );
            self.note(1);
            let found = sqlx::query(AssertSqlSafe(sql))
                .bind(t.text_of(nk, v))
                .fetch_all(&mut *conn)
                .await?;
            if found.len() > 1 {
                return Ok(several_matches(nk));
            }
            if let Some(row) = found.first() {
                let text: Option<String> = row.try_get(0)?;
                let key = value_from_text(&t.field_type(&t.schema.key), text);
                let u = update_of_match(c, &t.schema.key, key);
                return Ok(matched_outcome(self.update_row(conn, t, &u, ctx).await?));
            }
        }
        let m = managed(&t.schema, &c.fields);
        let (cols, vals, binds) = Self::insert_parts(t, &c.fields, m, ctx);
        let (created, conflict) = match c.natural_key.as_ref().filter(|(f, _)| t.unique.contains(f))
        {
            Some((nk, _)) => (
                "(x.xmax = 0)",
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    quote(nk, D),
                    Self::conflict_sets(t, &cols, nk)
                ),
            ),
            None => ("true", String::new()),
        };
        let sql = if cols.is_empty() {
            format!(
                "INSERT INTO {} AS x DEFAULT VALUES RETURNING true, {}",
                t.qtable, t.select
            )
        } else {
            format!(
                "INSERT INTO {} AS x ({}) VALUES ({}){conflict} RETURNING {created}, {}",
                t.qtable,
                cols.join(", "),
                vals.join(", "),
                t.select
            )
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        self.note(1);
        let row = q.fetch_one(&mut *conn).await?;
        let created: bool = row.try_get(0)?;
        let rec = t.record(&row, 1)?;
        Ok(stored_outcome(rec, created))
    }

    /// Whether a record with this key exists (tells a stale update from a missing record).
    async fn exists(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        key: &Value,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT 1 FROM {} AS x WHERE x.{} = CAST($1 AS {})",
            t.qtable,
            quote(&t.schema.key, D),
            t.ty(&t.schema.key)
        );
        self.note(1);
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(t.text_of(&t.schema.key, key))
            .fetch_optional(&mut *conn)
            .await?
            .is_some())
    }

    /// One update, one statement (two when nothing matched and the op was conditional).
    async fn update_row(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        u: &UpdateOp,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, sqlx::Error> {
        let key = quote(&t.schema.key, D);
        let kty = t.ty(&t.schema.key);
        if u.fields.is_empty() {
            let sql = format!(
                "SELECT {} FROM {} AS x WHERE x.{key} = CAST($1 AS {kty})",
                t.select, t.qtable
            );
            self.note(1);
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(t.text_of(&t.schema.key, &u.key))
                .fetch_optional(&mut *conn)
                .await?;
            return Ok(match row {
                Some(r) => {
                    let rec = t.record(&r, 0)?;
                    stored_outcome(rec, false)
                }
                None => WriteOutcome::NotFound {
                    key: u.record_key.clone(),
                },
            });
        }
        let m = managed(&t.schema, &u.fields);
        let (cols, vals, mut binds) = Self::insert_parts(t, &u.fields, m, ctx);
        let sets: Vec<String> = cols
            .iter()
            .zip(&vals)
            .map(|(c, v)| format!("{c} = {v}"))
            .collect();
        binds.push(t.text_of(&t.schema.key, &u.key));
        let mut sql = format!(
            "UPDATE {} AS x SET {} WHERE x.{key} = CAST(${} AS {kty})",
            t.qtable,
            sets.join(", "),
            binds.len()
        );
        if let (Some(exp), Some(c)) = (u.expected, &t.schema.updated_at) {
            binds.push(Some(crate::sql_rows::timestamp_text(exp)));
            sql.push_str(&format!(
                " AND x.{} = CAST(${} AS {})",
                quote(c, D),
                binds.len(),
                t.ty(c)
            ));
        }
        sql.push_str(&format!(" RETURNING {}", t.select));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        self.note(1);
        if let Some(row) = q.fetch_optional(&mut *conn).await? {
            let rec = t.record(&row, 0)?;
            return Ok(stored_outcome(rec, false));
        }
        let stale = u.expected.is_some() && self.exists(conn, t, &u.key).await?;
        Ok(if stale {
            WriteOutcome::Stale {
                key: u.record_key.clone(),
            }
        } else {
            WriteOutcome::NotFound {
                key: u.record_key.clone(),
            }
        })
    }

    /// `(SELECT u."__o", CAST(u."c0" AS ty0) AS "<alias0>", … FROM unnest($1::int4[],
    /// $2::text[], …) AS u("__o", "c0", …))`: the ops' values as rows of the columns' types,
    /// sent as one text array per column (binds `$1`…`$n`, `n = columns + 1`).
    fn staged_rows(t: &PgTable, columns: &[(String, String)]) -> String {
        let mut arrays = vec!["$1::int4[]".to_owned()];
        let mut names = vec!["\"__o\"".to_owned()];
        let mut select = vec!["u.\"__o\"".to_owned()];
        for (i, (column, alias)) in columns.iter().enumerate() {
            arrays.push(format!("${}::text[]", i + 2));
            names.push(format!("\"c{i}\""));
            select.push(format!(
                "CAST(u.\"c{i}\" AS {}) AS {}",
                t.ty(column),
                quote(alias, D)
            ));
        }
        format!(
            "(SELECT {} FROM unnest({}) AS u({}))",
            select.join(", "),
            arrays.join(", "),
            names.join(", ")
        )
    }

    /// A group of creates: one `INSERT … SELECT … FROM unnest(…)` (upsert or plain), its
    /// stored rows joined back to the ops by the natural key (or key) they were written with.
    #[allow(clippy::too_many_arguments)]
    async fn bulk_creates(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        conflict: Option<&str>,
        cols: &[String],
        ops: &[usize],
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), sqlx::Error> {
        let staged: Vec<(String, String)> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), format!("v{i}")))
            .collect();
        let mut order: Vec<i32> = Vec::with_capacity(ops.len());
        let mut values: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(ops.len()); cols.len()];
        let mut given = Vec::new();
        for &i in ops {
            let Prepared::Create(c) = &prepared[i] else {
                continue;
            };
            if given.is_empty() {
                given.clone_from(&c.fields);
            }
            order.push(i32::try_from(i).unwrap_or(i32::MAX));
            for (column, (n, v)) in values.iter_mut().zip(&c.fields) {
                column.push(t.text_of(n, v));
            }
        }
        let m = managed(&t.schema, &given);
        let mut target: Vec<String> = cols.iter().map(|c| quote(c, D)).collect();
        let mut select: Vec<String> = (0..cols.len()).map(|i| format!("s.\"v{i}\"")).collect();
        let mut origin = None;
        if let Some(c) = m.cursor {
            target.push(quote(c, D));
            select.push(t.now_expr().to_owned());
        }
        if let Some(o) = m.origin {
            target.push(quote(o, D));
            select.push(format!("CAST(${} AS {})", cols.len() + 2, t.ty(o)));
            origin = Some(ctx.origin.clone());
        }
        let join_col = conflict.unwrap_or(&t.schema.key);
        let join_idx = cols.iter().position(|c| c == join_col).unwrap_or(0);
        let (created, on_conflict) = match conflict {
            Some(nk) => (
                "(x.xmax = 0)",
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    quote(nk, D),
                    Self::conflict_sets(t, &target, nk)
                ),
            ),
            None => ("true", String::new()),
        };
        let sql = format!(
            "WITH s AS MATERIALIZED {rows}, \
             w AS (INSERT INTO {q} AS x ({target}) SELECT {select} FROM s \
             ORDER BY s.\"__o\"{on_conflict} RETURNING {created} AS \"__created\", \
             x.{join} AS \"__match\", {columns}) \
             SELECT s.\"__o\", w.* FROM w JOIN s ON s.\"v{join_idx}\" = w.\"__match\"",
            rows = Self::staged_rows(t, &staged),
            q = t.qtable,
            target = target.join(", "),
            select = select.join(", "),
            join = quote(join_col, D),
            columns = t.select,
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(order);
        for column in values {
            q = q.bind(column);
        }
        if let Some(o) = origin {
            q = q.bind(o);
        }
        self.note(1);
        let rows = q.fetch_all(&mut *conn).await?;
        for row in &rows {
            let i: i32 = row.try_get(0)?;
            let created: bool = row.try_get(1)?;
            let rec = t.record(row, 3)?;
            out.insert(
                usize::try_from(i).unwrap_or(usize::MAX),
                stored_outcome(rec, created),
            );
        }
        for &i in ops {
            out.entry(i).or_insert_with(|| {
                WriteOutcome::Failed(RecordError::invalid(
                    "the database did not store the record (a trigger skipped it)",
                    None,
                ))
            });
        }
        Ok(())
    }

    /// A group of updates setting the same columns: one `UPDATE … FROM unnest(…)`.
    #[allow(clippy::too_many_arguments)]
    async fn bulk_updates(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        cols: &[String],
        ops: &[usize],
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), sqlx::Error> {
        let key = &t.schema.key;
        let cursor = t.schema.updated_at.as_deref();
        let mut staged = vec![(key.clone(), "__k".to_owned())];
        if let Some(c) = cursor {
            staged.push((c.to_owned(), "__e".to_owned()));
        }
        staged.extend(
            cols.iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), format!("v{i}"))),
        );
        let mut order: Vec<i32> = Vec::with_capacity(ops.len());
        let mut values: Vec<Vec<Option<String>>> =
            vec![Vec::with_capacity(ops.len()); staged.len()];
        let mut given = Vec::new();
        for &i in ops {
            let Prepared::Update(u) = &prepared[i] else {
                continue;
            };
            if given.is_empty() {
                given.clone_from(&u.fields);
            }
            order.push(i32::try_from(i).unwrap_or(i32::MAX));
            let mut column = values.iter_mut();
            if let Some(c) = column.next() {
                c.push(t.text_of(key, &u.key));
            }
            if cursor.is_some()
                && let Some(c) = column.next()
            {
                c.push(u.expected.map(crate::sql_rows::timestamp_text));
            }
            for (c, (n, v)) in column.zip(&u.fields) {
                c.push(t.text_of(n, v));
            }
        }
        let m = managed(&t.schema, &given);
        let mut sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = s.\"v{i}\"", quote(c, D)))
            .collect();
        let mut origin = None;
        if let Some(c) = m.cursor {
            sets.push(format!("{} = {}", quote(c, D), t.now_expr()));
        }
        if let Some(o) = m.origin {
            sets.push(format!(
                "{} = CAST(${} AS {})",
                quote(o, D),
                staged.len() + 2,
                t.ty(o)
            ));
            origin = Some(ctx.origin.clone());
        }
        let mut sql = format!(
            "UPDATE {} AS x SET {} FROM {} AS s WHERE x.{k} = s.\"__k\"",
            t.qtable,
            sets.join(", "),
            Self::staged_rows(t, &staged),
            k = quote(key, D)
        );
        if let Some(c) = cursor {
            sql.push_str(&format!(
                " AND (s.\"__e\" IS NULL OR x.{} = s.\"__e\")",
                quote(c, D)
            ));
        }
        sql.push_str(&format!(" RETURNING s.\"__o\", {}", t.select));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(order);
        for column in values {
            q = q.bind(column);
        }
        if let Some(o) = origin {
            q = q.bind(o);
        }
        self.note(1);
        let rows = q.fetch_all(&mut *conn).await?;
        for row in &rows {
            let i: i32 = row.try_get(0)?;
            let rec = t.record(row, 1)?;
            out.insert(
                usize::try_from(i).unwrap_or(usize::MAX),
                stored_outcome(rec, false),
            );
        }
        // Unmatched conditional updates: stale if the record exists, else missing.
        let unmatched: Vec<&UpdateOp> = ops
            .iter()
            .filter(|i| !out.contains_key(i))
            .filter_map(|&i| match &prepared[i] {
                Prepared::Update(u) => Some(u),
                _ => None,
            })
            .collect();
        let probe: Vec<String> = unmatched
            .iter()
            .filter(|u| u.expected.is_some())
            .filter_map(|u| t.text_of(key, &u.key))
            .collect();
        let mut existing = HashSet::new();
        if !probe.is_empty() {
            let sql = format!(
                "SELECT x.{k}::text FROM {} AS x WHERE x.{k} = ANY(CAST($1 AS {}[]))",
                t.qtable,
                t.ty(key),
                k = quote(key, D)
            );
            self.note(1);
            for row in sqlx::query(AssertSqlSafe(sql))
                .bind(probe)
                .fetch_all(&mut *conn)
                .await?
            {
                let text: Option<String> = row.try_get(0)?;
                existing.extend(canonical_text(&value_from_text(&t.field_type(key), text)));
            }
        }
        for &i in ops {
            if out.contains_key(&i) {
                continue;
            }
            let Prepared::Update(u) = &prepared[i] else {
                continue;
            };
            let exists = key_text(t, &u.key).is_some_and(|k| existing.contains(&k));
            out.insert(
                i,
                if u.expected.is_some() && exists {
                    WriteOutcome::Stale {
                        key: u.record_key.clone(),
                    }
                } else {
                    WriteOutcome::NotFound {
                        key: u.record_key.clone(),
                    }
                },
            );
        }
        Ok(())
    }

    /// All hard deletes of the batch in one statement.
    async fn bulk_deletes(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        ops: &[usize],
        prepared: &[Prepared],
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), sqlx::Error> {
        let key = &t.schema.key;
        let texts: Vec<String> = ops
            .iter()
            .filter_map(|&i| match &prepared[i] {
                Prepared::Delete { key: k, .. } => t.text_of(key, k),
                _ => None,
            })
            .collect();
        let sql = format!(
            "DELETE FROM {} AS x WHERE x.{k} = ANY(CAST($1 AS {}[])) RETURNING x.{k}::text",
            t.qtable,
            t.ty(key),
            k = quote(key, D)
        );
        self.note(1);
        let mut gone = HashSet::new();
        for row in sqlx::query(AssertSqlSafe(sql))
            .bind(texts)
            .fetch_all(&mut *conn)
            .await?
        {
            let text: Option<String> = row.try_get(0)?;
            gone.extend(canonical_text(&value_from_text(&t.field_type(key), text)));
        }
        for &i in ops {
            if let Prepared::Delete { record_key, key: k } = &prepared[i] {
                let deleted = key_text(t, k).is_some_and(|k| gone.contains(&k));
                out.insert(i, delete_outcome(record_key, deleted));
            }
        }
        Ok(())
    }

    async fn bulk_body(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
        plan: &BatchPlan,
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut HashMap<usize, WriteOutcome>,
    ) -> Result<(), sqlx::Error> {
        self.mark(conn, ctx).await?;
        for ((kind, cols), ops) in &plan.groups {
            match kind {
                GroupKind::Upsert(nk) => {
                    self.bulk_creates(conn, t, Some(nk), cols, ops, prepared, ctx, out)
                        .await?;
                }
                GroupKind::Insert => {
                    self.bulk_creates(conn, t, None, cols, ops, prepared, ctx, out)
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
}

impl BatchSink for PgConnector {
    type Db = Postgres;
    type Table = PgTable;

    fn core(&self) -> &SqlCore<Postgres, PgTable> {
        &self.core
    }

    fn digits<'t>(&self, t: &'t PgTable) -> &'t DecimalDigits {
        &t.digits
    }

    /// One prepared op as its own statement(s).
    async fn apply_row(
        &self,
        conn: &mut PgConnection,
        t: &PgTable,
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
                    "DELETE FROM {} AS x WHERE x.{} = CAST($1 AS {})",
                    t.qtable,
                    quote(&t.schema.key, D),
                    t.ty(&t.schema.key)
                );
                self.note(1);
                let done = sqlx::query(AssertSqlSafe(sql))
                    .bind(t.text_of(&t.schema.key, key))
                    .execute(&mut *conn)
                    .await?;
                Ok(delete_outcome(record_key, done.rows_affected() > 0))
            }
        }
    }

    /// The batch in one transaction with bulk statements.
    async fn write_bulk(
        &self,
        t: &PgTable,
        plan: &BatchPlan,
        prepared: &[Prepared],
        ctx: &WriteContext,
    ) -> Result<HashMap<usize, WriteOutcome>, BulkError> {
        self.note(1);
        let mut tx = self
            .core
            .pool
            .begin()
            .await
            .map_err(|e| BulkError::Batch(self.core.db_error(&e)))?;
        let mut out = HashMap::new();
        let body = self
            .bulk_body(&mut tx, t, plan, prepared, ctx, &mut out)
            .await
            .map_err(|e| BulkError::of(self, &e));
        finish_bulk(self, tx, body.map(|()| out)).await
    }

    /// The batch one record per savepoint: exact per-record outcomes at any cost.
    async fn write_rows(
        &self,
        t: &PgTable,
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut [Option<WriteOutcome>],
    ) -> Result<(), ConnectorError> {
        let batch = |e: &sqlx::Error| self.core.db_error(e);
        self.note(1);
        let mut tx = self.core.pool.begin().await.map_err(|e| batch(&e))?;
        self.mark(&mut tx, ctx).await.map_err(|e| batch(&e))?;
        // Deferred constraints are checked per record, not at a COMMIT that cannot say which.
        self.note(1);
        sqlx::query("SET CONSTRAINTS ALL IMMEDIATE")
            .execute(&mut *tx)
            .await
            .map_err(|e| batch(&e))?;
        replay_one_by_one(self, tx, t, prepared, ctx, out).await
    }
}

#[async_trait::async_trait]
impl Sink for PgConnector {
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
