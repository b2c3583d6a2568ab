//! The entities syncctl syncs (Customer, Item, Invoice) and how their JSON maps to records.
//!
//! Records use **dotted field names** for nested elements (`PrimaryEmailAddr.Address`,
//! `BillAddr.City`, `CustomerRef.value`), the element names of Intuit's XSD
//! (`Finance.xsd`). Arrays (an invoice's `Line`) stay JSON. Reads flatten every element the
//! API returns; writes accept only the writable fields listed here and nest them back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use syncctl_core::{FieldSchema, FieldType, Record, RecordKey};

/// An entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A customer (name list: deactivated with `Active=false`, never deleted).
    Customer,
    /// A product or service (name list).
    Item,
    /// A sales invoice (transaction: can be deleted).
    Invoice,
}

/// One field of an entity.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// Dotted name (`BillAddr.City`).
    pub name: &'static str,
    /// Type for validation and conversion.
    pub kind: Kind,
    /// Whether syncctl may write it.
    pub writable: bool,
    /// Longest text Intuit accepts, when documented.
    pub max_length: Option<u32>,
}

/// Field types as the API uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A decimal number (sent as a JSON number).
    Decimal,
    /// A boolean.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 with offset.
    Timestamp,
    /// Kept as JSON (lines).
    Json,
}

const fn f(name: &'static str, kind: Kind, writable: bool, max: u32) -> FieldDef {
    FieldDef {
        name,
        kind,
        writable,
        max_length: if max == 0 { None } else { Some(max) },
    }
}

const META: [FieldDef; 4] = [
    f("Id", Kind::Text, false, 0),
    f("SyncToken", Kind::Text, false, 0),
    f("MetaData.CreateTime", Kind::Timestamp, false, 0),
    f("MetaData.LastUpdatedTime", Kind::Timestamp, false, 0),
];

const CUSTOMER: &[FieldDef] = &[
    f("DisplayName", Kind::Text, true, 500),
    f("Title", Kind::Text, true, 16),
    f("GivenName", Kind::Text, true, 100),
    f("MiddleName", Kind::Text, true, 100),
    f("FamilyName", Kind::Text, true, 100),
    f("Suffix", Kind::Text, true, 16),
    f("CompanyName", Kind::Text, true, 100),
    f("PrintOnCheckName", Kind::Text, true, 110),
    f("FullyQualifiedName", Kind::Text, false, 0),
    f("Active", Kind::Boolean, true, 0),
    f("PrimaryEmailAddr.Address", Kind::Text, true, 100),
    f("PrimaryPhone.FreeFormNumber", Kind::Text, true, 30),
    f("Mobile.FreeFormNumber", Kind::Text, true, 30),
    f("Fax.FreeFormNumber", Kind::Text, true, 30),
    f("WebAddr.URI", Kind::Text, true, 1000),
    f("BillAddr.Line1", Kind::Text, true, 500),
    f("BillAddr.Line2", Kind::Text, true, 500),
    f("BillAddr.City", Kind::Text, true, 255),
    f("BillAddr.CountrySubDivisionCode", Kind::Text, true, 255),
    f("BillAddr.PostalCode", Kind::Text, true, 30),
    f("BillAddr.Country", Kind::Text, true, 255),
    f("ShipAddr.Line1", Kind::Text, true, 500),
    f("ShipAddr.City", Kind::Text, true, 255),
    f("ShipAddr.CountrySubDivisionCode", Kind::Text, true, 255),
    f("ShipAddr.PostalCode", Kind::Text, true, 30),
    f("ShipAddr.Country", Kind::Text, true, 255),
    f("Notes", Kind::Text, true, 2000),
    f("Taxable", Kind::Boolean, true, 0),
    f("Balance", Kind::Decimal, false, 0),
];

const ITEM: &[FieldDef] = &[
    f("Name", Kind::Text, true, 100),
    f("Sku", Kind::Text, true, 100),
    f("Description", Kind::Text, true, 4000),
    f("FullyQualifiedName", Kind::Text, false, 0),
    f("Active", Kind::Boolean, true, 0),
    f("Type", Kind::Text, true, 0),
    f("UnitPrice", Kind::Decimal, true, 0),
    f("PurchaseCost", Kind::Decimal, true, 0),
    f("Taxable", Kind::Boolean, true, 0),
    f("IncomeAccountRef.value", Kind::Text, true, 0),
    f("ExpenseAccountRef.value", Kind::Text, true, 0),
];

