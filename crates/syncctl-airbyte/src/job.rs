//! Jobs as both APIs describe them, normalised, and the one table that maps Airbyte's job
//! states to what syncctl does about them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a job state means for a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not finished: keep waiting.
    Active,
    /// Finished and succeeded.
    Succeeded,
    /// Finished and failed.
    Failed,
    /// Finished because it was cancelled.
    Cancelled,
}

impl Phase {
    /// Whether the job is finished.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        self != Self::Active
    }
}

/// Every job state Airbyte documents (config and public API share the enum), what it means,
/// and how it is described in logs. Anything not listed is treated as still active, with a
/// warning: new states must never fail a task that is otherwise fine (the anchors crash on
/// `queued`).
pub const JOB_STATES: [(&str, Phase, &str); 7] = [
    ("pending", Phase::Active, "waiting to start"),
    (
        "queued",
        Phase::Active,
        "queued, waiting for workspace capacity",
    ),
    ("running", Phase::Active, "running"),
    (
        "incomplete",
        Phase::Active,
        "an attempt failed and Airbyte is retrying it",
    ),
    ("succeeded", Phase::Succeeded, "succeeded"),
    ("failed", Phase::Failed, "failed"),
    ("cancelled", Phase::Cancelled, "cancelled"),
];

/// The phase of a raw state, and whether the state is one Airbyte documents.
#[must_use]
pub fn phase_of(state: &str) -> (Phase, bool) {
    let s = state.trim().to_ascii_lowercase();
    JOB_STATES
        .iter()
        .find(|(name, _, _)| *name == s)
        .map_or((Phase::Active, false), |(_, phase, _)| (*phase, true))
}

/// A human description of a raw state.
#[must_use]
pub fn describe_state(state: &str) -> String {
    let s = state.trim().to_ascii_lowercase();
    JOB_STATES
        .iter()
        .find(|(name, _, _)| *name == s)
        .map_or_else(
            || {
                format!(
                    "in state {state:?}, which syncctl does not know; treating it as still running"
                )
            },
            |(_, _, text)| (*text).to_owned(),
        )
}

/// Per-stream counters (config API only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// The stream name.
    pub stream: String,
    /// The stream namespace, if any.
    pub namespace: Option<String>,
    /// Records read from the source.
    pub records_emitted: Option<u64>,
    /// Records written to the destination.
    pub records_committed: Option<u64>,
    /// Bytes read from the source.
    pub bytes_emitted: Option<u64>,
    /// Bytes written to the destination.
    pub bytes_committed: Option<u64>,
    /// Records the destination rejected.
    pub records_rejected: Option<u64>,
}

/// A job, with what either API tells about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job id.
    pub id: i64,
    /// The connection the job syncs (empty when the API did not say).
    pub connection_id: String,
    /// Airbyte's state, as sent (`running`, `succeeded`, …).
    pub status: String,
    /// When the job was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When the job started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// How many attempts it made (config API only).
    pub attempts: Option<u32>,
    /// Records synced (committed) so far.
    pub records_synced: Option<u64>,
    /// Bytes synced (committed) so far.
    pub bytes_synced: Option<u64>,
    /// How long it ran, as Airbyte reports it.
    pub duration: Option<Duration>,
    /// Why it failed, from the last failed attempt (config API only).
    pub failure_reason: Option<String>,
    /// Per-stream counters (config API only).
    pub streams: Vec<StreamStats>,
}

impl Job {
    /// A job known only by id and state.
    #[must_use]
    pub fn new(id: i64, connection_id: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            id,
            connection_id: connection_id.into(),
            status: status.into(),
            created_at: None,
            started_at: None,
            updated_at: None,
            attempts: None,
            records_synced: None,
            bytes_synced: None,
            duration: None,
            failure_reason: None,
            streams: Vec::new(),
        }
    }

    /// What the state means.
    #[must_use]
    pub fn phase(&self) -> Phase {
        phase_of(&self.status).0
    }

    /// Whether the state is one Airbyte documents.
    #[must_use]
    pub fn state_is_known(&self) -> bool {
        phase_of(&self.status).1
    }

    /// When the job began: its start time, else its creation time.
    #[must_use]
    pub fn began_at(&self) -> Option<DateTime<Utc>> {
        self.started_at.or(self.created_at)
    }

    /// How long the job ran: what Airbyte says, else last update (or `now` while it runs)
    /// minus its start.
    #[must_use]
    pub fn duration_at(&self, now: DateTime<Utc>) -> Option<Duration> {
        if let Some(d) = self.duration {
            return Some(d);
        }
        let began = self.began_at()?;
        let end = if self.phase().is_terminal() {
            self.updated_at?
        } else {
            now
        };
        (end - began).to_std().ok()
    }
}

/// Parses an ISO 8601 duration as the public API sends it (`PT8H6M12S`, `P1DT2H`, `PT0.5S`).
#[must_use]
pub fn parse_iso8601_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800f64), ('D', 86_400f64)][..]),
        (time, &[('H', 3_600f64), ('M', 60f64), ('S', 1f64)][..]),
    ] {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                num.push(if c == ',' { '.' } else { c });
                continue;
            }
            let (_, factor) = units.iter().find(|(u, _)| *u == c)?;
            let n: f64 = num.parse().ok()?;
            secs += n * factor;
            num.clear();
            any = true;
        }
        if !num.is_empty() {
            return None;
        }
    }
    (any && secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_table() {
        assert_eq!(phase_of("running"), (Phase::Active, true));
        assert_eq!(phase_of("queued"), (Phase::Active, true));
        assert_eq!(phase_of("INCOMPLETE"), (Phase::Active, true));
        assert_eq!(phase_of("succeeded"), (Phase::Succeeded, true));
        assert_eq!(phase_of("failed"), (Phase::Failed, true));
        assert_eq!(phase_of("cancelled"), (Phase::Cancelled, true));
        assert_eq!(phase_of("waiting_for_quota"), (Phase::Active, false));
        assert!(describe_state("waiting_for_quota").contains("does not know"));
        assert!(describe_state("incomplete").contains("retrying"));
    }

    #[test]
    fn iso_durations() {
        assert_eq!(
            parse_iso8601_duration("PT8H6M12S"),
            Some(Duration::from_secs(8 * 3600 + 6 * 60 + 12))
        );
        assert_eq!(
            parse_iso8601_duration("P1DT1S"),
            Some(Duration::from_secs(86_401))
        );
        assert_eq!(
            parse_iso8601_duration("PT0.5S"),
            Some(Duration::from_millis(500))
        );
        for bad in ["", "P", "PT", "8H", "PT5X", "PT5"] {
            assert_eq!(parse_iso8601_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn duration_falls_back_to_timestamps() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut j = Job::new(1, "c", "succeeded");
        j.created_at = Some(t0);
        j.updated_at = Some(t0 + chrono::Duration::seconds(90));
        assert_eq!(j.duration_at(t0), Some(Duration::from_secs(90)));
        j.status = "running".into();
        assert_eq!(
            j.duration_at(t0 + chrono::Duration::seconds(5)),
            Some(Duration::from_secs(5))
        );
    }
}
