//! Deletes: detecting records gone from a side, the mass-delete guard, then deleting or
//! archiving the survivors.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;
use syncctl_core::{ReadRequest, RecordKey, WriteOp};

use super::plan::{LinkAfter, Op, OpResult, Work};
use super::tally::status_of;
use super::write::op_key;
use super::{Engine, PAGE, idx};
use crate::config::DeletePolicy;
use crate::error::SyncError;
use crate::store::{ChangeRow, PairCommit, Side};

impl<'a> Engine<'a> {
    /// Full key scans of the sides whose deletions propagate: linked keys no longer present
    /// (confirmed by a read by key) are deletion candidates. A side that reports deletes
    /// itself ([`syncctl_core::Capabilities::reports_deletes`]) is read incrementally instead,
    /// once it has a cursor (and unless `--full-refresh`): the linked records it reports
    /// deleted since then are the candidates, confirmed the same way.
    pub(super) async fn detect_deletes(&mut self) -> Result<(), SyncError> {
        let name = self.cfg.name.clone();
        for gone in [Side::Source, Side::Target] {
            let flows = match gone {
                Side::Source => self.cfg.direction.to_target(),
                Side::Target => self.cfg.direction.to_source(),
            };
            if !flows {
                continue;
            }
            let mut linked = self.store.linked_keys(&name, gone).await?;
            if linked.is_empty() {
                continue;
            }
            let src = self.sides[idx(gone)].source;
            let schema = self.sides[idx(gone)].schema.clone();
            let caps = schema.capabilities;
            let reported_since = self.sides[idx(gone)]
                .cursor_before
                .filter(|_| caps.reports_deletes && caps.incremental && !self.s.full_refresh)
                .map(|c| {
                    c - chrono::Duration::from_std(self.cfg.overlap)
                        .unwrap_or(chrono::Duration::zero())
                });
            let mut req = ReadRequest {
                since: reported_since,
                after: None,
                limit: PAGE * 4,
                keys_only: true,
            };
            let mut seen = 0u64;
            let mut reported: BTreeMap<RecordKey, i64> = BTreeMap::new();
            loop {
                self.check_cancel()?;
                let page = src
                    .read_page(&schema, &req)
                    .await
                    .map_err(|e| self.read_failed(gone, e))?;
                seen += page.records.len() as u64;
                for r in &page.records {
                    if reported_since.is_some() {
                        if r.deleted
                            && let Some(id) = linked.get(&r.key)
                        {
                            reported.insert(r.key.clone(), *id);
                        }
                    } else if !r.deleted {
                        linked.remove(&r.key);
                    }
                }
                match page.next {
                    Some(t) => req.after = Some(t),
                    None => break,
                }
            }
            if reported_since.is_some() {
                // Only what the source reported deleted is a candidate; an incremental read
                // that returns nothing means nothing changed, not an empty side.
                linked = reported.into_iter().collect();
            } else if seen == 0 {
                self.empty_sides.insert(gone);
                self.warnings.push(format!(
                    "the {} returned no records at all; an empty read never deletes, so deletes were skipped",
                    gone.as_str()
                ));
                continue;
            }
            let cands: Vec<RecordKey> = linked.keys().cloned().collect();
            if cands.is_empty() {
                continue;
            }
            let still = src
                .read_keys(&schema, &cands)
                .await
                .map_err(|e| self.read_failed(gone, e))?;
            let alive: HashSet<RecordKey> = still
                .into_iter()
                .filter(|r| !r.deleted)
                .map(|r| r.key)
                .collect();
            let ids: Vec<i64> = linked
                .iter()
                .filter(|(k, _)| !alive.contains(*k))
                .map(|(_, id)| *id)
                .filter(|id| !self.delete_links.contains(id))
                .collect();
            for l in self.store.links_by_id(&name, &ids).await? {
                self.delete_links.insert(l.id);
                self.deletes.push((l, gone));
            }
        }
        Ok(())
    }

    /// The mass-delete guard: refuses (exit 2) when more than `max_delete_fraction` of a
    /// side's linked records are about to be deleted. Runs right after [`Self::detect_deletes`],
    /// before the first write, and again before the deletes (records found soft-deleted by the
    /// scan count too).
    pub(super) async fn guard_deletes(&mut self) -> Result<(), SyncError> {
        if self.deletes.is_empty() {
            return Ok(());
        }
        let name = self.cfg.name.clone();
        // An empty read never deletes, however the deletion was noticed.
        let empty = self.empty_sides.clone();
        self.deletes.retain(|(_, gone)| !empty.contains(gone));
        for gone in [Side::Source, Side::Target] {
            let count = self.deletes.iter().filter(|(_, s)| *s == gone).count();
            if count == 0 {
                continue;
            }
            let linked = self.store.linked_keys(&name, gone).await?.len().max(count);
            let frac = count as f64 / linked as f64;
            if frac > self.cfg.max_delete_fraction {
                let suggest = ((frac * 100.0).ceil() / 100.0).min(1.0);
                return Err(SyncError::MassDelete {
                    side: gone.as_str(),
                    count,
                    linked,
                    percent: frac * 100.0,
                    max: self.cfg.max_delete_fraction * 100.0,
                    suggest: format!("{suggest:.2}"),
                });
            }
        }
        Ok(())
    }