const INVOICE: &[FieldDef] = &[
    f("DocNumber", Kind::Text, true, 21),
    f("TxnDate", Kind::Date, true, 0),
    f("DueDate", Kind::Date, true, 0),
    f("CustomerRef.value", Kind::Text, true, 0),
    f("BillEmail.Address", Kind::Text, true, 100),
    f("PrivateNote", Kind::Text, true, 4000),
    f("CustomerMemo.value", Kind::Text, true, 1000),
    f("Line", Kind::Json, true, 0),
    f("TotalAmt", Kind::Decimal, false, 0),
    f("Balance", Kind::Decimal, false, 0),
];

impl Entity {
    /// Every entity syncctl supports.
    pub const ALL: [Entity; 3] = [Entity::Customer, Entity::Item, Entity::Invoice];

    /// Parses `Customer`, `Item` or `Invoice` (case-insensitive, `customers` accepted).
    ///
    /// # Errors
    /// Names the supported entities.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().trim_end_matches('s') {
            "customer" => Ok(Self::Customer),
            "item" => Ok(Self::Item),
            "invoice" => Ok(Self::Invoice),
            _ => Err(format!(
                "unknown QuickBooks object {name:?}; supported: Customer, Item, Invoice"
            )),
        }
    }

    /// The entity name as the API spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Customer => "Customer",
            Self::Item => "Item",
            Self::Invoice => "Invoice",
        }
    }

    /// Name-list entities cannot be deleted, only deactivated (`Active=false`).
    #[must_use]
    pub fn is_name_list(self) -> bool {
        matches!(self, Self::Customer | Self::Item)
    }

    /// The field whose value must be unique (DisplayName, Name), if any.
    #[must_use]
    pub fn unique_name_field(self) -> Option<&'static str> {
        match self {
            Self::Customer => Some("DisplayName"),
            Self::Item => Some("Name"),
            Self::Invoice => None,
        }
    }

    /// Every field: Id, SyncToken, MetaData times, then the entity's own.
    pub fn fields(self) -> impl Iterator<Item = &'static FieldDef> {
        let own = match self {
            Self::Customer => CUSTOMER,
            Self::Item => ITEM,
            Self::Invoice => INVOICE,
        };
        META.iter().chain(own.iter())
    }

    /// The field named `name`.
    #[must_use]
    pub fn field(self, name: &str) -> Option<&'static FieldDef> {
        self.fields().find(|f| f.name == name)
    }

    /// The fields as the platform's schema.
    #[must_use]
    pub fn field_schemas(self) -> Vec<FieldSchema> {
        self.fields()
            .map(|d| FieldSchema {
                name: d.name.to_owned(),
                field_type: match d.kind {
                    Kind::Text => FieldType::Text,
                    Kind::Decimal => FieldType::Decimal,
                    Kind::Boolean => FieldType::Boolean,
                    Kind::Date => FieldType::Date,
                    Kind::Timestamp => FieldType::Timestamp,
                    Kind::Json => FieldType::Json,
                },
                nullable: !matches!(d.name, "Id" | "SyncToken"),
                writable: d.writable,
                unique: Some(d.name) == self.unique_name_field() || d.name == "Id",
                max_length: d.max_length,
                has_default: !d.writable || d.name == "Active",
                normalisation: Vec::new(),
            })
            .collect()
    }
}

/// Flattens an entity object into dotted fields (`{"BillAddr":{"City":"X"}}` →
/// `BillAddr.City = "X"`); arrays stay JSON.
#[must_use]
pub fn flatten(obj: &Map<String, Value>) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, obj: &Map<String, Value>, out: &mut BTreeMap<String, Value>) {
        for (k, v) in obj {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(inner) => walk(&name, inner, out),
                other => {
                    out.insert(name, other.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", obj, &mut out);
    out
}

/// Sets `value` at a dotted path inside `obj`, creating nested objects.
pub fn set_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(m) = inner {
                set_path(m, rest, value);
            }
        }
    }
}

