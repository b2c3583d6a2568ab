//! Reading and pairing: pages of changed records (and the pending ones) are paired with their
//! links, their counterparts and, for never-linked records, natural-key candidates, then
//! planned and executed one page at a time.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use syncctl_core::{ReadRequest, Record, RecordKey};
use syncctl_validate::coerce::canonical_text;
use syncctl_validate::same_value;

use super::plan::{Work, deleted_on, set_record};
use super::{Engine, KeySet, PAGE, PAIR_WINDOW, idx};
use crate::error::SyncError;
use crate::store::{ConflictWrite, Link, LinkWrite, PairCommit, Side};

impl<'a> Engine<'a> {
    pub(super) async fn process_pending(&mut self, side: Side) -> Result<(), SyncError> {
        let keys: Vec<RecordKey> = self.pending[idx(side)]
            .iter()
            .filter(|k| !self.processed[idx(side)].contains(k.as_str()))
            .cloned()
            .collect();
        for chunk in keys.chunks(PAGE) {
            self.check_cancel()?;
            let src = self.sides[idx(side)].source;
            let schema = self.sides[idx(side)].schema.clone();
            let recs = src
                .read_keys(&schema, chunk)
                .await
                .map_err(|e| self.read_failed(side, e))?;
            self.side(side).counts.read += recs.len() as u64;
            let found: HashSet<&RecordKey> = recs.iter().map(|r| &r.key).collect();
            let missing: Vec<RecordKey> = chunk
                .iter()
                .filter(|k| !found.contains(k))
                .cloned()
                .collect();
            self.process(side, recs, missing, false).await?;
        }
        Ok(())
    }

    /// Reads `side`'s changes page by page and processes them a window at a time; a window
    /// commit left running (bulk first loads) is finished before it returns, error or not.
    pub(super) async fn scan_changes(&mut self, side: Side) -> Result<(), SyncError> {
        let scanned = self.scan_windows(side).await;
        let drained = self.drain().await;
        scanned.and(drained)
    }

    async fn scan_windows(&mut self, side: Side) -> Result<(), SyncError> {
        let (incremental, before) = {
            let s = &self.sides[idx(side)];
            (s.schema.capabilities.incremental, s.cursor_before)
        };
        let since = if self.s.full_refresh || !incremental {
            None
        } else {
            before.map(|c| {
                c - chrono::Duration::from_std(self.cfg.overlap).unwrap_or(chrono::Duration::zero())
            })
        };
        let mut req = ReadRequest {
            since,
            after: None,
            limit: PAGE,
            keys_only: false,
        };
        // Records read but not yet paired (see PAIR_WINDOW).
        let mut window: Vec<Record> = Vec::new();
        let mut window_at: HashMap<RecordKey, usize> = HashMap::new();
        // The page after a full window, read while that window was paired, planned and
        // written: the source's round trip overlaps the writes instead of following them.
        let mut read_ahead = None;
        loop {
            self.check_cancel()?;
            let src = self.sides[idx(side)].source;
            let schema = self.sides[idx(side)].schema.clone();
            let page = match read_ahead.take() {
                Some(page) => page,
                None => src.read_page(&schema, &req).await,
            }
            .map_err(|e| self.read_failed(side, e))?;
            {
                let s = self.side(side);
                for r in &page.records {
                    if let Some(t) = r.updated_at
                        && s.max_seen.is_none_or(|m| t > m)
                    {
                        s.max_seen = Some(t);
                    }
                }
            }
            let fresh: Vec<Record> = page
                .records
                .into_iter()
                .filter(|r| !self.processed[idx(side)].contains(r.key.as_str()))
                .collect();
            // A page that repeats a record of an earlier page (page order "may repeat")
            // replaces it with the later read, so a window holds each key once.
            let mut new_keys = 0u64;
            for r in fresh {
                match window_at.get(&r.key) {
                    Some(&i) => window[i] = r,
                    None => {
                        window_at.insert(r.key.clone(), window.len());
                        window.push(r);
                        new_keys += 1;
                    }
                }
            }
            self.side(side).counts.read += new_keys;
            let Some(next) = page.next else {
                if !window.is_empty() {
                    self.process(side, std::mem::take(&mut window), Vec::new(), true)
                        .await?;
                }
                return Ok(());
            };
            req.after = Some(next);
            if window.len() >= PAIR_WINDOW {
                window_at.clear();
                let records = std::mem::take(&mut window);
                let (done, ahead) = tokio::join!(
                    self.process(side, records, Vec::new(), true),
                    src.read_page(&schema, &req)
                );
                done?;
                read_ahead = Some(ahead);
            }
        }
    }

