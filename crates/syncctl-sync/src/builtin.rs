//! Built-in mappings: sync configs shipped inside the binary as YAML files in the user's own
//! format (`crates/syncctl-sync/mappings/*.yaml`), parsed by the same loader as a `--config`
//! file. `--source S --target T [--object SRC:TGT]` without a config runs one of them;
//! `syncctl sync init` prints one as a starting point.

use thiserror::Error;

/// One built-in mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Source connector kind.
    pub source: &'static str,
    /// Target connector kind.
    pub target: &'static str,
    /// The source object.
    pub source_object: &'static str,
    /// The target object.
    pub target_object: &'static str,
    /// Chosen for its pair when `--object` is not given.
    pub default: bool,
    /// The YAML text (a complete `sync.yaml`).
    pub yaml: &'static str,
}

impl Builtin {
    /// `SOURCE_OBJECT:TARGET_OBJECT`, as `--object` takes it.
    #[must_use]
    pub fn object(&self) -> String {
        format!("{}:{}", self.source_object, self.target_object)
    }

    /// Where its text comes from, for error messages (`built-in hubspot → quickbooks contacts:Customer`).
    #[must_use]
    pub fn origin(&self) -> String {
        format!(
            "built-in mapping {} → {} ({})",
            self.source,
            self.target,
            self.object()
        )
    }
}

/// Every built-in mapping, defaults first within a pair.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        source: "hubspot",
        target: "quickbooks",
        source_object: "contacts",
        target_object: "Customer",
        default: true,
        yaml: include_str!("../mappings/hubspot-quickbooks-contacts.yaml"),
    },
    Builtin {
        source: "hubspot",
        target: "quickbooks",
        source_object: "companies",
        target_object: "Customer",
        default: false,
        yaml: include_str!("../mappings/hubspot-quickbooks-companies.yaml"),
    },
    Builtin {
        source: "hubspot",
        target: "quickbooks",
        source_object: "products",
        target_object: "Item",
        default: false,
        yaml: include_str!("../mappings/hubspot-quickbooks-products.yaml"),
    },
    Builtin {
        source: "hubspot",
        target: "quickbooks",
        source_object: "deals",
        target_object: "Invoice",
        default: false,
        yaml: include_str!("../mappings/hubspot-quickbooks-deals.yaml"),
    },
    Builtin {
        source: "google_sheets",
        target: "hubspot",
        source_object: "Contacts",
        target_object: "contacts",
        default: true,
        yaml: include_str!("../mappings/google_sheets-hubspot-contacts.yaml"),
    },
    Builtin {
        source: "hubspot",
        target: "google_sheets",
        source_object: "contacts",
        target_object: "Contacts",
        default: true,
        yaml: include_str!("../mappings/hubspot-google_sheets-contacts.yaml"),
    },
];

/// Why no built-in mapping fits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuiltinError {
    /// The connector pair has no built-in mapping.
    #[error(
        "there is no built-in mapping for {from} → {to} (built-in: {}); write a sync.yaml (see docs/sync.md) and pass --config",
        pairs.join(", ")
    )]
    NoPair {
        /// Source kind asked for.
        from: String,
        /// Target kind asked for.
        to: String,
        /// The pairs that have one, as `source → target`.
        pairs: Vec<String>,
    },
    /// The pair has built-in mappings, none for these objects.
    #[error(
        "--object {object} has no built-in mapping for {from} → {to}; choose one of: {}",
        choices.join(", ")
    )]
    UnknownObject {
        /// The `--object` value.
        object: String,
        /// Source kind.
        from: String,
        /// Target kind.
        to: String,
        /// The `--object` values that exist for the pair.
        choices: Vec<String>,
    },
}

/// The built-in mappings of a connector pair, default first.
#[must_use]
pub fn for_pair(source: &str, target: &str) -> Vec<&'static Builtin> {
    let mut v: Vec<&Builtin> = BUILTINS
        .iter()
        .filter(|b| b.source == source && b.target == target)
        .collect();
    v.sort_by_key(|b| !b.default);
    v
}