/// Parses Intuit's timestamps (`2015-12-23T12:55:50-08:00`).
#[must_use]
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A record from an entity object as the API returns it. CDC's deleted objects
/// (`"status":"Deleted"`) and deactivated name-list objects (`"Active":false`) are
/// `deleted`.
#[must_use]
pub fn to_record(entity: Entity, obj: &Map<String, Value>) -> Option<Record> {
    let id = obj.get("Id")?.as_str()?.to_owned();
    let mut fields = flatten(obj);
    let updated_at = fields.get("MetaData.LastUpdatedTime").and_then(parse_time);
    let status_deleted = obj
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("Deleted"));
    let inactive = entity.is_name_list() && obj.get("Active") == Some(&Value::Bool(false));
    // Attributes of the envelope, not data.
    for attr in ["domain", "sparse", "status"] {
        fields.remove(attr);
    }
    let version = obj
        .get("SyncToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(Record {
        key: RecordKey(id),
        fields,
        updated_at,
        deleted: status_deleted || inactive,
        version,
    })
}

/// Converts one value to what the API takes for `def`; `Err` says why not.
///
/// # Errors
/// The value cannot be converted (a word in a number field).
pub fn to_wire(def: &FieldDef, v: &Value) -> Result<Value, String> {
    let bad = || format!("{}: cannot send {v} as {:?}", def.name, def.kind);
    Ok(match (def.kind, v) {
        // A null clears a text field; QuickBooks clears on an empty string.
        (Kind::Text, Value::Null) => Value::String(String::new()),
        (_, Value::Null) => Value::Null,
        (Kind::Text, Value::String(s)) => {
            if let Some(max) = def.max_length
                && s.chars().count() > max as usize
            {
                return Err(format!(
                    "{}: longer than QuickBooks' {max} characters",
                    def.name
                ));
            }
            Value::String(s.clone())
        }
        (Kind::Text, Value::Number(n)) => Value::String(n.to_string()),
        (Kind::Text, Value::Bool(b)) => Value::String(b.to_string()),
        (Kind::Decimal, Value::Number(_)) => v.clone(),
        (Kind::Decimal, Value::String(s)) => {
            let n: f64 = s.trim().parse().map_err(|_| bad())?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(bad)?
        }
        (Kind::Boolean, Value::Bool(_)) => v.clone(),
        (Kind::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad()),
        },
        (Kind::Boolean, Value::Number(n)) => Value::Bool(n.as_i64() != Some(0)),
        (Kind::Date, Value::String(s)) => {
            let day = s.get(..10).unwrap_or(s);
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad())?;
            Value::String(day.to_owned())
        }
        (Kind::Json, Value::Array(_) | Value::Object(_)) => v.clone(),
        (Kind::Json, Value::String(s)) => serde_json::from_str(s).map_err(|_| bad())?,
        _ => return Err(bad()),
    })
}

/// Builds the entity body for a create or sparse update from dotted fields.
///
/// # Errors
/// The first field that is unknown, read-only or cannot be converted.
pub fn to_body(
    entity: Entity,
    fields: &BTreeMap<String, Value>,
) -> Result<Map<String, Value>, (String, String)> {
    let mut body = Map::new();
    for (name, v) in fields {
        let Some(def) = entity.field(name) else {
            return Err((
                name.clone(),
                format!("{} has no field {name}", entity.name()),
            ));
        };
        if !def.writable {
            if matches!(name.as_str(), "Id" | "SyncToken") || name.starts_with("MetaData.") {
                continue;
            }
            return Err((name.clone(), format!("{name} is read-only in QuickBooks")));
        }
        let mut wire = to_wire(def, v).map_err(|m| (name.clone(), m))?;
        if wire.is_null() {
            continue;
        }
        if entity == Entity::Invoice && name == "Line" {
            wire = typed_lines(&wire).map_err(|m| (name.clone(), m))?;
        }
        set_path(&mut body, name, wire);
    }
    Ok(body)
}

