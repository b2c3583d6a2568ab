//! The engine: read pages → pair → merge → validate → persist the plan → write in batches →
//! read back → link and audit, then deletes behind the mass-delete guard, then cursors.
//!
//! The engine never names a connector: it talks to `syncctl_core::connector` traits and to
//! the [`StateStore`]. Memory stays bounded by a page: each page of changed records is paired,
//! planned, written and committed before the next is read (only the sets of keys already
//! handled in this run are kept, so a record is processed once per run).
//!
//! Crash safety: audit rows are written as `planned` before a batch is sent; links, bases and
//! outcomes are committed in one transaction after it. A run killed in between is marked
//! `interrupted` by the next run, whose three-way merge then sees the written side as "already
//! changed to the merged value" (no write), and whose natural-key match finds records the
//! killed run created (no duplicate). Creates carry the natural key, so a sink that supports
//! it upserts instead of inserting twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use syncctl_core::{
    Classified, Connector, ConnectorError, ErrorClass, NaturalKey, ObjectSchema, ReadRequest,
    Record, RecordKey, Sink, Source, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_http::{BreakerConfig, CircuitBreaker};
use syncctl_validate::{RuleSet, check_against_schema, same_value};
use tokio_util::sync::CancellationToken;

use crate::config::{ConflictStrategy, DeletePolicy, SyncConfig};
use crate::error::SyncError;
use crate::mapping::{Mapping, Projected};
use crate::merge::{FieldConflict, Merge, Resolution, create_values, merge};
use crate::report::{
    BreakerReport, ConflictItem, CursorReport, FailedItem, FieldChange, LIST_CAP, PlanEntry,
    RejectedItem, RunReport, SideCounts, SideReport,
};
use crate::store::{
    ChangeRow, ConflictWrite, Link, LinkWrite, PairCommit, RunStart, Side, StateStore,
};

/// Records per read page.
const PAGE: usize = 500;

/// How a run is asked to behave (the config plus the run's flags).
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The resolved config (CLI overrides applied).
    pub config: SyncConfig,
    /// Plan only: read both sides, write nothing anywhere.
    pub dry_run: bool,
    /// Ignore cursors and read everything.
    pub full_refresh: bool,
    /// Put the plan in the report even for real runs (`--verbose`).
    pub include_plan: bool,
    /// At most this many plan entries in the report (0: no limit); the counts stay complete.
    pub plan_limit: usize,
    /// Process only these links (`sync conflicts resolve --apply`).
    pub only_links: Option<Vec<i64>>,
    /// Who runs it (user@host, orchestrator) for the run row.
    pub invoked_by: String,
    /// The effective settings recorded in the run row.
    pub args: Value,
    /// The SQLite lock lease (renewed at a third of it).
    pub lock_lease: Duration,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The result data.
    pub report: RunReport,
    /// Things to tell the user that did not fail the run.
    pub warnings: Vec<String>,
    /// Why the run failed, if it did.
    pub error: Option<SyncError>,
}

/// Runs a sync (or plans it, with `dry_run`). Never panics and always returns a report with
/// whatever was done before a failure.
pub async fn run(
    settings: &RunSettings,
    source: &dyn Connector,
    target: &dyn Connector,
    store: &StateStore,
    cancel: &CancellationToken,
) -> RunOutcome {
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut report = RunReport {
        sync: settings.config.name.clone(),
        run: run_id.clone(),
        direction: settings.config.direction.as_str().to_owned(),
        conflict_strategy: settings.config.conflict_strategy.as_str().to_owned(),
        dry_run: settings.dry_run,
        ..RunReport::default()
    };
    for (side, c) in [(Side::Source, source), (Side::Target, target)] {
        let r = report_side(&mut report, side);
        r.connector = c.kind().to_owned();
        r.object = c.object().to_owned();
        r.endpoint = c.endpoint();
    }
    let mut warnings = Vec::new();
    let lock = if settings.dry_run || store.is_read_only() {
        None
    } else {
        match store
            .lock(&settings.config.name, &run_id, settings.lock_lease)
            .await
        {
            Ok(l) => Some(l),
            Err(e) => {
                return RunOutcome {
                    report,
                    warnings,
                    error: Some(e),
                };
            }
        }
    };
    let mut engine =
        match Engine::start(settings, source, target, store, cancel, run_id, report).await {
            Ok(e) => e,
            Err((report, e)) => {
                if let Some(l) = lock {
                    let _ = store.unlock(l).await;
                }
                return RunOutcome {
                    report,
                    warnings,
                    error: Some(e),
                };
            }
        };
    let result = engine.execute().await;
    let error = engine.finish(result).await;
    warnings.append(&mut engine.warnings);
    if let Some(l) = lock
        && let Err(e) = store.unlock(l).await
    {
        warnings.push(format!("could not release the sync lock: {e}"));
    }
    RunOutcome {
        report: engine.report,
        warnings,
        error,
    }
}

/// Every problem of a config against the two connectors and their discovered schemas (fields
/// that do not exist, written fields that cannot be written, deletes a side cannot do,
/// required columns no mapped field fills); the mapping when there are none of the first kind.
#[must_use]
pub fn config_problems(
    cfg: &SyncConfig,
    source: &dyn Connector,
    target: &dyn Connector,
    ss: &ObjectSchema,
    ts: &ObjectSchema,
) -> (Option<Mapping>, Vec<String>) {
    let (mapping, mut problems) = match Mapping::build(cfg, ss, ts) {
        Ok(m) => (Some(m), Vec::new()),
        Err(p) => (None, p),
    };
    for (side, c, sc) in [(Side::Source, source, ss), (Side::Target, target, ts)] {
        let writes = match side {
            Side::Source => cfg.direction.to_source(),
            Side::Target => cfg.direction.to_target(),
        };
        if c.source().is_none() {
            problems.push(format!(
                "{} connector {} cannot read",
                side.as_str(),
                c.kind()
            ));
        }
        if writes && c.sink().is_none() {
            problems.push(format!(
                "{} connector {} cannot write, but the direction {} writes to it",
                side.as_str(),
                c.kind(),
                cfg.direction.as_str()
            ));
        }
        if writes && cfg.deletes == DeletePolicy::Archive && !sc.capabilities.archive {
            problems.push(format!(
                "deletes: archive needs a deleted_column on the {} ({})",
                side.as_str(),
                c.kind()
            ));
        }
        if writes && cfg.deletes == DeletePolicy::Propagate && !sc.capabilities.delete {
            problems.push(format!(
                "deletes: propagate, but the {} connector cannot delete",
                side.as_str()
            ));
        }
        if writes && sc.capabilities.create {
            let mapped: HashSet<&str> = cfg
                .fields
                .iter()
                .map(|f| match side {
                    Side::Source => f.source.as_str(),
                    Side::Target => f.target.as_str(),
                })
                .collect();
            for f in &sc.fields {
                let generated = f.name == sc.key && sc.capabilities.generated_keys;
                let managed = [&sc.updated_at, &sc.origin, &sc.deleted]
                    .iter()
                    .any(|c| c.as_deref() == Some(f.name.as_str()));
                let keyed_by_token = f.name == sc.key;
                if !f.nullable
                    && !f.has_default
                    && !generated
                    && !managed
                    && !keyed_by_token
                    && !mapped.contains(f.name.as_str())
                {
                    problems.push(format!(
                        "{} column {:?} is NOT NULL without a default and no mapped field fills it, so every record created there would be rejected",
                        side.as_str(),
                        f.name
                    ));
                }
            }
        }
    }
    (mapping, problems)
}

