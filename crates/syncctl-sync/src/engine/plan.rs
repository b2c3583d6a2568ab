//! Planning: what one pair needs (writes to either side, the link and base after them, the
//! conflict to open or close), decided from the pair's records and link alone.
//!
//! [`Planner`] is pure: it borrows the config, the mapping and the recorded conflict decisions,
//! reads nothing and writes nothing, and fills in a [`Work`]. The engine feeds it pages of
//! paired records and executes what it planned; what a plan asks of the rest of the run (a
//! deferred delete, a warning) is left on the [`Work`] for the engine to pick up.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use syncctl_core::digest::sha256_hex;
use syncctl_core::{NaturalKey, ObjectSchema, Record, RecordKey, WriteOp};
use syncctl_validate::{RuleSet, check_against_schema};

use super::{Engine, idx};
use crate::config::{ConflictStrategy, DeletePolicy, SyncConfig};
use crate::mapping::Mapping;
use crate::merge::{FieldConflict, Merge, Resolution, create_values, merge};
use crate::report::FieldChange;
use crate::store::{Link, Side};

/// What happened to one write.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OpResult {
    Pending,
    Applied {
        key: RecordKey,
        stored: Option<Record>,
    },
    Failed(String),
    Stale,
    NotFound,
    Skipped(String),
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) side: Side,
    pub(super) op: WriteOp,
    pub(super) changes: BTreeMap<String, FieldChange>,
    pub(super) before: Option<Value>,
    pub(super) change_id: Option<i64>,
    pub(super) result: OpResult,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum LinkAfter {
    Keep,
    /// Write the link with this base once every op applied.
    Set(BTreeMap<String, Value>),
    Tombstone(Side),
    Remove,
}

#[derive(Debug, Clone)]
pub(super) struct Work {
    pub(super) seq: i64,
    pub(super) link: Option<Link>,
    pub(super) source: Option<Record>,
    pub(super) target: Option<Record>,
    pub(super) natural_key: Option<String>,
    pub(super) ops: Vec<Op>,
    pub(super) rejected: Vec<String>,
    pub(super) reject_side: Option<Side>,
    pub(super) conflict: BTreeMap<String, FieldConflict>,
    pub(super) queued: bool,
    pub(super) close_conflict: Option<&'static str>,
    pub(super) link_after: LinkAfter,
    pub(super) skip: Option<String>,
    /// Audit row for a rejection or queued conflict.
    pub(super) note_change: Option<i64>,
    /// A deferred delete: the side whose record is gone.
    pub(super) gone: Option<Side>,
    /// A `latest` conflict was settled without a modified time on one side (warned once).
    pub(super) untimed_latest: bool,
    /// The ops of a first attempt that came back stale, kept for the audit after the pair
    /// was read and planned again (`ops` is then the retry).
    pub(super) first_attempt: Vec<Op>,
}

impl Work {
    pub(super) fn new(seq: i64) -> Self {
        Self {
            seq,
            link: None,
            source: None,
            target: None,
            natural_key: None,
            ops: Vec::new(),
            rejected: Vec::new(),
            reject_side: None,
            conflict: BTreeMap::new(),
            queued: false,
            close_conflict: None,
            link_after: LinkAfter::Keep,
            skip: None,
            note_change: None,
            gone: None,
            untimed_latest: false,
            first_attempt: Vec::new(),
        }
    }

    pub(super) fn record(&self, side: Side) -> Option<&Record> {
        match side {
            Side::Source => self.source.as_ref(),
            Side::Target => self.target.as_ref(),
        }
    }

    pub(super) fn key(&self, side: Side) -> Option<RecordKey> {
        self.record(side)
            .map(|r| r.key.clone())
            .or_else(|| self.link.as_ref().map(|l| l.key(side).clone()))
    }
}