    /// Pairs, plans and executes one page of records read from `x`.
    #[allow(clippy::too_many_lines)]
    pub(super) async fn process(
        &mut self,
        x: Side,
        mut records: Vec<Record>,
        missing: Vec<RecordKey>,
        from_scan: bool,
    ) -> Result<(), SyncError> {
        let y = x.other();
        let name = self.cfg.name.clone();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        // Source records whose lookup fields resolve through no link: their pairs are refused.
        let mut unresolved: HashMap<RecordKey, String> = HashMap::new();
        if x == Side::Source {
            self.resolve_lookups(&mut records, &mut unresolved).await?;
        }
        // A bulk first load (see `first_load`): the sync had no links and `y` no records when
        // the run started, and what this run linked or created since is in `processed`, so
        // there is nothing to look up.
        let bulk = from_scan && self.bulk_into == Some(y);
        let mut links = if bulk {
            HashMap::new()
        } else {
            let mut keys: Vec<RecordKey> = records.iter().map(|r| r.key.clone()).collect();
            keys.extend(missing.iter().cloned());
            self.store.links_for(&name, x, &keys).await?
        };
        if from_scan {
            // A linked record whose values still equal the base did not change on this side:
            // nothing can flow from it. A change on the other side is found when that side is
            // scanned, so skip it without reading its counterpart (the overlap window and
            // records sharing one timestamp make this the common case).
            records.retain(|r| {
                let unchanged = links.get(&r.key).is_some_and(|l| {
                    !r.deleted
                        && !deleted_on(l, x)
                        && self.mapping.fields.iter().all(|f| {
                            let v = f.canonical(r.fields.get(f.name(x)).unwrap_or(&Value::Null));
                            l.base.get(&f.canon).is_some_and(|b| same_value(&v, b))
                        })
                });
                if unchanged {
                    links.remove(&r.key);
                }
                !unchanged
            });
        }
        // Counterparts of linked records, read by key in one call.
        let cp_keys: Vec<RecordKey> = links
            .values()
            .filter(|l| !deleted_on(l, y))
            .map(|l| l.key(y).clone())
            .collect();
        let y_src = self.sides[idx(y)].source;
        let y_schema = self.sides[idx(y)].schema.clone();
        let mut y_records: HashMap<RecordKey, Record> = HashMap::new();
        if !cp_keys.is_empty() {
            let got = y_src
                .read_keys(&y_schema, &cp_keys)
                .await
                .map_err(|e| self.read_failed(y, e))?;
            self.side(y).counts.read += got.len() as u64;
            let mut got = got;
            if y == Side::Source {
                self.resolve_lookups(&mut got, &mut unresolved).await?;
            }
            y_records.extend(got.into_iter().map(|r| (r.key.clone(), r)));
        }
        // Natural-key candidates of never-linked records.
        let mut nks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            if links.contains_key(&r.key) || r.deleted || !self.cfg.filter.admits(x, &r.fields) {
                continue;
            }
            if let Some(nk) = self.mapping.record_natural_key(x, r) {
                nks.entry(nk).or_default().push(i);
            }
        }
        // Candidates by comparison key: natural keys as `y` compares them (a case-insensitive
        // collation makes `Bob@x.com ` and `bob@x.com` one record there).
        let mut candidates: HashMap<String, Vec<Record>> = HashMap::new();
        let mut cand_links: HashMap<RecordKey, Link> = HashMap::new();
        let mut compared: HashMap<String, String> = HashMap::new();
        if !nks.is_empty()
            && let Some(kf) = self.mapping.key_field()
        {
            let field = kf.name(y).to_owned();
            let mut found = if bulk {
                Vec::new()
            } else {
                let values: Vec<Value> = nks.keys().map(|k| Value::String(k.clone())).collect();
                y_src
                    .lookup(&y_schema, &field, &values)
                    .await
                    .map_err(|e| self.read_failed(y, e))?
            };
            if y == Side::Source {
                self.resolve_lookups(&mut found, &mut unresolved).await?;
            }
            self.side(y).counts.read += found.len() as u64;
            let found_keys: Vec<RecordKey> = found.iter().map(|r| r.key.clone()).collect();
            if !found_keys.is_empty() {
                cand_links = self.store.links_for(&name, y, &found_keys).await?;
            }
            // A record out of the other side's scope is no match: it is not part of the sync.
            let found: Vec<(String, Record)> = found
                .into_iter()
                .filter(|r| !r.deleted && self.cfg.filter.admits(y, &r.fields))
                .filter_map(|r| self.mapping.record_natural_key(y, &r).map(|nk| (nk, r)))
                .collect();
            let mut texts: Vec<String> = nks.keys().cloned().collect();
            texts.extend(found.iter().map(|(nk, _)| nk.clone()));
            let keys = y_src
                .comparison_keys(&y_schema, &field, &texts)
                .await
                .map_err(|e| self.read_failed(y, e))?;
            compared = texts.into_iter().zip(keys).collect();
            for (nk, r) in found {
                let c = compared.get(&nk).cloned().unwrap_or(nk);
                candidates.entry(c).or_default().push(r);
            }
        }
        let mut works = Vec::new();
        for r in records {
            if self.processed[idx(x)].contains(r.key.as_str()) {
                continue;
            }
            self.processed[idx(x)].insert(r.key.as_str());
            let seq = self.next_seq();
            let mut w = Work::new(seq);
            if let Some(l) = links.get(&r.key) {
                let other = if deleted_on(l, y) {
                    None
                } else {
                    y_records.remove(l.key(y))
                };
                self.processed[idx(y)].insert(l.key(y).as_str());
                w.link = Some(l.clone());
                w.natural_key.clone_from(&l.natural_key);
                set_record(&mut w, x, Some(r));
                set_record(&mut w, y, other);
                self.plan_linked(&mut w);
            } else {
                if r.deleted {
                    continue;
                }
                if !self.cfg.filter.admits(x, &r.fields) {
                    self.side(x).counts.out_of_scope += 1;
                    continue;
                }
                let nk = self.mapping.record_natural_key(x, &r);
                w.natural_key.clone_from(&nk);
                let key_name = self
                    .mapping
                    .key_field()
                    .map_or("key", |f| f.name(x))
                    .to_owned();
                let compared_as = nk.as_ref().and_then(|n| compared.get(n)).cloned();
                // Another record of this run claimed a natural key that `y` holds to be the
                // same as this one: the first (in read order, so the one already linked on
                // later runs) is synced, every later one is refused before anything is written.
                let twin = compared_as
                    .as_ref()
                    .and_then(|c| self.claimed_as[idx(y)].get(&KeySet::hash(c)))
                    .filter(|t| Some(&***t) != nk.as_deref())
                    .map(|t| t.to_string());
                match nk {
                    None => {
                        w.rejected.push(format!(
                            "{key_name} is empty, so the record can be neither matched nor created"
                        ));
                        w.reject_side = Some(y);
                        set_record(&mut w, x, Some(r));
                    }
                    // A record whose reference resolves through no link is refused below
                    // (`refuse_unresolved`) and must not claim its natural key: a twin that
                    // does resolve is synced instead.
                    Some(_) if x == Side::Source && unresolved.contains_key(&r.key) => {
                        set_record(&mut w, x, Some(r));
                    }
                    Some(nk) if self.claimed.contains(&nk) => {
                        w.rejected.push(format!(
                            "another {} record with the same {key_name} was matched or created in this run",
                            x.as_str()
                        ));
                        w.reject_side = Some(y);
                        set_record(&mut w, x, Some(r));
                    }
                    Some(nk) if twin.is_some() => {
                        let twin = twin.unwrap_or_default();
                        w.rejected.push(format!(
                            "{key_name} {nk:?} is the same as {:?} to the {} (its unique check compares them equal, e.g. ignoring case or trailing spaces), and the {} record with {:?} is synced; make the {key_name}s distinct",
                            twin,
                            y.as_str(),
                            x.as_str(),
                            twin,
                        ));
                        w.reject_side = Some(y);
                        set_record(&mut w, x, Some(r));
                    }
                    Some(nk) => {
                        self.claimed.insert(&nk);
                        if let Some(c) = &compared_as {
                            self.claimed_as[idx(y)].insert(KeySet::hash(c), nk.as_str().into());
                        }
                        let cands = candidates
                            .get(compared_as.as_ref().unwrap_or(&nk))
                            .cloned()
                            .unwrap_or_default();
                        set_record(&mut w, x, Some(r));
                        match cands.as_slice() {
                            [] => self.plan_create(&mut w, x),
                            [c] if cand_links.contains_key(&c.key) => {
                                w.rejected.push(format!(
                                    "{key_name} matches {} record {} which is already linked to another record",
                                    y.as_str(),
                                    c.key
                                ));
                                w.reject_side = Some(y);
                            }
                            [c] => {
                                self.processed[idx(y)].insert(c.key.as_str());
                                set_record(&mut w, y, Some(c.clone()));
                                self.plan_merge(&mut w, None);
                            }
                            many => {
                                w.rejected.push(format!(
                                    "{key_name} matches {} {} records; matching is ambiguous, fix the duplicates",
                                    many.len(),
                                    y.as_str()
                                ));
                                w.reject_side = Some(y);
                            }
                        }
                    }
                }
            }
            works.push(w);
        }
        for k in missing {
            if self.processed[idx(x)].contains(k.as_str()) {
                continue;
            }
            self.processed[idx(x)].insert(k.as_str());
            let Some(l) = links.get(&k) else {
                // A pending record that no longer exists and was never linked.
                self.forget_pending(x, &k).await?;
                continue;
            };
            let other = if deleted_on(l, y) {
                None
            } else {
                y_records.remove(l.key(y))
            };
            self.processed[idx(y)].insert(l.key(y).as_str());
            let mut w = Work::new(self.next_seq());
            w.link = Some(l.clone());
            w.natural_key.clone_from(&l.natural_key);
            set_record(&mut w, y, other);
            self.plan_linked(&mut w);
            works.push(w);
        }
        for w in &mut works {
            refuse_unresolved(w, &unresolved);
        }
        self.validate(&mut works);
        self.execute_works(works, bulk).await
    }

    /// Rewrites each lookup field of these source records from a key of the lookup sync's
    /// source side to the key its record is linked to on that sync's target side, so the
    /// value compares with, and is written as, the target's reference. A value with no live
    /// link is not guessed: the record's key goes to `unresolved` with the reason, and its
    /// pair is refused (and retried on the next run, by which the other sync may have linked it).
    ///
    /// A list of keys (HubSpot's `associations.contacts`) is resolved key by key; written to a
    /// field that is not a list it must hold exactly one key. In a list of records (a field
    /// with `elements`), each element's lookup field is resolved the same way, and an element
    /// without a value there is refused: it could only be written without its reference.
    pub(super) async fn resolve_lookups(
        &self,
        records: &mut [Record],
        unresolved: &mut HashMap<RecordKey, String>,
    ) -> Result<(), SyncError> {
        for f in &self.mapping.fields {
            if let Some(lookup) = &f.lookup {
                let single = f.ty != syncctl_core::FieldType::Json;
                let links = self
                    .links_of(
                        &lookup.sync,
                        records
                            .iter()
                            .flat_map(|r| refs_in(r.fields.get(&f.source))),
                    )
                    .await?;
                for r in records.iter_mut() {
                    let Some(v) = r.fields.get(&f.source) else {
                        continue;
                    };
                    let list = v.is_array();
                    let refs = refs_in(Some(v));
                    let mut resolved = Vec::new();
                    let mut why = None;
                    for k in &refs {
                        match live_target(&links, k) {
                            Some(t) => resolved.push(Value::String(t)),
                            None => {
                                why = Some(format!(
                                    "{} {k:?} is not linked in sync {} (sync that first, or the record it names is gone)",
                                    f.source, lookup.sync
                                ));
                                break;
                            }
                        }
                    }
                    if why.is_none() && list && single && refs.len() > 1 {
                        why = Some(format!(
                            "{} names {} records ({}) but {} takes one; leave one",
                            f.source,
                            refs.len(),
                            refs.join(", "),
                            f.target
                        ));
                    }
                    if let Some(why) = why {
                        unresolved.insert(r.key.clone(), why);
                        continue;
                    }
                    let new = match (list && !single, resolved.len()) {
                        (true, _) => Value::Array(resolved),
                        (false, 0) if list => Value::Null,
                        (false, 0) => continue,
                        (false, _) => resolved.swap_remove(0),
                    };
                    r.fields.insert(f.source.clone(), new);
                }
            }
            for e in f.elements.iter().filter(|e| e.lookup.is_some()) {
                let Some(lookup) = &e.lookup else { continue };
                let all: Vec<String> = records
                    .iter()
                    .filter_map(|r| r.fields.get(&f.source).and_then(Value::as_array))
                    .flatten()
                    .filter_map(|item| crate::mapping::element_value(item, &e.source))
                    .filter_map(canonical_text)
                    .collect();
                let links = self.links_of(&lookup.sync, all).await?;
                for r in records.iter_mut() {
                    let Some(Value::Array(items)) = r.fields.get_mut(&f.source) else {
                        continue;
                    };
                    let mut why = None;
                    for (i, item) in items.iter_mut().enumerate() {
                        let name = item
                            .get("name")
                            .and_then(canonical_text)
                            .map_or_else(|| format!("element {}", i + 1), |n| format!("{n:?}"));
                        let Some(k) = crate::mapping::element_value(item, &e.source)
                            .and_then(canonical_text)
                            .filter(|k| !k.trim().is_empty())
                        else {
                            why = Some(format!(
                                "{} {name} has no {}, so it cannot be written with its reference",
                                f.source, e.source
                            ));
                            break;
                        };
                        match live_target(&links, &k) {
                            Some(t) => {
                                if let Some(obj) = item.as_object_mut() {
                                    obj.insert(e.source.clone(), Value::String(t));
                                }
                            }
                            None => {
                                why = Some(format!(
                                    "{} {name}: {} {k:?} is not linked in sync {} (sync that first, or the record it names is gone)",
                                    f.source, e.source, lookup.sync
                                ));
                                break;
                            }
                        }
                    }
                    if let Some(why) = why {
                        unresolved.entry(r.key.clone()).or_insert(why);
                    }
                }
            }
        }
        Ok(())
    }

    /// The links of `sync` whose source keys are among `refs`.
    async fn links_of(
        &self,
        sync: &str,
        refs: impl IntoIterator<Item = String>,
    ) -> Result<HashMap<RecordKey, Link>, SyncError> {
        let refs: Vec<RecordKey> = refs
            .into_iter()
            .filter(|v| !v.trim().is_empty())
            .map(RecordKey)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if refs.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.links_for(sync, Side::Source, &refs).await
    }

    pub(super) async fn forget_pending(
        &mut self,
        side: Side,
        key: &RecordKey,
    ) -> Result<(), SyncError> {
        if self.s.dry_run {
            return Ok(());
        }
        self.store
            .commit(
                &self.cfg.name,
                &self.run_id,
                &[PairCommit {
                    link_id: None,
                    link: LinkWrite::Keep,
                    conflict: ConflictWrite::None,
                    changes: Vec::new(),
                    pending_add: Vec::new(),
                    pending_remove: vec![(side, key.clone())],
                }],
            )
            .await?;
        Ok(())
    }
}

/// The references a lookup field holds: one key, or each key of a list.
fn refs_in(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(canonical_text)
            .filter(|k| !k.trim().is_empty())
            .collect(),
        Some(v) => canonical_text(v)
            .filter(|k| !k.trim().is_empty())
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

/// The target key `key` is linked to, when the link is live on both sides.
fn live_target(links: &HashMap<RecordKey, Link>, key: &str) -> Option<String> {
    links
        .get(&RecordKey(key.to_owned()))
        .filter(|l| !l.target_deleted && !l.source_deleted)
        .map(|l| l.target_key.0.clone())
}

/// Refuses a pair whose source record names, in a lookup field, a record linked in no sync:
/// nothing is written for it and its link stays as it was (retried on the next run).
pub(super) fn refuse_unresolved(w: &mut Work, unresolved: &HashMap<RecordKey, String>) {
    if let Some(why) = w.source.as_ref().and_then(|r| unresolved.get(&r.key)) {
        w.ops.clear();
        w.rejected = vec![why.clone()];
        w.reject_side = Some(Side::Target);
        w.link_after = super::plan::LinkAfter::Keep;
        w.close_conflict = None;
        w.queued = false;
    }
}
