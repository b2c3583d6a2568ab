//! What the PostgreSQL and MySQL connectors share: records read as rows of text, write ops
//! checked and converted before any SQL is built, page tokens, and statement counters.
//!
//! Both servers read every column as text (`col::text`, `CAST(col AS CHAR)`) and this module
//! turns that text into the canonical JSON of the column's [`FieldType`]
//! (`syncctl_validate::coerce`), so that the two connectors, SQLite and pre-write validation
//! agree on what a value is. Timestamps keep the server's microseconds so that a cursor read
//! here compares equal to the stored value in a conditional update.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use syncctl_core::{
    ConnectorError, FieldType, NaturalKey, ObjectSchema, Page, PageToken, ReadRequest, Record,
    RecordError, RecordKey, WriteOp, WriteOutcome,
};
use syncctl_validate::coerce::{canonical_text, coerce, format_timestamp, parse_timestamp};

/// Statements and rows a SQL connector has sent since it was built; read by benchmarks and
/// logged at debug level after every write batch.
#[derive(Debug, Default)]
pub struct SqlStats {
    statements: AtomicU64,
    bulk_batches: AtomicU64,
    row_by_row_batches: AtomicU64,
    rows_written: AtomicU64,
    rows_read: AtomicU64,
}

/// A copy of [`SqlStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SqlStatsSnapshot {
    /// Statements sent, counting `BEGIN`, `COMMIT`, savepoints and each `COPY` as one.
    pub statements: u64,
    /// Write batches applied through the bulk path (COPY / multi-row statements).
    pub bulk_batches: u64,
    /// Write batches applied (or replayed after a bulk failure) one record per savepoint.
    pub row_by_row_batches: u64,
    /// Records written (ops that were applied).
    pub rows_written: u64,
    /// Records returned by reads.
    pub rows_read: u64,
}

impl SqlStats {
    pub(crate) fn statements(&self, n: u64) {
        self.statements.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bulk_batch(&self) {
        self.bulk_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn row_by_row_batch(&self) {
        self.row_by_row_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, n: u64) {
        self.rows_written.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, n: u64) {
        self.rows_read.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> SqlStatsSnapshot {
        SqlStatsSnapshot {
            statements: self.statements.load(Ordering::Relaxed),
            bulk_batches: self.bulk_batches.load(Ordering::Relaxed),
            row_by_row_batches: self.row_by_row_batches.load(Ordering::Relaxed),
            rows_written: self.rows_written.load(Ordering::Relaxed),
            rows_read: self.rows_read.load(Ordering::Relaxed),
        }
    }
}

/// A timestamp as SQL text and in field values: RFC 3339, UTC, microseconds, `Z`.
pub(crate) fn timestamp_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The canonical JSON of a column value the server printed as `text`.
pub(crate) fn value_from_text(ty: &FieldType, text: Option<String>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match ty {
        FieldType::Text | FieldType::Other(_) => Value::String(text),
        FieldType::Json => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        // Keep the server's precision: coerce() would round to milliseconds.
        FieldType::Timestamp => match parse_timestamp(&text) {
            Some(t) => Value::String(timestamp_text(t)),
            None => Value::String(text),
        },
        ty => {
            let v = Value::String(text);
            coerce(&v, ty).unwrap_or(v)
        }
    }
}

/// A soft-delete column's value read as "deleted".
pub(crate) fn is_deleted(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => !s.is_empty() && s != "0" && s != "false" && s != "f",
        _ => true,
    }
}

/// A record from one row read as text, the values aligned with `schema.fields`.
pub(crate) fn record_from_texts(schema: &ObjectSchema, texts: Vec<Option<String>>) -> Record {
    let mut fields = BTreeMap::new();
    let mut updated_at = None;
    for (f, text) in schema.fields.iter().zip(texts) {
        if schema.updated_at.as_deref() == Some(f.name.as_str()) {
            updated_at = text.as_deref().and_then(parse_timestamp);
        }
        fields.insert(f.name.clone(), value_from_text(&f.field_type, text));
    }
    let key = fields
        .get(&schema.key)
        .and_then(canonical_text)
        .unwrap_or_default();
    let deleted = schema
        .deleted
        .as_ref()
        .and_then(|d| fields.get(d))
        .is_some_and(is_deleted);
    Record {
        key: RecordKey(key),
        fields,
        updated_at,
        deleted,
        version: None,
    }
}

/// A keyset position: the last row's key (and cursor, in incremental scans) as the server
/// printed them, so the next page compares against exactly the stored values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScanToken {
    /// Incremental scans: `c` while walking rows with a cursor, `n` for the rows whose cursor
    /// is NULL (returned after the others by every incremental read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The last row's cursor text (phase `c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The last row's key text.
    pub key: String,
}

impl ScanToken {
    /// The position `req` continues from, if any.
    pub(crate) fn of_request(
        kind: &str,
        req: &ReadRequest,
    ) -> Result<Option<Self>, ConnectorError> {
        match &req.after {
            None => Ok(None),
            Some(PageToken(v)) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|_| ConnectorError::failed(kind, "invalid page token")),
        }
    }
}

