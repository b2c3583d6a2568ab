//! The connector traits: what the sync engine asks of every system it reads and writes.
//!
//! A connector is one module implementing [`Connector`] plus [`Source`] and/or [`Sink`] for one
//! configured object (a table, a CSV file, a CRM object type). The engine (`syncctl-sync`)
//! never names a concrete connector: it discovers the object's [`ObjectSchema`], pulls pages,
//! plans, and hands batches of [`WriteOp`]s to the sink. Everything here is plain data plus
//! async traits; no I/O happens in this crate.
//!
//! # The contract in one page
//!
//! * **Identity.** Every record has a [`RecordKey`]: the value of the object's key column
//!   (primary key, HubSpot id, sheet id column) rendered as a string. Integer keys are rendered
//!   in decimal without sign padding (`42`), text keys as is. The engine stores keys and hands
//!   them back verbatim in [`Source::read_keys`], [`WriteOp::Update`] and [`WriteOp::Delete`];
//!   a connector parses them back into its native type.
//! * **Values.** `Record::fields` holds every column of the object (not only mapped ones) as
//!   JSON: `null`, strings, numbers, booleans; timestamps as RFC 3339 strings; JSON columns as
//!   JSON. Values a connector receives in writes may be strings where the column is numeric
//!   (CSV sources send only strings): a sink converts them to the column type and fails that
//!   one record ([`WriteOutcome::Failed`]) when it cannot, never the batch.
//! * **Reads are keyset-paginated** ([`ReadRequest`]): without `since`, ascending by key; with
//!   `since`, every record whose cursor column is `>= since` (inclusive: the engine subtracts
//!   its overlap window and de-duplicates), ascending by `(updated_at, key)`. A page holds at
//!   most `limit` records; [`Page::next`] is `None` on the last page. Pages must never skip a
//!   record. With [`PageOrder::Keyset`] they also never repeat one that did not change during
//!   the scan (no `OFFSET`); a SaaS API whose paging cannot promise that (HubSpot search
//!   re-anchored at its 10 000-result cap) declares [`PageOrder::MayRepeat`] and the engine
//!   drops the repeats by key.
//! * **Versions.** A system with optimistic concurrency (QuickBooks `SyncToken`, an ETag) puts
//!   the record's version in [`Record::version`]; the engine hands it back in
//!   [`WriteOp::Update::expected_version`] and a sink that finds the record at another version
//!   writes nothing and reports [`WriteOutcome::Stale`]. The engine then re-reads the record,
//!   merges again three-way against its base and retries once, in the same run; a second
//!   stale outcome fails that record only (retried on the next run). A stale record is never a
//!   failed run by itself.
//! * **Rate limits** are [`ConnectorError::RateLimited`], never [`ConnectorError::Unavailable`]:
//!   burst limits are absorbed by the HTTP core (limiter, `Retry-After`, retries) and only
//!   surface when retries are exhausted; a [`RateLimitScope::Daily`] quota stops the run
//!   cleanly (what was written is committed, the run fails as `transient`, exit 4) and is not
//!   counted against the circuit breaker, because the system is healthy.
//! * **Normalisation.** A system that rewrites values (HubSpot lower-cases emails and returns
//!   every number as a string) says so per field ([`FieldSchema::normalisation`]); read-back
//!   verification and change detection compare [`FieldSchema::normalise`]d values, so a value
//!   never flips back and forth between the two sides.
//! * **Key equality.** A system whose unique checks compare values loosely (a case-insensitive
//!   collation, trailing spaces ignored) says how through [`Source::comparison_keys`]; the
//!   engine refuses, before writing, records that would collide there.
//! * **Deletes.** A source that reports deletes itself in its change feed (HubSpot
//!   `archived=true`, QuickBooks CDC `status: Deleted`) sets [`Capabilities::reports_deletes`]:
//!   a [`ReadRequest::keys_only`] read with `since` then also returns every record deleted
//!   since, marked [`Record::deleted`]. When deletes propagate, the engine finds them with that
//!   read (once the side has a cursor, and not under `--full-refresh`) instead of scanning
//!   every key for missing records; it still confirms each by a read by key and applies the
//!   mass-delete guard before the first write.
//! * **Writes are batches with per-record outcomes** ([`Sink::write`]): the returned vector has
//!   exactly one [`WriteOutcome`] per op, in the same order. One bad record never loses the
//!   others: a SQL sink that runs a batch as one statement must, when that statement fails,
//!   retry the batch record by record (each in its own savepoint) to find the culprit.
//!   `Err(ConnectorError)` means the whole batch is in an unknown or failed state (connection
//!   lost, auth refused); the engine counts it against the connector's circuit breaker. A
//!   per-record refusal keeps its meaning ([`RecordError`]: class, the vendor's code such as
//!   HubSpot's `category` or QuickBooks' `6240`, field and message) into the run report and the
//!   audit.
//! * **Creates are idempotent** through [`WriteOp::Create::natural_key`]: when present, the
//!   sink creates the record only if no record has that value in that field, and otherwise
//!   updates the existing one and reports it with `created: false` (PostgreSQL
//!   `INSERT … ON CONFLICT (field) DO UPDATE`, MySQL `ON DUPLICATE KEY UPDATE`, or a lookup and
//!   insert inside one transaction when the field has no unique index; HubSpot `batch/upsert`
//!   with `idProperty`). A killed run that is replayed therefore never duplicates a record.
//! * **Own writes are marked** ([`WriteContext::origin`]): SQL sinks mark the session that
//!   applies syncctl's writes so that capture triggers and audit columns can skip them, the way
//!   Heroku Connect sets a GUC its trigger filters on. PostgreSQL: `SET LOCAL syncctl.origin =
//!   '<origin>'` and `SET LOCAL application_name = 'syncctl'` inside the write transaction;
//!   MySQL/MariaDB: `SET @syncctl_origin = '<origin>'` on the connection for the transaction
//!   (reset to `NULL` after); every SQL sink: when the object has an `origin_column`
//!   ([`ObjectSchema::origin`]) it is set to the origin on every row the sink writes. A trigger
//!   can then use `current_setting('syncctl.origin', true)` (PostgreSQL) or `@syncctl_origin`
//!   (MySQL) to tell syncctl's writes from everyone else's.
//! * **Cursor column.** When the object has an `updated_at` column the sink sets it to the
//!   database's current time on every create and update it applies (unless the op itself sets
//!   that field), so incremental readers downstream see the change.
//! * **Read-back.** [`Source::read_keys`] returns the current state of the given records (keys
//!   that do not exist are simply absent). The engine calls it after each write batch to verify
//!   what was stored and to record the stored values as the new base, which absorbs the
//!   system's own normalisation (trimmed strings, rounded numbers) and prevents ping-pong.
//!
//! Conformance: every connector must pass `syncctl_testkit::conformance` (see that module),
//! which checks each rule above against a real instance of the system or its stateful fake.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::breaker::{CircuitBreaker, SharedBreaker};
use crate::{Classified, ErrorClass, Record, RecordKey};

