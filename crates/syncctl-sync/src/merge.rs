//! The three-way, per-field merge of one pair of records against their last-synced base.
//!
//! For every mapped field, with `b` the base, `s` and `t` the two sides' canonical values:
//!
//! * `s == t`: nothing to write (the base is refreshed to that value).
//! * only `s != b`: the source changed; copied to the target if the field flows that way.
//! * only `t != b`: the target changed; copied to the source if the field flows that way.
//! * no base (a first match): a value on one side and nothing (null or `""`) on the other
//!   fills the empty side (blank as `canonical_text` defines it); two different values are a
//!   conflict, as below.
//! * both changed (or there is no base: a first match): a conflict. A field that flows one
//!   way only is settled by its owner. Otherwise the strategy decides: `source_wins`,
//!   `target_wins`, `latest` (record modified times; ties and missing times go to the source)
//!   or `manual` (the whole record is left untouched on both sides and the conflict queued),
//!   unless a person already resolved it (`sync conflicts resolve`).
//!
//! A change on the non-owner side of a one-way field is left alone (not reverted) and the
//! base keeps the last synced value, so the owner's next change still goes through.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use syncctl_validate::{canonical_text, same_value};

use crate::config::ConflictStrategy;
use crate::mapping::{Mapping, Projected};
use crate::store::Side;

/// How a person resolved a queued conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Take the source's current values.
    KeepSource,
    /// Take the target's current values.
    KeepTarget,
    /// Take these values (canonical names).
    Values(BTreeMap<String, Value>),
}

impl Resolution {
    /// Reads the stored JSON form (`{"keep": "source"}` or `{"values": {…}}`).
    #[must_use]
    pub fn from_json(v: &Value) -> Option<Self> {
        match v.get("keep").and_then(Value::as_str) {
            Some("source") => return Some(Self::KeepSource),
            Some("target") => return Some(Self::KeepTarget),
            _ => {}
        }
        v.get("values")
            .and_then(Value::as_object)
            .map(|m| Self::Values(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }
}

/// One field changed to different values on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldConflict {
    /// The base value (absent on a first match).
    pub base: Option<Value>,
    /// The source's value.
    pub source: Value,
    /// The target's value.
    pub target: Value,
    /// Who won: `source`, `target`, `resolution`, or `null` while queued.
    pub winner: Option<&'static str>,
}

/// What to do with a pair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merge {
    /// The values both sides hold once the writes are done (the next base).
    pub merged: BTreeMap<String, Value>,
    /// Canonical fields to write to the source.
    pub to_source: BTreeMap<String, Value>,
    /// Canonical fields to write to the target.
    pub to_target: BTreeMap<String, Value>,
    /// Conflicting fields by canonical name.
    pub conflicts: BTreeMap<String, FieldConflict>,
    /// A manual conflict is queued: nothing is written on either side.
    pub queued: bool,
}

impl Merge {
    /// The writes for `side`.
    #[must_use]
    pub fn writes(&self, side: Side) -> &BTreeMap<String, Value> {
        match side {
            Side::Source => &self.to_source,
            Side::Target => &self.to_target,
        }
    }
}

