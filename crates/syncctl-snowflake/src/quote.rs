//! Identifiers and string literals as Snowflake reads them.
//!
//! Every name that goes into generated SQL is validated first and then always written as a
//! double-quoted identifier; every other value is written as a single-quoted literal with
//! backslashes and quotes escaped. Validation rejects what has no business in a name or a
//! path (`;`, quotes, backslashes, control characters) so that an injection attempt is
//! refused with a clear message before anything is sent; quoting makes the SQL safe even for
//! the inputs validation lets through (proved by the property tests).

use std::fmt;

use crate::SnowflakeError;

/// Longest identifier Snowflake accepts.
const MAX_IDENTIFIER_LEN: usize = 255;

/// One identifier, holding the exact (case-sensitive) name Snowflake stores.
///
/// `events` (unquoted) is stored as `EVENTS`; `"events"` (quoted) keeps its case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// Parses one identifier as a user writes it: unquoted (`[A-Za-z_][A-Za-z0-9_$]*`,
    /// upper-cased the way Snowflake resolves it) or double-quoted (`"My Table"`, with `""`
    /// for a quote).
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] naming `what` when the text is not a safe identifier.
    pub fn parse(what: &str, text: &str) -> Result<Self, SnowflakeError> {
        let bad =
            |why: &str| SnowflakeError::Usage(format!("invalid {what} {}: {why}", shown(text)));
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let name = if let Some(inner) = text.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| bad("a quoted identifier must end with a double quote"))?;
            let mut name = String::with_capacity(inner.len());
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        return Err(bad(
                            "double quotes inside a quoted identifier are not accepted",
                        ));
                    }
                    return Err(bad("stray double quote"));
                }
                if c.is_control() || matches!(c, '\'' | '\\' | ';') {
                    return Err(bad(
                        "quoted identifiers may not contain quotes, backslashes, semicolons or control characters",
                    ));
                }
                name.push(c);
            }
            if name.trim().is_empty() {
                return Err(bad("it is empty"));
            }
            name
        } else {
            let mut chars = text.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                return Err(bad(
                    "unquoted names use letters, digits, _ and $ and start with a letter or _ \
                     (wrap other names in double quotes)",
                ));
            }
            text.to_ascii_uppercase()
        };
        if name.chars().count() > MAX_IDENTIFIER_LEN {
            return Err(bad("longer than 255 characters"));
        }
        Ok(Self(name))
    }

    /// The exact name Snowflake stores.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The identifier as SQL: always double-quoted.
    #[must_use]
    pub fn sql(&self) -> String {
        quote_ident(&self.0)
    }
}

impl fmt::Display for Identifier {
    /// The shortest form that means the same: unquoted when that round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = self
            .0
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && self
                .0
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$');
        if plain {
            f.write_str(&self.0)
        } else {
            f.write_str(&quote_ident(&self.0))
        }
    }
}

/// A possibly qualified object name: `TABLE`, `SCHEMA.TABLE` or `DB.SCHEMA.TABLE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(Vec<Identifier>);

impl ObjectName {
    /// Parses `DB.SCHEMA.NAME` (one to three parts; dots inside double quotes do not split).
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] naming `what` when a part is not a safe identifier or there
    /// are more than three parts.
    pub fn parse(what: &str, text: &str) -> Result<Self, SnowflakeError> {
        let parts = split_outside_quotes(text, '.');
        if parts.len() > 3 {
            return Err(SnowflakeError::Usage(format!(
                "invalid {what} {}: write it as NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME",
                shown(text)
            )));
        }
        let parts = parts
            .into_iter()
            .map(|p| Identifier::parse(what, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(parts))
    }

    /// The parts, outermost first.
    #[must_use]
    pub fn parts(&self) -> &[Identifier] {
        &self.0
    }

    /// The name as SQL: every part double-quoted, joined with dots.
    #[must_use]
    pub fn sql(&self) -> String {
        self.0
            .iter()
            .map(Identifier::sql)
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// `text` as a double-quoted identifier (`"` doubled).
#[must_use]
pub fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `text` as a single-quoted string literal. Snowflake treats a backslash inside a literal as
/// an escape, so backslashes are doubled and quotes are doubled.
#[must_use]
pub fn quote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks a path-like value (location, partition, file name) for characters that can only
/// be an attempt to leave a literal, or a mistake.
///
/// # Errors
/// [`SnowflakeError::Usage`] naming `what`.
pub fn check_path_chars(what: &str, text: &str) -> Result<(), SnowflakeError> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || matches!(c, '\'' | '\\' | ';' | '`'))
    {
        return Err(SnowflakeError::Usage(format!(
            "invalid {what} {}: it contains {}, which is not accepted in a path \
             (quotes, backslashes, semicolons and control characters are refused so that \
             nothing can be injected into the SQL)",
            shown(text),
            describe_char(c)
        )));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", u32::from(c))
    } else {
        format!("{c:?}")
    }
}

/// A value shown in an error message: quoted, control characters escaped, long ones cut.
pub(crate) fn shown(text: &str) -> String {
    const MAX: usize = 120;
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > MAX {
        let cut: String = escaped.chars().take(MAX).collect();
        format!("\"{cut}…\"")
    } else {
        format!("\"{escaped}\"")
    }
}

/// Splits on `sep` outside double-quoted sections.
pub(crate) fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_names_are_upper_cased_and_always_quoted_in_sql() {
        let t = ObjectName::parse("table", "raw.events.events_v2").unwrap();
        assert_eq!(t.sql(), r#""RAW"."EVENTS"."EVENTS_V2""#);
        assert_eq!(t.to_string(), "RAW.EVENTS.EVENTS_V2");
    }

    #[test]
    fn quoted_parts_keep_case_and_dots() {
        let t = ObjectName::parse("table", r#"RAW."Events.Daily""#).unwrap();
        assert_eq!(t.parts().len(), 2);
        assert_eq!(t.sql(), r#""RAW"."Events.Daily""#);
        assert_eq!(t.to_string(), r#"RAW."Events.Daily""#);
    }

    #[test]
    fn injection_attempts_are_refused() {
        for bad in [
            "RAW.EVENTS.T; DROP TABLE X",
            "T --",
            r#"RAW."T""; DROP TABLE X; --""#,
            r#""a'b""#,
            "a.b.c.d",
            "",
            "1abc",
            "a b",
            "RAW..T",
        ] {
            let e = ObjectName::parse("table", bad).unwrap_err();
            assert!(matches!(e, SnowflakeError::Usage(_)), "{bad}");
        }
        assert!(check_path_chars("location", "s3://b/x';DROP").is_err());
        assert!(check_path_chars("location", "s3://b/x\\").is_err());
        assert!(check_path_chars("location", "s3://b/date=2025-10-30/a b.json").is_ok());
    }

    #[test]
    fn literals_escape_backslashes_and_quotes() {
        assert_eq!(quote_literal(r"a'b\c"), r"'a''b\\c'");
        assert_eq!(quote_literal(r".*\.json"), r"'.*\\.json'");
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
