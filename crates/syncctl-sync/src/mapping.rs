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
    /// For a list of records: how each element's fields map (empty for a plain field).
    pub elements: Vec<crate::config::ElementMap>,
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
        if !self.elements.is_empty() {
            return canonical_elements(&self.elements, v);
        }
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

/// A list field's canonical form: one object per element, keyed by the element fields'
/// source names, each value as canonical text (numbers in their shortest form, so HubSpot's
/// `"10.00"` and QuickBooks' `10` agree). A value is found under the source name, else at the
/// target path, so both sides' elements project alike. Elements without the first element
/// field are not part of the list; an empty list is null.
fn canonical_elements(elements: &[crate::config::ElementMap], v: &Value) -> Value {
    let Value::Array(items) = v else {
        return Value::Null;
    };
    let out: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let values: serde_json::Map<String, Value> = elements
                .iter()
                .map(|e| {
                    let raw = element_value(item, &e.source)
                        .or_else(|| element_value(item, &e.target))
                        .unwrap_or(&Value::Null);
                    (e.source.clone(), canonical_element_value(raw))
                })
                .collect();
            let first = elements.first()?;
            (!values[&first.source].is_null()).then_some(Value::Object(values))
        })
        .collect();
    if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    }
}

/// The value at `path` in a list element: the key itself, else a dotted path into nested
/// objects (`SalesItemLineDetail.ItemRef.value`).
#[must_use]
pub fn element_value<'v>(item: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = item.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(item, |at, key| at.get(key))
}

fn canonical_element_value(v: &Value) -> Value {
    let Some(text) = canonical_text(v) else {
        return Value::Null;
    };
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(n) if n.is_finite() && !t.starts_with('+') => serde_json::Number::from_f64(n)
            .and_then(|n| canonical_text(&Value::Number(n)))
            .map_or_else(|| Value::String(t.to_owned()), Value::String),
        _ => Value::String(t.to_owned()),
    }
}

/// A canonical list (see [`canonical_elements`]) in `side`'s shape: element fields renamed to
/// that side's names, dotted paths nested, empty values left out.
fn render_elements(elements: &[crate::config::ElementMap], side: Side, v: &Value) -> Value {
    let Value::Array(items) = v else {
        return v.clone();
    };
    Value::Array(
        items
            .iter()
            .map(|item| {
                let mut out = serde_json::Map::new();
                for e in elements {
                    let Some(val) = item.get(&e.source).filter(|v| !v.is_null()) else {
                        continue;
                    };
                    let name = match side {
                        Side::Source => &e.source,
                        Side::Target => &e.target,
                    };
                    set_path(&mut out, name, val.clone());
                }
                Value::Object(out)
            })
            .collect(),
    )
}

fn set_path(obj: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(m) = inner {
                set_path(m, rest, value);
            }
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
            // A lookup's value is the target's key once resolved: it compares as the target
            // field's type (a list of associated ids becomes one customer id).
            let ty = match &tf.field_type {
                _ if f.lookup.is_some() => tf.field_type.clone(),
                FieldType::Text | FieldType::Other(_) => sf.field_type.clone(),
                other => other.clone(),
            };
            if !f.elements.is_empty() && tf.field_type != FieldType::Json {
                problems.push(format!(
                    "target field {:?} is not a list ({}), so it cannot take elements",
                    f.target, tf.field_type
                ));
            }
            fields.push(MappedField {
                canon: f.source.clone(),
                source: f.source.clone(),
                target: f.target.clone(),
                transform: f.transform,
                direction,
                ty,
                lookup: f.lookup.clone(),
                elements: f.elements.clone(),
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
            .filter_map(|(c, v)| {
                self.field(c).map(|f| {
                    let v = if f.elements.is_empty() {
                        v.clone()
                    } else {
                        render_elements(&f.elements, side, v)
                    };
                    (f.name(side).to_owned(), v)
                })
            })
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
            elements: Vec::new(),
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
    fn list_fields_compare_element_by_element_in_either_sides_shape() {
        let e = |source: &str, target: &str| crate::config::ElementMap {
            source: source.into(),
            target: target.into(),
            lookup: None,
        };
        let f = MappedField {
            canon: "line_items".into(),
            source: "line_items".into(),
            target: "Line".into(),
            transform: None,
            direction: Direction::SourceToTarget,
            ty: FieldType::Json,
            lookup: None,
            elements: vec![
                e("hs_product_id", "SalesItemLineDetail.ItemRef.value"),
                e("quantity", "SalesItemLineDetail.Qty"),
                e("amount", "Amount"),
            ],
        };
        let hubspot = json!([{"id": "9", "hs_product_id": "3", "quantity": "2", "amount": "20.00", "name": "x"}]);
        let quickbooks = json!([
            {"Id": "1", "LineNum": 1, "Amount": 20, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "3", "name": "Widget"}, "Qty": 2}},
            {"Amount": 20, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
        ]);
        let canon = f.canonical(&hubspot);
        assert_eq!(
            canon,
            json!([{"hs_product_id": "3", "quantity": "2", "amount": "20"}])
        );
        assert_eq!(
            f.canonical(&quickbooks),
            canon,
            "the subtotal line is not an element"
        );
        let m = Mapping {
            fields: vec![f.clone()],
            key: "line_items".into(),
        };
        let values: BTreeMap<String, Value> = [("line_items".to_owned(), canon)].into();
        assert_eq!(
            m.to_side(Side::Target, &values)["Line"],
            json!([{"Amount": "20", "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "Qty": "2"}}])
        );
        assert_eq!(
            f.canonical(&json!([])),
            Value::Null,
            "an empty list is empty"
        );
        let changed = json!([{"hs_product_id": "3", "quantity": "3", "amount": "30"}]);
        assert_ne!(f.canonical(&changed), f.canonical(&quickbooks));
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
            elements: Vec::new(),
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
