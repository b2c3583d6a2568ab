//! The sync config (`sync.yaml`): what to sync, how to match, which fields, which rules.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use syncctl_core::HumanDuration;
use syncctl_validate::RuleSet;

use crate::mapping::Transform;

/// Which way records flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Source changes go to the target only.
    SourceToTarget,
    /// Target changes go to the source only.
    TargetToSource,
    /// Both ways, with conflict resolution.
    #[default]
    Bidirectional,
}

impl Direction {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceToTarget => "source_to_target",
            Self::TargetToSource => "target_to_source",
            Self::Bidirectional => "bidirectional",
        }
    }

    /// Whether source changes may be written to the target.
    #[must_use]
    pub fn to_target(self) -> bool {
        matches!(self, Self::SourceToTarget | Self::Bidirectional)
    }

    /// Whether target changes may be written to the source.
    #[must_use]
    pub fn to_source(self) -> bool {
        matches!(self, Self::TargetToSource | Self::Bidirectional)
    }

    /// Both restrictions at once (a field's direction inside the sync's).
    #[must_use]
    pub fn within(self, outer: Self) -> Option<Self> {
        let t = self.to_target() && outer.to_target();
        let s = self.to_source() && outer.to_source();
        match (t, s) {
            (true, true) => Some(Self::Bidirectional),
            (true, false) => Some(Self::SourceToTarget),
            (false, true) => Some(Self::TargetToSource),
            (false, false) => None,
        }
    }

    /// Parses the config spelling.
    ///
    /// # Errors
    /// Any other word.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "source_to_target" => Ok(Self::SourceToTarget),
            "target_to_source" => Ok(Self::TargetToSource),
            "bidirectional" => Ok(Self::Bidirectional),
            o => Err(format!(
                "unknown direction {o:?}; use source_to_target, target_to_source or bidirectional"
            )),
        }
    }
}

/// How a field changed to different values on both sides is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The source's value is written to the target.
    SourceWins,
    /// The target's value is written to the source.
    TargetWins,
    /// The side whose record changed last wins (ties and missing times: source).
    Latest,
    /// Queued for a person: the record is left untouched on both sides.
    #[default]
    Manual,
}

impl ConflictStrategy {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceWins => "source_wins",
            Self::TargetWins => "target_wins",
            Self::Latest => "latest",
            Self::Manual => "manual",
        }
    }

    /// Parses the config spelling.
    ///
    /// # Errors
    /// Any other word.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "source_wins" => Ok(Self::SourceWins),
            "target_wins" => Ok(Self::TargetWins),
            "latest" => Ok(Self::Latest),
            "manual" => Ok(Self::Manual),
            o => Err(format!(
                "unknown conflict strategy {o:?}; use source_wins, target_wins, latest or manual"
            )),
        }
    }
}

/// What a record deleted on one side does to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Nothing: the survivor stays, the pair is remembered as half-deleted.
    #[default]
    Ignore,
    /// Delete the survivor.
    Propagate,
    /// Mark the survivor deleted through its `deleted_column`.
    Archive,
}

impl DeletePolicy {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ignore => "ignore",
            Self::Propagate => "propagate",
            Self::Archive => "archive",
        }
    }
}

/// `key: {source: email, target: email}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRule {
    /// The source field matched on.
    pub source: String,
    /// The target field matched on.
    pub target: String,
}

/// `{source: first_name, target: given_name, transform: trim, direction: …}`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Source field.
    pub source: String,
    /// Target field.
    pub target: String,
    /// Canonical form applied to both sides' values before comparing and writing.
    #[serde(default)]
    pub transform: Option<Transform>,
    /// Restricts this field's flow inside the sync's direction.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// The source value is a record key of another sync's source side, written as the
    /// key its record is linked to on that sync's target side. A list of keys (HubSpot's
    /// `associations.contacts`) written to a field that is not a list must hold exactly one.
    #[serde(default)]
    pub lookup: Option<LinkLookup>,
    /// The field is a list of records (HubSpot line items, QuickBooks invoice `Line`): each
    /// element is mapped field by field, and an element field may have its own `lookup`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<ElementMap>,
}

/// `{source: hs_product_id, target: SalesItemLineDetail.ItemRef.value, lookup: …}`: one field
/// of each element of a list field. The target (or source) may be a dotted path into nested
/// objects. The first element field identifies an element: a list element without a value
/// there is not part of the list (QuickBooks' own subtotal line), and a source element
/// without one is refused when that field has a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElementMap {
    /// The key (or dotted path) in a source element.
    pub source: String,
    /// The key (or dotted path) in a target element.
    pub target: String,
    /// Resolved through another sync's links, as a field's `lookup`.
    #[serde(default)]
    pub lookup: Option<LinkLookup>,
}