/// One row of a keyset scan: the phase it was read in (see [`ScanToken::phase`]) and its
/// columns as text, in field order.
pub(crate) type ScanRow = (Option<&'static str>, Vec<Option<String>>);

/// A page of a keyset scan of at most `limit` rows, counted as read; a full page carries the
/// position of its last row (`cursor_idx` and `key_idx` locate the cursor and key columns).
pub(crate) fn scan_page(
    schema: &ObjectSchema,
    rows: Vec<ScanRow>,
    limit: usize,
    cursor_idx: Option<usize>,
    key_idx: usize,
    stats: &SqlStats,
) -> Page {
    let next = (rows.len() >= limit)
        .then(|| rows.last())
        .flatten()
        .map(|(phase, texts)| ScanToken {
            phase: phase.map(str::to_owned),
            cursor: cursor_idx.and_then(|i| texts.get(i).cloned().flatten()),
            key: texts.get(key_idx).cloned().flatten().unwrap_or_default(),
        });
    stats.read(rows.len() as u64);
    Page {
        records: rows
            .into_iter()
            .map(|(_, texts)| record_from_texts(schema, texts))
            .collect(),
        next: next.map(|tok| PageToken(serde_json::json!(tok))),
    }
}

/// A key as the key column's type wants it; `None` when it cannot be one (the record cannot
/// exist).
pub(crate) fn key_value(schema: &ObjectSchema, key: &RecordKey) -> Option<Value> {
    let ty = schema
        .field(&schema.key)
        .map_or(FieldType::Text, |f| f.field_type.clone());
    match coerce(&Value::String(key.0.clone()), &ty) {
        Ok(Value::Null) | Err(_) => None,
        Ok(v) => Some(v),
    }
}

/// A create, checked and converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateOp {
    /// Column → value, sorted by column; includes the key when the op (or its token) sets it.
    pub fields: Vec<(String, Value)>,
    /// The natural key column and its converted value.
    pub natural_key: Option<(String, Value)>,
}

/// An update (or an archive), checked and converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UpdateOp {
    /// The record's key as the op named it.
    pub record_key: RecordKey,
    /// The key converted to the key column's type.
    pub key: Value,
    /// Column → value, sorted by column.
    pub fields: Vec<(String, Value)>,
    /// Apply only if the cursor column still holds this value.
    pub expected: Option<DateTime<Utc>>,
}

/// A write op after the checks every SQL sink makes before building SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prepared {
    /// Refused as it is (unknown column, value of the wrong type); nothing is sent.
    Refused(RecordError),
    /// The key cannot exist in this table (`"abc"` for an integer key): `NotFound`.
    Missing(RecordKey),
    /// A create.
    Create(CreateOp),
    /// An update or archive.
    Update(UpdateOp),
    /// A hard delete.
    Delete {
        /// The key as the op named it.
        record_key: RecordKey,
        /// The key converted to the key column's type.
        key: Value,
    },
}

/// `(precision, scale)` of the `decimal`/`numeric` columns that declare them, by column.
pub(crate) type DecimalDigits = std::collections::HashMap<String, (u32, u32)>;