/// The built-in mapping for `source → target` and, when given, `object` (`SRC:TGT`, object
/// names compared case-insensitively); else the pair's default.
///
/// # Errors
/// [`BuiltinError::NoPair`] when the pair has none, [`BuiltinError::UnknownObject`] (listing
/// the choices) when the objects match none of the pair's.
pub fn choose(
    source: &str,
    target: &str,
    object: Option<&str>,
) -> Result<&'static Builtin, BuiltinError> {
    let candidates = for_pair(source, target);
    if candidates.is_empty() {
        let mut pairs: Vec<String> = BUILTINS
            .iter()
            .map(|b| format!("{} → {}", b.source, b.target))
            .collect();
        pairs.dedup();
        return Err(BuiltinError::NoPair {
            from: source.to_owned(),
            to: target.to_owned(),
            pairs,
        });
    }
    let Some(object) = object else {
        return Ok(candidates[0]);
    };
    candidates
        .iter()
        .copied()
        .find(|b| b.object().eq_ignore_ascii_case(object.trim()))
        .ok_or_else(|| BuiltinError::UnknownObject {
            object: object.to_owned(),
            from: source.to_owned(),
            to: target.to_owned(),
            choices: candidates.iter().map(|b| b.object()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, parse_config};
    use crate::store::Side;

    #[test]
    fn every_builtin_parses_with_the_users_loader_and_says_what_it_claims() {
        for b in BUILTINS {
            let c = parse_config(&b.origin(), b.yaml).unwrap_or_else(|e| panic!("{b:?}: {e}"));
            assert_eq!(c.kind(Side::Source), b.source, "{b:?}");
            assert_eq!(c.kind(Side::Target), b.target, "{b:?}");
            assert_eq!(c.source["object"], b.source_object, "{b:?}");
            assert_eq!(c.target["object"], b.target_object, "{b:?}");
            assert!(!b.yaml.contains("${"), "a built-in needs no variables");
        }
        for (s, t) in [
            ("hubspot", "quickbooks"),
            ("google_sheets", "hubspot"),
            ("hubspot", "google_sheets"),
        ] {
            assert_eq!(
                for_pair(s, t).iter().filter(|b| b.default).count(),
                1,
                "{s} → {t} has one default"
            );
        }
    }

    #[test]
    fn the_default_and_object_choice() {
        let d = choose("hubspot", "quickbooks", None).unwrap();
        assert_eq!(d.object(), "contacts:Customer");
        let c = parse_config("x", d.yaml).unwrap();
        assert_eq!(c.key.source, "email");
        assert_eq!(c.key.target, "PrimaryEmailAddr.Address");
        assert_eq!(c.direction, Direction::Bidirectional);
        assert_eq!(
            choose("hubspot", "quickbooks", Some("CONTACTS:customer")).unwrap(),
            d
        );
        let companies = choose("hubspot", "quickbooks", Some("companies:Customer")).unwrap();
        let c = parse_config("x", companies.yaml).unwrap();
        assert_eq!(
            (c.key.source.as_str(), c.key.target.as_str()),
            ("name", "DisplayName")
        );
        assert!(
            !c.filter.target.is_empty(),
            "person customers are not companies"
        );
        let deals = choose("hubspot", "quickbooks", Some("deals:Invoice")).unwrap();
        let c = parse_config("x", deals.yaml).unwrap();
        assert_eq!(
            c.direction,
            Direction::SourceToTarget,
            "invoices flow one way"
        );
        assert_eq!(
            c.filter.source["dealstage"],
            [serde_json::json!("closedwon")]
        );
        let customer = c
            .fields
            .iter()
            .find(|f| f.target == "CustomerRef.value")
            .unwrap();
        assert_eq!(
            customer.lookup.as_ref().map(|l| l.sync.as_str()),
            Some("hubspot-quickbooks-contacts"),
            "the customer is the one the default mapping linked"
        );
        let lines = c.fields.iter().find(|f| f.target == "Line").unwrap();
        assert_eq!(
            lines.elements[0].lookup.as_ref().map(|l| l.sync.as_str()),
            Some("hubspot-quickbooks-products")
        );
        let products = choose("hubspot", "quickbooks", Some("products:Item")).unwrap();
        assert_eq!(
            parse_config("x", products.yaml).unwrap().name,
            "hubspot-quickbooks-products"
        );
        let sheets = choose("google_sheets", "hubspot", None).unwrap();
        let c = parse_config("x", sheets.yaml).unwrap();
        assert!(
            c.fields.iter().all(|f| f.source == f.target),
            "headers are property names"
        );
        assert_eq!(c.key.source, "email");
    }

    #[test]
    fn refusals_name_the_choices() {
        let e = choose("hubspot", "quickbooks", Some("tickets:Vendor")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("contacts:Customer"), "{msg}");
        let e = choose("csv", "sqlite", None).unwrap_err();
        assert!(matches!(e, BuiltinError::NoPair { .. }));
        assert!(e.to_string().contains("hubspot → quickbooks"), "{e}");
    }
}
