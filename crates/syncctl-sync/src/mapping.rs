//! Field mapping: the canonical view of a record both sides are compared in.
//!
//! Each mapped pair gets a canonical name (the source field's name) and a canonical type (the
//! target column's type when it has a specific one, else the source's). A side's value is
//! coerced to that type and passed through the field's transform before it is compared with
//! the other side or the base, so `"42"` in a CSV and `42` in SQLite, or `+1 415 555 0100`
//! and `+14155550100` under `e164`, are the same value and never ping-pong.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use syncctl_core::{FieldType, ObjectSchema, Record, RecordKey};
use syncctl_validate::coerce::{canonical_text, coerce};

use crate::config::{Direction, SyncConfig};
use crate::store::Side;

/// A canonical form applied to both sides' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Phone numbers as `+` and digits (`+1 (415) 555-0100` → `+14155550100`, `0044…` →
    /// `+44…`); numbers without a country code are left as they are.
    E164,
    /// Lower-case text (emails).
    Lowercase,
    /// Upper-case text (country codes).
    Uppercase,
    /// Text without leading and trailing spaces.
    Trim,
}

impl Transform {
    /// Applies the transform to a value (non-text values pass through).
    #[must_use]
    pub fn apply(self, v: &Value) -> Value {
        let Value::String(s) = v else {
            return v.clone();
        };
        Value::String(match self {
            Self::Lowercase => s.to_lowercase(),
            Self::Uppercase => s.to_uppercase(),
            Self::Trim => s.trim().to_owned(),
            Self::E164 => e164(s).unwrap_or_else(|| s.clone()),
        })
    }
}

fn e164(s: &str) -> Option<String> {
    let t = s.trim();
    let (intl, rest) = if let Some(r) = t.strip_prefix('+') {
        (true, r)
    } else if let Some(r) = t.strip_prefix("00") {
        (true, r)
    } else {
        (false, t)
    };
    if !intl {
        return None;
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || " -().".contains(c))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (8..=15)
        .contains(&digits.len())
        .then(|| format!("+{digits}"))
}

/// One mapped field pair.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedField {
    /// The canonical name (the source field's name).
    pub canon: String,
    /// Source field.
    pub source: String,
    /// Target field.
    pub target: String,
    /// Transform.
    pub transform: Option<Transform>,
    /// Effective direction (the field's inside the sync's).
    pub direction: Direction,
    /// Canonical type.
    pub ty: FieldType,
    /// Resolved through another sync's links (source key → that sync's target key).
    pub lookup: Option<crate::config::LinkLookup>,
}

impl MappedField {
    /// The field's name on `side`.
    #[must_use]
    pub fn name(&self, side: Side) -> &str {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }

    /// Whether values of this field may be written to `side`.
    #[must_use]
    pub fn writes_to(&self, side: Side) -> bool {
        match side {
            Side::Source => self.direction.to_source(),
            Side::Target => self.direction.to_target(),
        }
    }

    /// The canonical form of a value read from either side.
    #[must_use]
    pub fn canonical(&self, v: &Value) -> Value {
        let typed = match &self.ty {
            FieldType::Text | FieldType::Other(_) => match v {
                Value::String(_) | Value::Null => v.clone(),
                other => canonical_text(other).map_or(Value::Null, Value::String),
            },
            ty => coerce(v, ty).unwrap_or_else(|_| v.clone()),
        };
        let typed = match &typed {
            Value::String(s) if s.trim().is_empty() => Value::Null,
            _ => typed,
        };
        match self.transform {
            Some(t) => t.apply(&typed),
            None => typed,
        }
    }
}

/// A record in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    /// Its key in its own system.
    pub key: RecordKey,
    /// Canonical values by canonical name.
    pub values: BTreeMap<String, Value>,
    /// Modified time.
    pub updated_at: Option<DateTime<Utc>>,
    /// Reported deleted.
    pub deleted: bool,
}

/// The field mapping of a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Mapped pairs, in config order.
    pub fields: Vec<MappedField>,
    /// Canonical name of the natural key pair.
    pub key: String,
}

impl Mapping {
    /// Builds the mapping against both sides' schemas; lists every problem.
    ///
    /// # Errors
    /// Fields missing on a side, a written field that is read-only or is syncctl's cursor or
    /// origin column on that side.
    pub fn build(
        cfg: &SyncConfig,
        source: &ObjectSchema,
        target: &ObjectSchema,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut fields = Vec::new();
        for f in &cfg.fields {
            let sf = source.field(&f.source);
            let tf = target.field(&f.target);
            if sf.is_none() {
                problems.push(field_missing("source", &f.source, source));
            }
            if tf.is_none() {
                problems.push(field_missing("target", &f.target, target));
            }
            let (Some(sf), Some(tf)) = (sf, tf) else {
                continue;
            };
            let direction = f
                .direction
                .unwrap_or(cfg.direction)
                .within(cfg.direction)
                .unwrap_or(cfg.direction);
            for (side, schema, name, writable) in [
                (Side::Target, target, &f.target, tf.writable),
                (Side::Source, source, &f.source, sf.writable),
            ] {
                let writes = match side {
                    Side::Target => direction.to_target(),
                    Side::Source => direction.to_source(),
                };
                if !writes {
                    continue;
                }
                let managed = schema.updated_at.as_deref() == Some(name.as_str())
                    || schema.origin.as_deref() == Some(name.as_str());
                if !writable || managed {
                    problems.push(format!(
                        "{} field {name:?} cannot be written ({}); give this pair a direction that only reads it",
                        side.as_str(),
                        if managed {
                            "syncctl maintains it as the cursor or origin column"
                        } else {
                            "read-only"
                        }
                    ));
                }
            }
            let ty = match &tf.field_type {
                FieldType::Text | FieldType::Other(_) => sf.field_type.clone(),
                other => other.clone(),
            };
            fields.push(MappedField {
                canon: f.source.clone(),
                source: f.source.clone(),
                target: f.target.clone(),
                transform: f.transform,
                direction,
                ty,
                lookup: f.lookup.clone(),
            });
        }
        if problems.is_empty() {
            Ok(Self {
                fields,
                key: cfg.key.source.clone(),
            })
        } else {
            Err(problems)
        }
    }

