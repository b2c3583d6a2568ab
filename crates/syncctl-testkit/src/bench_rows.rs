//! The rows the connector benchmarks move (`scripts/bench/connectors.sh`): one generator, so
//! that every connector and every reference tool (`psql \copy`, `LOAD DATA LOCAL INFILE`)
//! moves exactly the same data, and one check, so that a fast path that stores something else
//! fails the benchmark instead of winning it.
//!
//! Columns: `sku` (text, unique natural key), `name` (text; every 997th has a tab, a newline,
//! quotes, a backslash and non-ASCII letters), `qty` (integer, some negative), `price`
//! (numeric(12,2)), `modified_at` (timestamp, millisecond precision, UTC) and `note`
//! (nullable text: every third is null).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use syncctl_core::{NaturalKey, Record, WriteOp};
use syncctl_validate::coerce::parse_timestamp;

/// The columns every benchmark table has besides its own key, in this order.
pub const COLUMNS: [&str; 6] = ["sku", "name", "qty", "price", "modified_at", "note"];

/// One generated row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchRow {
    /// Unique natural key (`SKU-0000042`).
    pub sku: String,
    /// Free text, sometimes with separators and escapes in it.
    pub name: String,
    /// A whole number.
    pub qty: i64,
    /// The price in cents (a `numeric(12,2)` column holds `cents / 100`).
    pub price_cents: i64,
    /// Last modified, millisecond precision.
    pub modified_at: DateTime<Utc>,
    /// Nullable text.
    pub note: Option<String>,
}

/// `n` rows, the same on every call.
#[must_use]
pub fn rows(n: usize) -> Vec<BenchRow> {
    let base = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    (1..=n as i64)
        .map(|i| BenchRow {
            sku: format!("SKU-{i:07}"),
            name: if i % 997 == 0 {
                format!("Ünïcødé {i}\twith \"quotes\", a back\\slash\nand a second line")
            } else {
                format!("Product {i}")
            },
            qty: (i * 7919) % 1000 - 100,
            price_cents: (i * 104_729) % 1_000_000,
            modified_at: base + Duration::seconds(i) + Duration::milliseconds(i % 1000),
            note: (i % 3 != 0).then(|| format!("note {}", i % 101)),
        })
        .collect()
}

/// Appends `s` escaped for PostgreSQL `COPY` text format and MySQL `LOAD DATA` defaults
/// (both: backslash escapes, `\N` for null).
fn tsv_value(buf: &mut String, v: Option<&str>) {
    let Some(s) = v else {
        buf.push_str("\\N");
        return;
    };
    for c in s.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c => buf.push(c),
        }
    }
}

/// How a reference tool reads a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStyle {
    /// RFC 3339 with `Z` (PostgreSQL `timestamptz`).
    Rfc3339,
    /// `YYYY-MM-DD HH:MM:SS.fff` in UTC (MySQL `DATETIME(6)`).
    Naive,
}

impl BenchRow {
    /// The price as decimal text (`1234.05`).
    #[must_use]
    pub fn price(&self) -> String {
        format!("{}.{:02}", self.price_cents / 100, self.price_cents % 100)
    }

    /// The modified time as RFC 3339 (`2025-01-01T00:00:01.001Z`).
    #[must_use]
    pub fn modified(&self) -> String {
        syncctl_validate::coerce::format_timestamp(self.modified_at)
    }