/// A connector's view of one object: its fields, key, cursor and what it can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectSchema {
    /// The object as the connector names it (`crm.contacts`, `contacts.csv`, `contacts`).
    pub object: String,
    /// The key field: primary key, system id or sheet id column.
    pub key: String,
    /// The last-modified field used as the incremental cursor, if the object has one.
    pub updated_at: Option<String>,
    /// A soft-delete field (boolean or timestamp); reads set `Record::deleted` from it and
    /// [`WriteOp::Archive`] sets it.
    pub deleted: Option<String>,
    /// A field the sink sets to [`WriteContext::origin`] on every row it writes.
    pub origin: Option<String>,
    /// Every field, in the system's order.
    pub fields: Vec<FieldSchema>,
    /// What the connector supports for this object.
    pub capabilities: Capabilities,
    /// The largest batch [`Sink::write`] accepts (HubSpot 100, QuickBooks 30, SQL ~1000).
    /// The engine uses `min(--batch-size, max_batch)` and reports the effective size.
    pub max_batch: usize,
}

impl ObjectSchema {
    /// The field named `name`, if the object has one.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// The field (column) name as the system spells it.
    pub name: String,
    /// Its type, for pre-write validation.
    pub field_type: FieldType,
    /// Whether it may hold null.
    pub nullable: bool,
    /// Whether syncctl may write it (false for generated, computed or read-only fields).
    pub writable: bool,
    /// Whether the system enforces unique values (a natural key candidate).
    pub unique: bool,
    /// Longest text the field holds (`varchar(100)` → 100), if bounded.
    pub max_length: Option<u32>,
    /// Whether the system fills it when a create leaves it out (defaults, serials).
    pub has_default: bool,
    /// How the system rewrites values of this field on write (applied in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normalisation: Vec<Normalisation>,
}