    /// The mapped field with canonical name `canon`.
    #[must_use]
    pub fn field(&self, canon: &str) -> Option<&MappedField> {
        self.fields.iter().find(|f| f.canon == canon)
    }

    /// The natural-key field pair.
    #[must_use]
    pub fn key_field(&self) -> Option<&MappedField> {
        self.field(&self.key)
    }

    /// A record of `side` in canonical form.
    #[must_use]
    pub fn project(&self, side: Side, r: &Record) -> Projected {
        let values = self
            .fields
            .iter()
            .map(|f| {
                let raw = r.fields.get(f.name(side)).unwrap_or(&Value::Null);
                (f.canon.clone(), f.canonical(raw))
            })
            .collect();
        Projected {
            key: r.key.clone(),
            values,
            updated_at: r.updated_at,
            deleted: r.deleted,
        }
    }

    /// The natural key of a projected record (canonical text), if it has one.
    #[must_use]
    pub fn natural_key(&self, p: &Projected) -> Option<String> {
        p.values.get(&self.key).and_then(canonical_text)
    }

    /// The natural key of a record of `side`: what [`Mapping::natural_key`] gives for its
    /// projection, without projecting the other fields (pairing asks it of every new record).
    #[must_use]
    pub fn record_natural_key(&self, side: Side, r: &Record) -> Option<String> {
        let kf = self.key_field()?;
        canonical_text(&kf.canonical(r.fields.get(kf.name(side)).unwrap_or(&Value::Null)))
    }

    /// Canonical values renamed to `side`'s field names.
    #[must_use]
    pub fn to_side(&self, side: Side, values: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        values
            .iter()
            .filter_map(|(c, v)| self.field(c).map(|f| (f.name(side).to_owned(), v.clone())))
            .collect()
    }
}

fn field_missing(side: &str, name: &str, schema: &ObjectSchema) -> String {
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    format!(
        "{side} field {name:?} is not a field of {}; it has: {}",
        schema.object,
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn e164_normalises_international_numbers_only() {
        let t = Transform::E164;
        assert_eq!(t.apply(&json!("+1 (415) 555-0100")), json!("+14155550100"));
        assert_eq!(t.apply(&json!("0044 20 7946 0958")), json!("+442079460958"));
        assert_eq!(t.apply(&json!("415 555 0100")), json!("415 555 0100"));
        assert_eq!(t.apply(&json!("+1 call me")), json!("+1 call me"));
        assert_eq!(t.apply(&json!(null)), json!(null));
    }

    #[test]
    fn canonical_values_agree_across_types() {
        let f = MappedField {
            canon: "age".into(),
            source: "age".into(),
            target: "age".into(),
            transform: None,
            direction: Direction::Bidirectional,
            ty: FieldType::Integer,
            lookup: None,
        };
        assert_eq!(f.canonical(&json!("42")), f.canonical(&json!(42)));
        assert_eq!(f.canonical(&json!("")), Value::Null);
        let t = MappedField {
            ty: FieldType::Text,
            transform: Some(Transform::Lowercase),
            ..f
        };
        assert_eq!(t.canonical(&json!("A@B.io")), json!("a@b.io"));
        assert_eq!(t.canonical(&json!(" ")), Value::Null);
    }

    #[test]
    fn a_records_natural_key_is_its_projections() {
        let field = |canon: &str, source: &str, ty: FieldType, transform| MappedField {
            canon: canon.into(),
            source: source.into(),
            target: canon.into(),
            transform,
            direction: Direction::Bidirectional,
            ty,
            lookup: None,
        };
        let m = Mapping {
            fields: vec![
                field(
                    "email",
                    "Email",
                    FieldType::Text,
                    Some(Transform::Lowercase),
                ),
                field("n", "n", FieldType::Integer, None),
            ],
            key: "email".into(),
        };
        for (email, side) in [
            (json!(" A@B.io"), Side::Source),
            (json!(""), Side::Source),
            (json!(null), Side::Source),
            (json!(7), Side::Source),
            (json!("X@y.io"), Side::Target),
        ] {
            let r = Record::new(
                "k",
                [
                    ("Email", email.clone()),
                    ("email", email),
                    ("n", json!("3")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            );
            assert_eq!(
                m.record_natural_key(side, &r),
                m.natural_key(&m.project(side, &r)),
                "{r:?}"
            );
        }
        let keyless = Mapping {
            key: "missing".into(),
            ..m
        };
        let r = Record::new("k", BTreeMap::new());
        assert_eq!(keyless.record_natural_key(Side::Source, &r), None);
    }
}
