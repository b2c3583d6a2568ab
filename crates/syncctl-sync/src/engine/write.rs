//! Executing a page's plan: the plan is persisted as `planned` audit rows, the writes are sent
//! per side in batches behind the breaker, read back and verified, and links, audit outcomes and
//! pending keys are committed in one transaction.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use syncctl_core::{
    Classified, ConnectorError, ErrorClass, Record, RecordKey, WriteOp, WriteOutcome,
};
use syncctl_validate::same_value;

use super::plan::{LinkAfter, OpResult, Work};
use super::tally::status_of;
use super::{Engine, fmt_time, idx};
use crate::error::SyncError;
use crate::store::{ChangeRow, CommitIds, ConflictWrite, LinkWrite, PairCommit, Side};

/// A window's commit (links, bases, audit outcomes) still running while the next window is
/// written: bulk first loads only, where no window reads what an earlier one committed.
pub(super) struct InFlight<'a> {
    works: Vec<Work>,
    commit: Pin<Box<dyn Future<Output = Result<CommitIds, SyncError>> + Send + 'a>>,
}

impl<'a> Engine<'a> {
    /// Executes one window's plan: persists it as `planned` audit rows, writes it, and commits
    /// links and outcomes. With `overlap` (a bulk first load) the commit is left running
    /// while the next window is persisted and written ([`Self::drain`] finishes it): each
    /// window's own order (plan persisted → written → committed) is what crash safety rests
    /// on, and it holds; only the next window's writes no longer wait for this commit.
    pub(super) async fn execute_works(
        &mut self,
        mut works: Vec<Work>,
        overlap: bool,
    ) -> Result<(), SyncError> {
        if works.is_empty() {
            return Ok(());
        }
        if self.s.dry_run {
            for w in &works {
                self.count_planned(w);
                let entries = self.entries(w);
                self.add_plan(entries);
            }
            return Ok(());
        }
        // 1. Persist the plan before anything is sent.
        let all: Vec<usize> = (0..works.len()).collect();
        if let Err(e) = self.persist_plan(&mut works, &all).await {
            self.drain().await?;
            return Err(e);
        }
        // 2. Write, per side, in batches. A signal or a fatal error stops between batches;
        // what was written is still committed below, what was not is recorded as skipped.
        // The previous window's commit runs meanwhile.
        let previous = self.inflight.take();
        let (mut stop, committed) = tokio::join!(self.send_ops(&mut works, &all), async move {
            match previous {
                Some(p) => Some((p.works, p.commit.await)),
                None => None,
            }
        });
        let mut failed = None;
        if let Some((done, ids)) = committed {
            match ids {
                Ok(ids) => self.tally_committed(&done, ids),
                Err(e) => failed = Some(e),
            }
        }
        // 2b. An update refused for a stale version (someone changed the record between our
        // read and our write) is re-read, merged again against the base and retried once.
        if stop.is_none()
            && let Err(e) = self.retry_stale(&mut works).await
        {
            stop = Some(e);
        }
        // 3. Link, audit and pending in one transaction.
        let commits: Vec<PairCommit> = works.iter().map(|w| self.commit_of(w)).collect();
        let store = self.store;
        let (name, run_id) = (self.cfg.name.clone(), self.run_id.clone());
        let commit = Box::pin(async move { store.commit(&name, &run_id, &commits).await });
        if overlap && stop.is_none() && failed.is_none() {
            self.inflight = Some(InFlight { works, commit });
            return Ok(());
        }
        let ids = commit.await;
        self.tally_committed(&works, ids?);
        match (failed, stop) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }

    /// Waits for the window commit left running by [`Self::execute_works`], if any.
    pub(super) async fn drain(&mut self) -> Result<(), SyncError> {
        if let Some(p) = self.inflight.take() {
            let ids = p.commit.await?;
            self.tally_committed(&p.works, ids);
        }
        Ok(())
    }

