//! Cell values ⇄ record values: serial dates, numbers, keys and Sheets' cell-size limit.
//!
//! Reads use `valueRenderOption=UNFORMATTED_VALUE` with the default
//! `dateTimeRenderOption=SERIAL_NUMBER`, so a date arrives as a number: days since
//! 1899-12-30, the fraction being the time of day ("This correctly treats the year 1900 as not a
//! leap year", Sheets v4 discovery document). Only columns declared `date` or `timestamp` (and
//! the `updated_at_column`) are converted; elsewhere a number stays a number. Writes use
//! `valueInputOption=RAW`, so dates are written back as serial numbers (the cell's date format
//! shows them as dates) and text is stored exactly, `=` included (no formula injection).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// Sheets refuses a cell holding more than this many characters.
pub const MAX_CELL_CHARS: usize = 50_000;

/// How a column's cells are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Whatever the cell holds: text, number or boolean, passed through.
    #[default]
    Auto,
    /// Text; numbers and booleans written as they come.
    Text,
    /// A number; numeric strings are written as numbers.
    Number,
    /// TRUE/FALSE.
    Boolean,
    /// A calendar date, held as a serial day number (`2026-01-31` in records).
    Date,
    /// A point in time, held as a serial number in UTC (RFC 3339 in records).
    Timestamp,
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// A serial number as a UTC instant, to the millisecond.
#[must_use]
pub fn serial_to_datetime(serial: f64) -> Option<DateTime<Utc>> {
    if !serial.is_finite() || !(-1.0e6..=1.0e7).contains(&serial) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let ms = (serial * 86_400_000.0).round() as i64;
    Some((epoch() + TimeDelta::milliseconds(ms)).and_utc())
}

/// A serial number's calendar date (the fraction, a time of day, is dropped).
#[must_use]
pub fn serial_to_date(serial: f64) -> Option<NaiveDate> {
    if !serial.is_finite() || !(-1.0e6..=1.0e7).contains(&serial) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let days = serial.floor() as i64;
    Some((epoch() + TimeDelta::days(days)).date())
}

/// A UTC instant as a serial number.
#[must_use]
pub fn datetime_to_serial(t: DateTime<Utc>) -> f64 {
    let ms = (t.naive_utc() - epoch()).num_milliseconds();
    #[allow(clippy::cast_precision_loss)]
    let serial = ms as f64 / 86_400_000.0;
    serial
}

/// A date as a serial day number.
#[must_use]
pub fn date_to_serial(d: NaiveDate) -> i64 {
    (d - epoch().date()).num_days()
}