/// Refuses a create or update holding a number its `decimal(p, s)` column cannot store as
/// given: the database would round it (`0.005` in `numeric(12,2)` becomes `0.01`) or refuse
/// it, and a rounded value read back differs from what was sent on every later run. Checked
/// before any SQL, like lengths; values arrive here already converted (`coerce`: no sign
/// padding, no trailing zeros).
pub(crate) fn check_digits(p: Prepared, digits: &DecimalDigits, object: &str) -> Prepared {
    let fields = match &p {
        Prepared::Create(c) => &c.fields,
        Prepared::Update(u) => &u.fields,
        _ => return p,
    };
    for (name, v) in fields {
        let (Some(&(precision, scale)), Value::String(text)) = (digits.get(name), v) else {
            continue;
        };
        if let Some(why) = decimal_misfit(text, precision, scale) {
            return Prepared::Refused(RecordError::invalid(
                format!(
                    "{name} {text} {why}; {object}.{name} is decimal({precision},{scale}), so the database would not store it as sent (round it in the source, or widen the column)"
                ),
                Some(name),
            ));
        }
    }
    p
}

/// Why the decimal `text` does not fit `decimal(precision, scale)`, if it does not.
fn decimal_misfit(text: &str, precision: u32, scale: u32) -> Option<String> {
    let body = text.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let (int_len, frac_len) = (int.len(), frac.len());
    if frac_len > scale as usize {
        return Some(format!(
            "has {frac_len} decimal places (at most {scale} fit)"
        ));
    }
    let whole = precision.saturating_sub(scale) as usize;
    if int_len > whole {
        return Some(format!(
            "has {int_len} digits before the decimal point (at most {whole} fit)"
        ));
    }
    None
}

/// Converts op fields to their column types; the first problem refuses the record.
fn typed_fields(
    schema: &ObjectSchema,
    fields: &BTreeMap<String, Value>,
) -> Result<Vec<(String, Value)>, RecordError> {
    let mut out = Vec::with_capacity(fields.len());
    for (name, v) in fields {
        let f = schema.field(name).ok_or_else(|| {
            RecordError::invalid(
                format!("{name} is not a column of {}", schema.object),
                Some(name),
            )
        })?;
        if !f.writable {
            return Err(RecordError::invalid(
                format!("{name} is generated by the database and cannot be written"),
                Some(name),
            ));
        }
        let v = match (&f.field_type, v) {
            // Keep microseconds: coerce() rounds timestamps to milliseconds.
            (FieldType::Timestamp, Value::String(s)) if !s.trim().is_empty() => {
                match parse_timestamp(s) {
                    Some(t) => Value::String(timestamp_text(t)),
                    None => coerce(v, &f.field_type)
                        .map_err(|e| RecordError::invalid(format!("{name}: {e}"), Some(name)))?,
                }
            }
            _ => coerce(v, &f.field_type)
                .map_err(|e| RecordError::invalid(format!("{name}: {e}"), Some(name)))?,
        };
        if v.is_null() && !f.nullable {
            return Err(RecordError::invalid(
                format!("{name} may not be null"),
                Some(name),
            ));
        }
        out.push((name.clone(), v));
    }
    Ok(out)
}

fn natural_key(schema: &ObjectSchema, nk: &NaturalKey) -> Result<(String, Value), RecordError> {
    let Some(f) = schema.field(&nk.field) else {
        return Err(RecordError::invalid(
            format!("natural key {} is not a column", nk.field),
            Some(&nk.field),
        ));
    };
    match coerce(&nk.value, &f.field_type) {
        Ok(Value::Null) => Err(RecordError::invalid(
            format!("natural key {} is empty", nk.field),
            Some(&nk.field),
        )),
        Ok(v) => Ok((nk.field.clone(), v)),
        Err(_) => Err(RecordError::invalid(
            format!("natural key {} has a value of the wrong type", nk.field),
            Some(&nk.field),
        )),
    }
}

/// The value that marks a record archived in `column`, by its type.
fn archive_mark(schema: &ObjectSchema, column: &str) -> Result<Value, RecordError> {
    match schema.field(column).map(|f| &f.field_type) {
        Some(FieldType::Boolean) => Ok(Value::Bool(true)),
        Some(FieldType::Integer) => Ok(Value::from(1)),
        Some(FieldType::Timestamp) => Ok(Value::String(timestamp_text(Utc::now()))),
        Some(FieldType::Date) => Ok(Value::String(Utc::now().format("%Y-%m-%d").to_string())),
        Some(FieldType::Text) => Ok(Value::String(format_timestamp(Utc::now()))),
        _ => Err(RecordError::invalid(
            format!("deleted_column {column} must be a boolean, integer, timestamp or text column"),
            Some(column),
        )),
    }
}

