//! Crash recovery: reconciling the writes of killed runs before anything new is read.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use syncctl_core::{Record, RecordKey};
use syncctl_validate::same_value;

use super::{Engine, idx};
use crate::error::SyncError;
use crate::store::{ConflictWrite, Link, LinkWrite, PairCommit, Side};

impl<'a> Engine<'a> {
    /// Reconciles the writes of killed runs whose outcome was never recorded (audit rows left
    /// `interrupted`). A value that reached the record it was written to is what both sides
    /// last agreed on, so it becomes the base; a record a killed run created is found by its
    /// natural key and linked with the values it was created with. Without this, a record
    /// edited again after the crash would look changed on both sides and its edit could lose
    /// a conflict it never had. The rows are then marked `recovered`.
    pub(super) async fn recover(&mut self) -> Result<(), SyncError> {
        let name = self.cfg.name.clone();
        let rows = self.store.interrupted_writes(&name).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let side_of = |s: &str| {
            if s == "source" {
                Side::Source
            } else {
                Side::Target
            }
        };
        let after_of = |r: &crate::store::StoredChange| -> BTreeMap<String, Value> {
            r.after
                .as_ref()
                .and_then(|a| a.0.as_object())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let mut commits: Vec<PairCommit> = Vec::new();
        let mut bases: HashMap<i64, Link> = HashMap::new();
        let link_ids: Vec<i64> = rows.iter().filter_map(|r| r.link_id).collect();
        for l in self.store.links_by_id(&name, &link_ids).await? {
            bases.insert(l.id, l);
        }
        let mut adopted: HashSet<RecordKey> = HashSet::new();
        for side in [Side::Source, Side::Target] {
            let src = self.sides[idx(side)].source;
            let schema = self.sides[idx(side)].schema.clone();
            let mine: Vec<&crate::store::StoredChange> =
                rows.iter().filter(|r| side_of(&r.side) == side).collect();
            // Updates: the written values that are there now become the base.
            let keys: Vec<RecordKey> = mine
                .iter()
                .filter(|r| r.action == "update")
                .filter_map(|r| r.record_key.clone().map(RecordKey))
                .collect();
            let current: HashMap<RecordKey, Record> = if keys.is_empty() {
                HashMap::new()
            } else {
                src.read_keys(&schema, &keys)
                    .await
                    .map_err(|e| self.read_failed(side, e))?
                    .into_iter()
                    .map(|r| (r.key.clone(), r))
                    .collect()
            };
            for r in mine.iter().filter(|r| r.action == "update") {
                let (Some(lid), Some(k)) = (r.link_id, &r.record_key) else {
                    continue;
                };
                let (Some(link), Some(rec)) =
                    (bases.get_mut(&lid), current.get(&RecordKey(k.clone())))
                else {
                    continue;
                };
                for (field, v) in after_of(r) {
                    if let Some(f) = self.mapping.fields.iter().find(|f| f.name(side) == field) {
                        let now = f.canonical(rec.fields.get(&field).unwrap_or(&Value::Null));
                        let wrote = f.canonical(&v);
                        if same_value(&now, &wrote) {
                            link.base.insert(f.canon.clone(), wrote);
                        }
                    }
                }
            }
            // Creates: find the record by its natural key and link it.
            let Some(kf) = self.mapping.key_field().cloned() else {
                continue;
            };
            let creates: Vec<(&crate::store::StoredChange, BTreeMap<String, Value>)> = mine
                .iter()
                .filter(|r| r.action == "create" && r.origin_key.is_some())
                .map(|r| (*r, after_of(r)))
                .collect();
            let values: Vec<Value> = creates
                .iter()
                .filter_map(|(_, a)| a.get(kf.name(side)).cloned())
                .collect();
            if values.is_empty() {
                continue;
            }
            let found = src
                .lookup(&schema, kf.name(side), &values)
                .await
                .map_err(|e| self.read_failed(side, e))?;
            let found_keys: Vec<RecordKey> = found.iter().map(|r| r.key.clone()).collect();
            let linked_here = self.store.links_for(&name, side, &found_keys).await?;
            let origins: Vec<RecordKey> = creates
                .iter()
                .filter_map(|(r, _)| r.origin_key.clone().map(RecordKey))
                .collect();
            let linked_there = self.store.links_for(&name, side.other(), &origins).await?;
            for (r, after) in &creates {
                let Some(nk) = after.get(kf.name(side)).map(|v| kf.canonical(v)) else {
                    continue;
                };
                let hits: Vec<&Record> = found
                    .iter()
                    .filter(|c| {
                        same_value(
                            &kf.canonical(c.fields.get(kf.name(side)).unwrap_or(&Value::Null)),
                            &nk,
                        )
                    })
                    .collect();
                let origin = RecordKey(r.origin_key.clone().unwrap_or_default());
                let [hit] = hits.as_slice() else {
                    continue;
                };
                if linked_here.contains_key(&hit.key)
                    || linked_there.contains_key(&origin)
                    || !adopted.insert(hit.key.clone())
                {
                    continue;
                }
                let base: BTreeMap<String, Value> = self
                    .mapping
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.canon.clone(),
                            f.canonical(after.get(f.name(side)).unwrap_or(&Value::Null)),
                        )
                    })
                    .collect();
                let (source_key, target_key) = match side {
                    Side::Target => (origin, hit.key.clone()),
                    Side::Source => (hit.key.clone(), origin),
                };
                commits.push(PairCommit {
                    link_id: None,
                    link: LinkWrite::Upsert {
                        id: None,
                        source_key,
                        target_key,
                        natural_key: syncctl_validate::canonical_text(&nk),
                        base,
                        source_updated_at: None,
                        target_updated_at: None,
                        source_deleted: false,
                        target_deleted: false,
                    },
                    conflict: ConflictWrite::None,
                    changes: Vec::new(),
                    pending_add: Vec::new(),
                    pending_remove: Vec::new(),
                });
            }
        }
        for (_, l) in bases {
            commits.push(PairCommit {
                link_id: Some(l.id),
                link: LinkWrite::Upsert {
                    id: Some(l.id),
                    source_key: l.source_key.clone(),
                    target_key: l.target_key.clone(),
                    natural_key: None,
                    base: l.base.clone(),
                    source_updated_at: None,
                    target_updated_at: None,
                    source_deleted: l.source_deleted,
                    target_deleted: l.target_deleted,
                },
                conflict: ConflictWrite::None,
                changes: Vec::new(),
                pending_add: Vec::new(),
                pending_remove: Vec::new(),
            });
        }
        commits.push(PairCommit {
            link_id: None,
            link: LinkWrite::Keep,
            conflict: ConflictWrite::None,
            changes: rows
                .iter()
                .map(|r| (r.change_id, "recovered".to_owned(), r.error.clone(), None))
                .collect(),
            pending_add: Vec::new(),
            pending_remove: Vec::new(),
        });
        tracing::info!(
            writes = rows.len(),
            "Reconciled the writes of an interrupted run."
        );
        self.store.commit(&name, &self.run_id, &commits).await?;
        Ok(())
    }
}