fn report_side(r: &mut RunReport, side: Side) -> &mut SideReport {
    match side {
        Side::Source => &mut r.source,
        Side::Target => &mut r.target,
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

struct SideCtx<'a> {
    conn: &'a dyn Connector,
    source: &'a dyn Source,
    sink: Option<&'a dyn Sink>,
    schema: ObjectSchema,
    batch: usize,
    breaker: CircuitBreaker,
    breaker_dirty: bool,
    blocked: Option<SyncError>,
    counts: SideCounts,
    cursor_before: Option<DateTime<Utc>>,
    max_seen: Option<DateTime<Utc>>,
    rules: RuleSet,
}

/// What happened to one write.
#[derive(Debug, Clone, PartialEq)]
enum OpResult {
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
struct Op {
    side: Side,
    op: WriteOp,
    changes: BTreeMap<String, FieldChange>,
    before: Option<Value>,
    change_id: Option<i64>,
    result: OpResult,
}

#[derive(Debug, Clone, PartialEq)]
enum LinkAfter {
    Keep,
    /// Write the link with this base once every op applied.
    Set(BTreeMap<String, Value>),
    Tombstone(Side),
    Remove,
}

#[derive(Debug, Clone)]
struct Work {
    seq: i64,
    link: Option<Link>,
    source: Option<Record>,
    target: Option<Record>,
    natural_key: Option<String>,
    ops: Vec<Op>,
    rejected: Vec<String>,
    reject_side: Option<Side>,
    conflict: BTreeMap<String, FieldConflict>,
    queued: bool,
    close_conflict: Option<&'static str>,
    link_after: LinkAfter,
    skip: Option<String>,
    /// Audit row for a rejection or queued conflict.
    note_change: Option<i64>,
    /// A deferred delete: the side whose record is gone.
    gone: Option<Side>,
}

impl Work {
    fn new(seq: i64) -> Self {
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
        }
    }

    fn record(&self, side: Side) -> Option<&Record> {
        match side {
            Side::Source => self.source.as_ref(),
            Side::Target => self.target.as_ref(),
        }
    }

    fn key(&self, side: Side) -> Option<RecordKey> {
        self.record(side)
            .map(|r| r.key.clone())
            .or_else(|| self.link.as_ref().map(|l| l.key(side).clone()))
    }
}

struct Engine<'a> {
    s: &'a RunSettings,
    cfg: &'a SyncConfig,
    store: &'a StateStore,
    cancel: &'a CancellationToken,
    run_id: String,
    ctx: WriteContext,
    mapping: Mapping,
    sides: [SideCtx<'a>; 2],
    report: RunReport,
    plan: Vec<PlanEntry>,
    warnings: Vec<String>,
    seq: i64,
    processed: [KeySet; 2],
    claimed: KeySet,
    pending: [BTreeSet<RecordKey>; 2],
    resolutions: HashMap<i64, Resolution>,
    open_conflicts: HashSet<i64>,
    deletes: Vec<(Link, Side)>,
    delete_links: HashSet<i64>,
    scanned: bool,
    latest_warned: bool,
    empty_sides: HashSet<Side>,
}

/// A set of keys kept as 128-bit hashes: a run over a million records remembers which it
/// handled in ~30 MB instead of ~100 MB of strings; a collision is as likely as guessing a
/// UUID.
#[derive(Debug, Default)]
struct KeySet(HashSet<u128>);

impl KeySet {
    fn hash(key: &str) -> u128 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut a = DefaultHasher::new();
        key.hash(&mut a);
        let mut b = DefaultHasher::new();
        (0x5eed_u16, key).hash(&mut b);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }
    fn insert(&mut self, key: &str) -> bool {
        self.0.insert(Self::hash(key))
    }
    fn contains(&self, key: &str) -> bool {
        self.0.contains(&Self::hash(key))
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}

impl<'a> Engine<'a> {
    // The error carries the report so far; it is returned once per run, so boxing buys nothing.
    #[allow(clippy::too_many_lines, clippy::result_large_err)]
    async fn start(
        s: &'a RunSettings,
        source: &'a dyn Connector,
        target: &'a dyn Connector,
        store: &'a StateStore,
        cancel: &'a CancellationToken,
        run_id: String,
        mut report: RunReport,
    ) -> Result<Self, (RunReport, SyncError)> {
        let cfg = &s.config;
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Err((report, SyncError::from(e))),
                }
            };
        }
        if !s.dry_run {
            let recovered = tri!(store.mark_interrupted(&cfg.name).await);
            report.recovered_runs = recovered;
            tri!(
                store
                    .begin_run(&RunStart {
                        run_id: run_id.clone(),
                        sync_name: cfg.name.clone(),
                        direction: cfg.direction.as_str().to_owned(),
                        started_at: Utc::now(),
                        invoked_by: s.invoked_by.clone(),
                        args: s.args.clone(),
                    })
                    .await
            );
        }
        let fail = |report: RunReport, e: SyncError| Err((report, e));
        let mut schemas = Vec::new();
        for c in [source, target] {
            match c.describe().await {
                Ok(sc) => schemas.push(sc),
                Err(e) => return fail(report, e.into()),
            }
        }
        let (ss, ts) = (schemas.remove(0), schemas.remove(0));
        let (mapping, problems) = config_problems(cfg, source, target, &ss, &ts);
        let mapping = match mapping {
            Some(m) if problems.is_empty() => m,
            _ => return fail(report, SyncError::Config { problems }),
        };
        let breaker_cfg = BreakerConfig {
            failure_threshold: cfg.breaker.failure_threshold,
            cooldown: cfg.breaker.cooldown,
        };
        let mut sides = Vec::new();
        for (side, c, sc) in [(Side::Source, source, ss), (Side::Target, target, ts)] {
            let endpoint = c.endpoint();
            let state = tri!(store.breaker(&endpoint).await).unwrap_or_default();
            let mut breaker = CircuitBreaker::from_state(breaker_cfg, state);
            // An open breaker past its cool-down lets this run through as its one probe;
            // before that the run stops without touching the connector.
            let blocked = match breaker.try_acquire(Utc::now()) {
                Ok(()) => None,
                Err(next) => Some(SyncError::BreakerOpen {
                    endpoint: endpoint.clone(),
                    failures: breaker
                        .state
                        .consecutive_failures
                        .max(breaker_cfg.failure_threshold),
                    next_probe: fmt_time(next),
                }),
            };
            if let Some(e) = blocked {
                let mut r = report;
                r.breaker.insert(
                    side.as_str().to_owned(),
                    breaker_report(&endpoint, &breaker),
                );
                return Err((r, e));
            }
            let cursor_before = tri!(store.cursor(&cfg.name, side).await);
            let batch = cfg.batch_size.min(sc.max_batch).max(1);
            report_side(&mut report, side).batch_size = batch;
            report_side(&mut report, side).cursor.before = cursor_before.map(fmt_time);
            let Some(src) = c.source() else {
                return fail(report, SyncError::config("connector cannot read"));
            };
            let names: HashSet<&str> = mapping.fields.iter().map(|f| f.name(side)).collect();
            let rules = RuleSet {
                fields: cfg
                    .validation
                    .fields
                    .iter()
                    .filter(|(k, _)| names.contains(k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            sides.push(SideCtx {
                conn: c,
                source: src,
                sink: c.sink(),
                schema: sc,
                batch,
                breaker,
                breaker_dirty: true,
                blocked: None,
                counts: SideCounts::default(),
                cursor_before,
                max_seen: None,
                rules,
            });
        }
        let (Some(t), Some(sr)) = (sides.pop(), sides.pop()) else {
            return fail(report, SyncError::config("internal: sides"));
        };
        let mut engine = Self {
            s,
            cfg,
            store,
            cancel,
            ctx: WriteContext::new(&cfg.name, &run_id),
            run_id,
            mapping,
            sides: [sr, t],
            report,
            plan: Vec::new(),
            warnings: Vec::new(),
            seq: 0,
            processed: [KeySet::default(), KeySet::default()],
            claimed: KeySet::default(),
            pending: [BTreeSet::new(), BTreeSet::new()],
            resolutions: HashMap::new(),
            open_conflicts: HashSet::new(),
            deletes: Vec::new(),
            delete_links: HashSet::new(),
            scanned: false,
            latest_warned: false,
            empty_sides: HashSet::new(),
        };
        if let Err(e) = engine.load_pending().await {
            return Err((engine.report, e));
        }
        Ok(engine)
    }

    fn side(&mut self, side: Side) -> &mut SideCtx<'a> {
        &mut self.sides[idx(side)]
    }

    async fn load_pending(&mut self) -> Result<(), SyncError> {
        let name = self.cfg.name.clone();
        let conflicts = self
            .store
            .conflicts(Some(&name), &["open", "resolved"], i64::MAX)
            .await?;
        let mut link_ids = Vec::new();
        for c in &conflicts {
            self.open_conflicts.insert(c.link_id);
            if c.status == "resolved"
                && let Some(r) = c
                    .resolution
                    .as_ref()
                    .and_then(|j| Resolution::from_json(&j.0))
            {
                self.resolutions.insert(c.link_id, r);
            }
            link_ids.push(c.link_id);
        }
        if let Some(only) = &self.s.only_links {
            link_ids.clone_from(only);
        } else {
            for side in [Side::Source, Side::Target] {
                for k in self.store.pending(&name, side).await? {
                    self.pending[idx(side)].insert(k);
                }
            }
        }
        for l in self.store.links_by_id(&name, &link_ids).await? {
            // Read from whichever side still has the record.
            if l.source_deleted {
                self.pending[idx(Side::Target)].insert(l.target_key.clone());
            } else {
                self.pending[idx(Side::Source)].insert(l.source_key.clone());
            }
        }
        Ok(())
    }

    async fn execute(&mut self) -> Result<(), SyncError> {
        let dir = self.cfg.direction;
        let mut order = Vec::new();
        if dir.to_target() {
            order.push(Side::Source);
        }
        if dir.to_source() {
            order.push(Side::Target);
        }
        if !self.s.dry_run {
            self.recover().await?;
        }
        for side in [Side::Source, Side::Target] {
            self.process_pending(side).await?;
        }
        if self.s.only_links.is_some() {
            return Ok(());
        }
        for side in order {
            self.scan_changes(side).await?;
        }
        if self.cfg.deletes != DeletePolicy::Ignore {
            self.detect_deletes().await?;
        }
        self.apply_deletes().await?;
        self.scanned = true;
        Ok(())
    }

    /// Reconciles the writes of killed runs whose outcome was never recorded (audit rows left
    /// `interrupted`). A value that reached the record it was written to is what both sides
    /// last agreed on, so it becomes the base; a record a killed run created is found by its
    /// natural key and linked with the values it was created with. Without this, a record
    /// edited again after the crash would look changed on both sides and its edit could lose
    /// a conflict it never had. The rows are then marked `recovered`.
    async fn recover(&mut self) -> Result<(), SyncError> {
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

    fn check_cancel(&self) -> Result<(), SyncError> {
        if self.cancel.is_cancelled() {
            Err(SyncError::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn process_pending(&mut self, side: Side) -> Result<(), SyncError> {
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

    fn read_failed(&mut self, side: Side, e: ConnectorError) -> SyncError {
        if e.class() == ErrorClass::Transient {
            let now = Utc::now();
            let s = self.side(side);
            s.breaker.record_failure(now);
            s.breaker_dirty = true;
        }
        e.into()
    }

    async fn scan_changes(&mut self, side: Side) -> Result<(), SyncError> {
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
        loop {
            self.check_cancel()?;
            let src = self.sides[idx(side)].source;
            let schema = self.sides[idx(side)].schema.clone();
            let page = src
                .read_page(&schema, &req)
                .await
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
            let recs: Vec<Record> = page
                .records
                .into_iter()
                .filter(|r| !self.processed[idx(side)].contains(r.key.as_str()))
                .collect();
            self.side(side).counts.read += recs.len() as u64;
            if !recs.is_empty() {
                self.process(side, recs, Vec::new(), true).await?;
            }
            match page.next {
                Some(t) => req.after = Some(t),
                None => return Ok(()),
            }
        }
    }

    fn next_seq(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }

    fn project(&self, side: Side, r: &Record) -> Projected {
        self.mapping.project(side, r)
    }

    /// Pairs, plans and executes one page of records read from `x`.
    #[allow(clippy::too_many_lines)]
    async fn process(
        &mut self,
        x: Side,
        mut records: Vec<Record>,
        missing: Vec<RecordKey>,
        from_scan: bool,
    ) -> Result<(), SyncError> {
        let y = x.other();
        let name = self.cfg.name.clone();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let mut keys: Vec<RecordKey> = records.iter().map(|r| r.key.clone()).collect();
        keys.extend(missing.iter().cloned());
        let mut links = self.store.links_for(&name, x, &keys).await?;
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
            y_records.extend(got.into_iter().map(|r| (r.key.clone(), r)));
        }
        // Natural-key candidates of never-linked records.
        let mut nks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            if links.contains_key(&r.key) || r.deleted {
                continue;
            }
            if let Some(nk) = self.mapping.natural_key(&self.project(x, r)) {
                nks.entry(nk).or_default().push(i);
            }
        }
        let mut candidates: HashMap<String, Vec<Record>> = HashMap::new();
        let mut cand_links: HashMap<RecordKey, Link> = HashMap::new();
        if !nks.is_empty()
            && let Some(kf) = self.mapping.key_field()
        {
            let field = kf.name(y).to_owned();
            let values: Vec<Value> = nks.keys().map(|k| Value::String(k.clone())).collect();
            let found = y_src
                .lookup(&y_schema, &field, &values)
                .await
                .map_err(|e| self.read_failed(y, e))?;
            self.side(y).counts.read += found.len() as u64;
            let found_keys: Vec<RecordKey> = found.iter().map(|r| r.key.clone()).collect();
            cand_links = self.store.links_for(&name, y, &found_keys).await?;
            for r in found {
                if r.deleted {
                    continue;
                }
                if let Some(nk) = self.mapping.natural_key(&self.project(y, &r)) {
                    candidates.entry(nk).or_default().push(r);
                }
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
                let p = self.project(x, &r);
                let nk = self.mapping.natural_key(&p);
                w.natural_key.clone_from(&nk);
                let key_name = self
                    .mapping
                    .key_field()
                    .map_or("key", |f| f.name(x))
                    .to_owned();
                match nk {
                    None => {
                        w.rejected.push(format!(
                            "{key_name} is empty, so the record can be neither matched nor created"
                        ));
                        w.reject_side = Some(y);
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
                    Some(nk) => {
                        self.claimed.insert(&nk);
                        let cands = candidates.get(&nk).cloned().unwrap_or_default();
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
        self.validate(&mut works);
        self.execute_works(works).await
    }

    async fn forget_pending(&mut self, side: Side, key: &RecordKey) -> Result<(), SyncError> {
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

    /// A linked pair: merge, or a deletion on one side.
    fn plan_linked(&mut self, w: &mut Work) {
        let Some(link) = w.link.clone() else {
            return;
        };
        let s_live = w.source.as_ref().filter(|r| !r.deleted).is_some();
        let t_live = w.target.as_ref().filter(|r| !r.deleted).is_some();
        match (s_live, t_live) {
            (true, true) => self.plan_merge(w, Some(&link.base)),
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
                    if self.delete_links.insert(link.id) {
                        self.deletes.push((link.clone(), gone));
                    }
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

    fn plan_merge(&mut self, w: &mut Work, base: Option<&BTreeMap<String, Value>>) {
        let (Some(sr), Some(tr)) = (w.source.clone(), w.target.clone()) else {
            return;
        };
        let sp = self.project(Side::Source, &sr);
        let tp = self.project(Side::Target, &tr);
        let resolution = w
            .link
            .as_ref()
            .and_then(|l| self.resolutions.get(&l.id))
            .cloned();
        let strategy = self.cfg.conflict_strategy;
        let m: Merge = merge(&self.mapping, strategy, base, &sp, &tp, resolution.as_ref());
        if strategy == ConflictStrategy::Latest
            && !m.conflicts.is_empty()
            && (sp.updated_at.is_none() || tp.updated_at.is_none())
            && !self.latest_warned
        {
            self.latest_warned = true;
            self.warnings.push(
                "conflict_strategy latest: some records carry no modified time (no updated_at_column); those conflicts went to the source".to_owned(),
            );
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
                .filter(|_| self.sides[idx(side)].schema.capabilities.conditional_update);
            w.ops.push(Op {
                side,
                op: WriteOp::Update {
                    key: rec.key.clone(),
                    fields,
                    expected_updated_at: expected,
                    expected_version: rec
                        .version
                        .clone()
                        .filter(|_| self.sides[idx(side)].schema.capabilities.versioned),
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

    fn plan_create(&mut self, w: &mut Work, from: Side) {
        let to = from.other();
        let allowed = match to {
            Side::Target => self.cfg.direction.to_target(),
            Side::Source => self.cfg.direction.to_source(),
        };
        let Some(rec) = w.record(from).cloned() else {
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
        let p = self.project(from, &rec);
        let values = create_values(&self.mapping, from, &p);
        let fields = self.mapping.to_side(to, &values);
        let natural_key = self.mapping.key_field().and_then(|kf| {
            values.get(&kf.canon).map(|v| NaturalKey {
                field: kf.name(to).to_owned(),
                value: v.clone(),
            })
        });
        let token = {
            let d = Sha256::digest(
                format!("{}\0{}\0{}", self.cfg.name, to.as_str(), rec.key).as_bytes(),
            );
            let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("sc1-{hex}")
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

    /// Pre-write validation: config rules and the written side's type rules. One refused write
    /// refuses the whole pair, so a pair is never half-synced by design.
    fn validate(&mut self, works: &mut [Work]) {
        for w in works.iter_mut() {
            let mut reasons = Vec::new();
            let mut side_refused = None;
            for op in &w.ops {
                let sc = &self.sides[idx(op.side)];
                let (fields, creating) = match &op.op {
                    WriteOp::Create { fields, .. } => (fields, true),
                    WriteOp::Update { fields, .. } => (fields, false),
                    _ => continue,
                };
                let mut v = sc.rules.check(fields, creating);
                v.extend(check_against_schema(fields, &sc.schema, creating));
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

    /// Adds plan entries up to the limit; the rest are only counted, so a plan of a million
    /// records does not have to fit in memory or in one result line.
    fn add_plan(&mut self, entries: Vec<PlanEntry>) {
        for e in entries {
            if self.s.plan_limit == 0 || self.plan.len() < self.s.plan_limit {
                self.plan.push(e);
            } else {
                self.report.plan_omitted += 1;
            }
        }
    }

    fn entry(&self, w: &Work, action: &'static str, side: Option<Side>) -> PlanEntry {
        PlanEntry {
            seq: w.seq,
            action,
            side: side.map(Side::as_str),
            source_key: w.key(Side::Source).map(|k| k.0),
            target_key: w.key(Side::Target).map(|k| k.0),
            natural_key: w.natural_key.clone(),
            changes: BTreeMap::new(),
            conflict: BTreeMap::new(),
            reasons: Vec::new(),
            status: "planned".to_owned(),
        }
    }

    /// Plan entries of a work item (before execution).
    fn entries(&self, w: &Work) -> Vec<PlanEntry> {
        let mut out = Vec::new();
        if !w.rejected.is_empty() {
            let mut e = self.entry(w, "rejected", w.reject_side);
            e.reasons.clone_from(&w.rejected);
            e.status = "rejected".to_owned();
            out.push(e);
            return out;
        }
        if !w.conflict.is_empty() {
            let mut e = self.entry(w, "conflict", None);
            e.conflict.clone_from(&w.conflict);
            e.status = if w.queued { "queued" } else { "resolved" }.to_owned();
            out.push(e);
        }
        for op in &w.ops {
            let mut e = self.entry(w, op.op.kind(), Some(op.side));
            e.changes.clone_from(&op.changes);
            out.push(e);
        }
        if let Some(reason) = &w.skip
            && w.gone.is_none()
        {
            let mut e = self.entry(w, "skip", None);
            e.reasons.push(reason.clone());
            e.status = "skipped".to_owned();
            out.push(e);
        }
        if w.ops.is_empty()
            && w.link.is_none()
            && w.conflict.is_empty()
            && matches!(w.link_after, LinkAfter::Set(_))
        {
            let mut e = self.entry(w, "link", None);
            e.status = "linked".to_owned();
            out.push(e);
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    async fn execute_works(&mut self, mut works: Vec<Work>) -> Result<(), SyncError> {
        if works.is_empty() {
            return Ok(());
        }
        if self.s.dry_run {
            for w in &works {
                self.count_planned(w);
                let entries = self.entries(w);
                self.add_plan(entries);
            }
            return Ok(());
        }
        // 1. Persist the plan before anything is sent.
        let mut rows = Vec::new();
        let mut slots = Vec::new();
        for (wi, w) in works.iter().enumerate() {
            let link_id = w.link.as_ref().map(|l| l.id);
            for (oi, op) in w.ops.iter().enumerate() {
                rows.push(ChangeRow {
                    seq: w.seq,
                    link_id,
                    side: op.side,
                    record_key: op_key(&op.op),
                    action: op.op.kind().to_owned(),
                    before: op.before.clone(),
                    after: Some(json!(write_fields(&op.op))),
                    status: "planned".to_owned(),
                    error: None,
                    origin_key: w.key(op.side.other()).map(|k| k.0),
                });
                slots.push((wi, Some(oi)));
            }
            if !w.rejected.is_empty() || w.queued {
                let side = w.reject_side.unwrap_or(Side::Target);
                rows.push(ChangeRow {
                    seq: w.seq,
                    link_id,
                    side,
                    record_key: w.key(side.other()).map(|k| k.0),
                    action: if w.queued { "conflict" } else { "reject" }.to_owned(),
                    before: None,
                    after: (!w.conflict.is_empty()).then(|| json!(w.conflict)),
                    status: if w.queued { "queued" } else { "rejected" }.to_owned(),
                    error: (!w.rejected.is_empty()).then(|| w.rejected.join("; ")),
                    origin_key: None,
                });
                slots.push((wi, None));
            }
        }
        let ids = self.store.insert_changes(&self.run_id, &rows).await?;
        for ((wi, oi), id) in slots.into_iter().zip(ids) {
            match oi {
                Some(oi) => works[wi].ops[oi].change_id = Some(id),
                None => works[wi].note_change = Some(id),
            }
        }
        // 2. Write, per side, in batches. A signal or a fatal error stops between batches;
        // what was written is still committed below, what was not is recorded as skipped.
        let mut stop: Option<SyncError> = None;
        'sides: for side in [Side::Target, Side::Source] {
            let mut refs: Vec<(usize, usize)> = Vec::new();
            for (wi, w) in works.iter().enumerate() {
                for (oi, op) in w.ops.iter().enumerate() {
                    if op.side == side {
                        refs.push((wi, oi));
                    }
                }
            }
            let batch = self.sides[idx(side)].batch;
            for chunk in refs.chunks(batch) {
                if let Err(e) = self.check_cancel() {
                    stop = Some(e);
                    break 'sides;
                }
                let ops: Vec<WriteOp> = chunk
                    .iter()
                    .map(|(wi, oi)| works[*wi].ops[*oi].op.clone())
                    .collect();
                match self.write_batch(side, &ops).await {
                    Ok(results) => {
                        for ((wi, oi), r) in chunk.iter().zip(results) {
                            works[*wi].ops[*oi].result = r;
                        }
                    }
                    Err(e) => {
                        stop = Some(e);
                        break 'sides;
                    }
                }
            }
        }
        // 3. Link, audit and pending in one transaction.
        let mut commits = Vec::with_capacity(works.len());
        for w in &works {
            commits.push(self.commit_of(w));
        }
        let ids = self
            .store
            .commit(&self.cfg.name, &self.run_id, &commits)
            .await?;
        for (w, (_, conflict_id)) in works.iter().zip(ids) {
            // Records this run created are not read back as changes later in the run.
            for op in &w.ops {
                if let (WriteOp::Create { .. }, OpResult::Applied { key, .. }) =
                    (&op.op, &op.result)
                {
                    self.processed[idx(op.side)].insert(key.as_str());
                }
            }
            self.count_done(w, conflict_id);
            let mut entries = self.entries(w);
            for e in &mut entries {
                if let Some(op) = w
                    .ops
                    .iter()
                    .find(|o| Some(o.side.as_str()) == e.side && o.op.kind() == e.action)
                {
                    e.status = status_of(&op.result).to_owned();
                }
            }
            if self.s.include_plan {
                self.add_plan(entries);
            }
        }
        stop.map_or(Ok(()), Err)
    }

    /// Sends one batch to `side`, gated by its breaker, and verifies it by reading it back.
    async fn write_batch(
        &mut self,
        side: Side,
        ops: &[WriteOp],
    ) -> Result<Vec<OpResult>, SyncError> {
        let now = Utc::now();
        let endpoint = self.sides[idx(side)].conn.endpoint();
        if self.sides[idx(side)].blocked.is_some() {
            return Ok(vec![
                OpResult::Skipped("circuit breaker open".to_owned());
                ops.len()
            ]);
        }
        if self.sides[idx(side)].breaker.state.phase == syncctl_http::BreakerPhase::Open {
            let st = &self.sides[idx(side)].breaker.state;
            let (failures, next) = (st.consecutive_failures, st.next_probe_at.unwrap_or(now));
            self.side(side).blocked = Some(SyncError::BreakerOpen {
                endpoint,
                failures,
                next_probe: fmt_time(next),
            });
            return Ok(vec![
                OpResult::Skipped("circuit breaker open".to_owned());
                ops.len()
            ]);
        }
        let Some(sink) = self.sides[idx(side)].sink else {
            return Ok(vec![
                OpResult::Failed("connector cannot write".to_owned());
                ops.len()
            ]);
        };
        let schema = self.sides[idx(side)].schema.clone();
        let outcome = sink.write(&schema, ops, &self.ctx).await;
        let outcomes = match outcome {
            Ok(o) if o.len() == ops.len() => o,
            Ok(o) => {
                return Err(SyncError::Connector(ConnectorError::failed(
                    self.sides[idx(side)].conn.kind(),
                    format!("returned {} outcomes for {} writes", o.len(), ops.len()),
                )));
            }
            Err(e) => {
                let class = e.class();
                if matches!(class, ErrorClass::Config | ErrorClass::Auth) {
                    return Err(e.into());
                }
                let s = self.side(side);
                s.breaker.record_failure(Utc::now());
                s.breaker_dirty = true;
                let msg = e.to_string();
                return Ok(vec![OpResult::Failed(msg); ops.len()]);
            }
        };
        let mut any_applied = false;
        let mut transient = 0;
        let mut results: Vec<OpResult> = outcomes
            .into_iter()
            .map(|o| match o {
                WriteOutcome::Applied { key, stored, .. } => {
                    any_applied = true;
                    OpResult::Applied { key, stored }
                }
                WriteOutcome::Stale { .. } => OpResult::Stale,
                WriteOutcome::NotFound { .. } => OpResult::NotFound,
                WriteOutcome::Failed(e) => {
                    if e.class == ErrorClass::Transient {
                        transient += 1;
                    }
                    OpResult::Failed(e.message)
                }
            })
            .collect();
        {
            let s = self.side(side);
            s.breaker_dirty = true;
            if transient > 0 && !any_applied {
                s.breaker.record_failure(Utc::now());
            } else {
                s.breaker.record_success();
            }
        }
        self.verify(side, ops, &mut results).await?;
        Ok(results)
    }

    /// After-write validation: what is stored must equal what was written.
    async fn verify(
        &mut self,
        side: Side,
        ops: &[WriteOp],
        results: &mut [OpResult],
    ) -> Result<(), SyncError> {
        let schema = self.sides[idx(side)].schema.clone();
        let missing: Vec<RecordKey> = results
            .iter()
            .zip(ops)
            .filter_map(|(r, op)| match (r, op) {
                (
                    OpResult::Applied { key, stored: None },
                    WriteOp::Create { .. } | WriteOp::Update { .. },
                ) => Some(key.clone()),
                _ => None,
            })
            .collect();
        let mut fetched: HashMap<RecordKey, Record> = HashMap::new();
        if !missing.is_empty() {
            let src = self.sides[idx(side)].source;
            let got = src
                .read_keys(&schema, &missing)
                .await
                .map_err(|e| self.read_failed(side, e))?;
            fetched.extend(got.into_iter().map(|r| (r.key.clone(), r)));
        }
        for (r, op) in results.iter_mut().zip(ops) {
            let fields = match op {
                WriteOp::Create { fields, .. } | WriteOp::Update { fields, .. } => fields,
                _ => continue,
            };
            let OpResult::Applied { key, stored } = r else {
                continue;
            };
            let rec = stored.clone().or_else(|| fetched.get(key).cloned());
            let Some(rec) = rec else {
                *r = OpResult::Failed("read-back after writing found no such record".to_owned());
                continue;
            };
            let mut bad = Vec::new();
            for (name, written) in fields {
                let stored_v = rec.fields.get(name).unwrap_or(&Value::Null);
                let ty = schema.field(name).map(|f| f.field_type.clone());
                let canon = |v: &Value| match &ty {
                    Some(t) => syncctl_validate::coerce(v, t).unwrap_or_else(|_| v.clone()),
                    None => v.clone(),
                };
                if !same_value(&canon(stored_v), &canon(written)) {
                    bad.push(name.clone());
                }
            }
            if bad.is_empty() {
                *stored = Some(rec);
            } else {
                *r = OpResult::Failed(format!(
                    "read-back mismatch: stored value differs from the value written for {}",
                    bad.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn commit_of(&self, w: &Work) -> PairCommit {
        let mut pc = PairCommit {
            link_id: w.link.as_ref().map(|l| l.id),
            link: LinkWrite::Keep,
            conflict: ConflictWrite::None,
            changes: Vec::new(),
            pending_add: Vec::new(),
            pending_remove: Vec::new(),
        };
        let all_applied = w
            .ops
            .iter()
            .all(|o| matches!(o.result, OpResult::Applied { .. }));
        for op in &w.ops {
            let (status, error, key) = match &op.result {
                OpResult::Applied { key, .. } => ("applied", None, Some(key.0.clone())),
                OpResult::Failed(e) => ("failed", Some(e.clone()), None),
                OpResult::Stale => (
                    "stale",
                    Some("changed since it was read; retried next run".to_owned()),
                    None,
                ),
                OpResult::NotFound => (
                    "not_found",
                    Some("the record no longer exists".to_owned()),
                    None,
                ),
                OpResult::Skipped(why) => ("skipped", Some(why.clone()), None),
                OpResult::Pending => ("skipped", Some("not sent".to_owned()), None),
            };
            if let Some(id) = op.change_id {
                pc.changes.push((id, status.to_owned(), error, key));
            }
        }
        let keys: Vec<(Side, RecordKey)> = [Side::Source, Side::Target]
            .into_iter()
            .filter_map(|s| w.record(s).map(|r| (s, r.key.clone())))
            .collect();
        if !w.rejected.is_empty() {
            for (s, k) in &keys {
                pc.pending_add
                    .push((*s, k.clone(), "rejected by validation".to_owned()));
            }
            return pc;
        }
        if !all_applied {
            for (s, k) in &keys {
                pc.pending_add
                    .push((*s, k.clone(), "write failed or skipped".to_owned()));
            }
            return pc;
        }
        for (s, k) in &keys {
            pc.pending_remove.push((*s, k.clone()));
        }
        // Keys of records this pair created.
        let mut created: HashMap<Side, (RecordKey, Option<Record>)> = HashMap::new();
        for op in &w.ops {
            if let (WriteOp::Create { .. }, OpResult::Applied { key, stored }) =
                (&op.op, &op.result)
            {
                created.insert(op.side, (key.clone(), stored.clone()));
            }
        }
        let key_of = |side: Side| -> Option<RecordKey> {
            created
                .get(&side)
                .map(|(k, _)| k.clone())
                .or_else(|| w.key(side))
        };
        let time_of = |side: Side| -> Option<DateTime<Utc>> {
            w.ops
                .iter()
                .filter(|o| o.side == side)
                .find_map(|o| match &o.result {
                    OpResult::Applied {
                        stored: Some(r), ..
                    } => r.updated_at,
                    _ => None,
                })
                .or_else(|| w.record(side).and_then(|r| r.updated_at))
        };
        match &w.link_after {
            LinkAfter::Keep => {}
            LinkAfter::Remove => {
                if let Some(l) = &w.link {
                    pc.link = LinkWrite::Remove(l.id);
                }
            }
            LinkAfter::Tombstone(side) => {
                if let Some(l) = &w.link {
                    pc.link = LinkWrite::Upsert {
                        id: Some(l.id),
                        source_key: l.source_key.clone(),
                        target_key: l.target_key.clone(),
                        natural_key: None,
                        base: l.base.clone(),
                        source_updated_at: None,
                        target_updated_at: None,
                        source_deleted: l.source_deleted || *side == Side::Source,
                        target_deleted: l.target_deleted || *side == Side::Target,
                    };
                }
            }
            LinkAfter::Set(base) => {
                let mut base = base.clone();
                // A created record's fields that were not written take the stored value.
                for (side, (_, stored)) in &created {
                    if let Some(r) = stored {
                        let p = self.mapping.project(*side, r);
                        for f in &self.mapping.fields {
                            if !base.contains_key(&f.canon)
                                && let Some(v) = p.values.get(&f.canon)
                            {
                                base.insert(f.canon.clone(), v.clone());
                            }
                        }
                    }
                }
                if let (Some(sk), Some(tk)) = (key_of(Side::Source), key_of(Side::Target)) {
                    pc.link = LinkWrite::Upsert {
                        id: w.link.as_ref().map(|l| l.id),
                        source_key: sk,
                        target_key: tk,
                        natural_key: w.natural_key.clone(),
                        base,
                        source_updated_at: time_of(Side::Source),
                        target_updated_at: time_of(Side::Target),
                        source_deleted: false,
                        target_deleted: false,
                    };
                }
            }
        }
        if w.queued {
            pc.conflict = ConflictWrite::Open {
                fields: json!(w.conflict),
                strategy: self.cfg.conflict_strategy.as_str().to_owned(),
                source_key: key_of(Side::Source).map(|k| k.0).unwrap_or_default(),
                target_key: key_of(Side::Target).map(|k| k.0).unwrap_or_default(),
            };
            // Re-read on every run until resolved; the conflict row drives that.
            pc.pending_remove.clear();
        } else if let Some(status) = w.close_conflict {
            pc.conflict = ConflictWrite::Close { status };
        } else if !w.conflict.is_empty() {
            pc.conflict = ConflictWrite::Settled {
                fields: json!(w.conflict),
                strategy: self.cfg.conflict_strategy.as_str().to_owned(),
                source_key: key_of(Side::Source).map(|k| k.0).unwrap_or_default(),
                target_key: key_of(Side::Target).map(|k| k.0).unwrap_or_default(),
            };
        }
        pc
    }

    fn count_planned(&mut self, w: &Work) {
        self.count(w, None, true);
    }

    fn count_done(&mut self, w: &Work, conflict_id: Option<i64>) {
        self.count(w, conflict_id, false);
    }

    fn count(&mut self, w: &Work, conflict_id: Option<i64>, planned: bool) {
        if !w.rejected.is_empty() {
            let side = w.reject_side.unwrap_or(Side::Target);
            self.side(side).counts.rejected += 1;
            if self.report.rejected.len() < LIST_CAP {
                let from = side.other();
                self.report.rejected.push(RejectedItem {
                    id: w.note_change,
                    side: side.as_str(),
                    record: format!(
                        "{}:{}",
                        from.as_str(),
                        w.key(from).map(|k| k.0).unwrap_or_default()
                    ),
                    natural_key: w.natural_key.clone(),
                    reasons: w.rejected.clone(),
                });
            }
            return;
        }
        if !w.conflict.is_empty() {
            self.report.conflicts.detected += 1;
            if w.queued {
                self.report.conflicts.queued += 1;
            } else {
                self.report.conflicts.resolved += 1;
            }
            if self.report.conflicts.items.len() < LIST_CAP {
                let outcome = if w.queued {
                    "queued".to_owned()
                } else {
                    w.conflict
                        .values()
                        .next()
                        .and_then(|c| c.winner)
                        .unwrap_or("resolution")
                        .to_owned()
                };
                self.report.conflicts.items.push(ConflictItem {
                    id: conflict_id,
                    source_key: w.key(Side::Source).map(|k| k.0).unwrap_or_default(),
                    target_key: w.key(Side::Target).map(|k| k.0).unwrap_or_default(),
                    outcome,
                    fields: w.conflict.clone(),
                });
            }
        }
        for op in &w.ops {
            let applied = planned || matches!(op.result, OpResult::Applied { .. });
            let failed = matches!(op.result, OpResult::Failed(_));
            let s = self.side(op.side);
            if applied {
                match &op.op {
                    WriteOp::Create { .. } => s.counts.created += 1,
                    WriteOp::Update { .. } => s.counts.updated += 1,
                    WriteOp::Delete { .. } | WriteOp::Archive { .. } => s.counts.deleted += 1,
                }
            } else if failed {
                s.counts.failed += 1;
                if self.report.failed.len() < LIST_CAP
                    && let OpResult::Failed(e) = &op.result
                {
                    let key = op_key(&op.op).unwrap_or_else(|| {
                        w.key(op.side.other())
                            .map(|k| format!("{}:{}", op.side.other().as_str(), k))
                            .unwrap_or_default()
                    });
                    self.report.failed.push(FailedItem {
                        id: op.change_id,
                        side: op.side.as_str(),
                        action: op.op.kind(),
                        key,
                        error: e.clone(),
                    });
                }
            }
        }
    }

    /// Full key scans of the sides whose deletions propagate: linked keys no longer present
    /// (confirmed by a read by key) are deletion candidates.
    async fn detect_deletes(&mut self) -> Result<(), SyncError> {
        let name = self.cfg.name.clone();
        for gone in [Side::Source, Side::Target] {
            let flows = match gone {
                Side::Source => self.cfg.direction.to_target(),
                Side::Target => self.cfg.direction.to_source(),
            };
            if !flows {
                continue;
            }
            let mut linked = self.store.linked_keys(&name, gone).await?;
            if linked.is_empty() {
                continue;
            }
            let src = self.sides[idx(gone)].source;
            let schema = self.sides[idx(gone)].schema.clone();
            let mut req = ReadRequest {
                since: None,
                after: None,
                limit: PAGE * 4,
                keys_only: true,
            };
            let mut seen = 0u64;
            loop {
                self.check_cancel()?;
                let page = src
                    .read_page(&schema, &req)
                    .await
                    .map_err(|e| self.read_failed(gone, e))?;
                seen += page.records.len() as u64;
                for r in &page.records {
                    if !r.deleted {
                        linked.remove(&r.key);
                    }
                }
                match page.next {
                    Some(t) => req.after = Some(t),
                    None => break,
                }
            }
            if seen == 0 {
                self.empty_sides.insert(gone);
                self.warnings.push(format!(
                    "the {} returned no records at all; an empty read never deletes, so deletes were skipped",
                    gone.as_str()
                ));
                continue;
            }
            let cands: Vec<RecordKey> = linked.keys().cloned().collect();
            if cands.is_empty() {
                continue;
            }
            let still = src
                .read_keys(&schema, &cands)
                .await
                .map_err(|e| self.read_failed(gone, e))?;
            let alive: HashSet<RecordKey> = still
                .into_iter()
                .filter(|r| !r.deleted)
                .map(|r| r.key)
                .collect();
            let ids: Vec<i64> = linked
                .iter()
                .filter(|(k, _)| !alive.contains(*k))
                .map(|(_, id)| *id)
                .filter(|id| !self.delete_links.contains(id))
                .collect();
            for l in self.store.links_by_id(&name, &ids).await? {
                self.delete_links.insert(l.id);
                self.deletes.push((l, gone));
            }
        }
        Ok(())
    }

    /// The mass-delete guard, then the deletes.
    async fn apply_deletes(&mut self) -> Result<(), SyncError> {
        if self.deletes.is_empty() {
            return Ok(());
        }
        let name = self.cfg.name.clone();
        // An empty read never deletes, however the deletion was noticed.
        let empty = self.empty_sides.clone();
        self.deletes.retain(|(_, gone)| !empty.contains(gone));
        for gone in [Side::Source, Side::Target] {
            let count = self.deletes.iter().filter(|(_, s)| *s == gone).count();
            if count == 0 {
                continue;
            }
            let linked = self.store.linked_keys(&name, gone).await?.len().max(count);
            let frac = count as f64 / linked as f64;
            if frac > self.cfg.max_delete_fraction {
                let suggest = ((frac * 100.0).ceil() / 100.0).min(1.0);
                return Err(SyncError::MassDelete {
                    side: gone.as_str(),
                    count,
                    linked,
                    percent: frac * 100.0,
                    max: self.cfg.max_delete_fraction * 100.0,
                    suggest: format!("{suggest:.2}"),
                });
            }
        }
        let deletes = std::mem::take(&mut self.deletes);
        let mut works = Vec::new();
        for (link, gone) in deletes {
            let survivor = gone.other();
            let seq = self.next_seq();
            let mut w = Work::new(seq);
            w.natural_key.clone_from(&link.natural_key);
            let key = link.key(survivor).clone();
            let op = match self.cfg.deletes {
                DeletePolicy::Archive => WriteOp::Archive { key: key.clone() },
                _ => WriteOp::Delete { key: key.clone() },
            };
            w.ops.push(Op {
                side: survivor,
                op,
                changes: BTreeMap::new(),
                before: Some(json!(link.base)),
                change_id: None,
                result: OpResult::Pending,
            });
            w.link_after = LinkAfter::Remove;
            if self.open_conflicts.contains(&link.id) {
                w.close_conflict = Some("superseded");
            }
            w.link = Some(link);
            works.push(w);
        }
        // A delete that finds nothing is done too: both records are gone.
        self.execute_deletes(works).await
    }

    async fn execute_deletes(&mut self, mut works: Vec<Work>) -> Result<(), SyncError> {
        for w in &mut works {
            for op in &mut w.ops {
                op.result = OpResult::Pending;
            }
        }
        if self.s.dry_run {
            for w in &works {
                self.count_planned(w);
                let e = self.entries(w);
                self.add_plan(e);
            }
            return Ok(());
        }
        let rows: Vec<ChangeRow> = works
            .iter()
            .flat_map(|w| {
                w.ops.iter().map(move |op| ChangeRow {
                    seq: w.seq,
                    link_id: w.link.as_ref().map(|l| l.id),
                    side: op.side,
                    record_key: op_key(&op.op),
                    action: op.op.kind().to_owned(),
                    before: op.before.clone(),
                    after: None,
                    status: "planned".to_owned(),
                    error: None,
                    origin_key: w.link.as_ref().map(|l| l.key(op.side.other()).0.clone()),
                })
            })
            .collect();
        let ids = self.store.insert_changes(&self.run_id, &rows).await?;
        let mut it = ids.into_iter();
        for w in &mut works {
            for op in &mut w.ops {
                op.change_id = it.next();
            }
        }
        let mut stop: Option<SyncError> = None;
        'sides: for side in [Side::Target, Side::Source] {
            let refs: Vec<usize> = works
                .iter()
                .enumerate()
                .filter(|(_, w)| w.ops[0].side == side)
                .map(|(i, _)| i)
                .collect();
            let batch = self.sides[idx(side)].batch;
            for chunk in refs.chunks(batch) {
                if let Err(e) = self.check_cancel() {
                    stop = Some(e);
                    break 'sides;
                }
                let ops: Vec<WriteOp> = chunk.iter().map(|i| works[*i].ops[0].op.clone()).collect();
                let results = match self.write_batch(side, &ops).await {
                    Ok(r) => r,
                    Err(e) => {
                        stop = Some(e);
                        break 'sides;
                    }
                };
                for (i, r) in chunk.iter().zip(results) {
                    works[*i].ops[0].result = match r {
                        OpResult::NotFound => OpResult::Applied {
                            key: RecordKey(op_key(&works[*i].ops[0].op).unwrap_or_default()),
                            stored: None,
                        },
                        other => other,
                    };
                }
            }
        }
        let commits: Vec<PairCommit> = works.iter().map(|w| self.commit_of(w)).collect();
        let ids = self
            .store
            .commit(&self.cfg.name, &self.run_id, &commits)
            .await?;
        for (w, (_, cid)) in works.iter().zip(ids) {
            self.count_done(w, cid);
            if self.s.include_plan {
                let mut e = self.entries(w);
                for x in &mut e {
                    x.status = status_of(&w.ops[0].result).to_owned();
                }
                self.add_plan(e);
            }
        }
        stop.map_or(Ok(()), Err)
    }

    /// Saves cursors and breakers and closes the run row; returns the run's error, if any.
    async fn finish(&mut self, result: Result<(), SyncError>) -> Option<SyncError> {
        let scanned = result.is_ok() && self.scanned;
        let mut error = result.err();
        for side in [Side::Source, Side::Target] {
            if let Some(e) = self.sides[idx(side)].blocked.take()
                && error.is_none()
            {
                error = Some(e);
            }
        }
        let failed = self.sides[0].counts.failed + self.sides[1].counts.failed;
        if error.is_none() && failed > self.cfg.max_failures {
            error = Some(SyncError::Connector(ConnectorError::failed(
                "sync",
                format!(
                    "{failed} record writes failed (max_failures is {}); see data.failed and `syncctl sync show {}`",
                    self.cfg.max_failures, self.run_id
                ),
            )));
        }
        let rejected = self.sides[0].counts.rejected + self.sides[1].counts.rejected;
        if rejected > 0 {
            self.warnings.push(format!(
                "{rejected} record{} rejected by validation and not written; see data.rejected",
                if rejected == 1 { " was" } else { "s were" }
            ));
        }
        let queued = self.report.conflicts.queued;
        if queued > 0 {
            self.warnings.push(format!(
                "{queued} conflict{} queued for review (see data.conflicts); list and resolve them with `syncctl sync conflicts list` and the same --config or --state-url",
                if queued == 1 { " is" } else { "s are" },
            ));
        }
        let real = !self.s.dry_run;
        for side in [Side::Source, Side::Target] {
            let s = &self.sides[idx(side)];
            let endpoint = s.conn.endpoint();
            let mut breaker = s.breaker.clone();
            // This run was the half-open probe and nothing re-opened the breaker: the probe
            // succeeded unless the run failed for a reason a retry could fix.
            if breaker.state.phase == syncctl_http::BreakerPhase::HalfOpen {
                if error
                    .as_ref()
                    .is_some_and(|e| e.class() == ErrorClass::Transient)
                {
                    breaker.record_failure(Utc::now());
                } else {
                    breaker.record_success();
                }
            }
            self.report.breaker.insert(
                side.as_str().to_owned(),
                breaker_report(&endpoint, &breaker),
            );
            if real
                && s.breaker_dirty
                && let Err(e) = self.store.save_breaker(&endpoint, &breaker.state).await
            {
                self.warnings
                    .push(format!("could not save the breaker state: {e}"));
            }
            let counts = s.counts.clone();
            let before = s.cursor_before;
            // Only a side read incrementally has a cursor worth keeping.
            let max_seen = s.max_seen.filter(|_| s.schema.capabilities.incremental);
            let mut after = before;
            if real
                && scanned
                && let Some(m) = max_seen
                && before.is_none_or(|b| m > b)
            {
                if let Err(e) = self
                    .store
                    .set_cursor(&self.cfg.name, side, m, &self.run_id)
                    .await
                {
                    self.warnings
                        .push(format!("could not save the cursor: {e}"));
                } else {
                    after = Some(m);
                }
            }
            let r = report_side(&mut self.report, side);
            r.counts = counts;
            r.cursor = CursorReport {
                before: before.map(fmt_time),
                after: after.map(fmt_time),
            };
        }
        if self.s.dry_run || self.s.include_plan {
            self.report.plan = Some(std::mem::take(&mut self.plan));
        }
        if real {
            let status = match &error {
                None => "succeeded",
                Some(SyncError::Cancelled) => "cancelled",
                Some(_) => "failed",
            };
            let counts = json!({
                "source": self.report.source.counts,
                "target": self.report.target.counts,
                "conflicts": {
                    "detected": self.report.conflicts.detected,
                    "resolved": self.report.conflicts.resolved,
                    "queued": self.report.conflicts.queued,
                },
            });
            let msg = error.as_ref().map(ToString::to_string);
            if let Some(m) = &msg
                && let Err(e) = self
                    .store
                    .settle_planned(&self.run_id, &format!("not sent: the run stopped ({m})"))
                    .await
            {
                self.warnings
                    .push(format!("could not settle the run's unsent changes: {e}"));
            }
            if let Err(e) = self
                .store
                .finish_run(&self.run_id, status, &counts, msg.as_deref())
                .await
            {
                self.warnings
                    .push(format!("could not record the run's end: {e}"));
            }
        }
        error
    }
}

fn breaker_report(endpoint: &str, b: &CircuitBreaker) -> BreakerReport {
    BreakerReport {
        endpoint: endpoint.to_owned(),
        phase: serde_json::to_value(b.state.phase).unwrap_or(Value::Null),
        consecutive_failures: b.state.consecutive_failures,
        next_probe_at: b.state.next_probe_at.map(fmt_time),
    }
}

fn deleted_on(l: &Link, side: Side) -> bool {
    match side {
        Side::Source => l.source_deleted,
        Side::Target => l.target_deleted,
    }
}

fn set_record(w: &mut Work, side: Side, r: Option<Record>) {
    match side {
        Side::Source => w.source = r,
        Side::Target => w.target = r,
    }
}

fn op_key(op: &WriteOp) -> Option<String> {
    match op {
        WriteOp::Create { .. } => None,
        WriteOp::Update { key, .. } | WriteOp::Delete { key } | WriteOp::Archive { key } => {
            Some(key.0.clone())
        }
    }
}

fn write_fields(op: &WriteOp) -> BTreeMap<String, Value> {
    match op {
        WriteOp::Create { fields, .. } | WriteOp::Update { fields, .. } => fields.clone(),
        _ => BTreeMap::new(),
    }
}

fn status_of(r: &OpResult) -> &'static str {
    match r {
        OpResult::Pending => "planned",
        OpResult::Applied { .. } => "applied",
        OpResult::Failed(_) => "failed",
        OpResult::Stale => "stale",
        OpResult::NotFound => "not_found",
        OpResult::Skipped(_) => "skipped",
    }
}
