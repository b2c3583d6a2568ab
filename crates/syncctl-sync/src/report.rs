//! What a run reports: the result `data` of `sync run` and `sync plan`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::merge::FieldConflict;

/// At most this many items are listed per list in a result (the counts are always complete).
pub const LIST_CAP: usize = 100;

/// Counts of what was done to one system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SideCounts {
    /// Records read from it.
    pub read: u64,
    /// Records created in it.
    pub created: u64,
    /// Records updated in it.
    pub updated: u64,
    /// Records deleted (or archived) in it.
    pub deleted: u64,
    /// Records not written to it because validation refused them.
    pub rejected: u64,
    /// Writes to it that failed (including read-back mismatches).
    pub failed: u64,
    /// Records read but left alone because the config's `filter` leaves them out (never
    /// linked ones only: a linked pair keeps syncing). Left out of the result when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub out_of_scope: u64,
}

/// One side of the result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideReport {
    /// Connector kind.
    pub connector: String,
    /// Object.
    pub object: String,
    /// Where (no secrets).
    pub endpoint: String,
    /// Effective write batch size (min of `--batch-size` and the connector's maximum).
    pub batch_size: usize,
    /// The counts.
    #[serde(flatten)]
    pub counts: SideCounts,
    /// The incremental cursor before and after the run.
    pub cursor: CursorReport,
}

/// Cursor positions (RFC 3339) of one side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CursorReport {
    /// Stored before the run.
    pub before: Option<String>,
    /// Stored after it (unchanged for dry runs and failed scans).
    pub after: Option<String>,
}

/// Conflict counts and the conflicts themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConflictReport {
    /// Records with a field changed to different values on both sides.
    pub detected: u64,
    /// Settled by the strategy or by a person's resolution.
    pub resolved: u64,
    /// Left for a person (`manual`), the record untouched on both sides.
    pub queued: u64,
    /// The conflicts (ids are `null` in dry runs, which store nothing).
    pub items: Vec<ConflictItem>,
}

/// One conflict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictItem {
    /// For `sync conflicts resolve ID`.
    pub id: Option<i64>,
    /// Source record.
    pub source_key: String,
    /// Target record.
    pub target_key: String,
    /// `queued`, or who won (`source`, `target`, `resolution`).
    pub outcome: String,
    /// The fields and their values.
    pub fields: BTreeMap<String, FieldConflict>,
}

/// One record refused by validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedItem {
    /// Audit row id (`sync show RUN_ID`); `null` in dry runs.
    pub id: Option<i64>,
    /// The side it would have been written to.
    pub side: &'static str,
    /// The record it came from (`side:key`).
    pub record: String,
    /// Its natural key.
    pub natural_key: Option<String>,
    /// Why.
    pub reasons: Vec<String>,
}

/// One failed write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedItem {
    /// Audit row id.
    pub id: Option<i64>,
    /// The side written.
    pub side: &'static str,
    /// `create`, `update`, `delete`, `archive`.
    pub action: &'static str,
    /// The record's key there (or the key of the record it came from, for creates).
    pub key: String,
    /// Why.
    pub error: String,
}

/// A connector's breaker after the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerReport {
    /// The connector endpoint.
    pub endpoint: String,
    /// `closed`, `open`, `half_open`.
    pub phase: Value,
    /// Consecutive failures counted.
    pub consecutive_failures: u32,
    /// When an open breaker lets a probe through.
    pub next_probe_at: Option<String>,
}

/// One planned (or done) change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    /// Plan order.
    pub seq: i64,
    /// `create`, `update`, `delete`, `archive`, `conflict`, `rejected`, `link`, `skip`.
    pub action: &'static str,
    /// The system written (`null` for conflicts, links and skips).
    pub side: Option<&'static str>,
    /// Source record key.
    pub source_key: Option<String>,
    /// Target record key.
    pub target_key: Option<String>,
    /// The natural key.
    pub natural_key: Option<String>,
    /// Field → `{from, to}`, in the written side's field names.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, FieldChange>,
    /// Conflicting fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub conflict: BTreeMap<String, FieldConflict>,
    /// Why (rejections, skips).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// `planned` in dry runs, else the outcome.
    pub status: String,
}

/// A field's value before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Before (null for creates).
    pub from: Value,
    /// After.
    pub to: Value,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The result `data` of `sync run` / `sync plan`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// The sync's name.
    pub sync: String,
    /// The run id in the state store (`sync show RUN_ID`); dry runs are not stored.
    pub run: String,
    /// Direction.
    pub direction: String,
    /// Conflict strategy.
    pub conflict_strategy: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// What was done to the source system.
    pub source: SideReport,
    /// What was done to the target system.
    pub target: SideReport,
    /// Conflicts.
    pub conflicts: ConflictReport,
    /// Records refused by validation (first 100).
    pub rejected: Vec<RejectedItem>,
    /// Failed writes (first 100).
    pub failed: Vec<FailedItem>,
    /// Breaker state per side.
    pub breaker: BTreeMap<String, BreakerReport>,
    /// The side this run first-loaded in bulk (`target` or `source`): it was empty and the
    /// sync had no links, so records were created there without pairing queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk_load: Option<String>,
    /// Earlier runs found killed and marked interrupted by this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered_runs: Vec<String>,
    /// The plan (with `--dry-run`, `sync plan` or `--verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanEntry>>,
    /// Plan entries left out past `--plan-limit`.
    #[serde(skip_serializing_if = "is_zero")]
    pub plan_omitted: u64,
}
