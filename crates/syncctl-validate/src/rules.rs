//! Per-field rules from the sync config (`email: [required, email]`), checked against every
//! record before it is written.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::Violation;
use crate::coerce::{canonical_text, parse_timestamp, to_bool, to_f64, to_i64};

/// One rule, written in config as a word (`required`) or a one-key map (`{max_length: 100}`).
#[derive(Debug, Clone)]
pub enum Rule {
    /// The value must be present and not blank (on creates, the field must be given).
    Required,
    /// An email address (`local@domain.tld`, no spaces).
    Email,
    /// A phone number in E.164 form (`+` and 8 to 15 digits).
    Phone,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// A boolean.
    Boolean,
    /// A date or timestamp.
    Date,
    /// At most this many characters.
    MaxLength(usize),
    /// At least this many characters.
    MinLength(usize),
    /// A number at least this large.
    Min(f64),
    /// A number at most this large.
    Max(f64),
    /// The whole value matches this regular expression.
    Pattern(Regex),
    /// One of these values (compared as text).
    OneOf(Vec<String>),
}

impl Rule {
    /// The rule's name as written in config.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::MaxLength(_) => "max_length",
            Self::MinLength(_) => "min_length",
            Self::Min(_) => "min",
            Self::Max(_) => "max",
            Self::Pattern(_) => "pattern",
            Self::OneOf(_) => "one_of",
        }
    }

    /// Why `value` breaks this rule, or `None` if it passes. Absent and blank values pass every
    /// rule but `required`.
    #[must_use]
    pub fn check(&self, value: Option<&Value>) -> Option<String> {
        let text = value.and_then(canonical_text);
        let Some(text) = text else {
            return matches!(self, Self::Required).then(|| "is required".to_owned());
        };
        let v = value.unwrap_or(&Value::Null);
        let ok = match self {
            Self::Required => true,
            Self::Email => is_email(&text),
            Self::Phone => is_e164(&text),
            Self::Integer => to_i64(v).is_some(),
            Self::Number => to_f64(v).is_some(),
            Self::Boolean => to_bool(v).is_some(),
            Self::Date => parse_timestamp(&text).is_some(),
            Self::MaxLength(n) => text.chars().count() <= *n,
            Self::MinLength(n) => text.chars().count() >= *n,
            Self::Min(m) => to_f64(v).is_some_and(|x| x >= *m),
            Self::Max(m) => to_f64(v).is_some_and(|x| x <= *m),
            Self::Pattern(re) => re.is_match(&text),
            Self::OneOf(options) => options.contains(&text),
        };
        (!ok).then(|| self.explain())
    }

    fn explain(&self) -> String {
        match self {
            Self::Required => "is required".to_owned(),
            Self::Email => "is not an email address".to_owned(),
            Self::Phone => "is not an E.164 phone number (+ and 8 to 15 digits)".to_owned(),
            Self::Integer => "is not a whole number".to_owned(),
            Self::Number => "is not a number".to_owned(),
            Self::Boolean => "is not a boolean".to_owned(),
            Self::Date => "is not a date".to_owned(),
            Self::MaxLength(n) => format!("is longer than {n} characters"),
            Self::MinLength(n) => format!("is shorter than {n} characters"),
            Self::Min(m) => format!("is not a number >= {m}"),
            Self::Max(m) => format!("is not a number <= {m}"),
            Self::Pattern(re) => format!("does not match {}", re.as_str()),
            Self::OneOf(o) => format!("is not one of {}", o.join(", ")),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@')
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    })
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Value::deserialize(d)?;
        parse_rule(&raw).map_err(D::Error::custom)
    }
}

const RULE_WORDS: &str = "required, email, phone, integer, number, boolean, date, \
{max_length: N}, {min_length: N}, {min: X}, {max: X}, {pattern: REGEX}, {one_of: [..]}";