/// `lookup: {sync: hubspot-quickbooks-companies}`: a reference resolved through the links of
/// another sync (a deal's company id → the QuickBooks customer that company is linked to).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkLookup {
    /// The sync whose links resolve the reference (same state store).
    pub sync: String,
}

/// `filter: {source: {dealstage: [closedwon]}, target: {GivenName: [null]}}`: which records of
/// each side take part. A record is in scope when every named field holds one of the listed
/// values (`null` stands for empty or missing). A record out of scope is neither matched nor
/// created on the other side; a pair linked before stays linked and keeps syncing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFilter {
    /// Field → allowed values, for source records.
    #[serde(default)]
    pub source: std::collections::BTreeMap<String, Vec<Value>>,
    /// Field → allowed values, for target records.
    #[serde(default)]
    pub target: std::collections::BTreeMap<String, Vec<Value>>,
}

impl ScopeFilter {
    /// The conditions of one side.
    #[must_use]
    pub fn side(
        &self,
        side: crate::store::Side,
    ) -> &std::collections::BTreeMap<String, Vec<Value>> {
        match side {
            crate::store::Side::Source => &self.source,
            crate::store::Side::Target => &self.target,
        }
    }

    /// Whether `fields` (a record of `side`) is in scope.
    #[must_use]
    pub fn admits(
        &self,
        side: crate::store::Side,
        fields: &std::collections::BTreeMap<String, Value>,
    ) -> bool {
        self.side(side).iter().all(|(name, allowed)| {
            let v = fields.get(name).unwrap_or(&Value::Null);
            allowed.iter().any(|a| same_scope_value(v, a))
        })
    }
}

/// Empty text and null are one value; numbers and text compare by their text (HubSpot keeps
/// every property as text).
fn same_scope_value(v: &Value, want: &Value) -> bool {
    let blank = |x: &Value| syncctl_validate::canonical_text(x).is_none();
    if blank(want) || blank(v) {
        return blank(want) && blank(v);
    }
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(v) == text(want)
}

/// `breaker: {failure_threshold: 5, cooldown: 5m}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failures that open a connector's breaker.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    /// How long it stays open before one probe run.
    #[serde(default = "default_cooldown", deserialize_with = "duration")]
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: default_threshold(),
            cooldown: default_cooldown(),
        }
    }
}

fn default_threshold() -> u32 {
    5
}
fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}
fn default_batch() -> usize {
    100
}
fn default_fraction() -> f64 {
    0.1
}
fn default_overlap() -> Duration {
    Duration::from_secs(300)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<HumanDuration>()
        .map(HumanDuration::get)
        .map_err(serde::de::Error::custom)
}

/// The whole `sync.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Identifies the sync in state, locks and audit.
    pub name: String,
    /// The source connector block (`{connector: csv, path: …}`).
    pub source: Value,
    /// The target connector block.
    pub target: Value,
    /// How never-linked records are matched.
    pub key: KeyRule,
    /// Source field → target field.
    pub fields: Vec<FieldMap>,
    /// Which way records flow.
    #[serde(default)]
    pub direction: Direction,
    /// How conflicts are settled.
    #[serde(default)]
    pub conflict_strategy: ConflictStrategy,
    /// Records per write batch (capped by each connector's maximum).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Rules per field name, applied to what would be written, both ways.
    #[serde(default)]
    pub validation: RuleSet,
    /// What deletions do.
    #[serde(default)]
    pub deletes: DeletePolicy,
    /// The mass-delete guard: more than this fraction of a side's links vanishing stops the run.
    #[serde(default = "default_fraction")]
    pub max_delete_fraction: f64,
    /// Failed writes tolerated before the run counts as failed.
    #[serde(default)]
    pub max_failures: u64,
    /// State store URL (default `sqlite://.syncctl/state.db` next to the config).
    #[serde(default)]
    pub state: Option<String>,
    /// How far before the stored cursor incremental reads start again (late commits).
    #[serde(default = "default_overlap", deserialize_with = "duration")]
    pub overlap: Duration,
    /// Circuit-breaker thresholds.
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Which records of each side take part (default: all).
    #[serde(default)]
    pub filter: ScopeFilter,
}

