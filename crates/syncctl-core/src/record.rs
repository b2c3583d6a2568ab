//! Records: what connectors read and write, independent of any system's wire format.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A record's identity in its own system (a primary key, a HubSpot id, a sheet row id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordKey(pub String);

impl RecordKey {
    /// The key as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RecordKey {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// One record: its key, its fields by name, and when it last changed (if the system says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Identity in the record's own system.
    pub key: RecordKey,
    /// Field values by field name.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Last-modified time as reported by the system, if it reports one.
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the system reports this record as deleted or archived.
    pub deleted: bool,
    /// The system's opaque concurrency version (QuickBooks `SyncToken`, an ETag), if it has
    /// one. The engine never interprets it: it hands it back in
    /// [`WriteOp::Update::expected_version`](crate::WriteOp::Update) so the sink can refuse a
    /// write made from a stale read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Record {
    /// A live record with no modified time.
    #[must_use]
    pub fn new(key: impl Into<String>, fields: BTreeMap<String, serde_json::Value>) -> Self {
        Self {
            key: RecordKey(key.into()),
            fields,
            updated_at: None,
            deleted: false,
            version: None,
        }
    }
}
