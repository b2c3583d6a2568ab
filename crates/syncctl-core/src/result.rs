//! The `syncctl.result/v1` envelope: the one JSON object every command prints last.
//!
//! Within v1, changes are additive only: new optional fields, new `data` keys. Renaming or
//! removing a field, or changing its type, needs `syncctl.result/v2`.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ErrorClass;

/// The `schema` field of every result.
pub const RESULT_SCHEMA_ID: &str = "syncctl.result/v1";

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything asked for was done.
    Succeeded,
    /// The remote job or the sync failed, or the command could not run.
    Failed,
    /// A wait timeout or deadline was reached.
    TimedOut,
    /// Interrupted by a signal; remote work was cancelled unless told to leave it.
    Cancelled,
    /// Nothing to do (for example a sync was already running and `--if-running skip`).
    Skipped,
    /// A dry run: the plan is in `data`, nothing was changed.
    Planned,
}

impl Status {
    /// The snake_case name used in results.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::Planned => "planned",
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// The failure's class; it decides the exit code.
    pub class: ErrorClass,
    /// A one-paragraph human message, causes joined with ": ". Never contains a secret.
    pub message: String,
    /// Whether running the command again may succeed without changes.
    pub retryable: bool,
    /// Service-specific detail (for example Snowflake's `code` and `sqlState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorInfo {
    /// An error of `class` with the class's default retryability.
    #[must_use]
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retryable: class.is_retryable(),
            details: None,
        }
    }
}

/// The result envelope (`syncctl.result/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "syncctl.result/v1",
    description = "The JSON object syncctl prints as the last line of stdout."
)]
pub struct RunResult {
    /// Always `syncctl.result/v1`.
    pub schema: String,
    /// The command that ran, for example `airbyte trigger` or `sync run`.
    pub command: String,
    /// How the command ended.
    pub status: Status,
    /// The process exit code (documented in `syncctl --help`).
    pub exit_code: i32,
    /// A fresh UUID per invocation.
    pub run_id: Uuid,
    /// The idempotency key in use, when the command has one.
    #[schemars(required)]
    pub idempotency_key: Option<String>,
    /// When the command started (RFC 3339, UTC).
    #[schemars(with = "String")]
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    /// When the command finished (RFC 3339, UTC).
    #[schemars(with = "String")]
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    /// `finished_at - started_at` in milliseconds.
    pub duration_ms: u64,
    /// Whether this was a dry run (status `planned`).
    pub dry_run: bool,
    /// Command-specific payload; `{}` when the command has nothing to report.
    pub data: serde_json::Value,
    /// Things the user should know that did not fail the command.
    pub warnings: Vec<String>,
    /// Why the command failed; `null` on success.
    #[schemars(required)]
    pub error: Option<ErrorInfo>,
}

impl RunResult {
    /// A result for `command` that started at `started_at`, with everything else empty.
    #[must_use]
    pub fn new(command: impl Into<String>, started_at: DateTime<Utc>) -> Self {
        Self {
            schema: RESULT_SCHEMA_ID.to_owned(),
            command: command.into(),
            status: Status::Succeeded,
            exit_code: 0,
            run_id: Uuid::new_v4(),
            idempotency_key: None,
            started_at,
            finished_at: started_at,
            duration_ms: 0,
            dry_run: false,
            data: serde_json::Value::Object(serde_json::Map::new()),
            warnings: Vec::new(),
            error: None,
        }
    }

    /// Sets `finished_at` and `duration_ms`.
    pub fn finish(&mut self, finished_at: DateTime<Utc>) {
        self.finished_at = finished_at;
        let ms = (finished_at - self.started_at).num_milliseconds().max(0);
        self.duration_ms = u64::try_from(ms).unwrap_or(0);
    }

    /// The compact one-line JSON form.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The JSON Schema of this envelope, pretty-printed with a trailing newline.
    #[must_use]
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(RunResult);
        let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A Kestra-style metric (`counter` or `timer`, timer values in seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metric {
    /// Metric name, for example `records_synced`.
    pub name: String,
    /// `counter` or `timer`.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// The value; seconds for timers.
    pub value: f64,
    /// Extra dimensions.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Kestra's metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A count of things.
    Counter,
    /// A duration in seconds.
    Timer,
}

impl Metric {
    /// A counter metric.
    #[must_use]
    pub fn counter(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            kind: MetricKind::Counter,
            value,
            tags: Default::default(),
        }
    }
    /// A timer metric in seconds.
    #[must_use]
    pub fn timer(name: impl Into<String>, seconds: f64) -> Self {
        Self {
            name: name.into(),
            kind: MetricKind::Timer,
            value: seconds,
            tags: Default::default(),
        }
    }
}

mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Formats a timestamp the way results do (RFC 3339, UTC, milliseconds, `Z`).
#[must_use]
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn field_order_and_shape_match_the_contract() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut r = RunResult::new("airbyte trigger", t0);
        r.run_id = Uuid::nil();
        r.finish(t0 + chrono::Duration::milliseconds(1500));
        r.status = Status::Failed;
        r.exit_code = 1;
        r.error = Some(ErrorInfo::new(ErrorClass::RemoteFailed, "job 7 failed"));
        let line = r.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"{"schema":"syncctl.result/v1","command":"airbyte trigger","status":"failed","exit_code":1,"run_id":"00000000-0000-0000-0000-000000000000","idempotency_key":null,"started_at":"2026-01-02T03:04:05.000Z","finished_at":"2026-01-02T03:04:06.500Z","duration_ms":1500,"dry_run":false,"data":{},"warnings":[],"error":{"class":"remote_failed","message":"job 7 failed","retryable":false}}"#
        );
        let back: RunResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn schema_names_every_status_and_class() {
        let schema = RunResult::json_schema();
        for word in [
            "timed_out",
            "planned",
            "skipped",
            "remote_failed",
            "conflict",
            "cancelled",
        ] {
            assert!(schema.contains(word), "{word} missing from schema");
        }
    }
}