/// Checks and converts one op.
pub(crate) fn prepare(schema: &ObjectSchema, op: &WriteOp) -> Prepared {
    let update = |key: &RecordKey,
                  fields: Result<Vec<(String, Value)>, RecordError>,
                  expected: Option<DateTime<Utc>>| {
        let fields = match fields {
            Ok(f) => f,
            Err(e) => return Prepared::Refused(e),
        };
        match key_value(schema, key) {
            None => Prepared::Missing(key.clone()),
            Some(k) => Prepared::Update(UpdateOp {
                record_key: key.clone(),
                key: k,
                fields,
                expected: expected.filter(|_| schema.capabilities.conditional_update),
            }),
        }
    };
    match op {
        WriteOp::Create {
            token,
            natural_key: nk,
            fields,
        } => {
            let mut fields = match typed_fields(schema, fields) {
                Ok(f) => f,
                Err(e) => return Prepared::Refused(e),
            };
            let nk = match nk.as_ref().map(|nk| natural_key(schema, nk)).transpose() {
                Ok(nk) => nk,
                Err(e) => return Prepared::Refused(e),
            };
            // A create matched by its natural key must store that key, or the match would
            // not find it again.
            if let Some((f, v)) = &nk
                && !fields.iter().any(|(n, _)| n == f)
            {
                fields.push((f.clone(), v.clone()));
                fields.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let has_key = fields.iter().any(|(n, v)| *n == schema.key && !v.is_null());
            if !has_key && !schema.capabilities.generated_keys {
                // No key and none generated: the create token is a stable key, so a replay
                // after a crash finds the same record.
                match key_value(schema, &RecordKey(token.clone())) {
                    Some(k) => {
                        fields.retain(|(n, _)| *n != schema.key);
                        fields.push((schema.key.clone(), k));
                        fields.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                    None => {
                        return Prepared::Refused(RecordError::invalid(
                            format!(
                                "{} has no default: the record must carry its key",
                                schema.key
                            ),
                            Some(&schema.key),
                        ));
                    }
                }
            }
            Prepared::Create(CreateOp {
                fields,
                natural_key: nk,
            })
        }
        WriteOp::Update {
            key,
            fields,
            expected_updated_at,
            expected_version: _,
        } => update(key, typed_fields(schema, fields), *expected_updated_at),
        WriteOp::Delete { key } => match key_value(schema, key) {
            None => Prepared::Missing(key.clone()),
            Some(k) => Prepared::Delete {
                record_key: key.clone(),
                key: k,
            },
        },
        WriteOp::Archive { key } => {
            let Some(d) = &schema.deleted else {
                return Prepared::Refused(RecordError::invalid(
                    "archive needs deleted_column",
                    None,
                ));
            };
            let mark = archive_mark(schema, d).map(|m| vec![(d.clone(), m)]);
            update(key, mark, None)
        }
    }
}

/// Columns syncctl sets on every row it creates or updates, unless the op sets them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Managed<'a> {
    /// The cursor column, set to the server's current time.
    pub cursor: Option<&'a str>,
    /// The origin column, set to [`WriteContext::origin`].
    pub origin: Option<&'a str>,
}

/// The managed columns for an op that sets `given`.
pub(crate) fn managed<'a>(schema: &'a ObjectSchema, given: &[(String, Value)]) -> Managed<'a> {
    let free = |c: &&String| !given.iter().any(|(n, _)| n == *c);
    Managed {
        cursor: schema.updated_at.as_ref().filter(free).map(String::as_str),
        origin: schema.origin.as_ref().filter(free).map(String::as_str),
    }
}

/// The plain text of a converted value, as SQL text parameters and `COPY` take it.
pub(crate) fn sql_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// A natural-key or key value reduced to a form for spotting two ops on the same record in one
/// batch (case-folded: a case-insensitive column would treat them as one).
pub(crate) fn identity_text(v: &Value) -> String {
    canonical_text(v).unwrap_or_default().to_lowercase()
}

/// What a group of like ops becomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum GroupKind {
    /// Creates whose natural key has a unique index (an upsert on it).
    Upsert(String),
    /// Creates that carry their key and no natural key: a plain `INSERT`.
    Insert,
    /// Updates setting the same columns.
    Update,
}

/// How a batch is sent.
#[derive(Debug, Default)]
pub(crate) struct BatchPlan {
    /// (kind, columns set) → op indexes, in batch order.
    pub groups: BTreeMap<(GroupKind, Vec<String>), Vec<usize>>,
    /// Hard deletes.
    pub deletes: Vec<usize>,
    /// Ops sent one statement each inside the batch transaction.
    pub singles: Vec<usize>,
}