/// Plans pairs. Holds only borrowed, read-only run state, so planning is a pure function of
/// the records and link in a [`Work`].
pub(super) struct Planner<'p> {
    pub(super) cfg: &'p SyncConfig,
    pub(super) mapping: &'p Mapping,
    /// Decisions recorded for queued conflicts, by link id.
    pub(super) resolutions: &'p HashMap<i64, Resolution>,
    /// Links with an open or resolved-but-unapplied conflict.
    pub(super) open_conflicts: &'p HashSet<i64>,
    /// Per side (by [`idx`]): updates can be made conditional on the read modified time.
    pub(super) conditional_update: [bool; 2],
    /// Per side (by [`idx`]): updates can be made conditional on the read record version.
    pub(super) versioned: [bool; 2],
}

impl Planner<'_> {
    /// A linked pair: merge, or a deletion on one side.
    pub(super) fn linked(&self, w: &mut Work) {
        let Some(link) = w.link.clone() else {
            return;
        };
        let s_live = w.source.as_ref().filter(|r| !r.deleted).is_some();
        let t_live = w.target.as_ref().filter(|r| !r.deleted).is_some();
        match (s_live, t_live) {
            (true, true) => self.merge(w, Some(&link.base)),
            (false, false) => {
                w.link_after = LinkAfter::Remove;
                self.close_open_conflict(w, "superseded");
            }
            (s, _) => {
                let gone = if s { Side::Target } else { Side::Source };
                let already = deleted_on(&link, gone);
                let flows = match gone {
                    Side::Source => self.cfg.direction.to_target(),
                    Side::Target => self.cfg.direction.to_source(),
                };
                if already {
                    w.skip = Some(format!(
                        "deleted on the {} earlier; deletes are not propagated",
                        gone.as_str()
                    ));
                } else if self.cfg.deletes == DeletePolicy::Ignore || !flows {
                    w.link_after = LinkAfter::Tombstone(gone);
                    w.skip = Some(format!(
                        "deleted on the {}; not propagated (deletes: {}, direction: {})",
                        gone.as_str(),
                        self.cfg.deletes.as_str(),
                        self.cfg.direction.as_str()
                    ));
                } else {
                    // Deletes wait for the delete phase and its mass-delete guard.
                    w.gone = Some(gone);
                    w.skip = Some("delete deferred to the delete phase".to_owned());
                }
            }
        }
    }

    fn close_open_conflict(&self, w: &mut Work, status: &'static str) {
        if let Some(l) = &w.link
            && self.open_conflicts.contains(&l.id)
        {
            w.close_conflict = Some(status);
        }
    }

    /// Both records live: the three-way merge against `base` (none on a first match).
    pub(super) fn merge(&self, w: &mut Work, base: Option<&BTreeMap<String, Value>>) {
        let (Some(sr), Some(tr)) = (w.source.clone(), w.target.clone()) else {
            return;
        };
        let sp = self.mapping.project(Side::Source, &sr);
        let tp = self.mapping.project(Side::Target, &tr);
        let resolution = w
            .link
            .as_ref()
            .and_then(|l| self.resolutions.get(&l.id))
            .cloned();
        let strategy = self.cfg.conflict_strategy;
        let m: Merge = merge(self.mapping, strategy, base, &sp, &tp, resolution.as_ref());
        if strategy == ConflictStrategy::Latest
            && !m.conflicts.is_empty()
            && (sp.updated_at.is_none() || tp.updated_at.is_none())
        {
            w.untimed_latest = true;
        }
        w.conflict.clone_from(&m.conflicts);
        w.queued = m.queued;
        if m.queued {
            // The link must exist for the queued conflict to point at; its base stays.
            if w.link.is_none() {
                w.link_after = LinkAfter::Set(m.merged.clone());
            }
            return;
        }
        if resolution.is_some() {
            w.close_conflict = Some(if m.conflicts.is_empty() {
                "superseded"
            } else {
                "applied"
            });
        } else if m.conflicts.is_empty() {
            self.close_open_conflict(w, "superseded");
        }
        for side in [Side::Target, Side::Source] {
            let writes = m.writes(side);
            if writes.is_empty() {
                continue;
            }
            let rec = if side == Side::Source { &sr } else { &tr };
            let proj = if side == Side::Source { &sp } else { &tp };
            let fields = self.mapping.to_side(side, writes);
            let changes = writes
                .iter()
                .filter_map(|(c, v)| {
                    self.mapping.field(c).map(|f| {
                        (
                            f.name(side).to_owned(),
                            FieldChange {
                                from: proj.values.get(c).cloned().unwrap_or(Value::Null),
                                to: v.clone(),
                            },
                        )
                    })
                })
                .collect();
            let expected = rec
                .updated_at
                .filter(|_| self.conditional_update[idx(side)]);
            w.ops.push(Op {
                side,
                op: WriteOp::Update {
                    key: rec.key.clone(),
                    fields,
                    expected_updated_at: expected,
                    expected_version: rec.version.clone().filter(|_| self.versioned[idx(side)]),
                },
                changes,
                before: Some(json!(self.mapping.to_side(side, &proj.values))),
                change_id: None,
                result: OpResult::Pending,
            });
        }
        let base_differs = base.is_none_or(|b| b != &m.merged);
        let tombstoned = w
            .link
            .as_ref()
            .is_some_and(|l| l.source_deleted || l.target_deleted);
        if !w.ops.is_empty() || base_differs || tombstoned {
            w.link_after = LinkAfter::Set(m.merged);
        }
    }

    /// A record with no counterpart: create it on the other side, if the direction allows.
    pub(super) fn create(&self, w: &mut Work, from: Side) {
        let to = from.other();
        let allowed = match to {
            Side::Target => self.cfg.direction.to_target(),
            Side::Source => self.cfg.direction.to_source(),
        };
        let Some(rec) = w.record(from) else {
            return;
        };
        if !allowed {
            w.skip = Some(format!(
                "new in the {}, but the direction {} does not create in the {}",
                from.as_str(),
                self.cfg.direction.as_str(),
                to.as_str()
            ));
            return;
        }
        let p = self.mapping.project(from, rec);
        let values = create_values(self.mapping, from, &p);
        let fields = self.mapping.to_side(to, &values);
        let natural_key = self.mapping.key_field().and_then(|kf| {
            values.get(&kf.canon).map(|v| NaturalKey {
                field: kf.name(to).to_owned(),
                value: v.clone(),
            })
        });
        let token = {
            let hex = sha256_hex(format!("{}\0{}\0{}", self.cfg.name, to.as_str(), rec.key));
            format!("sc1-{}", &hex[..32])
        };
        let changes = fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    FieldChange {
                        from: Value::Null,
                        to: v.clone(),
                    },
                )
            })
            .collect();
        w.ops.push(Op {
            side: to,
            op: WriteOp::Create {
                token,
                natural_key,
                fields,
            },
            changes,
            before: None,
            change_id: None,
            result: OpResult::Pending,
        });
        w.link_after = LinkAfter::Set(values);
    }
}