fn parse_rule(raw: &Value) -> Result<Rule, String> {
    match raw {
        Value::String(w) => match w.as_str() {
            "required" => Ok(Rule::Required),
            "email" => Ok(Rule::Email),
            "phone" | "e164" => Ok(Rule::Phone),
            "integer" => Ok(Rule::Integer),
            "number" => Ok(Rule::Number),
            "boolean" => Ok(Rule::Boolean),
            "date" | "timestamp" => Ok(Rule::Date),
            other => Err(format!("unknown rule {other:?}; rules are {RULE_WORDS}")),
        },
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().ok_or("empty rule")?;
            let count = || {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("{k} takes a whole number, got {v}"))
            };
            let num = || {
                v.as_f64()
                    .ok_or_else(|| format!("{k} takes a number, got {v}"))
            };
            match k.as_str() {
                "max_length" => count().map(Rule::MaxLength),
                "min_length" => count().map(Rule::MinLength),
                "min" => num().map(Rule::Min),
                "max" => num().map(Rule::Max),
                "pattern" => {
                    let p = v.as_str().ok_or("pattern takes a string")?;
                    Regex::new(&format!("^(?:{p})$"))
                        .map(Rule::Pattern)
                        .map_err(|e| {
                            format!("pattern {p:?} is not a valid regular expression: {e}")
                        })
                }
                "one_of" => {
                    let items = v.as_array().ok_or("one_of takes a list")?;
                    Ok(Rule::OneOf(
                        items.iter().filter_map(canonical_text).collect(),
                    ))
                }
                other => Err(format!("unknown rule {other:?}; rules are {RULE_WORDS}")),
            }
        }
        other => Err(format!("a rule is a word or a one-key map, got {other}")),
    }
}

/// Rules per field name (the name on the side being written).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct RuleSet {
    /// Field name → its rules.
    pub fields: BTreeMap<String, Vec<Rule>>,
}

impl RuleSet {
    /// Every violation in the `fields` about to be written. On a create, absent fields are
    /// checked as null (so `required` fires); on an update only the fields written are checked.
    #[must_use]
    pub fn check(&self, fields: &BTreeMap<String, Value>, creating: bool) -> Vec<Violation> {
        let mut out = Vec::new();
        for (name, rules) in &self.fields {
            let value = fields.get(name);
            if value.is_none() && !creating {
                continue;
            }
            for rule in rules {
                if let Some(message) = rule.check(value) {
                    out.push(Violation {
                        field: name.clone(),
                        rule: rule.name().to_owned(),
                        message: format!("{name} {message}"),
                    });
                }
            }
        }
        out
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(yaml_like: Value) -> RuleSet {
        serde_json::from_value(yaml_like).unwrap()
    }

    #[test]
    fn words_and_maps_parse() {
        let r = rules(json!({"email": ["required", "email"], "name": [{"max_length": 3}]}));
        let bad = BTreeMap::from([
            ("email".to_owned(), json!("nope")),
            ("name".to_owned(), json!("abcd")),
        ]);
        let v = r.check(&bad, true);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].message, "email is not an email address");
        assert_eq!(v[1].message, "name is longer than 3 characters");
    }

    #[test]
    fn required_fires_on_creates_and_on_blanking_updates_only() {
        let r = rules(json!({"email": ["required"]}));
        assert_eq!(r.check(&BTreeMap::new(), true).len(), 1);
        assert!(r.check(&BTreeMap::new(), false).is_empty());
        let blank = BTreeMap::from([("email".to_owned(), json!(" "))]);
        assert_eq!(r.check(&blank, false).len(), 1);
    }

    #[test]
    fn unknown_rules_are_named() {
        let e = serde_json::from_value::<RuleSet>(json!({"x": ["emial"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown rule \"emial\""), "{e}");
        let e = serde_json::from_value::<RuleSet>(json!({"x": [{"pattern": "("}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid regular expression"), "{e}");
    }

    #[test]
    fn formats() {
        assert!(is_email("a.b@example.co.uk"));
        for bad in ["a@b", "@b.com", "a b@c.com", "a@.com", "a@b..com"] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("4155550100"));
        assert!(!is_e164("+1 415"));
        let one = rules(json!({"s": [{"one_of": ["a", 1]}]}));
        assert!(
            one.check(&BTreeMap::from([("s".into(), json!("1"))]), false)
                .is_empty()
        );
    }
}
