//! `sync run`, `sync plan` and `sync check`.

use std::time::Duration;

use serde_json::{Value, json};
use syncctl_core::{Classified, Metric};
use syncctl_sync::{RunOutcome, RunSettings, Side, StateStore, SyncError, config_problems};

use crate::context::AppContext;
use crate::error::CliError;

use super::super::Outcome;
use super::settings::{self, Resolved};
use super::{ReadArgs, SpecArgs};

/// How long a SQLite lease lasts without renewal (renewed every third of it).
const LOCK_LEASE: Duration = Duration::from_secs(60);

/// Opens the state store: read-only for dry runs (nothing is created), else for writing.
pub(super) async fn open_store(r: &Resolved, dry_run: bool) -> Result<StateStore, CliError> {
    let store = if dry_run {
        StateStore::open_read_only(&r.state_url, &r.state_base).await
    } else {
        StateStore::open(&r.state_url, &r.state_base).await
    };
    Ok(store?)
}

/// `sync run` (and `sync plan` = `run --dry-run`).
pub(super) async fn run(
    spec: &SpecArgs,
    read: &ReadArgs,
    dry_run: bool,
    include_plan: bool,
    ctx: &AppContext,
) -> Result<Outcome, CliError> {
    let r = settings::resolve_run(spec, ctx)?;
    // The connectors are built (their settings checked, nothing opened) before the state store
    // opens, so a wrong setting is a config error (exit 2) even when the store is unreachable.
    // They keep rotating credentials in the store, attached once it is open.
    let platform = settings::Platform::new();
    let source =
        settings::build_connector(Side::Source, &r.config, &r.base_dir, ctx, &platform).await?;
    let target =
        settings::build_connector(Side::Target, &r.config, &r.base_dir, ctx, &platform).await?;
    let store = std::sync::Arc::new(open_store(&r, dry_run).await?);
    platform
        .attach_state_store(store.clone(), &r.state_url, &r.state_base, ctx)
        .await?;
    let run_settings = RunSettings {
        config: r.config.clone(),
        dry_run,
        full_refresh: read.full_refresh,
        include_plan: include_plan || ctx.verbosity > 0,
        plan_limit: read.plan_limit,
        only_links: None,
        invoked_by: settings::invoked_by(ctx),
        args: settings::recorded_args(&r, read.full_refresh, dry_run),
        lock_lease: LOCK_LEASE,
        rebind: read.rebind,
        breakers: platform.breakers.clone().map(Some),
    };
    tracing::info!(
        sync = %r.config.name,
        source = %source.endpoint(),
        target = %target.endpoint(),
        state = %store.display(),
        dry_run,
        "Starting sync."
    );
    let outcome = syncctl_sync::run(
        &run_settings,
        source.as_ref(),
        target.as_ref(),
        store.as_ref(),
        &ctx.cancel,
    )
    .await;
    store.close().await;
    Ok(into_outcome(outcome, dry_run))
}

/// A run's outcome as the command's result.
pub(super) fn into_outcome(o: RunOutcome, dry_run: bool) -> Outcome {
    let report = &o.report;
    // A run that failed says so through its error (logged once, at the end); "finished" would
    // read as success right before it.
    let ended = if o.error.is_some() {
        "Sync stopped on an error."
    } else {
        "Sync finished."
    };
    tracing::info!(
        sync = %report.sync,
        run = %report.run,
        source_created = report.source.counts.created,
        source_updated = report.source.counts.updated,
        target_created = report.target.counts.created,
        target_updated = report.target.counts.updated,
        conflicts = report.conflicts.detected,
        rejected = report.source.counts.rejected + report.target.counts.rejected,
        failed = report.source.counts.failed + report.target.counts.failed,
        "{ended}"
    );
    let mut metrics = Vec::new();
    for (side, c) in [
        ("source", &report.source.counts),
        ("target", &report.target.counts),
    ] {
        for (name, v) in [
            ("read", c.read),
            ("created", c.created),
            ("updated", c.updated),
            ("deleted", c.deleted),
            ("rejected", c.rejected),
            ("failed", c.failed),
        ] {
            let mut m = Metric::counter(format!("sync_records_{name}"), v as f64);
            m.tags.insert("side".into(), side.into());
            metrics.push(m);
        }
    }
    for (name, v) in [
        ("detected", report.conflicts.detected),
        ("resolved", report.conflicts.resolved),
        ("queued", report.conflicts.queued),
    ] {
        metrics.push(Metric::counter(format!("sync_conflicts_{name}"), v as f64));
    }
    // The state store's id of this run is the result's run_id: `sync show RUN_ID` takes it.
    let run_id = uuid::Uuid::parse_str(&report.run).ok();
    let data = serde_json::to_value(&o.report).unwrap_or(Value::Null);
    let outcome = match o.error {
        None if dry_run => Outcome::planned(data),
        None => Outcome::succeeded(data),
        Some(e) => Outcome::failed(data, e.into()),
    };
    outcome
        .with_warnings(o.warnings)
        .with_metrics(metrics)
        .with_run_id(run_id)
}