    /// Counts a committed window and adds its plan entries.
    fn tally_committed(&mut self, works: &[Work], ids: CommitIds) {
        for (w, (_, conflict_id)) in works.iter().zip(ids) {
            // Records this run created are not read back as changes later in the run.
            for op in &w.ops {
                if let (WriteOp::Create { .. }, OpResult::Applied { key, .. }) =
                    (&op.op, &op.result)
                {
                    self.processed[idx(op.side)].insert(key.as_str());
                }
            }
            self.count_done(w, conflict_id);
            // Plan entries copy every change of the record: only built when reported.
            if !self.s.include_plan {
                continue;
            }
            let mut entries = self.entries(w);
            for e in &mut entries {
                if let Some(op) = w
                    .ops
                    .iter()
                    .find(|o| Some(o.side.as_str()) == e.side && o.op.kind() == e.action)
                {
                    e.status = status_of(&op.result).to_owned();
                }
            }
            self.add_plan(entries);
        }
    }

    /// Inserts the `planned` audit rows of `works[which]` (and the rows of their rejections
    /// and queued conflicts) and notes their ids on the ops.
    async fn persist_plan(&mut self, works: &mut [Work], which: &[usize]) -> Result<(), SyncError> {
        let mut rows = Vec::new();
        let mut slots = Vec::new();
        for &wi in which {
            let w = &works[wi];
            let link_id = w.link.as_ref().map(|l| l.id);
            for (oi, op) in w.ops.iter().enumerate() {
                rows.push(ChangeRow {
                    seq: w.seq,
                    link_id,
                    side: op.side,
                    record_key: op_key(&op.op),
                    action: op.op.kind().to_owned(),
                    before: op.before.clone(),
                    after: Some(Value::Object(write_fields(&op.op))),
                    status: "planned".to_owned(),
                    error: None,
                    origin_key: w.key(op.side.other()).map(|k| k.0),
                });
                slots.push((wi, Some(oi)));
            }
            if !w.rejected.is_empty() || w.queued {
                let side = w.reject_side.unwrap_or(Side::Target);
                rows.push(ChangeRow {
                    seq: w.seq,
                    link_id,
                    side,
                    record_key: w.key(side.other()).map(|k| k.0),
                    action: if w.queued { "conflict" } else { "reject" }.to_owned(),
                    before: None,
                    after: (!w.conflict.is_empty()).then(|| json!(w.conflict)),
                    status: if w.queued { "queued" } else { "rejected" }.to_owned(),
                    error: (!w.rejected.is_empty()).then(|| w.rejected.join("; ")),
                    origin_key: None,
                });
                slots.push((wi, None));
            }
        }
        let ids = self.store.insert_changes(&self.run_id, &rows).await?;
        for ((wi, oi), id) in slots.into_iter().zip(ids) {
            match oi {
                Some(oi) => works[wi].ops[oi].change_id = Some(id),
                None => works[wi].note_change = Some(id),
            }
        }
        Ok(())
    }

    /// Sends the ops of `works[which]`, per side in batches; returns what stopped it, if
    /// anything did (a signal, a fatal connector error). Unsent ops stay `Pending`.
    async fn send_ops(&mut self, works: &mut [Work], which: &[usize]) -> Option<SyncError> {
        // A side with versioned (conditional) updates is written first: when its update comes
        // back stale, the pair's writes to the other side carry values read from a record
        // that has changed since, so they are held back and planned again with it.
        let versioned = |s: Side| self.sides[idx(s)].schema.capabilities.versioned;
        let order = if versioned(Side::Source) && !versioned(Side::Target) {
            [Side::Source, Side::Target]
        } else {
            [Side::Target, Side::Source]
        };
        for side in order {
            let mut refs: Vec<(usize, usize)> = Vec::new();
            for &wi in which {
                let other_stale = works[wi]
                    .ops
                    .iter()
                    .any(|o| o.side != side && o.result == OpResult::Stale);
                for (oi, op) in works[wi].ops.iter_mut().enumerate() {
                    if op.side != side {
                        continue;
                    }
                    if other_stale {
                        op.result = OpResult::Skipped(format!(
                            "the {} record changed while it was written; planned again from it",
                            side.other().as_str()
                        ));
                    } else {
                        refs.push((wi, oi));
                    }
                }
            }
            let batch = self.sides[idx(side)].batch;
            for chunk in refs.chunks(batch) {
                if let Err(e) = self.check_cancel() {
                    return Some(e);
                }
                // The ops are lent to the batch and put back, not cloned: a create carries
                // every value of its record.
                let ops: Vec<WriteOp> = chunk
                    .iter()
                    .map(|(wi, oi)| std::mem::replace(&mut works[*wi].ops[*oi].op, lent()))
                    .collect();
                let written = self.write_batch(side, &ops).await;
                for ((wi, oi), op) in chunk.iter().zip(ops) {
                    works[*wi].ops[*oi].op = op;
                }
                match written {
                    Ok(results) => {
                        for ((wi, oi), r) in chunk.iter().zip(results) {
                            works[*wi].ops[*oi].result = r;
                        }
                    }
                    Err(e) => return Some(e),
                }
            }
        }
        None
    }