impl SyncConfig {
    /// Every problem a config has on its own (before any connector is asked).
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.len() > MAX_NAME_LEN {
            // Never echoed whole: it would make the error (and the result line) as large.
            p.push(format!(
                "name is {} bytes long; at most {MAX_NAME_LEN} letters, digits, '-', '_' or '.'",
                self.name.len()
            ));
        } else if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            p.push(format!(
                "name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        for (side, block) in [("source", &self.source), ("target", &self.target)] {
            match block.get("connector").and_then(Value::as_str) {
                Some(k) if !k.is_empty() => {}
                _ => p.push(format!(
                    "{side} needs a connector kind, like {{connector: sqlite, url: …}}"
                )),
            }
        }
        if self.fields.is_empty() {
            p.push("fields must map at least one source field to a target field".to_owned());
        }
        let mut seen_s = std::collections::HashSet::new();
        let mut seen_t = std::collections::HashSet::new();
        for f in &self.fields {
            if !seen_s.insert(&f.source) {
                p.push(format!("source field {:?} is mapped twice", f.source));
            }
            if !seen_t.insert(&f.target) {
                p.push(format!("target field {:?} is mapped twice", f.target));
            }
            let element_lookups: Vec<&LinkLookup> = f
                .elements
                .iter()
                .filter_map(|e| e.lookup.as_ref())
                .collect();
            if f.lookup.is_some() && !f.elements.is_empty() {
                p.push(format!(
                    "field {} → {} has both lookup and elements; put the lookup on the element field it resolves",
                    f.source, f.target
                ));
            }
            for l in f.lookup.iter().chain(element_lookups) {
                let one_way = f.direction.unwrap_or(self.direction).within(self.direction)
                    == Some(Direction::SourceToTarget);
                if !one_way {
                    p.push(format!(
                        "field {} → {} has a lookup, which only resolves source → target: give it direction: source_to_target",
                        f.source, f.target
                    ));
                }
                if l.sync.trim().is_empty() || l.sync == self.name {
                    p.push(format!(
                        "field {} → {}: lookup.sync must name another sync",
                        f.source, f.target
                    ));
                }
                if f.source == self.key.source {
                    p.push(format!(
                        "field {} → {} is the match key and cannot be a lookup",
                        f.source, f.target
                    ));
                }
            }
            if let Some(d) = f.direction
                && d.within(self.direction).is_none()
            {
                p.push(format!(
                    "field {} → {} has direction {} which the sync's {} never allows",
                    f.source,
                    f.target,
                    d.as_str(),
                    self.direction.as_str()
                ));
            }
        }
        if !self
            .fields
            .iter()
            .any(|f| f.source == self.key.source && f.target == self.key.target)
        {
            p.push(format!(
                "key {} ↔ {} must also be a mapped field pair, so created records carry it and a rerun finds them",
                self.key.source, self.key.target
            ));
        }
        if self.batch_size == 0 {
            p.push("batch_size must be at least 1".to_owned());
        }
        if !(self.max_delete_fraction > 0.0 && self.max_delete_fraction <= 1.0) {
            p.push(format!(
                "max_delete_fraction must be in (0, 1], got {}",
                self.max_delete_fraction
            ));
        }
        for (side, conds) in [
            ("source", &self.filter.source),
            ("target", &self.filter.target),
        ] {
            for (name, allowed) in conds {
                if allowed.is_empty() {
                    p.push(format!(
                        "filter.{side}.{name} lists no value, so no record could take part"
                    ));
                }
            }
        }
        if self.breaker.failure_threshold == 0 {
            p.push("breaker.failure_threshold must be at least 1".to_owned());
        }
        for name in self.validation.fields.keys() {
            if !self
                .fields
                .iter()
                .any(|f| f.source == *name || f.target == *name)
            {
                p.push(format!(
                    "validation names {name:?}, which is not a mapped source or target field"
                ));
            }
        }
        p
    }

    /// The connector kind of a side.
    #[must_use]
    pub fn kind(&self, side: crate::store::Side) -> &str {
        let b = match side {
            crate::store::Side::Source => &self.source,
            crate::store::Side::Target => &self.target,
        };
        b.get("connector").and_then(Value::as_str).unwrap_or("")
    }
}

/// The longest sync name: it is stored in every state row and printed in every result.
pub const MAX_NAME_LEN: usize = 128;