impl FieldSchema {
    /// A nullable, writable, non-unique text field without limits.
    #[must_use]
    pub fn text(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            field_type: FieldType::Text,
            nullable: true,
            writable: true,
            unique: false,
            max_length: None,
            has_default: false,
            normalisation: Vec::new(),
        }
    }

    /// `value` as the system would store it: every [`Normalisation`] of this field applied.
    /// Change detection and read-back verification compare normalised forms.
    #[must_use]
    pub fn normalise(&self, value: &serde_json::Value) -> serde_json::Value {
        self.normalisation
            .iter()
            .fold(value.clone(), |v, n| n.apply(&v))
    }
}

/// One way a system rewrites a value it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// Text is stored lower-cased (HubSpot `email`).
    Lowercase,
    /// Leading and trailing whitespace is dropped.
    Trim,
    /// Numbers and booleans come back as strings (every HubSpot property): `42` → `"42"`.
    NumbersAsText,
    /// An empty string is how the system stores "no value" (HubSpot clears a property with
    /// `""`): `""` → `null`.
    EmptyIsNull,
}

impl Normalisation {
    /// `value` after this rewrite; values it does not apply to pass through unchanged.
    #[must_use]
    pub fn apply(self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match (self, value) {
            (Self::Lowercase, Value::String(s)) => Value::String(s.to_lowercase()),
            (Self::Trim, Value::String(s)) => Value::String(s.trim().to_owned()),
            (Self::NumbersAsText, Value::Number(n)) => Value::String(n.to_string()),
            (Self::NumbersAsText, Value::Bool(b)) => Value::String(b.to_string()),
            (Self::EmptyIsNull, Value::String(s)) if s.is_empty() => Value::Null,
            _ => value.clone(),
        }
    }
}

/// Field types as far as validation cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Any text.
    Text,
    /// A whole number (64-bit).
    Integer,
    /// An exact decimal number.
    Decimal,
    /// A floating-point number.
    Float,
    /// true/false (also accepts `1`/`0`, `"true"`/`"false"`).
    Boolean,
    /// A calendar date (`2026-01-31`).
    Date,
    /// A point in time (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC).
    Timestamp,
    /// A JSON document.
    Json,
    /// A UUID.
    Uuid,
    /// A type the connector does not classify; values are passed through unchecked.
    Other(String),
}

/// What a connector can do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)] // a capability set is a set of flags
pub struct Capabilities {
    /// [`WriteOp::Create`] is supported.
    pub create: bool,
    /// [`WriteOp::Update`] is supported.
    pub update: bool,
    /// [`WriteOp::Delete`] (hard delete) is supported.
    pub delete: bool,
    /// [`WriteOp::Archive`] (soft delete) is supported.
    pub archive: bool,
    /// [`ReadRequest::since`] is honoured (the object has a cursor column). Without it the
    /// engine reads everything every run and diffs against its base snapshot.
    pub incremental: bool,
    /// The system assigns the key when a create does not carry one (serials, CRM ids).
    pub generated_keys: bool,
    /// [`WriteOp::Update::expected_updated_at`] is honoured ([`WriteOutcome::Stale`]).
    pub conditional_update: bool,
    /// [`WriteOutcome::Applied::stored`] carries the record as stored (`RETURNING`).
    pub returns_stored: bool,
    /// [`WriteOp::Update::expected_version`] is honoured ([`WriteOutcome::Stale`]).
    pub versioned: bool,
    /// Whether a `keys_only` read with `since` reports the records deleted since then
    /// ([`Record::deleted`]), so the engine needs no full key scan to find deletes.
    pub reports_deletes: bool,
    /// What paging promises about repeats.
    pub page_order: PageOrder,
}

/// What a connector's paging promises. Neither order ever skips a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOrder {
    /// Strict keyset order: a record that did not change is returned exactly once.
    #[default]
    Keyset,
    /// A record may be returned more than once in one scan (HubSpot search re-anchored at its
    /// result cap); the engine drops repeats by key.
    MayRepeat,
}