    /// Pairs whose update came back stale: both records are read again, the pair is planned
    /// again from them against the link's base (a three-way merge that keeps the other
    /// writer's change), and the new ops are sent once. A second stale outcome fails that
    /// record (retried on the next run), never the run. The first attempt's ops stay in the
    /// audit as they ended.
    async fn retry_stale(&mut self, works: &mut [Work]) -> Result<(), SyncError> {
        let stale: Vec<usize> = works
            .iter()
            .enumerate()
            .filter(|(_, w)| w.link.is_some() && w.ops.iter().any(|o| o.result == OpResult::Stale))
            .map(|(i, _)| i)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut fresh: [HashMap<RecordKey, Record>; 2] = [HashMap::new(), HashMap::new()];
        // Source records are read raw: their lookup fields are resolved as on the first pass.
        let mut unresolved: HashMap<RecordKey, String> = HashMap::new();
        for side in [Side::Source, Side::Target] {
            let keys: Vec<RecordKey> = stale
                .iter()
                .filter_map(|&i| works[i].link.as_ref())
                .filter(|l| !super::plan::deleted_on(l, side))
                .map(|l| l.key(side).clone())
                .collect();
            if keys.is_empty() {
                continue;
            }
            let schema = self.sides[idx(side)].schema.clone();
            let mut got = self.sides[idx(side)]
                .source
                .read_keys(&schema, &keys)
                .await
                .map_err(|e| self.read_failed(side, e))?;
            self.side(side).counts.read += got.len() as u64;
            if side == Side::Source {
                self.resolve_lookups(&mut got, &mut unresolved).await?;
            }
            fresh[idx(side)].extend(got.into_iter().map(|r| (r.key.clone(), r)));
        }
        for &i in &stale {
            let old = &works[i];
            let Some(link) = old.link.clone() else {
                continue;
            };
            tracing::info!(
                sync = %self.cfg.name,
                source = %link.source_key,
                target = %link.target_key,
                "a record changed between our read and our write: merging again and retrying once"
            );
            let mut w = Work::new(old.seq);
            w.natural_key.clone_from(&old.natural_key);
            w.link = Some(link.clone());
            w.source = fresh[0].remove(&link.source_key);
            w.target = fresh[1].remove(&link.target_key);
            w.first_attempt = std::mem::take(&mut works[i].ops);
            self.plan_linked(&mut w);
            super::pair::refuse_unresolved(&mut w, &unresolved);
            works[i] = w;
        }
        self.validate_some(works, &stale);
        self.persist_plan(works, &stale).await?;
        let stop = self.send_ops(works, &stale).await;
        for &i in &stale {
            for op in &mut works[i].ops {
                if op.result == OpResult::Stale {
                    op.result = OpResult::Failed(
                        "the record changed again while it was being written (stale version twice); it is retried on the next run".to_owned(),
                    );
                }
            }
        }
        stop.map_or(Ok(()), Err)
    }