/// Parses RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` / `YYYY-MM-DDTHH:MM:SS` taken as UTC.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// RFC 3339 with milliseconds and `Z`.
#[must_use]
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A number as JSON, whole numbers without a fraction (`42`, not `42.0`).
#[must_use]
pub fn number(f: f64) -> Value {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Value::Number(Number::from(f as i64));
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Whether a cell is empty (missing, `""`).
#[must_use]
pub fn is_empty(cell: &Value) -> bool {
    match cell {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A cell read with `UNFORMATTED_VALUE`, as a record value of a column of type `ty`.
#[must_use]
pub fn cell_to_value(cell: &Value, ty: ColumnType) -> Value {
    if is_empty(cell) {
        return Value::Null;
    }
    match (ty, cell) {
        (ColumnType::Date, Value::Number(n)) => n
            .as_f64()
            .and_then(serial_to_date)
            .map_or_else(|| cell.clone(), |d| Value::String(d.to_string())),
        (ColumnType::Timestamp, Value::Number(n)) => n
            .as_f64()
            .and_then(serial_to_datetime)
            .map_or_else(|| cell.clone(), |t| Value::String(format_timestamp(t))),
        (ColumnType::Timestamp, Value::String(s)) => {
            parse_timestamp(s).map_or_else(|| cell.clone(), |t| Value::String(format_timestamp(t)))
        }
        (_, Value::Number(n)) => n.as_f64().map_or_else(|| cell.clone(), number),
        _ => cell.clone(),
    }
}

/// A cell's modified time (an `updated_at` column): serial numbers and timestamp text.
#[must_use]
pub fn cell_to_time(cell: &Value) -> Option<DateTime<Utc>> {
    match cell {
        Value::Number(n) => n.as_f64().and_then(serial_to_datetime),
        Value::String(s) => parse_timestamp(s),
        _ => None,
    }
}

/// A key cell as a record key: text as is, whole numbers in decimal, booleans as words.
#[must_use]
pub fn key_text(cell: &Value) -> Option<String> {
    match cell {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_f64().map(number) {
            Some(Value::Number(m)) => Some(m.to_string()),
            _ => Some(n.to_string()),
        },
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// Why a value cannot be written to a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRefusal(pub String);

/// A record value as the cell to write with `valueInputOption=RAW`; `null` clears the cell.
///
/// # Errors
/// The value does not fit the column type, or is longer than [`MAX_CELL_CHARS`].
pub fn value_to_cell(v: &Value, ty: ColumnType) -> Result<Value, CellRefusal> {
    let cell = match (ty, v) {
        (_, Value::Null) => Value::String(String::new()),
        (ColumnType::Date, Value::String(s)) => {
            let day = s.get(..10).unwrap_or(s);
            let d = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| CellRefusal(format!("{s:?} is not a date (YYYY-MM-DD)")))?;
            Value::Number(Number::from(date_to_serial(d)))
        }
        (ColumnType::Timestamp, Value::String(s)) => {
            let t = parse_timestamp(s)
                .ok_or_else(|| CellRefusal(format!("{s:?} is not a timestamp (RFC 3339)")))?;
            number_f64(datetime_to_serial(t))?
        }
        (ColumnType::Date | ColumnType::Timestamp | ColumnType::Number, Value::Number(_)) => {
            v.clone()
        }
        (ColumnType::Number, Value::String(s)) => {
            let f: f64 = s
                .trim()
                .parse()
                .map_err(|_| CellRefusal(format!("{s:?} is not a number")))?;
            number_f64(f)?
        }
        (ColumnType::Boolean, Value::Bool(_)) => v.clone(),
        (ColumnType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(CellRefusal(format!("{s:?} is not a boolean"))),
        },
        (ColumnType::Boolean, Value::Number(n)) if n.as_f64() == Some(1.0) => Value::Bool(true),
        (ColumnType::Boolean, Value::Number(n)) if n.as_f64() == Some(0.0) => Value::Bool(false),
        (
            ColumnType::Date | ColumnType::Timestamp | ColumnType::Number | ColumnType::Boolean,
            _,
        ) => {
            return Err(CellRefusal(format!(
                "a {} value does not fit a {ty:?} column",
                json_type(v)
            )));
        }
        (ColumnType::Auto | ColumnType::Text, Value::Object(_) | Value::Array(_)) => {
            Value::String(v.to_string())
        }
        (ColumnType::Auto | ColumnType::Text, _) => v.clone(),
    };
    if let Value::String(s) = &cell {
        let n = s.chars().count();
        if n > MAX_CELL_CHARS {
            return Err(CellRefusal(format!(
                "{n} characters is over Sheets' limit of {MAX_CELL_CHARS} characters in a single cell"
            )));
        }
    }
    Ok(cell)
}

fn number_f64(f: f64) -> Result<Value, CellRefusal> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| CellRefusal(format!("{f} cannot be stored")))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "text",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serials_follow_the_discovery_document_examples() {
        // "January 1st 1900 at noon would be 2.5 … February 1st 1900 at 3pm would be 33.625."
        assert_eq!(
            format_timestamp(serial_to_datetime(2.5).unwrap()),
            "1900-01-01T12:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(serial_to_datetime(33.625).unwrap()),
            "1900-02-01T15:00:00.000Z"
        );
        // 1900 is not a leap year: 1 March 1900 is serial 61.
        assert_eq!(serial_to_date(61.0).unwrap().to_string(), "1900-03-01");
        assert_eq!(serial_to_date(46_053.0).unwrap().to_string(), "2026-01-31");
        assert_eq!(
            date_to_serial(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()),
            46_053
        );
    }

    #[test]
    fn timestamps_round_trip_through_serials_to_the_millisecond() {
        let t = parse_timestamp("2026-03-14T15:09:26.535Z").unwrap();
        let back = serial_to_datetime(datetime_to_serial(t)).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            cell_to_value(&json!(datetime_to_serial(t)), ColumnType::Timestamp),
            json!("2026-03-14T15:09:26.535Z")
        );
    }

    #[test]
    fn cells_read_by_column_type() {
        assert_eq!(
            cell_to_value(&json!(46053), ColumnType::Date),
            json!("2026-01-31")
        );
        assert_eq!(cell_to_value(&json!(46053), ColumnType::Auto), json!(46053));
        assert_eq!(cell_to_value(&json!(42.0), ColumnType::Auto), json!(42));
        assert_eq!(cell_to_value(&json!(""), ColumnType::Text), Value::Null);
        assert_eq!(
            cell_to_value(&json!("00123"), ColumnType::Auto),
            json!("00123")
        );
        assert_eq!(key_text(&json!(42)), Some("42".into()));
        assert_eq!(key_text(&json!("")), None);
    }

    #[test]
    fn writes_are_raw_and_bounded() {
        assert_eq!(
            value_to_cell(&json!("=1+1"), ColumnType::Auto).unwrap(),
            json!("=1+1")
        );
        assert_eq!(
            value_to_cell(&Value::Null, ColumnType::Auto).unwrap(),
            json!("")
        );
        assert_eq!(
            value_to_cell(&json!("2026-01-31"), ColumnType::Date).unwrap(),
            json!(46053)
        );
        assert_eq!(
            value_to_cell(&json!("12.5"), ColumnType::Number).unwrap(),
            json!(12.5)
        );
        assert!(value_to_cell(&json!("soon"), ColumnType::Date).is_err());
        let long = "x".repeat(MAX_CELL_CHARS + 1);
        let e = value_to_cell(&json!(long), ColumnType::Text).unwrap_err();
        assert!(e.0.contains("50000"), "{e:?}");
        assert!(value_to_cell(&json!("x".repeat(MAX_CELL_CHARS)), ColumnType::Text).is_ok());
    }
}