/// Invoice lines with the XSD's types (`Finance.xsd` `Line`, `SalesItemLineDetail`): `Amount`,
/// `Qty` and `UnitPrice` are decimals (a mapping may hand them over as text, as HubSpot keeps
/// them), `ItemRef.value` is text, and a line with a `SalesItemLineDetail` and no `DetailType`
/// is a `SalesItemLineDetail` line.
///
/// # Errors
/// A line that is not an object, or a decimal that is not a number.
pub fn typed_lines(lines: &Value) -> Result<Value, String> {
    let Value::Array(items) = lines else {
        return Err("Line must be a list of lines".to_owned());
    };
    let decimal = |at: &str, v: &mut Value| -> Result<(), String> {
        match v {
            Value::String(s) => {
                let n: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("Line {at}: {s:?} is not a number"))?;
                *v = serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| format!("Line {at}: {s:?} is not a number"))?;
                Ok(())
            }
            Value::Number(_) | Value::Null => Ok(()),
            other => Err(format!("Line {at}: {other} is not a number")),
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(line) = item else {
            return Err(format!("Line: {item} is not a line object"));
        };
        let mut line = line.clone();
        if let Some(v) = line.get_mut("Amount") {
            decimal("Amount", v)?;
        }
        if let Some(Value::Object(detail)) = line.get_mut("SalesItemLineDetail") {
            for k in ["Qty", "UnitPrice"] {
                if let Some(v) = detail.get_mut(k) {
                    decimal(k, v)?;
                }
            }
            if let Some(Value::Object(r)) = detail.get_mut("ItemRef")
                && let Some(Value::Number(n)) = r.get("value").cloned()
            {
                r.insert("value".to_owned(), Value::String(n.to_string()));
            }
            line.entry("DetailType")
                .or_insert_with(|| Value::String("SalesItemLineDetail".to_owned()));
        }
        out.push(Value::Object(line));
    }
    Ok(Value::Array(out))
}

/// A DisplayName derived from a customer's names (`Title Given Middle Family Suffix`), else
/// the company name, else the email. Colons, tabs and newlines (refused by QuickBooks) become
/// spaces.
#[must_use]
pub fn derive_display_name(fields: &BTreeMap<String, Value>) -> Option<String> {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let person: Vec<&str> = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"]
        .iter()
        .filter_map(|k| text(k))
        .collect();
    let name = if person.is_empty() {
        text("CompanyName")
            .or_else(|| text("PrimaryEmailAddr.Address"))?
            .to_owned()
    } else {
        person.join(" ")
    };
    Some(clean_name(&name))
}

/// Replaces the characters QuickBooks refuses in names and caps the length at 500.
#[must_use]
pub fn clean_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if matches!(c, ':' | '\t' | '\n' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned.trim().chars().take(500).collect()
}