/// Merges a pair whose records both exist.
#[must_use]
pub fn merge(
    mapping: &Mapping,
    strategy: ConflictStrategy,
    base: Option<&BTreeMap<String, Value>>,
    s: &Projected,
    t: &Projected,
    resolution: Option<&Resolution>,
) -> Merge {
    let mut m = Merge::default();
    let null = Value::Null;
    for f in &mapping.fields {
        let sv = s.values.get(&f.canon).unwrap_or(&null);
        let tv = t.values.get(&f.canon).unwrap_or(&null);
        let b = base.and_then(|b| b.get(&f.canon));
        if same_value(sv, tv) {
            m.merged.insert(f.canon.clone(), sv.clone());
            continue;
        }
        // On a first match (no base) an empty side has not changed anything: the pair was never
        // synced, so a blank there is a gap to fill, not a deletion to weigh against the other
        // side's value. Only two different non-empty values are a conflict.
        let s_changed = b.map_or(canonical_text(sv).is_some(), |b| !same_value(sv, b));
        let t_changed = b.map_or(canonical_text(tv).is_some(), |b| !same_value(tv, b));
        let (to_t, to_s) = (f.direction.to_target(), f.direction.to_source());
        let keep_base = |m: &mut Merge| {
            let v = b
                .cloned()
                .unwrap_or_else(|| if to_s { tv.clone() } else { sv.clone() });
            m.merged.insert(f.canon.clone(), v);
        };
        let winner: Option<Side> = if s_changed && !t_changed {
            if to_t {
                Some(Side::Source)
            } else {
                keep_base(&mut m);
                continue;
            }
        } else if t_changed && !s_changed {
            if to_s {
                Some(Side::Target)
            } else {
                keep_base(&mut m);
                continue;
            }
        } else if to_t && !to_s {
            Some(Side::Source)
        } else if to_s && !to_t {
            Some(Side::Target)
        } else {
            // A real conflict: both changed, to different values, on a two-way field.
            let mut c = FieldConflict {
                base: b.cloned(),
                source: sv.clone(),
                target: tv.clone(),
                winner: None,
            };
            let chosen: Option<Value> = match resolution {
                Some(Resolution::KeepSource) => Some(sv.clone()),
                Some(Resolution::KeepTarget) => Some(tv.clone()),
                Some(Resolution::Values(vals)) => vals
                    .get(&f.canon)
                    .or_else(|| vals.get(&f.target))
                    .map(|v| f.canonical(v)),
                None => None,
            };
            if let Some(v) = chosen {
                c.winner = Some("resolution");
                if !same_value(&v, sv) {
                    m.to_source.insert(f.canon.clone(), v.clone());
                }
                if !same_value(&v, tv) {
                    m.to_target.insert(f.canon.clone(), v.clone());
                }
                m.merged.insert(f.canon.clone(), v);
                m.conflicts.insert(f.canon.clone(), c);
                continue;
            }
            let w = match strategy {
                ConflictStrategy::SourceWins => Some(Side::Source),
                ConflictStrategy::TargetWins => Some(Side::Target),
                // Only a target modified strictly later wins; a tie or a missing time on
                // either side goes to the source (`Option`'s order would rank a missing
                // source time below any target time).
                ConflictStrategy::Latest => Some(match (s.updated_at, t.updated_at) {
                    (Some(st), Some(tt)) if tt > st => Side::Target,
                    _ => Side::Source,
                }),
                ConflictStrategy::Manual => None,
            };
            c.winner = w.map(Side::as_str);
            m.conflicts.insert(f.canon.clone(), c);
            if w.is_none() {
                m.queued = true;
                keep_base(&mut m);
                continue;
            }
            w
        };
        match winner {
            Some(Side::Source) => {
                m.to_target.insert(f.canon.clone(), sv.clone());
                m.merged.insert(f.canon.clone(), sv.clone());
            }
            Some(Side::Target) => {
                m.to_source.insert(f.canon.clone(), tv.clone());
                m.merged.insert(f.canon.clone(), tv.clone());
            }
            None => {}
        }
    }
    if m.queued {
        // The record is left untouched on both sides until someone resolves the conflict.
        m.to_source.clear();
        m.to_target.clear();
        match base {
            Some(b) => m.merged.clone_from(b),
            // A first match has no base: conflicting fields stay out of it, so they still
            // count as changed on both sides until resolved.
            None => {
                for c in m.conflicts.keys() {
                    m.merged.remove(c);
                }
            }
        }
    }
    m
}