/// `sync check`: every problem with the config, the connectors and the state store at once.
pub(super) async fn check(a: &SpecArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let r = settings::resolve_run(a, ctx)?;
    let mut problems: Vec<String> = Vec::new();
    let mut sides = serde_json::Map::new();
    let mut connectors = Vec::new();
    // Built before the state store opens, as `sync run` does; checking a connector may
    // refresh its token, and a rotated one is kept in the store attached below.
    let platform = settings::Platform::new();
    // A wrong connector setting makes the check a config failure (exit 2) whatever else is
    // unreachable, as it stops `sync run` before the state store is opened.
    let mut settings_wrong = false;
    for side in [Side::Source, Side::Target] {
        match settings::build_connector(side, &r.config, &r.base_dir, ctx, &platform).await {
            Ok(c) => connectors.push((side, c)),
            Err(e) => {
                settings_wrong |= e.class == syncctl_core::ErrorClass::Config;
                problems.push(crate::error::chain_message(&e.error));
            }
        }
    }
    match StateStore::open_read_only(&r.state_url, &r.state_base).await {
        Ok(s) => {
            if let Err(e) = platform
                .attach_state_store(std::sync::Arc::new(s), &r.state_url, &r.state_base, ctx)
                .await
            {
                problems.push(crate::error::chain_message(&e.error));
                platform.attach_no_store(e.error.to_string());
            }
        }
        Err(e) => platform.attach_no_store(e.to_string()),
    }
    let mut schemas = Vec::new();
    // An unreachable or refusing system (database, service or state store) keeps its own
    // class, so `sync check` exits as `sync run` and `sync plan` would (4 unreachable, 3
    // auth), not 2.
    let mut reach_class = None;
    for (side, c) in &connectors {
        let mut info = json!({
            "connector": c.kind(),
            "object": c.object(),
            "endpoint": c.endpoint(),
        });
        if let Err(e) = c.check().await {
            if e.class() != syncctl_core::ErrorClass::Config {
                reach_class.get_or_insert(e.class());
            }
            problems.push(format!("{} connector: {e}", side.as_str()));
            sides.insert(side.as_str().into(), info);
            continue;
        }
        match c.describe().await {
            Ok(s) => {
                info["key"] = json!(s.key);
                info["updated_at"] = json!(s.updated_at);
                info["fields"] = json!(s.fields.iter().map(|f| &f.name).collect::<Vec<_>>());
                info["max_batch"] = json!(s.max_batch);
                info["capabilities"] = json!(s.capabilities);
                schemas.push((*side, s));
            }
            Err(e) => problems.push(format!("{} connector: {e}", side.as_str())),
        }
        sides.insert(side.as_str().into(), info);
    }
    if let ([(_, sc), (_, tc)], [(_, ss), (_, ts)]) = (connectors.as_slice(), schemas.as_slice()) {
        let (_, p) = config_problems(&r.config, sc.as_ref(), tc.as_ref(), ss, ts);
        problems.extend(p);
    } else {
        // One side could not be described: still check the other side's fields.
        for (side, s) in &schemas {
            for f in &r.config.fields {
                let name = match side {
                    Side::Source => &f.source,
                    Side::Target => &f.target,
                };
                if s.field(name).is_none() {
                    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
                    problems.push(format!(
                        "{} field {name:?} is not a field of {}; it has: {}",
                        side.as_str(),
                        s.object,
                        names.join(", ")
                    ));
                }
            }
        }
    }
    let state = match StateStore::open_read_only(&r.state_url, &r.state_base).await {
        Ok(s) => {
            let d = s.display().to_owned();
            // State built against other endpoints is refused by `sync run`; say so here too.
            if let [(_, sc), (_, tc)] = connectors.as_slice() {
                let mut ignored = Vec::new();
                if let Err(e) = syncctl_sync::binding::check(
                    &s,
                    &r.config,
                    sc.as_ref(),
                    tc.as_ref(),
                    false,
                    "",
                    &mut ignored,
                )
                .await
                {
                    problems.push(e.to_string());
                }
            }
            s.close().await;
            json!(d)
        }
        Err(e) => {
            if e.class() != syncctl_core::ErrorClass::Config {
                reach_class.get_or_insert(e.class());
            }
            problems.push(e.to_string());
            Value::Null
        }
    };
    let mut data = json!({
        "sync": r.config.name,
        "direction": r.config.direction.as_str(),
        "conflict_strategy": r.config.conflict_strategy.as_str(),
        "state": state,
        "problems": problems,
    });
    if let Some(m) = data.as_object_mut() {
        m.extend(sides);
    }
    if problems.is_empty() {
        Ok(Outcome::succeeded(data))
    } else {
        let n = problems.len();
        let found = format!("{n} problem{} found", if n == 1 { "" } else { "s" });
        let error = match reach_class {
            // Not "invalid sync config": a system that cannot be reached is not the config's
            // fault, and the message should say only what happened.
            Some(class) if !settings_wrong => {
                CliError::new(class, anyhow::anyhow!(problems.join("; ")).context(found))
            }
            Some(_) => CliError::new(
                syncctl_core::ErrorClass::Config,
                anyhow::anyhow!(problems.join("; ")).context(found),
            ),
            None => {
                let err = SyncError::Config { problems };
                CliError::new(err.class(), anyhow::Error::new(err).context(found))
            }
        };
        Ok(Outcome::failed(data, error))
    }
}