/// Pre-write validation: config rules and the written side's type rules (per side, by
/// [`idx`]). One refused write refuses the whole pair, so a pair is never half-synced by
/// design.
pub(super) fn validate(works: &mut [Work], sides: [(&RuleSet, &ObjectSchema); 2]) {
    for w in works.iter_mut() {
        let mut reasons = Vec::new();
        let mut side_refused = None;
        for op in &w.ops {
            let (rules, schema) = sides[idx(op.side)];
            let (fields, creating) = match &op.op {
                WriteOp::Create { fields, .. } => (fields, true),
                WriteOp::Update { fields, .. } => (fields, false),
                _ => continue,
            };
            let mut v = rules.check(fields, creating);
            v.extend(check_against_schema(fields, schema, creating));
            if !v.is_empty() {
                side_refused = Some(op.side);
                reasons.extend(
                    v.into_iter()
                        .map(|v| format!("{}: {}", op.side.as_str(), v.message)),
                );
            }
        }
        if !reasons.is_empty() {
            w.rejected = reasons;
            w.reject_side = side_refused;
            w.ops.clear();
            w.link_after = LinkAfter::Keep;
            w.close_conflict = None;
        }
    }
}

/// The engine's side of planning: the planner over the run's state, and what a plan asks of
/// the rest of the run.
impl<'a> Engine<'a> {
    pub(super) fn planner(&self) -> Planner<'_> {
        Planner {
            cfg: self.cfg,
            mapping: &self.mapping,
            resolutions: &self.resolutions,
            open_conflicts: &self.open_conflicts,
            conditional_update: [Side::Source, Side::Target]
                .map(|s| self.sides[idx(s)].schema.capabilities.conditional_update),
            versioned: [Side::Source, Side::Target]
                .map(|s| self.sides[idx(s)].schema.capabilities.versioned),
        }
    }

    pub(super) fn plan_linked(&mut self, w: &mut Work) {
        self.planner().linked(w);
        self.take_up_plan(w);
    }

    pub(super) fn plan_merge(&mut self, w: &mut Work, base: Option<&BTreeMap<String, Value>>) {
        self.planner().merge(w, base);
        self.take_up_plan(w);
    }

    pub(super) fn plan_create(&self, w: &mut Work, from: Side) {
        self.planner().create(w, from);
    }

    pub(super) fn validate(&self, works: &mut [Work]) {
        let [s, t] = &self.sides;
        validate(works, [(&s.rules, &s.schema), (&t.rules, &t.schema)]);
    }

    /// [`Self::validate`] for `works[which]` only.
    pub(super) fn validate_some(&self, works: &mut [Work], which: &[usize]) {
        for &i in which {
            self.validate(std::slice::from_mut(&mut works[i]));
        }
    }

    /// Queues a deferred delete for the delete phase (once per link) and warns once per run
    /// about `latest` conflicts settled without a modified time.
    fn take_up_plan(&mut self, w: &Work) {
        if let (Some(gone), Some(link)) = (w.gone, &w.link)
            && self.delete_links.insert(link.id)
        {
            self.deletes.push((link.clone(), gone));
        }
        if w.untimed_latest && !self.latest_warned {
            self.latest_warned = true;
            self.warnings.push(
                "conflict_strategy latest: some records carry no modified time (no updated_at_column); those conflicts went to the source".to_owned(),
            );
        }
    }
}