    /// Sends one batch to `side`, gated by its breaker, and verifies it by reading it back.
    pub(super) async fn write_batch(
        &mut self,
        side: Side,
        ops: &[WriteOp],
    ) -> Result<Vec<OpResult>, SyncError> {
        let now = Utc::now();
        let endpoint = self.sides[idx(side)].conn.endpoint();
        if self.sides[idx(side)].blocked.is_some() {
            return Ok(vec![
                OpResult::Skipped("circuit breaker open".to_owned());
                ops.len()
            ]);
        }
        let open = {
            let b = super::lock_breaker(&self.sides[idx(side)].breaker);
            (b.state.phase == syncctl_http::BreakerPhase::Open).then(|| {
                (
                    b.state.consecutive_failures,
                    b.state.next_probe_at.unwrap_or(now),
                )
            })
        };
        if let Some((failures, next)) = open {
            self.side(side).blocked = Some(SyncError::BreakerOpen {
                endpoint,
                failures,
                next_probe: fmt_time(next),
            });
            return Ok(vec![
                OpResult::Skipped("circuit breaker open".to_owned());
                ops.len()
            ]);
        }
        let Some(sink) = self.sides[idx(side)].sink else {
            return Ok(vec![
                OpResult::Failed("connector cannot write".to_owned());
                ops.len()
            ]);
        };
        let schema = self.sides[idx(side)].schema.clone();
        let outcome = sink.write(&schema, ops, &self.ctx).await;
        let outcomes = match outcome {
            Ok(o) if o.len() == ops.len() => o,
            Ok(o) => {
                return Err(SyncError::Connector(ConnectorError::failed(
                    self.sides[idx(side)].conn.kind(),
                    format!("returned {} outcomes for {} writes", o.len(), ops.len()),
                )));
            }
            Err(e) => {
                let class = e.class();
                // A used-up daily quota stops the run: batches already written stay committed.
                if matches!(class, ErrorClass::Config | ErrorClass::Auth) || e.is_quota_exhausted()
                {
                    return Err(e.into());
                }
                if e.is_rate_limit() {
                    // Not an outage: the breaker neither opens nor closes; retried next run.
                    return Ok(vec![OpResult::Failed(e.to_string()); ops.len()]);
                }
                self.breaker_outcome(side, false);
                let msg = e.to_string();
                return Ok(vec![OpResult::Failed(msg); ops.len()]);
            }
        };
        let mut any_applied = false;
        let mut transient = 0;
        let mut results: Vec<OpResult> = outcomes
            .into_iter()
            .map(|o| match o {
                WriteOutcome::Applied { key, stored, .. } => {
                    any_applied = true;
                    OpResult::Applied { key, stored }
                }
                WriteOutcome::Stale { .. } => OpResult::Stale,
                WriteOutcome::NotFound { .. } => OpResult::NotFound,
                WriteOutcome::Failed(e) => {
                    if e.class == ErrorClass::Transient {
                        transient += 1;
                    }
                    OpResult::Failed(e.describe())
                }
            })
            .collect();
        // A batch whose every record failed transiently and none applied is an outage.
        self.breaker_outcome(side, transient == 0 || any_applied);
        self.verify(side, ops, &mut results).await?;
        Ok(results)
    }