fn columns(fields: &[(String, Value)]) -> Vec<String> {
    fields.iter().map(|(n, _)| n.clone()).collect()
}

/// Groups a batch by kind and column set (groups under `bulk_min` ops become singles), or `None` when two ops touch the same record (their order matters, so
/// they are applied one by one).
pub(crate) fn plan_batch(
    key: &str,
    unique: &HashSet<String>,
    prepared: &[Prepared],
    decided: &[Option<WriteOutcome>],
    bulk_min: usize,
) -> Option<BatchPlan> {
    let mut seen = HashSet::new();
    let mut p = BatchPlan::default();
    for (i, op) in prepared.iter().enumerate() {
        if decided[i].is_some() {
            continue;
        }
        let mut ids = Vec::new();
        match op {
            Prepared::Refused(_) | Prepared::Missing(_) => continue,
            Prepared::Create(c) => {
                if let Some((_, k)) = c.fields.iter().find(|(n, _)| n == key) {
                    ids.push(format!("k:{}", identity_text(k)));
                }
                if let Some((f, v)) = &c.natural_key {
                    ids.push(format!("n:{f}:{}", identity_text(v)));
                }
                let has_key = c.fields.iter().any(|(n, v)| n == key && !v.is_null());
                match &c.natural_key {
                    Some((f, _)) if unique.contains(f) => p
                        .groups
                        .entry((GroupKind::Upsert(f.clone()), columns(&c.fields)))
                        .or_default()
                        .push(i),
                    None if has_key => p
                        .groups
                        .entry((GroupKind::Insert, columns(&c.fields)))
                        .or_default()
                        .push(i),
                    _ => p.singles.push(i),
                }
            }
            Prepared::Update(u) => {
                ids.push(format!("k:{}", identity_text(&u.key)));
                if u.fields.is_empty() {
                    p.singles.push(i);
                } else {
                    p.groups
                        .entry((GroupKind::Update, columns(&u.fields)))
                        .or_default()
                        .push(i);
                }
            }
            Prepared::Delete { key, .. } => {
                ids.push(format!("k:{}", identity_text(key)));
                p.deletes.push(i);
            }
        }
        for id in ids {
            if !seen.insert(id) {
                return None;
            }
        }
    }
    let small: Vec<_> = p
        .groups
        .iter()
        .filter(|(_, ops)| ops.len() < bulk_min)
        .map(|(k, _)| k.clone())
        .collect();
    for k in small {
        if let Some(ops) = p.groups.remove(&k) {
            p.singles.extend(ops);
        }
    }
    p.singles.sort_unstable();
    Some(p)
}