/// Whether the link records its `side` record as gone (deletes not propagated).
pub(super) fn deleted_on(l: &Link, side: Side) -> bool {
    match side {
        Side::Source => l.source_deleted,
        Side::Target => l.target_deleted,
    }
}

/// Puts a record on one side of a work item.
pub(super) fn set_record(w: &mut Work, side: Side, r: Option<Record>) {
    match side {
        Side::Source => w.source = r,
        Side::Target => w.target = r,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use syncctl_core::FieldType;

    use super::*;
    use crate::config::{Direction, parse_config};
    use crate::mapping::MappedField;

    fn config(extra: &str) -> SyncConfig {
        let y = format!(
            "name: t\nsource: {{connector: memory}}\ntarget: {{connector: memory}}\n\
             key: {{source: email, target: email}}\n\
             fields:\n  - {{source: email, target: email}}\n  - {{source: name, target: name}}\n{extra}"
        );
        parse_config("t.yaml", &y).expect("config")
    }

    fn mapping() -> Mapping {
        Mapping {
            fields: ["email", "name"]
                .iter()
                .map(|n| MappedField {
                    canon: (*n).into(),
                    source: (*n).into(),
                    target: (*n).into(),
                    transform: None,
                    direction: Direction::Bidirectional,
                    ty: FieldType::Text,
                    lookup: None,
                    elements: Vec::new(),
                })
                .collect(),
            key: "email".into(),
        }
    }

    fn record(key: &str, name: &str, secs: Option<i64>) -> Record {
        let mut r = Record::new(
            key,
            [("email", "a@x.io"), ("name", name)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect(),
        );
        r.updated_at = secs.and_then(|s| Utc.timestamp_opt(1_700_000_000 + s, 0).single());
        r
    }

    fn link(name: &str) -> Link {
        Link {
            id: 7,
            source_key: RecordKey::from("s1"),
            target_key: RecordKey::from("t1"),
            natural_key: Some("a@x.io".into()),
            base: [("email", "a@x.io"), ("name", name)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect(),
            source_deleted: false,
            target_deleted: false,
        }
    }

    /// Plans one pair with empty conflict state; `conditional` for both sides.
    fn plan(
        cfg: &SyncConfig,
        w: &mut Work,
        conditional: bool,
        f: impl Fn(&Planner<'_>, &mut Work),
    ) {
        let m = mapping();
        let (resolutions, open) = (HashMap::new(), HashSet::new());
        let p = Planner {
            cfg,
            mapping: &m,
            resolutions: &resolutions,
            open_conflicts: &open,
            conditional_update: [conditional; 2],
            versioned: [conditional; 2],
        };
        f(&p, w);
    }

    fn linked(link: Link, s: Option<Record>, t: Option<Record>) -> Work {
        let mut w = Work::new(1);
        w.link = Some(link);
        w.source = s;
        w.target = t;
        w
    }

    #[test]
    fn a_new_record_is_created_on_the_other_side_with_its_natural_key_and_a_stable_token() {
        let cfg = config("");
        let mut w = Work::new(1);
        w.source = Some(record("s1", "Ann", None));
        plan(&cfg, &mut w, false, |p, w| p.create(w, Side::Source));
        let [op] = w.ops.as_slice() else {
            panic!("one op: {:?}", w.ops)
        };
        assert_eq!(op.side, Side::Target);
        let WriteOp::Create {
            token,
            natural_key,
            fields,
        } = &op.op
        else {
            panic!("a create: {:?}", op.op)
        };
        assert!(token.starts_with("sc1-") && token.len() == 36, "{token}");
        let nk = natural_key.as_ref().expect("natural key");
        assert_eq!((nk.field.as_str(), &nk.value), ("email", &json!("a@x.io")));
        assert_eq!(fields["name"], json!("Ann"));
        assert_eq!(op.changes["name"].to, json!("Ann"));
        assert!(matches!(&w.link_after, LinkAfter::Set(b) if b["name"] == json!("Ann")));
        // The same record planned again gets the same token: a retried create upserts.
        let mut again = Work::new(2);
        again.source = Some(record("s1", "Ann", None));
        plan(&cfg, &mut again, false, |p, w| p.create(w, Side::Source));
        assert!(matches!(&again.ops[0].op, WriteOp::Create { token: t, .. } if t == token));
    }

    #[test]
    fn the_direction_decides_whether_a_create_is_planned() {
        let cfg = config("direction: source_to_target\n");
        let mut w = Work::new(1);
        w.target = Some(record("t1", "Ann", None));
        plan(&cfg, &mut w, false, |p, w| p.create(w, Side::Target));
        assert!(w.ops.is_empty());
        assert!(
            w.skip
                .as_deref()
                .is_some_and(|s| s.contains("does not create")),
            "{:?}",
            w.skip
        );
        assert_eq!(w.link_after, LinkAfter::Keep);
    }

    #[test]
    fn a_change_on_one_side_becomes_one_update_of_the_other_and_the_new_base() {
        let cfg = config("");
        let mut w = linked(
            link("Ann"),
            Some(record("s1", "Bea", Some(5))),
            Some(record("t1", "Ann", Some(3))),
        );
        plan(&cfg, &mut w, true, |p, w| p.linked(w));
        let [op] = w.ops.as_slice() else {
            panic!("one op: {:?}", w.ops)
        };
        assert_eq!(op.side, Side::Target);
        let WriteOp::Update {
            key,
            fields,
            expected_updated_at,
            ..
        } = &op.op
        else {
            panic!("an update: {:?}", op.op)
        };
        assert_eq!(key.as_str(), "t1");
        assert_eq!(
            fields.len(),
            1,
            "only the changed field is written: {fields:?}"
        );
        assert_eq!(fields["name"], json!("Bea"));
        assert_eq!(
            *expected_updated_at,
            w.target.as_ref().and_then(|r| r.updated_at)
        );
        assert_eq!(
            (&op.changes["name"].from, &op.changes["name"].to),
            (&json!("Ann"), &json!("Bea"))
        );
        assert!(matches!(&w.link_after, LinkAfter::Set(b) if b["name"] == json!("Bea")));
        assert!(w.conflict.is_empty() && !w.queued);

        // Without conditional updates the write carries no expected time.
        let mut w = linked(
            link("Ann"),
            Some(record("s1", "Bea", Some(5))),
            Some(record("t1", "Ann", Some(3))),
        );
        plan(&cfg, &mut w, false, |p, w| p.linked(w));
        assert!(matches!(
            &w.ops[0].op,
            WriteOp::Update {
                expected_updated_at: None,
                ..
            }
        ));
    }

    #[test]
    fn an_unchanged_pair_plans_nothing() {
        let cfg = config("");
        let mut w = linked(
            link("Ann"),
            Some(record("s1", "Ann", None)),
            Some(record("t1", "Ann", None)),
        );
        plan(&cfg, &mut w, false, |p, w| p.linked(w));
        assert!(w.ops.is_empty() && w.skip.is_none() && w.conflict.is_empty());
        assert_eq!(w.link_after, LinkAfter::Keep);
    }

    #[test]
    fn a_manual_conflict_is_queued_and_writes_nothing() {
        let cfg = config("conflict_strategy: manual\n");
        let mut w = linked(
            link("Ann"),
            Some(record("s1", "Bea", None)),
            Some(record("t1", "Cy", None)),
        );
        plan(&cfg, &mut w, false, |p, w| p.linked(w));
        assert!(w.queued && w.ops.is_empty());
        assert!(w.conflict.contains_key("name"));
        assert_eq!(w.link_after, LinkAfter::Keep, "the base stays while queued");
    }

    #[test]
    fn a_record_gone_on_one_side_is_deferred_or_tombstoned_by_the_delete_policy() {
        let propagate = config("deletes: propagate\n");
        let mut w = linked(link("Ann"), Some(record("s1", "Ann", None)), None);
        plan(&propagate, &mut w, false, |p, w| p.linked(w));
        assert_eq!(w.gone, Some(Side::Target));
        assert!(
            w.ops.is_empty(),
            "deletes wait for the delete phase and its guard"
        );

        let ignore = config("deletes: ignore\n");
        let mut w = linked(link("Ann"), Some(record("s1", "Ann", None)), None);
        plan(&ignore, &mut w, false, |p, w| p.linked(w));
        assert_eq!(w.gone, None);
        assert_eq!(w.link_after, LinkAfter::Tombstone(Side::Target));

        let mut w = linked(link("Ann"), None, None);
        plan(&ignore, &mut w, false, |p, w| p.linked(w));
        assert_eq!(
            w.link_after,
            LinkAfter::Remove,
            "gone on both sides: the link goes"
        );
    }

    #[test]
    fn validation_refuses_the_whole_pair() {
        let cfg = config("");
        let mut w = linked(
            link("Ann"),
            Some(record("s1", "Bea", None)),
            Some(record("t1", "Ann", None)),
        );
        plan(&cfg, &mut w, false, |p, w| p.linked(w));
        assert_eq!(w.ops.len(), 1);
        let schema = ObjectSchema {
            object: "people".into(),
            key: "id".into(),
            updated_at: None,
            deleted: None,
            origin: None,
            fields: vec![syncctl_core::FieldSchema {
                writable: false,
                ..syncctl_core::FieldSchema::text("name")
            }],
            capabilities: syncctl_core::Capabilities::full(),
            max_batch: 100,
        };
        let rules = RuleSet::default();
        validate(
            std::slice::from_mut(&mut w),
            [(&rules, &schema), (&rules, &schema)],
        );
        assert!(w.ops.is_empty());
        assert_eq!(w.reject_side, Some(Side::Target));
        assert!(w.rejected[0].starts_with("target: "), "{:?}", w.rejected);
        assert_eq!(w.link_after, LinkAfter::Keep);
    }
}
