//! Connector type rules: what a system's schema says a record it receives must look like.

use std::collections::BTreeMap;

use serde_json::Value;
use syncctl_core::ObjectSchema;

use crate::Violation;
use crate::coerce::{canonical_text, coerce};

/// Every way `fields` breaks `schema`: unknown or read-only fields, values of the wrong type,
/// text longer than the column, nulls in non-null columns, and on creates the non-null fields
/// without a default that are missing.
#[must_use]
pub fn check_against_schema(
    fields: &BTreeMap<String, Value>,
    schema: &ObjectSchema,
    creating: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |field: &str, rule: &str, message: String| {
        out.push(Violation {
            field: field.to_owned(),
            rule: rule.to_owned(),
            message,
        });
    };
    for (name, value) in fields {
        let Some(f) = schema.field(name) else {
            push(
                name,
                "unknown_field",
                format!("{name} is not a field of {}", schema.object),
            );
            continue;
        };
        if !f.writable {
            push(
                name,
                "read_only",
                format!("{name} is read-only in {}", schema.object),
            );
            continue;
        }
        match coerce(value, &f.field_type) {
            Err(e) => push(name, "type", format!("{name}: {e}")),
            Ok(Value::Null) if !f.nullable => push(
                name,
                "not_null",
                format!("{name} cannot be empty in {}", schema.object),
            ),
            Ok(v) => {
                if let (Some(max), Some(text)) = (f.max_length, canonical_text(&v)) {
                    let len = text.chars().count();
                    if len > max as usize {
                        push(
                            name,
                            "max_length",
                            format!(
                                "{name} is {len} characters; {} holds at most {max}",
                                schema.object
                            ),
                        );
                    }
                }
            }
        }
    }
    if creating {
        for f in &schema.fields {
            let generated_key = f.name == schema.key && schema.capabilities.generated_keys;
            let managed = schema.updated_at.as_deref() == Some(f.name.as_str())
                || schema.origin.as_deref() == Some(f.name.as_str())
                || schema.deleted.as_deref() == Some(f.name.as_str());
            if !f.nullable
                && !f.has_default
                && !generated_key
                && !managed
                && !fields.contains_key(&f.name)
            {
                push(
                    &f.name,
                    "not_null",
                    format!(
                        "{} is required by {} but not mapped or empty",
                        f.name, schema.object
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use syncctl_core::{Capabilities, FieldSchema, FieldType};

    fn schema() -> ObjectSchema {
        let mut id = FieldSchema::text("id");
        id.field_type = FieldType::Integer;
        id.nullable = false;
        let mut email = FieldSchema::text("email");
        email.nullable = false;
        email.max_length = Some(10);
        let mut age = FieldSchema::text("age");
        age.field_type = FieldType::Integer;
        let mut created = FieldSchema::text("created");
        created.writable = false;
        ObjectSchema {
            object: "people".into(),
            key: "id".into(),
            updated_at: None,
            deleted: None,
            origin: None,
            fields: vec![id, email, age, created],
            capabilities: Capabilities::full(),
            max_batch: 100,
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let fields = BTreeMap::from([
            ("email".to_owned(), json!("much-too-long@example.com")),
            ("age".to_owned(), json!("old")),
            ("created".to_owned(), json!("x")),
            ("nope".to_owned(), json!(1)),
        ]);
        let v = check_against_schema(&fields, &schema(), false);
        let rules: Vec<_> = v.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["type", "read_only", "max_length", "unknown_field"],
            "{v:?}"
        );
    }

    #[test]
    fn creates_need_non_null_fields_but_not_generated_keys() {
        let v = check_against_schema(&BTreeMap::new(), &schema(), true);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "email");
        let ok = BTreeMap::from([
            ("email".to_owned(), json!("a@b.co")),
            ("age".to_owned(), json!("41")),
        ]);
        assert!(check_against_schema(&ok, &schema(), true).is_empty());
    }
}
