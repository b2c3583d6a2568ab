//! The write path the PostgreSQL and MySQL sinks share: a batch is checked and converted
//! ([`prepare`]), grouped ([`plan_batch`]) and sent through the driver's bulk statements in
//! one transaction; when a bulk statement fails because of a record, the transaction is rolled
//! back and the batch replayed one record per savepoint, so that only the culprits fail.
//!
//! The drivers implement [`BatchSink`]: how a bulk transaction and a single op are sent is
//! theirs (statement shapes, session marking); what is tried in which order, how outcomes are
//! assembled and counted, and the savepoint loop are here.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::{Acquire, Database, Transaction};
use syncctl_core::{
    ConnectorError, ObjectSchema, Record, RecordError, RecordKey, WriteContext, WriteOp,
    WriteOutcome,
};
use syncctl_validate::coerce::canonical_text;

use crate::sql_connector::SqlCore;
use crate::sql_rows::{
    BatchPlan, CreateOp, DecimalDigits, Prepared, UpdateOp, check_digits, plan_batch, prepare,
};

/// Why the bulk attempt gave up.
pub(crate) enum BulkError {
    /// A record's data was refused (or the stored rows could not be matched to the ops):
    /// replay the batch record by record. The reason is only logged.
    Record(String),
    /// The batch as a whole failed.
    Batch(ConnectorError),
}

impl BulkError {
    /// A failed statement: the record's fault or the batch's.
    pub(crate) fn of<S: BatchSink + ?Sized>(sink: &S, e: &sqlx::Error) -> Self {
        match sink.core().record_error(e) {
            Ok(r) => Self::Record(r.message),
            Err(c) => Self::Batch(c),
        }
    }
}

/// A SQL server sink as the shared write path drives it.
pub(crate) trait BatchSink: Sync {
    /// The driver's database.
    type Db: Database;
    /// The driver's described table.
    type Table: Sync;
    /// The connector's state: counters, error classification.
    fn core(&self) -> &SqlCore<Self::Db, Self::Table>;

    /// The table's `decimal(p, s)` columns, checked before any SQL ([`check_digits`]).
    fn digits<'t>(&self, t: &'t Self::Table) -> &'t DecimalDigits;

    /// One prepared op as its own statement(s) on `conn`.
    fn apply_row(
        &self,
        conn: &mut <Self::Db as Database>::Connection,
        t: &Self::Table,
        p: &Prepared,
        ctx: &WriteContext,
    ) -> impl Future<Output = Result<WriteOutcome, sqlx::Error>> + Send;

    /// The batch in one transaction with bulk statements: the outcome of every op of `plan`.
    fn write_bulk(
        &self,
        t: &Self::Table,
        plan: &BatchPlan,
        prepared: &[Prepared],
        ctx: &WriteContext,
    ) -> impl Future<Output = Result<HashMap<usize, WriteOutcome>, BulkError>> + Send;

    /// The ops without an outcome in `out`, one per savepoint (usually through
    /// [`replay_one_by_one`]): exact per-record outcomes at any cost.
    fn write_rows(
        &self,
        t: &Self::Table,
        prepared: &[Prepared],
        ctx: &WriteContext,
        out: &mut [Option<WriteOutcome>],
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send;
}

/// `Sink::write` of a SQL server sink: bulk when the batch allows it, else (or after a record
/// refused the bulk statements) one record per savepoint; one outcome per op, in op order.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_batch<S: BatchSink>(
    sink: &S,
    t: &S::Table,
    schema: &ObjectSchema,
    unique: &HashSet<String>,
    ops: &[WriteOp],
    ctx: &WriteContext,
    bulk_min: usize,
) -> Result<Vec<WriteOutcome>, ConnectorError> {
    let digits = sink.digits(t);
    let prepared: Vec<Prepared> = ops
        .iter()
        .map(|op| check_digits(prepare(schema, op), digits, &schema.object))
        .collect();
    let mut out: Vec<Option<WriteOutcome>> = prepared
        .iter()
        .map(|p| match p {
            Prepared::Refused(e) => Some(WriteOutcome::Failed(e.clone())),
            Prepared::Missing(k) => Some(WriteOutcome::NotFound { key: k.clone() }),
            _ => None,
        })
        .collect();
    let stats = &sink.core().stats;
    if out.iter().any(Option::is_none) {
        let mut path = "row_by_row";
        let bulk = match plan_batch(&schema.key, unique, &prepared, &out, bulk_min) {
            Some(p) => Some(sink.write_bulk(t, &p, &prepared, ctx).await),
            None => None,
        };
        match bulk {
            Some(Ok(done)) => {
                for (i, o) in done {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(o);
                    }
                }
                stats.bulk_batch();
                path = "bulk";
            }
            Some(Err(BulkError::Batch(e))) => return Err(e),
            Some(Err(BulkError::Record(reason))) => {
                tracing::debug!(
                    connector = sink.core().kind(),
                    %reason,
                    "bulk statement refused a record; replaying the batch one record per savepoint"
                );
            }
            None => {}
        }
        if out.iter().any(Option::is_none) {
            sink.write_rows(t, &prepared, ctx, &mut out).await?;
            stats.row_by_row_batch();
        }
        let s = stats.snapshot();
        tracing::debug!(
            connector = sink.core().kind(),
            ops = ops.len(),
            path,
            statements_total = s.statements,
            "write batch applied"
        );
    }
    let outcomes: Vec<WriteOutcome> = out
        .into_iter()
        .zip(ops)
        .map(|(o, op)| {
            o.unwrap_or_else(|| {
                WriteOutcome::Failed(RecordError::transient(format!(
                    "{} was not attempted",
                    op.kind()
                )))
            })
        })
        .collect();
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, WriteOutcome::Applied { .. }))
        .count();
    stats.written(applied as u64);
    Ok(outcomes)
}