/// Shortens a server message to one line without row values (PostgreSQL puts them in the
/// detail, which is never used; MySQL quotes the duplicate value, which is cut here).
pub(crate) fn one_line(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or_default();
    if first.chars().count() > 300 {
        let cut: String = first.chars().take(297).collect();
        format!("{cut}...")
    } else {
        first.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use syncctl_core::{Capabilities, FieldSchema};

    fn schema() -> ObjectSchema {
        let mut id = FieldSchema::text("id");
        id.field_type = FieldType::Integer;
        id.nullable = false;
        let mut age = FieldSchema::text("age");
        age.field_type = FieldType::Integer;
        let mut u = FieldSchema::text("updated_at");
        u.field_type = FieldType::Timestamp;
        let mut gen_col = FieldSchema::text("full");
        gen_col.writable = false;
        ObjectSchema {
            object: "people".into(),
            key: "id".into(),
            updated_at: Some("updated_at".into()),
            deleted: None,
            origin: None,
            fields: vec![id, FieldSchema::text("email"), age, u, gen_col],
            capabilities: Capabilities {
                conditional_update: true,
                ..Capabilities::full()
            },
            max_batch: 10,
        }
    }

    #[test]
    fn text_values_become_canonical_json() {
        assert_eq!(
            value_from_text(&FieldType::Integer, Some("42".into())),
            json!(42)
        );
        assert_eq!(
            value_from_text(&FieldType::Boolean, Some("t".into())),
            json!(true)
        );
        assert_eq!(
            value_from_text(&FieldType::Decimal, Some("12.50".into())),
            json!("12.5")
        );
        assert_eq!(
            value_from_text(
                &FieldType::Timestamp,
                Some("2021-03-04 05:06:07.123456+00".into())
            ),
            json!("2021-03-04T05:06:07.123456Z")
        );
        assert_eq!(
            value_from_text(&FieldType::Json, Some("{\"a\": [1]}".into())),
            json!({"a": [1]})
        );
        assert_eq!(value_from_text(&FieldType::Text, None), Value::Null);
    }

    #[test]
    fn records_carry_key_cursor_and_fields() {
        let s = schema();
        let r = record_from_texts(
            &s,
            vec![
                Some("7".into()),
                Some("a@x.io".into()),
                None,
                Some("2021-03-04 05:06:07.5".into()),
                Some("x".into()),
            ],
        );
        assert_eq!(r.key.as_str(), "7");
        assert_eq!(r.fields["id"], json!(7));
        assert_eq!(r.fields["age"], Value::Null);
        assert_eq!(
            r.updated_at.map(timestamp_text).as_deref(),
            Some("2021-03-04T05:06:07.500000Z")
        );
    }

    #[test]
    fn decimals_that_a_column_would_round_or_overflow_are_refused() {
        assert_eq!(decimal_misfit("0.01", 12, 2), None);
        assert_eq!(decimal_misfit("-9999999999.99", 12, 2), None);
        assert_eq!(decimal_misfit("42", 12, 2), None);
        assert!(
            decimal_misfit("0.005", 12, 2)
                .unwrap()
                .contains("3 decimal places")
        );
        assert!(
            decimal_misfit("12345678901", 12, 2)
                .unwrap()
                .contains("11 digits before")
        );
        let digits = DecimalDigits::from([("amount".to_owned(), (12, 2))]);
        let create = |v: &str| {
            Prepared::Create(CreateOp {
                fields: vec![("amount".into(), Value::String(v.into()))],
                natural_key: None,
            })
        };
        assert!(matches!(
            check_digits(create("1.5"), &digits, "t"),
            Prepared::Create(_)
        ));
        let Prepared::Refused(e) = check_digits(create("0.005"), &digits, "t") else {
            panic!("0.005 fits numeric(12,2)?");
        };
        assert!(
            e.message.contains("t.amount is decimal(12,2)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ops_are_checked_before_any_sql() {
        let s = schema();
        let bad_type = WriteOp::Update {
            key: RecordKey::from("1"),
            fields: BTreeMap::from([("age".to_owned(), json!("old"))]),
            expected_updated_at: None,
            expected_version: None,
        };
        assert!(matches!(prepare(&s, &bad_type), Prepared::Refused(_)));
        let generated = WriteOp::Update {
            key: RecordKey::from("1"),
            fields: BTreeMap::from([("full".to_owned(), json!("x"))]),
            expected_updated_at: None,
            expected_version: None,
        };
        assert!(matches!(prepare(&s, &generated), Prepared::Refused(_)));
        let ghost = WriteOp::Delete {
            key: RecordKey::from("not-a-number"),
        };
        assert_eq!(
            prepare(&s, &ghost),
            Prepared::Missing(RecordKey::from("not-a-number"))
        );
        let create = WriteOp::Create {
            token: "t".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("a@x.io"),
            }),
            fields: BTreeMap::from([("age".to_owned(), json!("41"))]),
        };
        let Prepared::Create(c) = prepare(&s, &create) else {
            panic!("create refused");
        };
        assert_eq!(
            c.fields,
            vec![
                ("age".to_owned(), json!(41)),
                ("email".to_owned(), json!("a@x.io"))
            ],
            "the natural key is stored with the create"
        );
        assert_eq!(c.natural_key, Some(("email".to_owned(), json!("a@x.io"))));
        assert_eq!(
            managed(&s, &c.fields),
            Managed {
                cursor: Some("updated_at"),
                origin: None
            }
        );
    }

    #[test]
    fn creates_without_generated_keys_use_the_token() {
        let mut s = schema();
        s.capabilities.generated_keys = false;
        if let Some(f) = s.fields.iter_mut().find(|f| f.name == "id") {
            f.field_type = FieldType::Text;
        }
        let create = WriteOp::Create {
            token: "tok-1".into(),
            natural_key: None,
            fields: BTreeMap::new(),
        };
        let Prepared::Create(c) = prepare(&s, &create) else {
            panic!("create refused");
        };
        assert_eq!(c.fields, vec![("id".to_owned(), json!("tok-1"))]);
    }
}
