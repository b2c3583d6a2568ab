//! Setting a run up: the run row, the schemas and the mapping, the breakers, cursors and
//! validation rules of each side, and the records a previous run left pending.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::Utc;
use syncctl_core::{Connector, WriteContext};
use syncctl_http::{BreakerConfig, CircuitBreaker};
use syncctl_validate::RuleSet;
use tokio_util::sync::CancellationToken;

use super::finish::breaker_report;
use super::{Engine, KeySet, RunSettings, SideCtx, config_problems, fmt_time, idx, report_side};
use crate::error::SyncError;
use crate::merge::Resolution;
use crate::report::{RunReport, SideCounts};
use crate::store::{RunStart, Side, StateStore};

impl<'a> Engine<'a> {
    // The error carries the report so far; it is returned once per run, so boxing buys nothing.
    #[allow(clippy::too_many_lines, clippy::result_large_err)]
    pub(super) async fn start(
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
        let breaker_cfg = BreakerConfig {
            failure_threshold: cfg.breaker.failure_threshold,
            cooldown: cfg.breaker.cooldown,
        };
        // Breakers first: an open one stops the run before the connector is asked anything
        // (describing a SaaS object is a call too).
        let mut loaded = Vec::new();
        for (side, c) in [(Side::Source, source), (Side::Target, target)] {
            let endpoint = c.endpoint();
            let state = tri!(store.breaker(&endpoint).await).unwrap_or_default();
            // One breaker per connector: the persisted state goes into the breaker the
            // connector's HTTP client already holds (or a new one for connectors without).
            let shared = s.breakers[super::idx(side)].clone().unwrap_or_else(|| {
                std::sync::Arc::new(std::sync::Mutex::new(CircuitBreaker::new(breaker_cfg)))
            });
            let mut guard = super::lock_breaker(&shared);
            *guard = CircuitBreaker::from_state(breaker_cfg, state);
            // An open breaker past its cool-down lets this run through as its one probe;
            // before that the run stops without touching the connector. The connector's first
            // request is then the probe itself (its HTTP client closes or re-opens the
            // breaker); a connector without one is judged by the run's outcome at the end.
            let acquired = guard.try_acquire(Utc::now());
            if acquired.is_ok() && guard.state.phase == syncctl_http::BreakerPhase::HalfOpen {
                guard.state.probe_in_flight = false;
            }
            let breaker = guard.clone();
            let seen = guard.recorded();
            drop(guard);
            let blocked = match acquired {
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
            loaded.push((shared, seen));
        }
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
        let mut sides = Vec::new();
        for (side, c, sc) in [(Side::Source, source, ss), (Side::Target, target, ts)] {
            let (shared, seen) = loaded.remove(0);
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
                breaker: shared,
                breaker_seen: seen,
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
            claimed_as: [HashMap::new(), HashMap::new()],
            pending: [BTreeSet::new(), BTreeSet::new()],
            resolutions: HashMap::new(),
            open_conflicts: HashSet::new(),
            deletes: Vec::new(),
            delete_links: HashSet::new(),
            scanned: false,
            latest_warned: false,
            empty_sides: HashSet::new(),
            bulk_into: None,
            inflight: None,
        };
        if let Err(e) = engine.load_pending().await {
            return Err((engine.report, e));
        }
        Ok(engine)
    }

    pub(super) async fn load_pending(&mut self) -> Result<(), SyncError> {
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
}