/// Parses a `sync.yaml` text without `${VAR}` interpolation (a `${…}` stays as written).
///
/// # Errors
/// YAML errors with line and column, unknown keys, and every problem of
/// [`SyncConfig::problems`] at once.
pub fn parse_config(origin: &str, text: &str) -> Result<SyncConfig, crate::SyncError> {
    let cfg: SyncConfig = syncctl_config::from_yaml_str(origin, text)
        .map_err(|e| crate::SyncError::config(e.to_string()))?;
    checked(cfg)
}

/// Parses a `sync.yaml` text, then interpolates `${VAR}` from `get` into its string values
/// (never into the text, so a value holding a quote cannot change the structure).
///
/// # Errors
/// Every unset variable, YAML errors with line and column, unknown keys, and every problem
/// of [`SyncConfig::problems`] at once.
pub fn parse_config_with(
    origin: &str,
    text: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<SyncConfig, crate::SyncError> {
    let cfg: SyncConfig = syncctl_config::from_yaml_str_interpolated(origin, text, get)
        .map_err(|e| crate::SyncError::config(e.to_string()))?;
    checked(cfg)
}

fn checked(cfg: SyncConfig) -> Result<SyncConfig, crate::SyncError> {
    let problems = cfg.problems();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(crate::SyncError::Config { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"
name: crm-contacts
source: {connector: csv, path: contacts.csv, object: contacts}
target: {connector: sqlite, url: "sqlite://crm.db", object: customers}
key: {source: email, target: email}
fields:
  - {source: email, target: email}
  - {source: first_name, target: given_name}
  - {source: phone, target: phone, transform: e164}
direction: bidirectional
conflict_strategy: latest
batch_size: 50
validation:
  email: [required, email]
  given_name: [{max_length: 100}]
deletes: ignore
state: "sqlite://.syncctl/state.db"
"#;

    #[test]
    fn the_issue_example_parses() {
        let c = parse_config("sync.yaml", EXAMPLE).unwrap();
        assert_eq!(c.name, "crm-contacts");
        assert_eq!(c.kind(crate::store::Side::Source), "csv");
        assert_eq!(c.fields[2].transform, Some(Transform::E164));
        assert_eq!(c.conflict_strategy, ConflictStrategy::Latest);
        assert_eq!(c.batch_size, 50);
        assert_eq!(c.overlap, Duration::from_secs(300));
    }

    #[test]
    fn unknown_keys_and_every_problem_are_reported() {
        let e = parse_config("s.yaml", &EXAMPLE.replace("batch_size", "batch_sise"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_sise"), "{e}");
        let bad = EXAMPLE
            .replace("name: crm-contacts", "name: \"crm contacts\"")
            .replace(
                "{source: email, target: email}\nfields",
                "{source: mail, target: email}\nfields",
            )
            .replace("batch_size: 50", "batch_size: 0");
        let e = parse_config("s.yaml", &bad).unwrap_err();
        let crate::SyncError::Config { problems } = e else {
            panic!("not a config error")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn a_filter_admits_listed_values_and_treats_empty_as_null() {
        use crate::store::Side;
        let c = parse_config(
            "s.yaml",
            &format!(
                "{EXAMPLE}filter:\n  source: {{stage: [closedwon, 3]}}\n  target: {{given_name: [null]}}\n"
            ),
        )
        .unwrap();
        let rec = |k: &str, v: Value| std::collections::BTreeMap::from([(k.to_owned(), v)]);
        let f = &c.filter;
        assert!(f.admits(Side::Source, &rec("stage", json!("closedwon"))));
        assert!(f.admits(Side::Source, &rec("stage", json!("3"))));
        assert!(!f.admits(Side::Source, &rec("stage", json!("closedlost"))));
        assert!(!f.admits(Side::Source, &rec("other", json!("x"))));
        assert!(f.admits(Side::Target, &rec("given_name", json!(""))));
        assert!(f.admits(Side::Target, &rec("other", json!("x"))));
        assert!(!f.admits(Side::Target, &rec("given_name", json!("Ada"))));
        let e = parse_config(
            "s.yaml",
            &format!("{EXAMPLE}filter: {{source: {{stage: []}}}}\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("filter.source.stage"), "{e}");
    }

    #[test]
    fn field_direction_within_sync() {
        assert_eq!(
            Direction::Bidirectional.within(Direction::SourceToTarget),
            Some(Direction::SourceToTarget)
        );
        assert_eq!(
            Direction::TargetToSource.within(Direction::SourceToTarget),
            None
        );
    }
}