impl Capabilities {
    /// Everything a SQL table with a cursor column supports.
    #[must_use]
    pub fn full() -> Self {
        Self {
            create: true,
            update: true,
            delete: true,
            archive: false,
            incremental: true,
            generated_keys: true,
            conditional_update: false,
            returns_stored: false,
            versioned: false,
            reports_deletes: false,
            page_order: PageOrder::Keyset,
        }
    }
}

/// An opaque position in a keyset scan; only the connector that issued it reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageToken(pub serde_json::Value);

/// One page request.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    /// Only records whose cursor field is `>= since`; ordered by `(updated_at, key)`.
    /// `None` reads everything, ordered by key. Ignored (everything is returned) when the
    /// object is not [`Capabilities::incremental`].
    pub since: Option<DateTime<Utc>>,
    /// Continue after this token (from the previous page's [`Page::next`]).
    pub after: Option<PageToken>,
    /// At most this many records.
    pub limit: usize,
    /// A hint that only keys, `updated_at` and `deleted` are needed (delete detection scans).
    /// Connectors may ignore it and return full records.
    pub keys_only: bool,
}

impl ReadRequest {
    /// A full scan's first page.
    #[must_use]
    pub fn full(limit: usize) -> Self {
        Self {
            since: None,
            after: None,
            limit,
            keys_only: false,
        }
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The records, in the order [`ReadRequest`] describes.
    pub records: Vec<Record>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<PageToken>,
}

/// Who is writing: lets sinks mark and trace syncctl's own writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteContext {
    /// The sync's name (`crm-contacts`).
    pub sync_name: String,
    /// The run writing (a UUID string).
    pub run_id: String,
    /// The marker for own writes, `syncctl:<sync name>`; see the module docs.
    pub origin: String,
}

impl WriteContext {
    /// The context for a run of `sync_name`.
    #[must_use]
    pub fn new(sync_name: &str, run_id: &str) -> Self {
        Self {
            sync_name: sync_name.to_owned(),
            run_id: run_id.to_owned(),
            origin: format!("syncctl:{sync_name}"),
        }
    }
}

/// A field/value pair that identifies a record independently of its key (an email).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaturalKey {
    /// The field holding the natural key.
    pub field: String,
    /// Its value.
    pub value: serde_json::Value,
}

/// One change to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    /// Create a record (or, with `natural_key`, update the one that already has that value).
    Create {
        /// A stable id for this create, derived from the sync and the record on the other side,
        /// so a replay after a crash carries the same token. Sinks whose API takes a request id
        /// (QuickBooks `requestid`) or that must invent a key (a CSV without generated keys)
        /// use it; others may ignore it.
        token: String,
        /// Create only if no record has this value in this field; otherwise update that record
        /// and report `created: false`.
        natural_key: Option<NaturalKey>,
        /// The fields to set. The key field is present only when the caller chooses the key.
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// Set some fields of an existing record; fields not listed are left as they are.
    Update {
        /// The record.
        key: RecordKey,
        /// The fields to set.
        fields: BTreeMap<String, serde_json::Value>,
        /// When the sink is [`Capabilities::conditional_update`]: apply only if the record's
        /// cursor field still equals this value, else report [`WriteOutcome::Stale`].
        expected_updated_at: Option<DateTime<Utc>>,
        /// When the sink is [`Capabilities::versioned`]: the [`Record::version`] the plan was
        /// made from (QuickBooks `SyncToken`); a record at another version is not written and
        /// is reported [`WriteOutcome::Stale`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<String>,
    },
    /// Remove a record for good.
    Delete {
        /// The record.
        key: RecordKey,
    },
    /// Mark a record deleted through the object's soft-delete field.
    Archive {
        /// The record.
        key: RecordKey,
    },
}

impl WriteOp {
    /// `create`, `update`, `delete` or `archive`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
            Self::Archive { .. } => "archive",
        }
    }
}

/// What happened to one [`WriteOp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    /// Applied. For creates, `key` is the record's key (generated or given) and `created` is
    /// false when a natural-key match updated an existing record instead.
    Applied {
        /// The record written.
        key: RecordKey,
        /// Whether a new record was created.
        created: bool,
        /// The record as stored, when the sink has it for free
        /// ([`Capabilities::returns_stored`]).
        stored: Option<Record>,
    },
    /// A conditional update found the record changed since it was read; nothing written.
    Stale {
        /// The record.
        key: RecordKey,
    },
    /// An update, delete or archive found no such record; nothing written.
    NotFound {
        /// The record.
        key: RecordKey,
    },
    /// This record was not written; the others in the batch are unaffected.
    Failed(RecordError),
}