/// The values to create on the other side for a record that exists on `from` only: every
/// field that flows that way and has a value.
#[must_use]
pub fn create_values(mapping: &Mapping, from: Side, p: &Projected) -> BTreeMap<String, Value> {
    mapping
        .fields
        .iter()
        .filter(|f| f.writes_to(from.other()))
        .filter_map(|f| {
            p.values
                .get(&f.canon)
                .filter(|v| !v.is_null())
                .map(|v| (f.canon.clone(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;
    use crate::mapping::MappedField;
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use syncctl_core::{FieldType, RecordKey};

    fn mapping(dirs: &[(&str, Direction)]) -> Mapping {
        Mapping {
            fields: dirs
                .iter()
                .map(|(n, d)| MappedField {
                    canon: (*n).into(),
                    source: (*n).into(),
                    target: (*n).into(),
                    transform: None,
                    direction: *d,
                    ty: FieldType::Text,
                    lookup: None,
                    elements: Vec::new(),
                })
                .collect(),
            key: dirs[0].0.into(),
        }
    }

    fn p(vals: &[(&str, &str)], secs: i64) -> Projected {
        Projected {
            key: RecordKey::from("k"),
            values: vals.iter().map(|(k, v)| ((*k).into(), json!(v))).collect(),
            updated_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).single(),
            deleted: false,
        }
    }

    fn base(vals: &[(&str, &str)]) -> BTreeMap<String, Value> {
        vals.iter().map(|(k, v)| ((*k).into(), json!(v))).collect()
    }

    const BI: Direction = Direction::Bidirectional;

    #[test]
    fn one_sided_changes_are_copied_and_different_fields_merge() {
        let m = mapping(&[("a", BI), ("b", BI)]);
        let b = base(&[("a", "1"), ("b", "1")]);
        let r = merge(
            &m,
            ConflictStrategy::Manual,
            Some(&b),
            &p(&[("a", "2"), ("b", "1")], 0),
            &p(&[("a", "1"), ("b", "3")], 0),
            None,
        );
        assert_eq!(r.to_target, base(&[("a", "2")]));
        assert_eq!(r.to_source, base(&[("b", "3")]));
        assert_eq!(r.merged, base(&[("a", "2"), ("b", "3")]));
        assert!(r.conflicts.is_empty() && !r.queued);
    }

    #[test]
    fn same_field_on_both_sides_follows_the_strategy() {
        let m = mapping(&[("a", BI), ("b", BI)]);
        let b = base(&[("a", "1"), ("b", "1")]);
        let s = p(&[("a", "S"), ("b", "2")], 10);
        let t = p(&[("a", "T"), ("b", "1")], 20);
        let sw = merge(&m, ConflictStrategy::SourceWins, Some(&b), &s, &t, None);
        assert_eq!(sw.to_target, base(&[("a", "S"), ("b", "2")]));
        let tw = merge(&m, ConflictStrategy::TargetWins, Some(&b), &s, &t, None);
        assert_eq!(tw.to_source, base(&[("a", "T")]));
        assert_eq!(tw.to_target, base(&[("b", "2")]));
        let latest = merge(&m, ConflictStrategy::Latest, Some(&b), &s, &t, None);
        assert_eq!(latest.merged["a"], json!("T"), "target changed later");
        let manual = merge(&m, ConflictStrategy::Manual, Some(&b), &s, &t, None);
        assert!(manual.queued);
        assert!(manual.to_source.is_empty() && manual.to_target.is_empty());
        assert_eq!(manual.merged, b, "base kept while queued");
        assert_eq!(manual.conflicts["a"].winner, None);
        let resolved = merge(
            &m,
            ConflictStrategy::Manual,
            Some(&b),
            &s,
            &t,
            Some(&Resolution::Values(base(&[("a", "R")]))),
        );
        assert!(!resolved.queued);
        assert_eq!(resolved.merged["a"], json!("R"));
        assert_eq!(resolved.to_source["a"], json!("R"));
        assert_eq!(resolved.to_target, base(&[("a", "R"), ("b", "2")]));
    }

    #[test]
    fn latest_ties_and_missing_times_go_to_the_source() {
        let m = mapping(&[("a", BI)]);
        let b = base(&[("a", "1")]);
        let s = p(&[("a", "S")], 5);
        let mut t = p(&[("a", "T")], 5);
        assert_eq!(
            merge(&m, ConflictStrategy::Latest, Some(&b), &s, &t, None).merged["a"],
            json!("S")
        );
        t.updated_at = None;
        assert_eq!(
            merge(&m, ConflictStrategy::Latest, Some(&b), &s, &t, None).merged["a"],
            json!("S"),
            "target without a time"
        );
        let mut s_untimed = s.clone();
        s_untimed.updated_at = None;
        let t_later = p(&[("a", "T")], 60);
        let m_later = merge(
            &m,
            ConflictStrategy::Latest,
            Some(&b),
            &s_untimed,
            &t_later,
            None,
        );
        assert_eq!(m_later.merged["a"], json!("S"), "source without a time");
        assert_eq!(m_later.conflicts["a"].winner, Some("source"));
        assert!(m_later.to_source.is_empty());
        let both = merge(&m, ConflictStrategy::Latest, Some(&b), &s_untimed, &t, None);
        assert_eq!(both.merged["a"], json!("S"), "neither side has a time");
        assert_eq!(both.to_target["a"], json!("S"));
    }

    #[test]
    fn equal_changes_and_first_matches() {
        let m = mapping(&[("a", BI)]);
        let b = base(&[("a", "1")]);
        let same = merge(
            &m,
            ConflictStrategy::Manual,
            Some(&b),
            &p(&[("a", "2")], 0),
            &p(&[("a", "2")], 0),
            None,
        );
        assert_eq!(
            same,
            Merge {
                merged: base(&[("a", "2")]),
                ..Merge::default()
            }
        );
        let first = merge(
            &m,
            ConflictStrategy::SourceWins,
            None,
            &p(&[("a", "x")], 0),
            &p(&[("a", "y")], 0),
            None,
        );
        assert_eq!(first.to_target, base(&[("a", "x")]));
        assert_eq!(first.conflicts.len(), 1);
    }

    #[test]
    fn a_first_match_fills_blanks_both_ways_and_queues_only_real_differences() {
        let m = mapping(&[
            ("a", Direction::Bidirectional),
            ("b", Direction::Bidirectional),
        ]);
        // Source has `a`, the target has `b` (and only spaces in `a`): each fills the other.
        let fill = merge(
            &m,
            ConflictStrategy::Manual,
            None,
            &p(&[("a", "x")], 0),
            &p(&[("a", "  "), ("b", "y")], 0),
            None,
        );
        assert!(!fill.queued && fill.conflicts.is_empty());
        assert_eq!(fill.to_target, base(&[("a", "x")]));
        assert_eq!(fill.to_source, base(&[("b", "y")]));
        assert_eq!(fill.merged, base(&[("a", "x"), ("b", "y")]));
        // Two different values are still a conflict, queued whole under `manual`.
        let differ = merge(
            &m,
            ConflictStrategy::Manual,
            None,
            &p(&[("a", "x")], 0),
            &p(&[("a", "z"), ("b", "y")], 0),
            None,
        );
        assert!(differ.queued);
        assert!(differ.to_source.is_empty() && differ.to_target.is_empty());
        assert_eq!(differ.conflicts.len(), 1);
    }

    #[test]
    fn one_way_fields_have_an_owner_and_ignore_the_other_side() {
        let m = mapping(&[("a", Direction::SourceToTarget)]);
        let b = base(&[("a", "1")]);
        let t_only = merge(
            &m,
            ConflictStrategy::TargetWins,
            Some(&b),
            &p(&[("a", "1")], 0),
            &p(&[("a", "T")], 0),
            None,
        );
        assert!(t_only.to_source.is_empty() && t_only.to_target.is_empty());
        assert_eq!(
            t_only.merged, b,
            "base kept so the next source change still goes through"
        );
        let both = merge(
            &m,
            ConflictStrategy::TargetWins,
            Some(&b),
            &p(&[("a", "S")], 0),
            &p(&[("a", "T")], 0),
            None,
        );
        assert_eq!(both.to_target, base(&[("a", "S")]));
        assert!(both.conflicts.is_empty());
    }
}
