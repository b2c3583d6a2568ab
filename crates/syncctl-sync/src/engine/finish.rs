//! The end of a run: cursors and breakers saved, unsent changes settled, the run row closed.

use chrono::Utc;
use serde_json::{Value, json};
use syncctl_core::{Classified, ConnectorError, ErrorClass};
use syncctl_http::CircuitBreaker;

use super::{Engine, fmt_time, idx, report_side};
use crate::error::SyncError;
use crate::report::{BreakerReport, CursorReport};
use crate::store::Side;

impl<'a> Engine<'a> {
    /// Saves cursors and breakers and closes the run row; returns the run's error, if any.
    pub(super) async fn finish(&mut self, result: Result<(), SyncError>) -> Option<SyncError> {
        let scanned = result.is_ok() && self.scanned;
        let mut error = result.err();
        for side in [Side::Source, Side::Target] {
            if let Some(e) = self.sides[idx(side)].blocked.take()
                && error.is_none()
            {
                error = Some(e);
            }
        }
        let failed = self.sides[0].counts.failed + self.sides[1].counts.failed;
        if error.is_none() && failed > self.cfg.max_failures {
            error = Some(SyncError::Connector(ConnectorError::failed(
                "sync",
                format!(
                    "{failed} record writes failed (max_failures is {}); see data.failed and `syncctl sync show {}`",
                    self.cfg.max_failures, self.run_id
                ),
            )));
        }
        let rejected = self.sides[0].counts.rejected + self.sides[1].counts.rejected;
        if rejected > 0 {
            self.warnings.push(format!(
                "{rejected} record{} rejected by validation and not written; see data.rejected",
                if rejected == 1 { " was" } else { "s were" }
            ));
        }
        let queued = self.report.conflicts.queued;
        if queued > 0 {
            self.warnings.push(format!(
                "{queued} conflict{} queued for review (see data.conflicts); list and resolve them with `syncctl sync conflicts list` and the same --config or --state-url",
                if queued == 1 { " is" } else { "s are" },
            ));
        }
        let real = !self.s.dry_run;
        for side in [Side::Source, Side::Target] {
            let s = &self.sides[idx(side)];
            let endpoint = s.conn.endpoint();
            let mut breaker = super::lock_breaker(&s.breaker).clone();
            // This run was the half-open probe and nothing closed or re-opened the breaker: the
            // probe succeeded unless the run failed for a reason a retry could fix.
            if breaker.state.phase == syncctl_http::BreakerPhase::HalfOpen {
                if error
                    .as_ref()
                    .is_some_and(|e| e.class() == ErrorClass::Transient)
                {
                    breaker.record_failure(Utc::now());
                } else {
                    breaker.record_success();
                }
            }
            self.report.breaker.insert(
                side.as_str().to_owned(),
                breaker_report(&endpoint, &breaker),
            );
            if real
                && s.breaker_dirty
                && let Err(e) = self.store.save_breaker(&endpoint, &breaker.state).await
            {
                self.warnings
                    .push(format!("could not save the breaker state: {e}"));
            }
            let counts = s.counts.clone();
            let before = s.cursor_before;
            // Only a side read incrementally has a cursor worth keeping.
            let max_seen = s.max_seen.filter(|_| s.schema.capabilities.incremental);
            let mut after = before;
            if real
                && scanned
                && let Some(m) = max_seen
                && before.is_none_or(|b| m > b)
            {
                if let Err(e) = self
                    .store
                    .set_cursor(&self.cfg.name, side, m, &self.run_id)
                    .await
                {
                    self.warnings
                        .push(format!("could not save the cursor: {e}"));
                } else {
                    after = Some(m);
                }
            }
            let r = report_side(&mut self.report, side);
            r.counts = counts;
            r.cursor = CursorReport {
                before: before.map(fmt_time),
                after: after.map(fmt_time),
            };
        }
        if self.s.dry_run || self.s.include_plan {
            self.report.plan = Some(std::mem::take(&mut self.plan));
        }
        if real {
            let status = match &error {
                None => "succeeded",
                Some(SyncError::Cancelled) => "cancelled",
                Some(_) => "failed",
            };
            let counts = json!({
                "source": self.report.source.counts,
                "target": self.report.target.counts,
                "conflicts": {
                    "detected": self.report.conflicts.detected,
                    "resolved": self.report.conflicts.resolved,
                    "queued": self.report.conflicts.queued,
                },
            });
            let msg = error.as_ref().map(super::stored_error);
            if let Some(m) = &msg
                && let Err(e) = self
                    .store
                    .settle_planned(&self.run_id, &format!("not sent: the run stopped ({m})"))
                    .await
            {
                self.warnings
                    .push(format!("could not settle the run's unsent changes: {e}"));
            }
            if let Err(e) = self
                .store
                .finish_run(&self.run_id, status, &counts, msg.as_deref())
                .await
            {
                self.warnings
                    .push(format!("could not record the run's end: {e}"));
            }
        }
        error
    }
}

/// The report of a breaker.
pub(super) fn breaker_report(endpoint: &str, b: &CircuitBreaker) -> BreakerReport {
    BreakerReport {
        endpoint: endpoint.to_owned(),
        phase: serde_json::to_value(b.state.phase).unwrap_or(Value::Null),
        consecutive_failures: b.state.consecutive_failures,
        next_probe_at: b.state.next_probe_at.map(fmt_time),
    }
}
