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
    // Every value of a timestamp column passes through here several times per record (read,
    // canonical form, read-back), so the shapes servers print are parsed by hand; anything
    // else falls through to chrono's format parsers, tried in turn, which is what defines the
    // accepted forms (the fast path is checked against them by a property test).
    if let Some(d) = parse_timestamp_fast(t) {
        return Some(d);
    }
    parse_timestamp_by_formats(t)
}

/// `YYYY-MM-DD`, `T`/space, `HH:MM:SS`, an optional fraction of 1–9 digits, then nothing
/// (UTC), `Z`, or an offset `±HH`, `±HHMM`, `±HH:MM`; or `YYYY-MM-DD[T ]HH:MM` (UTC); or
/// `YYYY-MM-DD` (midnight UTC). `None` for anything else, including out-of-range fields.
fn parse_timestamp_fast(t: &str) -> Option<DateTime<Utc>> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(&b[5..7])?, num(&b[8..10])?)?;
    if b.len() == 10 {
        return date.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    if b.len() < 16 || !matches!(b[10], b'T' | b' ') || b[13] != b':' {
        return None;
    }
    let (hour, minute) = (num(&b[11..13])?, num(&b[14..16])?);
    if b.len() == 16 {
        return date.and_hms_opt(hour, minute, 0).map(|n| n.and_utc());
    }
    if b.len() < 19 || b[16] != b':' {
        return None;
    }
    let second = num(&b[17..19])?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(&b[i + 1..i + 1 + digits])? * 10u32.pow(9 - u32::try_from(digits).ok()?);
        i += 1 + digits;
    }
    if second > 59 {
        return None;
    }
    let naive = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    let offset_secs: i32 = match &b[i..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            // After a `T` only RFC 3339's `±HH:MM` is accepted, as chrono does.
            let (h, m) = match (b[10], rest) {
                (b' ', [h1, h2]) => (num(&[*h1, *h2])?, 0),
                (b' ', [h1, h2, m1, m2]) | (_, [h1, h2, b':', m1, m2]) => {
                    (num(&[*h1, *h2])?, num(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let utc = naive.checked_sub_signed(chrono::Duration::seconds(i64::from(offset_secs)))?;
    Some(utc.and_utc())
}

/// The accepted forms, by chrono's parsers tried in turn.
fn parse_timestamp_by_formats(t: &str) -> Option<DateTime<Utc>> {
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

    #[test]
    fn timestamps_in_the_shapes_servers_print() {
        let utc =
            |s: &str| parse_timestamp(s).map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true));
        assert_eq!(
            utc("2025-01-01 00:00:17+00").as_deref(),
            Some("2025-01-01T00:00:17.000000000Z")
        );
        assert_eq!(
            utc("2025-01-01 00:00:17.5+05:30").as_deref(),
            Some("2024-12-31T18:30:17.500000000Z")
        );
        assert_eq!(
            utc("2025-01-01T00:00:17.123456Z").as_deref(),
            Some("2025-01-01T00:00:17.123456000Z")
        );
        assert_eq!(
            utc("2025-01-01 23:59:59-0130").as_deref(),
            Some("2025-01-02T01:29:59.000000000Z")
        );
        assert_eq!(
            utc(" 2025-02-03 ").as_deref(),
            Some("2025-02-03T00:00:00.000000000Z")
        );
        assert_eq!(
            utc("2025-02-03T04:05").as_deref(),
            Some("2025-02-03T04:05:00.000000000Z")
        );
        assert_eq!(utc("2025-02-30"), None);
        assert_eq!(utc("2025-01-01 24:00:00"), None);
        assert_eq!(utc("yesterday"), None);
    }

    fn shape() -> impl Strategy<Value = String> {
        let part = |lo: u32, hi: u32| (lo..=hi).prop_map(|n| format!("{n:02}"));
        (
            prop_oneof![Just(1999u32), Just(2024), Just(2025), 1u32..=9999],
            part(0, 13),
            part(0, 32),
            prop_oneof![Just("T"), Just(" "), Just("t"), Just("_")],
            part(0, 25),
            part(0, 61),
            prop::option::of(part(0, 61)),
            prop::option::of("[0-9]{0,11}"),
            prop_oneof![
                Just(String::new()),
                Just("Z".to_owned()),
                Just("z".to_owned()),
                (
                    prop_oneof![Just('+'), Just('-')],
                    part(0, 25),
                    prop::option::of((any::<bool>(), part(0, 61)))
                )
                    .prop_map(|(s, h, m)| match m {
                        None => format!("{s}{h}"),
                        Some((colon, m)) => format!("{s}{h}{}{m}", if colon { ":" } else { "" }),
                    }),
            ],
            0usize..4,
        )
            .prop_map(|(y, mo, d, sep, h, mi, sec, frac, off, cut)| {
                let mut s = format!("{y:04}-{mo}-{d}");
                if cut > 0 {
                    s.push_str(&format!("{sep}{h}:{mi}"));
                    if let Some(sec) = sec {
                        s.push_str(&format!(":{sec}"));
                        if let Some(f) = frac {
                            s.push_str(&format!(".{f}"));
                        }
                    }
                    if cut > 1 {
                        s.push_str(&off);
                    }
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The hand-written parser agrees with chrono's formats wherever it answers.
        #[test]
        fn the_fast_timestamp_path_agrees_with_the_formats(s in shape()) {
            if let Some(fast) = parse_timestamp_fast(&s) {
                prop_assert_eq!(Some(fast), parse_timestamp_by_formats(&s), "{}", s);
            }
        }

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