/// Why one record could not be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordError {
    /// `Config` for data the system refuses (constraint, type, validation): retrying the same
    /// data will fail again and the breaker ignores it. `Transient` for deadlocks, lock and
    /// statement timeouts: the breaker counts it and the record is retried next run.
    pub class: ErrorClass,
    /// The system's message, without secrets or full row values.
    pub message: String,
    /// The field at fault, when the system says.
    pub field: Option<String>,
    /// The vendor's own error code (HubSpot `category` such as `VALIDATION_ERROR`, QuickBooks
    /// `Fault.Error.code` such as `6240`, a SQLSTATE), kept for the report and the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl RecordError {
    /// A refusal of the data itself.
    #[must_use]
    pub fn invalid(message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            class: ErrorClass::Config,
            message: message.into(),
            field: field.map(str::to_owned),
            code: None,
        }
    }

    /// This error with the vendor's code attached.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// One line for reports and the audit: `[code] field: message`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.code {
            out.push_str(&format!("[{c}] "));
        }
        if let Some(f) = &self.field {
            out.push_str(&format!("{f}: "));
        }
        out.push_str(&self.message);
        out
    }

    /// A failure that may pass on retry.
    #[must_use]
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
            field: None,
            code: None,
        }
    }
}

/// Why a connector call failed as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The connector's settings are wrong (unknown table, missing column, bad URL).
    #[error("{connector}: {message}")]
    Config {
        /// The connector kind (`sqlite`, `postgres`).
        connector: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Credentials or permissions refused.
    #[error("{connector}: authentication or permission refused: {message}")]
    Auth {
        /// The connector kind.
        connector: String,
        /// The system's message.
        message: String,
    },
    /// The system is unreachable, overloaded or timed out; a retry may succeed.
    #[error("{connector}: unavailable: {message}")]
    Unavailable {
        /// The connector kind.
        connector: String,
        /// The system's message.
        message: String,
    },
    /// The system answered in a way the connector does not understand, or failed internally.
    #[error("{connector}: {message}")]
    Failed {
        /// The connector kind.
        connector: String,
        /// The system's message.
        message: String,
    },
    /// The operation is not supported by this connector or object.
    #[error("{connector}: {what} is not supported")]
    Unsupported {
        /// The connector kind.
        connector: String,
        /// The operation.
        what: String,
    },
    /// The system refused because a rate limit is used up, after the HTTP core's own waits
    /// and retries. Not an outage: the circuit breaker ignores it.
    #[error("{connector}: rate limited ({scope}): {message}")]
    RateLimited {
        /// The connector kind.
        connector: String,
        /// How long the system asked to wait, when it said.
        retry_after: Option<Duration>,
        /// Which limit: a burst window the next run will find open, or a daily quota.
        scope: RateLimitScope,
        /// The system's message.
        message: String,
    },
}

/// Which rate limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// A short rolling window (HubSpot's 10-second limit, QuickBooks' per-minute throttle)
    /// that stayed closed through every retry.
    Burst,
    /// A daily quota (HubSpot `policyName: DAILY`): nothing more can be done today, so the
    /// run stops cleanly with what it has written committed.
    Daily,
}

impl fmt::Display for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Burst => "burst",
            Self::Daily => "daily quota",
        })
    }
}

impl ConnectorError {
    /// A configuration error.
    #[must_use]
    pub fn config(connector: &str, message: impl Into<String>) -> Self {
        Self::Config {
            connector: connector.to_owned(),
            message: message.into(),
        }
    }

    /// An unavailability (retryable).
    #[must_use]
    pub fn unavailable(connector: &str, message: impl Into<String>) -> Self {
        Self::Unavailable {
            connector: connector.to_owned(),
            message: message.into(),
        }
    }

    /// A failure of the system or of the connector.
    #[must_use]
    pub fn failed(connector: &str, message: impl Into<String>) -> Self {
        Self::Failed {
            connector: connector.to_owned(),
            message: message.into(),
        }
    }

    /// An unsupported operation.
    #[must_use]
    pub fn unsupported(connector: &str, what: impl Into<String>) -> Self {
        Self::Unsupported {
            connector: connector.to_owned(),
            what: what.into(),
        }
    }

