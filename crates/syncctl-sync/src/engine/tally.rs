//! Counting and reporting: per-side counts, the capped lists of rejected, failed and conflicting
//! records, and the plan entries of the report.

use std::collections::BTreeMap;

use syncctl_core::WriteOp;

use super::Engine;
use super::plan::{LinkAfter, OpResult, Work};
use super::write::op_key;
use crate::report::{ConflictItem, FailedItem, LIST_CAP, PlanEntry, RejectedItem};
use crate::store::Side;

impl<'a> Engine<'a> {
    /// Adds plan entries up to the limit; the rest are only counted, so a plan of a million
    /// records does not have to fit in memory or in one result line.
    pub(super) fn add_plan(&mut self, entries: Vec<PlanEntry>) {
        for e in entries {
            if self.s.plan_limit == 0 || self.plan.len() < self.s.plan_limit {
                self.plan.push(e);
            } else {
                self.report.plan_omitted += 1;
            }
        }
    }

    pub(super) fn entry(&self, w: &Work, action: &'static str, side: Option<Side>) -> PlanEntry {
        PlanEntry {
            seq: w.seq,
            action,
            side: side.map(Side::as_str),
            source_key: w.key(Side::Source).map(|k| k.0),
            target_key: w.key(Side::Target).map(|k| k.0),
            natural_key: w.natural_key.clone(),
            changes: BTreeMap::new(),
            conflict: BTreeMap::new(),
            reasons: Vec::new(),
            status: "planned".to_owned(),
        }
    }

    /// Plan entries of a work item (before execution).
    pub(super) fn entries(&self, w: &Work) -> Vec<PlanEntry> {
        let mut out = Vec::new();
        if !w.rejected.is_empty() {
            let mut e = self.entry(w, "rejected", w.reject_side);
            e.reasons.clone_from(&w.rejected);
            e.status = "rejected".to_owned();
            out.push(e);
            return out;
        }
        if !w.conflict.is_empty() {
            let mut e = self.entry(w, "conflict", None);
            e.conflict.clone_from(&w.conflict);
            e.status = if w.queued { "queued" } else { "resolved" }.to_owned();
            out.push(e);
        }
        for op in &w.ops {
            let mut e = self.entry(w, op.op.kind(), Some(op.side));
            e.changes.clone_from(&op.changes);
            out.push(e);
        }
        if let Some(reason) = &w.skip
            && w.gone.is_none()
        {
            let mut e = self.entry(w, "skip", None);
            e.reasons.push(reason.clone());
            e.status = "skipped".to_owned();
            out.push(e);
        }
        if w.ops.is_empty()
            && w.link.is_none()
            && w.conflict.is_empty()
            && matches!(w.link_after, LinkAfter::Set(_))
        {
            let mut e = self.entry(w, "link", None);
            e.status = "linked".to_owned();
            out.push(e);
        }
        out
    }

    pub(super) fn count_planned(&mut self, w: &Work) {
        self.count(w, None, true);
    }

    pub(super) fn count_done(&mut self, w: &Work, conflict_id: Option<i64>) {
        self.count(w, conflict_id, false);
    }

    pub(super) fn count(&mut self, w: &Work, conflict_id: Option<i64>, planned: bool) {
        if !w.rejected.is_empty() {
            let side = w.reject_side.unwrap_or(Side::Target);
            self.side(side).counts.rejected += 1;
            if self.report.rejected.len() < LIST_CAP {
                let from = side.other();
                self.report.rejected.push(RejectedItem {
                    id: w.note_change,
                    side: side.as_str(),
                    record: format!(
                        "{}:{}",
                        from.as_str(),
                        w.key(from).map(|k| k.0).unwrap_or_default()
                    ),
                    natural_key: w.natural_key.clone(),
                    reasons: w.rejected.clone(),
                });
            }
            return;
        }
        if !w.conflict.is_empty() {
            self.report.conflicts.detected += 1;
            if w.queued {
                self.report.conflicts.queued += 1;
            } else {
                self.report.conflicts.resolved += 1;
            }
            if self.report.conflicts.items.len() < LIST_CAP {
                let outcome = if w.queued {
                    "queued".to_owned()
                } else {
                    w.conflict
                        .values()
                        .next()
                        .and_then(|c| c.winner)
                        .unwrap_or("resolution")
                        .to_owned()
                };
                self.report.conflicts.items.push(ConflictItem {
                    id: conflict_id,
                    source_key: w.key(Side::Source).map(|k| k.0).unwrap_or_default(),
                    target_key: w.key(Side::Target).map(|k| k.0).unwrap_or_default(),
                    outcome,
                    fields: w.conflict.clone(),
                });
            }
        }
        for op in &w.ops {
            let applied = planned || matches!(op.result, OpResult::Applied { .. });
            let failed = matches!(op.result, OpResult::Failed(_));
            let s = self.side(op.side);
            if applied {
                match &op.op {
                    WriteOp::Create { .. } => s.counts.created += 1,
                    WriteOp::Update { .. } => s.counts.updated += 1,
                    WriteOp::Delete { .. } | WriteOp::Archive { .. } => s.counts.deleted += 1,
                }
            } else if failed {
                s.counts.failed += 1;
                if self.report.failed.len() < LIST_CAP
                    && let OpResult::Failed(e) = &op.result
                {
                    let key = op_key(&op.op).unwrap_or_else(|| {
                        w.key(op.side.other())
                            .map(|k| format!("{}:{}", op.side.other().as_str(), k))
                            .unwrap_or_default()
                    });
                    self.report.failed.push(FailedItem {
                        id: op.change_id,
                        side: op.side.as_str(),
                        action: op.op.kind(),
                        key,
                        error: e.clone(),
                    });
                }
            }
        }
    }
}

/// The plan status of a write outcome.
pub(super) fn status_of(r: &OpResult) -> &'static str {
    match r {
        OpResult::Pending => "planned",
        OpResult::Applied { .. } => "applied",
        OpResult::Failed(_) => "failed",
        OpResult::Stale => "stale",
        OpResult::NotFound => "not_found",
        OpResult::Skipped(_) => "skipped",
    }
}