    /// The mass-delete guard once more, then the deletes.
    pub(super) async fn apply_deletes(&mut self) -> Result<(), SyncError> {
        self.guard_deletes().await?;
        if self.deletes.is_empty() {
            return Ok(());
        }
        let deletes = std::mem::take(&mut self.deletes);
        let mut works = Vec::new();
        for (link, gone) in deletes {
            let survivor = gone.other();
            let seq = self.next_seq();
            let mut w = Work::new(seq);
            w.natural_key.clone_from(&link.natural_key);
            let key = link.key(survivor).clone();
            let op = match self.cfg.deletes {
                DeletePolicy::Archive => WriteOp::Archive { key: key.clone() },
                _ => WriteOp::Delete { key: key.clone() },
            };
            w.ops.push(Op {
                side: survivor,
                op,
                changes: BTreeMap::new(),
                before: Some(json!(link.base)),
                change_id: None,
                result: OpResult::Pending,
            });
            w.link_after = LinkAfter::Remove;
            if self.open_conflicts.contains(&link.id) {
                w.close_conflict = Some("superseded");
            }
            w.link = Some(link);
            works.push(w);
        }
        // A delete that finds nothing is done too: both records are gone.
        self.execute_deletes(works).await
    }

    pub(super) async fn execute_deletes(&mut self, mut works: Vec<Work>) -> Result<(), SyncError> {
        for w in &mut works {
            for op in &mut w.ops {
                op.result = OpResult::Pending;
            }
        }
        if self.s.dry_run {
            for w in &works {
                self.count_planned(w);
                let e = self.entries(w);
                self.add_plan(e);
            }
            return Ok(());
        }
        let rows: Vec<ChangeRow> = works
            .iter()
            .flat_map(|w| {
                w.ops.iter().map(move |op| ChangeRow {
                    seq: w.seq,
                    link_id: w.link.as_ref().map(|l| l.id),
                    side: op.side,
                    record_key: op_key(&op.op),
                    action: op.op.kind().to_owned(),
                    before: op.before.clone(),
                    after: None,
                    status: "planned".to_owned(),
                    error: None,
                    origin_key: w.link.as_ref().map(|l| l.key(op.side.other()).0.clone()),
                })
            })
            .collect();
        let ids = self.store.insert_changes(&self.run_id, &rows).await?;
        let mut it = ids.into_iter();
        for w in &mut works {
            for op in &mut w.ops {
                op.change_id = it.next();
            }
        }
        let mut stop: Option<SyncError> = None;
        'sides: for side in [Side::Target, Side::Source] {
            let refs: Vec<usize> = works
                .iter()
                .enumerate()
                .filter(|(_, w)| w.ops[0].side == side)
                .map(|(i, _)| i)
                .collect();
            let batch = self.sides[idx(side)].batch;
            for chunk in refs.chunks(batch) {
                if let Err(e) = self.check_cancel() {
                    stop = Some(e);
                    break 'sides;
                }
                let ops: Vec<WriteOp> = chunk.iter().map(|i| works[*i].ops[0].op.clone()).collect();
                let results = match self.write_batch(side, &ops).await {
                    Ok(r) => r,
                    Err(e) => {
                        stop = Some(e);
                        break 'sides;
                    }
                };
                for (i, r) in chunk.iter().zip(results) {
                    works[*i].ops[0].result = match r {
                        OpResult::NotFound => OpResult::Applied {
                            key: RecordKey(op_key(&works[*i].ops[0].op).unwrap_or_default()),
                            stored: None,
                        },
                        other => other,
                    };
                }
            }
        }
        let commits: Vec<PairCommit> = works.iter().map(|w| self.commit_of(w)).collect();
        let ids = self
            .store
            .commit(&self.cfg.name, &self.run_id, &commits)
            .await?;
        for (w, (_, cid)) in works.iter().zip(ids) {
            self.count_done(w, cid);
            if self.s.include_plan {
                let mut e = self.entries(w);
                for x in &mut e {
                    x.status = status_of(&w.ops[0].result).to_owned();
                }
                self.add_plan(e);
            }
        }
        stop.map_or(Ok(()), Err)
    }
}