    /// A rate-limit refusal.
    #[must_use]
    pub fn rate_limited(
        connector: &str,
        scope: RateLimitScope,
        retry_after: Option<Duration>,
        message: impl Into<String>,
    ) -> Self {
        Self::RateLimited {
            connector: connector.to_owned(),
            retry_after,
            scope,
            message: message.into(),
        }
    }

    /// Whether this is a rate limit (any scope): not an outage, never counted by a breaker.
    #[must_use]
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Self::RateLimited { .. })
    }

    /// Whether a daily quota is used up: the run must stop, keeping what it wrote.
    #[must_use]
    pub fn is_quota_exhausted(&self) -> bool {
        matches!(
            self,
            Self::RateLimited {
                scope: RateLimitScope::Daily,
                ..
            }
        )
    }
}

impl Classified for ConnectorError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Config { .. } | Self::Unsupported { .. } => ErrorClass::Config,
            Self::Auth { .. } => ErrorClass::Auth,
            Self::Unavailable { .. } | Self::RateLimited { .. } => ErrorClass::Transient,
            Self::Failed { .. } => ErrorClass::RemoteFailed,
        }
    }
}

/// A configured connector bound to one object.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The connector kind (`sqlite`, `csv`, `postgres`), as written in config.
    fn kind(&self) -> &'static str;

    /// Where this connector points, safe to print and stable across runs: it names the
    /// connector in the circuit-breaker table and in results (`sqlite:crm.db`,
    /// `postgres://db.example.com:5432/crm`). Never contains a password.
    fn endpoint(&self) -> String;

    /// The configured object (table, file, CRM object type).
    fn object(&self) -> &str;

    /// One cheap round trip proving the system is reachable and the credentials work.
    ///
    /// # Errors
    /// Unreachable system, refused credentials, or a configuration the system rejects.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Discovers the object's schema; fails if it does not exist or lacks a configured field.
    ///
    /// # Errors
    /// The object or a configured column is missing, or the system is unreachable.
    async fn describe(&self) -> Result<ObjectSchema, ConnectorError>;

    /// The read half, when the connector can read.
    fn source(&self) -> Option<&dyn Source>;

    /// The write half, when the connector can write.
    fn sink(&self) -> Option<&dyn Sink>;

    /// Things the connector noticed that did not fail anything but that the user should see
    /// (rows it skipped, say): the engine adds them to the run result's `warnings`, besides
    /// whatever the connector logs. Each distinct warning once.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Reading records.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// One keyset page; see [`ReadRequest`] for ordering and `since` semantics.
    ///
    /// # Errors
    /// The system failed or an invalid token was passed.
    async fn read_page(
        &self,
        schema: &ObjectSchema,
        request: &ReadRequest,
    ) -> Result<Page, ConnectorError>;

    /// The current state of these records; missing keys are absent from the result. Any
    /// number of keys may be passed: the connector chunks them (SQL `IN` lists of ≤ 1000).
    ///
    /// # Errors
    /// The system failed.
    async fn read_keys(
        &self,
        schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError>;

    /// Records whose `field` equals one of `values` (exact match after converting each value
    /// to the field's type; values that cannot be converted match nothing). Used to match
    /// never-linked records by their natural key. Chunked like [`Source::read_keys`].
    ///
    /// # Errors
    /// `field` is unknown, or the system failed.
    async fn lookup(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[serde_json::Value],
    ) -> Result<Vec<Record>, ConnectorError>;

    /// How the system tells values of `field` apart where it enforces uniqueness and in
    /// [`Source::lookup`]: one comparison key per value (same order), equal keys meaning the
    /// system holds the values to be the same (a MySQL `_ci` collation makes `Bob@x.com ` and
    /// `bob@x.com` one). The engine uses it to refuse records that would collide on this side
    /// before writing them. The default compares the field's normalised form
    /// ([`FieldSchema::normalise`]: HubSpot's lower-cased emails) exactly.
    ///
    /// # Errors
    /// The system failed while computing the keys.
    async fn comparison_keys(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let f = schema.field(field);
        Ok(values
            .iter()
            .map(|v| {
                let plain = serde_json::Value::String(v.clone());
                match f.map(|f| f.normalise(&plain)) {
                    Some(serde_json::Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => v.clone(),
                }
            })
            .collect())
    }
}

/// Writing records.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Applies `ops` (at most [`ObjectSchema::max_batch`]) and returns one outcome per op, in
    /// order. Runs as few statements as the system allows; see the module docs.
    ///
    /// # Errors
    /// The batch as a whole failed (connection lost, auth refused); per-record failures are
    /// [`WriteOutcome::Failed`] instead.
    async fn write(
        &self,
        schema: &ObjectSchema,
        ops: &[WriteOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError>;
}

/// A lookup of environment variables by name (the binary's snapshot, never the process's).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a factory needs besides the connector's own settings.
///
/// Built by the binary per side; tests use [`BuildContext::new`] and the `with_*` setters.
#[derive(Clone)]
pub struct BuildContext {
    /// Relative paths in settings (`path: contacts.csv`, `sqlite://crm.db`) are resolved
    /// against this directory: the config file's directory, or the working directory when
    /// there is no config file.
    pub base_dir: std::path::PathBuf,
    /// Settings from the environment (`HUBSPOT_API_TOKEN`, `QUICKBOOKS_BASE_URL`): the
    /// binary's snapshot of the process environment over `--env-file`s. Core reads no
    /// environment itself.
    pub env: EnvLookup,
    /// Cancelled on SIGINT/SIGTERM: long waits (rate-limit back-off, token refresh) stop early.
    pub cancel: tokio_util::sync::CancellationToken,
    /// The engine's persisted breaker for this connector; HTTP connectors hand it to their
    /// `HttpClient` so requests fail fast while it is open and there is one breaker, not two.
    pub breaker: SharedBreaker,
    /// Where rotating credentials (QuickBooks refresh tokens) survive between runs: the sync
    /// state store, encrypted when `SYNCCTL_STATE_KEY` is set.
    pub credentials: Arc<dyn CredentialStore>,
}

impl BuildContext {
    /// A context with no environment, a closed default breaker, a token nobody cancels and
    /// credentials kept in memory only.
    #[must_use]
    pub fn new(base_dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
            env: Arc::new(|_| None),
            cancel: tokio_util::sync::CancellationToken::new(),
            breaker: Arc::new(Mutex::new(CircuitBreaker::new(
                crate::breaker::BreakerConfig::default(),
            ))),
            credentials: Arc::new(MemoryCredentials::default()),
        }
    }

    /// Reads settings from `env` (a lookup by variable name).
    #[must_use]
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// Uses `breaker` as the connector's breaker.
    #[must_use]
    pub fn with_breaker(mut self, breaker: SharedBreaker) -> Self {
        self.breaker = breaker;
        self
    }

    /// Uses `cancel` as the run's cancellation token.
    #[must_use]
    pub fn with_cancel(mut self, cancel: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Keeps rotating credentials in `store`.
    #[must_use]
    pub fn with_credentials(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.credentials = store;
        self
    }

    /// The environment variable `name`, when set and not blank.
    #[must_use]
    pub fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }
}

impl fmt::Debug for BuildContext {
    // The environment holds secrets: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

/// Secrets that change between runs and must survive them: a rotated OAuth refresh token
/// (QuickBooks invalidates the old one the moment it issues a new one, so losing the new one
/// locks the integration out until someone re-authorises it).
///
/// Names are chosen by the connector and should include its account (`quickbooks:<realm>:
/// refresh_token`). A store saves before it returns, so a token is never used before it is
/// durable.
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// The stored value of `name`, if any.
    ///
    /// # Errors
    /// The store is unreachable, or the value cannot be decrypted (wrong `SYNCCTL_STATE_KEY`).
    async fn load(&self, name: &str) -> Result<Option<secrecy::SecretString>, ConnectorError>;

    /// Stores `value` as `name`, replacing the previous value.
    ///
    /// # Errors
    /// The store is unreachable or refused the write.
    async fn save(&self, name: &str, value: &secrecy::SecretString) -> Result<(), ConnectorError>;

    /// Whether a [`CredentialStore::save`] can succeed now (the store is open for writing): a
    /// connector about to have a secret rotated asks first, so that it never has one rotated
    /// that it cannot keep.
    ///
    /// # Errors
    /// The store cannot take a write (read-only, not available).
    async fn ready_to_save(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Credentials kept in memory: for tests, and for commands without a state store.
#[derive(Default)]
pub struct MemoryCredentials {
    values: Mutex<BTreeMap<String, secrecy::SecretString>>,
}

#[async_trait::async_trait]
impl CredentialStore for MemoryCredentials {
    async fn load(&self, name: &str) -> Result<Option<secrecy::SecretString>, ConnectorError> {
        Ok(self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned())
    }

    async fn save(&self, name: &str, value: &secrecy::SecretString) -> Result<(), ConnectorError> {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), value.clone());
        Ok(())
    }
}

/// The future a factory returns.
pub type BuildFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Box<dyn Connector>, ConnectorError>> + Send>>;

/// One registry entry: a connector kind and how to build it from its settings.
///
/// `settings` is the connector's block of the sync config as JSON (`{"connector": "csv",
/// "path": …, "object": …}`, `${VAR}` already interpolated). The factory deserializes its own
/// settings struct from it with `#[serde(deny_unknown_fields)]` (ignoring the `connector`
/// key), so an unknown or misspelt key is a [`ConnectorError::Config`] naming the key. Building
/// must not touch the network or create anything: connections are opened lazily or by
/// [`Connector::check`]/[`Connector::describe`], so `sync check` can report every problem.
#[derive(Clone, Copy)]
pub struct ConnectorFactory {
    /// The kind as written in config (`connector: sqlite`).
    pub kind: &'static str,
    /// One line for help texts and errors.
    pub summary: &'static str,
    /// Builds the connector.
    pub build: fn(BuildContext, serde_json::Value) -> BuildFuture,
}

impl fmt::Debug for ConnectorFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorFactory")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text => f.write_str("text"),
            Self::Integer => f.write_str("integer"),
            Self::Decimal => f.write_str("decimal"),
            Self::Float => f.write_str("float"),
            Self::Boolean => f.write_str("boolean"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Json => f.write_str("json"),
            Self::Uuid => f.write_str("uuid"),
            Self::Other(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_forms_compare_equal() {
        let mut email = FieldSchema::text("email");
        email.normalisation = vec![
            Normalisation::Trim,
            Normalisation::Lowercase,
            Normalisation::EmptyIsNull,
        ];
        assert_eq!(
            email.normalise(&serde_json::json!(" Ada@Example.COM ")),
            serde_json::json!("ada@example.com")
        );
        assert_eq!(
            email.normalise(&serde_json::json!("")),
            serde_json::Value::Null
        );
        let mut amount = FieldSchema::text("amount");
        amount.normalisation = vec![Normalisation::NumbersAsText];
        assert_eq!(
            amount.normalise(&serde_json::json!(12.5)),
            amount.normalise(&serde_json::json!("12.5"))
        );
        assert_eq!(
            FieldSchema::text("x").normalise(&serde_json::json!(" A ")),
            serde_json::json!(" A ")
        );
    }

    #[test]
    fn rate_limits_are_transient_and_daily_quota_is_told_apart() {
        let burst = ConnectorError::rate_limited("hubspot", RateLimitScope::Burst, None, "slow");
        let daily = ConnectorError::rate_limited(
            "hubspot",
            RateLimitScope::Daily,
            Some(Duration::from_secs(60)),
            "You have reached your daily limit.",
        );
        assert_eq!(daily.class(), ErrorClass::Transient);
        assert!(burst.is_rate_limit() && !burst.is_quota_exhausted());
        assert!(daily.is_quota_exhausted());
        assert_eq!(
            daily.to_string(),
            "hubspot: rate limited (daily quota): You have reached your daily limit."
        );
        let e = RecordError::invalid("already exists", Some("DisplayName")).with_code("6240");
        assert_eq!(e.describe(), "[6240] DisplayName: already exists");
        assert_eq!(serde_json::to_value(&e).unwrap()["code"], "6240");
    }

    #[test]
    fn ops_and_outcomes_serialize_tagged() {
        let op = WriteOp::Delete {
            key: RecordKey::from("7"),
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"delete","key":"7"}"#
        );
        let out = WriteOutcome::Failed(RecordError::invalid("too long", Some("name")));
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["class"], "config");
    }

    #[test]
    fn error_classes() {
        assert_eq!(
            ConnectorError::unavailable("sqlite", "locked").class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ConnectorError::config("csv", "no such file").class(),
            ErrorClass::Config
        );
        assert_eq!(
            ConnectorError::config("csv", "no such file").to_string(),
            "csv: no such file"
        );
    }
}