    /// The fields as the engine hands them to a sink: text, a JSON number for `qty`, decimal
    /// text for `price`, RFC 3339 for `modified_at`, `null` for a missing note.
    #[must_use]
    pub fn fields(&self) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("sku".to_owned(), Value::String(self.sku.clone())),
            ("name".to_owned(), Value::String(self.name.clone())),
            ("qty".to_owned(), Value::from(self.qty)),
            ("price".to_owned(), Value::String(self.price())),
            ("modified_at".to_owned(), Value::String(self.modified())),
            (
                "note".to_owned(),
                self.note.clone().map_or(Value::Null, Value::String),
            ),
        ])
    }

    /// The create a first load sends: matched on `sku`.
    #[must_use]
    pub fn create_op(&self) -> WriteOp {
        WriteOp::Create {
            token: format!("bench-{}", self.sku),
            natural_key: Some(NaturalKey {
                field: "sku".into(),
                value: Value::String(self.sku.clone()),
            }),
            fields: self.fields(),
        }
    }

    /// One line of tab-separated text for `COPY … FROM` / `LOAD DATA`, ending in `\n`.
    pub fn push_tsv(&self, buf: &mut String, style: TimestampStyle) {
        let ts = match style {
            TimestampStyle::Rfc3339 => self.modified(),
            TimestampStyle::Naive => self.modified_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        };
        let cells = [
            Some(self.sku.as_str()),
            Some(self.name.as_str()),
            Some(&self.qty.to_string()),
            Some(&self.price()),
            Some(ts.as_str()),
            self.note.as_deref(),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                buf.push('\t');
            }
            tsv_value(buf, c.as_deref());
        }
        buf.push('\n');
    }

    /// Whether `fields` (a record read back from any connector) holds this row: exact text,
    /// the same number, the same decimal, the same instant, the same null. Names the first
    /// difference.
    ///
    /// # Errors
    /// The first field that differs.
    pub fn check(&self, fields: &BTreeMap<String, Value>) -> Result<(), String> {
        let get = |f: &str| fields.get(f).unwrap_or(&Value::Null);
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let differ = |f: &str| format!("{}: {f} is {} in the read", self.sku, get(f));
        if text(get("sku")).as_deref() != Some(self.sku.as_str()) {
            return Err(differ("sku"));
        }
        if text(get("name")).as_deref() != Some(self.name.as_str()) {
            return Err(differ("name"));
        }
        if text(get("qty")).and_then(|s| s.parse::<i64>().ok()) != Some(self.qty) {
            return Err(differ("qty"));
        }
        let cents = text(get("price")).and_then(|s| s.parse::<f64>().ok());
        #[allow(clippy::cast_possible_truncation)] // cents of a numeric(12,2) fit an i64
        if cents.map(|c| (c * 100.0).round() as i64) != Some(self.price_cents) {
            return Err(differ("price"));
        }
        if text(get("modified_at")).and_then(|s| parse_timestamp(&s)) != Some(self.modified_at) {
            return Err(differ("modified_at"));
        }
        if text(get("note")) != self.note {
            return Err(differ("note"));
        }
        Ok(())
    }
}

/// Whether `read` (every record a connector read or wrote back) holds each of `rows` exactly
/// once, with its values ([`BenchRow::check`]). Names the first problem.
///
/// # Errors
/// A count that differs, a row read twice or not generated, or the first value that differs.
pub fn check_all(rows: &[BenchRow], read: &[Record]) -> Result<(), String> {
    if read.len() != rows.len() {
        return Err(format!(
            "{} rows read, {} generated",
            read.len(),
            rows.len()
        ));
    }
    let by_sku: HashMap<&str, &BenchRow> = rows.iter().map(|r| (r.sku.as_str(), r)).collect();
    let mut seen = HashSet::new();
    for rec in read {
        let sku = rec.fields.get("sku").and_then(Value::as_str).unwrap_or("");
        let row = by_sku
            .get(sku)
            .ok_or_else(|| format!("{sku:?} read but not generated"))?;
        if !seen.insert(sku) {
            return Err(format!("{sku} read twice"));
        }
        row.check(&rec.fields)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_stable_and_check_what_they_generate() {
        let r = rows(997);
        assert_eq!(r.len(), 997);
        assert_eq!(r[41].sku, "SKU-0000042");
        assert!(r[996].name.contains('\t') && r[996].name.contains('\n'));
        assert_eq!(r[2].note, None);
        for row in &r {
            row.check(&row.fields()).unwrap();
        }
        let mut wrong = r[0].fields();
        wrong.insert("price".into(), Value::String("0.01".into()));
        assert!(r[0].check(&wrong).unwrap_err().contains("price"));
        let mut wrong = r[0].fields();
        wrong.insert("note".into(), Value::Null);
        assert!(r[0].check(&wrong).unwrap_err().contains("note"));
    }

    #[test]
    fn tsv_escapes_separators_and_nulls() {
        let mut buf = String::new();
        rows(2991)[2990].push_tsv(&mut buf, TimestampStyle::Naive);
        assert_eq!(buf.matches('\t').count(), 5, "{buf}");
        assert_eq!(buf.matches('\n').count(), 1);
        assert!(buf.contains("\\t") && buf.contains("\\n") && buf.contains("\\\\"));
        assert!(buf.ends_with("\\N\n"));
        assert!(buf.contains("\t2025-01-01 00:49:51.991\t"), "{buf}");
    }
}
