//! Value coercion shared by validation and connectors: one definition of "is `"42"` an
//! integer", so that what pre-write validation accepts is exactly what a sink can store.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;
use syncctl_core::FieldType;

/// A value does not fit a field type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a valid {expected}")]
pub struct TypeMismatch {
    /// The value, shortened for messages.
    pub value: String,
    /// The expected type.
    pub expected: String,
}

/// The canonical text of a value, used to compare values across systems: `null` and empty or
/// blank strings are `None`, integers print without `.0`, booleans as `true`/`false`, strings
/// as they are, arrays and objects as compact JSON.
#[must_use]
pub fn canonical_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(number_text(n)),
        other => Some(other.to_string()),
    }
}

/// Whether two values are the same once canonicalised (`42` == `"42"`, `""` == `null`).
#[must_use]
pub fn same_value(a: &Value, b: &Value) -> bool {
    canonical_text(a) == canonical_text(b)
}

fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

/// A whole number from a number or a numeric string (`"42"`, `" 42 "`, `42.0`).
#[must_use]
pub fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A float from a number or a numeric string.
#[must_use]
pub fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A boolean from `true`/`false`, `1`/`0`, `t`/`f`, `yes`/`no` (any case).
#[must_use]
pub fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => Some(true),
            "false" | "f" | "0" | "no" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A timestamp from RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.fff]` (taken as UTC), or a date
/// (midnight UTC).
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(n.and_utc());
        }
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

/// A timestamp as results and connectors print it: RFC 3339, UTC, milliseconds, `Z`.
#[must_use]
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn shorten(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(37).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Converts `v` to the canonical JSON form of `ty` (what a sink binds): integers as numbers,
/// decimals as normalised digit strings, dates as `YYYY-MM-DD`, timestamps as RFC 3339 UTC,
/// UUIDs lower-case. `null` (and blank strings for non-text types) stay `null`.
///
/// # Errors
/// The value cannot be read as `ty`.
pub fn coerce(v: &Value, ty: &FieldType) -> Result<Value, TypeMismatch> {
    let mismatch = || TypeMismatch {
        value: shorten(v),
        expected: ty.to_string(),
    };
    if v.is_null() {
        return Ok(Value::Null);
    }
    let blank = matches!(v, Value::String(s) if s.trim().is_empty());
    match ty {
        FieldType::Text => Ok(match v {
            Value::String(_) => v.clone(),
            other => canonical_text(other).map_or(Value::Null, Value::String),
        }),
        _ if blank => Ok(Value::Null),
        FieldType::Integer => to_i64(v).map(Value::from).ok_or_else(mismatch),
        FieldType::Float => to_f64(v).map(Value::from).ok_or_else(mismatch),
        FieldType::Decimal => {
            let text = match v {
                Value::Number(n) => number_text(n),
                Value::String(s) => s.trim().to_owned(),
                _ => return Err(mismatch()),
            };
            normalize_decimal(&text)
                .map(Value::String)
                .ok_or_else(mismatch)
        }
        FieldType::Boolean => to_bool(v).map(Value::Bool).ok_or_else(mismatch),
        FieldType::Date => match v {
            Value::String(s) => parse_timestamp(s)
                .map(|t| Value::String(t.date_naive().format("%Y-%m-%d").to_string()))
                .ok_or_else(mismatch),
            _ => Err(mismatch()),
        },
        FieldType::Timestamp => match v {
            Value::String(s) => parse_timestamp(s)
                .map(|t| Value::String(format_timestamp(t)))
                .ok_or_else(mismatch),
            _ => Err(mismatch()),
        },
        FieldType::Uuid => match v {
            Value::String(s) if is_uuid(s.trim()) => {
                Ok(Value::String(s.trim().to_ascii_lowercase()))
            }
            _ => Err(mismatch()),
        },
        FieldType::Json | FieldType::Other(_) => Ok(v.clone()),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `"007.50"` → `"7.5"`, `"-0.0"` → `"0"`; `None` when not a plain decimal.
fn normalize_decimal(s: &str) -> Option<String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::new();
    if neg && !(int == "0" && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_text_equates_what_systems_mean_alike() {
        assert!(same_value(&json!(42), &json!("42")));
        assert!(same_value(&json!(42.0), &json!("42")));
        assert!(same_value(&json!(""), &Value::Null));
        assert!(same_value(&json!("  "), &Value::Null));
        assert!(same_value(&json!(true), &json!("true")));
        assert!(!same_value(&json!("a"), &json!("A")));
        assert_eq!(canonical_text(&json!(1.5)).as_deref(), Some("1.5"));
    }

    #[test]
    fn coercion_by_type() {
        assert_eq!(coerce(&json!("42"), &FieldType::Integer), Ok(json!(42)));
        assert_eq!(coerce(&json!(" 7 "), &FieldType::Integer), Ok(json!(7)));
        assert!(coerce(&json!("4x"), &FieldType::Integer).is_err());
        assert_eq!(coerce(&json!(""), &FieldType::Integer), Ok(Value::Null));
        assert_eq!(coerce(&json!(""), &FieldType::Text), Ok(json!("")));
        assert_eq!(coerce(&json!(12), &FieldType::Text), Ok(json!("12")));
        assert_eq!(coerce(&json!("yes"), &FieldType::Boolean), Ok(json!(true)));
        assert_eq!(
            coerce(&json!("007.50"), &FieldType::Decimal),
            Ok(json!("7.5"))
        );
        assert!(coerce(&json!("1e5"), &FieldType::Decimal).is_err());
        assert_eq!(
            coerce(&json!("2026-01-02 03:04:05"), &FieldType::Timestamp),
            Ok(json!("2026-01-02T03:04:05.000Z"))
        );
        assert_eq!(
            coerce(&json!("2026-01-02T03:04:05+02:00"), &FieldType::Timestamp),
            Ok(json!("2026-01-02T01:04:05.000Z"))
        );
        assert_eq!(
            coerce(&json!("2026-01-31"), &FieldType::Date),
            Ok(json!("2026-01-31"))
        );
        let e = coerce(&json!("not a date"), &FieldType::Date).unwrap_err();
        assert_eq!(e.to_string(), "\"not a date\" is not a valid date");
    }

    proptest! {
        #[test]
        fn integers_survive_text_round_trips(i in any::<i64>()) {
            let text = canonical_text(&json!(i)).unwrap();
            prop_assert_eq!(coerce(&Value::String(text), &FieldType::Integer).unwrap(), json!(i));
        }

        #[test]
        fn decimal_normalisation_is_idempotent(int in 0u32..100_000, frac in 0u32..10_000) {
            let s = format!("{int}.{frac:04}");
            let once = normalize_decimal(&s).unwrap();
            prop_assert_eq!(normalize_decimal(&once).unwrap(), once);
        }
    }
}