/// Ends a bulk transaction: commits it when `body` succeeded, else rolls it back and returns
/// `body`'s error.
pub(crate) async fn finish_bulk<S: BatchSink>(
    sink: &S,
    tx: Transaction<'_, S::Db>,
    body: Result<HashMap<usize, WriteOutcome>, BulkError>,
) -> Result<HashMap<usize, WriteOutcome>, BulkError> {
    sink.core().stats.statements(1);
    match body {
        Ok(out) => {
            tx.commit().await.map_err(|e| BulkError::of(sink, &e))?;
            Ok(out)
        }
        Err(err) => {
            if let Err(r) = tx.rollback().await {
                return Err(BulkError::Batch(sink.core().db_error(&r)));
            }
            Err(err)
        }
    }
}

/// Applies every op of `prepared` that has no outcome yet in its own savepoint of `tx`: a
/// record's failure rolls back only its savepoint and becomes its outcome; then commits.
pub(crate) async fn replay_one_by_one<S: BatchSink>(
    sink: &S,
    mut tx: Transaction<'_, S::Db>,
    t: &S::Table,
    prepared: &[Prepared],
    ctx: &WriteContext,
    out: &mut [Option<WriteOutcome>],
) -> Result<(), ConnectorError> {
    let batch = |e: &sqlx::Error| sink.core().db_error(e);
    let stats = &sink.core().stats;
    for (i, p) in prepared.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        stats.statements(1);
        let mut sp = Acquire::begin(&mut tx).await.map_err(|e| batch(&e))?;
        let result = sink.apply_row(&mut sp, t, p, ctx).await;
        stats.statements(1);
        match result {
            Ok(o) => {
                sp.commit().await.map_err(|e| batch(&e))?;
                out[i] = Some(o);
            }
            Err(e) => {
                sp.rollback().await.map_err(|e| batch(&e))?;
                out[i] = Some(WriteOutcome::Failed(sink.core().record_error(&e)?));
            }
        }
    }
    stats.statements(1);
    tx.commit().await.map_err(|e| batch(&e))
}

/// A stored row read back after a write: applied, with the record.
pub(crate) fn stored_outcome(rec: Record, created: bool) -> WriteOutcome {
    WriteOutcome::Applied {
        key: rec.key.clone(),
        created,
        stored: Some(rec),
    }
}

/// A hard delete: applied when the row was there, else not found.
pub(crate) fn delete_outcome(record_key: &RecordKey, deleted: bool) -> WriteOutcome {
    if deleted {
        WriteOutcome::Applied {
            key: record_key.clone(),
            created: false,
            stored: None,
        }
    } else {
        WriteOutcome::NotFound {
            key: record_key.clone(),
        }
    }
}

/// A create whose natural key matched more than one record: refused, nothing written.
pub(crate) fn several_matches(nk: &str) -> WriteOutcome {
    WriteOutcome::Failed(RecordError::invalid(
        format!("natural key {nk} matches several records"),
        Some(nk),
    ))
}

/// A create whose natural key matched the record whose key column (`key_col`) holds `key`,
/// as the update of that record with the create's other fields.
pub(crate) fn update_of_match(c: &CreateOp, key_col: &str, key: Value) -> UpdateOp {
    UpdateOp {
        record_key: RecordKey(canonical_text(&key).unwrap_or_default()),
        key,
        fields: c
            .fields
            .iter()
            .filter(|(n, _)| n != key_col)
            .cloned()
            .collect(),
        expected: None,
    }
}

/// The outcome of [`update_of_match`]'s update, reported as the create it was: not created.
pub(crate) fn matched_outcome(o: WriteOutcome) -> WriteOutcome {
    match o {
        WriteOutcome::Applied { key, stored, .. } => WriteOutcome::Applied {
            key,
            created: false,
            stored,
        },
        other => other,
    }
}
