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
//!
//! The phases live in their own modules: [`start`] (setup), [`recover`] (killed runs),
//! [`pair`] (reading and pairing pages), [`plan`] (the pure planner), [`write`] (persist the
//! plan, write, read back, commit), [`deletes`], [`tally`] (counts and plan entries) and
//! [`finish`] (cursors, breakers, the run row).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use syncctl_core::{
    Classified, Connector, ConnectorError, ErrorClass, ObjectSchema, RecordKey, Sink, Source,
    WriteContext,
};
use syncctl_http::{CircuitBreaker, SharedBreaker};
use syncctl_validate::RuleSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DeletePolicy, SyncConfig};
use crate::error::SyncError;
use crate::mapping::Mapping;
use crate::merge::Resolution;
use crate::report::{PlanEntry, RunReport, SideCounts, SideReport};
use crate::store::{Link, Side, StateStore};

mod deletes;
mod finish;
mod first_load;
mod pair;
mod plan;
mod recover;
mod start;
mod tally;
mod write;

/// Records per read page.
const PAGE: usize = 500;

/// Records of a scan paired and planned together. Connectors page small (HubSpot 100 or 200
/// a page), but counterparts are read by key and new records looked up by natural key once
/// per window, and write batches fill up across pages: N changed records cost ⌈N/1000⌉
/// counterpart reads (QuickBooks answers 1000 a query) and ⌈N/batch⌉ writes, not one
/// partial batch and one read per source page.
const PAIR_WINDOW: usize = 1000;

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
    /// Accept (and record) a binding that differs from the state store's (`--rebind`).
    pub rebind: bool,
    /// The breakers handed to the source and target connectors (`BuildContext::breaker`): the
    /// engine loads each one's persisted state into it before the run and saves it after, so
    /// a connector's HTTP client fails fast on, and counts into, the breaker the next run
    /// sees. `None`: the engine keeps its own.
    pub breakers: [Option<SharedBreaker>; 2],
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
    // Before anything is read: state built against other endpoints must not be used.
    if let Err(e) = crate::binding::check(
        store,
        &settings.config,
        source,
        target,
        settings.rebind,
        &run_id,
        &mut warnings,
    )
    .await
    {
        if let Some(l) = lock {
            let _ = store.unlock(l).await;
        }
        return RunOutcome {
            report,
            warnings,
            error: Some(e),
        };
    }
    let started = run_id.clone();
    let mut engine =
        match Engine::start(settings, source, target, store, cancel, run_id, report).await {
            Ok(e) => e,
            Err((report, e)) => {
                // The run row (when start got that far) must not stay `running`: the next
                // run would call it interrupted (killed or crashed).
                if !settings.dry_run
                    && let Err(fe) = store
                        .finish_run(
                            &started,
                            if matches!(e, SyncError::Cancelled) {
                                "cancelled"
                            } else {
                                "failed"
                            },
                            &serde_json::json!({}),
                            Some(&stored_error(&e)),
                        )
                        .await
                {
                    warnings.push(format!("could not record the run's end: {fe}"));
                }
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
    for w in source.warnings().into_iter().chain(target.warnings()) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
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

/// A run's error as the run table keeps it (`sync history`/`show`): its class and message,
/// with any `user:password@` of a URL in it replaced (connectors scrub their own URLs; this is
/// the last line of defence for a message that quotes one).
pub(crate) fn stored_error(e: &SyncError) -> String {
    let message: Vec<String> = e
        .to_string()
        .split(' ')
        .map(|w| {
            if w.contains("://") {
                syncctl_core::redact::redact_userinfo(w)
            } else {
                w.to_owned()
            }
        })
        .collect();
    format!("{}: {}", e.class().as_str(), message.join(" "))
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
    for (side, sc) in [(Side::Source, ss), (Side::Target, ts)] {
        for name in cfg.filter.side(side).keys() {
            if sc.field(name).is_none() {
                problems.push(format!(
                    "filter.{}.{name} is not a field of {} {}",
                    side.as_str(),
                    side.as_str(),
                    sc.object
                ));
            }
        }
    }
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
        let caps = &sc.capabilities;
        if writes && c.sink().is_some() && !(caps.create || caps.update || caps.delete) {
            problems.push(format!(
                "{} {} ({}) accepts no writes (a file that is read-only, not a regular file or not ours to write), but the direction {} writes to it; make it writable or choose a direction that only reads it",
                side.as_str(),
                c.kind(),
                c.endpoint(),
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
    breaker: SharedBreaker,
    /// The breaker's [`CircuitBreaker::recorded`] when the engine last looked: a different
    /// count means the connector's HTTP client recorded the outcome itself.
    breaker_seen: u64,
    breaker_dirty: bool,
    blocked: Option<SyncError>,
    counts: SideCounts,
    cursor_before: Option<DateTime<Utc>>,
    max_seen: Option<DateTime<Utc>>,
    rules: RuleSet,
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
    /// Per side written: comparison keys ([`syncctl_core::Source::comparison_keys`]) of the
    /// natural keys matched or created there in this run, with the natural key that claimed
    /// each, so that a record the side would hold to be the same is refused before writing.
    /// Keyed by the comparison key's 128-bit hash (as [`KeySet`]): a first load of a million
    /// records keeps a million entries.
    claimed_as: [HashMap<u128, Box<str>>; 2],
    pending: [BTreeSet<RecordKey>; 2],
    resolutions: HashMap<i64, Resolution>,
    open_conflicts: HashSet<i64>,
    deletes: Vec<(Link, Side)>,
    delete_links: HashSet<i64>,
    scanned: bool,
    latest_warned: bool,
    empty_sides: HashSet<Side>,
    /// The side this run first-loads in bulk ([`first_load`]): it was empty and the sync had
    /// no links when the run started, so records scanned from the other side are created
    /// there without per-window link or natural-key queries.
    bulk_into: Option<Side>,
    /// A bulk window's commit still running ([`write::InFlight`]).
    inflight: Option<write::InFlight<'a>>,
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

/// The breaker, even if a thread panicked holding it (its state is plain data).
fn lock_breaker(b: &SharedBreaker) -> std::sync::MutexGuard<'_, CircuitBreaker> {
    b.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn idx(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}
impl<'a> Engine<'a> {
    fn side(&mut self, side: Side) -> &mut SideCtx<'a> {
        &mut self.sides[idx(side)]
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
        // Deletions are detected and the mass-delete guard applied before the first write:
        // its refusal (exit 2) promises that nothing was written.
        if self.cfg.deletes != DeletePolicy::Ignore && self.s.only_links.is_none() {
            self.detect_deletes().await?;
            self.guard_deletes().await?;
        }
        if !self.s.dry_run {
            self.recover().await?;
        }
        self.bulk_into = self.first_load_side().await?;
        if let Some(side) = self.bulk_into {
            self.report.bulk_load = Some(side.as_str().to_owned());
            tracing::info!(
                sync = %self.cfg.name,
                into = side.as_str(),
                "First load into an empty {}: bulk mode (no pairing queries).",
                side.as_str()
            );
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
        self.apply_deletes().await?;
        self.scanned = true;
        Ok(())
    }

    fn check_cancel(&self) -> Result<(), SyncError> {
        if self.cancel.is_cancelled() {
            Err(SyncError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn read_failed(&mut self, side: Side, e: ConnectorError) -> SyncError {
        // A rate limit is not an outage: it never counts against the breaker.
        if e.class() == ErrorClass::Transient && !e.is_rate_limit() {
            self.breaker_outcome(side, false);
        }
        e.into()
    }

    /// Counts a call's outcome on the side's breaker, once: not again when the connector's
    /// HTTP client, which shares the breaker, already recorded it.
    fn breaker_outcome(&mut self, side: Side, ok: bool) {
        let s = self.side(side);
        let mut b = lock_breaker(&s.breaker);
        if b.recorded() == s.breaker_seen {
            if ok {
                b.record_success();
            } else {
                b.record_failure(Utc::now());
            }
        }
        s.breaker_seen = b.recorded();
        s.breaker_dirty = true;
    }

    fn next_seq(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }
}