/// The disambiguated names tried after a 6240 clash, in order: `Name (email)`, then
/// `Name (email) 2`, `… 3`. Without an email: `Name 2`, `Name 3`.
#[must_use]
pub fn disambiguations(base: &str, email: Option<&str>) -> Vec<String> {
    let stem = match email.filter(|e| !e.trim().is_empty()) {
        Some(e) if !base.contains(e.trim()) => clean_name(&format!("{base} ({})", e.trim())),
        _ => base.to_owned(),
    };
    let mut out = Vec::new();
    if stem != base {
        out.push(stem.clone());
    }
    for n in 2..=4 {
        out.push(clean_name(&format!("{stem} {n}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_and_nest_round_trip() {
        let obj = json!({"Id":"7","SyncToken":"2","PrimaryEmailAddr":{"Address":"a@x.com"},"BillAddr":{"City":"Oslo","Line1":"1 Main"},"Active":true,"domain":"QBO","sparse":false,"MetaData":{"CreateTime":"2015-12-23T12:55:50-08:00","LastUpdatedTime":"2015-12-23T12:55:50-08:00"}});
        let rec = to_record(Entity::Customer, obj.as_object().unwrap()).unwrap();
        assert_eq!(rec.key.as_str(), "7");
        assert_eq!(rec.fields["PrimaryEmailAddr.Address"], json!("a@x.com"));
        assert_eq!(rec.fields["BillAddr.City"], json!("Oslo"));
        assert!(!rec.fields.contains_key("domain"));
        assert_eq!(
            rec.updated_at.unwrap().to_rfc3339(),
            "2015-12-23T20:55:50+00:00"
        );
        assert!(!rec.deleted);
        let body = to_body(Entity::Customer, &rec.fields).unwrap();
        assert_eq!(body["BillAddr"], json!({"City":"Oslo","Line1":"1 Main"}));
        assert!(!body.contains_key("Id") && !body.contains_key("MetaData"));
    }

    #[test]
    fn deleted_and_inactive_records() {
        let cdc = json!({"status":"Deleted","domain":"QBO","Id":"979","MetaData":{"LastUpdatedTime":"2015-12-23T12:55:50-08:00"}});
        assert!(
            to_record(Entity::Invoice, cdc.as_object().unwrap())
                .unwrap()
                .deleted
        );
        let inactive = json!({"Id":"1","Active":false});
        assert!(
            to_record(Entity::Customer, inactive.as_object().unwrap())
                .unwrap()
                .deleted
        );
    }

    #[test]
    fn writes_convert_or_refuse() {
        let fields = |pairs: &[(&str, Value)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let b = to_body(
            Entity::Item,
            &fields(&[
                ("UnitPrice", json!("12.50")),
                ("Active", json!("false")),
                ("Name", json!(42)),
            ]),
        )
        .unwrap();
        assert_eq!(b["UnitPrice"], json!(12.5));
        assert_eq!(b["Active"], json!(false));
        assert_eq!(b["Name"], json!("42"));
        let e = to_body(Entity::Item, &fields(&[("UnitPrice", json!("lots"))])).unwrap_err();
        assert_eq!(e.0, "UnitPrice");
        let e = to_body(Entity::Customer, &fields(&[("Balance", json!(3))])).unwrap_err();
        assert!(e.1.contains("read-only"));
        let e = to_body(Entity::Customer, &fields(&[("Nope", json!(3))])).unwrap_err();
        assert!(e.1.contains("no field"));
        let e = to_body(
            Entity::Customer,
            &fields(&[("Title", json!("a very long title indeed"))]),
        )
        .unwrap_err();
        assert!(e.1.contains("16 characters"));
        let b = to_body(Entity::Customer, &fields(&[("GivenName", Value::Null)])).unwrap();
        assert_eq!(b["GivenName"], json!(""));
    }

    #[test]
    fn invoice_lines_get_the_schemas_types() {
        let lines = json!([{"Amount": "20", "Description": "Widget",
            "SalesItemLineDetail": {"ItemRef": {"value": 5}, "Qty": "2", "UnitPrice": "10.5"}}]);
        let typed = typed_lines(&lines).unwrap();
        assert_eq!(
            typed,
            json!([{"Amount": 20.0, "Description": "Widget", "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "Qty": 2.0, "UnitPrice": 10.5}}])
        );
        let bad = json!([{"Amount": "lots"}]);
        assert!(typed_lines(&bad).unwrap_err().contains("Amount"));
        let fields: BTreeMap<String, Value> = [("Line".to_owned(), lines)].into_iter().collect();
        let body = to_body(Entity::Invoice, &fields).unwrap();
        assert_eq!(body["Line"], typed);
    }

    #[test]
    fn display_names_are_derived_and_disambiguated() {
        let m: BTreeMap<String, Value> = [
            ("GivenName".to_owned(), json!("Ann")),
            ("FamilyName".to_owned(), json!("Lee:Smith")),
            ("PrimaryEmailAddr.Address".to_owned(), json!("ann@x.com")),
        ]
        .into_iter()
        .collect();
        assert_eq!(derive_display_name(&m).unwrap(), "Ann Lee Smith");
        let only_mail: BTreeMap<String, Value> =
            [("PrimaryEmailAddr.Address".to_owned(), json!("z@x.com"))]
                .into_iter()
                .collect();
        assert_eq!(derive_display_name(&only_mail).unwrap(), "z@x.com");
        assert_eq!(
            disambiguations("Ann Lee", Some("ann@x.com")),
            [
                "Ann Lee (ann@x.com)",
                "Ann Lee (ann@x.com) 2",
                "Ann Lee (ann@x.com) 3",
                "Ann Lee (ann@x.com) 4"
            ]
        );
        assert_eq!(disambiguations("z@x.com", Some("z@x.com"))[0], "z@x.com 2");
    }

    #[test]
    fn entity_names() {
        assert_eq!(Entity::parse("customers").unwrap(), Entity::Customer);
        assert_eq!(Entity::parse("Invoice").unwrap(), Entity::Invoice);
        assert!(
            Entity::parse("Vendor")
                .unwrap_err()
                .contains("Customer, Item, Invoice")
        );
    }
}