    /// After-write validation: what is stored must equal what was written.
    pub(super) async fn verify(
        &mut self,
        side: Side,
        ops: &[WriteOp],
        results: &mut [OpResult],
    ) -> Result<(), SyncError> {
        let schema = self.sides[idx(side)].schema.clone();
        let missing: Vec<RecordKey> = results
            .iter()
            .zip(ops)
            .filter_map(|(r, op)| match (r, op) {
                (
                    OpResult::Applied { key, stored: None },
                    WriteOp::Create { .. } | WriteOp::Update { .. },
                ) => Some(key.clone()),
                _ => None,
            })
            .collect();
        let mut fetched: HashMap<RecordKey, Record> = HashMap::new();
        if !missing.is_empty() {
            let src = self.sides[idx(side)].source;
            let got = src
                .read_keys(&schema, &missing)
                .await
                .map_err(|e| self.read_failed(side, e))?;
            fetched.extend(got.into_iter().map(|r| (r.key.clone(), r)));
        }
        for (r, op) in results.iter_mut().zip(ops) {
            let fields = match op {
                WriteOp::Create { fields, .. } | WriteOp::Update { fields, .. } => fields,
                _ => continue,
            };
            let OpResult::Applied { key, stored } = r else {
                continue;
            };
            let rec = stored.take().or_else(|| fetched.get(key).cloned());
            let Some(rec) = rec else {
                *r = OpResult::Failed("read-back after writing found no such record".to_owned());
                continue;
            };
            let mut bad = Vec::new();
            for (name, written) in fields {
                let stored_v = rec.fields.get(name).unwrap_or(&Value::Null);
                let field = schema.field(name);
                let ty = field.map(|f| f.field_type.clone());
                // Compare what the system would store: its own normalisation (HubSpot's
                // lower-cased emails, numbers as text, "" for cleared) applied to both.
                let canon = |v: &Value| {
                    let v = field.map_or_else(|| v.clone(), |f| f.normalise(v));
                    match &ty {
                        Some(t) => syncctl_validate::coerce(&v, t).unwrap_or(v),
                        None => v,
                    }
                };
                // A list of records compares on its mapped element fields only: the system
                // adds its own (QuickBooks' line ids, line numbers and subtotal line).
                let listed = self
                    .mapping
                    .fields
                    .iter()
                    .find(|f| !f.elements.is_empty() && f.name(side) == name);
                let same = match listed {
                    Some(f) => same_value(&f.canonical(stored_v), &f.canonical(written)),
                    None => same_value(&canon(stored_v), &canon(written)),
                };
                if !same {
                    bad.push(name.clone());
                }
            }
            if bad.is_empty() {
                *stored = Some(rec);
            } else {
                *r = OpResult::Failed(format!(
                    "read-back mismatch: stored value differs from the value written for {}",
                    bad.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub(super) fn commit_of(&self, w: &Work) -> PairCommit {
        let mut pc = PairCommit {
            link_id: w.link.as_ref().map(|l| l.id),
            link: LinkWrite::Keep,
            conflict: ConflictWrite::None,
            changes: Vec::new(),
            pending_add: Vec::new(),
            pending_remove: Vec::new(),
        };
        let all_applied = w
            .ops
            .iter()
            .all(|o| matches!(o.result, OpResult::Applied { .. }));
        let first_attempt = w.first_attempt.iter().map(|op| {
            let stale = op.result == OpResult::Stale;
            (op, stale)
        });
        let this_attempt = w.ops.iter().map(|op| (op, false));
        for (op, first_stale) in first_attempt.chain(this_attempt) {
            let (status, error, key) = match &op.result {
                OpResult::Stale if first_stale => (
                    "stale",
                    Some(
                        "changed between our read and our write; read again, merged and retried"
                            .to_owned(),
                    ),
                    None,
                ),
                OpResult::Applied { key, .. } => ("applied", None, Some(key.0.clone())),
                OpResult::Failed(e) => ("failed", Some(e.clone()), None),
                OpResult::Stale => (
                    "stale",
                    Some("changed since it was read; retried next run".to_owned()),
                    None,
                ),
                OpResult::NotFound => (
                    "not_found",
                    Some("the record no longer exists".to_owned()),
                    None,
                ),
                OpResult::Skipped(why) => ("skipped", Some(why.clone()), None),
                OpResult::Pending => ("skipped", Some("not sent".to_owned()), None),
            };
            if let Some(id) = op.change_id {
                pc.changes.push((id, status.to_owned(), error, key));
            }
        }
        let keys: Vec<(Side, RecordKey)> = [Side::Source, Side::Target]
            .into_iter()
            .filter_map(|s| w.record(s).map(|r| (s, r.key.clone())))
            .collect();
        if !w.rejected.is_empty() {
            for (s, k) in &keys {
                pc.pending_add
                    .push((*s, k.clone(), "rejected by validation".to_owned()));
            }
            return pc;
        }
        if !all_applied {
            for (s, k) in &keys {
                pc.pending_add
                    .push((*s, k.clone(), "write failed or skipped".to_owned()));
            }
            return pc;
        }
        for (s, k) in &keys {
            pc.pending_remove.push((*s, k.clone()));
        }
        // Keys of records this pair created.
        let mut created: HashMap<Side, (&RecordKey, Option<&Record>)> = HashMap::new();
        for op in &w.ops {
            if let (WriteOp::Create { .. }, OpResult::Applied { key, stored }) =
                (&op.op, &op.result)
            {
                created.insert(op.side, (key, stored.as_ref()));
            }
        }
        let key_of = |side: Side| -> Option<RecordKey> {
            created
                .get(&side)
                .map(|(k, _)| (*k).clone())
                .or_else(|| w.key(side))
        };
        let time_of = |side: Side| -> Option<DateTime<Utc>> {
            w.ops
                .iter()
                .filter(|o| o.side == side)
                .find_map(|o| match &o.result {
                    OpResult::Applied {
                        stored: Some(r), ..
                    } => r.updated_at,
                    _ => None,
                })
                .or_else(|| w.record(side).and_then(|r| r.updated_at))
        };
        match &w.link_after {
            LinkAfter::Keep => {}
            LinkAfter::Remove => {
                if let Some(l) = &w.link {
                    pc.link = LinkWrite::Remove(l.id);
                }
            }
            LinkAfter::Tombstone(side) => {
                if let Some(l) = &w.link {
                    pc.link = LinkWrite::Upsert {
                        id: Some(l.id),
                        source_key: l.source_key.clone(),
                        target_key: l.target_key.clone(),
                        natural_key: None,
                        base: l.base.clone(),
                        source_updated_at: None,
                        target_updated_at: None,
                        source_deleted: l.source_deleted || *side == Side::Source,
                        target_deleted: l.target_deleted || *side == Side::Target,
                    };
                }
            }
            LinkAfter::Set(base) => {
                let mut base = base.clone();
                // A created record's fields that were not written take the stored value.
                for (side, (_, stored)) in &created {
                    if let Some(r) = stored {
                        let p = self.mapping.project(*side, r);
                        for f in &self.mapping.fields {
                            if !base.contains_key(&f.canon)
                                && let Some(v) = p.values.get(&f.canon)
                            {
                                base.insert(f.canon.clone(), v.clone());
                            }
                        }
                    }
                }
                if let (Some(sk), Some(tk)) = (key_of(Side::Source), key_of(Side::Target)) {
                    pc.link = LinkWrite::Upsert {
                        id: w.link.as_ref().map(|l| l.id),
                        source_key: sk,
                        target_key: tk,
                        natural_key: w.natural_key.clone(),
                        base,
                        source_updated_at: time_of(Side::Source),
                        target_updated_at: time_of(Side::Target),
                        source_deleted: false,
                        target_deleted: false,
                    };
                }
            }
        }
        if w.queued {
            pc.conflict = ConflictWrite::Open {
                fields: json!(w.conflict),
                strategy: self.cfg.conflict_strategy.as_str().to_owned(),
                source_key: key_of(Side::Source).map(|k| k.0).unwrap_or_default(),
                target_key: key_of(Side::Target).map(|k| k.0).unwrap_or_default(),
            };
            // Re-read on every run until resolved; the conflict row drives that.
            pc.pending_remove.clear();
        } else if let Some(status) = w.close_conflict {
            pc.conflict = ConflictWrite::Close { status };
        } else if !w.conflict.is_empty() {
            pc.conflict = ConflictWrite::Settled {
                fields: json!(w.conflict),
                strategy: self.cfg.conflict_strategy.as_str().to_owned(),
                source_key: key_of(Side::Source).map(|k| k.0).unwrap_or_default(),
                target_key: key_of(Side::Target).map(|k| k.0).unwrap_or_default(),
            };
        }
        pc
    }
}

/// A placeholder for an op lent to a batch (allocates nothing).
fn lent() -> WriteOp {
    WriteOp::Delete {
        key: RecordKey(String::new()),
    }
}

/// The key an operation writes to (none for a create: the target assigns it).
pub(super) fn op_key(op: &WriteOp) -> Option<String> {
    match op {
        WriteOp::Create { .. } => None,
        WriteOp::Update { key, .. } | WriteOp::Delete { key } | WriteOp::Archive { key } => {
            Some(key.0.clone())
        }
    }
}

/// The fields an operation writes, as the JSON object audited with it.
pub(super) fn write_fields(op: &WriteOp) -> serde_json::Map<String, Value> {
    match op {
        WriteOp::Create { fields, .. } | WriteOp::Update { fields, .. } => {
            fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        _ => serde_json::Map::new(),
    }
}
